//! The pipeline's one error type: the engine's, the formats' and the metrics' errors as they
//! are, plus requests the pipeline itself refuses. Every message is one line that names the
//! file (or the setting) and the cause.

use std::path::{Path, PathBuf};

use deepinterp::EngineError;
use deepinterp_io::IoError;
use deepinterp_metrics::MetricsError;

/// Why a pipeline call failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The engine refused or failed (settings, models, networks, training).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A recording or output file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A quality measurement could not be made.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A request that cannot be run as given (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
    /// An operating-system error on a file the pipeline manages itself.
    #[error("{}: {what}", path.display())]
    Os {
        /// The file.
        path: PathBuf,
        /// What was being done, e.g. "cannot remove".
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl PipelineError {
    /// An operating-system error while doing `what` to `path`.
    pub fn os(path: &Path, what: &str, source: std::io::Error) -> Self {
        PipelineError::Os {
            path: path.to_path_buf(),
            what: what.to_string(),
            source,
        }
    }
}

/// Fails with [`PipelineError::Refused`] and the formatted message unless `condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::PipelineError::Refused(format!($($message)+)));
        }
    };
}

/// Fails with [`PipelineError::Refused`] and the formatted message.
macro_rules! refuse {
    ($($message:tt)+) => {
        return Err($crate::PipelineError::Refused(format!($($message)+)))
    };
}

pub(crate) use {ensure, refuse};

/// The pipeline's results.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
