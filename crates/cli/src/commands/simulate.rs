//! `deepinterp simulate 2p|ephys|fmri`: a ground-truth recording, streamed to disk in chunks.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use deepinterp_io::ephys::{NewSpikeGlx, create_spikeglx, neuropixels1_positions};
use deepinterp_io::nifti::{NewVolume, NiftiDtype, create_volume, is_nifti_path};
use deepinterp_io::{Dtype, MovieInfo, create_movie};
use deepinterp_sim::{
    EphysConfig, EphysSimulator, FmriConfig, FmriSimulator, TwoPhotonConfig, TwoPhotonSimulator,
};

use crate::progress;
use crate::{Simulate2pArgs, SimulateEphysArgs, SimulateFmriArgs};

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

/// Samples rendered and written per chunk (0.1 s at 30 kHz).
const CHUNK_SAMPLES: usize = 3000;

/// Neuropixels 1.0 AP gain 500: 2.34375 µV per bit.
const NP1_MICROVOLTS_PER_BIT: f64 = 1e6 * 0.6 / 512.0 / 500.0;

pub fn simulate_ephys(args: &SimulateEphysArgs) -> Result<()> {
    let positions = neuropixels1_positions(args.channels);
    let config = EphysConfig {
        duration_s: args.duration,
        sample_rate_hz: args.sample_rate,
        channels: args.channels,
        positions_um: positions.iter().map(|p| (p.x_um, p.y_um)).collect(),
        units: args.units,
        noise_uv_rms: args.noise_uv,
        seed: args.seed,
        ..EphysConfig::default()
    };
    let mut simulator = EphysSimulator::new(config).context("invalid simulation settings")?;
    let samples = simulator.samples();
    let spec = NewSpikeGlx {
        sample_rate_hz: args.sample_rate,
        positions,
        microvolts_per_bit: NP1_MICROVOLTS_PER_BIT,
        with_sync_channel: true,
        samples,
    };
    let mut noisy_writer = create_spikeglx(&args.output, &spec)?;
    let mut clean_writer = create_spikeglx(&args.clean, &spec)?;
    let channels = args.channels;
    let mut clean = vec![0f32; CHUNK_SAMPLES * channels];
    let mut noisy = vec![0f32; CHUNK_SAMPLES * channels];
    let bar = progress::bar(samples as u64, "simulate", "samples");
    let to_bits = (1.0 / NP1_MICROVOLTS_PER_BIT) as f32;
    let mut done = 0;
    while done < samples {
        let count = CHUNK_SAMPLES.min(samples - done);
        let len = count * channels;
        let rendered = simulator.next_samples(count, &mut clean[..len], &mut noisy[..len]);
        anyhow::ensure!(
            rendered == count,
            "simulator stopped after {} samples",
            done + rendered
        );
        for value in clean[..len].iter_mut().chain(&mut noisy[..len]) {
            *value *= to_bits;
        }
        noisy_writer.write_samples(&noisy[..len], count)?;
        clean_writer.write_samples(&clean[..len], count)?;
        done += count;
        bar.set_position(done as u64);
    }
    let noisy_summary = noisy_writer.finish()?;
    clean_writer.finish()?;
    bar.finish_and_clear();
    let spikes_path = args.output.with_extension("spikes.csv");
    let units_path = args.output.with_extension("units.csv");
    let spikes = simulator.spikes();
    let mut csv = String::from("sample,unit\n");
    for spike in &spikes {
        let _ = writeln!(csv, "{},{}", spike.sample, spike.unit);
    }
    deepinterp::model::file::write_atomically(&spikes_path, csv.as_bytes())?;
    let mut csv = String::from("unit,peak_channel,x_um,y_um,z_um,amplitude_uv,rate_hz,channels\n");
    for (index, unit) in simulator.units().iter().enumerate() {
        let channels: Vec<String> = unit.channels.iter().map(usize::to_string).collect();
        let _ = writeln!(
            csv,
            "{index},{},{},{},{},{},{},{}",
            unit.peak_channel,
            unit.x_um,
            unit.y_um,
            unit.z_um,
            unit.amplitude_uv,
            unit.firing_rate_hz,
            channels.join(" ")
        );
    }
    deepinterp::model::file::write_atomically(&units_path, csv.as_bytes())?;
    eprintln!(
        "wrote {} ({samples} samples x {channels} channels + sync, {:.1} s at {} Hz, noise {} µV RMS, int16 at {NP1_MICROVOLTS_PER_BIT} µV/bit), {}, {} ({} spikes) and {} ({} units){}",
        args.output.display(),
        args.duration,
        args.sample_rate,
        args.noise_uv,
        args.clean.display(),
        spikes_path.display(),
        spikes.len(),
        units_path.display(),
        simulator.units().len(),
        clipped_note(noisy_summary.clipped_values)
    );
    Ok(())
}

/// Volumes rendered and written per chunk.
const CHUNK_VOLUMES: usize = 8;

pub fn simulate_fmri(args: &SimulateFmriArgs) -> Result<()> {
    for path in [&args.output, &args.clean] {
        anyhow::ensure!(
            is_nifti_path(path),
            "{}: fMRI runs are written as NIfTI: name it .nii or .nii.gz",
            path.display()
        );
    }
    let [x, y, z, frames] = args.shape;
    let config = FmriConfig {
        repetition_time_s: args.tr,
        tsnr: args.tsnr,
        seed: args.seed,
        ..FmriConfig::new([x, y, z], frames)
    };
    let mut simulator =
        FmriSimulator::new(config.clone()).context("invalid simulation settings")?;
    let volume = |dtype, description: &str| NewVolume {
        shape: [x, y, z],
        frames,
        dtype,
        voxel_size: config.voxel_size_mm,
        repetition_time_s: args.tr,
        description: description.to_string(),
    };
    let mut noisy_writer = create_volume(
        &args.output,
        &volume(NiftiDtype::I16, "deepinterp simulate fmri: noisy"),
    )?;
    let mut clean_writer = create_volume(
        &args.clean,
        &volume(NiftiDtype::F32, "deepinterp simulate fmri: clean"),
    )?;
    let volume_len = x * y * z;
    let mut clean = vec![0f32; CHUNK_VOLUMES * volume_len];
    let mut noisy = vec![0f32; CHUNK_VOLUMES * volume_len];
    let bar = progress::bar(frames as u64, "simulate", "volumes");
    let mut done = 0;
    while done < frames {
        let count = CHUNK_VOLUMES.min(frames - done);
        let len = count * volume_len;
        let rendered = simulator.next_volumes(count, &mut clean[..len], &mut noisy[..len]);
        anyhow::ensure!(
            rendered == count,
            "simulator stopped after {} volumes",
            done + rendered
        );
        noisy_writer.write_volumes(&noisy[..len], count)?;
        clean_writer.write_volumes(&clean[..len], count)?;
        done += count;
        bar.set_position(done as u64);
    }
    let noisy_summary = noisy_writer.finish()?;
    clean_writer.finish()?;
    bar.finish_and_clear();
    let brain = simulator.brain_mask().iter().filter(|&&b| b).count();
    eprintln!(
        "simulated {x}x{y}x{z} voxels x {frames} volumes (TR {} s, tSNR {}, noise sigma {:.1}, {brain} brain voxels): {} (noisy), {} (clean){}",
        args.tr,
        args.tsnr,
        simulator.noise_sigma(),
        noisy_summary.path.display(),
        args.clean.display(),
        clipped_note(noisy_summary.clipped_values)
    );
    Ok(())
}
