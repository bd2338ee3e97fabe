//! Original DeepInterpolation model files: Keras 2 "legacy" HDF5 (`.h5`)
//! files written by `model.save(...)`.
//!
//! This module reads what an importer needs and nothing more: the Keras
//! version, the `model_config` JSON text (the topology), the layer order
//! (`model_weights` attribute `layer_names`) and every layer's weights in the
//! order of its `weight_names` attribute, as float32 arrays with their HDF5
//! shapes (Conv kernels are HWIO / DHWIO). Optimizer state is ignored.
//! Interpreting the topology belongs to the model crate.
//!
//! [`write_keras_model`] writes the same struct back in the layout Keras 2.15 saves, so a
//! model built or trained here can be loaded by the original implementation.

mod group_attrs;
mod writer;

use std::path::Path;

use rust_hdf5::{DatatypeMessage, H5File};

use crate::error::{IoError, escape_text, one_line};
use crate::hdf5::{check_dataset_storage, describe_datatype, open_hdf5_file};
use crate::limits::{check_memory, checked_product};
use group_attrs::GroupAttrReader;
pub use writer::{DEFAULT_KERAS_VERSION, write_keras_model};

/// One weight array of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedArray {
    /// The weight's own name, e.g. `kernel:0` or `bias:0`.
    pub name: String,
    /// HDF5 shape, e.g. `[3, 3, 60, 64]` for a Conv2D kernel (HWIO).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// The weights of one layer, in the layer's `weight_names` order.
#[derive(Clone, Debug, PartialEq)]
pub struct KerasLayerWeights {
    pub layer: String,
    pub arrays: Vec<NamedArray>,
}

/// What a Keras model file holds that an importer needs.
#[derive(Clone, Debug, PartialEq)]
pub struct KerasModelFile {
    /// Root attribute `keras_version`, e.g. `2.15.0`.
    pub keras_version: Option<String>,
    /// JSON text of the root attribute `model_config`.
    pub model_config: String,
    /// All layers in model order (attribute `layer_names`), including those
    /// without weights.
    pub layer_names: Vec<String>,
    /// The layers that have weights, in model order.
    pub weights: Vec<KerasLayerWeights>,
}

impl KerasModelFile {
    /// Total number of weight values (Keras' parameter count).
    pub fn parameter_count(&self) -> usize {
        self.weights
            .iter()
            .flat_map(|l| &l.arrays)
            .map(|a| a.data.len())
            .sum()
    }

    /// The weights of layer `name`, if it has any.
    pub fn layer(&self, name: &str) -> Option<&KerasLayerWeights> {
        self.weights.iter().find(|l| l.layer == name)
    }
}

impl KerasLayerWeights {
    /// The array called `name` (e.g. `kernel:0`).
    pub fn array(&self, name: &str) -> Option<&NamedArray> {
        self.arrays.iter().find(|a| a.name == name)
    }
}

fn keras_err(path: &Path, detail: impl Into<String>) -> IoError {
    IoError::Keras {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads a Keras HDF5 model file (weights, layer order and config).
pub fn read_keras_model(path: &Path) -> Result<KerasModelFile, IoError> {
    let file = open_hdf5_file(path)?;
    let root_attrs = file.attr_names().unwrap_or_default();
    if !root_attrs.iter().any(|a| a == "model_config") {
        return Err(keras_err(
            path,
            format!(
                "no root attribute 'model_config' (root attributes: {}); is this a model saved with model.save()?",
                if root_attrs.is_empty() {
                    "none".to_string()
                } else {
                    root_attrs
                        .iter()
                        .take(20)
                        .map(|a| escape_text(a))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    }
    let model_config = file
        .attr_string("model_config")
        .map_err(|e| keras_err(path, format!("cannot read 'model_config': {}", one_line(e))))?;
    let keras_version = file.attr_string("keras_version").ok();

    let root = file.root_group();
    let has_model_weights = root
        .group_names()
        .map(|names| names.iter().any(|n| n == "model_weights"))
        .unwrap_or(false);
    if !has_model_weights {
        return Err(keras_err(path, "no group 'model_weights'"));
    }
    let weights_group = "model_weights";

    // Array-valued string attributes need the raw reader; if the file uses
    // a layout it does not handle, fall back to the config and the group
    // listing, which give the same order for models Keras 2 saves.
    let mut attr_reader = GroupAttrReader::open(path).ok();
    let layer_names = match attr_reader
        .as_mut()
        .and_then(|r| r.string_array(weights_group, "layer_names").ok().flatten())
    {
        Some(names) => names,
        None => layer_names_from_config(path, &model_config)?,
    };

    let mut weights = Vec::new();
    for layer in &layer_names {
        let layer_group = format!("{weights_group}/{layer}");
        let weight_names = match attr_reader
            .as_mut()
            .and_then(|r| r.string_array(&layer_group, "weight_names").ok().flatten())
        {
            Some(names) => names,
            None => weight_names_from_listing(&file, &layer_group),
        };
        if weight_names.is_empty() {
            continue;
        }
        let mut arrays = Vec::with_capacity(weight_names.len());
        for weight_name in &weight_names {
            let dataset_path = format!("{layer_group}/{weight_name}");
            let (shape, data) = read_f32_dataset(path, &file, &dataset_path)?;
            let name = weight_name
                .rsplit('/')
                .next()
                .unwrap_or(weight_name)
                .to_string();
            arrays.push(NamedArray { name, shape, data });
        }
        weights.push(KerasLayerWeights {
            layer: layer.clone(),
            arrays,
        });
    }
    Ok(KerasModelFile {
        keras_version,
        model_config,
        layer_names,
        weights,
    })
}

/// Layer order from `model_config` (`config.layers[].name`), which is the
/// order Keras writes `layer_names` in.
fn layer_names_from_config(path: &Path, model_config: &str) -> Result<Vec<String>, IoError> {
    let config: serde_json::Value = serde_json::from_str(model_config)
        .map_err(|e| keras_err(path, format!("'model_config' is not JSON: {}", one_line(e))))?;
    let layers = config
        .pointer("/config/layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| keras_err(path, "'model_config' has no config.layers list"))?;
    layers
        .iter()
        .map(|layer| {
            layer
                .pointer("/config/name")
                .or_else(|| layer.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| keras_err(path, "a layer in 'model_config' has no name"))
        })
        .collect()
}

/// Weight dataset paths under a layer group (relative to it), kernels
/// first and biases second as Keras orders them, then the rest by name.
fn weight_names_from_listing(file: &H5File, layer_group: &str) -> Vec<String> {
    let prefix = format!("{layer_group}/");
    let mut names: Vec<String> = file
        .dataset_names()
        .into_iter()
        .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
        .collect();
    let rank = |name: &str| {
        let leaf = name.rsplit('/').next().unwrap_or(name);
        match leaf.split(':').next().unwrap_or(leaf) {
            "kernel" => 0,
            "bias" => 1,
            _ => 2,
        }
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    names
}

/// Reads a float dataset as f32 with its shape.
fn read_f32_dataset(
    path: &Path,
    file: &H5File,
    dataset_path: &str,
) -> Result<(Vec<usize>, Vec<f32>), IoError> {
    // Names come from the file's attributes: escaped wherever echoed.
    let shown = escape_text(dataset_path);
    let read_err = |e: rust_hdf5::Hdf5Error| {
        keras_err(
            path,
            format!(
                "cannot read weight '{shown}': {}",
                escape_text(&one_line(e))
            ),
        )
    };
    let dataset = file.dataset(dataset_path).map_err(read_err)?;
    let shape = dataset.shape();
    let datatype = dataset.datatype().map_err(read_err)?;
    if let DatatypeMessage::FloatingPoint { size, .. } = datatype {
        // Checked before the read allocates: the declared shape must fit in
        // the file and, as f32 (plus the stored f64 values), in memory.
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let what = format!("weight '{shown}'");
        check_dataset_storage(path, &what, &dataset, &dims, u64::from(size))?;
        let mut factors = dims;
        factors.push(4 + if size == 4 { 0 } else { u64::from(size) });
        check_memory(path, &what, checked_product(path, &what, &factors)?)?;
    }
    let data = match datatype {
        DatatypeMessage::FloatingPoint { size: 4, .. } => {
            dataset.read_numeric_as::<f32>().map_err(read_err)?
        }
        DatatypeMessage::FloatingPoint { size: 8, .. } => dataset
            .read_numeric_as::<f64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        ref other => {
            return Err(keras_err(
                path,
                format!(
                    "weight '{shown}' is {}, expected float32",
                    describe_datatype(other)
                ),
            ));
        }
    };
    Ok((shape, data))
}
