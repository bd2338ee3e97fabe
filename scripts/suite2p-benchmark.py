#!/usr/bin/env python3
"""Cell detection before and after denoising: Suite2p's ROIs on a simulated two-photon movie,
matched to the simulation's ground-truth neurons.

The movie is `deepinterp simulate 2p` (its `.truth.json` gives every soma's centre and radii,
and how many spikes it fired). The model is trained as a user of the command line would:
`deepinterp train` with nothing but a time cap, then `deepinterp denoise`. Suite2p (functional
detection, `sparsery`, on the CPU, no registration since the simulation has no motion) runs on
the raw movie, on the denoised movie and, as the ceiling, on the clean movie. An ROI matches a
neuron when its median pixel lies within the neuron's larger radius of its centre; each neuron
and each ROI is matched at most once (the closest pairs first).

Suite2p stores frames as int16, so every movie is scaled by the same factor (16) before it is
handed over: the denoised movie's fractional photon counts would otherwise be truncated.

Usage (not in CI; about 20 minutes on 2 cores):
    python scripts/suite2p-benchmark.py [--minutes 8] [--frames 3000] [--work DIR]
needs: pip install suite2p h5py (Suite2p 1.1 brings torch and cellpose; a few GB)
DEEPINTERP_BIN=<binary> (default target/release/deepinterp).
"""

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCALE = 16.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training time cap")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", type=int, default=128, help="frame height and width")
    parser.add_argument("--photons", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--work", type=Path, default=Path("/tmp/deepinterp-suite2p-benchmark"))
    parser.add_argument("--train-args", default="",
                        help='further flags for deepinterp train, e.g. "--steps 8000"')
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    binary = os.environ.get("DEEPINTERP_BIN", str(ROOT / "target/release/deepinterp"))

    noisy, clean, denoised = work / "noisy.h5", work / "clean.h5", work / "denoised.h5"
    model = work / "model.dimodel"
    for path in [noisy, clean, denoised, work / "noisy.truth.json"]:
        path.unlink(missing_ok=True)
    subprocess.run([binary, "simulate", "2p", "-o", str(noisy), "--clean", str(clean),
                    "--frames", str(args.frames), "--height", str(args.size), "--width",
                    str(args.size), "--photons", str(args.photons), "--seed", str(args.seed)],
                   check=True, capture_output=True)
    truth = json.loads((work / "noisy.truth.json").read_text())

    started = time.time()
    train = subprocess.run([binary, "train", str(noisy), "-o", str(model), "--overwrite",
                            "--max-minutes", str(args.minutes), *args.train_args.split()],
                           capture_output=True, text=True, check=True)
    train_seconds = time.time() - started
    ending = [line for line in train.stderr.splitlines() if "steps:" in line]
    print("trained:", ending[-1] if ending else train.stderr[-500:], f"({train_seconds:.0f} s)")
    started = time.time()
    subprocess.run([binary, "denoise", str(noisy), "--model", str(model), "-o", str(denoised)],
                   check=True, capture_output=True)
    denoise_seconds = time.time() - started

    neurons = truth["neurons"]
    active = [n for n in neurons if n["spikes_emitted"] > 0]
    results = {}
    for name, movie in [("raw", noisy), ("denoised", denoised), ("clean", clean)]:
        started = time.time()
        stat, iscell = run_suite2p(movie, work / f"suite2p-{name}", truth["config"])
        results[name] = dict(score(stat, iscell, neurons, active),
                             suite2p_seconds=round(time.time() - started, 1))
        print(name, json.dumps(results[name]))
    raw_found = results["raw"]["matched_cells"]
    denoised_found = results["denoised"]["matched_cells"]
    change = (denoised_found - raw_found) / raw_found if raw_found else float("nan")
    summary = dict(frames=args.frames, size=args.size, photons=args.photons,
                   neurons=len(neurons), active_neurons=len(active), train_args=args.train_args,
                   train_seconds=round(train_seconds), denoise_seconds=round(denoise_seconds),
                   training=ending[-1] if ending else None, results=results,
                   matched_cells_change=change)
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"ground-truth neurons matched by an ROI Suite2p calls a cell, of {len(active)} active: "
          f"raw {raw_found}, denoised {denoised_found} ({100 * change:+.0f}%), "
          f"clean {results['clean']['matched_cells']}")


def run_suite2p(movie: Path, folder: Path, config: dict):
    """Suite2p's whole pipeline (detection, extraction, classification) on one movie."""
    from suite2p import run_s2p
    from suite2p.parameters import default_settings

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with h5py.File(movie, "r") as source, h5py.File(folder / "movie.h5", "w") as target:
        frames = source["data"]
        out = target.create_dataset("data", shape=frames.shape, dtype="int16")
        for start in range(0, frames.shape[0], 500):
            chunk = np.asarray(frames[start:start + 500], dtype=np.float64) * SCALE
            out[start:start + 500] = np.clip(np.round(chunk), -32768, 32767)
    settings = default_settings()
    settings["torch_device"] = "cpu"
    settings["fs"] = config["frame_rate_hz"]
    settings["tau"] = config["indicator_decay_s"]
    settings["run"]["do_registration"] = 0
    settings["run"]["do_regmetrics"] = False
    db = dict(data_path=[str(folder)], input_format="h5", h5py_key="data",
              save_path0=str(folder))
    run_s2p(db=db, settings=settings)
    plane = folder / "suite2p" / "plane0"
    stat = np.load(plane / "stat.npy", allow_pickle=True)
    iscell = np.load(plane / "iscell.npy")[:, 0].astype(bool)
    return stat, iscell


def score(stat, iscell, neurons, active) -> dict:
    """ROIs matched one to one to ground-truth neurons by distance, closest pairs first."""
    def matches(rois):
        pairs = []
        for r, roi in enumerate(rois):
            y, x = roi["med"]
            for n, neuron in enumerate(neurons):
                distance = np.hypot(y - neuron["centre_y"], x - neuron["centre_x"])
                if distance <= neuron["radius_major"]:
                    pairs.append((distance, r, n))
        used_rois, used_neurons = set(), set()
        for _, r, n in sorted(pairs):
            if r not in used_rois and n not in used_neurons:
                used_rois.add(r)
                used_neurons.add(n)
        return used_neurons, len(rois) - len(used_rois)

    active_ids = {n["id"] for n in active}
    cells = [roi for roi, keep in zip(stat, iscell) if keep]
    matched_all, _ = matches(list(stat))
    matched, unmatched = matches(cells)
    return dict(rois=len(stat), cells=len(cells),
                matched_cells=len({n for n in matched if neurons[n]["id"] in active_ids}),
                matched_rois=len({n for n in matched_all if neurons[n]["id"] in active_ids}),
                cells_without_neuron=unmatched)


if __name__ == "__main__":
    main()
