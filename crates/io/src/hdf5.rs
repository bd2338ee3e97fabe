//! Movies stored as a 3-D HDF5 dataset `[t, y, x]` (dataset `data` by
//! default, as DeepInterpolation and the Allen Institute write them).
//!
//! Reading uses hyperslab reads, so only the requested frames are read and
//! decompressed. Writing streams frames into a chunked (one frame per
//! chunk), shuffle + deflate compressed dataset with an unlimited first
//! dimension, compressing a batch of chunks in parallel; memory stays
//! bounded by one batch whatever the number of frames.

use std::path::{Path, PathBuf};

use rust_hdf5::{DatatypeMessage, H5Dataset, H5File, H5Type};

use crate::error::{IoError, disk_full_cause, disk_full_cause_in_text, escape_text, one_line};
use crate::limits::{check_declared, check_memory, checked_product};
use crate::movie::{
    Dtype, MovieInfo, MovieReader, MovieWriter, OutputSample, TempOutput, WriteSummary,
    check_finite, check_read_request, check_write_request, convert_output, require_file,
};

/// Deflate level of written movies. Measured on 300 simulated 512×512 frames: level 1
/// compresses float32 output 5× faster than level 4 for a 3% larger file, and int16 photon
/// counts as well as level 4; for fast networks compression dominates `denoise` time.
const DEFLATE_LEVEL: u32 = 1;

/// Upper bound on the uncompressed bytes a writer holds before handing a
/// batch of chunks to the (parallel) compressor.
const WRITE_BATCH_BYTES: usize = 32 << 20;

/// Most frames a writer holds before compressing them.
const WRITE_BATCH_FRAMES: usize = 64;

/// Dtypes this crate reads from HDF5, for error messages.
const READABLE_DTYPES: &str = "int16, uint16, float32, uint8, float64";

/// Opens an HDF5 file for reading, with a useful error when it is missing
/// or not HDF5.
pub(crate) fn open_hdf5_file(path: &Path) -> Result<H5File, IoError> {
    require_file(path)?;
    H5File::options()
        .best_effort_locking()
        .open(path)
        .map_err(|e| IoError::NotHdf5 {
            path: path.to_path_buf(),
            detail: one_line(e),
        })
}

/// Adds a hint to read errors that mean the file ends too early.
fn with_truncation_hint(detail: String) -> String {
    let short_read = ["fill whole buffer", "too short", "past the end", "beyond"]
        .iter()
        .any(|needle| detail.contains(needle));
    if short_read {
        format!("{detail} (the file seems truncated)")
    } else {
        detail
    }
}

/// A readable description of an HDF5 datatype: `int32`, `float64`, ...
pub(crate) fn describe_datatype(datatype: &DatatypeMessage) -> String {
    match datatype {
        DatatypeMessage::FixedPoint { size, signed, .. } => {
            format!("{}int{}", if *signed { "" } else { "u" }, size * 8)
        }
        DatatypeMessage::FloatingPoint { size, .. } => format!("float{}", size * 8),
        DatatypeMessage::Compound { .. } => "compound (e.g. complex)".to_string(),
        DatatypeMessage::FixedString { .. } | DatatypeMessage::VarLenString { .. } => {
            "string".to_string()
        }
        other => one_line(other),
    }
}

/// Maps an HDF5 datatype onto the movie dtype it is read as.
fn movie_dtype(datatype: &DatatypeMessage) -> Option<Dtype> {
    match *datatype {
        DatatypeMessage::FixedPoint {
            size,
            signed,
            bit_offset: 0,
            bit_precision,
            ..
        } if u32::from(bit_precision) == size * 8 => match (size, signed) {
            (2, true) => Some(Dtype::I16),
            (2, false) => Some(Dtype::U16),
            (1, false) => Some(Dtype::U8),
            _ => None,
        },
        DatatypeMessage::FloatingPoint { .. } => match datatype.ieee_format()? {
            rust_hdf5::format::messages::datatype::IeeeFormat::Binary32 => Some(Dtype::F32),
            rust_hdf5::format::messages::datatype::IeeeFormat::Binary64 => Some(Dtype::F64),
            _ => None,
        },
        _ => None,
    }
}

/// Lists the datasets of a file for an error message (at most 20).
fn list_datasets(file: &H5File) -> String {
    let mut names = file.dataset_names();
    if names.is_empty() {
        return "none".to_string();
    }
    names.sort();
    let shown: Vec<String> = names
        .iter()
        .take(20)
        .map(|n| format!("'{}'", escape_text(n)))
        .collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Reads frames of one 3-D dataset of an HDF5 file.
pub struct Hdf5MovieReader {
    path: PathBuf,
    dataset_name: String,
    info: MovieInfo,
    dataset: H5Dataset,
    /// Kept open for as long as the dataset is read.
    _file: H5File,
    /// Reused buffers for the stored values of non-f32 movies.
    scratch: ReadScratch,
}

impl Hdf5MovieReader {
    /// Opens dataset `dataset_name` of the HDF5 file `path` as a movie.
    pub fn open(path: &Path, dataset_name: &str) -> Result<Self, IoError> {
        let file = open_hdf5_file(path)?;
        // The name may come from a file (an NWB path) or a flag: escaped
        // wherever it is echoed.
        let shown_name = escape_text(dataset_name);
        let dataset = file.dataset(dataset_name).map_err(|e| {
            if file.dataset_names().iter().any(|n| n == dataset_name) {
                IoError::Hdf5 {
                    path: path.to_path_buf(),
                    action: format!("opening dataset '{shown_name}'"),
                    detail: escape_text(&one_line(e)),
                }
            } else {
                IoError::MissingDataset {
                    path: path.to_path_buf(),
                    dataset: shown_name.clone(),
                    available: list_datasets(&file),
                }
            }
        })?;
        let shape = dataset.shape();
        if shape.len() != 3 {
            return Err(IoError::WrongDimensions {
                path: path.to_path_buf(),
                what: format!("dataset '{shown_name}'"),
                ndims: shape.len(),
            });
        }
        let datatype = dataset.datatype().map_err(|e| IoError::Hdf5 {
            path: path.to_path_buf(),
            action: format!("reading the datatype of dataset '{shown_name}'"),
            detail: escape_text(&one_line(e)),
        })?;
        let dtype = movie_dtype(&datatype).ok_or_else(|| IoError::UnsupportedDtype {
            path: path.to_path_buf(),
            found: format!("{} in dataset '{shown_name}'", describe_datatype(&datatype)),
            supported: READABLE_DTYPES,
        })?;
        let info = MovieInfo {
            frames: shape[0],
            height: shape[1],
            width: shape[2],
            dtype,
        };
        if info.frames == 0 || info.height == 0 || info.width == 0 {
            return Err(IoError::EmptyMovie {
                path: path.to_path_buf(),
                frames: info.frames,
                height: info.height,
                width: info.width,
            });
        }
        check_dataset_sizes(path, &shown_name, &dataset, &info)?;
        Ok(Self {
            path: path.to_path_buf(),
            dataset_name: shown_name,
            info,
            dataset,
            _file: file,
            scratch: ReadScratch::default(),
        })
    }

    /// Reads the stored values of frames `[start, start+count)` into
    /// `stored`, typed as `T`.
    fn read_stored<T: H5Type>(
        &self,
        start: usize,
        count: usize,
        stored: &mut [T],
    ) -> Result<(), IoError> {
        self.dataset
            .read_slice_into(
                stored,
                &[start, 0, 0],
                &[count, self.info.height, self.info.width],
            )
            .map_err(|e| IoError::Hdf5 {
                path: self.path.clone(),
                action: format!(
                    "reading frames {start}..{} of dataset '{}'",
                    start + count,
                    self.dataset_name
                ),
                detail: escape_text(&with_truncation_hint(one_line(e))),
            })
    }

    /// Reads the stored values into `scratch`, then widens them to f32.
    fn read_widened<T: H5Type + Copy + Default>(
        &self,
        start: usize,
        count: usize,
        scratch: &mut Vec<T>,
        out: &mut [f32],
        widen: impl Fn(T) -> f32,
    ) -> Result<(), IoError> {
        scratch.clear();
        scratch.resize(out.len(), T::default());
        self.read_stored(start, count, scratch)?;
        for (o, &v) in out.iter_mut().zip(scratch.iter()) {
            *o = widen(v);
        }
        Ok(())
    }
}

impl MovieReader for Hdf5MovieReader {
    fn info(&self) -> &MovieInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn read_frames(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        check_read_request(&self.path, &self.info, start, count, out.len())?;
        if count == 0 {
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = match self.info.dtype {
            Dtype::F32 => self.read_stored(start, count, out),
            Dtype::I16 => self.read_widened(start, count, &mut scratch.i16, out, f32::from),
            Dtype::U16 => self.read_widened(start, count, &mut scratch.u16, out, f32::from),
            Dtype::U8 => self.read_widened(start, count, &mut scratch.u8, out, f32::from),
            Dtype::F64 => self.read_widened(start, count, &mut scratch.f64, out, |v| v as f32),
        };
        self.scratch = scratch;
        result?;
        check_finite(&self.path, out, self.info.frame_len(), start)
    }
}

/// Checks what a dataset's header declares before anything is sized from
/// it, and returns its byte count (`dims` x `stored` bytes per value): the
/// product must be a real number, the data must fit in what the file can
/// hold (a contiguous dataset: the file's size) and one chunk of a chunked
/// one must fit in the memory budget. `what` names the dataset in messages (escaped).
pub(crate) fn check_dataset_storage(
    path: &Path,
    what: &str,
    dataset: &H5Dataset,
    dims: &[u64],
    stored: u64,
) -> Result<u64, IoError> {
    let mut factors = dims.to_vec();
    factors.push(stored);
    let total = checked_product(path, &format!("{what} {dims:?} x {stored} bytes"), &factors)?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|error| IoError::Os {
            path: path.to_path_buf(),
            action: "reading the file size",
            error,
        })?
        .len();
    let hdf5_err = |e: rust_hdf5::Hdf5Error| IoError::Hdf5 {
        path: path.to_path_buf(),
        action: format!("reading the layout of {what}"),
        detail: escape_text(&one_line(e)),
    };
    match dataset.storage_layout().map_err(hdf5_err)? {
        rust_hdf5::StorageLayout::Contiguous => check_declared(
            path,
            &format!("contiguous {what} {dims:?}"),
            total,
            file_bytes,
        )?,
        rust_hdf5::StorageLayout::Chunked => {
            // A chunked dataset's size is not bounded by the file's: chunks never written read
            // as the fill value (the original writes its zero-padded head that way), and
            // compressed chunks hold more than their bytes. What is read at once is bounded:
            // one chunk here, one frame by the callers.
            if let Some(chunk) = dataset.chunk_dims() {
                let mut factors: Vec<u64> = chunk.iter().map(|&d| d as u64).collect();
                factors.push(stored);
                let what = format!("one chunk {chunk:?} of {what}");
                check_memory(path, &what, checked_product(path, &what, &factors)?)?;
            }
        }
        _ => {}
    }
    Ok(total)
}

/// [`check_dataset_storage`] for a movie, and one frame (as f32, plus the
/// stored values of a non-f32 movie) against the memory budget.
fn check_dataset_sizes(
    path: &Path,
    shown_name: &str,
    dataset: &H5Dataset,
    info: &MovieInfo,
) -> Result<(), IoError> {
    let stored = info.dtype.size_bytes() as u64;
    let [frames, height, width] = [info.frames, info.height, info.width].map(|v| v as u64);
    check_dataset_storage(
        path,
        &format!("dataset '{shown_name}'"),
        dataset,
        &[frames, height, width],
        stored,
    )?;
    let per_pixel = 4 + if info.dtype == Dtype::F32 { 0 } else { stored };
    let what = format!("one frame {height}x{width} of dataset '{shown_name}'");
    check_memory(
        path,
        &what,
        checked_product(path, &what, &[height, width, per_pixel])?,
    )
}

/// Typed read buffers, kept between reads; only the one of the movie's
/// dtype is ever used.
#[derive(Default)]
struct ReadScratch {
    i16: Vec<i16>,
    u16: Vec<u16>,
    u8: Vec<u8>,
    f64: Vec<f64>,
}

/// The open output file and its `data` dataset.
struct Hdf5Sink {
    file: H5File,
    dataset: H5Dataset,
}

/// Streams frames into a new HDF5 file, atomically.
pub struct Hdf5MovieWriter {
    info: MovieInfo,
    /// `None` once closed.
    sink: Option<Hdf5Sink>,
    /// Stored (little-endian) bytes of frames not yet handed to the file.
    batch: Vec<u8>,
    batch_frames: usize,
    max_batch_frames: usize,
    /// Frames handed to the file so far.
    flushed_frames: usize,
    /// Frames accepted by `write_frames` so far.
    written: usize,
    clipped: u64,
    /// Declared last so the file is closed before the temp file is removed.
    temp: TempOutput,
}

impl Hdf5MovieWriter {
    /// Creates the temporary output file and its chunked dataset `data`.
    pub fn create(path: &Path, info: &MovieInfo) -> Result<Self, IoError> {
        let temp = TempOutput::new(path)?;
        let hdf5_err = |action: &str, e: rust_hdf5::Hdf5Error| IoError::Hdf5 {
            path: path.to_path_buf(),
            action: action.to_string(),
            detail: one_line(e),
        };
        let file = H5File::options()
            .best_effort_locking()
            .create(temp.temp_path())
            .map_err(|e| hdf5_err("creating the output file", e))?;
        let (h, w) = (info.height, info.width);
        let dataset = match info.dtype {
            Dtype::I16 => new_movie_dataset::<i16>(&file, h, w),
            Dtype::U16 => new_movie_dataset::<u16>(&file, h, w),
            Dtype::F32 => new_movie_dataset::<f32>(&file, h, w),
            Dtype::U8 | Dtype::F64 => {
                return Err(IoError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    found: format!("{} for output", info.dtype),
                    supported: "int16, uint16, float32",
                });
            }
        }
        .map_err(|e| hdf5_err("creating dataset 'data'", e))?;
        let frame_bytes = info.frame_len() * info.dtype.size_bytes();
        let max_batch_frames =
            (WRITE_BATCH_BYTES / frame_bytes.max(1)).clamp(1, WRITE_BATCH_FRAMES);
        Ok(Self {
            info: info.clone(),
            sink: Some(Hdf5Sink { file, dataset }),
            batch: Vec::new(),
            batch_frames: 0,
            max_batch_frames,
            flushed_frames: 0,
            written: 0,
            clipped: 0,
            temp,
        })
    }

    fn path(&self) -> &Path {
        self.temp.final_path()
    }

    /// Converts frames to the stored type and appends their bytes to the
    /// batch.
    fn push_frames(&mut self, frames: &[f32]) {
        fn push<T: OutputSample, const N: usize>(
            frames: &[f32],
            batch: &mut Vec<u8>,
            to_le: impl Fn(T) -> [u8; N],
        ) -> u64 {
            let mut converted = vec![T::default(); frames.len()];
            let clipped = convert_output(frames, &mut converted);
            batch.reserve(frames.len() * std::mem::size_of::<T>());
            for v in converted {
                batch.extend_from_slice(&to_le(v));
            }
            clipped
        }
        self.clipped += match self.info.dtype {
            Dtype::I16 => push(frames, &mut self.batch, i16::to_le_bytes),
            Dtype::U16 => push(frames, &mut self.batch, u16::to_le_bytes),
            _ => push(frames, &mut self.batch, f32::to_le_bytes),
        };
    }

    /// Compresses and writes the batched frames, then grows the dataset to
    /// cover them.
    fn flush_batch(&mut self) -> Result<(), IoError> {
        if self.batch_frames == 0 {
            return Ok(());
        }
        let path = self.path().to_path_buf();
        let sink = self.sink.as_ref().ok_or_else(|| IoError::InvalidRequest {
            path: path.clone(),
            detail: "writer is already closed".to_string(),
        })?;
        let frame_bytes = self.batch.len() / self.batch_frames;
        let chunks: Vec<(usize, &[u8])> = self
            .batch
            .chunks(frame_bytes)
            .enumerate()
            .map(|(i, bytes)| (self.flushed_frames + i, bytes))
            .collect();
        let end = self.flushed_frames + self.batch_frames;
        let action = || format!("writing frames {}..{end}", self.flushed_frames);
        let written = sink.dataset.write_chunks_batch(&chunks).and_then(|()| {
            sink.dataset
                .extend(&[end, self.info.height, self.info.width])
        });
        if let Err(e) = written {
            let error = write_error(&path, action(), e);
            drop(chunks);
            abandon(self.sink.take());
            return Err(error);
        }
        self.flushed_frames = end;
        self.batch.clear();
        self.batch_frames = 0;
        Ok(())
    }
}

/// An error of rust-hdf5 while writing `path`: a full disk is said first and
/// plainly ([`IoError::OutputFull`]), anything else as an HDF5 error.
fn write_error(path: &Path, action: String, error: rust_hdf5::Hdf5Error) -> IoError {
    let cause = match &error {
        rust_hdf5::Hdf5Error::Io(os) => disk_full_cause(os),
        other => disk_full_cause_in_text(&other.to_string()),
    };
    match cause {
        Some(cause) => IoError::OutputFull {
            path: path.to_path_buf(),
            cause,
        },
        None => IoError::Hdf5 {
            path: path.to_path_buf(),
            action,
            detail: one_line(error),
        },
    }
}

/// Closes a sink whose writes failed, dropping the (certain) close error:
/// left to its `Drop`, rust-hdf5 would print its own "file may be incomplete
/// or corrupt" notice to stderr before the caller could report the real
/// cause. The temporary file is removed by the writer's guard either way.
fn abandon(sink: Option<Hdf5Sink>) {
    if let Some(sink) = sink {
        drop(sink.dataset);
        let _ = sink.file.close_no_sync();
    }
}

/// Creates dataset `data` `[0.., h, w]`: one frame per chunk, unlimited
/// frames, shuffle + deflate.
fn new_movie_dataset<T: H5Type>(
    file: &H5File,
    height: usize,
    width: usize,
) -> rust_hdf5::Result<H5Dataset> {
    file.new_dataset::<T>()
        .shape([0, height, width])
        .chunk(&[1, height, width])
        .max_shape(&[None, Some(height), Some(width)])
        .shuffle_deflate(DEFLATE_LEVEL)
        .create(crate::movie::DEFAULT_DATASET)
}

impl MovieWriter for Hdf5MovieWriter {
    fn write_frames(&mut self, frames: &[f32], count: usize) -> Result<(), IoError> {
        check_write_request(self.path(), &self.info, self.written, frames.len(), count)?;
        let frame_len = self.info.frame_len();
        let mut rest = frames;
        while !rest.is_empty() {
            let take = (self.max_batch_frames - self.batch_frames).min(rest.len() / frame_len);
            let (now, later) = rest.split_at(take * frame_len);
            self.push_frames(now);
            self.batch_frames += take;
            if self.batch_frames >= self.max_batch_frames {
                self.flush_batch()?;
            }
            rest = later;
        }
        self.written += count;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<WriteSummary, IoError> {
        if self.written != self.info.frames {
            return Err(IoError::FrameCount {
                path: self.path().to_path_buf(),
                written: self.written,
                expected: self.info.frames,
            });
        }
        self.flush_batch()?;
        let path = self.path().to_path_buf();
        if let Some(sink) = self.sink.take() {
            drop(sink.dataset);
            sink.file
                .close()
                .map_err(|e| write_error(&path, "closing the output file".to_string(), e))?;
        }
        let this = *self;
        let clipped_values = this.clipped;
        let frames = this.written;
        let path = this.temp.commit()?;
        Ok(WriteSummary {
            frames,
            clipped_values,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk is reported first and plainly, whether rust-hdf5 hands
    /// the OS error over or only its text; other errors stay HDF5 errors.
    #[test]
    fn a_full_disk_is_named_before_anything_else() {
        let path = Path::new("out.h5");
        let enospc = rust_hdf5::Hdf5Error::Io(std::io::Error::from_raw_os_error(28));
        let message = write_error(path, "writing frames 0..64".into(), enospc).to_string();
        assert!(
            message.starts_with("out.h5: cannot write the output: no space left on device"),
            "{message}"
        );
        assert!(message.contains("nothing was left behind"), "{message}");
        let wrapped = rust_hdf5::Hdf5Error::InvalidState(
            "flush failed: No space left on device (os error 28)".into(),
        );
        let message = write_error(path, "closing".into(), wrapped).to_string();
        assert!(
            message.starts_with("out.h5: cannot write the output: no space left on device"),
            "{message}"
        );
        let other = rust_hdf5::Hdf5Error::InvalidState("something else".into());
        let message = write_error(path, "closing".into(), other).to_string();
        assert!(
            message.starts_with("out.h5: HDF5 error while closing"),
            "{message}"
        );
    }
}
