//! The engine's error type. Messages are one line and name the file involved when there is one.

use std::path::PathBuf;

/// Errors of sampling, models, training and inference.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] deepinterp_io::IoError),
    /// Plain OS error on a path.
    #[error("{path}: {source}")]
    Os {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A model description or weights are inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A model file is unreadable or not of a supported kind.
    #[error("{path}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A recording does not fit the model or the window.
    #[error("{path}: {reason}")]
    Recording {
        /// The recording.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Options that contradict each other.
    #[error("invalid settings: {0}")]
    Settings(String),
}

impl EngineError {
    /// An error about a recording file.
    pub fn recording(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Recording {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An error about a model file.
    pub fn model_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::ModelFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An OS error on a path.
    pub fn os(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Os {
            path: path.into(),
            source,
        }
    }
}
