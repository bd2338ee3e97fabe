//! The command line: every subcommand's flags. Training, fine-tuning and denoising take the
//! pipeline's request types as they are (one settings type per command, shared with the
//! TOML file and the Python package); the rest are the flags of commands whose work is
//! simulation, evaluation, export, inspection or the demo.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use deepinterp_pipeline::parse;
use deepinterp_pipeline::{
    DenoiseRequest, EvaluateRequest, FinetuneRequest, OutputDtype, RawOptions, TrainRequest,
};

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Write a simulated recording with its ground truth.
    #[command(subcommand)]
    Simulate(SimulateCommand),
    /// Train a denoising network on one or more recordings.
    Train(TrainRequest),
    /// Fine-tune a trained model (ours or an original Keras .h5) on new recordings: training
    /// that starts from its weights and keeps its architecture and window, reporting the
    /// validation loss before and after.
    Finetune(FinetuneRequest),
    /// Export a model to another format: an original-layout Keras .h5 (`--format keras`) that
    /// the original implementation and TensorFlow load.
    Export(ExportArgs),
    /// Denoise a recording with a trained (or Keras) model.
    Denoise(DenoiseRequest),
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
pub(crate) enum SimulateCommand {
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
pub(crate) struct SimulateFmriArgs {
    /// Noisy run to write (.nii or .nii.gz).
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Clean (ground-truth) run to write (.nii or .nii.gz).
    #[arg(long)]
    pub(crate) clean: PathBuf,
    /// Shape X,Y,Z,T: voxels along x, y, z and time points.
    #[arg(long, default_value = "64,64,32,200", value_parser = parse::shape4)]
    pub(crate) shape: [usize; 4],
    /// Target median temporal SNR of grey and white matter in the noisy run.
    #[arg(long, default_value_t = 30.0, value_parser = parse::positive_f64)]
    pub(crate) tsnr: f64,
    /// Repetition time in seconds.
    #[arg(long, default_value_t = 2.0, value_parser = parse::positive_f64)]
    pub(crate) tr: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct SimulateEphysArgs {
    /// Noisy recording to write (.bin, with a .meta beside it).
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Clean (ground-truth) recording to write (.bin, with a .meta beside it).
    #[arg(long)]
    pub(crate) clean: PathBuf,
    /// Duration in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = parse::positive_f64)]
    pub(crate) duration: f64,
    /// Channels (Neuropixels 1.0 positions).
    #[arg(long, default_value_t = 384, value_parser = parse::at_least_one)]
    pub(crate) channels: usize,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 30_000.0, value_parser = parse::positive_f64)]
    pub(crate) sample_rate: f64,
    /// Thermal noise, µV RMS.
    #[arg(long, default_value_t = 10.0, value_parser = parse::non_negative_f64)]
    pub(crate) noise_uv: f64,
    /// Number of units (default: one per four channels).
    #[arg(long)]
    pub(crate) units: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct Simulate2pArgs {
    /// Noisy movie to write (.h5 or .tif).
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Clean (ground-truth) movie to write.
    #[arg(long)]
    pub(crate) clean: PathBuf,
    /// Frames.
    #[arg(long, default_value_t = 1000, value_parser = parse::at_least_one)]
    pub(crate) frames: usize,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 128, value_parser = parse::at_least_one)]
    pub(crate) height: usize,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 128, value_parser = parse::at_least_one)]
    pub(crate) width: usize,
    /// Photons per unit of fluorescence: lower is noisier.
    #[arg(long, value_parser = parse::positive_f32)]
    pub(crate) photons: Option<f32>,
    /// Number of neurons (default scales with the field of view).
    #[arg(long)]
    pub(crate) neurons: Option<usize>,
    /// Rigid motion amplitude in pixels (0: none).
    #[arg(long, default_value_t = 0.0, value_parser = parse::non_negative_f32)]
    pub(crate) motion: f32,
    /// Data type of the noisy movie (the clean one is always float32).
    #[arg(long, value_enum, default_value_t = OutputDtype::Int16)]
    pub(crate) dtype: OutputDtype,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ExportArgs {
    /// The model: a deepinterp model file (or an original Keras .h5, re-exported).
    pub(crate) model: PathBuf,
    /// File to write.
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Keras)]
    pub(crate) format: ExportFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    /// Keras 2 HDF5 in the original's layout (model_config + model_weights).
    Keras,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct EvaluateArgs {
    #[command(flatten)]
    pub(crate) request: EvaluateRequest,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct InspectArgs {
    /// A model (deepinterp or Keras .h5) or a recording of any modality.
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) raw: RawOptions,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct DemoArgs {
    /// Folder for the demo's files.
    #[arg(long, default_value = "deepinterp-demo")]
    pub(crate) out: PathBuf,
    /// Simulated frames.
    #[arg(long, default_value_t = 2000, value_parser = parse::at_least_one)]
    pub(crate) frames: usize,
    /// Frame side in pixels.
    #[arg(long, default_value_t = 96, value_parser = parse::at_least_one)]
    pub(crate) size: usize,
    /// Training budget in minutes.
    #[arg(long, default_value_t = 3.0, value_parser = parse::positive_f64)]
    pub(crate) train_minutes: f64,
    /// Run the pipeline on a simulated 384-channel Neuropixels recording instead of a movie.
    #[arg(long)]
    pub(crate) ephys: bool,
    /// Simulated seconds of the ephys recording (with --ephys).
    #[arg(long, default_value_t = 20.0, value_parser = parse::positive_f64)]
    pub(crate) seconds: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}
