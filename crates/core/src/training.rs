//! Training: self-supervised fitting of a U-Net to predict each frame from its neighbours.
//!
//! Samples are drawn from a block of frames held in memory (a bounded number of frames,
//! refreshed from a random place in a random input every few steps), so training memory does
//! not grow with recording length. Validation uses a fixed, seeded set of samples from a
//! held-out frame range (the tail of each input) or from separate files. Each epoch ends with
//! a checkpoint (network + optimiser state + progress) that [`train`] resumes from, and the
//! best model so far (by validation loss) is reported to the caller to save.

use std::path::Path;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer, RmsPropConfig};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use deepinterp_io::MovieReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::UNet;
use crate::sampling::{Crop, FrameBlock, Normalization, Window};

/// Loss between prediction and target, averaged over every output pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean absolute error (the paper's default).
    L1,
    /// Mean squared error (better at very low photon counts).
    L2,
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// RMSprop as in Keras (rho 0.9, eps 1e-7, no momentum): the paper's.
    RmsProp,
    /// Adam (beta 0.9/0.999, eps 1e-7).
    Adam,
}

/// Where validation samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ValidationSource {
    /// The last `fraction` of each input's frames, never used for training.
    HeldOut {
        /// Fraction of frames held out (0 disables validation).
        fraction: f64,
    },
    /// The separate validation recordings given to [`train`] (all of their frames).
    Separate,
}

/// Settings of a training run.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Frames around each target.
    pub window: Window,
    /// Loss function.
    pub loss: Loss,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// Halve the learning rate every this many epochs: `lr0 * 0.5^floor((1+epoch)/n)`.
    pub lr_halving_epochs: Option<usize>,
    /// Samples per step.
    pub batch_size: usize,
    /// Total optimiser steps.
    pub steps: usize,
    /// Steps between validations/checkpoints.
    pub steps_per_epoch: usize,
    /// Stop (after saving) once this much wall time has passed.
    pub max_minutes: Option<f64>,
    /// Side of the square training crops (rounded down to what the network needs);
    /// `None` trains on whole frames.
    pub patch_size: Option<usize>,
    /// Validation data.
    pub validation: ValidationSource,
    /// Validation samples (fixed for the whole run).
    pub validation_samples: usize,
    /// Frames for normalisation statistics (the head of each file).
    pub stats_frames: usize,
    /// Frames held in memory for sampling at once.
    pub cache_frames: usize,
    /// Steps between refreshes of the frame cache.
    pub cache_refresh_steps: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

/// One row of the loss history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Steps completed.
    pub step: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Validation loss at the end of the epoch.
    pub validation_loss: Option<f64>,
    /// Learning rate used in the epoch.
    pub learning_rate: f64,
    /// Wall seconds since the run (or its first segment) started.
    pub elapsed_seconds: f64,
    /// Whether this epoch produced the best model so far.
    pub improved: bool,
}

/// What the training loop tells its caller.
pub enum TrainEvent<'a, B: Backend> {
    /// The data checked out and the loop is about to start.
    Started {
        /// Frames available for training, over all inputs.
        train_frames: usize,
        /// Fixed validation samples (0: no validation).
        validation_samples: usize,
        /// Epochs already run, restored from a checkpoint (empty for a fresh run).
        resumed_history: &'a [EpochReport],
    },
    /// A step finished.
    Step {
        /// Steps completed.
        step: usize,
        /// Loss of the step's batch.
        loss: f64,
    },
    /// An epoch finished; `best` is the network to save when it improved.
    Epoch {
        /// The epoch's figures.
        report: &'a EpochReport,
        /// The network after the epoch (inner backend).
        network: &'a UNet<B>,
    },
}

/// The caller's handler of [`TrainEvent`]s; an error stops the run.
pub type EventSink<'a, B> = dyn FnMut(TrainEvent<'_, B>) -> Result<(), EngineError> + 'a;

/// Opened recordings, in the engine's frame view.
type Recordings = Vec<Box<dyn MovieReader>>;

/// Validation recordings with their normalisation.
type ValidationReaders = Vec<(Box<dyn MovieReader>, Normalization)>;

/// Result of a run.
pub struct TrainOutcome {
    /// Every epoch, resumed ones included.
    pub history: Vec<EpochReport>,
    /// Steps completed.
    pub steps: usize,
    /// Whether the run stopped on its time budget before `steps`.
    pub stopped_on_time: bool,
}

/// Progress state stored in checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Progress {
    step: usize,
    history: Vec<EpochReport>,
    best_validation_loss: Option<f64>,
    settings_fingerprint: String,
}

/// One input recording with its normalisation and the frames training may use.
struct Source {
    reader: Box<dyn MovieReader>,
    normalization: Normalization,
    train_range: std::ops::Range<usize>,
}

/// A sample already cut out: `channels` input planes and a target plane of one crop.
struct Sample {
    input: Vec<f32>,
    target: Vec<f32>,
}

/// Trains `network` on `inputs`; calls `on_event` after each step and epoch. If `checkpoint`
/// exists and matches the settings, the run resumes from it.
pub fn train<B: AutodiffBackend>(
    network: UNet<B>,
    inputs: Vec<Box<dyn MovieReader>>,
    validation_inputs: Vec<Box<dyn MovieReader>>,
    settings: &TrainSettings,
    checkpoint: &Path,
    device: &B::Device,
    on_event: &mut EventSink<'_, B::InnerBackend>,
) -> Result<TrainOutcome, EngineError> {
    let recordings = (inputs, validation_inputs);
    match settings.optimizer {
        OptimizerKind::RmsProp => {
            let optimizer = RmsPropConfig::new()
                .with_alpha(0.9)
                .with_momentum(0.0)
                .with_epsilon(1e-7)
                .init::<B, UNet<B>>();
            train_with(
                network, optimizer, recordings, settings, checkpoint, device, on_event,
            )
        }
        OptimizerKind::Adam => {
            let optimizer = AdamConfig::new().with_epsilon(1e-7).init::<B, UNet<B>>();
            train_with(
                network, optimizer, recordings, settings, checkpoint, device, on_event,
            )
        }
    }
}

fn settings_fingerprint(settings: &TrainSettings) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}|{}|{:?}|{}",
        settings.window,
        settings.loss,
        settings.optimizer,
        settings.batch_size,
        settings.steps_per_epoch,
        settings.patch_size,
        settings.seed
    )
}

#[allow(clippy::too_many_arguments)]
fn train_with<B: AutodiffBackend, O: Optimizer<UNet<B>, B>>(
    mut network: UNet<B>,
    mut optimizer: O,
    (inputs, validation_inputs): (Recordings, Recordings),
    settings: &TrainSettings,
    checkpoint: &Path,
    device: &B::Device,
    on_event: &mut EventSink<'_, B::InnerBackend>,
) -> Result<TrainOutcome, EngineError> {
    let started = Instant::now();
    let window = settings.window;
    if settings.batch_size == 0 || settings.steps_per_epoch == 0 {
        return Err(EngineError::Settings(
            "batch size and steps per epoch must be positive".into(),
        ));
    }
    let (mut sources, validation_readers) = split_sources(inputs, validation_inputs, settings)?;
    let (height, width) = {
        let info = sources[0].reader.info();
        (info.height, info.width)
    };
    let crop = CropRule {
        size: crop_size(&network, settings.patch_size, height, width),
        // A probe grid's checkerboard repeats every two sites: crops keep its phase.
        alignment: if sources[0].reader.site_mask().is_some() {
            2
        } else {
            1
        },
    };
    let crop_size = crop.size;
    let validation = validation_set(&mut sources, validation_readers, settings, crop)?;

    let fingerprint = settings_fingerprint(settings);
    let mut progress = Progress {
        step: 0,
        history: Vec::new(),
        best_validation_loss: None,
        settings_fingerprint: fingerprint.clone(),
    };
    if checkpoint.exists() {
        let (restored_network, restored_optimizer, restored) =
            load_checkpoint::<B, O>(checkpoint, network, optimizer, device)?;
        if restored.settings_fingerprint != fingerprint {
            return Err(EngineError::Settings(format!(
                "{}: checkpoint was made with other settings; delete it or run with the same settings",
                checkpoint.display()
            )));
        }
        network = restored_network;
        optimizer = restored_optimizer;
        progress = restored;
    }

    on_event(TrainEvent::Started {
        train_frames: sources.iter().map(|s| s.train_range.len()).sum(),
        validation_samples: validation.as_ref().map_or(0, Vec::len),
        resumed_history: &progress.history,
    })?;
    let mut block = FrameBlock::new(height, width);
    let mut active_source = usize::MAX;
    let mut stopped_on_time = false;
    let channels = window.input_frames();
    while progress.step < settings.steps {
        let epoch = progress.step / settings.steps_per_epoch;
        // Each epoch's randomness depends only on (seed, epoch): resumed runs replay exactly.
        let mut rng = StdRng::seed_from_u64(
            settings.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let learning_rate = match settings.lr_halving_epochs {
            Some(n) if n > 0 => settings.learning_rate * 0.5f64.powi(((1 + epoch) / n) as i32),
            _ => settings.learning_rate,
        };
        let epoch_end = ((epoch + 1) * settings.steps_per_epoch).min(settings.steps);
        let mut loss_sum = 0.0;
        let mut loss_count = 0usize;
        while progress.step < epoch_end {
            let within_epoch = progress.step - epoch * settings.steps_per_epoch;
            if active_source == usize::MAX
                || within_epoch.is_multiple_of(settings.cache_refresh_steps.max(1))
            {
                active_source = refill_cache(&mut sources, &mut block, settings, &mut rng)?;
            }
            let mut batch_inputs =
                Vec::with_capacity(settings.batch_size * channels * crop_size.0 * crop_size.1);
            let mut batch_targets =
                Vec::with_capacity(settings.batch_size * crop_size.0 * crop_size.1);
            for _ in 0..settings.batch_size {
                let sample = draw_sample(&block, &window, crop, &mut rng, height, width);
                batch_inputs.extend_from_slice(&sample.input);
                batch_targets.extend_from_slice(&sample.target);
            }
            let shape_in = [settings.batch_size, channels, crop_size.0, crop_size.1];
            let shape_out = [settings.batch_size, 1, crop_size.0, crop_size.1];
            let input = Tensor::<B, 4>::from_data(TensorData::new(batch_inputs, shape_in), device);
            let target =
                Tensor::<B, 4>::from_data(TensorData::new(batch_targets, shape_out), device);
            let prediction = network.forward_any_size(input);
            let loss = loss_value(prediction, target, settings.loss);
            let loss_scalar: f64 = loss.clone().into_scalar().elem_f64();
            if !loss_scalar.is_finite() {
                return Err(EngineError::Settings(format!(
                    "training diverged at step {} (loss {loss_scalar}); lower the learning rate",
                    progress.step
                )));
            }
            let gradients = GradientsParams::from_grads(loss.backward(), &network);
            network = optimizer.step(learning_rate, network, gradients);
            progress.step += 1;
            loss_sum += loss_scalar;
            loss_count += 1;
            on_event(TrainEvent::Step {
                step: progress.step,
                loss: loss_scalar,
            })?;
            if let Some(limit) = settings.max_minutes
                && started.elapsed().as_secs_f64() > limit * 60.0
            {
                stopped_on_time = true;
                break;
            }
        }
        let inner = network.valid();
        let validation_loss = validation
            .as_ref()
            .map(|samples| validation_loss(&inner, samples, crop_size, channels, settings, device));
        let improved = match (validation_loss, progress.best_validation_loss) {
            (Some(current), Some(best)) => current < best,
            (Some(_), None) => true,
            (None, _) => true,
        };
        if improved && validation_loss.is_some() {
            progress.best_validation_loss = validation_loss;
        }
        let report = EpochReport {
            epoch,
            step: progress.step,
            train_loss: loss_sum / loss_count.max(1) as f64,
            validation_loss,
            learning_rate,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            improved,
        };
        progress.history.push(report.clone());
        on_event(TrainEvent::Epoch {
            report: &report,
            network: &inner,
        })?;
        save_checkpoint(checkpoint, &network, &optimizer, &progress)?;
        if stopped_on_time {
            break;
        }
    }
    Ok(TrainOutcome {
        history: progress.history,
        steps: progress.step,
        stopped_on_time,
    })
}

trait ElemF64 {
    fn elem_f64(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ElemF64 for E {
    fn elem_f64(self) -> f64 {
        self.elem::<f64>()
    }
}

fn loss_value<B: Backend>(
    prediction: Tensor<B, 4>,
    target: Tensor<B, 4>,
    loss: Loss,
) -> Tensor<B, 1> {
    let difference = prediction - target;
    match loss {
        Loss::L1 => difference.abs().mean(),
        Loss::L2 => difference.powi_scalar(2).mean(),
    }
}

/// The crop trained on: the patch size rounded down to what the pools need, capped by the frame.
fn crop_size<B: Backend>(
    network: &UNet<B>,
    patch: Option<usize>,
    height: usize,
    width: usize,
) -> (usize, usize) {
    let multiple = network.size_multiple();
    let side = |limit: usize, frame: usize, multiple: usize| {
        let wanted = limit.min(frame);
        let rounded = wanted / multiple * multiple;
        if rounded == 0 { frame } else { rounded }
    };
    match patch {
        Some(p) => (side(p, height, multiple[0]), side(p, width, multiple[1])),
        None => (height, width),
    }
}

fn split_sources(
    inputs: Vec<Box<dyn MovieReader>>,
    validation_inputs: Vec<Box<dyn MovieReader>>,
    settings: &TrainSettings,
) -> Result<(Vec<Source>, ValidationReaders), EngineError> {
    let window = settings.window;
    if inputs.is_empty() {
        return Err(EngineError::Settings("no training input".into()));
    }
    let first = inputs[0].info().clone();
    let mut sources = Vec::new();
    for mut reader in inputs {
        let info = reader.info().clone();
        if (info.height, info.width) != (first.height, first.width) {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "frames are {}x{}, the first input's are {}x{}: train inputs must share a frame size",
                    info.height, info.width, first.height, first.width
                ),
            ));
        }
        let held_out = match settings.validation {
            ValidationSource::HeldOut { fraction } => {
                (info.frames as f64 * fraction.clamp(0.0, 0.5)) as usize
            }
            ValidationSource::Separate => 0,
        };
        let held_out = if held_out > 0 {
            held_out.max(window.span())
        } else {
            0
        };
        let train_frames = info.frames.saturating_sub(held_out);
        if info.frames < window.span() {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "{} frames is too few: a window (pre {}, post {}, omitted {}) spans {}",
                    info.frames,
                    window.pre_frames,
                    window.post_frames,
                    window.omitted_frames,
                    window.span()
                ),
            ));
        }
        if train_frames < window.span() {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "{} frames is too few to hold out {held_out} for validation and keep a {}-frame window for training: give a --validation file or --validation-fraction 0",
                    info.frames,
                    window.span()
                ),
            ));
        }
        let normalization = Normalization::from_head(reader.as_mut(), settings.stats_frames)?;
        sources.push(Source {
            reader,
            normalization,
            train_range: 0..train_frames,
        });
    }
    let mut validation_readers = Vec::new();
    if settings.validation == ValidationSource::Separate {
        for mut reader in validation_inputs {
            let path = reader.path().to_path_buf();
            let info = reader.info().clone();
            if (info.height, info.width) != (first.height, first.width)
                || info.frames < window.span()
            {
                return Err(EngineError::recording(
                    &path,
                    format!(
                        "validation recording is {}x{}x{}; it needs {}x{} frames and at least {}",
                        info.frames,
                        info.height,
                        info.width,
                        first.height,
                        first.width,
                        window.span()
                    ),
                ));
            }
            let normalization = Normalization::from_head(reader.as_mut(), settings.stats_frames)?;
            validation_readers.push((reader, normalization));
        }
    }
    Ok((sources, validation_readers))
}

/// Loads a random block of a random source (weighted by its training frames) into `block`.
fn refill_cache(
    sources: &mut [Source],
    block: &mut FrameBlock,
    settings: &TrainSettings,
    rng: &mut StdRng,
) -> Result<usize, EngineError> {
    let total: usize = sources.iter().map(|s| s.train_range.len()).sum();
    let mut pick = rng.random_range(0..total);
    let mut index = 0;
    while pick >= sources[index].train_range.len() {
        pick -= sources[index].train_range.len();
        index += 1;
    }
    let source = &mut sources[index];
    let range = source.train_range.clone();
    let length = settings
        .cache_frames
        .max(settings.window.span())
        .min(range.len());
    let start = range.start + rng.random_range(0..=range.len() - length);
    block.load(
        source.reader.as_mut(),
        &source.normalization,
        start..start + length,
    )?;
    Ok(index)
}

/// Size of the training crops and the grid their corners snap to.
#[derive(Clone, Copy, Debug)]
struct CropRule {
    size: (usize, usize),
    alignment: usize,
}

impl CropRule {
    fn draw(&self, rng: &mut StdRng, height: usize, width: usize) -> Crop {
        let step = self.alignment.max(1);
        Crop {
            top: rng.random_range(0..=(height - self.size.0) / step) * step,
            left: rng.random_range(0..=(width - self.size.1) / step) * step,
            height: self.size.0,
            width: self.size.1,
        }
    }
}

fn draw_sample(
    block: &FrameBlock,
    window: &Window,
    crop: CropRule,
    rng: &mut StdRng,
    height: usize,
    width: usize,
) -> Sample {
    let first = block.start() + window.first_full_centre();
    let last = block.end() - 1 - window.post_frames - window.omitted_frames;
    let centre = rng.random_range(first..=last);
    let crop = crop.draw(rng, height, width);
    cut_sample(block, window, centre, crop)
}

fn cut_sample(block: &FrameBlock, window: &Window, centre: usize, crop: Crop) -> Sample {
    let sources: Vec<usize> = window
        .offsets()
        .iter()
        .map(|&offset| (centre as isize + offset) as usize)
        .collect();
    let plane = crop.height * crop.width;
    let mut input = vec![0f32; sources.len() * plane];
    block.gather(&sources, crop, &mut input);
    let mut target = vec![0f32; plane];
    block.gather(&[centre], crop, &mut target);
    Sample { input, target }
}

/// Fixed validation samples: from the held-out tails, or from the validation files.
fn validation_set(
    sources: &mut [Source],
    mut files: ValidationReaders,
    settings: &TrainSettings,
    crop_rule: CropRule,
) -> Result<Option<Vec<Sample>>, EngineError> {
    let window = settings.window;
    let mut regions: Vec<(&mut dyn MovieReader, Normalization, std::ops::Range<usize>)> =
        Vec::new();
    for source in sources.iter_mut() {
        let frames = source.reader.info().frames;
        if source.train_range.end < frames {
            let range = source.train_range.end..frames;
            regions.push((source.reader.as_mut(), source.normalization, range));
        }
    }
    for (reader, normalization) in files.iter_mut() {
        let frames = reader.info().frames;
        regions.push((reader.as_mut(), *normalization, 0..frames));
    }
    if regions.is_empty() || settings.validation_samples == 0 {
        return Ok(None);
    }
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(0x5eed));
    let mut samples = Vec::with_capacity(settings.validation_samples);
    let per_region = settings.validation_samples.div_ceil(regions.len());
    for (reader, normalization, range) in regions {
        let info = reader.info().clone();
        let mut block = FrameBlock::new(info.height, info.width);
        // Spread the samples over the region; each sample reads just its window.
        for _ in 0..per_region {
            if samples.len() == settings.validation_samples {
                break;
            }
            let first = range.start + window.first_full_centre();
            let last = range.end - 1 - window.post_frames - window.omitted_frames;
            let centre = rng.random_range(first..=last);
            let window_start = centre - window.first_full_centre();
            block.load(
                reader,
                &normalization,
                window_start..window_start + window.span(),
            )?;
            let crop = crop_rule.draw(&mut rng, info.height, info.width);
            samples.push(cut_sample(&block, &window, centre, crop));
        }
    }
    Ok(Some(samples))
}

fn validation_loss<B: Backend>(
    network: &UNet<B>,
    samples: &[Sample],
    crop_size: (usize, usize),
    channels: usize,
    settings: &TrainSettings,
    device: &B::Device,
) -> f64 {
    let mut total = 0.0;
    for chunk in samples.chunks(settings.batch_size.max(1)) {
        let n = chunk.len();
        let inputs: Vec<f32> = chunk.iter().flat_map(|s| s.input.iter().copied()).collect();
        let targets: Vec<f32> = chunk
            .iter()
            .flat_map(|s| s.target.iter().copied())
            .collect();
        let input = Tensor::<B, 4>::from_data(
            TensorData::new(inputs, [n, channels, crop_size.0, crop_size.1]),
            device,
        );
        let target = Tensor::<B, 4>::from_data(
            TensorData::new(targets, [n, 1, crop_size.0, crop_size.1]),
            device,
        );
        let loss: f64 = loss_value(network.forward_any_size(input), target, settings.loss)
            .into_scalar()
            .elem_f64();
        total += loss * n as f64;
    }
    total / samples.len() as f64
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

fn save_checkpoint<B: AutodiffBackend, O: Optimizer<UNet<B>, B>>(
    path: &Path,
    network: &UNet<B>,
    optimizer: &O,
    progress: &Progress,
) -> Result<(), EngineError> {
    let recorder = Bytes::default();
    let fail =
        |what: &str, e: String| EngineError::model_file(path, format!("cannot save {what}: {e}"));
    let network_bytes = Recorder::<B>::record(&recorder, network.clone().into_record(), ())
        .map_err(|e| fail("network", e.to_string()))?;
    let optimizer_bytes = Recorder::<B>::record(&recorder, optimizer.to_record(), ())
        .map_err(|e| fail("optimiser state", e.to_string()))?;
    let progress_bytes =
        serde_json::to_vec(progress).map_err(|e| fail("progress", e.to_string()))?;
    let mut bytes = b"DEEPINTERP-CHECKPOINT\n".to_vec();
    for part in [&progress_bytes, &network_bytes, &optimizer_bytes] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    crate::model::file::write_atomically(path, &bytes)
}

fn load_checkpoint<B: AutodiffBackend, O: Optimizer<UNet<B>, B>>(
    path: &Path,
    network: UNet<B>,
    optimizer: O,
    device: &B::Device,
) -> Result<(UNet<B>, O, Progress), EngineError> {
    let fail =
        |reason: &str| EngineError::model_file(path, format!("unusable checkpoint: {reason}"));
    let bytes = std::fs::read(path).map_err(|e| EngineError::os(path, e))?;
    let mut rest = bytes
        .strip_prefix(b"DEEPINTERP-CHECKPOINT\n".as_slice())
        .ok_or_else(|| fail("not a deepinterp checkpoint"))?;
    let mut parts = Vec::new();
    for _ in 0..3 {
        if rest.len() < 8 {
            return Err(fail("truncated"));
        }
        let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
        let end = len.checked_add(8).filter(|&end| end <= rest.len());
        let end = end.ok_or_else(|| fail("truncated"))?;
        parts.push(rest[8..end].to_vec());
        rest = &rest[end..];
    }
    let progress: Progress =
        serde_json::from_slice(&parts[0]).map_err(|_| fail("bad progress record"))?;
    let recorder = Bytes::default();
    // burn's byte recorder panics on malformed input; contain it as an error.
    let restored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let network_record = Recorder::<B>::load(&recorder, parts[1].clone(), device).ok()?;
        let optimizer_record = Recorder::<B>::load(&recorder, parts[2].clone(), device).ok()?;
        Some((network_record, optimizer_record))
    }))
    .ok()
    .flatten()
    .ok_or_else(|| fail("weights or optimiser state do not match this network"))?;
    let network = network.load_record(restored.0);
    let optimizer = optimizer.load_record(restored.1);
    Ok((network, optimizer, progress))
}
