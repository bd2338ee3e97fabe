//! Inference: denoising a whole recording, streamed in batches of frames.
//!
//! Memory holds one block of normalised frames (a batch plus one window) and one batch of
//! network activations, whatever the recording's length. Edge frames are handled by
//! [`EdgeMode`]: by default every frame is predicted (time-mirrored windows at the edges, see
//! [`Window::source_frames`]); `Drop` and `DropPadHead` reproduce the original's layouts.

use std::ops::Range;

use burn::tensor::backend::Backend;
use deepinterp_io::{MovieReader, MovieWriter};
use serde::{Deserialize, Serialize};

use deepinterp_io::limits::check_memory;

use crate::engine::{Engine, Forward};
use crate::error::{EngineError, first_non_finite};
use crate::model::Model;
use crate::sampling::{FrameBlock, Normalization, Window};

/// What happens to frames whose window does not fit inside the recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum EdgeMode {
    /// Predict them too, from time-mirrored windows: output length = input length.
    Keep,
    /// Leave them out, as the original does: output frame `i` is input frame `pre+omit+i`.
    Drop,
    /// The original's `output_padding=True`: zero frames for the skipped head, none for the tail.
    DropPadHead,
}

/// Settings of one denoising run.
#[derive(Clone, Debug)]
pub struct DenoiseSettings {
    /// Edge handling.
    pub edges: EdgeMode,
    /// Frames per network call; `None` picks one from the frame size.
    pub batch_size: Option<usize>,
    /// First frame to process.
    pub start_frame: usize,
    /// Last frame to process, inclusive (`None`: the last frame of the recording).
    pub end_frame: Option<usize>,
    /// Frames the normalisation statistics come from (`None`: the model's policy).
    pub stats_frames: Option<usize>,
    /// What runs the network.
    pub engine: Engine,
}

impl Default for DenoiseSettings {
    fn default() -> Self {
        Self {
            edges: EdgeMode::Keep,
            batch_size: None,
            start_frame: 0,
            end_frame: None,
            stats_frames: None,
            engine: Engine::default(),
        }
    }
}

/// The frames a run will produce, decided before any output is written.
#[derive(Clone, Debug)]
pub struct DenoisePlan {
    /// Centres predicted, in order.
    pub centres: Range<usize>,
    /// All-zero frames written before the first prediction (`DropPadHead`).
    pub head_zero_frames: usize,
    /// Frames in the output.
    pub output_frames: usize,
    /// Normalisation of the recording.
    pub normalization: Normalization,
    /// Frames per network call.
    pub batch_size: usize,
    /// Frame height.
    pub height: usize,
    /// Frame width.
    pub width: usize,
    /// What runs the network.
    pub engine: Engine,
}

/// Decides what a run produces; fails before any output exists if the recording cannot be
/// denoised with this model.
pub fn plan<B: Backend>(
    model: &Model<B>,
    reader: &mut dyn MovieReader,
    settings: &DenoiseSettings,
) -> Result<DenoisePlan, EngineError> {
    let info = reader.info().clone();
    let window = model.spec.window;
    let path = reader.path().to_path_buf();
    window.validate()?;
    if model.network.planar().is_none() {
        return Err(EngineError::recording(
            &path,
            format!(
                "a {} model cannot denoise a frame recording",
                model.spec.modality.name()
            ),
        ));
    }
    let last = settings.end_frame.unwrap_or(info.frames.saturating_sub(1));
    if info.frames == 0 || last >= info.frames || settings.start_frame > last {
        return Err(EngineError::recording(
            &path,
            format!(
                "--start-frame {} and --end-frame {last} do not select frames of the recording's {} (first 0, last {})",
                settings.start_frame,
                info.frames,
                info.frames.saturating_sub(1)
            ),
        ));
    }
    let (centres, head_zero_frames) = match settings.edges {
        EdgeMode::Keep => {
            let needed = window.min_frames_full_length();
            if info.frames < needed {
                return Err(too_few_frames(&path, info.frames, needed, &window));
            }
            (settings.start_frame..last + 1, 0)
        }
        EdgeMode::Drop | EdgeMode::DropPadHead => {
            let last_full = window
                .last_full_centre(info.frames)
                .ok_or_else(|| too_few_frames(&path, info.frames, window.span(), &window))?;
            let first = settings.start_frame.max(window.first_full_centre());
            let end = last.min(last_full) + 1;
            if first >= end {
                return Err(EngineError::recording(
                    &path,
                    format!(
                        "no frame in {}..={last} has a full window of {} frames",
                        settings.start_frame,
                        window.span()
                    ),
                ));
            }
            let head = if settings.edges == EdgeMode::DropPadHead {
                first - settings.start_frame
            } else {
                0
            };
            (first..end, head)
        }
    };
    let stats_frames = settings
        .stats_frames
        .unwrap_or(model.spec.normalization.stats_frames);
    let normalization = Normalization::from_head(reader, stats_frames)?;
    let pixels = info.height.saturating_mul(info.width);
    // About 2^19 pixels per call keeps burn's activations of the paper network near 1-2 GB.
    // The kernels run a 512×512 frame as fast alone as in company (its layers are wide
    // enough already), so they take half that: one such frame, ~600 MB of activations.
    let pixels_per_call = match settings.engine {
        Engine::Burn => 1usize << 19,
        Engine::Kernels => 1usize << 18,
    };
    let batch_size = settings
        .batch_size
        .unwrap_or_else(|| (pixels_per_call / pixels.max(1)).clamp(1, 64))
        .max(1);
    check_batch_memory(
        model,
        settings.batch_size.is_some(),
        batch_size,
        pixels,
        &path,
    )?;
    Ok(DenoisePlan {
        output_frames: head_zero_frames + centres.len(),
        centres,
        head_zero_frames,
        normalization,
        batch_size,
        height: info.height,
        width: info.width,
        engine: settings.engine,
    })
}

/// Errors when one network call on `batch_size` frames of `pixels` would exceed the memory
/// budget: its inputs, outputs and activations (see
/// [`crate::model::Network::activation_floats_per_pixel`]), checked before the batch exists.
fn check_batch_memory<B: Backend>(
    model: &Model<B>,
    from_flag: bool,
    batch_size: usize,
    pixels: usize,
    path: &std::path::Path,
) -> Result<(), EngineError> {
    let per_pixel =
        model.network.activation_floats_per_pixel() + model.spec.window.input_frames() as f64 + 1.0;
    // Intermediate results that burn keeps alive within a call (padding, pooling, the
    // concatenations): about twice the plain activations.
    let bytes = 2.0 * 4.0 * per_pixel * batch_size as f64 * pixels as f64;
    let bytes = if bytes >= u64::MAX as f64 {
        u64::MAX
    } else {
        bytes as u64
    };
    let (source, what) = if from_flag {
        (
            std::path::PathBuf::from(format!("--batch-size {batch_size}")),
            "a batch of frames and its network activations".to_string(),
        )
    } else {
        (
            path.to_path_buf(),
            format!("a batch of {batch_size} frames and its network activations"),
        )
    };
    check_memory(&source, &what, bytes)?;
    Ok(())
}

fn too_few_frames(
    path: &std::path::Path,
    frames: usize,
    needed: usize,
    window: &Window,
) -> EngineError {
    EngineError::recording(
        path,
        format!("{frames} frames is too few: the window ({window}) needs at least {needed}"),
    )
}

/// Runs the plan: reads, normalises, predicts, rescales and writes every output frame.
/// `progress` is called with the number of output frames written so far; an error from it
/// (e.g. [`EngineError::Stopped`]) ends the run there, the writer unfinished.
pub fn run<B: Backend>(
    model: &Model<B>,
    reader: &mut dyn MovieReader,
    writer: &mut dyn MovieWriter,
    plan: &DenoisePlan,
    device: &B::Device,
    progress: &mut dyn FnMut(usize) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let window = model.spec.window;
    if model.network.planar().is_none() {
        return Err(EngineError::InvalidModel(
            "a volumetric model cannot denoise frames".into(),
        ));
    }
    let mut forward = Forward::new(&model.network, plan.engine, device)?;
    let frames = reader.info().frames;
    let (height, width) = (plan.height, plan.width);
    let plane = height * width;
    let channels = window.input_frames();
    if plan.head_zero_frames > 0 {
        writer.write_frames(
            &vec![0.0; plan.head_zero_frames * plane],
            plan.head_zero_frames,
        )?;
        progress(plan.head_zero_frames)?;
    }
    let mut block = FrameBlock::new(height, width);
    let mut written = plan.head_zero_frames;
    let mut centre = plan.centres.start;
    while centre < plan.centres.end {
        let batch = plan.batch_size.min(plan.centres.end - centre);
        let sources: Vec<Vec<usize>> = (centre..centre + batch)
            .map(|c| window.source_frames(c, frames))
            .collect();
        let lowest = sources.iter().flatten().copied().min().unwrap_or(centre);
        let highest = sources.iter().flatten().copied().max().unwrap_or(centre);
        block.load(reader, &plan.normalization, lowest..highest + 1)?;
        // The samples' channels are the held frames themselves: nothing is copied per batch.
        let planes: Vec<&[f32]> = sources.iter().flatten().map(|&f| block.frame(f)).collect();
        let mut values = forward.planar_planes(&planes, [batch, channels, height, width])?;
        // A NaN or infinity never reaches the writer: the run fails and the writer, dropped
        // on the error, removes its unfinished file.
        if let Some((index, value)) = first_non_finite(&values) {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "the network's output for frame {} is not finite ({value}); nothing was written",
                    centre + index / plane.max(1)
                ),
            ));
        }
        plan.normalization.restore(&mut values);
        writer.write_frames(&values, batch)?;
        written += batch;
        centre += batch;
        progress(written)?;
    }
    Ok(())
}
