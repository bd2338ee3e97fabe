//! Streaming quality metrics for extracellular spike-band recordings (Neuropixels and the
//! like), after Lecoq et al. 2021 (Extended Data Fig. 9): channel RMS noise before and after
//! denoising, error to the clean signal in simulations, and how faithfully known spikes
//! survive (waveform cosine similarity and trough amplitude).
//!
//! # Input
//! [`EphysEvaluator::push`] takes consecutive chunks, sample-major `[sample][channel]`, in µV,
//! of the noisy recording (the denoiser's input), the denoised output and, for simulations,
//! the clean ground truth. Chunks may have any size; the recording length need not be known
//! in advance.
//!
//! # RMS noise (per channel, noisy and denoised separately)
//! 1. Offset: the channel's mean over the first `W` samples of that stream, with
//!    `W = max(1, round(offset_window_s × sample_rate_hz))` (1 s by default), or over every
//!    sample if the recording is shorter. `offset_window_s = 0` fixes the offset at 0, which is
//!    the paper's rule `|x| ≤ 50 µV` for high-pass filtered data.
//! 2. `RMS = sqrt(mean((x - offset)²))` over *all* samples of the recording (the offset
//!    window included) with `|x - offset| ≤ noise_threshold_uv` (50 µV by default), which
//!    leaves spikes out. A channel with no such sample has a NaN RMS.
//!
//! The report gives the per-channel values, their medians over channels (finite values
//! only) and `rms_noise_reduction = median noisy / median denoised`.
//!
//! # Error to clean (with clean data)
//! MSE and MAE of the noisy and of the denoised recording against clean, over every value,
//! and their ratios noisy / denoised (`l2_reduction`, `l1_reduction`).
//!
//! # Spike fidelity (with clean data and at least one ground-truth spike)
//! A spike at sample `t` of unit `u` is measured on the snippet of samples
//! `[t - snippet_before, t + snippet_after)` on unit `u`'s channels (its [`UnitChannels`]),
//! flattened. Spikes whose snippet does not lie entirely inside the recording are skipped and
//! counted. Snippets are taken as they are, without baseline subtraction (spike-band data is
//! assumed high-pass filtered).
//! - Per spike: `cos(denoised snippet, clean snippet)` and `cos(noisy snippet, clean snippet)`,
//!   averaged over spikes.
//! - Per unit: the mean waveforms (averages of its snippets) of each stream;
//!   `cos(mean denoised, mean clean)`, and the amplitude ratio
//!   `trough(mean denoised) / trough(mean clean)` on the peak channel, trough being the most
//!   negative value of the snippet. A unit whose clean trough is not negative has a NaN ratio.
//!   Summaries (means, min, max) run over the units with at least one measured spike.
//!
//! A cosine with a zero vector is NaN; means leave NaN values out and are NaN when nothing is
//! left. Non-finite values are written as JSON `null` and read back as NaN.
//!
//! # Streaming and memory
//! Every sum runs sample by sample, in sample order, in `f64`, so the report is identical
//! however the recording is chunked. Memory does not grow with the recording: the offset window
//! (`W × channels` values per stream, until the window is complete), a ring of the last
//! `snippet_before + snippet_after` samples of each stream, one summed waveform per stream for
//! each unit that has spikes, and the spike list.

mod noise;
mod spikes;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, check_streams};
use noise::{NoiseAccumulator, NoiseResult};
use spikes::SpikeTracker;

/// Default RMS-noise threshold around the channel offset, in µV (the paper's 50 µV).
pub const DEFAULT_NOISE_THRESHOLD_UV: f32 = 50.0;

/// Default length of the offset window, in seconds.
pub const DEFAULT_OFFSET_WINDOW_S: f64 = 1.0;

/// Largest offset window, in values (samples × channels) per stream: 2^26 (256 MiB of `f32`).
pub const MAX_OFFSET_WINDOW_VALUES: usize = 1 << 26;

/// Largest snippet ring, in values (snippet samples × channels) per stream.
pub const MAX_SNIPPET_VALUES: usize = 1 << 24;

/// A ground-truth spike: the sample of its time (trough) and its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruthSpike {
    /// Sample index in the recording.
    pub sample: u64,
    /// Unit id: an index into the `units` given to [`EphysEvaluator::new`].
    pub unit: u32,
}

/// Where a unit's waveform is measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitChannels {
    /// The channel of the largest amplitude; amplitude ratios use it.
    pub peak_channel: usize,
    /// Channels the snippets span, in any order; `peak_channel` is added if missing.
    pub channels: Vec<usize>,
}

/// What [`EphysEvaluator`] measures, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EphysEvalSettings {
    /// Channels per sample.
    pub channels: usize,
    /// Sampling rate, in Hz.
    pub sample_rate_hz: f64,
    /// RMS noise counts only samples with `|x - channel offset|` at most this, in µV.
    pub noise_threshold_uv: f32,
    /// Channel offsets are means over this many seconds at the start; 0 fixes them at 0.
    pub offset_window_s: f64,
    /// Snippet samples before the spike sample.
    pub snippet_before: usize,
    /// Snippet samples from the spike sample on (the spike sample included).
    pub snippet_after: usize,
}

impl EphysEvalSettings {
    /// Defaults: 50 µV threshold, 1 s offset window, snippets of 1 ms before and 2 ms from the
    /// spike sample (30 and 60 samples at 30 kHz; at least 1 before and 1 after).
    pub fn new(channels: usize, sample_rate_hz: f64) -> Self {
        let samples = |seconds: f64| {
            let samples = (seconds * sample_rate_hz).round();
            if samples.is_finite() && samples >= 1.0 {
                samples as usize
            } else {
                1
            }
        };
        Self {
            channels,
            sample_rate_hz,
            noise_threshold_uv: DEFAULT_NOISE_THRESHOLD_UV,
            offset_window_s: DEFAULT_OFFSET_WINDOW_S,
            snippet_before: samples(1e-3),
            snippet_after: samples(2e-3),
        }
    }

    /// Samples in the offset window (0: offsets fixed at 0).
    pub fn offset_window_samples(&self) -> usize {
        if self.offset_window_s == 0.0 {
            return 0;
        }
        let samples = (self.offset_window_s * self.sample_rate_hz).round();
        if samples >= 1.0 {
            // Saturates for huge values; `validate` rejects those.
            samples as usize
        } else {
            1
        }
    }

    /// Samples per snippet.
    pub fn snippet_len(&self) -> usize {
        self.snippet_before.saturating_add(self.snippet_after)
    }

    fn validate(&self) -> Result<(), MetricsError> {
        let invalid = |message: String| Err(MetricsError::InvalidSettings(message));
        if self.channels == 0 {
            return invalid("channels must be at least 1".to_owned());
        }
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return invalid(format!(
                "sample rate must be positive, got {} Hz",
                self.sample_rate_hz
            ));
        }
        if !(self.noise_threshold_uv.is_finite() && self.noise_threshold_uv > 0.0) {
            return invalid(format!(
                "noise threshold must be positive, got {} uV",
                self.noise_threshold_uv
            ));
        }
        if !(self.offset_window_s.is_finite() && self.offset_window_s >= 0.0) {
            return invalid(format!(
                "offset window must be 0 or more seconds, got {}",
                self.offset_window_s
            ));
        }
        let window_values = self.offset_window_samples().saturating_mul(self.channels);
        if window_values > MAX_OFFSET_WINDOW_VALUES {
            return invalid(format!(
                "offset window of {} s x {} channels holds {window_values} values, more than \
                 {MAX_OFFSET_WINDOW_VALUES}",
                self.offset_window_s, self.channels
            ));
        }
        let snippet_len = self.snippet_len();
        if snippet_len == 0 {
            return invalid("snippet_before + snippet_after must be at least 1".to_owned());
        }
        if snippet_len.saturating_mul(self.channels) > MAX_SNIPPET_VALUES {
            return invalid(format!(
                "snippets of {snippet_len} samples x {} channels exceed {MAX_SNIPPET_VALUES} values",
                self.channels
            ));
        }
        Ok(())
    }
}

/// Error of the noisy and denoised recordings against clean, over every value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EphysErrorStats {
    /// Mean squared error of the noisy recording, in µV².
    pub mse_noisy: f64,
    /// Mean absolute error of the noisy recording, in µV.
    pub mae_noisy: f64,
    /// Mean squared error of the denoised recording, in µV².
    pub mse_denoised: f64,
    /// Mean absolute error of the denoised recording, in µV.
    pub mae_denoised: f64,
    /// `mse_noisy / mse_denoised` (infinite, so `null` in JSON, if denoised is exact).
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub l2_reduction: f64,
    /// `mae_noisy / mae_denoised`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub l1_reduction: f64,
}

/// Fidelity of one unit's mean waveform (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitFidelity {
    /// Unit id.
    pub unit: u32,
    /// Spikes measured.
    pub spikes: usize,
    /// Channel of the amplitude ratio.
    pub peak_channel: usize,
    /// `cos(mean denoised waveform, mean clean waveform)` over the unit's channels.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub cosine: f64,
    /// `cos(mean noisy waveform, mean clean waveform)`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub cosine_noisy: f64,
    /// Mean over this unit's spikes of the per-spike denoised cosine.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub spike_cosine_mean: f64,
    /// `trough(mean denoised) / trough(mean clean)` on the peak channel.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio: f64,
    /// `trough(mean noisy) / trough(mean clean)` on the peak channel.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio_noisy: f64,
    /// Trough of the mean clean waveform on the peak channel, in µV.
    pub clean_trough_uv: f64,
    /// Trough of the mean denoised waveform on the peak channel, in µV.
    pub denoised_trough_uv: f64,
    /// Trough of the mean noisy waveform on the peak channel, in µV.
    pub noisy_trough_uv: f64,
}

/// How faithfully known spikes survive denoising (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpikeFidelity {
    /// Ground-truth spikes given.
    pub spikes_total: usize,
    /// Spikes whose snippet lies entirely inside the recording.
    pub spikes_measured: usize,
    /// Spikes skipped because their snippet starts before the recording.
    pub spikes_skipped_start: usize,
    /// Spikes skipped because their snippet ends after the recording.
    pub spikes_skipped_end: usize,
    /// Mean over spikes of `cos(denoised snippet, clean snippet)`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub cosine_denoised_mean: f64,
    /// Mean over spikes of `cos(noisy snippet, clean snippet)`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub cosine_noisy_mean: f64,
    /// Units with at least one measured spike.
    pub units_measured: usize,
    /// Mean over units of `cos(mean denoised waveform, mean clean waveform)`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub unit_mean_cosine_denoised: f64,
    /// Mean over units of `cos(mean noisy waveform, mean clean waveform)`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub unit_mean_cosine_noisy: f64,
    /// Mean over units of the denoised amplitude ratio.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio_mean: f64,
    /// Median over units of the denoised amplitude ratio.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio_median: f64,
    /// Smallest unit amplitude ratio.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio_min: f64,
    /// Largest unit amplitude ratio.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio_max: f64,
    /// Mean over units of the noisy amplitude ratio (what noise alone does to troughs).
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub amplitude_ratio_noisy_mean: f64,
    /// Units with at least one measured spike, by id.
    pub per_unit: Vec<UnitFidelity>,
}

/// Result of an ephys evaluation (see the [module docs](self) for every definition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EphysReport {
    /// Samples evaluated.
    pub samples: usize,
    /// Channels per sample.
    pub channels: usize,
    /// `samples / sample_rate_hz`.
    pub duration_s: f64,
    /// The settings used.
    pub settings: EphysEvalSettings,
    /// Samples the channel offsets were averaged over (0: offsets fixed at 0).
    pub offset_window_samples: usize,
    /// Per-channel offset of the noisy recording, in µV.
    pub offsets_noisy_uv: Vec<f64>,
    /// Per-channel offset of the denoised recording, in µV.
    pub offsets_denoised_uv: Vec<f64>,
    /// Per-channel RMS noise of the noisy recording, in µV.
    #[serde(deserialize_with = "nullable::nans_if_null")]
    pub rms_noise_noisy_uv: Vec<f64>,
    /// Per-channel RMS noise of the denoised recording, in µV.
    #[serde(deserialize_with = "nullable::nans_if_null")]
    pub rms_noise_denoised_uv: Vec<f64>,
    /// Median over channels of `rms_noise_noisy_uv`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub median_rms_noise_noisy_uv: f64,
    /// Median over channels of `rms_noise_denoised_uv`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub median_rms_noise_denoised_uv: f64,
    /// `median_rms_noise_noisy_uv / median_rms_noise_denoised_uv`.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub rms_noise_reduction: f64,
    /// Median over channels of the fraction of noisy samples within the threshold (the
    /// samples the RMS uses); far below 1 hints at data not in µV or not high-passed.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub noise_sample_fraction_noisy: f64,
    /// The same for the denoised recording.
    #[serde(deserialize_with = "nullable::nan_if_null")]
    pub noise_sample_fraction_denoised: f64,
    /// Error against clean; `None` without clean data.
    pub error: Option<EphysErrorStats>,
    /// Spike fidelity; `None` without clean data or without ground-truth spikes.
    pub spikes: Option<SpikeFidelity>,
    /// Human-readable remarks (definitions, skipped spikes, undefined values).
    pub notes: Vec<String>,
}

/// Running error sums against clean, noisy and denoised.
#[derive(Clone, Copy, Debug, Default)]
struct ErrorSums {
    absolute: [f64; 2],
    squared: [f64; 2],
    values: u64,
}

impl ErrorSums {
    /// Adds one sample; per-sample partial sums keep the totals independent of chunking.
    fn add_sample(&mut self, noisy: &[f32], denoised: &[f32], clean: &[f32]) {
        for (stream, estimate) in [noisy, denoised].into_iter().enumerate() {
            let (mut absolute, mut squared) = (0.0f64, 0.0f64);
            for (&value, &truth) in estimate.iter().zip(clean) {
                let error = f64::from(value) - f64::from(truth);
                absolute += error.abs();
                squared += error * error;
            }
            self.absolute[stream] += absolute;
            self.squared[stream] += squared;
        }
        self.values += clean.len() as u64;
    }

    fn stats(&self) -> EphysErrorStats {
        let count = self.values as f64;
        let [mae_noisy, mae_denoised] = self.absolute.map(|sum| sum / count);
        let [mse_noisy, mse_denoised] = self.squared.map(|sum| sum / count);
        EphysErrorStats {
            mse_noisy,
            mae_noisy,
            mse_denoised,
            mae_denoised,
            l2_reduction: mse_noisy / mse_denoised,
            l1_reduction: mae_noisy / mae_denoised,
        }
    }
}

/// Streaming evaluation of a denoised spike-band recording against its noisy input and,
/// optionally, the clean ground truth with known spikes.
///
/// ```
/// use deepinterp_metrics::{EphysEvalSettings, EphysEvaluator, GroundTruthSpike, UnitChannels};
/// let settings = EphysEvalSettings::new(2, 30_000.0);
/// let samples = 200;
/// let mut clean = vec![0.0f32; samples * 2];
/// clean[100 * 2] = -100.0; // unit 0 fires at sample 100 on channel 0
/// let noisy: Vec<f32> = clean.iter().enumerate().map(|(i, v)| v + [4.0, -4.0][i % 2]).collect();
/// let denoised: Vec<f32> = clean.iter().map(|v| 0.5 * v).collect();
/// let spikes = vec![GroundTruthSpike { sample: 100, unit: 0 }];
/// let units = vec![UnitChannels { peak_channel: 0, channels: vec![0, 1] }];
/// let mut evaluator = EphysEvaluator::new(settings, spikes, units, true)?;
/// evaluator.push(&noisy, &denoised, Some(&clean), samples)?;
/// let report = evaluator.finish()?;
/// let spikes = report.spikes.expect("clean data and a spike");
/// assert_eq!(spikes.spikes_measured, 1);
/// assert!((spikes.amplitude_ratio_mean - 0.5).abs() < 1e-12);
/// # Ok::<(), deepinterp_metrics::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct EphysEvaluator {
    settings: EphysEvalSettings,
    received: u64,
    with_clean: bool,
    spikes_given: usize,
    noise_noisy: NoiseAccumulator,
    noise_denoised: NoiseAccumulator,
    errors: Option<ErrorSums>,
    spikes: Option<SpikeTracker>,
}

impl EphysEvaluator {
    /// An evaluator for recordings described by `settings`. `spikes` need not be sorted;
    /// `units[u]` describes unit `u` for every unit id in `spikes`; `with_clean` says whether
    /// [`push`](Self::push) gets clean data (spike fidelity needs it).
    pub fn new(
        settings: EphysEvalSettings,
        mut spikes: Vec<GroundTruthSpike>,
        units: Vec<UnitChannels>,
        with_clean: bool,
    ) -> Result<Self, MetricsError> {
        settings.validate()?;
        if let Some((index, spike)) = spikes
            .iter()
            .enumerate()
            .find(|(_, spike)| spike.unit as usize >= units.len())
        {
            return Err(MetricsError::UnknownUnit {
                index,
                sample: spike.sample,
                unit: spike.unit,
                units: units.len(),
            });
        }
        let unit_channels = units
            .into_iter()
            .enumerate()
            .map(|(id, unit)| unit_channel_list(id, unit, settings.channels))
            .collect::<Result<Vec<_>, _>>()?;
        spikes.sort_by_key(|spike| spike.sample);
        let spikes_given = spikes.len();
        let tracker = (with_clean && !spikes.is_empty()).then(|| {
            SpikeTracker::new(
                settings.channels,
                settings.snippet_before,
                settings.snippet_after,
                spikes,
                unit_channels,
            )
        });
        let window = settings.offset_window_samples();
        let threshold = settings.noise_threshold_uv;
        Ok(Self {
            received: 0,
            with_clean,
            spikes_given,
            noise_noisy: NoiseAccumulator::new(settings.channels, threshold, window),
            noise_denoised: NoiseAccumulator::new(settings.channels, threshold, window),
            errors: with_clean.then(ErrorSums::default),
            spikes: tracker,
            settings,
        })
    }

    /// Samples pushed so far.
    pub fn samples_received(&self) -> u64 {
        self.received
    }

    /// Feeds the next `count` samples of each stream, `count × channels` values sample-major,
    /// in µV; `clean` is `Some` exactly when the evaluator was built `with_clean`. Nothing is
    /// consumed if any check fails.
    pub fn push(
        &mut self,
        noisy: &[f32],
        denoised: &[f32],
        clean: Option<&[f32]>,
        count: usize,
    ) -> Result<(), MetricsError> {
        if let Some(reason) =
            crate::error::clean_presence_mismatch(clean.is_some(), self.with_clean)
        {
            return Err(MetricsError::CleanSamplesMismatch(reason));
        }
        let channels = self.settings.channels;
        let expected = count.checked_mul(channels).ok_or_else(|| {
            MetricsError::InvalidSettings(format!("{count} samples of {channels} channels"))
        })?;
        check_streams(
            expected,
            (noisy, denoised, clean),
            |stream, actual| MetricsError::SampleBufferLength {
                stream,
                actual,
                expected,
                count,
                channels,
            },
            |stream, position, value| MetricsError::NonFiniteSample {
                stream,
                sample: self.received + (position / channels) as u64,
                channel: position % channels,
                value,
            },
        )?;

        for sample in 0..count {
            let range = sample * channels..(sample + 1) * channels;
            let noisy_sample = &noisy[range.clone()];
            let denoised_sample = &denoised[range.clone()];
            self.noise_noisy.push(noisy_sample);
            self.noise_denoised.push(denoised_sample);
            if let Some(clean) = clean {
                let clean_sample = &clean[range];
                if let Some(errors) = self.errors.as_mut() {
                    errors.add_sample(noisy_sample, denoised_sample, clean_sample);
                }
                if let Some(tracker) = self.spikes.as_mut() {
                    tracker.push(self.received, noisy_sample, denoised_sample, clean_sample);
                }
            }
            self.received += 1;
        }
        Ok(())
    }

    /// Completes the evaluation; at least one sample must have been pushed.
    pub fn finish(self) -> Result<EphysReport, MetricsError> {
        if self.received == 0 {
            return Err(MetricsError::NoSamples);
        }
        let settings = self.settings;
        let noisy: NoiseResult = self.noise_noisy.finish();
        let denoised: NoiseResult = self.noise_denoised.finish();
        let median_noisy = noisy.median_rms();
        let median_denoised = denoised.median_rms();

        let mut notes = vec![format!(
            "RMS noise per channel = sqrt(mean((x - offset)^2)) over samples with |x - offset| \
             <= {} uV; offset = the channel's mean over its first {} samples (each stream its \
             own; 0 = fixed offset of 0)",
            settings.noise_threshold_uv, noisy.window_used
        )];
        let unmeasured = noisy.rms.iter().filter(|rms| rms.is_nan()).count()
            + denoised.rms.iter().filter(|rms| rms.is_nan()).count();
        if unmeasured > 0 {
            notes.push(format!(
                "{unmeasured} channel(s) (noisy and denoised together) have no sample within the \
                 threshold: RMS NaN (null), left out of the medians"
            ));
        }
        let error = self.errors.map(|errors| errors.stats());
        if error.is_some_and(|error| error.mse_denoised == 0.0) {
            notes.push(
                "denoised equals clean exactly: error reductions are infinite (null)".to_owned(),
            );
        }
        if !self.with_clean {
            notes.push("no clean data: error and spike fidelity are not available".to_owned());
        } else if self.spikes_given == 0 {
            notes.push("no ground-truth spikes: spike fidelity is not available".to_owned());
        }
        let spikes = self.spikes.map(SpikeTracker::finish);
        if let Some(spikes) = &spikes {
            notes.push(format!(
                "spike snippets span samples [t - {}, t + {}) on each unit's channels, taken as \
                 they are (no baseline subtraction); trough = most negative value of the mean \
                 waveform on the peak channel",
                settings.snippet_before, settings.snippet_after
            ));
            let skipped = spikes.spikes_skipped_start + spikes.spikes_skipped_end;
            if skipped > 0 {
                notes.push(format!(
                    "{skipped} of {} spikes skipped: their snippet crosses the start ({}) or \
                     the end ({}) of the recording",
                    spikes.spikes_total, spikes.spikes_skipped_start, spikes.spikes_skipped_end
                ));
            }
        }

        Ok(EphysReport {
            samples: self.received as usize,
            channels: settings.channels,
            duration_s: self.received as f64 / settings.sample_rate_hz,
            offset_window_samples: noisy.window_used,
            noise_sample_fraction_noisy: noisy.median_inside_fraction(),
            noise_sample_fraction_denoised: denoised.median_inside_fraction(),
            offsets_noisy_uv: noisy.offsets,
            offsets_denoised_uv: denoised.offsets,
            rms_noise_noisy_uv: noisy.rms,
            rms_noise_denoised_uv: denoised.rms,
            median_rms_noise_noisy_uv: median_noisy,
            median_rms_noise_denoised_uv: median_denoised,
            rms_noise_reduction: median_noisy / median_denoised,
            error,
            spikes,
            notes,
            settings,
        })
    }
}

/// Unit `id`'s channel list with its peak channel added if missing, and the peak's position.
fn unit_channel_list(
    id: usize,
    unit: UnitChannels,
    channels: usize,
) -> Result<(Vec<usize>, usize), MetricsError> {
    let UnitChannels {
        peak_channel,
        channels: mut list,
    } = unit;
    let invalid = |message: String| MetricsError::InvalidSettings(format!("unit {id}: {message}"));
    if let Some(&channel) = list
        .iter()
        .chain([&peak_channel])
        .find(|&&channel| channel >= channels)
    {
        return Err(invalid(format!(
            "channel {channel} is out of range ({channels} channels)"
        )));
    }
    let mut seen = vec![false; channels];
    for &channel in &list {
        if std::mem::replace(&mut seen[channel], true) {
            return Err(invalid(format!("channel {channel} is listed twice")));
        }
    }
    let peak = match list.iter().position(|&channel| channel == peak_channel) {
        Some(position) => position,
        None => {
            list.insert(0, peak_channel);
            0
        }
    };
    Ok((list, peak))
}

/// Reading back non-finite values, which JSON writes as `null`.
mod nullable {
    use serde::{Deserialize, Deserializer};

    pub(super) fn nan_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }

    pub(super) fn nans_if_null<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(deserializer)?
            .into_iter()
            .map(|value| value.unwrap_or(f64::NAN))
            .collect())
    }
}
