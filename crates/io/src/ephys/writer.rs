//! Writing recordings: one interleaved little-endian data file streamed
//! through a buffer into a temporary file, plus the header file that goes
//! with it (a SpikeGLX `.meta` or an Open Ephys `structure.oebin`), all
//! renamed onto their final names only when every announced sample was
//! written. Non-neural channels (sync) are copied from the source recording.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::openephys::{self, DATA_FILE_KEY, OEBIN_NAME};
use super::spikeglx::{self, Meta};
use super::{
    EphysFormat, EphysReader, EphysWriter, Located, NewSpikeGlx, RawLayout, block_samples, locate,
    open_ephys, os_error, parent_dir,
};
use crate::error::IoError;
use crate::movie::{Dtype, TempOutput, WriteSummary, convert_output};

/// The header file written beside the data file.
enum Sidecar {
    None,
    /// A `.meta`, complete, to be written at its own path.
    SpikeGlxMeta(Meta),
    /// One stream entry to merge into the `structure.oebin` at `oebin`.
    OpenEphys {
        oebin: PathBuf,
        entry: Value,
        gui_version: Option<Value>,
    },
}

/// The source recording read again to copy its non-neural channels.
struct Passthrough {
    reader: Box<dyn EphysReader>,
    first_sample: usize,
}

/// Streams an interleaved recording to a temporary file.
struct InterleavedWriter {
    path: PathBuf,
    temp: TempOutput,
    out: BufWriter<File>,
    dtype: Dtype,
    saved_channels: usize,
    neural_channels: Vec<usize>,
    passthrough: Option<Passthrough>,
    expected_samples: usize,
    written_samples: usize,
    clipped_values: u64,
    rows: Vec<f32>,
    converted: Vec<i16>,
    bytes: Vec<u8>,
    sidecar: Sidecar,
}

impl InterleavedWriter {
    #[allow(clippy::too_many_arguments)]
    fn create(
        path: &Path,
        dtype: Dtype,
        saved_channels: usize,
        neural_channels: Vec<usize>,
        expected_samples: usize,
        passthrough: Option<Passthrough>,
        sidecar: Sidecar,
    ) -> Result<Self, IoError> {
        let temp = TempOutput::new(path)?;
        let file = File::create(temp.temp_path()).map_err(os_error(path, "creating the output"))?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            out: BufWriter::with_capacity(1 << 20, file),
            dtype,
            saved_channels,
            neural_channels,
            passthrough,
            expected_samples,
            written_samples: 0,
            clipped_values: 0,
            rows: Vec::new(),
            converted: Vec::new(),
            bytes: Vec::new(),
            sidecar,
        })
    }

    /// Writes one block of samples (`len` ≤ the block size) starting at
    /// output sample `at`.
    fn write_block(&mut self, neural: &[f32], at: usize, len: usize) -> Result<(), IoError> {
        let saved = self.saved_channels;
        self.rows.clear();
        self.rows.resize(len * saved, 0.0);
        if let Some(p) = &mut self.passthrough {
            p.reader
                .read_saved(p.first_sample + at, len, &mut self.rows)?;
        }
        let width = self.neural_channels.len();
        for (row, values) in self
            .rows
            .chunks_exact_mut(saved)
            .zip(neural.chunks_exact(width))
        {
            for (&channel, &value) in self.neural_channels.iter().zip(values) {
                row[channel] = value;
            }
        }
        self.bytes.clear();
        match self.dtype {
            Dtype::F32 => {
                for value in &self.rows {
                    self.bytes.extend_from_slice(&value.to_le_bytes());
                }
            }
            _ => {
                self.converted.resize(self.rows.len(), 0);
                self.clipped_values += convert_output(&self.rows, &mut self.converted);
                for value in &self.converted {
                    self.bytes.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        self.out
            .write_all(&self.bytes)
            .map_err(os_error(&self.path, "writing samples"))
    }
}

impl EphysWriter for InterleavedWriter {
    fn write_samples(&mut self, neural: &[f32], count: usize) -> Result<(), IoError> {
        let width = self.neural_channels.len();
        let expected = count.saturating_mul(width);
        if neural.len() != expected {
            return Err(IoError::BufferSize {
                path: self.path.clone(),
                expected,
                actual: neural.len(),
            });
        }
        let after = self.written_samples.saturating_add(count);
        if after > self.expected_samples {
            return Err(IoError::SampleCount {
                path: self.path.clone(),
                written: after,
                expected: self.expected_samples,
            });
        }
        let block = block_samples(self.saved_channels * 4);
        let mut done = 0;
        while done < count {
            let len = block.min(count - done);
            let at = self.written_samples + done;
            self.write_block(&neural[done * width..(done + len) * width], at, len)?;
            done += len;
        }
        self.written_samples = after;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError> {
        let this = *self;
        if this.written_samples != this.expected_samples {
            return Err(IoError::SampleCount {
                path: this.path,
                written: this.written_samples,
                expected: this.expected_samples,
            });
        }
        let file = this.out.into_inner().map_err(|e| IoError::Os {
            path: this.path.clone(),
            action: "flushing the output",
            error: e.into_error(),
        })?;
        file.sync_all()
            .map_err(os_error(&this.path, "flushing the output"))?;
        drop(file);
        let sidecar = match this.sidecar {
            Sidecar::None => None,
            Sidecar::SpikeGlxMeta(meta) => {
                Some(write_temp(meta.path(), meta.to_text().as_bytes())?)
            }
            Sidecar::OpenEphys {
                oebin,
                entry,
                gui_version,
            } => {
                let document = merged_oebin(&oebin, entry, gui_version)?;
                let text =
                    serde_json::to_string_pretty(&document).map_err(|e| IoError::Recording {
                        path: oebin.clone(),
                        detail: format!("cannot encode JSON: {e}"),
                    })?;
                Some(write_temp(&oebin, text.as_bytes())?)
            }
        };
        let path = this.temp.commit()?;
        if let Some(temp) = sidecar {
            temp.commit()?;
        }
        Ok(WriteSummary {
            frames: this.written_samples,
            clipped_values: this.clipped_values,
            path,
        })
    }
}

/// Writes `contents` to a temporary file for `path`, to be committed later.
fn write_temp(path: &Path, contents: &[u8]) -> Result<TempOutput, IoError> {
    let temp = TempOutput::new(path)?;
    std::fs::write(temp.temp_path(), contents).map_err(os_error(path, "writing"))?;
    Ok(temp)
}

// ---------------------------------------------------------------------------
// Outputs shaped like a source recording.
// ---------------------------------------------------------------------------

pub(crate) fn create_like(
    source: &dyn EphysReader,
    output: &Path,
    dtype: Dtype,
    samples: usize,
    first_source_sample: usize,
) -> Result<Box<dyn EphysWriter>, IoError> {
    if !matches!(dtype, Dtype::I16 | Dtype::F32) {
        return Err(IoError::UnsupportedDtype {
            path: output.to_path_buf(),
            found: format!("{dtype} for a recording"),
            supported: "int16, float32",
        });
    }
    let info = source.info();
    let end = first_source_sample.saturating_add(samples);
    if end > info.samples {
        return Err(IoError::SampleRange {
            path: source.path().to_path_buf(),
            start: first_source_sample,
            end,
            samples: info.samples,
        });
    }
    let located = locate(source.path())?;
    let (source_files, sidecar) = match (&located, info.format) {
        (Located::Raw { file }, EphysFormat::Raw) => (vec![file.clone()], Sidecar::None),
        (Located::OpenEphysLegacy { files }, EphysFormat::OpenEphysLegacy) => {
            (files.clone(), Sidecar::None)
        }
        (Located::SpikeGlx { bin, meta }, EphysFormat::SpikeGlx) => {
            let sidecar =
                spikeglx_meta_like(meta, source, output, dtype, samples, first_source_sample)?;
            (vec![bin.clone(), meta.clone()], sidecar)
        }
        (Located::OpenEphysBinary(stream), EphysFormat::OpenEphysBinary) => {
            let sidecar = oebin_entry_like(stream, source, output, dtype, first_source_sample)?;
            (vec![stream.data.clone()], sidecar)
        }
        _ => {
            return Err(IoError::Recording {
                path: source.path().to_path_buf(),
                detail: format!(
                    "no longer looks like the {} recording it was opened as",
                    info.format
                ),
            });
        }
    };
    let mut targets = vec![output.to_path_buf()];
    if let Sidecar::SpikeGlxMeta(meta) = &sidecar {
        targets.push(meta.path().to_path_buf());
    }
    for target in &targets {
        if source_files.iter().any(|f| same_file(f, target)) {
            return Err(IoError::InvalidRequest {
                path: target.clone(),
                detail: "is part of the source recording: choose another output path".to_string(),
            });
        }
    }
    let passthrough = if info.neural_channels.len() < info.saved_channels {
        let layout = (info.format == EphysFormat::Raw).then_some(RawLayout {
            channels: info.saved_channels,
            sample_rate_hz: info.sample_rate_hz,
            dtype: info.dtype,
        });
        let reader = open_ephys(source.path(), layout)?;
        if reader.info() != info {
            return Err(IoError::Recording {
                path: source.path().to_path_buf(),
                detail: "changed since it was opened".to_string(),
            });
        }
        Some(Passthrough {
            reader,
            first_sample: first_source_sample,
        })
    } else {
        None
    };
    let writer = InterleavedWriter::create(
        output,
        dtype,
        info.saved_channels,
        info.neural_channels.clone(),
        samples,
        passthrough,
        sidecar,
    )?;
    Ok(Box::new(writer))
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The source path as recorded in output headers: absolute when possible.
fn source_description(source: &dyn EphysReader) -> String {
    std::fs::canonicalize(source.path())
        .unwrap_or_else(|_| source.path().to_path_buf())
        .display()
        .to_string()
}

/// The `.meta` path of a SpikeGLX output `output`.
fn meta_path_for(output: &Path) -> Result<PathBuf, IoError> {
    let is_meta = output
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("meta"));
    if is_meta {
        return Err(IoError::InvalidRequest {
            path: output.to_path_buf(),
            detail: "a SpikeGLX output needs a .bin name (its .meta is written beside it)"
                .to_string(),
        });
    }
    Ok(output.with_extension("meta"))
}

/// The source meta, edited to describe the output.
fn spikeglx_meta_like(
    source_meta: &Path,
    source: &dyn EphysReader,
    output: &Path,
    dtype: Dtype,
    samples: usize,
    first_source_sample: usize,
) -> Result<Sidecar, IoError> {
    let info = source.info();
    let mut meta = Meta::read(source_meta)?.moved_to(&meta_path_for(output)?);
    let bytes = samples as u64 * info.saved_channels as u64 * dtype.size_bytes() as u64;
    meta.set("fileSizeBytes", bytes.to_string());
    meta.set(
        "fileTimeSecs",
        (samples as f64 / info.sample_rate_hz).to_string(),
    );
    meta.set("fileName", output.display().to_string());
    if let Some(first) = meta
        .get("firstSample")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        meta.set(
            "firstSample",
            (first + first_source_sample as u64).to_string(),
        );
    }
    meta.remove("fileSHA1");
    match dtype {
        Dtype::F32 => meta.set(spikeglx::DTYPE_KEY, "float32"),
        _ => meta.remove(spikeglx::DTYPE_KEY),
    }
    meta.set("deepinterpSource", source_description(source));
    meta.set("deepinterpFirstSample", first_source_sample.to_string());
    Ok(Sidecar::SpikeGlxMeta(meta))
}

/// The source stream's entry, edited to describe the output, and the
/// `structure.oebin` beside the output it goes into.
fn oebin_entry_like(
    stream: &openephys::StreamLocation,
    source: &dyn EphysReader,
    output: &Path,
    dtype: Dtype,
    first_source_sample: usize,
) -> Result<Sidecar, IoError> {
    let oebin = parent_dir(output).join(OEBIN_NAME);
    let Some(file_name) = output.file_name().and_then(|n| n.to_str()) else {
        return Err(IoError::InvalidRequest {
            path: output.to_path_buf(),
            detail: "output path has no valid file name".to_string(),
        });
    };
    // Fail early (and again at the end) on a structure.oebin that is not ours.
    existing_entries_of_ours(&oebin)?;
    let mut entry: Map<String, Value> = match stream.entry() {
        Value::Object(map) => map.clone(),
        _ => {
            return Err(IoError::Recording {
                path: stream.oebin.clone(),
                detail: "a continuous stream entry is not a JSON object".to_string(),
            });
        }
    };
    entry.insert(DATA_FILE_KEY.into(), json!(file_name));
    entry.insert(
        "deepinterp_source".into(),
        json!(source_description(source)),
    );
    entry.insert("deepinterp_first_sample".into(), json!(first_source_sample));
    match dtype {
        Dtype::F32 => entry.insert(openephys::DTYPE_KEY.into(), json!("float32")),
        _ => entry.remove(openephys::DTYPE_KEY),
    };
    Ok(Sidecar::OpenEphys {
        oebin,
        entry: Value::Object(entry),
        gui_version: stream.document.get("GUI version").cloned(),
    })
}

/// The continuous entries of an existing `structure.oebin` written by this
/// crate (empty when there is none); an error for one it did not write.
fn existing_entries_of_ours(oebin: &Path) -> Result<Vec<Value>, IoError> {
    if !oebin.exists() {
        return Ok(Vec::new());
    }
    let document = openephys::read_oebin(oebin)?;
    let entries = document
        .get("continuous")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.iter().all(|e| e.get(DATA_FILE_KEY).is_some()) {
        Ok(entries)
    } else {
        Err(IoError::InvalidRequest {
            path: oebin.to_path_buf(),
            detail: "already exists and was not written by deepinterp (it may describe a \
                     recording): write the output to another folder"
                .to_string(),
        })
    }
}

/// The `structure.oebin` to write: the existing entries of other outputs in
/// the folder, plus `entry` (replacing an older one for the same file).
fn merged_oebin(oebin: &Path, entry: Value, gui_version: Option<Value>) -> Result<Value, IoError> {
    let file_name = entry.get(DATA_FILE_KEY).cloned();
    let mut entries: Vec<Value> = existing_entries_of_ours(oebin)?
        .into_iter()
        .filter(|e| e.get(DATA_FILE_KEY) != file_name.as_ref())
        .collect();
    entries.push(entry);
    let mut document = Map::new();
    if let Some(version) = gui_version {
        document.insert("GUI version".into(), version);
    }
    document.insert("continuous".into(), Value::Array(entries));
    document.insert("events".into(), json!([]));
    document.insert("spikes".into(), json!([]));
    Ok(Value::Object(document))
}

// ---------------------------------------------------------------------------
// Fresh SpikeGLX recordings.
// ---------------------------------------------------------------------------

/// The SpikeGLX AP gain written for fresh recordings.
const FRESH_AP_GAIN: f64 = 500.0;
/// The NP1.0 ADC's largest value.
const NP1_MAX_INT: f64 = 512.0;
/// Shank pitch written into `~snsGeomMap` for multi-shank layouts.
const SHANK_PITCH_UM: f32 = 250.0;

pub(crate) fn create_spikeglx(
    path: &Path,
    spec: &NewSpikeGlx,
) -> Result<Box<dyn EphysWriter>, IoError> {
    let invalid = |detail: String| IoError::InvalidRequest {
        path: path.to_path_buf(),
        detail,
    };
    if spec.positions.is_empty() {
        return Err(invalid("a recording needs at least one channel".into()));
    }
    if !(spec.sample_rate_hz.is_finite() && spec.sample_rate_hz > 0.0) {
        return Err(invalid(format!(
            "sample rate {} Hz is not a positive number",
            spec.sample_rate_hz
        )));
    }
    if !(spec.microvolts_per_bit.is_finite() && spec.microvolts_per_bit > 0.0) {
        return Err(invalid(format!(
            "{} µV per bit is not a positive number",
            spec.microvolts_per_bit
        )));
    }
    let meta = fresh_meta(&meta_path_for(path)?, path, spec);
    let neural = spec.positions.len();
    let saved = neural + usize::from(spec.with_sync_channel);
    let writer = InterleavedWriter::create(
        path,
        Dtype::I16,
        saved,
        (0..neural).collect(),
        spec.samples,
        None,
        Sidecar::SpikeGlxMeta(meta),
    )?;
    Ok(Box::new(writer))
}

/// The `.meta` of a fresh NP1.0-style recording (keys in SpikeGLX's order:
/// alphabetical, `~` tables last).
fn fresh_meta(meta_path: &Path, bin: &Path, spec: &NewSpikeGlx) -> Meta {
    let n = spec.positions.len();
    let sync = usize::from(spec.with_sync_channel);
    let saved = n + sync;
    let range_volts = spec.microvolts_per_bit * NP1_MAX_INT * FRESH_AP_GAIN / 1e6;
    let shanks = spec.positions.iter().map(|p| p.shank).max().unwrap_or(0) + 1;
    let pitch = if shanks > 1 { SHANK_PITCH_UM } else { 0.0 };
    let rows = n.div_ceil(2).max(480);

    let mut imro = format!("(0,{n})");
    let mut chan_map = format!("({n},{n},1)");
    let mut shank_map = format!("(1,2,{rows})");
    let mut geom_map = format!("(NP1000,{shanks},{pitch},70)");
    for (c, p) in spec.positions.iter().enumerate() {
        imro.push_str(&format!("({c} 0 0 {FRESH_AP_GAIN} 250 1)"));
        chan_map.push_str(&format!("(AP{c};{c}:{c})"));
        shank_map.push_str(&format!("(0:{}:{}:1)", 1 - c % 2, c / 2));
        geom_map.push_str(&format!(
            "({}:{}:{}:1)",
            p.shank,
            p.x_um - pitch * p.shank as f32,
            p.y_um
        ));
    }
    if sync == 1 {
        chan_map.push_str(&format!("(SY0;{}:{})", 2 * n, 2 * n));
    }
    let file_bytes = spec.samples as u64 * saved as u64 * 2;
    let entries: Vec<(String, String)> = [
        ("acqApLfSy", format!("{n},{n},1")),
        ("appVersion", "20231207".to_string()),
        ("fileName", bin.display().to_string()),
        ("fileSizeBytes", file_bytes.to_string()),
        (
            "fileTimeSecs",
            (spec.samples as f64 / spec.sample_rate_hz).to_string(),
        ),
        ("firstSample", "0".to_string()),
        ("imAiRangeMax", range_volts.to_string()),
        ("imAiRangeMin", (-range_volts).to_string()),
        ("imDatPrb_pn", "NP1000".to_string()),
        ("imDatPrb_type", "0".to_string()),
        ("imMaxInt", NP1_MAX_INT.to_string()),
        ("imSampRate", spec.sample_rate_hz.to_string()),
        ("nSavedChans", saved.to_string()),
        ("snsApLfSy", format!("{n},0,{sync}")),
        ("snsSaveChanSubset", "all".to_string()),
        ("typeThis", "imec".to_string()),
        ("~imroTbl", imro),
        ("~snsChanMap", chan_map),
        ("~snsShankMap", shank_map),
        ("~snsGeomMap", geom_map),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Meta::new(meta_path, entries)
}
