//! Writing NIfTI images: a header copied from a source image (or made from
//! scratch for simulations), then the volumes streamed into a temporary
//! file (through gzip for `.nii.gz`) that is renamed onto the output only
//! when every announced volume was written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::header::Header;
use super::samples::encode_values;
use super::{NiftiDtype, VolumeInfo, VolumeReader, nifti_compression};
use crate::error::{IoError, check_buffer_len};
use crate::movie::{TempOutput, WriteSummary};

/// zlib level 1. Measured on a noisy 64x64x40x300 int16 recording (98 MB):
/// level 1 wrote in 2.8 s to 67.1 MB, level 3 in 7.3 s to 65.6 MB, level 6
/// (gzip's default) in 24.7 s to 65.0 MB: noise does not compress, so higher
/// levels buy ~3% for up to 9x the time.
const GZIP_LEVEL: u32 = 1;
const WRITE_BUFFER: usize = 1 << 20;

/// What a fresh NIfTI-1 image for simulated data looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct NewVolume {
    /// `[x, y, z]`.
    pub shape: [usize; 3],
    pub frames: usize,
    pub dtype: NiftiDtype,
    /// Voxel size in mm.
    pub voxel_size: [f64; 3],
    /// Seconds between volumes.
    pub repetition_time_s: f64,
    /// The header's `descrip` (at most 79 bytes are kept).
    pub description: String,
}

/// Where the bytes go: the temporary file, plain or through gzip.
enum Sink {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(out) => out.write_all(bytes),
            Sink::Gzip(out) => out.write_all(bytes),
        }
    }

    /// Ends the gzip stream, flushes, and syncs the file to disk.
    fn finish(self) -> std::io::Result<()> {
        let buffered = match self {
            Sink::Plain(out) => out,
            Sink::Gzip(out) => out.finish()?,
        };
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// Writes the volumes of one NIfTI image, atomically.
pub struct VolumeWriter {
    info: VolumeInfo,
    big_endian: bool,
    // Declared before `temp` so the file is closed before an unfinished
    // temporary file is removed.
    sink: Sink,
    temp: TempOutput,
    written: usize,
    clipped_values: u64,
    bytes: Vec<u8>,
}

/// A writer for `frames` volumes of `dtype` with `source`'s header: its
/// affine (qform/sform), pixdim and TR, units, intent, slice timing,
/// description and extensions, in its NIfTI version and byte order. Only
/// the datatype, `dim[4]`, the scaling (slope 1, intercept 0), the display
/// range (`cal_min`/`cal_max`, zeroed) and `vox_offset` change. The output
/// is `.nii` or `.nii.gz` by its own extension.
pub fn create_volume_like(
    source: &VolumeReader,
    output: &Path,
    dtype: NiftiDtype,
    frames: usize,
) -> Result<VolumeWriter, IoError> {
    let header = source.header().for_output(output, dtype, frames)?;
    VolumeWriter::create(output, header)
}

/// A writer for a fresh little-endian NIfTI-1 image: a diagonal affine of
/// the voxel sizes centred on the scanner origin (qform and sform code 1,
/// scanner), units mm and s.
pub fn create_volume(path: &Path, new: &NewVolume) -> Result<VolumeWriter, IoError> {
    let invalid = |detail: String| IoError::InvalidRequest {
        path: path.to_path_buf(),
        detail,
    };
    let sizes = [new.shape[0], new.shape[1], new.shape[2], new.frames];
    if sizes.iter().any(|&s| s == 0 || s > i16::MAX as usize) {
        return Err(invalid(format!(
            "shape {:?} and {} volumes: every size must be 1 to 32767 in a NIfTI-1 image",
            new.shape, new.frames
        )));
    }
    if new.voxel_size.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
        return Err(invalid(format!(
            "voxel size {:?} mm: each must be positive",
            new.voxel_size
        )));
    }
    if !(new.repetition_time_s.is_finite() && new.repetition_time_s >= 0.0) {
        return Err(invalid(format!(
            "repetition time {} s: must be 0 (unknown) or positive",
            new.repetition_time_s
        )));
    }
    let header = Header::new_nifti1(
        new.shape,
        new.frames,
        new.dtype,
        new.voxel_size,
        new.repetition_time_s,
        &new.description,
    );
    VolumeWriter::create(path, header)
}

impl VolumeWriter {
    fn create(output: &Path, header: Header) -> Result<Self, IoError> {
        let Some(compressed) = nifti_compression(output) else {
            return Err(IoError::Nifti {
                path: output.to_path_buf(),
                detail: "a NIfTI output's name must end in .nii or .nii.gz".to_string(),
            });
        };
        let info = header.volume_info(output, compressed)?;
        let temp = TempOutput::new(output)?;
        let file = File::create(temp.temp_path()).map_err(|source| IoError::Os {
            path: output.to_path_buf(),
            action: "creating the output",
            error: source,
        })?;
        let buffered = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut sink = if compressed {
            Sink::Gzip(GzEncoder::new(buffered, Compression::new(GZIP_LEVEL)))
        } else {
            Sink::Plain(buffered)
        };
        sink.write_all(header.bytes())
            .map_err(|source| write_error(output, source))?;
        Ok(Self {
            info,
            big_endian: header.big_endian(),
            sink,
            temp,
            written: 0,
            clipped_values: 0,
            bytes: Vec::new(),
        })
    }

    /// What will be written: the output path, shape, volumes, type, voxel
    /// size, TR and NIfTI version (never scaled).
    pub fn info(&self) -> &VolumeInfo {
        &self.info
    }

    /// Appends `count` volumes (x fastest, then y, z, volume). Integer
    /// outputs are rounded to nearest (ties to even) and clipped to the
    /// type's range; clipped values, and NaN (stored as 0), are counted.
    pub fn write_volumes(&mut self, volumes: &[f32], count: usize) -> Result<(), IoError> {
        let path = self.temp.final_path();
        let volume_len = self.info.volume_len();
        check_buffer_len(path, count.saturating_mul(volume_len), volumes.len())?;
        let after = self.written.saturating_add(count);
        if after > self.info.frames {
            return Err(IoError::FrameCount {
                path: path.to_path_buf(),
                written: after,
                expected: self.info.frames,
            });
        }
        // Volume by volume, so the byte buffer stays one volume long.
        for volume in volumes.chunks_exact(volume_len) {
            self.bytes.clear();
            self.clipped_values +=
                encode_values(self.info.dtype, self.big_endian, volume, &mut self.bytes);
            self.sink
                .write_all(&self.bytes)
                .map_err(|source| write_error(path, source))?;
        }
        self.written = after;
        Ok(())
    }

    /// Checks that every announced volume was written, ends the gzip
    /// stream, syncs the file and renames it onto the output path. A writer
    /// dropped without `finish` removes its temporary file.
    pub fn finish(self) -> Result<WriteSummary, IoError> {
        let path = self.temp.final_path().to_path_buf();
        if self.written != self.info.frames {
            return Err(IoError::FrameCount {
                path,
                written: self.written,
                expected: self.info.frames,
            });
        }
        self.sink.finish().map_err(|source| IoError::Os {
            path: path.clone(),
            action: "finishing the output",
            error: source,
        })?;
        let path = self.temp.commit()?;
        Ok(WriteSummary {
            frames: self.written,
            clipped_values: self.clipped_values,
            path,
        })
    }
}

fn write_error(path: &Path, source: std::io::Error) -> IoError {
    IoError::Os {
        path: path.to_path_buf(),
        action: "writing volumes",
        error: source,
    }
}
