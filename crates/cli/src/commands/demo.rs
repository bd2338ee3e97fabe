//! `deepinterp demo`: the whole pipeline on a simulated movie, in minutes on 2 CPU cores,
//! ending with the metrics and a PNG of a raw vs denoised frame and a pixel's trace.

use std::path::Path;

use anyhow::{Context, Result};
use deepinterp_io::open_movie;

use deepinterp::training::TrainOptions;
use deepinterp_pipeline::{DenoiseRequest, EvaluateRequest, OutputDtype, TrainRequest};

use deepinterp_pipeline::simulate::{Simulate2pRequest, SimulateEphysRequest};

use crate::args::{DemoArgs, EvaluateArgs};

/// Frames shown in the trace panel of the comparison figure.
const TRACE_FRAMES: usize = 400;

pub fn demo(args: &DemoArgs) -> Result<()> {
    let created = !args.out.exists();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the demo folder", args.out.display()))?;
    let result = if args.ephys {
        ephys_demo(args)
    } else {
        movie_demo(args)
    };
    if result.is_err() && created {
        // A demo that failed (a size too small for the network, an interruption of a step)
        // leaves nothing behind when it made the folder itself.
        let _ = std::fs::remove_dir_all(&args.out);
    }
    result
}

fn movie_demo(args: &DemoArgs) -> Result<()> {
    let path = |name: &str| args.out.join(name);
    let (noisy, clean) = (path("noisy.h5"), path("clean.h5"));
    let (model, denoised) = (path("model.dimodel"), path("denoised.h5"));

    eprintln!(
        "1/4 simulate: {} frames of {}x{} px",
        args.frames, args.size, args.size
    );
    super::simulate_2p(&Simulate2pRequest {
        output: noisy.clone(),
        clean: clean.clone(),
        frames: args.frames,
        height: args.size,
        width: args.size,
        photons: None,
        neurons: None,
        motion: 0.0,
        dtype: OutputDtype::Int16,
        seed: args.seed,
    })?;

    eprintln!("2/4 train: budget {} min", args.train_minutes);
    super::train(&demo_training(
        &noisy,
        &model,
        TrainOptions {
            // The defaults a user gets: until the validation loss stops improving, within
            // the demo's budget.
            max_minutes: Some(args.train_minutes),
            seed: Some(args.seed),
            ..TrainOptions::default()
        },
    ))?;

    eprintln!("3/4 denoise");
    super::denoise(&DenoiseRequest {
        dtype: Some(OutputDtype::Float32),
        ..DenoiseRequest::new(noisy.clone(), denoised.clone(), model.clone())
    })?;

    eprintln!("4/4 evaluate");
    super::evaluate(&default_evaluate_args(
        &noisy,
        &denoised,
        &clean,
        &path("report.json"),
    ))?;
    let figure = path("comparison.png");
    comparison_figure(&noisy, &denoised, &clean, &figure)?;
    eprintln!(
        "files in {}: noisy.h5, clean.h5, model.dimodel (+ loss CSV/PNG), denoised.h5, report.json, comparison.png",
        args.out.display()
    );
    println!("side-by-side figure: {}", figure.display());
    Ok(())
}

/// The pipeline on a simulated Neuropixels 1.0 recording: the last second, held out from
/// training, is denoised and scored against the ground truth and its known spikes.
fn ephys_demo(args: &DemoArgs) -> Result<()> {
    let path = |name: &str| args.out.join(name);
    let (noisy, clean) = (path("noisy.bin"), path("clean.bin"));
    let (model, denoised) = (path("model.dimodel"), path("denoised.bin"));
    const SAMPLE_RATE_HZ: f64 = 30_000.0;
    anyhow::ensure!(
        args.seconds >= 10.0,
        "--seconds {} is too short for the ephys demo: give at least 10",
        args.seconds
    );
    eprintln!(
        "1/4 simulate: {} s of a 384-channel Neuropixels 1.0 probe",
        args.seconds
    );
    super::simulate_ephys(&SimulateEphysRequest {
        output: noisy.clone(),
        clean: clean.clone(),
        duration: args.seconds,
        channels: 384,
        sample_rate: SAMPLE_RATE_HZ,
        noise_uv: 10.0,
        units: None,
        seed: args.seed,
    })?;
    let samples = (args.seconds * SAMPLE_RATE_HZ).round() as usize;

    eprintln!("2/4 train: budget {} min", args.train_minutes);
    super::train(&demo_training(
        &noisy,
        &model,
        TrainOptions {
            // The defaults a user gets: until the validation loss stops improving, within
            // the demo's budget.
            max_minutes: Some(args.train_minutes),
            steps_per_epoch: Some(100),
            seed: Some(args.seed),
            ..TrainOptions::default()
        },
    ))?;

    // The last second lies in the held-out validation tail (the last 10%).
    let first = samples - SAMPLE_RATE_HZ as usize;
    eprintln!("3/4 denoise the last second (samples {first}..{samples})");
    super::denoise(&DenoiseRequest {
        start_frame: first,
        ..DenoiseRequest::new(noisy.clone(), denoised.clone(), model.clone())
    })?;

    eprintln!("4/4 evaluate");
    let mut evaluation = default_evaluate_args(&noisy, &denoised, &clean, &path("report.json"));
    evaluation.request.offset = first;
    super::evaluate(&evaluation)?;
    eprintln!(
        "files in {}: noisy.bin/.meta (+ spikes.csv, units.csv), clean.bin/.meta, model.dimodel (+ loss CSV/PNG), denoised.bin/.meta, report.json",
        args.out.display()
    );
    Ok(())
}

/// Evaluation against the ground truth, writing `report`.
fn default_evaluate_args(
    noisy: &Path,
    denoised: &Path,
    clean: &Path,
    report: &Path,
) -> EvaluateArgs {
    EvaluateArgs {
        request: EvaluateRequest {
            noisy: noisy.to_path_buf(),
            denoised: denoised.to_path_buf(),
            clean: Some(clean.to_path_buf()),
            report: Some(report.to_path_buf()),
            ..EvaluateRequest::default()
        },
        json: false,
    }
}

/// Training on `noisy` into `model` with `options`, the rest at the preset's defaults.
fn demo_training(noisy: &Path, model: &Path, options: TrainOptions) -> TrainRequest {
    TrainRequest {
        options,
        // The demo owns its folder: a second demo replaces the first one's model.
        overwrite: true,
        ..TrainRequest::new(vec![noisy.to_path_buf()], model.to_path_buf())
    }
}

/// Reads frame `frame` of three movies and the trace of the most active clean pixel.
fn comparison_figure(noisy: &Path, denoised: &Path, clean: &Path, out: &Path) -> Result<()> {
    let mut readers = [
        open_movie(noisy)?,
        open_movie(denoised)?,
        open_movie(clean)?,
    ];
    let info = readers[0].info().clone();
    let plane = info.height * info.width;
    let frames = TRACE_FRAMES.min(info.frames);
    let start = (info.frames - frames) / 2;
    let mut movies: Vec<Vec<f32>> = Vec::new();
    for reader in readers.iter_mut() {
        let mut data = vec![0f32; frames * plane];
        reader.read_frames(start, frames, &mut data)?;
        movies.push(data);
    }
    // The pixel whose clean trace varies most shows the transients best.
    let pixel = (0..plane)
        .max_by(|&a, &b| {
            temporal_std(&movies[2], plane, a).total_cmp(&temporal_std(&movies[2], plane, b))
        })
        .unwrap_or(0);
    // The frame where that pixel is brightest.
    let frame = (0..frames)
        .max_by(|&a, &b| movies[2][a * plane + pixel].total_cmp(&movies[2][b * plane + pixel]))
        .unwrap_or(0);
    let frame_of = |m: &Vec<f32>| m[frame * plane..(frame + 1) * plane].to_vec();
    let (raw, den, cln) = (
        frame_of(&movies[0]),
        frame_of(&movies[1]),
        frame_of(&movies[2]),
    );
    let trace_of = |m: &Vec<f32>| {
        (0..frames)
            .map(|t| m[t * plane + pixel])
            .collect::<Vec<f32>>()
    };
    let traces = [
        trace_of(&movies[0]),
        trace_of(&movies[1]),
        trace_of(&movies[2]),
    ];
    let title = format!(
        "pixel (y {}, x {}), frames {}..{}",
        pixel / info.width,
        pixel % info.width,
        start,
        start + frames
    );
    deepinterp_metrics::plots::comparison_png(
        out,
        info.height,
        info.width,
        &[
            (&format!("raw, frame {}", start + frame), &raw),
            ("denoised", &den),
            ("ground truth", &cln),
        ],
        Some((
            &title,
            &[
                ("raw", &traces[0]),
                ("denoised", &traces[1]),
                ("ground truth", &traces[2]),
            ],
        )),
    )?;
    Ok(())
}

fn temporal_std(movie: &[f32], plane: usize, pixel: usize) -> f64 {
    let frames = movie.len() / plane;
    let values = (0..frames).map(|t| movie[t * plane + pixel] as f64);
    let mean = values.clone().sum::<f64>() / frames as f64;
    (values.map(|v| (v - mean).powi(2)).sum::<f64>() / frames as f64).sqrt()
}
