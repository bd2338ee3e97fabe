//! Training and fine-tuning runs: settings resolved in one place (the request's options over
//! its TOML file over the modality's [`Preset`]), outputs claimed before any work (never over
//! an input, never over a model unless asked), the engine's training loop, and the best model,
//! loss CSV and loss-curve PNG written as it goes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepinterp::model::file::write_model;
use deepinterp::model::{
    Modality, Model, ModelSpec, Network, NetworkConfig, NormalizationPolicy, StatsRegion,
    TrainingSummary, architecture_config, load_model,
};
use deepinterp::sampling::Window;
use deepinterp::training::{
    self, EpochReport, RunEnd, RunIdentity, TREND_EPOCHS, TrainEvent, TrainOptions, TrainSettings,
    TrainingData, ValidationSource, read_train_config,
};
use deepinterp::volume::VolumeBlock;
use deepinterp_io::nifti::open_volume;
use deepinterp_io::output::{OutputGuard, write_file_atomically};

use crate::backend::{Infer, Train};
use crate::error::{PipelineError, Result, ensure};
use crate::preset::Preset;
use crate::progress::{Progress, Reporter, advance};
use crate::recording::{RawOptions, Recording, common_modality};

/// A training run: the recordings, where the model goes, and the settings.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainRequest {
    /// Training recordings: movies (.h5 with dataset `data` [t,y,x], .tif), extracellular
    /// recordings (SpikeGLX .bin + .meta, Open Ephys, raw .dat/.bin with --channels) or fMRI
    /// runs (.nii, .nii.gz).
    #[cfg_attr(feature = "clap", arg(required = true))]
    pub inputs: Vec<PathBuf>,
    /// How to read headerless raw recordings.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub raw: RawOptions,
    /// Model file to write (the best model by validation loss).
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: PathBuf,
    /// Validation recordings (default: hold out the tail of each input).
    #[cfg_attr(feature = "clap", arg(long))]
    pub validation: Vec<PathBuf>,
    /// The settings; unset ones come from `config`, then from the modality's preset.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub options: TrainOptions,
    /// TOML file with any of these settings (flags win).
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: Option<PathBuf>,
    /// Resume from the checkpoint next to the output model, if there is one.
    #[cfg_attr(feature = "clap", arg(long))]
    pub resume: bool,
    /// Replace a model (and its unfinished run's checkpoint) already at the output path; the
    /// old model stays until the new one is finished.
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = "resume"))]
    pub overwrite: bool,
}

impl TrainRequest {
    /// A run on `inputs` writing `output`, every setting at its default.
    pub fn new(inputs: Vec<PathBuf>, output: PathBuf) -> Self {
        Self {
            inputs,
            output,
            ..Self::default()
        }
    }

    /// The options as given, over those of the settings file (read and checked here).
    pub fn merged_options(&self) -> Result<TrainOptions> {
        Ok(match &self.config {
            Some(path) => self.options.over(&read_train_config(path)?),
            None => self.options.clone(),
        })
    }

    /// The modality shared by the training and validation recordings.
    pub fn modality(&self) -> Result<Modality> {
        common_modality(
            self.inputs
                .iter()
                .chain(&self.validation)
                .map(PathBuf::as_path),
        )
    }
}

/// A fine-tuning run: training that starts from a model (ours or an original Keras file)
/// rather than random weights, keeps its architecture, window and block, and reports the
/// validation loss on the new recording before and after.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FinetuneRequest {
    /// The model to start from: a deepinterp model file or an original Keras .h5.
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: PathBuf,
    /// Keep the encoder's convolutions fixed; train the bottleneck and decoder only.
    #[cfg_attr(feature = "clap", arg(long))]
    pub freeze_encoder: bool,
    /// Every training setting (the architecture and window come from the model; the steps
    /// and learning rate default to the preset's fine-tuning ones).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub train: TrainRequest,
}

/// What a finished run did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Steps trained in all (a resumed run counts the earlier ones).
    pub steps: usize,
    /// How the run ended: converged, its step count, or the time budget, and how fast the
    /// validation loss was still falling.
    pub end: RunEnd,
    /// The model file.
    pub model: PathBuf,
    /// The loss history, CSV.
    pub loss_csv: PathBuf,
    /// The loss curves, PNG.
    pub loss_png: PathBuf,
    /// Validation loss of the starting network (fine-tuning, resumed runs).
    pub validation_loss_before: Option<f64>,
    /// Best validation loss of the run.
    pub best_validation_loss: Option<f64>,
    /// Every epoch of the run.
    pub history: Vec<EpochReport>,
}

/// The engine settings of a run on `modality`: options, then the preset. Fine-tuning runs
/// take the preset's fine-tuning steps and learning rate where the options name none.
pub fn resolve_settings(
    options: &TrainOptions,
    preset: &Preset,
    window: Window,
    separate_validation: bool,
    finetuning: bool,
) -> TrainSettings {
    let validation = if separate_validation {
        ValidationSource::Separate
    } else {
        ValidationSource::HeldOut {
            fraction: options
                .validation_fraction
                .unwrap_or(preset.validation_fraction),
        }
    };
    let patch = options.patch_size.unwrap_or(preset.patch_size);
    let (fixed_steps, learning_rate) = if finetuning {
        (
            preset.finetune_steps,
            preset.learning_rate * preset.finetune_learning_rate_factor,
        )
    } else {
        (preset.steps, preset.learning_rate)
    };
    // `--steps` is an exact count. Without it a run trains until its validation loss stops
    // improving; a run with no validation cannot tell, and takes the preset's fixed count.
    let validating = match validation {
        ValidationSource::Separate => true,
        ValidationSource::HeldOut { fraction } => fraction > 0.0,
    };
    let (steps, convergence) = match options.steps {
        Some(steps) => (steps, None),
        None if validating => (preset.max_steps, Some(preset.convergence)),
        None => (fixed_steps, None),
    };
    TrainSettings {
        window,
        loss: options.loss.unwrap_or(preset.loss),
        optimizer: options.optimizer.unwrap_or(preset.optimizer),
        learning_rate: options.learning_rate.unwrap_or(learning_rate),
        lr_halving_epochs: options.lr_halving_epochs,
        batch_size: options.batch_size.unwrap_or(preset.batch_size),
        steps,
        convergence,
        steps_per_epoch: options.steps_per_epoch.unwrap_or(preset.steps_per_epoch),
        max_minutes: options.max_minutes,
        patch_size: (patch > 0).then_some(patch),
        validation,
        validation_samples: options
            .validation_samples
            .unwrap_or(preset.validation_samples),
        stats_frames: options
            .stats_frames
            .unwrap_or(preset.normalization().stats_frames),
        cache_frames: preset.cache_frames,
        cache_refresh_steps: preset.cache_refresh_steps,
        seed: options.seed.unwrap_or(0),
    }
}

/// Trains a new network.
pub fn train(request: &TrainRequest, report: Reporter<'_>) -> Result<TrainReport> {
    let options = request.merged_options()?;
    let modality = request.modality()?;
    let preset = Preset::of(modality);
    let paper = preset.window();
    let window = Window::new(
        options.pre_frames.unwrap_or(paper.pre_frames),
        options.post_frames.unwrap_or(paper.post_frames),
        options.omitted_frames.unwrap_or(paper.omitted_frames),
    )?;
    let arch = options
        .arch
        .clone()
        .unwrap_or_else(|| preset.architecture.to_string());
    let (network_config, arch_modality) = architecture_config(&arch, &window)?;
    ensure!(
        arch_modality == modality,
        "architecture {arch} is for {} recordings, but the inputs are {}",
        arch_modality.name(),
        modality.name()
    );
    let settings = resolve_settings(
        &options,
        preset,
        window,
        !request.validation.is_empty(),
        false,
    );
    let run = Run {
        request,
        options: &options,
        base_model: None,
        arch: &arch,
        modality,
        network_config,
    };
    run.execute(settings, None, report)
}

/// Fine-tunes a trained model on new recordings.
pub fn finetune(request: &FinetuneRequest, report: Reporter<'_>) -> Result<TrainReport> {
    let train_request = &request.train;
    let options = train_request.merged_options()?;
    let modality = train_request.modality()?;
    ensure!(
        options.arch.is_none(),
        "{}: a fine-tuned model keeps its base's architecture; drop --arch",
        request.model.display()
    );
    let device = Default::default();
    let base = load_model::<Train>(&request.model, None, &device)?;
    ensure!(
        base.spec.modality == modality,
        "{}: a {} model, but the inputs are {} recordings",
        request.model.display(),
        base.spec.modality.name(),
        modality.name()
    );
    let window = base.spec.window;
    let differs = |given: Option<usize>, base: usize| given.is_some_and(|given| given != base);
    ensure!(
        !differs(options.pre_frames, window.pre_frames)
            && !differs(options.post_frames, window.post_frames)
            && !differs(options.omitted_frames, window.omitted_frames),
        "{}: the model's window is {}/{}/{}; a fine-tuned model keeps it",
        request.model.display(),
        window.pre_frames,
        window.post_frames,
        window.omitted_frames
    );
    let settings = resolve_settings(
        &options,
        Preset::of(modality),
        window,
        !train_request.validation.is_empty(),
        true,
    );
    let network = if request.freeze_encoder {
        base.network.freeze_encoder()
    } else {
        base.network
    };
    let start = Start {
        network,
        block: base.spec.block,
        source: format!(
            "deepinterp finetune of {} ({}){}",
            request.model.display(),
            base.spec.source,
            if request.freeze_encoder {
                ", encoder frozen"
            } else {
                ""
            }
        ),
    };
    let run = Run {
        request: train_request,
        options: &options,
        base_model: Some(&request.model),
        arch: &base.spec.architecture,
        modality,
        network_config: base.spec.network,
    };
    run.execute(settings, Some(start), report)
}

/// Where a run's network comes from when it is not freshly initialised.
struct Start {
    network: Network<Train>,
    block: Option<VolumeBlock>,
    source: String,
}

/// The files a training run writes: the model, and beside it the checkpoint of the last epoch,
/// the best model so far of an unfinished run, and the loss history (CSV and PNG).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelOutputs {
    /// The model.
    pub model: PathBuf,
    /// The last epoch's checkpoint (`--resume` continues from it).
    pub checkpoint: PathBuf,
    /// The best model so far of an unfinished run.
    pub unfinished: PathBuf,
    /// The loss history, CSV.
    pub loss_csv: PathBuf,
    /// The loss curves, PNG.
    pub loss_png: PathBuf,
}

impl ModelOutputs {
    /// The files of a run writing `model`.
    pub fn new(model: &Path) -> Self {
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
    /// at the output unless the request says what to do with it.
    fn claim(&self, request: &TrainRequest, base_model: Option<&Path>) -> Result<()> {
        let mut guard = OutputGuard::new();
        for input in &request.inputs {
            guard.recording("the training recording", input);
        }
        for input in &request.validation {
            guard.recording("the validation recording", input);
        }
        if let Some(config) = &request.config {
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
        if request.resume || request.overwrite {
            ensure!(
                !(request.resume && self.model.exists() && !self.checkpoint.exists()),
                "{}: a finished model with no checkpoint to resume; --overwrite trains a new one in its place",
                self.model.display()
            );
            return Ok(());
        }
        ensure!(
            !self.model.exists(),
            "{}: a model is already here; --overwrite replaces it once the new one is trained, or choose another -o",
            self.model.display()
        );
        ensure!(
            !self.checkpoint.exists(),
            "{}: an unfinished run's checkpoint is here; --resume continues it, --overwrite starts afresh",
            self.checkpoint.display()
        );
        Ok(())
    }

    /// Removes the checkpoint and unfinished model of an earlier run (with `overwrite`).
    fn forget_unfinished_run(&self) -> Result<()> {
        for path in [&self.checkpoint, &self.unfinished] {
            match std::fs::remove_file(path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(PipelineError::os(path, "cannot remove", error));
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
            std::fs::rename(&self.unfinished, &self.model).map_err(|error| {
                PipelineError::os(
                    &self.model,
                    "cannot move the trained model into place",
                    error,
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

/// One run's fixed parts.
struct Run<'a> {
    request: &'a TrainRequest,
    options: &'a TrainOptions,
    base_model: Option<&'a Path>,
    arch: &'a str,
    modality: Modality,
    network_config: NetworkConfig,
}

impl Run<'_> {
    fn execute(
        self,
        mut settings: TrainSettings,
        start: Option<Start>,
        report: Reporter<'_>,
    ) -> Result<TrainReport> {
        let Run {
            request,
            options,
            base_model,
            arch,
            modality,
            network_config,
        } = self;
        let device = Default::default();
        <Train as burn::tensor::backend::Backend>::seed(&device, settings.seed);
        let outputs = ModelOutputs::new(&request.output);
        outputs.claim(request, base_model)?;
        let (data, frame_size, mut block) = open_training_data(request, &network_config, modality)?;
        if let Some(start) = &start {
            block = start.block.or(block);
        }
        // The preset's crop is for frames larger than it; smaller frames train whole. A crop
        // the user asked for must fit (the engine refuses one that does not).
        if let (Some(patch), Some([height, width]), None) =
            (settings.patch_size, frame_size, options.patch_size)
            && patch > height.min(width)
        {
            settings.patch_size = None;
        }
        let identity = RunIdentity::new(
            arch,
            &network_config,
            settings.window,
            &request.inputs,
            &request.validation,
        )?;
        let (network, source) = match start {
            Some(start) => (start.network, start.source),
            None => (
                network_config.init::<Train>(&device)?,
                "deepinterp train".to_string(),
            ),
        };
        let checkpoint = outputs.checkpoint.clone();
        if request.overwrite {
            outputs.forget_unfinished_run()?;
        }
        if request.resume && !checkpoint.exists() {
            report.show(Progress::Line(format!(
                "no checkpoint at {}: starting from scratch",
                checkpoint.display()
            )));
        }
        report.show(Progress::Resumable(format!(
            "the last epoch's checkpoint is kept: run the same command with --resume to continue ({})",
            checkpoint.display()
        )));
        let mut summary = TrainingSummary {
            inputs: request
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
            ending: None,
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
        report.show(Progress::Begin {
            label: "train",
            // A converging run's length is not known in advance: an open-ended count.
            total: if settings.convergence.is_some() {
                0
            } else {
                settings.steps as u64
            },
            unit: "steps",
        });
        let csv_path = outputs.loss_csv.clone();
        let mut history: Vec<EpochReport> = Vec::new();
        let mut initial_loss: Option<f64> = None;
        let inputs_count = request.inputs.len();
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
                        keep_best(&outputs.unfinished, &spec, &summary, network)?;
                    }
                    history = resumed_history.to_vec();
                    let first_step = history.last().map_or(0, |r| r.step);
                    report.show(Progress::Line(format!(
                        "training {arch} ({} parameters) on {inputs_count} input(s) ({train_frames} {}), window {}/{}/{}, {} of {} samples, {validation_samples} validation samples{}",
                        network_config.parameter_count(),
                        match modality {
                            Modality::TwoPhoton => "frames",
                            Modality::Ephys => "time samples",
                            Modality::Fmri => "time points",
                        },
                        settings.window.pre_frames,
                        settings.window.post_frames,
                        settings.window.omitted_frames,
                        if settings.convergence.is_some() {
                            format!(
                                "steps until the validation loss stops improving (at most {})",
                                settings.steps
                            )
                        } else {
                            format!("{} steps", settings.steps)
                        },
                        settings.batch_size,
                        if first_step > 0 {
                            format!(", resuming at step {first_step}")
                        } else {
                            String::new()
                        }
                    )));
                    if let Some(loss) = initial_validation_loss {
                        report.show(Progress::Line(format!(
                            "validation loss before training: {loss:.5}"
                        )));
                    }
                }
                TrainEvent::Step { step, loss } => {
                    advance(report, step as u64, Some(format!("train loss {loss:.4}")))?
                }
                TrainEvent::Epoch {
                    report: epoch,
                    network,
                } => {
                    history.push(epoch.clone());
                    summary.steps = epoch.step;
                    summary.history = history
                        .iter()
                        .map(|r| (r.step, r.train_loss, r.validation_loss))
                        .collect();
                    if epoch.improved {
                        summary.best_validation_loss = epoch.validation_loss;
                        keep_best(&outputs.unfinished, &spec, &summary, network)?;
                    }
                    write_file_atomically(&csv_path, loss_csv(&history).as_bytes())?;
                    report.show(Progress::Line(format!(
                        "epoch {:>3}  step {:>6}  train {:.5}  validation {}  lr {:.2e}{}",
                        epoch.epoch,
                        epoch.step,
                        epoch.train_loss,
                        epoch
                            .validation_loss
                            .map_or("-".to_string(), |v| format!("{v:.5}")),
                        epoch.learning_rate,
                        if epoch.improved { "  (saved)" } else { "" }
                    )));
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
        report.show(Progress::End);
        let end = RunEnd {
            ending: outcome.ending,
            steps: outcome.steps,
            validation_fall_per_1000_steps: training::recent_fall_per_1000_steps(
                &outcome.history,
                TREND_EPOCHS,
            ),
            validation_relative_error: outcome.validation_relative_error,
        };
        record_end(&outputs.unfinished, end)?;
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
        report.show(Progress::Line(end.describe()));
        report.show(Progress::Line(format!(
            "model {}, loss history {} and {}",
            request.output.display(),
            csv_path.display(),
            png_path.display()
        )));
        let best = outcome
            .history
            .iter()
            .filter_map(|r| r.validation_loss)
            .fold(None, |best: Option<f64>, loss| {
                Some(best.map_or(loss, |b| b.min(loss)))
            });
        if let (Some(before), Some(after)) = (initial_loss, best) {
            report.show(Progress::Line(format!(
                "validation loss {before:.5} before training, {after:.5} after (best, saved): {:+.1}%",
                100.0 * (after - before) / before
            )));
        }
        Ok(TrainReport {
            steps: outcome.steps,
            end,
            model: outputs.model,
            loss_csv: csv_path,
            loss_png: png_path,
            validation_loss_before: initial_loss,
            best_validation_loss: best,
            history: outcome.history,
        })
    }
}

/// Writes the run's best network so far, with the training summary in its spec, as the
/// unfinished model (moved into place when the run ends).
fn keep_best(
    unfinished: &Path,
    spec: &ModelSpec,
    summary: &TrainingSummary,
    network: &Network<Infer>,
) -> Result<(), deepinterp::EngineError> {
    let model = Model {
        spec: ModelSpec {
            training: Some(summary.clone()),
            ..spec.clone()
        },
        network: network.clone(),
    };
    write_model(unfinished, &model)
}

/// Writes how the run ended into the spec of its unfinished model (the best network, kept
/// as it went), before it is moved into place.
fn record_end(unfinished: &Path, end: RunEnd) -> Result<()> {
    if !unfinished.exists() {
        return Ok(());
    }
    let mut model = load_model::<Infer>(unfinished, None, &Default::default())?;
    if let Some(training) = &mut model.spec.training {
        training.ending = Some(end);
    }
    write_model(unfinished, &model)?;
    Ok(())
}

/// The recordings to train on, the frame size to record in the model (frame recordings)
/// and the voxel block (fMRI).
fn open_training_data(
    request: &TrainRequest,
    network_config: &NetworkConfig,
    modality: Modality,
) -> Result<(TrainingData, Option<[usize; 2]>, Option<VolumeBlock>)> {
    if modality == Modality::Fmri {
        let open = |paths: &[PathBuf]| -> Result<Vec<_>> {
            paths.iter().map(|path| Ok(open_volume(path)?)).collect()
        };
        let block = VolumeBlock::paper(None)?;
        let data = TrainingData::Volumes {
            inputs: open(&request.inputs)?,
            validation: open(&request.validation)?,
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
            .map(|path| Ok(Recording::open(path, &request.raw, row_multiple)?.into_reader()))
            .collect()
    };
    let inputs = open(&request.inputs)?;
    let frame_size = {
        let info = inputs[0].info();
        [info.height, info.width]
    };
    let data = TrainingData::Frames {
        inputs,
        validation: open(&request.validation)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::{EPHYS, FMRI, TWO_PHOTON};
    use deepinterp::training::{Loss, OptimizerKind};

    #[test]
    fn options_win_over_the_file_and_the_file_over_the_preset() {
        let flags = TrainOptions {
            steps: Some(7),
            loss: Some(Loss::L2),
            ..TrainOptions::default()
        };
        let file = TrainOptions {
            steps: Some(99),
            batch_size: Some(3),
            optimizer: Some(OptimizerKind::Adam),
            ..TrainOptions::default()
        };
        let merged = flags.over(&file);
        assert_eq!(merged.steps, Some(7));
        assert_eq!(merged.batch_size, Some(3));
        let settings = resolve_settings(&merged, &TWO_PHOTON, TWO_PHOTON.window(), false, false);
        assert_eq!(settings.steps, 7);
        assert_eq!(settings.batch_size, 3);
        assert_eq!(settings.loss, Loss::L2);
        assert_eq!(settings.optimizer, OptimizerKind::Adam);
        // The rest is the preset's.
        assert_eq!(settings.learning_rate, TWO_PHOTON.learning_rate);
        assert_eq!(settings.patch_size, Some(TWO_PHOTON.patch_size));
        assert_eq!(settings.validation_samples, TWO_PHOTON.validation_samples);
        assert_eq!(
            settings.validation,
            ValidationSource::HeldOut {
                fraction: TWO_PHOTON.validation_fraction
            }
        );
    }

    #[test]
    fn each_modality_gets_its_preset() {
        let none = TrainOptions::default();
        let ephys = resolve_settings(&none, &EPHYS, EPHYS.window(), true, false);
        assert_eq!(ephys.patch_size, None, "probe grids train whole");
        assert_eq!(ephys.batch_size, EPHYS.batch_size);
        assert_eq!(ephys.validation, ValidationSource::Separate);
        let fmri = resolve_settings(&none, &FMRI, FMRI.window(), false, false);
        assert_eq!(fmri.optimizer, OptimizerKind::Adam);
        assert_eq!(fmri.cache_frames, FMRI.cache_frames);
        assert_eq!(fmri.stats_frames, FMRI.normalization().stats_frames);
    }

    #[test]
    fn finetuning_takes_fewer_steps_at_a_lower_rate_unless_told() {
        let none = TrainOptions::default();
        let tuned = resolve_settings(&none, &TWO_PHOTON, TWO_PHOTON.window(), false, true);
        assert_eq!(tuned.convergence, Some(TWO_PHOTON.convergence));
        let no_validation = TrainOptions {
            validation_fraction: Some(0.0),
            ..TrainOptions::default()
        };
        let blind = resolve_settings(
            &no_validation,
            &TWO_PHOTON,
            TWO_PHOTON.window(),
            false,
            true,
        );
        assert_eq!(blind.steps, TWO_PHOTON.finetune_steps);
        assert_eq!(blind.convergence, None);
        assert_eq!(
            tuned.learning_rate,
            TWO_PHOTON.learning_rate * TWO_PHOTON.finetune_learning_rate_factor
        );
        let told = TrainOptions {
            steps: Some(5),
            learning_rate: Some(1e-2),
            ..TrainOptions::default()
        };
        let tuned = resolve_settings(&told, &TWO_PHOTON, TWO_PHOTON.window(), false, true);
        assert_eq!((tuned.steps, tuned.learning_rate), (5, 1e-2));
        assert_eq!(tuned.convergence, None, "--steps is an exact count");
    }

    #[test]
    fn without_steps_a_run_trains_until_it_converges() {
        let none = TrainOptions::default();
        for preset in [&TWO_PHOTON, &EPHYS, &FMRI] {
            let settings = resolve_settings(&none, preset, preset.window(), false, false);
            assert_eq!(settings.convergence, Some(preset.convergence));
            assert_eq!(settings.steps, preset.max_steps);
            settings.validate().unwrap();
        }
        let no_validation = TrainOptions {
            validation_fraction: Some(0.0),
            ..TrainOptions::default()
        };
        let settings = resolve_settings(
            &no_validation,
            &TWO_PHOTON,
            TWO_PHOTON.window(),
            false,
            false,
        );
        assert_eq!(
            (settings.steps, settings.convergence),
            (TWO_PHOTON.steps, None)
        );
    }

    #[test]
    fn a_run_refuses_outputs_over_its_inputs_and_an_existing_model() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("movie.h5");
        std::fs::write(&input, b"not read").unwrap();
        let over_input = TrainRequest::new(vec![input.clone()], input.clone());
        let error = ModelOutputs::new(&input)
            .claim(&over_input, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("movie.h5"), "{error}");
        let model = dir.path().join("model.dimodel");
        std::fs::write(&model, b"an earlier model").unwrap();
        let request = TrainRequest::new(vec![input.clone()], model.clone());
        let error = ModelOutputs::new(&model)
            .claim(&request, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--overwrite"), "{error}");
        let overwrite = TrainRequest {
            overwrite: true,
            ..request
        };
        ModelOutputs::new(&model).claim(&overwrite, None).unwrap();
        assert_eq!(
            ModelOutputs::new(&model).checkpoint,
            dir.path().join("model.dimodel.checkpoint")
        );
    }
}
