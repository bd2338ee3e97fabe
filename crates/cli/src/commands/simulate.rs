//! `deepinterp simulate 2p`: a ground-truth calcium movie, streamed to disk in chunks.

use anyhow::{Context, Result};
use deepinterp_io::{Dtype, MovieInfo, create_movie};
use deepinterp_sim::{TwoPhotonConfig, TwoPhotonSimulator};

use crate::Simulate2pArgs;
use crate::progress;

/// Frames rendered and written per chunk.
const CHUNK_FRAMES: usize = 64;

pub fn simulate_2p(args: &Simulate2pArgs) -> Result<()> {
    let mut config = TwoPhotonConfig {
        frames: args.frames,
        height: args.height,
        width: args.width,
        motion_px: args.motion,
        seed: args.seed,
        ..TwoPhotonConfig::default()
    };
    if let Some(photons) = args.photons {
        config.photons_per_unit = photons;
    }
    if let Some(neurons) = args.neurons {
        config.neurons = neurons;
    } else {
        config.neurons = TwoPhotonConfig::neurons_for_area(args.height, args.width);
    }
    let mut simulator = TwoPhotonSimulator::new(config).context("invalid simulation settings")?;
    let info = |dtype| MovieInfo {
        frames: args.frames,
        height: args.height,
        width: args.width,
        dtype,
    };
    let mut noisy_writer = create_movie(&args.output, &info(args.dtype.into()))?;
    let mut clean_writer = create_movie(&args.clean, &info(Dtype::F32))?;
    let plane = args.height * args.width;
    let mut clean = vec![0f32; CHUNK_FRAMES * plane];
    let mut noisy = vec![0f32; CHUNK_FRAMES * plane];
    let bar = progress::bar(args.frames as u64, "simulate", "frames");
    let mut done = 0;
    while done < args.frames {
        let count = CHUNK_FRAMES.min(args.frames - done);
        let rendered = simulator.next_frames(
            count,
            &mut clean[..count * plane],
            &mut noisy[..count * plane],
        );
        anyhow::ensure!(
            rendered == count,
            "simulator stopped after {} frames",
            done + rendered
        );
        noisy_writer.write_frames(&noisy[..count * plane], count)?;
        clean_writer.write_frames(&clean[..count * plane], count)?;
        done += count;
        bar.set_position(done as u64);
    }
    let noisy_summary = noisy_writer.finish()?;
    clean_writer.finish()?;
    bar.finish_and_clear();
    let truth_path = args.output.with_extension("truth.json");
    let truth = serde_json::to_vec_pretty(&simulator.ground_truth())?;
    deepinterp::model::file::write_atomically(&truth_path, &truth)?;
    eprintln!(
        "wrote {} ({} frames {}x{}, {}), {} and {}{}",
        args.output.display(),
        args.frames,
        args.height,
        args.width,
        args.dtype_name(),
        args.clean.display(),
        truth_path.display(),
        clipped_note(noisy_summary.clipped_values)
    );
    Ok(())
}

impl Simulate2pArgs {
    fn dtype_name(&self) -> String {
        Dtype::from(self.dtype).to_string()
    }
}

/// A note about values clipped to an integer type's range (empty when none were).
pub fn clipped_note(clipped: u64) -> String {
    if clipped == 0 {
        String::new()
    } else {
        format!("; {clipped} values were clipped to the output type's range")
    }
}
