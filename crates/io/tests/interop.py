#!/usr/bin/env python3
"""Checks that h5py and tifffile read movies written by deepinterp-io.

Usage: python interop.py DIR

DIR holds files written by deepinterp-io's `create_movie` named
`interop_<dtype>.<h5|tif>` (dtype int16, uint16 or float32), each a movie
of 5 frames of 7x9 pixels whose values are `3*i - 100` (`3*i` for uint16)
for element i in row-major order. (The example
`cargo run -p deepinterp-io --example write_interop -- DIR` writes them.)

Needs h5py, numpy and tifffile. Exits non-zero on the first mismatch.
"""

import pathlib
import sys

import h5py
import numpy as np
import tifffile


def expected(dtype: str) -> np.ndarray:
    i = np.arange(5 * 7 * 9, dtype=np.float64)
    offset = 0.0 if dtype == "uint16" else 100.0
    return (i * 3.0 - offset).reshape(5, 7, 9).astype(dtype)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    directory = pathlib.Path(sys.argv[1])
    checked = 0
    for dtype in ("int16", "uint16", "float32"):
        want = expected(dtype)

        h5_path = directory / f"interop_{dtype}.h5"
        with h5py.File(h5_path, "r") as f:
            data = f["data"]
            assert data.shape == want.shape, (h5_path, data.shape)
            assert data.dtype == np.dtype(dtype), (h5_path, data.dtype)
            assert data.chunks is not None and data.chunks[1:] == want.shape[1:], (
                h5_path,
                data.chunks,
            )
            assert data.compression == "gzip", (h5_path, data.compression)
            got = data[()]
            assert np.array_equal(got, want), (h5_path, got, want)
            # Hyperslab reads, as the Rust reader does them.
            assert np.array_equal(data[2:4], want[2:4]), h5_path
        checked += 1

        tif_path = directory / f"interop_{dtype}.tif"
        with tifffile.TiffFile(tif_path) as tif:
            assert len(tif.pages) == want.shape[0], (tif_path, len(tif.pages))
            got = np.stack([page.asarray() for page in tif.pages])
        assert got.dtype == np.dtype(dtype), (tif_path, got.dtype)
        assert np.array_equal(got, want), (tif_path, got, want)
        checked += 1
    print(f"interop: {checked} files read by h5py {h5py.__version__} / tifffile {tifffile.__version__}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
