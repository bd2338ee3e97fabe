//! Ephys evaluator behaviour on synthetic spike-band recordings built here: units with known
//! templates added at known times onto white noise of known RMS. Checks RMS noise despite
//! spikes, noise reduction, spike fidelity of exact, halved and partly denoised outputs,
//! chunking invariance, edge spikes, offsets, JSON round trips, and input checks.

use deepinterp_metrics::{
    EphysEvalSettings, EphysEvaluator, EphysReport, GroundTruthSpike, MetricsError, UnitChannels,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

const CHANNELS: usize = 8;
const RATE_HZ: f64 = 30_000.0;
const NOISE_STD: f64 = 10.0;

/// Template on the peak channel, from 2 samples before the spike sample to 5 after: a sharp
/// trough then a rebound, every value far outside ±50 µV so that spikes barely touch the
/// RMS-noise samples (neighbour channels carry 0.75 of it, units scale it by 0.85 to 1.2).
const PEAK_TEMPLATE: [f32; 8] = [-100.0, -180.0, -240.0, -180.0, -100.0, 120.0, 120.0, 120.0];
const TEMPLATE_START: i64 = -2;
const NEIGHBOUR_SCALE: f32 = 0.75;

/// A synthetic recording: clean signal, the noise to add, the ground truth.
struct Recording {
    samples: usize,
    clean: Vec<f32>,
    noise: Vec<f32>,
    spikes: Vec<GroundTruthSpike>,
    units: Vec<UnitChannels>,
}

impl Recording {
    /// `noisy = clean + noise`.
    fn noisy(&self) -> Vec<f32> {
        self.with_noise(1.0)
    }

    /// `clean + scale × noise`.
    fn with_noise(&self, scale: f32) -> Vec<f32> {
        self.clean
            .iter()
            .zip(&self.noise)
            .map(|(clean, noise)| clean + scale * noise)
            .collect()
    }

    fn scaled_clean(&self, scale: f32) -> Vec<f32> {
        self.clean.iter().map(|value| scale * value).collect()
    }
}

/// Three units (peaks on channels 1, 4 and 6, each with its two neighbours) firing every
/// 1500 samples, plus `extra` spikes, on `samples` samples of Gaussian noise.
fn recording(samples: usize, extra: &[GroundTruthSpike]) -> Recording {
    let units = vec![
        UnitChannels {
            peak_channel: 1,
            channels: vec![0, 1, 2],
        },
        UnitChannels {
            peak_channel: 4,
            channels: vec![3, 4, 5],
        },
        UnitChannels {
            peak_channel: 6,
            channels: vec![5, 6, 7],
        },
    ];
    let scales = [1.0f32, 0.85, 1.2];
    let mut spikes: Vec<GroundTruthSpike> = (0..units.len() as u32)
        .flat_map(|unit| {
            (0..)
                .map(move |k| 400 + 137 * u64::from(unit) + 1500 * k)
                .take_while(|&sample| sample < samples as u64)
                .map(move |sample| GroundTruthSpike { sample, unit })
        })
        .collect();
    spikes.extend_from_slice(extra);

    let mut clean = vec![0.0f32; samples * CHANNELS];
    for spike in &spikes {
        let unit = &units[spike.unit as usize];
        for &channel in &unit.channels {
            let gain = scales[spike.unit as usize]
                * if channel == unit.peak_channel {
                    1.0
                } else {
                    NEIGHBOUR_SCALE
                };
            for (offset, value) in PEAK_TEMPLATE.iter().enumerate() {
                let sample = spike.sample as i64 + TEMPLATE_START + offset as i64;
                if (0..samples as i64).contains(&sample) {
                    clean[sample as usize * CHANNELS + channel] += gain * value;
                }
            }
        }
    }
    Recording {
        samples,
        clean,
        noise: gaussian_noise(samples * CHANNELS, NOISE_STD, 7),
        spikes,
        units,
    }
}

fn gaussian_noise(count: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, std).expect("valid std");
    (0..count).map(|_| normal.sample(&mut rng) as f32).collect()
}

fn settings() -> EphysEvalSettings {
    EphysEvalSettings::new(CHANNELS, RATE_HZ)
}

/// Evaluates whole buffers, pushed in chunks of the given sizes (cycled).
fn evaluate_in_chunks(
    recording: &Recording,
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
    chunks: &[usize],
) -> EphysReport {
    let mut evaluator = EphysEvaluator::new(
        settings(),
        recording.spikes.clone(),
        recording.units.clone(),
        clean.is_some(),
    )
    .expect("valid settings");
    let mut start = 0;
    for &size in chunks.iter().cycle() {
        if start == recording.samples {
            break;
        }
        let count = size.min(recording.samples - start);
        let range = start * CHANNELS..(start + count) * CHANNELS;
        evaluator
            .push(
                &noisy[range.clone()],
                &denoised[range.clone()],
                clean.map(|clean| &clean[range]),
                count,
            )
            .expect("valid push");
        start += count;
    }
    evaluator.finish().expect("samples were pushed")
}

fn evaluate(recording: &Recording, denoised: &[f32]) -> EphysReport {
    evaluate_in_chunks(
        recording,
        &recording.noisy(),
        denoised,
        Some(&recording.clean),
        &[recording.samples],
    )
}

fn assert_close(actual: f64, expected: f64, relative: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= relative * expected.abs(),
        "{what}: {actual} is not within {relative} of {expected}"
    );
}

#[test]
fn rms_noise_matches_the_noise_despite_spikes_and_quarter_noise_reduces_it_fourfold() {
    let recording = recording(60_000, &[]);
    let report = evaluate(&recording, &recording.with_noise(0.25));

    assert_eq!(report.samples, 60_000);
    assert_eq!(report.channels, CHANNELS);
    assert_eq!(report.offset_window_samples, 30_000);
    assert_close(report.duration_s, 2.0, 1e-12, "duration");
    for (channel, &rms) in report.rms_noise_noisy_uv.iter().enumerate() {
        assert_close(
            rms,
            NOISE_STD,
            0.05,
            &format!("noisy RMS of channel {channel}"),
        );
    }
    assert_close(
        report.median_rms_noise_noisy_uv,
        NOISE_STD,
        0.05,
        "median noisy RMS",
    );
    assert_close(
        report.median_rms_noise_denoised_uv,
        NOISE_STD / 4.0,
        0.05,
        "median denoised RMS",
    );
    assert_close(report.rms_noise_reduction, 4.0, 0.05, "RMS reduction");
    assert!(report.noise_sample_fraction_noisy > 0.97);
    // Without the threshold the spikes would inflate the peak channel's RMS by half.
    let noisy = recording.noisy();
    let plain_rms = (noisy.iter().skip(1).step_by(CHANNELS))
        .map(|&value| f64::from(value).powi(2))
        .sum::<f64>()
        / recording.samples as f64;
    assert!(plain_rms.sqrt() > 1.3 * NOISE_STD, "{}", plain_rms.sqrt());

    let error = report.error.expect("clean data");
    assert_close(error.mse_noisy, NOISE_STD * NOISE_STD, 0.02, "noisy MSE");
    assert_close(error.l2_reduction, 16.0, 1e-4, "L2 reduction");
    assert_close(error.l1_reduction, 4.0, 1e-4, "L1 reduction");

    let spikes = report.spikes.expect("clean data and spikes");
    assert_eq!(spikes.spikes_measured, recording.spikes.len());
    assert_eq!(spikes.units_measured, 3);
    assert!(
        spikes.cosine_noisy_mean < spikes.cosine_denoised_mean,
        "noisy cosine {} should be below denoised cosine {}",
        spikes.cosine_noisy_mean,
        spikes.cosine_denoised_mean
    );
    assert!(spikes.cosine_denoised_mean > 0.95);
    assert!(spikes.unit_mean_cosine_denoised > 0.999);
    assert!(spikes.unit_mean_cosine_noisy < spikes.unit_mean_cosine_denoised);
    assert_close(spikes.amplitude_ratio_mean, 1.0, 0.02, "amplitude ratio");
    let troughs = [-240.0, -204.0, -288.0];
    for (unit, trough) in spikes.per_unit.iter().zip(troughs) {
        assert_close(unit.clean_trough_uv, trough, 1e-6, "clean trough");
    }
}

#[test]
fn exact_denoiser_has_unit_cosines_and_amplitude_ratios() {
    let recording = recording(20_000, &[]);
    let report = evaluate(&recording, &recording.clean);
    let spikes = report.spikes.expect("clean data and spikes");
    assert_close(spikes.cosine_denoised_mean, 1.0, 1e-12, "spike cosine");
    assert_close(spikes.unit_mean_cosine_denoised, 1.0, 1e-12, "unit cosine");
    assert_eq!(spikes.amplitude_ratio_mean, 1.0);
    assert_eq!(spikes.amplitude_ratio_min, 1.0);
    assert_eq!(spikes.amplitude_ratio_max, 1.0);
    for unit in &spikes.per_unit {
        assert_close(unit.cosine, 1.0, 1e-12, "unit cosine");
        assert_close(unit.spike_cosine_mean, 1.0, 1e-12, "unit spike cosine");
        assert_eq!(unit.amplitude_ratio, 1.0);
    }
    assert!(spikes.cosine_noisy_mean < 1.0);
    let error = report.error.expect("clean data");
    assert_eq!(error.mse_denoised, 0.0);
    assert!(error.l2_reduction.is_infinite());
    assert!(report.notes.iter().any(|note| note.contains("infinite")));
}

#[test]
fn halved_denoiser_halves_amplitudes_and_keeps_shapes() {
    let recording = recording(20_000, &[]);
    let report = evaluate(&recording, &recording.scaled_clean(0.5));
    let spikes = report.spikes.expect("clean data and spikes");
    assert_close(spikes.cosine_denoised_mean, 1.0, 1e-12, "spike cosine");
    assert_close(spikes.unit_mean_cosine_denoised, 1.0, 1e-12, "unit cosine");
    assert_close(spikes.amplitude_ratio_mean, 0.5, 1e-12, "mean ratio");
    assert_close(spikes.amplitude_ratio_min, 0.5, 1e-12, "min ratio");
    assert_close(spikes.amplitude_ratio_max, 0.5, 1e-12, "max ratio");
    for unit in &spikes.per_unit {
        assert_close(
            unit.denoised_trough_uv,
            0.5 * unit.clean_trough_uv,
            1e-12,
            "trough",
        );
    }
}

#[test]
fn report_does_not_depend_on_chunking() {
    let recording = recording(30_000, &[]);
    let noisy = recording.noisy();
    let denoised = recording.with_noise(0.3);
    let whole = evaluate_in_chunks(
        &recording,
        &noisy,
        &denoised,
        Some(&recording.clean),
        &[30_000],
    );
    for chunks in [&[7][..], &[333], &[1, 89, 90, 91, 4999]] {
        let chunked = evaluate_in_chunks(
            &recording,
            &noisy,
            &denoised,
            Some(&recording.clean),
            chunks,
        );
        assert_eq!(whole, chunked, "chunks of {chunks:?}");
    }
    // Without clean data too, with an offset window that ends inside a chunk.
    let whole = evaluate_in_chunks(&recording, &noisy, &denoised, None, &[30_000]);
    let chunked = evaluate_in_chunks(&recording, &noisy, &denoised, None, &[333]);
    assert_eq!(whole, chunked);
}

#[test]
fn spikes_at_the_edges_are_skipped_not_measured() {
    let samples = 2_000;
    let spike = |sample, unit| GroundTruthSpike { sample, unit };
    let settings = settings();
    let (before, after) = (
        settings.snippet_before as u64,
        settings.snippet_after as u64,
    );
    assert_eq!((before, after), (30, 60));
    let edges = [
        spike(0, 0),
        spike(before - 1, 1),
        spike(before, 2),
        spike(samples - after, 2),
        spike(samples - after + 1, 0),
        spike(samples - 1, 1),
        spike(10 * samples, 1),
    ];
    let recording = recording(samples as usize, &edges);
    let report = evaluate(&recording, &recording.clean);
    let spikes = report.spikes.expect("clean data and spikes");
    assert_eq!(spikes.spikes_total, recording.spikes.len());
    assert_eq!(spikes.spikes_skipped_start, 2);
    assert_eq!(spikes.spikes_skipped_end, 3);
    assert_eq!(spikes.spikes_measured, recording.spikes.len() - 5);
    let per_unit: Vec<(u32, usize)> = spikes
        .per_unit
        .iter()
        .map(|unit| (unit.unit, unit.spikes))
        .collect();
    // Regular spikes at 400 + 1500k (+137 per unit): 2, 1 and 1 of them, plus the two edge
    // spikes of unit 2 that just fit.
    assert_eq!(per_unit, vec![(0, 2), (1, 1), (2, 3)]);
    assert!(report.notes.iter().any(|note| note.contains("5 of")));

    // A recording shorter than a snippet: every spike skipped, nothing measured, no panic.
    let short = Recording {
        samples: 50,
        clean: recording.clean[..50 * CHANNELS].to_vec(),
        noise: recording.noise[..50 * CHANNELS].to_vec(),
        spikes: vec![spike(10, 0), spike(40, 1)],
        units: recording.units.clone(),
    };
    let report = evaluate(&short, &short.clean);
    let spikes = report.spikes.expect("clean data and spikes");
    assert_eq!(spikes.spikes_measured, 0);
    assert_eq!(
        (spikes.spikes_skipped_start, spikes.spikes_skipped_end),
        (1, 1)
    );
    assert!(spikes.per_unit.is_empty());
    assert!(spikes.cosine_denoised_mean.is_nan());
}

#[test]
fn channel_offsets_are_removed_for_each_stream() {
    // No spikes, large DC offsets; the denoised stream adds its own bias.
    let samples = 12_000;
    let offsets: Vec<f32> = (0..CHANNELS).map(|c| -300.0 + 100.0 * c as f32).collect();
    let noise = gaussian_noise(samples * CHANNELS, NOISE_STD, 11);
    let noisy: Vec<f32> = noise
        .iter()
        .enumerate()
        .map(|(i, noise)| offsets[i % CHANNELS] + noise)
        .collect();
    let denoised: Vec<f32> = noisy.iter().map(|value| value + 30.0).collect();
    let evaluate_with = |settings: EphysEvalSettings| {
        let mut evaluator =
            EphysEvaluator::new(settings, Vec::new(), Vec::new(), false).expect("valid");
        evaluator
            .push(&noisy, &denoised, None, samples)
            .expect("valid push");
        evaluator.finish().expect("samples were pushed")
    };

    // The recording (0.4 s) is shorter than the 1 s window: offsets use every sample.
    let report = evaluate_with(settings());
    assert_eq!(report.offset_window_samples, samples);
    assert!(report.error.is_none() && report.spikes.is_none());
    for (channel, &offset) in offsets.iter().enumerate() {
        let offset = f64::from(offset);
        assert!((report.offsets_noisy_uv[channel] - offset).abs() < 0.5);
        assert!((report.offsets_denoised_uv[channel] - offset - 30.0).abs() < 0.5);
        assert_close(report.rms_noise_noisy_uv[channel], NOISE_STD, 0.05, "noisy");
        assert_close(
            report.rms_noise_denoised_uv[channel],
            NOISE_STD,
            0.05,
            "denoised",
        );
    }
    assert_close(report.rms_noise_reduction, 1.0, 1e-3, "reduction");

    // A shorter window, ending inside the recording, finds the same offsets.
    let mut short_window = settings();
    short_window.offset_window_s = 0.1;
    let report = evaluate_with(short_window);
    assert_eq!(report.offset_window_samples, 3_000);
    assert!((report.offsets_noisy_uv[0] + 300.0).abs() < 1.0);

    // A zero window is the paper's |x| <= 50 uV: channels far from 0 have no noise samples.
    let mut no_offset = settings();
    no_offset.offset_window_s = 0.0;
    let report = evaluate_with(no_offset);
    assert_eq!(report.offset_window_samples, 0);
    assert_close(
        report.rms_noise_noisy_uv[3],
        NOISE_STD,
        0.05,
        "zero-offset channel",
    );
    assert!(report.rms_noise_noisy_uv[0].is_nan());
    assert!(report.median_rms_noise_noisy_uv.is_finite());
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("no sample within"))
    );
}

#[test]
fn report_round_trips_through_json_with_undefined_values() {
    let recording = recording(5_000, &[]);
    let zeros = vec![0.0f32; recording.clean.len()];
    let report = evaluate(&recording, &zeros);
    // A silent output: zero RMS (infinite reduction) and undefined cosines.
    assert_eq!(report.median_rms_noise_denoised_uv, 0.0);
    assert!(report.rms_noise_reduction.is_infinite());
    let spikes = report.spikes.as_ref().expect("clean data and spikes");
    assert!(spikes.cosine_denoised_mean.is_nan());
    assert!(spikes.unit_mean_cosine_denoised.is_nan());

    // Non-finite values become null and come back as NaN (JSON float parsing is best-effort,
    // so finite values are compared with a tolerance).
    let json = serde_json::to_string(&report).expect("serializable");
    assert!(json.contains("\"rms_noise_reduction\":null"));
    let back: EphysReport = serde_json::from_str(&json).expect("deserializable");
    assert!(back.rms_noise_reduction.is_nan());
    let back_spikes = back.spikes.as_ref().expect("kept");
    assert!(back_spikes.cosine_denoised_mean.is_nan());
    assert_eq!(back_spikes.per_unit.len(), spikes.per_unit.len());
    assert_eq!(back.rms_noise_noisy_uv.len(), CHANNELS);
    for (back, original) in back
        .rms_noise_noisy_uv
        .iter()
        .zip(&report.rms_noise_noisy_uv)
    {
        assert_close(*back, *original, 1e-14, "RMS after round trip");
    }
    assert_eq!(back.settings, report.settings);
    assert_eq!(back.notes, report.notes);
}

#[test]
fn peak_channel_is_added_when_missing_and_units_without_spikes_are_left_out() {
    let samples = 3_000;
    let mut recording = recording(samples, &[]);
    recording.units[0].channels = vec![0, 2];
    recording.units.push(UnitChannels {
        peak_channel: 3,
        channels: vec![],
    });
    let report = evaluate(&recording, &recording.clean);
    let spikes = report.spikes.expect("clean data and spikes");
    assert_eq!(spikes.units_measured, 3);
    assert_eq!(spikes.per_unit[0].peak_channel, 1);
    assert_eq!(spikes.per_unit[0].amplitude_ratio, 1.0);
    assert_close(spikes.per_unit[0].clean_trough_uv, -240.0, 1e-9, "trough");
}

#[test]
fn invalid_inputs_are_rejected_with_clear_messages() {
    let message = |error: MetricsError| error.to_string();
    let units = || {
        vec![
            UnitChannels {
                peak_channel: 0,
                channels: vec![0, 1],
            };
            2
        ]
    };
    let spike = |sample, unit| GroundTruthSpike { sample, unit };

    let error = EphysEvaluator::new(settings(), vec![spike(90, 0), spike(50, 3)], units(), true)
        .expect_err("unknown unit");
    assert_eq!(
        message(error),
        "spike 1 (sample 50) belongs to unit 3, but only 2 units are described"
    );
    let bad_channel = vec![UnitChannels {
        peak_channel: 8,
        channels: vec![7],
    }];
    let error = EphysEvaluator::new(settings(), vec![], bad_channel, true).expect_err("channel");
    assert_eq!(
        message(error),
        "invalid ephys settings: unit 0: channel 8 is out of range (8 channels)"
    );
    let twice = vec![UnitChannels {
        peak_channel: 1,
        channels: vec![1, 2, 1],
    }];
    let error = EphysEvaluator::new(settings(), vec![], twice, true).expect_err("twice");
    assert!(message(error).contains("channel 1 is listed twice"));

    let mut no_channels = settings();
    no_channels.channels = 0;
    let mut no_rate = settings();
    no_rate.sample_rate_hz = 0.0;
    let mut nan_threshold = settings();
    nan_threshold.noise_threshold_uv = f32::NAN;
    let mut no_snippet = settings();
    (no_snippet.snippet_before, no_snippet.snippet_after) = (0, 0);
    let mut huge_window = settings();
    huge_window.offset_window_s = 1e6;
    for (settings, expected) in [
        (no_channels, "channels must be at least 1"),
        (no_rate, "sample rate must be positive, got 0 Hz"),
        (
            nan_threshold,
            "noise threshold must be positive, got NaN uV",
        ),
        (
            no_snippet,
            "snippet_before + snippet_after must be at least 1",
        ),
        (huge_window, "offset window of 1000000 s"),
    ] {
        let error = EphysEvaluator::new(settings, vec![], vec![], false).expect_err(expected);
        assert!(message(error).contains(expected), "{expected}");
    }

    let mut with_clean = EphysEvaluator::new(settings(), vec![], vec![], true).expect("valid");
    let good = vec![1.0f32; 2 * CHANNELS];
    let error = with_clean
        .push(&good, &good[..5], Some(&good), 2)
        .expect_err("short buffer");
    assert_eq!(
        message(error),
        "denoised buffer has 5 values, expected 16 (2 samples of 8 channels)"
    );
    let error = with_clean
        .push(&good, &good, None, 2)
        .expect_err("missing clean");
    assert_eq!(
        message(error),
        "clean samples are missing but the evaluator was built with them"
    );
    with_clean
        .push(&good, &good, Some(&good), 2)
        .expect("valid push");
    let mut bad = good.clone();
    bad[CHANNELS + 3] = f32::NAN;
    let error = with_clean
        .push(&good, &good, Some(&bad), 2)
        .expect_err("NaN");
    assert_eq!(
        message(error),
        "clean sample 3 has a non-finite value (NaN) on channel 3"
    );
    bad[CHANNELS + 3] = f32::NEG_INFINITY;
    let error = with_clean
        .push(&bad, &good, Some(&good), 2)
        .expect_err("infinity");
    assert_eq!(
        message(error),
        "noisy sample 3 has a non-finite value (-inf) on channel 3"
    );
    assert_eq!(
        with_clean.samples_received(),
        2,
        "failed pushes consume nothing"
    );

    let mut without_clean = EphysEvaluator::new(settings(), vec![], vec![], false).expect("valid");
    let error = without_clean
        .push(&good, &good, Some(&good), 2)
        .expect_err("unexpected clean");
    assert_eq!(
        message(error),
        "clean samples were given but the evaluator was built without them"
    );
    let error = without_clean.finish().expect_err("nothing pushed");
    assert_eq!(message(error), "no samples were pushed");
}
