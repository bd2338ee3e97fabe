"""Shared set-up: the `deepinterp` command line (to compare the package with) and small
models trained once per session."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def cli_path() -> Path:
    """The command line built from this checkout (`DEEPINTERP_BIN` overrides)."""
    given = os.environ.get("DEEPINTERP_BIN")
    if given:
        return Path(given)
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "deepinterp"
        if candidate.exists():
            return candidate
    pytest.fail("no deepinterp binary: run `cargo build -p deepinterp-cli` or set DEEPINTERP_BIN")


def cli(*args) -> str:
    """Runs the command line; fails the test with its message when it fails."""
    done = subprocess.run(
        [str(cli_path()), *map(str, args)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"deepinterp {' '.join(map(str, args))}: {done.stderr.strip()}")
    return done.stderr


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deepinterp")


@pytest.fixture(scope="session")
def movie(work):
    """A simulated movie and a small model trained on it."""
    noisy = work / "movie.h5"
    cli("simulate", "2p", "-o", noisy, "--clean", work / "movie-clean.h5", "--frames", 48,
        "--height", 32, "--width", 32, "--seed", 3)
    model = work / "movie.dimodel"
    cli("train", noisy, "-o", model, "--arch", "unet-d1-w4", "--pre-frames", 3,
        "--post-frames", 3, "--steps", 2, "--steps-per-epoch", 2, "--batch-size", 2,
        "--patch-size", 16, "--seed", 1)
    return noisy, model


@pytest.fixture(scope="session")
def probe(work):
    """A simulated 384-channel recording as a headerless raw file, and a small model."""
    import deepinterp
    spikeglx = work / "probe.bin"
    cli("simulate", "ephys", "-o", spikeglx, "--clean", work / "probe-clean.bin",
        "--duration", 0.03, "--seed", 2)
    samples = deepinterp._read(spikeglx, {})
    raw = work / "headerless.dat"
    samples.astype("<i2").tofile(raw)
    model = work / "probe.dimodel"
    cli("train", raw, "--channels", 384, "-o", model, "--arch", "unet-ephys-d1-w4",
        "--pre-frames", 3, "--post-frames", 3, "--omitted-frames", 1, "--steps", 2,
        "--steps-per-epoch", 2, "--batch-size", 2, "--validation-samples", 4, "--seed", 1)
    return raw, samples, model


@pytest.fixture(scope="session")
def run(work):
    """A simulated fMRI run and a briefly trained paper fMRI network."""
    noisy = work / "run.nii.gz"
    cli("simulate", "fmri", "-o", noisy, "--clean", work / "run-clean.nii.gz",
        "--shape", "12,12,10,12", "--seed", 4)
    model = work / "run.dimodel"
    cli("train", noisy, "-o", model, "--steps", 2, "--steps-per-epoch", 2, "--batch-size", 8,
        "--validation-samples", 16, "--seed", 1)
    return noisy, model
