//! `deepinterp denoise`: plan the output, then stream the recording through the network.
//! Movies and extracellular recordings share the engine; only opening and writing differ.
//! fMRI runs go through the volumetric path (`deepinterp::volume`), in parity or fast mode.

use anyhow::Result;
use deepinterp::engine::Engine;
use deepinterp::inference::{self, DenoiseSettings, EdgeMode};
use deepinterp::model::{Model, load_model};
use deepinterp::sampling::Window;
use deepinterp::volume::{VolumeDenoiseSettings, VolumeMode, denoise_volumes};
use deepinterp_io::WriteSummary;
use deepinterp_io::nifti::{NiftiDtype, create_volume_like, is_nifti_path, open_volume};
use deepinterp_io::output::OutputGuard;

use crate::backend::Infer;
use crate::commands::simulate::clipped_note;
use crate::progress;
use crate::recording::{Recording, modality_of};
use crate::{DenoiseArgs, DtypeArg, EdgesArg, EngineArg, ModeArg};

pub fn denoise(args: &DenoiseArgs) -> Result<WriteSummary> {
    // Replacing the raw recording (or the model) by the denoised output would lose it for good.
    let mut guard = OutputGuard::new();
    guard
        .recording("the input recording", &args.input)
        .input("the model", &args.model)
        .output("the denoised recording", &args.output);
    for sidecar in deepinterp_io::output::ephys_sidecars(&args.output) {
        guard.output("the denoised recording's header", &sidecar);
    }
    guard.check()?;
    let device = Default::default();
    let keras_window = match (
        args.window.pre_frames,
        args.window.post_frames,
        args.window.omitted_frames,
    ) {
        (None, None, None) => None,
        (pre, post, omitted) => {
            let pre = pre.or(post).unwrap_or(30);
            Some(Window::new(pre, post.unwrap_or(pre), omitted.unwrap_or(0))?)
        }
    };
    let model = load_model::<Infer>(&args.model, keras_window, &device)?;
    if let Some(window) = keras_window
        && model.spec.window != window
    {
        anyhow::bail!(
            "{}: the model was trained with window {}/{}/{} (pre/post/omitted frames); --pre/--post/--omitted-frames apply to Keras models only",
            args.model.display(),
            model.spec.window.pre_frames,
            model.spec.window.post_frames,
            model.spec.window.omitted_frames
        );
    }
    let modality = modality_of(&args.input);
    if model.spec.modality != modality {
        anyhow::bail!(
            "{}: a {} recording, but {} is a {} model ({})",
            args.input.display(),
            modality.name(),
            args.model.display(),
            model.spec.modality.name(),
            model.spec.architecture
        );
    }
    let Some(planar) = model.network.planar() else {
        return denoise_run(args, &model, &device);
    };
    anyhow::ensure!(
        args.mode == ModeArg::Fast,
        "{}: --mode parity applies to fMRI runs only; frame recordings are denoised one network pass per frame",
        args.input.display()
    );
    let row_multiple = planar.size_multiple()[0];
    let mut recording = Recording::open(&args.input, &args.raw, row_multiple)?;
    let settings = DenoiseSettings {
        edges: match args.edges {
            EdgesArg::Keep => EdgeMode::Keep,
            EdgesArg::Drop => EdgeMode::Drop,
            EdgesArg::DropPadHead => EdgeMode::DropPadHead,
        },
        batch_size: args.batch_size,
        start_frame: args.start_frame,
        end_frame: args.end_frame,
        stats_frames: args.stats_frames,
        engine: engine(args),
    };
    let plan = inference::plan(&model, recording.reader(), &settings)?;
    let dtype = args
        .dtype
        .map_or_else(|| recording.default_output_dtype(&args.output), Into::into);
    // The writer works on temp files: any error below drops it and removes them.
    let mut writer = recording.create_output(&args.output, dtype, &plan)?;
    let unit = match recording {
        Recording::Movie(_) => "frames",
        Recording::Ephys(_) => "samples",
    };
    let bar = progress::bar(plan.output_frames as u64, "denoise", unit);
    let started = std::time::Instant::now();
    inference::run(
        &model,
        recording.reader(),
        writer.as_mut(),
        &plan,
        &device,
        &mut |done| bar.set_position(done as u64),
    )?;
    let summary = writer.finish()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "denoised {} {unit} of {} with {} ({}, {} engine) into {} in {seconds:.1} s ({:.1} {unit}/s){}{}",
        plan.output_frames,
        args.input.display(),
        args.model.display(),
        model.spec.architecture,
        plan.engine.name(),
        summary.path.display(),
        plan.output_frames as f64 / seconds.max(1e-9),
        clipped_note(summary.clipped_values),
        progress::peak_rss_note()
    );
    Ok(summary)
}

/// The engine asked for, else this build's default (our kernels on the CPU, burn on CUDA).
fn engine(args: &DenoiseArgs) -> Engine {
    args.engine
        .map_or(crate::backend::DEFAULT_ENGINE, |engine| match engine {
            EngineArg::Kernels => Engine::Kernels,
            EngineArg::Burn => Engine::Burn,
        })
}

/// Denoises an fMRI run with a volumetric model, into a NIfTI file with the input's header.
fn denoise_run(
    args: &DenoiseArgs,
    model: &Model<Infer>,
    device: &burn::tensor::Device<Infer>,
) -> Result<WriteSummary> {
    anyhow::ensure!(
        is_nifti_path(&args.output),
        "{}: an fMRI run is written as NIfTI: name the output .nii or .nii.gz",
        args.output.display()
    );
    anyhow::ensure!(
        args.start_frame == 0
            && args.end_frame.is_none()
            && args.stats_frames.is_none()
            && args.edges == EdgesArg::Keep,
        "{}: --start-frame, --end-frame, --stats-frames and --edges apply to frame recordings; an fMRI run is denoised whole, every voxel and time point, with central-block statistics",
        args.input.display()
    );
    let mut reader = open_volume(&args.input)?;
    let dtype = match args.dtype {
        None | Some(DtypeArg::Float32) => NiftiDtype::F32,
        Some(DtypeArg::Int16) => NiftiDtype::I16,
        Some(DtypeArg::Uint16) => NiftiDtype::U16,
    };
    let frames = reader.info().frames;
    let settings = VolumeDenoiseSettings {
        mode: match args.mode {
            ModeArg::Parity => VolumeMode::Parity,
            ModeArg::Fast => VolumeMode::Fast,
        },
        batch_blocks: args.batch_size.unwrap_or(1024),
        engine: engine(args),
    };
    // The writer works on a temp file: any error below drops it and removes it.
    let mut writer = create_volume_like(&reader, &args.output, dtype, frames)?;
    let bar = progress::bar(frames as u64, "denoise", "volumes");
    let started = std::time::Instant::now();
    let outcome = denoise_volumes(
        model,
        &mut reader,
        &mut writer,
        &settings,
        device,
        &mut |done| bar.set_position(done as u64),
    )?;
    let summary = writer.finish()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "denoised {frames} volumes of {} with {} ({}, {} mode, {} network passes) into {} in {seconds:.1} s ({:.2} volumes/s){}{}",
        args.input.display(),
        args.model.display(),
        model.spec.architecture,
        match settings.mode {
            VolumeMode::Parity => "parity",
            VolumeMode::Fast => "fast",
        },
        outcome.blocks,
        summary.path.display(),
        frames as f64 / seconds.max(1e-9),
        clipped_note(summary.clipped_values),
        progress::peak_rss_note()
    );
    Ok(summary)
}
