#!/usr/bin/env bash
# CPU speed of deepinterp vs the original's TensorFlow/Keras, side by side in ONE run on ONE machine.
# Workloads (alternating ours / TF per workload, so that both see the same machine state):
#   unet_single_1024_infer        paper 2P net, 512x512 frames, window 30/30        per frame
#   unet_single_1024_train        one training step, 1x512x512, L1, RMSprop         per step
#   unet_single_ephys_1024_infer  ephys net, [batch,384,2,60] (TF batch 100)        per output sample
#   fmri_unet_denoiser_infer      fMRI net, 7x7x7x5 blocks (TF batch 1000)          per block
#   default_infer                 our default unet-d3-w16 at 512x512 (TF: our Keras export)  per frame
# Batch sizes are the same on both sides (2P 1 frame, ephys 100, fMRI 1000 blocks).
# Ours is the real CLI end to end (I/O, model loading and normalisation included), measured with
# /usr/bin/time (user+sys CPU-s, wall, peak RSS) and divided by the frames/samples/blocks written;
# our training step is `train --steps 2` minus `train --steps 1` (same validation work in both).
# TF's is the network alone (scripts/tf_speed.py, one process per workload, warm-up then 3 reps).
# Prints `workload | ours CPU-s | TF CPU-s | ratio | ours wall | TF wall | ratio | peak RSS` where
# ratio = TF time / our time = our speed / TF's speed (>1: ours is faster).
#
# Usage: scripts/engine-benchmark.sh [--quick] [WORKLOAD...]
#   DEEPINTERP_BIN  our binary (default target/release/deepinterp; build it first)
#   FRAMES, EPHYS_SECONDS, FMRI_SHAPE  our input sizes (default 70 frames -> 10 denoised,
#                   0.02 s -> 538 samples, 16,16,10,10 -> 25,600 blocks)
#   --quick         tiny sizes (64x64 frames, short recordings, 1 rep) to check that every step works
# The TF venv (tensorflow-cpu 2.15, numpy<2, h5py; Python 3.11) is made once, cached in
# ${TMPDIR:-/tmp}/deepinterp-tf-venv. Outputs go to a temp dir removed on exit. Full size takes
# ~10 minutes on 2 cores; the Keras models come from ../shared/fixtures/keras (read only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
quick=0
if [ "${1:-}" = --quick ]; then quick=1; shift; fi
all="unet_single_1024_infer unet_single_1024_train unet_single_ephys_1024_infer fmri_unet_denoiser_infer default_infer"
workloads="${*:-$all}"

bin="${DEEPINTERP_BIN:-target/release/deepinterp}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
[ -x "$bin" ] || { echo "no deepinterp binary at $bin (cargo build --release, or set DEEPINTERP_BIN)" >&2; exit 1; }
keras="$root/../shared/fixtures/keras"
[ -f "$keras/model_unet_single_1024.h5" ] || { echo "missing Keras fixtures in $keras" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then
  apt-get install -y time >/dev/null || { echo "needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }
fi

venv="${TMPDIR:-/tmp}/deepinterp-tf-venv"
if [ ! -f "$venv/.ready" ]; then
  echo "== making the TF venv in $venv (once)" >&2
  rm -rf "$venv"
  "${PYTHON:-python3.11}" -m venv "$venv"
  "$venv/bin/pip" install -q 'tensorflow-cpu==2.15.*' 'numpy<2' h5py
  touch "$venv/.ready"
fi
py="$venv/bin/python"

work="$(mktemp -d "${TMPDIR:-/tmp}/deepinterp-engine-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [ $quick = 1 ]; then
  size=64 frames=64 ephys_s=0.01 fmri_shape=12,12,8,10 tfq=(--quick)
else
  size=512 frames=70 ephys_s=0.02 fmri_shape=16,16,10,10 tfq=()
fi
# Overrides: more frames/samples/voxels amortise our process start-up and I/O over more items.
frames=${FRAMES:-$frames} ephys_s=${EPHYS_SECONDS:-$ephys_s} fmri_shape=${FMRI_SHAPE:-$fmri_shape}
results="$work/results.tsv"
: >"$results"

# run_ours LOG CMD...: runs CMD under /usr/bin/time; sets cpu (user+sys), wall, rss (KiB).
run_ours() {
  local log=$1; shift
  /usr/bin/time -f '%U %S %e %M' -o "$work/time" "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  read -r u s wall rss <"$work/time"
  cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')
}
# run_tf WORKLOAD [ARGS]: one tf_speed.py process; sets tcpu, twall, trss (per item, KiB).
run_tf() {
  local w=$1; shift
  "$py" scripts/tf_speed.py "${tfq[@]}" --size "$size" --only "$w" "$@" >"$work/tf.jsonl" 2>"$work/tf.log" \
    || { cat "$work/tf.log" >&2; exit 1; }
  if [ -z "${tf_header:-}" ]; then tf_header=1; grep '^{"tf_version' "$work/tf.jsonl" >&2; fi
  read -r tcpu twall trss < <("$py" -c 'import json,sys
r=[json.loads(l) for l in open(sys.argv[1]) if "\"workload\"" in l][-1]
print(r["cpu_s_per_item"], r["wall_s_per_item"], r["peak_rss_kib"])' "$work/tf.jsonl")
}
# record NAME OURS_CPU OURS_WALL OURS_RSS ITEMS  (ours totals, divided here) + the last run_tf
record() {
  local per_cpu per_wall
  per_cpu=$(awk -v c="$2" -v n="$5" 'BEGIN{print c/n}')
  per_wall=$(awk -v c="$3" -v n="$5" 'BEGIN{print c/n}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$per_cpu" "$tcpu" "$per_wall" "$twall" "$4" "$trss" "$5" >>"$results"
  echo "-- $1: ours $per_cpu CPU-s $per_wall wall-s per item ($5 items, peak $4 KiB); TF $tcpu CPU-s $twall wall-s (peak $trss KiB)" >&2
}
wants() { case " $workloads " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); ours: $bin" >&2
movie="$work/movie.h5"
if wants unet_single_1024_infer || wants unet_single_1024_train || wants default_infer; then
  "$bin" simulate 2p -o "$movie" --clean "$work/clean.h5" --frames "$frames" --height "$size" --width "$size" \
    --seed 1 >/dev/null 2>&1
fi

if wants unet_single_1024_infer; then
  echo "== unet_single_1024_infer" >&2
  run_ours "$work/ours.log" "$bin" denoise "$movie" -o "$work/out.h5" --model "$keras/model_unet_single_1024.h5" \
    --pre-frames 30 --post-frames 30 --edges drop --batch-size 1
  n=$(sed -n 's/^denoised \([0-9]*\) frames.*/\1/p' "$work/ours.log")
  oc=$cpu ow=$wall orss=$rss
  run_tf unet_single_1024_infer
  record unet_single_1024_infer "$oc" "$ow" "$orss" "$n"
  rm -f "$work/out.h5"
fi

if wants unet_single_1024_train; then
  echo "== unet_single_1024_train" >&2
  # One step = (2 steps) - (1 step): both validate once before and once after (one sample each).
  for k in 1 2; do
    run_ours "$work/ours.log" "$bin" train "$movie" --validation "$movie" -o "$work/paper$k.dimodel" \
      --arch unet_single_1024 --patch-size 0 --batch-size 1 --loss l1 --optimizer rmsprop \
      --steps $k --steps-per-epoch $k --validation-samples 1 --seed 1
    eval "c$k=\$cpu w$k=\$wall r$k=\$rss"
  done
  # Alternative, in-process (no validation/I/O around the step), once it can run one part alone:
  # cargo bench -p deepinterp --bench speed -- paper   # prints inference and training-step CPU-s
  run_tf unet_single_1024_train
  record unet_single_1024_train "$(awk -v a="$c2" -v b="$c1" 'BEGIN{print a-b}')" \
    "$(awk -v a="$w2" -v b="$w1" 'BEGIN{print a-b}')" "$r2" 1
  rm -f "$work"/paper*
fi

if wants unet_single_ephys_1024_infer; then
  echo "== unet_single_ephys_1024_infer" >&2
  "$bin" simulate ephys -o "$work/ephys.bin" --clean "$work/ephys-clean.bin" --duration "$ephys_s" --seed 1 \
    >/dev/null 2>&1
  run_ours "$work/ours.log" "$bin" denoise "$work/ephys.bin" -o "$work/ephys-out.bin" \
    --model "$keras/model_unet_single_ephys_1024.h5" --pre-frames 30 --post-frames 30 --omitted-frames 1 \
    --edges drop --batch-size 100
  n=$(sed -n 's/^denoised \([0-9]*\) samples.*/\1/p' "$work/ours.log")
  oc=$cpu ow=$wall orss=$rss
  run_tf unet_single_ephys_1024_infer
  record unet_single_ephys_1024_infer "$oc" "$ow" "$orss" "$n"
  rm -f "$work"/ephys*
fi

if wants fmri_unet_denoiser_infer; then
  echo "== fmri_unet_denoiser_infer" >&2
  "$bin" simulate fmri -o "$work/fmri.nii.gz" --clean "$work/fmri-clean.nii.gz" --shape "$fmri_shape" --seed 1 \
    >/dev/null 2>&1
  run_ours "$work/ours.log" "$bin" denoise "$work/fmri.nii.gz" -o "$work/fmri-out.nii.gz" \
    --model "$keras/model_fmri_unet_denoiser.h5" --mode parity --batch-size 1000
  n=$(sed -n 's/.* \([0-9]*\) network passes.*/\1/p' "$work/ours.log")
  oc=$cpu ow=$wall orss=$rss
  run_tf fmri_unet_denoiser_infer
  record fmri_unet_denoiser_infer "$oc" "$ow" "$orss" "$n"
  rm -f "$work"/fmri*
fi

if wants default_infer; then
  echo "== default_infer (unet-d3-w16, trained 1 step, exported to Keras for TF)" >&2
  "$bin" train "$movie" --validation "$movie" -o "$work/default.dimodel" --arch unet-d3-w16 --steps 1 \
    --steps-per-epoch 1 --batch-size 1 --validation-samples 1 --seed 1 >"$work/train.log" 2>&1 \
    || { cat "$work/train.log" >&2; exit 1; }
  "$bin" export "$work/default.dimodel" -o "$work/default.h5" >/dev/null 2>&1
  run_ours "$work/ours.log" "$bin" denoise "$movie" -o "$work/out.h5" --model "$work/default.dimodel" --edges drop \
    --batch-size 1
  n=$(sed -n 's/^denoised \([0-9]*\) frames.*/\1/p' "$work/ours.log")
  oc=$cpu ow=$wall orss=$rss
  run_tf default_infer --extra "default=$work/default.h5"
  record default_infer "$oc" "$ow" "$orss" "$n"
fi

echo
"$py" - "$results" "$quick" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
unit = {"unet_single_1024_infer": "frame", "unet_single_1024_train": "step",
        "unet_single_ephys_1024_infer": "sample", "fmri_unet_denoiser_infer": "block",
        "default_infer": "frame"}
if sys.argv[2] == "1":
    print("(--quick: tiny sizes, not comparable figures)")
print("ratio = TF time / our time = our speed / TF's (>1: ours faster); seconds per item")
print("| workload | item | ours CPU-s | TF CPU-s | ratio | ours wall-s | TF wall-s | ratio | peak RSS ours / TF MiB | our items |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, oc, tc, ow, tw, orss, trss, n in rows:
    oc, tc, ow, tw = map(float, (oc, tc, ow, tw))
    print(f"| {name} | {unit.get(name, 'item')} | {oc:.4g} | {tc:.4g} | {tc / oc:.2f} | {ow:.4g} | {tw:.4g} "
          f"| {tw / ow:.2f} | {int(orss) / 1024:.0f} / {int(trss) / 1024:.0f} | {n} |")
EOF
