//! A denoiser must not invent structure. A model trained on a movie with cells is applied
//! (a) to pure shot noise at the training movie's mean brightness: the output must be nearly
//! flat, with none of the training movie's cells in it; and (b) to a movie whose cells sit
//! where the training movie had none: those cells must come out with their amplitude. The
//! figures are printed (`cargo test --release --test hallucination -- --nocapture`).

mod common;

use std::path::Path;

use common::{run_ok, s, simulate};
use deepinterp_io::{Dtype, MovieInfo, create_movie, open_movie};

const SIDE: usize = 64;

fn read(path: &Path) -> (Vec<f32>, usize) {
    let mut reader = open_movie(path).unwrap();
    let info = reader.info().clone();
    let mut values = vec![0f32; info.frames * info.frame_len()];
    reader.read_frames(0, info.frames, &mut values).unwrap();
    (values, info.frames)
}

/// Per-pixel temporal mean and standard deviation over frames `skip..frames - skip`.
fn pixel_stats(values: &[f32], frames: usize, skip: usize) -> (Vec<f64>, Vec<f64>) {
    let plane = SIDE * SIDE;
    let used = (skip..frames - skip).len() as f64;
    let mut mean = vec![0.0; plane];
    let mut square = vec![0.0; plane];
    for frame in skip..frames - skip {
        for p in 0..plane {
            let v = f64::from(values[frame * plane + p]);
            mean[p] += v / used;
            square[p] += v * v / used;
        }
    }
    let std = mean
        .iter()
        .zip(&square)
        .map(|(m, s)| (s - m * m).max(0.0).sqrt())
        .collect();
    (mean, std)
}

fn variance(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (
        a.iter().sum::<f64>() / a.len() as f64,
        b.iter().sum::<f64>() / b.len() as f64,
    );
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt()
}

/// A movie of Poisson counts of constant mean `rate` (Knuth's method, xorshift uniforms).
fn write_shot_noise(path: &Path, frames: usize, rate: f64) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let limit = (-rate).exp();
    let values: Vec<f32> = (0..frames * SIDE * SIDE)
        .map(|_| {
            let (mut count, mut product) = (0u32, uniform());
            while product > limit {
                count += 1;
                product *= uniform();
            }
            count as f32
        })
        .collect();
    let info = MovieInfo {
        frames,
        height: SIDE,
        width: SIDE,
        dtype: Dtype::F32,
    };
    let mut writer = create_movie(path, &info).unwrap();
    writer.write_frames(&values, frames).unwrap();
    writer.finish().unwrap();
}

/// The slope of `denoised` on `clean` over time (each pixel's mean removed), pooled over
/// `pixels`: 1 when their activity keeps its amplitude. Frames within 30 of either end are
/// left out.
fn activity_slope(clean: &[f32], denoised: &[f32], frames: usize, pixels: &[usize]) -> f64 {
    let plane = SIDE * SIDE;
    let (clean_mean, _) = pixel_stats(clean, frames, 30);
    let (denoised_mean, _) = pixel_stats(denoised, frames, 30);
    let (mut cross, mut power) = (0.0, 0.0);
    for frame in 30..frames - 30 {
        for &p in pixels {
            let c = f64::from(clean[frame * plane + p]) - clean_mean[p];
            let d = f64::from(denoised[frame * plane + p]) - denoised_mean[p];
            cross += c * d;
            power += c * c;
        }
    }
    cross / power
}

fn denoise(dir: &Path, input: &Path, model: &Path, name: &str) -> Vec<f32> {
    let output = dir.join(name);
    run_ok(&["denoise", s(input), "-o", s(&output), "--model", s(model)]);
    read(&output).0
}

#[test]
fn a_trained_model_invents_no_cells_and_keeps_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (training, training_clean) = simulate(dir.path(), 600, SIDE, 11);
    let model = dir.path().join("model.dimodel");
    run_ok(&[
        "train",
        s(&training),
        "-o",
        s(&model),
        "--steps",
        "300",
        "--seed",
        "3",
    ]);
    let (clean_values, frames) = read(&training_clean);
    let (training_mean, training_std) = pixel_stats(&clean_values, frames, 0);
    let (noisy_values, _) = read(&training);
    let rate = noisy_values.iter().map(|&v| f64::from(v)).sum::<f64>() / noisy_values.len() as f64;

    // (a) Shot noise at the training movie's mean: a flat output, with no trace of the
    // training movie's cells.
    let noise = dir.path().join("shot-noise.h5");
    let noise_frames = 200;
    write_shot_noise(&noise, noise_frames, rate);
    let flat = denoise(dir.path(), &noise, &model, "shot-noise-denoised.h5");
    let (flat_mean, flat_std) = pixel_stats(&flat, noise_frames, 30);
    let structure = variance(&training_mean);
    let invented = variance(&flat_mean);
    let resemblance = correlation(&flat_mean, &training_mean);
    let mean_level = flat_mean.iter().sum::<f64>() / flat_mean.len() as f64;
    let fluctuation = flat_std.iter().sum::<f64>() / flat_std.len() as f64;
    println!(
        "shot noise at {rate:.3} photons: denoised mean {mean_level:.3}, spatial variance of its mean image {invented:.5} ({:.4}x the training movie's {structure:.4}), correlation with the training movie's mean image {resemblance:.3}, mean temporal std {fluctuation:.4} (the input's {:.3})",
        invented / structure,
        rate.sqrt()
    );
    assert!(
        (mean_level - rate).abs() < 0.1 * rate,
        "the flat movie's level moved: {mean_level} vs {rate}"
    );
    assert!(
        invented < 0.02 * structure,
        "structure invented: spatial variance {invented} vs {structure}"
    );
    assert!(
        resemblance.abs() < 0.3,
        "the output resembles the training movie's cells: correlation {resemblance}"
    );

    // (b) Cells where the training movie had none keep their amplitude.
    let (novel, novel_clean) = simulate(dir.path(), 400, SIDE, 29);
    let denoised = denoise(dir.path(), &novel, &model, "novel-denoised.h5");
    let (clean, novel_frames) = read(&novel_clean);
    let (_, novel_std) = pixel_stats(&clean, novel_frames, 30);
    let novel_peak = novel_std.iter().copied().fold(0.0, f64::max);
    let training_peak = training_std.iter().copied().fold(0.0, f64::max);
    let pixels: Vec<usize> = (0..SIDE * SIDE)
        .filter(|&p| novel_std[p] > 0.3 * novel_peak && training_std[p] < 0.1 * training_peak)
        .collect();
    assert!(
        pixels.len() >= 20,
        "the two simulations share their cells' places: {} new-cell pixels",
        pixels.len()
    );
    // Cells at places where training had cells too: how much a model this briefly trained
    // keeps of any cell's activity.
    let familiar: Vec<usize> = (0..SIDE * SIDE)
        .filter(|&p| novel_std[p] > 0.3 * novel_peak && training_std[p] > 0.3 * training_peak)
        .collect();
    let amplitude = activity_slope(&clean, &denoised, novel_frames, &pixels);
    let familiar_amplitude = activity_slope(&clean, &denoised, novel_frames, &familiar);
    println!(
        "{} pixels of cells absent from training: amplitude of their activity after denoising {amplitude:.3} ({} pixels of cells where training had some: {familiar_amplitude:.3})",
        pixels.len(),
        familiar.len()
    );
    assert!(
        amplitude > 0.7,
        "new cells lost their amplitude: {amplitude}"
    );
    assert!(
        amplitude > 0.9 * familiar_amplitude,
        "new cells lost more of their amplitude than familiar ones: {amplitude} vs {familiar_amplitude}"
    );
    assert!(
        (0.8..1.2).contains(&amplitude),
        "new cells lost their amplitude: {amplitude}"
    );
}
