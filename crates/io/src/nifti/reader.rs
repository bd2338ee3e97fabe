//! Reading NIfTI volumes as f32, one volume in memory at a time: positioned
//! reads in a `.nii`, a forward-decoding gzip stream in a `.nii.gz`.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::VolumeInfo;
use super::header::{Header, read_header, read_up_to};
use super::samples::decode_values;
use crate::error::{IoError, check_buffer_len};
use crate::limits::{DEFLATE_MAX_RATIO, check_declared, check_memory, checked_product};
use crate::movie::{check_finite, require_file};

/// How far past the last volume a `.nii.gz` is decoded to reach its end.
const TRAILING_BYTES_CHECKED: u64 = 1 << 20;

/// Compressed bytes read from disk per system call.
const GZIP_READ_BUFFER: usize = 256 << 10;

/// Boxed: the inflater's state is tens of kilobytes, held inline.
type GzStream = Box<MultiGzDecoder<BufReader<File>>>;

/// Where the volumes come from.
enum Source {
    /// A `.nii`: each volume is read at its own offset.
    Plain(File),
    /// A `.nii.gz`: the decoder sits just before volume `next_volume`'s
    /// bytes; `None` after an error, so the next read starts over.
    Gzip {
        stream: Option<GzStream>,
        next_volume: usize,
    },
}

/// Reads the volumes of one NIfTI image (`.nii` or `.nii.gz`).
pub struct VolumeReader {
    info: VolumeInfo,
    header: Header,
    source: Source,
    /// One volume's stored bytes: the only buffer that scales with the image.
    volume: Vec<u8>,
}

/// Opens a NIfTI-1 or NIfTI-2 image. A gzip-compressed file is recognised
/// by its content, whatever its name. A `.nii` whose data is shorter than
/// its header announces is refused here; a `.nii.gz` cut short fails when
/// the missing volume is read.
pub fn open_volume(path: &Path) -> Result<VolumeReader, IoError> {
    require_file(path)?;
    let mut file = open_file(path)?;
    let file_bytes = file
        .metadata()
        .map_err(|source| IoError::Os {
            path: path.to_path_buf(),
            action: "reading the file size",
            error: source,
        })?
        .len();
    let compressed = starts_with_gzip_magic(path, &mut file)?;
    let (header, source) = if compressed {
        let mut stream = gzip_stream(file);
        let header = read_header(path, &mut stream)?;
        let source = Source::Gzip {
            stream: Some(stream),
            next_volume: 0,
        };
        (header, source)
    } else {
        let header = read_header(path, &mut file)?;
        (header, Source::Plain(file))
    };
    let info = header.volume_info(path, compressed)?;
    let [x, y, z] = info.shape.map(|s| s as u64);
    let dims = format!("{:?} {}", [x, y, z, info.frames as u64], info.dtype);
    let volume_bytes_u64 = checked_product(
        path,
        &format!("one volume of {dims}"),
        &[x, y, z, info.dtype.size_bytes() as u64],
    )?;
    let data_bytes = checked_product(
        path,
        &format!("the image {dims}"),
        &[volume_bytes_u64, info.frames as u64],
    )?;
    let needed = data_bytes
        .checked_add(header.data_offset())
        .ok_or_else(|| IoError::TooLarge {
            path: path.to_path_buf(),
            detail: format!("the image {dims} is too large to be real"),
        })?;
    if compressed {
        // Checked before any volume is inflated: a small "gzip bomb" cannot
        // declare more than deflate can produce from its bytes.
        check_declared(
            path,
            &format!("the image {dims} (even at deflate's maximum ratio of {DEFLATE_MAX_RATIO}:1)"),
            needed,
            file_bytes.saturating_mul(DEFLATE_MAX_RATIO),
        )?;
    }
    if !compressed && file_bytes < needed {
        let complete = file_bytes.saturating_sub(header.data_offset()) / volume_bytes_u64;
        return Err(IoError::Nifti {
            path: path.to_path_buf(),
            detail: format!(
                "truncated: {} volumes of {volume_bytes_u64} bytes after the {}-byte header \
                 need {needed} bytes, but the file has {file_bytes} (volume {complete} is \
                 incomplete)",
                info.frames,
                header.data_offset()
            ),
        });
    }
    check_memory(path, &format!("one volume of {dims}"), volume_bytes_u64)?;
    let volume_bytes = usize::try_from(volume_bytes_u64).map_err(|_| IoError::TooLarge {
        path: path.to_path_buf(),
        detail: format!("one volume of {dims} does not fit this machine's address space"),
    })?;
    Ok(VolumeReader {
        info,
        header,
        source,
        volume: vec![0; volume_bytes],
    })
}

impl VolumeReader {
    pub fn info(&self) -> &VolumeInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.info.path
    }

    /// The header as stored: 348 (NIfTI-1) or 540 (NIfTI-2) bytes, the
    /// 4-byte extension flag and any extensions, up to `vox_offset`; in the
    /// file's byte order.
    pub fn header_bytes(&self) -> &[u8] {
        self.header.bytes()
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// Reads volumes `[start, start+count)` into `out` (`count *
    /// volume_len` values), x fastest, then y, z and volume, with the
    /// header's scaling applied (`value * slope + inter` in f64, then cast).
    ///
    /// Fails, naming the file and volume, on NaN or infinity and on a file
    /// that ends early.
    pub fn read_volumes(
        &mut self,
        start: usize,
        count: usize,
        out: &mut [f32],
    ) -> Result<(), IoError> {
        let end = start.saturating_add(count);
        if end > self.info.frames {
            return Err(IoError::FrameRange {
                path: self.info.path.clone(),
                start,
                end,
                frames: self.info.frames,
            });
        }
        let volume_len = self.info.volume_len();
        check_buffer_len(&self.info.path, count.saturating_mul(volume_len), out.len())?;
        for (volume, values) in (start..end).zip(out.chunks_exact_mut(volume_len)) {
            self.load(volume)?;
            decode_values(
                self.info.dtype,
                self.header.big_endian(),
                self.info.scaling,
                &self.volume,
                values,
            );
            check_finite(&self.info.path, values, volume_len, volume)?;
        }
        Ok(())
    }

    /// Bytes this reader buffers for data (not counting the decoder's fixed
    /// window), for the tests that memory does not grow with the image.
    #[cfg(test)]
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.volume.capacity()
    }

    /// Fills `self.volume` with the stored bytes of `volume`.
    fn load(&mut self, volume: usize) -> Result<(), IoError> {
        let volume_bytes = self.volume.len();
        let data_offset = self.header.data_offset();
        let path = self.info.path.as_path();
        match &mut self.source {
            Source::Plain(file) => {
                let at = data_offset + (volume * volume_bytes) as u64;
                file.seek(SeekFrom::Start(at))
                    .map_err(|source| IoError::Os {
                        path: path.to_path_buf(),
                        action: "seeking to a volume",
                        error: source,
                    })?;
                let got = read_up_to(path, file, &mut self.volume, "a volume")?;
                if got < volume_bytes {
                    // The file shrank after it was opened.
                    return Err(truncated(path, volume, got, volume_bytes));
                }
                Ok(())
            }
            Source::Gzip {
                stream,
                next_volume,
            } => {
                // The decoder is taken out and put back only after a
                // successful read: after an error the next read starts over.
                let decoder = match stream.take() {
                    Some(decoder) if volume >= *next_volume => decoder,
                    _ => {
                        *next_volume = 0;
                        reopen_at_data(path, data_offset)?
                    }
                };
                *stream = Some(load_from_gzip(
                    path,
                    decoder,
                    next_volume,
                    volume,
                    self.info.frames,
                    &mut self.volume,
                )?);
                Ok(())
            }
        }
    }
}

/// A fresh decoder positioned at the first volume.
fn reopen_at_data(path: &Path, data_offset: u64) -> Result<GzStream, IoError> {
    let mut decoder = gzip_stream(open_file(path)?);
    let skipped = skip(path, &mut decoder, data_offset, "the header")?;
    if skipped < data_offset {
        return Err(IoError::Nifti {
            path: path.to_path_buf(),
            detail: format!(
                "truncated: the file now ends at byte {skipped}, before the data (did it change \
                 since it was opened?)"
            ),
        });
    }
    Ok(decoder)
}

/// Decodes forward from volume `next_volume` to `volume`, reads it into
/// `buffer` and hands the decoder back, positioned after it.
fn load_from_gzip(
    path: &Path,
    mut decoder: GzStream,
    next_volume: &mut usize,
    volume: usize,
    frames: usize,
    buffer: &mut [u8],
) -> Result<GzStream, IoError> {
    let volume_bytes = buffer.len();
    if volume > *next_volume {
        let wanted = ((volume - *next_volume) * volume_bytes) as u64;
        let skipped = skip(path, &mut decoder, wanted, "the data")?;
        if skipped < wanted {
            let reached = *next_volume + (skipped / volume_bytes as u64) as usize;
            let partial = (skipped % volume_bytes as u64) as usize;
            return Err(truncated(path, reached, partial, volume_bytes));
        }
        *next_volume = volume;
    }
    let got = read_up_to(path, &mut decoder, buffer, "the data")?;
    if got < volume_bytes {
        return Err(truncated(path, volume, got, volume_bytes));
    }
    *next_volume = volume + 1;
    if *next_volume == frames {
        // Decoding to the end of the stream makes the decoder check the
        // gzip CRC, so corruption the inflater let through is still caught.
        // (Padding after the data is allowed; a long tail is not checked.)
        skip(
            path,
            &mut decoder,
            TRAILING_BYTES_CHECKED,
            "the end of the data",
        )?;
    }
    Ok(decoder)
}

/// Decodes and discards `count` bytes through a small fixed buffer;
/// returns how many there were before the stream ended.
fn skip(path: &Path, decoder: &mut GzStream, count: u64, what: &str) -> Result<u64, IoError> {
    let mut scratch = [0u8; 16 << 10];
    let mut done = 0u64;
    while done < count {
        let len = scratch.len().min((count - done) as usize);
        let got = read_up_to(path, decoder, &mut scratch[..len], what)?;
        done += got as u64;
        if got < len {
            break;
        }
    }
    Ok(done)
}

fn truncated(path: &Path, volume: usize, present: usize, volume_bytes: usize) -> IoError {
    IoError::Nifti {
        path: path.to_path_buf(),
        detail: format!(
            "truncated: the data ends inside volume {volume} ({present} of its {volume_bytes} \
             bytes are present)"
        ),
    }
}

fn open_file(path: &Path) -> Result<File, IoError> {
    File::open(path).map_err(|source| IoError::Os {
        path: path.to_path_buf(),
        action: "opening",
        error: source,
    })
}

fn gzip_stream(file: File) -> GzStream {
    Box::new(MultiGzDecoder::new(BufReader::with_capacity(
        GZIP_READ_BUFFER,
        file,
    )))
}

/// Whether the file starts with the gzip magic `1f 8b`; leaves the file at
/// its start.
fn starts_with_gzip_magic(path: &Path, file: &mut File) -> Result<bool, IoError> {
    let mut magic = [0u8; 2];
    let got = read_up_to(path, file, &mut magic, "the first bytes")?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| IoError::Os {
            path: path.to_path_buf(),
            action: "seeking to the start",
            error: source,
        })?;
    Ok(got == 2 && magic == [0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::{NewVolume, NiftiDtype, create_volume};

    #[test]
    fn reading_a_long_gzip_recording_buffers_one_volume() {
        let dir = std::env::temp_dir().join(format!("nifti-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("long.nii.gz");
        let new = NewVolume {
            shape: [8, 6, 5],
            frames: 200,
            dtype: NiftiDtype::I16,
            voxel_size: [1.0; 3],
            repetition_time_s: 1.0,
            description: String::new(),
        };
        let volume_len = 8 * 6 * 5;
        let mut writer = create_volume(&path, &new).expect("create");
        for t in 0..new.frames {
            let volume: Vec<f32> = (0..volume_len).map(|i| (t * 7 + i) as f32).collect();
            writer.write_volumes(&volume, 1).expect("write");
        }
        writer.finish().expect("finish");

        let mut reader = open_volume(&path).expect("open");
        let volume_bytes = volume_len * 2;
        let mut out = vec![0f32; volume_len];
        // Forward one by one, then backwards (each a restart), then jumps.
        let order = (0..200)
            .chain((0..200).rev().step_by(37))
            .chain([3, 150, 199]);
        for t in order {
            reader.read_volumes(t, 1, &mut out).expect("read");
            assert_eq!(out[0], (t * 7) as f32, "volume {t}");
            assert_eq!(reader.buffered_bytes(), volume_bytes);
        }
        let mut all = vec![0f32; 200 * volume_len];
        reader.read_volumes(0, 200, &mut all).expect("read all");
        assert_eq!(reader.buffered_bytes(), volume_bytes);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
