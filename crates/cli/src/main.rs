//! `deepinterp`: DeepInterpolation denoising from the command line.
//!
//! Subcommands follow the pipeline: `simulate` → `train` → `denoise` → `evaluate`, and `demo`
//! runs them all on simulated data. Recordings are two-photon movies (HDF5, TIFF) or
//! extracellular recordings (SpikeGLX, Open Ephys, raw binary); the modality comes from the
//! file. Library errors are turned into one-line messages here.

mod commands;
mod interrupt;
mod progress;
mod recording;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// DeepInterpolation: self-supervised denoising of two-photon movies and extracellular
/// recordings.
#[derive(Parser, Debug)]
#[command(
    name = "deepinterp",
    version,
    about,
    propagate_version = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a simulated recording with its ground truth.
    #[command(subcommand)]
    Simulate(SimulateCommand),
    /// Train a denoising network on one or more recordings.
    Train(TrainArgs),
    /// Fine-tune a trained model (ours or an original Keras .h5) on new recordings: training
    /// that starts from its weights and keeps its architecture and window, reporting the
    /// validation loss before and after.
    Finetune(FinetuneArgs),
    /// Export a model to another format: an original-layout Keras .h5 (`--format keras`) that
    /// the original implementation and TensorFlow load.
    Export(ExportArgs),
    /// Denoise a recording with a trained (or Keras) model.
    Denoise(DenoiseArgs),
    /// Measure denoising quality: error to ground truth and per-pixel SNR.
    Evaluate(EvaluateArgs),
    /// Simulate → train → denoise → evaluate on built-in simulated data (a movie, or with
    /// --ephys a Neuropixels recording).
    Demo(DemoArgs),
    /// Say what a file is: a model (architecture, window, training) or a recording (shape,
    /// type, and an estimate of the time denoising it would take on this machine).
    Inspect(InspectArgs),
}

#[derive(Subcommand, Debug)]
enum SimulateCommand {
    /// A two-photon calcium movie: neurons, neuropil, baseline, Poisson shot noise.
    #[command(name = "2p")]
    TwoPhoton(Simulate2pArgs),
    /// A spike-band extracellular recording on a Neuropixels 1.0 layout: units with
    /// multichannel waveforms and Poisson firing, thermal noise. Writes SpikeGLX-style
    /// .bin + .meta files and the ground-truth spikes and units as CSV beside the noisy file.
    Ephys(SimulateEphysArgs),
    /// An fMRI run: a brain-shaped volume with grey/white matter and CSF, task (block and
    /// event) BOLD responses, spontaneous fluctuations, drift and thermal noise at a chosen
    /// tSNR. Writes NIfTI (.nii or .nii.gz): the noisy run as int16, the clean one as float32.
    Fmri(SimulateFmriArgs),
}

#[derive(Args, Debug, Clone)]
struct SimulateFmriArgs {
    /// Noisy run to write (.nii or .nii.gz).
    #[arg(short, long)]
    output: PathBuf,
    /// Clean (ground-truth) run to write (.nii or .nii.gz).
    #[arg(long)]
    clean: PathBuf,
    /// Shape X,Y,Z,T: voxels along x, y, z and time points.
    #[arg(long, default_value = "64,64,32,200", value_parser = parse_shape4)]
    shape: [usize; 4],
    /// Target median temporal SNR of grey and white matter in the noisy run.
    #[arg(long, default_value_t = 30.0, value_parser = positive_f64)]
    tsnr: f64,
    /// Repetition time in seconds.
    #[arg(long, default_value_t = 2.0, value_parser = positive_f64)]
    tr: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A finite number above 0.
fn positive_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("'{text}' is not a finite number above 0")),
    }
}

/// A finite number of at least 0.
fn non_negative_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("'{text}' is not a finite number of at least 0")),
    }
}

fn positive_f32(text: &str) -> Result<f32, String> {
    positive_f64(text).and_then(|value| {
        let narrowed = value as f32;
        (narrowed.is_finite() && narrowed > 0.0)
            .then_some(narrowed)
            .ok_or_else(|| format!("'{text}' is out of range"))
    })
}

fn non_negative_f32(text: &str) -> Result<f32, String> {
    non_negative_f64(text).and_then(|value| {
        let narrowed = value as f32;
        narrowed
            .is_finite()
            .then_some(narrowed)
            .ok_or_else(|| format!("'{text}' is out of range"))
    })
}

/// A whole number of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(value) if value >= 1 => Ok(value),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

/// Parses `X,Y,Z,T`.
fn parse_shape4(text: &str) -> Result<[usize; 4], String> {
    let sides: Vec<usize> = text
        .split(',')
        .map(|side| side.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{text}' is not four comma-separated whole numbers X,Y,Z,T"))?;
    sides
        .try_into()
        .map_err(|_| format!("'{text}' is not four comma-separated whole numbers X,Y,Z,T"))
}

#[derive(Args, Debug, Clone)]
struct SimulateEphysArgs {
    /// Noisy recording to write (.bin, with a .meta beside it).
    #[arg(short, long)]
    output: PathBuf,
    /// Clean (ground-truth) recording to write (.bin, with a .meta beside it).
    #[arg(long)]
    clean: PathBuf,
    /// Duration in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = positive_f64)]
    duration: f64,
    /// Channels (Neuropixels 1.0 positions).
    #[arg(long, default_value_t = 384, value_parser = at_least_one)]
    channels: usize,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 30_000.0, value_parser = positive_f64)]
    sample_rate: f64,
    /// Thermal noise, µV RMS.
    #[arg(long, default_value_t = 10.0, value_parser = non_negative_f64)]
    noise_uv: f64,
    /// Number of units (default: one per four channels).
    #[arg(long)]
    units: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// How to read a headerless raw extracellular file (`.dat`/`.bin`/`.raw` with no `.meta` or
/// `structure.oebin` beside it).
#[derive(Args, Debug, Clone, Default)]
struct RawArgs {
    /// Channels interleaved in a headerless raw file.
    #[arg(long, value_parser = at_least_one)]
    channels: Option<usize>,
    /// Sample rate in Hz of a headerless raw file (default 30000).
    #[arg(long, value_parser = positive_f64)]
    sample_rate: Option<f64>,
    /// Open Ephys legacy: read channel files of unequal length up to the shortest one
    /// (without it, unequal lengths are an error).
    #[arg(long)]
    cut_to_shortest: bool,
}

#[derive(Args, Debug, Clone)]
struct Simulate2pArgs {
    /// Noisy movie to write (.h5 or .tif).
    #[arg(short, long)]
    output: PathBuf,
    /// Clean (ground-truth) movie to write.
    #[arg(long)]
    clean: PathBuf,
    /// Frames.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    frames: usize,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    height: usize,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    width: usize,
    /// Photons per unit of fluorescence: lower is noisier.
    #[arg(long, value_parser = positive_f32)]
    photons: Option<f32>,
    /// Number of neurons (default scales with the field of view).
    #[arg(long)]
    neurons: Option<usize>,
    /// Rigid motion amplitude in pixels (0: none).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f32)]
    motion: f32,
    /// Data type of the noisy movie (the clean one is always float32).
    #[arg(long, value_enum, default_value_t = DtypeArg::Int16)]
    dtype: DtypeArg,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args, Debug, Clone, Default)]
struct WindowArgs {
    /// Frames before the predicted frame.
    #[arg(long)]
    pre_frames: Option<usize>,
    /// Frames after the predicted frame.
    #[arg(long)]
    post_frames: Option<usize>,
    /// Frames left out on each side of the predicted frame.
    #[arg(long)]
    omitted_frames: Option<usize>,
}

#[derive(Args, Debug, Clone)]
struct TrainArgs {
    /// Training recordings: movies (.h5 with dataset `data` [t,y,x], .tif) or extracellular
    /// recordings (SpikeGLX .bin + .meta, Open Ephys, raw .dat/.bin with --channels).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    raw: RawArgs,
    /// Model file to write (the best model by validation loss).
    #[arg(short, long)]
    output: PathBuf,
    /// Architecture: two-photon unet_single_1024 (the paper's) or unet-d<depth>-w<width>;
    /// ephys unet_single_ephys_1024 (the paper's) or unet-ephys-d<depth>-w<width>.
    #[arg(long)]
    arch: Option<String>,
    /// Optimiser steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Stop after this many minutes (the model so far is saved).
    #[arg(long, allow_negative_numbers = true)]
    max_minutes: Option<f64>,
    #[command(flatten)]
    window: WindowArgs,
    /// Loss: l1 (paper default) or l2.
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// Optimiser: rmsprop (paper; default for 2P and ephys) or adam (default for fMRI).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Learning rate.
    #[arg(long, allow_negative_numbers = true)]
    learning_rate: Option<f64>,
    /// Halve the learning rate every N epochs.
    #[arg(long)]
    lr_halving_epochs: Option<usize>,
    /// Samples per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Steps per epoch (validation, checkpoint and loss history each epoch).
    #[arg(long)]
    steps_per_epoch: Option<usize>,
    /// Side of square training crops; 0 trains on whole frames (the default for ephys).
    #[arg(long)]
    patch_size: Option<usize>,
    /// Validation recordings (default: hold out the tail of each input).
    #[arg(long)]
    validation: Vec<PathBuf>,
    /// Fraction of each input held out for validation when no --validation file is given.
    #[arg(long, allow_negative_numbers = true)]
    validation_fraction: Option<f64>,
    /// Fixed validation samples scored after each epoch (default 16; ephys 512).
    #[arg(long)]
    validation_samples: Option<usize>,
    /// Frames (samples, for ephys) from the head of each file for the normalisation
    /// statistics (default 100; ephys 200000).
    #[arg(long)]
    stats_frames: Option<usize>,
    /// Resume from the checkpoint next to the output model, if there is one.
    #[arg(long)]
    resume: bool,
    /// Replace a model (and its unfinished run's checkpoint) already at the output path; the
    /// old model stays until the new one is finished.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// TOML file with any of these settings (flags win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args, Debug, Clone)]
struct ExportArgs {
    /// The model: a deepinterp model file (or an original Keras .h5, re-exported).
    model: PathBuf,
    /// File to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Keras)]
    format: ExportFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    /// Keras 2 HDF5 in the original's layout (model_config + model_weights).
    Keras,
}

#[derive(Args, Debug, Clone)]
struct FinetuneArgs {
    /// The model to start from: a deepinterp model file or an original Keras .h5.
    #[arg(long)]
    model: PathBuf,
    /// Keep the encoder's convolutions fixed; train the bottleneck and decoder only.
    #[arg(long)]
    freeze_encoder: bool,
    /// Every training flag (the architecture and window come from the model; --steps
    /// defaults to 500).
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Args, Debug, Clone)]
struct DenoiseArgs {
    /// Recording to denoise.
    input: PathBuf,
    #[command(flatten)]
    raw: RawArgs,
    /// Denoised recording to write: .h5 or .tif for movies; for ephys .bin/.dat keeps the
    /// input's layout (channels, sync, header), .h5 writes the probe grid as the original does.
    #[arg(short, long)]
    output: PathBuf,
    /// Model: a deepinterp model file or an original Keras .h5.
    #[arg(long)]
    model: PathBuf,
    /// Edge frames: keep (predict every frame), drop (the original's layout), or
    /// drop-pad-head (the original's output_padding: zeros for the head only).
    #[arg(long, value_enum, default_value_t = EdgesArg::Keep)]
    edges: EdgesArg,
    /// Output data type (default float32; ephys .bin/.dat: the input's, int16); integer
    /// outputs are rounded and clipped (clipping is reported).
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
    /// Frames per network call (default from the frame size); fMRI: voxel blocks per call
    /// (default 1024).
    #[arg(long, value_parser = at_least_one)]
    batch_size: Option<usize>,
    /// First frame to process.
    #[arg(long, default_value_t = 0)]
    start_frame: usize,
    /// Last frame to process, inclusive.
    #[arg(long)]
    end_frame: Option<usize>,
    /// Frames (from the head of the file) for the normalisation statistics.
    #[arg(long, value_parser = at_least_one)]
    stats_frames: Option<usize>,
    /// Window for Keras models, which do not record one (default: half the input frames each side).
    #[command(flatten)]
    window: WindowArgs,
    /// fMRI only: parity (one network pass per voxel and time point, the original's output)
    /// or fast (blocks tiled over each volume, many voxels per pass).
    #[arg(long, value_enum, default_value_t = ModeArg::Fast)]
    mode: ModeArg,
    /// What runs the network: our CPU kernels (the default of a CPU build) or burn (the
    /// default with CUDA; on the CPU, the reference implementation, slower).
    #[arg(long, value_enum)]
    engine: Option<EngineArg>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum EngineArg {
    Kernels,
    Burn,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ModeArg {
    Parity,
    Fast,
}

#[derive(Args, Debug, Clone)]
struct EvaluateArgs {
    /// The noisy recording.
    #[arg(long)]
    noisy: PathBuf,
    /// The denoised recording.
    #[arg(long)]
    denoised: PathBuf,
    /// The ground truth, when known (simulations).
    #[arg(long)]
    clean: Option<PathBuf>,
    /// Ephys ground-truth spikes (CSV `sample,unit`; default: the simulator's
    /// `<noisy>.spikes.csv` when it exists, with `<noisy>.units.csv`).
    #[arg(long)]
    spikes: Option<PathBuf>,
    #[command(flatten)]
    raw: RawArgs,
    /// Frame of the noisy (and clean) recording that denoised frame 0 corresponds to
    /// (e.g. 30 for an output made with --edges drop and a 30-frame window).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// fMRI: voxels whose noisy temporal mean exceeds this are brain (default: 0.3 × the
    /// 99th percentile of the temporal-mean image).
    #[arg(long)]
    brain_threshold: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct InspectArgs {
    /// A model (deepinterp or Keras .h5) or a recording of any modality.
    file: PathBuf,
    #[command(flatten)]
    raw: RawArgs,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct DemoArgs {
    /// Folder for the demo's files.
    #[arg(long, default_value = "deepinterp-demo")]
    out: PathBuf,
    /// Simulated frames.
    #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
    frames: usize,
    /// Frame side in pixels.
    #[arg(long, default_value_t = 96, value_parser = at_least_one)]
    size: usize,
    /// Training budget in minutes.
    #[arg(long, default_value_t = 3.0, value_parser = positive_f64)]
    train_minutes: f64,
    /// Run the pipeline on a simulated 384-channel Neuropixels recording instead of a movie.
    #[arg(long)]
    ephys: bool,
    /// Simulated seconds of the ephys recording (with --ephys).
    #[arg(long, default_value_t = 20.0, value_parser = positive_f64)]
    seconds: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum DtypeArg {
    Float32,
    Int16,
    Uint16,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum EdgesArg {
    Keep,
    Drop,
    DropPadHead,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LossArg {
    L1,
    L2,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum OptimizerArg {
    Rmsprop,
    Adam,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    interrupt::install();
    let result = match cli.command {
        Command::Simulate(SimulateCommand::TwoPhoton(args)) => commands::simulate_2p(&args),
        Command::Simulate(SimulateCommand::Ephys(args)) => commands::simulate_ephys(&args),
        Command::Simulate(SimulateCommand::Fmri(args)) => commands::simulate_fmri(&args),
        Command::Train(args) => commands::train(&args),
        Command::Finetune(args) => commands::finetune(&args),
        Command::Export(args) => commands::export(&args),
        Command::Denoise(args) => commands::denoise(&args).map(|_| ()),
        Command::Evaluate(args) => commands::evaluate(&args).map(|_| ()),
        Command::Demo(args) => commands::demo(&args),
        Command::Inspect(args) => commands::inspect(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", interrupt::one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap writes them; a wrong flag or value is one line (the text
/// before clap's usage hint), exit code 1 like every other error.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.exit_code() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let rendered = error.render().to_string();
    let first_paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first_paragraph.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    eprintln!("error: {}", interrupt::escape_controls(line));
    ExitCode::FAILURE
}

/// The backends this build runs on: CPU by default, CUDA with the `cuda` feature.
mod backend {
    #[cfg(not(feature = "cuda"))]
    pub use deepinterp::backend::{Cpu as Infer, CpuTrain as Train};
    #[cfg(feature = "cuda")]
    pub use deepinterp::backend::{Gpu as Infer, GpuTrain as Train};
    use deepinterp::engine::Engine;

    /// What runs inference unless `--engine` says otherwise.
    #[cfg(not(feature = "cuda"))]
    pub const DEFAULT_ENGINE: Engine = Engine::Kernels;
    #[cfg(feature = "cuda")]
    pub const DEFAULT_ENGINE: Engine = Engine::Burn;
}
