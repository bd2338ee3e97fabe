//! Hostile-input testing for deepinterp: one harness per parser that reads a user's file,
//! the seed inputs those harnesses start from, and the list of fuzz targets.
//!
//! This crate owns the harness side of fuzzing. Each harness takes arbitrary bytes, lays
//! them out on disk the way a user's file would be (in a fresh temporary folder, beside
//! valid companion files where the format has several), and runs our public API on them
//! the way the command line does: open, then read every frame, volume or sample chunk the
//! reader offers (bounded, see [`read_chunked`]). Errors are the expected outcome and are
//! ignored; a panic or an oversized allocation is a finding. The same harnesses run under
//! libFuzzer (`fuzz/`, one thin target each), in the mutation test and in the replay of
//! saved regression inputs (`tests/`).
//!
//! The engine's harnesses (`.dimodel`, Keras `.h5` import, training checkpoints, the
//! training-settings TOML file) are behind the `engine` feature (on by default).

use std::path::{Path, PathBuf};

use deepinterp_io::limits::memory_budget;

pub mod seeds;

/// One fuzz target: a harness and where its seeds come from.
#[derive(Clone, Copy)]
pub struct Target {
    /// The fuzz target's name, also the folder of its regression inputs.
    pub name: &'static str,
    /// Runs one input; never panics by itself.
    pub run: fn(&[u8]),
    /// Runs one input and returns the first error our API gave (the seed tests use it to
    /// check that every seed is read through without one).
    pub check: fn(&[u8]) -> Outcome,
    /// Small valid inputs made with our own writers.
    pub seeds: fn() -> Vec<seeds::Seed>,
}

/// Every harness this build has (the engine ones only with the `engine` feature).
pub fn targets() -> Vec<Target> {
    #[allow(unused_mut)] // Without `engine` nothing is pushed.
    let mut list = vec![
        Target {
            name: "hdf5_movie",
            run: hdf5_movie,
            check: check_hdf5_movie,
            seeds: seeds::hdf5_movie,
        },
        Target {
            name: "tiff_movie",
            run: tiff_movie,
            check: check_tiff_movie,
            seeds: seeds::tiff_movie,
        },
        Target {
            name: "nifti",
            run: nifti,
            check: check_nifti,
            seeds: seeds::nifti,
        },
        Target {
            name: "spikeglx_meta",
            run: spikeglx_meta,
            check: check_spikeglx_meta,
            seeds: seeds::spikeglx_meta,
        },
        Target {
            name: "oebin",
            run: oebin,
            check: check_oebin,
            seeds: seeds::oebin,
        },
        Target {
            name: "legacy_continuous",
            run: legacy_continuous,
            check: check_legacy_continuous,
            seeds: seeds::legacy_continuous,
        },
    ];
    #[cfg(feature = "engine")]
    list.extend([
        Target {
            name: "dimodel",
            run: engine::dimodel,
            check: engine::check_dimodel,
            seeds: seeds::dimodel,
        },
        Target {
            name: "keras_h5",
            run: engine::keras_h5,
            check: engine::check_keras_h5,
            seeds: seeds::keras_h5,
        },
        Target {
            name: "checkpoint",
            run: engine::checkpoint,
            check: engine::check_checkpoint,
            seeds: seeds::checkpoint,
        },
        Target {
            name: "train_config",
            run: engine::train_config,
            check: engine::check_train_config,
            seeds: seeds::train_config,
        },
    ]);
    list
}

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    targets().into_iter().find(|t| t.name == name)
}

/// What a harness run ended with: our API's first error, if any.
pub type Outcome = Result<(), Box<dyn std::error::Error>>;

/// A fresh temporary folder.
fn scratch() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    Ok(tempfile::Builder::new()
        .prefix("deepinterp-hostile-")
        .tempdir()?)
}

/// Writes `bytes` to `dir/name` and runs `body` on that path.
fn with_file(name: &str, bytes: &[u8], body: impl FnOnce(&Path) -> Outcome) -> Outcome {
    let dir = scratch()?;
    let path = dir.path().join(name);
    std::fs::write(&path, bytes)?;
    body(&path)
}

/// Both outcomes, the first error kept.
fn both(first: Outcome, second: Outcome) -> Outcome {
    first.and(second)
}

/// Defines the public harness `$name` (outcome ignored) over the checking function
/// `$check`, so that the fuzz targets and the tests share one body.
macro_rules! harness {
    ($(#[$doc:meta])* $name:ident => $check:ident) => {
        $(#[$doc])*
        pub fn $name(data: &[u8]) {
            let _ = $check(data);
        }
    };
}

/// Values one harness buffer holds at most per read: big enough that a normal small file is
/// read in one go, small enough that the fuzzer stays fast.
const CHUNK_VALUES: usize = 1 << 20;
/// Above this many values in the whole file only the first and the last chunk are read, so
/// a header that declares a long but fill-valued movie does not turn into a timeout.
const FULL_READ_VALUES: usize = 1 << 22;

/// Reads `items` items of `item_len` values each through `read(start, count, out)` in
/// chunks, the way the command line streams a recording.
///
/// An item larger than the memory budget is not read: the command line sizes its buffers
/// from what the reader reports, so a reader that reports such an item without refusing it
/// has already failed the size rules (that is for the library's own tests); the harness
/// never allocates from an unchecked size itself.
pub fn read_chunked(
    items: usize,
    item_len: usize,
    mut read: impl FnMut(usize, usize, &mut [f32]) -> Outcome,
) -> Outcome {
    if items == 0 || item_len == 0 {
        return read(0, items.min(1), &mut []);
    }
    let item_bytes = item_len.checked_mul(4).ok_or("item too large")?;
    if item_bytes as u64 > memory_budget() {
        return Err("item larger than the memory budget".into());
    }
    let per_chunk = (CHUNK_VALUES / item_len).clamp(1, items);
    let mut buffer = vec![0f32; per_chunk * item_len];
    let whole_file = items
        .checked_mul(item_len)
        .is_some_and(|total| total <= FULL_READ_VALUES);
    let starts: Vec<usize> = if whole_file {
        (0..items).step_by(per_chunk).collect()
    } else {
        vec![0, items - per_chunk]
    };
    for start in starts {
        let count = per_chunk.min(items - start);
        read(start, count, &mut buffer[..count * item_len])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Movies.
// ---------------------------------------------------------------------------

fn read_movie(path: &Path) -> Outcome {
    let mut reader = deepinterp_io::open_movie(path)?;
    let info = reader.info().clone();
    let _ = reader.site_mask();
    read_chunked(
        info.frames,
        info.height.saturating_mul(info.width),
        |s, c, out| Ok(reader.read_frames(s, c, out)?),
    )
}

fn check_hdf5_movie(data: &[u8]) -> Outcome {
    with_file("movie.h5", data, read_movie)
}

harness! {
    /// An HDF5 movie (`.h5`, dataset `data`): open, then read every frame.
    hdf5_movie => check_hdf5_movie
}

fn check_tiff_movie(data: &[u8]) -> Outcome {
    with_file("movie.tif", data, read_movie)
}

harness! {
    /// A multi-page TIFF movie (`.tif`): open, then read every frame.
    tiff_movie => check_tiff_movie
}

// ---------------------------------------------------------------------------
// NIfTI.
// ---------------------------------------------------------------------------

fn read_nifti(path: &Path) -> Outcome {
    let mut reader = deepinterp_io::open_volume(path)?;
    let info = reader.info().clone();
    let _ = reader.header_bytes().len();
    let volume_len = info.shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    read_chunked(
        info.frames,
        volume_len.ok_or("volume too large")?,
        |s, c, out| Ok(reader.read_volumes(s, c, out)?),
    )
}

fn check_nifti_plain(data: &[u8]) -> Outcome {
    with_file("image.nii", data, read_nifti)
}

harness! {
    /// The bytes as a plain `.nii`: the header, then every volume.
    nifti_plain => check_nifti_plain
}

fn check_nifti_gz(data: &[u8]) -> Outcome {
    use std::io::Write;
    // Stored (uncompressed) deflate blocks: the point is the NIfTI parser behind the gzip
    // stream, not the compressor, whose work per input would only slow the fuzzer.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    encoder.write_all(data)?;
    with_file("image.nii.gz", &encoder.finish()?, read_nifti)
}

harness! {
    /// The bytes gzip-compressed into a `.nii.gz`, so that the header parser and the volume
    /// stream see the fuzzer's bytes through the decompressor.
    nifti_gz => check_nifti_gz
}

fn check_nifti(data: &[u8]) -> Outcome {
    both(check_nifti_plain(data), check_nifti_gz(data))
}

harness! {
    /// Both NIfTI forms: [`nifti_plain`], then [`nifti_gz`].
    nifti => check_nifti
}

// ---------------------------------------------------------------------------
// Electrophysiology.
// ---------------------------------------------------------------------------

fn read_ephys(path: &Path) -> Outcome {
    read_ephys_reader(deepinterp_io::open_ephys(path, None)?)
}

/// Reads every sample of an open recording: the neural channels, then all saved ones.
fn read_ephys_reader(mut reader: Box<dyn deepinterp_io::EphysReader>) -> Outcome {
    let info = reader.info().clone();
    let neural = info.neural_channels.len();
    read_chunked(info.samples, neural, |s, c, out| {
        Ok(reader.read_samples(s, c, out)?)
    })?;
    read_chunked(info.samples, info.saved_channels, |s, c, out| {
        Ok(reader.read_saved(s, c, out)?)
    })
}

/// Saved channels (8 neural + sync) and samples of the `.bin` the SpikeGLX harness puts
/// beside the fuzzed `.meta`; [`seeds::spikeglx_meta`] describes exactly this file.
pub const SPIKEGLX_SAVED_CHANNELS: usize = 9;
/// See [`SPIKEGLX_SAVED_CHANNELS`].
pub const SPIKEGLX_SAMPLES: usize = 64;

/// A recognisable int16 pattern (`channels` interleaved, little-endian), the companion
/// data file of the ephys harnesses.
pub fn int16_samples(samples: usize, channels: usize) -> Vec<u8> {
    (0..samples * channels)
        .flat_map(|i| (((i * 37) % 2001) as i16 - 1000).to_le_bytes())
        .collect()
}

/// The same pattern as float32 (little-endian), for the float32 outputs deepinterp writes.
pub fn float32_samples(samples: usize, channels: usize) -> Vec<u8> {
    int16_samples(samples, channels)
        .chunks_exact(2)
        .flat_map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])).to_le_bytes())
        .collect()
}

fn check_spikeglx_meta(data: &[u8]) -> Outcome {
    let dir = scratch()?;
    let bin = dir.path().join("rec.ap.bin");
    std::fs::write(
        &bin,
        int16_samples(SPIKEGLX_SAMPLES, SPIKEGLX_SAVED_CHANNELS),
    )?;
    std::fs::write(dir.path().join("rec.ap.meta"), data)?;
    read_ephys(&bin)
}

harness! {
    /// The bytes as a SpikeGLX `rec.ap.meta`, beside a valid `rec.ap.bin`; opened through
    /// the `.bin` as users do, every sample read (neural channels, then all saved ones).
    spikeglx_meta => check_spikeglx_meta
}

/// Channels and samples of a companion `continuous.dat` when the oebin names no usable
/// channel count.
const OEBIN_DEFAULT_CHANNELS: usize = 4;
const OEBIN_SAMPLES: usize = 32;
/// The stream folder of the seed oebin; always present, so that mutations that break the
/// JSON still find the standard layout.
pub const OEBIN_SEED_FOLDER: &str = "Rhythm_FPGA-100.0";

/// A relative path inside the scratch folder, or `None` for anything that could leave it
/// (absolute, `..`, drive prefixes) or is unreasonably long: the harness must never write
/// outside its folder, whatever the fuzzer puts in a file name.
fn contained(relative: &str) -> Option<PathBuf> {
    use std::path::Component;
    let path = Path::new(relative.trim_end_matches(['/', '\\']));
    if relative.len() > 200 || path.as_os_str().is_empty() {
        return None;
    }
    let normal = path.components().count() <= 8
        && path
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
    normal.then(|| path.to_path_buf())
}

fn check_oebin(data: &[u8]) -> Outcome {
    let dir = scratch()?;
    // (where, channels, float32): the data files the streams name.
    let mut places: Vec<(PathBuf, usize, bool)> = vec![(
        Path::new("continuous").join(OEBIN_SEED_FOLDER),
        OEBIN_DEFAULT_CHANNELS,
        false,
    )];
    let mut files: Vec<(PathBuf, usize, bool)> = Vec::new();
    if let Ok(document) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(streams) = document.get("continuous").and_then(|c| c.as_array())
    {
        for stream in streams.iter().take(4) {
            // Outputs of deepinterp may be float32: give them float data, else every
            // value read would be refused as NaN and the reader never exercised.
            let float = stream.get("deepinterp_dtype").and_then(|d| d.as_str()) == Some("float32");
            let channels = stream
                .get("num_channels")
                .and_then(|n| n.as_u64())
                .filter(|&n| (1..=512).contains(&n))
                .map_or(OEBIN_DEFAULT_CHANNELS, |n| n as usize);
            if let Some(folder) = stream
                .get("folder_name")
                .and_then(|f| f.as_str())
                .and_then(contained)
            {
                places.push((Path::new("continuous").join(folder), channels, float));
            }
            if let Some(file) = stream
                .get("deepinterp_data_file")
                .and_then(|f| f.as_str())
                .and_then(contained)
            {
                files.push((file, channels, float));
            }
        }
    }
    let mut layout: Vec<(PathBuf, usize, bool)> = places
        .into_iter()
        .map(|(folder, channels, float)| (folder.join("continuous.dat"), channels, float))
        .collect();
    layout.extend(files);
    for (relative, channels, float) in layout {
        let path = dir.path().join(relative);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let data = if float {
            float32_samples(OEBIN_SAMPLES, channels)
        } else {
            int16_samples(OEBIN_SAMPLES, channels)
        };
        let _ = std::fs::write(&path, data);
    }
    let oebin = dir.path().join("structure.oebin");
    std::fs::write(&oebin, data)?;
    read_ephys(&oebin)
}

harness! {
    /// The bytes as `structure.oebin`, with a `continuous.dat` in the layout each of its
    /// continuous streams names (`continuous/<folder_name>/continuous.dat`, or the file
    /// named by `deepinterp_data_file`), sized from `num_channels` when small; opened
    /// through the oebin, every sample read.
    oebin => check_oebin
}

/// The `header.blockLength` the input states, when plausible, so that the valid companion
/// channel agrees with it and the reader gets past the channel comparison; else 1024.
fn legacy_block_length(data: &[u8]) -> usize {
    let head = String::from_utf8_lossy(&data[..data.len().min(1024)]);
    head.split([';', '\n'])
        .filter_map(|statement| statement.trim().strip_prefix("header.blockLength"))
        .filter_map(|rest| rest.trim().strip_prefix('=')?.trim().parse::<usize>().ok())
        .find(|&n| (1..=4096).contains(&n))
        .unwrap_or(1024)
}

fn check_legacy_continuous(data: &[u8]) -> Outcome {
    let beside_others = |cut_to_shortest: bool| -> Outcome {
        let dir = scratch()?;
        let file = dir.path().join("100_CH1.continuous");
        std::fs::write(&file, data)?;
        std::fs::write(
            dir.path().join("100_CH2.continuous"),
            seeds::legacy_channel_file(legacy_block_length(data), 2, 0.195),
        )?;
        let options = deepinterp_io::EphysOptions {
            raw: None,
            cut_to_shortest,
        };
        read_ephys_reader(deepinterp_io::open_ephys_with(&file, &options)?)
    };
    // Channel files of unequal length are refused unless cut to the shortest (the
    // command line's --cut-to-shortest): both ways, only the second one's outcome kept
    // (the seeds hold more records than the companion).
    let _ = beside_others(false);
    both(
        beside_others(true),
        with_file("100_CH1.continuous", data, read_ephys),
    )
}

harness! {
    /// The bytes as Open Ephys legacy channel file `100_CH1.continuous`: first beside a
    /// valid `100_CH2.continuous` with the same block length (the recording of both, as
    /// given and cut to the shortest channel), then alone in a folder of its
    /// own; every sample read.
    legacy_continuous => check_legacy_continuous
}

// ---------------------------------------------------------------------------
// Model files.
// ---------------------------------------------------------------------------

/// Harnesses of the model files, which need the engine.
#[cfg(feature = "engine")]
pub mod engine {
    use std::path::Path;

    use super::{Outcome, with_file};
    use deepinterp::backend::{Cpu, CpuTrain};
    use deepinterp::model::{Network, architecture_config, file::read_model, load_model};
    use deepinterp::sampling::Window;
    use deepinterp::training::{OptimizerKind, load_checkpoint_file, read_train_config};

    fn load_dimodel(path: &Path) -> Outcome {
        let device = Default::default();
        let read = read_model::<Cpu>(path, &device).map(drop);
        let loaded = load_model::<Cpu>(path, None, &device).map(drop);
        read?;
        loaded?;
        Ok(())
    }

    pub(crate) fn check_dimodel(data: &[u8]) -> Outcome {
        // As stored (a version-2 file's checksum refuses almost every fuzzed one; a
        // version-1 file has none), then with a valid CRC-32 appended, so the fuzzer reaches
        // the header and weights behind the checksum (the seeds are files without it).
        let _ = with_file("model.dimodel", data, load_dimodel);
        let mut sealed = data.to_vec();
        sealed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        with_file("model.dimodel", &sealed, load_dimodel)
    }

    harness! {
        /// The bytes as a `.dimodel`: [`read_model`], then [`load_model`] (the command
        /// line's path, which tells our format from Keras by the magic line); once as they
        /// are, once with a valid CRC-32 trailer appended.
        dimodel => check_dimodel
    }

    pub(crate) fn check_keras_h5(data: &[u8]) -> Outcome {
        with_file("model.h5", data, |path| {
            let read = deepinterp_io::read_keras_model(path).map(drop);
            let loaded = load_model::<Cpu>(path, None, &Default::default()).map(drop);
            read?;
            loaded?;
            Ok(())
        })
    }

    harness! {
        /// The bytes as a Keras `.h5`: [`deepinterp_io::read_keras_model`] (the HDF5 layout
        /// and the weights), then [`load_model`] (the `model_config` JSON and the import).
        keras_h5 => check_keras_h5
    }

    /// The architecture and window of the checkpoint harness's network (and its seeds).
    pub const CHECKPOINT_ARCH: &str = "unet-d1-w2";

    fn checkpoint_window() -> Window {
        Window::new(2, 2, 0).expect("a valid window")
    }

    fn checkpoint_network() -> Result<Network<CpuTrain>, Box<dyn std::error::Error>> {
        let (config, _) = architecture_config(CHECKPOINT_ARCH, &checkpoint_window())?;
        Ok(config.init::<CpuTrain>(&Default::default())?)
    }

    fn load_checkpoint(path: &Path) -> Outcome {
        load_checkpoint_file::<CpuTrain>(
            path,
            checkpoint_network()?,
            OptimizerKind::Adam,
            &Default::default(),
        )?;
        Ok(())
    }

    pub(crate) fn check_checkpoint(data: &[u8]) -> Outcome {
        // As stored: the checksum refuses almost every fuzzed file here.
        let _ = with_file("run.checkpoint", data, load_checkpoint);
        // The input with its CRC-32 trailer appended, so the fuzzer reaches the parts
        // behind the checksum (the seeds are checkpoints without their trailer).
        let mut sealed = data.to_vec();
        sealed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        with_file("run.checkpoint", &sealed, load_checkpoint)
    }

    harness! {
        /// The bytes as a training checkpoint of a `unet-d1-w2` network (Adam), loaded with
        /// [`load_checkpoint_file`]: once as they are, once with a valid CRC-32 appended.
        checkpoint => check_checkpoint
    }

    pub(crate) fn check_train_config(data: &[u8]) -> Outcome {
        with_file("train.toml", data, |path| {
            read_train_config(path)?;
            Ok(())
        })
    }

    harness! {
        /// The bytes as a training-settings TOML file ([`read_train_config`]).
        train_config => check_train_config
    }
}
