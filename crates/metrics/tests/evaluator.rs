//! Evaluator behaviour: known error values, SNR on synthetic traces, chunking invariance,
//! Gaussian baselines, sampling of large movies, and input checks.

use deepinterp_metrics::{EvalReport, Evaluator, MetricsError};
use deepinterp_sim::{TwoPhotonConfig, TwoPhotonSimulator};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

fn gaussian_noise(count: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, std).expect("valid std");
    (0..count).map(|_| normal.sample(&mut rng) as f32).collect()
}

/// Evaluates whole buffers, pushing them in chunks of the given sizes (cycled).
fn evaluate_in_chunks(
    (height, width, frames): (usize, usize, usize),
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
    chunks: &[usize],
) -> EvalReport {
    let frame_pixels = height * width;
    let mut evaluator = Evaluator::new(height, width, frames, clean.is_some());
    let mut start = 0;
    for &size in chunks.iter().cycle() {
        if start == frames {
            break;
        }
        let count = size.min(frames - start);
        let range = start * frame_pixels..(start + count) * frame_pixels;
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
    evaluator.finish().expect("complete movie")
}

#[test]
fn constant_offsets_give_known_errors_and_reductions() {
    let (height, width, frames) = (6, 7, 30);
    let clean: Vec<f32> = (0..frames * height * width)
        .map(|i| (i % 13) as f32)
        .collect();
    let noisy: Vec<f32> = clean.iter().map(|v| v + 2.0).collect();
    let denoised: Vec<f32> = clean.iter().map(|v| v - 1.0).collect();
    let report = evaluate_in_chunks(
        (height, width, frames),
        &noisy,
        &denoised,
        Some(&clean),
        &[30],
    );
    let noisy_errors = report.noisy_vs_clean.expect("clean given");
    assert!((noisy_errors.mae - 2.0).abs() < 1e-12);
    assert!((noisy_errors.mse - 4.0).abs() < 1e-12);
    assert!((noisy_errors.rmse - 2.0).abs() < 1e-12);
    let denoised_errors = report.denoised_vs_clean.expect("clean given");
    assert!((denoised_errors.mae - 1.0).abs() < 1e-12);
    assert!((report.l2_reduction_vs_noisy.expect("defined") - 4.0).abs() < 1e-12);
    assert!((report.l1_reduction_vs_noisy.expect("defined") - 2.0).abs() < 1e-12);
    // Filtering keeps the +2 offset (weights sum to 1) and blurs the sawtooth: the baseline's
    // mean signed error stays 2, so its MAE is at least 2.
    let gaussian = report.gaussian_vs_clean.expect("clean given");
    assert!(gaussian.mae >= 2.0 - 1e-4, "mae {}", gaussian.mae);
    assert!(gaussian.mse > 4.0);
    assert!(report.l2_reduction_vs_gaussian.is_some());
    assert!(report.gaussian2d_vs_clean.is_some());
}

#[test]
fn gaussian_baselines_of_a_constant_movie_are_that_constant() {
    let (height, width, frames) = (9, 11, 25);
    let values = frames * height * width;
    let noisy = vec![7.0f32; values];
    let clean = vec![5.0f32; values];
    let report = evaluate_in_chunks((height, width, frames), &noisy, &noisy, Some(&clean), &[4]);
    for stats in [report.gaussian_vs_clean, report.gaussian2d_vs_clean] {
        let stats = stats.expect("clean given");
        assert!((stats.mae - 2.0).abs() < 1e-5, "mae {}", stats.mae);
        assert!((stats.mse - 4.0).abs() < 1e-4, "mse {}", stats.mse);
    }
}

#[test]
fn perfect_denoiser_has_no_finite_reduction_and_serializes() {
    let (height, width, frames) = (4, 4, 20);
    let clean: Vec<f32> = (0..frames * height * width)
        .map(|i| (i % 5) as f32)
        .collect();
    let noisy: Vec<f32> = clean.iter().map(|v| v + 1.0).collect();
    let report = evaluate_in_chunks((height, width, frames), &noisy, &clean, Some(&clean), &[20]);
    assert_eq!(report.denoised_vs_clean.map(|e| e.mse), Some(0.0));
    assert_eq!(report.l2_reduction_vs_noisy, None);
    assert_eq!(report.l1_reduction_vs_gaussian, None);
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("denoised equals clean"))
    );
    let json = serde_json::to_string(&report).expect("serializable");
    assert!(json.contains("\"l2_reduction_vs_noisy\":null"));
}

#[test]
fn without_clean_there_are_no_errors() {
    let (height, width, frames) = (3, 3, 10);
    let noisy = vec![1.0f32; frames * height * width];
    let report = evaluate_in_chunks((height, width, frames), &noisy, &noisy, None, &[3]);
    assert_eq!(report.noisy_vs_clean, None);
    assert_eq!(report.gaussian_vs_clean, None);
    assert_eq!(report.l2_reduction_vs_noisy, None);
}

#[test]
fn snr_of_constant_plus_gaussian_noise() {
    // 100 + N(0, 10): SNR = 100 / 10 = 10. Denoised = 100 + N(0, 2): SNR 50, gain 5.
    let (height, width, frames) = (4, 5, 1000);
    let values = frames * height * width;
    let noisy: Vec<f32> = gaussian_noise(values, 10.0, 1)
        .iter()
        .map(|n| 100.0 + n)
        .collect();
    let denoised: Vec<f32> = gaussian_noise(values, 2.0, 2)
        .iter()
        .map(|n| 100.0 + n)
        .collect();
    let report = evaluate_in_chunks((height, width, frames), &noisy, &denoised, None, &[1000]);
    assert_eq!(report.snr_noisy.pixels, 20);
    assert_eq!(report.snr_noisy.median_frame_stride, 1);
    // Block std of 100 samples (ddof 0) is ≈ 0.995 σ; its median over 10 blocks varies ≈ 3 %.
    assert!(
        (report.snr_noisy.median - 10.0).abs() < 0.5,
        "{:?}",
        report.snr_noisy
    );
    assert!(
        (report.snr_denoised.median - 50.0).abs() < 2.5,
        "{:?}",
        report.snr_denoised
    );
    assert!(
        (report.snr_gain_median - 5.0).abs() < 0.4,
        "gain {}",
        report.snr_gain_median
    );
    assert!((report.snr_gain_of_medians - 5.0).abs() < 0.4);
}

#[test]
fn flat_pixels_are_excluded_from_snr() {
    let (height, width, frames) = (2, 2, 200);
    let mut noisy = gaussian_noise(frames * height * width, 1.0, 5);
    // Pixel 0 is constant: zero noise, infinite SNR.
    for frame in 0..frames {
        noisy[frame * 4] = 3.0;
    }
    let report = evaluate_in_chunks((height, width, frames), &noisy, &noisy, None, &[50]);
    assert_eq!(report.snr_noisy.pixels, 3);
    assert_eq!(report.snr_noisy.excluded_pixels, 1);
}

#[test]
fn chunking_does_not_change_the_report() {
    let (height, width, frames) = (12, 10, 230);
    let values = frames * height * width;
    let clean: Vec<f32> = (0..values)
        .map(|i| 50.0 + 20.0 * ((i as f32) * 0.001).sin())
        .collect();
    let noise = gaussian_noise(values, 5.0, 3);
    let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + n).collect();
    let denoised: Vec<f32> = clean.iter().zip(&noise).map(|(c, n)| c + 0.2 * n).collect();
    let dims = (height, width, frames);
    let whole = evaluate_in_chunks(dims, &noisy, &denoised, Some(&clean), &[230]);
    let single = evaluate_in_chunks(dims, &noisy, &denoised, Some(&clean), &[1]);
    let uneven = evaluate_in_chunks(dims, &noisy, &denoised, Some(&clean), &[7, 13, 80, 3]);
    assert_eq!(whole, single);
    assert_eq!(whole, uneven);
    let reduction = whole.l2_reduction_vs_noisy.expect("defined");
    assert!((reduction - 25.0).abs() < 0.01, "reduction {reduction}");
}

#[test]
fn gaussian_baselines_beat_raw_on_a_simulated_movie() {
    let config = TwoPhotonConfig::with_size(300, 48, 48);
    let frame_pixels = 48 * 48;
    let mut simulator = TwoPhotonSimulator::new(config).expect("valid config");
    let mut clean = vec![0.0; 300 * frame_pixels];
    let mut noisy = vec![0.0; 300 * frame_pixels];
    assert_eq!(simulator.next_frames(300, &mut clean, &mut noisy), 300);
    // The "denoiser" here is the identity: reductions against noisy are exactly 1.
    let report = evaluate_in_chunks((48, 48, 300), &noisy, &noisy, Some(&clean), &[64]);
    assert_eq!(report.l2_reduction_vs_noisy, Some(1.0));
    let noisy_mse = report.noisy_vs_clean.expect("clean").mse;
    let mse_3d = report.gaussian_vs_clean.expect("clean").mse;
    let mse_2d = report.gaussian2d_vs_clean.expect("clean").mse;
    // Poisson noise at ≈3 photons: filtering removes most of the error, and filtering in time
    // as well as space removes more.
    assert!(mse_2d < 0.5 * noisy_mse, "2D {mse_2d} vs raw {noisy_mse}");
    assert!(mse_3d < mse_2d, "3D {mse_3d} vs 2D {mse_2d}");
    assert!(report.snr_noisy.median > 0.8 && report.snr_noisy.median < 4.0);
}

#[test]
fn large_movies_sample_pixels_for_snr() {
    // 200 × 200 × 1000 = 40 M values > 2^25: SNR on a grid of every 2nd pixel.
    let (height, width, frames) = (200, 200, 1000);
    let frame_pixels = height * width;
    let mut evaluator = Evaluator::new(height, width, frames, false);
    let chunk = 100;
    for start in (0..frames).step_by(chunk) {
        let noise = gaussian_noise(chunk * frame_pixels, 1.0, start as u64);
        let noisy: Vec<f32> = noise.iter().map(|n| 20.0 + n).collect();
        evaluator
            .push(&noisy, &noisy, None, chunk)
            .expect("valid push");
    }
    let report = evaluator.finish().expect("complete");
    assert_eq!(report.snr_noisy.pixels, 10_000);
    assert_eq!(report.snr_noisy.median_frame_stride, 1);
    assert!((report.snr_noisy.median - 20.0).abs() < 1.0);
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("10000 of 40000 pixels"))
    );
}

#[test]
fn short_movies_use_one_block() {
    let (height, width, frames) = (3, 3, 40);
    let noisy: Vec<f32> = gaussian_noise(frames * 9, 2.0, 9)
        .iter()
        .map(|n| 30.0 + n)
        .collect();
    let report = evaluate_in_chunks((height, width, frames), &noisy, &noisy, None, &[40]);
    assert_eq!(report.snr_block_frames, 40);
    assert!(report.snr_noisy.median > 10.0 && report.snr_noisy.median < 20.0);
}

#[test]
fn bad_input_is_rejected() {
    let mut evaluator = Evaluator::new(2, 3, 4, true);
    let frame = vec![0.0f32; 6];
    let two_frames = vec![0.0f32; 12];
    assert!(matches!(
        evaluator.push(&frame, &two_frames, Some(&frame), 1),
        Err(MetricsError::BufferLength {
            buffer: "denoised",
            ..
        })
    ));
    assert!(matches!(
        evaluator.push(&frame, &frame, None, 1),
        Err(MetricsError::CleanMismatch(_))
    ));
    let mut with_nan = frame.clone();
    with_nan[4] = f32::NAN;
    assert!(matches!(
        evaluator.push(&frame, &with_nan, Some(&frame), 1),
        Err(MetricsError::NonFinite {
            buffer: "denoised",
            frame: 0,
            pixel: 4
        })
    ));
    // Failed pushes consumed nothing.
    assert_eq!(evaluator.frames_received(), 0);
    evaluator
        .push(&two_frames, &two_frames, Some(&two_frames), 2)
        .expect("valid");
    let three_frames = vec![0.0f32; 18];
    assert!(matches!(
        evaluator.push(&three_frames, &three_frames, Some(&three_frames), 3),
        Err(MetricsError::TooManyFrames {
            announced: 4,
            received: 2,
            pushing: 3
        })
    ));
    assert!(matches!(
        evaluator.clone().finish(),
        Err(MetricsError::MissingFrames {
            announced: 4,
            received: 2
        })
    ));
    evaluator
        .push(&two_frames, &two_frames, Some(&two_frames), 2)
        .expect("valid");
    assert!(evaluator.finish().is_ok());

    let mut without_clean = Evaluator::new(2, 3, 4, false);
    assert!(matches!(
        without_clean.push(&frame, &frame, Some(&frame), 1),
        Err(MetricsError::CleanMismatch(_))
    ));
    let mut empty = Evaluator::new(0, 3, 4, false);
    assert!(matches!(
        empty.push(&[], &[], None, 1),
        Err(MetricsError::InvalidDimensions(_))
    ));
}
