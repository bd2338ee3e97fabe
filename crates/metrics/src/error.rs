//! The crate's error type.

use std::path::PathBuf;

/// Errors from evaluation and plotting.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A buffer does not hold `count` frames of `height × width`.
    #[error(
        "{buffer} buffer has {actual} values, expected {expected} ({count} frames of {height}x{width})"
    )]
    BufferLength {
        /// Which buffer ("noisy", "denoised", "clean", …).
        buffer: &'static str,
        /// Its length.
        actual: usize,
        /// The length it should have.
        expected: usize,
        /// Frames announced for this push.
        count: usize,
        /// Frame height.
        height: usize,
        /// Frame width.
        width: usize,
    },
    /// More frames were pushed than announced to [`crate::Evaluator::new`].
    #[error("pushing {pushing} frames after {received} exceeds the {announced} frames announced")]
    TooManyFrames {
        /// Frames announced.
        announced: usize,
        /// Frames received before this push.
        received: usize,
        /// Frames in this push.
        pushing: usize,
    },
    /// `finish` was called before every announced frame was pushed.
    #[error("only {received} of the {announced} announced frames were pushed")]
    MissingFrames {
        /// Frames announced.
        announced: usize,
        /// Frames received.
        received: usize,
    },
    /// A value is NaN or infinite.
    #[error("{buffer} frame {frame} has a non-finite value at pixel {pixel}")]
    NonFinite {
        /// Which buffer.
        buffer: &'static str,
        /// Frame index in the movie.
        frame: usize,
        /// Pixel index within the frame.
        pixel: usize,
    },
    /// Clean frames were given although the evaluator was built without them, or missing
    /// although it was built with them.
    #[error("clean frames {0}")]
    CleanMismatch(&'static str),
    /// An ephys buffer does not hold `count` samples of `channels` channels.
    #[error(
        "{stream} buffer has {actual} values, expected {expected} ({count} samples of {channels} channels)"
    )]
    SampleBufferLength {
        /// Which stream ("noisy", "denoised", "clean").
        stream: &'static str,
        /// Its length.
        actual: usize,
        /// The length it should have.
        expected: usize,
        /// Samples announced for this push.
        count: usize,
        /// Channels per sample.
        channels: usize,
    },
    /// An ephys value is NaN or infinite.
    #[error("{stream} sample {sample} has a non-finite value ({value}) on channel {channel}")]
    NonFiniteSample {
        /// Which stream.
        stream: &'static str,
        /// Sample index in the recording.
        sample: u64,
        /// Channel index.
        channel: usize,
        /// The offending value.
        value: f32,
    },
    /// Clean samples were given although the ephys evaluator was built without them, or
    /// missing although it was built with them.
    #[error("clean samples {0}")]
    CleanSamplesMismatch(&'static str),
    /// A ground-truth spike names a unit that has no [`crate::UnitChannels`] entry.
    #[error(
        "spike {index} (sample {sample}) belongs to unit {unit}, but only {units} units are described"
    )]
    UnknownUnit {
        /// Position of the spike in the list given to [`crate::EphysEvaluator::new`].
        index: usize,
        /// Its sample.
        sample: u64,
        /// Its unit id.
        unit: u32,
        /// Units described.
        units: usize,
    },
    /// fMRI volumes do not hold `count` volumes of the announced shape.
    #[error(
        "{stream} buffer has {actual} values, expected {expected} ({count} volumes of {}x{}x{})",
        shape[0], shape[1], shape[2]
    )]
    VolumeBufferLength {
        /// Which stream ("noisy", "denoised", "clean").
        stream: &'static str,
        /// Its length.
        actual: usize,
        /// The length it should have.
        expected: usize,
        /// Volumes announced for this push.
        count: usize,
        /// Volume size `[x, y, z]`.
        shape: [usize; 3],
    },
    /// An fMRI value is NaN or infinite.
    #[error(
        "{stream} volume {frame} has a non-finite value ({value}) at voxel (x {}, y {}, z {})",
        voxel[0], voxel[1], voxel[2]
    )]
    NonFiniteVoxel {
        /// Which stream.
        stream: &'static str,
        /// Volume (time point) index in the recording.
        frame: usize,
        /// Voxel coordinates `[x, y, z]`.
        voxel: [usize; 3],
        /// The offending value.
        value: f32,
    },
    /// Clean volumes were given in some pushes of an [`crate::FmriEvaluator`] and not in
    /// others.
    #[error("clean volumes {0}")]
    CleanVolumesMismatch(&'static str),
    /// No voxel's noisy temporal mean is above the fMRI brain threshold.
    #[error(
        "no voxel has a noisy temporal mean above the brain threshold {threshold} (the \
         99th-percentile mean is {robust_max}); lower the threshold"
    )]
    NoBrainVoxels {
        /// The threshold applied.
        threshold: f64,
        /// Nearest-rank 99th percentile of the noisy temporal-mean image.
        robust_max: f64,
    },
    /// fMRI evaluation settings are unusable.
    #[error("invalid fMRI settings: {0}")]
    InvalidFmriSettings(String),
    /// Ephys evaluation settings or unit descriptions are unusable.
    #[error("invalid ephys settings: {0}")]
    InvalidSettings(String),
    /// `finish` was called before any sample was pushed.
    #[error("no samples were pushed")]
    NoSamples,
    /// A size is zero or too large.
    #[error("invalid dimensions: {0}")]
    InvalidDimensions(String),
    /// Nothing to draw.
    #[error("nothing to plot: {0}")]
    EmptyPlot(&'static str),
    /// Drawing failed.
    #[error("plotting failed: {0}")]
    Plot(String),
    /// Writing the image failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File being written.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Why clean data being `given` or not disagrees with an evaluator built `with_clean` or not;
/// `None` when they agree.
pub(crate) fn clean_presence_mismatch(given: bool, with_clean: bool) -> Option<&'static str> {
    match (given, with_clean) {
        (true, false) => Some("were given but the evaluator was built without them"),
        (false, true) => Some("are missing but the evaluator was built with them"),
        _ => None,
    }
}

/// Checks every given stream (noisy, denoised, clean when present) in turn: it must hold
/// `expected` values (else `mismatch(stream, its length)`) and only finite ones (else
/// `non_finite(stream, position, value)` for the first that is not).
pub(crate) fn check_streams(
    expected: usize,
    (noisy, denoised, clean): (&[f32], &[f32], Option<&[f32]>),
    mismatch: impl Fn(&'static str, usize) -> MetricsError,
    non_finite: impl Fn(&'static str, usize, f32) -> MetricsError,
) -> Result<(), MetricsError> {
    let streams = [
        ("noisy", Some(noisy)),
        ("denoised", Some(denoised)),
        ("clean", clean),
    ];
    for (stream, buffer) in streams {
        let Some(buffer) = buffer else { continue };
        if buffer.len() != expected {
            return Err(mismatch(stream, buffer.len()));
        }
        if let Some(position) = buffer.iter().position(|value| !value.is_finite()) {
            return Err(non_finite(stream, position, buffer[position]));
        }
    }
    Ok(())
}
