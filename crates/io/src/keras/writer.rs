//! Writing Keras 2 "legacy" HDF5 model files in the layout `model.save(path)` of
//! TensorFlow/Keras 2.15 produces (h5py 3 on libhdf5's default, earliest file format), so
//! `tf.keras.models.load_model` and tools built on it (the original DeepInterpolation,
//! SpikeInterface's `deepinterpolate`) read what we write:
//!
//! - root attributes `backend`, `keras_version` and `model_config` (the JSON topology);
//! - group `model_weights` with attributes `backend`, `keras_version` and `layer_names`;
//! - one group per layer with attribute `weight_names` (`<layer>/kernel:0`, ...; an empty
//!   float64 array for layers without weights, as h5py stores Keras' empty list), and the
//!   weights as contiguous float32 datasets at `model_weights/<layer>/<layer>/<name>`;
//! - the empty `model_weights/top_level_model_weights` group Keras ≥ 2.13 writes.
//!
//! No `training_config` and no optimizer state: the file is an inference model, as
//! `model.save(path, include_optimizer=False)` writes it. The output appears atomically (a
//! temporary file renamed into place), so an error never leaves a partial model behind.

use std::collections::HashSet;
use std::path::Path;

use rust_hdf5::{H5File, H5Group, LibverBound};

use super::{KerasModelFile, keras_err};
use crate::error::{IoError, one_line};
use crate::movie::TempOutput;

/// The `backend` attribute of every Keras 2 model file written by TensorFlow.
const BACKEND: &str = "tensorflow";
/// Written when the [`KerasModelFile`] names no version: without the attribute Keras treats
/// the file as Keras 1 and would try to convert the kernels.
pub const DEFAULT_KERAS_VERSION: &str = "2.15.0";
/// The group Keras ≥ 2.13 adds under `model_weights` for weights owned by the model itself.
const TOP_LEVEL_WEIGHTS_GROUP: &str = "top_level_model_weights";

/// Writes `file` as a Keras 2 HDF5 model file at `path` (replacing any file there).
pub fn write_keras_model(path: &Path, file: &KerasModelFile) -> Result<(), IoError> {
    check_consistent(path, file)?;
    let temp = TempOutput::new(path)?;
    let hdf5_err = |action: &str, e: rust_hdf5::Hdf5Error| IoError::Hdf5 {
        path: path.to_path_buf(),
        action: action.to_string(),
        detail: one_line(e),
    };
    // The earliest format is what h5py writes by default (version-0 superblock,
    // symbol-table groups): readable by every libhdf5, and by our own attribute reader.
    let h5 = H5File::options()
        .best_effort_locking()
        .libver(LibverBound::Earliest)
        .create(temp.temp_path())
        .map_err(|e| hdf5_err("creating the model file", e))?;
    let version = file
        .keras_version
        .as_deref()
        .unwrap_or(DEFAULT_KERAS_VERSION);
    // Attribute order as Keras writes them.
    h5.set_attr_string("backend", BACKEND)
        .and_then(|()| h5.set_attr_string("keras_version", version))
        .and_then(|()| h5.set_attr_string("model_config", &file.model_config))
        .map_err(|e| hdf5_err("writing the root attributes", e))?;

    let weights_group = h5
        .create_group("model_weights")
        .map_err(|e| hdf5_err("creating group 'model_weights'", e))?;
    let layer_names: Vec<&str> = file.layer_names.iter().map(String::as_str).collect();
    weights_group
        .set_attr_string("backend", BACKEND)
        .and_then(|()| weights_group.set_attr_string("keras_version", version))
        .and_then(|()| weights_group.set_attr_string_array("layer_names", &layer_names))
        .map_err(|e| hdf5_err("writing the attributes of 'model_weights'", e))?;
    for layer in &file.layer_names {
        write_layer(&weights_group, layer, file)
            .map_err(|e| hdf5_err(&format!("writing the weights of layer '{layer}'"), e))?;
    }
    weights_group
        .create_group(TOP_LEVEL_WEIGHTS_GROUP)
        .and_then(|group| set_empty_weight_names(&group))
        .map_err(|e| hdf5_err("writing group 'model_weights/top_level_model_weights'", e))?;

    h5.close()
        .map_err(|e| hdf5_err("closing the model file", e))?;
    temp.commit()?;
    Ok(())
}

/// One layer group: its `weight_names` and, for a layer with weights, the subgroup of the
/// same name holding them.
fn write_layer(parent: &H5Group, layer: &str, file: &KerasModelFile) -> rust_hdf5::Result<()> {
    let group = parent.create_group(layer)?;
    let Some(weights) = file.layer(layer).filter(|w| !w.arrays.is_empty()) else {
        return set_empty_weight_names(&group);
    };
    let weight_names: Vec<String> = weights
        .arrays
        .iter()
        .map(|array| format!("{layer}/{}", array.name))
        .collect();
    let weight_names: Vec<&str> = weight_names.iter().map(String::as_str).collect();
    group.set_attr_string_array("weight_names", &weight_names)?;
    let inner = group.create_group(layer)?;
    for array in &weights.arrays {
        let dataset = inner
            .new_dataset::<f32>()
            .shape(&array.shape)
            .create(&array.name)?;
        dataset.write_raw(&array.data)?;
    }
    Ok(())
}

/// h5py stores Keras' empty `weight_names` list as an empty float64 array.
fn set_empty_weight_names(group: &H5Group) -> rust_hdf5::Result<()> {
    group.set_attr_array_numeric::<f64>("weight_names", &[])
}

/// Checks what HDF5 would otherwise reject half-way (or accept into a file Keras cannot
/// read): names usable as HDF5 links, weights only for listed layers, data that fills its
/// shape, a `model_config` that is JSON.
fn check_consistent(path: &Path, file: &KerasModelFile) -> Result<(), IoError> {
    let fail = |detail: String| Err(keras_err(path, detail));
    if serde_json::from_str::<serde_json::Value>(&file.model_config).is_err() {
        return fail("cannot write: 'model_config' is not valid JSON".to_string());
    }
    let mut seen = HashSet::new();
    for layer in &file.layer_names {
        if layer.is_empty() || layer.contains('/') || layer == "." {
            return fail(format!(
                "cannot write: layer name '{layer}' is not a valid group name"
            ));
        }
        if layer == TOP_LEVEL_WEIGHTS_GROUP {
            return fail(format!(
                "cannot write: layer name '{layer}' is reserved by Keras"
            ));
        }
        if !seen.insert(layer.as_str()) {
            return fail(format!("cannot write: layer '{layer}' is listed twice"));
        }
    }
    let mut with_weights = HashSet::new();
    for weights in &file.weights {
        if !seen.contains(weights.layer.as_str()) {
            return fail(format!(
                "cannot write: weights for layer '{}', which is not in layer_names",
                weights.layer
            ));
        }
        if !with_weights.insert(weights.layer.as_str()) {
            return fail(format!(
                "cannot write: layer '{}' has two weight lists",
                weights.layer
            ));
        }
        let mut names = HashSet::new();
        for array in &weights.arrays {
            if array.name.is_empty() || array.name.contains('/') || !names.insert(&array.name) {
                return fail(format!(
                    "cannot write: layer '{}' has a missing, nested or repeated weight name '{}'",
                    weights.layer, array.name
                ));
            }
            let expected: usize = array.shape.iter().product();
            if array.data.len() != expected {
                return fail(format!(
                    "cannot write: weight '{}/{}' has {} values for shape {:?} ({expected})",
                    weights.layer,
                    array.name,
                    array.data.len(),
                    array.shape
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keras::{KerasLayerWeights, NamedArray, read_keras_model};

    fn scratch(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "deepinterp-keras-writer-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn small_model() -> KerasModelFile {
        let kernel: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 * 0.25 - 1.0).collect();
        KerasModelFile {
            keras_version: Some("2.15.0".to_string()),
            model_config: r#"{"class_name": "Functional", "config": {"name": "model"}}"#
                .to_string(),
            layer_names: vec!["input_1".into(), "conv2d".into(), "max_pooling2d".into()],
            weights: vec![KerasLayerWeights {
                layer: "conv2d".into(),
                arrays: vec![
                    NamedArray {
                        name: "kernel:0".into(),
                        shape: vec![1, 2, 3, 4],
                        data: kernel,
                    },
                    NamedArray {
                        name: "bias:0".into(),
                        shape: vec![4],
                        data: vec![0.5, -0.5, 1e-7, f32::MAX],
                    },
                ],
            }],
        }
    }

    #[test]
    fn written_model_reads_back_identical() {
        let dir = scratch("roundtrip");
        let path = dir.join("model.h5");
        let model = small_model();
        write_keras_model(&path, &model).expect("write");
        assert_eq!(read_keras_model(&path).expect("read"), model);
        // Written in the classic format, so the whole-array attribute reader handles it.
        let mut attrs = super::super::group_attrs::GroupAttrReader::open(&path).expect("open");
        assert_eq!(
            attrs.string_array("model_weights", "layer_names").unwrap(),
            Some(model.layer_names.clone())
        );
        assert_eq!(
            attrs
                .string_array("model_weights/input_1", "weight_names")
                .unwrap(),
            Some(vec![])
        );
        // Overwriting an existing file works and leaves no temporary file.
        write_keras_model(&path, &model).expect("rewrite");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inconsistent_models_are_refused_without_output() {
        let dir = scratch("refused");
        let path = dir.join("model.h5");
        let mut short = small_model();
        short.weights[0].arrays[1].data.pop();
        let mut stray = small_model();
        stray.weights[0].layer = "conv2d_7".into();
        let mut not_json = small_model();
        not_json.model_config = "{".into();
        let mut slash = small_model();
        slash.layer_names[1] = "a/b".into();
        for (model, needle) in [
            (short, "3 values for shape [4]"),
            (stray, "'conv2d_7', which is not in layer_names"),
            (not_json, "not valid JSON"),
            (slash, "'a/b' is not a valid group name"),
        ] {
            let err = write_keras_model(&path, &model).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(err.starts_with(&path.display().to_string()), "{err}");
        }
        let missing_dir = dir.join("no-such-dir").join("model.h5");
        assert!(write_keras_model(&missing_dir, &small_model()).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
