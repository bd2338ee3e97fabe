//! Our model file: one self-describing file with the [`ModelSpec`] and the weights.
//!
//! Layout: the magic line `DEEPINTERP-MODEL\n`, a little-endian u64 byte length, that many
//! bytes of JSON (`{"format_version", "spec", "arrays": [{"name", "shape"}]}`), then each
//! array's float32 values, little-endian, in the listed order; from format version 2 on, a
//! CRC-32 (little-endian u32) of every byte before it ends the file, so a flipped byte
//! anywhere (header or weights) is found at load. Written to a temp file and renamed, so a
//! crash never leaves a half-written model.

use std::io::Read;
use std::path::Path;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use deepinterp_io::limits::{check_memory, checked_product};

use super::{Model, ModelSpec};
use crate::error::{EngineError, escape_text, first_non_finite};

const MAGIC: &[u8] = b"DEEPINTERP-MODEL\n";
/// Version of the file layout this build writes and reads.
/// Version 2 added the CRC-32 trailer; version 1 files (no trailer) still load.
pub const FORMAT_VERSION: u32 = 2;

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
    // A FIFO or a device would block or never end: only regular files are models.
    deepinterp_io::movie::require_file(path)?;
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
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    write_atomically(path, &bytes)
}

/// Writes bytes to a sibling temp file, syncs it and renames it onto `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    // One temporary-file scheme for every output: registered for the interruption handler,
    // named after the output and this process so a later run clears what a killed one left.
    Ok(deepinterp_io::output::write_file_atomically(path, bytes)?)
}

/// Reads a model written by [`write_model`] (any format version up to [`FORMAT_VERSION`]).
///
/// Order of checks, so that nothing is allocated from an unchecked header: the file's size
/// against the memory budget; the checksum (version 2); the header's network configuration
/// (bounded depth and widths, parameter memory within the budget); the declared array
/// shapes against the network's and their total against the bytes the file holds; then
/// the weights, which must all be finite.
pub fn read_model<B: Backend>(path: &Path, device: &B::Device) -> Result<Model<B>, EngineError> {
    let size = std::fs::metadata(path)
        .map_err(|e| EngineError::os(path, e))?
        .len();
    check_memory(path, "the model file", size)?;
    let bytes = std::fs::read(path).map_err(|e| EngineError::os(path, e))?;
    let fail = |reason: String| EngineError::model_file(path, reason);
    let damaged = || fail("checksum mismatch: the model file is damaged".into());
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| fail("not a deepinterp model file".into()))?;
    if rest.len() < 8 {
        return Err(fail("truncated model file (no header)".into()));
    }
    let checksum_holds = bytes.len() >= MAGIC.len() + 12 && {
        let (body, trailer) = bytes.split_at(bytes.len() - 4);
        crc32fast::hash(body).to_le_bytes() == trailer
    };
    let json_len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
    let json_end = usize::try_from(json_len)
        .ok()
        .and_then(|len| len.checked_add(8))
        .filter(|&end| end <= rest.len())
        .ok_or_else(|| {
            if checksum_holds {
                fail("truncated model file (header cut short)".into())
            } else {
                damaged()
            }
        })?;
    let header: Header = match serde_json::from_slice(&rest[8..json_end]) {
        Ok(header) => header,
        // A header that does not parse in a file whose checksum fails is damage, not a
        // format question.
        Err(_) if !checksum_holds => return Err(damaged()),
        Err(e) => return Err(fail(format!("unreadable model header: {e}"))),
    };
    if header.format_version > FORMAT_VERSION {
        // Only a file that checks out is from a newer deepinterp; otherwise a flipped
        // version digit would pass damage off as a version question.
        if !checksum_holds {
            return Err(damaged());
        }
        return Err(fail(format!(
            "model format version {} is newer than this deepinterp understands ({FORMAT_VERSION})",
            header.format_version
        )));
    }
    let trailer_len = if header.format_version >= 2 { 4 } else { 0 };
    let values_len = rest.len() - json_end;
    header
        .spec
        .network
        .validate()
        .map_err(|e| fail(e.to_string()))?;
    header
        .spec
        .window
        .validate()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(block) = &header.spec.block {
        block.validate().map_err(|e| fail(e.to_string()))?;
    }
    let parameters = header.spec.network.parameter_count() as u64;
    check_memory(
        path,
        "the network's weights",
        checked_product(path, "the network's weights", &[parameters, 4])?,
    )?;
    let expected = header.spec.network.weight_shapes();
    if header.arrays.len() != 2 * expected.len() {
        return Err(fail(format!(
            "{} arrays stored, the network needs {}",
            header.arrays.len(),
            2 * expected.len()
        )));
    }
    for (pair, shape) in header.arrays.chunks_exact(2).zip(&expected) {
        if &pair[0].shape != shape || pair[1].shape != [shape[0]] {
            return Err(fail(format!(
                "array {} has shape {:?}, expected {shape:?}",
                escape_text(&pair[0].name),
                pair[0].shape
            )));
        }
    }
    // The shapes equal the network's, whose total is bounded above: this cannot overflow.
    let declared = parameters * 4 + trailer_len as u64;
    if declared > values_len as u64 {
        return Err(if header.format_version >= 2 && !checksum_holds {
            fail("truncated model file (weights cut short, or the file is damaged)".into())
        } else {
            fail("truncated model file (weights cut short)".into())
        });
    }
    if header.format_version >= 2 && !checksum_holds {
        return Err(damaged());
    }
    if declared < values_len as u64 {
        return Err(if checksum_holds || header.format_version >= 2 {
            fail("trailing bytes after the weights".into())
        } else {
            // A version-1 reading of a file whose checksum fails: most likely a version-2
            // file whose version digit was flipped.
            damaged()
        });
    }
    let mut values = &rest[json_end..rest.len() - trailer_len];
    let mut take = |name: &str, count: usize| -> Result<Vec<f32>, EngineError> {
        let (head, tail) = values.split_at(4 * count);
        values = tail;
        let array: Vec<f32> = head
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        if let Some((index, value)) = first_non_finite(&array) {
            return Err(fail(format!(
                "array {} holds a non-finite weight ({value} at index {index}): the model is unusable",
                escape_text(name)
            )));
        }
        Ok(array)
    };
    let mut weights = Vec::with_capacity(expected.len());
    for pair in header.arrays.chunks_exact(2) {
        let weight = take(&pair[0].name, pair[0].shape.iter().product())?;
        let bias = take(&pair[1].name, pair[1].shape.iter().product())?;
        weights.push((weight, bias));
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

    /// The bytes of a model file whose header is `header` and whose weights are `values`,
    /// with a valid checksum (version 2) or none (version 1).
    fn assemble(header: &serde_json::Value, values: &[u8], with_checksum: bool) -> Vec<u8> {
        let json = serde_json::to_vec(header).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(values);
        if with_checksum {
            let checksum = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&checksum.to_le_bytes());
        }
        bytes
    }

    /// A written model's header (as JSON) and weight bytes.
    fn split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
        let rest = &bytes[MAGIC.len()..];
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        let header = serde_json::from_slice(&rest[8..8 + len]).unwrap();
        (header, rest[8 + len..rest.len() - 4].to_vec())
    }

    fn read_error(path: &Path, bytes: &[u8]) -> String {
        std::fs::write(path, bytes).unwrap();
        read_model::<Cpu>(path, &Default::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("accepted"))
    }

    #[test]
    fn any_flipped_byte_is_detected_and_the_damage_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.dimodel");
        write_model(&path, &small_model()).unwrap();
        let good = std::fs::read(&path).unwrap();
        // One in the weights and one in the header's JSON (the "source" text, which still
        // parses): the checksum is the only thing that can tell.
        let source = good.windows(6).position(|w| w == b"\"test\"").unwrap() + 2;
        for position in [good.len() - 40, source] {
            let mut damaged = good.clone();
            damaged[position] ^= 0x04;
            let error = read_error(&path, &damaged);
            assert_eq!(
                error,
                format!(
                    "{}: checksum mismatch: the model file is damaged",
                    path.display()
                ),
                "{position}"
            );
        }
        // Every position: an error naming the file, never a panic or a silent change.
        for position in (0..good.len()).step_by(3) {
            let mut damaged = good.clone();
            damaged[position] ^= 0x01;
            let error = read_error(&path, &damaged);
            assert!(
                error.starts_with(&path.display().to_string()),
                "{position}: {error}"
            );
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn version_one_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.dimodel");
        let model = small_model();
        write_model(&path, &model).unwrap();
        let (mut header, values) = split(&std::fs::read(&path).unwrap());
        header["format_version"] = 1.into();
        std::fs::write(&path, assemble(&header, &values, false)).unwrap();
        let back = read_model::<Cpu>(&path, &Default::default()).unwrap();
        assert_eq!(back.spec, model.spec);
        // ...and a truncated version-1 file is still "truncated".
        let bytes = std::fs::read(&path).unwrap();
        let error = read_error(&path, &bytes[..bytes.len() - 8]);
        assert!(error.contains("truncated"), "{error}");
    }

    #[test]
    fn non_finite_weights_are_refused_naming_the_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nan.dimodel");
        write_model(&path, &small_model()).unwrap();
        let (header, mut values) = split(&std::fs::read(&path).unwrap());
        for (value, name) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
            values[8..12].copy_from_slice(&value.to_le_bytes());
            let error = read_error(&path, &assemble(&header, &values, true));
            assert!(
                error.starts_with(&path.display().to_string())
                    && error.contains("array conv0.weight holds a non-finite weight")
                    && error.contains(name)
                    && error.contains("index 2"),
                "{error}"
            );
        }
    }

    #[test]
    fn hostile_headers_are_errors_before_any_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.dimodel");
        write_model(&path, &small_model()).unwrap();
        let (header, values) = split(&std::fs::read(&path).unwrap());
        let edit = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut header = header.clone();
            change(&mut header);
            assemble(&header, &values, true)
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                edit(&|h| h["spec"]["network"]["encoder_widths"][0] = (1u64 << 40).into()),
                "wider than",
            ),
            (
                edit(&|h| {
                    h["spec"]["network"]["encoder_widths"] = vec![1u64 << 20, 1 << 20].into();
                    h["spec"]["network"]["bottleneck_width"] = (1u64 << 20).into();
                }),
                "budget",
            ),
            (
                edit(&|h| h["spec"]["network"]["encoder_widths"] = vec![3; 40].into()),
                "deeper than",
            ),
            (
                edit(&|h| h["spec"]["network"]["encoder_kernels"][0] = vec![1u64 << 40, 3].into()),
                "larger than",
            ),
            (
                edit(&|h| h["arrays"][0]["shape"] = vec![u64::MAX, u64::MAX].into()),
                "has shape",
            ),
            (
                edit(&|h| h["spec"]["window"]["omitted_frames"] = u64::MAX.into()),
                "unreadable model header",
            ),
            (
                edit(&|h| h["arrays"] = serde_json::Value::Array(Vec::new())),
                "0 arrays stored",
            ),
            (edit(&|h| h["format_version"] = 9.into()), "newer"),
        ];
        for (bytes, expected) in cases {
            let error = read_error(&path, &bytes);
            assert!(
                error.starts_with(&path.display().to_string()) && error.contains(expected),
                "{expected}: {error}"
            );
        }
        // A header length beyond the file.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let error = read_error(&path, &bytes);
        assert!(
            error.contains("damaged") || error.contains("truncated"),
            "{error}"
        );
    }
}
