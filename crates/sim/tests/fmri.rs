//! Behaviour of the fMRI simulator as a whole: determinism under chunking, realised tSNR,
//! task responses against an independently built HRF regressor, intensity range, anatomy,
//! validation and speed.

use std::time::Instant;

use deepinterp_sim::{FmriConfig, FmriSimulator, SimError, TaskDesign, Tissue};

/// A small run: 32 × 32 × 16 voxels.
fn small_config(frames: usize, seed: u64) -> FmriConfig {
    FmriConfig {
        seed,
        ..FmriConfig::new([32, 32, 16], frames)
    }
}

/// Renders the whole run in chunks of the given sizes (cycled); returns (clean, noisy), each
/// `[time][z][y][x]`.
fn render(config: &FmriConfig, chunk_sizes: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut simulator = FmriSimulator::new(config.clone()).expect("valid config");
    let voxels = config.volume_voxels();
    let largest = chunk_sizes.iter().copied().max().unwrap_or(1);
    let (mut clean_chunk, mut noisy_chunk) =
        (vec![0.0; largest * voxels], vec![0.0; largest * voxels]);
    let (mut clean, mut noisy) = (Vec::new(), Vec::new());
    for &size in chunk_sizes.iter().cycle() {
        let rendered = simulator.next_volumes(size, &mut clean_chunk, &mut noisy_chunk);
        if rendered == 0 {
            break;
        }
        clean.extend_from_slice(&clean_chunk[..rendered * voxels]);
        noisy.extend_from_slice(&noisy_chunk[..rendered * voxels]);
    }
    assert_eq!(simulator.frames_remaining(), 0);
    assert_eq!(clean.len(), config.frames * voxels);
    (clean, noisy)
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|value| value.to_bits()).collect()
}

/// The time course of voxel `voxel` in a `[time][voxel]` run.
fn time_course(run: &[f32], voxels: usize, voxel: usize) -> Vec<f64> {
    run.iter()
        .skip(voxel)
        .step_by(voxels)
        .map(|&v| f64::from(v))
        .collect()
}

/// Pearson correlation of two equally long series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (mean_a, mean_b) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a).powi(2);
        var_b += (y - mean_b).powi(2);
    }
    cov / (var_a * var_b).sqrt()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The SPM-style double-gamma HRF written out independently of the crate:
/// `t⁵e⁻ᵗ/5! − t¹⁵e⁻ᵗ/(6·15!)`.
fn reference_hrf(t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    t.powi(5) * (-t).exp() / 120.0 - t.powi(15) * (-t).exp() / (6.0 * 1_307_674_368_000.0)
}

/// The task regressor of a region convolved numerically (10 ms steps) with the reference HRF,
/// sampled at every volume.
fn reference_regressor(config: &FmriConfig, design: TaskDesign, onsets: &[f64]) -> Vec<f64> {
    let step = 0.01;
    (0..config.frames)
        .map(|frame| {
            let t = frame as f64 * config.repetition_time_s;
            match design {
                TaskDesign::Events => onsets.iter().map(|&onset| reference_hrf(t - onset)).sum(),
                TaskDesign::Block => {
                    let on = config.block_period_s / 2.0;
                    onsets
                        .iter()
                        .map(|&onset| {
                            let steps = (on / step) as usize;
                            (0..steps)
                                .map(|i| reference_hrf(t - onset - (i as f64 + 0.5) * step) * step)
                                .sum::<f64>()
                        })
                        .sum()
                }
            }
        })
        .collect()
}

#[test]
fn fmri_chunking_does_not_change_the_run() {
    let config = FmriConfig::new([20, 18, 9], 23);
    let (clean_whole, noisy_whole) = render(&config, &[23]);
    for chunks in [&[1][..], &[7, 3, 11], &[5, 2]] {
        let (clean, noisy) = render(&config, chunks);
        assert_eq!(bits(&clean), bits(&clean_whole), "clean, chunks {chunks:?}");
        assert_eq!(bits(&noisy), bits(&noisy_whole), "noisy, chunks {chunks:?}");
    }
    // A buffer shorter than the request limits the volumes rendered.
    let mut simulator = FmriSimulator::new(config.clone()).expect("valid");
    let voxels = config.volume_voxels();
    let (mut clean, mut noisy) = (vec![0.0; 2 * voxels + 5], vec![0.0; 3 * voxels]);
    assert_eq!(simulator.next_volumes(10, &mut clean, &mut noisy), 2);
    assert_eq!(simulator.frames_rendered(), 2);
    assert_eq!(bits(&clean[..2 * voxels]), bits(&clean_whole[..2 * voxels]));
}

#[test]
fn fmri_seed_changes_the_run_and_repeats_it() {
    let (clean_a, noisy_a) = render(&small_config(12, 5), &[12]);
    let (clean_b, noisy_b) = render(&small_config(12, 5), &[12]);
    let (clean_c, noisy_c) = render(&small_config(12, 6), &[12]);
    assert_eq!(bits(&clean_a), bits(&clean_b));
    assert_eq!(bits(&noisy_a), bits(&noisy_b));
    assert_ne!(bits(&clean_a), bits(&clean_c));
    assert_ne!(bits(&noisy_a), bits(&noisy_c));
    let first = FmriSimulator::new(small_config(12, 5)).expect("valid");
    let second = FmriSimulator::new(small_config(12, 6)).expect("valid");
    assert_ne!(first.tissue(), second.tissue());
    assert_ne!(first.regions(), second.regions());
}

/// Median over grey- and white-matter voxels of mean / std over time, 3 volumes dropped at
/// each end (the paper's definition).
fn median_parenchyma_tsnr(simulator: &FmriSimulator, run: &[f32]) -> f64 {
    let voxels = simulator.config().volume_voxels();
    let frames = simulator.frames();
    let tsnr: Vec<f64> = (0..voxels)
        .filter(|&voxel| {
            matches!(
                simulator.tissue()[voxel],
                Tissue::GreyMatter | Tissue::WhiteMatter
            )
        })
        .map(|voxel| {
            let series = &time_course(run, voxels, voxel)[3..frames - 3];
            let n = series.len() as f64;
            let mean = series.iter().sum::<f64>() / n;
            let variance = series.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            mean / variance.sqrt()
        })
        .collect();
    median(tsnr)
}

#[test]
fn fmri_realised_tsnr_is_near_the_target() {
    for target in [30.0, 60.0] {
        let config = FmriConfig {
            tsnr: target,
            ..small_config(80, 11)
        };
        let simulator = FmriSimulator::new(config.clone()).expect("valid");
        let (clean, noisy) = render(&config, &[16]);
        let realised = median_parenchyma_tsnr(&simulator, &noisy);
        let clean_tsnr = median_parenchyma_tsnr(&simulator, &clean);
        println!("tsnr target {target}: realised {realised:.1}, clean-only {clean_tsnr:.0}");
        assert!(
            (realised / target - 1.0).abs() < 0.15,
            "target {target}: realised {realised}"
        );
        // The clean run alone is far cleaner: its fluctuations are signal, not noise.
        assert!(clean_tsnr > 2.0 * target, "clean tSNR {clean_tsnr}");
    }
}

#[test]
fn fmri_noise_has_the_reported_sigma() {
    let config = small_config(20, 2);
    let simulator = FmriSimulator::new(config.clone()).expect("valid");
    let (clean, noisy) = render(&config, &[20]);
    let voxels = config.volume_voxels();
    let residuals: Vec<f64> = (0..clean.len())
        .filter(|&i| simulator.tissue()[i % voxels] == Tissue::WhiteMatter)
        .map(|i| f64::from(noisy[i] - clean[i]))
        .collect();
    let n = residuals.len() as f64;
    let mean = residuals.iter().sum::<f64>() / n;
    let std = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    let sigma = simulator.noise_sigma();
    assert!((std / sigma - 1.0).abs() < 0.03, "std {std} sigma {sigma}");
    assert!(mean.abs() < 0.05 * sigma, "bias {mean}");
    // Outside the head the magnitude of pure noise is Rayleigh: mean σ·sqrt(π/2).
    let far: Vec<f64> = (0..clean.len())
        .filter(|&i| {
            let voxel = i % voxels;
            let (x, y) = (voxel % 32, (voxel / 32) % 32);
            x < 2 && y < 2
        })
        .map(|i| f64::from(noisy[i]))
        .collect();
    let far_mean = far.iter().sum::<f64>() / far.len() as f64;
    assert!(
        far_mean > sigma && far_mean < 2.0 * sigma,
        "background {far_mean}, σ {sigma}"
    );
}

/// `series` minus its least-squares fit by a constant, a linear trend and `cos(πτ)`,
/// `cos(2πτ)` (τ from 0 to 1): the usual removal of slow drift before correlating with a task.
fn detrend(series: &[f64]) -> Vec<f64> {
    let n = series.len();
    let tau = |i: usize| i as f64 / (n - 1) as f64;
    let mut residual = series.to_vec();
    let mut orthonormal: Vec<Vec<f64>> = Vec::new();
    for regressor in [
        vec![1.0; n],
        (0..n).map(tau).collect(),
        (0..n)
            .map(|i| (std::f64::consts::PI * tau(i)).cos())
            .collect(),
        (0..n)
            .map(|i| (std::f64::consts::TAU * tau(i)).cos())
            .collect::<Vec<f64>>(),
    ] {
        // Gram-Schmidt, then project the series off each new direction.
        let mut direction = regressor;
        for basis in &orthonormal {
            let dot: f64 = direction.iter().zip(basis).map(|(a, b)| a * b).sum();
            direction
                .iter_mut()
                .zip(basis)
                .for_each(|(a, b)| *a -= dot * b);
        }
        let norm = direction.iter().map(|a| a * a).sum::<f64>().sqrt();
        direction.iter_mut().for_each(|a| *a /= norm);
        let dot: f64 = residual.iter().zip(&direction).map(|(a, b)| a * b).sum();
        residual
            .iter_mut()
            .zip(&direction)
            .for_each(|(a, b)| *a -= dot * b);
        orthonormal.push(direction);
    }
    residual
}

/// Distance in voxels between voxel `index` (x fastest in `shape`) and `centre`.
fn voxel_distance(shape: [usize; 3], index: usize, centre: [usize; 3]) -> f64 {
    let voxel = [
        index % shape[0],
        (index / shape[0]) % shape[1],
        index / (shape[0] * shape[1]),
    ];
    (0..3)
        .map(|axis| (voxel[axis] as f64 - centre[axis] as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn fmri_active_voxels_follow_the_hrf_convolved_task() {
    let config = small_config(120, 3);
    let simulator = FmriSimulator::new(config.clone()).expect("valid");
    let (clean, _) = render(&config, &[40]);
    let voxels = config.volume_voxels();
    let regions = simulator.regions();
    assert_eq!(regions.len(), 4);
    assert_eq!(regions[0].design, TaskDesign::Block);
    assert_eq!(regions[3].design, TaskDesign::Events);
    let mut all_correlations = Vec::new();
    for (index, region) in regions.iter().enumerate() {
        let reference = reference_regressor(&config, region.design, &region.onsets_s);
        let own: Vec<f64> = region.response.iter().map(|&v| f64::from(v)).collect();
        assert!(
            correlation(&own, &reference) > 0.999,
            "region {index} response"
        );
        assert!((1.0..=4.0).contains(&region.amplitude_percent));
        let [cx, cy, cz] = region.centre_voxel;
        let [nx, ny, _] = config.shape;
        assert_eq!(
            simulator.tissue()[cx + nx * (cy + ny * cz)],
            Tissue::GreyMatter
        );
        let reference = detrend(&reference);
        let mut correlations: Vec<f64> = (0..voxels)
            .filter(|&voxel| {
                simulator.active_mask()[voxel]
                    && voxel_distance(config.shape, voxel, region.centre_voxel)
                        <= region.radius_voxels + 1.0
            })
            .map(|voxel| correlation(&detrend(&time_course(&clean, voxels, voxel)), &reference))
            .collect();
        assert_eq!(correlations.len(), region.active_voxels, "region {index}");
        assert!(
            region.active_voxels > 5,
            "region {index}: {} voxels",
            region.active_voxels
        );
        all_correlations.extend_from_slice(&correlations);
        correlations.sort_by(f64::total_cmp);
        let region_median = correlations[correlations.len() / 2];
        println!(
            "region {index} ({:?}, {:.1} %, radius {:.1}): {} active voxels, median r {region_median:.3}",
            region.design, region.amplitude_percent, region.radius_voxels, region.active_voxels
        );
        // Spontaneous fluctuations compete with the weakest (1 %) responses.
        assert!(region_median > 0.5, "region {index}: {region_median}");
    }
    let active = simulator.active_mask().iter().filter(|&&a| a).count();
    assert_eq!(
        active,
        all_correlations.len(),
        "active voxels outside every region"
    );
    assert!(
        (0..voxels)
            .all(|v| !simulator.active_mask()[v] || simulator.tissue()[v] == Tissue::GreyMatter)
    );
    let pooled = median(all_correlations);
    assert!(pooled > 0.8, "median correlation of active voxels {pooled}");
    // Grey matter far from every region does not follow the block task.
    let block = detrend(&reference_regressor(
        &config,
        TaskDesign::Block,
        &regions[0].onsets_s,
    ));
    let far: Vec<f64> = (0..voxels)
        .filter(|&voxel| {
            simulator.tissue()[voxel] == Tissue::GreyMatter
                && regions.iter().all(|region| {
                    voxel_distance(config.shape, voxel, region.centre_voxel)
                        > region.radius_voxels + 2.0
                })
        })
        .map(|voxel| correlation(&detrend(&time_course(&clean, voxels, voxel)), &block).abs())
        .collect();
    let far_median = median(far);
    println!("active voxels: median r {pooled:.3}; far grey matter: median |r| {far_median:.3}");
    assert!(
        far_median < 0.4,
        "inactive grey matter follows the task: {far_median}"
    );
}

#[test]
fn fmri_values_stay_in_the_int16_range() {
    for (tsnr, activation) in [(30.0, (1.0, 4.0)), (0.5, (20.0, 20.0))] {
        let config = FmriConfig {
            tsnr,
            activation_percent: activation,
            bias_field_percent: 50.0,
            ..small_config(20, 4)
        };
        let (clean, noisy) = render(&config, &[20]);
        for values in [&clean, &noisy] {
            assert!(
                values.iter().all(|v| (0.0..=32767.0).contains(v)),
                "tsnr {tsnr}"
            );
        }
        assert!(clean.iter().copied().fold(0.0, f32::max) < 3000.0);
    }
}

#[test]
fn fmri_anatomy_is_brain_shaped() {
    let config = FmriConfig::new([64, 64, 32], 10);
    let simulator = FmriSimulator::new(config.clone()).expect("valid");
    let tissue = simulator.tissue();
    let count = |wanted: Tissue| tissue.iter().filter(|&&t| t == wanted).count() as f64;
    let brain = simulator.brain_mask().iter().filter(|&&b| b).count() as f64;
    let volume = tissue.len() as f64;
    let (csf, grey, white) = (
        count(Tissue::Csf) / brain,
        count(Tissue::GreyMatter) / brain,
        count(Tissue::WhiteMatter) / brain,
    );
    println!(
        "brain {:.3} of volume; CSF {csf:.3}, GM {grey:.3}, WM {white:.3}",
        brain / volume
    );
    // An ellipsoid of semi-axes 0.4, 0.4, 0.425 of the box fills 28 % of it.
    assert!(
        (0.22..0.35).contains(&(brain / volume)),
        "brain {}",
        brain / volume
    );
    assert!((0.08..0.3).contains(&csf), "csf {csf}");
    assert!((0.2..0.5).contains(&grey), "grey {grey}");
    assert!((0.25..0.6).contains(&white), "white {white}");
    // The mask spans ~80 % of the field of view in x and y and ~85 % in z.
    let [nx, ny, nz] = config.shape;
    for (axis, side, wanted) in [(0, nx, 0.8), (1, ny, 0.8), (2, nz, 0.85)] {
        let coordinate = |voxel: usize| [voxel % nx, (voxel / nx) % ny, voxel / (nx * ny)][axis];
        let inside: Vec<usize> = (0..tissue.len())
            .filter(|&v| simulator.brain_mask()[v])
            .map(coordinate)
            .collect();
        let extent = (inside.iter().max().expect("brain") - inside.iter().min().expect("brain") + 1)
            as f64
            / side as f64;
        assert!(
            (extent - wanted).abs() < 0.1,
            "axis {axis}: extent {extent}"
        );
    }
    // Ventricles: CSF at the heart of the brain.
    let central_csf = (0..tissue.len())
        .filter(|&v| {
            let (x, y, z) = (v % nx, (v / nx) % ny, v / (nx * ny));
            tissue[v] == Tissue::Csf
                && x.abs_diff(32) < 10
                && y.abs_diff(32) < 10
                && z.abs_diff(16) < 5
        })
        .count();
    assert!(central_csf > 20, "ventricle voxels {central_csf}");
    assert_eq!(tissue[0], Tissue::Background);
    assert!(simulator.baseline()[0] < 30.0);
}

#[test]
fn fmri_invalid_configs_are_rejected() {
    let rejected = |config: FmriConfig, field: &str| match FmriSimulator::new(config) {
        Err(SimError::InvalidParameter { name, .. }) | Err(SimError::ZeroSize { name }) => {
            assert_eq!(name, field)
        }
        Ok(_) => panic!("{field}: accepted"),
        Err(other) => panic!("{field}: unexpected {other}"),
    };
    let base = small_config(20, 0);
    let with = |edit: &dyn Fn(&mut FmriConfig)| {
        let mut config = base.clone();
        edit(&mut config);
        config
    };
    rejected(with(&|c| c.shape = [32, 0, 16]), "shape");
    rejected(with(&|c| c.shape = [1 << 20, 1 << 20, 1]), "shape");
    rejected(with(&|c| c.frames = 0), "frames");
    rejected(with(&|c| c.frames = 9), "frames");
    rejected(
        with(&|c| c.voxel_size_mm = [3.0, f64::NAN, 3.0]),
        "voxel_size_mm",
    );
    rejected(with(&|c| c.repetition_time_s = 0.0), "repetition_time_s");
    rejected(with(&|c| c.repetition_time_s = 12.0), "repetition_time_s");
    rejected(with(&|c| c.tsnr = 0.0), "tsnr");
    rejected(with(&|c| c.tsnr = -5.0), "tsnr");
    rejected(with(&|c| c.tsnr = f64::INFINITY), "tsnr");
    rejected(with(&|c| c.active_regions = 33), "active_regions");
    rejected(
        with(&|c| c.activation_percent = (3.0, 2.0)),
        "activation_percent",
    );
    rejected(
        with(&|c| c.activation_percent = (-1.0, 2.0)),
        "activation_percent",
    );
    rejected(with(&|c| c.block_period_s = 3.0), "block_period_s");
    rejected(with(&|c| c.event_rate_hz = 0.0), "event_rate_hz");
    rejected(
        with(&|c| c.spontaneous_percent = f64::NAN),
        "spontaneous_percent",
    );
    rejected(with(&|c| c.drift_percent = 11.0), "drift_percent");
    rejected(with(&|c| c.bias_field_percent = -1.0), "bias_field_percent");
    // Edge cases that are valid: one slice, no regions, no slow signals.
    let edge = FmriConfig {
        active_regions: 0,
        spontaneous_percent: 0.0,
        drift_percent: 0.0,
        activation_percent: (0.0, 0.0),
        ..FmriConfig::new([16, 16, 1], 10)
    };
    let (clean, noisy) = render(&edge, &[4]);
    assert!(clean.iter().chain(&noisy).all(|v| v.is_finite()));
    // Volumes too small for a brain (or for grey matter) still render.
    for shape in [[1, 1, 1], [2, 2, 2], [3, 1, 1], [6, 6, 3]] {
        let (clean, noisy) = render(&FmriConfig::new(shape, 10), &[3]);
        assert!(
            clean
                .iter()
                .chain(&noisy)
                .all(|v| (0.0..=32767.0).contains(v)),
            "{shape:?}"
        );
    }
}

#[test]
fn fmri_config_round_trips_through_json() {
    let config = FmriConfig {
        tsnr: 45.0,
        ..small_config(30, 9)
    };
    let json = serde_json::to_string(&config).expect("serializes");
    let back: FmriConfig = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, config);
    let partial: FmriConfig = serde_json::from_str(r#"{"frames": 50}"#).expect("defaults");
    assert_eq!(partial.shape, [64, 64, 32]);
    assert_eq!(partial.frames, 50);
    assert!(serde_json::from_str::<FmriConfig>(r#"{"tsrn": 4}"#).is_err());
    let simulator = FmriSimulator::new(config).expect("valid");
    let json = serde_json::to_string(&simulator.regions()[0]).expect("serializes");
    assert!(json.contains("onsets_s"));
}

/// Not a benchmark: prints the render speed of the default run (run with `-- --nocapture`).
#[test]
fn fmri_render_speed_default_run() {
    let config = FmriConfig::default();
    let started = Instant::now();
    let mut simulator = FmriSimulator::new(config.clone()).expect("valid");
    let setup = started.elapsed().as_secs_f64();
    let voxels = config.volume_voxels();
    let chunk = 10;
    let (mut clean, mut noisy) = (vec![0.0; chunk * voxels], vec![0.0; chunk * voxels]);
    let started = Instant::now();
    let mut total = 0;
    while simulator.next_volumes(chunk, &mut clean, &mut noisy) > 0 {
        total += chunk;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(total, 200);
    println!(
        "fmri render: 64x64x32x200 in {seconds:.2} s (setup {setup:.2} s; {:.0} M voxels/s) on {} threads",
        (total * voxels) as f64 / seconds / 1e6,
        rayon::current_num_threads()
    );
}
