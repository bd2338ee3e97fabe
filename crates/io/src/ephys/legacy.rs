//! Open Ephys legacy recordings: one `<prefix>CH<n>[_<k>].continuous` file
//! per channel, each a 1024-byte ASCII header (`header.sampleRate = 30000;`,
//! `header.bitVolts = 0.195;`, ...) followed by records of one little-endian
//! i64 timestamp, a u16 sample count, a u16 recording number,
//! `blockLength` (1024) big-endian int16 samples and a 10-byte marker.
//!
//! The channel files of one recording are the files of a folder whose names
//! differ only in the channel number; they are read in channel-number order
//! (`AUX`/`ADC` files are not channels and are left out). Only whole records
//! count: a trailing partial record (a recording cut off mid-write) is
//! ignored. Channel files that hold different numbers of whole records (one
//! was cut short) are an error naming the short file, unless the caller asks
//! to cut every channel to the shortest.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{
    EphysFormat, EphysInfo, EphysReader, block_samples, check_read_request, os_error, parent_dir,
};
use crate::error::{IoError, escape_text};
use crate::movie::Dtype;

/// Bytes of a record's timestamp, sample count and recording number.
const RECORD_PREFIX_BYTES: usize = 8 + 2 + 2;
/// Bytes of a record's end marker.
const RECORD_MARKER_BYTES: usize = 10;
/// The most samples a record can hold: each record stores its sample count
/// as a u16.
const MAX_BLOCK_LENGTH: f64 = u16::MAX as f64;
/// The highest sample rate taken as real (Open Ephys acquires at 30 kHz;
/// no extracellular system comes near 10 MHz).
const MAX_SAMPLE_RATE_HZ: f64 = 1e7;
/// Bytes of the ASCII header the format defines.
const STANDARD_HEADER_BYTES: f64 = 1024.0;

/// The parts of a channel file name `<prefix>CH<number><suffix>.continuous`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChannelFileName {
    prefix: String,
    number: u32,
    /// Empty, or `_<k>` for the k-th recording in the same folder.
    suffix: String,
}

fn parse_channel_file_name(path: &Path) -> Option<ChannelFileName> {
    let extension = path.extension()?.to_str()?;
    if !extension.eq_ignore_ascii_case("continuous") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    for (at, _) in stem.rmatch_indices("CH") {
        let rest = &stem[at + 2..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let tail = &rest[digits..];
        let tail_ok = tail.is_empty()
            || (tail.len() > 1
                && tail.starts_with('_')
                && tail[1..].bytes().all(|b| b.is_ascii_digit()));
        if !tail_ok {
            continue;
        }
        let number = rest[..digits].parse().ok()?;
        return Some(ChannelFileName {
            prefix: stem[..at].to_string(),
            number,
            suffix: tail.to_string(),
        });
    }
    None
}

/// The channel files in `dir`, grouped by recording (prefix and suffix), each
/// group sorted by channel number.
fn channel_file_groups(dir: &Path) -> Result<Vec<Vec<(ChannelFileName, PathBuf)>>, IoError> {
    let mut files: Vec<(ChannelFileName, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(os_error(dir, "listing the folder"))? {
        let path = entry.map_err(os_error(dir, "listing the folder"))?.path();
        if let Some(name) = parse_channel_file_name(&path)
            && path.is_file()
        {
            files.push((name, path));
        }
    }
    files.sort_by(|a, b| {
        (&a.0.prefix, &a.0.suffix, a.0.number).cmp(&(&b.0.prefix, &b.0.suffix, b.0.number))
    });
    let mut groups: Vec<Vec<(ChannelFileName, PathBuf)>> = Vec::new();
    for file in files {
        match groups.last_mut() {
            Some(group)
                if group[0].0.prefix == file.0.prefix && group[0].0.suffix == file.0.suffix =>
            {
                group.push(file)
            }
            _ => groups.push(vec![file]),
        }
    }
    Ok(groups)
}

/// The channel files of the one recording in `dir`; `None` if it holds none,
/// an error if it holds several recordings.
pub(crate) fn channel_files_in_folder(dir: &Path) -> Result<Option<Vec<PathBuf>>, IoError> {
    let mut groups = channel_file_groups(dir)?;
    match groups.len() {
        0 => Ok(None),
        1 => Ok(groups
            .pop()
            .map(|group| group.into_iter().map(|(_, path)| path).collect())),
        _ => {
            let names: Vec<String> = groups
                .iter()
                .map(|g| format!("{}CH*{}", g[0].0.prefix, g[0].0.suffix))
                .collect();
            Err(IoError::Recording {
                path: dir.to_path_buf(),
                detail: format!(
                    "folder holds several Open Ephys legacy recordings ({}): give one of their \
                     .continuous files",
                    names.join(", ")
                ),
            })
        }
    }
}

/// Whether `dir` holds Open Ephys legacy channel files.
pub(crate) fn folder_has_channel_files(dir: &Path) -> bool {
    channel_file_groups(dir).is_ok_and(|groups| !groups.is_empty())
}

/// All channel files of the recording `file` belongs to.
pub(crate) fn channel_files_like(file: &Path) -> Result<Vec<PathBuf>, IoError> {
    crate::movie::require_file(file)?;
    let Some(name) = parse_channel_file_name(file) else {
        return Err(IoError::Recording {
            path: file.to_path_buf(),
            detail:
                "not an Open Ephys legacy channel file (expected a name like 100_CH1.continuous)"
                    .to_string(),
        });
    };
    let group = channel_file_groups(&parent_dir(file))?
        .into_iter()
        .find(|g| g[0].0.prefix == name.prefix && g[0].0.suffix == name.suffix)
        .unwrap_or_default();
    if group.is_empty() {
        return Err(IoError::NotFound {
            path: file.to_path_buf(),
        });
    }
    Ok(group.into_iter().map(|(_, path)| path).collect())
}

/// What the ASCII header of one channel file says.
#[derive(Clone, Debug, PartialEq)]
struct ChannelHeader {
    header_bytes: usize,
    sample_rate_hz: f64,
    block_length: usize,
    microvolts_per_bit: Option<f64>,
}

/// Reads `header.<key> = <value>;` statements from the first 1024 bytes.
fn read_header(path: &Path, file: &mut File) -> Result<ChannelHeader, IoError> {
    let mut bytes = Vec::with_capacity(1024);
    file.by_ref()
        .take(1024)
        .read_to_end(&mut bytes)
        .map_err(os_error(path, "reading the header"))?;
    let text = String::from_utf8_lossy(&bytes);
    let error = |detail: String| IoError::Recording {
        path: path.to_path_buf(),
        detail,
    };
    let mut values = std::collections::HashMap::new();
    for statement in text.split([';', '\n']) {
        let statement = statement.trim();
        let Some(rest) = statement.strip_prefix("header.") else {
            continue;
        };
        if let Some((key, value)) = rest.split_once('=') {
            let value = value.trim().trim_matches(|c| c == '\'' || c == '"').trim();
            values.insert(key.trim().to_string(), value.to_string());
        }
    }
    let number = |key: &str| -> Result<Option<f64>, IoError> {
        match values.get(key) {
            None => Ok(None),
            Some(text) => text.parse::<f64>().map(Some).map_err(|_| {
                error(format!(
                    "header.{key} = '{}' is not a number",
                    escape_text(text)
                ))
            }),
        }
    };
    let sample_rate_hz = number("sampleRate")?.ok_or_else(|| {
        error(
            "no header.sampleRate: not an Open Ephys .continuous file (or a truncated one)".into(),
        )
    })?;
    if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0 && sample_rate_hz <= MAX_SAMPLE_RATE_HZ)
    {
        return Err(error(format!(
            "header.sampleRate = {sample_rate_hz} is not a sample rate (expected a positive \
             number of Hz up to {MAX_SAMPLE_RATE_HZ})"
        )));
    }
    let whole = |value: f64, key: &str, range: std::ops::RangeInclusive<f64>| {
        if value.fract() == 0.0 && range.contains(&value) {
            Ok(value as usize)
        } else {
            Err(error(format!(
                "header.{key} = {value} is not a whole number from {} to {}",
                range.start(),
                range.end()
            )))
        }
    };
    // A record stores its sample count as a u16, so a block can be no longer.
    let block_length = whole(
        number("blockLength")?.unwrap_or(1024.0),
        "blockLength",
        1.0..=MAX_BLOCK_LENGTH,
    )?;
    // The header is the ASCII text read above; the data cannot start inside
    // it. (Its end is checked against each file's size on open.)
    let header_bytes = whole(
        number("header_bytes")?.unwrap_or(STANDARD_HEADER_BYTES),
        "header_bytes",
        STANDARD_HEADER_BYTES..=1e9,
    )?;
    let microvolts_per_bit = number("bitVolts")?.filter(|v| v.is_finite() && *v > 0.0);
    Ok(ChannelHeader {
        header_bytes,
        sample_rate_hz,
        block_length,
        microvolts_per_bit,
    })
}

/// One channel file, open.
struct ChannelFile {
    path: PathBuf,
    file: File,
    header_bytes: u64,
}

/// Reads a legacy recording, channel file by channel file.
pub(crate) struct LegacyReader {
    info: EphysInfo,
    opened_as: PathBuf,
    channels: Vec<ChannelFile>,
    /// Samples per record.
    block_length: usize,
    /// Bytes per record.
    record_bytes: usize,
    scratch: Vec<u8>,
}

impl LegacyReader {
    /// Opens the channel files `files` (in channel order). Files holding
    /// different numbers of whole records are an error naming the short
    /// one, unless `cut_to_shortest`.
    pub(crate) fn open(
        opened_as: &Path,
        files: &[PathBuf],
        cut_to_shortest: bool,
    ) -> Result<Self, IoError> {
        if files.len() > super::MAX_CHANNELS {
            return Err(IoError::TooLarge {
                path: opened_as.to_path_buf(),
                detail: format!(
                    "{} channel files is more channels than any recording has (at most {})",
                    files.len(),
                    super::MAX_CHANNELS
                ),
            });
        }
        let mut channels = Vec::with_capacity(files.len());
        // Whole records in each file, in file order.
        let mut file_records: Vec<u64> = Vec::with_capacity(files.len());
        let mut first_header: Option<ChannelHeader> = None;
        let mut microvolts_per_bit = Some(Vec::with_capacity(files.len()));
        let mut records = u64::MAX;
        for path in files {
            let mut file = File::open(path).map_err(os_error(path, "opening"))?;
            let header = read_header(path, &mut file)?;
            if let Some(first) = &first_header
                && (header.sample_rate_hz != first.sample_rate_hz
                    || header.block_length != first.block_length)
            {
                return Err(IoError::Recording {
                    path: path.clone(),
                    detail: format!(
                        "sample rate {} Hz and block length {} differ from the first \
                         channel's ({} Hz, {})",
                        header.sample_rate_hz,
                        header.block_length,
                        first.sample_rate_hz,
                        first.block_length
                    ),
                });
            }
            let record_bytes =
                (RECORD_PREFIX_BYTES + 2 * header.block_length + RECORD_MARKER_BYTES) as u64;
            let size = file
                .metadata()
                .map_err(os_error(path, "reading the file size"))?
                .len();
            let header_bytes = header.header_bytes as u64;
            if size < header_bytes {
                return Err(IoError::Recording {
                    path: path.clone(),
                    detail: format!(
                        "file is {size} bytes, shorter than its {header_bytes}-byte header \
                         (truncated?)"
                    ),
                });
            }
            let whole_records = (size - header_bytes) / record_bytes;
            records = records.min(whole_records);
            file_records.push(whole_records);
            microvolts_per_bit = microvolts_per_bit.and_then(|mut list: Vec<f64>| {
                list.push(header.microvolts_per_bit?);
                Some(list)
            });
            channels.push(ChannelFile {
                path: path.clone(),
                file,
                header_bytes,
            });
            first_header.get_or_insert(header);
        }
        let Some(header) = first_header else {
            return Err(IoError::Recording {
                path: opened_as.to_path_buf(),
                detail: "no channel files".to_string(),
            });
        };
        let longest = file_records.iter().copied().max().unwrap_or(0);
        if records != longest && !cut_to_shortest {
            let short = file_records.iter().position(|&r| r == records).unwrap_or(0);
            let short_files = file_records.iter().filter(|&&r| r == records).count();
            return Err(IoError::Recording {
                path: channels[short].path.clone(),
                detail: format!(
                    "holds {records} whole records of {} samples, but {} of the {} channel \
                     files hold up to {longest} (truncated?); a recording's channels must be \
                     equally long (ask to cut every channel to the shortest to read it anyway)",
                    header.block_length,
                    file_records.len() - short_files,
                    file_records.len()
                ),
            });
        }
        let samples = usize::try_from(records)
            .ok()
            .and_then(|r| r.checked_mul(header.block_length))
            .unwrap_or(0);
        if samples == 0 {
            return Err(IoError::Recording {
                path: channels[0].path.clone(),
                detail: "recording holds no whole record of samples (truncated?)".to_string(),
            });
        }
        let count = channels.len();
        Ok(Self {
            info: EphysInfo {
                format: EphysFormat::OpenEphysLegacy,
                samples,
                saved_channels: count,
                neural_channels: (0..count).collect(),
                sample_rate_hz: header.sample_rate_hz,
                dtype: Dtype::I16,
                microvolts_per_bit,
                positions: None,
            },
            opened_as: opened_as.to_path_buf(),
            channels,
            block_length: header.block_length,
            record_bytes: RECORD_PREFIX_BYTES + 2 * header.block_length + RECORD_MARKER_BYTES,
            scratch: Vec::new(),
        })
    }

    /// Reads samples `[start, start + count)` of channel `index` into every
    /// `width`-th value of `out`, starting at `out[index]`.
    fn read_channel(
        &mut self,
        index: usize,
        start: usize,
        count: usize,
        out: &mut [f32],
    ) -> Result<(), IoError> {
        let width = self.channels.len();
        let block = self.block_length;
        let records_per_read = block_samples(self.record_bytes);
        let channel = &mut self.channels[index];
        let end = start + count;
        let mut record = start / block;
        let last_record = (end - 1) / block;
        while record <= last_record {
            let records = records_per_read.min(last_record - record + 1);
            let offset = channel.header_bytes + (record * self.record_bytes) as u64;
            self.scratch.resize(records * self.record_bytes, 0);
            channel
                .file
                .seek(SeekFrom::Start(offset))
                .map_err(os_error(&channel.path, "seeking to the samples"))?;
            channel
                .file
                .read_exact(&mut self.scratch)
                .map_err(os_error(&channel.path, "reading samples"))?;
            for (i, bytes) in self.scratch.chunks_exact(self.record_bytes).enumerate() {
                let number = record + i;
                let stored = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
                if stored != block {
                    return Err(IoError::Recording {
                        path: channel.path.clone(),
                        detail: format!(
                            "record {number} holds {stored} samples, expected {block} (corrupt file?)"
                        ),
                    });
                }
                let first = number * block;
                let from = start.max(first);
                let to = end.min(first + block);
                let samples = &bytes[RECORD_PREFIX_BYTES..RECORD_PREFIX_BYTES + 2 * block];
                for t in from..to {
                    let k = 2 * (t - first);
                    out[(t - start) * width + index] =
                        f32::from(i16::from_be_bytes([samples[k], samples[k + 1]]));
                }
            }
            record += records;
        }
        Ok(())
    }
}

impl EphysReader for LegacyReader {
    fn info(&self) -> &EphysInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        &self.opened_as
    }

    fn read_samples(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        check_read_request(
            &self.opened_as,
            self.info.samples,
            start,
            count,
            self.channels.len(),
            out.len(),
        )?;
        if count == 0 {
            return Ok(());
        }
        for index in 0..self.channels.len() {
            self.read_channel(index, start, count, out)?;
        }
        Ok(())
    }

    fn read_saved(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        self.read_samples(start, count, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_file_names_parse() {
        let parse = |s: &str| parse_channel_file_name(Path::new(s));
        assert_eq!(
            parse("100_example-data_CH12.continuous"),
            Some(ChannelFileName {
                prefix: "100_example-data_".into(),
                number: 12,
                suffix: String::new()
            })
        );
        assert_eq!(
            parse("100_CH3_2.continuous"),
            Some(ChannelFileName {
                prefix: "100_".into(),
                number: 3,
                suffix: "_2".into()
            })
        );
        assert_eq!(parse("100_AUX1.continuous"), None);
        assert_eq!(parse("100_CH1.dat"), None);
        assert_eq!(parse("100_CHx.continuous"), None);
    }
}
