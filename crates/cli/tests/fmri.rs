//! fMRI runs through the binary: the original's Keras model in parity mode keeps the input's
//! NIfTI header, a briefly trained model raises brain tSNR and lowers the error to ground
//! truth on a simulated run, the real nitime recordings run through the whole pipeline, bad
//! input gets one-line errors, and memory does not grow with the run's length.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, peak_mib, run, run_ok, s, shared_or_skip};
use deepinterp_io::nifti::{NiftiDtype, open_volume};

/// Simulates a run of `shape` (X,Y,Z,T); returns (noisy, clean).
fn simulate(dir: &Path, shape: &str, seed: u64) -> (PathBuf, PathBuf) {
    let noisy = dir.join(format!("noisy-{}-{seed}.nii.gz", shape.replace(',', "x")));
    let clean = dir.join(format!("clean-{}-{seed}.nii.gz", shape.replace(',', "x")));
    run_ok(&[
        "simulate",
        "fmri",
        "-o",
        s(&noisy),
        "--clean",
        s(&clean),
        "--shape",
        shape,
        "--seed",
        &seed.to_string(),
    ]);
    (noisy, clean)
}

/// A tiny volumetric model trained for a few steps.
fn tiny_model(dir: &Path, input: &Path, name: &str) -> PathBuf {
    let model = dir.join(name);
    run_ok(&[
        "train",
        s(input),
        "-o",
        s(&model),
        "--arch",
        "unet3d-d1-w4",
        "--steps",
        "4",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "8",
        "--validation-samples",
        "16",
        "--seed",
        "5",
    ]);
    model
}

fn read_run(path: &Path) -> ([usize; 3], usize, Vec<f32>) {
    let mut reader = open_volume(path).unwrap();
    let info = reader.info().clone();
    let mut values = vec![0f32; info.volume_len() * info.frames];
    reader.read_volumes(0, info.frames, &mut values).unwrap();
    (info.shape, info.frames, values)
}

#[test]
fn keras_model_in_parity_mode_keeps_the_input_header() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("keras/fmri_input_13x12x10x12_int16.nii.gz");
    let model = fixture("keras/model_fmri_unet_denoiser.h5");
    let parity = dir.path().join("parity.nii.gz");
    let stderr = run_ok(&[
        "denoise",
        s(&input),
        "--model",
        s(&model),
        "--mode",
        "parity",
        "-o",
        s(&parity),
    ]);
    assert!(
        stderr.contains("parity mode, 18720 network passes"),
        "{stderr}"
    );
    let source = open_volume(&input).unwrap();
    let written = open_volume(&parity).unwrap();
    let (a, b) = (source.info(), written.info());
    assert_eq!((b.shape, b.frames), (a.shape, a.frames));
    assert_eq!(b.dtype, NiftiDtype::F32);
    assert_eq!(
        (b.voxel_size, b.repetition_time_s),
        (a.voxel_size, a.repetition_time_s)
    );
    // The header outside type, frames and scaling is the input's (the affine included).
    let (ha, hb) = (source.header_bytes(), written.header_bytes());
    assert_eq!(
        &ha[280..348],
        &hb[280..348],
        "qform/sform and affine rows differ"
    );

    // Fast mode runs far fewer passes and gives values of the same scale.
    let fast = dir.path().join("fast.nii");
    let stderr = run_ok(&["denoise", s(&input), "--model", s(&model), "-o", s(&fast)]);
    let passes: usize = stderr
        .split("fast mode, ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("pass count reported");
    assert!(passes * 30 < 18720, "{passes} passes");
    let (_, _, parity_values) = read_run(&parity);
    let (_, _, fast_values) = read_run(&fast);
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let (mp, mf) = (mean(&parity_values), mean(&fast_values));
    assert!((mp - mf).abs() < 0.2 * mp.abs(), "means {mp} vs {mf}");
}

/// The two real nitime runs (int16 10×10×18×40, TR 1.35 s, an oblique affine): a tiny model
/// trained on the first with the second as validation run, then the second denoised and
/// evaluated.
#[test]
fn real_nitime_runs_train_denoise_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let first = fixture("data/fmri/nitime_fmri1.nii.gz");
    let second = fixture("data/fmri/nitime_fmri2.nii.gz");
    let model = dir.path().join("nitime.dimodel");
    let stderr = run_ok(&[
        "train",
        s(&first),
        "--validation",
        s(&second),
        "-o",
        s(&model),
        "--arch",
        "unet3d-d1-w4",
        "--steps",
        "4",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "8",
        "--validation-samples",
        "16",
    ]);
    assert!(stderr.contains("40 time points"), "{stderr}");
    let output = dir.path().join("denoised.nii.gz");
    run_ok(&[
        "denoise",
        s(&second),
        "--model",
        s(&model),
        "-o",
        s(&output),
    ]);
    let (shape, frames, values) = read_run(&output);
    let source = open_volume(&second).unwrap();
    assert_eq!((shape, frames), (source.info().shape, source.info().frames));
    assert_eq!(source.info().repetition_time_s, Some(1.35));
    assert!(values.iter().all(|v| v.is_finite()));
    let report = dir.path().join("report.json");
    run_ok(&[
        "evaluate",
        "--noisy",
        s(&second),
        "--denoised",
        s(&output),
        "--report",
        s(&report),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(json["brain_voxels"].as_u64().unwrap() > 100, "{json}");
    assert!(json["tsnr_noisy_median"].as_f64().unwrap() > 1.0, "{json}");
}

/// Runs `args`, which must fail with one line of stderr containing `needle`.
fn check_one_line_error(args: &[&str], needle: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
}

/// The paper's two-photon model (in `../shared` only) refused for an fMRI run.
#[test]
fn a_2p_keras_model_is_refused_for_an_fmri_run() {
    let Some([movie_model]) = shared_or_skip(["fixtures/keras/model_unet_single_1024.h5"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("keras/fmri_input_13x12x10x12_int16.nii.gz");
    let out = dir.path().join("out.nii.gz");
    check_one_line_error(
        &[
            "denoise",
            s(&input),
            "--model",
            s(&movie_model),
            "-o",
            s(&out),
        ],
        "is a 2p model",
    );
    assert!(!out.exists(), "no output may be left behind");
}

#[test]
fn bad_fmri_input_gets_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("keras/fmri_input_13x12x10x12_int16.nii.gz");
    let fmri_model = fixture("keras/model_fmri_unet_denoiser.h5");
    let check = check_one_line_error;
    let out = dir.path().join("out.nii.gz");
    check(
        &[
            "denoise",
            s(&input),
            "--model",
            s(&fmri_model),
            "-o",
            s(&dir.path().join("out.h5")),
        ],
        "name the output .nii or .nii.gz",
    );
    let truncated = dir.path().join("truncated.nii.gz");
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    check(
        &[
            "denoise",
            s(&truncated),
            "--model",
            s(&fmri_model),
            "-o",
            s(&out),
        ],
        "truncated.nii.gz",
    );
    check(
        &[
            "train",
            s(&input),
            "-o",
            s(&dir.path().join("m.dimodel")),
            "--pre-frames",
            "6",
            "--post-frames",
            "6",
            "--steps",
            "2",
        ],
        "12 time points is too few",
    );
    let shape = run(&[
        "simulate",
        "fmri",
        "-o",
        s(&out),
        "--clean",
        s(&dir.path().join("c.nii")),
        "--shape",
        "8,8,8",
    ]);
    assert!(!shape.status.success());
    assert!(String::from_utf8_lossy(&shape.stderr).contains("X,Y,Z,T"));
    assert!(!out.exists(), "no output may be left behind");
}

#[test]
fn fmri_denoise_memory_does_not_grow_with_run_length() {
    let dir = tempfile::tempdir().unwrap();
    let (short, _) = simulate(dir.path(), "24,24,12,20", 3);
    let (long, _) = simulate(dir.path(), "24,24,12,120", 3);
    let model = tiny_model(dir.path(), &short, "tiny.dimodel");
    let peak = |input: &Path| {
        let output = dir.path().join("out.nii.gz");
        peak_mib(&run_ok(&[
            "denoise",
            s(input),
            "--model",
            s(&model),
            "-o",
            s(&output),
        ]))
    };
    let (short_peak, long_peak) = (peak(&short), peak(&long));
    println!("peak RSS: 20 volumes {short_peak} MiB, 120 volumes {long_peak} MiB");
    assert!(
        long_peak < short_peak + 8.0,
        "6x the volumes took {long_peak} MiB vs {short_peak} MiB"
    );
}

/// The smaller version of the quality figure: a simulated 32×32×16×60 run, the paper's
/// network trained with the defaults for 1,500 steps (about 2.5 minutes on 2 cores), denoised
/// in fast mode, raises the median brain tSNR at least 1.5× and lowers the squared error to
/// the ground truth below the noisy run's.
#[test]
fn a_briefly_trained_model_raises_tsnr_and_lowers_error() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, clean) = simulate(dir.path(), "32,32,16,60", 8);
    let model = dir.path().join("model.dimodel");
    run_ok(&[
        "train",
        s(&noisy),
        "-o",
        s(&model),
        "--steps",
        "1500",
        "--steps-per-epoch",
        "250",
        "--seed",
        "1",
    ]);
    let denoised = dir.path().join("denoised.nii.gz");
    run_ok(&[
        "denoise",
        s(&noisy),
        "--model",
        s(&model),
        "-o",
        s(&denoised),
    ]);
    let report = dir.path().join("report.json");
    run_ok(&[
        "evaluate",
        "--noisy",
        s(&noisy),
        "--denoised",
        s(&denoised),
        "--clean",
        s(&clean),
        "--report",
        s(&report),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let tsnr_ratio = json["tsnr_ratio_of_medians"].as_f64().unwrap();
    let (mse_noisy, mse_denoised) = (
        json["error"]["mse_noisy"].as_f64().unwrap(),
        json["error"]["mse_denoised"].as_f64().unwrap(),
    );
    println!(
        "tSNR ratio {tsnr_ratio:.2}, MSE {mse_noisy:.1} -> {mse_denoised:.1} ({:.2}x)",
        mse_noisy / mse_denoised
    );
    assert!(
        tsnr_ratio >= 1.5,
        "median brain tSNR rose only {tsnr_ratio:.2}x"
    );
    assert!(
        mse_denoised < 0.8 * mse_noisy,
        "MSE to ground truth {mse_denoised:.1} vs noisy {mse_noisy:.1}"
    );
}
