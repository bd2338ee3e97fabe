//! The one error type of this crate.
//!
//! Every variant carries the path of the file it is about, and every message
//! is a single line that starts with that path, so a user who sees it knows
//! which file to look at and what is wrong with it.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Anything that can go wrong while reading or writing a movie, recording,
/// model or array file.
#[derive(Debug, Error)]
pub enum IoError {
    /// The file does not exist.
    #[error("{}: file not found", path.display())]
    NotFound { path: PathBuf },

    /// An operating-system I/O error (permission denied, disk full, ...).
    ///
    /// The OS text is part of this message and deliberately not exposed as
    /// the error's `source()`: a chain printer (anyhow's `{:#}`) would print
    /// it a second time. (thiserror treats any field named `source` as the
    /// source, hence the field's name.)
    #[error("{}: {action}: {error}", path.display())]
    Os {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },

    /// The file name has an extension this crate cannot read or write.
    #[error("{}: unknown movie format '{extension}' (expected .h5, .hdf5, .tif or .tiff)", path.display())]
    UnknownFormat { path: PathBuf, extension: String },

    /// The file could not be opened as an HDF5 file at all.
    #[error("{}: not a readable HDF5 file (is it truncated or another format?): {detail}", path.display())]
    NotHdf5 { path: PathBuf, detail: String },

    /// The file could not be opened as a TIFF file at all.
    #[error("{}: not a readable TIFF file (is it truncated or another format?): {detail}", path.display())]
    NotTiff { path: PathBuf, detail: String },

    /// The HDF5 file has no dataset with the requested name.
    #[error("{}: no dataset '{dataset}' (datasets in the file: {available})", path.display())]
    MissingDataset {
        path: PathBuf,
        dataset: String,
        available: String,
    },

    /// The movie does not have the three dimensions [t, y, x].
    #[error("{}: {what} has {ndims} dimensions, expected 3 [t,y,x]", path.display())]
    WrongDimensions {
        path: PathBuf,
        what: String,
        ndims: usize,
    },

    /// The stored element type is not one this crate handles.
    #[error("{}: unsupported data type {found} (supported: {supported})", path.display())]
    UnsupportedDtype {
        path: PathBuf,
        found: String,
        supported: &'static str,
    },

    /// The movie has no frames or an empty frame.
    #[error("{}: movie is empty (shape [{frames}, {height}, {width}])", path.display())]
    EmptyMovie {
        path: PathBuf,
        frames: usize,
        height: usize,
        width: usize,
    },

    /// Pages of a multi-page TIFF differ in size or type.
    #[error("{}: page {page} is {found}, but page 0 is {expected}; all pages must match", path.display())]
    InconsistentPages {
        path: PathBuf,
        page: usize,
        found: String,
        expected: String,
    },

    /// A frame read from the file holds NaN or infinity.
    #[error("{}: frame {frame} contains a non-finite value ({value})", path.display())]
    NonFinite {
        path: PathBuf,
        frame: usize,
        value: f32,
    },

    /// A read asked for frames past the end of the movie.
    #[error("{}: frames {start}..{end} requested, but the movie has {frames} frames", path.display())]
    FrameRange {
        path: PathBuf,
        start: usize,
        end: usize,
        frames: usize,
    },

    /// A caller-supplied buffer has the wrong length.
    #[error("{}: buffer holds {actual} values, expected {expected}", path.display())]
    BufferSize {
        path: PathBuf,
        expected: usize,
        actual: usize,
    },

    /// A writer got more or fewer frames than it was created for.
    #[error("{}: {written} frames written, but {expected} were announced", path.display())]
    FrameCount {
        path: PathBuf,
        written: usize,
        expected: usize,
    },

    /// The HDF5 library reported an error on a file that did open.
    #[error("{}: HDF5 error while {action}: {detail}", path.display())]
    Hdf5 {
        path: PathBuf,
        action: String,
        detail: String,
    },

    /// The TIFF library reported an error on a file that did open.
    #[error("{}: TIFF error while {action}: {detail}", path.display())]
    Tiff {
        path: PathBuf,
        action: String,
        detail: String,
    },

    /// A `.npy` file is malformed or holds something other than
    /// little-endian float32 in C order.
    #[error("{}: bad .npy file: {detail}", path.display())]
    Npy { path: PathBuf, detail: String },

    /// A Keras model file lacks something a DeepInterpolation model has.
    #[error("{}: bad Keras model file: {detail}", path.display())]
    Keras { path: PathBuf, detail: String },

    /// An electrophysiology recording whose header or data is malformed,
    /// inconsistent or truncated.
    #[error("{}: {detail}", path.display())]
    Recording { path: PathBuf, detail: String },

    /// A read asked for samples past the end of a recording.
    #[error("{}: samples {start}..{end} requested, but the recording has {samples} samples", path.display())]
    SampleRange {
        path: PathBuf,
        start: usize,
        end: usize,
        samples: usize,
    },

    /// A recording writer got more or fewer samples than it was created for.
    #[error("{}: {written} samples written, but {expected} were announced", path.display())]
    SampleCount {
        path: PathBuf,
        written: usize,
        expected: usize,
    },

    /// A file that is not a single-file NIfTI-1/2 image at all (wrong
    /// magic or header size, a header cut short).
    #[error("{}: not a NIfTI-1/2 image (is it truncated or another format?): {detail}", path.display())]
    NotNifti { path: PathBuf, detail: String },

    /// A NIfTI image whose header or data is malformed, unsupported or
    /// truncated.
    #[error("{}: {detail}", path.display())]
    Nifti { path: PathBuf, detail: String },

    /// A size declared by a header or asked for by a flag that cannot be
    /// real, or that exceeds what the file holds or the memory budget (see
    /// [`crate::limits`]).
    #[error("{}: {detail}", path.display())]
    TooLarge { path: PathBuf, detail: String },

    /// An output that would be written over one of the command's inputs or
    /// another of its outputs (see [`crate::output::OutputGuard`]).
    #[error("{}: {detail}", path.display())]
    WouldOverwrite { path: PathBuf, detail: String },

    /// The disk (or the user's quota) filled up while an output was being
    /// written. The writer's temporary file is removed when it is dropped,
    /// so no partial output is left behind.
    #[error(
        "{}: cannot write the output: {cause} (the partial output is removed: nothing was left behind)",
        path.display()
    )]
    OutputFull { path: PathBuf, cause: &'static str },

    /// Arguments that cannot describe a movie (e.g. an output dtype that can
    /// only be read).
    #[error("{}: {detail}", path.display())]
    InvalidRequest { path: PathBuf, detail: String },
}

/// Checks that a caller's buffer holds `expected` values.
pub(crate) fn check_buffer_len(path: &Path, expected: usize, actual: usize) -> Result<(), IoError> {
    if actual == expected {
        Ok(())
    } else {
        Err(IoError::BufferSize {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

/// `Some("no space left on device")` (or the quota's wording) when an OS
/// error means the disk is full, for [`IoError::OutputFull`].
pub(crate) fn disk_full_cause(error: &std::io::Error) -> Option<&'static str> {
    // ENOSPC is 28 and EDQUOT 122 on Linux; the kind covers other systems.
    match (error.kind(), error.raw_os_error()) {
        (std::io::ErrorKind::QuotaExceeded, _) | (_, Some(122)) => Some("disk quota exceeded"),
        (std::io::ErrorKind::StorageFull, _) | (_, Some(28)) => Some("no space left on device"),
        _ => None,
    }
}

/// [`disk_full_cause`] for an error known only by its text (a library that
/// wraps the OS error without exposing it).
pub(crate) fn disk_full_cause_in_text(text: &str) -> Option<&'static str> {
    if text.contains("Disk quota exceeded") || text.contains("os error 122") {
        Some("disk quota exceeded")
    } else if text.contains("No space left on device") || text.contains("os error 28") {
        Some("no space left on device")
    } else {
        None
    }
}

/// Squashes a library error message onto one line, so that every
/// [`IoError`] message stays a single line.
pub(crate) fn one_line(detail: impl Display) -> String {
    detail
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text taken from a file (a `.meta` line, a dataset name, a JSON key, a
/// header's description), made safe to put in a message: control characters
/// (newlines, escape sequences that would drive the terminal) and Unicode
/// direction overrides are written as `\n`, `\u{1b}`, ...; a backslash is
/// doubled so an escape cannot be forged; and anything past
/// [`MAX_ECHOED_CHARS`] characters is cut off with `…`, so a hostile file
/// cannot flood the terminal or break the one-line rule.
pub fn escape_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len().min(4 * MAX_ECHOED_CHARS));
    for (count, c) in text.chars().enumerate() {
        if count == MAX_ECHOED_CHARS {
            escaped.push('…');
            break;
        }
        let bidi_control = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c == '\\' {
            escaped.push_str("\\\\");
        } else if c.is_control() || bidi_control {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// The most characters of file text [`escape_text`] echoes.
pub const MAX_ECHOED_CHARS: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_text_is_escaped_and_bounded() {
        assert_eq!(escape_text("imroTbl"), "imroTbl");
        assert_eq!(escape_text("µV"), "µV");
        assert_eq!(escape_text("a\nb\x1b[31mc\r"), "a\\nb\\u{1b}[31mc\\r");
        assert_eq!(escape_text("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_text("a\\nb"), "a\\\\nb");
        let long = "x".repeat(MAX_ECHOED_CHARS + 50);
        let shown = escape_text(&long);
        assert_eq!(shown.chars().count(), MAX_ECHOED_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert!(
            !escape_text("\u{7}\u{0}\u{9b}")
                .chars()
                .any(char::is_control)
        );
    }

    #[test]
    fn os_errors_print_the_os_text_once_in_a_chain() {
        let err = IoError::Os {
            path: PathBuf::from("x.bin"),
            action: "reading",
            error: std::io::Error::other("disk on fire"),
        };
        assert_eq!(err.to_string(), "x.bin: reading: disk on fire");
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn messages_are_one_line_and_start_with_the_path() {
        let err = IoError::WrongDimensions {
            path: PathBuf::from("data.h5"),
            what: "dataset 'data'".into(),
            ndims: 2,
        };
        assert_eq!(
            err.to_string(),
            "data.h5: dataset 'data' has 2 dimensions, expected 3 [t,y,x]"
        );
        let err = IoError::Hdf5 {
            path: PathBuf::from("x.h5"),
            action: "reading".into(),
            detail: one_line("line one\n  line two"),
        };
        assert!(!err.to_string().contains('\n'));
        assert!(err.to_string().starts_with("x.h5: "));
    }
}
