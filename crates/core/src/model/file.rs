//! Our model file: one self-describing file with the [`ModelSpec`] and the weights.
//!
//! Layout: the magic line `DEEPINTERP-MODEL\n`, a little-endian u64 byte length, that many
//! bytes of JSON (`{"format_version", "spec", "arrays": [{"name", "shape"}]}`), then each
//! array's float32 values, little-endian, in the listed order. Written to a temp file and
//! renamed, so a crash never leaves a half-written model.

use std::io::{Read, Write};
use std::path::Path;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::{Model, ModelSpec};
use crate::error::EngineError;

const MAGIC: &[u8] = b"DEEPINTERP-MODEL\n";
/// Version of the file layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format_version: u32,
    deepinterp_version: String,
    spec: ModelSpec,
    arrays: Vec<ArrayHeader>,
}

#[derive(Serialize, Deserialize)]
struct ArrayHeader {
    name: String,
    shape: Vec<usize>,
}

/// Whether `path` starts with our magic line.
pub fn is_model_file(path: &Path) -> Result<bool, EngineError> {
    let mut file = std::fs::File::open(path).map_err(|e| EngineError::os(path, e))?;
    let mut head = [0u8; MAGIC.len()];
    let read = file.read(&mut head).map_err(|e| EngineError::os(path, e))?;
    Ok(read == MAGIC.len() && head == MAGIC)
}

/// Writes `model` to `path` atomically.
pub fn write_model<B: Backend>(path: &Path, model: &Model<B>) -> Result<(), EngineError> {
    let mut arrays = Vec::new();
    let mut payload: Vec<f32> = Vec::new();
    for (index, conv) in model.network.weight_values()?.into_iter().enumerate() {
        arrays.push(ArrayHeader {
            name: format!("conv{index}.weight"),
            shape: conv.shape,
        });
        payload.extend(conv.weight);
        arrays.push(ArrayHeader {
            name: format!("conv{index}.bias"),
            shape: vec![conv.bias.len()],
        });
        payload.extend(conv.bias);
    }
    let header = Header {
        format_version: FORMAT_VERSION,
        deepinterp_version: env!("CARGO_PKG_VERSION").to_string(),
        spec: model.spec.clone(),
        arrays,
    };
    let json = serde_json::to_vec(&header)
        .map_err(|e| EngineError::InvalidModel(format!("cannot serialise spec: {e}")))?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + json.len() + 4 * payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    for value in payload {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    write_atomically(path, &bytes)
}

/// Writes bytes to a sibling temp file, syncs it and renames it onto `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| EngineError::model_file(path, "not a file path"))?;
    let temp = directory.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(EngineError::os(path, error));
    }
    Ok(())
}

/// Reads a model written by [`write_model`].
pub fn read_model<B: Backend>(path: &Path, device: &B::Device) -> Result<Model<B>, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::os(path, e))?;
    let fail = |reason: String| EngineError::model_file(path, reason);
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| fail("not a deepinterp model file".into()))?;
    if rest.len() < 8 {
        return Err(fail("truncated model file (no header)".into()));
    }
    let json_len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
    let json_end = json_len
        .checked_add(8)
        .filter(|&end| end <= rest.len())
        .ok_or_else(|| fail("truncated model file (header cut short)".into()))?;
    let json = &rest[8..json_end];
    let header: Header =
        serde_json::from_slice(json).map_err(|e| fail(format!("unreadable model header: {e}")))?;
    if header.format_version > FORMAT_VERSION {
        return Err(fail(format!(
            "model format version {} is newer than this deepinterp understands ({FORMAT_VERSION})",
            header.format_version
        )));
    }
    let mut values = &rest[json_end..];
    let mut take = |shape: &[usize]| -> Result<Vec<f32>, EngineError> {
        // Shapes were checked against the network's before any take.
        let count: usize = shape.iter().product();
        if values.len() < 4 * count {
            return Err(fail("truncated model file (weights cut short)".into()));
        }
        let (head, tail) = values.split_at(4 * count);
        values = tail;
        Ok(head
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    };
    let expected = header.spec.network.weight_shapes();
    if header.arrays.len() != 2 * expected.len() {
        return Err(fail(format!(
            "{} arrays stored, the network needs {}",
            header.arrays.len(),
            2 * expected.len()
        )));
    }
    let mut weights = Vec::with_capacity(expected.len());
    for (pair, shape) in header.arrays.chunks_exact(2).zip(&expected) {
        if &pair[0].shape != shape || pair[1].shape != [shape[0]] {
            return Err(fail(format!(
                "array {} has shape {:?}, expected {shape:?}",
                pair[0].name, pair[0].shape
            )));
        }
        let weight = take(&pair[0].shape)?;
        let bias = take(&pair[1].shape)?;
        weights.push((weight, bias));
    }
    if !values.is_empty() {
        return Err(fail("trailing bytes after the weights".into()));
    }
    let network = header.spec.network.from_weights(weights, device)?;
    Ok(Model {
        spec: header.spec,
        network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use crate::model::{Modality, NetworkConfig, NormalizationPolicy, UNetConfig};
    use crate::sampling::Window;
    use burn::tensor::{Distribution, Tensor};

    fn small_model() -> Model<Cpu> {
        let config = UNetConfig::scaled(4, 2, 3);
        Model {
            spec: ModelSpec {
                architecture: "unet-d2-w3".into(),
                modality: Modality::TwoPhoton,
                network: NetworkConfig::Planar(config.clone()),
                window: Window::new(2, 2, 0).unwrap(),
                block: None,
                normalization: NormalizationPolicy::default(),
                training: None,
                source: "test".into(),
            },
            network: crate::model::Network::Planar(
                config.init::<Cpu>(&Default::default()).unwrap(),
            ),
        }
    }

    #[test]
    fn round_trip_keeps_spec_and_outputs_and_truncation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.dimodel");
        let model = small_model();
        write_model(&path, &model).unwrap();
        assert!(is_model_file(&path).unwrap());
        let device = Default::default();
        let back = read_model::<Cpu>(&path, &device).unwrap();
        assert_eq!(back.spec, model.spec);
        let x = Tensor::<Cpu, 4>::random([1, 4, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let before = model
            .network
            .planar()
            .unwrap()
            .forward(x.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let after = back
            .network
            .planar()
            .unwrap()
            .forward(x)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(before, after);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let error = read_model::<Cpu>(&path, &device).unwrap_err().to_string();
        assert!(
            error.contains("m.dimodel") && error.contains("truncated"),
            "{error}"
        );
    }
}
