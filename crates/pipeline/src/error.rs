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

/// The pipeline's results.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// An error and its causes on one line: each cause once (a cause whose text the message
/// already holds is skipped), line breaks folded, control characters escaped so that text
/// taken from a file cannot drive a terminal. What every front end shows a user.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !text.is_empty() && !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = current.source();
    }
    escape_controls(&message)
}

/// Folds line breaks and tabs into spaces and escapes every other control character.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_print_once_on_one_line_without_control_bytes() {
        let os = std::io::Error::other("disk full");
        let error = PipelineError::os(Path::new("out.h5"), "cannot write", os);
        assert_eq!(one_line(&error), "out.h5: cannot write: disk full");
        let error = PipelineError::Refused("x.meta: bad line '\u{1b}[31mred\nnext'".into());
        let line = one_line(&error);
        assert!(!line.contains('\u{1b}') && !line.contains('\n'), "{line}");
    }
}
