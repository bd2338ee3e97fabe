//! What denoising removed: the residual `noisy − denoised`, summarised so that a person can
//! tell removed noise from removed signal without ground truth. Independent noise leaves a
//! residual with no structure: a mean near zero, a variance near the noise variance, and no
//! correlation between neighbouring frames or pixels. A residual with structure means the
//! model took signal out (or, with a variance well below the noise's, left noise in).
//!
//! The noise variance expected is measured on the noisy movie itself, from successive-frame
//! differences (`E[(x_t − x_{t−1})²] / 2` is the noise variance when the signal changes slowly
//! between frames). Memory: a few frame-sized buffers, whatever the movie's length.

use serde::Serialize;

/// Statistics of `noisy − denoised` over the whole movie.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ResidualStats {
    /// Mean of the residual (a bias of the denoised movie has the opposite sign).
    pub mean: f64,
    /// Variance of the residual about its mean.
    pub variance: f64,
    /// Noise variance of the noisy movie, from successive-frame differences.
    pub expected_noise_variance: f64,
    /// `variance / expected_noise_variance`: about 1 when only noise was removed, above 1
    /// when signal was removed too, below 1 when noise was left in.
    pub variance_ratio: f64,
    /// With the clean movie: the variance of `noisy − clean`, the true noise.
    pub true_noise_variance: Option<f64>,
    /// Lag-1 correlation of each pixel's residual with itself one frame later (each pixel's
    /// mean removed), pooled over pixels: near 0 for removed noise.
    pub temporal_autocorrelation: f64,
    /// Correlation of the residual between horizontally and vertically neighbouring pixels
    /// (each frame's mean removed), pooled: near 0 for removed noise.
    pub spatial_autocorrelation: f64,
}

/// Streaming accumulator of [`ResidualStats`].
#[derive(Clone, Debug)]
pub(crate) struct ResidualAccumulator {
    width: usize,
    frames: usize,
    pixel_sum: Vec<f64>,
    pixel_squares: Vec<f64>,
    pixel_lag: Vec<f64>,
    previous_residual: Vec<f32>,
    previous_noisy: Vec<f32>,
    difference_squares: f64,
    neighbour_products: f64,
    neighbour_pairs: u64,
    centred_squares: f64,
    true_noise: (f64, f64, u64),
    residual: Vec<f32>,
}

impl ResidualAccumulator {
    pub fn new(height: usize, width: usize) -> Self {
        let pixels = height * width;
        Self {
            width,
            frames: 0,
            pixel_sum: vec![0.0; pixels],
            pixel_squares: vec![0.0; pixels],
            pixel_lag: vec![0.0; pixels],
            previous_residual: vec![0.0; pixels],
            previous_noisy: vec![0.0; pixels],
            difference_squares: 0.0,
            neighbour_products: 0.0,
            neighbour_pairs: 0,
            centred_squares: 0.0,
            true_noise: (0.0, 0.0, 0),
            residual: vec![0.0; pixels],
        }
    }

    pub fn push_frame(&mut self, noisy: &[f32], denoised: &[f32], clean: Option<&[f32]>) {
        for ((r, &n), &d) in self.residual.iter_mut().zip(noisy).zip(denoised) {
            *r = n - d;
        }
        let first = self.frames == 0;
        let mut frame_sum = 0.0f64;
        let mut differences = 0.0f64;
        for (p, (&residual, &value)) in self.residual.iter().zip(noisy).enumerate() {
            let r = f64::from(residual);
            frame_sum += r;
            self.pixel_sum[p] += r;
            self.pixel_squares[p] += r * r;
            if !first {
                self.pixel_lag[p] += r * f64::from(self.previous_residual[p]);
                let step = f64::from(value) - f64::from(self.previous_noisy[p]);
                differences += step * step;
            }
        }
        self.difference_squares += differences;
        // Spatial neighbours, about this frame's mean.
        let mean = frame_sum / self.residual.len().max(1) as f64;
        let width = self.width.max(1);
        let (mut products, mut pairs, mut squares) = (0.0f64, 0u64, 0.0f64);
        for (p, &value) in self.residual.iter().enumerate() {
            let centred = f64::from(value) - mean;
            squares += centred * centred;
            if (p + 1) % width != 0 && p + 1 < self.residual.len() {
                products += centred * (f64::from(self.residual[p + 1]) - mean);
                pairs += 1;
            }
            if p + width < self.residual.len() {
                products += centred * (f64::from(self.residual[p + width]) - mean);
                pairs += 1;
            }
        }
        self.neighbour_products += products;
        self.neighbour_pairs += pairs;
        self.centred_squares += squares;
        if let Some(clean) = clean {
            let (mut sum, mut sum2) = (0.0f64, 0.0f64);
            for (&n, &c) in noisy.iter().zip(clean) {
                let noise = f64::from(n) - f64::from(c);
                sum += noise;
                sum2 += noise * noise;
            }
            self.true_noise.0 += sum;
            self.true_noise.1 += sum2;
            self.true_noise.2 += noisy.len() as u64;
        }
        self.previous_residual.copy_from_slice(&self.residual);
        self.previous_noisy.copy_from_slice(noisy);
        self.frames += 1;
    }

    pub fn finish(&self) -> Option<ResidualStats> {
        let pixels = self.pixel_sum.len();
        if self.frames < 2 || pixels == 0 {
            return None;
        }
        let n = self.frames as f64;
        let values = n * pixels as f64;
        let total: f64 = self.pixel_sum.iter().sum();
        let squares: f64 = self.pixel_squares.iter().sum();
        let mean = total / values;
        let variance = (squares / values - mean * mean).max(0.0);
        let expected_noise_variance = self.difference_squares / ((n - 1.0) * pixels as f64) / 2.0;
        let (mut covariance, mut pixel_variance) = (0.0f64, 0.0f64);
        for p in 0..pixels {
            let m = self.pixel_sum[p] / n;
            pixel_variance += self.pixel_squares[p] / n - m * m;
            covariance += self.pixel_lag[p] / (n - 1.0) - m * m;
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let true_noise_variance = (self.true_noise.2 > 0).then(|| {
            let count = self.true_noise.2 as f64;
            let m = self.true_noise.0 / count;
            self.true_noise.1 / count - m * m
        });
        Some(ResidualStats {
            mean,
            variance,
            expected_noise_variance,
            variance_ratio: ratio(variance, expected_noise_variance),
            true_noise_variance,
            temporal_autocorrelation: ratio(covariance, pixel_variance),
            spatial_autocorrelation: ratio(
                self.neighbour_products / self.neighbour_pairs.max(1) as f64,
                self.centred_squares / values,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for independent noise: a xorshift sequence in [-1, 1).
    fn noise(state: &mut u64) -> f32 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn run(removes_signal: bool) -> ResidualStats {
        let (height, width, frames) = (24, 24, 200);
        let mut accumulator = ResidualAccumulator::new(height, width);
        let mut state = 0x1234_5678_9abc_def1u64;
        for t in 0..frames {
            // A slow blob over a flat background.
            let clean: Vec<f32> = (0..height * width)
                .map(|p| {
                    let (y, x) = ((p / width) as f32, (p % width) as f32);
                    let blob = (-((y - 12.0).powi(2) + (x - 12.0).powi(2)) / 20.0).exp();
                    10.0 + 20.0 * blob * (1.0 + (t as f32 / 15.0).sin())
                })
                .collect();
            let noisy: Vec<f32> = clean.iter().map(|c| c + noise(&mut state)).collect();
            let denoised: Vec<f32> = if removes_signal {
                vec![10.0; clean.len()]
            } else {
                clean.clone()
            };
            accumulator.push_frame(&noisy, &denoised, Some(&clean));
        }
        accumulator.finish().unwrap()
    }

    #[test]
    fn removed_noise_has_no_structure_and_removed_signal_has() {
        let good = run(false);
        // Uniform noise on [-1, 1): variance 1/3.
        assert!((good.variance - 1.0 / 3.0).abs() < 0.02, "{good:?}");
        assert!((good.variance_ratio - 1.0).abs() < 0.1, "{good:?}");
        assert!(good.temporal_autocorrelation.abs() < 0.05, "{good:?}");
        assert!(good.spatial_autocorrelation.abs() < 0.05, "{good:?}");
        assert!((good.true_noise_variance.unwrap() - good.variance).abs() < 1e-9);
        let bad = run(true);
        assert!(bad.variance_ratio > 2.0, "{bad:?}");
        assert!(bad.temporal_autocorrelation > 0.5, "{bad:?}");
        assert!(bad.spatial_autocorrelation > 0.5, "{bad:?}");
    }
}
