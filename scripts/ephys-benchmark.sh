#!/usr/bin/env bash
# Ephys figures of the README / BENCHMARKS.md, reproducible on a 2-core machine:
#   quality  60 s of a simulated 384-channel Neuropixels 1.0 recording, unet-ephys-d3-w16 trained
#            for 3000 steps of 32 samples (~15 min on 2 cores), the last 2 s (held out from
#            training) denoised and scored against the ground truth (~2.5 min);
#   memory   peak RSS of `denoise` on 60 s vs 300 s of a 32-channel probe and on 2 s vs 10 s of
#            384 channels (a tiny network: what is measured is the streaming, not the network).
# Usage: scripts/ephys-benchmark.sh [quality|memory|all] [WORKDIR]  (needs ~16 GB free disk for memory)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
work="${2:-${TMPDIR:-/tmp}/deepinterp-ephys-benchmark}"
mkdir -p "$work"
# DEEPINTERP_BIN runs another build (e.g. a copy kept while the tree changes) without building.
if [ -n "${DEEPINTERP_BIN:-}" ]; then
  bin="$DEEPINTERP_BIN"
else
  cargo build --release -q -p deepinterp-cli
  bin="$PWD/target/release/deepinterp"
fi

if [ "$which" = quality ] || [ "$which" = all ]; then
  "$bin" simulate ephys -o "$work/noisy.bin" --clean "$work/clean.bin" --duration 60 --seed 3
  /usr/bin/time -f "train: %e s wall, %U+%S CPU-s, peak %M KiB" \
    "$bin" train "$work/noisy.bin" -o "$work/model.dimodel" --steps 3000 --steps-per-epoch 100 --seed 1
  "$bin" denoise "$work/noisy.bin" --model "$work/model.dimodel" -o "$work/denoised.bin" --start-frame 1740000
  "$bin" evaluate --noisy "$work/noisy.bin" --denoised "$work/denoised.bin" --clean "$work/clean.bin" \
    --offset 1740000 --report "$work/report.json"
  # The ceiling of the RMS-noise measure: the ground truth itself scored as the "denoised" signal.
  "$bin" evaluate --noisy "$work/noisy.bin" --denoised "$work/clean.bin" | head -1
fi

if [ "$which" = memory ] || [ "$which" = all ]; then
  for spec in "32 60" "32 300" "384 2" "384 10"; do
    set -- $spec
    rec="$work/mem-$1ch-$2s"
    "$bin" simulate ephys -o "$rec.bin" --clean "$rec.clean.bin" --channels "$1" --duration "$2" --seed 4 2>/dev/null
    rm -f "$rec.clean.bin" "$rec.clean.meta"
    if [ ! -f "$work/tiny-$1.dimodel" ]; then
      "$bin" train "$rec.bin" -o "$work/tiny-$1.dimodel" --arch unet-ephys-d1-w4 --steps 4 \
        --steps-per-epoch 2 --batch-size 4 --validation-samples 4 2>/dev/null
    fi
    echo "== $1 channels, $2 s"
    "$bin" denoise "$rec.bin" --model "$work/tiny-$1.dimodel" -o "$rec.denoised.bin" 2>&1 | tail -1
    rm -f "$rec.bin" "$rec.meta" "$rec.denoised.bin" "$rec.denoised.meta"
  done
fi
