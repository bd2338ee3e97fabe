//! The static part of a simulated field of view: soma footprints (sparse), the neuropil's
//! smooth spatial basis and the baseline (vignetted) fluorescence map, all drawn once from the
//! scene random stream.

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

use crate::config::TwoPhotonConfig;
use crate::rng::{Stream, StreamRng};

/// Number of smooth spatial components that make up the neuropil field.
pub(crate) const NEUROPIL_COMPONENTS: usize = 6;

/// Footprint weights below this are dropped from the sparse footprint.
const FOOTPRINT_CUTOFF: f32 = 1e-3;

/// Width of the soft soma edge, as a fraction of the radius.
const SOMA_EDGE: f32 = 0.12;

/// Fraction of somata drawn with a dark nucleus (nucleus-excluded indicator, "donut" look).
const NUCLEUS_FRACTION: f64 = 0.3;

/// Ground truth about one simulated soma.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronTruth {
    /// Index of the neuron (its position in [`crate::GroundTruthSummary::neurons`]).
    pub id: usize,
    /// Centre row in pixels (before motion).
    pub centre_y: f32,
    /// Centre column in pixels (before motion).
    pub centre_x: f32,
    /// Semi-axis of the ellipse along its first axis, pixels.
    pub radius_major: f32,
    /// Semi-axis along the second axis, pixels.
    pub radius_minor: f32,
    /// Rotation of the first axis from the x axis, radians.
    pub angle_rad: f32,
    /// Resting fluorescence of the soma (fluorescence units, ≈1 on average).
    pub brightness: f32,
    /// Whether the soma has a dark nucleus.
    pub has_nucleus: bool,
    /// This neuron's mean spike rate, spikes per second.
    pub spike_rate_hz: f32,
    /// ΔF/F of an isolated single spike at its peak.
    pub dff_per_spike: f32,
    /// Spikes emitted so far (up to the last rendered frame).
    pub spikes_emitted: u64,
}

/// A soma's sparse footprint: pixel indices and weights in `[0, 1]`.
#[derive(Clone, Debug)]
pub(crate) struct Footprint {
    pub(crate) pixels: Vec<u32>,
    pub(crate) weights: Vec<f32>,
}

/// Everything about the scene that does not change over time.
#[derive(Clone, Debug)]
pub(crate) struct StaticScene {
    /// Ground truth per neuron (kept up to date with `spikes_emitted` by the simulator).
    pub(crate) neurons: Vec<NeuronTruth>,
    /// One sparse footprint per neuron.
    pub(crate) footprints: Vec<Footprint>,
    /// Neuropil basis, pixel-major: `[pixel][component]`, normalised to a spatial mean of 1
    /// for the sum of components.
    pub(crate) neuropil_basis: Vec<f32>,
    /// Baseline fluorescence per pixel (baseline × vignetting).
    pub(crate) baseline_map: Vec<f32>,
}

impl StaticScene {
    /// Draws the scene for `config` (assumed validated).
    pub(crate) fn generate(config: &TwoPhotonConfig) -> Self {
        let mut rng = StreamRng::new(config.seed, Stream::Scene, 0);
        let neurons = place_neurons(config, &mut rng);
        let footprints = neurons
            .iter()
            .map(|neuron| soma_footprint(neuron, config.height, config.width))
            .collect();
        let neuropil_basis = neuropil_basis(config, &mut rng);
        let baseline_map = baseline_map(config);
        Self {
            neurons,
            footprints,
            neuropil_basis,
            baseline_map,
        }
    }
}

/// Places somata uniformly, avoiding heavy overlap where possible (rejection sampling with a
/// bounded number of attempts, so dense configurations still get every neuron).
fn place_neurons(config: &TwoPhotonConfig, rng: &mut StreamRng) -> Vec<NeuronTruth> {
    let height = config.height as f32;
    let width = config.width as f32;
    let brightness_distribution = LogNormal::new(0.0, 0.35).expect("constant parameters");
    // Log-normal rates with unit mean: sigma 0.8 makes a minority of neurons much more active.
    let rate_sigma = 0.8f64;
    let rate_distribution =
        LogNormal::new(-rate_sigma * rate_sigma / 2.0, rate_sigma).expect("constant parameters");
    let amplitude_distribution = LogNormal::new((0.35f64).ln(), 0.3).expect("constant parameters");
    let mut neurons: Vec<NeuronTruth> = Vec::with_capacity(config.neurons);
    for id in 0..config.neurons {
        let radius_major = rng.random_range(4.0f32..8.0);
        let radius_minor = radius_major * rng.random_range(0.7f32..1.0);
        let mut centre = (0.0f32, 0.0f32);
        for _attempt in 0..30 {
            centre = (
                rng.random_range(-2.0f32..height + 2.0),
                rng.random_range(-2.0f32..width + 2.0),
            );
            let clear = neurons.iter().all(|other| {
                let distance = ((other.centre_y - centre.0).powi(2)
                    + (other.centre_x - centre.1).powi(2))
                .sqrt();
                distance > 0.9 * (other.radius_major + radius_major)
            });
            if clear {
                break;
            }
        }
        neurons.push(NeuronTruth {
            id,
            centre_y: centre.0,
            centre_x: centre.1,
            radius_major,
            radius_minor,
            angle_rad: rng.random_range(0.0f32..std::f32::consts::PI),
            brightness: brightness_distribution.sample(rng) as f32,
            has_nucleus: rng.random_bool(NUCLEUS_FRACTION),
            spike_rate_hz: config.spike_rate_hz * rate_distribution.sample(rng) as f32,
            dff_per_spike: amplitude_distribution.sample(rng) as f32,
            spikes_emitted: 0,
        });
    }
    neurons
}

/// Soft-edged elliptical soma, optionally with a dark nucleus, clipped to the frame.
fn soma_footprint(neuron: &NeuronTruth, height: usize, width: usize) -> Footprint {
    let reach = neuron.radius_major * (1.0 + 6.0 * SOMA_EDGE);
    let (sin, cos) = neuron.angle_rad.sin_cos();
    let row_start = (neuron.centre_y - reach).floor().max(0.0) as usize;
    let row_end = ((neuron.centre_y + reach).ceil().max(0.0) as usize).min(height);
    let col_start = (neuron.centre_x - reach).floor().max(0.0) as usize;
    let col_end = ((neuron.centre_x + reach).ceil().max(0.0) as usize).min(width);
    let mut pixels = Vec::new();
    let mut weights = Vec::new();
    for row in row_start..row_end {
        for col in col_start..col_end {
            let dy = row as f32 - neuron.centre_y;
            let dx = col as f32 - neuron.centre_x;
            let along = (dx * cos + dy * sin) / neuron.radius_major;
            let across = (-dx * sin + dy * cos) / neuron.radius_minor;
            let radius = (along * along + across * across).sqrt();
            let mut weight = 1.0 / (1.0 + ((radius - 1.0) / SOMA_EDGE).exp());
            if neuron.has_nucleus {
                weight *= 1.0 - 0.65 * (-(radius / 0.45).powi(2)).exp();
            }
            if weight > FOOTPRINT_CUTOFF {
                pixels.push((row * width + col) as u32);
                weights.push(weight);
            }
        }
    }
    Footprint { pixels, weights }
}

/// Broad Gaussian blobs whose sum has spatial mean 1; stored pixel-major.
fn neuropil_basis(config: &TwoPhotonConfig, rng: &mut StreamRng) -> Vec<f32> {
    let (height, width) = (config.height, config.width);
    let side = height.max(width) as f32;
    let blobs: Vec<(f32, f32, f32)> = (0..NEUROPIL_COMPONENTS)
        .map(|_| {
            (
                rng.random_range(0.0..height as f32),
                rng.random_range(0.0..width as f32),
                side * rng.random_range(0.25f32..0.45),
            )
        })
        .collect();
    let mut basis = vec![0.0f32; height * width * NEUROPIL_COMPONENTS];
    let mut total = 0.0f64;
    for row in 0..height {
        for col in 0..width {
            let pixel = row * width + col;
            for (component, &(centre_y, centre_x, sigma)) in blobs.iter().enumerate() {
                let distance_sq = (row as f32 - centre_y).powi(2) + (col as f32 - centre_x).powi(2);
                // An offset keeps every pixel covered even far from all blob centres.
                let value = 0.3 + (-distance_sq / (2.0 * sigma * sigma)).exp();
                basis[pixel * NEUROPIL_COMPONENTS + component] = value;
                total += f64::from(value);
            }
        }
    }
    let scale = ((height * width) as f64 / total) as f32;
    basis.iter_mut().for_each(|value| *value *= scale);
    basis
}

/// `baseline` at the centre, falling off quadratically by 20 % to the corners.
fn baseline_map(config: &TwoPhotonConfig) -> Vec<f32> {
    let (height, width) = (config.height, config.width);
    let centre_y = (height as f32 - 1.0) / 2.0;
    let centre_x = (width as f32 - 1.0) / 2.0;
    let corner_sq = (centre_y * centre_y + centre_x * centre_x).max(1.0);
    let mut map = Vec::with_capacity(height * width);
    for row in 0..height {
        for col in 0..width {
            let distance_sq = (row as f32 - centre_y).powi(2) + (col as f32 - centre_x).powi(2);
            map.push(config.baseline * (1.0 - 0.2 * distance_sq / corner_sq));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprints_are_local_and_bounded() {
        let config = TwoPhotonConfig::with_size(1, 64, 80);
        let scene = StaticScene::generate(&config);
        assert_eq!(scene.footprints.len(), config.neurons);
        for (neuron, footprint) in scene.neurons.iter().zip(&scene.footprints) {
            let reach = neuron.radius_major * 2.0;
            for (&pixel, &weight) in footprint.pixels.iter().zip(&footprint.weights) {
                assert!(weight > 0.0 && weight <= 1.0);
                let (row, col) = (pixel as usize / 80, pixel as usize % 80);
                assert!((row as f32 - neuron.centre_y).abs() <= reach);
                assert!((col as f32 - neuron.centre_x).abs() <= reach);
            }
        }
        // Area of a soma of radius 4-8 px is ~50-200 px²: footprints are neither empty nor huge.
        let inside = scene
            .footprints
            .iter()
            .filter(|footprint| footprint.weights.len() > 20)
            .count();
        assert!(
            inside * 2 > config.neurons,
            "most somata are mostly inside the frame"
        );
    }

    #[test]
    fn neuropil_basis_has_unit_mean() {
        let config = TwoPhotonConfig::with_size(1, 40, 50);
        let scene = StaticScene::generate(&config);
        let sum: f64 = scene.neuropil_basis.iter().map(|&v| f64::from(v)).sum();
        assert!((sum / (40.0 * 50.0) - 1.0).abs() < 1e-4);
    }
}
