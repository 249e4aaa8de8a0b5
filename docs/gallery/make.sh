#!/usr/bin/env bash
# Makes the gallery: Tübingen in the style of four paintings, with nst's defaults (L-BFGS),
# then scores each result. Run from the repository root after `cargo build --release -p nst-cli`:
#
#   bash docs/gallery/make.sh [SIZE] [ITERATIONS]      # defaults: 512 and nst's default count
#
# On a GPU use 512; on Mesa's software driver (a few seconds per iteration at 192 px on 2 cores)
# use 192. Each result goes to docs/gallery/tubingen_<style>_<SIZE>.png with its `nst score
# --json` beside it (.json) and the command that made it (.cmd).
set -euo pipefail
size=${1:-512}
iters=${2:-}
nst=${NST:-target/release/nst}
dir=docs/gallery
for style in starry_night the_scream shipwreck woman-with-hat-matisse; do
    ext=jpg
    out=$dir/tubingen_${style}_${size}.png
    cmd=("$nst" stylize --content $dir/inputs/tubingen.jpg --style $dir/inputs/$style.$ext
         --size "$size" -o "$out" --report-every 10)
    [ -n "$iters" ] && cmd+=(--iterations "$iters")
    echo "${cmd[*]}" | sed "s|$nst|nst|" > "${out%.png}.cmd"
    "${cmd[@]}"
    "$nst" score --content $dir/inputs/tubingen.jpg --style $dir/inputs/$style.$ext \
        --image "$out" --json > "${out%.png}.json"
done
