//! Evaluation runs: the noisy, denoised and (when known) clean recordings streamed through
//! the metrics accumulator of their modality (movies: error to ground truth and pixel SNR;
//! ephys: channel RMS noise and the fidelity of ground-truth spikes; fMRI: brain tSNR and
//! error to ground truth), in chunks, with the report written as JSON when asked.

use std::path::{Path, PathBuf};

use deepinterp::model::Modality;
use deepinterp_io::ephys::{EphysReader, open_ephys_with};
use deepinterp_io::nifti::{VolumeInfo, VolumeReader, open_volume};
use deepinterp_io::output::{OutputGuard, write_file_atomically};
use deepinterp_io::{MovieReader, open_movie};
use deepinterp_metrics::fmri::{BrainThreshold, FmriEvalSettings, FmriEvaluator, FmriReport};
use deepinterp_metrics::{
    EphysEvalSettings, EphysEvaluator, EphysReport, EvalReport, Evaluator, GroundTruthSpike,
    UnitChannels,
};

use crate::error::{PipelineError, Result, ensure};
use crate::progress::{Progress, Reporter, advance};
use crate::recording::{RawOptions, modality_of};

/// An evaluation: the recordings to compare and where the report goes.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct EvaluateRequest {
    /// The noisy recording.
    #[cfg_attr(feature = "clap", arg(long))]
    pub noisy: PathBuf,
    /// The denoised recording.
    #[cfg_attr(feature = "clap", arg(long))]
    pub denoised: PathBuf,
    /// The ground truth, when known (simulations).
    #[cfg_attr(feature = "clap", arg(long))]
    pub clean: Option<PathBuf>,
    /// Ephys ground-truth spikes (CSV `sample,unit`; default: the simulator's
    /// `<noisy>.spikes.csv` when it exists, with `<noisy>.units.csv`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub spikes: Option<PathBuf>,
    /// How to read headerless raw recordings.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub raw: RawOptions,
    /// Frame of the noisy (and clean) recording that denoised frame 0 corresponds to
    /// (e.g. 30 for an output made with --edges drop and a 30-frame window).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub offset: usize,
    /// fMRI: voxels whose noisy temporal mean exceeds this are brain (default: 0.3 × the
    /// 99th percentile of the temporal-mean image).
    #[cfg_attr(feature = "clap", arg(long))]
    pub brain_threshold: Option<f64>,
    /// Also write the JSON report to this file.
    #[cfg_attr(feature = "clap", arg(long))]
    pub report: Option<PathBuf>,
}

/// What an evaluation measured, by modality.
#[derive(Clone, Debug)]
pub enum Evaluation {
    /// A movie: error to ground truth and per-pixel SNR.
    Movie(EvalReport),
    /// An extracellular recording.
    Ephys {
        /// The figures.
        report: EphysReport,
        /// Whether noise figures are in µV (the header gave gains) rather than raw units.
        in_microvolts: bool,
    },
    /// An fMRI run.
    Fmri(FmriReport),
}

impl Evaluation {
    /// The report as pretty-printed JSON (what `report` files hold).
    pub fn to_json(&self) -> Result<String> {
        let json = match self {
            Evaluation::Movie(report) => serde_json::to_string_pretty(report),
            Evaluation::Ephys { report, .. } => serde_json::to_string_pretty(report),
            Evaluation::Fmri(report) => serde_json::to_string_pretty(report),
        };
        json.map_err(|e| PipelineError::Refused(format!("cannot write the report as JSON: {e}")))
    }

    /// Human-readable lines of the key figures.
    pub fn summary(&self) -> Vec<String> {
        match self {
            Evaluation::Movie(report) => movie_summary(report),
            Evaluation::Ephys {
                report,
                in_microvolts,
            } => ephys_summary(report, *in_microvolts),
            Evaluation::Fmri(report) => fmri_summary(report),
        }
    }
}

/// Frames read per chunk.
const CHUNK_FRAMES: usize = 64;

/// Ephys samples read per chunk.
const CHUNK_SAMPLES: usize = 8192;

/// Evaluates a denoised recording against its noisy source (and ground truth when given).
pub fn evaluate(args: &EvaluateRequest, report: Reporter<'_>) -> Result<Evaluation> {
    if let Some(report) = &args.report {
        let mut guard = OutputGuard::new();
        guard
            .recording("the noisy recording", &args.noisy)
            .recording("the denoised recording", &args.denoised);
        if let Some(clean) = &args.clean {
            guard.recording("the clean recording", clean);
        }
        let spikes = args
            .spikes
            .clone()
            .unwrap_or_else(|| args.noisy.with_extension("spikes.csv"));
        guard
            .input("the spike table", &spikes)
            .input("the unit table", &units_table_for(&spikes))
            .output("the report", report)
            .check()?;
    }
    let evaluation = match modality_of(&args.noisy) {
        Modality::TwoPhoton => Evaluation::Movie(evaluate_movie(args, report)?),
        Modality::Ephys => evaluate_ephys(args, report)?,
        Modality::Fmri => Evaluation::Fmri(evaluate_fmri(args, report)?),
    };
    if let Some(path) = &args.report {
        write_file_atomically(path, evaluation.to_json()?.as_bytes())?;
    }
    Ok(evaluation)
}

fn evaluate_movie(args: &EvaluateRequest, report: Reporter<'_>) -> Result<EvalReport> {
    let mut noisy = open_movie(&args.noisy)?;
    let mut denoised = open_movie(&args.denoised)?;
    let mut clean = args.clean.as_deref().map(open_movie).transpose()?;
    let (n, d) = (noisy.info().clone(), denoised.info().clone());
    ensure!(
        (n.height, n.width) == (d.height, d.width),
        "{}: frames are {}x{}, the noisy recording's are {}x{}",
        args.denoised.display(),
        d.height,
        d.width,
        n.height,
        n.width
    );
    ensure!(
        args.offset + d.frames <= n.frames,
        "{}: {} frames from offset {} run past the noisy recording's {} frames",
        args.denoised.display(),
        d.frames,
        args.offset,
        n.frames
    );
    if let (Some(reader), Some(path)) = (&clean, &args.clean) {
        let c = reader.info();
        ensure!(
            (c.frames, c.height, c.width) == (n.frames, n.height, n.width),
            "{}: shape {}x{}x{} differs from the noisy recording's {}x{}x{}",
            path.display(),
            c.frames,
            c.height,
            c.width,
            n.frames,
            n.height,
            n.width
        );
    }
    let mut evaluator = Evaluator::new(n.height, n.width, d.frames, clean.is_some());
    let streams = Streams {
        noisy: &mut noisy,
        denoised: &mut denoised,
        clean: clean.as_mut(),
    };
    streams.for_each_chunk(
        (args.offset, d.frames),
        (CHUNK_FRAMES, n.height * n.width),
        "frames",
        report,
        &mut |noisy, denoised, clean, count| Ok(evaluator.push(noisy, denoised, clean, count)?),
    )?;
    Ok(evaluator.finish()?)
}

/// Human-readable lines of the movie figures.
fn movie_summary(report: &EvalReport) -> Vec<String> {
    let ratio = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.2}x"));
    let mut lines = Vec::new();
    if let (Some(noisy), Some(denoised)) = (&report.noisy_vs_clean, &report.denoised_vs_clean) {
        lines.push(format!(
            "L2 (MSE) to ground truth: noisy {:.4}, denoised {:.4}",
            noisy.mse, denoised.mse
        ));
        if let Some(gaussian) = &report.gaussian_vs_clean {
            lines.push(format!("  Gaussian sigma=3 baseline {:.4}", gaussian.mse));
        }
        if let Some(best) = &report.best_gaussian_vs_clean {
            lines.push(format!(
                "  best of {} Gaussian filters (sigma {} px, {} frames) {:.4}",
                best.filters_tried, best.space_sigma, best.time_sigma, best.error.mse
            ));
        }
        lines.push(format!(
            "L2 error reduction: {} vs noisy, {} vs Gaussian baseline, {} vs the best Gaussian",
            ratio(report.l2_reduction_vs_noisy),
            ratio(report.l2_reduction_vs_gaussian),
            ratio(report.l2_reduction_vs_best_gaussian)
        ));
    }
    lines.push(format!(
        "per-pixel SNR (median): noisy {:.2}, denoised {:.2}, gain {:.2}x",
        report.snr_noisy.median, report.snr_denoised.median, report.snr_gain_median
    ));
    if let Some(residual) = &report.residual {
        lines.push(format!(
            "residual (noisy - denoised): mean {:.4}, variance {:.4} = {:.2}x the noise variance {:.4} (from frame differences{}), autocorrelation {:.3} in time, {:.3} in space",
            residual.mean,
            residual.variance,
            residual.variance_ratio,
            residual.expected_noise_variance,
            residual
                .true_noise_variance
                .map_or(String::new(), |v| format!("; true {v:.4}")),
            residual.temporal_autocorrelation,
            residual.spatial_autocorrelation
        ));
    }
    lines
}

/// Something read in consecutive chunks of equal-sized items (frames, or probe samples).
trait ChunkRead {
    fn read_chunk(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<()>;
}

impl ChunkRead for Box<dyn MovieReader> {
    fn read_chunk(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<()> {
        Ok(self.read_frames(start, count, out)?)
    }
}

impl ChunkRead for Scaled {
    fn read_chunk(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<()> {
        self.read_microvolts(start, count, out)
    }
}

/// The recordings an evaluation compares.
struct Streams<'a, R> {
    noisy: &'a mut R,
    denoised: &'a mut R,
    clean: Option<&'a mut R>,
}

/// A consumer of aligned chunks: noisy, denoised, clean (when given), item count.
type ChunkSink<'a> = dyn FnMut(&[f32], &[f32], Option<&[f32]>, usize) -> Result<()> + 'a;

impl<R: ChunkRead> Streams<'_, R> {
    /// Feeds `total` items to `push` in chunks, the denoised recording from its start and the
    /// others from `offset`, with a progress bar.
    fn for_each_chunk(
        self,
        (offset, total): (usize, usize),
        (chunk, item_len): (usize, usize),
        unit: &str,
        report: Reporter<'_>,
        push: &mut ChunkSink<'_>,
    ) -> Result<()> {
        let Streams {
            noisy,
            denoised,
            mut clean,
        } = self;
        let mut buffers = [(); 3].map(|_| vec![0f32; chunk * item_len]);
        report.show(Progress::Begin {
            label: "evaluate",
            total: total as u64,
            unit,
        });
        let mut done = 0;
        while done < total {
            let count = chunk.min(total - done);
            let len = count * item_len;
            let [noisy_buf, denoised_buf, clean_buf] = &mut buffers;
            noisy.read_chunk(offset + done, count, &mut noisy_buf[..len])?;
            denoised.read_chunk(done, count, &mut denoised_buf[..len])?;
            let clean_chunk = match clean.as_mut() {
                Some(reader) => {
                    reader.read_chunk(offset + done, count, &mut clean_buf[..len])?;
                    Some(&clean_buf[..len])
                }
                None => None,
            };
            push(&noisy_buf[..len], &denoised_buf[..len], clean_chunk, count)?;
            done += count;
            advance(report, done as u64, None)?;
        }
        report.show(Progress::End);
        Ok(())
    }
}

/// One ephys recording with its µV scale.
struct Scaled {
    reader: Box<dyn EphysReader>,
    microvolts_per_bit: Vec<f32>,
}

impl Scaled {
    fn open(path: &Path, args: &EvaluateRequest, fallback: Option<&[f32]>) -> Result<Self> {
        let reader = open_ephys_with(path, &args.raw.ephys_options())?;
        let channels = reader.info().neural_channels.len();
        let microvolts_per_bit = match (&reader.info().microvolts_per_bit, fallback) {
            (Some(gains), _) => gains.iter().map(|&g| g as f32).collect(),
            (None, Some(fallback)) => fallback.to_vec(),
            (None, None) => vec![1.0; channels],
        };
        Ok(Self {
            reader,
            microvolts_per_bit,
        })
    }

    fn read_microvolts(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<()> {
        self.reader.read_samples(start, count, out)?;
        for sample in out.chunks_exact_mut(self.microvolts_per_bit.len()) {
            for (value, gain) in sample.iter_mut().zip(&self.microvolts_per_bit) {
                *value *= gain;
            }
        }
        Ok(())
    }
}

/// The unit table that goes with a spike table (`x.spikes.csv` → `x.units.csv`).
fn units_table_for(spikes: &Path) -> PathBuf {
    PathBuf::from(spikes.to_string_lossy().replace("spikes.csv", "units.csv"))
}

/// The simulator's ground truth beside the noisy file, or the `--spikes` file, with the unit
/// table beside it.
fn ground_truth(
    args: &EvaluateRequest,
) -> Result<Option<(Vec<GroundTruthSpike>, Vec<UnitChannels>)>> {
    let spikes_path = match &args.spikes {
        Some(path) => path.clone(),
        None => {
            let beside = args.noisy.with_extension("spikes.csv");
            if !beside.exists() {
                return Ok(None);
            }
            beside
        }
    };
    let units_path = units_table_for(&spikes_path);
    let text = std::fs::read_to_string(&spikes_path)
        .map_err(|e| PipelineError::os(&spikes_path, "cannot read spike times", e))?;
    let mut spikes = Vec::new();
    for (line_number, line) in text.lines().enumerate().skip(1) {
        let parsed = line.split_once(',').and_then(|(sample, unit)| {
            Some((sample.trim().parse().ok()?, unit.trim().parse().ok()?))
        });
        let (sample, unit) = parsed.ok_or_else(|| {
            PipelineError::Refused(format!(
                "{}: line {}: expected `sample,unit`, found '{line}'",
                spikes_path.display(),
                line_number + 1
            ))
        })?;
        spikes.push(GroundTruthSpike { sample, unit });
    }
    let text = std::fs::read_to_string(&units_path)
        .map_err(|e| PipelineError::os(&units_path, "cannot read the unit table", e))?;
    let mut units = Vec::new();
    for (line_number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let parsed = (|| {
            let peak_channel = fields.get(1)?.trim().parse().ok()?;
            let channels = fields
                .last()?
                .split_whitespace()
                .map(|c| c.parse().ok())
                .collect::<Option<Vec<usize>>>()?;
            Some(UnitChannels {
                peak_channel,
                channels,
            })
        })();
        units.push(parsed.ok_or_else(|| {
            PipelineError::Refused(format!(
                "{}: line {}: expected `unit,peak_channel,...,channels`",
                units_path.display(),
                line_number + 1
            ))
        })?);
    }
    Ok(Some((spikes, units)))
}

fn evaluate_ephys(args: &EvaluateRequest, report: Reporter<'_>) -> Result<Evaluation> {
    let mut noisy = Scaled::open(&args.noisy, args, None)?;
    let gains = noisy.microvolts_per_bit.clone();
    let mut denoised = Scaled::open(&args.denoised, args, Some(&gains))?;
    let mut clean = match &args.clean {
        Some(path) => Some(Scaled::open(path, args, Some(&gains))?),
        None => None,
    };
    let (n, d) = (noisy.reader.info().clone(), denoised.reader.info().clone());
    let channels = n.neural_channels.len();
    ensure!(
        d.neural_channels.len() == channels,
        "{}: {} channels, the noisy recording has {channels}",
        args.denoised.display(),
        d.neural_channels.len()
    );
    ensure!(
        args.offset + d.samples <= n.samples,
        "{}: {} samples from offset {} run past the noisy recording's {} samples",
        args.denoised.display(),
        d.samples,
        args.offset,
        n.samples
    );
    if let (Some(clean), Some(path)) = (&clean, &args.clean) {
        let c = clean.reader.info();
        ensure!(
            (c.samples, c.neural_channels.len()) == (n.samples, channels),
            "{}: {} samples x {} channels, the noisy recording has {} x {channels}",
            path.display(),
            c.samples,
            c.neural_channels.len(),
            n.samples
        );
    }
    let truth = if clean.is_some() {
        ground_truth(args)?
    } else {
        None
    };
    let (spikes, units) = truth.unwrap_or_default();
    // Spike times are in noisy-recording samples; the evaluator counts from the denoised start.
    let spikes = spikes
        .into_iter()
        .filter(|s| s.sample >= args.offset as u64)
        .map(|s| GroundTruthSpike {
            sample: s.sample - args.offset as u64,
            unit: s.unit,
        })
        .collect();
    let settings = EphysEvalSettings::new(channels, n.sample_rate_hz);
    let mut evaluator = EphysEvaluator::new(settings, spikes, units, clean.is_some())?;
    let streams = Streams {
        noisy: &mut noisy,
        denoised: &mut denoised,
        clean: clean.as_mut(),
    };
    streams.for_each_chunk(
        (args.offset, d.samples),
        (CHUNK_SAMPLES, channels),
        "samples",
        report,
        &mut |noisy, denoised, clean, count| Ok(evaluator.push(noisy, denoised, clean, count)?),
    )?;
    Ok(Evaluation::Ephys {
        report: evaluator.finish()?,
        in_microvolts: n.microvolts_per_bit.is_some(),
    })
}

/// Human-readable lines of the ephys figures.
fn ephys_summary(report: &EphysReport, in_microvolts: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let unit = if in_microvolts {
        "µV"
    } else {
        "raw units (no gain in the header)"
    };
    lines.push(format!(
        "channel RMS noise (median over {} channels): noisy {:.2}, denoised {:.2} {unit}: {:.2}x lower",
        report.channels,
        report.median_rms_noise_noisy_uv,
        report.median_rms_noise_denoised_uv,
        report.rms_noise_reduction
    ));
    if let Some(error) = &report.error {
        lines.push(format!(
            "L2 (MSE) to ground truth: noisy {:.3}, denoised {:.3}: {:.2}x lower",
            error.mse_noisy, error.mse_denoised, error.l2_reduction
        ));
    }
    if let Some(spikes) = &report.spikes {
        lines.push(format!(
            "ground-truth spikes ({} measured): waveform cosine similarity noisy {:.3}, denoised {:.3} (unit means {:.3}); amplitude ratio denoised/clean {:.3} (units {:.3}-{:.3})",
            spikes.spikes_measured,
            spikes.cosine_noisy_mean,
            spikes.cosine_denoised_mean,
            spikes.unit_mean_cosine_denoised,
            spikes.amplitude_ratio_mean,
            spikes.amplitude_ratio_min,
            spikes.amplitude_ratio_max
        ));
    }
    lines
}

/// Volumes read per chunk.
const CHUNK_VOLUMES: usize = 8;

impl ChunkRead for VolumeReader {
    fn read_chunk(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<()> {
        Ok(self.read_volumes(start, count, out)?)
    }
}

/// fMRI: the paper's tSNR before and after, and with ground truth the error reduction.
fn evaluate_fmri(args: &EvaluateRequest, report: Reporter<'_>) -> Result<FmriReport> {
    let mut noisy = open_volume(&args.noisy)?;
    let mut denoised = open_volume(&args.denoised)?;
    let mut clean = args.clean.as_deref().map(open_volume).transpose()?;
    let (n, d) = (noisy.info().clone(), denoised.info().clone());
    let same_shape = |path: &Path, info: &VolumeInfo| {
        ensure!(
            info.shape == n.shape && info.frames == n.frames,
            "{}: shape {:?} x {} volumes differs from the noisy run's {:?} x {}",
            path.display(),
            info.shape,
            info.frames,
            n.shape,
            n.frames
        );
        Ok(())
    };
    same_shape(&args.denoised, &d)?;
    if let (Some(reader), Some(path)) = (&clean, &args.clean) {
        same_shape(path, reader.info())?;
    }
    ensure!(
        args.offset == 0,
        "{}: --offset applies to frame recordings; fMRI outputs hold every volume",
        args.denoised.display()
    );
    let mut settings = FmriEvalSettings::new(n.shape, n.frames);
    if let Some(threshold) = args.brain_threshold {
        settings.brain_threshold = BrainThreshold::Absolute(threshold);
    }
    let mut evaluator = FmriEvaluator::new(settings)?;
    let streams = Streams {
        noisy: &mut noisy,
        denoised: &mut denoised,
        clean: clean.as_mut(),
    };
    streams.for_each_chunk(
        (0, n.frames),
        (CHUNK_VOLUMES, n.volume_len()),
        "volumes",
        report,
        &mut |noisy, denoised, clean, count| Ok(evaluator.push(noisy, denoised, clean, count)?),
    )?;
    Ok(evaluator.finish()?)
}

/// Human-readable lines of the fMRI figures.
fn fmri_summary(report: &FmriReport) -> Vec<String> {
    let mut lines = Vec::new();
    let value = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    lines.push(format!(
        "median brain tSNR ({} voxels, {} frames): noisy {}, denoised {}, ratio {}x (median per-voxel ratio {}x)",
        report.brain_voxels,
        report.tsnr_frames,
        value(report.tsnr_noisy_median),
        value(report.tsnr_denoised_median),
        value(report.tsnr_ratio_of_medians),
        value(report.tsnr_ratio_median)
    ));
    if let Some(error) = &report.error {
        lines.push(format!(
            "L2 (MSE) to ground truth in the brain: noisy {:.3}, denoised {:.3}, reduction {}x; clean tSNR {}",
            error.mse_noisy,
            error.mse_denoised,
            value(error.l2_reduction),
            value(error.tsnr_clean_median)
        ));
    }
    lines
}
