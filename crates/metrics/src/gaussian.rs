//! Gaussian-filter baselines: the spatial (2D) filter of one frame and the streaming
//! spatiotemporal (3D) filter of a movie.
//!
//! Both are separable, truncated at `ceil(3σ)` samples, and *normalised at the borders*: near an
//! edge the kernel is cut to the samples that exist and re-weighted to sum to 1 (so a constant
//! movie is returned unchanged, and nothing is invented beyond the edges). The 3D filter uses
//! the same σ in frames and in pixels and keeps only a ring of `2·ceil(3σ)+1` spatially filtered
//! frames, so its memory does not depend on movie length.

use rayon::prelude::*;

/// The paper's Gaussian-filter baseline width (Lecoq et al. 2021, Ext. Fig. 1): σ = 3.
pub const BASELINE_SIGMA: f64 = 3.0;

/// Samples each side of the centre for a kernel of width `sigma`: `ceil(3σ)`.
pub fn kernel_radius(sigma: f64) -> usize {
    (3.0 * sigma).ceil().max(0.0) as usize
}

/// Unnormalised Gaussian weights `exp(-k²/2σ²)` for `k = -radius..=radius`.
pub fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = kernel_radius(sigma) as isize;
    (-radius..=radius)
        .map(|offset| {
            if sigma > 0.0 {
                (-(offset * offset) as f64 / (2.0 * sigma * sigma)).exp()
            } else {
                1.0
            }
        })
        .collect()
}

/// Border-normalised 1D filter weights for every output position `0..length`: for position `i`,
/// `(first_input, weights)` with the weights summing to 1.
fn normalised_taps(kernel: &[f64], length: usize) -> Vec<(usize, Vec<f32>)> {
    let radius = kernel.len() / 2;
    (0..length)
        .map(|position| {
            let first = position.saturating_sub(radius);
            let last = (position + radius).min(length - 1);
            let weights: Vec<f64> = (first..=last)
                .map(|input| kernel[input + radius - position])
                .collect();
            let total: f64 = weights.iter().sum();
            (first, weights.iter().map(|w| (w / total) as f32).collect())
        })
        .collect()
}

/// Spatial Gaussian filter of frames of a fixed size, border-normalised.
#[derive(Clone, Debug)]
pub struct SpatialGaussian {
    height: usize,
    width: usize,
    row_taps: Vec<(usize, Vec<f32>)>,
    column_taps: Vec<(usize, Vec<f32>)>,
    scratch: Vec<f32>,
}

impl SpatialGaussian {
    /// A filter of width `sigma` pixels for `height × width` frames (both at least 1).
    pub fn new(height: usize, width: usize, sigma: f64) -> Self {
        let kernel = gaussian_kernel(sigma);
        Self {
            height,
            width,
            row_taps: normalised_taps(&kernel, height),
            column_taps: normalised_taps(&kernel, width),
            scratch: vec![0.0; height * width],
        }
    }

    /// Filters `frame` (row-major, `height × width`) into `output`.
    ///
    /// # Panics
    /// If either slice is not `height × width` long.
    pub fn filter(&mut self, frame: &[f32], output: &mut [f32]) {
        let (height, width) = (self.height, self.width);
        assert_eq!(frame.len(), height * width, "input frame size");
        assert_eq!(output.len(), height * width, "output frame size");
        let column_taps = &self.column_taps;
        // Along rows (x).
        self.scratch
            .par_chunks_mut(width)
            .zip(frame.par_chunks(width))
            .for_each(|(out_row, in_row)| {
                for (out, (first, weights)) in out_row.iter_mut().zip(column_taps) {
                    *out = in_row[*first..*first + weights.len()]
                        .iter()
                        .zip(weights)
                        .map(|(value, weight)| value * weight)
                        .sum();
                }
            });
        // Along columns (y): each output row is a weighted sum of input rows.
        let scratch = &self.scratch;
        output
            .par_chunks_mut(width)
            .zip(self.row_taps.par_iter())
            .for_each(|(out_row, (first, weights))| {
                out_row.fill(0.0);
                for (offset, &weight) in weights.iter().enumerate() {
                    let row = first + offset;
                    let in_row = &scratch[row * width..(row + 1) * width];
                    for (out, value) in out_row.iter_mut().zip(in_row) {
                        *out += weight * value;
                    }
                }
            });
    }
}

/// Streaming spatiotemporal Gaussian filter (same σ in frames and pixels), border-normalised
/// in all three dimensions.
///
/// Push frames in order with [`push`](Self::push); output frame `t` becomes available once
/// frame `t + ceil(3σ)` has been pushed, and the last frames come out of
/// [`flush`](Self::flush) after the final push.
#[derive(Clone, Debug)]
pub struct SpatioTemporalGaussian {
    frame_pixels: usize,
    spatial: SpatialGaussian,
    temporal_kernel: Vec<f64>,
    radius: usize,
    /// Spatially filtered frames; frame `j` lives in slot `j % ring.len()`.
    ring: Vec<Vec<f32>>,
    pushed: usize,
    emitted: usize,
}

impl SpatioTemporalGaussian {
    /// A filter of width `sigma` (frames and pixels) for `height × width` frames.
    pub fn new(height: usize, width: usize, sigma: f64) -> Self {
        let temporal_kernel = gaussian_kernel(sigma);
        let radius = temporal_kernel.len() / 2;
        Self {
            frame_pixels: height * width,
            spatial: SpatialGaussian::new(height, width, sigma),
            temporal_kernel,
            radius,
            ring: vec![vec![0.0; height * width]; 2 * radius + 1],
            pushed: 0,
            emitted: 0,
        }
    }

    /// The spatially filtered version of the most recently pushed frame (the 2D baseline),
    /// or `None` before the first push.
    pub fn latest_spatial(&self) -> Option<&[f32]> {
        let latest = self.pushed.checked_sub(1)?;
        Some(&self.ring[latest % self.ring.len()])
    }

    /// Adds the next frame. If that completes the window of an earlier frame, writes the
    /// filtered earlier frame into `output` and returns its index.
    ///
    /// # Panics
    /// If `frame` or `output` is not one frame long.
    pub fn push(&mut self, frame: &[f32], output: &mut [f32]) -> Option<usize> {
        let slot = self.pushed % self.ring.len();
        self.spatial.filter(frame, &mut self.ring[slot]);
        self.pushed += 1;
        if self.pushed > self.radius {
            Some(self.emit(self.pushed - 1, output))
        } else {
            None
        }
    }

    /// After the last push: writes the next not-yet-emitted frame into `output` and returns its
    /// index, or `None` when all frames have been emitted.
    pub fn flush(&mut self, output: &mut [f32]) -> Option<usize> {
        if self.emitted < self.pushed {
            Some(self.emit(self.pushed - 1, output))
        } else {
            None
        }
    }

    /// Emits frame `self.emitted` using input frames up to `last_available`.
    fn emit(&mut self, last_available: usize, output: &mut [f32]) -> usize {
        assert_eq!(output.len(), self.frame_pixels, "output frame size");
        let centre = self.emitted;
        let first = centre.saturating_sub(self.radius);
        let last = (centre + self.radius).min(last_available);
        let total: f64 = (first..=last)
            .map(|frame| self.temporal_kernel[frame + self.radius - centre])
            .sum();
        let taps: Vec<(&[f32], f32)> = (first..=last)
            .map(|frame| {
                let weight = self.temporal_kernel[frame + self.radius - centre] / total;
                (self.ring[frame % self.ring.len()].as_slice(), weight as f32)
            })
            .collect();
        const BLOCK: usize = 4096;
        output
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(block, out)| {
                let start = block * BLOCK;
                let end = start + out.len();
                out.fill(0.0);
                for &(frame, weight) in &taps {
                    for (value, input) in out.iter_mut().zip(&frame[start..end]) {
                        *value += weight * input;
                    }
                }
            });
        self.emitted += 1;
        centre
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_has_expected_radius_and_shape() {
        let kernel = gaussian_kernel(3.0);
        assert_eq!(kernel.len(), 19);
        assert_eq!(kernel[9], 1.0);
        assert!((kernel[12] - (-0.5f64).exp()).abs() < 1e-12);
        assert_eq!(kernel[0], kernel[18]);
    }

    #[test]
    fn spatial_filter_preserves_constants_and_mass_of_interior_impulse() {
        let (height, width) = (30, 40);
        let mut filter = SpatialGaussian::new(height, width, 3.0);
        let mut output = vec![0.0; height * width];
        filter.filter(&vec![5.0; height * width], &mut output);
        assert!(output.iter().all(|&v| (v - 5.0).abs() < 1e-4));

        let mut impulse = vec![0.0; height * width];
        impulse[15 * width + 20] = 1.0;
        filter.filter(&impulse, &mut output);
        let total: f32 = output.iter().sum();
        assert!((total - 1.0).abs() < 1e-3, "mass {total}");
        // Peak of a normalised 2D Gaussian with σ = 3: 1/(2πσ²) ≈ 0.0177.
        let peak = output[15 * width + 20];
        assert!((peak - 0.0177).abs() < 0.0005, "peak {peak}");
        // Symmetric about the impulse.
        assert!((output[15 * width + 23] - output[15 * width + 17]).abs() < 1e-7);
        assert!((output[18 * width + 20] - output[12 * width + 20]).abs() < 1e-7);
    }

    #[test]
    fn spatiotemporal_filter_emits_every_frame_once_in_order() {
        let (height, width, frames) = (6, 7, 25);
        let mut filter = SpatioTemporalGaussian::new(height, width, 3.0);
        let mut output = vec![0.0; height * width];
        let mut emitted = Vec::new();
        for frame in 0..frames {
            let input = vec![frame as f32; height * width];
            if let Some(index) = filter.push(&input, &mut output) {
                emitted.push(index);
            }
        }
        while let Some(index) = filter.flush(&mut output) {
            emitted.push(index);
        }
        assert_eq!(emitted, (0..frames).collect::<Vec<_>>());
    }

    #[test]
    fn spatiotemporal_filter_smooths_in_time() {
        // A single bright frame in the middle spreads over ±9 frames with Gaussian weights.
        let (height, width, frames) = (4, 4, 41);
        let mut filter = SpatioTemporalGaussian::new(height, width, 3.0);
        let mut output = vec![0.0; height * width];
        let mut centre_values = vec![0.0f32; frames];
        for frame in 0..frames {
            let value = if frame == 20 { 1.0 } else { 0.0 };
            if let Some(index) = filter.push(&vec![value; height * width], &mut output) {
                centre_values[index] = output[5];
            }
        }
        while let Some(index) = filter.flush(&mut output) {
            centre_values[index] = output[5];
        }
        let kernel = gaussian_kernel(3.0);
        let total: f64 = kernel.iter().sum();
        assert!((f64::from(centre_values[20]) - 1.0 / total).abs() < 1e-6);
        assert!((f64::from(centre_values[23]) - kernel[12] / total).abs() < 1e-6);
        assert_eq!(centre_values[10], 0.0);
        assert_eq!(centre_values[30], 0.0);
    }
}
