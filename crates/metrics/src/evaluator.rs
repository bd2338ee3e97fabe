//! The streaming [`Evaluator`] and its [`EvalReport`]: errors against the clean movie (noisy
//! input, denoised output, and the Gaussian-filter baselines) and per-pixel SNR of the noisy
//! and denoised movies.
//!
//! Frames are pushed in order, in chunks of any size; the report is identical however the
//! movie is chunked (all sums run frame by frame, in frame order, in `f64`). Memory is bounded
//! independently of movie length: error sums are scalars, the 3D Gaussian keeps a ring of
//! 19 frames (plus 10 clean frames waiting for their filtered counterparts), and SNR keeps at
//! most [`crate::TRACE_VALUE_BUDGET`] values per movie (see [`crate::snr`] for the rule).

use serde::Serialize;

use crate::baselines::{BestGaussian, GaussianRange};
use crate::error::MetricsError;
use crate::gaussian::{BASELINE_SIGMA, SpatioTemporalGaussian, kernel_radius};
use crate::residual::{ResidualAccumulator, ResidualStats};
use crate::snr::{SNR_BLOCK_FRAMES, SnrAccumulator, SnrSampling, median};

/// Error of one movie against the clean movie, over every pixel of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ErrorStats {
    /// Mean absolute error (L1).
    pub mae: f64,
    /// Mean squared error (L2).
    pub mse: f64,
    /// Root mean squared error.
    pub rmse: f64,
}

/// Summary of per-pixel SNR (paper definition, see [`crate::snr`]) over the sampled pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SnrStats {
    /// Median over pixels with a finite SNR (NaN, serialized as `null`, if there are none).
    pub median: f64,
    /// Mean over pixels with a finite SNR.
    pub mean: f64,
    /// Pixels with a finite SNR that the statistics use.
    pub pixels: usize,
    /// Sampled pixels whose SNR is not finite (flat traces: zero noise), left out.
    pub excluded_pixels: usize,
    /// Trace medians use every this-many-th frame (1 = exact).
    pub median_frame_stride: usize,
}

/// Result of an evaluation. Error fields are `None` when no clean movie was given.
///
/// Reductions are ratios `error(baseline) / error(denoised)` (> 1 means the denoiser is
/// better). They are `None` when undefined: no clean movie, or a denoised error of exactly 0
/// (a perfect denoiser, an infinite reduction that JSON cannot hold; a note says so).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Frames evaluated.
    pub frames: usize,
    /// Frame height.
    pub height: usize,
    /// Frame width.
    pub width: usize,
    /// Noisy input against clean.
    pub noisy_vs_clean: Option<ErrorStats>,
    /// Denoised output against clean.
    pub denoised_vs_clean: Option<ErrorStats>,
    /// Spatiotemporal (3D) Gaussian filter of the noisy movie against clean.
    pub gaussian_vs_clean: Option<ErrorStats>,
    /// Spatial-only (2D, frame by frame) Gaussian filter of the noisy movie against clean.
    pub gaussian2d_vs_clean: Option<ErrorStats>,
    /// The best of a range of spatial and spatiotemporal Gaussian filters (see
    /// [`crate::baselines`]) against clean.
    pub best_gaussian_vs_clean: Option<BestGaussian>,
    /// `mse(best Gaussian) / mse(denoised)`.
    pub l2_reduction_vs_best_gaussian: Option<f64>,
    /// What denoising removed (`noisy − denoised`): a residual with structure means signal
    /// was removed (see [`crate::residual`]).
    pub residual: Option<ResidualStats>,
    /// `mse(noisy) / mse(denoised)`.
    pub l2_reduction_vs_noisy: Option<f64>,
    /// `mse(3D Gaussian) / mse(denoised)`.
    pub l2_reduction_vs_gaussian: Option<f64>,
    /// `mse(2D Gaussian) / mse(denoised)`.
    pub l2_reduction_vs_gaussian2d: Option<f64>,
    /// `mae(noisy) / mae(denoised)`.
    pub l1_reduction_vs_noisy: Option<f64>,
    /// `mae(3D Gaussian) / mae(denoised)`.
    pub l1_reduction_vs_gaussian: Option<f64>,
    /// Pixel SNR of the noisy movie.
    pub snr_noisy: SnrStats,
    /// Pixel SNR of the denoised movie.
    pub snr_denoised: SnrStats,
    /// Median over pixels of `snr_denoised / snr_noisy` (pixel by pixel; pixels where either
    /// SNR is not finite or the noisy SNR is not positive are left out). NaN (`null`) if none.
    pub snr_gain_median: f64,
    /// `snr_denoised.median / snr_noisy.median` (ratio of medians), for comparison.
    pub snr_gain_of_medians: f64,
    /// σ of the Gaussian baselines, in pixels (2D and 3D) and frames (3D).
    pub gaussian_sigma: f64,
    /// Frames per block for the SNR noise estimate.
    pub snr_block_frames: usize,
    /// Human-readable remarks (definitions, sampling, undefined values).
    pub notes: Vec<String>,
}

/// Running sums of absolute and squared error.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ErrorSums {
    absolute: f64,
    squared: f64,
    values: u64,
}

impl ErrorSums {
    /// Adds one frame; per-frame partial sums keep the total independent of chunking.
    pub(crate) fn add_frame(&mut self, estimate: &[f32], clean: &[f32]) {
        let mut absolute = 0.0f64;
        let mut squared = 0.0f64;
        for (&value, &truth) in estimate.iter().zip(clean) {
            let error = f64::from(value) - f64::from(truth);
            absolute += error.abs();
            squared += error * error;
        }
        self.absolute += absolute;
        self.squared += squared;
        self.values += estimate.len() as u64;
    }

    pub(crate) fn stats(&self) -> Option<ErrorStats> {
        if self.values == 0 {
            return None;
        }
        let count = self.values as f64;
        let mse = self.squared / count;
        Some(ErrorStats {
            mae: self.absolute / count,
            mse,
            rmse: mse.sqrt(),
        })
    }
}

/// Everything that needs the clean movie.
#[derive(Clone, Debug)]
struct CleanComparison {
    noisy: ErrorSums,
    denoised: ErrorSums,
    gaussian2d: ErrorSums,
    gaussian3d: ErrorSums,
    filter: SpatioTemporalGaussian,
    range: GaussianRange,
    /// Clean frames waiting for their 3D-filtered counterpart; frame `j` in slot
    /// `j % pending_clean.len()`.
    pending_clean: Vec<Vec<f32>>,
    filtered: Vec<f32>,
}

impl CleanComparison {
    fn new(height: usize, width: usize) -> Self {
        let frame_pixels = height * width;
        Self {
            noisy: ErrorSums::default(),
            denoised: ErrorSums::default(),
            gaussian2d: ErrorSums::default(),
            gaussian3d: ErrorSums::default(),
            filter: SpatioTemporalGaussian::new(height, width, BASELINE_SIGMA),
            range: GaussianRange::new(height, width),
            pending_clean: vec![vec![0.0; frame_pixels]; kernel_radius(BASELINE_SIGMA) + 1],
            filtered: vec![0.0; frame_pixels],
        }
    }

    fn push_frame(&mut self, index: usize, noisy: &[f32], denoised: &[f32], clean: &[f32]) {
        self.noisy.add_frame(noisy, clean);
        self.denoised.add_frame(denoised, clean);
        self.range.push(noisy, clean);
        let slots = self.pending_clean.len();
        self.pending_clean[index % slots].copy_from_slice(clean);
        let ready = self.filter.push(noisy, &mut self.filtered);
        if let Some(spatial) = self.filter.latest_spatial() {
            self.gaussian2d.add_frame(spatial, clean);
        }
        if let Some(ready) = ready {
            self.gaussian3d
                .add_frame(&self.filtered, &self.pending_clean[ready % slots]);
        }
    }

    fn finish(&mut self) {
        let slots = self.pending_clean.len();
        while let Some(ready) = self.filter.flush(&mut self.filtered) {
            self.gaussian3d
                .add_frame(&self.filtered, &self.pending_clean[ready % slots]);
        }
    }
}

/// Streaming evaluation of a denoised movie against its noisy input and, optionally, the
/// clean ground truth.
///
/// ```
/// use deepinterp_metrics::Evaluator;
/// let (height, width, frames) = (4, 5, 3);
/// let clean = vec![10.0f32; frames * height * width];
/// let noisy: Vec<f32> = clean.iter().map(|v| v + 2.0).collect();
/// let mut evaluator = Evaluator::new(height, width, frames, true);
/// evaluator.push(&noisy, &clean, Some(&clean), frames)?;
/// let report = evaluator.finish()?;
/// assert_eq!(report.noisy_vs_clean.map(|e| e.mse), Some(4.0));
/// # Ok::<(), deepinterp_metrics::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Evaluator {
    height: usize,
    width: usize,
    frames: usize,
    received: usize,
    snr_noisy: SnrAccumulator,
    snr_denoised: SnrAccumulator,
    residual: ResidualAccumulator,
    comparison: Option<CleanComparison>,
}

impl Evaluator {
    /// An evaluator for `frames` frames of `height × width`; `with_clean` says whether clean
    /// frames will be pushed too.
    ///
    /// Zero sizes are accepted here and reported by [`push`](Self::push) /
    /// [`finish`](Self::finish).
    pub fn new(height: usize, width: usize, frames: usize, with_clean: bool) -> Self {
        let sampling = SnrSampling::for_movie(height, width, frames);
        let frame_ok = height > 0 && width > 0;
        Self {
            height,
            width,
            frames,
            received: 0,
            snr_noisy: SnrAccumulator::new(sampling.clone()),
            snr_denoised: SnrAccumulator::new(sampling),
            residual: ResidualAccumulator::new(height, width),
            comparison: (with_clean && frame_ok).then(|| CleanComparison::new(height, width)),
        }
    }

    /// Frames pushed so far.
    pub fn frames_received(&self) -> usize {
        self.received
    }

    fn check_dimensions(&self) -> Result<(), MetricsError> {
        if self.height == 0 || self.width == 0 || self.frames == 0 {
            return Err(MetricsError::InvalidDimensions(format!(
                "{} frames of {}x{}: every size must be at least 1",
                self.frames, self.height, self.width
            )));
        }
        Ok(())
    }

    /// Feeds the next `count` frames: `noisy` (the denoiser's input), `denoised` (its output)
    /// and, if the evaluator was built `with_clean`, `clean`; each `count × height × width`
    /// values. Nothing is consumed if any check fails.
    pub fn push(
        &mut self,
        noisy: &[f32],
        denoised: &[f32],
        clean: Option<&[f32]>,
        count: usize,
    ) -> Result<(), MetricsError> {
        self.check_dimensions()?;
        if self.received + count > self.frames {
            return Err(MetricsError::TooManyFrames {
                announced: self.frames,
                received: self.received,
                pushing: count,
            });
        }
        if let Some(reason) =
            crate::error::clean_presence_mismatch(clean.is_some(), self.comparison.is_some())
        {
            return Err(MetricsError::CleanMismatch(reason));
        }
        let frame_pixels = self.height * self.width;
        let expected = count * frame_pixels;
        let buffers = [
            ("noisy", Some(noisy)),
            ("denoised", Some(denoised)),
            ("clean", clean),
        ];
        for (name, buffer) in buffers {
            let Some(buffer) = buffer else { continue };
            if buffer.len() != expected {
                return Err(MetricsError::BufferLength {
                    buffer: name,
                    actual: buffer.len(),
                    expected,
                    count,
                    height: self.height,
                    width: self.width,
                });
            }
            if let Some(position) = buffer.iter().position(|value| !value.is_finite()) {
                return Err(MetricsError::NonFinite {
                    buffer: name,
                    frame: self.received + position / frame_pixels,
                    pixel: position % frame_pixels,
                });
            }
        }

        for frame in 0..count {
            let range = frame * frame_pixels..(frame + 1) * frame_pixels;
            let noisy_frame = &noisy[range.clone()];
            let denoised_frame = &denoised[range.clone()];
            self.snr_noisy.push_frame(noisy_frame);
            self.snr_denoised.push_frame(denoised_frame);
            let clean_frame = clean.map(|clean| &clean[range]);
            self.residual
                .push_frame(noisy_frame, denoised_frame, clean_frame);
            if let (Some(comparison), Some(clean)) = (self.comparison.as_mut(), clean_frame) {
                comparison.push_frame(self.received, noisy_frame, denoised_frame, clean);
            }
            self.received += 1;
        }
        Ok(())
    }

    /// Completes the evaluation; every announced frame must have been pushed.
    pub fn finish(mut self) -> Result<EvalReport, MetricsError> {
        self.check_dimensions()?;
        if self.received != self.frames {
            return Err(MetricsError::MissingFrames {
                announced: self.frames,
                received: self.received,
            });
        }
        let mut notes = vec![
            "pixel SNR = median(trace) / median over consecutive 100-frame blocks of std(block) \
             (population std; trailing partial block ignored)"
                .to_owned(),
            format!(
                "Gaussian baselines filter the noisy movie with sigma = {BASELINE_SIGMA} (pixels; \
                 and frames for the 3D one), truncated at 3 sigma, normalised at the borders"
            ),
            "snr_gain_median is the median over pixels of the per-pixel ratio \
             snr_denoised / snr_noisy"
                .to_owned(),
        ];
        if self.frames < SNR_BLOCK_FRAMES {
            notes.push(format!(
                "movie shorter than {SNR_BLOCK_FRAMES} frames: SNR noise is the std of a single \
                 block of all {} frames",
                self.frames
            ));
        }
        let sampled = self.snr_noisy.sampled_pixels();
        let stride = self.snr_noisy.frame_stride();
        if sampled < self.height * self.width || stride > 1 {
            notes.push(format!(
                "SNR uses {sampled} of {} pixels (regular grid) and trace medians over every \
                 {stride}th frame, to bound memory",
                self.height * self.width
            ));
        }

        let noisy_snrs = self.snr_noisy.pixel_snrs();
        let denoised_snrs = self.snr_denoised.pixel_snrs();
        let snr_noisy = snr_stats(&noisy_snrs, stride);
        let snr_denoised = snr_stats(&denoised_snrs, stride);
        let mut gains: Vec<f64> = noisy_snrs
            .iter()
            .zip(&denoised_snrs)
            .filter(|(noisy, denoised)| noisy.is_finite() && **noisy > 0.0 && denoised.is_finite())
            .map(|(noisy, denoised)| denoised / noisy)
            .collect();
        let snr_gain_median = median(&mut gains);
        let snr_gain_of_medians = snr_denoised.median / snr_noisy.median;

        let (mut noisy_vs_clean, mut denoised_vs_clean) = (None, None);
        let (mut gaussian_vs_clean, mut gaussian2d_vs_clean) = (None, None);
        let mut best_gaussian_vs_clean = None;
        if let Some(mut comparison) = self.comparison.take() {
            comparison.finish();
            best_gaussian_vs_clean = comparison.range.finish();
            noisy_vs_clean = comparison.noisy.stats();
            denoised_vs_clean = comparison.denoised.stats();
            gaussian_vs_clean = comparison.gaussian3d.stats();
            gaussian2d_vs_clean = comparison.gaussian2d.stats();
            if denoised_vs_clean.is_some_and(|stats| stats.mse == 0.0) {
                notes.push(
                    "denoised equals clean exactly: error reductions are infinite and reported \
                     as null"
                        .to_owned(),
                );
            }
        } else {
            notes.push("no clean movie: error statistics are not available".to_owned());
        }
        let reduction = |baseline: Option<ErrorStats>, pick: fn(&ErrorStats) -> f64| {
            let baseline = pick(&baseline?);
            let denoised = pick(&denoised_vs_clean?);
            (denoised > 0.0).then(|| baseline / denoised)
        };
        let mse = |stats: &ErrorStats| stats.mse;
        let mae = |stats: &ErrorStats| stats.mae;
        Ok(EvalReport {
            frames: self.frames,
            height: self.height,
            width: self.width,
            l2_reduction_vs_noisy: reduction(noisy_vs_clean, mse),
            l2_reduction_vs_gaussian: reduction(gaussian_vs_clean, mse),
            l2_reduction_vs_gaussian2d: reduction(gaussian2d_vs_clean, mse),
            l1_reduction_vs_noisy: reduction(noisy_vs_clean, mae),
            l1_reduction_vs_gaussian: reduction(gaussian_vs_clean, mae),
            l2_reduction_vs_best_gaussian: reduction(best_gaussian_vs_clean.map(|b| b.error), mse),
            best_gaussian_vs_clean,
            residual: self.residual.finish(),
            noisy_vs_clean,
            denoised_vs_clean,
            gaussian_vs_clean,
            gaussian2d_vs_clean,
            snr_noisy,
            snr_denoised,
            snr_gain_median,
            snr_gain_of_medians,
            gaussian_sigma: BASELINE_SIGMA,
            snr_block_frames: SNR_BLOCK_FRAMES.min(self.frames),
            notes,
        })
    }
}

/// Median and mean over the finite values of `snrs`.
fn snr_stats(snrs: &[f64], median_frame_stride: usize) -> SnrStats {
    let mut finite: Vec<f64> = snrs.iter().copied().filter(|v| v.is_finite()).collect();
    let pixels = finite.len();
    let mean = if pixels > 0 {
        finite.iter().sum::<f64>() / pixels as f64
    } else {
        f64::NAN
    };
    SnrStats {
        median: median(&mut finite),
        mean,
        pixels,
        excluded_pixels: snrs.len() - pixels,
        median_frame_stride,
    }
}
