//! Export of our U-Nets as Keras 2 `.h5` model files in the original implementation's
//! layout, so a model built or trained here loads with `tf.keras.models.load_model` in the
//! original DeepInterpolation and in SpikeInterface's `deepinterpolate`.
//!
//! This module owns the translation of a [`Model`] into a [`KerasModelFile`]: the functional
//! model's `model_config` JSON exactly as Keras 2.15 serialises it (layer classes, configs
//! and default names `input_1`, `conv2d`, `conv2d_1`, `max_pooling2d`, `up_sampling2d`,
//! `concatenate`, `zero_padding3d`, ...; key order and `json.dumps` spacing included), and
//! the weights in Keras' layout (HWIO / DHWIO kernels). Writing the HDF5 file belongs to
//! `deepinterp_io::keras`. The importer ([`super::keras`]) reads the result back to the same
//! network.
//!
//! What a Keras file cannot record is lost: the window's split and omission (the file only
//! knows the channel count), the fMRI hole size, the normalisation policy and the training
//! summary. The input's spatial size is recorded when it is known: the training frame size
//! of 2D models (when the network's pooling divides it), the voxel block of 3D ones (which
//! fixes the zero padding after each upsampling).

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use deepinterp_io::keras::{KerasLayerWeights, KerasModelFile, NamedArray, write_keras_model};

use super::keras::burn_to_keras_kernel;
use super::network::{NetworkConfig, UNetShape};
use super::{Modality, Model};
use crate::error::EngineError;
use crate::probe::GRID_COLUMNS;

/// The Keras version the written layout follows.
pub const EXPORT_KERAS_VERSION: &str = "2.15.0";

/// Writes `model` as a Keras 2 `.h5` model file at `path` (atomically).
pub fn export_keras<B: Backend>(model: &Model<B>, path: &Path) -> Result<(), EngineError> {
    let file = keras_model_file(model).map_err(|e| match e {
        EngineError::InvalidModel(reason) | EngineError::Settings(reason) => {
            EngineError::model_file(path, format!("cannot export to Keras: {reason}"))
        }
        other => other,
    })?;
    write_keras_model(path, &file)?;
    Ok(())
}

/// The Keras model file of `model`: its topology as Keras 2.15's `model_config`, its layer
/// order and its weights in Keras' layout.
pub fn keras_model_file<B: Backend>(model: &Model<B>) -> Result<KerasModelFile, EngineError> {
    model.spec.network.validate()?;
    let shape = model.spec.network.shape();
    match (&model.spec.network, model.spec.modality) {
        (NetworkConfig::Volumetric(_), Modality::Fmri)
        | (NetworkConfig::Planar(_), Modality::TwoPhoton | Modality::Ephys) => {}
        (_, modality) => {
            return Err(EngineError::InvalidModel(format!(
                "a {}D network cannot be a {} model",
                shape.dims,
                modality.name()
            )));
        }
    }
    let input_sides = input_sides(model, &shape)?;
    let graph = build_graph(&shape, &input_sides)?;

    let values = model.network.weight_values()?;
    let expected = model.spec.network.weight_shapes();
    let actual: Vec<Vec<usize>> = values.iter().map(|v| v.shape.clone()).collect();
    if actual != expected {
        return Err(EngineError::InvalidModel(format!(
            "the network's weights {actual:?} do not have the shapes its spec describes {expected:?}"
        )));
    }
    let weights = graph
        .conv_names
        .iter()
        .zip(values)
        .map(|(layer, conv)| {
            let (cout, cin, kernel) = (conv.shape[0], conv.shape[1], &conv.shape[2..]);
            let spatial: usize = kernel.iter().product();
            KerasLayerWeights {
                layer: layer.clone(),
                arrays: vec![
                    NamedArray {
                        name: "kernel:0".to_string(),
                        shape: kernel.iter().copied().chain([cin, cout]).collect(),
                        data: burn_to_keras_kernel(&conv.weight, spatial, cin, cout),
                    },
                    NamedArray {
                        name: "bias:0".to_string(),
                        shape: vec![cout],
                        data: conv.bias,
                    },
                ],
            }
        })
        .collect();
    Ok(KerasModelFile {
        keras_version: Some(EXPORT_KERAS_VERSION.to_string()),
        model_config: graph.model_config(),
        layer_names: graph.layer_names,
        weights,
    })
}

/// The input's spatial sides as the InputLayer records them (`None` = any size).
///
/// 2D: the training frame size when the pooling divides it (Keras refuses other sizes, and
/// an indivisible size would not even build), else free; ephys grids are always
/// [`GRID_COLUMNS`] wide. 3D: the voxel block, which must be known because the zero padding
/// after each upsampling depends on it.
fn input_sides<B: Backend>(
    model: &Model<B>,
    shape: &UNetShape,
) -> Result<Vec<Option<usize>>, EngineError> {
    if shape.dims == 3 {
        let block = model.spec.block.ok_or_else(|| {
            EngineError::InvalidModel(
                "the fMRI model records no voxel block, which fixes the Keras input size"
                    .to_string(),
            )
        })?;
        return Ok(block.sides().iter().map(|&side| Some(side)).collect());
    }
    let multiple = shape
        .pools
        .iter()
        .fold([1, 1], |acc, pool| [acc[0] * pool[0], acc[1] * pool[1]]);
    let frame = model
        .spec
        .training
        .as_ref()
        .and_then(|training| training.frame_size)
        .filter(|&[h, w]| h > 0 && w > 0 && h % multiple[0] == 0 && w % multiple[1] == 0);
    Ok(match (frame, model.spec.modality) {
        (Some([h, w]), _) => vec![Some(h), Some(w)],
        (None, Modality::Ephys) => vec![None, Some(GRID_COLUMNS)],
        (None, _) => vec![None, None],
    })
}

/// The functional model: its layers (as Keras config JSON) in model order, and the names
/// of its convolutions in execution order (the order of [`super::Network::weight_values`]).
struct Graph {
    layers: Vec<Json>,
    layer_names: Vec<String>,
    conv_names: Vec<String>,
    /// Layers created so far per Keras name prefix, for its default names.
    counters: HashMap<&'static str, usize>,
    dims: usize,
}

fn build_graph(shape: &UNetShape, input_sides: &[Option<usize>]) -> Result<Graph, EngineError> {
    let mut graph = Graph {
        layers: Vec::new(),
        layer_names: Vec::new(),
        conv_names: Vec::new(),
        counters: HashMap::new(),
        dims: shape.dims,
    };
    // Spatial size at each pyramid level, where known: the 3D decoder needs it for its
    // zero padding, and a size that pools to nothing cannot be exported.
    let mut level_sides = vec![input_sides.to_vec()];
    for pool in &shape.pools {
        let above = level_sides.last().expect("level 0 exists");
        let below: Vec<Option<usize>> = above
            .iter()
            .zip(pool)
            .map(|(side, p)| side.map(|s| s / p))
            .collect();
        if below.contains(&Some(0)) {
            return Err(EngineError::InvalidModel(format!(
                "an input of {input_sides:?} pools to nothing through {:?}",
                shape.pools
            )));
        }
        level_sides.push(below);
    }

    let mut previous = graph.input(input_sides, shape.in_channels);
    let mut skips = Vec::with_capacity(shape.depth());
    for level in 0..shape.depth() {
        let conv = graph.conv(
            &previous,
            shape.encoder_widths[level],
            &shape.encoder_kernels[level],
            "relu",
        );
        previous = graph.max_pool(&conv, &shape.pools[level]);
        skips.push(conv);
    }
    previous = graph.conv(
        &previous,
        shape.bottleneck_width,
        &shape.bottleneck_kernel,
        "relu",
    );
    for (step, level) in (0..shape.depth()).rev().enumerate() {
        let pool = &shape.pools[level];
        let mut upsampled = graph.upsample(&previous, pool);
        if shape.dims == 3 {
            // Pooling floors, so the upsampled map can fall short of the skip by up to
            // pool - 1 voxels; the original pads them with zeros at the high end.
            let padding: Vec<usize> = level_sides[level]
                .iter()
                .zip(&level_sides[level + 1])
                .zip(pool)
                .map(|((skip, below), p)| match (skip, below) {
                    (Some(skip), Some(below)) => skip - below * p,
                    _ => 0,
                })
                .collect();
            if padding.iter().any(|&pad| pad > 0) {
                upsampled = graph.zero_pad_high_end(&upsampled, &padding);
            }
        }
        let joined = graph.concatenate(&upsampled, &skips[level]);
        previous = graph.conv(
            &joined,
            shape.encoder_widths[level],
            &shape.decoder_kernels[step],
            "relu",
        );
    }
    graph.conv(&previous, 1, &vec![1; shape.dims], "linear");
    Ok(graph)
}

impl Graph {
    /// Keras' default name for the next layer with this prefix: `conv2d`, `conv2d_1`, ...
    /// (`input_1`, `input_2`, ... for inputs, which Keras counts from one).
    fn next_name(&mut self, prefix: &'static str) -> String {
        let count = self.counters.entry(prefix).or_insert(0);
        let index = *count + usize::from(prefix == "input");
        *count += 1;
        if index == 0 {
            prefix.to_string()
        } else {
            format!("{prefix}_{index}")
        }
    }

    /// Appends a layer reading `inbound` and returns its name.
    fn push(
        &mut self,
        class: String,
        name: String,
        config: Vec<(&'static str, Json)>,
        inbound: &[&str],
    ) -> String {
        let nodes = if inbound.is_empty() {
            Json::List(Vec::new())
        } else {
            let calls = inbound
                .iter()
                .map(|source| {
                    Json::List(vec![
                        Json::str(source),
                        Json::Int(0),
                        Json::Int(0),
                        Json::Object(Vec::new()),
                    ])
                })
                .collect();
            Json::List(vec![Json::List(calls)])
        };
        self.layers.push(Json::Object(vec![
            ("class_name", Json::Str(class)),
            ("config", Json::Object(config)),
            ("name", Json::str(&name)),
            ("inbound_nodes", nodes),
        ]));
        self.layer_names.push(name.clone());
        name
    }

    /// The config entries every layer but the input starts with.
    fn common(name: &str) -> Vec<(&'static str, Json)> {
        vec![
            ("name", Json::str(name)),
            ("trainable", Json::Bool(true)),
            ("dtype", Json::str("float32")),
        ]
    }

    fn input(&mut self, sides: &[Option<usize>], channels: usize) -> String {
        let name = self.next_name("input");
        let batch_shape = std::iter::once(Json::Null)
            .chain(sides.iter().map(|side| side.map_or(Json::Null, Json::size)))
            .chain(std::iter::once(Json::size(channels)))
            .collect();
        let config = vec![
            ("batch_input_shape", Json::List(batch_shape)),
            ("dtype", Json::str("float32")),
            ("sparse", Json::Bool(false)),
            ("ragged", Json::Bool(false)),
            ("name", Json::str(&name)),
        ];
        self.push("InputLayer".to_string(), name, config, &[])
    }

    fn conv(&mut self, source: &str, filters: usize, kernel: &[usize], activation: &str) -> String {
        let prefix = if self.dims == 2 { "conv2d" } else { "conv3d" };
        let name = self.next_name(prefix);
        let ones = Json::sizes(&vec![1; self.dims]);
        let initializer = |class: &str, config: Vec<(&'static str, Json)>| {
            Json::Object(vec![
                ("module", Json::str("keras.initializers")),
                ("class_name", Json::str(class)),
                ("config", Json::Object(config)),
                ("registered_name", Json::Null),
            ])
        };
        let mut config = Self::common(&name);
        config.extend([
            ("filters", Json::size(filters)),
            ("kernel_size", Json::sizes(kernel)),
            ("strides", ones.clone()),
            ("padding", Json::str("same")),
            ("data_format", Json::str("channels_last")),
            ("dilation_rate", ones),
            ("groups", Json::Int(1)),
            ("activation", Json::str(activation)),
            ("use_bias", Json::Bool(true)),
            (
                "kernel_initializer",
                initializer("GlorotUniform", vec![("seed", Json::Null)]),
            ),
            ("bias_initializer", initializer("Zeros", Vec::new())),
            ("kernel_regularizer", Json::Null),
            ("bias_regularizer", Json::Null),
            ("activity_regularizer", Json::Null),
            ("kernel_constraint", Json::Null),
            ("bias_constraint", Json::Null),
        ]);
        let class = format!("Conv{}D", self.dims);
        let name = self.push(class, name, config, &[source]);
        self.conv_names.push(name.clone());
        name
    }

    fn max_pool(&mut self, source: &str, pool: &[usize]) -> String {
        let prefix = if self.dims == 2 {
            "max_pooling2d"
        } else {
            "max_pooling3d"
        };
        let name = self.next_name(prefix);
        let mut config = Self::common(&name);
        config.extend([
            ("pool_size", Json::sizes(pool)),
            ("padding", Json::str("valid")),
            ("strides", Json::sizes(pool)),
            ("data_format", Json::str("channels_last")),
        ]);
        let class = format!("MaxPooling{}D", self.dims);
        self.push(class, name, config, &[source])
    }

    fn upsample(&mut self, source: &str, size: &[usize]) -> String {
        let prefix = if self.dims == 2 {
            "up_sampling2d"
        } else {
            "up_sampling3d"
        };
        let name = self.next_name(prefix);
        let mut config = Self::common(&name);
        config.extend([
            ("size", Json::sizes(size)),
            ("data_format", Json::str("channels_last")),
        ]);
        // Only UpSampling2D has (and serialises) an interpolation.
        if self.dims == 2 {
            config.push(("interpolation", Json::str("nearest")));
        }
        let class = format!("UpSampling{}D", self.dims);
        self.push(class, name, config, &[source])
    }

    /// `ZeroPadding3D(((0, px), (0, py), (0, pz)))`.
    fn zero_pad_high_end(&mut self, source: &str, padding: &[usize]) -> String {
        let name = self.next_name("zero_padding3d");
        let mut config = Self::common(&name);
        let sides = padding.iter().map(|&pad| Json::sizes(&[0, pad])).collect();
        config.extend([
            ("padding", Json::List(sides)),
            ("data_format", Json::str("channels_last")),
        ]);
        self.push("ZeroPadding3D".to_string(), name, config, &[source])
    }

    /// `Concatenate(axis=-1)([upsampled, skip])`, the original's order.
    fn concatenate(&mut self, upsampled: &str, skip: &str) -> String {
        let name = self.next_name("concatenate");
        let mut config = Self::common(&name);
        config.push(("axis", Json::Int(-1)));
        self.push("Concatenate".to_string(), name, config, &[upsampled, skip])
    }

    /// The root `model_config` JSON text.
    fn model_config(&self) -> String {
        let first = self.layer_names.first().cloned().unwrap_or_default();
        let last = self.layer_names.last().cloned().unwrap_or_default();
        let endpoint = |name: String| {
            Json::List(vec![Json::List(vec![
                Json::Str(name),
                Json::Int(0),
                Json::Int(0),
            ])])
        };
        let root = Json::Object(vec![
            ("class_name", Json::str("Functional")),
            (
                "config",
                Json::Object(vec![
                    ("name", Json::str("model")),
                    ("trainable", Json::Bool(true)),
                    ("layers", Json::List(self.layers.clone())),
                    ("input_layers", endpoint(first)),
                    ("output_layers", endpoint(last)),
                ]),
            ),
        ]);
        let mut text = String::new();
        root.write(&mut text);
        text
    }
}

/// JSON with keys in insertion order, printed as Python's `json.dumps` prints it (`", "`
/// and `": "` separators), which is how Keras writes `model_config`. (serde_json's map
/// would sort the keys.)
#[derive(Clone, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    fn str(text: &str) -> Self {
        Json::Str(text.to_string())
    }

    fn size(value: usize) -> Self {
        Json::Int(i64::try_from(value).expect("layer sizes fit in i64"))
    }

    fn sizes(values: &[usize]) -> Self {
        Json::List(values.iter().map(|&v| Json::size(v)).collect())
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Json::Int(value) => out.push_str(&value.to_string()),
            Json::Str(text) => out.push_str(&quote(text)),
            Json::List(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&quote(key));
                    out.push_str(": ");
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string literal (our names are ASCII, where serde_json and Python agree).
fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UNetConfig, VolumeUNetConfig};

    fn layer_names(shape: &UNetShape, sides: &[Option<usize>]) -> Vec<String> {
        build_graph(shape, sides).unwrap().layer_names
    }

    #[test]
    fn layers_get_keras_default_names_in_model_order() {
        let planar = NetworkConfig::Planar(UNetConfig::scaled(6, 2, 4)).shape();
        assert_eq!(
            layer_names(&planar, &[None, None]),
            [
                "input_1",
                "conv2d",
                "max_pooling2d",
                "conv2d_1",
                "max_pooling2d_1",
                "conv2d_2",
                "up_sampling2d",
                "concatenate",
                "conv2d_3",
                "up_sampling2d_1",
                "concatenate_1",
                "conv2d_4",
                "conv2d_5",
            ]
        );
        // 7 → 3 → 1: both upsamplings fall one voxel short and get padded; 8 → 4 → 2 needs
        // no padding at all.
        let volume = NetworkConfig::Volumetric(VolumeUNetConfig::scaled(5, 2, 8)).shape();
        let names = layer_names(&volume, &[Some(7); 3]);
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("zero_padding3d"))
                .count(),
            2
        );
        assert_eq!(names[7], "zero_padding3d");
        let names = layer_names(&volume, &[Some(8); 3]);
        assert!(!names.iter().any(|n| n.starts_with("zero_padding3d")));
        assert!(build_graph(&volume, &[Some(3); 3]).is_err());
    }

    #[test]
    fn json_is_printed_like_python_json_dumps() {
        let value = Json::Object(vec![
            (
                "a",
                Json::List(vec![Json::Null, Json::Int(-1), Json::Bool(false)]),
            ),
            ("b", Json::Object(Vec::new())),
            ("c", Json::str("x\"y")),
        ]);
        let mut text = String::new();
        value.write(&mut text);
        assert_eq!(text, r#"{"a": [null, -1, false], "b": {}, "c": "x\"y"}"#);
    }
}
