//! Headerless raw recordings: interleaved little-endian `[sample][channel]`
//! int16 or float32, with the channel count and sample rate given by the
//! user (a [`RawLayout`]). Every channel is neural.

use std::path::Path;

use super::interleaved::{InterleavedReader, count_samples};
use super::{EphysFormat, EphysInfo, RawLayout};
use crate::error::IoError;
use crate::movie::Dtype;

/// Checks that a layout can describe a recording at all.
pub(crate) fn check_layout(path: &Path, layout: &RawLayout) -> Result<(), IoError> {
    let problem = if layout.channels == 0 {
        Some("a raw recording needs at least one channel (--channels)".to_string())
    } else if layout.channels > super::MAX_CHANNELS {
        Some(format!(
            "{} channels (--channels) is more than any recording has (at most {})",
            layout.channels,
            super::MAX_CHANNELS
        ))
    } else if !(layout.sample_rate_hz.is_finite() && layout.sample_rate_hz > 0.0) {
        Some(format!(
            "sample rate {} Hz is not a positive number (--sample-rate)",
            layout.sample_rate_hz
        ))
    } else if !matches!(layout.dtype, Dtype::I16 | Dtype::F32) {
        Some(format!(
            "raw recordings are int16 or float32, not {}",
            layout.dtype
        ))
    } else {
        None
    };
    match problem {
        Some(detail) => Err(IoError::Recording {
            path: path.to_path_buf(),
            detail,
        }),
        None => Ok(()),
    }
}

/// Opens the headerless file `file` (the recording `opened_as`).
pub(crate) fn open(
    opened_as: &Path,
    file: &Path,
    layout: &RawLayout,
) -> Result<InterleavedReader, IoError> {
    check_layout(file, layout)?;
    let samples = count_samples(file, layout.channels, layout.dtype)?;
    let info = EphysInfo {
        format: EphysFormat::Raw,
        samples,
        saved_channels: layout.channels,
        neural_channels: (0..layout.channels).collect(),
        sample_rate_hz: layout.sample_rate_hz,
        dtype: layout.dtype,
        microvolts_per_bit: None,
        positions: None,
    };
    InterleavedReader::open(opened_as, file, info)
}
