"""The Python package against the command line: the same numbers for arrays and files of
every modality, memmaps streamed, the GIL released, errors as exceptions."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import deepinterp
from conftest import cli


def test_a_movie_array_denoises_as_the_cli_does_its_file(movie, work):
    noisy, model = movie
    expected_path = work / "movie-cli.h5"
    cli("denoise", noisy, "-o", expected_path, "--model", model)
    expected = deepinterp._read(expected_path, {})
    array = deepinterp._read(noisy, {}).astype(np.int16)
    denoised = deepinterp.denoise(array, model, progress=False)
    assert denoised.dtype == np.float32 and denoised.shape == array.shape
    np.testing.assert_array_equal(denoised, expected)
    # A path gives the same, into memory or into a file.
    np.testing.assert_array_equal(deepinterp.denoise(noisy, model, progress=False), expected)
    out = work / "movie-py.h5"
    assert deepinterp.denoise(noisy, model, output=out, progress=False) is None
    np.testing.assert_array_equal(deepinterp._read(out, {}), expected)


def test_settings_reach_the_pipeline(movie, work):
    noisy, model = movie
    expected_path = work / "movie-drop.h5"
    cli("denoise", noisy, "-o", expected_path, "--model", model, "--edges", "drop",
        "--start-frame", 5)
    expected = deepinterp._read(expected_path, {})
    got = deepinterp.denoise(deepinterp._read(noisy, {}), model, edges="drop", start_frame=5,
                             progress=False)
    np.testing.assert_array_equal(got, expected)


def test_an_extracellular_array_denoises_as_the_cli_does_its_file(probe, work):
    raw, samples, model = probe
    expected_path = work / "probe-cli.dat"
    cli("denoise", raw, "--channels", 384, "-o", expected_path, "--model", model,
        "--dtype", "float32")
    expected = np.fromfile(expected_path, dtype="<f4").reshape(-1, 384)
    denoised = deepinterp.denoise(samples.astype(np.int16), model, sample_rate=30000.0,
                                  progress=False)
    assert denoised.shape == samples.shape
    np.testing.assert_array_equal(denoised, expected)


def test_an_fmri_array_denoises_as_the_cli_does_its_file(run, work):
    noisy, model = run
    expected_path = work / "run-cli.nii"
    cli("denoise", noisy, "-o", expected_path, "--model", model)
    expected = deepinterp._read(expected_path, {})
    array = deepinterp._read(noisy, {})
    assert array.shape == (12, 12, 10, 12)
    denoised = deepinterp.denoise(array, model, progress=False)
    np.testing.assert_array_equal(denoised, expected)
    # A C-ordered copy is the same run.
    np.testing.assert_array_equal(
        deepinterp.denoise(np.ascontiguousarray(array), model, progress=False), expected
    )


def test_a_memmap_is_read_from_its_file(movie, work):
    noisy, model = movie
    values = deepinterp._read(noisy, {})
    path = work / "movie.raw"
    # An offset inside the file and a slice of the memmap, as users make them.
    header = 4096 + 20
    with open(path, "wb") as f:
        f.write(b"\0" * header)
        values.astype("<f4").tofile(f)
    mapped = np.memmap(path, dtype="<f4", mode="r", offset=header, shape=values.shape)
    np.testing.assert_array_equal(
        deepinterp.denoise(mapped, model, progress=False),
        deepinterp.denoise(values, model, progress=False),
    )
    part = mapped[8:40]
    assert isinstance(part, np.memmap)
    np.testing.assert_array_equal(
        deepinterp.denoise(part, model, progress=False),
        deepinterp.denoise(np.array(part), model, progress=False),
    )


def test_other_python_threads_run_during_a_call(movie):
    noisy, model = movie
    array = np.tile(deepinterp._read(noisy, {}), (10, 4, 4))
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    started = time.perf_counter()
    deepinterp.denoise(array, model, progress=False)
    finished = time.perf_counter()
    stop.set()
    counter.join()
    during = [t for t in ticks if started < t < finished]
    # Ticks every ~1 ms while the call ran: a held GIL would allow almost none.
    assert finished - started > 0.2
    assert len(during) > 0.3 * (finished - started) / 0.002, (len(during), finished - started)


def test_progress_reaches_a_callback(movie):
    noisy, model = movie
    events = []
    deepinterp.denoise(noisy, model, progress=lambda *event: events.append(event))
    kinds = [kind for kind, *_ in events]
    assert kinds[0] == "begin" and "advance" in kinds and "end" in kinds
    assert any(kind == "line" and "denoised" in text for kind, _, _, text in events)
    done = [d for kind, d, _, _ in events if kind == "advance"]
    assert done == sorted(done) and done[-1] == events[0][2]


def test_errors_are_exceptions_with_one_line_messages(movie, work):
    noisy, model = movie
    with pytest.raises(deepinterp.FileError) as missing:
        deepinterp.denoise(work / "absent.h5", model, progress=False)
    assert isinstance(missing.value, OSError)
    assert "absent.h5" in str(missing.value) and "\n" not in str(missing.value)
    with pytest.raises(deepinterp.InvalidInputError) as wrong:
        deepinterp.denoise(noisy, model, edges="sideways", progress=False)
    assert isinstance(wrong.value, ValueError) and "sideways" in str(wrong.value)
    with pytest.raises(ValueError, match="fMRI runs only"):
        deepinterp.denoise(noisy, model, mode="parity", progress=False)
    # A movie model refuses an extracellular array.
    with pytest.raises(deepinterp.InvalidInputError, match="ephys recording"):
        deepinterp.denoise(np.zeros((50, 384), np.int16), model, sample_rate=30000.0,
                           progress=False)
    # The output is never written over the input.
    with pytest.raises(deepinterp.DeepInterpError, match="input"):
        deepinterp.denoise(noisy, model, output=noisy, progress=False)


def test_train_inspect_load_and_predict(movie, work):
    noisy, _ = movie
    model_path = work / "python.dimodel"
    report = deepinterp.train(noisy, model_path, arch="unet-d1-w4", pre_frames=2,
                              post_frames=2, steps=2, steps_per_epoch=1, batch_size=2,
                              patch_size=16, seed=5, progress=False)
    assert report["steps"] == 2 and len(report["history"]) == 2
    assert report["ending"] == "steps", report
    assert "validation_fall_per_1000_steps" in report
    described = deepinterp.inspect(model_path)["training"]["ending"]
    assert described["ending"] == "steps" and described["steps"] == 2, described
    assert os.path.exists(report["loss_csv"]) and model_path.exists()
    with pytest.raises(deepinterp.InvalidInputError, match="already here"):
        deepinterp.train(noisy, model_path, steps=1, progress=False)
    # The command line reads what Python trained.
    cli("denoise", noisy, "-o", work / "python-model-cli.h5", "--model", model_path)
    described = deepinterp.inspect(model_path)
    assert described["kind"] == "model" and described["architecture"] == "unet-d1-w4"
    assert deepinterp.inspect(noisy)["frames"] == 48
    model = deepinterp.load_model(model_path)
    assert model.window == (2, 2, 0) and model.spec["modality"] == "two-photon"
    batch = np.random.default_rng(0).normal(size=(3, 16, 16, 4)).astype(np.float32)
    out = model.predict(batch)
    assert out.shape == (3, 16, 16, 1)
    np.testing.assert_allclose(
        model.predict(np.moveaxis(batch, -1, 1), channels_last=False)[:, 0], out[..., 0]
    )


def test_finetune_and_evaluate(movie, work):
    noisy, model = movie
    clean = work / "movie-clean.h5"
    tuned = work / "tuned.dimodel"
    report = deepinterp.finetune(noisy, tuned, model, steps=2, steps_per_epoch=2,
                                 batch_size=2, patch_size=16, progress=False)
    assert report["validation_loss_before"] is not None
    denoised = work / "tuned-denoised.h5"
    deepinterp.denoise(noisy, tuned, output=denoised, progress=False)
    figures = deepinterp.evaluate(noisy, denoised, clean=clean, report=work / "report.json",
                                  progress=False)
    assert figures == json.loads((work / "report.json").read_text())
    assert figures["snr_gain_median"] > 0


MEMMAP_BYTES = int(os.environ.get("DEEPINTERP_MEMMAP_BYTES", 2 * 1024**3))


def test_a_large_memmap_is_denoised_in_little_memory(movie, work):
    """A memmap of 2 GB (DEEPINTERP_MEMMAP_BYTES) denoised into a file: the peak resident
    memory of the process stays far below the recording's size."""
    _, model = movie
    side = 256
    frames = MEMMAP_BYTES // (side * side * 4)
    path = work / "large.raw"
    mapped = np.memmap(path, dtype="<f4", mode="w+", shape=(frames, side, side))
    pattern = np.random.default_rng(1).poisson(5.0, size=(64, side, side)).astype("<f4")
    for start in range(0, frames, 64):
        count = min(64, frames - start)
        mapped[start:start + count] = pattern[:count]
    mapped.flush()
    del mapped
    output = work / "large-denoised.h5"
    script = (
        "import numpy as np, deepinterp\n"
        f"m = np.memmap({str(path)!r}, dtype='<f4', mode='r', shape=({frames}, {side}, {side}))\n"
        f"deepinterp.denoise(m, {str(model)!r}, output={str(output)!r}, batch_size=8, progress=False)\n"
        # VmHWM, not getrusage: a child's ru_maxrss keeps the forked parent's peak.
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak_bytes = int(done.stdout.strip()) * 1024
    assert deepinterp.inspect(output)["frames"] == frames
    assert peak_bytes < MEMMAP_BYTES / 4, (peak_bytes, MEMMAP_BYTES)
    print(f"memmap of {MEMMAP_BYTES / 2**30:.2f} GiB: peak RSS {peak_bytes / 2**20:.0f} MiB")
    os.remove(path)
    os.remove(output)


def test_ctrl_c_stops_a_call_and_leaves_no_output(movie, work):
    """SIGINT during a call raises KeyboardInterrupt once the call has stopped, and the
    unfinished output is gone."""
    import signal

    _, model = movie
    output = work / "interrupted.h5"
    # "started" comes from the call's first progress report, which then waits for the
    # signal, so the signal lands while the call runs however fast this machine denoises (a
    # fixed delay, and then a signal sent right after "started", both raced the call's end).
    # The child installs Python's Ctrl-C handler itself: a test run started in the background
    # by a shell inherits SIGINT ignored, and Python then leaves it ignored.
    script = (
        "import signal, sys, time, numpy as np, deepinterp\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "movie = np.random.default_rng(0).poisson(5.0, (600, 256, 256)).astype(np.float32)\n"
        "said = []\n"
        "def progress(kind, done, total, text):\n"
        "    if kind == 'advance' and not said:\n"
        "        said.append(True)\n"
        "        print('started', flush=True)\n"
        "        for _ in range(600):\n"
        "            time.sleep(0.1)\n"
        "try:\n"
        f"    deepinterp.denoise(movie, {str(model)!r}, output={str(output)!r}, progress=progress)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n"
        "print('finished', flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    child.send_signal(signal.SIGINT)
    rest, _ = child.communicate(timeout=120)
    assert child.returncode == 3 and "interrupted" in rest, (child.returncode, rest)
    leftovers = [p.name for p in work.iterdir() if p.name.startswith("interrupted")]
    assert leftovers == [], leftovers
