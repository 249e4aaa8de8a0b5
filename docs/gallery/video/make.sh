#!/usr/bin/env bash
# Makes the video gallery: the test clip (tests/fixtures/clip, 12 frames of Tübingen seen by a
# camera that pans and zooms) in the style of *The Starry Night*, frame by frame (`nst stylize`
# on each frame) and with `nst video` (the temporal mode), then measures both: the warping
# error (`nst flicker`) and each frame's style gap closed (`nst score`). Run from the repository
# root after `cargo build --release -p nst-cli`:
#
#   bash docs/gallery/video/make.sh [SIZE] [TEMPORAL_WEIGHT]      # defaults: 96 and nst's
#
# The frames go to /tmp/nst-video/{one_by_one,temporal}; the table to stdout; the side-by-side
# animation to docs/gallery/video/clip_<SIZE>.gif (needs Pillow: python3 side_by_side.py).
set -euo pipefail
size=${1:-96}
weight=${2:-}
nst=${NST:-target/release/nst}
clip=tests/fixtures/clip
style=docs/gallery/inputs/starry_night.jpg
out=/tmp/nst-video
mkdir -p $out/one_by_one
for f in $clip/frame_*.png; do
    name=$(basename "$f")
    [ -f "$out/one_by_one/$name" ] || \
        "$nst" stylize --content "$f" --style $style --size "$size" -o "$out/one_by_one/$name" --quiet
done
flags=()
[ -n "$weight" ] && flags+=(--temporal-weight "$weight")
"$nst" video --content $clip --style $style --size "$size" -o $out/temporal "${flags[@]}"
gap() {  # the mean style gap closed of a folder of frames
    local sum=0 n=0
    for f in $clip/frame_*.png; do
        n=$((n + 1))
        img=$(ls "$1" | grep -E '^frame_.*\.png$' | sed -n "${n}p")
        g=$("$nst" score --content "$f" --style $style --image "$1/$img" --json | \
            python3 -c 'import json,sys; print(json.load(sys.stdin)["style_gap_closed"])')
        sum=$(python3 -c "print($sum + $g)")
    done
    python3 -c "print(f'{$sum / $n:.3f}')"
}
echo "| mode | warping error | mean style gap closed |"
echo "| --- | --- | --- |"
for mode in one_by_one temporal; do
    e=$("$nst" flicker --content $clip --frames $out/$mode --json | \
        python3 -c 'import json,sys; print("%.5f" % json.load(sys.stdin)["warping_error"])')
    echo "| $mode | $e | $(gap $out/$mode) |"
done
python3 docs/gallery/video/side_by_side.py $out/one_by_one $out/temporal docs/gallery/video/clip_"$size".gif
