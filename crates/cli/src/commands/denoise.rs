//! `deepinterp denoise`: plan the output, then stream the recording through the network.

use anyhow::Result;
use deepinterp::inference::{self, DenoiseSettings, EdgeMode};
use deepinterp::model::load_model;
use deepinterp::sampling::Window;
use deepinterp_io::{MovieInfo, WriteSummary, create_movie, open_movie};

use crate::backend::Infer;
use crate::commands::simulate::clipped_note;
use crate::progress;
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
    let mut reader = open_movie(&args.input)?;
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
    let plan = inference::plan(&model, reader.as_mut(), &settings)?;
    let info = MovieInfo {
        frames: plan.output_frames,
        height: plan.height,
        width: plan.width,
        dtype: args.dtype.into(),
    };
    // The writer works on a temp file: any error below drops it and removes the temp file.
    let mut writer = create_movie(&args.output, &info)?;
    let bar = progress::bar(plan.output_frames as u64, "denoise", "frames");
    let started = std::time::Instant::now();
    inference::run(
        &model,
        reader.as_mut(),
        writer.as_mut(),
        &plan,
        &device,
        &mut |done| bar.set_position(done as u64),
    )?;
    let summary = writer.finish()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "denoised {} frames of {} with {} ({}) into {} in {seconds:.1} s ({:.1} frames/s){}{}",
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
