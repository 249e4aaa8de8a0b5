#!/usr/bin/env bash
# Makes docs/gallery/strength.png: Tübingen as the photo, then in the style of The Starry Night
# at --strength 0.25, 0.5, 0.75 and 0.9, side by side, each made by nst with the other defaults
# and scored by `nst score`. Run from the repository root after
# `cargo build --release -p nst-cli`, with Python 3 and Pillow for the strip (PYTHON names the interpreter):
#
#   bash docs/gallery/strength.sh [SIZE]      # default 128
#
# Each result goes to a temporary folder with its `nst score --json`; the script prints the
# measure of each.
set -euo pipefail
size=${1:-128}
nst=${NST:-target/release/nst}
dir=docs/gallery
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
content=$dir/inputs/tubingen.jpg
style=$dir/inputs/starry_night.jpg
for s in 0.25 0.5 0.75 0.9; do
    "$nst" stylize --content $content --style $style --size "$size" --strength $s \
        -o "$work/$s.png" --quiet
    "$nst" score --content $content --style $style --image "$work/$s.png" --json > "$work/$s.json"
done
"${PYTHON:-python3}" - "$work" "$content" "$dir/strength.png" <<'PY'
import json, sys
from PIL import Image
work, content, out = sys.argv[1:]
strengths = ["0.25", "0.5", "0.75", "0.9"]
tiles = [Image.open(f"{work}/{s}.png").convert("RGB") for s in strengths]
w, h = tiles[0].size
photo = Image.open(content).convert("RGB").resize((w, h), Image.BICUBIC)
gap = 4
strip = Image.new("RGB", (5 * w + 4 * gap, h), "white")
for i, t in enumerate([photo] + tiles):
    strip.paste(t, (i * (w + gap), 0))
strip.save(out)
for s in strengths:
    m = json.load(open(f"{work}/{s}.json"))
    print(f"strength {s}: style gap closed {m['style_gap_closed']:.3f}, "
          f"content distance {m['content_distance']:.3f}")
PY
