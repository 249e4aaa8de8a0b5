#!/usr/bin/env python3
"""nst against XLA on the same machine: runs `nst bench` and benches/reference/jax_vgg.py (the
same forward, loss, backward and Adam step, on the CPU) at each size, one after the other, and
prints the median ms per iteration of each and their ratio nst / XLA.

Run from the repository root, after `cargo build --release -p nst-cli`:
  WGPU_BACKEND=vulkan /tmp/nst-venv/bin/python benches/reference/compare.py \
      [--sizes 64,128,256] [--iterations 5] [--nst target/release/nst] [--json FILE]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--iterations", type=int, default=5, help="timed iterations of each, per size")
    ap.add_argument("--nst", default=os.path.join(ROOT, "target", "release", "nst"))
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    a = ap.parse_args()
    if not os.path.exists(a.nst):
        sys.exit(f"error: {a.nst} not found: run `cargo build --release -p nst-cli` or pass --nst")
    rows = []
    print(f"{'size':>9} {'nst ms':>10} {'XLA ms':>9} {'nst / XLA':>10}", flush=True)
    for size in (int(s) for s in a.sizes.split(",")):
        nst = run_json([a.nst, "bench", "--size", str(size), "--iterations",
                        str(a.iterations), "--json"])
        jx = run_json([sys.executable, os.path.join(HERE, "jax_vgg.py"), "--sizes", str(size),
                       "--iterations", str(a.iterations), "--json"])
        x = jx["runs"][0]
        ratio = nst["median_ms"] / x["median_ms"]
        rows.append({"size": size, "nst": nst, "xla": x, "ratio": ratio})
        print(f"{size:>4}×{size:<4} {nst['median_ms']:>10.1f} {x['median_ms']:>9.1f} "
              f"{ratio:>9.1f}×", flush=True)
    adapter = f"{nst['adapter']} ({nst['backend']}, driver {nst['driver']})"
    print(f"nst: {adapter}; XLA: jax {jx['jax']} on {jx['device']}, {jx['cpus']} CPUs")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                       "cpus": os.cpu_count(), "adapter": adapter, "jax": jx["jax"],
                       "iterations": a.iterations, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
