//! Reading the test fixtures: the movies (checked against values h5py
//! reported for the same files), the golden `.npy` arrays and the original
//! Keras model files (checked against `manifest.json`).

mod common;

use common::{ScratchDir, keras_fixture, shared_or_skip};
use deepinterp_io::{Dtype, MovieInfo, open_movie, read_keras_model, read_npy_f32, write_npy_f32};

/// Reads a whole movie, checking its shape.
fn read_movie(path: &std::path::Path, expected: MovieInfo) -> Vec<f32> {
    let mut reader = open_movie(path).expect("open movie");
    assert_eq!(reader.info(), &expected, "{}", path.display());
    assert_eq!(reader.path(), path);
    let mut out = vec![0f32; expected.frames * expected.frame_len()];
    reader
        .read_frames(0, expected.frames, &mut out)
        .expect("read");
    out
}

fn at(values: &[f32], info: &MovieInfo, t: usize, y: usize, x: usize) -> f32 {
    values[(t * info.height + y) * info.width + x]
}

#[test]
fn ophys_input_movie_matches_h5py() {
    let info = MovieInfo {
        frames: 100,
        height: 64,
        width: 64,
        dtype: Dtype::I16,
    };
    let values = read_movie(&keras_fixture("ophys_input_movie.h5"), info.clone());
    // Integer sum, exact (h5py: 157954208; manifest mean_f64 385.630390625).
    let sum: i64 = values.iter().map(|&v| v as i64).sum();
    assert_eq!(sum, 157_954_208);
    assert_eq!(at(&values, &info, 0, 0, 0), 256.0);
    assert_eq!(at(&values, &info, 37, 5, 9), 224.0);
    assert_eq!(at(&values, &info, 99, 63, 63), 320.0);
    let (min, max) = min_max(&values);
    assert_eq!((min, max), (96.0, 2856.0));
}

#[test]
fn ophys_e2e_output_matches_h5py() {
    let info = MovieInfo {
        frames: 40,
        height: 64,
        width: 64,
        dtype: Dtype::F32,
    };
    let values = read_movie(&keras_fixture("ophys_e2e_output.h5"), info.clone());
    assert_eq!(at(&values, &info, 0, 0, 0), 312.86734);
    assert_eq!(at(&values, &info, 37, 5, 9), 247.0163);
    assert_eq!(at(&values, &info, 39, 63, 63), 130.74101);
    // manifest: output_min / output_max
    let (min, max) = min_max(&values);
    assert_eq!(
        (f64::from(min), f64::from(max)),
        (-1653.8577880859375, 1477.320068359375)
    );
    let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
    assert!((sum - -9_434_307.451_828).abs() < 1e-3, "sum {sum}");
}

#[test]
fn allen_movie_matches_h5py() {
    let Some([path]) = shared_or_skip(["data/2p/allen_ophys_etl_movie_100x100x100.h5"]) else {
        return;
    };
    let info = MovieInfo {
        frames: 100,
        height: 100,
        width: 100,
        dtype: Dtype::I16,
    };
    let values = read_movie(&path, info.clone());
    let sum: i64 = values.iter().map(|&v| v as i64).sum();
    assert_eq!(sum, 224_835_825);
    assert_eq!(at(&values, &info, 0, 0, 0), 211.0);
    assert_eq!(at(&values, &info, 37, 5, 9), 230.0);
    assert_eq!(at(&values, &info, 99, 99, 99), 355.0);
    assert_eq!(min_max(&values), (17.0, 1891.0));

    // Frames 37..42 read alone equal the same frames of the full read.
    let mut reader = open_movie(&path).expect("open");
    let mut part = vec![0f32; 5 * info.frame_len()];
    reader.read_frames(37, 5, &mut part).expect("read 37..42");
    assert_eq!(part, values[37 * info.frame_len()..42 * info.frame_len()]);
}

fn min_max(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

#[test]
fn golden_npy_arrays_read_and_round_trip() {
    let cases: [(&str, &[usize]); 4] = [
        (
            "net_unet_single_1024_input_2x64x64x60.npy",
            &[2, 64, 64, 60],
        ),
        ("net_unet_single_1024_output_2x64x64x1.npy", &[2, 64, 64, 1]),
        (
            "net_unet_single_ephys_1024_input_2x384x2x60.npy",
            &[2, 384, 2, 60],
        ),
        (
            "net_fmri_unet_denoiser_output_4x7x7x7x1.npy",
            &[4, 7, 7, 7, 1],
        ),
    ];
    let dir = ScratchDir::new("npy");
    for (name, shape) in cases {
        let path = keras_fixture(name);
        let (read_shape, data) = read_npy_f32(&path).expect("read npy");
        assert_eq!(read_shape, shape, "{name}");
        assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
        assert!(data.iter().all(|v| v.is_finite()), "{name}");
        assert!(data.iter().any(|&v| v != 0.0), "{name}");

        // Our writer produces the same bytes numpy wrote (v1 header, same
        // dict text and padding), and reads back equal.
        let copy = dir.join(name);
        write_npy_f32(&copy, &read_shape, &data).expect("write npy");
        assert_eq!(read_npy_f32(&copy).expect("read copy"), (read_shape, data));
        assert_eq!(
            std::fs::read(&copy).expect("read copy bytes"),
            std::fs::read(&path).expect("read fixture bytes"),
            "{name}"
        );
    }
}

#[test]
fn bad_npy_files_are_clear_errors() {
    let dir = ScratchDir::new("badnpy");
    let missing = read_npy_f32(&dir.join("absent.npy")).unwrap_err();
    assert!(missing.to_string().contains("absent.npy"), "{missing}");

    let source = std::fs::read(keras_fixture("net_unet_single_1024_output_2x64x64x1.npy"))
        .expect("read fixture");
    let cut = dir.join("cut.npy");
    std::fs::write(&cut, &source[..source.len() / 2]).expect("write");
    let err = read_npy_f32(&cut).unwrap_err();
    assert!(
        err.to_string().contains("cut.npy") && err.to_string().contains("truncated"),
        "{err}"
    );

    let mut f8 = source.clone();
    let at = f8.windows(3).position(|w| w == b"<f4").expect("descr");
    f8[at + 2] = b'8';
    let path = dir.join("f8.npy");
    std::fs::write(&path, &f8).expect("write");
    let err = read_npy_f32(&path).unwrap_err();
    assert!(
        err.to_string().contains("f8.npy") && err.to_string().contains("<f8"),
        "{err}"
    );
}

/// Layer names, parameter counts and kernel shapes from `manifest.json`.
struct ExpectedModel {
    layer_names: Vec<String>,
    n_params: usize,
    /// (dataset path, shape) of every weight.
    weights: Vec<(String, Vec<usize>)>,
}

fn expected_model(arch: &str) -> ExpectedModel {
    let text = std::fs::read_to_string(keras_fixture("manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
    let model = &manifest["models"][arch];
    let h5 = &model["h5"];
    ExpectedModel {
        layer_names: h5["model_weights_layer_names"]
            .as_array()
            .expect("layer names")
            .iter()
            .map(|v| v.as_str().expect("name").to_string())
            .collect(),
        n_params: model["n_params"].as_u64().expect("n_params") as usize,
        weights: h5["weight_datasets"]
            .as_array()
            .expect("weight datasets")
            .iter()
            .map(|w| {
                let shape = w["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|d| d.as_u64().expect("dim") as usize)
                    .collect();
                (w["path"].as_str().expect("path").to_string(), shape)
            })
            .collect(),
    }
}

fn check_model(
    path: &std::path::Path,
    arch: &str,
    n_params: usize,
) -> deepinterp_io::KerasModelFile {
    let file_name = path.file_name().expect("file name").to_string_lossy();
    let model = read_keras_model(path).expect("read model");
    let expected = expected_model(arch);
    assert_eq!(expected.n_params, n_params);
    assert_eq!(
        model.keras_version.as_deref(),
        Some("2.15.0"),
        "{file_name}"
    );
    assert_eq!(model.layer_names, expected.layer_names, "{file_name}");
    assert_eq!(model.parameter_count(), n_params, "{file_name}");
    let config: serde_json::Value = serde_json::from_str(&model.model_config).expect("config JSON");
    assert_eq!(config["class_name"], "Functional", "{file_name}");

    // Every weight dataset of the manifest is there with its shape.
    let mut seen = 0;
    for layer in &model.weights {
        // Keras order: kernel first, then bias.
        let names: Vec<&str> = layer.arrays.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["kernel:0", "bias:0"], "{file_name} {}", layer.layer);
        for array in &layer.arrays {
            let path = format!("model_weights/{0}/{0}/{1}", layer.layer, array.name);
            let (_, shape) = expected
                .weights
                .iter()
                .find(|(p, _)| *p == path)
                .unwrap_or_else(|| panic!("{file_name}: unexpected weight {path}"));
            assert_eq!(&array.shape, shape, "{file_name} {path}");
            assert_eq!(array.data.len(), shape.iter().product::<usize>());
            seen += 1;
        }
    }
    assert_eq!(seen, expected.weights.len(), "{file_name}");
    model
}

/// Every weight is `k * 2^-m` with integer |k| <= 7 (README: low-entropy
/// weights), so a mis-decoded array would show up as other values.
fn assert_low_entropy(model: &deepinterp_io::KerasModelFile) {
    for layer in &model.weights {
        for array in &layer.arrays {
            let scale = array
                .data
                .iter()
                .map(|v| v.abs())
                .filter(|&v| v > 0.0)
                .fold(f32::INFINITY, f32::min);
            for &v in &array.data {
                let k = v / scale;
                assert!(
                    k.fract() == 0.0 && k.abs() <= 7.0,
                    "{} {}: {v}",
                    layer.layer,
                    array.name
                );
            }
        }
    }
}

#[test]
fn unet_single_1024_model_is_read() {
    let Some([path]) = shared_or_skip(["fixtures/keras/model_unet_single_1024.h5"]) else {
        return;
    };
    let model = check_model(&path, "unet_single_1024", 15_704_769);
    assert_eq!(model.weights.len(), 10);
    let conv = model.layer("conv2d").expect("conv2d");
    assert_eq!(
        conv.array("kernel:0").expect("kernel").shape,
        [3, 3, 60, 64]
    );
    assert_eq!(conv.array("bias:0").expect("bias").shape, [64]);
    assert_eq!(
        model
            .layer("conv2d_9")
            .expect("conv2d_9")
            .array("kernel:0")
            .expect("kernel")
            .shape,
        [1, 1, 64, 1]
    );
    assert_low_entropy(&model);
}

#[test]
fn unet_single_ephys_1024_model_is_read() {
    let Some([path]) = shared_or_skip(["fixtures/keras/model_unet_single_ephys_1024.h5"]) else {
        return;
    };
    let model = check_model(&path, "unet_single_ephys_1024", 5_253_057);
    assert_eq!(
        model
            .layer("conv2d")
            .expect("conv2d")
            .array("kernel:0")
            .expect("kernel")
            .shape,
        [2, 2, 60, 64]
    );
    assert_low_entropy(&model);
}

#[test]
fn fmri_models_in_both_layouts_are_read_identically() {
    let current = check_model(
        &keras_fixture("model_fmri_unet_denoiser.h5"),
        "fmri_unet_denoiser",
        44_369,
    );
    // Fixed-length NULLPAD string attributes (h5py 2 style).
    let legacy = check_model(
        &keras_fixture("model_fmri_unet_denoiser_legacy_layout.h5"),
        "fmri_unet_denoiser",
        44_369,
    );
    assert_eq!(current.layer_names, legacy.layer_names);
    assert_eq!(current.weights, legacy.weights);
    assert_eq!(
        current
            .layer("conv3d")
            .expect("conv3d")
            .array("kernel:0")
            .expect("kernel")
            .shape,
        [3, 3, 3, 5, 8]
    );
    assert_low_entropy(&current);
}

#[test]
fn a_movie_file_is_not_a_keras_model() {
    let err = read_keras_model(&keras_fixture("ophys_input_movie.h5")).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("ophys_input_movie.h5") && message.contains("model_config"),
        "{message}"
    );
    let err = read_keras_model(&keras_fixture("ophys_input_movie.h5").with_file_name("absent.h5"))
        .unwrap_err();
    assert!(err.to_string().contains("absent.h5"), "{err}");
}
