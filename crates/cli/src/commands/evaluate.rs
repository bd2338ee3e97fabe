//! `deepinterp evaluate`: streams the recordings through the metrics accumulator.

use anyhow::{Result, ensure};
use deepinterp_io::open_movie;
use deepinterp_metrics::{EvalReport, Evaluator};

use crate::EvaluateArgs;
use crate::progress;

/// Frames read per chunk.
const CHUNK_FRAMES: usize = 64;

pub fn evaluate(args: &EvaluateArgs) -> Result<EvalReport> {
    let mut noisy = open_movie(&args.noisy)?;
    let mut denoised = open_movie(&args.denoised)?;
    let mut clean = args.clean.as_deref().map(open_movie).transpose()?;
    let (n, d) = (noisy.info().clone(), denoised.info().clone());
    ensure!(
        (n.height, n.width) == (d.height, d.width),
        "{}: frames are {}x{}, the noisy recording's are {}x{}",
        args.denoised.display(),
        d.height,
        d.width,
        n.height,
        n.width
    );
    ensure!(
        args.offset + d.frames <= n.frames,
        "{}: {} frames from offset {} run past the noisy recording's {} frames",
        args.denoised.display(),
        d.frames,
        args.offset,
        n.frames
    );
    if let (Some(reader), Some(path)) = (&clean, &args.clean) {
        let c = reader.info();
        ensure!(
            (c.frames, c.height, c.width) == (n.frames, n.height, n.width),
            "{}: shape {}x{}x{} differs from the noisy recording's {}x{}x{}",
            path.display(),
            c.frames,
            c.height,
            c.width,
            n.frames,
            n.height,
            n.width
        );
    }
    let plane = n.height * n.width;
    let mut evaluator = Evaluator::new(n.height, n.width, d.frames, clean.is_some());
    let mut buffers = [
        vec![0f32; CHUNK_FRAMES * plane],
        vec![0f32; CHUNK_FRAMES * plane],
        vec![0f32; CHUNK_FRAMES * plane],
    ];
    let bar = progress::bar(d.frames as u64, "evaluate", "frames");
    let mut done = 0;
    while done < d.frames {
        let count = CHUNK_FRAMES.min(d.frames - done);
        let len = count * plane;
        let [noisy_buf, denoised_buf, clean_buf] = &mut buffers;
        noisy.read_frames(args.offset + done, count, &mut noisy_buf[..len])?;
        denoised.read_frames(done, count, &mut denoised_buf[..len])?;
        let clean_chunk = match clean.as_mut() {
            Some(reader) => {
                reader.read_frames(args.offset + done, count, &mut clean_buf[..len])?;
                Some(&clean_buf[..len])
            }
            None => None,
        };
        evaluator.push(&noisy_buf[..len], &denoised_buf[..len], clean_chunk, count)?;
        done += count;
        bar.set_position(done as u64);
    }
    bar.finish_and_clear();
    let report = evaluator.finish()?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.report {
        deepinterp::model::file::write_atomically(path, json.as_bytes())?;
    }
    if args.json {
        println!("{json}");
    } else {
        print_summary(&report);
    }
    Ok(report)
}

/// Human-readable lines of the key figures.
pub fn print_summary(report: &EvalReport) {
    let ratio = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.2}x"));
    if let (Some(noisy), Some(denoised)) = (&report.noisy_vs_clean, &report.denoised_vs_clean) {
        println!(
            "L2 (MSE) to ground truth: noisy {:.4}, denoised {:.4}",
            noisy.mse, denoised.mse
        );
        if let Some(gaussian) = &report.gaussian_vs_clean {
            println!("  Gaussian sigma=3 baseline {:.4}", gaussian.mse);
        }
        println!(
            "L2 error reduction: {} vs noisy, {} vs Gaussian baseline",
            ratio(report.l2_reduction_vs_noisy),
            ratio(report.l2_reduction_vs_gaussian)
        );
    }
    println!(
        "per-pixel SNR (median): noisy {:.2}, denoised {:.2}, gain {:.2}x",
        report.snr_noisy.median, report.snr_denoised.median, report.snr_gain_median
    );
}
