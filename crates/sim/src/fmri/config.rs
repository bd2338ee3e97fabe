//! Parameters of a simulated fMRI run ([`FmriConfig`]), their defaults and validation.

use serde::{Deserialize, Serialize};

use crate::config::SimError;

/// Fewest volumes in a run: tSNR is measured with 3 volumes dropped at each end, and a
/// DeepInterpolation fMRI sample spans 5 volumes, so shorter runs have nothing to measure.
pub const MIN_FMRI_FRAMES: usize = 10;

/// Largest volume (in voxels) the simulator accepts; protects against absurd allocations.
pub const MAX_FMRI_VOXELS: usize = 1 << 26;

/// Longest accepted repetition time, seconds: beyond it the haemodynamic response (~30 s
/// long) is sampled by only two or three volumes.
pub const MAX_REPETITION_TIME_S: f64 = 10.0;

/// Most active regions a run may have.
pub const MAX_ACTIVE_REGIONS: usize = 32;

/// Largest accepted activation amplitude, percent of baseline (real BOLD responses stay
/// below ~5 %; the bound keeps intensities well inside the int16 range).
const MAX_ACTIVATION_PERCENT: f64 = 20.0;

/// Largest accepted spontaneous-fluctuation and drift amplitudes, percent of baseline.
const MAX_SLOW_SIGNAL_PERCENT: f64 = 10.0;

/// Largest accepted coil-sensitivity modulation, percent of baseline.
const MAX_BIAS_FIELD_PERCENT: f64 = 50.0;

/// Highest accepted mean event rate, Hz: one event every two seconds already overlaps the
/// ~6 s wide responses heavily.
const MAX_EVENT_RATE_HZ: f64 = 0.5;

/// Parameters of a simulated gradient-echo EPI fMRI run with ground truth.
///
/// Intensities are scanner units: the noise-free baseline is ~1000 in CSF, ~800 in grey and
/// ~650 in white matter (T2*-weighted contrast), modulated by a smooth coil-sensitivity field,
/// and ~10 outside the head. All spatial sizes are in voxels; [`voxel_size_mm`](Self::voxel_size_mm)
/// only describes the grid (for file headers). Fields missing from a serialized config take
/// their [`Default`] values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FmriConfig {
    /// Voxels along x, y and z.
    pub shape: [usize; 3],
    /// Number of volumes (time points).
    pub frames: usize,
    /// Voxel size along x, y and z, mm (grid metadata, e.g. a NIfTI `pixdim`).
    pub voxel_size_mm: [f64; 3],
    /// Time between volumes, seconds.
    pub repetition_time_s: f64,
    /// Target temporal SNR of the noisy run: the thermal noise's standard deviation σ (one for
    /// the whole volume) is the median noise-free baseline of the grey- and white-matter
    /// voxels divided by `tsnr`. The tSNR measured on the noisy data (temporal mean over
    /// temporal standard deviation, per voxel) comes out a little lower, because the clean
    /// signal's own fluctuations (drift, spontaneous and task signals) add to σ: with the
    /// defaults by ~1 % at 30 and ~4 % at 60. Realistic 3T values are 20–80.
    pub tsnr: f64,
    /// Number of task-activated regions (blobs of 3–6 voxels radius, less in small volumes,
    /// centred in grey matter). The first half (rounded up) follow the block design, the
    /// others random events. Zero gives a run without task responses.
    pub active_regions: usize,
    /// `(min, max)` amplitude of a region's response, percent of baseline: the plateau of a
    /// block, the peak of an isolated event. Each region draws uniformly from it.
    pub activation_percent: (f64, f64),
    /// Period of the block design, seconds: rest for the first half, task for the second.
    pub block_period_s: f64,
    /// Mean rate of the (Poisson) events of event-related regions, Hz. Each such region has
    /// its own events.
    pub event_rate_hz: f64,
    /// Root-mean-square amplitude of the spontaneous fluctuations (0.01–0.1 Hz, spatially
    /// smooth) in grey matter, percent of baseline; white matter gets a fifth of it, CSF none.
    /// The default 0.35 gives swings of about ±0.5–1 %, weaker than the task responses.
    pub spontaneous_percent: f64,
    /// Typical change of the slow scanner drift over the whole run, percent of baseline (a
    /// linear trend plus two slow cosines, varying smoothly across the head).
    pub drift_percent: f64,
    /// Largest deviation of the coil-sensitivity (bias) field from 1, percent.
    pub bias_field_percent: f64,
    /// Seed of every random choice; the run is a pure function of the config.
    pub seed: u64,
}

impl FmriConfig {
    /// The default config resized to `shape` voxels and `frames` volumes.
    pub fn new(shape: [usize; 3], frames: usize) -> Self {
        Self {
            shape,
            frames,
            voxel_size_mm: [3.0, 3.0, 3.0],
            repetition_time_s: 2.0,
            tsnr: 30.0,
            active_regions: 4,
            activation_percent: (1.0, 4.0),
            block_period_s: 40.0,
            event_rate_hz: 0.05,
            spontaneous_percent: 0.35,
            drift_percent: 1.0,
            bias_field_percent: 15.0,
            seed: 0,
        }
    }

    /// Voxels in one volume.
    pub fn volume_voxels(&self) -> usize {
        self.shape.iter().product()
    }

    /// Length of the run, seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames as f64 * self.repetition_time_s
    }

    /// Checks that the config can be simulated.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.shape.contains(&0) {
            return Err(SimError::ZeroSize { name: "shape" });
        }
        let voxels = self
            .shape
            .iter()
            .try_fold(1usize, |product, &side| product.checked_mul(side));
        if voxels.is_none_or(|voxels| voxels > MAX_FMRI_VOXELS) {
            let approximate: f64 = self.shape.iter().map(|&side| side as f64).product();
            return Err(invalid(
                "shape",
                approximate,
                "must hold at most 2^26 voxels per volume",
            ));
        }
        if self.frames == 0 {
            return Err(SimError::ZeroSize { name: "frames" });
        }
        if self.frames < MIN_FMRI_FRAMES {
            return Err(invalid(
                "frames",
                self.frames as f64,
                "must be at least 10 volumes",
            ));
        }
        if let Some(&size) = self
            .voxel_size_mm
            .iter()
            .find(|size| !(size.is_finite() && **size > 0.0))
        {
            return Err(invalid("voxel_size_mm", size, "must be finite and > 0"));
        }
        let tr = self.repetition_time_s;
        if !(tr.is_finite() && tr > 0.0 && tr <= MAX_REPETITION_TIME_S) {
            return Err(invalid(
                "repetition_time_s",
                tr,
                "must satisfy 0 < TR <= 10 s",
            ));
        }
        if !(self.tsnr.is_finite() && self.tsnr > 0.0) {
            return Err(invalid("tsnr", self.tsnr, "must be finite and > 0"));
        }
        if self.active_regions > MAX_ACTIVE_REGIONS {
            return Err(invalid(
                "active_regions",
                self.active_regions as f64,
                "must be at most 32",
            ));
        }
        let (min, max) = self.activation_percent;
        if !(min.is_finite() && min >= 0.0) {
            return Err(invalid(
                "activation_percent",
                min,
                "must satisfy 0 <= min <= max <= 20",
            ));
        }
        if !(max.is_finite() && max >= min && max <= MAX_ACTIVATION_PERCENT) {
            return Err(invalid(
                "activation_percent",
                max,
                "must satisfy 0 <= min <= max <= 20",
            ));
        }
        let period = self.block_period_s;
        if !(period.is_finite() && period >= 2.0 * tr) {
            return Err(invalid(
                "block_period_s",
                period,
                "must be finite and at least two repetition times",
            ));
        }
        let rate = self.event_rate_hz;
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_EVENT_RATE_HZ) {
            return Err(invalid(
                "event_rate_hz",
                rate,
                "must satisfy 0 < rate <= 0.5 Hz",
            ));
        }
        for (name, value, ceiling, requirement) in [
            (
                "spontaneous_percent",
                self.spontaneous_percent,
                MAX_SLOW_SIGNAL_PERCENT,
                "must satisfy 0 <= value <= 10",
            ),
            (
                "drift_percent",
                self.drift_percent,
                MAX_SLOW_SIGNAL_PERCENT,
                "must satisfy 0 <= value <= 10",
            ),
            (
                "bias_field_percent",
                self.bias_field_percent,
                MAX_BIAS_FIELD_PERCENT,
                "must satisfy 0 <= value <= 50",
            ),
        ] {
            if !(value.is_finite() && value >= 0.0 && value <= ceiling) {
                return Err(invalid(name, value, requirement));
            }
        }
        Ok(())
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

impl Default for FmriConfig {
    /// 200 volumes of 64 × 64 × 32 voxels of 3 mm at TR 2 s, tSNR 30, four active regions
    /// (two 20 s on / 20 s off blocks, two event-related at 0.05 Hz) of 1–4 % signal change.
    fn default() -> Self {
        Self::new([64, 64, 32], 200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmri_default_config_is_valid() {
        let config = FmriConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.volume_voxels(), 64 * 64 * 32);
        assert_eq!(config.duration_s(), 400.0);
    }

    #[test]
    fn fmri_oversized_volume_is_rejected_without_overflow() {
        let config = FmriConfig::new([usize::MAX, 2, 2], 20);
        assert!(matches!(
            config.validate(),
            Err(SimError::InvalidParameter { name: "shape", .. })
        ));
    }
}
