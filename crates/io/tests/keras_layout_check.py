#!/usr/bin/env python3
"""Compares the HDF5 structure of a Keras model file we wrote with an original one.

Usage: python keras_layout_check.py WRITTEN.h5 ORIGINAL.h5 [--values]

Checks, with h5py, that WRITTEN has the layout `model.save(path)` of Keras 2.15 gives
ORIGINAL: the same groups, the same attributes on each (names; string or not; shape; for
numeric attributes the dtype), the same `layer_names`, the same `weight_names` per layer,
and the same datasets (names, shapes, dtypes, contiguous and unfiltered). With --values the
attribute values (`model_config` parsed as JSON) and the weights must be equal too, which
holds for an original model imported and exported again (the core test
`imported_fixture_models_export_to_the_original_config_and_weights` writes such files as
`reexported_<name>.h5` into `DEEPINTERP_KERAS_EXPORT_DIR`).

Optimizer state (`optimizer_weights`, the `training_config` attribute) is not part of what
we write: where only ORIGINAL has it, that is reported and not counted as a difference.
Differences of the string character set (h5py writes some attributes as ASCII, we write
UTF-8; both read back as `str`) are reported as notes.

Needs h5py and numpy (pip install h5py numpy). Exits 1 on the first list of differences.
"""

import json
import sys

import h5py
import numpy as np

OPTIONAL_IN_ORIGINAL = {"/optimizer_weights", "/@training_config"}


def describe_attr(obj, name):
    """(kind, shape, dtype-or-None, charset-or-None) of attribute `name` of `obj`."""
    attr = obj.attrs.get_id(name)
    tid = attr.get_type()
    if isinstance(tid, h5py.h5t.TypeStringID):
        charset = "utf-8" if tid.get_cset() == h5py.h5t.CSET_UTF8 else "ascii"
        kind = "vlen-string" if tid.is_variable_str() else "fixed-string"
        return (kind, attr.shape, None, charset)
    return ("numeric", attr.shape, str(attr.dtype), None)


def walk(f):
    """Every object path with its kind and description."""
    items = {}

    def visit(name, obj):
        path = "/" + name
        if isinstance(obj, h5py.Group):
            items[path] = ("group",)
        else:
            plist = obj.id.get_create_plist()
            items[path] = (
                "dataset",
                obj.shape,
                str(obj.dtype),
                plist.get_layout() == h5py.h5d.CONTIGUOUS,
                plist.get_nfilters(),
            )
        for attr in obj.attrs:
            items[f"{path}@{attr}"] = ("attr",) + describe_attr(obj, attr)

    for attr in f.attrs:
        items[f"/@{attr}"] = ("attr",) + describe_attr(f, attr)
    f.visititems(visit)
    return items


def strings(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def attr_value(f, key):
    path, name = key.split("@")
    obj = f[path] if path != "/" else f
    value = obj.attrs[name]
    if name in ("model_config", "training_config"):
        text = value.decode("utf8") if isinstance(value, bytes) else value
        return json.loads(text)
    if isinstance(value, (bytes, str)):
        return value.decode("utf8") if isinstance(value, bytes) else value
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return strings(value)
    return value.tolist() if isinstance(value, np.ndarray) else value


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    compare_values = "--values" in sys.argv[1:]
    if len(args) != 2:
        print(__doc__)
        return 2
    written_path, original_path = args
    problems, notes = [], []
    with h5py.File(written_path, "r") as written, h5py.File(original_path, "r") as original:
        ours, theirs = walk(written), walk(original)
        optimizer_state = 0
        for key in sorted(set(theirs) - set(ours)):
            if any(key == o or key.startswith((o + "/", o + "@")) for o in OPTIONAL_IN_ORIGINAL):
                optimizer_state += 1
            else:
                problems.append(f"missing: {key} {theirs[key]}")
        if optimizer_state:
            notes.append(
                f"{optimizer_state} optimizer-state objects/attributes only in the original "
                "(training_config, optimizer_weights; not exported)"
            )
        for key in sorted(set(ours) - set(theirs)):
            problems.append(f"extra: {key} {ours[key]}")
        for key in sorted(set(ours) & set(theirs)):
            a, b = ours[key], theirs[key]
            if a[0] == "attr" and a[:3] == b[:3] and a[3] == b[3] and a[4] != b[4]:
                notes.append(f"charset {a[4]} where the original has {b[4]}: {key}")
            elif a != b:
                problems.append(f"differs: {key}: ours {a}, original {b}")

        # The lists Keras' loader walks, in order.
        mw_ours, mw_theirs = written["model_weights"], original["model_weights"]
        layers_ours = strings(mw_ours.attrs["layer_names"])
        layers_theirs = strings(mw_theirs.attrs["layer_names"])
        if layers_ours != layers_theirs:
            problems.append(f"layer_names: ours {layers_ours}, original {layers_theirs}")
        for layer in set(layers_ours) & set(layers_theirs):
            wn_ours = strings(mw_ours[layer].attrs["weight_names"])
            wn_theirs = strings(mw_theirs[layer].attrs["weight_names"])
            if wn_ours != wn_theirs:
                problems.append(f"{layer} weight_names: ours {wn_ours}, original {wn_theirs}")

        if compare_values:
            for key in sorted(set(ours) & set(theirs)):
                if ours[key][0] == "attr":
                    if attr_value(written, key) != attr_value(original, key):
                        problems.append(f"attribute value differs: {key}")
                elif ours[key][0] == "dataset":
                    if not np.array_equal(written[key][()], original[key][()]):
                        problems.append(f"dataset values differ: {key}")

    for note in notes:
        print(f"note: {note}")
    if problems:
        print(f"{written_path} does not have the layout of {original_path}:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    checked = "layout and values" if compare_values else "layout"
    print(f"ok: {written_path} has the {checked} of {original_path} ({len(ours)} objects/attributes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
