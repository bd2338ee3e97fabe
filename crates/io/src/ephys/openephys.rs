//! Open Ephys binary recordings: the `structure.oebin` JSON that describes a
//! recording's continuous streams, finding the stream a path means, and what
//! the stream's entry says about its `continuous.dat` (int16 little-endian,
//! interleaved `[sample][channel]`).
//!
//! Neural channels: a channel is neural unless its `channel_name` starts with
//! `ADC` or `AUX` (analog inputs and headstage accelerometers) or it has
//! `units` other than µV (`uV`); channels without names or units are neural.
//! `bit_volts` (µV per bit for µV channels) gives `microvolts_per_bit`. The
//! format stores no positions.
//!
//! The standard layout keeps a stream's data at
//! `<recording>/continuous/<folder_name>/continuous.dat`. An entry written by
//! this crate (see `create_ephys_like`) instead names its data file, in the
//! folder of its `structure.oebin`, under `deepinterp_data_file`; a
//! `deepinterp_dtype` of `float32` makes that file float32.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::interleaved::{InterleavedReader, count_samples};
use super::{EphysFormat, EphysInfo, parent_dir};
use crate::error::{IoError, escape_text, one_line};
use crate::movie::Dtype;

/// The file describing an Open Ephys binary recording.
pub(crate) const OEBIN_NAME: &str = "structure.oebin";
/// The data file of a stream in the standard layout.
pub(crate) const DATA_FILE_NAME: &str = "continuous.dat";
/// Entry key naming the data file of an output written by this crate.
pub(crate) const DATA_FILE_KEY: &str = "deepinterp_data_file";
/// Entry key marking a float32 data file written by this crate.
pub(crate) const DTYPE_KEY: &str = "deepinterp_dtype";

/// One continuous stream of a recording and the files that hold it.
#[derive(Clone, Debug)]
pub(crate) struct StreamLocation {
    pub(crate) oebin: PathBuf,
    /// The whole parsed `structure.oebin`.
    pub(crate) document: Value,
    /// Index of the stream in `document["continuous"]`.
    pub(crate) stream_index: usize,
    pub(crate) data: PathBuf,
}

impl StreamLocation {
    pub(crate) fn entry(&self) -> &Value {
        &self.document["continuous"][self.stream_index]
    }
}

/// Reads and parses a `structure.oebin`.
pub(crate) fn read_oebin(oebin: &Path) -> Result<Value, IoError> {
    let bytes = super::read_header_file(oebin, OEBIN_NAME)?;
    let document: Value = serde_json::from_slice(&bytes).map_err(|e| IoError::Recording {
        path: oebin.to_path_buf(),
        detail: format!("not valid JSON: {}", one_line(e)),
    })?;
    if !document.is_object() {
        return Err(IoError::Recording {
            path: oebin.to_path_buf(),
            detail: "not a structure.oebin: the JSON is not an object".to_string(),
        });
    }
    Ok(document)
}

/// The continuous stream entries of a parsed `structure.oebin`.
pub(crate) fn streams<'a>(oebin: &Path, document: &'a Value) -> Result<&'a [Value], IoError> {
    match document.get("continuous").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => Ok(list),
        _ => Err(IoError::Recording {
            path: oebin.to_path_buf(),
            detail: "lists no continuous streams".to_string(),
        }),
    }
}

/// The `folder_name` of a stream entry, without its trailing `/`.
fn folder_name(entry: &Value) -> Option<&str> {
    entry
        .get("folder_name")
        .and_then(Value::as_str)
        .map(|name| name.trim_end_matches(['/', '\\']))
}

/// Checks a path taken from a `structure.oebin` field before it is joined
/// onto the recording folder: it must stay inside that folder (no absolute
/// path, drive or `..`), and `single_name` fields must be a bare file name.
fn relative_inside(
    oebin: &Path,
    field: &str,
    value: &str,
    single_name: bool,
) -> Result<PathBuf, IoError> {
    use std::path::Component;
    let refuse = |why: &str| IoError::Recording {
        path: oebin.to_path_buf(),
        detail: format!(
            "{field} '{}' {why}: it must name a place inside the recording folder",
            escape_text(value)
        ),
    };
    if value.is_empty() {
        return Err(refuse("is empty"));
    }
    // The joined path is echoed in later messages, which must not carry
    // control characters; no real stream folder has any.
    if value.chars().any(char::is_control) {
        return Err(refuse("contains control characters"));
    }
    // Both separators count, whatever this system uses: a file written on
    // Windows names its folders with `\`.
    let relative = PathBuf::from(value.replace('\\', "/"));
    let mut parts = 0;
    for component in relative.components() {
        match component {
            Component::Normal(_) => parts += 1,
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("is an absolute path"));
            }
        }
    }
    if parts == 0 {
        return Err(refuse("names no file or folder"));
    }
    if single_name && parts != 1 {
        return Err(refuse("is not a plain file name"));
    }
    Ok(relative)
}

/// The data file of a stream entry.
fn data_path(oebin: &Path, entry: &Value) -> Result<PathBuf, IoError> {
    let dir = parent_dir(oebin);
    if let Some(file) = entry.get(DATA_FILE_KEY).and_then(Value::as_str) {
        return Ok(dir.join(relative_inside(oebin, DATA_FILE_KEY, file, true)?));
    }
    match folder_name(entry) {
        Some(folder) => Ok(dir
            .join("continuous")
            .join(relative_inside(oebin, "folder_name", folder, false)?)
            .join(DATA_FILE_NAME)),
        None => Err(IoError::Recording {
            path: oebin.to_path_buf(),
            detail: "a continuous stream has no folder_name".to_string(),
        }),
    }
}

/// The first continuous stream of the recording `oebin` describes.
pub(crate) fn locate_from_oebin(oebin: &Path) -> Result<StreamLocation, IoError> {
    let document = read_oebin(oebin)?;
    let data = data_path(oebin, &streams(oebin, &document)?[0])?;
    Ok(StreamLocation {
        oebin: oebin.to_path_buf(),
        document,
        stream_index: 0,
        data,
    })
}

/// The stream a data file belongs to, if it is part of an Open Ephys binary
/// recording: a file named by a `structure.oebin` beside it (written by this
/// crate), or `<rec>/continuous/<stream>/X.dat` with `<rec>/structure.oebin`.
pub(crate) fn locate_from_data_file(data: &Path) -> Result<Option<StreamLocation>, IoError> {
    let dir = parent_dir(data);
    let file_name = data.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let beside = dir.join(OEBIN_NAME);
    if beside.is_file() {
        let document = read_oebin(&beside)?;
        let found = document
            .get("continuous")
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter().position(|entry| {
                    entry.get(DATA_FILE_KEY).and_then(Value::as_str) == Some(file_name)
                })
            });
        if let Some(stream_index) = found {
            return Ok(Some(StreamLocation {
                oebin: beside,
                document,
                stream_index,
                data: data.to_path_buf(),
            }));
        }
    }
    let stream_folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let continuous_dir = parent_dir(&dir);
    let in_continuous = continuous_dir.file_name().and_then(|n| n.to_str()) == Some("continuous");
    let oebin = parent_dir(&continuous_dir).join(OEBIN_NAME);
    if !in_continuous || !oebin.is_file() {
        return Ok(None);
    }
    let document = read_oebin(&oebin)?;
    let list = streams(&oebin, &document)?;
    let Some(stream_index) = list
        .iter()
        .position(|entry| folder_name(entry) == Some(stream_folder))
    else {
        let names: Vec<String> = list
            .iter()
            .filter_map(folder_name)
            .take(20)
            .map(escape_text)
            .collect();
        return Err(IoError::Recording {
            path: data.to_path_buf(),
            detail: format!(
                "{} lists no continuous stream with folder_name '{}' (streams: {})",
                oebin.display(),
                escape_text(stream_folder),
                names.join(", ")
            ),
        });
    };
    Ok(Some(StreamLocation {
        oebin,
        document,
        stream_index,
        data: data.to_path_buf(),
    }))
}

/// Whether a channel entry carries neural data.
fn is_neural(channel: &Value) -> bool {
    let name = channel
        .get("channel_name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    if name.starts_with("ADC") || name.starts_with("AUX") {
        return false;
    }
    match channel.get("units").and_then(Value::as_str) {
        None => true,
        Some(units) => is_microvolts(units),
    }
}

fn is_microvolts(units: &str) -> bool {
    matches!(units.trim(), "uV" | "uv" | "UV" | "µV" | "μV")
}

/// What the stream's entry says about its data file (whose size is checked).
pub(crate) fn info_from_stream(stream: &StreamLocation) -> Result<EphysInfo, IoError> {
    let oebin = &stream.oebin;
    let entry = stream.entry();
    let error = |detail: String| IoError::Recording {
        path: oebin.clone(),
        detail,
    };
    let stream_name = escape_text(folder_name(entry).unwrap_or("?"));
    let sample_rate_hz = entry
        .get("sample_rate")
        .and_then(Value::as_f64)
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| {
            error(format!(
                "stream '{stream_name}' has no positive sample_rate"
            ))
        })?;
    let saved_channels = entry
        .get("num_channels")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            error(format!(
                "stream '{stream_name}' has no positive num_channels"
            ))
        })?;
    if saved_channels > super::MAX_CHANNELS {
        return Err(IoError::TooLarge {
            path: oebin.clone(),
            detail: format!(
                "stream '{stream_name}' has num_channels={saved_channels}, more than any \
                 recording has (at most {})",
                super::MAX_CHANNELS
            ),
        });
    }
    let dtype = match entry.get(DTYPE_KEY).and_then(Value::as_str) {
        None | Some("int16") => Dtype::I16,
        Some("float32") => Dtype::F32,
        Some(other) => {
            return Err(error(format!(
                "stream '{stream_name}': {DTYPE_KEY} '{}' (expected int16 or float32)",
                escape_text(other)
            )));
        }
    };
    let channels = entry.get("channels").and_then(Value::as_array);
    let (neural_channels, microvolts_per_bit) = match channels {
        None => ((0..saved_channels).collect::<Vec<_>>(), None),
        Some(list) => {
            if list.len() != saved_channels {
                return Err(error(format!(
                    "stream '{stream_name}' has num_channels={saved_channels} but describes {} \
                     channels",
                    list.len()
                )));
            }
            let neural: Vec<usize> = (0..saved_channels)
                .filter(|&i| is_neural(&list[i]))
                .collect();
            let gains: Option<Vec<f64>> = neural
                .iter()
                .map(|&i| {
                    list[i]
                        .get("bit_volts")
                        .and_then(Value::as_f64)
                        .filter(|g| g.is_finite() && *g > 0.0)
                })
                .collect();
            (neural, gains)
        }
    };
    if neural_channels.is_empty() {
        return Err(error(format!(
            "stream '{stream_name}' has no neural channels (all are ADC/AUX or not in µV)"
        )));
    }
    let samples = count_samples(&stream.data, saved_channels, dtype)?;
    Ok(EphysInfo {
        format: EphysFormat::OpenEphysBinary,
        samples,
        saved_channels,
        neural_channels,
        sample_rate_hz,
        dtype,
        microvolts_per_bit,
        positions: None,
    })
}

/// Opens one stream of an Open Ephys binary recording.
pub(crate) fn open(
    opened_as: &Path,
    stream: &StreamLocation,
) -> Result<InterleavedReader, IoError> {
    let info = info_from_stream(stream)?;
    InterleavedReader::open(opened_as, &stream.data, info)
}
