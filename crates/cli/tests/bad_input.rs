//! Bad input gets one clear line naming the file and the problem, a non-zero exit, and no
//! output file (not even a temp file).

mod common;

use std::path::Path;

use common::{listing, run, s, simulate, tiny_model};
use deepinterp_io::{Dtype, MovieInfo, create_movie};

fn write_hdf5<T: rust_hdf5::H5Type + Clone>(path: &Path, name: &str, shape: &[usize], value: T) {
    let file = rust_hdf5::H5File::create(path).unwrap();
    let dataset = file.new_dataset::<T>().shape(shape).create(name).unwrap();
    dataset
        .write_raw(&vec![value; shape.iter().product()])
        .unwrap();
    file.close().unwrap();
}

fn write_f32_movie(path: &Path, frames: usize, side: usize, nan_frame: Option<usize>) {
    let info = MovieInfo {
        frames,
        height: side,
        width: side,
        dtype: Dtype::F32,
    };
    let mut writer = create_movie(path, &info).unwrap();
    let plane = side * side;
    let mut data: Vec<f32> = (0..frames * plane).map(|i| (i % 97) as f32).collect();
    if let Some(frame) = nan_frame {
        data[frame * plane + 3] = f32::NAN;
    }
    writer.write_frames(&data, frames).unwrap();
    writer.finish().unwrap();
}

/// Runs `denoise` on `input` and checks the failure contract; returns the message.
fn denoise_fails(dir: &Path, model: &Path, input: &Path, needle: &str) -> String {
    let out_dir = dir.join(format!(
        "out-{}",
        input.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&out_dir).unwrap();
    let output = out_dir.join("denoised.h5");
    let result = run(&["denoise", s(input), "-o", s(&output), "--model", s(model)]);
    let stderr = String::from_utf8_lossy(&result.stderr).to_string();
    assert!(
        !result.status.success(),
        "denoise {} should fail",
        input.display()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    let name = input.file_name().unwrap().to_string_lossy();
    assert!(
        lines[0].contains(name.as_ref()),
        "message does not name {name}: {}",
        lines[0]
    );
    assert!(
        lines[0].to_lowercase().contains(needle),
        "message does not say '{needle}': {}",
        lines[0]
    );
    assert!(
        listing(&out_dir).is_empty(),
        "left files behind: {:?}",
        listing(&out_dir)
    );
    lines[0].to_string()
}

#[test]
fn denoise_rejects_bad_recordings_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (noisy, _) = simulate(dir.path(), 40, 16, 1);
    let model = tiny_model(dir.path(), &noisy, "tiny.dimodel", &[]);

    let missing_dataset = dir.path().join("missing_dataset.h5");
    write_hdf5(&missing_dataset, "movie", &[10, 8, 8], 1i16);
    denoise_fails(dir.path(), &model, &missing_dataset, "data");

    let flat = dir.path().join("two_dimensional.h5");
    write_hdf5(&flat, "data", &[10, 8], 1i16);
    denoise_fails(dir.path(), &model, &flat, "dimension");

    let int32 = dir.path().join("int32.h5");
    write_hdf5(&int32, "data", &[10, 8, 8], 1i32);
    denoise_fails(dir.path(), &model, &int32, "int32");

    let short = dir.path().join("short.h5");
    write_f32_movie(&short, 3, 8, None);
    denoise_fails(dir.path(), &model, &short, "too few");

    let with_nan = dir.path().join("with_nan.h5");
    write_f32_movie(&with_nan, 30, 8, Some(20));
    denoise_fails(dir.path(), &model, &with_nan, "nan");

    let truncated = dir.path().join("truncated.h5");
    let bytes = std::fs::read(&noisy).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    denoise_fails(dir.path(), &model, &truncated, "truncated.h5");

    let not_a_movie = dir.path().join("notes.txt");
    std::fs::write(&not_a_movie, "hello").unwrap();
    denoise_fails(dir.path(), &model, &not_a_movie, "notes.txt");

    // Denoising a recording onto itself would destroy the raw data.
    let before = std::fs::read(&noisy).unwrap();
    let result = run(&["denoise", s(&noisy), "-o", s(&noisy), "--model", s(&model)]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(&noisy).unwrap(),
        before,
        "the input was modified"
    );

    // A model file that is not one.
    let fake_model = dir.path().join("fake.dimodel");
    std::fs::write(&fake_model, "DEEPINTERP-MODEL\nxx").unwrap();
    let out = dir.path().join("never.h5");
    let result = run(&[
        "denoise",
        s(&noisy),
        "-o",
        s(&out),
        "--model",
        s(&fake_model),
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("fake.dimodel") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn train_rejects_bad_input_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.h5");
    write_f32_movie(&short, 20, 16, None);
    let model = dir.path().join("m.dimodel");
    let result = run(&["train", s(&short), "-o", s(&model), "--arch", "unet-d1-w4"]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("short.h5") && stderr.contains("too few"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!model.exists());

    let before = std::fs::read(&short).unwrap();
    let result = run(&["train", s(&short), "-o", s(&short), "--arch", "unet-d1-w4"]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(&short).unwrap(),
        before,
        "the input was modified"
    );

    let result = run(&["train", s(&short), "-o", s(&model), "--arch", "resnet"]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("unknown architecture"));
}
