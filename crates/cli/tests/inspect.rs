//! `deepinterp inspect` through the binary: what it reports about the original Keras models,
//! a model trained by `train`, a recording of each modality (with a denoise-time estimate),
//! and the one-line errors for files it cannot read.

mod common;

use std::path::Path;

use common::{fixture, run, s, shared_or_skip, simulate, tiny_model};
use serde_json::Value;

/// `inspect --json FILE EXTRA...`, parsed.
fn inspect_json(file: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", "--json", s(file)];
    args.extend_from_slice(extra);
    let output = run(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "inspect {file:?} failed:\n{stderr}"
    );
    serde_json::from_slice(&output.stdout).expect("inspect --json prints one JSON object")
}

fn window(report: &Value) -> [u64; 3] {
    ["pre_frames", "post_frames", "omitted_frames"].map(|key| {
        report["window"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("window.{key} in {report}"))
    })
}

/// The estimate is a positive, finite number of seconds, extrapolated from timed calls.
fn assert_estimate(report: &Value, architecture: &str, unit: &str, units: u64) {
    let estimate = &report["estimate"];
    assert_eq!(estimate["architecture"], architecture, "{report}");
    assert_eq!(estimate["unit"], unit, "{report}");
    assert_eq!(estimate["units"], units, "{report}");
    assert!(estimate["timed_calls"].as_u64().unwrap() >= 1, "{report}");
    let seconds = estimate["seconds"].as_f64().expect("estimate.seconds");
    assert!(seconds.is_finite() && seconds > 0.0, "{report}");
}

/// The paper's two-photon and Neuropixels models (in `../shared` only).
#[test]
fn keras_models_report_architecture_parameters_window_and_block() {
    let Some([movie_model, ephys_model]) = shared_or_skip([
        "fixtures/keras/model_unet_single_1024.h5",
        "fixtures/keras/model_unet_single_ephys_1024.h5",
    ]) else {
        return;
    };
    let movie = inspect_json(&movie_model, &[]);
    assert_eq!(movie["kind"], "model");
    assert_eq!(movie["format"], "keras");
    assert_eq!(movie["architecture"], "unet_single_1024");
    assert_eq!(movie["parameters"], 15_704_769);
    assert_eq!(movie["modality"], "2p");
    assert_eq!(window(&movie), [30, 30, 0]);
    assert_eq!(
        movie["network"]["encoder_widths"],
        serde_json::json!([64, 128, 256, 512])
    );
    assert_eq!(movie["file_size_bytes"], 62_878_216);
    assert!(
        movie["block"].is_null() && movie["training"].is_null(),
        "{movie}"
    );

    let ephys = inspect_json(&ephys_model, &[]);
    assert_eq!(ephys["architecture"], "unet_single_ephys_1024");
    assert_eq!(ephys["parameters"], 5_253_057);
    assert_eq!(ephys["modality"], "ephys");
    assert_eq!(window(&ephys), [30, 30, 1]);

    // Without --json: one aligned line per fact.
    let output = run(&["inspect", s(&movie_model)]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("15,704,769"), "{text}");
    assert!(text.contains("original Keras .h5"), "{text}");
}

/// The paper's fMRI model: its architecture, parameters and block.
#[test]
fn the_keras_fmri_model_reports_its_block() {
    let fmri = inspect_json(&fixture("keras/model_fmri_unet_denoiser.h5"), &[]);
    assert_eq!(fmri["architecture"], "fmri_unet_denoiser");
    assert_eq!(fmri["parameters"], 44_369);
    assert_eq!(fmri["modality"], "fmri");
    assert_eq!(fmri["network"]["type"], "volumetric");
    assert_eq!(fmri["block"]["radius"], serde_json::json!([3, 3, 3]));
    assert_eq!(fmri["block"]["hole"], 4);
}

#[test]
fn a_trained_model_shows_its_training_summary_and_file_version() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 30, 16, 4);
    let model = tiny_model(dir.path(), &noisy, "m.dimodel", &[]);
    let report = inspect_json(&model, &[]);
    assert_eq!(report["kind"], "model");
    assert_eq!(report["format"], "deepinterp");
    assert_eq!(report["format_version"], 2);
    assert_eq!(report["deepinterp_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["architecture"], "unet-d1-w4");
    assert_eq!(report["modality"], "2p");
    assert_eq!(window(&report), [2, 2, 0]);
    let training = &report["training"];
    assert_eq!(training["steps"], 4, "{report}");
    assert_eq!(training["batch_size"], 2, "{report}");
    assert_eq!(training["loss"], "l2", "{report}");
    assert_eq!(training["seed"], 5, "{report}");
    assert_eq!(training["epochs"], 2, "{report}");
    assert_eq!(
        training["frame_size"],
        serde_json::json!([16, 16]),
        "{report}"
    );
    assert!(
        training["best_validation_loss"].as_f64().is_some(),
        "{report}"
    );
    let inputs = training["inputs"].as_array().expect("training.inputs");
    assert_eq!(inputs.len(), 1, "{report}");
    // How the run ended: its step count (--steps), how fast the validation loss was still
    // falling and how precise the validation was.
    let ending = &training["ending"];
    assert_eq!(ending["ending"], "steps", "{report}");
    assert_eq!(ending["steps"], 4, "{report}");
    assert!(
        ending["validation_fall_per_1000_steps"].is_number(),
        "{report}"
    );
    assert!(ending["validation_relative_error"].is_number(), "{report}");

    let output = run(&["inspect", s(&model)]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("4 steps of batch 2") && text.contains("seed 5"),
        "{text}"
    );
    assert!(
        text.contains("run ended") && text.contains("4 steps: ran its step count"),
        "{text}"
    );

    // A model file cut short is refused in one line naming it.
    let cut = dir.path().join("cut.dimodel");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let output = run(&["inspect", s(&cut)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a truncated model was inspected");
    assert!(
        stderr.contains("cut.dimodel") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_movie_reports_its_shape_and_an_estimated_denoise_time() {
    let report = inspect_json(&fixture("keras/ophys_input_movie.h5"), &[]);
    assert_eq!(report["kind"], "recording");
    assert_eq!(report["modality"], "2p");
    assert_eq!(report["format"], "HDF5");
    assert_eq!(report["frames"], 100);
    assert_eq!(report["height"], 64);
    assert_eq!(report["width"], 64);
    assert_eq!(report["dtype"], "int16");
    assert_eq!(report["file_size_bytes"], 821_248);
    assert_estimate(&report, "unet-d3-w16", "frame", 100);
    assert_eq!(
        report["estimate"]["input_shape"],
        serde_json::json!([1, 60, 64, 64])
    );

    let output = run(&["inspect", s(&fixture("keras/ophys_input_movie.h5"))]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("100 of 64×64 pixels, int16") && text.contains("an estimate"),
        "{text}"
    );
}

#[test]
fn a_raw_ephys_file_reports_samples_and_channels_and_an_estimate() {
    let path = fixture("keras/ephys_input_raw_400x384_int16.dat");
    let report = inspect_json(&path, &["--channels", "384"]);
    assert_eq!(report["kind"], "recording");
    assert_eq!(report["modality"], "ephys");
    assert_eq!(report["format"], "raw");
    assert_eq!(report["samples"], 400);
    assert_eq!(report["saved_channels"], 384);
    assert_eq!(report["neural_channels"], 384);
    assert_eq!(report["sample_rate_hz"], 30_000.0);
    assert_eq!(report["dtype"], "int16");
    let duration = report["duration_s"].as_f64().unwrap();
    assert!((duration - 400.0 / 30_000.0).abs() < 1e-12, "{report}");
    assert_estimate(&report, "unet-ephys-d3-w16", "sample", 400);
    assert_eq!(
        report["estimate"]["input_shape"],
        serde_json::json!([32, 60, 384, 2])
    );

    // A headerless file needs its layout.
    let output = run(&["inspect", s(&path)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--channels"), "{stderr}");
}

#[test]
fn an_fmri_run_reports_its_header_and_an_estimate() {
    let report = inspect_json(&fixture("keras/fmri_input_13x12x10x12_int16.nii.gz"), &[]);
    assert_eq!(report["kind"], "recording");
    assert_eq!(report["modality"], "fmri");
    assert_eq!(report["shape"], serde_json::json!([13, 12, 10]));
    assert_eq!(report["frames"], 12);
    assert_eq!(report["dtype"], "int16");
    assert_eq!(report["nifti_version"], 1);
    assert_eq!(report["compressed"], true);
    assert!(report["scaling"].is_null(), "{report}");
    // Fast mode: ceil(13/4) × ceil(12/4) × ceil(10/4) = 4 × 3 × 3 blocks per volume.
    assert_estimate(&report, "fmri_unet_denoiser", "block", 36 * 12);
    assert_eq!(
        report["estimate"]["input_shape"],
        serde_json::json!([256, 5, 7, 7, 7])
    );
}

#[test]
fn unreadable_files_get_one_line_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &Path, needle: &str| {
        let output = run(&["inspect", s(path)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{path:?} succeeded");
        assert!(output.stdout.is_empty(), "{path:?} printed a report");
        assert!(
            stderr.contains(needle) && stderr.contains(s(path)),
            "{path:?}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{path:?}: {stderr}");
    };
    check(&dir.path().join("missing.h5"), "not found");

    let input = fixture("keras/fmri_input_13x12x10x12_int16.nii.gz");
    let truncated = dir.path().join("truncated.nii.gz");
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    check(&truncated, "truncated.nii.gz");

    // A movie whose header is intact but whose frames are cut off.
    let movie = fixture("keras/ophys_input_movie.h5");
    let cut_movie = dir.path().join("cut.h5");
    let bytes = std::fs::read(&movie).unwrap();
    std::fs::write(&cut_movie, &bytes[..bytes.len() / 2]).unwrap();
    check(&cut_movie, "cut.h5");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a recording").unwrap();
    check(&notes, "unknown format");

    // An HDF5 file with neither a movie dataset nor a Keras model in it.
    let other = dir.path().join("other.h5");
    let file = rust_hdf5::H5File::create(&other).unwrap();
    let dataset = file
        .new_dataset::<i16>()
        .shape([10, 8, 8])
        .create("movie")
        .unwrap();
    dataset.write_raw(&vec![1i16; 640]).unwrap();
    file.close().unwrap();
    check(&other, "neither a movie");
}

/// The content says what a file is, whatever its name: a movie saved as `.dat` (which names
/// a raw extracellular file) and an fMRI run saved as `.img` are read as what they are.
#[test]
fn files_under_other_names_are_read_as_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 24, 32, 8);
    let renamed = dir.path().join("scan.dat");
    std::fs::copy(&noisy, &renamed).unwrap();
    let report = inspect_json(&renamed, &[]);
    assert_eq!(report["modality"], "2p", "{report}");
    assert_eq!(report["frames"], 24, "{report}");
    let model = tiny_model(dir.path(), &renamed, "scan.dimodel", &[]);
    let denoised = dir.path().join("scan-denoised.h5");
    common::run_ok(&[
        "denoise",
        s(&renamed),
        "-o",
        s(&denoised),
        "--model",
        s(&model),
    ]);
    assert_eq!(inspect_json(&denoised, &[])["frames"], 24);

    let run = dir.path().join("run.nii.gz");
    common::run_ok(&[
        "simulate",
        "fmri",
        "-o",
        s(&run),
        "--clean",
        s(&dir.path().join("run-clean.nii")),
        "--shape",
        "8,8,6,10",
    ]);
    let image = dir.path().join("run.img");
    std::fs::copy(&run, &image).unwrap();
    let report = inspect_json(&image, &[]);
    assert_eq!(report["modality"], "fmri", "{report}");
    assert_eq!(report["frames"], 10, "{report}");
}
