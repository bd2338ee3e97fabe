//! Export to the original's Keras `.h5` layout: every network shape we train (the paper's
//! three and our scaled families) survives export → import with bit-identical weights and
//! outputs and the same spec, and re-exporting an imported original model reproduces its
//! `model_config` and weights exactly.
//!
//! With `DEEPINTERP_KERAS_EXPORT_DIR` set, the exported files and `.npy` input/output pairs
//! (Keras' channels-last layout) are kept there for `tests/keras_export_check.py` (Keras
//! predictions) and `crates/io/tests/keras_layout_check.py` (HDF5 structure vs an original).

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use common::{keras_fixture, shared_or_skip};
use deepinterp::EngineError;
use deepinterp::backend::Cpu;
use deepinterp::model::keras_export::keras_model_file;
use deepinterp::model::{
    Modality, Model, ModelSpec, NetworkConfig, TrainingSummary, UNetConfig, architecture_config,
    export_keras, load_model,
};
use deepinterp::sampling::Window;
use deepinterp::volume::VolumeBlock;
use deepinterp_io::{read_keras_model, write_npy_f32};

/// Where exported files go: the check directory when asked for, else a scratch folder.
fn output_dir(scratch: &tempfile::TempDir) -> PathBuf {
    match std::env::var_os("DEEPINTERP_KERAS_EXPORT_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("create the export check directory");
            dir
        }
        None => scratch.path().to_path_buf(),
    }
}

/// A model of architecture `arch` with random weights, trained (nominally) on frames of
/// `frame_size`.
fn random_model(arch: &str, frame_size: Option<[usize; 2]>) -> Model<Cpu> {
    let (_, modality) = architecture_config(arch, &Modality::TwoPhoton.default_window()).unwrap();
    let window = modality.default_window();
    let (network, modality) = architecture_config(arch, &window).unwrap();
    let block = (modality == Modality::Fmri).then(|| VolumeBlock::paper(None).unwrap());
    Model {
        network: network.init::<Cpu>(&Default::default()).unwrap(),
        spec: ModelSpec {
            architecture: arch.to_string(),
            modality,
            network,
            window,
            block,
            normalization: modality.default_normalization(),
            training: Some(TrainingSummary {
                frame_size,
                ..TrainingSummary::default()
            }),
            source: "test".to_string(),
        },
    }
}

/// Deterministic values in [-2, 2).
fn random_values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Our layout of a batch: `[n, c, h, w]` or `[n, c, x, y, z]`.
fn batch_shape(model: &Model<Cpu>, batch: usize, sides: &[usize]) -> Vec<usize> {
    [batch, model.spec.network.in_channels()]
        .into_iter()
        .chain(sides.iter().copied())
        .collect()
}

fn forward(model: &Model<Cpu>, input: &[f32], shape: &[usize]) -> Vec<f32> {
    let device = Default::default();
    let x = Tensor::<Cpu, 1>::from_data(TensorData::new(input.to_vec(), [input.len()]), &device);
    model
        .network
        .forward_flat(x, shape)
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Channels first → channels last (Keras): `[n, c, s...]` → `[n, s..., c]`.
fn channels_last(data: &[f32], shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let (n, c) = (shape[0], shape[1]);
    let spatial: usize = shape[2..].iter().product();
    let mut out = vec![0f32; data.len()];
    for b in 0..n {
        for ch in 0..c {
            for s in 0..spatial {
                out[(b * spatial + s) * c + ch] = data[(b * c + ch) * spatial + s];
            }
        }
    }
    let keras_shape = std::iter::once(n)
        .chain(shape[2..].iter().copied())
        .chain(std::iter::once(c))
        .collect();
    (keras_shape, out)
}

/// The `batch_input_shape` an exported file records.
fn recorded_input_shape(path: &Path) -> serde_json::Value {
    let file = read_keras_model(path).unwrap();
    let config: serde_json::Value = serde_json::from_str(&file.model_config).unwrap();
    config["config"]["layers"][0]["config"]["batch_input_shape"].clone()
}

/// Exports `model`, imports the file with our Keras importer and checks that the spec,
/// the weights and the outputs on random inputs of `sides` are the same. Returns the file,
/// the input and our output (both in our layout) and the batch shape.
fn export_and_reimport(
    model: &Model<Cpu>,
    dir: &Path,
    sides: &[usize],
    batch: usize,
) -> (PathBuf, Vec<f32>, Vec<f32>, Vec<usize>) {
    let arch = &model.spec.architecture;
    let path = dir.join(format!("{arch}.h5"));
    export_keras(model, &path).unwrap();
    let reloaded = load_model::<Cpu>(&path, None, &Default::default()).unwrap();
    assert_eq!(&reloaded.spec.architecture, arch);
    assert_eq!(reloaded.spec.modality, model.spec.modality, "{arch}");
    assert_eq!(reloaded.spec.window, model.spec.window, "{arch}");
    assert_eq!(reloaded.spec.network, model.spec.network, "{arch}");
    assert_eq!(reloaded.spec.block, model.spec.block, "{arch}");
    assert_eq!(
        reloaded.spec.network.parameter_count(),
        model.spec.network.parameter_count(),
        "{arch}"
    );
    assert_eq!(
        read_keras_model(&path).unwrap().parameter_count(),
        model.spec.network.parameter_count(),
        "{arch}"
    );
    // Weights bit for bit.
    let original = model.network.weight_values().unwrap();
    let restored = reloaded.network.weight_values().unwrap();
    assert!(original == restored, "{arch}: weights changed");

    let shape = batch_shape(model, batch, sides);
    let input = random_values(shape.iter().product(), arch.len() as u64);
    let expected = forward(model, &input, &shape);
    let actual = forward(&reloaded, &input, &shape);
    let diff = max_abs_diff(&expected, &actual);
    println!("{arch}: max |exported - original| = {diff:e} over {shape:?}");
    assert!(diff <= 1e-6, "{arch}: outputs differ by {diff}");
    (path, input, expected, shape)
}

/// A network to export: its architecture, the frame size it was (nominally) trained on,
/// and the spatial sides and batch size of the inputs it is compared on.
struct Case {
    arch: &'static str,
    frame_size: Option<[usize; 2]>,
    sides: &'static [usize],
    batch: usize,
}

impl Case {
    fn new(
        arch: &'static str,
        frame_size: Option<[usize; 2]>,
        sides: &'static [usize],
        batch: usize,
    ) -> Self {
        Self {
            arch,
            frame_size,
            sides,
            batch,
        }
    }
}

#[test]
fn paper_networks_survive_keras_export() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let cases = [
        Case::new("unet_single_1024", Some([64, 64]), &[64, 64], 1),
        Case::new("unet_single_ephys_1024", Some([384, 2]), &[384, 2], 2),
        Case::new("fmri_unet_denoiser", None, &[7, 7, 7], 4),
    ];
    for Case {
        arch,
        frame_size,
        sides,
        batch,
    } in cases
    {
        let model = random_model(arch, frame_size);
        let (path, ..) = export_and_reimport(&model, dir, sides, batch);
        let expected_input = match arch {
            "unet_single_1024" => "[null,64,64,60]",
            "unet_single_ephys_1024" => "[null,384,2,60]",
            _ => "[null,7,7,7,5]",
        };
        assert_eq!(recorded_input_shape(&path).to_string(), expected_input);
    }
}

#[test]
fn scaled_networks_survive_keras_export() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = output_dir(&scratch);
    let cases = [
        Case::new("unet-d2-w4", Some([32, 48]), &[32, 48], 2),
        Case::new("unet-ephys-d2-w4", Some([384, 2]), &[384, 2], 3),
        Case::new("unet3d-d1-w4", None, &[7, 7, 7], 5),
    ];
    for Case {
        arch,
        frame_size,
        sides,
        batch,
    } in cases
    {
        let model = random_model(arch, frame_size);
        let (path, input, output, shape) = export_and_reimport(&model, &dir, sides, batch);
        // The pair for the Keras check, in Keras' channels-last layout.
        let (input_shape, input) = channels_last(&input, &shape);
        let mut output_shape = shape.clone();
        output_shape[1] = 1;
        let (output_shape, output) = channels_last(&output, &output_shape);
        let stem = path.with_extension("");
        write_npy_f32(&stem.with_extension("input.npy"), &input_shape, &input).unwrap();
        write_npy_f32(&stem.with_extension("output.npy"), &output_shape, &output).unwrap();
    }
}

/// Without a known (or a poolable) frame size the 2D input is left free, as
/// `Input(shape=(None, None, frames))` would; ephys grids keep their two columns.
#[test]
fn input_size_is_free_when_the_frame_size_is_unknown() {
    let scratch = tempfile::tempdir().unwrap();
    for (arch, frame, recorded) in [
        ("unet-d2-w4", None, "[null,null,null,60]"),
        ("unet-d2-w4", Some([30, 32]), "[null,null,null,60]"),
        ("unet-ephys-d2-w4", None, "[null,null,2,60]"),
    ] {
        let model = random_model(arch, frame);
        let (path, ..) = export_and_reimport(&model, scratch.path(), &[16, 8], 1);
        assert_eq!(recorded_input_shape(&path).to_string(), recorded, "{arch}");
    }
}

/// An original model, imported and exported again, gives back its own `model_config` (text
/// identical, given the input size it was saved with) and weights.
fn reexport_matches_original(path: &Path, frame_size: Option<[usize; 2]>, out: &Path) {
    let name = path.file_name().unwrap().to_string_lossy();
    let original = read_keras_model(path).unwrap();
    let mut model = load_model::<Cpu>(path, None, &Default::default()).unwrap();
    // A Keras file's 2D input size is not part of our spec; a trained model records it.
    model.spec.training = Some(TrainingSummary {
        frame_size,
        ..TrainingSummary::default()
    });
    let exported = keras_model_file(&model).unwrap();

    let layers = |text: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["config"]["layers"].clone()
    };
    let (ours, theirs) = (
        layers(&exported.model_config),
        layers(&original.model_config),
    );
    for (index, (a, b)) in ours
        .as_array()
        .unwrap()
        .iter()
        .zip(theirs.as_array().unwrap())
        .enumerate()
    {
        assert_eq!(a, b, "{name}: layer {index} differs");
    }
    assert_eq!(ours, theirs, "{name}: layer lists differ");
    assert_eq!(
        exported.model_config, original.model_config,
        "{name}: model_config text differs"
    );
    assert_eq!(exported.layer_names, original.layer_names, "{name}");
    assert_eq!(exported.keras_version, original.keras_version, "{name}");
    assert!(
        exported.weights == original.weights,
        "{name}: weights differ"
    );

    let written = out.join(format!("reexported_{name}"));
    export_keras(&model, &written).unwrap();
    assert!(read_keras_model(&written).unwrap() == exported, "{name}");
}

#[test]
fn imported_fixture_models_export_to_the_original_config_and_weights() {
    let scratch = tempfile::tempdir().unwrap();
    let out = output_dir(&scratch);
    reexport_matches_original(&keras_fixture("model_fmri_unet_denoiser.h5"), None, &out);
}

/// The same for the paper's two-photon and Neuropixels models.
#[test]
fn imported_paper_models_export_to_the_original_config_and_weights() {
    let Some([movie_model, ephys_model]) = shared_or_skip([
        "fixtures/keras/model_unet_single_1024.h5",
        "fixtures/keras/model_unet_single_ephys_1024.h5",
    ]) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let out = output_dir(&scratch);
    reexport_matches_original(&movie_model, Some([64, 64]), &out);
    reexport_matches_original(&ephys_model, Some([384, 2]), &out);
}

#[test]
fn export_errors_name_the_file() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("model.h5");

    let mut no_block = random_model("unet3d-d1-w4", None);
    no_block.spec.block = None;
    let err = export_keras(&no_block, &path).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("voxel block"), "{err}");

    let mut mismatched = random_model("unet-d1-w4", Some([16, 16]));
    mismatched.spec.network = NetworkConfig::Planar(UNetConfig::scaled(60, 1, 8));
    let err = export_keras(&mismatched, &path).unwrap_err();
    assert!(matches!(err, EngineError::ModelFile { .. }), "{err}");
    assert!(err.to_string().contains("do not have the shapes"), "{err}");

    let mut wrong_modality = random_model("unet-d1-w4", Some([16, 16]));
    wrong_modality.spec.modality = Modality::Fmri;
    let err = export_keras(&wrong_modality, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be a fmri model"), "{err}");

    let missing = scratch.path().join("no-such-dir").join("model.h5");
    let err = export_keras(&random_model("unet-d1-w4", None), &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[test]
fn a_symmetric_window_survives_export() {
    // A Keras file only records the channel count: the importer takes the paper's window
    // when the count fits it, else splits the frames in half with the paper's omission. So
    // a symmetric window without omission (here 4/4/0) comes back; 3/5 or 4/4/1 would not.
    let scratch = tempfile::tempdir().unwrap();
    let window = Window::new(4, 4, 0).unwrap();
    let (network, modality) = architecture_config("unet-d1-w4", &window).unwrap();
    let mut model = random_model("unet-d1-w4", Some([16, 16]));
    model.network = network.init::<Cpu>(&Default::default()).unwrap();
    model.spec.network = network;
    model.spec.window = window;
    assert_eq!(modality, Modality::TwoPhoton);
    let path = scratch.path().join("w.h5");
    export_keras(&model, &path).unwrap();
    let reloaded = load_model::<Cpu>(&path, None, &Default::default()).unwrap();
    assert_eq!(reloaded.spec.window, window);
    assert_eq!(reloaded.spec.architecture, "unet-d1-w4");
}
