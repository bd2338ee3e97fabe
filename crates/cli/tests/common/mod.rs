//! Helpers shared by the CLI tests: running the binary and making small inputs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

#[allow(unused_imports)]
pub use deepinterp_testdata::{fixture, shared_or_skip};

/// Runs `deepinterp` with `args`.
pub fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_deepinterp"))
        .args(args)
        .output()
        .expect("the deepinterp binary runs")
}

/// Runs `deepinterp` and panics with its stderr unless it succeeds; returns stderr.
pub fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.success(),
        "deepinterp {args:?} failed:\n{stderr}"
    );
    stderr
}

/// Path as &str.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Simulates a movie `noisy.h5` + `clean.h5` in `dir`.
pub fn simulate(dir: &Path, frames: usize, side: usize, seed: u64) -> (PathBuf, PathBuf) {
    let noisy = dir.join(format!("noisy-{frames}-{side}-{seed}.h5"));
    let clean = dir.join(format!("clean-{frames}-{side}-{seed}.h5"));
    run_ok(&[
        "simulate",
        "2p",
        "-o",
        s(&noisy),
        "--clean",
        s(&clean),
        "--frames",
        &frames.to_string(),
        "--height",
        &side.to_string(),
        "--width",
        &side.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    (noisy, clean)
}

/// Trains `input` into `dir/name` for a few steps with seed 5: `settings` (architecture,
/// window, ...) then `extra`.
pub fn train_briefly(
    dir: &Path,
    input: &Path,
    name: &str,
    settings: &[&str],
    extra: &[&str],
) -> PathBuf {
    let model = dir.join(name);
    let mut args = vec!["train", s(input), "-o", s(&model)];
    args.extend_from_slice(settings);
    args.extend_from_slice(&["--steps", "4", "--steps-per-epoch", "2", "--seed", "5"]);
    args.extend_from_slice(extra);
    run_ok(&args);
    model
}

/// The settings of [`tiny_model`]: the smallest network, window 2/2/0, tiny batches and crops.
pub const TINY_SETTINGS: [&str; 10] = [
    "--arch",
    "unet-d1-w4",
    "--pre-frames",
    "2",
    "--post-frames",
    "2",
    "--batch-size",
    "2",
    "--patch-size",
    "16",
];

/// Trains a tiny model (window 2/2/0) for a few steps: enough to exercise the pipeline.
pub fn tiny_model(dir: &Path, input: &Path, name: &str, extra: &[&str]) -> PathBuf {
    train_briefly(dir, input, name, &TINY_SETTINGS, extra)
}

/// Parses "peak memory N MiB" from denoise's summary line.
pub fn peak_mib(stderr: &str) -> f64 {
    let rest = stderr
        .split("peak memory ")
        .nth(1)
        .expect("peak memory reported");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// The JSON header of one of our model files.
pub fn model_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).expect("model file");
    let rest = bytes
        .strip_prefix(b"DEEPINTERP-MODEL\n".as_slice())
        .expect("magic");
    let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&rest[8..8 + len]).expect("json header")
}

/// Files in `dir` (names), sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// Simulates `seconds` of a `channels`-channel probe; returns (noisy, clean).
pub fn simulate_ephys(dir: &Path, channels: usize, seconds: f64, seed: u64) -> (PathBuf, PathBuf) {
    let noisy = dir.join(format!("noisy-{channels}-{seed}.bin"));
    let clean = dir.join(format!("clean-{channels}-{seed}.bin"));
    run_ok(&[
        "simulate",
        "ephys",
        "-o",
        s(&noisy),
        "--clean",
        s(&clean),
        "--channels",
        &channels.to_string(),
        "--duration",
        &seconds.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    (noisy, clean)
}
