//! Parameters of a simulated extracellular recording ([`EphysConfig`]), their defaults, the
//! probe's channel layout and validation.

use serde::{Deserialize, Serialize};

use crate::config::SimError;

/// Channels of a Neuropixels 1.0 probe, the default channel count.
pub const NEUROPIXELS_CHANNELS: usize = 384;

/// Lowest accepted sample rate: below it the ~0.3 ms spike trough is not resolved.
pub const MIN_EPHYS_SAMPLE_RATE_HZ: f64 = 5_000.0;

/// Highest accepted mean firing rate, Hz; well below the 500 Hz ceiling that the 2 ms
/// refractory period imposes, so that trains stay Poisson-like.
pub const MAX_EPHYS_FIRING_RATE_HZ: f64 = 200.0;

/// Largest accepted channel count; protects against absurd allocations.
pub const MAX_EPHYS_CHANNELS: usize = 1 << 16;

/// Column x positions (µm) of a Neuropixels 1.0 probe's staggered checkerboard, cycling with
/// the channel index.
const NEUROPIXELS_COLUMNS_UM: [f32; 4] = [43.0, 11.0, 59.0, 27.0];

/// Vertical distance between a Neuropixels 1.0 probe's rows of two channels, µm.
const NEUROPIXELS_ROW_PITCH_UM: f32 = 20.0;

/// Parameters of a simulated spike-band extracellular recording (Neuropixels-like).
///
/// The recording is the sum of the spikes of point-like units near a planar probe plus white
/// Gaussian thermal noise, in µV. Fields missing from a serialized config take their
/// [`Default`] values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EphysConfig {
    /// Length of the recording in seconds; it has `round(duration_s · sample_rate_hz)` samples.
    pub duration_s: f64,
    /// Samples per second per channel (30 kHz, the Neuropixels action-potential band).
    pub sample_rate_hz: f64,
    /// Number of channels when [`positions_um`](Self::positions_um) is empty; otherwise it
    /// must equal the number of positions.
    pub channels: usize,
    /// `(x, y)` of every channel's electrode on the probe plane, µm. Empty selects the
    /// Neuropixels 1.0 layout: `x = [43, 11, 59, 27][c % 4]`, `y = 20 · (c / 2)`.
    pub positions_um: Vec<(f32, f32)>,
    /// Number of units; `None` gives about one unit per four channels
    /// ([`EphysConfig::default_units`]). Zero gives a noise-only recording.
    pub units: Option<usize>,
    /// Standard deviation of the thermal noise, µV: white, Gaussian, independent across
    /// channels and samples. Zero makes the noisy recording equal to the clean one.
    pub noise_uv_rms: f64,
    /// `(min, max)` mean firing rate, Hz; each unit's rate is drawn log-uniformly from it.
    pub firing_rate_hz: (f64, f64),
    /// `(min, max)` trough amplitude on a unit's nearest channel, µV; drawn log-uniformly
    /// (small units are more common than large ones).
    pub amplitude_uv: (f64, f64),
    /// Seed of every random choice; the recording is a pure function of the config.
    pub seed: u64,
}

impl EphysConfig {
    /// The default number of units for `channels` channels: one per four, at least one.
    pub fn default_units(channels: usize) -> usize {
        channels.div_ceil(4)
    }

    /// Number of channels: the number of positions if given, [`channels`](Self::channels)
    /// otherwise.
    pub fn channel_count(&self) -> usize {
        if self.positions_um.is_empty() {
            self.channels
        } else {
            self.positions_um.len()
        }
    }

    /// Number of units: [`units`](Self::units), or the default for the channel count.
    pub fn unit_count(&self) -> usize {
        self.units
            .unwrap_or_else(|| Self::default_units(self.channel_count()))
    }

    /// Number of samples per channel: `round(duration_s · sample_rate_hz)`.
    pub fn sample_count(&self) -> usize {
        (self.duration_s * self.sample_rate_hz).round() as usize
    }

    /// `(x, y)` of every channel, µm: [`positions_um`](Self::positions_um), or the
    /// Neuropixels 1.0 layout for [`channels`](Self::channels) channels when it is empty.
    pub fn channel_positions(&self) -> Vec<(f32, f32)> {
        if self.positions_um.is_empty() {
            (0..self.channels)
                .map(|channel| {
                    (
                        NEUROPIXELS_COLUMNS_UM[channel % 4],
                        NEUROPIXELS_ROW_PITCH_UM * (channel / 2) as f32,
                    )
                })
                .collect()
        } else {
            self.positions_um.clone()
        }
    }

    /// Checks that the config can be simulated.
    pub fn validate(&self) -> Result<(), SimError> {
        let positive = "must be finite and > 0";
        for (name, value) in [
            ("duration_s", self.duration_s),
            ("sample_rate_hz", self.sample_rate_hz),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(name, value, positive));
            }
        }
        if self.sample_rate_hz < MIN_EPHYS_SAMPLE_RATE_HZ {
            return Err(invalid(
                "sample_rate_hz",
                self.sample_rate_hz,
                "must be at least 5000 Hz to resolve a spike's trough",
            ));
        }
        if self.sample_count() == 0 {
            return Err(invalid(
                "duration_s",
                self.duration_s,
                "must last at least one sample",
            ));
        }
        if self.positions_um.is_empty() && self.channels == 0 {
            return Err(SimError::ZeroSize { name: "channels" });
        }
        if !self.positions_um.is_empty() && self.positions_um.len() != self.channels {
            return Err(invalid(
                "positions_um",
                self.positions_um.len() as f64,
                "must be empty or hold exactly one (x, y) per channel (`channels`)",
            ));
        }
        if self.channel_count() > MAX_EPHYS_CHANNELS {
            return Err(invalid(
                "channels",
                self.channel_count() as f64,
                "must be at most 65536",
            ));
        }
        if let Some(&(x, y)) = self
            .positions_um
            .iter()
            .find(|(x, y)| !(x.is_finite() && y.is_finite()))
        {
            let value = if x.is_finite() { y } else { x };
            return Err(invalid(
                "positions_um",
                f64::from(value),
                "coordinates must be finite",
            ));
        }
        if !(self.noise_uv_rms.is_finite() && self.noise_uv_rms >= 0.0) {
            return Err(invalid(
                "noise_uv_rms",
                self.noise_uv_rms,
                "must be finite and >= 0",
            ));
        }
        check_range(
            "firing_rate_hz",
            self.firing_rate_hz,
            MAX_EPHYS_FIRING_RATE_HZ,
            "must satisfy 0 < min <= max <= 200 Hz",
        )?;
        check_range(
            "amplitude_uv",
            self.amplitude_uv,
            f64::MAX,
            "must satisfy 0 < min <= max, both finite",
        )
    }
}

/// A [`SimError::InvalidParameter`].
fn invalid(name: &'static str, value: f64, requirement: &'static str) -> SimError {
    SimError::InvalidParameter {
        name,
        value,
        requirement,
    }
}

/// Checks that `(min, max)` is finite and `0 < min <= max <= ceiling`; reports the first
/// offending bound.
fn check_range(
    name: &'static str,
    (min, max): (f64, f64),
    ceiling: f64,
    requirement: &'static str,
) -> Result<(), SimError> {
    if !(min.is_finite() && min > 0.0) {
        return Err(invalid(name, min, requirement));
    }
    if !(max.is_finite() && max >= min && max <= ceiling) {
        return Err(invalid(name, max, requirement));
    }
    Ok(())
}

impl Default for EphysConfig {
    /// One minute of a 384-channel Neuropixels 1.0 probe at 30 kHz with 96 units firing at
    /// 1–20 Hz, 60–300 µV spikes and 10 µV RMS noise.
    fn default() -> Self {
        Self {
            duration_s: 60.0,
            sample_rate_hz: 30_000.0,
            channels: NEUROPIXELS_CHANNELS,
            positions_um: Vec::new(),
            units: None,
            noise_uv_rms: 10.0,
            firing_rate_hz: (1.0, 20.0),
            amplitude_uv: (60.0, 300.0),
            seed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_neuropixels() {
        let config = EphysConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.unit_count(), 96);
        assert_eq!(config.sample_count(), 1_800_000);
        let positions = config.channel_positions();
        assert_eq!(positions.len(), 384);
        assert_eq!(
            &positions[..4],
            &[(43.0, 0.0), (11.0, 0.0), (59.0, 20.0), (27.0, 20.0)]
        );
        assert_eq!(positions[383], (27.0, 3820.0));
    }

    #[test]
    fn explicit_positions_set_the_channel_count() {
        let config = EphysConfig {
            channels: 3,
            positions_um: vec![(0.0, 0.0), (0.0, 25.0), (0.0, 50.0)],
            ..EphysConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.channel_count(), 3);
        assert_eq!(config.unit_count(), 1);
    }
}
