#!/usr/bin/env python3
"""Checks with nibabel the NIfTI images that deepinterp-io writes.

Usage:
    DEEPINTERP_NIFTI_INTEROP_DIR=/tmp/nifti-interop \
        cargo test -p deepinterp-io --test nifti interop_files_for_nibabel
    python3 crates/io/tests/nifti_interop.py /tmp/nifti-interop

Needs nibabel and numpy (`pip install nibabel numpy`).

The Rust test writes images (fresh NIfTI-1 simulations in several types, and
copies of real, big-endian and NIfTI-2 sources made with create_volume_like)
together with `manifest.json` and, for each image, its expected values as a
float32 `.npy` in [t, z, y, x] order. For each image this script checks what
nibabel reads: shape, dtype, no scaling, the values, the TR
(`header.get_zooms()[3]`, in seconds), voxel sizes, and the affine (for a copy: equal to
its source's, as nibabel reads the source; for a fresh image: diagonal voxel
sizes with the grid centred on the origin). It exits non-zero on the first
mismatch.
"""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def check(entry, folder):
    path = folder / entry["file"]
    image = nib.load(str(path))
    header = image.header
    name = entry["file"]

    shape = tuple(entry["shape"])
    assert image.shape == shape, f"{name}: shape {image.shape}, expected {shape}"
    # By name: a copy of a big-endian source is big-endian too ('>i2').
    stored = header.get_data_dtype().name
    assert stored == entry["dtype"], f"{name}: dtype {stored}, expected {entry['dtype']}"
    slope, inter = header.get_slope_inter()
    assert slope in (None, 1.0) and inter in (None, 0.0), f"{name}: scaled ({slope}, {inter})"

    data = np.asanyarray(image.dataobj)
    assert data.dtype.name == entry["dtype"], f"{name}: data read as {data.dtype}"
    expected = np.load(folder / entry["expected"])  # [t, z, y, x]
    expected = expected.transpose(3, 2, 1, 0)  # -> [x, y, z, t], as nibabel
    assert np.array_equal(data.astype(np.float64), expected.astype(np.float64)), (
        f"{name}: values differ (max |diff| "
        f"{np.max(np.abs(data.astype(np.float64) - expected)):.6g})"
    )

    zooms = header.get_zooms()
    if entry["tr_s"] is not None:
        # get_zooms() gives pixdim[4] in the header's own time unit.
        unit = header.get_xyzt_units()[1]
        seconds = float(zooms[3]) * {"sec": 1.0, "unknown": 1.0, "msec": 1e-3, "usec": 1e-6}[unit]
        assert abs(seconds - entry["tr_s"]) < 1e-6, (
            f"{name}: TR {zooms[3]} {unit}, expected {entry['tr_s']} s"
        )
    assert np.allclose(zooms[:3], entry["voxel_size"], rtol=1e-6), (
        f"{name}: voxel size {zooms[:3]}, expected {entry['voxel_size']}"
    )

    if entry["affine_like"] is not None:
        source = nib.load(str(folder / entry["affine_like"]))
        expected_affine = source.affine
        assert header.get_xyzt_units() == source.header.get_xyzt_units(), f"{name}: units"
        assert header["descrip"] == source.header["descrip"], f"{name}: descrip"
        assert header["sform_code"] == source.header["sform_code"], f"{name}: sform_code"
        assert header["qform_code"] == source.header["qform_code"], f"{name}: qform_code"
        assert np.allclose(image.get_qform(), source.get_qform()), f"{name}: qform"
        assert len(header.extensions) == len(source.header.extensions), f"{name}: extensions"
    else:
        voxel = np.array(entry["voxel_size"], dtype=np.float64)
        size = np.array(shape[:3], dtype=np.float64)
        expected_affine = np.diag(np.append(voxel, 1.0))
        expected_affine[:3, 3] = -(size - 1.0) / 2.0 * voxel
        assert header.get_xyzt_units() == ("mm", "sec"), f"{name}: units"
        assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1, f"{name}: codes"
    assert np.allclose(image.affine, expected_affine, atol=1e-5), (
        f"{name}: affine\n{image.affine}\nexpected\n{expected_affine}"
    )


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR (written by the Rust test interop_files_for_nibabel)")
    folder = Path(sys.argv[1])
    entries = json.loads((folder / "manifest.json").read_text())
    assert entries, "manifest.json lists no images"
    for entry in entries:
        check(entry, folder)
        print(f"ok  {entry['file']} ({entry['dtype']}, {tuple(entry['shape'])})")
    print(f"nibabel {nib.__version__}: all {len(entries)} NIfTI images read as expected")


if __name__ == "__main__":
    main()
