//! Throughput of the kernels alone (no burn, no I/O): GFLOP/s per network and the fraction
//! of this CPU's fp32 FMA peak, measured here on one thread.
//!
//! Run: `cargo bench -p deepinterp-kernels --bench throughput [-- paper|small|ephys|fmri|fmri-lanes|conv|conv:CIN,COUT,SIZE]`.

use std::time::Instant;

use deepinterp_kernels::raw::{Geometry, Method, PackedConv, halo_for};
use deepinterp_kernels::{ConvWeights, Isa, LaneUNet, LaneWorkspace, UNet, Workspace};

/// One thread's fp32 FMA throughput (GFLOP/s): independent FMA chains on 512-bit (AVX-512)
/// or 256-bit (AVX2) registers, whichever the kernels use.
fn fma_peak(isa: Isa) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::asm;
        // Twelve independent FMA chains in a loop written out by hand: enough to cover the
        // FMA latency on any of the units this CPU has, with nothing else in the loop.
        fn zmm(iterations: u64) {
            unsafe {
                asm!(
                    "vxorps xmm0, xmm0, xmm0",
                    "2:",
                    "vfmadd231ps zmm0, zmm12, zmm13", "vfmadd231ps zmm1, zmm12, zmm13",
                    "vfmadd231ps zmm2, zmm12, zmm13", "vfmadd231ps zmm3, zmm12, zmm13",
                    "vfmadd231ps zmm4, zmm12, zmm13", "vfmadd231ps zmm5, zmm12, zmm13",
                    "vfmadd231ps zmm6, zmm12, zmm13", "vfmadd231ps zmm7, zmm12, zmm13",
                    "vfmadd231ps zmm8, zmm12, zmm13", "vfmadd231ps zmm9, zmm12, zmm13",
                    "vfmadd231ps zmm10, zmm12, zmm13", "vfmadd231ps zmm11, zmm12, zmm13",
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) iterations => _,
                    out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                    out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                    out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                    out("zmm12") _, out("zmm13") _,
                    options(nostack, nomem),
                );
            }
        }
        fn ymm(iterations: u64) {
            unsafe {
                asm!(
                    "2:",
                    "vfmadd231ps ymm0, ymm12, ymm13", "vfmadd231ps ymm1, ymm12, ymm13",
                    "vfmadd231ps ymm2, ymm12, ymm13", "vfmadd231ps ymm3, ymm12, ymm13",
                    "vfmadd231ps ymm4, ymm12, ymm13", "vfmadd231ps ymm5, ymm12, ymm13",
                    "vfmadd231ps ymm6, ymm12, ymm13", "vfmadd231ps ymm7, ymm12, ymm13",
                    "vfmadd231ps ymm8, ymm12, ymm13", "vfmadd231ps ymm9, ymm12, ymm13",
                    "vfmadd231ps ymm10, ymm12, ymm13", "vfmadd231ps ymm11, ymm12, ymm13",
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) iterations => _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _,
                    options(nostack, nomem),
                );
            }
        }
        // The best of several runs of about a second: the clock settles on vector work.
        let iterations = 200_000_000u64;
        let mut best = 0f64;
        for _ in 0..4 {
            let started = Instant::now();
            let flops = match isa {
                Isa::Avx512 => {
                    zmm(iterations);
                    iterations as f64 * 12.0 * 16.0 * 2.0
                }
                Isa::Avx2 => {
                    ymm(iterations);
                    iterations as f64 * 12.0 * 8.0 * 2.0
                }
                Isa::Portable => return f64::NAN,
            };
            best = best.max(flops / started.elapsed().as_secs_f64() / 1e9);
        }
        best
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        f64::NAN
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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

/// Weights of a U-Net: `(in, out, kernel)` per conv in execution order; values small and
/// deterministic (throughput does not depend on them).
fn weights(shapes: &[(usize, usize, [usize; 3])]) -> Vec<ConvWeights> {
    shapes
        .iter()
        .map(|&(cin, cout, kernel)| {
            let taps: usize = kernel.iter().product();
            ConvWeights {
                out_channels: cout,
                in_channels: cin,
                kernel,
                weight: (0..cout * cin * taps)
                    .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
                    .collect(),
                bias: vec![0.01; cout],
            }
        })
        .collect()
}

fn unet_shapes(
    in_channels: usize,
    widths: &[usize],
    bottleneck: usize,
    kernels: &[[usize; 3]],
) -> Vec<(usize, usize, [usize; 3])> {
    let mut shapes = Vec::new();
    let mut channels = in_channels;
    for &w in widths {
        shapes.push((channels, w));
        channels = w;
    }
    shapes.push((channels, bottleneck));
    channels = bottleneck;
    for &w in widths.iter().rev() {
        shapes.push((channels + w, w));
        channels = w;
    }
    shapes.push((channels, 1));
    shapes
        .into_iter()
        .zip(kernels)
        .map(|((i, o), &k)| (i, o, k))
        .collect()
}

fn flops(shapes: &[(usize, usize, [usize; 3])], pools: &[[usize; 3]], size: [usize; 3]) -> f64 {
    let depth = pools.len();
    let mut sizes = vec![size];
    for p in pools {
        let s = sizes[sizes.len() - 1];
        sizes.push([s[0] / p[0], s[1] / p[1], s[2] / p[2]]);
    }
    let levels: Vec<usize> = (0..=depth)
        .chain((0..depth).rev())
        .chain(std::iter::once(0))
        .collect();
    shapes
        .iter()
        .zip(levels)
        .map(|(&(i, o, k), level)| {
            2.0 * (sizes[level].iter().product::<usize>() * i * o * k.iter().product::<usize>())
                as f64
        })
        .sum()
}

/// One of the two engines with its workspace.
enum Engine {
    /// Channels in the lanes ([`UNet`]).
    Blocks(Box<(UNet, Workspace)>),
    /// Samples in the lanes ([`LaneUNet`]).
    Lanes(Box<(LaneUNet, LaneWorkspace)>),
}

impl Engine {
    fn new(lanes: bool, convs: &[ConvWeights], pools: &[[usize; 3]], threads: usize) -> Self {
        if lanes {
            let mut net = LaneUNet::new(convs, pools).expect("valid network");
            net.set_threads(threads);
            Engine::Lanes(Box::new((net, LaneWorkspace::new())))
        } else {
            let mut net = UNet::new(convs, pools).expect("valid network");
            net.set_threads(threads);
            Engine::Blocks(Box::new((net, Workspace::new())))
        }
    }

    fn forward(&mut self, input: &[f32], samples: usize, size: [usize; 3], output: &mut [f32]) {
        match self {
            Engine::Blocks(blocks) => {
                let (net, ws) = &mut **blocks;
                net.forward(ws, input, samples, size, output)
            }
            Engine::Lanes(lanes) => {
                let (net, ws) = &mut **lanes;
                net.forward(ws, input, samples, size, output)
            }
        }
        .unwrap();
    }

    fn bytes(&self) -> usize {
        match self {
            Engine::Blocks(blocks) => blocks.1.bytes(),
            Engine::Lanes(lanes) => lanes.1.bytes(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    name: &str,
    lanes: bool,
    shapes: &[(usize, usize, [usize; 3])],
    pools: &[[usize; 3]],
    samples: usize,
    size: [usize; 3],
    reps: usize,
    threads: usize,
    peak: f64,
    unit: (&str, f64),
) {
    let mut engine = Engine::new(lanes, &weights(shapes), pools, threads);
    let voxels: usize = size.iter().product();
    let input: Vec<f32> = (0..samples * shapes[0].0 * voxels)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.1)
        .collect();
    let mut output = vec![0f32; samples * voxels];
    engine.forward(&input, samples, size, &mut output);
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for _ in 0..reps {
        engine.forward(&input, samples, size, &mut output);
    }
    let items = (reps * samples) as f64;
    let wall = wall0.elapsed().as_secs_f64() / items;
    let cpu = (cpu_seconds() - cpu0) / items;
    let gflops = flops(shapes, pools, size) / 1e9 / wall;
    println!(
        "{name:<26} {threads} thread(s): {:.4} CPU-{} and {:.4} wall-{} per {}, {gflops:.1} GFLOP/s ({:.0}% of one thread's peak), workspace {:.0} MiB",
        cpu * unit.1,
        unit.0,
        wall * unit.1,
        unit.0,
        if samples == 1 { "item" } else { "sample" },
        100.0 * gflops / peak,
        engine.bytes() as f64 / 1048576.0
    );
}

/// One planar 3×3 convolution `cin → cout` on `size²`, direct and Winograd: CPU-ms per call
/// and direct-equivalent GFLOP/s on one thread.
fn conv_pair(cin: usize, cout: usize, size: usize) {
    let isa = Isa::detected();
    let (before, after) = halo_for(&[[1, 3, 3]]);
    let geometry = Geometry {
        size: [1, size, size],
        before,
        after,
        capacity: 1,
    };
    let in_blocks = cin.div_ceil(16);
    let input: Vec<f32> = (0..in_blocks * geometry.block_len())
        .map(|i| ((i % 13) as f32 - 6.0) * 0.1)
        .collect();
    let mut output = vec![0f32; cout.div_ceil(16) * geometry.block_len()];
    let weight: Vec<f32> = (0..cout * cin * 9)
        .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
        .collect();
    let bias = vec![0.01; cout];
    let slots: Vec<usize> = (0..cin).collect();
    let flops = 2.0 * (size * size * cin * cout * 9) as f64;
    let reps = ((2e10 / flops) as usize).clamp(8, 4000);
    let mut line = format!("conv {cin:>4}→{cout:<4} {size:>3}²:");
    for method in [Method::Direct, Method::Winograd] {
        let conv = PackedConv::with_method(
            method,
            isa,
            &weight,
            &bias,
            cout,
            &slots,
            in_blocks,
            [1, 3, 3],
            true,
        );
        conv.run(&geometry, 1, &input, &mut output, 1);
        // One thread: wall time is its CPU time, at a finer grain than the tick counter.
        let started = Instant::now();
        for _ in 0..reps {
            conv.run(&geometry, 1, &input, &mut output, 1);
        }
        let seconds = started.elapsed().as_secs_f64() / reps as f64;
        line += &format!(
            "  {method:?} {:8.3} ms {:6.1} GFLOP/s",
            seconds * 1e3,
            flops / seconds / 1e9
        );
    }
    println!("{line}");
}

fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "all".into());
    let isa = Isa::detected();
    let peak = fma_peak(isa);
    println!(
        "kernels: {}; this CPU's fp32 FMA peak on one thread: {peak:.1} GFLOP/s",
        isa.name()
    );
    let all = which == "all";
    if let Some(spec) = which.strip_prefix("conv:") {
        // One layer, for profiling it: `conv:CIN,COUT,SIZE`.
        let sides: Vec<usize> = spec
            .split(',')
            .map(|v| v.parse().expect("conv:CIN,COUT,SIZE"))
            .collect();
        let [cin, cout, size] = sides[..] else {
            panic!("conv:CIN,COUT,SIZE");
        };
        conv_pair(cin, cout, size);
    }
    if which == "conv" {
        // The paper network's layers, then the crossover grid.
        for (cin, cout, size) in [
            (60, 64, 512),
            (128, 64, 512),
            (64, 128, 256),
            (384, 128, 256),
            (128, 256, 128),
            (768, 256, 128),
            (256, 512, 64),
            (1536, 512, 64),
            (512, 1024, 32),
        ] {
            conv_pair(cin, cout, size);
        }
        // The default network's (unet-d3-w16) layers at 512².
        for (cin, cout, size) in [
            (60, 16, 512),
            (48, 16, 512),
            (16, 32, 256),
            (96, 32, 256),
            (192, 64, 128),
        ] {
            conv_pair(cin, cout, size);
        }
        for size in [64, 512] {
            for channels in [16, 32, 64, 128] {
                conv_pair(channels, channels, size);
            }
        }
    }
    let k3 = [1, 3, 3];
    if all || which == "paper" {
        let shapes = unet_shapes(
            60,
            &[64, 128, 256, 512],
            1024,
            &[k3, k3, k3, k3, k3, k3, k3, k3, k3, [1, 1, 1]],
        );
        for threads in [1, 2] {
            run(
                "unet_single_1024 512²",
                false,
                &shapes,
                &[[1, 2, 2]; 4],
                1,
                [1, 512, 512],
                2,
                threads,
                peak,
                ("s", 1.0),
            );
        }
    }
    if all || which == "small" {
        let shapes = unet_shapes(
            60,
            &[16, 32, 64],
            128,
            &[k3, k3, k3, k3, k3, k3, k3, [1, 1, 1]],
        );
        for threads in [1, 2] {
            run(
                "unet-d3-w16 512²",
                false,
                &shapes,
                &[[1, 2, 2]; 3],
                1,
                [1, 512, 512],
                4,
                threads,
                peak,
                ("s", 1.0),
            );
        }
    }
    if all || which == "ephys" {
        let (k22, k31) = ([1, 2, 2], [1, 3, 1]);
        let kernels = [k22, k31, k31, k31, k31, k31, k31, k31, k22, [1, 1, 1]];
        let shapes = unet_shapes(60, &[64, 128, 256, 512], 1024, &kernels);
        let pools = [[1, 2, 2], [1, 2, 1], [1, 2, 1], [1, 2, 1]];
        for (threads, lanes) in [(1, false), (2, false), (1, true), (2, true)] {
            run(
                if lanes {
                    "unet_single_ephys_1024, lanes"
                } else {
                    "unet_single_ephys_1024"
                },
                lanes,
                &shapes,
                &pools,
                100,
                [1, 384, 2],
                3,
                threads,
                peak,
                ("ms", 1e3),
            );
        }
    }
    if all || which.starts_with("fmri") {
        let k = [3, 3, 3];
        let shapes = unet_shapes(5, &[8, 16], 32, &[k, k, k, k, k, [1, 1, 1]]);
        // `fmri-lanes` runs the LaneUNet lines alone.
        for threads in [1, 2].into_iter().filter(|_| which != "fmri-lanes") {
            run(
                "fmri 7³ blocks",
                false,
                &shapes,
                &[[2, 2, 2]; 2],
                1000,
                [7, 7, 7],
                5,
                threads,
                peak,
                ("ms", 1e3),
            );
        }
        // The same network with samples in the lanes (LaneUNet), the engine meant for it.
        for threads in [1, 2] {
            run(
                "fmri 7³ blocks, lanes",
                true,
                &shapes,
                &[[2, 2, 2]; 2],
                1000,
                [7, 7, 7],
                20,
                threads,
                peak,
                ("ms", 1e3),
            );
        }
    }
}
