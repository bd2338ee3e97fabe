//! Extracellular electrophysiology recordings: finding out what a path holds,
//! reading samples from it in chunks, and writing recordings shaped like a
//! source recording.
//!
//! This module owns every recording format deepinterp reads and writes:
//!
//! - headerless interleaved little-endian files (`.dat`/`.bin`/`.raw`,
//!   `[sample][channel]`, int16 or float32), described by a [`RawLayout`];
//! - SpikeGLX `.bin` files with their `key=value` `.meta` (gains from
//!   `~imroTbl`, geometry from `~snsGeomMap` or `~snsShankMap`, the sync
//!   channel kept apart from the neural ones);
//! - Open Ephys binary streams (`continuous.dat` described by a
//!   `structure.oebin`);
//! - Open Ephys legacy `*_CH<n>.continuous` files (one file per channel,
//!   1024-sample records of big-endian int16).
//!
//! Readers hand out samples as `f32` in raw ADC units, sample-major. They read
//! only the byte ranges asked for (positioned reads into a bounded scratch
//! buffer): memory does not grow with the length of a recording. Writers
//! stream through a buffer into a temporary file renamed at the end, so a
//! failed or interrupted run leaves no partial output.

mod interleaved;
mod legacy;
mod openephys;
mod raw;
mod spikeglx;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::IoError;
use crate::movie::{Dtype, WriteSummary};

/// The recording formats this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EphysFormat {
    /// A headerless interleaved file described by a [`RawLayout`].
    Raw,
    /// A SpikeGLX `.bin` with its `.meta`.
    SpikeGlx,
    /// An Open Ephys binary stream (`continuous.dat` + `structure.oebin`).
    OpenEphysBinary,
    /// Open Ephys legacy `*_CH<n>.continuous` files.
    OpenEphysLegacy,
}

impl EphysFormat {
    /// The name users see.
    pub fn name(self) -> &'static str {
        match self {
            EphysFormat::Raw => "raw",
            EphysFormat::SpikeGlx => "SpikeGLX",
            EphysFormat::OpenEphysBinary => "Open Ephys binary",
            EphysFormat::OpenEphysLegacy => "Open Ephys legacy",
        }
    }
}

impl fmt::Display for EphysFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one recording site sits on the probe. `x_um` is measured across the
/// whole probe (a shank's offset included), `y_um` along the shank.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelPosition {
    pub x_um: f32,
    pub y_um: f32,
    pub shank: u32,
}

/// What a recording holds.
#[derive(Clone, Debug, PartialEq)]
pub struct EphysInfo {
    pub format: EphysFormat,
    /// Time samples in the file.
    pub samples: usize,
    /// Values stored per sample (SpikeGLX: including the sync channel).
    pub saved_channels: usize,
    /// Indices within the saved channels that carry neural data (the ones to
    /// denoise), in file order.
    pub neural_channels: Vec<usize>,
    pub sample_rate_hz: f64,
    /// `I16` for every real format; `F32` for a float32 raw file (or a
    /// float32 output of deepinterp).
    pub dtype: Dtype,
    /// Microvolts per ADC unit of each neural channel, if the header says.
    pub microvolts_per_bit: Option<Vec<f64>>,
    /// Position of each neural channel, if the header says.
    pub positions: Option<Vec<ChannelPosition>>,
}

impl EphysInfo {
    /// How many channels carry neural data.
    pub fn neural_channel_count(&self) -> usize {
        self.neural_channels.len()
    }
}

/// How to read a headerless raw file (`.dat`/`.bin`/`.raw` with no
/// `.meta`/`structure.oebin`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawLayout {
    pub channels: usize,
    pub sample_rate_hz: f64,
    /// `I16` or `F32` (little-endian).
    pub dtype: Dtype,
}

/// The most channels a recording may have (per sample, all saved channels
/// together). Far above any real acquisition system (a Neuropixels 2.0
/// quad-base probe saves 1537; big Open Ephys rigs a few thousand), far
/// below what makes a byte count overflow: a header or flag asking for more
/// is refused before anything is sized from it.
pub const MAX_CHANNELS: usize = 1 << 16;

/// How to open a recording: [`open_ephys_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EphysOptions {
    /// The layout of a headerless raw file (also checked against a header,
    /// when there is one): see [`open_ephys`].
    pub raw: Option<RawLayout>,
    /// Open Ephys legacy: when the channel files hold different numbers of
    /// whole records (one was cut short), read every channel only as far
    /// as the shortest instead of refusing the recording.
    pub cut_to_shortest: bool,
}

/// Reads samples of one recording.
pub trait EphysReader: Send {
    fn info(&self) -> &EphysInfo;
    /// The path the recording was opened from (opening it again gives the
    /// same recording).
    fn path(&self) -> &Path;
    /// Neural channels only, values in raw ADC units as f32, sample-major
    /// `[count][neural_channels.len()]`.
    ///
    /// Streams: touches only those samples. Errors (naming the file and the
    /// range) for reads past the end or a buffer of the wrong length.
    fn read_samples(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError>;
    /// All saved channels exactly as stored, sample-major
    /// `[count][saved_channels]` as f32 (used to pass the sync channel
    /// through untouched).
    fn read_saved(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError>;
}

/// Writes one recording, atomically.
pub trait EphysWriter: Send {
    /// Appends `count` samples of the neural channels (f32, raw ADC units,
    /// `[count][neural]`). Converted to the output dtype: int16 rounded
    /// half-to-even and clipped (clipped values, and NaN written as 0, are
    /// counted), float32 as is. Non-neural saved channels (sync) are copied
    /// untouched from the source recording, sample for sample (output sample
    /// `i` <- source sample `first_source_sample + i`), or written as 0 for a
    /// fresh recording.
    fn write_samples(&mut self, neural: &[f32], count: usize) -> Result<(), IoError>;
    /// Checks that exactly the announced samples were written, writes the
    /// header files, and renames the temporary files onto the final names.
    /// Dropping an unfinished writer removes its temporary files.
    /// `WriteSummary::frames` is the number of samples.
    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError>;
}

/// Opens a recording. Path forms:
///
/// - a SpikeGLX `X.ap.bin`/`X.bin` with `X.ap.meta`/`X.meta` beside it (or
///   the `.meta` itself);
/// - an Open Ephys binary `structure.oebin` (its first continuous stream),
///   the recording folder holding it (same), or a `continuous.dat` inside
///   `<rec>/continuous/<stream>/` (the stream whose `folder_name` is
///   `<stream>`, described by `<rec>/structure.oebin`); a `.dat` written by
///   deepinterp with a `structure.oebin` beside it (see
///   [`create_ephys_like`]) is read the same way;
/// - an Open Ephys legacy folder holding `*_CH<n>.continuous` files, or one
///   such file: all channel files of the folder with the same name apart
///   from the channel number are read, sorted by channel number;
/// - a headerless `.dat`/`.bin`/`.raw` file: needs `raw`.
///
/// When a header exists and `raw` is also given, the header wins if they
/// agree (same channel count, saved or neural; sample rates within 0.5%;
/// same dtype), else it is an error.
///
/// Open Ephys legacy channel files that hold different numbers of records
/// are an error naming the short file; [`open_ephys_with`] can cut every
/// channel to the shortest instead.
pub fn open_ephys(path: &Path, raw: Option<RawLayout>) -> Result<Box<dyn EphysReader>, IoError> {
    open_ephys_with(
        path,
        &EphysOptions {
            raw,
            cut_to_shortest: false,
        },
    )
}

/// [`open_ephys`] with every option: see [`EphysOptions`].
pub fn open_ephys_with(
    path: &Path,
    options: &EphysOptions,
) -> Result<Box<dyn EphysReader>, IoError> {
    let raw = options.raw;
    if let Some(layout) = &raw {
        raw::check_layout(path, layout)?;
    }
    let reader: Box<dyn EphysReader> = match locate(path)? {
        Located::Raw { file } => {
            let Some(layout) = raw else {
                return Err(IoError::Recording {
                    path: file,
                    detail:
                        "no .meta or structure.oebin beside it: give --channels and --sample-rate"
                            .to_string(),
                });
            };
            return Ok(Box::new(raw::open(path, &file, &layout)?));
        }
        Located::SpikeGlx { bin, meta } => Box::new(spikeglx::open(path, &bin, &meta)?),
        Located::OpenEphysBinary(stream) => Box::new(openephys::open(path, &stream)?),
        Located::OpenEphysLegacy { files } => Box::new(legacy::LegacyReader::open(
            path,
            &files,
            options.cut_to_shortest,
        )?),
    };
    if let Some(layout) = &raw {
        check_header_agrees(reader.path(), reader.info(), layout)?;
    }
    Ok(reader)
}

/// The files that hold the recording at `path` (data and header files; every
/// channel file of a legacy recording), as far as they can be found; empty
/// when `path` is not a readable recording.
pub fn recording_files(path: &Path) -> Vec<PathBuf> {
    match locate(path) {
        Ok(Located::Raw { file }) => vec![file],
        Ok(Located::SpikeGlx { bin, meta }) => vec![bin, meta],
        Ok(Located::OpenEphysBinary(stream)) => vec![stream.oebin, stream.data],
        Ok(Located::OpenEphysLegacy { files }) => files,
        Err(_) => Vec::new(),
    }
}

/// Is this path something [`open_ephys`] reads (by extension or folder
/// contents), as opposed to a movie (`.h5`/`.tif`) or NIfTI?
///
/// `.dat`, `.raw`, `.meta`, `.oebin` and `.continuous` files are; so is a
/// `.bin`, unless a Suite2p `ops.npy` lies beside it (Suite2p's `data.bin`
/// is a two-photon movie); so is a folder holding `structure.oebin`,
/// `continuous.dat` or `*_CH<n>.continuous` files. Files need not exist
/// (an output path is judged by its extension).
pub fn is_ephys_path(path: &Path) -> bool {
    if path.is_dir() {
        return path.join(openephys::OEBIN_NAME).is_file()
            || path.join(openephys::DATA_FILE_NAME).is_file()
            || legacy::folder_has_channel_files(path);
    }
    match lowercase_extension(path).as_str() {
        "dat" | "raw" | "meta" | "oebin" | "continuous" => true,
        "bin" => !path.with_file_name("ops.npy").is_file(),
        _ => false,
    }
}

/// A writer whose output has the source's layout: the same saved channels in
/// the same order, dtype `dtype` (`I16` or `F32`), raw interleaved
/// little-endian at `output` (named exactly as given).
///
/// - SpikeGLX source: also writes `output` with its extension replaced by
///   `.meta` (`x.ap.bin` -> `x.ap.meta`), a copy of the source meta with
///   `fileSizeBytes`, `fileTimeSecs`, `fileName` and `firstSample` (source
///   value + `first_source_sample`) updated, `fileSHA1` dropped (it would be
///   wrong), and the keys `deepinterpSource=<source path>` and
///   `deepinterpFirstSample=<n>` added; a float32 output also gets
///   `deepinterpDtype=float32` (SpikeGLX itself has no way to say so; this
///   module's reader honours the key).
/// - Open Ephys binary source: also writes `structure.oebin` in the output's
///   folder, describing one continuous stream: a copy of the source stream's
///   entry plus `deepinterp_data_file` (the output's file name, which is how
///   the output is found: opening the `.dat`, the `structure.oebin` or the
///   folder reads it), `deepinterp_source`, `deepinterp_first_sample` and,
///   for float32, `deepinterp_dtype`. Several outputs in one folder share
///   that file (one entry each). A `structure.oebin` that deepinterp did not
///   write is never overwritten: that is an error.
/// - Raw and legacy sources: just the interleaved file (legacy big-endian
///   per-channel data becomes little-endian interleaved `[sample][channel]`).
///
/// `samples` is the number that will be written; output sample `i` stands
/// for source sample `first_source_sample + i` (the sync channel is copied
/// from there). The output must not be the source's own data or header file.
pub fn create_ephys_like(
    source: &dyn EphysReader,
    output: &Path,
    dtype: Dtype,
    samples: usize,
    first_source_sample: usize,
) -> Result<Box<dyn EphysWriter>, IoError> {
    writer::create_like(source, output, dtype, samples, first_source_sample)
}

/// A fresh SpikeGLX-style recording (used by the simulator): int16 `.bin`
/// plus `.meta`, Neuropixels 1.0 style (`imDatPrb_type=0`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewSpikeGlx {
    pub sample_rate_hz: f64,
    /// One per neural channel, in channel order.
    pub positions: Vec<ChannelPosition>,
    pub microvolts_per_bit: f64,
    /// Adds a sync channel (written as 0) after the neural channels.
    pub with_sync_channel: bool,
    pub samples: usize,
}

/// Creates a fresh SpikeGLX recording: `path` (int16 interleaved) and `path`
/// with its extension replaced by `.meta`. The sync channel, if any, is
/// written as 0.
///
/// The meta describes a Neuropixels 1.0 probe reading bank 0: `~imroTbl`
/// entries `(c 0 0 500 250 1)` (AP gain 500, with `imAiRangeMax` chosen so
/// that gain gives `microvolts_per_bit`: 0.6 V for 2.34375 µV/bit),
/// `~snsShankMap` in NP1 columns and rows, and `~snsGeomMap` from
/// `positions` (which is where this module's reader takes them from).
pub fn create_spikeglx(path: &Path, spec: &NewSpikeGlx) -> Result<Box<dyn EphysWriter>, IoError> {
    writer::create_spikeglx(path, spec)
}

/// Neuropixels 1.0 geometry for `channels` channels (up to the probe's 960
/// sites) in channel order: four staggered columns, channel `c` at
/// `x = [43, 11, 59, 27][c % 4]` µm, `y = 20 µm * (c / 2)`, shank 0.
pub fn neuropixels1_positions(channels: usize) -> Vec<ChannelPosition> {
    const COLUMNS_UM: [f32; 4] = [43.0, 11.0, 59.0, 27.0];
    (0..channels)
        .map(|c| ChannelPosition {
            x_um: COLUMNS_UM[c % 4],
            y_um: 20.0 * (c / 2) as f32,
            shank: 0,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Finding out what a path holds.
// ---------------------------------------------------------------------------

/// The files that make up a recording, before any header is interpreted.
pub(crate) enum Located {
    Raw { file: PathBuf },
    SpikeGlx { bin: PathBuf, meta: PathBuf },
    OpenEphysBinary(openephys::StreamLocation),
    OpenEphysLegacy { files: Vec<PathBuf> },
}

/// Works out which format `path` is in and which files hold it.
fn locate(path: &Path) -> Result<Located, IoError> {
    let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IoError::NotFound {
            path: path.to_path_buf(),
        },
        _ => IoError::Os {
            path: path.to_path_buf(),
            action: "opening",
            error: source,
        },
    })?;
    if metadata.is_dir() {
        let oebin = path.join(openephys::OEBIN_NAME);
        if oebin.is_file() {
            return Ok(Located::OpenEphysBinary(openephys::locate_from_oebin(
                &oebin,
            )?));
        }
        let dat = path.join(openephys::DATA_FILE_NAME);
        if dat.is_file() {
            return locate_file(&dat);
        }
        if let Some(files) = legacy::channel_files_in_folder(path)? {
            return Ok(Located::OpenEphysLegacy { files });
        }
        return Err(IoError::Recording {
            path: path.to_path_buf(),
            detail: "folder holds no recording: no structure.oebin, continuous.dat or \
                     *_CH<n>.continuous files"
                .to_string(),
        });
    }
    locate_file(path)
}

fn locate_file(path: &Path) -> Result<Located, IoError> {
    let extension = lowercase_extension(path);
    match extension.as_str() {
        "oebin" => Ok(Located::OpenEphysBinary(openephys::locate_from_oebin(
            path,
        )?)),
        "continuous" => Ok(Located::OpenEphysLegacy {
            files: legacy::channel_files_like(path)?,
        }),
        "meta" => {
            let bin = path.with_extension("bin");
            crate::movie::require_file(&bin)?;
            Ok(Located::SpikeGlx {
                bin,
                meta: path.to_path_buf(),
            })
        }
        "bin" | "dat" | "raw" => {
            let meta = path.with_extension("meta");
            if meta.is_file() {
                return Ok(Located::SpikeGlx {
                    bin: path.to_path_buf(),
                    meta,
                });
            }
            if let Some(stream) = openephys::locate_from_data_file(path)? {
                return Ok(Located::OpenEphysBinary(stream));
            }
            Ok(Located::Raw {
                file: path.to_path_buf(),
            })
        }
        _ => Err(IoError::Recording {
            path: path.to_path_buf(),
            detail: format!(
                "unknown recording format '{}' (expected a SpikeGLX .bin with its .meta, an Open \
                 Ephys structure.oebin, continuous.dat or *_CH<n>.continuous, or a headerless \
                 .dat/.bin/.raw)",
                if extension.is_empty() {
                    "(no extension)".to_string()
                } else {
                    format!(".{extension}")
                }
            ),
        }),
    }
}

fn lowercase_extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Checks that a raw layout given alongside a header describes the same
/// recording.
fn check_header_agrees(path: &Path, info: &EphysInfo, layout: &RawLayout) -> Result<(), IoError> {
    let channels_agree =
        layout.channels == info.saved_channels || layout.channels == info.neural_channels.len();
    let rate_agrees =
        (layout.sample_rate_hz - info.sample_rate_hz).abs() <= 0.005 * info.sample_rate_hz.abs();
    if channels_agree && rate_agrees && layout.dtype == info.dtype {
        return Ok(());
    }
    Err(IoError::Recording {
        path: path.to_path_buf(),
        detail: format!(
            "its {} header says {} channels ({} neural) at {} Hz, {}, but {} channels at {} Hz, \
             {} were given",
            info.format,
            info.saved_channels,
            info.neural_channels.len(),
            info.sample_rate_hz,
            info.dtype,
            layout.channels,
            layout.sample_rate_hz,
            layout.dtype
        ),
    })
}

/// Checks a read request: the range against the recording's length and the
/// buffer against `count * width`.
pub(crate) fn check_read_request(
    path: &Path,
    samples: usize,
    start: usize,
    count: usize,
    width: usize,
    out_len: usize,
) -> Result<(), IoError> {
    let end = start.saturating_add(count);
    if end > samples {
        return Err(IoError::SampleRange {
            path: path.to_path_buf(),
            start,
            end,
            samples,
        });
    }
    crate::error::check_buffer_len(path, count.saturating_mul(width), out_len)
}

/// How many samples to decode per internal block: bounds the scratch memory
/// of readers and writers to a few MiB whatever the request size.
pub(crate) fn block_samples(row_bytes: usize) -> usize {
    const BLOCK_BYTES: usize = 4 << 20;
    (BLOCK_BYTES / row_bytes.max(1)).max(1)
}

/// The most bytes a header file (`.meta`, `structure.oebin`) may have. Real
/// ones are kilobytes (a few megabytes for the largest channel lists); a
/// bigger one is not a header, and is refused before it is read into memory.
pub(crate) const MAX_HEADER_FILE_BYTES: u64 = 64 << 20;

/// Reads a whole header file (`what`: ".meta", "structure.oebin"), refusing
/// one larger than [`MAX_HEADER_FILE_BYTES`] before reading it.
pub(crate) fn read_header_file(path: &Path, what: &str) -> Result<Vec<u8>, IoError> {
    crate::movie::require_file(path)?;
    let bytes = std::fs::metadata(path)
        .map_err(os_error(path, "reading the file size"))?
        .len();
    if bytes > MAX_HEADER_FILE_BYTES {
        return Err(IoError::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "is {}, too large for a {what} file (at most {})",
                crate::limits::format_bytes(bytes),
                crate::limits::format_bytes(MAX_HEADER_FILE_BYTES)
            ),
        });
    }
    std::fs::read(path).map_err(os_error(path, "reading"))
}

/// An `std::io::Error` on `path` as an [`IoError`].
pub(crate) fn os_error(
    path: &Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError::Os {
        path,
        action,
        error: source,
    }
}

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
