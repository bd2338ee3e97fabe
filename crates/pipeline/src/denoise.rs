//! Denoising runs: the output claimed before any work (never over the recording, the model or
//! their sidecars), the model checked against the recording, then the recording streamed
//! through the network into an output that appears only when complete. Movies and
//! extracellular recordings share the frame path; fMRI runs go through the volumetric one
//! (`deepinterp::volume`), in parity or fast mode.

use std::path::PathBuf;

use deepinterp::engine::Engine;
use deepinterp::inference::{self, DenoisePlan, DenoiseSettings, EdgeMode};
use deepinterp::model::{Model, load_model};
use deepinterp::sampling::Window;
use deepinterp::volume::{VolumeDenoiseSettings, VolumeMode, denoise_volumes};
use deepinterp_io::nifti::{NiftiDtype, create_volume_like, is_nifti_path, open_volume};
use deepinterp_io::output::OutputGuard;
use deepinterp_io::{Dtype, MovieWriter, WriteSummary};

use crate::backend::{Infer, engine_or_default};
use crate::error::{Result, ensure, refuse};
use crate::progress::{Progress, Reporter, advance, peak_rss_note};
use crate::recording::{RawOptions, Recording, modality_of};

/// Sample types an output can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OutputDtype {
    /// 32-bit float.
    Float32,
    /// 16-bit signed integer (rounded and clipped).
    Int16,
    /// 16-bit unsigned integer (rounded and clipped).
    Uint16,
}

impl From<OutputDtype> for Dtype {
    fn from(value: OutputDtype) -> Self {
        match value {
            OutputDtype::Float32 => Dtype::F32,
            OutputDtype::Int16 => Dtype::I16,
            OutputDtype::Uint16 => Dtype::U16,
        }
    }
}

/// A denoising run: the recording, the model, the output and the settings.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DenoiseRequest {
    /// Recording to denoise.
    pub input: PathBuf,
    /// How to read a headerless raw recording.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub raw: RawOptions,
    /// Denoised recording to write: .h5 or .tif for movies; for ephys .bin/.dat keeps the
    /// input's layout (channels, sync, header), .h5 writes the probe grid as the original does.
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: PathBuf,
    /// Model: a deepinterp model file or an original Keras .h5.
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: PathBuf,
    /// Edge frames: keep (predict every frame), drop (the original's layout), or
    /// drop-pad-head (the original's output_padding: zeros for the head only).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = EdgeMode::Keep))]
    pub edges: EdgeMode,
    /// Output data type (default float32; ephys .bin/.dat: the input's, int16); integer
    /// outputs are rounded and clipped (clipping is reported).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub dtype: Option<OutputDtype>,
    /// Frames per network call (default from the frame size); fMRI: voxel blocks per call
    /// (default 1024).
    #[cfg_attr(feature = "clap", arg(long, value_parser = crate::parse::at_least_one))]
    pub batch_size: Option<usize>,
    /// First frame to process.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub start_frame: usize,
    /// Last frame to process, inclusive.
    #[cfg_attr(feature = "clap", arg(long))]
    pub end_frame: Option<usize>,
    /// Frames (from the head of the file) for the normalisation statistics.
    #[cfg_attr(feature = "clap", arg(long, value_parser = crate::parse::at_least_one))]
    pub stats_frames: Option<usize>,
    /// Keras models, which do not record a window: frames before the predicted frame
    /// (default: half the input frames each side).
    #[cfg_attr(feature = "clap", arg(long))]
    pub pre_frames: Option<usize>,
    /// Keras models: frames after the predicted frame.
    #[cfg_attr(feature = "clap", arg(long))]
    pub post_frames: Option<usize>,
    /// Keras models: frames left out on each side of the predicted frame.
    #[cfg_attr(feature = "clap", arg(long))]
    pub omitted_frames: Option<usize>,
    /// fMRI only: parity (one network pass per voxel and time point, the original's output)
    /// or fast (blocks tiled over each volume, many voxels per pass).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = VolumeMode::Fast))]
    pub mode: VolumeMode,
    /// What runs the network: our CPU kernels (the default of a CPU build) or burn (the
    /// default with CUDA; on the CPU, the reference implementation, slower).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub engine: Option<Engine>,
}

impl DenoiseRequest {
    /// Denoises `input` with `model` into `output`, every setting at its default.
    pub fn new(input: PathBuf, output: PathBuf, model: PathBuf) -> Self {
        Self {
            input,
            raw: RawOptions::default(),
            output,
            model,
            edges: EdgeMode::Keep,
            dtype: None,
            batch_size: None,
            start_frame: 0,
            end_frame: None,
            stats_frames: None,
            pre_frames: None,
            post_frames: None,
            omitted_frames: None,
            mode: VolumeMode::Fast,
            engine: None,
        }
    }

    /// The window given for a Keras model, if any (pre defaults to post and post to pre;
    /// omitted to 0).
    pub fn keras_window(&self) -> Result<Option<Window>> {
        Ok(
            match (self.pre_frames, self.post_frames, self.omitted_frames) {
                (None, None, None) => None,
                (pre, post, omitted) => {
                    let pre = pre.or(post).unwrap_or(30);
                    Some(Window::new(pre, post.unwrap_or(pre), omitted.unwrap_or(0))?)
                }
            },
        )
    }
}

/// What a finished run wrote.
#[derive(Clone, Debug)]
pub struct DenoiseReport {
    /// The output file and what writing it did (clipping).
    pub written: WriteSummary,
    /// Frames (samples for ephys, volumes for fMRI) written.
    pub frames: usize,
    /// What a frame is called: "frames", "samples" or "volumes".
    pub unit: &'static str,
    /// The engine that ran the network.
    pub engine: Engine,
    /// Wall time of the denoising itself, seconds.
    pub seconds: f64,
}

/// Denoises a recording file into an output file.
pub fn denoise(request: &DenoiseRequest, report: Reporter<'_>) -> Result<DenoiseReport> {
    // Replacing the raw recording (or the model) by the denoised output would lose it for good.
    let mut guard = OutputGuard::new();
    guard
        .recording("the input recording", &request.input)
        .input("the model", &request.model)
        .output("the denoised recording", &request.output);
    for sidecar in deepinterp_io::output::ephys_sidecars(&request.output) {
        guard.output("the denoised recording's header", &sidecar);
    }
    guard.check()?;
    let device = Default::default();
    let model = load_denoiser(request, &device)?;
    check_modality(request, &model, modality_of(&request.input))?;
    let Some(planar) = model.network.planar() else {
        return denoise_volumetric(request, &model, &device, report);
    };
    let row_multiple = planar.size_multiple()[0];
    let mut recording = Recording::open(&request.input, &request.raw, row_multiple)?;
    let output = request.output.clone();
    denoise_frames(
        request,
        &model,
        &mut recording,
        &mut |recording, plan| {
            let dtype = request
                .dtype
                .map_or_else(|| recording.default_output_dtype(&output), Into::into);
            recording.create_output(&output, dtype, plan)
        },
        report,
    )
}

/// Loads the request's model for inference: a Keras model takes the request's window (it
/// records none); our models must not be given a different one.
pub fn load_denoiser(
    request: &DenoiseRequest,
    device: &burn::tensor::Device<Infer>,
) -> Result<Model<Infer>> {
    let keras_window = request.keras_window()?;
    let model = load_model::<Infer>(&request.model, keras_window, device)?;
    if let Some(window) = keras_window
        && model.spec.window != window
    {
        refuse!(
            "{}: the model was trained with window {}/{}/{} (pre/post/omitted frames); --pre/--post/--omitted-frames apply to Keras models only",
            request.model.display(),
            model.spec.window.pre_frames,
            model.spec.window.post_frames,
            model.spec.window.omitted_frames
        );
    }
    Ok(model)
}

/// Refuses a model of another modality than the recording's.
fn check_modality(
    request: &DenoiseRequest,
    model: &Model<Infer>,
    modality: deepinterp::model::Modality,
) -> Result<()> {
    ensure!(
        model.spec.modality == modality,
        "{}: a {} recording, but {} is a {} model ({})",
        request.input.display(),
        modality.name(),
        request.model.display(),
        model.spec.modality.name(),
        model.spec.architecture
    );
    Ok(())
}

/// Makes the writer of a planned output (the plan says how many frames of what size).
pub type CreateWriter<'w> =
    dyn FnMut(&Recording, &DenoisePlan) -> Result<Box<dyn MovieWriter>> + 'w;

/// Denoises an opened frame recording (a movie, or an extracellular recording on its probe
/// grid) with a planar `model`, into the writer `create_writer` makes once the output is
/// planned. `request` gives the settings (its paths only name things in messages). Front
/// ends with recordings that are not files (arrays) pass their own recording and writer.
pub fn denoise_frames(
    request: &DenoiseRequest,
    model: &Model<Infer>,
    recording: &mut Recording,
    create_writer: &mut CreateWriter<'_>,
    report: Reporter<'_>,
) -> Result<DenoiseReport> {
    ensure!(
        request.mode == VolumeMode::Fast,
        "{}: --mode parity applies to fMRI runs only; frame recordings are denoised one network pass per frame",
        request.input.display()
    );
    check_modality(request, model, recording.modality())?;
    let device = Default::default();
    let settings = DenoiseSettings {
        edges: request.edges,
        batch_size: request.batch_size,
        start_frame: request.start_frame,
        end_frame: request.end_frame,
        stats_frames: request.stats_frames,
        engine: engine_or_default(request.engine),
    };
    let plan = inference::plan(model, recording.reader(), &settings)?;
    // The writer works on temp files: any error below drops it and removes them.
    let mut writer = create_writer(recording, &plan)?;
    let unit = recording.unit();
    report.show(Progress::Begin {
        label: "denoise",
        total: plan.output_frames as u64,
        unit,
    });
    let started = std::time::Instant::now();
    inference::run(
        model,
        recording.reader(),
        writer.as_mut(),
        &plan,
        &device,
        &mut |done| advance(report, done as u64, None),
    )?;
    let written = writer.finish()?;
    report.show(Progress::End);
    let seconds = started.elapsed().as_secs_f64();
    report.show(Progress::Line(format!(
        "denoised {} {unit} of {} with {} ({}, {} engine) into {} in {seconds:.1} s ({:.1} {unit}/s){}{}",
        plan.output_frames,
        request.input.display(),
        request.model.display(),
        model.spec.architecture,
        plan.engine.name(),
        written.path.display(),
        plan.output_frames as f64 / seconds.max(1e-9),
        clipped_note(written.clipped_values),
        peak_rss_note()
    )));
    Ok(DenoiseReport {
        written,
        frames: plan.output_frames,
        unit,
        engine: plan.engine,
        seconds,
    })
}

/// Denoises an fMRI run with a volumetric model, into a NIfTI file with the input's header.
fn denoise_volumetric(
    request: &DenoiseRequest,
    model: &Model<Infer>,
    device: &burn::tensor::Device<Infer>,
    report: Reporter<'_>,
) -> Result<DenoiseReport> {
    ensure!(
        is_nifti_path(&request.output),
        "{}: an fMRI run is written as NIfTI: name the output .nii or .nii.gz",
        request.output.display()
    );
    ensure!(
        request.start_frame == 0
            && request.end_frame.is_none()
            && request.stats_frames.is_none()
            && request.edges == EdgeMode::Keep,
        "{}: --start-frame, --end-frame, --stats-frames and --edges apply to frame recordings; an fMRI run is denoised whole, every voxel and time point, with central-block statistics",
        request.input.display()
    );
    let mut reader = open_volume(&request.input)?;
    let dtype = match request.dtype {
        None | Some(OutputDtype::Float32) => NiftiDtype::F32,
        Some(OutputDtype::Int16) => NiftiDtype::I16,
        Some(OutputDtype::Uint16) => NiftiDtype::U16,
    };
    let frames = reader.info().frames;
    let settings = VolumeDenoiseSettings {
        mode: request.mode,
        batch_blocks: request
            .batch_size
            .unwrap_or(VolumeDenoiseSettings::default().batch_blocks),
        engine: engine_or_default(request.engine),
    };
    // The writer works on a temp file: any error below drops it and removes it.
    let mut writer = create_volume_like(&reader, &request.output, dtype, frames)?;
    report.show(Progress::Begin {
        label: "denoise",
        total: frames as u64,
        unit: "volumes",
    });
    let started = std::time::Instant::now();
    let outcome = denoise_volumes(
        model,
        &mut reader,
        &mut writer,
        &settings,
        device,
        &mut |done| advance(report, done as u64, None),
    )?;
    let written = writer.finish()?;
    report.show(Progress::End);
    let seconds = started.elapsed().as_secs_f64();
    report.show(Progress::Line(format!(
        "denoised {frames} volumes of {} with {} ({}, {} mode, {} network passes) into {} in {seconds:.1} s ({:.2} volumes/s){}{}",
        request.input.display(),
        request.model.display(),
        model.spec.architecture,
        match settings.mode {
            VolumeMode::Parity => "parity",
            VolumeMode::Fast => "fast",
        },
        outcome.blocks,
        written.path.display(),
        frames as f64 / seconds.max(1e-9),
        clipped_note(written.clipped_values),
        peak_rss_note()
    )));
    Ok(DenoiseReport {
        written,
        frames,
        unit: "volumes",
        engine: settings.engine,
        seconds,
    })
}

/// `"; N values were clipped …"` when writing an integer type clipped any, else nothing.
pub fn clipped_note(clipped: u64) -> String {
    if clipped == 0 {
        String::new()
    } else {
        format!("; {clipped} values were clipped to the output type's range")
    }
}
