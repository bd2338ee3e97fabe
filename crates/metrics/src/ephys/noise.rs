//! Per-channel RMS noise of one stream: the mean over the offset window gives each channel's
//! offset, then samples within `threshold` of it contribute to the RMS (see [`super`]).

use crate::snr::median;

/// Running RMS-noise sums of one stream (noisy or denoised).
#[derive(Clone, Debug)]
pub(super) struct NoiseAccumulator {
    channels: usize,
    threshold: f64,
    /// Samples whose mean is the offset; 0 means a fixed offset of 0.
    window: usize,
    /// Samples of the offset window, kept until the offsets are known (`[sample][channel]`).
    pending: Vec<f32>,
    /// Per-channel sums over the offset window.
    offset_sums: Vec<f64>,
    /// Per-channel offsets, once the window is complete.
    offsets: Option<Vec<f64>>,
    /// Per-channel sums of `(x - offset)²` over samples within the threshold.
    squares: Vec<f64>,
    /// Per-channel counts of samples within the threshold.
    inside: Vec<u64>,
    /// Samples seen.
    samples: u64,
}

/// Final per-channel values of one stream.
#[derive(Clone, Debug)]
pub(super) struct NoiseResult {
    pub(super) offsets: Vec<f64>,
    pub(super) rms: Vec<f64>,
    /// Per-channel fraction of samples within the threshold.
    pub(super) inside_fraction: Vec<f64>,
    /// Samples the offsets were averaged over (0: fixed offset of 0).
    pub(super) window_used: usize,
}

impl NoiseResult {
    /// Median over channels of the finite RMS values (NaN if none).
    pub(super) fn median_rms(&self) -> f64 {
        median_of_finite(&self.rms)
    }

    /// Median over channels of the fraction of samples within the threshold.
    pub(super) fn median_inside_fraction(&self) -> f64 {
        median_of_finite(&self.inside_fraction)
    }
}

/// Median of the finite values (NaN if there are none).
pub(super) fn median_of_finite(values: &[f64]) -> f64 {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    median(&mut finite)
}

impl NoiseAccumulator {
    pub(super) fn new(channels: usize, threshold: f32, window: usize) -> Self {
        Self {
            channels,
            threshold: f64::from(threshold),
            window,
            pending: Vec::new(),
            offset_sums: vec![0.0; channels],
            offsets: (window == 0).then(|| vec![0.0; channels]),
            squares: vec![0.0; channels],
            inside: vec![0; channels],
            samples: 0,
        }
    }

    /// Adds one sample (`channels` values).
    pub(super) fn push(&mut self, sample: &[f32]) {
        self.samples += 1;
        if let Some(offsets) = &self.offsets {
            accumulate(
                sample,
                offsets,
                self.threshold,
                &mut self.squares,
                &mut self.inside,
            );
            return;
        }
        for (sum, &value) in self.offset_sums.iter_mut().zip(sample) {
            *sum += f64::from(value);
        }
        self.pending.extend_from_slice(sample);
        if self.pending.len() == self.window * self.channels {
            self.settle();
        }
    }

    /// Fixes the offsets from the samples seen so far and accounts for the pending samples.
    fn settle(&mut self) {
        let count = self.pending.len() / self.channels;
        let offsets: Vec<f64> = if count == 0 {
            vec![0.0; self.channels]
        } else {
            self.offset_sums
                .iter()
                .map(|sum| sum / count as f64)
                .collect()
        };
        let pending = std::mem::take(&mut self.pending);
        for sample in pending.chunks_exact(self.channels) {
            accumulate(
                sample,
                &offsets,
                self.threshold,
                &mut self.squares,
                &mut self.inside,
            );
        }
        self.offsets = Some(offsets);
    }

    pub(super) fn finish(mut self) -> NoiseResult {
        if self.offsets.is_none() {
            self.settle();
        }
        let window_used = if self.window == 0 {
            0
        } else {
            self.window.min(self.samples as usize)
        };
        let rms = self
            .squares
            .iter()
            .zip(&self.inside)
            .map(|(&squares, &inside)| {
                if inside == 0 {
                    f64::NAN
                } else {
                    (squares / inside as f64).sqrt()
                }
            })
            .collect();
        let inside_fraction = self
            .inside
            .iter()
            .map(|&inside| inside as f64 / self.samples as f64)
            .collect();
        NoiseResult {
            offsets: self.offsets.unwrap_or_default(),
            rms,
            inside_fraction,
            window_used,
        }
    }
}

/// Adds the samples within `threshold` of their channel's offset.
fn accumulate(
    sample: &[f32],
    offsets: &[f64],
    threshold: f64,
    squares: &mut [f64],
    inside: &mut [u64],
) {
    for (((&value, &offset), square), inside) in sample.iter().zip(offsets).zip(squares).zip(inside)
    {
        let deviation = f64::from(value) - offset;
        if deviation.abs() <= threshold {
            *square += deviation * deviation;
            *inside += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_window_then_threshold() {
        // Two channels, window of 2 samples: offsets 1.0 and 10.0.
        let mut accumulator = NoiseAccumulator::new(2, 5.0, 2);
        for sample in [[0.0, 10.0], [2.0, 10.0], [4.0, 100.0], [-2.0, 7.0]] {
            accumulator.push(&sample);
        }
        let result = accumulator.finish();
        assert_eq!(result.offsets, vec![1.0, 10.0]);
        assert_eq!(result.window_used, 2);
        // Channel 0: deviations -1, 1, 3, -3 -> all inside.
        assert!((result.rms[0] - 5.0f64.sqrt()).abs() < 1e-12);
        // Channel 1: deviations 0, 0, 90 (outside), -3.
        assert!((result.rms[1] - 3.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(result.inside_fraction, vec![1.0, 0.75]);
    }

    #[test]
    fn short_recording_uses_all_samples_and_zero_window_uses_no_offset() {
        let mut accumulator = NoiseAccumulator::new(1, 50.0, 100);
        accumulator.push(&[3.0]);
        accumulator.push(&[5.0]);
        let result = accumulator.finish();
        assert_eq!(result.offsets, vec![4.0]);
        assert_eq!(result.window_used, 2);
        assert!((result.rms[0] - 1.0).abs() < 1e-12);

        let mut fixed = NoiseAccumulator::new(1, 50.0, 0);
        fixed.push(&[3.0]);
        fixed.push(&[-3.0]);
        let result = fixed.finish();
        assert_eq!(result.offsets, vec![0.0]);
        assert_eq!(result.window_used, 0);
        assert!((result.rms[0] - 3.0).abs() < 1e-12);
    }
}
