//! `deepinterp denoise`: plan the output, then stream the recording through the network.
//! Movies and extracellular recordings share the engine; only opening and writing differ.

use anyhow::Result;
use deepinterp::inference::{self, DenoiseSettings, EdgeMode};
use deepinterp::model::load_model;
use deepinterp::sampling::Window;
use deepinterp_io::WriteSummary;

use crate::backend::Infer;
use crate::commands::simulate::clipped_note;
use crate::progress;
use crate::recording::{Recording, modality_of};
use crate::{DenoiseArgs, EdgesArg};

pub fn denoise(args: &DenoiseArgs) -> Result<WriteSummary> {
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
            "{}: the model was trained with window {:?}; --pre/--post/--omitted-frames apply to Keras models only",
            args.model.display(),
            model.spec.window
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
    let row_multiple = model.network.size_multiple()[0];
    let mut recording = Recording::open(&args.input, &args.raw, row_multiple)?;
    // Replacing the raw recording by its denoised version would lose the raw data for good.
    if let (Ok(input), Ok(output)) = (args.input.canonicalize(), args.output.canonicalize())
        && input == output
    {
        anyhow::bail!(
            "{}: refusing to overwrite the input recording with its denoised version; choose another -o",
            args.output.display()
        );
    }
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
        "denoised {} {unit} of {} with {} ({}) into {} in {seconds:.1} s ({:.1} {unit}/s){}{}",
        plan.output_frames,
        args.input.display(),
        args.model.display(),
        model.spec.architecture,
        summary.path.display(),
        plan.output_frames as f64 / seconds.max(1e-9),
        clipped_note(summary.clipped_values),
        progress::peak_rss_note()
    );
    Ok(summary)
}
