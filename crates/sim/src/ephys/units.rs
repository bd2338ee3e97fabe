//! The simulated units: where they sit relative to the probe, how large and how fast their
//! spikes are, and the multichannel waveform ([`UnitTemplate`]) each spike adds to the
//! recording.
//!
//! Each unit is a point source at `(x, y)` over the probe plane and `z` µm away from it. Its
//! trough amplitude on a channel at 3D distance `r` is `A0 / (1 + (r / r0)²)` — flat near the
//! source and falling as `r⁻²` far from it, like a dipole-ish extracellular field — with `A0`
//! set so that the nearest channel sees exactly the drawn amplitude. The waveform is a sharp
//! negative trough (~0.3 ms full width at half maximum) followed by a slower positive rebound,
//! made exactly zero-mean as the spike band's high-pass filter would; on channels far from the
//! soma it is slightly wider and later (dendritic/axonal propagation), so templates are
//! genuinely multichannel rather than one waveform scaled.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::EphysConfig;
use super::ephys_rng;
use crate::rng::Stream;

/// Units sit at most this far beyond the probe's columns on either side, µm.
const LATERAL_MARGIN_UM: f64 = 50.0;
/// Range of a unit's distance from the probe plane, µm.
const PLANE_DISTANCE_UM: (f64, f64) = (10.0, 60.0);
/// Range of the amplitude fall-off length `r0`, µm.
const DECAY_LENGTH_UM: (f64, f64) = (25.0, 40.0);
/// Full width at half maximum of the trough on the nearest channel, ms, before the unit's
/// width factor.
const TROUGH_FWHM_MS: f64 = 0.3;
/// Full width at half maximum of the rebound, ms, before the unit's width factor.
const REBOUND_FWHM_MS: f64 = 0.6;
/// Delay from trough to rebound peak, ms, before the unit's width factor.
const REBOUND_DELAY_MS: f64 = 0.5;
/// Range of the rebound's height relative to the trough before the zero-mean correction. The
/// correction must balance the trough's area within the ~2 ms window, which lifts the rebound
/// to about 0.3–0.45 of the trough, a broad positive phase like that of high-pass filtered
/// recorded spikes (see [`channel_waveform`]).
const REBOUND_RATIO: (f64, f64) = (0.05, 0.15);
/// Range of the per-unit factor on all durations of the waveform.
const WIDTH_FACTOR: (f64, f64) = (0.9, 1.1);
/// Largest extra delay of the waveform on channels far from the soma, ms.
const MAX_PROPAGATION_DELAY_MS: f64 = 0.1;
/// Largest extra widening of the waveform on channels far from the soma (fraction).
const MAX_PROPAGATION_WIDENING: f64 = 0.1;
/// Distance beyond the nearest channel's at which delay and widening reach their maximum, µm.
const PROPAGATION_DISTANCE_UM: f64 = 150.0;
/// Template window before the trough, ms.
const WINDOW_BEFORE_MS: f64 = 0.5;
/// Template window after the trough, ms.
const WINDOW_AFTER_MS: f64 = 1.6;
/// Channels whose amplitude is below this fraction of the peak channel's are left out of the
/// template (and so receive nothing from the unit).
const SUPPORT_FRACTION: f64 = 0.02;
/// Channels whose amplitude exceeds this fraction of the peak channel's are listed in
/// [`UnitTruth::channels`].
const TRUTH_FRACTION: f64 = 0.1;

/// The conversion from a Gaussian's full width at half maximum to its standard deviation.
const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_4;

/// Ground truth about one simulated unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitTruth {
    /// Index of the unit (its position in [`crate::EphysSimulator::units`], and the `unit` of
    /// its spikes).
    pub index: usize,
    /// Position across the probe, µm, in the channels' coordinates.
    pub x_um: f32,
    /// Position along the probe (depth), µm, in the channels' coordinates.
    pub y_um: f32,
    /// Distance from the probe plane, µm.
    pub z_um: f32,
    /// The channel nearest to the unit, where its spikes are largest.
    pub peak_channel: usize,
    /// Trough amplitude on the peak channel, µV (the template's minimum there is `-amplitude`).
    pub amplitude_uv: f32,
    /// Channels (ascending) where the template's trough exceeds 10 % of the peak channel's:
    /// the unit's footprint.
    pub channels: Vec<usize>,
    /// Configured mean firing rate, Hz (the realised rate is `spike_count / duration`).
    pub firing_rate_hz: f64,
    /// Number of spikes the unit fires in the whole recording.
    pub spike_count: usize,
    /// Length `r0` of the amplitude fall-off `A0 / (1 + (r / r0)²)`, µm.
    pub decay_length_um: f32,
    /// Full width at half maximum of the trough on the peak channel, ms.
    pub trough_width_ms: f32,
}

/// A unit's multichannel spike waveform: what one spike adds to the recording, µV.
///
/// Values are sample-major, `[samples][channels]` like the recording, over the channels in
/// [`channels`](Self::channels) only (every other channel receives nothing). A spike at sample
/// `t` adds `waveforms[k][j]` to channel `channels[j]` at sample `t - trough_offset + k`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitTemplate {
    channels: Vec<usize>,
    samples: usize,
    trough_offset: usize,
    waveforms: Vec<f32>,
}

impl UnitTemplate {
    /// Recording channels the template covers, ascending.
    pub fn channels(&self) -> &[usize] {
        &self.channels
    }

    /// Length of the waveform in samples.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Index of the sample within the waveform that falls on the spike time (the trough on the
    /// peak channel).
    pub fn trough_offset(&self) -> usize {
        self.trough_offset
    }

    /// All values, sample-major `[samples][channels().len()]`, µV.
    pub fn waveforms(&self) -> &[f32] {
        &self.waveforms
    }

    /// The waveform on recording channel `channel`, or `None` where the unit contributes
    /// nothing.
    pub fn channel_waveform(&self, channel: usize) -> Option<Vec<f32>> {
        let slot = self.channels.binary_search(&channel).ok()?;
        let width = self.channels.len();
        Some(
            self.waveforms
                .chunks_exact(width)
                .map(|row| row[slot])
                .collect(),
        )
    }
}

/// Draws every unit's position, size, rate and waveform. Each unit has its own random stream,
/// so the first units do not change when more are asked for. `spike_count` is left at 0.
pub(crate) fn generate_units(
    config: &EphysConfig,
    positions: &[(f32, f32)],
) -> (Vec<UnitTruth>, Vec<UnitTemplate>) {
    let (x_min, x_max) = bounds(positions.iter().map(|&(x, _)| f64::from(x)));
    let (y_min, y_max) = bounds(positions.iter().map(|&(_, y)| f64::from(y)));
    (0..config.unit_count())
        .map(|index| {
            let mut rng = ephys_rng(config.seed, Stream::Scene, index as u64);
            let x = rng.random_range(x_min - LATERAL_MARGIN_UM..=x_max + LATERAL_MARGIN_UM);
            let y = rng.random_range(y_min..=y_max);
            let z = rng.random_range(PLANE_DISTANCE_UM.0..=PLANE_DISTANCE_UM.1);
            let shape = UnitShape {
                amplitude: log_uniform(&mut rng, config.amplitude_uv),
                decay_length: rng.random_range(DECAY_LENGTH_UM.0..=DECAY_LENGTH_UM.1),
                width_factor: rng.random_range(WIDTH_FACTOR.0..=WIDTH_FACTOR.1),
                rebound_ratio: rng.random_range(REBOUND_RATIO.0..=REBOUND_RATIO.1),
            };
            let firing_rate_hz = log_uniform(&mut rng, config.firing_rate_hz);
            build_unit(
                index,
                (x, y, z),
                &shape,
                firing_rate_hz,
                positions,
                config.sample_rate_hz,
            )
        })
        .unzip()
}

/// The randomly drawn shape parameters of one unit.
struct UnitShape {
    /// Trough amplitude on the nearest channel, µV.
    amplitude: f64,
    /// `r0` of the amplitude fall-off, µm.
    decay_length: f64,
    /// Factor on every duration of the waveform.
    width_factor: f64,
    /// Raw rebound height relative to the trough.
    rebound_ratio: f64,
}

/// Computes a unit's footprint and template from its position and shape.
fn build_unit(
    index: usize,
    (x, y, z): (f64, f64, f64),
    shape: &UnitShape,
    firing_rate_hz: f64,
    positions: &[(f32, f32)],
    sample_rate_hz: f64,
) -> (UnitTruth, UnitTemplate) {
    let distances: Vec<f64> = positions
        .iter()
        .map(|&(cx, cy)| {
            let (dx, dy) = (f64::from(cx) - x, f64::from(cy) - y);
            (dx * dx + dy * dy + z * z).sqrt()
        })
        .collect();
    // The first of equally near channels wins, so the choice is deterministic.
    let (peak_channel, nearest) = distances.iter().copied().enumerate().fold(
        (0, f64::INFINITY),
        |best, (channel, distance)| {
            if distance < best.1 {
                (channel, distance)
            } else {
                best
            }
        },
    );
    let falloff = |r: f64| 1.0 / (1.0 + (r / shape.decay_length).powi(2));
    let relative_amplitude: Vec<f64> = distances
        .iter()
        .map(|&r| falloff(r) / falloff(nearest))
        .collect();

    let before = (WINDOW_BEFORE_MS * 1e-3 * sample_rate_hz).ceil() as usize;
    let after = (WINDOW_AFTER_MS * 1e-3 * sample_rate_hz).ceil() as usize;
    let samples = before + after + 1;
    let channels: Vec<usize> = (0..positions.len())
        .filter(|&channel| relative_amplitude[channel] >= SUPPORT_FRACTION)
        .collect();
    let mut waveforms = vec![0.0f32; samples * channels.len()];
    for (slot, &channel) in channels.iter().enumerate() {
        let remoteness = ((distances[channel] - nearest) / PROPAGATION_DISTANCE_UM).clamp(0.0, 1.0);
        let waveform = channel_waveform(
            samples,
            before,
            sample_rate_hz,
            WaveformShape {
                width_factor: shape.width_factor * (1.0 + MAX_PROPAGATION_WIDENING * remoteness),
                delay_ms: MAX_PROPAGATION_DELAY_MS * remoteness,
                rebound_ratio: shape.rebound_ratio,
                amplitude: shape.amplitude * relative_amplitude[channel],
            },
        );
        for (row, value) in waveforms.chunks_exact_mut(channels.len()).zip(waveform) {
            row[slot] = value as f32;
        }
    }

    let truth = UnitTruth {
        index,
        x_um: x as f32,
        y_um: y as f32,
        z_um: z as f32,
        peak_channel,
        amplitude_uv: shape.amplitude as f32,
        channels: (0..positions.len())
            .filter(|&channel| relative_amplitude[channel] > TRUTH_FRACTION)
            .collect(),
        firing_rate_hz,
        spike_count: 0,
        decay_length_um: shape.decay_length as f32,
        trough_width_ms: (TROUGH_FWHM_MS * shape.width_factor) as f32,
    };
    let template = UnitTemplate {
        channels,
        samples,
        trough_offset: before,
        waveforms,
    };
    (truth, template)
}

/// Shape of the waveform on one channel.
struct WaveformShape {
    /// Factor on every duration.
    width_factor: f64,
    /// Extra delay of the whole waveform, ms.
    delay_ms: f64,
    /// Raw rebound height relative to the trough.
    rebound_ratio: f64,
    /// Trough depth to scale to, µV.
    amplitude: f64,
}

/// One channel's waveform sampled at `samples` points with the spike time at `trough_index`:
/// a Gaussian trough plus a Gaussian rebound, made exactly zero-sum by subtracting a Hann
/// window (the spike band carries no DC; a smooth window rather than a constant keeps the ends
/// at zero), then scaled so that its minimum is `-amplitude`.
fn channel_waveform(
    samples: usize,
    trough_index: usize,
    sample_rate_hz: f64,
    shape: WaveformShape,
) -> Vec<f64> {
    let trough_sigma = TROUGH_FWHM_MS * shape.width_factor / FWHM_PER_SIGMA;
    let rebound_sigma = REBOUND_FWHM_MS * shape.width_factor / FWHM_PER_SIGMA;
    let rebound_delay = REBOUND_DELAY_MS * shape.width_factor;
    let gaussian = |t: f64, sigma: f64| (-0.5 * (t / sigma).powi(2)).exp();
    let mut waveform: Vec<f64> = (0..samples)
        .map(|k| {
            let t_ms = (k as f64 - trough_index as f64) * 1e3 / sample_rate_hz - shape.delay_ms;
            shape.rebound_ratio * gaussian(t_ms - rebound_delay, rebound_sigma)
                - gaussian(t_ms, trough_sigma)
        })
        .collect();
    let window: Vec<f64> = (0..samples)
        .map(|k| {
            (std::f64::consts::PI * (k + 1) as f64 / (samples + 1) as f64)
                .sin()
                .powi(2)
        })
        .collect();
    let offset = waveform.iter().sum::<f64>() / window.iter().sum::<f64>();
    for (value, weight) in waveform.iter_mut().zip(&window) {
        *value -= offset * weight;
    }
    let depth = -waveform.iter().copied().fold(f64::INFINITY, f64::min);
    let scale = shape.amplitude / depth;
    waveform.iter_mut().for_each(|value| *value *= scale);
    waveform
}

/// Smallest and largest of `values`.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    })
}

/// A draw from the log-uniform distribution on `[min, max]` (validated `0 < min <= max`).
fn log_uniform(rng: &mut impl Rng, (min, max): (f64, f64)) -> f64 {
    let fraction: f64 = rng.random();
    (min.ln() + fraction * (max.ln() - min.ln()))
        .exp()
        .clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waveform_is_zero_mean_biphasic_with_trough_at_spike_time() {
        let waveform = channel_waveform(
            64,
            15,
            30_000.0,
            WaveformShape {
                width_factor: 1.0,
                delay_ms: 0.0,
                rebound_ratio: 0.1,
                amplitude: 100.0,
            },
        );
        let sum: f64 = waveform.iter().sum();
        assert!(sum.abs() < 1e-9, "sum {sum}");
        let (trough_at, trough) = waveform
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty");
        assert_eq!(trough_at, 15);
        assert!((trough + 100.0).abs() < 1e-9);
        let rebound = waveform.iter().copied().fold(f64::MIN, f64::max);
        assert!((30.0..45.0).contains(&rebound), "rebound {rebound}");
        assert!(waveform[0].abs() < 2.0 && waveform[63].abs() < 2.0);
    }
}
