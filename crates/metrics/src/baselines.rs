//! The best of a range of Gaussian filters: a denoiser is only worth its cost if it beats
//! the best simple filter, not one picked in advance. Every pair of a spatial width in
//! [`SPACE_SIGMAS`] and a temporal width in [`TIME_SIGMAS`] (0: spatial only) filters the
//! noisy movie; each is scored against the clean movie, and the report names the best.
//!
//! Frames stream through: each spatial width keeps a ring of its filtered frames long enough
//! for the widest temporal kernel, and the clean frames wait in one shared ring, so memory
//! does not depend on the movie's length. Kernels are truncated at `ceil(3σ)` and
//! renormalised at the movie's edges, as in [`crate::gaussian`].

use serde::Serialize;

use crate::evaluator::{ErrorStats, ErrorSums};
use crate::gaussian::{SpatialGaussian, gaussian_kernel, kernel_radius};

/// Spatial widths tried, in pixels.
pub const SPACE_SIGMAS: [f64; 5] = [0.5, 1.0, 1.5, 2.0, 3.0];
/// Temporal widths tried, in frames (0: no temporal filtering).
pub const TIME_SIGMAS: [f64; 5] = [0.0, 1.0, 2.0, 4.0, 8.0];

/// The best filter of the range, by mean squared error to the clean movie.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BestGaussian {
    /// Spatial width σ in pixels.
    pub space_sigma: f64,
    /// Temporal width σ in frames (0: spatial only).
    pub time_sigma: f64,
    /// Its error to the clean movie.
    pub error: ErrorStats,
    /// Filters tried.
    pub filters_tried: usize,
}

/// One spatial width and the ring of frames it filtered.
#[derive(Clone, Debug)]
struct SpatialStage {
    filter: SpatialGaussian,
    ring: Vec<Vec<f32>>,
    /// One error sum per temporal width.
    errors: Vec<ErrorSums>,
}

/// The streaming range of filters.
#[derive(Clone, Debug)]
pub(crate) struct GaussianRange {
    stages: Vec<SpatialStage>,
    time_kernels: Vec<Vec<f64>>,
    clean: Vec<Vec<f32>>,
    output: Vec<f32>,
    pushed: usize,
}

impl GaussianRange {
    pub fn new(height: usize, width: usize) -> Self {
        let time_kernels: Vec<Vec<f64>> = TIME_SIGMAS.iter().map(|&s| gaussian_kernel(s)).collect();
        let widest = TIME_SIGMAS
            .iter()
            .map(|&s| kernel_radius(s))
            .max()
            .unwrap_or(0);
        let pixels = height * width;
        Self {
            stages: SPACE_SIGMAS
                .iter()
                .map(|&sigma| SpatialStage {
                    filter: SpatialGaussian::new(height, width, sigma),
                    ring: vec![vec![0.0; pixels]; 2 * widest + 1],
                    errors: vec![ErrorSums::default(); TIME_SIGMAS.len()],
                })
                .collect(),
            time_kernels,
            clean: vec![vec![0.0; pixels]; widest + 1],
            output: vec![0.0; pixels],
            pushed: 0,
        }
    }

    /// Adds the next noisy frame and its clean frame.
    pub fn push(&mut self, noisy: &[f32], clean: &[f32]) {
        let index = self.pushed;
        let slots = self.clean.len();
        self.clean[index % slots].copy_from_slice(clean);
        self.pushed += 1;
        for stage in &mut self.stages {
            let ring_slots = stage.ring.len();
            stage
                .filter
                .filter(noisy, &mut stage.ring[index % ring_slots]);
        }
        // Each temporal width emits the frame its kernel has just completed.
        for time in 0..self.time_kernels.len() {
            let radius = self.time_kernels[time].len() / 2;
            if let Some(centre) = index.checked_sub(radius) {
                self.emit(time, centre, index);
            }
        }
    }

    /// After the last frame: emits what the kernels still hold, then picks the best filter.
    pub fn finish(mut self) -> Option<BestGaussian> {
        let last = self.pushed.checked_sub(1)?;
        for time in 0..self.time_kernels.len() {
            let radius = self.time_kernels[time].len() / 2;
            for centre in self.pushed.saturating_sub(radius)..self.pushed {
                self.emit(time, centre, last);
            }
        }
        let mut best: Option<BestGaussian> = None;
        for (space, stage) in self.stages.iter().enumerate() {
            for (time, sums) in stage.errors.iter().enumerate() {
                let Some(error) = sums.stats() else { continue };
                if best.is_none_or(|b| error.mse < b.error.mse) {
                    best = Some(BestGaussian {
                        space_sigma: SPACE_SIGMAS[space],
                        time_sigma: TIME_SIGMAS[time],
                        error,
                        filters_tried: SPACE_SIGMAS.len() * TIME_SIGMAS.len(),
                    });
                }
            }
        }
        best
    }

    /// Filters frame `centre` in time with kernel `time` over the frames up to `last` and
    /// scores it against its clean frame, for every spatial width.
    fn emit(&mut self, time: usize, centre: usize, last: usize) {
        let kernel = &self.time_kernels[time];
        let radius = kernel.len() / 2;
        let first = centre.saturating_sub(radius);
        let last = (centre + radius).min(last);
        let total: f64 = (first..=last).map(|f| kernel[f + radius - centre]).sum();
        let clean = &self.clean[centre % self.clean.len()];
        for stage in &mut self.stages {
            let ring_slots = stage.ring.len();
            self.output.fill(0.0);
            for frame in first..=last {
                let weight = (kernel[frame + radius - centre] / total) as f32;
                for (out, value) in self.output.iter_mut().zip(&stage.ring[frame % ring_slots]) {
                    *out += weight * value;
                }
            }
            stage.errors[time].add_frame(&self.output, clean);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_filter_of_a_smooth_movie_is_wide_and_of_a_sharp_one_narrow() {
        let (height, width, frames) = (16, 16, 40);
        // Smooth clean movie (constant) plus alternating noise: wide filters win.
        let mut range = GaussianRange::new(height, width);
        for t in 0..frames {
            let clean = vec![5.0f32; height * width];
            let noisy: Vec<f32> = (0..height * width)
                .map(|p| 5.0 + if (p + t) % 2 == 0 { 1.0 } else { -1.0 })
                .collect();
            range.push(&noisy, &clean);
        }
        let best = range.finish().unwrap();
        assert_eq!(best.filters_tried, 25);
        assert!(
            best.space_sigma >= 1.0 && best.time_sigma >= 1.0,
            "{best:?}"
        );
        assert!(best.error.mse < 0.05, "{best:?}");

        // A noiseless movie of single-pixel flashes: any blur only hurts, the narrowest wins.
        let mut range = GaussianRange::new(height, width);
        for t in 0..frames {
            let clean: Vec<f32> = (0..height * width)
                .map(|p| {
                    if p == (7 * t) % (height * width) {
                        100.0
                    } else {
                        0.0
                    }
                })
                .collect();
            range.push(&clean, &clean);
        }
        let best = range.finish().unwrap();
        assert_eq!((best.space_sigma, best.time_sigma), (0.5, 0.0), "{best:?}");
    }
}
