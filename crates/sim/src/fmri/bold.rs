//! Time courses of the run and the regions that carry a task response: the canonical
//! haemodynamic response function, block and event task designs convolved with it, the
//! spontaneous low-frequency fluctuations and the drift basis. Time courses are one number per
//! volume (drawn when the simulator is built); their spatial maps live in `simulator`.

use std::f64::consts::{PI, TAU};

use rand::Rng;
use rand_distr::Exp1;
use serde::{Deserialize, Serialize};

use super::anatomy::{Anatomy, Tissue};
use super::config::FmriConfig;
use super::fmri_rng;
use crate::rng::Stream;

/// Shape parameters (integers, unit scale in seconds) of the response's two gamma densities:
/// the positive lobe peaks at 5 s, the undershoot at 15 s.
const RESPONSE_SHAPE: u32 = 6;
const UNDERSHOOT_SHAPE: u32 = 16;

/// Size of the undershoot relative to the positive lobe.
const UNDERSHOOT_RATIO: f64 = 1.0 / 6.0;

/// Length of the haemodynamic response that is kept, seconds (the rest is < 1e-6 of its peak).
const HRF_LENGTH_S: f64 = 40.0;

/// Number of spontaneous-fluctuation components (smooth spatial map × slow time course).
pub(crate) const SPONTANEOUS_COMPONENTS: usize = 4;

/// Sinusoids summed into each spontaneous time course.
const SPONTANEOUS_SINUSOIDS: usize = 8;

/// Band of the spontaneous fluctuations, Hz (the resting-state band).
const SPONTANEOUS_BAND_HZ: (f64, f64) = (0.01, 0.1);

/// Number of drift basis functions: a linear trend and two slow cosines.
pub(crate) const DRIFT_COMPONENTS: usize = 3;

/// Radius range of an active region, voxels.
const REGION_RADIUS_VOXELS: (f64, f64) = (3.0, 6.0);

/// Scene sub-stream that places the active regions.
const REGION_STREAM: u64 = 5;

/// Dynamics sub-stream of the spontaneous time courses; region `r`'s events use `1 + r`.
const SPONTANEOUS_STREAM: u64 = 0;

/// The canonical double-gamma haemodynamic response to a brief event at time 0, at `t_s`
/// seconds: a gamma density of shape 6 (peak at 5 s) minus a sixth of one of shape 16
/// (undershoot at 15 s), unit time scale, zero for `t_s <= 0`. Its integral is 5/6.
pub fn canonical_hrf(t_s: f64) -> f64 {
    gamma_density(RESPONSE_SHAPE, t_s) - UNDERSHOOT_RATIO * gamma_density(UNDERSHOOT_SHAPE, t_s)
}

/// The integral of [`canonical_hrf`] from 0 to `t_s`: the response to a step at time 0.
fn hrf_step_response(t_s: f64) -> f64 {
    gamma_distribution(RESPONSE_SHAPE, t_s)
        - UNDERSHOOT_RATIO * gamma_distribution(UNDERSHOOT_SHAPE, t_s)
}

/// Density of the gamma distribution with integer `shape` and unit scale.
fn gamma_density(shape: u32, t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let factorial: f64 = (1..shape).map(f64::from).product();
    t.powi(shape as i32 - 1) * (-t).exp() / factorial
}

/// Cumulative distribution of the gamma distribution with integer `shape` and unit scale
/// (the Erlang distribution): `1 - e^-t Σ_{k<shape} t^k / k!`.
fn gamma_distribution(shape: u32, t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let (mut term, mut sum) = (1.0, 0.0);
    for k in 0..shape {
        if k > 0 {
            term *= t / f64::from(k);
        }
        sum += term;
    }
    1.0 - (-t).exp() * sum
}

/// The peak value of [`canonical_hrf`], found on a 1 ms grid.
fn hrf_peak() -> f64 {
    (0..=10_000)
        .map(|step| canonical_hrf(f64::from(step) * 1e-3))
        .fold(0.0, f64::max)
}

/// How a region's task is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskDesign {
    /// Alternating rest and task blocks of half [`FmriConfig::block_period_s`] each, rest
    /// first; onsets are the starts of the task blocks.
    Block,
    /// Brief events at Poisson times ([`FmriConfig::event_rate_hz`]); onsets are the events.
    Events,
}

/// Ground truth about one task-activated region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveRegion {
    /// Centre voxel `[x, y, z]` (a grey-matter voxel whenever the brain has one).
    pub centre_voxel: [usize; 3],
    /// Radius, voxels: the response is full strength out to `radius - 1`, half at `radius`
    /// and zero beyond `radius + 1`, scaled by the tissue's BOLD weight (white matter 0.2,
    /// CSF 0).
    pub radius_voxels: f64,
    /// Amplitude of the response in grey matter at full strength, percent of baseline.
    pub amplitude_percent: f64,
    /// Block or event-related task.
    pub design: TaskDesign,
    /// Onsets, seconds from the first volume: task-block starts or events.
    pub onsets_s: Vec<f64>,
    /// The task regressor convolved with [`canonical_hrf`] at every volume, scaled so that a
    /// block's plateau or an isolated event's peak is 1; a voxel at full strength changes by
    /// `amplitude_percent / 100 · response[t]` of its baseline.
    pub response: Vec<f32>,
    /// Voxels in [`crate::FmriSimulator::active_mask`] that belong to this region.
    pub active_voxels: usize,
}

/// The spatial profile of a region at `distance` voxels from its centre: 1 inside
/// `radius - 1`, a raised-cosine edge through 0.5 at `radius`, 0 beyond `radius + 1`.
pub(crate) fn region_profile(distance: f64, radius: f64) -> f64 {
    let edge = distance - (radius - 1.0);
    if edge <= 0.0 {
        1.0
    } else if edge >= 2.0 {
        0.0
    } else {
        0.5 * (1.0 + (PI * edge / 2.0).cos())
    }
}

/// Places `config.active_regions` regions in `anatomy` and computes their responses (their
/// `active_voxels` are left at 0 for the simulator to count).
pub(crate) fn place_regions(config: &FmriConfig, anatomy: &Anatomy) -> Vec<ActiveRegion> {
    let grey: Vec<usize> = (0..anatomy.tissue.len())
        .filter(|&index| anatomy.tissue[index] == Tissue::GreyMatter)
        .collect();
    // A volume too small for grey matter still gets regions, in whatever brain it has.
    let candidates = if grey.is_empty() {
        (0..anatomy.mask.len())
            .filter(|&index| anatomy.mask[index])
            .collect()
    } else {
        grey
    };
    if candidates.is_empty() {
        return Vec::new();
    }
    let mut rng = fmri_rng(config.seed, Stream::Scene, REGION_STREAM);
    // Large regions would swallow a small head: at most half its smallest semi-axis.
    let largest_radius = config
        .shape
        .iter()
        .map(|&side| 0.2 * side as f64)
        .fold(REGION_RADIUS_VOXELS.1, f64::min)
        .max(1.0);
    let block_regions = config.active_regions.div_ceil(2);
    let mut regions: Vec<ActiveRegion> = Vec::with_capacity(config.active_regions);
    for region in 0..config.active_regions {
        let radius = rng
            .random_range(REGION_RADIUS_VOXELS.0..=REGION_RADIUS_VOXELS.1)
            .min(largest_radius);
        // Keep regions apart so that each voxel answers to one task; give up after a while
        // (a crowded small head) and accept an overlap.
        let mut centre = anatomy.geometry.voxel(candidates[0]);
        for _ in 0..200 {
            centre = anatomy
                .geometry
                .voxel(candidates[rng.random_range(0..candidates.len())]);
            let apart = regions.iter().all(|other| {
                distance(centre, other.centre_voxel) >= radius + other.radius_voxels + 2.0
            });
            if apart {
                break;
            }
        }
        let amplitude_percent =
            rng.random_range(config.activation_percent.0..=config.activation_percent.1);
        let (design, onsets_s, response) = if region < block_regions {
            let onsets = block_onsets(config);
            let response = block_response(config, &onsets);
            (TaskDesign::Block, onsets, response)
        } else {
            let onsets = event_onsets(config, region);
            let response = event_response(config, &onsets);
            (TaskDesign::Events, onsets, response)
        };
        regions.push(ActiveRegion {
            centre_voxel: centre,
            radius_voxels: radius,
            amplitude_percent,
            design,
            onsets_s,
            response,
            active_voxels: 0,
        });
    }
    regions
}

/// Euclidean distance between two voxels, voxels.
pub(crate) fn distance(a: [usize; 3], b: [usize; 3]) -> f64 {
    (0..3)
        .map(|axis| (a[axis] as f64 - b[axis] as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Starts of the task blocks: the second half of every block period.
fn block_onsets(config: &FmriConfig) -> Vec<f64> {
    let period = config.block_period_s;
    (0..)
        .map(|block| (f64::from(block) + 0.5) * period)
        .take_while(|&onset| onset < config.duration_s())
        .collect()
}

/// The block regressor (on for half a period from each onset) convolved with the HRF, exactly
/// (through the HRF's step response), at every volume, scaled to a unit plateau.
fn block_response(config: &FmriConfig, onsets: &[f64]) -> Vec<f32> {
    let on_duration = config.block_period_s / 2.0;
    let plateau = 1.0 - UNDERSHOOT_RATIO;
    (0..config.frames)
        .map(|frame| {
            let t = frame as f64 * config.repetition_time_s;
            let sum: f64 = onsets
                .iter()
                .filter(|&&onset| onset < t)
                .map(|&onset| {
                    hrf_step_response(t - onset) - hrf_step_response(t - onset - on_duration)
                })
                .sum();
            (sum / plateau) as f32
        })
        .collect()
}

/// Poisson event times over the run for region `region` (at least one, so that every region
/// really is active: if the draw has none, one event at a uniform time in the first 3/4).
fn event_onsets(config: &FmriConfig, region: usize) -> Vec<f64> {
    let mut rng = fmri_rng(config.seed, Stream::Dynamics, 1 + region as u64);
    let duration = config.duration_s();
    let mut onsets = Vec::new();
    let mut t = 0.0;
    loop {
        t += rng.sample::<f64, _>(Exp1) / config.event_rate_hz;
        if t >= duration {
            break;
        }
        onsets.push(t);
    }
    if onsets.is_empty() {
        onsets.push(0.75 * duration * rng.random::<f64>());
    }
    onsets
}

/// The sum of the HRF of every event at every volume, scaled so that one event peaks at 1.
fn event_response(config: &FmriConfig, onsets: &[f64]) -> Vec<f32> {
    let peak = hrf_peak();
    (0..config.frames)
        .map(|frame| {
            let t = frame as f64 * config.repetition_time_s;
            let sum: f64 = onsets
                .iter()
                .filter(|&&onset| onset < t && t - onset < HRF_LENGTH_S)
                .map(|&onset| canonical_hrf(t - onset))
                .sum();
            (sum / peak) as f32
        })
        .collect()
}

/// The spontaneous time courses at every volume, each a sum of sinusoids in the resting-state
/// band (capped at 80 % of the Nyquist frequency) with random frequencies and phases, scaled
/// to unit variance.
pub(crate) fn spontaneous_time_courses(config: &FmriConfig) -> Vec<[f32; SPONTANEOUS_COMPONENTS]> {
    let mut rng = fmri_rng(config.seed, Stream::Dynamics, SPONTANEOUS_STREAM);
    let nyquist = 0.5 / config.repetition_time_s;
    let high = SPONTANEOUS_BAND_HZ.1.min(0.8 * nyquist);
    let low = SPONTANEOUS_BAND_HZ.0.min(high);
    let sinusoids: Vec<Vec<(f64, f64)>> = (0..SPONTANEOUS_COMPONENTS)
        .map(|_| {
            (0..SPONTANEOUS_SINUSOIDS)
                .map(|_| (rng.random_range(low..=high), TAU * rng.random::<f64>()))
                .collect()
        })
        .collect();
    let scale = (2.0 / SPONTANEOUS_SINUSOIDS as f64).sqrt();
    (0..config.frames)
        .map(|frame| {
            let t = frame as f64 * config.repetition_time_s;
            std::array::from_fn(|component| {
                let sum: f64 = sinusoids[component]
                    .iter()
                    .map(|&(frequency, phase)| (TAU * frequency * t + phase).cos())
                    .sum();
                (scale * sum) as f32
            })
        })
        .collect()
}

/// The drift basis at every volume: a linear trend from -1/2 to 1/2 over the run, and
/// `cos(πτ)/2`, `cos(2πτ)/2` with `τ` running from 0 to 1.
pub(crate) fn drift_basis(frames: usize) -> Vec<[f32; DRIFT_COMPONENTS]> {
    let last = (frames.max(2) - 1) as f64;
    (0..frames)
        .map(|frame| {
            let tau = frame as f64 / last;
            [
                (tau - 0.5) as f32,
                (0.5 * (PI * tau).cos()) as f32,
                (0.5 * (TAU * tau).cos()) as f32,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmri_hrf_peaks_near_5_s_with_undershoot_near_15_s() {
        let samples: Vec<f64> = (0..3000)
            .map(|i| canonical_hrf(f64::from(i) * 0.01))
            .collect();
        let argmax = |values: &[f64], sign: f64| {
            (0..values.len())
                .max_by(|&a, &b| (sign * values[a]).total_cmp(&(sign * values[b])))
                .expect("non-empty")
        };
        let peak_s = argmax(&samples, 1.0) as f64 * 0.01;
        let undershoot_s = argmax(&samples, -1.0) as f64 * 0.01;
        assert!((4.5..5.5).contains(&peak_s), "peak at {peak_s}");
        assert!(
            (14.0..17.0).contains(&undershoot_s),
            "undershoot at {undershoot_s}"
        );
        let integral: f64 = samples.iter().sum::<f64>() * 0.01;
        assert!((integral - 5.0 / 6.0).abs() < 1e-3, "integral {integral}");
        assert!((hrf_step_response(29.99) - integral).abs() < 1e-3);
        assert_eq!(canonical_hrf(0.0), 0.0);
    }

    #[test]
    fn fmri_block_response_reaches_a_unit_plateau_and_returns_to_zero() {
        let config = FmriConfig {
            block_period_s: 80.0,
            ..FmriConfig::new([8, 8, 8], 80)
        };
        let onsets = block_onsets(&config);
        assert_eq!(onsets, vec![40.0, 120.0]);
        let response = block_response(&config, &onsets);
        // Rest first, plateau near the end of the 40 s block, back near zero 30 s after it.
        assert!(response[..20].iter().all(|&value| value == 0.0));
        assert!(
            (response[39] - 1.0).abs() < 0.01,
            "plateau {}",
            response[39]
        );
        assert!(response[55].abs() < 0.05, "after block {}", response[55]);
    }

    #[test]
    fn fmri_spontaneous_courses_have_unit_scale_and_drift_spans_one() {
        let config = FmriConfig::new([8, 8, 8], 400);
        let courses = spontaneous_time_courses(&config);
        for component in 0..SPONTANEOUS_COMPONENTS {
            let rms = (courses
                .iter()
                .map(|c| f64::from(c[component]).powi(2))
                .sum::<f64>()
                / courses.len() as f64)
                .sqrt();
            assert!((0.5..1.5).contains(&rms), "component {component} rms {rms}");
        }
        let drift = drift_basis(50);
        assert_eq!(drift[0][0], -0.5);
        assert_eq!(drift[49][0], 0.5);
        assert_eq!(drift[0][1], 0.5);
    }
}
