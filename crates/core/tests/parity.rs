//! Parity with the original implementation's goldens (`fixtures/keras`, and the two large paper
//! models with the goldens only they serve in `../shared/fixtures/keras`): the paper's
//! two-photon, Neuropixels and fMRI networks reproduce Keras' outputs, and denoising
//! reproduces the original's end-to-end output files. Tolerances are the fixtures README's.
//! Networks are checked through both engines (our kernels and burn); the end-to-end runs go
//! through the default one.

mod common;

use std::path::Path;

use common::{keras_fixture, shared_or_skip};
use deepinterp::backend::Cpu;
use deepinterp::engine::{Engine, Forward};
use deepinterp::inference::{self, DenoisePlan, DenoiseSettings, EdgeMode};
use deepinterp::model::{Modality, Model, load_model};
use deepinterp::probe::GridRecording;
use deepinterp::sampling::Window;
use deepinterp::volume::{VolumeBlock, VolumeDenoiseSettings, VolumeMode, denoise_volumes};
use deepinterp_io::ephys::{RawLayout, open_ephys};
use deepinterp_io::nifti::{NiftiDtype, create_volume_like, open_volume};
use deepinterp_io::{Dtype, MovieReader};
use deepinterp_io::{IoError, MovieWriter, WriteSummary, open_movie, read_npy_f32};

/// NHWC → NCHW.
fn to_nchw(data: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// The paper's two-photon network (`model`, from `../shared`) against Keras on one golden pair.
fn network_case(model: &Path, input: &Path, output: &Path) {
    let device = Default::default();
    let model = load_model::<Cpu>(model, None, &device).unwrap();
    assert_eq!(model.spec.architecture, "unet_single_1024");
    assert_eq!(model.spec.modality, Modality::TwoPhoton);
    assert_eq!(model.spec.network.parameter_count(), 15_704_769);
    compare_network(&model, input, output);
}

fn compare_network(model: &Model<Cpu>, input: &Path, output: &Path) {
    let device = Default::default();
    let (shape, data) = read_npy_f32(input).unwrap();
    let input = input.file_name().unwrap().to_string_lossy();
    let shape: [usize; 4] = shape.try_into().unwrap();
    let nchw = to_nchw(&data, shape);
    let [n, h, w, c] = shape;
    let (_, golden) = read_npy_f32(output).unwrap();
    for engine in [Engine::Kernels, Engine::Burn] {
        let y = Forward::new(&model.network, engine, &device)
            .unwrap()
            .planar(&nchw, [n, c, h, w])
            .unwrap();
        let diff = max_abs_diff(&y, &golden);
        let tolerance = 3e-5 * max_abs(&golden);
        println!(
            "{input} ({}): max |rust - keras| = {diff:.3e} (tolerance {tolerance:.3e})",
            engine.name()
        );
        assert!(
            diff <= tolerance,
            "{input} ({}): max abs diff {diff} > {tolerance}",
            engine.name()
        );
    }
}

#[test]
fn unet_single_1024_matches_keras_on_64x64() {
    let Some([model]) = shared_or_skip(["fixtures/keras/model_unet_single_1024.h5"]) else {
        return;
    };
    network_case(
        &model,
        &keras_fixture("net_unet_single_1024_input_2x64x64x60.npy"),
        &keras_fixture("net_unet_single_1024_output_2x64x64x1.npy"),
    );
}

#[test]
fn unet_single_1024_matches_keras_on_48x80() {
    let Some([model, input, output]) = shared_or_skip([
        "fixtures/keras/model_unet_single_1024.h5",
        "fixtures/keras/net_unet_single_1024_input_1x48x80x60.npy",
        "fixtures/keras/net_unet_single_1024_output_1x48x80x1.npy",
    ]) else {
        return;
    };
    network_case(&model, &input, &output);
}

/// Collects written frames in memory.
struct Collect(Vec<f32>);

impl MovieWriter for Collect {
    fn write_frames(&mut self, frames: &[f32], _count: usize) -> Result<(), IoError> {
        self.0.extend_from_slice(frames);
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError> {
        unreachable!("the test reads the frames directly")
    }
}

/// Denoises the two-photon golden input with the paper's model (`model`, from `../shared`).
fn e2e_case(model: &Path, settings: DenoiseSettings, golden: &Path, atol: f32) {
    let model = load_model::<Cpu>(model, None, &Default::default()).unwrap();
    let mut reader = open_movie(&keras_fixture("ophys_input_movie.h5")).unwrap();
    compare_with_golden(&model, reader.as_mut(), &settings, golden, atol);
}

/// Denoises `reader` and compares every output value with the original's output file.
fn compare_with_golden(
    model: &Model<Cpu>,
    reader: &mut dyn MovieReader,
    settings: &DenoiseSettings,
    golden: &Path,
    atol: f32,
) -> DenoisePlan {
    let device = Default::default();
    let plan = inference::plan(model, reader, settings).unwrap();
    let mut golden_reader = open_movie(golden).unwrap();
    let golden_file = golden.file_name().unwrap().to_string_lossy();
    let golden_info = golden_reader.info().clone();
    assert_eq!(plan.output_frames, golden_info.frames, "output length");
    let mut golden = vec![0f32; golden_info.frames * golden_info.frame_len()];
    golden_reader
        .read_frames(0, golden_info.frames, &mut golden)
        .unwrap();
    let mut out = Collect(Vec::new());
    inference::run(model, reader, &mut out, &plan, &device, &mut |_| Ok(())).unwrap();
    let diff = max_abs_diff(&out.0, &golden);
    println!("{golden_file}: max |rust - original| = {diff:.5} (atol {atol})");
    assert!(diff <= atol, "{golden_file}: max abs diff {diff} > {atol}");
    plan
}

#[test]
fn denoise_drop_matches_original_output() {
    let Some([model]) = shared_or_skip(["fixtures/keras/model_unet_single_1024.h5"]) else {
        return;
    };
    e2e_case(
        &model,
        DenoiseSettings {
            edges: EdgeMode::Drop,
            batch_size: Some(16),
            ..DenoiseSettings::default()
        },
        &keras_fixture("ophys_e2e_output.h5"),
        0.05,
    );
}

#[test]
fn denoise_padded_variant_matches_original_output() {
    let Some([model, golden]) = shared_or_skip([
        "fixtures/keras/model_unet_single_1024.h5",
        "fixtures/keras/ophys_e2e_output_variant_padded.h5",
    ]) else {
        return;
    };
    e2e_case(
        &model,
        DenoiseSettings {
            edges: EdgeMode::DropPadHead,
            batch_size: Some(7),
            start_frame: 20,
            end_frame: Some(60),
            stats_frames: Some(50),
            engine: Engine::default(),
        },
        &golden,
        0.051,
    );
}

#[test]
fn unet_single_ephys_1024_matches_keras() {
    let Some([model, output]) = shared_or_skip([
        "fixtures/keras/model_unet_single_ephys_1024.h5",
        "fixtures/keras/net_unet_single_ephys_1024_output_2x384x2x1.npy",
    ]) else {
        return;
    };
    let model = load_model::<Cpu>(&model, None, &Default::default()).unwrap();
    assert_eq!(model.spec.architecture, "unet_single_ephys_1024");
    assert_eq!(model.spec.modality, Modality::Ephys);
    assert_eq!(model.spec.window, Window::new(30, 30, 1).unwrap());
    assert_eq!(model.spec.network.parameter_count(), 5_253_057);
    compare_network(
        &model,
        &keras_fixture("net_unet_single_ephys_1024_input_2x384x2x60.npy"),
        &output,
    );
}

/// The original's EphysGenerator + core_inferrence on 400 samples of 384 channels: every one
/// of the 768 grid sites (the checkerboard's empty ones included) of every output sample.
#[test]
fn ephys_denoise_drop_matches_original_output() {
    let Some([model, golden]) = shared_or_skip([
        "fixtures/keras/model_unet_single_ephys_1024.h5",
        "fixtures/keras/ephys_e2e_output.h5",
    ]) else {
        return;
    };
    let device = Default::default();
    let model = load_model::<Cpu>(&model, None, &device).unwrap();
    let raw = RawLayout {
        channels: 384,
        sample_rate_hz: 30_000.0,
        dtype: Dtype::I16,
    };
    let ephys = open_ephys(
        &keras_fixture("ephys_input_raw_400x384_int16.dat"),
        Some(raw),
    )
    .unwrap();
    let mut reader = GridRecording::new(ephys, model.network.planar().unwrap().size_multiple()[0]);
    assert_eq!(
        (reader.info().height, reader.info().width),
        (384, 2),
        "Neuropixels grid"
    );
    let settings = DenoiseSettings {
        edges: EdgeMode::Drop,
        batch_size: Some(100),
        ..DenoiseSettings::default()
    };
    let plan = compare_with_golden(&model, &mut reader, &settings, &golden, 0.011);
    // The README's statistics: mean 2.0065625, std 66.49175 (float32).
    assert!((plan.normalization.mean - 2.006_562_5).abs() < 1e-5);
    assert!((plan.normalization.std - 66.491_75).abs() < 1e-3);
}

/// NDHWC → NCDHW (Keras' channels-last blocks to burn's layout).
fn to_ncdhw(data: &[f32], [n, sx, sy, sz, c]: [usize; 5]) -> Vec<f32> {
    let voxels = sx * sy * sz;
    let mut out = vec![0f32; data.len()];
    for b in 0..n {
        for v in 0..voxels {
            for ch in 0..c {
                out[(b * c + ch) * voxels + v] = data[(b * voxels + v) * c + ch];
            }
        }
    }
    out
}

#[test]
fn fmri_unet_denoiser_matches_keras_in_both_file_layouts() {
    let device = Default::default();
    let (shape, data) =
        read_npy_f32(&keras_fixture("net_fmri_unet_denoiser_input_4x7x7x7x5.npy")).unwrap();
    let shape: [usize; 5] = shape.try_into().unwrap();
    let [n, sx, sy, sz, c] = shape;
    let (_, golden) = read_npy_f32(&keras_fixture(
        "net_fmri_unet_denoiser_output_4x7x7x7x1.npy",
    ))
    .unwrap();
    for file in [
        "model_fmri_unet_denoiser.h5",
        "model_fmri_unet_denoiser_legacy_layout.h5",
    ] {
        let model = load_model::<Cpu>(&keras_fixture(file), None, &device).unwrap();
        assert_eq!(model.spec.architecture, "fmri_unet_denoiser");
        assert_eq!(model.spec.modality, Modality::Fmri);
        assert_eq!(model.spec.window, Window::new(2, 2, 0).unwrap());
        assert_eq!(
            model.spec.block,
            Some(VolumeBlock {
                radius: [3; 3],
                hole: 4
            })
        );
        assert_eq!(model.spec.network.parameter_count(), 44_369);
        for engine in [Engine::Kernels, Engine::Burn] {
            let y = Forward::new(&model.network, engine, &device)
                .unwrap()
                .volumetric(&to_ncdhw(&data, shape), [n, c, sx, sy, sz])
                .unwrap();
            let diff = max_abs_diff(&y, &golden);
            let tolerance = 3e-5 * max_abs(&golden);
            println!(
                "{file} ({}): max |rust - keras| = {diff:.3e} (tolerance {tolerance:.3e})",
                engine.name()
            );
            assert!(
                diff <= tolerance,
                "{file} ({}): max abs diff {diff} > {tolerance}",
                engine.name()
            );
        }
    }
}

/// The original's FmriGenerator + fmri_inferrence on a 13×12×10×12 run: every voxel of every
/// time point, from one block per voxel (parity mode), against the original's output.
#[test]
fn fmri_parity_mode_matches_original_output() {
    let device = Default::default();
    let model =
        load_model::<Cpu>(&keras_fixture("model_fmri_unet_denoiser.h5"), None, &device).unwrap();
    let mut reader = open_volume(&keras_fixture("fmri_input_13x12x10x12_int16.nii.gz")).unwrap();
    let [sx, sy, sz] = reader.info().shape;
    let frames = reader.info().frames;
    assert_eq!([sx, sy, sz, frames], [13, 12, 10, 12]);
    let output_dir = tempfile::tempdir().unwrap();
    let output = output_dir.path().join("denoised.nii");
    let mut writer = create_volume_like(&reader, &output, NiftiDtype::F32, frames).unwrap();
    let settings = VolumeDenoiseSettings {
        mode: VolumeMode::Parity,
        batch_blocks: 500,
        engine: Engine::default(),
    };
    let summary = denoise_volumes(
        &model,
        &mut reader,
        &mut writer,
        &settings,
        &device,
        &mut |_| Ok(()),
    )
    .unwrap();
    writer.finish().unwrap();
    assert_eq!(
        summary.blocks,
        sx * sy * sz * frames,
        "one block per voxel and time point"
    );
    // The README's statistics over x 3:9, y 3:9, z 3:7, t 3:9 (half-to-even rounding).
    assert!((summary.normalization.mean as f64 - 757.096_064_814_814_8).abs() < 1e-3);
    assert!((summary.normalization.std as f64 - 105.038_997_534_405_45).abs() < 1e-3);

    let mut ours = vec![0f32; sx * sy * sz * frames];
    let mut written = open_volume(&output).unwrap();
    written.read_volumes(0, frames, &mut ours).unwrap();
    // The golden is [x, y, z, t] in C order; ours is volume after volume, x fastest.
    let golden = rust_hdf5::H5File::open(keras_fixture("fmri_e2e_output.h5"))
        .unwrap()
        .dataset("data")
        .unwrap()
        .read_raw::<f32>()
        .unwrap();
    assert_eq!(golden.len(), ours.len());
    let mut diff = 0f32;
    for t in 0..frames {
        for z in 0..sz {
            for y in 0..sy {
                for x in 0..sx {
                    let mine = ours[((t * sz + z) * sy + y) * sx + x];
                    let theirs = golden[((x * sy + y) * sz + z) * frames + t];
                    diff = diff.max((mine - theirs).abs());
                }
            }
        }
    }
    println!("fmri_e2e_output.h5: max |rust - original| = {diff:.5} (atol 0.063)");
    assert!(diff <= 0.063, "fMRI parity: max abs diff {diff} > 0.063");
}
