//! The format-independent movie API: element types, movie shape, the reader
//! and writer traits, the choice of format by file extension, the value
//! conversions shared by every format, and the temporary-file guard that
//! makes every writer atomic.
//!
//! A movie is a stack of frames `[t][y][x]`. Readers hand frames out as
//! `f32`; writers take `f32` and convert to the stored type.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::IoError;

/// The element type a movie is stored as.
///
/// `I16`, `U16` and `F32` can be read and written. `U8` and `F64` can only
/// be read: they are accepted as input and converted to `f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    I16,
    U16,
    F32,
    /// Read-only: 8-bit unsigned input.
    U8,
    /// Read-only: float64 input (converted to f32 on read).
    F64,
}

impl Dtype {
    /// The numpy-style name: `int16`, `uint16`, `float32`, `uint8`, `float64`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::F32 => "float32",
            Dtype::U8 => "uint8",
            Dtype::F64 => "float64",
        }
    }

    /// Bytes per stored element.
    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    /// Whether movies can be written with this type.
    pub fn is_writable(self) -> bool {
        matches!(self, Dtype::I16 | Dtype::U16 | Dtype::F32)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of [`Dtype::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype '{0}' (expected int16, uint16, float32, uint8 or float64)")]
pub struct ParseDtypeError(pub String);

impl FromStr for Dtype {
    type Err = ParseDtypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "int16" | "i16" => Ok(Dtype::I16),
            "uint16" | "u16" => Ok(Dtype::U16),
            "float32" | "f32" => Ok(Dtype::F32),
            "uint8" | "u8" => Ok(Dtype::U8),
            "float64" | "f64" => Ok(Dtype::F64),
            _ => Err(ParseDtypeError(s.to_string())),
        }
    }
}

/// Shape and element type of a movie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovieInfo {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub dtype: Dtype,
}

impl MovieInfo {
    /// Pixels in one frame (saturating: readers check the real product
    /// with [`crate::limits`] before trusting it, so a hostile header cannot
    /// make this overflow).
    pub fn frame_len(&self) -> usize {
        self.height.saturating_mul(self.width)
    }
}

/// Reads frames of one movie file.
pub trait MovieReader: Send {
    fn info(&self) -> &MovieInfo;
    fn path(&self) -> &Path;
    /// Reads frames `[start, start+count)` converted to f32, row-major
    /// `[count][height][width]`, into `out` (len == count*h*w).
    ///
    /// Streams: reads only those frames from disk (HDF5 hyperslab / TIFF
    /// pages), never the whole movie. A non-finite value (NaN/inf) is an
    /// error naming the file and frame index.
    fn read_frames(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError>;
    /// Which pixels of a frame carry data (`None`: all of them), row-major like a frame.
    ///
    /// Readers that lay a recording out on a grid with empty places (the unused sites of a
    /// probe's checkerboard) say so here: those pixels are left out of the normalisation
    /// statistics and are zero after normalisation, as in the original's Neuropixels path.
    fn site_mask(&self) -> Option<&[bool]> {
        None
    }
}

/// Writes the frames of one movie file, atomically.
pub trait MovieWriter {
    /// Appends `count` frames (row-major f32). Values are converted to the
    /// output dtype: for int16/uint16 rounded to nearest (ties to even, as
    /// numpy's `rint`) and clipped to the type's range; clipped values (and
    /// NaN, written as 0) are counted.
    fn write_frames(&mut self, frames: &[f32], count: usize) -> Result<(), IoError>;
    /// Checks that exactly the announced number of frames was written,
    /// flushes, and atomically renames the temp file onto the final path.
    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError>;
}

/// What a finished writer wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    pub frames: usize,
    pub clipped_values: u64,
    pub path: PathBuf,
}

/// The file formats this crate reads and writes movies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MovieFormat {
    Hdf5,
    Tiff,
}

impl MovieFormat {
    pub(crate) fn from_path(path: &Path) -> Result<Self, IoError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match extension.as_str() {
            "h5" | "hdf5" => Ok(MovieFormat::Hdf5),
            "tif" | "tiff" => Ok(MovieFormat::Tiff),
            _ => Err(IoError::UnknownFormat {
                path: path.to_path_buf(),
                extension: if extension.is_empty() {
                    "(none)".to_string()
                } else {
                    format!(".{extension}")
                },
            }),
        }
    }

    /// The format of an existing file: its name's, or under another name its content's (a
    /// movie saved as `scan.dat` is still read).
    pub(crate) fn of_file(path: &Path) -> Result<Self, IoError> {
        Self::from_path(path).or_else(|unknown| match crate::kind::signature(path) {
            Some(crate::kind::Signature::Hdf5) => Ok(MovieFormat::Hdf5),
            Some(crate::kind::Signature::Tiff) => Ok(MovieFormat::Tiff),
            _ => Err(unknown),
        })
    }
}

/// The HDF5 dataset a movie is read from unless another is named.
pub const DEFAULT_DATASET: &str = "data";

/// Opens a movie, choosing the format by extension: `.h5`/`.hdf5` read the
/// HDF5 dataset `data`, `.tif`/`.tiff` read a multi-page TIFF; under another
/// name, by the file's signature.
pub fn open_movie(path: &Path) -> Result<Box<dyn MovieReader>, IoError> {
    match MovieFormat::of_file(path)? {
        MovieFormat::Hdf5 => Ok(Box::new(crate::hdf5::Hdf5MovieReader::open(
            path,
            DEFAULT_DATASET,
        )?)),
        MovieFormat::Tiff => Ok(Box::new(crate::tiff::TiffMovieReader::open(path)?)),
    }
}

/// Opens the HDF5 dataset `dataset` (a path such as `data` or
/// `acquisition/TwoPhotonSeries/data`) of an HDF5 file as a movie.
pub fn open_movie_dataset(path: &Path, dataset: &str) -> Result<Box<dyn MovieReader>, IoError> {
    Ok(Box::new(crate::hdf5::Hdf5MovieReader::open(path, dataset)?))
}

/// Creates a movie writer; `info.frames` is the number of frames that will
/// be written. The format is chosen by extension (`.h5`/`.hdf5`,
/// `.tif`/`.tiff`).
pub fn create_movie(path: &Path, info: &MovieInfo) -> Result<Box<dyn MovieWriter>, IoError> {
    let format = MovieFormat::from_path(path)?;
    check_writable_info(path, info)?;
    match format {
        MovieFormat::Hdf5 => Ok(Box::new(crate::hdf5::Hdf5MovieWriter::create(path, info)?)),
        MovieFormat::Tiff => crate::tiff::create_tiff_writer(path, info),
    }
}

fn check_writable_info(path: &Path, info: &MovieInfo) -> Result<(), IoError> {
    if !info.dtype.is_writable() {
        return Err(IoError::UnsupportedDtype {
            path: path.to_path_buf(),
            found: format!("{} for output", info.dtype),
            supported: "int16, uint16, float32",
        });
    }
    if info.frames == 0 || info.height == 0 || info.width == 0 {
        return Err(IoError::EmptyMovie {
            path: path.to_path_buf(),
            frames: info.frames,
            height: info.height,
            width: info.width,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Checks shared by the readers.
// ---------------------------------------------------------------------------

/// Checks a `read_frames` request against the movie and the buffer.
pub(crate) fn check_read_request(
    path: &Path,
    info: &MovieInfo,
    start: usize,
    count: usize,
    out_len: usize,
) -> Result<(), IoError> {
    let end = start.saturating_add(count);
    if end > info.frames {
        return Err(IoError::FrameRange {
            path: path.to_path_buf(),
            start,
            end,
            frames: info.frames,
        });
    }
    crate::error::check_buffer_len(path, count.saturating_mul(info.frame_len()), out_len)
}

/// Fails on the first NaN or infinity in `frames`, naming its frame
/// (`first_frame` is the movie index of the first frame in the slice).
pub(crate) fn check_finite(
    path: &Path,
    frames: &[f32],
    frame_len: usize,
    first_frame: usize,
) -> Result<(), IoError> {
    if frames.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    for (i, frame) in frames.chunks(frame_len.max(1)).enumerate() {
        if let Some(value) = frame.iter().copied().find(|v| !v.is_finite()) {
            return Err(IoError::NonFinite {
                path: path.to_path_buf(),
                frame: first_frame + i,
                value,
            });
        }
    }
    Ok(())
}

/// Checks a `write_frames` call: buffer length and announced frame count.
pub(crate) fn check_write_request(
    path: &Path,
    info: &MovieInfo,
    written: usize,
    frames_len: usize,
    count: usize,
) -> Result<(), IoError> {
    let expected = count.saturating_mul(info.frame_len());
    if frames_len != expected {
        return Err(IoError::BufferSize {
            path: path.to_path_buf(),
            expected,
            actual: frames_len,
        });
    }
    if written.saturating_add(count) > info.frames {
        return Err(IoError::FrameCount {
            path: path.to_path_buf(),
            written: written.saturating_add(count),
            expected: info.frames,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// f32 -> stored type.
// ---------------------------------------------------------------------------

/// An element type movies are written as.
pub(crate) trait OutputSample: Copy + Default + Send + Sync + 'static {
    /// Converts one value; the flag is true when it had to be clipped
    /// (or was NaN, stored as 0).
    fn from_f32(value: f32) -> (Self, bool);
}

macro_rules! integer_output_sample {
    ($t:ty) => {
        impl OutputSample for $t {
            #[inline]
            fn from_f32(value: f32) -> (Self, bool) {
                if value.is_nan() {
                    return (0, true);
                }
                // Compared in f64, where every bound of a 32-bit-or-smaller
                // integer is exact (i32::MAX as f32 rounds up to 2^31).
                let rounded = f64::from(value.round_ties_even());
                if rounded < <$t>::MIN as f64 {
                    (<$t>::MIN, true)
                } else if rounded > <$t>::MAX as f64 {
                    (<$t>::MAX, true)
                } else {
                    (rounded as $t, false)
                }
            }
        }
    };
}
integer_output_sample!(u8);
integer_output_sample!(i8);
integer_output_sample!(i16);
integer_output_sample!(u16);
integer_output_sample!(i32);
integer_output_sample!(u32);

impl OutputSample for f32 {
    #[inline]
    fn from_f32(value: f32) -> (Self, bool) {
        (value, false)
    }
}

impl OutputSample for f64 {
    #[inline]
    fn from_f32(value: f32) -> (Self, bool) {
        (f64::from(value), false)
    }
}

/// Converts `src` into `dst` (same length), returning how many values were
/// clipped.
pub(crate) fn convert_output<T: OutputSample>(src: &[f32], dst: &mut [T]) -> u64 {
    let mut clipped = 0u64;
    for (d, &s) in dst.iter_mut().zip(src) {
        let (v, was_clipped) = T::from_f32(s);
        *d = v;
        clipped += u64::from(was_clipped);
    }
    clipped
}

// ---------------------------------------------------------------------------
// Atomic output.
// ---------------------------------------------------------------------------

/// Writers' temporary outputs: see [`crate::output`].
pub(crate) use crate::output::AtomicOutput as TempOutput;

/// Returns [`IoError::NotFound`] when `path` does not exist, and an error
/// saying what it is when it is not a regular file (a directory, a FIFO, a
/// device such as a link to `/dev/zero`), so that the format readers never
/// block on a pipe, read an endless device, or turn either into a confusing
/// format error. Symbolic links are followed: a link to a regular file is a
/// regular file.
pub fn require_file(path: &Path) -> Result<(), IoError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => Err(IoError::InvalidRequest {
            path: path.to_path_buf(),
            detail: format!(
                "{}, not a regular file (a regular file is needed)",
                describe_file_type(&meta.file_type())
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(IoError::NotFound {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(IoError::Os {
            path: path.to_path_buf(),
            action: "opening",
            error: source,
        }),
    }
}

/// What a file that is not a regular file is, for [`require_file`].
fn describe_file_type(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "is a FIFO (named pipe)";
        }
        if file_type.is_char_device() {
            return "is a character device";
        }
        if file_type.is_block_device() {
            return "is a block device";
        }
        if file_type.is_socket() {
            return "is a socket";
        }
    }
    if file_type.is_dir() {
        "is a directory"
    } else {
        "is not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_parses_and_prints() {
        for d in [Dtype::I16, Dtype::U16, Dtype::F32, Dtype::U8, Dtype::F64] {
            assert_eq!(d.to_string().parse::<Dtype>(), Ok(d));
        }
        assert_eq!("Float32".parse::<Dtype>(), Ok(Dtype::F32));
        assert!("int64".parse::<Dtype>().is_err());
    }

    #[test]
    fn integer_conversion_rounds_and_clips() {
        let src = [1.5f32, 2.5, -0.6, 40000.0, -40000.0, f32::NAN, 32767.4];
        let mut dst = [0i16; 7];
        let clipped = convert_output(&src, &mut dst);
        assert_eq!(dst, [2, 2, -1, 32767, -32768, 0, 32767]);
        assert_eq!(clipped, 3);

        let mut dst = [0u16; 3];
        let clipped = convert_output(&[-1.0, 65535.4, 65536.0], &mut dst);
        assert_eq!(dst, [0, 65535, 65535]);
        assert_eq!(clipped, 2);

        let mut dst = [0u8; 4];
        let clipped = convert_output(&[-0.5, 254.5, 255.6, 3.5], &mut dst);
        assert_eq!(dst, [0, 254, 255, 4]);
        assert_eq!(clipped, 1);

        // i32::MAX is not an f32: 2^31 must still count as clipped.
        let mut dst = [0i32; 3];
        let clipped = convert_output(&[2_147_483_648.0, -2_147_483_648.0, 16_777_216.0], &mut dst);
        assert_eq!(dst, [i32::MAX, i32::MIN, 16_777_216]);
        assert_eq!(clipped, 1);
    }

    #[test]
    fn format_follows_extension() {
        assert_eq!(
            MovieFormat::from_path(Path::new("a.H5")).ok(),
            Some(MovieFormat::Hdf5)
        );
        assert_eq!(
            MovieFormat::from_path(Path::new("a.tiff")).ok(),
            Some(MovieFormat::Tiff)
        );
        let err = MovieFormat::from_path(Path::new("movie.avi")).unwrap_err();
        assert!(err.to_string().contains("movie.avi"), "{err}");
    }
}
