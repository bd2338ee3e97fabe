#!/usr/bin/env python3
"""TensorFlow/Keras side of the CPU speed comparison (see scripts/engine-benchmark.sh).

Loads the original DeepInterpolation Keras models from ../shared/fixtures/keras/ (relative to the
repository root) plus any extra Keras .h5 given on the command line (e.g. our export of the default
net), and times the network alone on random inputs, after a warm-up call:

  unet_single_1024_infer    predict_on_batch, 1 x 512x512x60 (the 64x64 fixture rebuilt at 512)
  unet_single_1024_train    train_on_batch, 1 x 512x512, loss mae, RMSprop (per step)
  unet_single_ephys_1024_infer  predict_on_batch, 100 x 384x2x60 (per output sample)
  fmri_unet_denoiser_infer  predict_on_batch, 1000 x 7x7x7x5 (per block)
  NAME_infer                predict_on_batch, 1 x 512x512xC, for each --extra NAME=PATH.h5

CPU-seconds are time.process_time() (all threads of this process, user+system), wall is
time.perf_counter(); peak RSS is getrusage(RUSAGE_SELF).ru_maxrss of this process so far (run one
workload per process with --only for a per-workload figure). One JSON line per workload on stdout,
after a JSON line describing TF, its version and thread settings.

Run (needs tensorflow-cpu 2.15, numpy<2, h5py; scripts/engine-benchmark.sh makes such a venv):
  python scripts/tf_speed.py [--quick] [--only NAME[,NAME...]] [--reps N] [--extra NAME=PATH.h5]
--quick uses tiny sizes (64x64 frames, small batches, one rep) for smoke tests.
"""
import argparse
import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "..", "shared", "fixtures", "keras")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def with_input_shape(model, shape):
    """Clone a functional model with its Input's spatial shape changed, keeping the weights."""
    import tensorflow as tf

    cfg = model.get_config()
    for layer in cfg["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_input_shape"] = [None] + list(shape)
    clone = tf.keras.Model.from_config(cfg)
    clone.set_weights(model.get_weights())
    return clone


def load(path, spatial=None):
    """Load a Keras .h5 (no optimizer); with `spatial`, rebuild it for that spatial input size."""
    import tensorflow as tf

    model = tf.keras.models.load_model(path, compile=False)
    in_shape = list(model.input_shape[1:])
    if spatial is not None and in_shape[:-1] != list(spatial):
        model = with_input_shape(model, list(spatial) + [in_shape[-1]])
    return model


def measure(name, fn, items, reps, warmup=1):
    for _ in range(warmup):
        fn()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
        fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rec = {
        "workload": name,
        "cpu_s_per_item": cpu / (reps * items),
        "wall_s_per_item": wall / (reps * items),
        "items": items,
        "reps": reps,
        "peak_rss_kib": peak_rss_kib(),
    }
    print(json.dumps(rec), flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one rep (smoke test)")
    ap.add_argument("--only", help="comma-separated workload names (see the header)")
    ap.add_argument("--reps", type=int, help="measured repetitions (default 3; --quick 1)")
    ap.add_argument("--size", type=int, help="2P frame side (default 512; --quick 64)")
    ap.add_argument("--ephys-batch", type=int, help="ephys samples per call (default 100)")
    ap.add_argument("--fmri-batch", type=int, help="fMRI blocks per call (default 1000)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=PATH.h5",
                    help="another Keras model to time like the 2P net (workload NAME_infer)")
    ap.add_argument("--fixtures", default=FIXTURES, help="folder of the original's .h5 models")
    ap.add_argument("--intra", type=int, default=0, help="TF intra-op threads (0: TF default)")
    ap.add_argument("--inter", type=int, default=0, help="TF inter-op threads (0: TF default)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    reps = a.reps or (1 if a.quick else 3)
    size = a.size or (64 if a.quick else 512)
    ephys_batch = a.ephys_batch or (4 if a.quick else 100)
    fmri_batch = a.fmri_batch or (16 if a.quick else 1000)
    extras = {}
    for e in a.extra:
        name, sep, path = e.partition("=")
        if not sep:
            name, path = os.path.splitext(os.path.basename(e))[0], e
        extras[name] = path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    if a.intra:
        tf.config.threading.set_intra_op_parallelism_threads(a.intra)
    if a.inter:
        tf.config.threading.set_inter_op_parallelism_threads(a.inter)

    paper = os.path.join(a.fixtures, "model_unet_single_1024.h5")
    workloads = {
        "unet_single_1024_infer": None,
        "unet_single_1024_train": None,
        "unet_single_ephys_1024_infer": None,
        "fmri_unet_denoiser_infer": None,
    }
    for name in extras:
        workloads[name + "_infer"] = None
    only = a.only.split(",") if a.only else list(workloads)
    unknown = [w for w in only if w not in workloads]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; known: {list(workloads)}")

    print(json.dumps({
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "numpy_version": np.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpu_count": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default(on)"),
        "quick": a.quick, "size": size, "reps": reps,
    }), flush=True)

    rng = np.random.default_rng(a.seed)

    def rand(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    for w in only:
        log(f"== {w}")
        if w == "unet_single_1024_infer":
            m = load(paper, (size, size))
            x = rand(1, size, size, 60)
            measure(w, lambda: m.predict_on_batch(x), items=1, reps=reps)
        elif w == "unet_single_1024_train":
            m = load(paper, (size, size))
            m.compile(optimizer=tf.keras.optimizers.RMSprop(learning_rate=1e-4),
                      loss="mean_absolute_error")
            x, y = rand(1, size, size, 60), rand(1, size, size, 1)
            measure(w, lambda: m.train_on_batch(x, y), items=1, reps=reps)
        elif w == "unet_single_ephys_1024_infer":
            m = load(os.path.join(a.fixtures, "model_unet_single_ephys_1024.h5"))
            x = rand(ephys_batch, 384, 2, 60)
            measure(w, lambda: m.predict_on_batch(x), items=ephys_batch, reps=reps)
        elif w == "fmri_unet_denoiser_infer":
            m = load(os.path.join(a.fixtures, "model_fmri_unet_denoiser.h5"))
            x = rand(fmri_batch, 7, 7, 7, 5)
            measure(w, lambda: m.predict_on_batch(x), items=fmri_batch, reps=reps)
        else:
            path = extras[w[: -len("_infer")]]
            m = load(path, (size, size))
            x = rand(1, size, size, m.input_shape[-1])
            measure(w, lambda: m.predict_on_batch(x), items=1, reps=reps)
        del m
        tf.keras.backend.clear_session()


if __name__ == "__main__":
    main()
