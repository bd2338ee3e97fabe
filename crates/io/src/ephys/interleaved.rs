//! The reader shared by every format that stores samples interleaved
//! `[sample][channel]` little-endian in one file (raw, SpikeGLX, Open Ephys
//! binary): positioned reads of just the requested rows, decoded block by
//! block through a bounded scratch buffer.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{EphysInfo, EphysReader, block_samples, check_read_request, os_error};
use crate::error::IoError;
use crate::movie::{Dtype, require_file};

/// An interleaved recording file and what its header said about it.
pub(crate) struct InterleavedReader {
    info: EphysInfo,
    /// The path the recording was opened from.
    opened_as: PathBuf,
    /// The file holding the samples.
    data_path: PathBuf,
    file: File,
    /// Bytes of one sample of all saved channels.
    row_bytes: usize,
    /// `0..saved_channels`, the selection `read_saved` reads.
    all_channels: Vec<usize>,
    scratch: Vec<u8>,
}

/// The number of whole samples in `data_path`, or an error if its size is
/// not a whole number of samples.
pub(crate) fn count_samples(
    data_path: &Path,
    saved_channels: usize,
    dtype: Dtype,
) -> Result<usize, IoError> {
    require_file(data_path)?;
    let bytes = std::fs::metadata(data_path)
        .map_err(os_error(data_path, "reading the file size"))?
        .len();
    if saved_channels == 0 {
        return Err(IoError::Recording {
            path: data_path.to_path_buf(),
            detail: "a recording needs at least one channel".to_string(),
        });
    }
    if saved_channels > super::MAX_CHANNELS {
        return Err(IoError::TooLarge {
            path: data_path.to_path_buf(),
            detail: format!(
                "{saved_channels} channels per sample is more than any recording has (at most {})",
                super::MAX_CHANNELS
            ),
        });
    }
    let row_bytes = crate::limits::checked_product(
        data_path,
        "one sample of every channel",
        &[saved_channels as u64, dtype.size_bytes() as u64],
    )?;
    if row_bytes > bytes && bytes > 0 {
        return Err(IoError::Recording {
            path: data_path.to_path_buf(),
            detail: format!(
                "one sample of {saved_channels} channels × {} bytes needs {row_bytes} bytes, but \
                 the file holds only {bytes} (wrong channel count?)",
                dtype.size_bytes()
            ),
        });
    }
    if bytes % row_bytes != 0 {
        return Err(IoError::Recording {
            path: data_path.to_path_buf(),
            detail: format!(
                "file size {bytes} is not a whole number of samples of {saved_channels} channels \
                 × {} bytes (truncated?)",
                dtype.size_bytes()
            ),
        });
    }
    let samples = usize::try_from(bytes / row_bytes).map_err(|_| IoError::Recording {
        path: data_path.to_path_buf(),
        detail: format!("file of {bytes} bytes is too large for this machine"),
    })?;
    if samples == 0 {
        return Err(IoError::Recording {
            path: data_path.to_path_buf(),
            detail: "recording holds no samples (empty file)".to_string(),
        });
    }
    Ok(samples)
}

impl InterleavedReader {
    /// Opens `data_path`, whose contents `info` describes (`info.samples`
    /// already checked against the file size).
    pub(crate) fn open(
        opened_as: &Path,
        data_path: &Path,
        info: EphysInfo,
    ) -> Result<Self, IoError> {
        let file = File::open(data_path).map_err(os_error(data_path, "opening"))?;
        let row_bytes = info.saved_channels * info.dtype.size_bytes();
        Ok(Self {
            all_channels: (0..info.saved_channels).collect(),
            info,
            opened_as: opened_as.to_path_buf(),
            data_path: data_path.to_path_buf(),
            file,
            row_bytes,
            scratch: Vec::new(),
        })
    }

    /// Reads samples `[start, start + count)` of all saved channels into the
    /// scratch buffer.
    fn read_rows(&mut self, start: usize, count: usize) -> Result<(), IoError> {
        // Both bounded by the file's size: `start + count` was checked
        // against the sample count, itself the file size over `row_bytes`.
        let offset = (start as u64) * (self.row_bytes as u64);
        self.scratch.resize(count * self.row_bytes, 0);
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(os_error(&self.data_path, "seeking to the samples"))?;
        self.file
            .read_exact(&mut self.scratch)
            .map_err(os_error(&self.data_path, "reading samples"))
    }

    /// Reads `[start, start + count)` of the saved channels `channels` into
    /// `out` (`[count][channels.len()]`), block by block.
    fn read_channels(
        &mut self,
        start: usize,
        count: usize,
        channels: &[usize],
        out: &mut [f32],
    ) -> Result<(), IoError> {
        let width = channels.len();
        check_read_request(
            &self.data_path,
            self.info.samples,
            start,
            count,
            width,
            out.len(),
        )?;
        let block = block_samples(self.row_bytes);
        let mut done = 0;
        while done < count {
            let len = block.min(count - done);
            self.read_rows(start + done, len)?;
            let rows = self.scratch.chunks_exact(self.row_bytes);
            let outs = out[done * width..(done + len) * width].chunks_exact_mut(width.max(1));
            match self.info.dtype {
                Dtype::F32 => {
                    for (i, (row, dst)) in rows.zip(outs).enumerate() {
                        for (d, &ch) in dst.iter_mut().zip(channels) {
                            let b = &row[4 * ch..4 * ch + 4];
                            let value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                            if !value.is_finite() {
                                return Err(IoError::Recording {
                                    path: self.data_path.clone(),
                                    detail: format!(
                                        "sample {} of channel {ch} is not finite ({value})",
                                        start + done + i
                                    ),
                                });
                            }
                            *d = value;
                        }
                    }
                }
                _ => {
                    for (row, dst) in rows.zip(outs) {
                        for (d, &ch) in dst.iter_mut().zip(channels) {
                            *d = f32::from(i16::from_le_bytes([row[2 * ch], row[2 * ch + 1]]));
                        }
                    }
                }
            }
            done += len;
        }
        Ok(())
    }
}

impl EphysReader for InterleavedReader {
    fn info(&self) -> &EphysInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        &self.opened_as
    }

    fn read_samples(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        let channels = std::mem::take(&mut self.info.neural_channels);
        let result = self.read_channels(start, count, &channels, out);
        self.info.neural_channels = channels;
        result
    }

    fn read_saved(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        let channels = std::mem::take(&mut self.all_channels);
        let result = self.read_channels(start, count, &channels, out);
        self.all_channels = channels;
        result
    }
}
