#!/usr/bin/env python3
"""What `nst bench` times, in JAX (XLA) on the CPU: one iteration is the VGG-19 forward to
relu5_1, nst's default loss (content at relu4_2, Gram style at relu1_1..relu5_1, all scale-free,
weights 0.5 / 1.0, total variation 0.2), its gradient with respect to the image, and one Adam
step with clamping to [0, 1], on noise images (a content and a style).

The network and the loss are tests/fixtures/classic.py's JAX port of nst (whose terms and
gradient the tests check against nst), with the real weights from weights/vgg19.safetensors.
The whole iteration is one jitted function; compilation and one warm-up run are not timed;
each timed iteration waits for its result (block_until_ready), as `nst bench` waits for the GPU.

Run from the repository root:
  /tmp/nst-venv/bin/python benches/reference/jax_vgg.py --sizes 64,128 --iterations 10 [--json]
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

import classic  # noqa: E402  (sets JAX to the CPU)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# nst's defaults (crates/nst-transfer/src/defaults.rs).
WEIGHTS = {"content": 0.5, "style": 1.0, "tv": 0.2}
LR = 0.02


def iteration_fn(params, content, style):
    """One jitted iteration: (x, m, v, t) -> (x, m, v, loss)."""
    terms = classic.nst_terms_fn(params, content, [style], [1.0])
    adam = classic.adam_runner()

    def loss(x):
        t = terms(x)
        return (WEIGHTS["content"] * sum(v for k, v in t.items() if k.startswith("content."))
                + WEIGHTS["style"] * sum(v for k, v in t.items() if k.startswith("style."))
                + WEIGHTS["tv"] * t["tv"])

    vg = jax.value_and_grad(loss)

    @jax.jit
    def step(x, m, v, t):
        value, g = vg(x)
        x, m, v = adam(x, m, v, g, t, jnp.float32(LR))
        return x, m, v, value

    return step


def bench(params, size, iterations, seed=1):
    rng = np.random.default_rng(seed)
    content = rng.uniform(0.0, 1.0, (3, size, size)).astype(np.float32)
    style = rng.uniform(0.0, 1.0, (3, size, size)).astype(np.float32)
    step = iteration_fn(params, content, style)
    x = jnp.asarray(content)
    m = v = jnp.zeros_like(x)
    t0 = time.perf_counter()
    x, m, v, value = jax.block_until_ready(step(x, m, v, jnp.float32(1)))
    compile_s = time.perf_counter() - t0
    ms = []
    for t in range(iterations):
        start = time.perf_counter()
        x, m, v, value = jax.block_until_ready(step(x, m, v, jnp.float32(t + 2)))
        ms.append((time.perf_counter() - start) * 1e3)
    assert np.isfinite(float(value)), value
    return {"width": size, "height": size, "ms": ms, "median_ms": statistics.median(ms),
            "compile_and_first_s": compile_s, "loss": float(value)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128,256", help="comma-separated image sides")
    ap.add_argument("--iterations", type=int, default=10, help="timed iterations per size")
    ap.add_argument("--weights", default=classic.WEIGHTS_PATH, help="vgg19.safetensors")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if not os.path.exists(a.weights):
        sys.exit(f"error: {a.weights} not found: run `nst weights fetch` or pass --weights")
    classic.WEIGHTS_PATH = a.weights
    params = classic.load_params()
    devices = jax.devices()
    runs = []
    for size in (int(s) for s in a.sizes.split(",")):
        r = bench(params, size, a.iterations)
        runs.append(r)
        if not a.json:
            print(f"jax {size}×{size}: median {r['median_ms']:.1f} ms per iteration "
                  f"({a.iterations} after compiling, {r['compile_and_first_s']:.1f} s)", flush=True)
    if a.json:
        print(json.dumps({"jax": jax.__version__, "device": str(devices[0]),
                          "cpus": os.cpu_count(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
