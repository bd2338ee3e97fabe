//! The two-photon workflow through the binary: training resumes and reproduces, settings come
//! from TOML, edge modes give the documented lengths, memory does not grow with recording
//! length, and a model trained briefly really denoises (a small version of the demo's claim).

mod common;

use common::{model_header, peak_mib, run_ok, s, simulate, tiny_model};
use deepinterp_io::open_movie;

fn frames_of(path: &std::path::Path) -> usize {
    open_movie(path).unwrap().info().frames
}

#[test]
fn same_seed_gives_the_same_model_and_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 60, 32, 2);
    let first = tiny_model(dir.path(), &noisy, "a.dimodel", &["--steps", "6"]);
    let second = tiny_model(dir.path(), &noisy, "b.dimodel", &["--steps", "6"]);
    let weights = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap();
        let len = u64::from_le_bytes(bytes[17..25].try_into().unwrap()) as usize;
        bytes[25 + len..].to_vec()
    };
    assert_eq!(
        weights(&first),
        weights(&second),
        "same seed, different weights"
    );

    // Interrupted after 4 steps (2 epochs), resumed to 6: the same history as one run of 6.
    let resumed = tiny_model(dir.path(), &noisy, "c.dimodel", &["--steps", "4"]);
    let checkpoint = dir.path().join("c.dimodel.checkpoint");
    assert!(checkpoint.exists(), "no checkpoint written");
    tiny_model(
        dir.path(),
        &noisy,
        "c.dimodel",
        &["--steps", "6", "--resume"],
    );
    // Loss history without the wall-clock column.
    let history = |name: &str| -> Vec<String> {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .lines()
            .map(|line| line.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    let straight = history("a.dimodel.loss.csv");
    assert_eq!(straight.len(), 4, "header + 3 epochs: {straight:?}");
    assert_eq!(
        history("c.dimodel.loss.csv"),
        straight,
        "resumed run diverged"
    );
    assert_eq!(weights(&resumed), weights(&first), "resumed model differs");
    assert!(dir.path().join("c.dimodel.loss.png").exists());
}

#[test]
fn toml_settings_apply_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 40, 16, 3);
    let config = dir.path().join("train.toml");
    std::fs::write(
        &config,
        "arch = \"unet-d2-w4\"\npre_frames = 3\npost_frames = 3\nomitted_frames = 1\nsteps = 2\nsteps_per_epoch = 1\nbatch_size = 2\npatch_size = 16\nloss = \"l2\"\n",
    )
    .unwrap();
    let model = dir.path().join("m.dimodel");
    run_ok(&[
        "train",
        s(&noisy),
        "-o",
        s(&model),
        "--config",
        s(&config),
        "--post-frames",
        "4",
    ]);
    let header = model_header(&model);
    let spec = &header["spec"];
    assert_eq!(spec["architecture"], "unet-d2-w4");
    assert_eq!(spec["window"]["pre_frames"], 3);
    assert_eq!(
        spec["window"]["post_frames"], 4,
        "the flag should win over the file"
    );
    assert_eq!(spec["window"]["omitted_frames"], 1);
    assert_eq!(spec["training"]["loss"], "l2");
    assert_eq!(spec["training"]["steps"], 2);

    std::fs::write(&config, "stepz = 3\n").unwrap();
    let output = common::run(&["train", s(&noisy), "-o", s(&model), "--config", s(&config)]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("stepz"));
}

#[test]
fn edge_modes_give_documented_lengths_and_window_travels_in_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 30, 16, 4);
    let model = tiny_model(dir.path(), &noisy, "m.dimodel", &[]);
    let keep = dir.path().join("keep.tif");
    let drop = dir.path().join("drop.h5");
    // No window flags: the model file carries 2/2/0.
    run_ok(&["denoise", s(&noisy), "-o", s(&keep), "--model", s(&model)]);
    run_ok(&[
        "denoise",
        s(&noisy),
        "-o",
        s(&drop),
        "--model",
        s(&model),
        "--edges",
        "drop",
        "--dtype",
        "int16",
    ]);
    assert_eq!(frames_of(&keep), 30);
    assert_eq!(frames_of(&drop), 26);
}

#[test]
fn denoise_memory_does_not_grow_with_recording_length() {
    let dir = tempfile::tempdir().unwrap();
    let (short, _) = simulate(dir.path(), 500, 128, 5);
    let (long, _) = simulate(dir.path(), 2000, 128, 5);
    let model = tiny_model(dir.path(), &short, "m.dimodel", &[]);
    let out = dir.path().join("out.h5");
    let short_peak = peak_mib(&run_ok(&[
        "denoise",
        s(&short),
        "-o",
        s(&out),
        "--model",
        s(&model),
    ]));
    let long_peak = peak_mib(&run_ok(&[
        "denoise",
        s(&long),
        "-o",
        s(&out),
        "--model",
        s(&model),
    ]));
    // The long movie is 1500 frames (94 MiB as float32) longer; streaming keeps peaks level.
    println!("peak RSS: 500 frames {short_peak} MiB, 2000 frames {long_peak} MiB");
    assert!(
        long_peak < short_peak + 24.0,
        "{short_peak} MiB -> {long_peak} MiB"
    );
}

#[test]
fn a_briefly_trained_model_beats_noise_and_the_gaussian_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, clean) = simulate(dir.path(), 600, 64, 6);
    let model = dir.path().join("m.dimodel");
    run_ok(&[
        "train",
        s(&noisy),
        "-o",
        s(&model),
        "--steps",
        "150",
        "--seed",
        "6",
    ]);
    let denoised = dir.path().join("denoised.h5");
    run_ok(&[
        "denoise",
        s(&noisy),
        "-o",
        s(&denoised),
        "--model",
        s(&model),
    ]);
    let output = common::run(&[
        "evaluate",
        "--noisy",
        s(&noisy),
        "--denoised",
        s(&denoised),
        "--clean",
        s(&clean),
        "--json",
    ]);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let vs_noisy = report["l2_reduction_vs_noisy"].as_f64().unwrap();
    let vs_gaussian = report["l2_reduction_vs_gaussian"].as_f64().unwrap();
    let snr_gain = report["snr_gain_median"].as_f64().unwrap();
    println!(
        "L2 reduction {vs_noisy:.2}x vs noisy, {vs_gaussian:.2}x vs Gaussian; SNR gain {snr_gain:.2}x"
    );
    assert!(vs_noisy >= 3.0, "L2 reduction vs noisy {vs_noisy}");
    assert!(
        vs_gaussian > 1.0,
        "does not beat the Gaussian baseline: {vs_gaussian}"
    );
    assert!(snr_gain > 2.0, "SNR gain {snr_gain}");
}

#[test]
fn without_steps_training_stops_when_the_validation_loss_stops_improving() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 60, 32, 2);
    let model = dir.path().join("m.dimodel");
    let mut args = vec!["train", s(&noisy), "-o", s(&model)];
    args.extend_from_slice(&common::TINY_SETTINGS);
    // A rate too small to move the network: no epoch is progress, so the run halves its rate
    // every 8 epochs and stops after 24.
    args.extend_from_slice(&[
        "--steps-per-epoch",
        "2",
        "--learning-rate",
        "1e-12",
        "--seed",
        "5",
    ]);
    let output = common::run(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("steps until the validation loss stops improving (at most 100000)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("48 steps: converged (the validation loss stopped improving)"),
        "{stderr}"
    );
    assert!(stderr.contains("lr 2.50e-13"), "{stderr}");
    let header = model_header(&model);
    let ending = &header["spec"]["training"]["ending"];
    assert_eq!(ending["ending"], "converged", "{header}");
    assert_eq!(ending["steps"], 48, "{header}");

    // With no validation there is nothing to converge on: the preset's fixed count, said so.
    let blind = dir.path().join("blind.dimodel");
    let mut args = vec!["train", s(&noisy), "-o", s(&blind)];
    args.extend_from_slice(&common::TINY_SETTINGS);
    args.extend_from_slice(&["--validation-fraction", "0", "--max-minutes", "0.05"]);
    let stderr = run_ok(&args);
    assert!(stderr.contains("1000 steps of 2 samples"), "{stderr}");
}
