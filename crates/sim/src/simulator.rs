//! The streaming renderer: [`TwoPhotonSimulator`] turns the static scene and the per-frame
//! dynamics into clean (expected photon count) and noisy (Poisson) frames, a chunk at a time.
//!
//! Work per frame is O(pixels + Σ footprint sizes). Frames of a chunk are rendered in parallel
//! (rayon); shot noise is drawn per image row from its own random stream indexed by
//! `(frame, row)`, so the output does not depend on chunking or thread count.

use rand_distr::{Distribution, Normal, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{SimError, TwoPhotonConfig};
use crate::dynamics::{Dynamics, FrameLayout};
use crate::rng::{Stream, StreamRng};
use crate::scene::{NEUROPIL_COMPONENTS, NeuronTruth, StaticScene};

/// Ground truth of a simulation, for a JSON sidecar next to the movie.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthSummary {
    /// The config that produced the movie.
    pub config: TwoPhotonConfig,
    /// Unit of the movie's values.
    pub units: String,
    /// Frames rendered when the summary was taken.
    pub frames_rendered: usize,
    /// One entry per soma (positions are before motion).
    pub neurons: Vec<NeuronTruth>,
}

/// Streaming generator of a two-photon calcium movie with ground truth.
///
/// ```
/// use deepinterp_sim::{TwoPhotonConfig, TwoPhotonSimulator};
/// let mut simulator = TwoPhotonSimulator::new(TwoPhotonConfig::with_size(50, 32, 32))?;
/// let frame = 32 * 32;
/// let (mut clean, mut noisy) = (vec![0.0; 20 * frame], vec![0.0; 20 * frame]);
/// let mut total = 0;
/// loop {
///     let rendered = simulator.next_frames(20, &mut clean, &mut noisy);
///     if rendered == 0 { break; }
///     total += rendered; // use clean[..rendered * frame], noisy[..rendered * frame]
/// }
/// assert_eq!(total, 50);
/// # Ok::<(), deepinterp_sim::SimError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TwoPhotonSimulator {
    config: TwoPhotonConfig,
    scene: StaticScene,
    dynamics: Dynamics,
    frames_rendered: usize,
    /// Scratch for the per-frame records of the current chunk.
    records: Vec<f32>,
}

impl TwoPhotonSimulator {
    /// Validates `config` and draws the static scene.
    pub fn new(config: TwoPhotonConfig) -> Result<Self, SimError> {
        config.validate()?;
        let scene = StaticScene::generate(&config);
        let dynamics = Dynamics::new(&config, scene.neurons.len());
        Ok(Self {
            config,
            scene,
            dynamics,
            frames_rendered: 0,
            records: Vec::new(),
        })
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &TwoPhotonConfig {
        &self.config
    }

    /// Frames rendered so far.
    pub fn frames_rendered(&self) -> usize {
        self.frames_rendered
    }

    /// Frames still to come.
    pub fn frames_remaining(&self) -> usize {
        self.config.frames - self.frames_rendered
    }

    /// Renders the next frames into `clean` (expected photon counts) and `noisy` (a Poisson
    /// draw of `clean`, plus read noise if configured), row-major `[frame][row][column]`.
    ///
    /// Renders `min(count, frames remaining, clean.len() / frame pixels,
    /// noisy.len() / frame pixels)` frames and returns that number (0 once the movie is
    /// complete); values beyond the rendered frames are left untouched. The result is the same
    /// however the movie is split into calls.
    pub fn next_frames(&mut self, count: usize, clean: &mut [f32], noisy: &mut [f32]) -> usize {
        let frame_pixels = self.config.frame_pixels();
        let count = count
            .min(self.frames_remaining())
            .min(clean.len() / frame_pixels)
            .min(noisy.len() / frame_pixels);
        if count == 0 {
            return 0;
        }
        let layout = FrameLayout {
            neurons: self.scene.neurons.len(),
        };
        let stride = layout.stride();
        self.records.resize(count * stride, 0.0);
        for record in self.records.chunks_exact_mut(stride) {
            self.dynamics.advance(&mut self.scene.neurons, record);
        }

        let clean = &mut clean[..count * frame_pixels];
        let noisy = &mut noisy[..count * frame_pixels];
        let scene = &self.scene;
        let config = &self.config;
        clean
            .par_chunks_mut(frame_pixels)
            .zip(self.records.par_chunks(stride))
            .for_each_init(Vec::new, |scratch, (clean_frame, record)| {
                render_clean_frame(scene, config, layout, record, scratch, clean_frame);
            });

        let first_row = (self.frames_rendered * config.height) as u64;
        let width = config.width;
        let read_noise = (config.read_noise > 0.0)
            .then(|| Normal::new(0.0f64, f64::from(config.read_noise)).expect("validated"));
        noisy
            .par_chunks_mut(width)
            .zip(clean.par_chunks(width))
            .enumerate()
            .for_each(|(row, (noisy_row, clean_row))| {
                let mut rng = StreamRng::new(config.seed, Stream::Noise, first_row + row as u64);
                add_noise(clean_row, noisy_row, read_noise.as_ref(), &mut rng);
            });

        self.frames_rendered += count;
        count
    }

    /// Ground truth so far: config, units and the somata (spike counts up to the last rendered
    /// frame).
    pub fn ground_truth(&self) -> GroundTruthSummary {
        GroundTruthSummary {
            config: self.config.clone(),
            units: "expected photons per pixel per frame (clean); photon counts (noisy)".to_owned(),
            frames_rendered: self.frames_rendered,
            neurons: self.scene.neurons.clone(),
        }
    }
}

/// Renders the noise-free frame described by `record` into `clean`, in photons.
fn render_clean_frame(
    scene: &StaticScene,
    config: &TwoPhotonConfig,
    layout: FrameLayout,
    record: &[f32],
    scratch: &mut Vec<f32>,
    clean: &mut [f32],
) {
    let (fluorescence, rest) = record.split_at(layout.neurons);
    let (neuropil_gain, shift) = rest.split_at(NEUROPIL_COMPONENTS);
    let moving = shift[0] != 0.0 || shift[1] != 0.0;
    let target: &mut [f32] = if moving {
        scratch.resize(clean.len(), 0.0);
        scratch
    } else {
        clean
    };

    let mut gains = [0.0f32; NEUROPIL_COMPONENTS];
    for (gain, &value) in gains.iter_mut().zip(neuropil_gain) {
        *gain = config.neuropil * value;
    }
    for ((value, &baseline), basis) in target
        .iter_mut()
        .zip(&scene.baseline_map)
        .zip(scene.neuropil_basis.chunks_exact(NEUROPIL_COMPONENTS))
    {
        let neuropil: f32 = basis.iter().zip(&gains).map(|(b, g)| b * g).sum();
        *value = baseline + neuropil;
    }
    for (footprint, &soma) in scene.footprints.iter().zip(fluorescence) {
        for (&pixel, &weight) in footprint.pixels.iter().zip(&footprint.weights) {
            target[pixel as usize] += soma * weight;
        }
    }

    if moving {
        shift_bilinear(
            scratch,
            config.height,
            config.width,
            shift[0],
            shift[1],
            clean,
        );
    }
    let photons = config.photons_per_unit;
    clean.iter_mut().for_each(|value| *value *= photons);
}

/// `output(y, x) = input(y - dy, x - dx)`, bilinear, coordinates clamped to the frame.
fn shift_bilinear(
    input: &[f32],
    height: usize,
    width: usize,
    dy: f32,
    dx: f32,
    output: &mut [f32],
) {
    let max_row = (height - 1) as f32;
    let max_col = (width - 1) as f32;
    // Horizontal sample positions and weights are the same for every row.
    let columns: Vec<(usize, usize, f32)> = (0..width)
        .map(|col| {
            let source = (col as f32 - dx).clamp(0.0, max_col);
            let left = source.floor() as usize;
            (left, (left + 1).min(width - 1), source - left as f32)
        })
        .collect();
    for row in 0..height {
        let source = (row as f32 - dy).clamp(0.0, max_row);
        let top = source.floor() as usize;
        let bottom = (top + 1).min(height - 1);
        let vertical = source - top as f32;
        let top_row = &input[top * width..(top + 1) * width];
        let bottom_row = &input[bottom * width..(bottom + 1) * width];
        let out_row = &mut output[row * width..(row + 1) * width];
        for (out, &(left, right, horizontal)) in out_row.iter_mut().zip(&columns) {
            let upper = top_row[left] + horizontal * (top_row[right] - top_row[left]);
            let lower = bottom_row[left] + horizontal * (bottom_row[right] - bottom_row[left]);
            *out = upper + vertical * (lower - upper);
        }
    }
}

/// Poisson shot noise (and optional Gaussian read noise, clamped at 0) for one row.
fn add_noise(
    clean: &[f32],
    noisy: &mut [f32],
    read_noise: Option<&Normal<f64>>,
    rng: &mut StreamRng,
) {
    for (out, &expected) in noisy.iter_mut().zip(clean) {
        let mut photons = match Poisson::new(f64::from(expected)) {
            Ok(poisson) => poisson.sample(rng),
            // Zero (or, impossible here, non-finite) expectation: no photons.
            Err(_) => 0.0,
        };
        if let Some(read_noise) = read_noise {
            photons = (photons + read_noise.sample(rng)).max(0.0);
        }
        *out = photons as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_shift_moves_a_point() {
        let (height, width) = (5, 6);
        let mut input = vec![0.0; height * width];
        input[2 * width + 2] = 1.0;
        let mut output = vec![0.0; height * width];
        shift_bilinear(&input, height, width, 1.0, 0.5, &mut output);
        // The point moves down one row and half a column right, split over two columns.
        assert!((output[3 * width + 2] - 0.5).abs() < 1e-6);
        assert!((output[3 * width + 3] - 0.5).abs() < 1e-6);
        let total: f32 = output.iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
