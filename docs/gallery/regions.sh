#!/usr/bin/env bash
# Makes the gallery's region pictures: Tübingen with the sky in one painting's style and the
# rest in another's, both ways round, with nst's defaults, then measures each region against
# both styles (`nst score --mask`). Run from the repository root after `cargo build --release
# -p nst-cli`:
#
#   bash docs/gallery/regions.sh [SIZE]      # default 512; 192 on Mesa's software driver
#
# The masks are docs/gallery/masks/tubingen_{sky,rest}.png (made by make_masks.py there). Each
# result goes to docs/gallery/regions/tubingen_sky_<style>_rest_<style>_<SIZE>.png with its
# `nst score --json` (.json) and the command that made it (.cmd) beside it.
set -euo pipefail
size=${1:-512}
nst=${NST:-target/release/nst}
dir=docs/gallery
masks=(--mask $dir/masks/tubingen_sky.png --mask $dir/masks/tubingen_rest.png)
mkdir -p $dir/regions
for pair in "starry_night the_scream" "the_scream starry_night"; do
    set -- $pair
    out=$dir/regions/tubingen_sky_$1_rest_$2_${size}.png
    styles=(--style $dir/inputs/$1.jpg --style $dir/inputs/$2.jpg)
    cmd=("$nst" stylize --content $dir/inputs/tubingen.jpg
         --style $dir/inputs/$1.jpg --style-mask $dir/masks/tubingen_sky.png
         --style $dir/inputs/$2.jpg --style-mask $dir/masks/tubingen_rest.png
         --size "$size" -o "$out" --report-every 20)
    echo "${cmd[*]}" | sed "s|$nst|nst|" > "${out%.png}.cmd"
    "${cmd[@]}"
    "$nst" score --content $dir/inputs/tubingen.jpg "${styles[@]}" --image "$out" \
        "${masks[@]}" --json > "${out%.png}.json"
done
