//! Training runs on tiny movies: settings checks, memory checks, checkpoints (checksum,
//! identity, hostile bytes).

use std::path::{Path, PathBuf};

use deepinterp_io::{Dtype, MovieInfo, create_movie, open_movie};

use super::*;
use crate::backend::CpuTrain;
use crate::model::architecture_config;

fn write_movie(dir: &Path, name: &str, seed: u32, frames: usize) -> PathBuf {
    let path = dir.join(name);
    let info = MovieInfo {
        frames,
        height: 16,
        width: 16,
        dtype: Dtype::F32,
    };
    let mut writer = create_movie(&path, &info).unwrap();
    let values: Vec<f32> = (0..frames * 256)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32)
        .collect();
    writer.write_frames(&values, frames).unwrap();
    writer.finish().unwrap();
    path
}

fn settings(window: Window) -> TrainSettings {
    TrainSettings {
        window,
        loss: Loss::L1,
        optimizer: OptimizerKind::Adam,
        learning_rate: 1e-3,
        lr_halving_epochs: None,
        batch_size: 2,
        steps: 2,
        convergence: None,
        steps_per_epoch: 1,
        max_minutes: None,
        patch_size: None,
        validation: ValidationSource::HeldOut { fraction: 0.0 },
        validation_samples: 1,
        stats_frames: 10,
        cache_frames: 32,
        cache_refresh_steps: 5,
        seed: 0,
    }
}

/// A run of `arch` on `inputs` with the identity the CLI builds.
fn run(
    checkpoint: &Path,
    arch: &str,
    settings: &TrainSettings,
    inputs: &[PathBuf],
) -> Result<TrainOutcome, EngineError> {
    let (config, _) = architecture_config(arch, &settings.window)?;
    let device = Default::default();
    let network = config.init::<CpuTrain>(&device)?;
    let identity = RunIdentity::new(arch, &config, settings.window, inputs, &[])?;
    let readers = inputs.iter().map(|p| open_movie(p).unwrap()).collect();
    let data = TrainingData::Frames {
        inputs: readers,
        validation: Vec::new(),
    };
    train_run(
        network,
        data,
        settings,
        &identity,
        checkpoint,
        &device,
        &mut |_| Ok(()),
    )
}

#[test]
fn invalid_settings_are_refused_naming_the_flag() {
    let window = Window::new(2, 2, 0).unwrap();
    let base = settings(window);
    let cases: Vec<(TrainSettings, &str)> = vec![
        (
            TrainSettings {
                learning_rate: f64::NAN,
                ..base.clone()
            },
            "--learning-rate must be a finite number above 0, got NaN",
        ),
        (
            TrainSettings {
                learning_rate: 0.0,
                ..base.clone()
            },
            "--learning-rate",
        ),
        (
            TrainSettings {
                max_minutes: Some(f64::INFINITY),
                ..base.clone()
            },
            "--max-minutes",
        ),
        (
            TrainSettings {
                max_minutes: Some(-1.0),
                ..base.clone()
            },
            "--max-minutes",
        ),
        (
            TrainSettings {
                validation: ValidationSource::HeldOut { fraction: 1.0 },
                ..base.clone()
            },
            "--validation-fraction",
        ),
        (
            TrainSettings {
                validation: ValidationSource::HeldOut { fraction: f64::NAN },
                ..base.clone()
            },
            "--validation-fraction",
        ),
        (
            TrainSettings {
                steps: 0,
                convergence: None,
                ..base.clone()
            },
            "--steps must be at least 1",
        ),
        (
            TrainSettings {
                batch_size: 0,
                ..base.clone()
            },
            "--batch-size must be at least 1",
        ),
        (
            TrainSettings {
                steps_per_epoch: 0,
                ..base.clone()
            },
            "--steps-per-epoch",
        ),
        (
            TrainSettings {
                validation_samples: 0,
                ..base.clone()
            },
            "--validation-samples",
        ),
        (
            TrainSettings {
                cache_frames: 0,
                ..base.clone()
            },
            "frame cache",
        ),
        (
            TrainSettings {
                cache_refresh_steps: 0,
                ..base.clone()
            },
            "frame cache",
        ),
        (
            TrainSettings {
                lr_halving_epochs: Some(0),
                ..base.clone()
            },
            "--lr-halving-epochs",
        ),
        (
            TrainSettings {
                patch_size: Some(0),
                ..base.clone()
            },
            "--patch-size",
        ),
        (
            TrainSettings {
                window: Window {
                    pre_frames: 3,
                    post_frames: 3,
                    omitted_frames: usize::MAX,
                },
                ..base.clone()
            },
            "would span more than",
        ),
    ];
    for (settings, expected) in cases {
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    }
    assert!(base.validate().is_ok());
}

#[test]
fn frame_dependent_settings_and_memory_are_checked_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let movie = write_movie(dir.path(), "movie.tif", 1, 24);
    let window = Window::new(2, 2, 0).unwrap();
    let checkpoint = dir.path().join("run.checkpoint");
    let cases: Vec<(TrainSettings, &str)> = vec![
        (
            TrainSettings {
                steps: 0,
                convergence: None,
                ..settings(window)
            },
            "--steps must be at least 1",
        ),
        (
            TrainSettings {
                patch_size: Some(64),
                ..settings(window)
            },
            "--patch-size 64 is larger than the frames (16x16)",
        ),
        (
            TrainSettings {
                stats_frames: 0,
                ..settings(window)
            },
            "--stats-frames",
        ),
        (
            TrainSettings {
                batch_size: 100_000_000,
                ..settings(window)
            },
            "--batch-size 100000000",
        ),
        (
            TrainSettings {
                validation: ValidationSource::HeldOut { fraction: 0.5 },
                validation_samples: usize::MAX / 2,
                ..settings(window)
            },
            "--validation-samples",
        ),
    ];
    for (settings, expected) in cases {
        let error = run(
            &checkpoint,
            "unet-d1-w2",
            &settings,
            std::slice::from_ref(&movie),
        )
        .err()
        .unwrap_or_else(|| panic!("{expected}: accepted"))
        .to_string();
        assert!(error.contains(expected), "{expected}: {error}");
        assert!(!checkpoint.exists());
    }
    // A recording shorter than the window: an error naming it.
    let short = write_movie(dir.path(), "short.tif", 1, 8);
    let error = run(
        &checkpoint,
        "unet-d1-w2",
        &settings(Window::new(4, 4, 0).unwrap()),
        &[short],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("short.tif") && error.contains("too few"),
        "{error}"
    );
}

#[test]
fn resume_checks_checksum_architecture_window_and_inputs_first() {
    let dir = tempfile::tempdir().unwrap();
    let movie = write_movie(dir.path(), "movie.tif", 1, 24);
    let other = write_movie(dir.path(), "other.tif", 2, 24);
    let checkpoint = dir.path().join("run.checkpoint");
    let window = Window::new(2, 2, 0).unwrap();
    let inputs = std::slice::from_ref(&movie);
    let first = run(&checkpoint, "unet-d1-w2", &settings(window), inputs).unwrap();
    assert_eq!(first.steps, 2);
    let pristine = std::fs::read(&checkpoint).unwrap();

    // The same run resumes (its identity survives the round trip).
    let longer = TrainSettings {
        steps: 3,
        convergence: None,
        ..settings(window)
    };
    let resumed = run(&checkpoint, "unet-d1-w2", &longer, inputs).unwrap();
    assert_eq!((resumed.steps, resumed.history.len()), (3, 3));
    std::fs::write(&checkpoint, &pristine).unwrap();

    let refusals: Vec<(&str, TrainSettings, Vec<PathBuf>, &str)> = vec![
        (
            "unet-d1-w3",
            settings(window),
            vec![movie.clone()],
            "made for architecture unet-d1-w2, this run trains unet-d1-w3",
        ),
        (
            "unet-d1-w2",
            settings(Window::new(2, 2, 1).unwrap()),
            vec![movie.clone()],
            "made for the window (pre 2, post 2, omitted 0), this run uses (pre 2, post 2, omitted 1)",
        ),
        (
            "unet-d1-w2",
            settings(window),
            vec![other.clone()],
            "other.tif is not the input the checkpoint was made for",
        ),
        (
            "unet-d1-w2",
            settings(window),
            vec![movie.clone(), other.clone()],
            "made for 1 training inputs, this run has 2",
        ),
        (
            "unet-d1-w2",
            TrainSettings {
                seed: 5,
                ..settings(window)
            },
            vec![movie.clone()],
            "other settings",
        ),
    ];
    for (arch, settings, inputs, expected) in refusals {
        let error = run(&checkpoint, arch, &settings, &inputs)
            .err()
            .unwrap_or_else(|| panic!("{expected}: resumed"))
            .to_string();
        assert!(
            error.starts_with(&checkpoint.display().to_string()) && error.contains(expected),
            "{expected}: {error}"
        );
        assert!(!error.contains('\n'), "{error}");
        assert_eq!(std::fs::read(&checkpoint).unwrap(), pristine);
    }

    // One flipped byte anywhere is a checksum error.
    for position in [30, pristine.len() / 2, pristine.len() - 1] {
        let mut damaged = pristine.clone();
        damaged[position] ^= 0x10;
        std::fs::write(&checkpoint, &damaged).unwrap();
        let error = run(&checkpoint, "unet-d1-w2", &settings(window), inputs)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("checksum mismatch"), "{position}: {error}");
        assert!(error.contains("run.checkpoint"), "{error}");
    }

    // A checkpoint of the older layout is explained, not loaded.
    std::fs::write(&checkpoint, b"DEEPINTERP-CHECKPOINT\n\x02\0\0\0\0\0\0\0{}").unwrap();
    let error = run(&checkpoint, "unet-d1-w2", &settings(window), inputs)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("older deepinterp"), "{error}");
}

/// Recomputes a checkpoint's trailer so hostile parts reach the record loaders.
fn with_checksum(mut body: Vec<u8>) -> Vec<u8> {
    let checksum = crc32fast::hash(&body);
    body.extend_from_slice(&checksum.to_le_bytes());
    body
}

/// The four parts of a good checkpoint.
fn parts_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = &bytes[CHECKPOINT_MAGIC.len()..bytes.len() - 4];
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        parts.push(rest[8..8 + len].to_vec());
        rest = &rest[8 + len..];
    }
    parts
}

fn assemble(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = CHECKPOINT_MAGIC.to_vec();
    for part in parts {
        body.extend_from_slice(&(part.len() as u64).to_le_bytes());
        body.extend_from_slice(part);
    }
    with_checksum(body)
}

#[test]
fn hostile_checkpoints_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let movie = write_movie(dir.path(), "movie.tif", 1, 24);
    let checkpoint = dir.path().join("run.checkpoint");
    let window = Window::new(2, 2, 0).unwrap();
    run(
        &checkpoint,
        "unet-d1-w2",
        &settings(window),
        std::slice::from_ref(&movie),
    )
    .unwrap();
    let good = std::fs::read(&checkpoint).unwrap();
    let device = Default::default();
    let network = || {
        let (config, _) = architecture_config("unet-d1-w2", &window).unwrap();
        config.init::<CpuTrain>(&device).unwrap()
    };
    let load = |bytes: &[u8]| {
        load_checkpoint_bytes(
            Path::new("fuzz.checkpoint"),
            bytes,
            network(),
            OptimizerKind::Adam,
            &device,
        )
    };
    let (_, state) = load(&good).unwrap();
    assert_eq!(state.step, 2);
    assert_eq!(state.identity.architecture, "unet-d1-w2");
    let (_, state) =
        load_checkpoint_file(&checkpoint, network(), OptimizerKind::Adam, &device).unwrap();
    assert_eq!(state.history.len(), 2);

    let parts = parts_of(&good);
    assert_eq!(parts.len(), 4);
    let mut hostile: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "not a deepinterp checkpoint"),
        (good[..good.len() / 2].to_vec(), "checksum mismatch"),
        (with_checksum(CHECKPOINT_MAGIC.to_vec()), "truncated"),
    ];
    // A part length far beyond the file.
    let mut huge = CHECKPOINT_MAGIC.to_vec();
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    hostile.push((with_checksum(huge), "declares"));
    // Garbage records of the right and wrong lengths, under a valid checksum.
    let mut garbage = parts.clone();
    garbage[2] = vec![0xff; parts[2].len()];
    hostile.push((assemble(&garbage), "do not match"));
    let mut garbage = parts.clone();
    garbage[2] = vec![0x01; 7];
    hostile.push((assemble(&garbage), "does not match"));
    let mut garbage = parts.clone();
    garbage[3] = vec![0xff; parts[3].len()];
    hostile.push((assemble(&garbage), "do not match"));
    let mut garbage = parts.clone();
    garbage[0] = b"{\"architecture\":1}".to_vec();
    hostile.push((assemble(&garbage), "bad run identity"));
    let mut garbage = parts.clone();
    garbage[1] = b"[1,2,3]".to_vec();
    hostile.push((assemble(&garbage), "bad progress"));
    for (bytes, expected) in hostile {
        let error = load(&bytes).err().unwrap().to_string();
        assert!(
            error.starts_with("fuzz.checkpoint: ") && error.contains(expected),
            "{expected}: {error}"
        );
    }
    // Every truncation, and flips through the whole file: errors, no panic.
    for cut in (0..good.len()).step_by(97) {
        assert!(load(&good[..cut]).is_err());
    }
    for position in (0..good.len()).step_by(89) {
        let mut flipped = good.clone();
        flipped[position] ^= 0x01;
        assert!(load(&flipped).is_err(), "{position}");
    }
    // Another network's records, with a valid checksum and identity: refused, no panic.
    let (config, _) = architecture_config("unet-d1-w3", &window).unwrap();
    let other = config.init::<CpuTrain>(&device).unwrap();
    let error = load_checkpoint_bytes(
        Path::new("fuzz.checkpoint"),
        &good,
        other,
        OptimizerKind::Adam,
        &device,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("does not match this network"), "{error}");
}

#[test]
fn a_nan_starting_model_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let movie = write_movie(dir.path(), "movie.tif", 1, 24);
    let window = Window::new(2, 2, 0).unwrap();
    let (config, _) = architecture_config("unet-d1-w2", &window).unwrap();
    let device = Default::default();
    let mut weights: Vec<(Vec<f32>, Vec<f32>)> = config
        .init::<CpuTrain>(&device)
        .unwrap()
        .weight_values()
        .unwrap()
        .into_iter()
        .map(|conv| (conv.weight, conv.bias))
        .collect();
    // The last layer is linear: a poisoned bias reaches every output.
    weights.last_mut().unwrap().1[0] = f32::NAN;
    let network = config.from_weights::<CpuTrain>(weights, &device).unwrap();
    let data = TrainingData::Frames {
        inputs: vec![open_movie(&movie).unwrap()],
        validation: Vec::new(),
    };
    let error = train(
        network,
        data,
        &settings(window),
        &dir.path().join("nan.checkpoint"),
        &device,
        &mut |_| Ok(()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("before any training step"), "{error}");
    assert!(!error.contains("learning rate"), "{error}");
}

#[test]
fn a_run_without_progress_halves_its_rate_then_stops_and_resumes_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let movie = write_movie(dir.path(), "movie.tif", 3, 40);
    let window = Window::new(2, 2, 0).unwrap();
    let inputs = std::slice::from_ref(&movie);
    let rule = Convergence {
        min_improvement: 0.002,
        plateau_epochs: 2,
        patience_epochs: 5,
    };
    // A learning rate far too small to move the network: no epoch is progress.
    let stalled = TrainSettings {
        learning_rate: 1e-12,
        steps: 1000,
        convergence: Some(rule),
        validation: ValidationSource::HeldOut { fraction: 0.25 },
        validation_samples: 4,
        ..settings(window)
    };
    let checkpoint = dir.path().join("stalled.checkpoint");
    let outcome = run(&checkpoint, "unet-d1-w2", &stalled, inputs).unwrap();
    assert_eq!(outcome.ending, Ending::Converged);
    assert_eq!(outcome.steps, rule.patience_epochs, "one step per epoch");
    let rates: Vec<f64> = outcome.history.iter().map(|r| r.learning_rate).collect();
    assert_eq!(rates, [1e-12, 1e-12, 5e-13, 5e-13, 2.5e-13], "{rates:?}");
    assert!(outcome.validation_relative_error.is_some_and(|e| e > 0.0));

    // Cut short after 3 epochs by a smaller step bound, then resumed: the plateau (stale
    // epochs, halvings) continues from the checkpoint.
    let interrupted = dir.path().join("interrupted.checkpoint");
    let first = TrainSettings {
        steps: 3,
        ..stalled.clone()
    };
    let part = run(&interrupted, "unet-d1-w2", &first, inputs).unwrap();
    assert_eq!((part.ending, part.steps), (Ending::Steps, 3));
    let rest = run(&interrupted, "unet-d1-w2", &stalled, inputs).unwrap();
    assert_eq!((rest.ending, rest.steps), (Ending::Converged, 5));
    let resumed_rates: Vec<f64> = rest.history.iter().map(|r| r.learning_rate).collect();
    assert_eq!(resumed_rates, rates);

    // Convergence needs validation data.
    let blind = TrainSettings {
        validation: ValidationSource::HeldOut { fraction: 0.0 },
        ..stalled
    };
    let error = run(&dir.path().join("blind"), "unet-d1-w2", &blind, inputs)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("needs validation"), "{error}");
}

#[test]
fn both_engines_score_each_validation_sample_alike() {
    let window = Window::new(2, 2, 0).unwrap();
    let (config, _) = architecture_config("unet-d1-w2", &window).unwrap();
    let device = Default::default();
    let network = config.init::<crate::backend::Cpu>(&device).unwrap();
    let (samples, side) = (3, 16);
    let input: Vec<f32> = (0..samples * 4 * side * side)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let target: Vec<f32> = (0..samples * side * side)
        .map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0 + (i / (side * side)) as f32)
        .collect();
    let batch = Batch {
        input,
        input_shape: vec![samples, 4, side, side],
        target,
    };
    for loss in [Loss::L1, Loss::L2] {
        let burn = validation_losses(
            &network,
            std::slice::from_ref(&batch),
            loss,
            Engine::Burn,
            &device,
        )
        .unwrap();
        let kernels = validation_losses(
            &network,
            std::slice::from_ref(&batch),
            loss,
            Engine::Kernels,
            &device,
        )
        .unwrap();
        assert_eq!(burn.len(), samples);
        for (b, k) in burn.iter().zip(&kernels) {
            assert!(
                (b - k).abs() < 1e-4 * b.abs().max(1.0),
                "{loss:?}: {burn:?} vs {kernels:?}"
            );
        }
        // The samples' targets differ by whole units: so do their losses.
        assert!(burn[2] > burn[0] + 0.5, "{burn:?}");
    }
}
