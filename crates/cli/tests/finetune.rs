//! `deepinterp finetune`: training that starts from a model — ours or the original's Keras
//! file — keeps its architecture and window, reports the validation loss before and after,
//! and can keep the encoder fixed.

mod common;

use std::path::Path;

use common::{fixture, model_header, run, run_ok, s, shared_or_skip, simulate, tiny_model};
use deepinterp::backend::Cpu;
use deepinterp::model::load_model;

/// The "before" and "after" validation losses of finetune's summary line.
fn losses(stderr: &str) -> (f64, f64) {
    let line = stderr
        .lines()
        .find(|line| line.starts_with("validation loss ") && line.contains(" before training, "))
        .unwrap_or_else(|| panic!("no before/after line in:\n{stderr}"));
    let numbers: Vec<f64> = line
        .split_whitespace()
        .filter_map(|word| word.trim_end_matches(',').parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn convolution_weights(path: &Path) -> Vec<Vec<f32>> {
    let model = load_model::<Cpu>(path, None, &Default::default()).unwrap();
    model
        .network
        .weight_values()
        .unwrap()
        .into_iter()
        .map(|conv| conv.weight)
        .collect()
}

#[test]
fn finetuning_starts_from_the_model_and_lowers_the_validation_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = simulate(dir.path(), 60, 32, 1);
    let base = tiny_model(dir.path(), &first, "base.dimodel", &[]);
    // A second movie of other neurons; the base model has seen none of it.
    let (second, _) = simulate(dir.path(), 60, 32, 2);
    let tuned = dir.path().join("tuned.dimodel");
    let stderr = run_ok(&[
        "finetune",
        s(&second),
        "--model",
        s(&base),
        "-o",
        s(&tuned),
        "--steps",
        "40",
        "--steps-per-epoch",
        "20",
        "--batch-size",
        "4",
        "--patch-size",
        "16",
        "--learning-rate",
        "2e-3",
        "--seed",
        "3",
    ]);
    let (before, after) = losses(&stderr);
    assert!(
        after < before,
        "validation loss {before} -> {after}:\n{stderr}"
    );
    let header = model_header(&tuned);
    let spec = &header["spec"];
    assert_eq!(spec["architecture"], "unet-d1-w4");
    assert_eq!(spec["window"], model_header(&base)["spec"]["window"]);
    assert!(
        spec["source"].as_str().unwrap().contains("finetune of"),
        "{spec}"
    );
    // It started from the base: at least one weight moved, and the model still denoises.
    assert_ne!(convolution_weights(&base), convolution_weights(&tuned));
    let output = dir.path().join("denoised.h5");
    run_ok(&[
        "denoise",
        s(&second),
        "--model",
        s(&tuned),
        "-o",
        s(&output),
    ]);
}

#[test]
fn a_frozen_encoder_keeps_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (movie, _) = simulate(dir.path(), 40, 32, 4);
    let base = tiny_model(dir.path(), &movie, "base.dimodel", &[]);
    let tuned = dir.path().join("tuned.dimodel");
    run_ok(&[
        "finetune",
        s(&movie),
        "--model",
        s(&base),
        "-o",
        s(&tuned),
        "--freeze-encoder",
        "--steps",
        "6",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "2",
        "--patch-size",
        "16",
        "--validation-fraction",
        "0",
    ]);
    let (before, after) = (convolution_weights(&base), convolution_weights(&tuned));
    // unet-d1-w4: encoder conv, bottleneck, decoder conv, final conv.
    assert_eq!(before[0], after[0], "the encoder moved");
    assert_ne!(before[1..], after[1..], "nothing else moved");
}

#[test]
fn the_original_keras_model_is_a_starting_point() {
    let Some([keras_model]) = shared_or_skip(["fixtures/keras/model_unet_single_1024.h5"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (movie, _) = simulate(dir.path(), 70, 32, 5);
    let tuned = dir.path().join("tuned.dimodel");
    run_ok(&[
        "finetune",
        s(&movie),
        "--model",
        s(&keras_model),
        "-o",
        s(&tuned),
        "--steps",
        "2",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "1",
        "--patch-size",
        "16",
        "--validation-fraction",
        "0",
    ]);
    let spec = &model_header(&tuned)["spec"];
    assert_eq!(spec["architecture"], "unet_single_1024");
    assert_eq!(spec["window"]["pre_frames"], 30);
}

#[test]
fn finetuning_refuses_what_the_model_cannot_keep() {
    let dir = tempfile::tempdir().unwrap();
    let (movie, _) = simulate(dir.path(), 40, 32, 6);
    let base = tiny_model(dir.path(), &movie, "base.dimodel", &[]);
    let out = dir.path().join("out.dimodel");
    let check = |extra: &[&str], model: &Path, needle: &str| {
        let mut args = vec!["finetune", s(&movie), "--model", s(model), "-o", s(&out)];
        args.extend_from_slice(extra);
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    };
    check(
        &["--arch", "unet-d2-w8"],
        &base,
        "keeps its base's architecture",
    );
    check(&["--pre-frames", "5"], &base, "a fine-tuned model keeps it");
    check(
        &[],
        &fixture("keras/model_fmri_unet_denoiser.h5"),
        "a fmri model, but the inputs are 2p recordings",
    );
    assert!(!out.exists());
}
