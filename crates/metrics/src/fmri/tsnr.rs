//! The per-voxel arithmetic behind fMRI tSNR: running temporal moments that keep their
//! precision on EPI-like baselines, the tSNR convention for flat series, and the robust
//! maximum that scales the default brain threshold (definitions in [`super`]).

/// Running sums of one voxel's time series, shifted by its first value in the tSNR window.
///
/// EPI baselines sit around 10³–10⁴ with a temporal std of ~1–10, so the naive
/// `Σx² / n − (Σx / n)²` subtracts two numbers that agree in their first 6–8 digits (and f64
/// fails outright at 10⁷). Shifting by a value of the series itself makes the sums scale with
/// the fluctuations instead of the baseline; unlike Welford's update it needs no division
/// per value, and like it, it is exact for short integer series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ShiftedMoments {
    shift: f64,
    /// `Σ (x − shift)`.
    sum: f64,
    /// `Σ (x − shift)²`.
    sum_squares: f64,
}

impl ShiftedMoments {
    /// Adds the next value; `first` marks the window's first frame, whose value becomes the
    /// shift.
    #[inline]
    pub(super) fn add(&mut self, value: f32, first: bool) {
        let value = f64::from(value);
        if first {
            self.shift = value;
        }
        let deviation = value - self.shift;
        self.sum += deviation;
        self.sum_squares += deviation * deviation;
    }

    /// Temporal mean and population std (ddof 0) of the `count` values added (`count > 0`).
    pub(super) fn mean_and_std(&self, count: usize) -> (f64, f64) {
        let count = count as f64;
        let mean_deviation = self.sum / count;
        // Rounding can leave a tiny negative variance for a nearly flat series.
        let variance = (self.sum_squares / count - mean_deviation * mean_deviation).max(0.0);
        (self.shift + mean_deviation, variance.sqrt())
    }
}

/// tSNR of a voxel: `mean / std`, or +∞ for a series without temporal fluctuation (std 0),
/// which has no noise at all whatever its mean.
pub(super) fn tsnr(mean: f64, std: f64) -> f64 {
    if std > 0.0 { mean / std } else { f64::INFINITY }
}

/// The nearest-rank `percent`-th percentile of `values` (the value of rank
/// `⌈percent · n / 100⌉` in ascending order); `values` must not be empty. Integer rank
/// arithmetic avoids `0.99 · 100 = 98.99…` surprises.
pub(super) fn nearest_rank_percentile(values: &[f64], percent: usize) -> f64 {
    let count = values.len();
    let rank = (percent * count).div_ceil(100).clamp(1, count);
    let mut values = values.to_vec();
    let (_, value, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    *value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments_of(values: &[f32]) -> (f64, f64) {
        let mut moments = ShiftedMoments::default();
        for (index, &value) in values.iter().enumerate() {
            moments.add(value, index == 0);
        }
        moments.mean_and_std(values.len())
    }

    #[test]
    fn fmri_moments_of_alternating_series_are_exact() {
        let series: Vec<f32> = (0..10).map(|i| [102.0, 98.0][i % 2]).collect();
        assert_eq!(moments_of(&series), (100.0, 2.0));
    }

    #[test]
    fn fmri_moments_of_flat_series_have_zero_std() {
        assert_eq!(moments_of(&[1234.5; 7]), (1234.5, 0.0));
        assert_eq!(tsnr(1234.5, 0.0), f64::INFINITY);
    }

    #[test]
    fn fmri_moments_keep_precision_on_a_large_baseline() {
        // Naive f64 sums give a std of about 0.3 here (see the integration tests).
        let series: Vec<f32> = (0..1000)
            .map(|i| [1.0e7 + 1.0, 1.0e7 - 1.0][i % 2])
            .collect();
        assert_eq!(moments_of(&series), (1.0e7, 1.0));
    }

    #[test]
    fn fmri_moments_match_two_pass_on_irregular_series() {
        let series: Vec<f32> = (0..57)
            .map(|i| 5000.0 + ((i * 37 % 11) as f32 - 5.0) * 0.75)
            .collect();
        let values: Vec<f64> = series.iter().map(|&v| f64::from(v)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let (got_mean, got_std) = moments_of(&series);
        assert!((got_mean - mean).abs() < 1e-10, "{got_mean} vs {mean}");
        assert!((got_std - variance.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn fmri_nearest_rank_percentile() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(nearest_rank_percentile(&values, 99), 99.0);
        assert_eq!(nearest_rank_percentile(&values, 100), 100.0);
        assert_eq!(nearest_rank_percentile(&values[..10], 99), 100.0);
        assert_eq!(nearest_rank_percentile(&[7.0], 99), 7.0);
        assert_eq!(nearest_rank_percentile(&[3.0, 1.0], 50), 1.0);
    }
}
