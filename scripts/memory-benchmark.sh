#!/usr/bin/env bash
# Peak memory of `deepinterp denoise` on 512x512 movies of 1,000 and 4,000 frames: streaming
# keeps it level. A small network keeps the run short; the network's activations depend on the
# frame size and batch, not on the recording's length.
# Outputs are TIFF: float32 HDF5 output is gzip-compressed, slow for a small network.
# Usage: scripts/memory-benchmark.sh [WORK_DIR]   (needs ~12 GB of disk; reuses inputs there)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/deepinterp-memory}"
mkdir -p "$work"
cargo build --release -q
bin=target/release/deepinterp
for frames in 1000 4000; do
  [ -f "$work/noisy-$frames.h5" ] || "$bin" simulate 2p -o "$work/noisy-$frames.h5" --clean "$work/clean-$frames.h5" \
    --frames "$frames" --height 512 --width 512 --seed 1 2>/dev/null
done
[ -f "$work/model.dimodel" ] || "$bin" train "$work/noisy-1000.h5" -o "$work/model.dimodel" --arch unet-d2-w8 \
  --pre-frames 5 --post-frames 5 --steps 2 --steps-per-epoch 2 --batch-size 2 2>/dev/null
for frames in 1000 4000; do
  "$bin" denoise "$work/noisy-$frames.h5" -o "$work/denoised-$frames.tif" --model "$work/model.dimodel"
done
