//! What a file is. A model (ours or an original Keras `.h5`) is
//! described by its spec: architecture, network shape, window, normalisation and training
//! summary. A recording is described by its header (shape, type, rates, scaling), with an
//! estimate of how long denoising it would take on this machine, measured by timing a few
//! forward passes of the modality's default network and extrapolating.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use deepinterp::engine::Forward;
use deepinterp::model::file::is_model_file;
use deepinterp::model::{
    Modality, NetworkConfig, NormalizationPolicy, StatsRegion, TrainingSummary, UNetShape,
    architecture_config, load_model,
};
use deepinterp::sampling::Window;
use deepinterp::volume::{VolumeBlock, fast_kept};
use deepinterp_io::IoError;
use deepinterp_io::ephys::open_ephys_with;
use deepinterp_io::nifti::open_volume;
use deepinterp_io::open_movie;
use serde::Serialize;

use crate::backend::{DEFAULT_ENGINE, Infer};
use crate::error::{PipelineError, Result, ensure, one_line, refuse};
use crate::preset::Preset;
use crate::recording::{RawOptions, modality_of};

/// Side of the square crop a two-photon frame is timed on: big enough that the network's
/// cost per pixel is that of a full frame, small enough that inspecting stays quick.
const MOVIE_CROP_SIDE: usize = 128;
/// Probe-grid samples per timed call (denoise's batch for ephys).
const EPHYS_BATCH: usize = 32;
/// Voxel blocks per timed call.
const FMRI_BATCH: usize = 256;
/// Untimed calls first: the first pass allocates buffers and spins up the thread pool.
const WARMUP_CALLS: usize = 1;
/// Timed calls: at least [`MIN_TIMED_CALLS`], more while they add up to less than
/// [`MIN_TIMED_SECONDS`] (up to [`MAX_TIMED_CALLS`]), so that quick calls are timed often
/// enough for their median to be steady on a busy machine; the median is used, so a call
/// slowed by another process does not count.
const MIN_TIMED_CALLS: usize = 3;
const MAX_TIMED_CALLS: usize = 25;
const MIN_TIMED_SECONDS: f64 = 0.5;
/// The magic line our model files start with (see `deepinterp::model::file`).
const MODEL_MAGIC: &[u8] = b"DEEPINTERP-MODEL\n";

/// What a file is, as printed by `inspect --json`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Inspection {
    /// A model file (ours or an original Keras `.h5`).
    Model(Box<ModelReport>),
    /// A recording, with an estimate of the time denoising it would take here.
    Recording(Box<RecordingReport>),
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    path: String,
    file_size_bytes: u64,
    /// "deepinterp" (our model file) or "keras" (an original `.h5`).
    format: &'static str,
    /// Layout version of our model files; `None` for Keras files.
    format_version: Option<u64>,
    /// The deepinterp that wrote our model file; `None` for Keras files.
    deepinterp_version: Option<String>,
    architecture: String,
    modality: &'static str,
    parameters: usize,
    network: NetworkShape,
    window: Window,
    block: Option<VolumeBlock>,
    normalization: NormalizationPolicy,
    source: String,
    training: Option<TrainingReport>,
}

/// A network's shape with kernels and pools as plain lists (2 sides planar, 3 volumetric).
#[derive(Clone, Debug, Serialize)]
pub struct NetworkShape {
    /// "planar" (2D U-Net on frames or probe grids) or "volumetric" (3D U-Net on voxel blocks).
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    shape: UNetShape,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainingReport {
    inputs: Vec<String>,
    frame_size: Option<[usize; 2]>,
    steps: usize,
    batch_size: usize,
    loss: String,
    best_validation_loss: Option<f64>,
    epochs: usize,
    seed: u64,
    /// How the run ended (absent for models of older runs).
    ending: Option<deepinterp::training::RunEnd>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordingReport {
    path: String,
    file_size_bytes: u64,
    #[serde(flatten)]
    details: RecordingDetails,
    estimate: Estimate,
}

/// The header of a recording, by modality.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "modality")]
pub enum RecordingDetails {
    #[serde(rename = "2p")]
    Movie {
        format: &'static str,
        frames: usize,
        height: usize,
        width: usize,
        dtype: &'static str,
    },
    #[serde(rename = "ephys")]
    Ephys {
        format: &'static str,
        samples: usize,
        saved_channels: usize,
        neural_channels: usize,
        sample_rate_hz: f64,
        duration_s: f64,
        dtype: &'static str,
        /// Smallest and largest µV per ADC unit over the neural channels, when the header
        /// gives gains.
        microvolts_per_bit: Option<ValueRange>,
        /// Whether the header places the channels on the probe.
        channel_positions: bool,
    },
    #[serde(rename = "fmri")]
    Fmri {
        shape: [usize; 3],
        frames: usize,
        dtype: &'static str,
        voxel_size: [f64; 3],
        repetition_time_s: Option<f64>,
        scaling: Option<Scaling>,
        nifti_version: u8,
        compressed: bool,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct ValueRange {
    min: f64,
    max: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    slope: f64,
    intercept: f64,
}

/// How long denoising the whole recording would take, extrapolated from timed network calls.
#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    /// The modality's default architecture, with random weights (speed does not depend on
    /// the values).
    architecture: String,
    window: Window,
    /// "cpu", or "cuda" in a CUDA build.
    backend: &'static str,
    /// What ran the network: "kernels" (ours, the CPU default) or "burn".
    engine: &'static str,
    /// Shape of one timed call's input: `[n, channels, h, w]` or `[n, channels, x, y, z]`.
    input_shape: Vec<usize>,
    warmup_calls: usize,
    timed_calls: usize,
    /// Median time of one call.
    seconds_per_call: f64,
    /// What the recording is denoised in: "frame", "sample" or "block".
    unit: &'static str,
    /// Units one call covers (a fraction of a frame when a large frame was cropped).
    units_per_call: f64,
    /// Units in the whole recording.
    units: usize,
    seconds_per_unit: f64,
    /// The estimate: network time only, reading and writing excluded.
    seconds: f64,
}

/// Says what `path` is: a model, or a recording of its modality (headerless raw recordings
/// read as `raw` says), with an estimate of the time denoising it would take here.
pub fn inspect(path: &Path, raw: &RawOptions) -> Result<Inspection> {
    ensure!(path.exists(), "{}: file not found", path.display());
    // A folder is an Open Ephys recording; only files can be models.
    if path.is_file() && is_model_file(path)? {
        return Ok(Inspection::Model(Box::new(inspect_model(path)?)));
    }
    let report = match modality_of(path) {
        Modality::TwoPhoton if path.is_dir() => refuse!(
            "{}: a folder, not a model or a recording deepinterp reads (an Open Ephys folder holds structure.oebin or *.continuous files)",
            path.display()
        ),
        Modality::TwoPhoton => match open_movie(path) {
            Ok(mut reader) => {
                let info = reader.info().clone();
                // Opening reads only the header; the last frame lies at the end of the data, so
                // reading it catches a file cut short without reading the whole movie.
                if info.frames > 0 {
                    let mut frame = vec![0f32; info.frame_len()];
                    reader.read_frames(info.frames - 1, 1, &mut frame)?;
                }
                let format = if has_extension(path, &["tif", "tiff"]) {
                    "TIFF"
                } else {
                    "HDF5"
                };
                let details = RecordingDetails::Movie {
                    format,
                    frames: info.frames,
                    height: info.height,
                    width: info.width,
                    dtype: info.dtype.name(),
                };
                RecordingReport {
                    path: path.display().to_string(),
                    file_size_bytes: size_on_disk(path)?,
                    estimate: estimate_movie(info.frames, info.height, info.width)?,
                    details,
                }
            }
            // An HDF5 file without a movie dataset may be an original Keras model.
            Err(movie_error @ IoError::MissingDataset { .. }) => {
                return match inspect_model(path) {
                    Ok(model) => Ok(Inspection::Model(Box::new(model))),
                    Err(model_error) => refuse!(
                        "{}: neither a movie ({}) nor a model ({})",
                        path.display(),
                        without_path(path, &movie_error.to_string()),
                        without_path(path, &one_line(&model_error))
                    ),
                };
            }
            Err(IoError::UnknownFormat { extension, .. }) => refuse!(
                "{}: unknown format '{extension}': not a deepinterp model, nor a recording deepinterp reads (movies .h5/.tif, extracellular .bin/.dat/.raw/.oebin/.continuous, fMRI .nii/.nii.gz)",
                path.display()
            ),
            Err(error) => return Err(error.into()),
        },
        Modality::Ephys => {
            let mut reader = open_ephys_with(path, &raw.ephys_options())?;
            let info = reader.info().clone();
            // As for movies: the last sample is read to catch a file cut short.
            if info.samples > 0 {
                let mut sample = vec![0f32; info.neural_channel_count()];
                reader.read_samples(info.samples - 1, 1, &mut sample)?;
            }
            let gains = info.microvolts_per_bit.as_ref().and_then(|gains| {
                let min = gains.iter().copied().reduce(f64::min)?;
                let max = gains.iter().copied().reduce(f64::max)?;
                Some(ValueRange { min, max })
            });
            RecordingReport {
                path: path.display().to_string(),
                file_size_bytes: size_on_disk(path)?,
                estimate: estimate_ephys(info.samples, info.neural_channel_count())?,
                details: RecordingDetails::Ephys {
                    format: info.format.name(),
                    samples: info.samples,
                    saved_channels: info.saved_channels,
                    neural_channels: info.neural_channel_count(),
                    sample_rate_hz: info.sample_rate_hz,
                    duration_s: info.samples as f64 / info.sample_rate_hz,
                    dtype: info.dtype.name(),
                    microvolts_per_bit: gains,
                    channel_positions: info.positions.is_some(),
                },
            }
        }
        Modality::Fmri => {
            let mut reader = open_volume(path)?;
            let info = reader.info().clone();
            // A .nii.gz cut short opens fine and fails only when the missing volume is read:
            // read every volume once (streaming, one volume in memory) so a damaged file is
            // reported here rather than halfway through a denoising run.
            if info.compressed {
                let mut volume = vec![0f32; info.volume_len()];
                for t in 0..info.frames {
                    reader.read_volumes(t, 1, &mut volume)?;
                }
            }
            RecordingReport {
                path: path.display().to_string(),
                file_size_bytes: size_on_disk(path)?,
                estimate: estimate_fmri(info.shape, info.frames)?,
                details: RecordingDetails::Fmri {
                    shape: info.shape,
                    frames: info.frames,
                    dtype: info.dtype.name(),
                    voxel_size: info.voxel_size,
                    repetition_time_s: info.repetition_time_s,
                    scaling: info
                        .scaling
                        .map(|(slope, intercept)| Scaling { slope, intercept }),
                    nifti_version: info.version,
                    compressed: info.compressed,
                },
            }
        }
    };
    Ok(Inspection::Recording(Box::new(report)))
}

fn inspect_model(path: &Path) -> Result<ModelReport> {
    let device = Default::default();
    let model = load_model::<Infer>(path, None, &device)
        .map_err(|error| PipelineError::Refused(with_path(path, &error.to_string())))?;
    let spec = model.spec;
    let (format, format_version, deepinterp_version) = if is_model_file(path)? {
        let (version, writer) = model_file_versions(path)?;
        ("deepinterp", Some(version), Some(writer))
    } else {
        ("keras", None, None)
    };
    let training = spec.training.as_ref().map(training_report);
    Ok(ModelReport {
        path: path.display().to_string(),
        file_size_bytes: size_on_disk(path)?,
        format,
        format_version,
        deepinterp_version,
        architecture: spec.architecture,
        modality: spec.modality.name(),
        parameters: spec.network.parameter_count(),
        network: network_shape(&spec.network),
        window: spec.window,
        block: spec.block,
        normalization: spec.normalization,
        source: spec.source,
        training,
    })
}

/// `format_version` and `deepinterp_version` from the JSON header of our model file (which
/// `load_model` has already validated, weights included).
fn model_file_versions(path: &Path) -> Result<(u64, String)> {
    let fail = || PipelineError::Refused(format!("{}: unreadable model header", path.display()));
    let mut file =
        std::fs::File::open(path).map_err(|e| PipelineError::os(path, "cannot open", e))?;
    let mut head = [0u8; MODEL_MAGIC.len() + 8];
    file.read_exact(&mut head).map_err(|_| fail())?;
    let length_bytes: [u8; 8] = head[MODEL_MAGIC.len()..].try_into().map_err(|_| fail())?;
    let length = u64::from_le_bytes(length_bytes);
    let mut json = Vec::new();
    file.take(length)
        .read_to_end(&mut json)
        .map_err(|_| fail())?;
    let header: serde_json::Value = serde_json::from_slice(&json).map_err(|_| fail())?;
    let version = header["format_version"].as_u64().ok_or_else(fail)?;
    let writer = header["deepinterp_version"]
        .as_str()
        .ok_or_else(fail)?
        .to_string();
    Ok((version, writer))
}

fn training_report(summary: &TrainingSummary) -> TrainingReport {
    TrainingReport {
        inputs: summary.inputs.clone(),
        frame_size: summary.frame_size,
        steps: summary.steps,
        batch_size: summary.batch_size,
        loss: summary.loss.clone(),
        best_validation_loss: summary.best_validation_loss,
        epochs: summary.history.len(),
        seed: summary.seed,
        ending: summary.ending,
    }
}

fn network_shape(config: &NetworkConfig) -> NetworkShape {
    NetworkShape {
        kind: match config {
            NetworkConfig::Planar(_) => "planar",
            NetworkConfig::Volumetric(_) => "volumetric",
        },
        shape: config.shape(),
    }
}

/// Two-photon: one frame per call, cropped to at most [`MOVIE_CROP_SIDE`]² pixels; the
/// network's cost is proportional to the pixel count, so a cropped call covers the cropped
/// fraction of a frame.
fn estimate_movie(frames: usize, height: usize, width: usize) -> Result<Estimate> {
    let window = Modality::TwoPhoton.default_window();
    let (config, _) = architecture_config(Preset::of(Modality::TwoPhoton).architecture, &window)?;
    let (crop_height, crop_width) = (height.min(MOVIE_CROP_SIDE), width.min(MOVIE_CROP_SIDE));
    let shape = vec![1, config.in_channels(), crop_height, crop_width];
    let frame_fraction = (crop_height * crop_width) as f64 / (height * width) as f64;
    timed_estimate(
        Preset::of(Modality::TwoPhoton).architecture,
        window,
        &config,
        shape,
        "frame",
        frame_fraction,
        frames,
    )
}

/// Ephys: a batch of whole probe grids, `rows × 2` with rows the neural channels rounded up
/// to what the network's pooling needs, as `denoise` lays them out.
fn estimate_ephys(samples: usize, neural_channels: usize) -> Result<Estimate> {
    let window = Modality::Ephys.default_window();
    let (config, _) = architecture_config(Preset::of(Modality::Ephys).architecture, &window)?;
    let row_multiple = match &config {
        NetworkConfig::Planar(planar) => planar.size_multiple()[0],
        NetworkConfig::Volumetric(_) => 1,
    };
    let rows = neural_channels.max(1).next_multiple_of(row_multiple.max(1));
    let shape = vec![EPHYS_BATCH, config.in_channels(), rows, 2];
    timed_estimate(
        Preset::of(Modality::Ephys).architecture,
        window,
        &config,
        shape,
        "sample",
        EPHYS_BATCH as f64,
        samples,
    )
}

/// fMRI: a batch of the paper's 7³ blocks; fast mode tiles each volume with blocks that each
/// keep a `fast_kept` sub-cube (4 voxels per axis for the paper's block).
fn estimate_fmri(shape: [usize; 3], frames: usize) -> Result<Estimate> {
    let window = Modality::Fmri.default_window();
    let (config, _) = architecture_config(Preset::of(Modality::Fmri).architecture, &window)?;
    let block = VolumeBlock::paper(None)?;
    let blocks_per_volume: usize = (0..3)
        .map(|axis| shape[axis].div_ceil(fast_kept(&block, axis).len().max(1)))
        .product();
    let sides = block.sides();
    let input_shape = vec![
        FMRI_BATCH,
        config.in_channels(),
        sides[0],
        sides[1],
        sides[2],
    ];
    timed_estimate(
        Preset::of(Modality::Fmri).architecture,
        window,
        &config,
        input_shape,
        "block",
        FMRI_BATCH as f64,
        blocks_per_volume * frames,
    )
}

/// Times forward passes (see [`MIN_TIMED_CALLS`]) of a randomly initialised `config` on random input of
/// `input_shape` after [`WARMUP_CALLS`], and extrapolates to `units` units at
/// `units_per_call` units per call.
fn timed_estimate(
    architecture: &str,
    window: Window,
    config: &NetworkConfig,
    input_shape: Vec<usize>,
    unit: &'static str,
    units_per_call: f64,
    units: usize,
) -> Result<Estimate> {
    let device = Default::default();
    let network = config.init::<Infer>(&device)?;
    let values: usize = input_shape.iter().product();
    let input: Vec<f32> =
        Tensor::<Infer, 1>::random([values], Distribution::Normal(0.0, 1.0), &device)
            .into_data()
            .to_vec()
            .map_err(|e| PipelineError::Refused(format!("cannot read random input: {e:?}")))?;
    // The engine `denoise` uses by default, so the estimate is what a user gets.
    let mut forward = Forward::new(&network, DEFAULT_ENGINE, &device)?;
    let engine = forward.engine().name();
    let mut call = || -> Result<f64> {
        let started = Instant::now();
        // The output comes back as values: the backend has finished (asynchronous on CUDA).
        match input_shape[..] {
            [n, c, h, w] => forward.planar(&input, [n, c, h, w])?,
            [n, c, x, y, z] => forward.volumetric(&input, [n, c, x, y, z])?,
            _ => refuse!("an input shape of {} axes", input_shape.len()),
        };
        Ok(started.elapsed().as_secs_f64())
    };
    for _ in 0..WARMUP_CALLS {
        call()?;
    }
    let mut seconds: Vec<f64> = Vec::with_capacity(MAX_TIMED_CALLS);
    while seconds.len() < MIN_TIMED_CALLS
        || (seconds.len() < MAX_TIMED_CALLS && seconds.iter().sum::<f64>() < MIN_TIMED_SECONDS)
    {
        seconds.push(call()?);
    }
    let timed_calls = seconds.len();
    seconds.sort_by(f64::total_cmp);
    // A clock too coarse to see the call must not give a zero estimate.
    let seconds_per_call = seconds[seconds.len() / 2].max(1e-9);
    let seconds_per_unit = seconds_per_call / units_per_call;
    Ok(Estimate {
        architecture: architecture.to_string(),
        window,
        backend: if cfg!(feature = "cuda") {
            "cuda"
        } else {
            "cpu"
        },
        engine,
        input_shape,
        warmup_calls: WARMUP_CALLS,
        timed_calls,
        seconds_per_call,
        unit,
        units_per_call,
        units,
        seconds_per_unit,
        seconds: seconds_per_unit * units as f64,
    })
}

/// Bytes on disk: the file, or the files directly in a folder (an Open Ephys legacy
/// recording).
fn size_on_disk(path: &Path) -> Result<u64> {
    let read_error = |e| PipelineError::os(path, "cannot read the file size", e);
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_dir() {
        return Ok(metadata.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let metadata = entry.map_err(read_error)?.metadata();
        total += metadata.map_err(read_error)?.len();
    }
    Ok(total)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extensions
                .iter()
                .any(|known| extension.eq_ignore_ascii_case(known))
        })
}

/// `message` without a leading `"{path}: "`, to nest it in a message that names the file.
fn without_path(path: &Path, message: &str) -> String {
    let prefix = format!("{}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(message).to_string()
}

/// `message`, naming the file when it does not already.
fn with_path(path: &Path, message: &str) -> String {
    let name = path.display().to_string();
    if message.contains(&name) {
        message.to_string()
    } else {
        format!("{name}: {message}")
    }
}

impl Inspection {
    /// The human-readable report: one `label  value` line per fact.
    pub fn to_lines(&self) -> String {
        let mut lines = Lines::default();
        match self {
            Inspection::Model(model) => model.describe(&mut lines),
            Inspection::Recording(recording) => recording.describe(&mut lines),
        }
        lines.text
    }
}

/// Lines of `label  value`, values aligned.
#[derive(Default)]
struct Lines {
    text: String,
}

impl Lines {
    fn add(&mut self, label: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{label:<14}{value}");
    }
}

impl ModelReport {
    fn describe(&self, lines: &mut Lines) {
        lines.add(
            "file",
            format!("{} ({})", self.path, human_bytes(self.file_size_bytes)),
        );
        let kind = match (&self.format_version, &self.deepinterp_version) {
            (Some(version), Some(writer)) => format!(
                "model: deepinterp model file (format {version}, written by deepinterp {writer})"
            ),
            _ => "model: original Keras .h5".to_string(),
        };
        lines.add("kind", kind);
        lines.add(
            "architecture",
            format!("{} ({})", self.architecture, self.modality),
        );
        lines.add("parameters", with_thousands(self.parameters));
        lines.add("network", self.network.describe());
        let unit = match self.modality {
            "ephys" => "samples",
            "fmri" => "time points",
            _ => "frames",
        };
        lines.add(
            "window",
            format!(
                "{} {unit} before, {} after, {} omitted on each side",
                self.window.pre_frames, self.window.post_frames, self.window.omitted_frames
            ),
        );
        if let Some(block) = &self.block {
            let sides = block.sides();
            lines.add(
                "block",
                format!(
                    "{}×{}×{} voxels (radius {:?}), hole {}",
                    sides[0], sides[1], sides[2], block.radius, block.hole
                ),
            );
        }
        let normalization = match self.normalization.region {
            StatsRegion::Head => format!(
                "mean and std of the first {} {unit}",
                self.normalization.stats_frames
            ),
            StatsRegion::CentralBlock => {
                "mean and std of the central block (middle ±25% of every axis and of time)"
                    .to_string()
            }
        };
        lines.add("normalisation", normalization);
        lines.add("source", &self.source);
        if let Some(training) = &self.training {
            let frame_size = training
                .frame_size
                .map_or(String::new(), |[h, w]| format!(" ({h}×{w} frames)"));
            lines.add(
                "trained on",
                format!("{}{frame_size}", training.inputs.join(", ")),
            );
            let best = training
                .best_validation_loss
                .map_or("no validation".to_string(), |loss| {
                    format!("best validation loss {loss:.6}")
                });
            lines.add(
                "training",
                format!(
                    "{} steps of batch {}, {} loss, {} epochs, {best}, seed {}",
                    training.steps,
                    training.batch_size,
                    training.loss,
                    training.epochs,
                    training.seed
                ),
            );
            if let Some(end) = &training.ending {
                lines.add("run ended", end.describe());
            }
        }
    }
}

impl NetworkShape {
    fn describe(&self) -> String {
        let widths = self
            .shape
            .encoder_widths
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-");
        let kind = match self.kind {
            "volumetric" => "3D U-Net",
            _ => "2D U-Net",
        };
        let mut kernels: Vec<&Vec<usize>> = self.shape.encoder_kernels.iter().collect();
        kernels.push(&self.shape.bottleneck_kernel);
        kernels.extend(&self.shape.decoder_kernels);
        let kernels = if kernels.windows(2).all(|pair| pair[0] == pair[1]) {
            format!("kernels {}", sides(&self.shape.bottleneck_kernel))
        } else {
            format!(
                "kernels {} | {} | {} (encoder | bottleneck | decoder)",
                list_sides(&self.shape.encoder_kernels),
                sides(&self.shape.bottleneck_kernel),
                list_sides(&self.shape.decoder_kernels)
            )
        };
        let pools = if self.shape.pools.windows(2).all(|pair| pair[0] == pair[1]) {
            self.shape
                .pools
                .first()
                .map_or("none".to_string(), |pool| sides(pool))
        } else {
            list_sides(&self.shape.pools)
        };
        format!(
            "{kind}, {} input channels, encoder widths {widths}, bottleneck {}, {kernels}, pools {pools}",
            self.shape.in_channels, self.shape.bottleneck_width
        )
    }
}

impl RecordingReport {
    fn describe(&self, lines: &mut Lines) {
        lines.add(
            "file",
            format!("{} ({})", self.path, human_bytes(self.file_size_bytes)),
        );
        match &self.details {
            RecordingDetails::Movie {
                format,
                frames,
                height,
                width,
                dtype,
            } => {
                lines.add("kind", format!("recording: two-photon movie ({format})"));
                lines.add(
                    "frames",
                    format!("{frames} of {height}×{width} pixels, {dtype}"),
                );
            }
            RecordingDetails::Ephys {
                format,
                samples,
                saved_channels,
                neural_channels,
                sample_rate_hz,
                duration_s,
                dtype,
                microvolts_per_bit,
                channel_positions,
            } => {
                lines.add("kind", format!("recording: extracellular ({format})"));
                lines.add(
                    "samples",
                    format!(
                        "{samples} at {sample_rate_hz} Hz ({}), {dtype}",
                        human_seconds(*duration_s)
                    ),
                );
                let positions = if *channel_positions {
                    "positions from the header"
                } else {
                    "no positions (taken in channel order)"
                };
                lines.add(
                    "channels",
                    format!("{saved_channels} saved, {neural_channels} neural; {positions}"),
                );
                let gain = match microvolts_per_bit {
                    None => "unknown (no gains in the header)".to_string(),
                    Some(range) if range.min == range.max => format!("{} µV/bit", range.min),
                    Some(range) => {
                        format!("{}–{} µV/bit (varies by channel)", range.min, range.max)
                    }
                };
                lines.add("scale", gain);
            }
            RecordingDetails::Fmri {
                shape,
                frames,
                dtype,
                voxel_size,
                repetition_time_s,
                scaling,
                nifti_version,
                compressed,
            } => {
                let compression = if *compressed { ", gzip-compressed" } else { "" };
                lines.add(
                    "kind",
                    format!("recording: fMRI run (NIfTI-{nifti_version}{compression})"),
                );
                lines.add(
                    "shape",
                    format!(
                        "{}×{}×{} voxels, {frames} volumes, {dtype}",
                        shape[0], shape[1], shape[2]
                    ),
                );
                let tr =
                    repetition_time_s.map_or("TR unknown".to_string(), |tr| format!("TR {tr} s"));
                lines.add(
                    "voxel size",
                    format!(
                        "{}×{}×{} (the file's unit, normally mm); {tr}",
                        voxel_size[0], voxel_size[1], voxel_size[2]
                    ),
                );
                let scaling = scaling.as_ref().map_or("none".to_string(), |scaling| {
                    format!("slope {}, intercept {}", scaling.slope, scaling.intercept)
                });
                lines.add("scaling", scaling);
            }
        }
        let estimate = &self.estimate;
        lines.add(
            "denoise time",
            format!(
                "about {} on this machine ({}, {} engine) with {} ({} per {})",
                human_seconds(estimate.seconds),
                estimate.backend,
                estimate.engine,
                estimate.architecture,
                human_seconds(estimate.seconds_per_unit),
                estimate.unit
            ),
        );
        let input = estimate
            .input_shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("×");
        lines.add(
            "",
            format!(
                "an estimate: the median of {} timed network calls (after {} warm-up) of the default architecture on random input of shape {input}, extrapolated to {} {}s; reading and writing excluded",
                estimate.timed_calls, estimate.warmup_calls, estimate.units, estimate.unit
            ),
        );
    }
}

/// `3×3`, `2×2×2`.
fn sides(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// `2×2, 3×1, 3×1`.
fn list_sides(shapes: &[Vec<usize>]) -> String {
    shapes
        .iter()
        .map(|shape| sides(shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `15,704,769`.
fn with_thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `512 B`, `1.5 KiB`, `59.9 MiB`, `2.0 GiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `40 ns`, `850 µs`, `12.3 ms`, `4.2 s`, `3 min 05 s`, `2 h 14 min`.
fn human_seconds(seconds: f64) -> String {
    if seconds < 1e-6 {
        format!("{:.0} ns", seconds * 1e9)
    } else if seconds < 1e-3 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let whole = seconds.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        let minutes = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(with_thousands(15_704_769), "15,704,769");
        assert_eq!(with_thousands(44_369), "44,369");
        assert_eq!(with_thousands(999), "999");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_seconds(0.0123), "12.3 ms");
        assert_eq!(human_seconds(185.0), "3 min 05 s");
        assert_eq!(human_seconds(2.0 * 3600.0 + 14.0 * 60.0), "2 h 14 min");
    }
}
