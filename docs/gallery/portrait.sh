#!/usr/bin/env bash
# Makes the gallery's portrait: a cat's face (docs/gallery/inputs/chelsea.png) in the style of
# Matisse's *Woman with a Hat*, the face held near the photo by a content mask of strengths
# (0.2 on the face, 0.7 elsewhere), beside the same at one strength everywhere (0.2, and 0.7),
# then measures the face and the rest of each (`nst score --mask`). Run from the repository
# root after `cargo build --release -p nst-cli`:
#
#   bash docs/gallery/portrait.sh [SIZE]      # default 512; 192 on Mesa's software driver
#
# The masks are docs/gallery/masks/chelsea_{strength,face,rest}.png (made by make_masks.py
# there). Each result goes to docs/gallery/portrait/chelsea_<how>_<SIZE>.png with its
# `nst score --json` (.json) and the command that made it (.cmd) beside it.
set -euo pipefail
size=${1:-512}
nst=${NST:-target/release/nst}
dir=docs/gallery
style=$dir/inputs/woman-with-hat-matisse.jpg
masks=(--mask $dir/masks/chelsea_face.png --mask $dir/masks/chelsea_rest.png)
mkdir -p $dir/portrait
for how in strength_0.2 strength_0.7 face_0.2_rest_0.7; do
    case $how in
        strength_*) flags=(--strength "${how#strength_}") ;;
        *) flags=(--content-mask $dir/masks/chelsea_strength.png) ;;
    esac
    out=$dir/portrait/chelsea_${how}_${size}.png
    cmd=("$nst" stylize --content $dir/inputs/chelsea.png --style "$style" "${flags[@]}"
         --size "$size" -o "$out" --report-every 20)
    echo "${cmd[*]}" | sed "s|$nst|nst|" > "${out%.png}.cmd"
    "${cmd[@]}"
    "$nst" score --content $dir/inputs/chelsea.png --style "$style" "${flags[@]}" \
        --image "$out" "${masks[@]}" --json > "${out%.png}.json"
done
