//! SpikeGLX recordings: the `key=value` `.meta` file (read, edited and
//! written back in its own line order) and what it says about the `.bin`
//! beside it: channel counts and which saved channels are neural, sample
//! rate, gains and probe geometry.
//!
//! - Neural channels: all saved channels except the trailing non-neural ones
//!   the meta counts: the SY (sync) channels of `snsApLfSy` for imec files,
//!   the DW (digital word) channels of `snsMnMaXaDw` for NI-DAQ files, the
//!   DW and SY channels of `snsXaDwSy` for OneBox files.
//! - Gains (imec): µV/bit = 1e6 · `imAiRangeMax` / `imMaxInt` / gain
//!   (defaults 0.6 V and 512, or 8192 for NP2.0 probes). The gain is
//!   `imChan0apGain`/`imChan0lfGain` when the meta has them, else the AP or
//!   LF gain of the channel's `~imroTbl` entry (NP1.0 six-field entries
//!   `(chan bank refid apgain lfgain hpflt)`, or 3A five-field entries),
//!   else 80 for NP2.0 probes (types 21, 24, 2000-2999); otherwise unknown.
//!   NI-DAQ: `niMNGain`/`niMAGain` over `niAiRangeMax` / `niMaxInt` (32768).
//! - Positions: `~snsGeomMap` entries `shank:x:y:used` (x plus shank ×
//!   shank pitch from its header); else `~snsShankMap` entries
//!   `shank:col:row:used`, placed as NP1.0 staggered columns
//!   (x = 11 + 32·col + 16·(row mod 2), y = 20·row) for NP1.0 probes, as
//!   NP2.0 columns (x = 27 + 32·col + 250·shank, y = 15·row) for NP2.0, and
//!   at x = 32·col, y = 20·row otherwise. Used when the map has one entry per
//!   neural (or per saved) channel.
//! - `deepinterpDtype=float32` (written by this crate for float32 output)
//!   makes the `.bin` float32.

use std::path::{Path, PathBuf};

use super::interleaved::{InterleavedReader, count_samples};
use super::{ChannelPosition, EphysFormat, EphysInfo, os_error};
use crate::error::{IoError, escape_text};
use crate::movie::Dtype;

/// The key this crate adds to mark a float32 `.bin`.
pub(crate) const DTYPE_KEY: &str = "deepinterpDtype";

/// A `.meta` file: its `key=value` lines in file order. Keys keep a leading
/// `~` (as in `~imroTbl`); look-ups ignore it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Meta {
    path: PathBuf,
    entries: Vec<(String, String)>,
}

impl Meta {
    pub(crate) fn read(path: &Path) -> Result<Self, IoError> {
        let bytes = super::read_header_file(path, ".meta")?;
        let text = String::from_utf8_lossy(&bytes);
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, IoError> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(IoError::Recording {
                    path: path.to_path_buf(),
                    detail: format!(
                        "line {} is not key=value: '{}' (is this a SpikeGLX .meta file?)",
                        number + 1,
                        escape_text(&truncate_for_message(line))
                    ),
                });
            };
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
        if entries.is_empty() {
            return Err(IoError::Recording {
                path: path.to_path_buf(),
                detail: "empty .meta file".to_string(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// A meta built in memory, to be written to `path`.
    pub(crate) fn new(path: &Path, entries: Vec<(String, String)>) -> Self {
        Self {
            path: path.to_path_buf(),
            entries,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The same entries, to be written to `path`.
    pub(crate) fn moved_to(self, path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            entries: self.entries,
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(key, _)| key.trim_start_matches('~') == name)
    }

    /// The value of `name` (with or without its `~`).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.entries[i].1.as_str())
    }

    /// Replaces the value of `name`, or appends `name=value`.
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.position(name) {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((name.to_string(), value)),
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.entries
            .retain(|(key, _)| key.trim_start_matches('~') != name);
    }

    /// The file text: one `key=value` line per entry.
    pub(crate) fn to_text(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.entries {
            text.push_str(key);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        text
    }

    fn error(&self, detail: String) -> IoError {
        IoError::Recording {
            path: self.path.clone(),
            detail,
        }
    }

    /// The number under `name`, if present; an error if it is not a number.
    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, IoError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                self.error(format!(
                    "{name}='{}' is not a valid number",
                    escape_text(text)
                ))
            }),
        }
    }

    fn required_number<T: std::str::FromStr>(&self, name: &str) -> Result<T, IoError> {
        self.number(name)?
            .ok_or_else(|| self.error(format!("no {name} (is this a SpikeGLX .meta file?)")))
    }

    /// A comma-separated list of counts such as `snsApLfSy=384,0,1`.
    fn counts(&self, name: &str) -> Result<Option<Vec<usize>>, IoError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        text.split(',')
            .map(|part| part.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|_| {
                self.error(format!(
                    "{name}='{}' is not a list of counts",
                    escape_text(text)
                ))
            })
    }
}

fn truncate_for_message(line: &str) -> String {
    let mut short: String = line.chars().take(60).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// Opens the SpikeGLX recording `bin` described by `meta_path`.
pub(crate) fn open(
    opened_as: &Path,
    bin: &Path,
    meta_path: &Path,
) -> Result<InterleavedReader, IoError> {
    let meta = Meta::read(meta_path)?;
    let info = info_from_meta(bin, &meta)?;
    InterleavedReader::open(opened_as, bin, info)
}

/// What `meta` says about the `.bin` file `bin` (whose size is checked).
pub(crate) fn info_from_meta(bin: &Path, meta: &Meta) -> Result<EphysInfo, IoError> {
    let saved_channels: usize = meta.required_number("nSavedChans")?;
    if saved_channels == 0 {
        return Err(meta.error("nSavedChans=0: no channels".to_string()));
    }
    if saved_channels > super::MAX_CHANNELS {
        return Err(IoError::TooLarge {
            path: meta.path().to_path_buf(),
            detail: format!(
                "nSavedChans={saved_channels} is more channels than any recording has (at most {})",
                super::MAX_CHANNELS
            ),
        });
    }
    let sample_rate_hz = sample_rate(meta)?;
    let dtype = match meta.get(DTYPE_KEY) {
        None => Dtype::I16,
        Some("float32") => Dtype::F32,
        Some("int16") => Dtype::I16,
        Some(other) => {
            return Err(meta.error(format!(
                "{DTYPE_KEY}='{}' (expected int16 or float32)",
                escape_text(other)
            )));
        }
    };
    let samples = checked_sample_count(bin, meta, saved_channels, dtype)?;
    let original_ids = saved_channel_ids(meta, saved_channels)?;
    let stream = StreamKind::of(meta);
    let trailing_non_neural = stream.trailing_non_neural(meta)?;
    if trailing_non_neural > saved_channels {
        return Err(meta.error(format!(
            "{} counts {trailing_non_neural} non-neural channels, but nSavedChans={saved_channels}",
            stream.counts_key().unwrap_or("the channel-count key")
        )));
    }
    let neural_channels: Vec<usize> = (0..saved_channels - trailing_non_neural).collect();
    if neural_channels.is_empty() {
        return Err(meta.error(format!(
            "no neural channels: all {saved_channels} saved channels are sync or digital"
        )));
    }
    let neural_ids: Vec<usize> = neural_channels.iter().map(|&i| original_ids[i]).collect();
    let microvolts_per_bit = match stream {
        StreamKind::Imec => imec_microvolts_per_bit(meta, &neural_ids)?,
        StreamKind::Nidq => nidq_microvolts_per_bit(meta, &neural_ids)?,
        StreamKind::OneBox | StreamKind::Unknown => None,
    };
    let positions = match stream {
        StreamKind::Imec => positions(meta, &neural_channels, saved_channels),
        _ => None,
    };
    Ok(EphysInfo {
        format: EphysFormat::SpikeGlx,
        samples,
        saved_channels,
        neural_channels,
        sample_rate_hz,
        dtype,
        microvolts_per_bit,
        positions,
    })
}

/// The sample rate of the stream the meta describes.
fn sample_rate(meta: &Meta) -> Result<f64, IoError> {
    let keys: &[&str] = match meta.get("typeThis") {
        Some("imec") => &["imSampRate"],
        Some("nidq") => &["niSampRate"],
        Some("obx") => &["obSampRate"],
        _ => &["imSampRate", "niSampRate", "obSampRate"],
    };
    for key in keys {
        if let Some(rate) = meta.number::<f64>(key)? {
            if rate.is_finite() && rate > 0.0 {
                return Ok(rate);
            }
            return Err(meta.error(format!("{key}={rate} is not a positive sample rate")));
        }
    }
    Err(meta.error(format!("no sample rate ({})", keys.join(" or "))))
}

/// The sample count of `bin`, checked against the meta's `fileSizeBytes`.
fn checked_sample_count(
    bin: &Path,
    meta: &Meta,
    saved_channels: usize,
    dtype: Dtype,
) -> Result<usize, IoError> {
    if let Some(expected) = meta.number::<u64>("fileSizeBytes")? {
        crate::movie::require_file(bin)?;
        let actual = std::fs::metadata(bin)
            .map_err(os_error(bin, "reading the file size"))?
            .len();
        if actual != expected {
            let what = if actual < expected {
                "truncated or still being written?"
            } else {
                "does the .meta belong to this file?"
            };
            return Err(IoError::Recording {
                path: bin.to_path_buf(),
                detail: format!(
                    "file is {actual} bytes, but {} says fileSizeBytes={expected} ({what})",
                    meta.path().display()
                ),
            });
        }
    }
    count_samples(bin, saved_channels, dtype)
}

/// The acquisition channel number of each saved channel, from
/// `snsSaveChanSubset` (`all`, or ranges such as `0:383,768`).
fn saved_channel_ids(meta: &Meta, saved_channels: usize) -> Result<Vec<usize>, IoError> {
    let text = match meta.get("snsSaveChanSubset") {
        None => return Ok((0..saved_channels).collect()),
        Some(text) if text.trim().eq_ignore_ascii_case("all") => {
            return Ok((0..saved_channels).collect());
        }
        Some(text) => text,
    };
    let shown = escape_text(text);
    let bad = || {
        meta.error(format!(
            "snsSaveChanSubset='{shown}' is not 'all' or a list of ranges"
        ))
    };
    let mut ids = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (first, last) = match part.split_once(':') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: usize = first.parse().map_err(|_| bad())?;
        let last: usize = last.parse().map_err(|_| bad())?;
        if last < first || ids.len().saturating_add(last - first) >= saved_channels {
            return Err(meta.error(format!(
                "snsSaveChanSubset='{shown}' lists more than nSavedChans={saved_channels} channels \
                 or a backwards range"
            )));
        }
        ids.extend(first..=last);
    }
    if ids.len() != saved_channels {
        return Err(meta.error(format!(
            "snsSaveChanSubset='{shown}' lists {} channels, but nSavedChans={saved_channels}",
            ids.len()
        )));
    }
    Ok(ids)
}

/// Which SpikeGLX stream a meta describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamKind {
    Imec,
    Nidq,
    OneBox,
    Unknown,
}

impl StreamKind {
    fn of(meta: &Meta) -> Self {
        match meta.get("typeThis") {
            Some("imec") => StreamKind::Imec,
            Some("nidq") => StreamKind::Nidq,
            Some("obx") => StreamKind::OneBox,
            _ if meta.get("snsApLfSy").is_some() => StreamKind::Imec,
            _ if meta.get("snsMnMaXaDw").is_some() => StreamKind::Nidq,
            _ => StreamKind::Unknown,
        }
    }

    /// How many of the last saved channels are not neural.
    /// The meta key that counts this stream's channels by kind.
    fn counts_key(self) -> Option<&'static str> {
        match self {
            StreamKind::Imec => Some("snsApLfSy"),
            StreamKind::Nidq => Some("snsMnMaXaDw"),
            StreamKind::OneBox => Some("snsXaDwSy"),
            StreamKind::Unknown => None,
        }
    }

    fn trailing_non_neural(self, meta: &Meta) -> Result<usize, IoError> {
        let (key, fields, non_neural): (&str, usize, &[usize]) = match self {
            StreamKind::Imec => ("snsApLfSy", 3, &[2]),
            StreamKind::Nidq => ("snsMnMaXaDw", 4, &[3]),
            StreamKind::OneBox => ("snsXaDwSy", 3, &[1, 2]),
            StreamKind::Unknown => return Ok(0),
        };
        match meta.counts(key)? {
            None => Ok(0),
            Some(counts) if counts.len() == fields => non_neural
                .iter()
                .try_fold(0usize, |sum, &i| sum.checked_add(counts[i]))
                .ok_or_else(|| meta.error(format!("{key} counts are too large to be real"))),
            Some(counts) => Err(meta.error(format!(
                "{key} has {} counts, expected {fields}",
                counts.len()
            ))),
        }
    }
}

/// NP2.0 probe types: fixed AP gain 80, `imMaxInt` 8192.
fn is_np2_probe(probe_type: i64) -> bool {
    matches!(probe_type, 21 | 24 | 2000..=2999)
}

/// An `~imroTbl`: its header fields and its entries' numeric fields.
struct ImroTable {
    header: Vec<f64>,
    entries: Vec<Vec<f64>>,
}

/// Splits a `(a,b)(c d e)...` table into the text of each parenthesised group.
fn groups(text: &str) -> impl Iterator<Item = &str> {
    text.split(')')
        .map(|g| g.trim().trim_start_matches('(').trim())
        .filter(|g| !g.is_empty())
}

fn parse_imro(text: &str) -> Option<ImroTable> {
    let mut groups = groups(text);
    let header = groups
        .next()?
        .split(',')
        .map(|f| f.trim().parse::<f64>().ok())
        .collect::<Option<Vec<_>>>()?;
    let entries = groups
        .map(|g| {
            g.split(|c: char| c.is_whitespace() || c == ':')
                .filter(|f| !f.is_empty())
                .map(|f| f.parse::<f64>().ok())
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ImroTable { header, entries })
}

/// The probe type: `imDatPrb_type`, else the `~imroTbl` header's first field
/// (absent: NP1.0 / 3A, type 0).
fn probe_type(meta: &Meta, imro: Option<&ImroTable>) -> i64 {
    if let Some(t) = meta
        .get("imDatPrb_type")
        .and_then(|t| t.trim().parse().ok())
    {
        return t;
    }
    match imro {
        Some(table) if table.header.len() == 2 => table.header[0] as i64,
        _ => 0,
    }
}

/// A range, full-scale count or gain read from the meta: it must be a
/// positive, finite number, or every µV value computed from it would be 0,
/// infinite or NaN.
fn positive_field(meta: &Meta, field: &str, value: f64) -> Result<f64, IoError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(meta.error(format!(
            "{field} is {value}: it must be a positive number (a gain or range of 0 would make \
             every µV value infinite or NaN)"
        )))
    }
}

/// µV per bit of each neural channel of an imec stream, or `None` when the
/// meta does not say. A gain or range the meta does give must be positive.
fn imec_microvolts_per_bit(meta: &Meta, neural_ids: &[usize]) -> Result<Option<Vec<f64>>, IoError> {
    let imro = meta.get("imroTbl").and_then(parse_imro);
    let probe_type = probe_type(meta, imro.as_ref());
    let np2 = is_np2_probe(probe_type);
    let range_volts = positive_field(
        meta,
        "imAiRangeMax",
        meta.number::<f64>("imAiRangeMax")?.unwrap_or(0.6),
    )?;
    let max_int = positive_field(
        meta,
        "imMaxInt",
        meta.number::<f64>("imMaxInt")?
            .unwrap_or(if np2 { 8192.0 } else { 512.0 }),
    )?;
    let fixed_ap = meta.number::<f64>("imChan0apGain")?;
    let fixed_lf = meta.number::<f64>("imChan0lfGain")?;
    let saved_counts = meta.counts("snsApLfSy")?.unwrap_or_default();
    let acquired_counts = meta.counts("acqApLfSy")?.unwrap_or_default();
    let acquired_ap = acquired_counts
        .first()
        .or(saved_counts.first())
        .copied()
        .unwrap_or(usize::MAX);
    let saved_ap = saved_counts.first().copied().unwrap_or(1);
    let saved_lf = saved_counts.get(1).copied().unwrap_or(0);
    let lf_file = saved_ap == 0 && saved_lf > 0;
    // Per-channel gains: NP1.0 entries have six fields, 3A entries five with
    // a three-field header.
    let per_channel_gains = imro.as_ref().filter(|t| {
        t.entries
            .iter()
            .all(|e| e.len() == 6 || (e.len() == 5 && t.header.len() == 3))
            && !t.entries.is_empty()
    });

    let mut gains = Vec::with_capacity(neural_ids.len());
    for &id in neural_ids {
        // AP channels are numbered from 0, LF channels after the AP ones.
        let (is_ap, index) = if lf_file {
            (false, id.checked_sub(acquired_ap).unwrap_or(id))
        } else if id < acquired_ap {
            (true, id)
        } else {
            (false, id - acquired_ap)
        };
        let band = if is_ap { "AP" } else { "LF" };
        let fixed = if is_ap {
            fixed_ap.map(|g| ("imChan0apGain".to_string(), g))
        } else {
            fixed_lf.map(|g| ("imChan0lfGain".to_string(), g))
        };
        let gain = if let Some(g) = fixed {
            Some(g)
        } else if let Some(table) = per_channel_gains {
            table
                .entries
                .iter()
                .find(|e| e[0] == index as f64)
                .map(|e| {
                    let g = if is_ap { e[3] } else { e[4] };
                    (format!("the {band} gain of channel {index} in ~imroTbl"), g)
                })
        } else if np2 && is_ap {
            Some(("the NP2.0 AP gain".to_string(), 80.0))
        } else {
            None
        };
        match gain {
            Some((field, g)) => {
                let g = positive_field(meta, &field, g)?;
                gains.push(1e6 * range_volts / max_int / g);
            }
            None => return Ok(None),
        }
    }
    Ok(Some(gains))
}

/// µV per bit of each neural channel of an NI-DAQ stream (MN and MA channels
/// through their amplifier gains, XA channels at gain 1).
fn nidq_microvolts_per_bit(meta: &Meta, neural_ids: &[usize]) -> Result<Option<Vec<f64>>, IoError> {
    let Some(range_volts) = meta.number::<f64>("niAiRangeMax")? else {
        return Ok(None);
    };
    let range_volts = positive_field(meta, "niAiRangeMax", range_volts)?;
    let max_int = positive_field(
        meta,
        "niMaxInt",
        meta.number::<f64>("niMaxInt")?.unwrap_or(32768.0),
    )?;
    let counts = match meta.counts("acqMnMaXaDw")? {
        Some(c) if c.len() == 4 => c,
        _ => match meta.counts("snsMnMaXaDw")? {
            Some(c) if c.len() == 4 => c,
            _ => return Ok(None),
        },
    };
    let mn_gain = meta.number::<f64>("niMNGain")?;
    let ma_gain = meta.number::<f64>("niMAGain")?;
    let mut values = Vec::with_capacity(neural_ids.len());
    for &id in neural_ids {
        let gain = if id < counts[0] {
            mn_gain.map(|g| ("niMNGain", g))
        } else if id < counts[0].saturating_add(counts[1]) {
            ma_gain.map(|g| ("niMAGain", g))
        } else {
            Some(("the XA gain", 1.0))
        };
        match gain {
            Some((field, g)) => {
                let g = positive_field(meta, field, g)?;
                values.push(1e6 * range_volts / max_int / g);
            }
            None => return Ok(None),
        }
    }
    Ok(Some(values))
}

/// Positions of the neural channels from `~snsGeomMap` or `~snsShankMap`.
fn positions(
    meta: &Meta,
    neural_channels: &[usize],
    saved_channels: usize,
) -> Option<Vec<ChannelPosition>> {
    let entries_for_neural = |entries: Vec<ChannelPosition>| {
        if entries.len() == neural_channels.len() {
            Some(entries)
        } else if entries.len() == saved_channels {
            Some(neural_channels.iter().map(|&i| entries[i]).collect())
        } else {
            None
        }
    };
    if let Some(entries) = meta.get("snsGeomMap").and_then(parse_geom_map) {
        return entries_for_neural(entries);
    }
    let imro = meta.get("imroTbl").and_then(parse_imro);
    let probe_type = probe_type(meta, imro.as_ref());
    meta.get("snsShankMap")
        .and_then(|text| parse_shank_map(text, probe_type))
        .and_then(entries_for_neural)
}

/// One `shank:a:b:...` entry of a SpikeGLX map as `(shank, a, b)`.
type MapEntry = (u32, f32, f32);

/// A map's header fields and its entries.
fn map_entries(text: &str) -> Option<(Vec<&str>, Vec<MapEntry>)> {
    let mut groups = groups(text);
    let header: Vec<&str> = groups.next()?.split(',').map(str::trim).collect();
    let entries = groups
        .map(|g| {
            let fields: Vec<&str> = g.split(':').map(str::trim).collect();
            if fields.len() < 3 {
                return None;
            }
            Some((
                fields[0].parse().ok()?,
                fields[1].parse().ok()?,
                fields[2].parse().ok()?,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((header, entries))
}

/// `(pn,nShanks,shankPitch,shankWidth)(shank:x:y:used)...`
fn parse_geom_map(text: &str) -> Option<Vec<ChannelPosition>> {
    let (header, entries) = map_entries(text)?;
    let shank_pitch: f32 = header.get(2)?.parse().ok()?;
    let positions = entries
        .into_iter()
        .map(|(shank, x, y)| ChannelPosition {
            x_um: x + shank_pitch * shank as f32,
            y_um: y,
            shank,
        })
        .collect();
    Some(positions)
}

/// `(nShanks,nCols,nRows)(shank:col:row:used)...`, placed by probe type.
fn parse_shank_map(text: &str, probe_type: i64) -> Option<Vec<ChannelPosition>> {
    let (header, entries) = map_entries(text)?;
    let columns: u32 = header.get(1)?.parse().ok()?;
    let np1 = matches!(probe_type, 0 | 1000..=1999) && columns == 2;
    let np2 = is_np2_probe(probe_type);
    let positions = entries
        .into_iter()
        .map(|(shank, col, row)| {
            let (x_um, y_um) = if np1 {
                (11.0 + 32.0 * col + 16.0 * (row % 2.0), 20.0 * row)
            } else if np2 {
                (27.0 + 32.0 * col + 250.0 * shank as f32, 15.0 * row)
            } else {
                (32.0 * col, 20.0 * row)
            };
            ChannelPosition { x_um, y_um, shank }
        })
        .collect();
    Some(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> Meta {
        Meta::parse(Path::new("t.meta"), text).expect("parse")
    }

    #[test]
    fn save_subset_ranges_expand() {
        let m = meta("nSavedChans=5\nsnsSaveChanSubset=0:3,768\n");
        assert_eq!(saved_channel_ids(&m, 5).expect("ids"), [0, 1, 2, 3, 768]);
        let m = meta("snsSaveChanSubset=0:9\n");
        assert!(saved_channel_ids(&m, 5).is_err());
        let m = meta("snsSaveChanSubset=all\n");
        assert_eq!(saved_channel_ids(&m, 3).expect("ids"), [0, 1, 2]);
    }

    #[test]
    fn np1_gains_from_imro_and_np2_fixed_gain() {
        let m = meta(
            "typeThis=imec\nsnsApLfSy=2,0,1\n~imroTbl=(0,2)(0 0 0 500 250 1)(1 0 0 1000 250 1)\n",
        );
        let g = imec_microvolts_per_bit(&m, &[0, 1])
            .expect("ok")
            .expect("gains");
        assert_eq!(g, [2.34375, 1.171875]);
        let m = meta(
            "typeThis=imec\nimDatPrb_type=24\nimAiRangeMax=0.5\nimMaxInt=8192\nsnsApLfSy=2,0,1\n\
             ~imroTbl=(24,2)(0 0 0 0 0)(1 0 0 0 1)\n",
        );
        let g = imec_microvolts_per_bit(&m, &[0, 1])
            .expect("ok")
            .expect("gains");
        assert!((g[0] - 0.762_939_453_125).abs() < 1e-12);
        let m = meta("typeThis=imec\nimDatPrb_type=1110\n~imroTbl=(1110,1)(0 1 2)\n");
        assert_eq!(imec_microvolts_per_bit(&m, &[0]).expect("ok"), None);
    }

    #[test]
    fn shank_map_places_np1_stagger() {
        let p = parse_shank_map("(1,2,480)(0:1:0:1)(0:0:0:1)(0:1:1:1)(0:0:1:1)", 0).expect("map");
        let xy: Vec<(f32, f32)> = p.iter().map(|p| (p.x_um, p.y_um)).collect();
        assert_eq!(xy, [(43.0, 0.0), (11.0, 0.0), (59.0, 20.0), (27.0, 20.0)]);
    }

    #[test]
    fn geom_map_adds_shank_offsets() {
        let p = parse_geom_map("(NP2014,4,250,70)(0:27:0:1)(1:59:15:1)").expect("map");
        assert_eq!(
            p,
            [
                ChannelPosition {
                    x_um: 27.0,
                    y_um: 0.0,
                    shank: 0
                },
                ChannelPosition {
                    x_um: 309.0,
                    y_um: 15.0,
                    shank: 1
                },
            ]
        );
    }
}
