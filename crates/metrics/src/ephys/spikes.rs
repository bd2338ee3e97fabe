//! Snippets of known spikes: a ring of the last `snippet_before + snippet_after` samples of
//! each stream, per-spike cosines, and per-unit sums of the waveforms (see [`super`]).

use super::{GroundTruthSpike, SpikeFidelity, UnitFidelity, noise::median_of_finite};

/// Stream indices in the rings and waveform sums.
const NOISY: usize = 0;
const DENOISED: usize = 1;
const CLEAN: usize = 2;

/// Sums of one unit's snippets.
#[derive(Clone, Debug)]
struct UnitSums {
    /// Channels measured (the peak channel included).
    channels: Vec<usize>,
    /// Position of the peak channel in `channels`.
    peak: usize,
    /// Spikes measured.
    spikes: usize,
    /// Per stream, the summed snippet `[sample][channel of channels]`.
    waveforms: [Vec<f64>; 3],
    /// Sum of the per-spike cosines (denoised vs clean) that are finite, and their count.
    cosine_sum: f64,
    cosine_count: usize,
}

/// Running spike-fidelity sums; lives only when clean data and spikes are given.
#[derive(Clone, Debug)]
pub(super) struct SpikeTracker {
    before: usize,
    len: usize,
    channels: usize,
    /// Per stream, the last `len` samples; sample `s` in slot `s % len`.
    rings: [Vec<f32>; 3],
    /// Spikes sorted by sample.
    spikes: Vec<GroundTruthSpike>,
    /// Next spike to measure.
    next: usize,
    /// Spikes too close to the start for a whole snippet.
    skipped_start: usize,
    /// Indexed by unit id; `None` for units without spikes.
    units: Vec<Option<UnitSums>>,
    /// Sums of finite per-spike cosines `[noisy, denoised]` and their counts.
    cosine_sums: [f64; 2],
    cosine_counts: [usize; 2],
    measured: usize,
}

impl SpikeTracker {
    /// `spikes` sorted by sample with valid unit ids; `unit_channels[u]` the validated
    /// channel list of unit `u` and the position of its peak channel in it.
    pub(super) fn new(
        channels: usize,
        before: usize,
        after: usize,
        spikes: Vec<GroundTruthSpike>,
        unit_channels: Vec<(Vec<usize>, usize)>,
    ) -> Self {
        let len = before + after;
        let mut used = vec![false; unit_channels.len()];
        for spike in &spikes {
            used[spike.unit as usize] = true;
        }
        let units = unit_channels
            .into_iter()
            .zip(used)
            .map(|((unit_channels, peak), used)| {
                used.then(|| {
                    let values = len * unit_channels.len();
                    UnitSums {
                        channels: unit_channels,
                        peak,
                        spikes: 0,
                        waveforms: std::array::from_fn(|_| vec![0.0; values]),
                        cosine_sum: 0.0,
                        cosine_count: 0,
                    }
                })
            })
            .collect();
        let skipped_start = spikes
            .iter()
            .take_while(|spike| spike.sample < before as u64)
            .count();
        Self {
            before,
            len,
            channels,
            rings: std::array::from_fn(|_| vec![0.0; len * channels]),
            spikes,
            next: skipped_start,
            skipped_start,
            units,
            cosine_sums: [0.0; 2],
            cosine_counts: [0; 2],
            measured: 0,
        }
    }

    /// Adds sample `index` of each stream and measures the spikes whose snippet it completes.
    pub(super) fn push(&mut self, index: u64, noisy: &[f32], denoised: &[f32], clean: &[f32]) {
        let slot = (index % self.len as u64) as usize;
        let range = slot * self.channels..(slot + 1) * self.channels;
        self.rings[NOISY][range.clone()].copy_from_slice(noisy);
        self.rings[DENOISED][range.clone()].copy_from_slice(denoised);
        self.rings[CLEAN][range].copy_from_slice(clean);
        let received = index + 1;
        let after = (self.len - self.before) as u64;
        while let Some(&spike) = self.spikes.get(self.next) {
            if spike.sample.saturating_add(after) > received {
                break;
            }
            self.measure(spike);
            self.next += 1;
        }
    }

    /// Measures one spike whose snippet is entirely in the rings.
    fn measure(&mut self, spike: GroundTruthSpike) {
        let Some(unit) = self.units[spike.unit as usize].as_mut() else {
            unreachable!("units with spikes have sums");
        };
        let first = spike.sample - self.before as u64;
        let unit_channels = unit.channels.len();
        // Dot products: noisy·clean, denoised·clean, noisy², denoised², clean².
        let (mut noisy_clean, mut denoised_clean) = (0.0f64, 0.0f64);
        let (mut noisy_norm, mut denoised_norm, mut clean_norm) = (0.0f64, 0.0f64, 0.0f64);
        for offset in 0..self.len {
            let slot = ((first + offset as u64) % self.len as u64) as usize;
            let base = slot * self.channels;
            for (position, &channel) in unit.channels.iter().enumerate() {
                let noisy = f64::from(self.rings[NOISY][base + channel]);
                let denoised = f64::from(self.rings[DENOISED][base + channel]);
                let clean = f64::from(self.rings[CLEAN][base + channel]);
                noisy_clean += noisy * clean;
                denoised_clean += denoised * clean;
                noisy_norm += noisy * noisy;
                denoised_norm += denoised * denoised;
                clean_norm += clean * clean;
                let at = offset * unit_channels + position;
                unit.waveforms[NOISY][at] += noisy;
                unit.waveforms[DENOISED][at] += denoised;
                unit.waveforms[CLEAN][at] += clean;
            }
        }
        unit.spikes += 1;
        self.measured += 1;
        let noisy_cosine = cosine_from(noisy_clean, noisy_norm, clean_norm);
        let denoised_cosine = cosine_from(denoised_clean, denoised_norm, clean_norm);
        if noisy_cosine.is_finite() {
            self.cosine_sums[0] += noisy_cosine;
            self.cosine_counts[0] += 1;
        }
        if denoised_cosine.is_finite() {
            self.cosine_sums[1] += denoised_cosine;
            self.cosine_counts[1] += 1;
            unit.cosine_sum += denoised_cosine;
            unit.cosine_count += 1;
        }
    }

    pub(super) fn finish(self) -> SpikeFidelity {
        let spikes_skipped_end = self.spikes.len() - self.next;
        let per_unit: Vec<UnitFidelity> = self
            .units
            .iter()
            .enumerate()
            .filter_map(|(id, unit)| {
                let unit = unit.as_ref().filter(|unit| unit.spikes > 0)?;
                Some(unit_fidelity(id as u32, unit))
            })
            .collect();
        let ratios: Vec<f64> = per_unit.iter().map(|unit| unit.amplitude_ratio).collect();
        let finite_ratios = ratios.iter().copied().filter(|ratio| ratio.is_finite());
        SpikeFidelity {
            spikes_total: self.spikes.len(),
            spikes_measured: self.measured,
            spikes_skipped_start: self.skipped_start,
            spikes_skipped_end,
            cosine_denoised_mean: mean_of(self.cosine_sums[1], self.cosine_counts[1]),
            cosine_noisy_mean: mean_of(self.cosine_sums[0], self.cosine_counts[0]),
            units_measured: per_unit.len(),
            unit_mean_cosine_denoised: mean_of_finite(per_unit.iter().map(|unit| unit.cosine)),
            unit_mean_cosine_noisy: mean_of_finite(per_unit.iter().map(|unit| unit.cosine_noisy)),
            amplitude_ratio_mean: mean_of_finite(ratios.iter().copied()),
            amplitude_ratio_median: median_of_finite(&ratios),
            amplitude_ratio_min: finite_ratios.clone().fold(f64::NAN, f64::min),
            amplitude_ratio_max: finite_ratios.fold(f64::NAN, f64::max),
            amplitude_ratio_noisy_mean: mean_of_finite(
                per_unit.iter().map(|unit| unit.amplitude_ratio_noisy),
            ),
            per_unit,
        }
    }
}

/// The per-unit summary from the summed waveforms (cosines and trough ratios do not depend
/// on dividing by the spike count; troughs in µV do).
fn unit_fidelity(unit_id: u32, unit: &UnitSums) -> UnitFidelity {
    let spikes = unit.spikes as f64;
    let trough = |stream: usize| {
        unit.waveforms[stream]
            .iter()
            .skip(unit.peak)
            .step_by(unit.channels.len())
            .fold(f64::INFINITY, |low, &value| low.min(value))
            / spikes
    };
    let clean_trough = trough(CLEAN);
    let denoised_trough = trough(DENOISED);
    let noisy_trough = trough(NOISY);
    let ratio = |trough: f64| {
        if clean_trough < 0.0 {
            trough / clean_trough
        } else {
            f64::NAN
        }
    };
    UnitFidelity {
        unit: unit_id,
        spikes: unit.spikes,
        peak_channel: unit.channels[unit.peak],
        cosine: cosine(&unit.waveforms[DENOISED], &unit.waveforms[CLEAN]),
        cosine_noisy: cosine(&unit.waveforms[NOISY], &unit.waveforms[CLEAN]),
        spike_cosine_mean: mean_of(unit.cosine_sum, unit.cosine_count),
        amplitude_ratio: ratio(denoised_trough),
        amplitude_ratio_noisy: ratio(noisy_trough),
        clean_trough_uv: clean_trough,
        denoised_trough_uv: denoised_trough,
        noisy_trough_uv: noisy_trough,
    }
}

/// `a·b / (|a| |b|)`; NaN if either vector is zero.
pub(super) fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut dot, mut a_norm, mut b_norm) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in a.iter().zip(b) {
        dot += a * b;
        a_norm += a * a;
        b_norm += b * b;
    }
    cosine_from(dot, a_norm, b_norm)
}

fn cosine_from(dot: f64, a_norm_squared: f64, b_norm_squared: f64) -> f64 {
    let denominator = (a_norm_squared * b_norm_squared).sqrt();
    if denominator > 0.0 {
        (dot / denominator).clamp(-1.0, 1.0)
    } else {
        f64::NAN
    }
}

fn mean_of(sum: f64, count: usize) -> f64 {
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Mean of the finite values (NaN if none).
fn mean_of_finite(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .filter(|value| value.is_finite())
        .fold((0.0, 0), |(sum, count), value| (sum + value, count + 1));
    mean_of(sum, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_opposite_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-15);
        assert!((cosine(&[1.0, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-15);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-15);
        assert!(cosine(&[0.0, 0.0], &[1.0, 1.0]).is_nan());
    }

    #[test]
    fn means_skip_non_finite_values() {
        assert_eq!(mean_of_finite([1.0, f64::NAN, 3.0].into_iter()), 2.0);
        assert!(mean_of_finite(std::iter::empty()).is_nan());
    }
}
