#!/usr/bin/env bash
# fMRI figures of the README / BENCHMARKS.md, reproducible on a 2-core machine:
#   quality  a simulated 64x64x32x200 run (tSNR 30), the paper's fmri_unet_denoiser trained with
#            the defaults for a 15-minute budget, denoised in fast mode (timed) and scored
#            against the ground truth;
#   modes    parity vs fast mode with the same trained model on a 32x32x16x60 run: quality of
#            both and their time (parity is one network pass per voxel and time point);
#   parity   parity-mode time on 10 volumes of 64x64x32 (every volume costs the same, so a
#            200-volume run takes 20x as long).
# Usage: scripts/fmri-benchmark.sh [quality|modes|parity|all] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
work="${2:-${TMPDIR:-/tmp}/deepinterp-fmri-benchmark}"
mkdir -p "$work"
# DEEPINTERP_BIN runs another build (e.g. a copy kept while the tree changes) without building.
if [ -n "${DEEPINTERP_BIN:-}" ]; then
  bin="$DEEPINTERP_BIN"
else
  cargo build --release -q -p deepinterp-cli
  bin="$PWD/target/release/deepinterp"
fi
timed() { /usr/bin/time -f "$1: %e s wall, %U+%S CPU-s, peak %M KiB" "${@:2}"; }

if [ "$which" = quality ] || [ "$which" = all ]; then
  "$bin" simulate fmri -o "$work/noisy.nii.gz" --clean "$work/clean.nii.gz" --shape 64,64,32,200 --seed 7
  timed train "$bin" train "$work/noisy.nii.gz" -o "$work/model.dimodel" --steps 100000 \
    --max-minutes 15 --steps-per-epoch 250 --seed 1
  timed "denoise fast" "$bin" denoise "$work/noisy.nii.gz" --model "$work/model.dimodel" \
    -o "$work/denoised.nii.gz"
  "$bin" evaluate --noisy "$work/noisy.nii.gz" --denoised "$work/denoised.nii.gz" \
    --clean "$work/clean.nii.gz" --report "$work/report.json"
fi

if [ "$which" = modes ] || [ "$which" = all ]; then
  "$bin" simulate fmri -o "$work/small.nii.gz" --clean "$work/small-clean.nii.gz" --shape 32,32,16,60 --seed 8
  model="$work/model.dimodel"
  [ -f "$model" ] || "$bin" train "$work/small.nii.gz" -o "$model" --steps 1500 --seed 1
  for mode in fast parity; do
    timed "denoise $mode" "$bin" denoise "$work/small.nii.gz" --model "$model" --mode "$mode" \
      -o "$work/small-$mode.nii.gz"
    "$bin" evaluate --noisy "$work/small.nii.gz" --denoised "$work/small-$mode.nii.gz" \
      --clean "$work/small-clean.nii.gz" --report "$work/small-$mode.json"
  done
fi

if [ "$which" = parity ] || [ "$which" = all ]; then
  "$bin" simulate fmri -o "$work/ten.nii.gz" --clean "$work/ten-clean.nii.gz" --shape 64,64,32,10 --seed 9
  model="$work/model.dimodel"
  [ -f "$model" ] || "$bin" train "$work/ten.nii.gz" -o "$model" --steps 20 --seed 1
  timed "denoise parity, 10 volumes" "$bin" denoise "$work/ten.nii.gz" --model "$model" --mode parity \
    -o "$work/ten-parity.nii.gz"
  timed "denoise fast, 10 volumes" "$bin" denoise "$work/ten.nii.gz" --model "$model" \
    -o "$work/ten-fast.nii.gz"
fi
