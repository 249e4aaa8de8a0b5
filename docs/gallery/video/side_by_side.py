#!/usr/bin/env python3
"""The README's animation: the test clip, frame by frame stylized and `nst video`'s temporal
mode, side by side, each frame enlarged twice, as an animated GIF at 6 frames per second.

    python3 docs/gallery/video/side_by_side.py ONE_BY_ONE_DIR TEMPORAL_DIR OUT.gif    # Pillow
"""

import os
import sys

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP = os.path.join(HERE, "..", "..", "..", "tests", "fixtures", "clip")


def frames(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.startswith("frame_") and f.endswith(".png"))


def main():
    one, temporal, out = sys.argv[1:4]
    columns = [frames(CLIP), frames(one), frames(temporal)]
    labels = ["the clip", "frame by frame", "nst video"]
    shots = []
    for row in zip(*columns):
        ims = [Image.open(p).convert("RGB") for p in row]
        w, h = ims[0].size
        sheet = Image.new("RGB", (3 * 2 * w + 8, 2 * h + 14), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (im, label) in enumerate(zip(ims, labels)):
            x = k * (2 * w + 4)
            sheet.paste(im.resize((2 * w, 2 * h), Image.NEAREST), (x, 14))
            draw.text((x + 2, 1), label, fill="black")
        shots.append(sheet)
    shots[0].save(out, save_all=True, append_images=shots[1:], duration=167, loop=0)
    print(f"{len(shots)} frames to {out}")


if __name__ == "__main__":
    main()
