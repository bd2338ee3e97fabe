#!/usr/bin/env bash
# Quality with default settings, as a new user gets it: simulate a recording with ground truth,
# `train` with nothing but a time cap, `denoise` with defaults, `evaluate` against the truth.
# The figures of BENCHMARKS.md ("Quality by default"). Run one mode at a time on an otherwise
# idle machine: the cap is wall time, so anything else running takes steps away.
#   2p     1,000 frames of 128×128 at 4 photons per unit, 8-minute cap
#   ephys  4 s of 384 Neuropixels 1.0 channels, 12 µV RMS noise, 8-minute cap
#   fmri   a 64×64×32×200 run at tSNR 40, 6-minute cap
#   loss   ephys and fMRI trained for a fixed number of steps with L1 and with L2 (the
#          two-photon table is scripts/loss-benchmark.sh)
# Usage: scripts/quality-benchmark.sh 2p|ephys|fmri|loss [WORKDIR]
#   DEEPINTERP_BIN=<binary> uses that binary instead of building one.
#   TRAIN_ARGS="--arch unet-d4-w32" adds flags to the 2p, ephys and fmri trainings (the
#   defaults sweep of BENCHMARKS.md); give each its own WORKDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:?usage: scripts/quality-benchmark.sh 2p|ephys|fmri|loss [WORKDIR]}"
work="${2:-${TMPDIR:-/tmp}/deepinterp-quality-benchmark}/$which"
mkdir -p "$work"
if [ -n "${DEEPINTERP_BIN:-}" ]; then
  bin="$DEEPINTERP_BIN"
else
  cargo build --release -q -p deepinterp-cli
  bin="$PWD/target/release/deepinterp"
fi
timed() { /usr/bin/time -f "$1: %e s wall, %U+%S CPU-s, peak %M KiB" "${@:2}"; }
fresh() { rm -rf "$work/$1" "$work/$1".*; }

# train NAME INPUT [FLAGS...]: a model NAME.dimodel from INPUT; its closing lines.
train() {
  local name="$1" input="$2"
  shift 2
  fresh "$name.dimodel"
  timed "train $name" "$bin" train "$input" -o "$work/$name.dimodel" "$@" 2>&1 |
    grep -E "steps:|validation loss .* before|^train "
}

case "$which" in
2p)
  "$bin" simulate 2p -o "$work/noisy.h5" --clean "$work/clean.h5" --frames 1000 --height 128 \
    --width 128 --photons 4 --seed 21 2>/dev/null
  train model "$work/noisy.h5" --max-minutes 8 ${TRAIN_ARGS:-}
  fresh denoised.h5
  timed denoise "$bin" denoise "$work/noisy.h5" --model "$work/model.dimodel" -o "$work/denoised.h5" 2>&1 | tail -1
  "$bin" evaluate --noisy "$work/noisy.h5" --denoised "$work/denoised.h5" --clean "$work/clean.h5" \
    --report "$work/report.json"
  ;;
ephys)
  "$bin" simulate ephys -o "$work/noisy.bin" --clean "$work/clean.bin" --duration 4 --noise-uv 12 \
    --seed 22 2>/dev/null
  train model "$work/noisy.bin" --max-minutes 8 ${TRAIN_ARGS:-}
  fresh denoised.bin
  timed denoise "$bin" denoise "$work/noisy.bin" --model "$work/model.dimodel" -o "$work/denoised.bin" 2>&1 | tail -1
  "$bin" evaluate --noisy "$work/noisy.bin" --denoised "$work/denoised.bin" --clean "$work/clean.bin" \
    --report "$work/report.json"
  echo "the clean recording scored as if denoised (the noise-floor reference):"
  "$bin" evaluate --noisy "$work/noisy.bin" --denoised "$work/clean.bin" | head -1
  ;;
fmri)
  "$bin" simulate fmri -o "$work/noisy.nii.gz" --clean "$work/clean.nii.gz" --tsnr 40 --seed 23 2>/dev/null
  train model "$work/noisy.nii.gz" --max-minutes 6 ${TRAIN_ARGS:-}
  fresh denoised.nii.gz
  timed denoise "$bin" denoise "$work/noisy.nii.gz" --model "$work/model.dimodel" -o "$work/denoised.nii.gz" 2>&1 | tail -1
  "$bin" evaluate --noisy "$work/noisy.nii.gz" --denoised "$work/denoised.nii.gz" \
    --clean "$work/clean.nii.gz" --report "$work/report.json"
  ;;
loss)
  steps="${STEPS:-1500}"
  "$bin" simulate ephys -o "$work/ephys.bin" --clean "$work/ephys-clean.bin" --duration 4 \
    --noise-uv 12 --seed 22 2>/dev/null
  "$bin" simulate fmri -o "$work/fmri.nii.gz" --clean "$work/fmri-clean.nii.gz" --tsnr 40 \
    --seed 23 2>/dev/null
  for loss in l1 l2; do
    echo "== ephys, $loss, $steps steps"
    train "ephys-$loss" "$work/ephys.bin" --loss "$loss" --steps "$steps" --seed 1
    fresh "ephys-$loss.bin"
    "$bin" denoise "$work/ephys.bin" --model "$work/ephys-$loss.dimodel" -o "$work/ephys-$loss.bin" 2>/dev/null
    "$bin" evaluate --noisy "$work/ephys.bin" --denoised "$work/ephys-$loss.bin" --clean "$work/ephys-clean.bin"
    echo "== fmri, $loss, $steps steps"
    train "fmri-$loss" "$work/fmri.nii.gz" --loss "$loss" --steps "$steps" --seed 1
    fresh "fmri-$loss.nii.gz"
    "$bin" denoise "$work/fmri.nii.gz" --model "$work/fmri-$loss.dimodel" -o "$work/fmri-$loss.nii.gz" 2>/dev/null
    "$bin" evaluate --noisy "$work/fmri.nii.gz" --denoised "$work/fmri-$loss.nii.gz" --clean "$work/fmri-clean.nii.gz"
  done
  ;;
*)
  echo "unknown mode $which" >&2
  exit 2
  ;;
esac
