#!/usr/bin/env python3
"""Makes the gallery's region masks of Tübingen (docs/gallery/inputs/tubingen.jpg): the sky, and
the rest (the houses, the river and the trees).

The sky is the pixels that are clearly blue (blue at least 25 above red and 10 above green, and
brighter than 110) and connected to the top edge, with small holes filled; its edge is softened
by a Gaussian blur of 2 px. The rest is its complement. Both are written at the photo's size
as 8-bit greyscale PNGs (white: the region).

    python3 docs/gallery/masks/make_masks.py    # needs numpy, scipy and Pillow
"""

import os

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "..", "inputs", "tubingen.jpg")

rgb = np.asarray(Image.open(PHOTO).convert("RGB"), dtype=np.int32)
r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
blue = (b - r >= 25) & (b - g >= 10) & (b > 110)
# The components of blue pixels that touch the top edge: the sky, not blue things below.
labels, _ = ndimage.label(blue)
top = set(np.unique(labels[0])) - {0}
sky = np.isin(labels, list(top))
sky = ndimage.binary_closing(sky, iterations=2)
sky = ndimage.binary_fill_holes(sky)
soft = Image.fromarray((sky * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
soft.save(os.path.join(HERE, "tubingen_sky.png"), optimize=True)
Image.fromarray(255 - np.asarray(soft)).save(os.path.join(HERE, "tubingen_rest.png"), optimize=True)
print(f"sky: {sky.mean():.1%} of the photo")

# The portrait (docs/gallery/inputs/chelsea.png, a cat's face): a content mask of strengths,
# the face (an ellipse over the eyes, nose and mouth, centred at (245, 165) with radii 150 × 115,
# its edge softened by a Gaussian blur of 6 px) at 0.2, the rest at 0.7. The face and the rest
# are also written as region masks, for `nst score --mask`.
PORTRAIT = os.path.join(HERE, "..", "inputs", "chelsea.png")
w, h = Image.open(PORTRAIT).size
yy, xx = np.mgrid[0:h, 0:w]
face = ((xx - 245) / 150.0) ** 2 + ((yy - 165) / 115.0) ** 2 <= 1.0
face = Image.fromarray((face * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6))
f = np.asarray(face, dtype=np.float64) / 255.0
strength = 0.2 * f + 0.7 * (1.0 - f)
Image.fromarray(np.round(strength * 255).astype(np.uint8)).save(
    os.path.join(HERE, "chelsea_strength.png"), optimize=True)
face.save(os.path.join(HERE, "chelsea_face.png"), optimize=True)
Image.fromarray(255 - np.asarray(face)).save(os.path.join(HERE, "chelsea_rest.png"), optimize=True)
print(f"face: {f.mean():.1%} of the portrait")
