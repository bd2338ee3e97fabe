#!/usr/bin/env python3
"""Checks that SpikeInterface reads the SpikeGLX files deepinterp writes, unchanged.

Usage: python spikeinterface_interop.py DIR

DIR/sim holds `sim_g0_t0.imec0.ap.bin` (+ .meta) from `deepinterp simulate ephys` and
DIR/den holds `den_g0_t0.imec0.ap.bin` (+ .meta) from `deepinterp denoise` of it (int16,
default edges). Both must open with `spikeinterface.extractors.read_spikeglx` as 384-channel
Neuropixels 1.0 recordings at 30 kHz whose traces are exactly the file's first 384 columns,
and the denoised file must carry the input's sync channel through untouched.

Needs spikeinterface (with neo and probeinterface) and numpy. Exits non-zero on a mismatch.
"""

import pathlib
import sys

import numpy as np
import spikeinterface.extractors as se


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    columns = {}
    for name in ("sim", "den"):
        folder = root / name
        streams = se.get_neo_streams("spikeglx", folder)[0]
        assert "imec0.ap" in streams, streams
        recording = se.read_spikeglx(folder, stream_id="imec0.ap")
        assert recording.get_num_channels() == 384, recording
        assert recording.get_sampling_frequency() == 30000.0, recording
        assert np.allclose(recording.get_channel_gains(), 2.34375), recording.get_channel_gains()
        assert recording.get_probe().get_contact_count() == 384
        traces = recording.get_traces()
        raw = np.fromfile(folder / f"{name}_g0_t0.imec0.ap.bin", dtype=np.int16).reshape(-1, 385)
        assert traces.dtype == np.int16 and np.array_equal(traces, raw[:, :384])
        columns[name] = raw
    sim, den = columns["sim"], columns["den"]
    assert sim.shape == den.shape, (sim.shape, den.shape)
    assert np.array_equal(sim[:, 384], den[:, 384]), "sync channel changed"
    assert not np.array_equal(sim[:, :384], den[:, :384]), "nothing was denoised"
    print(f"interop: SpikeInterface reads deepinterp's SpikeGLX files ({sim.shape[0]} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
