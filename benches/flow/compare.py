#!/usr/bin/env python3
"""nst's optical flow (TV-L1 on the GPU, `nst flow`) beside OpenCV's DIS and Farnebäck on the
CPU, on synthetic frame pairs with known motion: Tübingen (docs/gallery/inputs) panned,
zoomed and rotated about its centre, with a checkered patch moving on its own in front of it.
The frames are made here with scipy (independently of nst's test generator), written as 8-bit
PNGs, and given to every method alike; the endpoint error (EPE, pixels) is over the pixels the
true flow holds for (seen in both frames, inside the second).

    python3 benches/flow/compare.py [--size 256] [--sweep]    # after cargo build --release -p nst-cli

Needs numpy, scipy, Pillow, safetensors and opencv-python-headless. `--sweep` also times nst at
other warps and steps per warp (what docs/video.md chose the defaults by).
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import cv2
import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from scipy import ndimage

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PHOTO = os.path.join(ROOT, "docs", "gallery", "inputs", "tubingen.jpg")
NST = os.environ.get("NST", os.path.join(ROOT, "target", "release", "nst"))

MOTIONS = {  # shift (px), zoom, degrees, the patch's own shift (px)
    "pan": ((2.5, -1.5), 1.0, 0.0, (3, 2)),
    "zoom": ((0.0, 0.0), 1.04, 0.0, (-2, 1)),
    "rotation": ((0.0, 0.0), 1.0, 2.0, (2, -2)),
}


def make_pair(photo, motion, side, corner):
    (sx, sy), zoom, deg, (px, py) = motion
    h, w = photo.shape[1:]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    # Where each pixel of A lands in B, and where each pixel of B came from in A.
    tx = cx + zoom * (c * (xs - cx) - s * (ys - cy)) + sx
    ty = cy + zoom * (s * (xs - cx) + c * (ys - cy)) + sy
    dx, dy = (xs - sx - cx) / zoom, (ys - sy - cy) / zoom
    bx, by = cx + c * dx + s * dy, cy - s * dx + c * dy
    a = photo.copy()
    b = np.stack([ndimage.map_coordinates(p, [by, bx], order=1, mode="nearest") for p in photo])
    i, j = np.mgrid[0:side, 0:side]
    patch = np.stack([0.15 + 0.5 * (((i // 3) + (j // 3)) % 2)
                      + 0.3 * ((i + 2 * j + 5 * k) % side) / side for k in range(3)])
    x0, y0 = corner
    a[:, y0:y0 + side, x0:x0 + side] = patch
    b[:, y0 + py:y0 + py + side, x0 + px:x0 + px + side] = patch
    in_a = np.zeros((h, w), bool)
    in_a[y0:y0 + side, x0:x0 + side] = True
    in_b = np.zeros((h, w), bool)
    in_b[y0 + py:y0 + py + side, x0 + px:x0 + px + side] = True
    fx = np.where(in_a, xs + px, tx)
    fy = np.where(in_a, ys + py, ty)
    cell_x = np.clip(np.round(fx), 0, w - 1).astype(int)
    cell_y = np.clip(np.round(fy), 0, h - 1).astype(int)
    seen = in_a | ~in_b[cell_y, cell_x]
    within = (fx >= 1) & (fx <= w - 2) & (fy >= 1) & (fy <= h - 2)
    return a, b, np.stack([fx - xs, fy - ys]), seen & within


def png(path, img):
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)).save(path)


def epe(flow, truth, valid):
    return float(np.sqrt(((flow - truth) ** 2).sum(0))[valid].mean())


def nst_flow(a_path, b_path, out, warps=None, iterations=None):
    cmd = [NST, "flow", "--from", a_path, "--to", b_path, "-o", out, "--json"]
    if warps:
        cmd += ["--flow-warps", str(warps), "--flow-iterations", str(iterations)]
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return load_file(out)["flow"].astype(np.float64), r["ms"]


def timed(f, runs=3):
    best, out = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        out = f()
        best = min(best, (time.perf_counter() - t) * 1e3)
    return out, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="width; the height is 3/4 of it")
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()
    w, h = args.size, args.size * 3 // 4
    photo = np.asarray(Image.open(PHOTO).convert("RGB").resize((w, h), Image.LANCZOS),
                       np.float64).transpose(2, 0, 1) / 255
    side = max(12, w // 8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, motion in MOTIONS.items():
            a, b, truth, valid = make_pair(photo, motion, side, (w * 5 // 16, h * 5 // 16))
            ap_, bp = os.path.join(tmp, "a.png"), os.path.join(tmp, "b.png")
            png(ap_, a)
            png(bp, b)
            ga = cv2.cvtColor(cv2.imread(ap_), cv2.COLOR_BGR2GRAY)
            gb = cv2.cvtColor(cv2.imread(bp), cv2.COLOR_BGR2GRAY)
            results = {"no motion (zero flow)": (np.zeros_like(truth), 0.0)}
            f, ms = nst_flow(ap_, bp, os.path.join(tmp, "f.safetensors"))
            results["nst TV-L1 (defaults, GPU)"] = (f, ms)
            if args.sweep:
                for warps, its in [(1, 30), (3, 10), (3, 30), (5, 10), (5, 50), (10, 30)]:
                    f, ms = nst_flow(ap_, bp, os.path.join(tmp, "f.safetensors"), warps, its)
                    results[f"nst TV-L1 {warps} warps × {its} steps"] = (f, ms)
            for preset, pname in [(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "ultrafast"),
                                  (cv2.DISOPTICAL_FLOW_PRESET_FAST, "fast"),
                                  (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "medium")]:
                dis = cv2.DISOpticalFlow_create(preset)
                flow, ms = timed(lambda: dis.calc(ga, gb, None))
                results[f"OpenCV DIS {pname} (CPU)"] = (flow.transpose(2, 0, 1), ms)
            flow, ms = timed(lambda: cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 5, 15, 5, 7, 1.5, 0))
            results["OpenCV Farnebäck (CPU)"] = (flow.transpose(2, 0, 1), ms)
            for method, (flow, ms) in results.items():
                rows.append((name, method, epe(flow, truth, valid), ms))
    print(f"{w}×{h}, OpenCV {cv2.__version__}, {os.cpu_count()} CPUs")
    print("| motion | method | EPE (px) | ms |")
    print("| --- | --- | --- | --- |")
    for name, method, e, ms in rows:
        print(f"| {name} | {method} | {e:.3f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
