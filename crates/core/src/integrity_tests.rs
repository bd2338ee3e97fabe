//! Hostile models and runaway sizes across modules: NaN weights (ours and Keras), NaN
//! network outputs in frame and volume inference, architectures and batches too large for
//! memory.

use std::path::Path;

use deepinterp_io::nifti::{NewVolume, NiftiDtype, create_volume, create_volume_like, open_volume};
use deepinterp_io::{Dtype, MovieInfo, create_movie, open_movie};

use crate::backend::Cpu;
use crate::inference::{self, DenoiseSettings};
use crate::model::{
    Modality, Model, ModelSpec, NetworkConfig, NormalizationPolicy, architecture_config,
    export_keras, load_model,
};
use crate::sampling::Window;
use crate::volume::{VolumeBlock, VolumeDenoiseSettings, denoise_volumes};

/// A model of `arch` whose output bias is `poison`.
fn poisoned_model(arch: &str, window: Window, poison: f32) -> Model<Cpu> {
    let (config, modality) = architecture_config(arch, &window).unwrap();
    let device = Default::default();
    let mut weights: Vec<(Vec<f32>, Vec<f32>)> = config
        .init::<Cpu>(&device)
        .unwrap()
        .weight_values()
        .unwrap()
        .into_iter()
        .map(|conv| (conv.weight, conv.bias))
        .collect();
    // The last layer is linear: a poisoned bias reaches every output (a ReLU would
    // turn a NaN into 0).
    weights.last_mut().unwrap().1[0] = poison;
    let network = config.from_weights::<Cpu>(weights, &device).unwrap();
    let block = (modality == Modality::Fmri).then(|| VolumeBlock::paper(None).unwrap());
    Model {
        spec: ModelSpec {
            architecture: arch.into(),
            modality,
            network: config,
            window,
            block,
            normalization: NormalizationPolicy::default(),
            training: None,
            source: "test".into(),
        },
        network,
    }
}

fn write_movie(path: &Path, frames: usize) {
    let info = MovieInfo {
        frames,
        height: 8,
        width: 8,
        dtype: Dtype::F32,
    };
    let mut writer = create_movie(path, &info).unwrap();
    let values: Vec<f32> = (0..frames * 64).map(|i| ((i * 37) % 101) as f32).collect();
    writer.write_frames(&values, frames).unwrap();
    writer.finish().unwrap();
}

#[test]
fn keras_files_with_non_finite_weights_are_refused_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.h5");
    let window = Window::new(2, 2, 0).unwrap();
    export_keras(&poisoned_model("unet-d1-w2", window, f32::NAN), &path).unwrap();
    let error = load_model::<Cpu>(&path, Some(window), &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with(&path.display().to_string())
            && error.contains("layer '")
            && error.contains("array '")
            && error.contains("non-finite weight (NaN"),
        "{error}"
    );
    // The same network with finite weights imports.
    let fine = dir.path().join("fine.h5");
    export_keras(&poisoned_model("unet-d1-w2", window, 0.5), &fine).unwrap();
    assert!(load_model::<Cpu>(&fine, Some(window), &Default::default()).is_ok());
}

#[test]
fn a_non_finite_output_frame_stops_denoising_before_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("movie.tif");
    let output = dir.path().join("out.tif");
    write_movie(&input, 12);
    let window = Window::new(2, 2, 0).unwrap();
    let model = poisoned_model("unet-d1-w2", window, f32::INFINITY);
    let mut reader = open_movie(&input).unwrap();
    let settings = DenoiseSettings {
        start_frame: 3,
        ..DenoiseSettings::default()
    };
    let plan = inference::plan(&model, reader.as_mut(), &settings).unwrap();
    let info = MovieInfo {
        frames: plan.output_frames,
        height: 8,
        width: 8,
        dtype: Dtype::F32,
    };
    let mut writer = create_movie(&output, &info).unwrap();
    let error = inference::run(
        &model,
        reader.as_mut(),
        writer.as_mut(),
        &plan,
        &Default::default(),
        &mut |_| Ok(()),
    )
    .err()
    .unwrap()
    .to_string();
    drop(writer);
    assert!(
        error.starts_with(&input.display().to_string())
            && error.contains("the network's output for frame 3 is not finite")
            && error.contains("nothing was written"),
        "{error}"
    );
    assert!(!output.exists());
    // Only temp files were ever made, and they are gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_non_finite_output_volume_stops_fmri_denoising() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("run.nii");
    let output = dir.path().join("out.nii");
    let shape = [6, 6, 6];
    let frames = 6;
    let mut writer = create_volume(
        &input,
        &NewVolume {
            shape,
            frames,
            dtype: NiftiDtype::F32,
            voxel_size: [1.0; 3],
            repetition_time_s: 1.0,
            description: String::new(),
        },
    )
    .unwrap();
    let values: Vec<f32> = (0..216 * frames).map(|i| ((i * 31) % 97) as f32).collect();
    writer.write_volumes(&values, frames).unwrap();
    writer.finish().unwrap();
    let window = Window::new(2, 2, 0).unwrap();
    let model = poisoned_model("unet3d-d1-w2", window, f32::NAN);
    let mut reader = open_volume(&input).unwrap();
    let mut writer = create_volume_like(&reader, &output, NiftiDtype::F32, frames).unwrap();
    let error = denoise_volumes(
        &model,
        &mut reader,
        &mut writer,
        &VolumeDenoiseSettings::default(),
        &Default::default(),
        &mut |_| Ok(()),
    )
    .err()
    .unwrap()
    .to_string();
    drop(writer);
    assert!(
        error.starts_with(&input.display().to_string())
            && error.contains("output for time point 0 is not finite (NaN)"),
        "{error}"
    );
    assert!(!output.exists());

    // A huge block batch is refused before it is allocated.
    let mut reader = open_volume(&input).unwrap();
    let mut writer = create_volume_like(&reader, &output, NiftiDtype::F32, frames).unwrap();
    let error = denoise_volumes(
        &poisoned_model("unet3d-d1-w2", window, 0.1),
        &mut reader,
        &mut writer,
        &VolumeDenoiseSettings {
            batch_blocks: usize::MAX / 4,
            ..VolumeDenoiseSettings::default()
        },
        &Default::default(),
        &mut |_| Ok(()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("--batch-size") && error.contains("budget"),
        "{error}"
    );
}

#[test]
fn huge_denoising_batches_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("movie.tif");
    write_movie(&input, 12);
    let window = Window::new(2, 2, 0).unwrap();
    let model = poisoned_model("unet-d1-w2", window, 0.1);
    let mut reader = open_movie(&input).unwrap();
    let settings = DenoiseSettings {
        batch_size: Some(1 << 50),
        ..DenoiseSettings::default()
    };
    let error = inference::plan(&model, reader.as_mut(), &settings)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with(&format!("--batch-size {}", 1u64 << 50)) && error.contains("budget"),
        "{error}"
    );
    // The automatic batch of a small movie fits.
    assert!(inference::plan(&model, reader.as_mut(), &DenoiseSettings::default()).is_ok());
    // A movie shorter than the window is an error naming it.
    let long = poisoned_model("unet-d1-w2", Window::new(10, 10, 0).unwrap(), 0.1);
    let error = inference::plan(&long, reader.as_mut(), &DenoiseSettings::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("movie.tif") && error.contains("too few"),
        "{error}"
    );
}

#[test]
fn architectures_too_large_for_memory_are_refused_naming_the_flag() {
    let window = Window::new(3, 3, 0).unwrap();
    for (arch, expected) in [
        ("unet-d1-w100000", "width 100000 is larger than"),
        ("unet-d6-w8000", "budget"),
        ("unet3d-d6-w8000", "budget"),
        ("unet-d99-w4", "unknown architecture"),
        ("unet-d1-w99999999999999999999", "unknown architecture"),
        ("unet-d\u{1b}[2J1-w4", "\\u{1b}"),
    ] {
        let error = architecture_config(arch, &window).unwrap_err().to_string();
        assert!(error.contains(expected), "{arch}: {error}");
        assert!(!error.contains('\u{1b}'), "{error}");
    }
    let (config, _) = architecture_config("unet_single_1024", &window).unwrap();
    assert!(matches!(config, NetworkConfig::Planar(_)));
    // A window of a million frames per side cannot be a network's input.
    let wide = Window::new(1 << 21, 1 << 21, 0).unwrap();
    assert!(architecture_config("unet-d1-w4", &wide).is_err());
}
