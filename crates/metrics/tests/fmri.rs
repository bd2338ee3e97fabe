//! fMRI evaluator behaviour on synthetic 4D recordings built here: exact tSNR of known series,
//! the dropped edge frames, the brain threshold, chunking invariance, errors against clean,
//! flat (zero-std) voxels, precision on large baselines, JSON, and input checks.

use deepinterp_metrics::{
    BrainThreshold, FmriEvalSettings, FmriEvaluator, FmriReport, MetricsError,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

/// `frames × voxels` values from `value(frame, voxel)`, volume after volume.
fn movie(frames: usize, voxels: usize, value: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    (0..frames * voxels)
        .map(|index| value(index / voxels, index % voxels))
        .collect()
}

/// `±amplitude`, alternating with the frame.
fn alternating(frame: usize, amplitude: f32) -> f32 {
    if frame.is_multiple_of(2) {
        amplitude
    } else {
        -amplitude
    }
}

fn gaussian_noise(count: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, std).expect("valid std");
    (0..count).map(|_| normal.sample(&mut rng) as f32).collect()
}

fn absolute(shape: [usize; 3], frames: usize, threshold: f64) -> FmriEvalSettings {
    FmriEvalSettings {
        brain_threshold: BrainThreshold::Absolute(threshold),
        ..FmriEvalSettings::new(shape, frames)
    }
}

/// Evaluates whole recordings, pushing `chunk` volumes at a time.
fn evaluate(
    settings: &FmriEvalSettings,
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
    chunk: usize,
) -> FmriReport {
    let voxels = settings.voxels();
    let mut evaluator = FmriEvaluator::new(settings.clone()).expect("valid settings");
    let mut start = 0;
    while start < settings.frames {
        let count = chunk.min(settings.frames - start);
        let range = start * voxels..(start + count) * voxels;
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
    evaluator.finish().expect("complete recording")
}

#[test]
fn fmri_alternating_series_give_exact_tsnr() {
    let settings = absolute([3, 2, 2], 20, 50.0);
    let voxels = settings.voxels();
    let noisy = movie(20, voxels, |frame, _| 100.0 + alternating(frame, 2.0));
    let denoised = movie(20, voxels, |frame, _| 100.0 + alternating(frame, 0.5));
    let report = evaluate(&settings, &noisy, &denoised, None, 20);
    assert_eq!(report.brain_voxels, 12);
    assert_eq!(report.tsnr_frames, 14);
    assert_eq!(report.tsnr_noisy_median, Some(50.0));
    assert_eq!(report.tsnr_denoised_median, Some(200.0));
    assert_eq!(report.tsnr_ratio_of_medians, Some(4.0));
    assert_eq!(report.tsnr_ratio_median, Some(4.0));
    assert_eq!(report.ratio_voxels, 12);
    assert_eq!(report.error, None);
}

#[test]
fn fmri_edge_frames_are_dropped() {
    let frames = 20;
    let settings = absolute([2, 2, 1], frames, 50.0);
    let voxels = settings.voxels();
    // Outliers fill exactly the 3 frames at each end.
    let noisy = movie(frames, voxels, |frame, _| match frame {
        0..3 | 17.. => 5000.0,
        _ => 100.0 + alternating(frame, 2.0),
    });
    let report = evaluate(&settings, &noisy, &noisy, None, 4);
    assert_eq!(report.tsnr_noisy_median, Some(50.0));
    let keep_edges = FmriEvalSettings {
        edge_frames: 0,
        ..settings.clone()
    };
    let report = evaluate(&keep_edges, &noisy, &noisy, None, 4);
    assert!(report.tsnr_noisy_median.expect("finite") < 5.0);

    // The window is exactly [3, 17): a two-pass reference over those frames of an irregular
    // series agrees, and would not if one frame more or less were used at either end.
    let noise = gaussian_noise(frames * voxels, 3.0, 7);
    let noisy: Vec<f32> = noise.iter().map(|value| 200.0 + value).collect();
    let report = evaluate(&settings, &noisy, &noisy, None, 3);
    let mut expected: Vec<f64> = (0..voxels)
        .map(|voxel| {
            let series: Vec<f64> = (3..17)
                .map(|frame| f64::from(noisy[frame * voxels + voxel]))
                .collect();
            let mean = series.iter().sum::<f64>() / series.len() as f64;
            let variance =
                series.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / series.len() as f64;
            mean / variance.sqrt()
        })
        .collect();
    expected.sort_by(f64::total_cmp);
    let expected_median = 0.5 * (expected[1] + expected[2]);
    let median = report.tsnr_noisy_median.expect("finite");
    assert!(
        (median - expected_median).abs() < 1e-9 * expected_median,
        "{median} vs {expected_median}"
    );
}

#[test]
fn fmri_threshold_selects_brain_voxels() {
    let (shape, frames) = ([10, 5, 2], 10);
    // Voxel means are a permutation of 1..=100 over the volume; std 0.5 everywhere, so the
    // tSNR of a voxel is twice its mean.
    let mean_of = |voxel: usize| ((voxel * 37) % 100 + 1) as f32;
    let noisy = movie(frames, 100, |frame, voxel| {
        mean_of(voxel) + alternating(frame, 0.5)
    });
    let denoised = movie(frames, 100, |frame, voxel| {
        mean_of(voxel) + alternating(frame, 0.25)
    });

    let mut settings = FmriEvalSettings::new(shape, frames);
    settings.brain_threshold = BrainThreshold::FractionOfRobustMax(0.5);
    let report = evaluate(&settings, &noisy, &denoised, None, 10);
    assert_eq!(report.robust_max, 99.0);
    assert_eq!(report.threshold, 49.5);
    assert_eq!(report.brain_voxels, 51); // means 50..=100
    assert_eq!(report.tsnr_noisy_median, Some(150.0));
    assert_eq!(report.tsnr_denoised_median, Some(300.0));

    // The default fraction, 0.3: means above 29.7.
    let report = evaluate(
        &FmriEvalSettings::new(shape, frames),
        &noisy,
        &denoised,
        None,
        10,
    );
    assert_eq!(report.brain_voxels, 71);
    assert_eq!(report.tsnr_noisy_median, Some(130.0)); // median of 30..=100 is 65

    // Strictly above: the voxel with mean 50 is out.
    let report = evaluate(&absolute(shape, frames, 50.0), &noisy, &denoised, None, 10);
    assert_eq!(report.threshold, 50.0);
    assert_eq!(report.brain_voxels, 50);
    assert_eq!(report.tsnr_noisy_median, Some(151.0)); // median of 51..=100 is 75.5
}

#[test]
fn fmri_report_is_independent_of_chunking() {
    let (shape, frames) = ([9, 7, 5], 23);
    let voxels = 9 * 7 * 5;
    // Every 5th voxel is background (mean 20); the rest are brain of varied brightness.
    let clean = movie(frames, voxels, |frame, voxel| {
        let baseline = if voxel % 5 == 0 {
            20.0
        } else {
            1000.0 + (voxel % 17) as f32 * 40.0
        };
        baseline + 5.0 * (frame as f32 * 0.3).sin()
    });
    let noise = gaussian_noise(frames * voxels, 8.0, 1);
    let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + n).collect();
    let denoised: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + 0.3 * n).collect();
    let settings = FmriEvalSettings::new(shape, frames);
    let whole = evaluate(&settings, &noisy, &denoised, Some(&clean), frames);
    for chunk in [1, 7] {
        let chunked = evaluate(&settings, &noisy, &denoised, Some(&clean), chunk);
        assert_eq!(chunked, whole, "{chunk} volumes per push");
    }
    assert_eq!(whole.brain_voxels, voxels - voxels.div_ceil(5));
    let error = whole.error.expect("clean given");
    assert!(error.l2_reduction.expect("finite") > 5.0);
}

#[test]
fn fmri_known_errors_over_brain_voxels_only() {
    let (shape, frames) = ([4, 2, 1], 12);
    // Voxels 0..4 are brain (mean 500), 4..8 background (mean 10) with huge errors.
    let clean = movie(frames, 8, |frame, voxel| {
        let base = if voxel < 4 { 500.0 } else { 10.0 };
        base + alternating(frame, 1.0)
    });
    let noisy = movie(frames, 8, |frame, voxel| {
        let error = if voxel < 4 { 2.0 } else { 1000.0 };
        clean[frame * 8 + voxel] + alternating(frame / 2, error)
    });
    let denoised: Vec<f32> = clean.iter().map(|value| value + 1.0).collect();
    let settings = absolute(shape, frames, 100.0);
    let report = evaluate(&settings, &noisy, &denoised, Some(&clean), 5);
    assert_eq!(report.brain_voxels, 4);
    let error = report.error.expect("clean given");
    assert_eq!((error.mse_noisy, error.mae_noisy), (4.0, 2.0));
    assert_eq!((error.mse_denoised, error.mae_denoised), (1.0, 1.0));
    assert_eq!(error.l2_reduction, Some(4.0));
    assert_eq!(error.l1_reduction, Some(2.0));
    assert_eq!(error.tsnr_clean_median, Some(500.0));
    assert_eq!(error.zero_std_voxels_clean, 0);
}

#[test]
fn fmri_perfect_denoiser_has_zero_error_and_null_reductions() {
    let (shape, frames) = ([5, 4, 3], 16);
    let voxels = 60;
    let clean = movie(frames, voxels, |frame, voxel| {
        800.0 + voxel as f32 + 10.0 * (frame as f32 * 0.7 + voxel as f32).sin()
    });
    let noise = gaussian_noise(frames * voxels, 5.0, 3);
    let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + n).collect();
    let settings = FmriEvalSettings::new(shape, frames);
    let report = evaluate(&settings, &noisy, &clean, Some(&clean), 16);
    let error = report.error.expect("clean given");
    assert_eq!((error.mse_denoised, error.mae_denoised), (0.0, 0.0));
    assert!(error.mse_noisy > 10.0);
    assert_eq!((error.l2_reduction, error.l1_reduction), (None, None));
    assert_eq!(error.tsnr_clean_median, report.tsnr_denoised_median);
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("denoised equals clean"))
    );

    let json = serde_json::to_string(&report).expect("serialisable");
    assert!(json.contains("\"l2_reduction\":null"), "{json}");
    // serde_json may read a float back 1 ulp off: finite values get a tolerance.
    let back: FmriReport = serde_json::from_str(&json).expect("readable");
    let back_error = back.error.expect("kept");
    assert_eq!(
        (back_error.l2_reduction, back_error.l1_reduction),
        (None, None)
    );
    assert_eq!(back.brain_voxels, report.brain_voxels);
    assert_eq!(back.settings, report.settings);
    let (median, back_median) = (report.tsnr_noisy_median, back.tsnr_noisy_median);
    assert!((median.expect("finite") - back_median.expect("kept")).abs() < 1e-12 * 1e3);
}

#[test]
fn fmri_flat_voxels_count_as_infinite_tsnr_and_leave_the_ratios() {
    let (shape, frames) = ([3, 3, 1], 12);
    let noisy = movie(frames, 9, |frame, _| 300.0 + alternating(frame, 3.0));
    // Denoised: 5 of 9 voxels flat, the rest 300 ± 1.
    let denoised = movie(frames, 9, |frame, voxel| {
        300.0
            + if voxel < 5 {
                0.0
            } else {
                alternating(frame, 1.0)
            }
    });
    let clean = vec![300.0f32; frames * 9];
    let settings = absolute(shape, frames, 100.0);
    let report = evaluate(&settings, &noisy, &denoised, Some(&clean), 12);
    assert_eq!(report.zero_std_voxels_denoised, 5);
    assert_eq!(report.zero_std_voxels_noisy, 0);
    assert_eq!(report.tsnr_noisy_median, Some(100.0));
    assert_eq!(report.tsnr_denoised_median, None); // most voxels are flat: infinite
    assert_eq!(report.tsnr_ratio_of_medians, None);
    assert_eq!(report.ratio_voxels, 4);
    assert_eq!(report.tsnr_ratio_median, Some(3.0));
    let error = report.error.expect("clean given");
    assert_eq!(error.zero_std_voxels_clean, 9);
    assert_eq!(error.tsnr_clean_median, None);
    let json = serde_json::to_string(&report).expect("serialisable");
    assert!(json.contains("\"tsnr_denoised_median\":null"), "{json}");
}

/// tSNR of one voxel holding `series` (every frame in the tSNR window).
fn single_voxel_tsnr(series: &[f32]) -> f64 {
    let settings = FmriEvalSettings {
        edge_frames: 0,
        ..absolute([1, 1, 1], series.len(), 0.0)
    };
    let report = evaluate(&settings, series, series, None, 13);
    report.tsnr_noisy_median.expect("finite")
}

#[test]
fn fmri_tsnr_keeps_precision_on_large_baselines() {
    let series: Vec<f32> = (0..500)
        .map(|frame| 1.0e4 + alternating(frame, 1.0))
        .collect();
    assert_eq!(single_voxel_tsnr(&series), 1.0e4);
    // Naive f64 sums of squares give ~3.3e7 here.
    let series: Vec<f32> = (0..1000)
        .map(|frame| 1.0e7 + alternating(frame, 1.0))
        .collect();
    assert_eq!(single_voxel_tsnr(&series), 1.0e7);

    // An irregular series: baseline 1e4, std 1, against a two-pass reference.
    let series: Vec<f32> = gaussian_noise(2000, 1.0, 11)
        .iter()
        .map(|value| 1.0e4 + value)
        .collect();
    let values: Vec<f64> = series.iter().map(|&v| f64::from(v)).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    let expected = mean / variance.sqrt();
    let tsnr = single_voxel_tsnr(&series);
    assert!(
        (tsnr - expected).abs() < 1e-10 * expected,
        "{tsnr} vs {expected}"
    );
}

#[test]
fn fmri_settings_are_checked() {
    let error = |settings: FmriEvalSettings| {
        FmriEvaluator::new(settings)
            .expect_err("invalid settings")
            .to_string()
    };
    assert_eq!(
        error(FmriEvalSettings::new([4, 4, 4], 7)),
        "invalid fMRI settings: 7 frames with 3 edge frames dropped at each end leave 1 for \
         tSNR; it needs at least 2 (frames > 2 x edge_frames + 1)"
    );
    assert!(FmriEvaluator::new(FmriEvalSettings::new([4, 4, 4], 8)).is_ok());
    assert!(error(FmriEvalSettings::new([4, 0, 4], 20)).contains("every side"));
    let mut settings = FmriEvalSettings::new([4, 4, 4], 20);
    settings.brain_threshold = BrainThreshold::FractionOfRobustMax(1.5);
    assert!(error(settings.clone()).contains("between 0 and 1, got 1.5"));
    settings.brain_threshold = BrainThreshold::Absolute(f64::NAN);
    assert!(error(settings).contains("must be finite"));
}

#[test]
fn fmri_bad_pushes_are_rejected_and_consume_nothing() {
    let (shape, frames) = ([3, 2, 2], 10);
    let voxels = 12;
    let settings = absolute(shape, frames, 10.0);
    let noisy = movie(frames, voxels, |frame, voxel| {
        100.0 + voxel as f32 + alternating(frame, 2.0)
    });
    let expected = evaluate(&settings, &noisy, &noisy, None, 10);
    let volumes = |count: usize| &noisy[..count * voxels];

    let mut evaluator = FmriEvaluator::new(settings.clone()).expect("valid");
    let short = evaluator
        .push(volumes(2), &noisy[..2 * voxels - 1], None, 2)
        .expect_err("short denoised buffer");
    assert_eq!(
        short.to_string(),
        "denoised buffer has 23 values, expected 24 (2 volumes of 3x2x2)"
    );
    let mut with_nan = volumes(2).to_vec();
    with_nan[voxels + 3 + 2 + 6] = f32::NAN; // volume 1, x 2, y 1, z 1
    let nan = evaluator
        .push(&with_nan, volumes(2), None, 2)
        .expect_err("NaN");
    assert_eq!(
        nan.to_string(),
        "noisy volume 1 has a non-finite value (NaN) at voxel (x 2, y 1, z 1)"
    );
    let eleven = vec![100.0f32; 11 * voxels];
    assert!(matches!(
        evaluator.push(&eleven, &eleven, None, 11),
        Err(MetricsError::TooManyFrames {
            announced: 10,
            received: 0,
            pushing: 11
        })
    ));
    assert_eq!(evaluator.frames_received(), 0);

    // The first successful push decides: no clean volumes.
    evaluator
        .push(volumes(4), volumes(4), None, 4)
        .expect("valid");
    let given = evaluator
        .push(volumes(1), volumes(1), Some(volumes(1)), 1)
        .expect_err("clean after none");
    assert_eq!(
        given.to_string(),
        "clean volumes were given but earlier pushes had none"
    );
    let too_many = evaluator
        .push(&noisy[..7 * voxels], &noisy[..7 * voxels], None, 7)
        .expect_err("past the end");
    assert!(matches!(
        too_many,
        MetricsError::TooManyFrames {
            announced: 10,
            received: 4,
            pushing: 7
        }
    ));
    let rest = 4 * voxels..;
    evaluator
        .push(&noisy[rest.clone()], &noisy[rest], None, 6)
        .expect("valid");
    assert_eq!(evaluator.finish().expect("complete"), expected);

    let mut evaluator = FmriEvaluator::new(settings.clone()).expect("valid");
    evaluator
        .push(volumes(1), volumes(1), Some(volumes(1)), 1)
        .expect("valid");
    let missing = evaluator
        .push(volumes(1), volumes(1), None, 1)
        .expect_err("clean missing");
    assert_eq!(
        missing.to_string(),
        "clean volumes are missing but earlier pushes had them"
    );
    assert!(matches!(
        evaluator.finish(),
        Err(MetricsError::MissingFrames {
            announced: 10,
            received: 1
        })
    ));
}

#[test]
fn fmri_threshold_above_every_voxel_is_an_error() {
    let settings = absolute([2, 2, 2], 10, 1000.0);
    let noisy = movie(10, 8, |frame, _| 100.0 + alternating(frame, 1.0));
    let mut evaluator = FmriEvaluator::new(settings).expect("valid");
    evaluator.push(&noisy, &noisy, None, 10).expect("valid");
    let error = evaluator.finish().expect_err("no brain voxel");
    assert!(matches!(error, MetricsError::NoBrainVoxels { .. }));
    assert!(error.to_string().contains("threshold 1000"), "{error}");
}

#[test]
fn fmri_settings_serialise_readably() {
    let json = serde_json::to_string(&FmriEvalSettings::new([64, 64, 30], 200)).expect("json");
    assert_eq!(
        json,
        "{\"shape\":[64,64,30],\"frames\":200,\"edge_frames\":3,\
         \"brain_threshold\":{\"fraction_of_robust_max\":0.3}}"
    );
}
