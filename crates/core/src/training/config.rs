//! A training-settings file: TOML with the same keys as `deepinterp train`'s flags
//! (underscores for dashes), every key optional. Unknown keys are errors (a misspelt key
//! silently ignored would train with the default), and values are checked with the rules
//! of [`super::TrainSettings::validate`], so a bad file is a one-line error naming the file
//! and the key.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{Loss, OptimizerKind};
use crate::error::{EngineError, escape_text};
use crate::sampling::{MAX_WINDOW_SPAN, Window};

/// Largest settings file read: a real one is a few hundred bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The settings of a training run as a user gives them, every one optional: the keys of a
/// training-settings file (TOML, underscores for dashes), the flags of `deepinterp train`
/// (with the `clap` feature) and the keyword arguments of the Python `train`. A front end
/// fills it; `deepinterp-pipeline` resolves it (flags over file over the modality's preset)
/// into [`super::TrainSettings`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// Architecture: two-photon unet_single_1024 (the paper's) or unet-d<depth>-w<width>;
    /// ephys unet_single_ephys_1024 (the paper's) or unet-ephys-d<depth>-w<width>.
    #[cfg_attr(feature = "clap", arg(long))]
    pub arch: Option<String>,
    /// Optimiser steps, exactly. Without it a run trains until its validation loss stops
    /// improving (at most 100,000 steps, or --max-minutes).
    #[cfg_attr(feature = "clap", arg(long))]
    pub steps: Option<usize>,
    /// Stop after this many minutes (the model so far is saved).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub max_minutes: Option<f64>,
    /// Frames before the predicted frame.
    #[cfg_attr(feature = "clap", arg(long))]
    pub pre_frames: Option<usize>,
    /// Frames after the predicted frame.
    #[cfg_attr(feature = "clap", arg(long))]
    pub post_frames: Option<usize>,
    /// Frames left out on each side of the predicted frame.
    #[cfg_attr(feature = "clap", arg(long))]
    pub omitted_frames: Option<usize>,
    /// Loss: l2 (default for two-photon and extracellular recordings) or l1 (the paper's; the
    /// fMRI default).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub loss: Option<Loss>,
    /// Optimiser: rmsprop (paper; default for 2P and ephys) or adam (default for fMRI).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate.
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub learning_rate: Option<f64>,
    /// Halve the learning rate every N epochs.
    #[cfg_attr(feature = "clap", arg(long))]
    pub lr_halving_epochs: Option<usize>,
    /// Samples per step.
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch_size: Option<usize>,
    /// Steps per epoch (validation, checkpoint and loss history each epoch).
    #[cfg_attr(feature = "clap", arg(long))]
    pub steps_per_epoch: Option<usize>,
    /// Side of square training crops; 0 trains on whole frames (the default for ephys).
    #[cfg_attr(feature = "clap", arg(long))]
    pub patch_size: Option<usize>,
    /// Fraction of each input held out for validation when no validation recording is given
    /// (0: no validation).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub validation_fraction: Option<f64>,
    /// Fixed validation samples scored after each epoch (default 64; ephys 512, fMRI 4096).
    #[cfg_attr(feature = "clap", arg(long))]
    pub validation_samples: Option<usize>,
    /// Frames (samples, for ephys) from the head of each file for the normalisation
    /// statistics (default 100; ephys 200000).
    #[cfg_attr(feature = "clap", arg(long))]
    pub stats_frames: Option<usize>,
    /// Random seed.
    #[cfg_attr(feature = "clap", arg(long))]
    pub seed: Option<u64>,
}

impl TrainOptions {
    /// These options, with `base`'s where these leave one unset (flags over a file).
    pub fn over(&self, base: &TrainOptions) -> TrainOptions {
        TrainOptions {
            arch: self.arch.clone().or_else(|| base.arch.clone()),
            steps: self.steps.or(base.steps),
            max_minutes: self.max_minutes.or(base.max_minutes),
            pre_frames: self.pre_frames.or(base.pre_frames),
            post_frames: self.post_frames.or(base.post_frames),
            omitted_frames: self.omitted_frames.or(base.omitted_frames),
            loss: self.loss.or(base.loss),
            optimizer: self.optimizer.or(base.optimizer),
            learning_rate: self.learning_rate.or(base.learning_rate),
            lr_halving_epochs: self.lr_halving_epochs.or(base.lr_halving_epochs),
            batch_size: self.batch_size.or(base.batch_size),
            steps_per_epoch: self.steps_per_epoch.or(base.steps_per_epoch),
            patch_size: self.patch_size.or(base.patch_size),
            validation_fraction: self.validation_fraction.or(base.validation_fraction),
            validation_samples: self.validation_samples.or(base.validation_samples),
            stats_frames: self.stats_frames.or(base.stats_frames),
            seed: self.seed.or(base.seed),
        }
    }
}

/// Reads and checks a training-settings file; its size is bounded before it is read.
pub fn read_train_config(path: &Path) -> Result<TrainOptions, EngineError> {
    // A FIFO would block and a device never end: only regular files are read.
    deepinterp_io::movie::require_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| EngineError::os(path, e))?;
    let mut text = String::new();
    // One byte past the limit tells a file at the limit from a longer one without reading
    // (or allocating for) the rest.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| EngineError::os(path, e))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(file_error(
            path,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not a training-settings file"),
        ));
    }
    parse_train_config(path, &text)
}

/// Parses and checks the text of a training-settings file; `path` names it in messages.
pub fn parse_train_config(path: &Path, text: &str) -> Result<TrainOptions, EngineError> {
    let config: TrainOptions = toml::from_str(text).map_err(|e| {
        // toml's message quotes the offending key or value: keep it on one line and free
        // of control bytes.
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        let at = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        file_error(path, format!("{}{at}", escape_text(&message)))
    })?;
    config.check(path)?;
    Ok(config)
}

fn file_error(path: &Path, reason: String) -> EngineError {
    EngineError::SettingsFile {
        path: path.to_path_buf(),
        reason,
    }
}

impl TrainOptions {
    /// The rules of [`super::TrainSettings::validate`] for the keys the file sets.
    fn check(&self, path: &Path) -> Result<(), EngineError> {
        let bad = |key: &str, rule: &str, got: String| {
            Err(file_error(path, format!("{key} must be {rule}, got {got}")))
        };
        let positive = [
            ("learning_rate", self.learning_rate),
            ("max_minutes", self.max_minutes),
        ];
        for (key, value) in positive {
            if let Some(value) = value
                && !(value.is_finite() && value > 0.0)
            {
                return bad(key, "a finite number above 0", value.to_string());
            }
        }
        if let Some(fraction) = self.validation_fraction
            && !(fraction.is_finite() && (0.0..1.0).contains(&fraction))
        {
            return bad(
                "validation_fraction",
                "at least 0 (no validation) and below 1",
                fraction.to_string(),
            );
        }
        let counts = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("steps_per_epoch", self.steps_per_epoch),
            ("validation_samples", self.validation_samples),
            ("stats_frames", self.stats_frames),
            ("lr_halving_epochs", self.lr_halving_epochs),
        ];
        for (key, value) in counts {
            if value == Some(0) {
                return bad(key, "at least 1", "0".into());
            }
        }
        let frames = [
            ("pre_frames", self.pre_frames),
            ("post_frames", self.post_frames),
            ("omitted_frames", self.omitted_frames),
            ("patch_size", self.patch_size),
        ];
        for (key, value) in frames {
            if let Some(value) = value
                && value > MAX_WINDOW_SPAN
            {
                return bad(
                    key,
                    &format!("at most {MAX_WINDOW_SPAN}"),
                    value.to_string(),
                );
            }
        }
        if let Some(pre) = self.pre_frames {
            let post = self.post_frames.unwrap_or(pre);
            let omitted = self.omitted_frames.unwrap_or(0);
            Window::new(pre, post, omitted).map_err(|e| {
                file_error(
                    path,
                    format!(
                        "pre_frames, post_frames, omitted_frames: {}",
                        e.to_string().trim_start_matches("invalid settings: ")
                    ),
                )
            })?;
        }
        if let Some(arch) = &self.arch
            && (arch.is_empty() || arch.len() > 256)
        {
            return bad(
                "arch",
                "an architecture name",
                format!("'{}'", escape_text(arch)),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrainOptions, String> {
        parse_train_config(Path::new("run.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_file_parses_with_core_enums() {
        let config = parse(
            "arch = \"unet-d3-w16\"\nsteps = 10\nloss = \"l2\"\noptimizer = \"adam\"\nlearning_rate = 1e-4\npre_frames = 3\nvalidation_fraction = 0\n",
        )
        .unwrap();
        assert_eq!(config.loss, Some(Loss::L2));
        assert_eq!(config.optimizer, Some(OptimizerKind::Adam));
        assert_eq!(config.steps, Some(10));
        assert_eq!(parse("").unwrap(), TrainOptions::default());
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        let cases = [
            (
                "learning_rate = nan",
                "learning_rate must be a finite number above 0",
            ),
            (
                "learning_rate = -1.0",
                "learning_rate must be a finite number above 0",
            ),
            (
                "max_minutes = inf",
                "max_minutes must be a finite number above 0",
            ),
            ("validation_fraction = 1.0", "validation_fraction must be"),
            ("steps = 0", "steps must be at least 1"),
            ("batch_size = 0", "batch_size must be at least 1"),
            ("steps_per_epoch = 0", "steps_per_epoch must be at least 1"),
            (
                "lr_halving_epochs = 0",
                "lr_halving_epochs must be at least 1",
            ),
            ("stats_frames = 0", "stats_frames must be at least 1"),
            (
                "pre_frames = 3\nomitted_frames = 2000000000",
                "would span more than",
            ),
            (
                "omitted_frames = 9223372036854775807",
                "omitted_frames must be at most",
            ),
            ("arch = \"\"", "arch must be an architecture name"),
            ("loss = \"l3\"", "l3"),
            ("stepz = 3", "stepz"),
            ("steps = -1", "run.toml"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with("run.toml: "), "{text}: {error}");
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains('\n'), "{text}: {error}");
        }
    }

    #[test]
    fn oversized_files_are_refused_before_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.toml");
        std::fs::write(&path, vec![b'#'; (MAX_CONFIG_BYTES + 10) as usize]).unwrap();
        let error = read_train_config(&path).unwrap_err().to_string();
        assert!(
            error.contains("huge.toml") && error.contains("larger than"),
            "{error}"
        );
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "steps = 5\n").unwrap();
        assert_eq!(read_train_config(&good).unwrap().steps, Some(5));
    }
}
