//! Movies stored as multi-page TIFF (one grayscale page per frame), classic
//! TIFF or BigTIFF, as ScanImage and tifffile write them.
//!
//! On open the reader walks the chain of page directories once (directory
//! entries only, no pixel data) to count the pages and check that they all
//! have the same size and type; `read_frames` then seeks to the requested
//! pages. The writer writes one uncompressed page per frame, switching to
//! BigTIFF when the file could pass the 4 GiB limit of classic TIFF.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::{TiffEncoder, TiffKind, TiffKindBig, TiffKindStandard, colortype};
use tiff::tags::{SampleFormat, Tag};
use tiff::{ColorType, TiffError};

use crate::error::{IoError, one_line};
use crate::limits::{check_declared, check_memory, checked_product, memory_budget};
use crate::movie::{
    Dtype, MovieInfo, MovieReader, MovieWriter, OutputSample, TempOutput, WriteSummary,
    check_finite, check_read_request, check_write_request, convert_output, require_file,
};

/// Files whose estimated size passes this are written as BigTIFF (classic
/// TIFF offsets are 32-bit; the margin covers directories and rounding).
const BIGTIFF_THRESHOLD_BYTES: u64 = 3_900_000_000;

/// Directory bytes per page budgeted in the size estimate.
const PAGE_OVERHEAD_BYTES: u64 = 512;

/// What one page holds: its size and element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageFormat {
    width: u32,
    height: u32,
    dtype: Dtype,
}

impl std::fmt::Display for PageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} {}", self.width, self.height, self.dtype)
    }
}

/// Reads frames of a multi-page grayscale TIFF.
pub struct TiffMovieReader {
    path: PathBuf,
    info: MovieInfo,
    decoder: Decoder<BufReader<File>>,
}

impl TiffMovieReader {
    /// Opens `path`, counts its pages and checks they all match page 0.
    pub fn open(path: &Path) -> Result<Self, IoError> {
        require_file(path)?;
        let file = File::open(path).map_err(|source| IoError::Os {
            path: path.to_path_buf(),
            action: "opening",
            error: source,
        })?;
        let file_bytes = file
            .metadata()
            .map_err(|error| IoError::Os {
                path: path.to_path_buf(),
                action: "reading the file size",
                error,
            })?
            .len();
        let not_tiff = |e: TiffError| IoError::NotTiff {
            path: path.to_path_buf(),
            detail: one_line(e),
        };
        let mut reader = BufReader::with_capacity(1 << 16, file);
        check_first_directory(path, &mut reader, file_bytes)?;
        let mut decoder = Decoder::new(reader)
            .map_err(not_tiff)?
            .with_limits(decoder_limits(file_bytes));
        let first = page_format(path, &mut decoder, 0, file_bytes)?;
        let mut pages = 1usize;
        while decoder.more_images() {
            decoder.next_image().map_err(|e| IoError::NotTiff {
                path: path.to_path_buf(),
                detail: format!("page {pages} is unreadable: {}", one_line(e)),
            })?;
            let format = page_format(path, &mut decoder, pages, file_bytes)?;
            if format != first {
                return Err(IoError::InconsistentPages {
                    path: path.to_path_buf(),
                    page: pages,
                    found: format.to_string(),
                    expected: first.to_string(),
                });
            }
            pages += 1;
        }
        let info = MovieInfo {
            frames: pages,
            height: first.height as usize,
            width: first.width as usize,
            dtype: first.dtype,
        };
        if info.frame_len() == 0 {
            return Err(IoError::EmptyMovie {
                path: path.to_path_buf(),
                frames: info.frames,
                height: info.height,
                width: info.width,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            info,
            decoder,
        })
    }

    fn tiff_err(&self, action: String, e: TiffError) -> IoError {
        IoError::Tiff {
            path: self.path.clone(),
            action,
            detail: one_line(e),
        }
    }
}

/// `tiff::Decoder::new` reads the first directory with the crate's default limits (one tag
/// may take up to 256 MiB) before [`decoder_limits`] can apply, so a 40-byte file could make it
/// allocate that much. The first directory's tags are checked here first: each tag's values
/// must fit in the file. Anything else odd is left to the decoder, which says what is wrong.
/// The reader is rewound to the start.
fn check_first_directory(
    path: &Path,
    reader: &mut BufReader<File>,
    file_bytes: u64,
) -> Result<(), IoError> {
    let os = |error| IoError::Os {
        path: path.to_path_buf(),
        action: "reading the TIFF header",
        error,
    };
    let take = |reader: &mut BufReader<File>, count: usize| -> Option<[u8; 8]> {
        let mut bytes = [0u8; 8];
        std::io::Read::read_exact(reader, &mut bytes[..count]).ok()?;
        Some(bytes)
    };
    let checked = (|| -> Option<Result<(), IoError>> {
        let header = take(reader, 8)?;
        let little = match &header[..2] {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        let number = |bytes: &[u8]| -> u64 {
            let mut wide = [0u8; 8];
            if little {
                wide[..bytes.len()].copy_from_slice(bytes);
                u64::from_le_bytes(wide)
            } else {
                wide[8 - bytes.len()..].copy_from_slice(bytes);
                u64::from_be_bytes(wide)
            }
        };
        let big = match number(&header[2..4]) {
            42 => false,
            43 => true,
            _ => return None,
        };
        let first_ifd = if big {
            number(&take(reader, 8)?)
        } else {
            number(&header[4..8])
        };
        reader.seek(SeekFrom::Start(first_ifd)).ok()?;
        let (count_bytes, value_count_bytes, entry_bytes) =
            if big { (8, 8, 20) } else { (2, 4, 12) };
        let entries = number(&take(reader, count_bytes)?[..count_bytes]);
        if entries.saturating_mul(entry_bytes) > file_bytes {
            return Some(check_declared(
                path,
                &format!("the first TIFF directory ({entries} entries)"),
                entries.saturating_mul(entry_bytes),
                file_bytes,
            ));
        }
        for _ in 0..entries {
            let entry = take(reader, 4)?;
            let tag = number(&entry[..2]);
            let value_size = match number(&entry[2..4]) {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 | 13 => 4,
                5 | 10 | 12 | 16 | 17 | 18 => 8,
                _ => 1,
            };
            let values = number(&take(reader, value_count_bytes)?[..value_count_bytes]);
            let declared = values.saturating_mul(value_size);
            if declared > file_bytes {
                return Some(check_declared(
                    path,
                    &format!("TIFF tag {tag} of the first directory"),
                    declared,
                    file_bytes,
                ));
            }
            // The value or its offset.
            take(reader, entry_bytes as usize - 4 - value_count_bytes)?;
        }
        Some(Ok(()))
    })();
    reader.seek(SeekFrom::Start(0)).map_err(os)?;
    checked.unwrap_or(Ok(()))
}

/// The tiff crate's own limits, as a second line behind [`check_page_sizes`]:
/// no decoded page or intermediate buffer past the memory budget, and no
/// directory value (a strip offset list, say) larger than the file itself.
fn decoder_limits(file_bytes: u64) -> Limits {
    let budget = usize::try_from(memory_budget()).unwrap_or(usize::MAX);
    let mut limits = Limits::default();
    limits.decoding_buffer_size = budget;
    limits.intermediate_buffer_size = budget;
    limits.ifd_value_size = usize::try_from(file_bytes).unwrap_or(usize::MAX);
    limits
}

/// Checks what the current page's directory declares before any pixel is
/// read: its byte count must be a real number within the memory budget (as
/// decoded values plus the f32 frame), every strip or tile must lie inside
/// the file, and an uncompressed page's pixels must fit in its strips.
fn check_page_sizes(
    path: &Path,
    decoder: &mut Decoder<BufReader<File>>,
    page: usize,
    format: &PageFormat,
    file_bytes: u64,
) -> Result<(), IoError> {
    let tiff_err = |e: TiffError| IoError::Tiff {
        path: path.to_path_buf(),
        action: format!("reading the directory of page {page}"),
        detail: one_line(e),
    };
    let what = format!(
        "page {page} ({}x{} {})",
        format.width, format.height, format.dtype
    );
    let stored = format.dtype.size_bytes() as u64;
    let (width, height) = (u64::from(format.width), u64::from(format.height));
    let page_bytes = checked_product(path, &what, &[width, height, stored])?;
    let (offsets_tag, counts_tag) = match decoder.find_tag(Tag::TileOffsets).map_err(tiff_err)? {
        Some(_) => (Tag::TileOffsets, Tag::TileByteCounts),
        None => (Tag::StripOffsets, Tag::StripByteCounts),
    };
    let offsets = decoder
        .find_tag_unsigned_vec::<u64>(offsets_tag)
        .map_err(tiff_err)?
        .unwrap_or_default();
    let counts = decoder
        .find_tag_unsigned_vec::<u64>(counts_tag)
        .map_err(tiff_err)?
        .unwrap_or_default();
    let mut stored_total = 0u64;
    for (index, (&offset, &count)) in offsets.iter().zip(&counts).enumerate() {
        let end = offset.saturating_add(count);
        if end > file_bytes {
            return Err(IoError::TooLarge {
                path: path.to_path_buf(),
                detail: format!(
                    "{what}: strip or tile {index} declares bytes {offset}..{end}, but the file \
                     holds only {file_bytes} bytes (truncated?)"
                ),
            });
        }
        stored_total = stored_total.saturating_add(count);
    }
    let compression = decoder
        .find_tag_unsigned::<u16>(Tag::Compression)
        .map_err(tiff_err)?
        .unwrap_or(1);
    if compression == 1 {
        // Uncompressed: every pixel is stored, so the strips must hold the
        // whole page (and the file the strips).
        check_declared(path, &what, page_bytes, stored_total.min(file_bytes))?;
    }
    // Decoded values plus the f32 frame they are widened into.
    check_memory(
        path,
        &what,
        checked_product(path, &what, &[width, height, stored + 4])?,
    )
}

/// Size and element type of the current page, or an error if it is not a
/// single-channel page of a supported type or declares sizes the file or
/// the memory budget cannot hold.
fn page_format(
    path: &Path,
    decoder: &mut Decoder<BufReader<File>>,
    page: usize,
    file_bytes: u64,
) -> Result<PageFormat, IoError> {
    let tiff_err = |e: TiffError| IoError::Tiff {
        path: path.to_path_buf(),
        action: format!("reading the directory of page {page}"),
        detail: one_line(e),
    };
    let (width, height) = decoder.dimensions().map_err(tiff_err)?;
    let colortype = decoder.colortype().map_err(tiff_err)?;
    // One entry per sample; a grayscale page has one.
    let sample_format = match decoder.find_tag_unsigned_vec::<u16>(Tag::SampleFormat) {
        Ok(Some(codes)) => codes.first().map_or(SampleFormat::Uint, |&code| {
            SampleFormat::from_u16_exhaustive(code)
        }),
        Ok(None) => SampleFormat::Uint,
        Err(e) => return Err(tiff_err(e)),
    };
    let dtype = match (colortype, sample_format) {
        (ColorType::Gray(8), SampleFormat::Uint) => Some(Dtype::U8),
        (ColorType::Gray(16), SampleFormat::Uint) => Some(Dtype::U16),
        (ColorType::Gray(16), SampleFormat::Int) => Some(Dtype::I16),
        (ColorType::Gray(32), SampleFormat::IEEEFP) => Some(Dtype::F32),
        (ColorType::Gray(64), SampleFormat::IEEEFP) => Some(Dtype::F64),
        _ => None,
    };
    let dtype = dtype.ok_or_else(|| IoError::UnsupportedDtype {
        path: path.to_path_buf(),
        found: format!("{colortype:?} with sample format {sample_format:?} on page {page}"),
        supported: "single-channel int16, uint16, float32, uint8, float64",
    })?;
    let format = PageFormat {
        width,
        height,
        dtype,
    };
    check_page_sizes(path, decoder, page, &format, file_bytes)?;
    Ok(format)
}

impl MovieReader for TiffMovieReader {
    fn info(&self) -> &MovieInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn read_frames(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        check_read_request(&self.path, &self.info, start, count, out.len())?;
        let frame_len = self.info.frame_len();
        for (i, frame_out) in out.chunks_mut(frame_len).enumerate() {
            let page = start + i;
            self.decoder
                .seek_to_image(page)
                .map_err(|e| self.tiff_err(format!("seeking to page {page}"), e))?;
            let pixels = self
                .decoder
                .read_image()
                .map_err(|e| self.tiff_err(format!("reading page {page}"), e))?;
            let widened = match &pixels {
                DecodingResult::U8(v) => widen_into(v, frame_out, f32::from),
                DecodingResult::U16(v) => widen_into(v, frame_out, f32::from),
                DecodingResult::I16(v) => widen_into(v, frame_out, f32::from),
                DecodingResult::F32(v) => widen_into(v, frame_out, |x| x),
                DecodingResult::F64(v) => widen_into(v, frame_out, |x| x as f32),
                _ => false,
            };
            if !widened {
                return Err(IoError::Tiff {
                    path: self.path.clone(),
                    action: format!("reading page {page}"),
                    detail: format!(
                        "decoded page does not hold {frame_len} {} values",
                        self.info.dtype
                    ),
                });
            }
        }
        check_finite(&self.path, out, frame_len, start)
    }
}

/// Widens `src` into `dst`; false if the lengths differ.
fn widen_into<T: Copy>(src: &[T], dst: &mut [f32], widen: impl Fn(T) -> f32) -> bool {
    if src.len() != dst.len() {
        return false;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = widen(s);
    }
    true
}

/// A buffered output file shared between the TIFF encoder (which takes
/// its writer by value) and the movie writer, which must flush it and
/// check the result before renaming.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<BufWriter<File>>>);

impl SharedFile {
    fn lock(&self) -> std::io::Result<MutexGuard<'_, BufWriter<File>>> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("output file lock poisoned by a panic"))
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.lock()?.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock()?.flush()
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.lock()?.seek(pos)
    }
}

/// Writes one page per frame into a new TIFF (`K` picks classic or Big
/// TIFF), atomically.
struct TiffMovieWriter<K: TiffKind> {
    info: MovieInfo,
    /// `None` once finished.
    encoder: Option<TiffEncoder<SharedFile, K>>,
    file: SharedFile,
    written: usize,
    clipped: u64,
    /// Declared last so the file is closed before the temp file is removed.
    temp: TempOutput,
}

/// Whether a movie may pass the size classic TIFF offsets can address.
fn needs_bigtiff(info: &MovieInfo) -> bool {
    let page_bytes = (info.frame_len() * info.dtype.size_bytes()) as u64 + PAGE_OVERHEAD_BYTES;
    page_bytes.saturating_mul(info.frames as u64) > BIGTIFF_THRESHOLD_BYTES
}

/// Creates a TIFF movie writer, BigTIFF when the file may pass ~3.9 GB.
pub(crate) fn create_tiff_writer(
    path: &Path,
    info: &MovieInfo,
) -> Result<Box<dyn MovieWriter>, IoError> {
    if needs_bigtiff(info) {
        Ok(Box::new(TiffMovieWriter::<TiffKindBig>::create(
            path, info,
        )?))
    } else {
        Ok(Box::new(TiffMovieWriter::<TiffKindStandard>::create(
            path, info,
        )?))
    }
}

impl<K: TiffKind> TiffMovieWriter<K> {
    fn create(path: &Path, info: &MovieInfo) -> Result<Self, IoError> {
        if info.height > u32::MAX as usize || info.width > u32::MAX as usize {
            return Err(IoError::InvalidRequest {
                path: path.to_path_buf(),
                detail: format!(
                    "frame size {}x{} is too large for TIFF",
                    info.height, info.width
                ),
            });
        }
        let temp = TempOutput::new(path)?;
        let file = File::create(temp.temp_path()).map_err(|source| IoError::Os {
            path: path.to_path_buf(),
            action: "creating the temporary output file",
            error: source,
        })?;
        let file = SharedFile(Arc::new(Mutex::new(BufWriter::with_capacity(
            1 << 20,
            file,
        ))));
        let encoder =
            TiffEncoder::<SharedFile, K>::new_generic(file.clone()).map_err(|e| IoError::Tiff {
                path: path.to_path_buf(),
                action: "writing the TIFF header".to_string(),
                detail: one_line(e),
            })?;
        Ok(Self {
            info: info.clone(),
            encoder: Some(encoder),
            file,
            written: 0,
            clipped: 0,
            temp,
        })
    }

    fn path(&self) -> &Path {
        self.temp.final_path()
    }

    /// Converts one frame and writes it as a page of colour type `C`.
    fn write_page<C>(&mut self, frame: &[f32], page: usize) -> Result<(), IoError>
    where
        C: colortype::ColorType,
        C::Inner: OutputSample,
        [C::Inner]: tiff::encoder::TiffValue,
    {
        let mut converted = vec![C::Inner::default(); frame.len()];
        self.clipped += convert_output(frame, &mut converted);
        let path = self.path().to_path_buf();
        let (width, height) = (self.info.width as u32, self.info.height as u32);
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| IoError::InvalidRequest {
                path: path.clone(),
                detail: "writer is already finished".to_string(),
            })?;
        encoder
            .write_image::<C>(width, height, &converted)
            .map_err(|e| IoError::Tiff {
                path,
                action: format!("writing page {page}"),
                detail: one_line(e),
            })
    }
}

impl<K: TiffKind> MovieWriter for TiffMovieWriter<K> {
    fn write_frames(&mut self, frames: &[f32], count: usize) -> Result<(), IoError> {
        check_write_request(self.path(), &self.info, self.written, frames.len(), count)?;
        for frame in frames.chunks(self.info.frame_len()) {
            let page = self.written;
            match self.info.dtype {
                Dtype::I16 => self.write_page::<colortype::GrayI16>(frame, page)?,
                Dtype::U16 => self.write_page::<colortype::Gray16>(frame, page)?,
                _ => self.write_page::<colortype::Gray32Float>(frame, page)?,
            }
            self.written += 1;
        }
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
        drop(self.encoder.take());
        let path = self.path().to_path_buf();
        let os_err = |source| IoError::Os {
            path: path.clone(),
            action: "flushing the output file",
            error: source,
        };
        {
            let mut file = self.file.lock().map_err(os_err)?;
            file.flush().map_err(os_err)?;
            file.get_ref().sync_all().map_err(os_err)?;
        }
        let this = *self;
        let (frames, clipped_values) = (this.written, this.clipped);
        drop(this.file);
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

    /// The BigTIFF writer (used for files past ~3.9 GB, too big to write in
    /// a test) produces a BigTIFF the reader reads back exactly.
    #[test]
    fn bigtiff_writer_round_trips() {
        let dir =
            std::env::temp_dir().join(format!("deepinterp-io-bigtiff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        for dtype in [Dtype::I16, Dtype::U16, Dtype::F32] {
            let path = dir.join(format!("big_{dtype}.tif"));
            let info = MovieInfo {
                frames: 3,
                height: 4,
                width: 5,
                dtype,
            };
            let frames: Vec<f32> = (0..60).map(|i| i as f32 * 2.0).collect();
            let mut writer: Box<dyn MovieWriter> =
                Box::new(TiffMovieWriter::<TiffKindBig>::create(&path, &info).expect("create"));
            writer.write_frames(&frames, 3).expect("write");
            writer.finish().expect("finish");

            let bytes = std::fs::read(&path).expect("read bytes");
            assert_eq!(&bytes[..4], b"II\x2b\x00", "BigTIFF magic");
            let mut reader = TiffMovieReader::open(&path).expect("open");
            assert_eq!(reader.info(), &info);
            let mut out = vec![0f32; 60];
            reader.read_frames(0, 3, &mut out).expect("read");
            assert_eq!(out, frames);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bigtiff_is_chosen_past_the_classic_limit() {
        let info = |frames| MovieInfo {
            frames,
            height: 512,
            width: 512,
            dtype: Dtype::U16,
        };
        // 7000 frames = 3.67 GB stays classic; 8000 = 4.2 GB needs BigTIFF.
        assert!(!needs_bigtiff(&info(7000)));
        assert!(needs_bigtiff(&info(8000)));
        assert!(needs_bigtiff(&MovieInfo {
            dtype: Dtype::F32,
            ..info(4000)
        }));
    }
}
