//! Streaming quality metrics for fMRI (4D EPI) recordings, after Lecoq et al. 2021
//! (REFERENCE §7): temporal SNR in brain voxels before and after denoising, and, for
//! simulations, the error to the clean signal.
//!
//! # Input
//! [`FmriEvaluator::push`] takes the next volumes of the noisy recording (the denoiser's
//! input), the denoised output and, for simulations, the clean ground truth, in time order,
//! each volume `x` fastest then `y` then `z` (NIfTI order). Chunks may hold any number of
//! volumes; the total (`frames`) is announced in [`FmriEvalSettings`]. Clean volumes are given
//! with every push or with none (the first push decides).
//!
//! # tSNR (per voxel, each stream separately)
//! Over the *tSNR frames* `[edge_frames, frames − edge_frames)` (the paper drops 3 at each
//! end, where the denoiser sees a truncated window):
//! `tSNR = temporal mean / temporal std`, the std being the population std (ddof 0, divide
//! by the number of frames). A voxel with std 0 has an infinite tSNR (no noise at all).
//!
//! # Brain voxels
//! Voxels whose *noisy* temporal mean over the tSNR frames is strictly above the threshold
//! ([`BrainThreshold`]): an absolute value, or a fraction of the robust maximum of the noisy
//! temporal-mean image, its nearest-rank 99th percentile over all voxels. Every statistic
//! below runs over brain voxels only; a threshold that leaves none is an error.
//!
//! # Summaries
//! - `tsnr_noisy_median`, `tsnr_denoised_median`: medians over brain voxels, infinite values
//!   included (so `None` only when more than half the voxels are flat).
//! - `tsnr_ratio_of_medians`: denoised median / noisy median, the paper's figure.
//! - `tsnr_ratio_median`: median over brain voxels of the per-voxel ratio
//!   `tSNR denoised / tSNR noisy`, leaving out voxels with std 0 in either stream (counted
//!   in the report) and any non-finite ratio.
//! - With clean data ([`FmriErrorStats`]): MSE and MAE of the noisy and the denoised stream
//!   against clean over brain voxels × tSNR frames, their ratios noisy / denoised, and the
//!   clean stream's median tSNR (the ceiling a perfect denoiser would reach).
//!
//! JSON cannot hold infinities or NaN, so every value that can be infinite or undefined (a
//! ratio to a perfect denoiser, the median of mostly flat voxels) is an `Option`: `None`
//! (`null`) says so, and a note explains it.
//!
//! # Streaming and memory
//! Each voxel keeps running sums in `f64` (shifted by its first tSNR-frame value, see
//! `tsnr`): memory is O(voxels), never O(voxels × frames). The sums run voxel by voxel in
//! frame order, in parallel over blocks of voxels, so the report is identical however the
//! volumes are chunked and however many threads run.

mod tsnr;

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, check_streams};
use crate::snr::median;
use tsnr::{ShiftedMoments, nearest_rank_percentile, tsnr};

/// Frames dropped at each end of the recording for tSNR (the paper's 3).
pub const DEFAULT_EDGE_FRAMES: usize = 3;

/// Default brain threshold as a fraction of the robust maximum.
///
/// Without skull stripping, the threshold alone separates brain from background. In EPI
/// magnitude images the background (air: Rician noise) and Nyquist ghosts typically stay
/// below 10–15% of brain intensity, while grey and white matter lie within about a factor 2
/// of the brightest brain tissue that sets the 99th percentile. 0.3 sits between the two with
/// margin on both sides; it drops signal-dropout regions, whose tSNR says more about the
/// scanner than about the denoiser. FSL FEAT's 10% brain/background cut is meant to be
/// followed by brain extraction, hence the higher value here.
pub const DEFAULT_BRAIN_FRACTION: f64 = 0.3;

/// Percentile of the noisy temporal-mean image taken as its robust maximum.
pub const ROBUST_MAX_PERCENT: usize = 99;

/// Voxels per parallel task: large enough to amortise scheduling, small enough to balance.
const VOXELS_PER_TASK: usize = 4096;

/// Which voxels count as brain: those whose noisy temporal mean is strictly above the
/// threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrainThreshold {
    /// A fixed intensity, in the units of the noisy recording.
    Absolute(f64),
    /// A fraction (0 to 1) of the nearest-rank 99th percentile of the noisy temporal-mean
    /// image over all voxels.
    FractionOfRobustMax(f64),
}

impl Default for BrainThreshold {
    /// [`DEFAULT_BRAIN_FRACTION`] of the robust maximum.
    fn default() -> Self {
        Self::FractionOfRobustMax(DEFAULT_BRAIN_FRACTION)
    }
}

/// What [`FmriEvaluator`] measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FmriEvalSettings {
    /// Volume size `[x, y, z]`.
    pub shape: [usize; 3],
    /// Volumes (time points) that will be pushed.
    pub frames: usize,
    /// Frames left out of every statistic at each end.
    pub edge_frames: usize,
    /// Brain mask rule.
    pub brain_threshold: BrainThreshold,
}

impl FmriEvalSettings {
    /// Defaults: [`DEFAULT_EDGE_FRAMES`] at each end, [`BrainThreshold::default`].
    pub fn new(shape: [usize; 3], frames: usize) -> Self {
        Self {
            shape,
            frames,
            edge_frames: DEFAULT_EDGE_FRAMES,
            brain_threshold: BrainThreshold::default(),
        }
    }

    /// Voxels per volume (saturating; [`FmriEvaluator::new`] rejects overflow).
    pub fn voxels(&self) -> usize {
        self.shape
            .iter()
            .fold(1usize, |voxels, &side| voxels.saturating_mul(side))
    }

    /// The frames tSNR and errors run over, `[edge_frames, frames − edge_frames)` (empty if
    /// the recording is too short).
    pub fn tsnr_frames(&self) -> Range<usize> {
        let end = self.frames.saturating_sub(self.edge_frames);
        self.edge_frames.min(end)..end
    }

    fn validate(&self) -> Result<(), MetricsError> {
        let [x, y, z] = self.shape;
        let volume = x.checked_mul(y).and_then(|plane| plane.checked_mul(z));
        if x == 0 || y == 0 || z == 0 || volume.is_none() {
            return Err(MetricsError::InvalidDimensions(format!(
                "fMRI volume of {x}x{y}x{z}: every side must be at least 1 and the volume must \
                 fit in memory"
            )));
        }
        let invalid = |message: String| Err(MetricsError::InvalidFmriSettings(message));
        if self.tsnr_frames().len() < 2 {
            return invalid(format!(
                "{} frames with {} edge frames dropped at each end leave {} for tSNR; it needs \
                 at least 2 (frames > 2 x edge_frames + 1)",
                self.frames,
                self.edge_frames,
                self.tsnr_frames().len()
            ));
        }
        match self.brain_threshold {
            BrainThreshold::Absolute(value) if !value.is_finite() => invalid(format!(
                "absolute brain threshold must be finite, got {value}"
            )),
            BrainThreshold::FractionOfRobustMax(fraction) if !(0.0..=1.0).contains(&fraction) => {
                invalid(format!(
                    "brain threshold fraction must be between 0 and 1, got {fraction}"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Error of the noisy and denoised streams against clean, over brain voxels × tSNR frames.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FmriErrorStats {
    /// Mean squared error of the noisy stream.
    pub mse_noisy: f64,
    /// Mean squared error of the denoised stream.
    pub mse_denoised: f64,
    /// Mean absolute error of the noisy stream.
    pub mae_noisy: f64,
    /// Mean absolute error of the denoised stream.
    pub mae_denoised: f64,
    /// `mse_noisy / mse_denoised`; `None` when the denoised error is 0 (infinite reduction).
    pub l2_reduction: Option<f64>,
    /// `mae_noisy / mae_denoised`; `None` when the denoised error is 0.
    pub l1_reduction: Option<f64>,
    /// Median over brain voxels of the clean stream's tSNR (flat clean voxels count as
    /// infinite); `None` when that median is infinite.
    pub tsnr_clean_median: Option<f64>,
    /// Brain voxels whose clean series is flat (std 0).
    pub zero_std_voxels_clean: usize,
}

/// Result of an fMRI evaluation (see the [module docs](self) for every definition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FmriReport {
    /// The settings used.
    pub settings: FmriEvalSettings,
    /// Frames the statistics run over (`frames − 2 × edge_frames`).
    pub tsnr_frames: usize,
    /// Nearest-rank 99th percentile of the noisy temporal-mean image.
    pub robust_max: f64,
    /// The brain threshold applied to the noisy temporal mean.
    pub threshold: f64,
    /// Voxels above the threshold; every statistic runs over them.
    pub brain_voxels: usize,
    /// Median noisy tSNR over brain voxels.
    pub tsnr_noisy_median: Option<f64>,
    /// Median denoised tSNR over brain voxels.
    pub tsnr_denoised_median: Option<f64>,
    /// `tsnr_denoised_median / tsnr_noisy_median`: the paper's figure.
    pub tsnr_ratio_of_medians: Option<f64>,
    /// Median over brain voxels of the per-voxel `tSNR denoised / tSNR noisy`.
    pub tsnr_ratio_median: Option<f64>,
    /// Brain voxels the per-voxel ratio median uses.
    pub ratio_voxels: usize,
    /// Brain voxels whose noisy series is flat (std 0), left out of the ratio median.
    pub zero_std_voxels_noisy: usize,
    /// Brain voxels whose denoised series is flat, left out of the ratio median.
    pub zero_std_voxels_denoised: usize,
    /// Error against clean; `None` without clean data.
    pub error: Option<FmriErrorStats>,
    /// Human-readable remarks (definitions, exclusions, undefined values).
    pub notes: Vec<String>,
}

/// Running sums of one voxel of the noisy and denoised streams.
#[derive(Clone, Copy, Debug, Default)]
struct VoxelSums {
    noisy: ShiftedMoments,
    denoised: ShiftedMoments,
}

/// Running sums of one voxel that need the clean stream.
#[derive(Clone, Copy, Debug, Default)]
struct CleanVoxelSums {
    clean: ShiftedMoments,
    /// `Σ |noisy − clean|`, `Σ |denoised − clean|`.
    absolute_error: [f64; 2],
    /// `Σ (noisy − clean)²`, `Σ (denoised − clean)²`.
    squared_error: [f64; 2],
}

impl CleanVoxelSums {
    #[inline]
    fn add(&mut self, noisy: f32, denoised: f32, clean: f32, first: bool) {
        self.clean.add(clean, first);
        let truth = f64::from(clean);
        for (stream, estimate) in [noisy, denoised].into_iter().enumerate() {
            let error = f64::from(estimate) - truth;
            self.absolute_error[stream] += error.abs();
            self.squared_error[stream] += error * error;
        }
    }
}

/// Streaming tSNR and error evaluation of a denoised fMRI recording.
///
/// ```
/// use deepinterp_metrics::{BrainThreshold, FmriEvalSettings, FmriEvaluator};
/// let mut settings = FmriEvalSettings::new([2, 2, 1], 12);
/// settings.brain_threshold = BrainThreshold::Absolute(50.0);
/// // Every voxel: 100 ± 2 in the noisy stream, 100 ± 1 in the denoised one.
/// let noisy: Vec<f32> = (0..12 * 4).map(|i| [102.0, 98.0][i / 4 % 2]).collect();
/// let denoised: Vec<f32> = noisy.iter().map(|v| 100.0 + (v - 100.0) / 2.0).collect();
/// let mut evaluator = FmriEvaluator::new(settings)?;
/// evaluator.push(&noisy, &denoised, None, 12)?;
/// let report = evaluator.finish()?;
/// assert_eq!(report.brain_voxels, 4);
/// assert_eq!(report.tsnr_noisy_median, Some(50.0));
/// assert_eq!(report.tsnr_ratio_of_medians, Some(2.0));
/// # Ok::<(), deepinterp_metrics::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FmriEvaluator {
    settings: FmriEvalSettings,
    voxels: usize,
    received: usize,
    /// Whether clean volumes come with every push; set by the first push.
    with_clean: Option<bool>,
    sums: Vec<VoxelSums>,
    /// Allocated by the first push that brings clean volumes.
    clean_sums: Option<Vec<CleanVoxelSums>>,
}

impl FmriEvaluator {
    /// An evaluator for the recording `settings` describes; errors if a side is 0 or the
    /// recording is too short for tSNR (`frames ≤ 2 × edge_frames + 1`).
    pub fn new(settings: FmriEvalSettings) -> Result<Self, MetricsError> {
        settings.validate()?;
        let voxels = settings.voxels();
        Ok(Self {
            settings,
            voxels,
            received: 0,
            with_clean: None,
            sums: vec![VoxelSums::default(); voxels],
            clean_sums: None,
        })
    }

    /// Volumes pushed so far.
    pub fn frames_received(&self) -> usize {
        self.received
    }

    /// Feeds the next `count` volumes of each stream (`count × voxels` values, `x` fastest,
    /// NIfTI order), in time order; `clean` is `Some` for simulations, and must be `Some` in
    /// every push or in none. Nothing is consumed if any check fails.
    pub fn push(
        &mut self,
        noisy: &[f32],
        denoised: &[f32],
        clean: Option<&[f32]>,
        count: usize,
    ) -> Result<(), MetricsError> {
        let announced = self.settings.frames;
        if count > announced - self.received {
            return Err(MetricsError::TooManyFrames {
                announced,
                received: self.received,
                pushing: count,
            });
        }
        let clean_given = clean.is_some();
        match (self.with_clean, clean_given) {
            (Some(false), true) => {
                return Err(MetricsError::CleanVolumesMismatch(
                    "were given but earlier pushes had none",
                ));
            }
            (Some(true), false) => {
                return Err(MetricsError::CleanVolumesMismatch(
                    "are missing but earlier pushes had them",
                ));
            }
            _ => {}
        }
        // Checked: an absurd count must be an error, not a wrapped length that matches.
        let expected = count.checked_mul(self.voxels).ok_or_else(|| {
            MetricsError::InvalidDimensions(format!("{count} volumes of {} voxels", self.voxels))
        })?;
        let voxels = self.voxels;
        let [x_side, y_side, _] = self.settings.shape;
        check_streams(
            expected,
            (noisy, denoised, clean),
            |stream, actual| MetricsError::VolumeBufferLength {
                stream,
                actual,
                expected,
                count,
                shape: self.settings.shape,
            },
            |stream, position, value| {
                let voxel = position % voxels;
                MetricsError::NonFiniteVoxel {
                    stream,
                    frame: self.received + position / voxels,
                    voxel: [
                        voxel % x_side,
                        voxel / x_side % y_side,
                        voxel / (x_side * y_side),
                    ],
                    value,
                }
            },
        )?;

        self.with_clean = Some(clean_given);
        if clean_given && self.clean_sums.is_none() {
            self.clean_sums = Some(vec![CleanVoxelSums::default(); self.voxels]);
        }
        let window = self.settings.tsnr_frames();
        // (position in this push, whether it is the window's first frame) of the pushed
        // frames that fall in the tSNR window.
        let window_frames: Vec<(usize, bool)> = (self.received..self.received + count)
            .filter(|frame| window.contains(frame))
            .map(|frame| (frame - self.received, frame == window.start))
            .collect();
        if !window_frames.is_empty() {
            self.accumulate(noisy, denoised, clean, &window_frames);
        }
        self.received += count;
        Ok(())
    }

    /// Adds the given frames of this push to every voxel's sums, in parallel over blocks of
    /// voxels; each voxel still sees its frames in time order.
    fn accumulate(
        &mut self,
        noisy: &[f32],
        denoised: &[f32],
        clean: Option<&[f32]>,
        window_frames: &[(usize, bool)],
    ) {
        let voxels = self.voxels;
        let tasks = voxels.div_ceil(VOXELS_PER_TASK);
        let clean_blocks: Vec<Option<&mut [CleanVoxelSums]>> = match self.clean_sums.as_mut() {
            Some(clean_sums) => clean_sums.chunks_mut(VOXELS_PER_TASK).map(Some).collect(),
            None => (0..tasks).map(|_| None).collect(),
        };
        self.sums
            .par_chunks_mut(VOXELS_PER_TASK)
            .zip(clean_blocks)
            .enumerate()
            .for_each(|(task, (sums, mut clean_sums))| {
                let first_voxel = task * VOXELS_PER_TASK;
                for &(position, first) in window_frames {
                    let start = position * voxels + first_voxel;
                    let range = start..start + sums.len();
                    let noisy_block = &noisy[range.clone()];
                    let denoised_block = &denoised[range.clone()];
                    let values = sums.iter_mut().zip(noisy_block).zip(denoised_block);
                    for ((voxel, &noisy_value), &denoised_value) in values {
                        voxel.noisy.add(noisy_value, first);
                        voxel.denoised.add(denoised_value, first);
                    }
                    if let (Some(clean_sums), Some(clean)) = (clean_sums.as_deref_mut(), clean) {
                        let values = clean_sums
                            .iter_mut()
                            .zip(noisy_block)
                            .zip(denoised_block)
                            .zip(&clean[range]);
                        for (((voxel, &noisy_value), &denoised_value), &clean_value) in values {
                            voxel.add(noisy_value, denoised_value, clean_value, first);
                        }
                    }
                }
            });
    }

    /// Completes the evaluation; every announced volume must have been pushed, and some voxel
    /// must pass the brain threshold.
    pub fn finish(self) -> Result<FmriReport, MetricsError> {
        if self.received != self.settings.frames {
            return Err(MetricsError::MissingFrames {
                announced: self.settings.frames,
                received: self.received,
            });
        }
        let settings = self.settings;
        let tsnr_frames = settings.tsnr_frames().len();
        let stats: Vec<[(f64, f64); 2]> = self
            .sums
            .iter()
            .map(|voxel| {
                [
                    voxel.noisy.mean_and_std(tsnr_frames),
                    voxel.denoised.mean_and_std(tsnr_frames),
                ]
            })
            .collect();
        let noisy_means: Vec<f64> = stats.iter().map(|[(mean, _), _]| *mean).collect();
        let robust_max = nearest_rank_percentile(&noisy_means, ROBUST_MAX_PERCENT);
        let threshold = match settings.brain_threshold {
            BrainThreshold::Absolute(value) => value,
            BrainThreshold::FractionOfRobustMax(fraction) => fraction * robust_max,
        };
        let brain: Vec<usize> = (0..self.voxels)
            .filter(|&voxel| noisy_means[voxel] > threshold)
            .collect();
        if brain.is_empty() {
            return Err(MetricsError::NoBrainVoxels {
                threshold,
                robust_max,
            });
        }

        let (mut noisy_tsnr, mut denoised_tsnr) = (Vec::new(), Vec::new());
        let mut ratios = Vec::new();
        let (mut zero_std_noisy, mut zero_std_denoised) = (0, 0);
        for &voxel in &brain {
            let [(noisy_mean, noisy_std), (denoised_mean, denoised_std)] = stats[voxel];
            zero_std_noisy += usize::from(noisy_std == 0.0);
            zero_std_denoised += usize::from(denoised_std == 0.0);
            let (noisy, denoised) = (
                tsnr(noisy_mean, noisy_std),
                tsnr(denoised_mean, denoised_std),
            );
            noisy_tsnr.push(noisy);
            denoised_tsnr.push(denoised);
            let ratio = denoised / noisy;
            if noisy_std > 0.0 && denoised_std > 0.0 && ratio.is_finite() {
                ratios.push(ratio);
            }
        }
        let noisy_median = median(&mut noisy_tsnr);
        let denoised_median = median(&mut denoised_tsnr);
        let ratio_voxels = ratios.len();

        let window = settings.tsnr_frames();
        let threshold_rule = match settings.brain_threshold {
            BrainThreshold::Absolute(_) => "an absolute threshold".to_owned(),
            BrainThreshold::FractionOfRobustMax(fraction) => format!(
                "{fraction} x the {ROBUST_MAX_PERCENT}th percentile (nearest rank) of that \
                 image, {robust_max}"
            ),
        };
        let mut notes = vec![
            format!(
                "tSNR per voxel = temporal mean / temporal std (population std, ddof 0) over \
                 frames [{}, {}) ({tsnr_frames} frames; {} dropped at each end); std 0 gives an \
                 infinite tSNR",
                window.start, window.end, settings.edge_frames
            ),
            format!(
                "brain voxels: noisy temporal mean > {threshold} ({threshold_rule}); {} of {} \
                 voxels",
                brain.len(),
                self.voxels
            ),
        ];
        if zero_std_noisy + zero_std_denoised > 0 {
            notes.push(format!(
                "{zero_std_noisy} noisy and {zero_std_denoised} denoised brain voxels have std 0 \
                 (infinite tSNR): counted in the medians, left out of the per-voxel ratio median"
            ));
        }
        if !(noisy_median.is_finite() && denoised_median.is_finite()) {
            notes.push(
                "a tSNR median is infinite (most brain voxels are flat): reported as null"
                    .to_owned(),
            );
        }

        let error = self.clean_sums.map(|clean_sums| {
            let stats = error_stats(&clean_sums, &brain, tsnr_frames);
            if stats.mse_denoised == 0.0 {
                notes.push(
                    "denoised equals clean exactly: error reductions are infinite (null)"
                        .to_owned(),
                );
            }
            stats
        });
        if error.is_none() {
            notes.push("no clean data: error statistics are not available".to_owned());
        }

        Ok(FmriReport {
            tsnr_frames,
            robust_max,
            threshold,
            brain_voxels: brain.len(),
            tsnr_noisy_median: finite(noisy_median),
            tsnr_denoised_median: finite(denoised_median),
            tsnr_ratio_of_medians: finite(denoised_median / noisy_median),
            tsnr_ratio_median: finite(median(&mut ratios)),
            ratio_voxels,
            zero_std_voxels_noisy: zero_std_noisy,
            zero_std_voxels_denoised: zero_std_denoised,
            error,
            notes,
            settings,
        })
    }
}

/// Error statistics and clean tSNR over the `brain` voxels, `frames` frames each.
fn error_stats(clean_sums: &[CleanVoxelSums], brain: &[usize], frames: usize) -> FmriErrorStats {
    let (mut absolute, mut squared) = ([0.0f64; 2], [0.0f64; 2]);
    let mut clean_tsnr = Vec::with_capacity(brain.len());
    let mut zero_std_clean = 0;
    for &voxel in brain {
        let sums = &clean_sums[voxel];
        for stream in 0..2 {
            absolute[stream] += sums.absolute_error[stream];
            squared[stream] += sums.squared_error[stream];
        }
        let (mean, std) = sums.clean.mean_and_std(frames);
        zero_std_clean += usize::from(std == 0.0);
        clean_tsnr.push(tsnr(mean, std));
    }
    let values = (brain.len() * frames) as f64;
    let [mae_noisy, mae_denoised] = absolute.map(|sum| sum / values);
    let [mse_noisy, mse_denoised] = squared.map(|sum| sum / values);
    FmriErrorStats {
        mse_noisy,
        mse_denoised,
        mae_noisy,
        mae_denoised,
        l2_reduction: finite(mse_noisy / mse_denoised),
        l1_reduction: finite(mae_noisy / mae_denoised),
        tsnr_clean_median: finite(median(&mut clean_tsnr)),
        zero_std_voxels_clean: zero_std_clean,
    }
}

/// `Some(value)` if it is finite: JSON has no infinity or NaN.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmri_tsnr_frames_drop_edges_and_never_underflow() {
        let settings = FmriEvalSettings::new([2, 3, 4], 20);
        assert_eq!(settings.voxels(), 24);
        assert_eq!(settings.tsnr_frames(), 3..17);
        assert!(FmriEvalSettings::new([1, 1, 1], 5).tsnr_frames().is_empty());
        let overflowing = FmriEvalSettings::new([usize::MAX, 2, 1], 20);
        assert!(matches!(
            FmriEvaluator::new(overflowing),
            Err(MetricsError::InvalidDimensions(_))
        ));
    }
}
