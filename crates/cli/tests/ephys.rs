//! Extracellular recordings through the binary: the original's end-to-end output reproduced
//! from a raw `.dat`, the simulator's SpikeGLX files trained on and denoised into the input's
//! layout, real non-Neuropixels recordings (a tetrode, an Open Ephys legacy folder), clear
//! errors, and memory that does not grow with recording length.

mod common;

use std::path::{Path, PathBuf};

use common::{
    fixture, model_header, peak_mib, run, run_ok, s, shared_or_skip, simulate_ephys as simulate,
    train_briefly,
};
use deepinterp_io::ephys::open_ephys;
use deepinterp_io::open_movie;

/// A tiny probe-grid model trained for a few steps: enough to exercise the pipeline.
fn tiny_ephys_model(dir: &Path, input: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let settings = [
        "--arch",
        "unet-ephys-d1-w4",
        "--pre-frames",
        "4",
        "--post-frames",
        "4",
        "--batch-size",
        "4",
    ];
    train_briefly(dir, input, name, &settings, extra)
}

fn read_samples(path: &Path) -> (usize, usize, Vec<f32>) {
    let mut reader = open_ephys(path, None).unwrap();
    let info = reader.info().clone();
    let channels = info.neural_channels.len();
    let mut values = vec![0f32; info.samples * channels];
    reader.read_samples(0, info.samples, &mut values).unwrap();
    (info.samples, channels, values)
}

#[test]
fn denoise_drop_of_a_raw_dat_reproduces_the_original_output() {
    let Some([model, golden_output]) = shared_or_skip([
        "fixtures/keras/model_unet_single_ephys_1024.h5",
        "fixtures/keras/ephys_e2e_output.h5",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("denoised.h5");
    run_ok(&[
        "denoise",
        s(&fixture("keras/ephys_input_raw_400x384_int16.dat")),
        "--channels",
        "384",
        "--sample-rate",
        "30000",
        "--model",
        s(&model),
        "--edges",
        "drop",
        "-o",
        s(&output),
    ]);
    let read_all = |path: &Path| {
        let mut reader = open_movie(path).unwrap();
        let info = reader.info().clone();
        let mut values = vec![0f32; info.frames * info.frame_len()];
        reader.read_frames(0, info.frames, &mut values).unwrap();
        ((info.frames, info.height, info.width), values)
    };
    let (shape, ours) = read_all(&output);
    let (golden_shape, golden) = read_all(&golden_output);
    assert_eq!(shape, golden_shape, "the original's [samples, 384, 2] grid");
    let diff = ours
        .iter()
        .zip(&golden)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("denoise --edges drop vs ephys_e2e_output.h5: max abs diff {diff:.5} (atol 0.011)");
    assert!(diff <= 0.011, "max abs diff {diff}");
}

#[test]
fn simulated_spikeglx_recording_trains_and_denoises_into_its_own_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 24, 0.5, 1);
    for file in [
        "noisy-24-1.meta",
        "clean-24-1.meta",
        "noisy-24-1.spikes.csv",
    ] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    let model = tiny_ephys_model(dir.path(), &noisy, "m.dimodel", &[]);
    let header = model_header(&model);
    assert_eq!(header["spec"]["modality"], "ephys");
    assert_eq!(
        header["spec"]["window"]["omitted_frames"], 1,
        "paper default"
    );
    assert_eq!(header["spec"]["normalization"]["stats_frames"], 200_000);

    // Nothing but input, output and model: window and normalisation travel in the model.
    let denoised = dir.path().join("denoised.bin");
    run_ok(&[
        "denoise",
        s(&noisy),
        "--model",
        s(&model),
        "-o",
        s(&denoised),
    ]);
    let meta = std::fs::read_to_string(dir.path().join("denoised.meta")).unwrap();
    assert!(meta.contains("nSavedChans=25"), "sync channel kept");
    let bytes = std::fs::metadata(&denoised).unwrap().len();
    assert!(meta.contains(&format!("fileSizeBytes={bytes}")));
    let (samples, channels, input) = read_samples(&noisy);
    let (out_samples, out_channels, output) = read_samples(&denoised);
    assert_eq!(
        (out_samples, out_channels),
        (samples, channels),
        "full length"
    );
    let info = open_ephys(&denoised, None).unwrap().info().clone();
    assert_eq!(info.dtype, deepinterp_io::Dtype::I16, "int16 by default");
    assert!(output.iter().all(|v| v.fract() == 0.0));
    assert_ne!(input, output, "the recording was not denoised");

    // --edges drop: the original's length, with the sync channel of the right samples.
    let dropped = dir.path().join("dropped.bin");
    run_ok(&[
        "denoise",
        s(&noisy),
        "--model",
        s(&model),
        "--edges",
        "drop",
        "--dtype",
        "float32",
        "-o",
        s(&dropped),
    ]);
    let (dropped_samples, _, _) = read_samples(&dropped);
    assert_eq!(dropped_samples, samples - 2 * (4 + 1));
}

#[test]
fn real_tetrode_and_open_ephys_legacy_recordings_denoise() {
    let dir = tempfile::tempdir().unwrap();
    // A 4-channel tetrode in a headerless file: padded to the network's rows, not rejected.
    let tetrode = fixture("data/ephys/tdc_locust_trial_01_first30000.raw");
    let raw = ["--channels", "4", "--sample-rate", "15000"];
    let model = tiny_ephys_model(dir.path(), &tetrode, "tetrode.dimodel", &raw);
    let output = dir.path().join("tetrode-denoised.dat");
    let mut args = vec![
        "denoise",
        s(&tetrode),
        "--model",
        s(&model),
        "--end-frame",
        "2999",
        "-o",
        s(&output),
    ];
    args.extend_from_slice(&raw);
    run_ok(&args);
    assert_eq!(std::fs::metadata(&output).unwrap().len(), 3000 * 4 * 2);

    // Open Ephys legacy: 16 big-endian .continuous files, written out as one raw .dat.
    let legacy = fixture("data/ephys/openephys_example_data_v0.6.7");
    let model = tiny_ephys_model(dir.path(), &legacy, "legacy.dimodel", &[]);
    let output = dir.path().join("legacy-denoised.dat");
    run_ok(&[
        "denoise",
        s(&legacy),
        "--model",
        s(&model),
        "--end-frame",
        "1999",
        "-o",
        s(&output),
    ]);
    assert_eq!(std::fs::metadata(&output).unwrap().len(), 2000 * 16 * 2);
}

fn stderr_of(args: &[&str]) -> String {
    let output = run(args);
    assert!(!output.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn ephys_mistakes_get_one_line_errors_and_no_output() {
    let Some([ephys_model, movie_model, movie]) = shared_or_skip([
        "fixtures/keras/model_unet_single_ephys_1024.h5",
        "fixtures/keras/model_unet_single_1024.h5",
        "data/2p/allen_ophys_etl_movie_100x100x100.h5",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let golden = fixture("keras/ephys_input_raw_400x384_int16.dat");
    let output = dir.path().join("out.bin");

    // A headerless file needs its channel count.
    let stderr = stderr_of(&[
        "denoise",
        s(&golden),
        "--model",
        s(&ephys_model),
        "-o",
        s(&output),
    ]);
    assert!(stderr.contains("--channels"), "{stderr}");

    // A channel count that does not divide the file.
    let stderr = stderr_of(&[
        "denoise",
        s(&golden),
        "--channels",
        "385",
        "--model",
        s(&ephys_model),
        "-o",
        s(&output),
    ]);
    assert!(
        stderr.contains("ephys_input_raw_400x384_int16.dat"),
        "{stderr}"
    );

    // A two-photon model on an ephys recording.
    let stderr = stderr_of(&[
        "denoise",
        s(&golden),
        "--channels",
        "384",
        "--model",
        s(&movie_model),
        "-o",
        s(&output),
    ]);
    assert!(stderr.contains("2p model"), "{stderr}");

    // An ephys architecture for a movie, and mixed modalities.
    let model = dir.path().join("m.dimodel");
    let stderr = stderr_of(&[
        "train",
        s(&movie),
        "--arch",
        "unet-ephys-d2-w4",
        "-o",
        s(&model),
    ]);
    assert!(stderr.contains("ephys"), "{stderr}");
    let stderr = stderr_of(&[
        "train",
        s(&movie),
        s(&golden),
        "--channels",
        "384",
        "-o",
        s(&model),
    ]);
    assert!(stderr.contains("one modality"), "{stderr}");
    assert_eq!(
        common::listing(dir.path()),
        Vec::<String>::new(),
        "no output"
    );
}

#[test]
fn ephys_denoise_memory_does_not_grow_with_recording_length() {
    let dir = tempfile::tempdir().unwrap();
    let (short, _) = simulate(dir.path(), 64, 1.0, 2);
    let (long, _) = simulate(dir.path(), 64, 4.0, 3);
    let model = tiny_ephys_model(dir.path(), &short, "m.dimodel", &[]);
    let peak = |input: &Path, name: &str| {
        peak_mib(&run_ok(&[
            "denoise",
            s(input),
            "--model",
            s(&model),
            "-o",
            s(&dir.path().join(name)),
        ]))
    };
    let (short_peak, long_peak) = (peak(&short, "a.bin"), peak(&long, "b.bin"));
    // The long recording is 90,000 samples (22 MiB as float32) longer.
    println!("peak RSS: 1 s {short_peak} MiB, 4 s {long_peak} MiB");
    assert!(
        long_peak < short_peak + 10.0,
        "{short_peak} MiB -> {long_peak} MiB"
    );
}

/// A smaller version of the ephys quality claim (README, "Ephys"): a model trained for a
/// minute or two on 20 s of a simulated 48-channel probe lowers the median channel RMS noise of
/// a held-out second at least 2x while ground-truth spikes keep their shape (mean waveform
/// cosine similarity >= 0.9) and amplitude (mean ratio 0.8-1.2).
#[test]
fn a_briefly_trained_model_lowers_noise_and_keeps_spikes() {
    let dir = tempfile::tempdir().unwrap();
    let noisy = dir.path().join("noisy.bin");
    let clean = dir.path().join("clean.bin");
    run_ok(&[
        "simulate",
        "ephys",
        "-o",
        s(&noisy),
        "--clean",
        s(&clean),
        "--channels",
        "48",
        "--units",
        "6",
        "--duration",
        "20",
        "--seed",
        "7",
    ]);
    let model = dir.path().join("m.dimodel");
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
        "2",
    ]);
    // The last second is in the held-out validation tail: never trained on.
    let denoised = dir.path().join("denoised.bin");
    run_ok(&[
        "denoise",
        s(&noisy),
        "--model",
        s(&model),
        "-o",
        s(&denoised),
        "--start-frame",
        "570000",
        "--end-frame",
        "599999",
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
        "--offset",
        "570000",
        "--report",
        s(&report),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let number = |pointer: &str| report.pointer(pointer).and_then(|v| v.as_f64()).unwrap();
    let reduction = number("/rms_noise_reduction");
    let cosine = number("/spikes/cosine_denoised_mean");
    let amplitude = number("/spikes/amplitude_ratio_mean");
    let measured = number("/spikes/spikes_measured");
    println!(
        "RMS noise {reduction:.2}x lower, spike cosine {cosine:.3}, amplitude ratio {amplitude:.3} ({measured} spikes)"
    );
    assert!(measured >= 20.0, "{measured} spikes measured");
    assert!(reduction >= 2.0, "RMS noise only {reduction:.2}x lower");
    assert!(cosine >= 0.9, "spike cosine similarity {cosine:.3}");
    assert!(
        (0.8..=1.2).contains(&amplitude),
        "spike amplitude ratio {amplitude:.3}"
    );
}
