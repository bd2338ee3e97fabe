#!/usr/bin/env bash
# Fine-tuning figures of the closing note / BENCHMARKS.md, reproducible on a 2-core machine:
#   transfer  a small model trained for 3 minutes on one simulated movie (4 photons per unit),
#             then on a second movie of other neurons, 4x dimmer (1 photon per unit): its
#             validation loss before and after 90 s of fine-tuning, against 90 s of training
#             from scratch, each scored against the ground truth;
#   loss      at a very low photon count (0.25 per unit), the same base fine-tuned for 90 s
#             with L1 and with L2, scored against the ground truth.
# Usage: scripts/finetune-benchmark.sh [transfer|loss|all] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
work="${2:-${TMPDIR:-/tmp}/deepinterp-finetune-benchmark}"
mkdir -p "$work"
cargo build --release -q -p deepinterp-cli
bin="$PWD/target/release/deepinterp"
movie() { "$bin" simulate 2p -o "$work/$1.h5" --clean "$work/$1-clean.h5" --frames 600 --height 64 --width 64 --photons "$2" --seed "$3" 2>/dev/null; }
score() { "$bin" denoise "$work/$1.h5" --model "$work/$2.dimodel" -o "$work/$2-on-$1.h5" 2>/dev/null
  echo "== $2 on $1"; "$bin" evaluate --noisy "$work/$1.h5" --denoised "$work/$2-on-$1.h5" --clean "$work/$1-clean.h5"; }

if [ ! -f "$work/base.dimodel" ]; then
  movie first 4 1
  "$bin" train "$work/first.h5" -o "$work/base.dimodel" --max-minutes 3 --steps 100000 --seed 1 2>&1 | tail -2
fi

if [ "$which" = transfer ] || [ "$which" = all ]; then
  movie dim 1 2
  "$bin" finetune "$work/dim.h5" --model "$work/base.dimodel" -o "$work/tuned.dimodel" --max-minutes 1.5 \
    --steps 100000 --seed 1 2>&1 | grep -E "validation loss|steps"
  "$bin" train "$work/dim.h5" -o "$work/scratch.dimodel" --max-minutes 1.5 --steps 100000 --seed 1 2>&1 | tail -2
  score dim base; score dim tuned; score dim scratch
fi

if [ "$which" = loss ] || [ "$which" = all ]; then
  movie dark 0.25 3
  for loss in l1 l2; do
    "$bin" finetune "$work/dark.h5" --model "$work/base.dimodel" -o "$work/dark-$loss.dimodel" --loss "$loss" \
      --max-minutes 1.5 --steps 100000 --seed 1 2>&1 | grep -E "validation loss|steps"
    score dark "dark-$loss"
  done
fi
