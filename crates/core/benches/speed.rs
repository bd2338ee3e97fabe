//! Speed benchmark (not a test): CPU-seconds per inferred frame and per training step, wall
//! time and peak RSS, for the paper's `unet_single_1024` and the small default network.
//!
//! Run: `cargo bench -p deepinterp --bench speed [-- paper|paper-infer|small|ephys|all]`.
//! Training steps run the forward pass training uses (our kernels as one autodiff operation
//! on the CPU; `DEEPINTERP_ENGINE=burn` for burn's). Figures are printed
//! next to the original's on our machine kind (REFERENCE.md §6: 2.85 CPU-s per 512×512
//! inferred frame, 9.6 CPU-s per 1×512×512 training step, peak RSS 3 GB).

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer, RmsPropConfig};
use burn::tensor::{Distribution, Tensor, backend::Backend};
use deepinterp::backend::{Cpu, CpuTrain};
use deepinterp::model::{Network, UNetConfig, VolumeUNetConfig};
use deepinterp::training::{UNetTrainOps, train_engine};

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is 14th, stime 15th overall.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Measure {
    cpu: f64,
    wall: f64,
}

fn measure(reps: usize, mut f: impl FnMut()) -> Measure {
    f(); // warm-up: allocations, thread pool
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for _ in 0..reps {
        f();
    }
    Measure {
        cpu: (cpu_seconds() - cpu0) / reps as f64,
        wall: wall0.elapsed().as_secs_f64() / reps as f64,
    }
}

/// Times inference of `batch` frames of `height × width`; returns (CPU, wall) seconds per frame.
fn inference(
    name: &str,
    config: &UNetConfig,
    batch: usize,
    [height, width]: [usize; 2],
    reps: usize,
) -> (f64, f64) {
    let device = Default::default();
    let net = config.init::<Cpu>(&device).expect("valid config");
    // Inputs are made once: their random generation is not part of the figure.
    let x = Tensor::<Cpu, 4>::random(
        [batch, config.in_channels, height, width],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let m = measure(reps, || {
        let y = net.forward(x.clone());
        let _ = y.into_data();
    });
    let gflop = config.forward_flops(height, width) * batch as f64 / 1e9;
    println!(
        "{name:<22} infer {batch}x{height}x{width}: {:.4} CPU-s/frame, {:.4} wall-s/frame, {:.1} GFLOP/s, peak RSS {:.0} MiB",
        m.cpu / batch as f64,
        m.wall / batch as f64,
        gflop / m.wall,
        peak_rss_mib()
    );
    (m.cpu / batch as f64, m.wall / batch as f64)
}

fn train_step(
    name: &str,
    config: &UNetConfig,
    batch: usize,
    [height, width]: [usize; 2],
    reps: usize,
) {
    let device = Default::default();
    let mut net = Network::Planar(config.init::<CpuTrain>(&device).expect("valid config"));
    let mut optimizer = RmsPropConfig::new()
        .with_alpha(0.9)
        .with_momentum(0.0)
        .with_epsilon(1e-7)
        .init();
    let shape = [batch, config.in_channels, height, width];
    let x = Tensor::<CpuTrain, 1>::random(
        [shape.iter().product::<usize>()],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let t = Tensor::<CpuTrain, 1>::random(
        [batch * height * width],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let m = measure(reps, || {
        let prediction = CpuTrain::train_forward(&net, x.clone(), &shape);
        let loss = (prediction - t.clone()).abs().mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optimizer.step(1e-4, net.clone(), grads);
    });
    let _ = net.valid();
    println!(
        "{name:<22} train {batch}x{height}x{width} ({}): {:.3} CPU-s/step, {:.3} wall-s/step, peak RSS {:.0} MiB",
        train_engine().name(),
        m.cpu,
        m.wall,
        peak_rss_mib()
    );
}

fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "all".into());
    println!(
        "machine: {} cores ({}), backend {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default(),
        Cpu::name(&Default::default())
    );
    if which == "small" || which == "all" {
        for arch in [(3, 16), (3, 32), (4, 16)] {
            let config = UNetConfig::scaled(60, arch.0, arch.1);
            let name = format!("unet-d{}-w{}", arch.0, arch.1);
            train_step(&name, &config, 8, [64, 64], 5);
            inference(&name, &config, 4, [128, 128], 3);
        }
    }
    if which == "paper" || which == "all" || which == "paper-infer" {
        let config = UNetConfig::unet_single_1024(60);
        inference("unet_single_1024", &config, 1, [512, 512], 3);
        if which != "paper-infer" {
            train_step("unet_single_1024", &config, 1, [512, 512], 2);
        }
        println!(
            "original (TF 2.15 CPU, same machine kind): 2.85 CPU-s/frame inference, 9.6 CPU-s/step training, peak RSS 3 GB"
        );
    }
    if which == "ephys" || which == "all" {
        // A frame is one time sample of a 384-channel probe on its 384 x 2 grid.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let report = |name: &str, (cpu_per_sample, wall_per_sample): (f64, f64)| {
            println!(
                "{name:<22} {:.2} CPU-ms/sample, {:.0} samples/s per CPU core; {:.0} samples/s on {cores} cores: {:.0}x slower than real time (30 kHz)",
                cpu_per_sample * 1e3,
                1.0 / cpu_per_sample,
                1.0 / wall_per_sample,
                30_000.0 * wall_per_sample
            );
        };
        let config = UNetConfig::unet_single_ephys_1024(60);
        let timing = inference("unet_single_ephys_1024", &config, 100, [384, 2], 3);
        report("unet_single_ephys_1024", timing);
        train_step("unet_single_ephys_1024", &config, 100, [384, 2], 2);
        for (depth, width) in [(3, 16), (4, 32)] {
            let config = UNetConfig::scaled_probe(60, depth, width);
            let name = format!("unet-ephys-d{depth}-w{width}");
            let timing = inference(&name, &config, 100, [384, 2], 5);
            report(&name, timing);
            train_step(&name, &config, 32, [384, 2], 5);
        }
        println!(
            "original (TF CPU, batch 100, same machine kind): 14.3 CPU-ms per sample, 330x slower than real time on 2 cores"
        );
    }
    if which == "fmri" || which == "all" {
        fmri_blocks();
    }
}

/// The paper's fMRI network on batches of 7³ × 5 blocks: inference per block and a training
/// step, with the original's anchor.
fn fmri_blocks() {
    let device = Default::default();
    let config = VolumeUNetConfig::fmri_unet_denoiser(5);
    let net = config.init::<Cpu>(&device).expect("valid config");
    for batch in [256, 1024, 4096] {
        let x =
            Tensor::<Cpu, 5>::random([batch, 5, 7, 7, 7], Distribution::Normal(0.0, 1.0), &device);
        let m = measure(3, || {
            let _ = net.forward(x.clone()).into_data();
        });
        let blocks_per_s = batch as f64 / m.wall;
        println!(
            "fmri_unet_denoiser     infer {batch}x7x7x7: {:.4} CPU-ms/block, {:.0} blocks/s, {:.1} GFLOP/s, peak RSS {:.0} MiB; 64x64x32x200 parity (26.2 M blocks) ~ {:.0} s",
            m.cpu / batch as f64 * 1e3,
            blocks_per_s,
            config.forward_flops([7; 3]) * blocks_per_s / 1e9,
            peak_rss_mib(),
            26_214_400.0 / blocks_per_s
        );
    }
    let mut train_net =
        Network::Volumetric(config.init::<CpuTrain>(&device).expect("valid config"));
    let mut optimizer = RmsPropConfig::new()
        .with_alpha(0.9)
        .with_momentum(0.0)
        .with_epsilon(1e-7)
        .init();
    let batch = 256;
    let shape = [batch, 5, 7, 7, 7];
    let x =
        Tensor::<CpuTrain, 1>::random([batch * 5 * 343], Distribution::Normal(0.0, 1.0), &device);
    let t = Tensor::<CpuTrain, 1>::random([batch * 343], Distribution::Normal(0.0, 1.0), &device);
    let m = measure(5, || {
        let prediction = CpuTrain::train_forward(&train_net, x.clone(), &shape);
        let loss = (prediction - t.clone()).abs().mean();
        let grads = GradientsParams::from_grads(loss.backward(), &train_net);
        train_net = optimizer.step(1e-3, train_net.clone(), grads);
    });
    println!(
        "fmri_unet_denoiser     train {batch}x7x7x7 ({}): {:.3} CPU-s/step, {:.3} wall-s/step",
        train_engine().name(),
        m.cpu,
        m.wall
    );
    println!("original (TF CPU, batch 1,000 blocks, same machine kind): 0.145 CPU-ms per block");
}
