//! What a training run trains: the architecture, the window and the inputs, recorded in
//! each checkpoint so that `--resume` with another network, window or data is refused with
//! what differs, before burn is handed records of another shape (on which it panics).
//!
//! Inputs are identified by content, not only by path: a size and a CRC-32 of the first
//! and last MiB of each file (for a folder, the names and sizes of its files and the ends
//! of its first and last file), cheap on recordings of any length.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::TrainingData;
use crate::error::{EngineError, escape_text};
use crate::model::{Network, NetworkConfig};
use crate::sampling::Window;

/// Bytes read from each end of a file for its fingerprint.
const END_BYTES: u64 = 1 << 20;
/// Most entries of a folder input that are listed for its fingerprint.
const MAX_FOLDER_ENTRIES: usize = 1 << 20;

/// One input file or folder, as a checkpoint remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFingerprint {
    /// The path as given.
    pub path: String,
    /// Total bytes (of every file, for a folder).
    pub bytes: u64,
    /// Files: 1 for a file, the number of files for a folder, 0 when unreadable.
    pub files: u64,
    /// CRC-32 of the ends of the file (folder: of its listing and its end files).
    pub digest: u32,
}

impl InputFingerprint {
    fn same_content(&self, other: &Self) -> bool {
        (self.bytes, self.files, self.digest) == (other.bytes, other.files, other.digest)
    }
}

/// A file's or a folder's fingerprint (see the module's notes).
pub fn fingerprint_input(path: &Path) -> Result<InputFingerprint, EngineError> {
    let metadata = std::fs::metadata(path).map_err(|e| EngineError::os(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let (bytes, files) = if metadata.is_dir() {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| EngineError::os(path, e))? {
            let entry = entry.map_err(|e| EngineError::os(path, e))?;
            let file_type = entry.file_type().map_err(|e| EngineError::os(path, e))?;
            if file_type.is_file() {
                let size = entry
                    .metadata()
                    .map_err(|e| EngineError::os(path, e))?
                    .len();
                entries.push((entry.file_name(), size));
            }
            if entries.len() > MAX_FOLDER_ENTRIES {
                return Err(EngineError::recording(
                    path,
                    format!("more than {MAX_FOLDER_ENTRIES} files: too many to fingerprint"),
                ));
            }
        }
        entries.sort();
        let mut total = 0u64;
        for (name, size) in &entries {
            hasher.update(name.as_encoded_bytes());
            hasher.update(&size.to_le_bytes());
            total = total.saturating_add(*size);
        }
        let ends = [entries.first(), entries.last()];
        for (name, _) in ends.into_iter().flatten() {
            hash_ends(&path.join(name), &mut hasher)?;
        }
        (total, entries.len() as u64)
    } else {
        hash_ends(path, &mut hasher)?;
        (metadata.len(), 1)
    };
    Ok(InputFingerprint {
        path: path.display().to_string(),
        bytes,
        files,
        digest: hasher.finalize(),
    })
}

/// Feeds the first and last [`END_BYTES`] of a file (all of a small one) to `hasher`.
fn hash_ends(path: &Path, hasher: &mut crc32fast::Hasher) -> Result<(), EngineError> {
    let os = |e| EngineError::os(path, e);
    let mut file = std::fs::File::open(path).map_err(os)?;
    let size = file.metadata().map_err(os)?.len();
    let mut buffer = Vec::with_capacity(END_BYTES as usize);
    (&mut file)
        .take(END_BYTES)
        .read_to_end(&mut buffer)
        .map_err(os)?;
    hasher.update(&buffer);
    if size > END_BYTES {
        buffer.clear();
        file.seek(SeekFrom::Start(
            size.saturating_sub(END_BYTES).max(END_BYTES),
        ))
        .map_err(os)?;
        file.take(END_BYTES).read_to_end(&mut buffer).map_err(os)?;
        hasher.update(&buffer);
    }
    Ok(())
}

/// What a run trains; stored in its checkpoints and compared on resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIdentity {
    /// The `--arch` name ("unet-d3-w16"), or empty when the caller did not say.
    pub architecture: String,
    /// The network's configuration, when the caller gave it.
    pub network: Option<NetworkConfig>,
    /// burn's `[out, in, kernel...]` shape of each convolution: what the records must fit.
    pub weight_shapes: Vec<Vec<usize>>,
    /// The window.
    pub window: Window,
    /// Training inputs, in order.
    pub inputs: Vec<InputFingerprint>,
    /// Separate validation inputs, in order.
    pub validation_inputs: Vec<InputFingerprint>,
}

impl RunIdentity {
    /// The identity of a run of `network` (named `architecture`, e.g. the `--arch` value or
    /// a fine-tuned model's architecture) with `window` on `inputs` and `validation_inputs`,
    /// whose fingerprints are computed here.
    pub fn new(
        architecture: &str,
        network: &NetworkConfig,
        window: Window,
        inputs: &[PathBuf],
        validation_inputs: &[PathBuf],
    ) -> Result<Self, EngineError> {
        let fingerprints = |paths: &[PathBuf]| -> Result<Vec<_>, EngineError> {
            paths.iter().map(|path| fingerprint_input(path)).collect()
        };
        Ok(Self {
            architecture: architecture.to_string(),
            network: Some(network.clone()),
            weight_shapes: network.weight_shapes(),
            window,
            inputs: fingerprints(inputs)?,
            validation_inputs: fingerprints(validation_inputs)?,
        })
    }

    /// The identity [`super::train`] derives from its arguments: the readers' paths (a path
    /// that cannot be read, e.g. of an in-memory reader, is recorded without content) and
    /// the network's layer shapes.
    pub(super) fn of_data<B: Backend>(
        network: &Network<B>,
        data: &TrainingData,
        window: Window,
    ) -> Self {
        let fingerprint = |path: &Path| {
            fingerprint_input(path).unwrap_or_else(|_| InputFingerprint {
                path: path.display().to_string(),
                bytes: 0,
                files: 0,
                digest: 0,
            })
        };
        let (inputs, validation_inputs): (Vec<_>, Vec<_>) = match data {
            TrainingData::Frames { inputs, validation } => (
                inputs.iter().map(|r| fingerprint(r.path())).collect(),
                validation.iter().map(|r| fingerprint(r.path())).collect(),
            ),
            TrainingData::Volumes {
                inputs, validation, ..
            } => (
                inputs.iter().map(|r| fingerprint(r.path())).collect(),
                validation.iter().map(|r| fingerprint(r.path())).collect(),
            ),
        };
        Self {
            architecture: String::new(),
            network: None,
            weight_shapes: network.weight_shapes(),
            window,
            inputs,
            validation_inputs,
        }
    }

    /// The architecture's name for messages.
    pub fn architecture_name(&self) -> String {
        if self.architecture.is_empty() {
            "(unnamed)".to_string()
        } else {
            escape_text(&self.architecture)
        }
    }

    /// What differs between this run and the one `stored` (a checkpoint's) was made for, in
    /// words; `None` when the checkpoint fits this run.
    pub fn difference(&self, stored: &RunIdentity) -> Option<String> {
        let named = !self.architecture.is_empty() && !stored.architecture.is_empty();
        if named && self.architecture != stored.architecture {
            return Some(format!(
                "the checkpoint was made for architecture {}, this run trains {}",
                stored.architecture_name(),
                self.architecture_name()
            ));
        }
        // Before layer shapes: a window of other size changes the first layer too, and the
        // window is what the user changed.
        if self.window != stored.window {
            return Some(format!(
                "the checkpoint was made for the window ({}), this run uses ({})",
                stored.window, self.window
            ));
        }
        let configs_differ =
            matches!((&self.network, &stored.network), (Some(a), Some(b)) if a != b);
        if self.weight_shapes != stored.weight_shapes || configs_differ {
            return Some(format!(
                "the checkpoint was made for a network of other layer shapes (architecture {}), this run trains {}",
                stored.architecture_name(),
                self.architecture_name()
            ));
        }
        for (what, now, then) in [
            ("training inputs", &self.inputs, &stored.inputs),
            (
                "validation inputs",
                &self.validation_inputs,
                &stored.validation_inputs,
            ),
        ] {
            if now.len() != then.len() {
                return Some(format!(
                    "the checkpoint was made for {} {what}, this run has {}",
                    then.len(),
                    now.len()
                ));
            }
            for (current, recorded) in now.iter().zip(then) {
                if !current.same_content(recorded) {
                    return Some(format!(
                        "{} is not the input the checkpoint was made for ({}, {} bytes then, {} now, or other content)",
                        escape_text(&current.path),
                        escape_text(&recorded.path),
                        recorded.bytes,
                        current.bytes
                    ));
                }
            }
        }
        None
    }
}
