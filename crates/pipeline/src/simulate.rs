//! Simulated recordings with their ground truth (two-photon movies, Neuropixels recordings,
//! fMRI runs), rendered by `deepinterp-sim` and streamed to disk in chunks; outputs are
//! claimed before any work and appear only when complete.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepinterp_io::ephys::{NewSpikeGlx, create_spikeglx, neuropixels1_positions};
use deepinterp_io::limits;
use deepinterp_io::nifti::{NewVolume, NiftiDtype, create_volume, is_nifti_path};
use deepinterp_io::output::{OutputGuard, ephys_sidecars, write_file_atomically};
use deepinterp_io::{Dtype, MovieInfo, create_movie};
use deepinterp_sim::{
    EphysConfig, EphysSimulator, FmriConfig, FmriSimulator, TwoPhotonConfig, TwoPhotonSimulator,
};

use crate::denoise::{OutputDtype, clipped_note};
use crate::error::{PipelineError, Result, ensure};
use crate::progress::{Progress, Reporter, advance};

/// A simulated two-photon movie: neurons, neuropil, baseline, Poisson shot noise.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Simulate2pRequest {
    /// Noisy movie to write (.h5 or .tif).
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: PathBuf,
    /// Clean (ground-truth) movie to write.
    #[cfg_attr(feature = "clap", arg(long))]
    pub clean: PathBuf,
    /// Frames.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1000, value_parser = crate::parse::at_least_one))]
    pub frames: usize,
    /// Frame height in pixels.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128, value_parser = crate::parse::at_least_one))]
    pub height: usize,
    /// Frame width in pixels.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128, value_parser = crate::parse::at_least_one))]
    pub width: usize,
    /// Photons per unit of fluorescence: lower is noisier.
    #[cfg_attr(feature = "clap", arg(long, value_parser = crate::parse::positive_f32))]
    pub photons: Option<f32>,
    /// Number of neurons (default scales with the field of view).
    #[cfg_attr(feature = "clap", arg(long))]
    pub neurons: Option<usize>,
    /// Rigid motion amplitude in pixels (0: none).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0, value_parser = crate::parse::non_negative_f32))]
    pub motion: f32,
    /// Data type of the noisy movie (the clean one is always float32).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = OutputDtype::Int16))]
    pub dtype: OutputDtype,
    /// Random seed.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// A simulated spike-band recording on a Neuropixels 1.0 layout.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SimulateEphysRequest {
    /// Noisy recording to write (.bin, with a .meta beside it).
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: PathBuf,
    /// Clean (ground-truth) recording to write (.bin, with a .meta beside it).
    #[cfg_attr(feature = "clap", arg(long))]
    pub clean: PathBuf,
    /// Duration in seconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10.0, value_parser = crate::parse::positive_f64))]
    pub duration: f64,
    /// Channels (Neuropixels 1.0 positions).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 384, value_parser = crate::parse::at_least_one))]
    pub channels: usize,
    /// Sample rate in Hz.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30_000.0, value_parser = crate::parse::positive_f64))]
    pub sample_rate: f64,
    /// Thermal noise, µV RMS.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10.0, value_parser = crate::parse::non_negative_f64))]
    pub noise_uv: f64,
    /// Number of units (default: one per four channels).
    #[cfg_attr(feature = "clap", arg(long))]
    pub units: Option<usize>,
    /// Random seed.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// A simulated fMRI run at a chosen tSNR.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SimulateFmriRequest {
    /// Noisy run to write (.nii or .nii.gz).
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: PathBuf,
    /// Clean (ground-truth) run to write (.nii or .nii.gz).
    #[cfg_attr(feature = "clap", arg(long))]
    pub clean: PathBuf,
    /// Shape X,Y,Z,T: voxels along x, y, z and time points.
    #[cfg_attr(feature = "clap", arg(long, default_value = "64,64,32,200", value_parser = crate::parse::shape4))]
    pub shape: [usize; 4],
    /// Target median temporal SNR of grey and white matter in the noisy run.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30.0, value_parser = crate::parse::positive_f64))]
    pub tsnr: f64,
    /// Repetition time in seconds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2.0, value_parser = crate::parse::positive_f64))]
    pub tr: f64,
    /// Random seed.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// Frames rendered and written per chunk.
const CHUNK_FRAMES: usize = 64;

/// Writes a simulated two-photon movie, its clean version and the neuron list beside it.
pub fn simulate_2p(args: &Simulate2pRequest, report: Reporter<'_>) -> Result<()> {
    let truth_path = args.output.with_extension("truth.json");
    OutputGuard::new()
        .output("the noisy movie", &args.output)
        .output("the clean movie", &args.clean)
        .output("the ground-truth neuron list", &truth_path)
        .check()?;
    let plane = checked_plane(args)?;
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
        // Footprints span several pixels: more neurons than pixels cannot be a real field.
        ensure!(
            neurons <= plane,
            "--neurons {neurons} is more than the {plane} pixels of a {}x{} frame",
            args.height,
            args.width
        );
        config.neurons = neurons;
    } else {
        config.neurons = TwoPhotonConfig::neurons_for_area(args.height, args.width);
    }
    let mut simulator = TwoPhotonSimulator::new(config)
        .map_err(|e| PipelineError::Refused(format!("invalid simulation settings: {e}")))?;
    let info = |dtype| MovieInfo {
        frames: args.frames,
        height: args.height,
        width: args.width,
        dtype,
    };
    let mut noisy_writer = create_movie(&args.output, &info(args.dtype.into()))?;
    let mut clean_writer = create_movie(&args.clean, &info(Dtype::F32))?;
    let mut clean = vec![0f32; CHUNK_FRAMES * plane];
    let mut noisy = vec![0f32; CHUNK_FRAMES * plane];
    report.show(Progress::Begin {
        label: "simulate",
        total: args.frames as u64,
        unit: "frames",
    });
    let mut done = 0;
    while done < args.frames {
        let count = CHUNK_FRAMES.min(args.frames - done);
        let rendered = simulator.next_frames(
            count,
            &mut clean[..count * plane],
            &mut noisy[..count * plane],
        );
        ensure!(
            rendered == count,
            "simulator stopped after {} frames",
            done + rendered
        );
        noisy_writer.write_frames(&noisy[..count * plane], count)?;
        clean_writer.write_frames(&clean[..count * plane], count)?;
        done += count;
        advance(report, done as u64, None)?;
    }
    let noisy_summary = noisy_writer.finish()?;
    clean_writer.finish()?;
    report.show(Progress::End);
    let truth = serde_json::to_vec_pretty(&simulator.ground_truth())
        .map_err(|e| PipelineError::Refused(format!("cannot write the ground truth: {e}")))?;
    write_file_atomically(&truth_path, &truth)?;
    report.show(Progress::Line(format!(
        "wrote {} ({} frames {}x{}, {}), {} and {}{}",
        args.output.display(),
        args.frames,
        args.height,
        args.width,
        args.dtype_name(),
        args.clean.display(),
        truth_path.display(),
        clipped_note(noisy_summary.clipped_values)
    )));
    Ok(())
}

/// Pixels per frame, checked against the memory the render buffers take.
fn checked_plane(args: &Simulate2pRequest) -> Result<usize> {
    let flag = Path::new("--height x --width");
    let (height, width) = (args.height as u64, args.width as u64);
    let plane = limits::checked_product(flag, "a frame", &[height, width])?;
    // Two render buffers of CHUNK_FRAMES float32 frames, plus the simulator's own images.
    let bytes = limits::checked_product(
        flag,
        "the render buffers",
        &[plane, 4, 2 * CHUNK_FRAMES as u64 + 8],
    )?;
    limits::check_memory(flag, "the render buffers", bytes)?;
    Ok(plane as usize)
}

impl Simulate2pRequest {
    fn dtype_name(&self) -> String {
        Dtype::from(self.dtype).to_string()
    }
}

/// Samples rendered and written per chunk (0.1 s at 30 kHz).
const CHUNK_SAMPLES: usize = 3000;

/// Neuropixels 1.0 AP gain 500: 2.34375 µV per bit.
const NP1_MICROVOLTS_PER_BIT: f64 = 1e6 * 0.6 / 512.0 / 500.0;

/// Writes a simulated Neuropixels 1.0 recording (SpikeGLX), its clean version and the
/// ground-truth spike and unit tables beside it.
pub fn simulate_ephys(args: &SimulateEphysRequest, report: Reporter<'_>) -> Result<()> {
    let spikes_path = args.output.with_extension("spikes.csv");
    let units_path = args.output.with_extension("units.csv");
    let mut guard = OutputGuard::new();
    guard
        .output("the noisy recording", &args.output)
        .output("the clean recording", &args.clean);
    for sidecar in ephys_sidecars(&args.output) {
        guard.output("the noisy recording's header", &sidecar);
    }
    for sidecar in ephys_sidecars(&args.clean) {
        guard.output("the clean recording's header", &sidecar);
    }
    guard
        .output("the ground-truth spike table", &spikes_path)
        .output("the ground-truth unit table", &units_path)
        .check()?;
    check_ephys_size(args)?;
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
    let mut simulator = EphysSimulator::new(config)
        .map_err(|e| PipelineError::Refused(format!("invalid simulation settings: {e}")))?;
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
    report.show(Progress::Begin {
        label: "simulate",
        total: samples as u64,
        unit: "samples",
    });
    let to_bits = (1.0 / NP1_MICROVOLTS_PER_BIT) as f32;
    let mut done = 0;
    while done < samples {
        let count = CHUNK_SAMPLES.min(samples - done);
        let len = count * channels;
        let rendered = simulator.next_samples(count, &mut clean[..len], &mut noisy[..len]);
        ensure!(
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
        advance(report, done as u64, None)?;
    }
    let noisy_summary = noisy_writer.finish()?;
    clean_writer.finish()?;
    report.show(Progress::End);
    let spikes = simulator.spikes();
    let mut csv = String::from("sample,unit\n");
    for spike in &spikes {
        let _ = writeln!(csv, "{},{}", spike.sample, spike.unit);
    }
    write_file_atomically(&spikes_path, csv.as_bytes())?;
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
    write_file_atomically(&units_path, csv.as_bytes())?;
    report.show(Progress::Line(format!(
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
    )));
    Ok(())
}

/// Highest firing rate the simulator draws, Hz (spike trains are drawn up front).
const MAX_FIRING_RATE_HZ: f64 = 20.0;

/// Checks what a simulated recording's length and channel count make the simulator hold: every
/// spike of every unit (drawn up front) and the render buffers.
fn check_ephys_size(args: &SimulateEphysRequest) -> Result<()> {
    ensure!(
        args.channels <= deepinterp_io::MAX_CHANNELS,
        "--channels {} is more than the {} channels a recording may have",
        args.channels,
        deepinterp_io::MAX_CHANNELS
    );
    let flag = Path::new("--duration");
    let samples = args.duration * args.sample_rate;
    ensure!(
        (1.0..1e15).contains(&samples),
        "--duration {} s at {} Hz is {samples} samples: not a recording this simulator can write",
        args.duration,
        args.sample_rate
    );
    let units = args.units.unwrap_or(args.channels.div_ceil(4)) as f64;
    // A ground-truth spike takes 16 bytes, and the list is copied once when written out.
    let spike_bytes = units * MAX_FIRING_RATE_HZ * args.duration * 48.0;
    limits::check_memory(
        flag,
        "the ground-truth spike trains",
        spike_bytes.min(u64::MAX as f64) as u64,
    )?;
    let buffers = limits::checked_product(
        Path::new("--channels"),
        "the render buffers",
        &[args.channels as u64, CHUNK_SAMPLES as u64, 4, 4],
    )?;
    limits::check_memory(Path::new("--channels"), "the render buffers", buffers)?;
    Ok(())
}

/// Volumes rendered and written per chunk.
const CHUNK_VOLUMES: usize = 8;

/// Writes a simulated fMRI run and its clean version (NIfTI).
pub fn simulate_fmri(args: &SimulateFmriRequest, report: Reporter<'_>) -> Result<()> {
    for path in [&args.output, &args.clean] {
        ensure!(
            is_nifti_path(path),
            "{}: fMRI runs are written as NIfTI: name it .nii or .nii.gz",
            path.display()
        );
    }
    OutputGuard::new()
        .output("the noisy run", &args.output)
        .output("the clean run", &args.clean)
        .check()?;
    let [x, y, z, frames] = args.shape;
    let shape_flag = Path::new("--shape");
    let voxels = limits::checked_product(shape_flag, "a volume", &[x as u64, y as u64, z as u64])?;
    // The simulator holds its anatomy maps and a chunk of volumes in float32.
    let bytes = limits::checked_product(
        shape_flag,
        "the simulator's volumes",
        &[voxels, 4, 4 * CHUNK_VOLUMES as u64 + 16],
    )?;
    limits::check_memory(shape_flag, "the simulator's volumes", bytes)?;
    let config = FmriConfig {
        repetition_time_s: args.tr,
        tsnr: args.tsnr,
        seed: args.seed,
        ..FmriConfig::new([x, y, z], frames)
    };
    let mut simulator = FmriSimulator::new(config.clone())
        .map_err(|e| PipelineError::Refused(format!("invalid simulation settings: {e}")))?;
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
    report.show(Progress::Begin {
        label: "simulate",
        total: frames as u64,
        unit: "volumes",
    });
    let mut done = 0;
    while done < frames {
        let count = CHUNK_VOLUMES.min(frames - done);
        let len = count * volume_len;
        let rendered = simulator.next_volumes(count, &mut clean[..len], &mut noisy[..len]);
        ensure!(
            rendered == count,
            "simulator stopped after {} volumes",
            done + rendered
        );
        noisy_writer.write_volumes(&noisy[..len], count)?;
        clean_writer.write_volumes(&clean[..len], count)?;
        done += count;
        advance(report, done as u64, None)?;
    }
    let noisy_summary = noisy_writer.finish()?;
    clean_writer.finish()?;
    report.show(Progress::End);
    let brain = simulator.brain_mask().iter().filter(|&&b| b).count();
    report.show(Progress::Line(format!(
        "simulated {x}x{y}x{z} voxels x {frames} volumes (TR {} s, tSNR {}, noise sigma {:.1}, {brain} brain voxels): {} (noisy), {} (clean){}",
        args.tr,
        args.tsnr,
        simulator.noise_sigma(),
        noisy_summary.path.display(),
        args.clean.display(),
        clipped_note(noisy_summary.clipped_values)
    )));
    Ok(())
}
