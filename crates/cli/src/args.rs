//! The command line: every subcommand's flags. Training, fine-tuning and denoising take the
//! pipeline's request types as they are (one settings type per command, shared with the
//! TOML file and the Python package); the rest are the flags of commands whose work is
//! simulation, evaluation, export, inspection or the demo.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use deepinterp_pipeline::parse;
use deepinterp_pipeline::simulate::{Simulate2pRequest, SimulateEphysRequest, SimulateFmriRequest};
use deepinterp_pipeline::{
    DenoiseRequest, EvaluateRequest, FinetuneRequest, RawOptions, TrainRequest,
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
    TwoPhoton(Simulate2pRequest),
    /// A spike-band extracellular recording on a Neuropixels 1.0 layout: units with
    /// multichannel waveforms and Poisson firing, thermal noise. Writes SpikeGLX-style
    /// .bin + .meta files and the ground-truth spikes and units as CSV beside the noisy file.
    Ephys(SimulateEphysRequest),
    /// An fMRI run: a brain-shaped volume with grey/white matter and CSF, task (block and
    /// event) BOLD responses, spontaneous fluctuations, drift and thermal noise at a chosen
    /// tSNR. Writes NIfTI (.nii or .nii.gz): the noisy run as int16, the clean one as float32.
    Fmri(SimulateFmriRequest),
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
