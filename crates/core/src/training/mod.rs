//! Training: self-supervised fitting of a U-Net to predict each frame from its neighbours.
//!
//! One loop serves every modality; a sampler per kind of data feeds it ([`frames`] for movies
//! and probe grids, [`volumes`] for fMRI voxel blocks). Samples are drawn from a bounded
//! number of frames held in memory, refreshed from a random place in a random input every few
//! steps, so training memory does not grow with recording length. Validation uses a fixed,
//! seeded set of samples from a held-out frame range (the tail of each input) or from
//! separate files. Each epoch ends with
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
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

pub mod config;
mod convergence;
mod frames;
mod identity;
mod kernel_op;
mod volumes;

pub use config::{TrainOptions, parse_train_config, read_train_config};
pub use convergence::{Convergence, Ending, RunEnd, TREND_EPOCHS, recent_fall_per_1000_steps};
pub use identity::{InputFingerprint, RunIdentity, fingerprint_input};
pub use kernel_op::{UNetTrainOps, kernels_forward, train_engine};

use deepinterp_io::nifti::VolumeReader;

use crate::engine::{Engine, Forward};
use crate::error::EngineError;
use crate::model::Network;
use crate::sampling::Window;
use crate::volume::VolumeBlock;

/// Loss between prediction and target, averaged over every output pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean absolute error (the paper's default).
    L1,
    /// Mean squared error: aims at the mean of Poisson photon counts, where L1 aims at
    /// their median (the two-photon and extracellular default).
    L2,
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// RMSprop as in Keras (rho 0.9, eps 1e-7, no momentum): the paper's.
    #[cfg_attr(feature = "clap", value(name = "rmsprop"))]
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
    /// Optimiser steps: the exact count without [`Self::convergence`], the most a run may
    /// take with it.
    pub steps: usize,
    /// Train until the validation loss stops improving (needs validation data); `None`
    /// runs exactly [`Self::steps`].
    pub convergence: Option<Convergence>,
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

impl TrainSettings {
    /// Checks every number against what a run can use; messages name the flag as users type
    /// it. [`train`] calls it first. The frame-dependent rules (a patch no larger than the
    /// frames, `--stats-frames` for frame recordings) are checked where the frames are known.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |message: String| Err(EngineError::Settings(message));
        self.window.validate()?;
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "--learning-rate must be a finite number above 0, got {}",
                self.learning_rate
            ));
        }
        if let Some(minutes) = self.max_minutes
            && !(minutes.is_finite() && minutes > 0.0)
        {
            return bad(format!(
                "--max-minutes must be a finite number above 0, got {minutes}"
            ));
        }
        if let ValidationSource::HeldOut { fraction } = self.validation
            && !(fraction.is_finite() && (0.0..1.0).contains(&fraction))
        {
            return bad(format!(
                "--validation-fraction must be at least 0 (no validation) and below 1, got {fraction}"
            ));
        }
        let counts = [
            ("--steps", self.steps),
            ("--batch-size", self.batch_size),
            ("--steps-per-epoch", self.steps_per_epoch),
            ("--validation-samples", self.validation_samples),
        ];
        for (flag, value) in counts {
            if value == 0 {
                return bad(format!("{flag} must be at least 1, got 0"));
            }
        }
        if self.cache_frames == 0 || self.cache_refresh_steps == 0 {
            return bad(format!(
                "the frame cache needs at least 1 frame and 1 step between refreshes, got {} and {}",
                self.cache_frames, self.cache_refresh_steps
            ));
        }
        if self.lr_halving_epochs == Some(0) {
            return bad("--lr-halving-epochs must be at least 1, got 0".into());
        }
        if self.patch_size == Some(0) {
            return bad("--patch-size must be at least 1, got 0".into());
        }
        if let Some(rule) = &self.convergence {
            if !(rule.min_improvement.is_finite() && rule.min_improvement >= 0.0)
                || rule.plateau_epochs == 0
                || rule.patience_epochs == 0
            {
                return bad(format!("an unusable convergence rule: {rule:?}"));
            }
            if self.validation == (ValidationSource::HeldOut { fraction: 0.0 }) {
                return bad(
                    "training until the validation loss stops improving needs validation: give --steps, a --validation recording or a --validation-fraction above 0".into(),
                );
            }
        }
        Ok(())
    }
}

/// Errors when a training batch (inputs, targets and the network's activations and their
/// gradients) or the fixed validation samples would exceed the memory budget; checked
/// before either exists. `pixels` is the size of one sample's plane (voxel block),
/// `activations` the network's activation floats per pixel.
pub(crate) fn check_sample_memory(
    settings: &TrainSettings,
    channels: usize,
    pixels: usize,
    activations: f64,
) -> Result<(), EngineError> {
    let bytes = |samples: usize, floats_per_pixel: f64| {
        let bytes = 4.0 * floats_per_pixel * samples as f64 * pixels as f64;
        if bytes >= u64::MAX as f64 {
            u64::MAX
        } else {
            bytes as u64
        }
    };
    let sample_floats = channels as f64 + 1.0;
    // Activations are kept for the backward pass and matched by their gradients; burn's
    // intermediates (padding, pooling, concatenations) about double that.
    deepinterp_io::limits::check_memory(
        Path::new(&format!("--batch-size {}", settings.batch_size)),
        "a training batch with its activations and gradients",
        bytes(settings.batch_size, 2.0 * sample_floats + 4.0 * activations),
    )?;
    deepinterp_io::limits::check_memory(
        Path::new(&format!(
            "--validation-samples {}",
            settings.validation_samples
        )),
        "the fixed validation samples",
        bytes(settings.validation_samples, 2.0 * sample_floats),
    )?;
    Ok(())
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
        /// Validation loss of the network before any step of this run (fresh runs with
        /// validation): the baseline a fine-tuning run is judged against, and the best so
        /// far until an epoch beats it.
        initial_validation_loss: Option<f64>,
        /// The network before any step (inner backend): the model to keep if no epoch
        /// improves on it.
        network: &'a Network<B>,
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
        network: &'a Network<B>,
    },
}

/// The caller's handler of [`TrainEvent`]s; an error stops the run.
pub type EventSink<'a, B> = dyn FnMut(TrainEvent<'_, B>) -> Result<(), EngineError> + 'a;

/// Result of a run.
pub struct TrainOutcome {
    /// Every epoch, resumed ones included.
    pub history: Vec<EpochReport>,
    /// Steps completed.
    pub steps: usize,
    /// Why the run ended.
    pub ending: Ending,
    /// Standard error of the final validation loss (per-sample spread over the fixed
    /// samples), as a fraction of it: how finely the validation set ranks models.
    pub validation_relative_error: Option<f64>,
}

/// Progress state stored in checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    step: usize,
    history: Vec<EpochReport>,
    best_validation_loss: Option<f64>,
    settings_fingerprint: String,
    /// Convergence state (absent in checkpoints of runs before it existed).
    #[serde(default)]
    plateau: convergence::Plateau,
}

/// What a network is trained on.
pub enum TrainingData {
    /// Frame recordings (two-photon movies, ephys probe grids) for a planar network.
    Frames {
        /// Training recordings.
        inputs: Vec<Box<dyn MovieReader>>,
        /// Separate validation recordings (with [`ValidationSource::Separate`]).
        validation: Vec<Box<dyn MovieReader>>,
    },
    /// fMRI runs for a volumetric network.
    Volumes {
        /// Training runs.
        inputs: Vec<VolumeReader>,
        /// Separate validation runs (with [`ValidationSource::Separate`]).
        validation: Vec<VolumeReader>,
        /// The voxel block and its hole.
        block: VolumeBlock,
    },
}

/// A batch of samples as flat values: inputs `[n, channels, spatial...]` and targets
/// `[n, 1, spatial...]`.
pub(crate) struct Batch {
    input: Vec<f32>,
    input_shape: Vec<usize>,
    target: Vec<f32>,
}

impl Batch {
    fn samples(&self) -> usize {
        self.input_shape[0]
    }
}

/// Where the loop's batches come from.
pub(crate) trait Sampler {
    /// Frames (time points) available for training, over all inputs.
    fn train_frames(&self) -> usize;
    /// The next training batch; `refresh` asks for new data in memory first.
    fn next_batch(
        &mut self,
        batch_size: usize,
        refresh: bool,
        rng: &mut StdRng,
    ) -> Result<Batch, EngineError>;
    /// The fixed validation batches, if validation runs.
    fn validation(&self) -> Option<&[Batch]>;
}

/// Picks the stretch of frames to hold in memory next: an input drawn with probability
/// proportional to its training frames, and `length` (at most its training range) consecutive
/// frames at a uniform place inside that range.
fn pick_stretch(
    train_ranges: &[std::ops::Range<usize>],
    length: usize,
    rng: &mut StdRng,
) -> (usize, std::ops::Range<usize>) {
    use rand::Rng;
    let total: usize = train_ranges.iter().map(|range| range.len()).sum();
    let mut pick = rng.random_range(0..total);
    let mut index = 0;
    while pick >= train_ranges[index].len() {
        pick -= train_ranges[index].len();
        index += 1;
    }
    let range = &train_ranges[index];
    let length = length.min(range.len());
    let start = range.start + rng.random_range(0..=range.len() - length);
    (index, start..start + length)
}

/// Trains `network` on `data`; calls `on_event` after each step and epoch. If `checkpoint`
/// exists and matches the settings, the run resumes from it.
///
/// The run's identity (what a checkpoint must have been made for) is taken from the data:
/// the inputs' paths as the readers name them, the network's convolution shapes and the
/// window. Callers that know the architecture's name use [`train_run`] with a
/// [`RunIdentity`], whose messages then name it.
pub fn train<B: UNetTrainOps>(
    network: Network<B>,
    data: TrainingData,
    settings: &TrainSettings,
    checkpoint: &Path,
    device: &B::Device,
    on_event: &mut EventSink<'_, B::InnerBackend>,
) -> Result<TrainOutcome, EngineError> {
    settings.validate()?;
    let identity = RunIdentity::of_data(&network, &data, settings.window);
    train_run(
        network, data, settings, &identity, checkpoint, device, on_event,
    )
}

/// [`train`] with the run's identity given by the caller (see [`RunIdentity::new`]): a
/// checkpoint made for another architecture, window or inputs is refused, with what
/// differs, before any of its records is loaded.
pub fn train_run<B: UNetTrainOps>(
    network: Network<B>,
    data: TrainingData,
    settings: &TrainSettings,
    identity: &RunIdentity,
    checkpoint: &Path,
    device: &B::Device,
    on_event: &mut EventSink<'_, B::InnerBackend>,
) -> Result<TrainOutcome, EngineError> {
    settings.validate()?;
    if identity.window != settings.window {
        return Err(EngineError::Settings(format!(
            "the run's identity names the window ({}) but the settings use ({})",
            identity.window, settings.window
        )));
    }
    if identity.weight_shapes != network.weight_shapes() {
        return Err(EngineError::Settings(format!(
            "the run's identity names architecture {} but the network has other layer shapes",
            identity.architecture_name()
        )));
    }
    let activations = network.activation_floats_per_pixel();
    let sampler: Box<dyn Sampler> = match (data, &network) {
        (TrainingData::Frames { inputs, validation }, Network::Planar(planar)) => {
            Box::new(frames::FrameSampler::new(
                inputs,
                validation,
                settings,
                planar.size_multiple(),
                activations,
            )?)
        }
        (
            TrainingData::Volumes {
                inputs,
                validation,
                block,
            },
            Network::Volumetric(_),
        ) => Box::new(volumes::VolumeSampler::new(
            inputs,
            validation,
            block,
            settings,
            activations,
        )?),
        _ => {
            return Err(EngineError::Settings(
                "the network does not fit the data: planar networks train on frames, volumetric ones on fMRI runs".into(),
            ));
        }
    };
    match settings.optimizer {
        OptimizerKind::RmsProp => train_with(
            network,
            rmsprop::<B>(),
            sampler,
            settings,
            identity,
            checkpoint,
            device,
            on_event,
        ),
        OptimizerKind::Adam => train_with(
            network,
            adam::<B>(),
            sampler,
            settings,
            identity,
            checkpoint,
            device,
            on_event,
        ),
    }
}

/// RMSprop as in Keras (rho 0.9, eps 1e-7, no momentum).
fn rmsprop<B: AutodiffBackend>() -> impl Optimizer<Network<B>, B> {
    RmsPropConfig::new()
        .with_alpha(0.9)
        .with_momentum(0.0)
        .with_epsilon(1e-7)
        .init::<B, Network<B>>()
}

/// Adam (beta 0.9/0.999, eps 1e-7).
fn adam<B: AutodiffBackend>() -> impl Optimizer<Network<B>, B> {
    AdamConfig::new().with_epsilon(1e-7).init::<B, Network<B>>()
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
fn train_with<B: UNetTrainOps, O: Optimizer<Network<B>, B>>(
    mut network: Network<B>,
    mut optimizer: O,
    mut sampler: Box<dyn Sampler>,
    settings: &TrainSettings,
    identity: &RunIdentity,
    checkpoint: &Path,
    device: &B::Device,
    on_event: &mut EventSink<'_, B::InnerBackend>,
) -> Result<TrainOutcome, EngineError> {
    let started = Instant::now();
    let fingerprint = settings_fingerprint(settings);
    let mut progress = Progress {
        step: 0,
        history: Vec::new(),
        best_validation_loss: None,
        settings_fingerprint: fingerprint.clone(),
        plateau: Default::default(),
    };
    if checkpoint.exists() {
        let bytes = read_checkpoint_bytes(checkpoint)?;
        let parts = CheckpointParts::split(checkpoint, &bytes)?;
        // What the checkpoint was made for is compared before any record is loaded: burn
        // panics on records of another shape.
        if let Some(difference) = identity.difference(&parts.identity) {
            return Err(EngineError::model_file(
                checkpoint,
                format!("cannot resume: {difference}; delete the checkpoint or train as before"),
            ));
        }
        if parts.progress.settings_fingerprint != fingerprint {
            return Err(EngineError::model_file(
                checkpoint,
                "cannot resume: the checkpoint was made with other settings (loss, optimiser, batch size, steps per epoch, patch size or seed); delete it or run with the same settings",
            ));
        }
        let (restored_network, restored_optimizer, restored) =
            parts.restore::<B, O>(checkpoint, network, optimizer, device)?;
        network = restored_network;
        optimizer = restored_optimizer;
        progress = restored;
    }

    if settings.convergence.is_some() && sampler.validation().is_none() {
        return Err(EngineError::Settings(
            "training until the validation loss stops improving needs validation samples: give --steps or more validation data".into(),
        ));
    }
    let initial = network.valid();
    let initial_losses = match sampler.validation() {
        Some(batches) if progress.step == 0 => Some(validation_losses(
            &initial,
            batches,
            settings.loss,
            B::validation_engine(),
            device,
        )?),
        _ => None,
    };
    let initial_validation_loss = initial_losses.as_deref().map(mean);
    // A fine-tuned model must beat its starting point to replace it.
    if progress.step == 0 {
        progress.best_validation_loss = initial_validation_loss;
        if let Some(losses) = &initial_losses {
            progress.plateau.start(losses);
        }
    }
    on_event(TrainEvent::Started {
        train_frames: sampler.train_frames(),
        validation_samples: sampler
            .validation()
            .map_or(0, |batches| batches.iter().map(Batch::samples).sum()),
        resumed_history: &progress.history,
        initial_validation_loss,
        network: &initial,
    })?;
    drop(initial);
    let mut first_step = true;
    let mut ending = Ending::Steps;
    let mut validation_relative_error = None;
    while progress.step < settings.steps {
        let epoch = progress.step / settings.steps_per_epoch;
        // Each epoch's randomness depends only on (seed, epoch): resumed runs replay exactly.
        let mut rng = StdRng::seed_from_u64(
            settings.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let learning_rate = progress.plateau.learning_rate_factor()
            * match settings.lr_halving_epochs {
                Some(n) if n > 0 => settings.learning_rate * 0.5f64.powi(((1 + epoch) / n) as i32),
                _ => settings.learning_rate,
            };
        let epoch_end = ((epoch + 1) * settings.steps_per_epoch).min(settings.steps);
        let mut loss_sum = 0.0;
        let mut loss_count = 0usize;
        while progress.step < epoch_end {
            let within_epoch = progress.step - epoch * settings.steps_per_epoch;
            let refresh =
                first_step || within_epoch.is_multiple_of(settings.cache_refresh_steps.max(1));
            first_step = false;
            let batch = sampler.next_batch(settings.batch_size, refresh, &mut rng)?;
            let loss = train_batch_loss(&network, &batch, settings.loss, device);
            let loss_scalar: f64 = loss.clone().into_scalar().elem_f64();
            if !loss_scalar.is_finite() && progress.step == 0 {
                return Err(EngineError::Settings(format!(
                    "the network's loss is not finite ({loss_scalar}) before any training step: the starting model or the data holds NaN or infinite values"
                )));
            }
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
                ending = Ending::TimeBudget;
                break;
            }
        }
        let inner = network.valid();
        let losses = sampler
            .validation()
            .map(|batches| {
                validation_losses(
                    &inner,
                    batches,
                    settings.loss,
                    B::validation_engine(),
                    device,
                )
            })
            .transpose()?;
        let validation_loss = losses.as_deref().map(mean);
        if let (Some(losses), Some(loss)) = (&losses, validation_loss) {
            // One sample has no spread to measure.
            validation_relative_error = (losses.len() > 1)
                .then(|| convergence::standard_error(losses) / loss.abs().max(f64::MIN_POSITIVE));
        }
        let converged = match (&settings.convergence, &losses) {
            (Some(rule), Some(losses)) => progress.plateau.update(rule, losses),
            _ => false,
        };
        if converged && ending != Ending::TimeBudget {
            ending = Ending::Converged;
        }
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
        save_checkpoint(checkpoint, &network, &optimizer, identity, &progress)?;
        if ending != Ending::Steps {
            break;
        }
    }
    Ok(TrainOutcome {
        history: progress.history,
        steps: progress.step,
        ending,
        validation_relative_error,
    })
}

/// The loss of `network` on each sample of one batch (burn's forward pass: backends
/// without our kernels).
fn sample_losses<B: Backend>(
    network: &Network<B>,
    batch: &Batch,
    loss: Loss,
    device: &B::Device,
) -> Vec<f64> {
    let samples = batch.samples().max(1);
    let per_sample = (batch.target.len() / samples).max(1);
    elementwise_loss(batch, loss, device, |input| {
        network.forward_flat(input, &batch.input_shape)
    })
    .reshape([samples, per_sample])
    .mean_dim(1)
    .into_data()
    .iter::<f64>()
    .collect()
}

/// The loss of a training step, averaged over every output value: the forward pass the
/// backend trains with (on the CPU, our kernels as one autodiff operation; see
/// [`UNetTrainOps`]).
pub(crate) fn train_batch_loss<B: UNetTrainOps>(
    network: &Network<B>,
    batch: &Batch,
    loss: Loss,
    device: &B::Device,
) -> Tensor<B, 1> {
    elementwise_loss(batch, loss, device, |input| {
        B::train_forward(network, input, &batch.input_shape)
    })
    .mean()
}

/// The loss of every output value of a batch, flat.
fn elementwise_loss<B: Backend>(
    batch: &Batch,
    loss: Loss,
    device: &B::Device,
    forward: impl FnOnce(Tensor<B, 1>) -> Tensor<B, 1>,
) -> Tensor<B, 1> {
    let input = Tensor::<B, 1>::from_data(
        TensorData::new(batch.input.clone(), [batch.input.len()]),
        device,
    );
    let target = Tensor::<B, 1>::from_data(
        TensorData::new(batch.target.clone(), [batch.target.len()]),
        device,
    );
    let difference = forward(input) - target;
    match loss {
        Loss::L1 => difference.abs(),
        Loss::L2 => difference.powi_scalar(2),
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The loss of each validation sample, by `engine`; their mean is the validation loss.
fn validation_losses<B: Backend>(
    network: &Network<B>,
    batches: &[Batch],
    loss: Loss,
    engine: Engine,
    device: &B::Device,
) -> Result<Vec<f64>, EngineError> {
    let mut losses = Vec::new();
    let mut forward = match engine {
        Engine::Kernels => Some(Forward::new(network, engine, device)?),
        Engine::Burn => None,
    };
    for batch in batches {
        match &mut forward {
            None => losses.extend(sample_losses(network, batch, loss, device)),
            Some(forward) => {
                let prediction = match batch.input_shape[..] {
                    [n, c, h, w] => forward.planar(&batch.input, [n, c, h, w])?,
                    [n, c, x, y, z] => forward.volumetric(&batch.input, [n, c, x, y, z])?,
                    _ => {
                        return Err(EngineError::InvalidModel(format!(
                            "a batch of {} axes",
                            batch.input_shape.len()
                        )));
                    }
                };
                let per_sample = (prediction.len() / batch.samples().max(1)).max(1);
                for (predicted, target) in prediction
                    .chunks(per_sample)
                    .zip(batch.target.chunks(per_sample))
                {
                    let sum: f64 = predicted
                        .iter()
                        .zip(target)
                        .map(|(&p, &t)| {
                            let difference = (p - t) as f64;
                            match loss {
                                Loss::L1 => difference.abs(),
                                Loss::L2 => difference * difference,
                            }
                        })
                        .sum();
                    losses.push(sum / per_sample as f64);
                }
            }
        }
    }
    Ok(losses)
}

trait ElemF64 {
    fn elem_f64(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ElemF64 for E {
    fn elem_f64(self) -> f64 {
        self.elem::<f64>()
    }
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

/// First line of a checkpoint; the version follows the name so older checkpoints (no
/// checksum, no identity) are recognised and explained.
const CHECKPOINT_MAGIC: &[u8] = b"DEEPINTERP-CHECKPOINT-2\n";
const OLD_CHECKPOINT_MAGIC: &[u8] = b"DEEPINTERP-CHECKPOINT\n";

/// Writes a checkpoint: the magic line, then four length-prefixed parts (the run's identity
/// and progress as JSON, burn's network and optimiser records), then a CRC-32 of every
/// byte before it, so a flipped byte anywhere is an error at resume.
fn save_checkpoint<B: AutodiffBackend, O: Optimizer<Network<B>, B>>(
    path: &Path,
    network: &Network<B>,
    optimizer: &O,
    identity: &RunIdentity,
    progress: &Progress,
) -> Result<(), EngineError> {
    let recorder = Bytes::default();
    let fail =
        |what: &str, e: String| EngineError::model_file(path, format!("cannot save {what}: {e}"));
    let network_bytes = Recorder::<B>::record(&recorder, network.clone().into_record(), ())
        .map_err(|e| fail("network", e.to_string()))?;
    let optimizer_bytes = Recorder::<B>::record(&recorder, optimizer.to_record(), ())
        .map_err(|e| fail("optimiser state", e.to_string()))?;
    let identity_bytes =
        serde_json::to_vec(identity).map_err(|e| fail("run identity", e.to_string()))?;
    let progress_bytes =
        serde_json::to_vec(progress).map_err(|e| fail("progress", e.to_string()))?;
    let mut bytes = CHECKPOINT_MAGIC.to_vec();
    for part in [
        &identity_bytes,
        &progress_bytes,
        &network_bytes,
        &optimizer_bytes,
    ] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    crate::model::file::write_atomically(path, &bytes)
}

/// A checkpoint's bytes, after its size was checked against the memory budget.
fn read_checkpoint_bytes(path: &Path) -> Result<Vec<u8>, EngineError> {
    let size = std::fs::metadata(path)
        .map_err(|e| EngineError::os(path, e))?
        .len();
    deepinterp_io::limits::check_memory(path, "the checkpoint", size)?;
    std::fs::read(path).map_err(|e| EngineError::os(path, e))
}

/// A checkpoint split into its parts, checksum verified, identity and progress parsed; the
/// records are still bytes.
struct CheckpointParts<'a> {
    identity: RunIdentity,
    progress: Progress,
    network: &'a [u8],
    optimizer: &'a [u8],
}

impl<'a> CheckpointParts<'a> {
    fn split(path: &Path, bytes: &'a [u8]) -> Result<Self, EngineError> {
        let fail =
            |reason: &str| EngineError::model_file(path, format!("unusable checkpoint: {reason}"));
        if bytes.starts_with(OLD_CHECKPOINT_MAGIC) {
            return Err(fail(
                "made by an older deepinterp (no checksum, no record of what it trains); delete it to start again",
            ));
        }
        let body = bytes
            .strip_prefix(CHECKPOINT_MAGIC)
            .ok_or_else(|| fail("not a deepinterp checkpoint"))?;
        if body.len() < 4 {
            return Err(fail("truncated"));
        }
        let (body, trailer) = body.split_at(body.len() - 4);
        let checksum = crc32fast::hash(&bytes[..bytes.len() - 4]);
        if checksum.to_le_bytes() != trailer {
            return Err(EngineError::model_file(
                path,
                "checksum mismatch: the checkpoint is damaged; delete it to start again",
            ));
        }
        let mut rest = body;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
        for _ in 0..4 {
            if rest.len() < 8 {
                return Err(fail("truncated"));
            }
            let declared = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            deepinterp_io::limits::check_declared(
                path,
                "a checkpoint part",
                declared,
                (rest.len() - 8) as u64,
            )?;
            // declared <= rest.len() - 8, so it fits in usize.
            let (part, tail) = rest[8..].split_at(declared as usize);
            parts.push(part);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(fail("trailing bytes after the optimiser state"));
        }
        let identity: RunIdentity =
            serde_json::from_slice(parts[0]).map_err(|_| fail("bad run identity record"))?;
        let progress: Progress =
            serde_json::from_slice(parts[1]).map_err(|_| fail("bad progress record"))?;
        Ok(Self {
            identity,
            progress,
            network: parts[2],
            optimizer: parts[3],
        })
    }

    /// Loads the records into `network` and `optimizer`. The network record must have the
    /// length of `network`'s own (same layers, same shapes), the optimiser's at most that of
    /// two states per parameter; burn's recorder and `load_record` panic on malformed or
    /// mismatched records, which is contained and returned as an error.
    fn restore<B: AutodiffBackend, O: Optimizer<Network<B>, B>>(
        self,
        path: &Path,
        network: Network<B>,
        optimizer: O,
        device: &B::Device,
    ) -> Result<(Network<B>, O, Progress), EngineError> {
        let fail =
            |reason: &str| EngineError::model_file(path, format!("unusable checkpoint: {reason}"));
        let recorder = Bytes::default();
        let reference = Recorder::<B>::record(&recorder, network.clone().into_record(), ())
            .map_err(|e| fail(&format!("cannot encode the network: {e}")))?;
        if reference.len() != self.network.len() {
            return Err(fail("its network record does not match this network"));
        }
        // Adam keeps two moments per parameter, RMSprop one; allow record overhead.
        let optimizer_limit = (2 * reference.len()).saturating_add(1 << 20);
        if self.optimizer.len() > optimizer_limit {
            return Err(fail(
                "its optimiser state is larger than this network's can be",
            ));
        }
        let network_bytes = self.network.to_vec();
        let optimizer_bytes = self.optimizer.to_vec();
        let restored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let network_record = Recorder::<B>::load(&recorder, network_bytes, device).ok()?;
            let optimizer_record = Recorder::<B>::load(&recorder, optimizer_bytes, device).ok()?;
            let network = network.load_record(network_record);
            let optimizer = optimizer.load_record(optimizer_record);
            Some((network, optimizer))
        }))
        .ok()
        .flatten()
        .ok_or_else(|| fail("weights or optimiser state do not match this network"))?;
        Ok((restored.0, restored.1, self.progress))
    }
}

/// What a checkpoint holds besides its records.
#[derive(Clone, Debug)]
pub struct CheckpointState {
    /// What the run trains (architecture, window, inputs).
    pub identity: RunIdentity,
    /// Steps completed.
    pub step: usize,
    /// Every epoch so far.
    pub history: Vec<EpochReport>,
    /// Best validation loss so far.
    pub best_validation_loss: Option<f64>,
}

/// Fully loads a checkpoint file into `network` (with a fresh `optimizer` of that kind):
/// size against the budget, checksum, identity and progress records, network and optimiser
/// records. Never panics on a malformed file.
pub fn load_checkpoint_file<B: AutodiffBackend>(
    path: &Path,
    network: Network<B>,
    optimizer: OptimizerKind,
    device: &B::Device,
) -> Result<(Network<B>, CheckpointState), EngineError> {
    let bytes = read_checkpoint_bytes(path)?;
    load_checkpoint_bytes(path, &bytes, network, optimizer, device)
}

/// [`load_checkpoint_file`] on bytes already in memory (`path` names them in messages):
/// the entry point of fuzz targets.
pub fn load_checkpoint_bytes<B: AutodiffBackend>(
    path: &Path,
    bytes: &[u8],
    network: Network<B>,
    optimizer: OptimizerKind,
    device: &B::Device,
) -> Result<(Network<B>, CheckpointState), EngineError> {
    let parts = CheckpointParts::split(path, bytes)?;
    let identity = parts.identity.clone();
    let (network, progress) = match optimizer {
        OptimizerKind::RmsProp => {
            let (network, _, progress) = parts.restore(path, network, rmsprop::<B>(), device)?;
            (network, progress)
        }
        OptimizerKind::Adam => {
            let (network, _, progress) = parts.restore(path, network, adam::<B>(), device)?;
            (network, progress)
        }
    };
    Ok((
        network,
        CheckpointState {
            identity,
            step: progress.step,
            history: progress.history,
            best_validation_loss: progress.best_validation_loss,
        },
    ))
}

#[cfg(test)]
mod tests;
