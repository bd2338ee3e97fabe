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
    /// A training-settings file is unreadable or holds a bad value.
    #[error("{path}: {reason}")]
    SettingsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// Options that contradict each other.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The caller asked the work to stop (a user's interrupt); what was unfinished is gone.
    #[error("stopped before the end, as asked")]
    Stopped,
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

/// Text taken from a file, fit to echo in a one-line message: io's escaping, so every crate
/// writes file text the same way.
pub use deepinterp_io::error::escape_text;

/// The first value of `values` that is not finite, as (index, value).
pub(crate) fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .position(|value| !value.is_finite())
        .map(|index| (index, values[index]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_has_no_control_bytes() {
        let escaped = escape_text("conv\n\u{1b}[31mred\tname");
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
        assert!(
            escaped.contains("\\n") && escaped.contains("red"),
            "{escaped}"
        );
        assert_eq!(
            first_non_finite(&[1.0, f32::NAN, 2.0]).map(|(i, _)| i),
            Some(1)
        );
        assert_eq!(first_non_finite(&[1.0, 2.0]), None);
    }
}
