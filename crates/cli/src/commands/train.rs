//! `deepinterp train`: settings from flags and an optional TOML file, then the engine's
//! training loop, with the best model, a loss CSV and a loss-curve PNG written as it goes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use deepinterp::model::file::write_model;
use deepinterp::model::{
    Modality, Model, ModelSpec, Network, NetworkConfig, NormalizationPolicy, StatsRegion,
    TrainingSummary, architecture_config, load_model,
};
use deepinterp::sampling::Window;
use deepinterp::training::{
    self, EpochReport, Loss, OptimizerKind, RunIdentity, TrainConfigFile, TrainEvent,
    TrainSettings, TrainingData, ValidationSource, read_train_config,
};
use deepinterp::volume::VolumeBlock;
use deepinterp_io::nifti::open_volume;
use deepinterp_io::output::{OutputGuard, write_file_atomically};

use crate::backend::{Infer, Train};
use crate::progress;
use crate::recording::{Recording, common_modality};
use crate::{FinetuneArgs, LossArg, OptimizerArg, TrainArgs};

/// Architecture trained by default on movies: small enough to train well in minutes on 2 CPU
/// cores.
pub const DEFAULT_ARCH: &str = "unet-d3-w16";

/// Architecture trained by default on extracellular recordings (the paper's probe-grid shape,
/// narrower and shallower).
pub const DEFAULT_EPHYS_ARCH: &str = "unet-ephys-d3-w16";

/// Architecture trained by default on fMRI runs: the paper's.
pub const DEFAULT_FMRI_ARCH: &str = "fmri_unet_denoiser";

/// Defaults that differ between modalities.
struct ModalityDefaults {
    arch: &'static str,
    optimizer: OptimizerKind,
    patch_size: usize,
    batch_size: usize,
    learning_rate: f64,
    validation_samples: usize,
}

fn modality_defaults(modality: Modality) -> ModalityDefaults {
    match modality {
        Modality::TwoPhoton => ModalityDefaults {
            arch: DEFAULT_ARCH,
            optimizer: OptimizerKind::RmsProp,
            patch_size: 64,
            batch_size: 8,
            learning_rate: 5e-4,
            validation_samples: 16,
        },
        // A probe grid is small (384 x 2): whole grids, more of them per step. Spikes are a
        // small part of each sample's loss, so telling a better model from a worse one takes
        // many validation samples (512 of 384 channels hold 94 MB).
        Modality::Ephys => ModalityDefaults {
            arch: DEFAULT_EPHYS_ARCH,
            optimizer: OptimizerKind::RmsProp,
            patch_size: 0,
            batch_size: 32,
            learning_rate: 5e-4,
            validation_samples: 512,
        },
        // The paper's network is tiny (44k parameters, 5.6 MFLOP per block). Its inputs span
        // about ±12 central-block stds (dark background, zeros beyond the volume), where
        // RMSprop at 1e-3 stalls far above a plain temporal mean (L1 0.9 vs 0.26 after 600
        // steps on a simulated run) and Adam reaches 0.47 in 300. Small batches of 64 blocks
        // give 4x the steps of 256 in the same time for the same progress per step. Blocks
        // are small, so thousands of validation blocks cost little.
        Modality::Fmri => ModalityDefaults {
            arch: DEFAULT_FMRI_ARCH,
            optimizer: OptimizerKind::Adam,
            patch_size: 0,
            batch_size: 64,
            learning_rate: 1e-3,
            validation_samples: 4096,
        },
    }
}

pub fn train(args: &TrainArgs) -> Result<()> {
    let file = read_config(args)?;
    let modality = inputs_modality(args)?;
    let defaults = modality_defaults(modality);
    let paper_window = modality.default_window();
    let window = Window::new(
        args.window
            .pre_frames
            .or(file.pre_frames)
            .unwrap_or(paper_window.pre_frames),
        args.window
            .post_frames
            .or(file.post_frames)
            .unwrap_or(paper_window.post_frames),
        args.window
            .omitted_frames
            .or(file.omitted_frames)
            .unwrap_or(paper_window.omitted_frames),
    )?;
    let arch = args
        .arch
        .clone()
        .or(file.arch.clone())
        .unwrap_or_else(|| defaults.arch.to_string());
    let (network_config, arch_modality) = architecture_config(&arch, &window)?;
    anyhow::ensure!(
        arch_modality == modality,
        "architecture {arch} is for {} recordings, but the inputs are {}",
        arch_modality.name(),
        modality.name()
    );
    let settings = settings_from(args, &file, modality, window);
    run(args, None, &arch, modality, network_config, settings, None)
}

/// Settings from flags, then the TOML file, then the modality's defaults.
fn settings_from(
    args: &TrainArgs,
    file: &TrainConfigFile,
    modality: Modality,
    window: Window,
) -> TrainSettings {
    let defaults = modality_defaults(modality);
    let optimizer = args
        .optimizer
        .map(|optimizer| match optimizer {
            OptimizerArg::Rmsprop => OptimizerKind::RmsProp,
            OptimizerArg::Adam => OptimizerKind::Adam,
        })
        .or(file.optimizer)
        .unwrap_or(defaults.optimizer);
    let loss = args
        .loss
        .map(|loss| match loss {
            LossArg::L1 => Loss::L1,
            LossArg::L2 => Loss::L2,
        })
        .or(file.loss)
        .unwrap_or(Loss::L1);
    let validation = if args.validation.is_empty() {
        ValidationSource::HeldOut {
            fraction: args
                .validation_fraction
                .or(file.validation_fraction)
                .unwrap_or(0.1),
        }
    } else {
        ValidationSource::Separate
    };
    let patch = args
        .patch_size
        .or(file.patch_size)
        .unwrap_or(defaults.patch_size);
    TrainSettings {
        window,
        loss,
        optimizer,
        learning_rate: args
            .learning_rate
            .or(file.learning_rate)
            .unwrap_or(defaults.learning_rate),
        lr_halving_epochs: args.lr_halving_epochs.or(file.lr_halving_epochs),
        batch_size: args
            .batch_size
            .or(file.batch_size)
            .unwrap_or(defaults.batch_size),
        steps: args.steps.or(file.steps).unwrap_or(1000),
        steps_per_epoch: args.steps_per_epoch.or(file.steps_per_epoch).unwrap_or(50),
        max_minutes: args.max_minutes.or(file.max_minutes),
        patch_size: (patch > 0).then_some(patch),
        validation,
        validation_samples: args
            .validation_samples
            .or(file.validation_samples)
            .unwrap_or(defaults.validation_samples),
        stats_frames: args
            .stats_frames
            .or(file.stats_frames)
            .unwrap_or(modality.default_normalization().stats_frames),
        // fMRI volumes are large frames: a few dozen time points suffice for varied blocks.
        cache_frames: if modality == Modality::Fmri { 48 } else { 512 },
        cache_refresh_steps: 25,
        seed: args.seed.or(file.seed).unwrap_or(0),
    }
}

fn read_config(args: &TrainArgs) -> Result<TrainConfigFile> {
    Ok(match &args.config {
        Some(path) => read_train_config(path)?,
        None => TrainConfigFile::default(),
    })
}

/// The modality shared by the training and validation recordings.
fn inputs_modality(args: &TrainArgs) -> Result<Modality> {
    common_modality(
        args.inputs
            .iter()
            .chain(&args.validation)
            .map(|p| p.as_path()),
    )
}

/// Fine-tuning: training that starts from a model (ours or an original Keras file) rather
/// than random weights, keeps its architecture, window and block, and reports the validation
/// loss on the new recording before and after.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    let train_args = &args.train;
    let file = read_config(train_args)?;
    let modality = inputs_modality(train_args)?;
    anyhow::ensure!(
        train_args.arch.is_none() && file.arch.is_none(),
        "{}: a fine-tuned model keeps its base's architecture; drop --arch",
        args.model.display()
    );
    let device = Default::default();
    let base = load_model::<Train>(&args.model, None, &device)?;
    anyhow::ensure!(
        base.spec.modality == modality,
        "{}: a {} model, but the inputs are {} recordings",
        args.model.display(),
        base.spec.modality.name(),
        modality.name()
    );
    let window = base.spec.window;
    let asked = &train_args.window;
    let differs = |given: Option<usize>, base: usize| given.is_some_and(|given| given != base);
    anyhow::ensure!(
        !differs(asked.pre_frames, window.pre_frames)
            && !differs(asked.post_frames, window.post_frames)
            && !differs(asked.omitted_frames, window.omitted_frames),
        "{}: the model's window is {}/{}/{}; a fine-tuned model keeps it",
        args.model.display(),
        window.pre_frames,
        window.post_frames,
        window.omitted_frames
    );
    let mut settings = settings_from(train_args, &file, modality, window);
    if train_args.steps.or(file.steps).is_none() {
        settings.steps = DEFAULT_FINETUNE_STEPS;
    }
    if train_args.learning_rate.or(file.learning_rate).is_none() {
        settings.learning_rate *= FINETUNE_LEARNING_RATE_FACTOR;
    }
    let network = if args.freeze_encoder {
        base.network.freeze_encoder()
    } else {
        base.network
    };
    let start = Start {
        network,
        block: base.spec.block,
        source: format!(
            "deepinterp finetune of {} ({}){}",
            args.model.display(),
            base.spec.source,
            if args.freeze_encoder {
                ", encoder frozen"
            } else {
                ""
            }
        ),
    };
    run(
        train_args,
        Some(&args.model),
        &base.spec.architecture,
        modality,
        base.spec.network,
        settings,
        Some(start),
    )
}

/// Steps of a fine-tuning run unless told otherwise: the paper's point is that little data
/// and time recover quality.
pub const DEFAULT_FINETUNE_STEPS: usize = 500;

/// Fine-tuning's learning rate relative to training's: a fresh optimiser's first steps on a
/// trained network are large (RMSprop's running average starts at zero), and at the training
/// rate they undid more than 160 steps could recover on a simulated movie.
pub const FINETUNE_LEARNING_RATE_FACTOR: f64 = 0.2;

/// Where a run's network comes from when it is not freshly initialised.
struct Start {
    network: Network<Train>,
    block: Option<VolumeBlock>,
    source: String,
}

/// The files a training run writes: the model, and beside it the checkpoint of the last epoch,
/// the best model so far of an unfinished run, and the loss history (CSV and PNG).
struct ModelOutputs {
    model: PathBuf,
    checkpoint: PathBuf,
    unfinished: PathBuf,
    loss_csv: PathBuf,
    loss_png: PathBuf,
}

impl ModelOutputs {
    fn new(model: &Path) -> Self {
        Self {
            model: model.to_path_buf(),
            checkpoint: sibling(model, "checkpoint"),
            unfinished: sibling(model, "unfinished"),
            loss_csv: sibling(model, "loss.csv"),
            loss_png: sibling(model, "loss.png"),
        }
    }

    /// Refuses outputs over the run's inputs (recordings with their sidecars, validation
    /// recordings, the config file, a base model), and a model or an unfinished run already
    /// at the output unless the user said what to do with it.
    fn claim(&self, args: &TrainArgs, base_model: Option<&Path>) -> Result<()> {
        let mut guard = OutputGuard::new();
        for input in &args.inputs {
            guard.recording("the training recording", input);
        }
        for input in &args.validation {
            guard.recording("the validation recording", input);
        }
        if let Some(config) = &args.config {
            guard.input("the config file", config);
        }
        if let Some(base) = base_model {
            guard.input("the base model", base);
        }
        guard
            .output("the model", &self.model)
            .output("the model's checkpoint", &self.checkpoint)
            .output("the unfinished model", &self.unfinished)
            .output("the loss history", &self.loss_csv)
            .output("the loss plot", &self.loss_png)
            .check()?;
        if args.resume || args.overwrite {
            anyhow::ensure!(
                !(args.resume && self.model.exists() && !self.checkpoint.exists()),
                "{}: a finished model with no checkpoint to resume; --overwrite trains a new one in its place",
                self.model.display()
            );
            return Ok(());
        }
        anyhow::ensure!(
            !self.model.exists(),
            "{}: a model is already here; --overwrite replaces it once the new one is trained, or choose another -o",
            self.model.display()
        );
        anyhow::ensure!(
            !self.checkpoint.exists(),
            "{}: an unfinished run's checkpoint is here; --resume continues it, --overwrite starts afresh",
            self.checkpoint.display()
        );
        Ok(())
    }

    /// Removes the checkpoint and unfinished model of an earlier run (with --overwrite).
    fn forget_unfinished_run(&self) -> Result<()> {
        for path in [&self.checkpoint, &self.unfinished] {
            match std::fs::remove_file(path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error)
                        .with_context(|| format!("{}: cannot remove", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Puts the run's best model in place: until now it was the unfinished model, and the
    /// file at the output path (if any) was left as it was. A resumed run that never beat the
    /// model it resumed leaves that model.
    fn finish(&self) -> Result<()> {
        if self.unfinished.exists() {
            std::fs::rename(&self.unfinished, &self.model).with_context(|| {
                format!(
                    "{}: cannot move the trained model into place",
                    self.model.display()
                )
            })?;
        }
        Ok(())
    }
}

/// `model.ext` → `model.ext.<suffix>`, next to the model.
pub fn sibling(model: &Path, suffix: &str) -> PathBuf {
    let mut name = model.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn run(
    args: &TrainArgs,
    base_model: Option<&Path>,
    arch: &str,
    modality: Modality,
    network_config: NetworkConfig,
    mut settings: TrainSettings,
    start: Option<Start>,
) -> Result<()> {
    let device = Default::default();
    <Train as burn::tensor::backend::Backend>::seed(&device, settings.seed);
    let outputs = ModelOutputs::new(&args.output);
    outputs.claim(args, base_model)?;
    let (data, frame_size, mut block) = open_training_data(args, &network_config, modality)?;
    if let Some(start) = &start {
        block = start.block.or(block);
    }
    // The modality's default crop is for frames larger than it; smaller frames train whole.
    // A crop the user asked for must fit (the engine refuses one that does not).
    let patch_given = args.patch_size.is_some() || read_config(args)?.patch_size.is_some();
    if let (Some(patch), Some([height, width]), false) =
        (settings.patch_size, frame_size, patch_given)
        && patch > height.min(width)
    {
        settings.patch_size = None;
    }
    let identity = RunIdentity::new(
        arch,
        &network_config,
        settings.window,
        &args.inputs,
        &args.validation,
    )?;
    let (network, source) = match start {
        Some(start) => (start.network, start.source),
        None => (
            network_config.init::<Train>(&device)?,
            "deepinterp train".to_string(),
        ),
    };
    let checkpoint = outputs.checkpoint.clone();
    if args.overwrite {
        outputs.forget_unfinished_run()?;
    }
    if args.resume && !checkpoint.exists() {
        eprintln!(
            "no checkpoint at {}: starting from scratch",
            checkpoint.display()
        );
    }
    crate::interrupt::set_hint(format!(
        "the last epoch's checkpoint is kept: run the same command with --resume to continue ({})",
        checkpoint.display()
    ));
    let mut summary = TrainingSummary {
        inputs: args
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        frame_size,
        steps: 0,
        batch_size: settings.batch_size,
        loss: format!("{:?}", settings.loss).to_lowercase(),
        best_validation_loss: None,
        history: Vec::new(),
        seed: settings.seed,
    };
    let spec = ModelSpec {
        architecture: arch.to_string(),
        modality,
        network: network_config.clone(),
        window: settings.window,
        block,
        normalization: match modality {
            Modality::Fmri => modality.default_normalization(),
            Modality::TwoPhoton | Modality::Ephys => NormalizationPolicy {
                stats_frames: settings.stats_frames,
                region: StatsRegion::Head,
            },
        },
        training: None,
        source,
    };
    let bar = progress::bar(settings.steps as u64, "train", "steps");
    let csv_path = outputs.loss_csv.clone();
    let mut history: Vec<EpochReport> = Vec::new();
    let mut initial_loss: Option<f64> = None;
    let mut on_event = |event: TrainEvent<'_, Infer>| -> Result<(), deepinterp::EngineError> {
        match event {
            TrainEvent::Started {
                train_frames,
                validation_samples,
                resumed_history,
                initial_validation_loss,
                network,
            } => {
                initial_loss = initial_validation_loss;
                // The starting network is the best model until an epoch beats it: a
                // fine-tuning run that only makes things worse leaves its base in place.
                if initial_validation_loss.is_some() {
                    summary.best_validation_loss = initial_validation_loss;
                    let model = Model {
                        spec: ModelSpec {
                            training: Some(summary.clone()),
                            ..spec.clone()
                        },
                        network: network.clone(),
                    };
                    write_model(&outputs.unfinished, &model)?;
                }
                history = resumed_history.to_vec();
                let first_step = history.last().map_or(0, |r| r.step);
                let line = format!(
                    "training {arch} ({} parameters) on {} input(s) ({train_frames} {}), window {}/{}/{}, {} steps of {} samples, {validation_samples} validation samples{}",
                    network_config.parameter_count(),
                    args.inputs.len(),
                    match modality {
                        Modality::TwoPhoton => "frames",
                        Modality::Ephys => "time samples",
                        Modality::Fmri => "time points",
                    },
                    settings.window.pre_frames,
                    settings.window.post_frames,
                    settings.window.omitted_frames,
                    settings.steps,
                    settings.batch_size,
                    if first_step > 0 {
                        format!(", resuming at step {first_step}")
                    } else {
                        String::new()
                    }
                );
                progress::log(&bar, line);
                if let Some(loss) = initial_validation_loss {
                    progress::log(&bar, format!("validation loss before training: {loss:.5}"));
                }
            }
            TrainEvent::Step { step, loss } => {
                bar.set_position(step as u64);
                bar.set_message(format!("train loss {loss:.4}"));
            }
            TrainEvent::Epoch { report, network } => {
                history.push(report.clone());
                summary.steps = report.step;
                summary.history = history
                    .iter()
                    .map(|r| (r.step, r.train_loss, r.validation_loss))
                    .collect();
                if report.improved {
                    summary.best_validation_loss = report.validation_loss;
                    let model = Model {
                        spec: ModelSpec {
                            training: Some(summary.clone()),
                            ..spec.clone()
                        },
                        network: network.clone(),
                    };
                    write_model(&outputs.unfinished, &model)?;
                }
                write_file_atomically(&csv_path, loss_csv(&history).as_bytes())?;
                let line = format!(
                    "epoch {:>3}  step {:>6}  train {:.5}  validation {}  lr {:.2e}{}",
                    report.epoch,
                    report.step,
                    report.train_loss,
                    report
                        .validation_loss
                        .map_or("-".to_string(), |v| format!("{v:.5}")),
                    report.learning_rate,
                    if report.improved { "  (saved)" } else { "" }
                );
                progress::log(&bar, line);
            }
        }
        Ok(())
    };
    let outcome = training::train_run::<Train>(
        network,
        data,
        &settings,
        &identity,
        &checkpoint,
        &device,
        &mut on_event,
    )?;
    bar.finish_and_clear();
    outputs.finish()?;
    let png_path = outputs.loss_png.clone();
    let train_points: Vec<(usize, f64)> = outcome
        .history
        .iter()
        .map(|r| (r.step, r.train_loss))
        .collect();
    let validation_points: Vec<(usize, f64)> = outcome
        .history
        .iter()
        .filter_map(|r| r.validation_loss.map(|v| (r.step, v)))
        .collect();
    deepinterp_metrics::plots::loss_curve_png(
        &png_path,
        &train_points,
        &validation_points,
        "training loss",
    )?;
    eprintln!(
        "{} steps{}; model {}, loss history {} and {}",
        outcome.steps,
        if outcome.stopped_on_time {
            " (stopped on the time budget)"
        } else {
            ""
        },
        args.output.display(),
        csv_path.display(),
        png_path.display()
    );
    let best = outcome
        .history
        .iter()
        .filter_map(|r| r.validation_loss)
        .fold(None, |best: Option<f64>, loss| {
            Some(best.map_or(loss, |b| b.min(loss)))
        });
    if let (Some(before), Some(after)) = (initial_loss, best) {
        eprintln!(
            "validation loss {before:.5} before training, {after:.5} after (best, saved): {:+.1}%",
            100.0 * (after - before) / before
        );
    }
    Ok(())
}

/// The recordings to train on, the frame size to record in the model (frame recordings)
/// and the voxel block (fMRI).
fn open_training_data(
    args: &TrainArgs,
    network_config: &NetworkConfig,
    modality: Modality,
) -> Result<(TrainingData, Option<[usize; 2]>, Option<VolumeBlock>)> {
    if modality == Modality::Fmri {
        let open = |paths: &[PathBuf]| -> Result<Vec<_>> {
            paths.iter().map(|path| Ok(open_volume(path)?)).collect()
        };
        let block = VolumeBlock::paper(None)?;
        let data = TrainingData::Volumes {
            inputs: open(&args.inputs)?,
            validation: open(&args.validation)?,
            block,
        };
        return Ok((data, None, Some(block)));
    }
    let row_multiple = match network_config {
        NetworkConfig::Planar(config) => config.size_multiple()[0],
        NetworkConfig::Volumetric(_) => 1,
    };
    let open = |paths: &[PathBuf]| -> Result<Vec<_>> {
        paths
            .iter()
            .map(|path| Ok(Recording::open(path, &args.raw, row_multiple)?.into_reader()))
            .collect()
    };
    let inputs = open(&args.inputs)?;
    let frame_size = {
        let info = inputs[0].info();
        [info.height, info.width]
    };
    let data = TrainingData::Frames {
        inputs,
        validation: open(&args.validation)?,
    };
    Ok((data, Some(frame_size), None))
}

fn loss_csv(history: &[EpochReport]) -> String {
    let mut csv =
        String::from("epoch,step,train_loss,validation_loss,learning_rate,elapsed_seconds\n");
    for r in history {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.3}",
            r.epoch,
            r.step,
            r.train_loss,
            r.validation_loss.map_or(String::new(), |v| v.to_string()),
            r.learning_rate,
            r.elapsed_seconds
        );
    }
    csv
}
