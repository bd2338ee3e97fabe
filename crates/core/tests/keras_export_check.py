#!/usr/bin/env python3
"""Checks that TensorFlow/Keras loads models exported by deepinterp and predicts what
deepinterp predicts.

How to run it:

    python3 -m venv /tmp/keras-check
    /tmp/keras-check/bin/pip install tensorflow-cpu h5py numpy     # TF 2.x with Keras 2
    # Write the exported models and their input/output pairs:
    DEEPINTERP_KERAS_EXPORT_DIR=/tmp/keras-export \\
        cargo test -p deepinterp --test keras_export
    /tmp/keras-check/bin/python crates/core/tests/keras_export_check.py /tmp/keras-export

or for one model:

    python keras_export_check.py MODEL.h5 INPUT.npy OUTPUT.npy

With a directory, every `NAME.h5` that has `NAME.input.npy` and `NAME.output.npy` beside it
is checked (the test writes them for unet-d2-w4, unet-ephys-d2-w4 and unet3d-d1-w4; the
inputs and outputs are channels-last, as Keras takes them). Each model is loaded with
`tf.keras.models.load_model(path, compile=False)` (with TensorFlow >= 2.16, whose Keras 3
reads these legacy `.h5` files too, install `tf-keras` and set `TF_USE_LEGACY_KERAS=1` to
test the Keras 2 loader the original used) and must predict OUTPUT within
`3e-5 * max|OUTPUT|` (two float32 implementations differ by about 1e-6 relative; see
shared/fixtures/keras/README.md). It also checks what SpikeInterface's `deepinterpolate`
reads: `model.get_config()["layers"][0]["config"]["batch_input_shape"]` and the input
channel count.

Exits non-zero on the first failure.
"""

import pathlib
import sys

import numpy as np


def check(tf, model_path, input_path, output_path):
    model = tf.keras.models.load_model(str(model_path), compile=False)
    x = np.load(input_path)
    expected = np.load(output_path)
    shape = model.get_config()["layers"][0]["config"].get("batch_input_shape")
    if shape is not None and shape[-1] != x.shape[-1]:
        raise AssertionError(f"{model_path}: input has {shape[-1]} channels, data {x.shape[-1]}")
    predicted = model.predict(x, verbose=0)
    if predicted.shape != expected.shape:
        raise AssertionError(f"{model_path}: predicted {predicted.shape}, expected {expected.shape}")
    diff = float(np.abs(predicted - expected).max())
    tolerance = 3e-5 * float(np.abs(expected).max())
    print(
        f"{model_path.name}: {model.count_params()} parameters, input {shape}, "
        f"max |keras - deepinterp| = {diff:.3e} (tolerance {tolerance:.3e})"
    )
    if x.ndim == 4 and shape is not None:
        # SpikeInterface's deepinterpolate takes batch_input_shape[1:3] as its (rows, cols)
        # and requires rows * cols == the recording's channel count.
        rows, cols = shape[1], shape[2]
        sites = rows * cols if rows is not None and cols is not None else None
        print(f"  SpikeInterface would read desired_shape ({rows}, {cols}): {sites} channels")
    if not diff <= tolerance:
        raise AssertionError(f"{model_path}: predictions differ by {diff} > {tolerance}")


def main():
    args = [pathlib.Path(a) for a in sys.argv[1:]]
    if len(args) == 1 and args[0].is_dir():
        triples = []
        for model in sorted(args[0].glob("*.h5")):
            stem = model.with_suffix("")
            pair = (stem.with_name(stem.name + ".input.npy"), stem.with_name(stem.name + ".output.npy"))
            if pair[0].is_file() and pair[1].is_file():
                triples.append((model, *pair))
        if not triples:
            print(f"no NAME.h5 with NAME.input.npy and NAME.output.npy in {args[0]}")
            return 1
    elif len(args) == 3:
        triples = [tuple(args)]
    else:
        print(__doc__)
        return 2

    import tensorflow as tf

    for triple in triples:
        check(tf, *triple)
    try:
        import keras

        keras_version = keras.__version__
    except (ImportError, AttributeError):
        keras_version = "?"
    print(
        f"ok: TensorFlow {tf.__version__} (Keras {keras_version}) loads {len(triples)} "
        "exported model(s) and predicts what deepinterp predicts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
