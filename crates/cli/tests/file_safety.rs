//! A user's files are sacred: no command writes over one of its inputs (by path, link or
//! sidecar) or another of its outputs; a failed run leaves an existing model as it was; an
//! interrupted run leaves no temporary file behind, and a killed training run resumes exactly.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TINY_SETTINGS, listing, run, run_ok, s, simulate, simulate_ephys, tiny_model};
use deepinterp_io::{Dtype, MovieInfo, create_movie, open_movie};

/// Runs `args`, expects a one-line refusal naming `victim`, and checks `victim` is unchanged.
fn refused(args: &[&str], victim: &Path) {
    let before = std::fs::read(victim).expect("victim exists");
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "deepinterp {args:?} did not fail cleanly: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(
        last.contains(name),
        "the error does not name {name}: {stderr}"
    );
    assert!(
        std::fs::read(victim).unwrap() == before,
        "deepinterp {args:?} changed {}",
        victim.display()
    );
}

#[test]
fn no_command_writes_over_its_inputs_or_their_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, clean) = simulate(dir.path(), 40, 32, 1);
    let model = tiny_model(dir.path(), &noisy, "m.dimodel", &[]);
    let denoised = dir.path().join("denoised.h5");
    run_ok(&[
        "denoise",
        s(&noisy),
        "-o",
        s(&denoised),
        "--model",
        s(&model),
    ]);

    // 1. train REC.bin -o REC.meta: the training recording's own SpikeGLX header.
    let (recording, _) = simulate_ephys(dir.path(), 16, 0.2, 3);
    let meta = recording.with_extension("meta");
    refused(
        &[
            "train",
            s(&recording),
            "-o",
            s(&meta),
            "--arch",
            "unet-ephys-d1-w4",
            "--steps",
            "2",
        ],
        &meta,
    );

    // 2. evaluate --report over the noisy movie.
    refused(
        &[
            "evaluate",
            "--noisy",
            s(&noisy),
            "--denoised",
            s(&denoised),
            "--clean",
            s(&clean),
            "--report",
            s(&noisy),
        ],
        &noisy,
    );

    // 3. export a model onto itself.
    refused(
        &["export", s(&model), "-o", s(&model), "--format", "keras"],
        &model,
    );

    // 4. denoise -o the Keras model it denoises with.
    let keras = dir.path().join("k.h5");
    run_ok(&["export", s(&model), "-o", s(&keras), "--format", "keras"]);
    refused(
        &[
            "denoise",
            s(&noisy),
            "-o",
            s(&keras),
            "--model",
            s(&keras),
            "--pre-frames",
            "2",
        ],
        &keras,
    );

    // finetune -o BASE --model BASE.
    refused(
        &[
            "finetune",
            s(&noisy),
            "--model",
            s(&model),
            "-o",
            s(&model),
            "--steps",
            "2",
        ],
        &model,
    );

    // simulate -o X --clean X: two outputs on one file (X exists from before).
    refused(
        &[
            "simulate",
            "2p",
            "-o",
            s(&clean),
            "--clean",
            s(&clean),
            "--frames",
            "4",
        ],
        &clean,
    );

    // Through a symlink and a hard link to the input.
    #[cfg(unix)]
    {
        let link = dir.path().join("link.h5");
        std::os::unix::fs::symlink(&noisy, &link).unwrap();
        let hard = dir.path().join("hard.h5");
        std::fs::hard_link(&noisy, &hard).unwrap();
        for alias in [&link, &hard] {
            let before = std::fs::read(&noisy).unwrap();
            let output = run(&["denoise", s(&noisy), "-o", s(alias), "--model", s(&model)]);
            assert_eq!(output.status.code(), Some(1));
            assert!(
                std::fs::read(&noisy).unwrap() == before,
                "the input changed"
            );
        }
    }
}

#[test]
fn a_failed_or_unconfirmed_training_run_leaves_the_existing_model_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 40, 32, 2);
    let model = tiny_model(dir.path(), &noisy, "m.dimodel", &[]);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "train",
            s(&noisy),
            "-o",
            s(&model),
            "--steps-per-epoch",
            "2",
        ];
        args.extend(TINY_SETTINGS);
        args.extend(extra);
        args.into_iter().map(str::to_string).collect()
    };
    // An existing model without --overwrite or --resume.
    let args = with(&["--steps", "2"]);
    refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), &model);
    // Runs that fail, even when told to overwrite.
    for bad in [
        &["--overwrite", "--steps", "0"][..],
        &["--overwrite", "--steps", "2", "--learning-rate", "NaN"],
        &["--overwrite", "--steps", "2", "--batch-size", "100000000"],
    ] {
        let args = with(bad);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = std::fs::read(&model).unwrap();
        let output = run(&args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            std::fs::read(&model).unwrap() == before,
            "{args:?} changed the model"
        );
    }
    // A NaN frame partway through the input: the run fails after it started writing.
    let poisoned = dir.path().join("poisoned.h5");
    write_movie_with_nan(&noisy, &poisoned, 30);
    let before = std::fs::read(&model).unwrap();
    let mut args = vec!["train", s(&poisoned), "-o", s(&model), "--overwrite"];
    args.extend(TINY_SETTINGS);
    args.extend(["--steps", "20", "--steps-per-epoch", "2"]);
    let output = run(&args);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        std::fs::read(&model).unwrap() == before,
        "a failed run changed the model"
    );
    // --overwrite that succeeds replaces it.
    let args = with(&["--overwrite", "--steps", "2", "--seed", "9"]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        std::fs::read(&model).unwrap() != before,
        "--overwrite kept the old model"
    );
    assert!(
        !listing(dir.path())
            .iter()
            .any(|name| name.contains(".tmp-")),
        "{:?}",
        listing(dir.path())
    );
}

/// Copies `source` to `target` as float32 with frame `nan_frame` set to NaN.
fn write_movie_with_nan(source: &Path, target: &Path, nan_frame: usize) {
    let mut reader = open_movie(source).unwrap();
    let info = reader.info().clone();
    let plane = info.height * info.width;
    let mut values = vec![0f32; info.frames * plane];
    reader.read_frames(0, info.frames, &mut values).unwrap();
    values[nan_frame * plane..(nan_frame + 1) * plane].fill(f32::NAN);
    let mut writer = create_movie(
        target,
        &MovieInfo {
            dtype: Dtype::F32,
            ..info.clone()
        },
    )
    .unwrap();
    writer.write_frames(&values, info.frames).unwrap();
    writer.finish().unwrap();
}

/// The weights of one of our model files (the bytes after its JSON header).
fn weights(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[17..25].try_into().unwrap()) as usize;
    // The CRC-32 trailer covers the header too: leave it out.
    bytes[25 + len..bytes.len() - 4].to_vec()
}

/// Waits until `dir` holds a file whose name contains `needle`.
fn wait_for(dir: &Path, needle: &str, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if listing(dir).iter().any(|name| name.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn temporaries(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|name| name.contains(".tmp-"))
        .collect()
}

#[cfg(unix)]
#[test]
fn interrupted_denoise_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 400, 64, 3);
    let model = tiny_model(dir.path(), &noisy, "m.dimodel", &[]);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("denoised.h5");
    for (signal, code) in [("INT", Some(130)), ("TERM", Some(143)), ("KILL", None)] {
        let child = Command::new(env!("CARGO_BIN_EXE_deepinterp"))
            .args([
                "denoise",
                s(&noisy),
                "-o",
                s(&output),
                "--model",
                s(&model),
                "--batch-size",
                "1",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_for(&out_dir, ".tmp-", Duration::from_secs(60)),
            "no temporary output appeared"
        );
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), code, "SIG{signal}: {stderr}");
        assert!(!output.exists(), "SIG{signal} left an output");
        if code.is_some() {
            assert!(stderr.contains("interrupted"), "{stderr}");
            assert!(
                temporaries(&out_dir).is_empty(),
                "SIG{signal} left {:?}",
                temporaries(&out_dir)
            );
        } else {
            // kill -9 cannot be handled: the next run to the same output clears what it left.
            assert_eq!(temporaries(&out_dir).len(), 1);
            run_ok(&[
                "denoise",
                s(&noisy),
                "-o",
                s(&output),
                "--model",
                s(&model),
                "--end-frame",
                "40",
            ]);
            assert!(temporaries(&out_dir).is_empty(), "{:?}", listing(&out_dir));
            assert!(output.exists());
        }
    }
}

#[cfg(unix)]
#[test]
fn a_killed_training_run_resumes_to_the_uninterrupted_model() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 60, 32, 4);
    // Long enough that the kill lands mid-run on any machine.
    let steps = ["--steps", "300", "--steps-per-epoch", "2"];
    let straight = tiny_model(dir.path(), &noisy, "straight.dimodel", &steps);
    let killed = dir.path().join("killed.dimodel");
    let mut args: Vec<String> = ["train", s(&noisy), "-o", s(&killed), "--seed", "5"]
        .iter()
        .chain(&TINY_SETTINGS)
        .chain(&steps)
        .map(|arg| arg.to_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_deepinterp"))
        .args(&args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(
        dir.path(),
        "killed.dimodel.checkpoint",
        Duration::from_secs(120)
    ));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );
    assert!(!killed.exists(), "a killed run left a model at -o");
    args.push("--resume".into());
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Byte for byte: the weights, and the loss history read back from the checkpoint.
    assert!(
        std::fs::read(&killed).unwrap() == std::fs::read(&straight).unwrap(),
        "resumed model differs: weights equal {}",
        weights(&killed) == weights(&straight)
    );
}
