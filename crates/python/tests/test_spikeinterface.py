"""deepinterp.spikeinterface against SpikeInterface's own rules: the numbers its
``deepinterpolate`` computes with a Keras model (written out here independently, on our
network), its edges, its errors, parallel saving, and training then denoising with our
engine (checked against the command line)."""

import os
import pickle
import subprocess
import warnings

import numpy as np
import pytest

si = pytest.importorskip("spikeinterface")

import deepinterp  # noqa: E402
from conftest import ROOT, cli, cli_path  # noqa: E402
from deepinterp.spikeinterface import (  # noqa: E402
    ModelShapeError,
    deepinterpolate,
    train_deepinterpolation,
)
from spikeinterface.core import NumpyRecording  # noqa: E402

KERAS_NAME = "model_unet_single_ephys_1024.h5"
KERAS_MODEL = ROOT.parent / "shared" / "fixtures" / "keras" / KERAS_NAME

#: SpikeInterface's defaults: 30 frames each side, one omitted on each side of the centre.
PRE, POST, OMITTED = 30, 30, 1
EDGE = PRE + OMITTED


@pytest.fixture
def keras_model(request):
    """The original's Neuropixels network (input [384, 2, 60]); skips without it, unless
    DEEPINTERP_REQUIRE_SHARED=1."""
    if KERAS_MODEL.exists():
        return KERAS_MODEL
    reason = f"skipped {request.node.name}: needs ../shared/fixtures/keras/{KERAS_NAME} (absent)"
    if os.environ.get("DEEPINTERP_REQUIRE_SHARED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def neuropixels_probe():
    """Neuropixels 1.0, bank 0: the 384 recorded sites of an NP1000 (channels by depth)."""
    from probeinterface.neuropixels_tools import build_neuropixels_probe

    probe = build_neuropixels_probe("NP1000").get_slice(np.arange(384))
    probe.set_device_channel_indices(np.arange(384))
    return probe


def ground_truth(duration_s, sampling_frequency=30000.0, seed=7):
    """SpikeInterface's simulated recording on the Neuropixels 1.0 probe."""
    with warnings.catch_warnings():
        # At 1 kHz the template generator divides by zero in phases shorter than a sample
        # (the recording stays finite); that is SpikeInterface's business.
        warnings.simplefilter("ignore", RuntimeWarning)
        recording, _ = si.generate_ground_truth_recording(
            durations=[duration_s],
            sampling_frequency=sampling_frequency,
            probe=neuropixels_probe(),
            num_units=6,
            seed=seed,
        )
    return recording


@pytest.fixture(scope="module")
def recording():
    """384 channels of simulated Neuropixels 1.0 data, 360 samples (12 ms)."""
    return ground_truth(0.012)


def spikeinterface_reference(traces, model, centres, rows, cols):
    """SpikeInterface's generator written out for the samples ``centres``: the samples
    ``t - 31 .. t + 31``, the centre and its two neighbours masked out, each remaining sample
    (channels in recording order) reshaped to ``rows × cols``, frames last; the output read
    back in the same order. A ``rows == channels, cols == 2`` model takes the original's
    checkerboard instead (channel ``c`` at ``(c, c % 2)``, other cells zero)."""
    channels = traces.shape[1]
    inputs = []
    for t in centres:
        window = traces[t - PRE - OMITTED : t + POST + OMITTED + 1].astype(np.float32)
        keep = np.ones(len(window), dtype=bool)
        keep[PRE + OMITTED - 1 : PRE + OMITTED + 2] = False
        frames = window[keep]
        if rows * cols == channels:
            grid = frames.reshape(-1, rows, cols)
        else:
            grid = np.zeros((len(frames), rows, cols), dtype=np.float32)
            grid[:, np.arange(channels), np.arange(channels) % 2] = frames
        inputs.append(np.moveaxis(grid, 0, -1))
    outputs = model.predict(np.stack(inputs))[..., 0]
    if rows * cols == channels:
        return outputs.reshape(len(centres), channels)
    return outputs[:, np.arange(channels), np.arange(channels) % 2]


def test_keras_traces_are_spikeinterfaces_numbers(recording, keras_model):
    denoised = deepinterpolate(recording, keras_model)
    samples = recording.get_num_samples()
    assert denoised.get_num_samples() == samples
    assert denoised.get_num_channels() == 384
    traces = recording.get_traces()
    model = deepinterp.load_model(keras_model)
    for start, end in [(EDGE, EDGE + 12), (170, 190), (samples - EDGE - 12, samples - EDGE)]:
        expected = spikeinterface_reference(traces, model, range(start, end), 384, 2)
        np.testing.assert_array_equal(denoised.get_traces(start_frame=start, end_frame=end),
                                      expected)
    # Any chunking, and any channel subset, gives the same values (margins are read).
    whole = denoised.get_traces(start_frame=20, end_frame=120)
    pieces = [denoised.get_traces(start_frame=a, end_frame=a + 25) for a in range(20, 120, 25)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    some = recording.channel_ids[[3, 100, 383]]
    np.testing.assert_array_equal(
        denoised.get_traces(start_frame=20, end_frame=120, channel_ids=some),
        whole[:, [3, 100, 383]])


def test_edge_samples_are_returned_raw(recording, keras_model):
    denoised = deepinterpolate(recording, keras_model, batch_size=16)
    samples = recording.get_num_samples()
    raw = recording.get_traces()
    out = denoised.get_traces()
    assert out.shape == raw.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[:EDGE], raw[:EDGE])
    np.testing.assert_array_equal(out[samples - EDGE:], raw[samples - EDGE:])
    # The first and last predicted samples are the network's, not the recording's.
    assert not np.array_equal(out[EDGE], raw[EDGE])
    assert not np.array_equal(out[samples - EDGE - 1], raw[samples - EDGE - 1])
    # A request inside the head, or across the tail, returns just what was asked.
    np.testing.assert_array_equal(denoised.get_traces(start_frame=5, end_frame=9), raw[5:9])
    np.testing.assert_array_equal(
        denoised.get_traces(start_frame=samples - 40, end_frame=samples - 10),
        out[samples - 40 : samples - 10])


def test_keras_traces_equal_the_command_lines(recording, keras_model, tmp_path):
    # Our command line reads headerless files as int16, so both sides see int16 values.
    values = np.clip(np.rint(recording.get_traces() * 8), -32768, 32767).astype("<i2")
    as_int16 = NumpyRecording([values], sampling_frequency=recording.sampling_frequency)
    # The command line normalises with the mean and std of the file's first --stats-frames
    # samples; SpikeInterface does not normalise. Two head samples of +1 and -1 on every
    # channel make the mean exactly 0 and the std exactly 1, so normalising and restoring
    # are exact identities and the network sees the same values on both sides. The head is
    # kept out of every compared window (they start at the head's end).
    head = np.ones((2, 384), dtype="<i2")
    head[1] = -1
    source = tmp_path / "with-head.dat"
    np.concatenate([head, values]).tofile(source)
    first, last = EDGE, len(values) - EDGE  # SpikeInterface predicts [first, last)
    output = tmp_path / "cli.dat"
    cli("denoise", source, "--channels", 384, "--sample-rate", recording.sampling_frequency,
        "--model", keras_model, "-o", output, "--dtype", "float32", "--stats-frames", 2,
        "--start-frame", len(head) + first, "--end-frame", len(head) + last - 1)
    expected = np.fromfile(output, dtype="<f4").reshape(-1, 384)
    assert len(expected) == last - first
    got = deepinterpolate(as_int16, keras_model).get_traces(start_frame=first, end_frame=last)
    # Same network, same inputs, same batch-independent kernels: equal to the last bit.
    np.testing.assert_array_equal(got, expected)


def test_spikeinterfaces_own_layout_when_cells_equal_channels(keras_model):
    # 768 channels fill the [384, 2] input: channel c at (c // 2, c % 2), SpikeInterface's
    # reshape.
    rng = np.random.default_rng(5)
    traces = rng.normal(size=(EDGE * 2 + 6, 768)).astype(np.float32)
    recording = NumpyRecording([traces], sampling_frequency=30000.0)
    got = deepinterpolate(recording, keras_model).get_traces()
    centres = range(EDGE, len(traces) - EDGE)
    expected = spikeinterface_reference(traces, deepinterp.load_model(keras_model), centres,
                                        384, 2)
    np.testing.assert_array_equal(got[EDGE:len(traces) - EDGE], expected)
    np.testing.assert_array_equal(got[:EDGE], traces[:EDGE])


def test_a_wrong_window_or_channel_count_raises_as_spikeinterface_does(recording, keras_model):
    # SpikeInterface asserts: AssertionError (ours is also a deepinterp InvalidInputError).
    with pytest.raises(AssertionError, match="pre and post frames"):
        deepinterpolate(recording, keras_model, pre_frame=20)
    with pytest.raises(AssertionError):
        deepinterpolate(recording, keras_model, post_frame=31)
    fewer = recording.select_channels(recording.channel_ids[:383])
    with pytest.raises(AssertionError, match="number of channels"):
        deepinterpolate(fewer, keras_model)
    with pytest.raises(ModelShapeError):
        deepinterpolate(fewer, keras_model)
    assert issubclass(ModelShapeError, deepinterp.InvalidInputError)


def test_saving_in_parallel_keeps_every_sample(keras_model, tmp_path):
    # 1 kHz so that "1s" chunks are short: 1,100 samples in two chunks, the second shorter
    # than the window's margins would need from it alone.
    recording = ground_truth(1.1, sampling_frequency=1000.0, seed=3)
    assert np.isfinite(recording.get_traces()).all()
    denoised = deepinterpolate(recording, keras_model)
    folder = tmp_path / "denoised"
    denoised.save(folder=folder, format="binary", n_jobs=2, chunk_duration="1s")
    loaded = si.load(folder)
    assert loaded.get_num_samples() == recording.get_num_samples()
    assert loaded.get_num_channels() == 384
    np.testing.assert_array_equal(loaded.get_channel_locations(),
                                  recording.get_channel_locations())
    # Written by two worker processes, chunk by chunk: the values computed here in one go.
    samples = recording.get_num_samples()
    for start, end in [(0, 60), (970, 1030), (samples - 40, samples)]:
        np.testing.assert_array_equal(loaded.get_traces(start_frame=start, end_frame=end),
                                      denoised.get_traces(start_frame=start, end_frame=end))
    # The preprocessor itself travels as its keyword arguments.
    copy = pickle.loads(pickle.dumps(denoised))
    np.testing.assert_array_equal(copy.get_traces(start_frame=970, end_frame=980),
                                  loaded.get_traces(start_frame=970, end_frame=980))


def test_training_then_denoising_round_trip(recording, tmp_path):
    model_path = train_deepinterpolation(
        recording, tmp_path / "models", "tiny", train_start_s=0.0, train_end_s=0.008,
        test_start_s=0.008, test_end_s=0.012, pre_frame=3, post_frame=3,
        network="unet-ephys-d1-w4", steps=2, batch_size=2, seed=1, verbose=False)
    assert model_path == tmp_path / "models" / "si_tiny_model.dimodel"
    assert model_path.exists()
    spec = deepinterp.load_model(model_path).spec
    assert spec["modality"] == "ephys" and spec["architecture"] == "unet-ephys-d1-w4"
    assert tuple(spec["window"].values()) == (3, 3, 1)

    denoised = deepinterpolate(recording, model_path, pre_frame=3, post_frame=3)
    out = denoised.get_traces()
    assert out.shape == (recording.get_num_samples(), 384) and np.isfinite(out).all()
    np.testing.assert_array_equal(
        np.concatenate([denoised.get_traces(start_frame=a, end_frame=a + 90)
                        for a in range(0, 360, 90)]), out)
    with pytest.raises(AssertionError):
        deepinterpolate(recording, model_path)  # SpikeInterface's 30/30 is not its window

    # Our models follow the command line's semantics (normalisation from the head, depth
    # ranked probe grid, mirrored edge windows): `deepinterp denoise` of the same int16
    # values gives the same numbers, every sample included.
    values = np.clip(np.rint(recording.get_traces() * 8), -32768, 32767).astype("<i2")
    as_int16 = NumpyRecording([values], sampling_frequency=recording.sampling_frequency)
    # Older SpikeInterface returns a new recording, newer ones set the probe in place.
    as_int16 = as_int16.set_probe(neuropixels_probe()) or as_int16
    source, output = tmp_path / "int16.dat", tmp_path / "cli.dat"
    values.tofile(source)
    cli("denoise", source, "--channels", 384, "--sample-rate", recording.sampling_frequency,
        "--model", model_path, "-o", output, "--dtype", "float32")
    expected = np.fromfile(output, dtype="<f4").reshape(-1, 384)
    got = deepinterpolate(as_int16, model_path, pre_frame=3, post_frame=3).get_traces()
    np.testing.assert_array_equal(got, expected)
    # The command line loads the model SpikeInterface's function wrote.
    assert "unet-ephys-d1-w4" in subprocess.run(
        [str(cli_path()), "inspect", str(model_path)], capture_output=True, text=True,
        check=True).stdout
