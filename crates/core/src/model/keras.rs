//! Import of the original DeepInterpolation Keras `.h5` model files.
//!
//! The importer follows the `model_config` topology (layer classes and inbound nodes), not
//! layer names, which depend on the Keras version and session. It recognises the U-Net shape
//! (conv → pool per level, bottleneck, upsample → concat[upsampled, skip] → conv per level,
//! final linear 1×1 conv) in 2D (two-photon, ephys) and in 3D (fMRI, whose upsampled maps are
//! zero-padded by one plane before the concatenation), and maps HWIO / DHWIO kernels to burn's
//! OIHW / OIDHW layouts. Optimizer state in the file is ignored. The way back (our networks
//! written as such files) is [`super::keras_export`].

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use deepinterp_io::keras::{KerasModelFile, read_keras_model};
use serde_json::Value;

use super::network::{Network, NetworkConfig, UNetShape};
use crate::error::{EngineError, escape_text, first_non_finite};

/// A Keras U-Net: its configuration and its weights in our layout.
pub struct ImportedNetwork<B: Backend> {
    /// The recovered configuration.
    pub config: NetworkConfig,
    /// The network with the file's weights.
    pub network: Network<B>,
    /// Spatial input size recorded in the file (`None` where it is free): informative for
    /// the fully convolutional 2D networks, the block size of the 3D ones.
    pub recorded_input_size: Option<Vec<usize>>,
}

#[derive(Debug)]
struct Layer {
    class: String,
    name: String,
    config: Value,
    inbound: Vec<String>,
}

/// Reads a Keras `.h5` U-Net of the original implementation.
pub fn import_keras_unet<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<ImportedNetwork<B>, EngineError> {
    let file = read_keras_model(path)?;
    let fail = |reason: String| EngineError::model_file(path, reason);
    // The reasons quote layer names and classes from the file: no control bytes.
    let layers = parse_layers(&file).map_err(|reason| fail(escape_text(&reason)))?;
    let plan = recover_unet(&layers).map_err(|reason| fail(escape_text(&reason)))?;
    let weights: HashMap<&str, &deepinterp_io::keras::KerasLayerWeights> =
        file.weights.iter().map(|w| (w.layer.as_str(), w)).collect();
    let config = plan.shape.to_config().map_err(|e| fail(e.to_string()))?;
    let mut values = Vec::with_capacity(plan.conv_names.len());
    for (name, shape) in plan.conv_names.iter().zip(config.weight_shapes()) {
        let layer = weights
            .get(name.as_str())
            .ok_or_else(|| fail(format!("no weights for layer '{}'", escape_text(name))))?;
        let find = |suffix: &str| {
            layer
                .arrays
                .iter()
                .find(|a| {
                    a.name
                        .rsplit('/')
                        .next()
                        .unwrap_or(&a.name)
                        .starts_with(suffix)
                })
                .ok_or_else(|| {
                    fail(format!(
                        "layer '{}' has no {suffix} weights",
                        escape_text(name)
                    ))
                })
        };
        let kernel_array = find("kernel")?;
        let bias_array = find("bias")?;
        // burn's [out, in, k...] is Keras' [k..., in, out].
        let (cout, cin, spatial) = (shape[0], shape[1], &shape[2..]);
        let keras_shape: Vec<usize> = spatial.iter().copied().chain([cin, cout]).collect();
        if kernel_array.shape != keras_shape || bias_array.shape != [cout] {
            return Err(fail(format!(
                "layer '{}': kernel {:?} / bias {:?}, expected {keras_shape:?} / [{cout}]",
                escape_text(name),
                kernel_array.shape,
                bias_array.shape
            )));
        }
        // A NaN or infinite weight makes every output NaN: refuse the file at load.
        for array in [kernel_array, bias_array] {
            if let Some((index, value)) = first_non_finite(&array.data) {
                return Err(fail(format!(
                    "layer '{}', array '{}' holds a non-finite weight ({value} at index {index}): the model is unusable",
                    escape_text(name),
                    escape_text(&array.name)
                )));
            }
        }
        let spatial_len = spatial.iter().product();
        values.push((
            keras_to_burn_kernel(&kernel_array.data, spatial_len, cin, cout),
            bias_array.data.clone(),
        ));
    }
    let network = config.from_weights(values, device)?;
    Ok(ImportedNetwork {
        config,
        network,
        recorded_input_size: plan.recorded_input_size,
    })
}

/// Rearranges a Keras kernel `(k..., in, out)` (HWIO, DHWIO) into burn's `(out, in, k...)`;
/// `spatial` is the product of the kernel's sides.
pub fn keras_to_burn_kernel(data: &[f32], spatial: usize, cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for position in 0..spatial {
        for i in 0..cin {
            let src = (position * cin + i) * cout;
            for o in 0..cout {
                out[(o * cin + i) * spatial + position] = data[src + o];
            }
        }
    }
    out
}

/// Rearranges a burn kernel `(out, in, k...)` into Keras' `(k..., in, out)` (HWIO, DHWIO):
/// the inverse of [`keras_to_burn_kernel`]; `spatial` is the product of the kernel's sides.
pub fn burn_to_keras_kernel(data: &[f32], spatial: usize, cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for o in 0..cout {
        for i in 0..cin {
            let src = (o * cin + i) * spatial;
            for position in 0..spatial {
                out[(position * cin + i) * cout + o] = data[src + position];
            }
        }
    }
    out
}

fn parse_layers(file: &KerasModelFile) -> Result<Vec<Layer>, String> {
    let config: Value = serde_json::from_str(&file.model_config)
        .map_err(|e| format!("model_config is not valid JSON: {e}"))?;
    let list = config
        .pointer("/config/layers")
        .and_then(Value::as_array)
        .ok_or("model_config has no config.layers list")?;
    list.iter()
        .map(|layer| {
            let class = layer["class_name"].as_str().unwrap_or_default().to_string();
            let name = layer["name"]
                .as_str()
                .or_else(|| layer.pointer("/config/name").and_then(Value::as_str))
                .ok_or("a layer has no name")?
                .to_string();
            Ok(Layer {
                class,
                name,
                config: layer["config"].clone(),
                inbound: inbound_names(&layer["inbound_nodes"]),
            })
        })
        .collect()
}

/// Inbound layer names of Keras 2 (`[[[name, 0, 0, {}], ...]]`) and Keras 3
/// (`[{"args": [{"config": {"keras_history": [name, 0, 0]}}]}]`) configs.
fn inbound_names(nodes: &Value) -> Vec<String> {
    let mut names = Vec::new();
    collect_inbound(nodes, &mut names);
    names
}

fn collect_inbound(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            if let (Some(Value::String(name)), Some(Value::Number(_))) =
                (items.first(), items.get(1))
            {
                names.push(name.clone());
            } else {
                items.iter().for_each(|item| collect_inbound(item, names));
            }
        }
        Value::Object(map) => {
            if let Some(history) = map.get("keras_history") {
                collect_inbound(history, names);
            } else {
                map.values().for_each(|item| collect_inbound(item, names));
            }
        }
        _ => {}
    }
}

/// The U-Net read from a layer graph, in either dimensionality (kernels and pools have one
/// side per spatial axis).
struct UNetPlan {
    shape: UNetShape,
    conv_names: Vec<String>,
    recorded_input_size: Option<Vec<usize>>,
}

/// A list of `n` integers (a kernel, pool, stride or size).
fn sides(value: &Value, n: usize, what: &str, layer: &str) -> Result<Vec<usize>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("layer '{layer}': {what} is not a list"))?;
    let numbers: Vec<usize> = list
        .iter()
        .filter_map(|v| v.as_u64().map(|n| n as usize))
        .collect();
    if numbers.len() == n && list.len() == n {
        Ok(numbers)
    } else {
        Err(format!(
            "layer '{layer}': {what} {value} is not {n} integers"
        ))
    }
}

/// Layer class names of a U-Net of `dims` spatial dimensions.
struct Classes {
    conv: String,
    pool: String,
    up: String,
    pad: String,
}

impl Classes {
    fn new(dims: usize) -> Self {
        Self {
            conv: format!("Conv{dims}D"),
            pool: format!("MaxPooling{dims}D"),
            up: format!("UpSampling{dims}D"),
            pad: format!("ZeroPadding{dims}D"),
        }
    }
}

/// Recovers the U-Net plan from the layer graph.
fn recover_unet(layers: &[Layer]) -> Result<UNetPlan, String> {
    let by_name: HashMap<&str, &Layer> = layers.iter().map(|l| (l.name.as_str(), l)).collect();
    let single_input = |layer: &Layer| -> Result<&Layer, String> {
        match layer.inbound.as_slice() {
            [one] => by_name
                .get(one.as_str())
                .copied()
                .ok_or_else(|| format!("layer '{}' reads unknown layer '{one}'", layer.name)),
            other => Err(format!(
                "layer '{}' has {} inputs, expected 1",
                layer.name,
                other.len()
            )),
        }
    };
    let input = layers
        .iter()
        .find(|l| l.class == "InputLayer")
        .ok_or("no InputLayer in model_config")?;
    let shape = input
        .config
        .get("batch_input_shape")
        .or_else(|| input.config.get("batch_shape"))
        .and_then(Value::as_array)
        .ok_or("InputLayer has no batch_input_shape")?;
    if shape.len() != 4 && shape.len() != 5 {
        return Err(format!(
            "input has {} dimensions; only 2D (batch, height, width, frames) and 3D (batch, x, y, z, time) U-Nets are supported",
            shape.len()
        ));
    }
    let dims = shape.len() - 2;
    let classes = Classes::new(dims);
    let in_channels = shape[dims + 1]
        .as_u64()
        .ok_or("input channel count is not fixed")? as usize;
    let recorded_input_size: Option<Vec<usize>> = shape[1..=dims]
        .iter()
        .map(|side| side.as_u64().map(|side| side as usize))
        .collect();

    let mut encoder: Vec<(&Layer, Vec<usize>)> = Vec::new(); // (conv, pool below it)
    let mut bottleneck: Option<&Layer> = None;
    let mut decoder: Vec<&Layer> = Vec::new();
    let mut final_conv: Option<&Layer> = None;
    for layer in layers {
        let class = layer.class.as_str();
        if class == "InputLayer" {
        } else if class == classes.pool {
            let source = single_input(layer)?;
            if source.class != classes.conv {
                return Err(format!(
                    "pooling '{}' does not follow a convolution",
                    layer.name
                ));
            }
            let pool = sides(&layer.config["pool_size"], dims, "pool_size", &layer.name)?;
            let strides = &layer.config["strides"];
            if !strides.is_null() && sides(strides, dims, "strides", &layer.name)? != pool {
                return Err(format!(
                    "pooling '{}' has strides unlike its size",
                    layer.name
                ));
            }
            encoder.push((source, pool));
        } else if class == classes.conv {
            let source = single_input(layer)?;
            let strides = sides(&layer.config["strides"], dims, "strides", &layer.name)?;
            let dilated = match layer.config.get("dilation_rate") {
                Some(d) => sides(d, dims, "dilation_rate", &layer.name)?
                    .iter()
                    .any(|&d| d != 1),
                None => false,
            };
            if strides.iter().any(|&s| s != 1) || dilated || layer.config["padding"] != "same" {
                return Err(format!(
                    "conv '{}' is not a stride-1, undilated, 'same' convolution",
                    layer.name
                ));
            }
            let source_class = source.class.as_str();
            if source_class == "Concatenate" {
                decoder.push(layer);
            } else if source_class == classes.conv && !decoder.is_empty() {
                final_conv = Some(layer);
            } else if source_class != "InputLayer" && source_class != classes.pool {
                // Encoder convs and the bottleneck follow the input or a pool; they are
                // settled once the pools are known.
                return Err(format!(
                    "conv '{}' follows an unexpected {source_class}",
                    layer.name
                ));
            }
        } else if class == classes.up {
            let source = single_input(layer)?;
            if decoder.is_empty() && bottleneck.is_none() {
                bottleneck = Some(source);
            }
            let interpolation = layer.config["interpolation"].as_str().unwrap_or("nearest");
            if interpolation != "nearest" {
                return Err(format!("upsampling '{}' is {interpolation}", layer.name));
            }
        } else if class == classes.pad {
            // Only the fMRI network's one plane of zeros at the high end after upsampling.
            let source = single_input(layer)?;
            let padding = layer.config["padding"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let high_end_only = padding.len() == dims
                && padding
                    .iter()
                    .all(|side| sides(side, 2, "padding", &layer.name).is_ok_and(|p| p[0] == 0));
            if source.class != classes.up || !high_end_only {
                return Err(format!(
                    "zero padding '{}' is not a high-end padding of an upsampled map",
                    layer.name
                ));
            }
        } else if class == "Concatenate" {
            let [up, skip] = layer.inbound.as_slice() else {
                return Err(format!(
                    "concatenate '{}' does not join two layers",
                    layer.name
                ));
            };
            let mut up = *by_name
                .get(up.as_str())
                .ok_or("unknown concatenate input")?;
            if up.class == classes.pad {
                up = single_input(up)?;
            }
            let skip = by_name
                .get(skip.as_str())
                .ok_or("unknown concatenate input")?;
            if up.class != classes.up || skip.class != classes.conv {
                return Err(format!(
                    "concatenate '{}' is not [upsampled, skip] (got [{}, {}])",
                    layer.name, up.class, skip.class
                ));
            }
            let level = encoder.len().checked_sub(decoder.len() + 1).ok_or(format!(
                "concatenate '{}' has no matching encoder level",
                layer.name
            ))?;
            let (expected_skip, pool) = &encoder[level];
            let size = sides(&up.config["size"], dims, "size", &up.name)?;
            if expected_skip.name != skip.name || &size != pool {
                return Err(format!(
                    "concatenate '{}' joins '{}' (×{size:?}) but level {level} is '{}' (pool {pool:?})",
                    layer.name, skip.name, expected_skip.name
                ));
            }
        } else {
            return Err(format!(
                "layer '{}' ({class}) is not part of the DeepInterpolation U-Nets",
                layer.name
            ));
        }
    }
    let bottleneck = bottleneck.ok_or("no bottleneck convolution found")?;
    let final_conv = final_conv.ok_or("no final 1x1 convolution found")?;
    if decoder.len() != encoder.len() || encoder.is_empty() {
        return Err(format!(
            "{} encoder levels but {} decoder levels",
            encoder.len(),
            decoder.len()
        ));
    }
    let conv_spec = |layer: &Layer| -> Result<(usize, Vec<usize>, String), String> {
        let filters = layer.config["filters"]
            .as_u64()
            .ok_or_else(|| format!("conv '{}' has no filters", layer.name))?
            as usize;
        let kernel = sides(
            &layer.config["kernel_size"],
            dims,
            "kernel_size",
            &layer.name,
        )?;
        let activation = layer.config["activation"]
            .as_str()
            .unwrap_or("linear")
            .to_string();
        Ok((filters, kernel, activation))
    };
    let mut conv_names = Vec::new();
    let mut encoder_widths = Vec::new();
    let mut encoder_kernels = Vec::new();
    let mut pools = Vec::new();
    let mut decoder_kernels = Vec::new();
    for (layer, pool) in &encoder {
        let (filters, kernel, activation) = conv_spec(layer)?;
        expect_activation(layer, &activation, "relu")?;
        encoder_widths.push(filters);
        encoder_kernels.push(kernel);
        pools.push(pool.clone());
        conv_names.push(layer.name.clone());
    }
    let (bottleneck_width, bottleneck_kernel, activation) = conv_spec(bottleneck)?;
    expect_activation(bottleneck, &activation, "relu")?;
    conv_names.push(bottleneck.name.clone());
    for (index, layer) in decoder.iter().enumerate() {
        let (filters, kernel, activation) = conv_spec(layer)?;
        expect_activation(layer, &activation, "relu")?;
        if filters != encoder_widths[encoder.len() - 1 - index] {
            return Err(format!(
                "decoder conv '{}' width differs from its level",
                layer.name
            ));
        }
        decoder_kernels.push(kernel);
        conv_names.push(layer.name.clone());
    }
    let (filters, kernel, activation) = conv_spec(final_conv)?;
    expect_activation(final_conv, &activation, "linear")?;
    if filters != 1 || kernel.iter().any(|&side| side != 1) {
        return Err(format!(
            "final conv '{}' is not a 1x1 conv to one channel",
            final_conv.name
        ));
    }
    conv_names.push(final_conv.name.clone());
    let total_convs = layers.iter().filter(|l| l.class == classes.conv).count();
    if total_convs != conv_names.len() {
        return Err(format!(
            "{total_convs} convolutions, of which only {} fit the U-Net shape",
            conv_names.len()
        ));
    }
    Ok(UNetPlan {
        shape: UNetShape {
            dims,
            in_channels,
            encoder_widths,
            bottleneck_width,
            encoder_kernels,
            bottleneck_kernel,
            decoder_kernels,
            pools,
        },
        conv_names,
        recorded_input_size,
    })
}

fn expect_activation(layer: &Layer, activation: &str, expected: &str) -> Result<(), String> {
    if activation == expected {
        Ok(())
    } else {
        Err(format!(
            "conv '{}' has activation {activation}, expected {expected}",
            layer.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_transpose_moves_each_weight() {
        // (kh=1, kw=2, in=2, out=3): value encodes (x, i, o).
        let hwio: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let oihw = keras_to_burn_kernel(&hwio, 2, 2, 3);
        // out[o][i][0][x] = hwio[((0*2 + x)*2 + i)*3 + o]
        for o in 0..3 {
            for i in 0..2 {
                for x in 0..2 {
                    assert_eq!(oihw[(o * 2 + i) * 2 + x], hwio[(x * 2 + i) * 3 + o]);
                }
            }
        }
    }

    #[test]
    fn kernel_transposes_are_inverse() {
        // A 2×1×3 kernel (6 positions), in=4, out=5: every value distinct.
        let (spatial, cin, cout) = (6, 4, 5);
        let keras: Vec<f32> = (0..spatial * cin * cout).map(|v| v as f32).collect();
        let burn = keras_to_burn_kernel(&keras, spatial, cin, cout);
        assert_ne!(burn, keras);
        assert_eq!(burn_to_keras_kernel(&burn, spatial, cin, cout), keras);
        let burn: Vec<f32> = (0..spatial * cin * cout).map(|v| -(v as f32)).collect();
        let keras = burn_to_keras_kernel(&burn, spatial, cin, cout);
        assert_eq!(keras_to_burn_kernel(&keras, spatial, cin, cout), burn);
    }

    #[test]
    fn inbound_names_read_keras2_and_keras3_forms() {
        let keras2: Value =
            serde_json::from_str(r#"[[["up", 0, 0, {}], ["skip", 0, 0, {}]]]"#).unwrap();
        assert_eq!(inbound_names(&keras2), vec!["up", "skip"]);
        let keras3: Value = serde_json::from_str(
            r#"[{"args": [[{"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}}]], "kwargs": {}}]"#,
        )
        .unwrap();
        assert_eq!(inbound_names(&keras3), vec!["a"]);
    }
}
