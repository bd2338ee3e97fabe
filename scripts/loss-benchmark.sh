#!/usr/bin/env bash
# The loss × photon-count table of BENCHMARKS.md ("Which loss"): for each photon count, one
# simulated two-photon movie (1,000 frames of 96×96, its own seed), the default network trained
# for a fixed number of steps with each loss (same seed, same samples), the whole movie
# denoised and scored against the ground truth. Fixed steps, not a time budget, so that the
# comparison does not depend on what else the machine is doing.
# Usage: scripts/loss-benchmark.sh [STEPS] [WORKDIR] [PHOTONS...]
#   DEEPINTERP_BIN=<binary> uses that binary instead of building one.
#   LOSSES="l1 l2 l2-vst" picks the losses (l2-vst: L2 after the Anscombe transform; needs
#   PYTHON=<python with numpy and h5py>, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-1500}"
work="${2:-${TMPDIR:-/tmp}/deepinterp-loss-benchmark}"
shift 2 || true
photons=("$@")
[ ${#photons[@]} -gt 0 ] || photons=(0.5 1 4 20 100)
losses="${LOSSES:-l1 l2 l2-vst}"
python="${PYTHON:-python3}"
mkdir -p "$work"
if [ -z "${DEEPINTERP_BIN:-}" ]; then
  cargo build --release -q -p deepinterp-cli
  bin="$PWD/target/release/deepinterp"
else
  bin="$DEEPINTERP_BIN"
fi
printf "photons\tloss\tsteps\ttrain_s\tnoisy_mse\tgauss_best_mse\tdenoised_mse\tvs_noisy\tvs_best_gauss\tsnr_gain\n"
for p in "${photons[@]}"; do
  seed=$(printf '%s' "$p" | cksum | cut -d' ' -f1)
  movie="$work/p$p.h5"
  [ -f "$movie" ] || "$bin" simulate 2p -o "$movie" --clean "$work/p$p-clean.h5" \
    --frames 1000 --height 96 --width 96 --photons "$p" --seed "$seed" >/dev/null 2>&1
  for loss in $losses; do
    model="$work/p$p-$loss.dimodel"
    start=$(date +%s.%N)
    rm -f "$work/p$p-$loss.h5"
    if [ "$loss" = l2-vst ]; then
      # L2 after the Anscombe transform 2·sqrt(x + 3/8) of the photon counts (the simulator's
      # units), inverted with the closed-form approximation of the exact unbiased inverse
      # (Mäkitalo & Foi 2011). Done outside deepinterp, with numpy and h5py.
      "$python" - "$movie" "$work/p$p-vst-in.h5" forward <<'PY'
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1], "r")["data"][...].astype(np.float64)
h5py.File(sys.argv[2], "w").create_dataset("data", data=(2 * np.sqrt(x + 0.375)).astype(np.float32))
PY
      [ -f "$model" ] || "$bin" train "$work/p$p-vst-in.h5" -o "$model" --loss l2 --steps "$steps" --seed 1 >/dev/null 2>&1
      end=$(date +%s.%N)
      rm -f "$work/p$p-vst-out.h5"
      "$bin" denoise "$work/p$p-vst-in.h5" --model "$model" -o "$work/p$p-vst-out.h5" >/dev/null 2>&1
      "$python" - "$work/p$p-vst-out.h5" "$work/p$p-$loss.h5" inverse <<'PY'
import sys, h5py, numpy as np
d = np.maximum(h5py.File(sys.argv[1], "r")["data"][...].astype(np.float64), 1e-3)
a = 1.5 ** 0.5
x = d**2 / 4 + a / 4 / d - 11 / 8 / d**2 + 5 * a / 8 / d**3 - 1 / 8
h5py.File(sys.argv[2], "w").create_dataset("data", data=np.maximum(x, 0).astype(np.float32))
PY
    else
      [ -f "$model" ] || "$bin" train "$movie" -o "$model" --loss "$loss" --steps "$steps" --seed 1 >/dev/null 2>&1
      end=$(date +%s.%N)
      "$bin" denoise "$movie" --model "$model" -o "$work/p$p-$loss.h5" >/dev/null 2>&1
    fi
    "$bin" evaluate --noisy "$movie" --denoised "$work/p$p-$loss.h5" --clean "$work/p$p-clean.h5" \
      --json > "$work/p$p-$loss.json"
    python3 - "$work/p$p-$loss.json" "$p" "$loss" "$steps" "$(echo "$end - $start" | bc)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
best = r["best_gaussian_vs_clean"]["error"]
print("\t".join([sys.argv[2], sys.argv[3], sys.argv[4], "%.0f" % float(sys.argv[5]),
  "%.4g" % r["noisy_vs_clean"]["mse"], "%.4g" % best["mse"], "%.4g" % r["denoised_vs_clean"]["mse"],
  "%.1f" % (r["noisy_vs_clean"]["mse"] / r["denoised_vs_clean"]["mse"]),
  "%.2f" % (best["mse"] / r["denoised_vs_clean"]["mse"]), "%.1f" % r["snr_gain_median"]]))
PY
  done
done
