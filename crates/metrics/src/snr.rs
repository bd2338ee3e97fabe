//! Streaming per-pixel SNR as defined in DeepInterpolation (Lecoq et al. 2021):
//! `SNR = median(trace) / median over consecutive non-overlapping 100-frame blocks of
//! std(block)`, with the population std (`ddof = 0`, as `numpy.std`).
//!
//! Block rules: only complete 100-frame blocks count (a trailing partial block is ignored);
//! a movie shorter than 100 frames is one block of all its frames.
//!
//! Memory rule: block statistics are accumulated on the fly, but the median of a trace needs
//! its values, so at most [`TRACE_VALUE_BUDGET`] values per movie are kept:
//! - if `pixels × frames ≤ TRACE_VALUE_BUDGET`, every pixel and every frame (exact);
//! - otherwise, if the frame has more than [`MAX_SAMPLED_PIXELS`] pixels, a regular grid of
//!   pixels (step `g` in both directions, starting at `g/2`, `g` the smallest step giving at
//!   most `MAX_SAMPLED_PIXELS` pixels) is used;
//! - and if `sampled pixels × frames` still exceeds the budget, `median(trace)` is taken over
//!   every `s`-th frame (`s = ceil(sampled pixels × frames / TRACE_VALUE_BUDGET)`); block stds
//!   always use every frame.

/// Most trace values kept per movie for medians (2^25 ≈ 33.5 M values = 128 MiB of `f32`).
pub const TRACE_VALUE_BUDGET: usize = 1 << 25;

/// Most pixels used for SNR when the movie is too large to keep whole.
pub const MAX_SAMPLED_PIXELS: usize = 16_384;

/// Frames per block for the noise estimate.
pub const SNR_BLOCK_FRAMES: usize = 100;

/// Which pixels and frames an SNR accumulator keeps.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SnrSampling {
    /// Sampled pixel indices (row-major within the frame).
    pub(crate) pixels: Vec<usize>,
    /// Frame step for trace medians.
    pub(crate) frame_stride: usize,
    /// Frames per noise block.
    pub(crate) block_frames: usize,
}

impl SnrSampling {
    /// The sampling rule above, for a movie of `frames` frames of `height × width`.
    pub(crate) fn for_movie(height: usize, width: usize, frames: usize) -> Self {
        let pixels = height * width;
        let block_frames = SNR_BLOCK_FRAMES.min(frames.max(1));
        if pixels.saturating_mul(frames) <= TRACE_VALUE_BUDGET || pixels <= MAX_SAMPLED_PIXELS {
            let frame_stride = pixels
                .saturating_mul(frames)
                .div_ceil(TRACE_VALUE_BUDGET)
                .max(1);
            return Self {
                pixels: (0..pixels).collect(),
                frame_stride,
                block_frames,
            };
        }
        let mut step = ((pixels as f64 / MAX_SAMPLED_PIXELS as f64).sqrt().ceil() as usize).max(1);
        while height.div_ceil(step) * width.div_ceil(step) > MAX_SAMPLED_PIXELS {
            step += 1;
        }
        let offset = step / 2;
        let rows: Vec<usize> = (offset.min(height - 1)..height).step_by(step).collect();
        let columns: Vec<usize> = (offset.min(width - 1)..width).step_by(step).collect();
        let sampled: Vec<usize> = rows
            .iter()
            .flat_map(|&row| columns.iter().map(move |&column| row * width + column))
            .collect();
        let frame_stride = sampled
            .len()
            .saturating_mul(frames)
            .div_ceil(TRACE_VALUE_BUDGET)
            .max(1);
        Self {
            pixels: sampled,
            frame_stride,
            block_frames,
        }
    }
}

/// Per-pixel SNR values of one movie (noisy or denoised), accumulated frame by frame.
#[derive(Clone, Debug)]
pub(crate) struct SnrAccumulator {
    sampling: SnrSampling,
    frames_seen: usize,
    /// Shift (first value of the current block) per sampled pixel, for a stable variance.
    block_shift: Vec<f64>,
    block_sum: Vec<f64>,
    block_sum_squares: Vec<f64>,
    /// Completed block stds, `[block][sampled pixel]`.
    block_stds: Vec<f32>,
    /// Kept trace values, `[kept frame][sampled pixel]`.
    trace_values: Vec<f32>,
}

impl SnrAccumulator {
    pub(crate) fn new(sampling: SnrSampling) -> Self {
        let sampled = sampling.pixels.len();
        Self {
            sampling,
            frames_seen: 0,
            block_shift: vec![0.0; sampled],
            block_sum: vec![0.0; sampled],
            block_sum_squares: vec![0.0; sampled],
            block_stds: Vec::new(),
            trace_values: Vec::new(),
        }
    }

    /// Adds one frame (all pixels of the frame, row-major).
    pub(crate) fn push_frame(&mut self, frame: &[f32]) {
        let position_in_block = self.frames_seen % self.sampling.block_frames;
        if self.frames_seen.is_multiple_of(self.sampling.frame_stride) {
            self.trace_values
                .extend(self.sampling.pixels.iter().map(|&pixel| frame[pixel]));
        }
        if position_in_block == 0 {
            for (shift, &pixel) in self.block_shift.iter_mut().zip(&self.sampling.pixels) {
                *shift = f64::from(frame[pixel]);
            }
            self.block_sum.fill(0.0);
            self.block_sum_squares.fill(0.0);
        }
        for (index, &pixel) in self.sampling.pixels.iter().enumerate() {
            let deviation = f64::from(frame[pixel]) - self.block_shift[index];
            self.block_sum[index] += deviation;
            self.block_sum_squares[index] += deviation * deviation;
        }
        if position_in_block + 1 == self.sampling.block_frames {
            let count = self.sampling.block_frames as f64;
            for (sum, sum_squares) in self.block_sum.iter().zip(&self.block_sum_squares) {
                let mean = sum / count;
                let variance = (sum_squares / count - mean * mean).max(0.0);
                self.block_stds.push(variance.sqrt() as f32);
            }
        }
        self.frames_seen += 1;
    }

    /// Number of sampled pixels.
    pub(crate) fn sampled_pixels(&self) -> usize {
        self.sampling.pixels.len()
    }

    /// Frame step used for trace medians.
    pub(crate) fn frame_stride(&self) -> usize {
        self.sampling.frame_stride
    }

    /// SNR per sampled pixel (may be infinite or NaN for flat or zero traces).
    pub(crate) fn pixel_snrs(&self) -> Vec<f64> {
        let sampled = self.sampled_pixels();
        if sampled == 0 {
            return Vec::new();
        }
        let kept_frames = self.trace_values.len() / sampled;
        let blocks = self.block_stds.len() / sampled;
        let mut trace = Vec::with_capacity(kept_frames);
        let mut stds = Vec::with_capacity(blocks);
        (0..sampled)
            .map(|pixel| {
                trace.clear();
                trace.extend(
                    self.trace_values[pixel..]
                        .iter()
                        .step_by(sampled)
                        .map(|&v| f64::from(v)),
                );
                stds.clear();
                stds.extend(
                    self.block_stds[pixel..]
                        .iter()
                        .step_by(sampled)
                        .map(|&v| f64::from(v)),
                );
                median(&mut trace) / median(&mut stds)
            })
            .collect()
    }
}

/// Median of `values` (mean of the two middle values for an even count; NaN when empty).
/// Reorders `values`.
pub fn median(values: &mut [f64]) -> f64 {
    let count = values.len();
    if count == 0 {
        return f64::NAN;
    }
    let middle = count / 2;
    let (below, upper_middle, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    let upper_middle = *upper_middle;
    if count % 2 == 1 {
        upper_middle
    } else {
        let lower_middle = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower_middle + upper_middle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn small_movie_is_exact() {
        let sampling = SnrSampling::for_movie(64, 64, 1000);
        assert_eq!(sampling.pixels.len(), 4096);
        assert_eq!(sampling.frame_stride, 1);
        assert_eq!(sampling.block_frames, 100);
        assert_eq!(SnrSampling::for_movie(8, 8, 30).block_frames, 30);
    }

    #[test]
    fn large_movie_uses_a_grid_and_a_frame_stride() {
        let sampling = SnrSampling::for_movie(512, 512, 10_000);
        assert_eq!(sampling.pixels.len(), 16_384);
        assert_eq!(sampling.pixels[0], 2 * 512 + 2);
        assert_eq!(sampling.pixels[1], 2 * 512 + 6);
        // 16,384 × 10,000 / 2^25 = 4.88 → every 5th frame.
        assert_eq!(sampling.frame_stride, 5);
        let odd = SnrSampling::for_movie(100, 10_000, 100);
        assert!(odd.pixels.len() <= MAX_SAMPLED_PIXELS && odd.pixels.len() > 10_000);
    }

    #[test]
    fn block_std_ignores_slow_drift_between_blocks() {
        // Each 100-frame block alternates ±1 around a level that jumps between blocks: the
        // block std is 1 whatever the jumps, so SNR = median(level) / 1.
        let sampling = SnrSampling::for_movie(1, 1, 300);
        let mut accumulator = SnrAccumulator::new(sampling);
        for frame in 0..300 {
            let level = [10.0, 50.0, 1000.0][frame / 100];
            let value = level + if frame % 2 == 0 { 1.0 } else { -1.0 };
            accumulator.push_frame(&[value]);
        }
        let snrs = accumulator.pixel_snrs();
        assert_eq!(snrs.len(), 1);
        assert!((snrs[0] - 50.0).abs() < 1e-9, "snr {}", snrs[0]);
    }
}
