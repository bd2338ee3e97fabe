#!/usr/bin/env python3
"""Spike sorting before and after denoising, on a ground-truth recording from SpikeInterface's
own simulator (not ours): how many units a sorter detects well (accuracy >= 0.8 against the
ground truth), as the paper counts them (+25% on Neuropixels).

The model is trained as a user of the command line would: the recording written as a raw
int16 file (channels in depth order), ``deepinterp train`` with nothing but a time cap. The
denoised recording is deepinterp's SpikeInterface drop-in (``deepinterp.spikeinterface``),
a lazy recording that the sorter reads like any other. The sorter is SpikeInterface's
``tridesclous2``, which runs without external binaries (it needs numba and hdbscan). The clean
recording (the same seed without noise) is sorted too, as the ceiling; and what denoising kept
of each unit is measured against it (amplitude and cosine of mean waveforms, noise levels).

Usage (not in CI; about 20 minutes on 2 cores):
    python scripts/sorting-benchmark.py [--minutes 8] [--seconds 60] [--work DIR]
        [--background-units N] [--train-args "..."] [--fidelity-only]
needs: pip install ./crates/python spikeinterface==0.105.3 numba hdbscan scikit-learn pandas
DEEPINTERP_BIN=<binary> (default target/release/deepinterp) trains the model.
"""

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import spikeinterface.core as sc
import spikeinterface.comparison as scmp
import spikeinterface.sorters as ss

from deepinterp.spikeinterface import deepinterpolate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training time cap")
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--noise-uv", type=float, default=12.0)
    parser.add_argument("--background-units", type=int, default=0,
                        help="small units outside the ground truth (alpha 5-40)")
    parser.add_argument("--sorter", default="tridesclous2")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/deepinterp-sorting-benchmark"))
    parser.add_argument("--train-args", default="",
                        help='further flags for deepinterp train, e.g. "--steps 8000"')
    parser.add_argument("--fidelity-only", action="store_true",
                        help="measure what denoising keeps of the units, without sorting")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    binary = os.environ.get("DEEPINTERP_BIN", str(ROOT / "target/release/deepinterp"))
    rate = 30000.0

    # Two columns of contacts 20 um apart in depth (a Neuropixels-like shank); units of a
    # wide range of amplitudes, many of them near the noise. Background units (optional) are
    # small, mostly distant units that are in the recording but not in the ground truth: the
    # "hash" of a real recording. Without them the clean signal is zero between spikes.
    rng = np.random.default_rng(args.seed)
    alphas = np.concatenate([rng.uniform(40.0, 250.0, args.units),
                             rng.uniform(5.0, 40.0, args.background_units)])

    def generate(noise_uv):
        return sc.generate_ground_truth_recording(
            durations=[args.seconds],
            sampling_frequency=rate,
            num_channels=args.channels,
            num_units=args.units + args.background_units,
            generate_probe_kwargs=dict(num_columns=2, xpitch=32, ypitch=20,
                                       contact_shapes="square",
                                       contact_shape_params=dict(width=12)),
            generate_templates_kwargs=dict(unit_params=dict(alpha=alphas)),
            generate_sorting_kwargs=dict(firing_rates=(2.0, 12.0), refractory_period_ms=4.0),
            noise_kwargs=dict(noise_levels=noise_uv, strategy="on_the_fly"),
            seed=args.seed,
        )

    recording, truth = generate(args.noise_uv)
    # The same seed without noise: the clean recording, to measure what denoising kept.
    clean, _ = generate(0.0)
    truth = truth.select_units(truth.unit_ids[:args.units])
    recording = recording.save(folder=work / "recording", overwrite=True, n_jobs=1,
                               chunk_duration="1s", progress_bar=False)

    # The raw file deepinterp trains on: int16 at 0.25 uV per step, channels by depth.
    locations = recording.get_channel_locations()
    order = np.lexsort((np.arange(len(locations)), locations[:, 1]))
    raw = work / "recording.dat"
    with open(raw, "wb") as out:
        step = int(rate)
        for start in range(0, recording.get_num_samples(), step):
            traces = recording.get_traces(start_frame=start, end_frame=start + step)
            np.clip(np.round(traces[:, order] * 4.0), -32768, 32767).astype("<i2").tofile(out)
    model = work / "model.dimodel"
    started = time.time()
    train = subprocess.run(
        [binary, "train", str(raw), "--channels", str(args.channels), "--sample-rate",
         str(int(rate)), "-o", str(model), "--max-minutes", str(args.minutes), "--overwrite",
         *args.train_args.split()],
        capture_output=True, text=True, check=True)
    train_seconds = time.time() - started
    ending = [line for line in train.stderr.splitlines() if "steps:" in line]
    print("trained:", ending[-1] if ending else train.stderr[-500:], f"({train_seconds:.0f} s)")

    denoised = deepinterpolate(recording, str(model))
    if args.fidelity_only:
        fidelity = waveform_fidelity(recording, denoised, clean, truth, rate)
        print(json.dumps(dict(train_args=args.train_args, train_seconds=round(train_seconds),
                              training=ending[-1] if ending else None, fidelity=fidelity)))
        return
    started = time.time()
    denoised = denoised.save(folder=work / "denoised", overwrite=True, n_jobs=1,
                             chunk_duration="1s", progress_bar=False)
    denoise_seconds = time.time() - started

    results = {"fidelity": waveform_fidelity(recording, denoised, clean, truth, rate)}
    print("fidelity", json.dumps(results["fidelity"]))
    # The clean recording is the control: what the sorter makes of the same units with no
    # noise at all.
    clean = clean.save(folder=work / "clean", overwrite=True, n_jobs=1, chunk_duration="1s",
                       progress_bar=False)
    for name, rec in [("raw", recording), ("denoised", denoised), ("clean", clean)]:
        started = time.time()
        sorting = ss.run_sorter(args.sorter, rec, folder=work / f"sorting-{name}",
                                remove_existing_folder=True, verbose=False)
        comparison = scmp.compare_sorter_to_ground_truth(
            truth, sorting, exhaustive_gt=args.background_units == 0)
        well = comparison.get_well_detected_units(well_detected_score=0.8)
        performance = comparison.get_performance()
        results[name] = dict(
            sorted_units=len(sorting.unit_ids),
            well_detected=len(well),
            mean_accuracy=float(performance["accuracy"].mean()),
            # Units of the background are not in the ground truth: with them, a unit that
            # matches none of the ground truth's is not known to be false.
            false_positive_units=(len(comparison.get_false_positive_units())
                                  if args.background_units == 0 else None),
            sorting_seconds=round(time.time() - started, 1),
        )
        print(name, json.dumps(results[name]))
    raw_count = results["raw"]["well_detected"]
    denoised_count = results["denoised"]["well_detected"]
    change = (denoised_count - raw_count) / raw_count if raw_count else float("nan")
    summary = dict(
        ground_truth_units=args.units, channels=args.channels, seconds=args.seconds,
        noise_uv=args.noise_uv, background_units=args.background_units, sorter=args.sorter,
        train_args=args.train_args,
        train_seconds=round(train_seconds),
        denoise_seconds=round(denoise_seconds), training=ending[-1] if ending else None,
        results=results, well_detected_change=change)
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"well-detected units (accuracy >= 0.8) of {args.units}: raw {raw_count}, "
          f"denoised {denoised_count} ({100 * change:+.0f}%), "
          f"clean {results['clean']['well_detected']}")


def waveform_fidelity(recording, denoised, clean, truth, rate):
    """What denoising kept of each ground-truth unit over ten seconds in the middle: the
    peak amplitude and cosine of its mean waveform against the clean recording's; the noise
    left at the unit's peak (sample and channel), spike by spike (median over units of the
    RMS difference from the clean value); and the noise levels (median absolute deviation
    after a 300-6000 Hz band-pass, as sorters measure them) that a sorter's thresholds are
    relative to."""
    import spikeinterface.preprocessing as spre

    start = int(recording.get_num_samples() // 2)
    stop = start + int(10 * rate)
    half = int(rate / 1000)
    traces = {name: rec.get_traces(start_frame=start, end_frame=stop).astype(np.float64)
              for name, rec in [("raw", recording), ("denoised", denoised), ("clean", clean)]}
    ratios, cosines, peak_errors = [], [], {"raw": [], "denoised": []}
    for unit in truth.unit_ids:
        times = truth.get_unit_spike_train(unit)
        times = times[(times >= start + half) & (times < stop - half)] - start
        if len(times) < 3:
            continue
        mean = {name: np.mean([t[i - half:i + half] for i in times], axis=0)
                for name, t in traces.items()}
        channel = np.argmax(np.abs(mean["clean"]).max(axis=0))
        peak = np.argmax(np.abs(mean["clean"][:, channel]))
        ratios.append(mean["denoised"][peak, channel] / mean["clean"][peak, channel])
        at_peak = times - half + peak
        for name in peak_errors:
            error = traces[name][at_peak, channel] - traces["clean"][at_peak, channel]
            peak_errors[name].append(float(np.sqrt(np.mean(error ** 2))))
        a, b = mean["clean"].ravel(), mean["denoised"].ravel()
        cosines.append(float(a @ b / np.sqrt((a @ a) * (b @ b))))
    noise = {name: float(np.median(sc.get_noise_levels(
        spre.bandpass_filter(rec, freq_min=300, freq_max=6000), return_in_uV=False)))
        for name, rec in [("raw", recording), ("denoised", denoised), ("clean", clean)]}
    return dict(units=len(ratios), median_amplitude_ratio=float(np.median(ratios)),
                median_waveform_cosine=float(np.median(cosines)),
                error_rms_raw=float(np.std(traces["raw"] - traces["clean"])),
                error_rms_denoised=float(np.std(traces["denoised"] - traces["clean"])),
                peak_error_rms={name: float(np.median(e)) for name, e in peak_errors.items()},
                noise_level=noise)


if __name__ == "__main__":
    main()
