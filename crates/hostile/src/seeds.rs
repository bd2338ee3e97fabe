//! Seed inputs: small valid files of each kind, made with our own writers, so that the
//! fuzzer and the mutation test start from inputs that reach deep into each parser.
//!
//! The tests generate them on the fly; `cargo run -p deepinterp-hostile --example
//! make_corpus` writes them into `fuzz/corpus/<target>/` (with small real files from
//! `/work/shared` when that folder exists).

use std::path::Path;

use deepinterp_io::{
    Dtype, MovieInfo, NewSpikeGlx, NewVolume, NiftiDtype, create_movie, create_spikeglx,
    create_volume, neuropixels1_positions,
};

use crate::{OEBIN_SEED_FOLDER, SPIKEGLX_SAMPLES, SPIKEGLX_SAVED_CHANNELS, int16_samples};

/// One seed input.
#[derive(Clone, Debug)]
pub struct Seed {
    /// A file name for the corpus (unique within a target).
    pub name: String,
    pub bytes: Vec<u8>,
}

fn seed(name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed {
        name: name.into(),
        bytes,
    }
}

/// Runs `write` on a path named `name` in a fresh folder and returns the bytes of
/// `read_back` (relative to that folder); `None` (no seed) when a writer fails, which the
/// seed tests turn into a failure.
fn written(name: &str, read_back: &str, write: impl FnOnce(&Path) -> Option<()>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary folder for a seed");
    write(&dir.path().join(name)).unwrap_or_else(|| panic!("writing the seed {name} failed"));
    std::fs::read(dir.path().join(read_back)).expect("reading a seed back")
}

/// A ramp with a few values of each sign, `len` long.
fn ramp(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 7.0) % 23.0 - 11.0).collect()
}

fn movie(name: &str, frames: usize, height: usize, width: usize, dtype: Dtype) -> Vec<u8> {
    written(name, name, |path| {
        let info = MovieInfo {
            frames,
            height,
            width,
            dtype,
        };
        let mut writer = create_movie(path, &info).ok()?;
        writer
            .write_frames(&ramp(frames * height * width), frames)
            .ok()?;
        writer.finish().ok()?;
        Some(())
    })
}

const MOVIE_SHAPES: [(usize, usize, usize, Dtype); 3] = [
    (3, 4, 5, Dtype::I16),
    (2, 3, 2, Dtype::U16),
    (1, 2, 2, Dtype::F32),
];

/// HDF5 movies (dataset `data`) of int16, uint16 and float32.
pub fn hdf5_movie() -> Vec<Seed> {
    MOVIE_SHAPES
        .iter()
        .map(|&(t, h, w, dtype)| {
            seed(
                format!("{dtype}_{t}x{h}x{w}.h5"),
                movie("m.h5", t, h, w, dtype),
            )
        })
        .collect()
}

/// Multi-page TIFF movies of int16, uint16 and float32.
pub fn tiff_movie() -> Vec<Seed> {
    MOVIE_SHAPES
        .iter()
        .map(|&(t, h, w, dtype)| {
            seed(
                format!("{dtype}_{t}x{h}x{w}.tif"),
                movie("m.tif", t, h, w, dtype),
            )
        })
        .collect()
}

/// Plain `.nii` images (the NIfTI harness compresses them itself for the `.nii.gz` path).
pub fn nifti() -> Vec<Seed> {
    [
        ([3, 2, 2], 2, NiftiDtype::I16),
        ([2, 2, 1], 3, NiftiDtype::F32),
        ([2, 1, 1], 1, NiftiDtype::U8),
    ]
    .into_iter()
    .map(|(shape, frames, dtype)| {
        let bytes = written("v.nii", "v.nii", |path| {
            let new = NewVolume {
                shape,
                frames,
                dtype,
                voxel_size: [2.0, 2.0, 3.0],
                repetition_time_s: 1.5,
                description: "deepinterp hostile seed".to_string(),
            };
            let mut writer = create_volume(path, &new).ok()?;
            writer
                .write_volumes(&ramp(shape.iter().product::<usize>() * frames), frames)
                .ok()?;
            writer.finish().ok()?;
            Some(())
        });
        seed(
            format!(
                "{dtype}_{}x{}x{}x{frames}.nii",
                shape[0], shape[1], shape[2]
            ),
            bytes,
        )
    })
    .collect()
}

/// The `.meta` of the recording the SpikeGLX harness's `.bin` holds (8 neural channels and
/// a sync channel, 64 samples), and the same without `~snsGeomMap` (positions then come
/// from `~snsShankMap`).
pub fn spikeglx_meta() -> Vec<Seed> {
    let meta = written("rec.ap.bin", "rec.ap.meta", |path| {
        let spec = NewSpikeGlx {
            sample_rate_hz: 30_000.0,
            positions: neuropixels1_positions(SPIKEGLX_SAVED_CHANNELS - 1),
            microvolts_per_bit: 2.34375,
            with_sync_channel: true,
            samples: SPIKEGLX_SAMPLES,
        };
        let mut writer = create_spikeglx(path, &spec).ok()?;
        let neural = ramp(SPIKEGLX_SAMPLES * (SPIKEGLX_SAVED_CHANNELS - 1));
        writer.write_samples(&neural, SPIKEGLX_SAMPLES).ok()?;
        writer.finish().ok()?;
        Some(())
    });
    let without_geometry: Vec<u8> = String::from_utf8_lossy(&meta)
        .lines()
        .filter(|line| !line.starts_with("~snsGeomMap"))
        .flat_map(|line| format!("{line}\n").into_bytes())
        .collect();
    vec![
        seed("np1_8ch_sync.meta", meta),
        seed("np1_8ch_sync_shankmap.meta", without_geometry),
    ]
}

/// A `structure.oebin` in the standard layout (three neural channels and an ADC), and the
/// one deepinterp writes beside an output made from it (`deepinterp_data_file`).
pub fn oebin() -> Vec<Seed> {
    let standard = format!(
        r#"{{
  "GUI version": "0.6.7",
  "continuous": [
    {{
      "folder_name": "{OEBIN_SEED_FOLDER}/",
      "sample_rate": 30000.0,
      "source_processor_name": "Rhythm FPGA",
      "source_processor_id": 100,
      "num_channels": 4,
      "channels": [
        {{"channel_name": "CH1", "bit_volts": 0.195, "units": "uV"}},
        {{"channel_name": "CH2", "bit_volts": 0.195, "units": "uV"}},
        {{"channel_name": "CH3", "bit_volts": 0.195, "units": "uV"}},
        {{"channel_name": "ADC1", "bit_volts": 0.00037, "units": "V"}}
      ]
    }}
  ],
  "events": [],
  "spikes": []
}}
"#
    );
    let written_by_us = {
        let dir = tempfile::tempdir().expect("a temporary folder for a seed");
        let folder = dir.path().join("continuous").join(OEBIN_SEED_FOLDER);
        std::fs::create_dir_all(&folder).expect("seed folder");
        std::fs::write(folder.join("continuous.dat"), int16_samples(32, 4)).expect("seed data");
        let oebin = dir.path().join("structure.oebin");
        std::fs::write(&oebin, &standard).expect("seed oebin");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).expect("seed output folder");
        let source = deepinterp_io::open_ephys(&oebin, None).expect("the seed oebin opens");
        let neural = source.info().neural_channel_count();
        let mut writer =
            deepinterp_io::create_ephys_like(&*source, &out.join("denoised.dat"), Dtype::F32, 8, 4)
                .expect("an output like the seed");
        writer
            .write_samples(&ramp(8 * neural), 8)
            .expect("seed samples");
        writer.finish().expect("seed output");
        std::fs::read(out.join("structure.oebin")).expect("the written oebin")
    };
    vec![
        seed("standard.oebin", standard.into_bytes()),
        seed("deepinterp_output.oebin", written_by_us),
    ]
}

/// One Open Ephys legacy channel file: the 1024-byte ASCII header, then `records` records
/// of `block_length` big-endian int16 samples (timestamp, count, recording number, samples,
/// marker 0..=9).
pub fn legacy_channel_file(block_length: usize, records: usize, bit_volts: f64) -> Vec<u8> {
    let header = format!(
        "header.format = 'Open Ephys Data Format'; \n\
         header.version = 0.4;\n\
         header.header_bytes = 1024;\n\
         header.description = 'each record contains one 64-bit timestamp, one 16-bit sample \
         count (N), 1 uint16 recordingNumber, N 16-bit samples, and one 10-byte record marker \
         (0 1 2 3 4 5 6 7 8 255)';\n\
         header.date_created = '27-Nov-2026 203000';\n\
         header.channel = 'CH1';\n\
         header.channelType = 'Continuous';\n\
         header.sampleRate = 30000;\n\
         header.blockLength = {block_length};\n\
         header.bufferSize = 1024;\n\
         header.bitVolts = {bit_volts};\n"
    );
    let mut bytes = header.into_bytes();
    bytes.resize(1024, b' ');
    for record in 0..records {
        bytes.extend_from_slice(&((record * block_length) as i64).to_le_bytes());
        bytes.extend_from_slice(&(block_length as u16).to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        for i in 0..block_length {
            let value = ((record * block_length + i) * 13 % 400) as i16 - 200;
            bytes.extend_from_slice(&value.to_be_bytes());
        }
        bytes.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 255]);
    }
    bytes
}

/// Legacy channel files: the standard 1024-sample records, and short 16-sample ones.
pub fn legacy_continuous() -> Vec<Seed> {
    vec![
        seed(
            "block1024_x2.continuous",
            legacy_channel_file(1024, 2, 0.195),
        ),
        seed("block16_x3.continuous", legacy_channel_file(16, 3, 0.05)),
    ]
}

#[cfg(feature = "engine")]
mod models {
    use super::ramp;
    use deepinterp::backend::Cpu;
    use deepinterp::model::{Model, ModelSpec, architecture_config};
    use deepinterp::sampling::Window;
    use deepinterp::volume::VolumeBlock;

    /// Tiny untrained models of each modality, named by architecture.
    pub(super) fn tiny_models() -> Vec<(String, Model<Cpu>)> {
        let cases = [
            ("unet-d2-w3", Window::new(2, 2, 0)),
            ("unet-ephys-d1-w2", Window::new(1, 1, 1)),
            ("unet3d-d1-w2", Window::new(1, 1, 0)),
        ];
        cases
            .into_iter()
            .map(|(name, window)| {
                let window = window.expect("a valid seed window");
                let (network, modality) =
                    architecture_config(name, &window).expect("a known seed architecture");
                let block = matches!(modality, deepinterp::model::Modality::Fmri)
                    .then(|| VolumeBlock::paper(None).expect("the paper's block"));
                // Fixed weights (no random initialisation), so that every run makes the
                // same seed bytes and the mutation test the same cases.
                let weights = network
                    .weight_shapes()
                    .iter()
                    .map(|shape| {
                        let len: usize = shape.iter().product();
                        let weight = ramp(len).iter().map(|v| v / 64.0).collect();
                        (weight, vec![0.01; shape[0]])
                    })
                    .collect();
                let model = Model {
                    network: network
                        .from_weights::<Cpu>(weights, &Default::default())
                        .expect("a seed network"),
                    spec: ModelSpec {
                        architecture: name.to_string(),
                        modality,
                        network,
                        window,
                        block,
                        normalization: modality.default_normalization(),
                        training: None,
                        source: "deepinterp-hostile seed".to_string(),
                    },
                };
                (name.to_string(), model)
            })
            .collect()
    }
}

/// `.dimodel` files of tiny two-photon, ephys and fMRI networks, without their CRC-32
/// trailer (the harness appends a valid one to every input).
#[cfg(feature = "engine")]
pub fn dimodel() -> Vec<Seed> {
    models::tiny_models()
        .into_iter()
        .map(|(name, model)| {
            let mut bytes = written("m.dimodel", "m.dimodel", |path| {
                deepinterp::model::file::write_model(path, &model).ok()
            });
            bytes.truncate(bytes.len().saturating_sub(4));
            seed(format!("{name}.dimodel"), bytes)
        })
        .collect()
}

/// The same tiny networks exported as Keras `.h5` model files.
#[cfg(feature = "engine")]
pub fn keras_h5() -> Vec<Seed> {
    models::tiny_models()
        .into_iter()
        .map(|(name, model)| {
            let bytes = written("m.h5", "m.h5", |path| {
                deepinterp::model::export_keras(&model, path).ok()
            });
            seed(format!("{name}.h5"), bytes)
        })
        .collect()
}

/// A checkpoint of two training steps of the checkpoint harness's network on a tiny movie,
/// without its CRC-32 trailer (the harness appends a valid one to every input).
#[cfg(feature = "engine")]
pub fn checkpoint() -> Vec<Seed> {
    use deepinterp::backend::CpuTrain;
    use deepinterp::model::architecture_config;
    use deepinterp::sampling::Window;
    use deepinterp::training::{
        Loss, OptimizerKind, RunIdentity, TrainSettings, TrainingData, ValidationSource, train_run,
    };

    let dir = tempfile::tempdir().expect("a temporary folder for a seed");
    let movie_path = dir.path().join("movie.tif");
    let bytes = movie("movie.tif", 12, 16, 16, Dtype::F32);
    std::fs::write(&movie_path, bytes).expect("the seed movie");
    let window = Window::new(2, 2, 0).expect("a valid window");
    let settings = TrainSettings {
        window,
        loss: Loss::L1,
        optimizer: OptimizerKind::Adam,
        learning_rate: 1e-3,
        lr_halving_epochs: None,
        batch_size: 2,
        steps: 2,
        convergence: None,
        steps_per_epoch: 1,
        max_minutes: None,
        patch_size: None,
        validation: ValidationSource::HeldOut { fraction: 0.0 },
        validation_samples: 1,
        stats_frames: 10,
        cache_frames: 12,
        cache_refresh_steps: 5,
        seed: 0,
    };
    let arch = crate::engine::CHECKPOINT_ARCH;
    let (config, _) = architecture_config(arch, &window).expect("the checkpoint architecture");
    let device = Default::default();
    let network = config.init::<CpuTrain>(&device).expect("a seed network");
    let inputs = vec![movie_path.clone()];
    let identity =
        RunIdentity::new(arch, &config, window, &inputs, &[]).expect("the run's identity");
    let reader = deepinterp_io::open_movie(&movie_path).expect("the seed movie opens");
    let data = TrainingData::Frames {
        inputs: vec![reader],
        validation: Vec::new(),
    };
    let checkpoint = dir.path().join("run.checkpoint");
    train_run(
        network,
        data,
        &settings,
        &identity,
        &checkpoint,
        &device,
        &mut |_| Ok(()),
    )
    .expect("a two-step training run");
    let mut bytes = std::fs::read(&checkpoint).expect("the checkpoint");
    bytes.truncate(bytes.len().saturating_sub(4));
    vec![seed("unet-d1-w2_adam_2steps.checkpoint", bytes)]
}

/// Training-settings files: every key set, and a short one.
#[cfg(feature = "engine")]
pub fn train_config() -> Vec<Seed> {
    let full = "\
# Every key of deepinterp train's flags.
arch = \"unet-d2-w8\"
steps = 2000
max_minutes = 90.5
pre_frames = 30
post_frames = 30
omitted_frames = 1
loss = \"l2\"
optimizer = \"rmsprop\"
learning_rate = 0.0001
lr_halving_epochs = 4
batch_size = 5
steps_per_epoch = 100
patch_size = 64
validation_fraction = 0.1
validation_samples = 20
stats_frames = 500
seed = 1234
";
    let short = "arch = 'unet_single_1024'\nloss = 'l1'\noptimizer = 'adam'\nsteps = 10\n";
    vec![
        seed("full.toml", full.as_bytes().to_vec()),
        seed("short.toml", short.as_bytes().to_vec()),
    ]
}
