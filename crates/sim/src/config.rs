//! Simulation parameters ([`TwoPhotonConfig`]), their defaults and validation, and the crate's
//! error type ([`SimError`]).

use serde::{Deserialize, Serialize};

/// Neuron density used by [`TwoPhotonConfig::neurons_for_area`]: one soma per this many pixels.
pub const PIXELS_PER_NEURON: usize = 300;

/// Largest frame (in pixels) the simulator accepts; protects against absurd allocations.
pub const MAX_FRAME_PIXELS: usize = 1 << 26;

/// Errors raised when a configuration cannot be simulated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    /// A size (frames, height or width) is zero.
    #[error("`{name}` must be at least 1 (got 0)")]
    ZeroSize {
        /// The offending field.
        name: &'static str,
    },
    /// The frame is larger than [`MAX_FRAME_PIXELS`].
    #[error(
        "frame of {height}x{width} pixels is larger than the supported {MAX_FRAME_PIXELS} pixels"
    )]
    FrameTooLarge {
        /// Frame height in pixels.
        height: usize,
        /// Frame width in pixels.
        width: usize,
    },
    /// A parameter is NaN, infinite or outside its allowed range.
    #[error("`{name}` = {value} is invalid: {requirement}")]
    InvalidParameter {
        /// The offending field.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy.
        requirement: &'static str,
    },
}

/// Parameters of a simulated two-photon calcium movie.
///
/// Fluorescence is modelled in arbitrary "fluorescence units" (a resting soma is about 1, see
/// below) and converted to expected photon counts per pixel per frame with
/// [`photons_per_unit`](Self::photons_per_unit). The *clean* movie is that expectation, the
/// *noisy* movie a Poisson draw of it (plus optional Gaussian read noise), so both are in photon
/// units: non-negative, and for the defaults well inside the `u16`/`i16` range.
///
/// Fields missing from a serialized config take their [`Default`] values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwoPhotonConfig {
    /// Number of frames in the movie.
    pub frames: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Frame width in pixels.
    pub width: usize,
    /// Number of somata. The default follows [`Self::neurons_for_area`] (one per 300 px²,
    /// roughly the density of layer 2/3 somata in a 2P field of view); 0 gives a movie of
    /// background only, useful to check a denoiser does not hallucinate cells.
    pub neurons: usize,
    /// Imaging rate in frames per second (30 Hz, typical resonant-scanner 2P).
    pub frame_rate_hz: f32,
    /// Mean spike rate per neuron in spikes per second. Rates vary across neurons (log-normal,
    /// a few neurons are much more active than most) and spikes arrive in short bursts.
    pub spike_rate_hz: f32,
    /// Rise time constant of the calcium indicator, seconds (GCaMP6f-like: 0.05 s).
    pub indicator_rise_s: f32,
    /// Decay time constant of the calcium indicator, seconds (GCaMP6f-like: 0.7 s).
    pub indicator_decay_s: f32,
    /// Expected photons per pixel per frame for one fluorescence unit. Low values give very noisy
    /// movies: the default 4 puts a resting soma pixel at ≈6 photons and background pixels at
    /// ≈2–3, a single-pixel SNR of about 1.3–2.5, like the paper's raw Ai93 data.
    pub photons_per_unit: f32,
    /// Spatially uniform baseline fluorescence (autofluorescence, PMT offset), in fluorescence
    /// units, at the centre of the field of view; it falls off by 20 % towards the corners
    /// (illumination vignetting).
    pub baseline: f32,
    /// Mean neuropil fluorescence in fluorescence units: a smooth, slowly fluctuating
    /// background that also follows the population activity.
    pub neuropil: f32,
    /// Typical rigid displacement of the field of view in pixels (slow drift plus frame-to-frame
    /// jitter, sub-pixel, bilinear resampling). 0 disables motion.
    pub motion_px: f32,
    /// Standard deviation of additive Gaussian read noise in photons (0 disables it). The
    /// noisy movie is clamped at 0 when read noise is on.
    pub read_noise: f32,
    /// Seed of every random choice; the movie is a pure function of the config.
    pub seed: u64,
}

impl TwoPhotonConfig {
    /// The default number of somata for a field of view: one per [`PIXELS_PER_NEURON`] pixels,
    /// at least one.
    pub fn neurons_for_area(height: usize, width: usize) -> usize {
        (height.saturating_mul(width) / PIXELS_PER_NEURON).max(1)
    }

    /// The default config resized to `frames` × `height` × `width`, with the neuron count
    /// scaled to the new area.
    pub fn with_size(frames: usize, height: usize, width: usize) -> Self {
        Self {
            frames,
            height,
            width,
            neurons: Self::neurons_for_area(height, width),
            ..Self::default()
        }
    }

    /// Number of pixels in one frame.
    pub fn frame_pixels(&self) -> usize {
        self.height * self.width
    }

    /// Checks that the config can be simulated.
    pub fn validate(&self) -> Result<(), SimError> {
        for (name, value) in [
            ("frames", self.frames),
            ("height", self.height),
            ("width", self.width),
        ] {
            if value == 0 {
                return Err(SimError::ZeroSize { name });
            }
        }
        if self
            .height
            .checked_mul(self.width)
            .is_none_or(|pixels| pixels > MAX_FRAME_PIXELS)
        {
            return Err(SimError::FrameTooLarge {
                height: self.height,
                width: self.width,
            });
        }
        let positive = "must be finite and > 0";
        let non_negative = "must be finite and >= 0";
        let checks: [(&'static str, f32, bool, &'static str); 9] = [
            ("frame_rate_hz", self.frame_rate_hz, true, positive),
            ("spike_rate_hz", self.spike_rate_hz, false, non_negative),
            ("indicator_rise_s", self.indicator_rise_s, true, positive),
            ("indicator_decay_s", self.indicator_decay_s, true, positive),
            ("photons_per_unit", self.photons_per_unit, true, positive),
            ("baseline", self.baseline, false, non_negative),
            ("neuropil", self.neuropil, false, non_negative),
            ("motion_px", self.motion_px, false, non_negative),
            ("read_noise", self.read_noise, false, non_negative),
        ];
        for (name, value, strictly_positive, requirement) in checks {
            let ok = value.is_finite()
                && if strictly_positive {
                    value > 0.0
                } else {
                    value >= 0.0
                };
            if !ok {
                return Err(SimError::InvalidParameter {
                    name,
                    value: f64::from(value),
                    requirement,
                });
            }
        }
        if self.indicator_rise_s >= self.indicator_decay_s {
            return Err(SimError::InvalidParameter {
                name: "indicator_rise_s",
                value: f64::from(self.indicator_rise_s),
                requirement: "must be smaller than indicator_decay_s",
            });
        }
        // Motion larger than a quarter of the frame would move most of the scene out of view.
        let smaller_side = self.height.min(self.width) as f32;
        if self.motion_px > smaller_side / 4.0 {
            return Err(SimError::InvalidParameter {
                name: "motion_px",
                value: f64::from(self.motion_px),
                requirement: "must be at most a quarter of the smaller frame side",
            });
        }
        Ok(())
    }
}

impl Default for TwoPhotonConfig {
    /// 1000 frames of 128×128 at 30 Hz, 54 neurons, GCaMP6f-like kinetics, ≈2 photons per
    /// background pixel per frame (very noisy, like raw 2P data), no motion.
    fn default() -> Self {
        Self {
            frames: 1000,
            height: 128,
            width: 128,
            neurons: Self::neurons_for_area(128, 128),
            frame_rate_hz: 30.0,
            spike_rate_hz: 0.5,
            indicator_rise_s: 0.05,
            indicator_decay_s: 0.7,
            photons_per_unit: 4.0,
            baseline: 0.25,
            neuropil: 0.35,
            motion_px: 0.0,
            read_noise: 0.0,
            seed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_scales_neurons() {
        let config = TwoPhotonConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.neurons, 54);
        assert_eq!(TwoPhotonConfig::with_size(10, 512, 512).neurons, 873);
    }

    #[test]
    fn rejects_bad_values() {
        let zero_height = TwoPhotonConfig {
            height: 0,
            ..TwoPhotonConfig::default()
        };
        assert_eq!(
            zero_height.validate(),
            Err(SimError::ZeroSize { name: "height" })
        );
        let nan_rate = TwoPhotonConfig {
            spike_rate_hz: f32::NAN,
            ..TwoPhotonConfig::default()
        };
        assert!(matches!(
            nan_rate.validate(),
            Err(SimError::InvalidParameter {
                name: "spike_rate_hz",
                ..
            })
        ));
        let slow_rise = TwoPhotonConfig {
            indicator_rise_s: 2.0,
            ..TwoPhotonConfig::default()
        };
        assert!(slow_rise.validate().is_err());
        let no_photons = TwoPhotonConfig {
            photons_per_unit: 0.0,
            ..TwoPhotonConfig::default()
        };
        assert!(no_photons.validate().is_err());
        let huge = TwoPhotonConfig {
            height: usize::MAX,
            width: 2,
            ..TwoPhotonConfig::default()
        };
        assert!(matches!(
            huge.validate(),
            Err(SimError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn partial_json_uses_defaults() {
        let config: TwoPhotonConfig =
            serde_json::from_str(r#"{"frames": 20, "seed": 5}"#).expect("valid json");
        assert_eq!(config.frames, 20);
        assert_eq!(config.seed, 5);
        assert_eq!(config.height, 128);
        assert!(serde_json::from_str::<TwoPhotonConfig>(r#"{"frmes": 20}"#).is_err());
    }
}
