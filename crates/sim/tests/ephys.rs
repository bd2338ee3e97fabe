//! Behaviour of the extracellular recording simulator as a whole: determinism under chunking,
//! noise statistics, spike trains, templates and spike amplitudes, validation and speed.

use std::time::Instant;

use deepinterp_sim::{EphysConfig, EphysSimulator, SimError};

/// A short recording on a 64-channel stretch of a Neuropixels 1.0 probe.
fn small_config(seed: u64) -> EphysConfig {
    EphysConfig {
        duration_s: 0.25,
        channels: 64,
        seed,
        ..EphysConfig::default()
    }
}

/// Renders the whole recording in chunks of the given sizes (cycled); returns (clean, noisy).
fn render(config: &EphysConfig, chunk_sizes: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut simulator = EphysSimulator::new(config.clone()).expect("valid config");
    let channels = simulator.channels();
    let largest = chunk_sizes.iter().copied().max().unwrap_or(1);
    let mut clean_chunk = vec![0.0; largest * channels];
    let mut noisy_chunk = vec![0.0; largest * channels];
    let mut clean = Vec::with_capacity(simulator.samples() * channels);
    let mut noisy = Vec::with_capacity(simulator.samples() * channels);
    for &size in chunk_sizes.iter().cycle() {
        let rendered = simulator.next_samples(size, &mut clean_chunk, &mut noisy_chunk);
        if rendered == 0 {
            break;
        }
        clean.extend_from_slice(&clean_chunk[..rendered * channels]);
        noisy.extend_from_slice(&noisy_chunk[..rendered * channels]);
    }
    assert_eq!(simulator.samples_remaining(), 0);
    assert_eq!(clean.len(), simulator.samples() * channels);
    (clean, noisy)
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|value| value.to_bits()).collect()
}

/// Pearson correlation of two equally long series.
fn correlation(a: impl Iterator<Item = f64> + Clone, b: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = a.clone().count() as f64;
    let (mean_a, mean_b) = (a.clone().sum::<f64>() / n, b.clone().sum::<f64>() / n);
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.zip(b) {
        cov += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a).powi(2);
        var_b += (y - mean_b).powi(2);
    }
    cov / (var_a * var_b).sqrt()
}

#[test]
fn chunking_does_not_change_the_recording() {
    let config = small_config(1);
    let (clean_whole, noisy_whole) = render(&config, &[7500]);
    // Odd sizes: chunks start and end inside noise blocks and cut through spikes.
    let chunk_sizes = [7, 300, 1, 255, 1000, 513, 2];
    let (clean_chunked, noisy_chunked) = render(&config, &chunk_sizes);
    // Some spikes' templates straddle a chunk border.
    let simulator = EphysSimulator::new(config.clone()).expect("valid config");
    let borders: Vec<u64> = chunk_sizes
        .iter()
        .cycle()
        .scan(0u64, |end, &size| {
            *end += size as u64;
            Some(*end)
        })
        .take_while(|&end| end < simulator.samples() as u64)
        .collect();
    let straddling = simulator
        .spike_list()
        .iter()
        .filter(|spike| {
            let template = simulator.template(spike.unit as usize);
            let first = spike.sample.saturating_sub(template.trough_offset() as u64);
            let end = first + template.samples() as u64;
            borders.iter().any(|&border| first < border && border < end)
        })
        .count();
    assert!(straddling > 3, "{straddling} spikes straddle chunk borders");
    assert_eq!(bits(&clean_whole), bits(&clean_chunked));
    assert_eq!(bits(&noisy_whole), bits(&noisy_chunked));
    assert!(
        clean_whole.iter().any(|&value| value < -50.0),
        "no spikes rendered"
    );

    // Without noise the noisy recording is the clean one.
    let silent = EphysConfig {
        noise_uv_rms: 0.0,
        ..config
    };
    let (clean, noisy) = render(&silent, &[333]);
    assert_eq!(bits(&clean), bits(&clean_whole));
    assert_eq!(bits(&clean), bits(&noisy));
}

#[test]
fn noise_has_the_configured_rms_and_is_white() {
    let config = EphysConfig {
        duration_s: 0.5,
        channels: 32,
        noise_uv_rms: 7.5,
        ..small_config(2)
    };
    let (clean, noisy) = render(&config, &[4096]);
    let channels = 32;
    let noise: Vec<f64> = noisy
        .iter()
        .zip(&clean)
        .map(|(&n, &c)| f64::from(n) - f64::from(c))
        .collect();
    let mean = noise.iter().sum::<f64>() / noise.len() as f64;
    let rms = (noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64).sqrt();
    assert!(mean.abs() < 0.05, "noise mean {mean}");
    assert!((rms / 7.5 - 1.0).abs() < 0.03, "noise rms {rms}");

    let channel = |c: usize| noise.iter().skip(c).step_by(channels).copied();
    let mut neighbour_sum = 0.0;
    for c in 0..channels - 1 {
        let r = correlation(channel(c), channel(c + 1));
        assert!(r.abs() < 0.05, "channels {c},{} correlate: {r}", c + 1);
        neighbour_sum += r;
    }
    let neighbour_mean = neighbour_sum / (channels - 1) as f64;
    assert!(
        neighbour_mean.abs() < 0.01,
        "mean neighbour r {neighbour_mean}"
    );
    let mut lag_sum = 0.0;
    for c in 0..channels {
        let r = correlation(channel(c), channel(c).skip(1).chain([0.0]));
        assert!(r.abs() < 0.05, "channel {c} lag-1 r {r}");
        lag_sum += r;
    }
    let lag_mean = lag_sum / channels as f64;
    assert!(lag_mean.abs() < 0.01, "mean lag-1 r {lag_mean}");
}

#[test]
fn spike_trains_are_sorted_refractory_and_at_the_configured_rates() {
    let config = EphysConfig {
        duration_s: 120.0,
        firing_rate_hz: (2.0, 40.0),
        seed: 3,
        ..EphysConfig::default()
    };
    // Spike trains exist before anything is rendered.
    let simulator = EphysSimulator::new(config.clone()).expect("valid config");
    let spikes = simulator.spikes();
    assert!(
        spikes
            .windows(2)
            .all(|pair| (pair[0].sample, pair[0].unit) < (pair[1].sample, pair[1].unit))
    );
    assert!(
        spikes
            .iter()
            .all(|spike| spike.sample < simulator.samples() as u64)
    );
    let refractory = simulator.refractory_samples();
    assert_eq!(refractory, 60);

    let units = simulator.units();
    let mut last_spike = vec![None::<u64>; units.len()];
    let mut counts = vec![0usize; units.len()];
    for spike in &spikes {
        let unit = spike.unit as usize;
        if let Some(previous) = last_spike[unit] {
            assert!(
                spike.sample - previous >= refractory,
                "unit {unit} refractory"
            );
        }
        last_spike[unit] = Some(spike.sample);
        counts[unit] += 1;
    }
    let mut expected_total = 0.0;
    for (unit, &count) in units.iter().zip(&counts) {
        assert_eq!(unit.spike_count, count);
        assert!((2.0..=40.0).contains(&unit.firing_rate_hz));
        let expected = unit.firing_rate_hz * config.duration_s;
        expected_total += expected;
        // Renewal with a short dead time: a bit less variable than Poisson; allow 5 sd.
        let tolerance = 5.0 * expected.sqrt();
        assert!(
            (count as f64 - expected).abs() < tolerance,
            "unit {}: {count} spikes, expected {expected:.0}",
            unit.index
        );
    }
    let total = spikes.len() as f64;
    assert!(
        (total / expected_total - 1.0).abs() < 0.02,
        "{total} vs {expected_total}"
    );
}

#[test]
fn defaults_give_one_unit_per_four_channels_with_sound_truth() {
    let simulator = EphysSimulator::new(EphysConfig::default()).expect("valid config");
    assert_eq!(simulator.channels(), 384);
    assert_eq!(simulator.samples(), 1_800_000);
    assert_eq!(simulator.units().len(), 96);
    let positions = simulator.positions();
    for unit in simulator.units() {
        assert!((10.0..=60.0).contains(&unit.z_um));
        assert!((-39.0..=109.0).contains(&unit.x_um), "x {}", unit.x_um);
        assert!((0.0..=3820.0).contains(&unit.y_um), "y {}", unit.y_um);
        assert!((60.0..=300.0).contains(&unit.amplitude_uv));
        assert!((1.0..=20.0).contains(&unit.firing_rate_hz));
        assert!(unit.channels.contains(&unit.peak_channel));
        // The peak channel is the nearest one.
        let distance = |c: usize| {
            let (x, y) = positions[c];
            (x - unit.x_um).hypot(y - unit.y_um)
        };
        let nearest = (0..positions.len())
            .map(distance)
            .fold(f32::INFINITY, f32::min);
        assert!((distance(unit.peak_channel) - nearest).abs() < 1e-3);

        let template = simulator.template(unit.index);
        assert_eq!(template.samples(), 64); // 0.5 ms before, 1.6 ms after the trough at 30 kHz
        assert_eq!(template.trough_offset(), 15);
        assert!(template.channels().len() > unit.channels.len());
        let peak = template
            .channel_waveform(unit.peak_channel)
            .expect("template covers its peak channel");
        let (trough_at, trough) = peak
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty");
        assert_eq!(trough_at, template.trough_offset());
        assert!((trough + unit.amplitude_uv).abs() < 1e-3 * unit.amplitude_uv);
        let rebound = peak.iter().copied().fold(f32::MIN, f32::max) / unit.amplitude_uv;
        assert!((0.25..0.5).contains(&rebound), "rebound ratio {rebound}");
        for &channel in template.channels() {
            let waveform = template.channel_waveform(channel).expect("covered");
            let sum: f32 = waveform.iter().sum();
            let depth = -waveform.iter().copied().fold(f32::MAX, f32::min);
            assert!(sum.abs() < 1e-3 * unit.amplitude_uv, "not zero-mean: {sum}");
            assert!(depth <= unit.amplitude_uv * (1.0 + 1e-5));
            // Footprint channels are those above 10 % of the peak (up to rounding).
            if unit.channels.contains(&channel) {
                assert!(depth > 0.0999 * unit.amplitude_uv);
            } else {
                assert!(depth < 0.1001 * unit.amplitude_uv);
            }
        }
        // Far channels see a later trough than the peak channel.
        let farthest = *template
            .channels()
            .iter()
            .max_by(|&&a, &&b| distance(a).total_cmp(&distance(b)))
            .expect("non-empty");
        let far = template.channel_waveform(farthest).expect("covered");
        let far_trough = far
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("non-empty")
            .0;
        assert!(far_trough >= template.trough_offset());
    }
}

#[test]
fn spike_troughs_match_the_unit_amplitudes() {
    let config = EphysConfig {
        duration_s: 4.0,
        channels: 96,
        ..small_config(4)
    };
    let simulator = EphysSimulator::new(config.clone()).expect("valid config");
    let (clean, _) = render(&config, &[30_000]);
    let channels = simulator.channels();
    let mut ratios = Vec::new();
    for spike in simulator.spike_list() {
        let unit = &simulator.units()[spike.unit as usize];
        let t = spike.sample as usize;
        if t < 3 || t + 3 >= simulator.samples() {
            continue;
        }
        let trough = (t - 3..=t + 3)
            .map(|s| clean[s * channels + unit.peak_channel])
            .fold(f32::INFINITY, f32::min);
        ratios.push(-trough / unit.amplitude_uv);
    }
    assert!(ratios.len() > 500, "{} spikes", ratios.len());
    ratios.sort_by(f32::total_cmp);
    let median = ratios[ratios.len() / 2];
    assert!(
        (median - 1.0).abs() < 0.03,
        "median trough / amplitude {median}"
    );
    // Overlapping spikes of other units shift some troughs; most must be close.
    let close = ratios.iter().filter(|r| (*r - 1.0).abs() < 0.2).count();
    assert!(
        close as f64 > 0.9 * ratios.len() as f64,
        "{close} of {} troughs within 20 %",
        ratios.len()
    );
}

#[test]
fn seed_changes_the_recording_and_repeats_it() {
    let (clean_a, noisy_a) = render(&small_config(5), &[1000]);
    let (clean_b, noisy_b) = render(&small_config(5), &[1000]);
    let (clean_c, noisy_c) = render(&small_config(6), &[1000]);
    assert_eq!(bits(&clean_a), bits(&clean_b));
    assert_eq!(bits(&noisy_a), bits(&noisy_b));
    assert_ne!(bits(&clean_a), bits(&clean_c));
    assert_ne!(bits(&noisy_a), bits(&noisy_c));
    let first = EphysSimulator::new(small_config(5)).expect("valid");
    let second = EphysSimulator::new(small_config(6)).expect("valid");
    assert_ne!(first.units(), second.units());
    assert_ne!(first.spikes(), second.spikes());
}

#[test]
fn invalid_configs_are_rejected() {
    let rejected = |config: EphysConfig, field: &str| match EphysSimulator::new(config) {
        Err(SimError::InvalidParameter { name, .. }) | Err(SimError::ZeroSize { name }) => {
            assert_eq!(name, field)
        }
        Ok(_) => panic!("{field}: accepted"),
        Err(other) => panic!("{field}: unexpected {other}"),
    };
    let base = small_config(0);
    rejected(
        EphysConfig {
            duration_s: 0.0,
            ..base.clone()
        },
        "duration_s",
    );
    rejected(
        EphysConfig {
            duration_s: f64::NAN,
            ..base.clone()
        },
        "duration_s",
    );
    rejected(
        EphysConfig {
            channels: 0,
            ..base.clone()
        },
        "channels",
    );
    rejected(
        EphysConfig {
            sample_rate_hz: 1000.0,
            ..base.clone()
        },
        "sample_rate_hz",
    );
    rejected(
        EphysConfig {
            positions_um: vec![(0.0, 0.0); 3],
            ..base.clone()
        },
        "positions_um",
    );
    rejected(
        EphysConfig {
            channels: 2,
            positions_um: vec![(0.0, 0.0), (f32::NAN, 20.0)],
            ..base.clone()
        },
        "positions_um",
    );
    rejected(
        EphysConfig {
            noise_uv_rms: -1.0,
            ..base.clone()
        },
        "noise_uv_rms",
    );
    rejected(
        EphysConfig {
            firing_rate_hz: (20.0, 1.0),
            ..base.clone()
        },
        "firing_rate_hz",
    );
    rejected(
        EphysConfig {
            firing_rate_hz: (1.0, f64::NAN),
            ..base.clone()
        },
        "firing_rate_hz",
    );
    rejected(
        EphysConfig {
            amplitude_uv: (300.0, 60.0),
            ..base.clone()
        },
        "amplitude_uv",
    );
    rejected(
        EphysConfig {
            amplitude_uv: (0.0, 60.0),
            ..base
        },
        "amplitude_uv",
    );
}

#[test]
fn custom_probe_and_no_units() {
    // A 4-channel tetrode-like line with no units: pure noise, empty ground truth.
    let config = EphysConfig {
        duration_s: 0.01,
        channels: 4,
        positions_um: vec![(0.0, 0.0), (0.0, 25.0), (0.0, 50.0), (0.0, 75.0)],
        units: Some(0),
        ..EphysConfig::default()
    };
    let simulator = EphysSimulator::new(config.clone()).expect("valid config");
    assert!(simulator.units().is_empty() && simulator.spikes().is_empty());
    let (clean, noisy) = render(&config, &[100]);
    assert!(clean.iter().all(|&value| value == 0.0));
    assert!(noisy.iter().any(|&value| value != 0.0));
}

#[test]
fn partial_json_uses_defaults() {
    let config: EphysConfig =
        serde_json::from_str(r#"{"duration_s": 2.5, "units": 10, "seed": 9}"#).expect("valid");
    assert_eq!(config.duration_s, 2.5);
    assert_eq!(config.units, Some(10));
    assert_eq!(config.channels, 384);
    assert!(serde_json::from_str::<EphysConfig>(r#"{"chanels": 4}"#).is_err());
    let round_trip: EphysConfig =
        serde_json::from_str(&serde_json::to_string(&config).expect("serializes")).expect("ok");
    assert_eq!(round_trip, config);
    let simulator = EphysSimulator::new(config).expect("valid");
    let json = serde_json::to_string(&simulator.units()[0]).expect("serializes");
    assert!(json.contains("peak_channel"));
}

/// Not a benchmark: prints the render speed (run with `--release -- --nocapture`).
#[test]
fn render_speed_ten_seconds_of_384_channels() {
    let config = EphysConfig {
        duration_s: 10.0,
        seed: 7,
        ..EphysConfig::default()
    };
    let started = Instant::now();
    let mut simulator = EphysSimulator::new(config).expect("valid config");
    let setup = started.elapsed();
    let channels = simulator.channels();
    let chunk = 30_000;
    let mut clean = vec![0.0; chunk * channels];
    let mut noisy = vec![0.0; chunk * channels];
    let started = Instant::now();
    let mut total = 0;
    loop {
        let rendered = simulator.next_samples(chunk, &mut clean, &mut noisy);
        if rendered == 0 {
            break;
        }
        total += rendered;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(total, 300_000);
    let values = (total * channels) as f64;
    println!(
        "ephys render: 10 s x 384 ch ({} units, {} spikes) in {seconds:.2} s \
         ({:.0} M values/s, {:.1}x real time; setup {:.0} ms) on {} threads",
        simulator.units().len(),
        simulator.spike_list().len(),
        values / seconds / 1e6,
        10.0 / seconds,
        setup.as_secs_f64() * 1e3,
        rayon::current_num_threads(),
    );
}
