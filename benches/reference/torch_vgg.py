#!/usr/bin/env python3
"""What `nst bench` times, in PyTorch: the VGG-19 forward to relu5_1 with nst's weights
(weights/vgg19.safetensors, caffe convention: BGR, 0..255, minus the mean pixel), nst's
default loss (content at relu4_2, Gram style at relu1_1..relu5_1, every layer divided by the
mean square of its target, weights 0.5 / 1.0, total variation 0.2 as the mean absolute
neighbor difference), its gradient with respect to the image, and one Adam step (lr 0.02)
clamped to [0, 1], on noise images, at each size. No torchvision: the layers are written
here. Runs with TF32 off (fp32 as nst computes it) and on, each labelled.

Timing: cudnn.benchmark on, a few warm-up iterations, then each iteration between CUDA events
(the median is reported), and the peak memory PyTorch's allocator held. Without CUDA it runs
on the CPU (wall clock), which is how it is tested on a machine without a GPU.

  python3 benches/reference/torch_vgg.py [--sizes 512,1024,2048] [--iterations 20] \
      [--weights weights/vgg19.safetensors] [--device cuda|cpu] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from vgg_layers import LAYERS  # noqa: E402

STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT = ["relu4_2"]
DEEPEST = max(LAYERS.index(t) for t in STYLE + CONTENT)
MEAN_BGR = [103.939, 116.779, 123.68]
# nst's defaults (crates/nst-transfer/src/defaults.rs).
W_CONTENT, W_STYLE, W_TV, LR = 0.5, 1.0, 0.2, 0.02


def load_params(path, device):
    raw = load_file(path)
    params = {}
    for name in LAYERS[:DEEPEST + 1]:
        if name.startswith("conv"):
            b, m = name[4:].split("_")
            w = torch.from_numpy(raw[f"block{b}_conv{m}.weight"]).to(device)
            bias = torch.from_numpy(raw[f"block{b}_conv{m}.bias"]).to(device)
            params[name] = (w, bias)
    return params


def features(x, params, taps):
    """Activations at `taps` of an RGB image x in [0, 1], shape (1, 3, H, W)."""
    mean = torch.tensor(MEAN_BGR, device=x.device).view(1, 3, 1, 1)
    h = 255.0 * x.flip(1) - mean
    out = {}
    for name in LAYERS[:DEEPEST + 1]:
        if name.startswith("conv"):
            w, b = params[name]
            h = F.conv2d(h, w, b, padding=1)
        elif name.startswith("relu"):
            h = F.relu(h)
        else:
            h = F.max_pool2d(h, 2)  # floor mode, as nst
        if name in taps:
            out[name] = h
    return out


def gram(f):
    c = f.shape[1]
    m = f.reshape(c, -1)
    return m @ m.t() / m.shape[1]


def iteration_fn(params, content, style):
    taps = set(STYLE + CONTENT)
    with torch.no_grad():
        fc = features(content, params, taps)
        fs = features(style, params, taps)
        c_target = {l: fc[l] for l in CONTENT}
        s_target = {l: gram(fs[l]) for l in STYLE}
        c_norm = {l: c_target[l].pow(2).mean() for l in CONTENT}
        s_norm = {l: s_target[l].pow(2).mean() for l in STYLE}

    def loss(x):
        f = features(x, params, taps)
        c = sum((f[l] - c_target[l]).pow(2).mean() / c_norm[l] for l in CONTENT)
        s = sum((gram(f[l]) - s_target[l]).pow(2).mean() / s_norm[l] for l in STYLE)
        tv = ((x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
              + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean())
        return W_CONTENT * c + W_STYLE * s + W_TV * tv

    return loss


def bench(params, size, iterations, device, warmup):
    g = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, size, size, generator=g).to(device)
    style = torch.rand(1, 3, size, size, generator=g).to(device)
    loss_fn = iteration_fn(params, content, style)
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        value = loss_fn(x)
        value.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
        return value

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    ms = []
    for _ in range(iterations):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            value = step()
            end.record()
            end.synchronize()
            ms.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            value = step()
            ms.append((time.perf_counter() - t0) * 1e3)
    v = float(value.detach())
    if not np.isfinite(v):
        raise SystemExit(f"error: the loss at {size}² is {v}")
    out = {"width": size, "height": size, "ms": ms, "median_ms": statistics.median(ms),
           "timer": "CUDA events" if cuda else "wall clock", "loss": v}
    if cuda:
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--weights", default=os.environ.get(
        "NST_WEIGHTS", os.path.join(ROOT, "weights", "vgg19.safetensors")))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.weights):
        sys.exit(f"error: {a.weights} not found: run `nst weights fetch` or pass --weights")
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    params = load_params(a.weights, device)
    report = {"torch": torch.__version__, "device": str(device), "runs": []}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        modes = [("tf32 off", False), ("tf32 on", True)]
    else:
        report["cpu_threads"] = torch.get_num_threads()
        modes = [("fp32 (cpu)", False)]
    for label, tf32 in modes:
        set_tf32(tf32)
        for size in (int(s) for s in a.sizes.split(",")):
            try:
                r = bench(params, size, a.iterations, device, a.warmup)
            except torch.cuda.OutOfMemoryError as e:
                r = {"width": size, "height": size, "error": f"out of memory: {e}".split("\n")[0]}
                torch.cuda.empty_cache()
            r["mode"] = label
            report["runs"].append(r)
            if not a.json:
                if "error" in r:
                    print(f"torch {label} {size}×{size}: {r['error']}", flush=True)
                else:
                    mem = r.get("peak_memory_bytes")
                    mem = f", peak {mem / 2**30:.2f} GiB" if mem else ""
                    print(f"torch {label} {size}×{size}: median {r['median_ms']:.2f} ms per "
                          f"iteration ({r['timer']}{mem})", flush=True)
    if a.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
