//! Behaviour of the simulator as a whole: determinism, noise statistics, activity, motion.

use deepinterp_sim::{GroundTruthSummary, TwoPhotonConfig, TwoPhotonSimulator};

/// Renders the whole movie in chunks of the given sizes (cycled) and returns (clean, noisy).
fn render(config: &TwoPhotonConfig, chunk_sizes: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut simulator = TwoPhotonSimulator::new(config.clone()).expect("valid config");
    let frame_pixels = config.height * config.width;
    let mut clean = Vec::new();
    let mut noisy = Vec::new();
    let largest = chunk_sizes.iter().copied().max().unwrap_or(1);
    let mut clean_chunk = vec![0.0; largest * frame_pixels];
    let mut noisy_chunk = vec![0.0; largest * frame_pixels];
    for &size in chunk_sizes.iter().cycle() {
        let rendered = simulator.next_frames(size, &mut clean_chunk, &mut noisy_chunk);
        if rendered == 0 {
            break;
        }
        clean.extend_from_slice(&clean_chunk[..rendered * frame_pixels]);
        noisy.extend_from_slice(&noisy_chunk[..rendered * frame_pixels]);
    }
    assert_eq!(simulator.frames_remaining(), 0);
    (clean, noisy)
}

fn trace(movie: &[f32], frame_pixels: usize, pixel: usize) -> Vec<f32> {
    movie
        .iter()
        .skip(pixel)
        .step_by(frame_pixels)
        .copied()
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// The paper's pixel SNR: median(trace) / median over 100-frame blocks of std(block).
fn pixel_snr(trace: &[f32]) -> f64 {
    let mut values: Vec<f64> = trace.iter().map(|&v| f64::from(v)).collect();
    let mut block_stds: Vec<f64> = values
        .chunks_exact(100)
        .map(|block| {
            let mean = block.iter().sum::<f64>() / block.len() as f64;
            (block.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / block.len() as f64).sqrt()
        })
        .collect();
    median(&mut values) / median(&mut block_stds)
}

#[test]
fn chunking_does_not_change_the_movie() {
    for motion_px in [0.0, 1.5] {
        let config = TwoPhotonConfig {
            motion_px,
            read_noise: 0.5,
            seed: 11,
            ..TwoPhotonConfig::with_size(100, 40, 56)
        };
        let (clean_whole, noisy_whole) = render(&config, &[100]);
        let (clean_parts, noisy_parts) = render(&config, &[7, 13, 80]);
        let (clean_single, noisy_single) = render(&config, &[1]);
        assert_eq!(clean_whole.len(), 100 * 40 * 56);
        assert_eq!(clean_whole, clean_parts);
        assert_eq!(noisy_whole, noisy_parts);
        assert_eq!(clean_whole, clean_single);
        assert_eq!(noisy_whole, noisy_single);
    }
}

#[test]
fn seeds_give_different_movies() {
    let config = TwoPhotonConfig::with_size(10, 32, 32);
    let (clean_a, noisy_a) = render(&config, &[10]);
    let other = TwoPhotonConfig { seed: 1, ..config };
    let (clean_b, noisy_b) = render(&other, &[10]);
    assert_ne!(clean_a, clean_b);
    assert_ne!(noisy_a, noisy_b);
}

#[test]
fn stops_at_the_end_and_respects_buffer_size() {
    let config = TwoPhotonConfig::with_size(10, 8, 8);
    let mut simulator = TwoPhotonSimulator::new(config).expect("valid");
    let mut clean = vec![-1.0; 6 * 64];
    let mut noisy = vec![-1.0; 6 * 64];
    // Asking for 6 frames with room for only 4 in `noisy` renders 4.
    assert_eq!(
        simulator.next_frames(6, &mut clean, &mut noisy[..4 * 64]),
        4
    );
    assert_eq!(simulator.next_frames(6, &mut clean, &mut noisy), 6);
    assert_eq!(simulator.frames_rendered(), 10);
    assert_eq!(simulator.next_frames(6, &mut clean, &mut noisy), 0);
    assert!(clean.iter().all(|&v| v >= 0.0));
    assert!(noisy.iter().all(|&v| v >= 0.0 && v.fract() == 0.0));
}

#[test]
fn invalid_config_is_rejected() {
    let config = TwoPhotonConfig {
        width: 0,
        ..TwoPhotonConfig::default()
    };
    assert!(TwoPhotonSimulator::new(config).is_err());
}

#[test]
fn poisson_noise_is_unbiased() {
    let config = TwoPhotonConfig::with_size(200, 64, 64);
    let (clean, noisy) = render(&config, &[64]);
    let clean_mean = clean.iter().map(|&v| f64::from(v)).sum::<f64>() / clean.len() as f64;
    let noisy_mean = noisy.iter().map(|&v| f64::from(v)).sum::<f64>() / noisy.len() as f64;
    // 819,200 Poisson draws with mean ≈3: standard error of the mean ≈ 0.002.
    assert!(clean_mean > 1.0, "clean mean {clean_mean}");
    assert!(
        (noisy_mean - clean_mean).abs() < 0.01,
        "noisy mean {noisy_mean} vs clean mean {clean_mean}"
    );
}

#[test]
fn noisy_variance_matches_poisson_on_static_bright_pixels() {
    // No spikes, no neuropil, no motion: every pixel's expectation is constant in time.
    let config = TwoPhotonConfig {
        spike_rate_hz: 0.0,
        neuropil: 0.0,
        photons_per_unit: 40.0,
        ..TwoPhotonConfig::with_size(2000, 24, 24)
    };
    let frame_pixels = 24 * 24;
    let (clean, noisy) = render(&config, &[500]);
    let mut checked = 0;
    for pixel in 0..frame_pixels {
        let expected = trace(&clean, frame_pixels, pixel);
        assert!(expected.iter().all(|&v| v == expected[0]), "static pixel");
        if expected[0] < 20.0 {
            continue;
        }
        let samples = trace(&noisy, frame_pixels, pixel);
        let n = samples.len() as f64;
        let mean = samples.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let variance = samples
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        let lambda = f64::from(expected[0]);
        // Relative standard error of a variance estimate from 2000 samples ≈ sqrt(2/n) ≈ 3 %.
        assert!(
            (mean / lambda - 1.0).abs() < 0.05,
            "mean {mean} vs {lambda}"
        );
        assert!(
            (variance / lambda - 1.0).abs() < 0.2,
            "variance {variance} vs {lambda}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} bright pixels");
}

#[test]
fn default_photon_count_gives_low_pixel_snr() {
    let config = TwoPhotonConfig::with_size(400, 48, 48);
    let frame_pixels = 48 * 48;
    let (clean, noisy) = render(&config, &[100]);
    let mut noisy_snrs: Vec<f64> = (0..frame_pixels)
        .map(|pixel| pixel_snr(&trace(&noisy, frame_pixels, pixel)))
        .collect();
    let noisy_median = median(&mut noisy_snrs);
    assert!(
        (0.8..4.0).contains(&noisy_median),
        "median raw pixel SNR {noisy_median}"
    );
    // The clean movie is far cleaner than the noisy one.
    let mut clean_snrs: Vec<f64> = (0..frame_pixels)
        .map(|pixel| pixel_snr(&trace(&clean, frame_pixels, pixel)))
        .collect();
    assert!(median(&mut clean_snrs) > 5.0 * noisy_median);
    // Values fit comfortably in 16-bit integers.
    assert!(noisy.iter().all(|&v| v < 1000.0));
}

#[test]
fn neurons_show_calcium_transients() {
    let config = TwoPhotonConfig {
        spike_rate_hz: 1.0,
        seed: 3,
        ..TwoPhotonConfig::with_size(600, 64, 64)
    };
    let frame_pixels = 64 * 64;
    let mut simulator = TwoPhotonSimulator::new(config.clone()).expect("valid");
    let mut clean = vec![0.0; 600 * frame_pixels];
    let mut noisy = vec![0.0; 600 * frame_pixels];
    assert_eq!(simulator.next_frames(600, &mut clean, &mut noisy), 600);
    let truth: GroundTruthSummary = simulator.ground_truth();
    assert_eq!(truth.neurons.len(), config.neurons);
    assert_eq!(truth.frames_rendered, 600);

    let mut with_transients = 0;
    let mut inside = 0;
    for neuron in &truth.neurons {
        let (row, col) = (neuron.centre_y.round(), neuron.centre_x.round());
        if row < 0.0 || col < 0.0 || row >= 64.0 || col >= 64.0 {
            continue;
        }
        inside += 1;
        let pixel = row as usize * 64 + col as usize;
        let mut values: Vec<f64> = trace(&clean, frame_pixels, pixel)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let peak = values.iter().copied().fold(f64::MIN, f64::max);
        let resting = median(&mut values);
        if peak > 1.15 * resting {
            with_transients += 1;
            assert!(neuron.spikes_emitted > 0 || peak < 2.0 * resting);
        }
    }
    assert!(inside > 5);
    assert!(
        with_transients * 2 > inside,
        "{with_transients} of {inside} neurons have transients"
    );
    let total_spikes: u64 = truth.neurons.iter().map(|n| n.spikes_emitted).sum();
    let expected = f64::from(config.spike_rate_hz) * 20.0 * config.neurons as f64;
    assert!(
        (total_spikes as f64) > 0.5 * expected && (total_spikes as f64) < 1.5 * expected,
        "{total_spikes} spikes, expected ≈{expected}"
    );

    let json = serde_json::to_string(&truth).expect("serializable");
    let back: GroundTruthSummary = serde_json::from_str(&json).expect("deserializable");
    assert_eq!(back, truth);
}

#[test]
fn motion_moves_a_static_scene() {
    let still = TwoPhotonConfig {
        spike_rate_hz: 0.0,
        neuropil: 0.0,
        ..TwoPhotonConfig::with_size(30, 48, 48)
    };
    let frame_pixels = 48 * 48;
    let (clean_still, _) = render(&still, &[30]);
    assert!(
        clean_still
            .chunks_exact(frame_pixels)
            .all(|frame| frame == &clean_still[..frame_pixels])
    );
    let moving = TwoPhotonConfig {
        motion_px: 1.0,
        ..still
    };
    let (clean_moving, _) = render(&moving, &[30]);
    let first = &clean_moving[..frame_pixels];
    let changed = clean_moving
        .chunks_exact(frame_pixels)
        .skip(1)
        .filter(|frame| frame != &first)
        .count();
    assert_eq!(changed, 29);
    // Rigid motion keeps the overall brightness roughly the same.
    let total = |frame: &[f32]| frame.iter().map(|&v| f64::from(v)).sum::<f64>();
    let ratio = total(&clean_moving[29 * frame_pixels..]) / total(first);
    assert!((ratio - 1.0).abs() < 0.05, "ratio {ratio}");
}

#[test]
fn empty_field_of_view_is_background_only() {
    let config = TwoPhotonConfig {
        neurons: 0,
        ..TwoPhotonConfig::with_size(20, 16, 16)
    };
    let (clean, noisy) = render(&config, &[20]);
    assert!(clean.iter().all(|&v| v > 0.0 && v < 10.0));
    assert!(noisy.iter().any(|&v| v > 0.0));
}
