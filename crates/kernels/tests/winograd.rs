//! Winograd F(4×4, 3×3) against the direct convolution and a plain f64 loop on random data:
//! sizes that are and are not multiples of the tile, partial channel blocks, the decoder's
//! slotted input, several samples, one and two threads, ReLU on and off, every instruction
//! set; then the whole paper network, Winograd against direct.

mod common;

use deepinterp_kernels::raw::{Geometry, Isa, Method, PackedConv, halo_for};
use deepinterp_kernels::{ConvWeights, UNet, Workspace};
use rand::{Rng, SeedableRng, rngs::StdRng};

const LANES: usize = 16;

struct Case {
    in_channels: usize,
    /// Slot of each input channel in the input blocks.
    slots: Vec<usize>,
    in_blocks: usize,
    out_channels: usize,
    size: [usize; 2],
    samples: usize,
    relu: bool,
}

fn contiguous(in_channels: usize, out_channels: usize, size: [usize; 2], samples: usize) -> Case {
    Case {
        in_channels,
        slots: (0..in_channels).collect(),
        in_blocks: in_channels.div_ceil(LANES),
        out_channels,
        size,
        samples,
        relu: true,
    }
}

/// `[up, skip]` as the decoder reads them: each part starts at a block boundary.
fn slotted(up: usize, skip: usize, out_channels: usize, size: [usize; 2], samples: usize) -> Case {
    let up_slots = up.div_ceil(LANES) * LANES;
    Case {
        in_channels: up + skip,
        slots: (0..up + skip)
            .map(|c| if c < up { c } else { up_slots + c - up })
            .collect(),
        in_blocks: up.div_ceil(LANES) + skip.div_ceil(LANES),
        out_channels,
        size,
        samples,
        relu: false,
    }
}

/// Runs `case` with every method, instruction set and thread count against an f64 loop.
fn check(case: &Case, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let [h, w] = case.size;
    let (before, after) = halo_for(&[[1, 3, 3]]);
    let geometry = Geometry {
        size: [1, h, w],
        before,
        after,
        capacity: case.samples,
    };
    let bound = (3.0 / (case.in_channels * 9) as f32).sqrt();
    let weight: Vec<f32> = (0..case.out_channels * case.in_channels * 9)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    let bias: Vec<f32> = (0..case.out_channels)
        .map(|_| rng.random_range(-0.1..0.1))
        .collect();
    let values: Vec<f32> = (0..case.samples * case.in_channels * h * w)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let value = |n: usize, c: usize, y: isize, x: isize| -> f64 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0.0
        } else {
            values[((n * case.in_channels + c) * h + y as usize) * w + x as usize] as f64
        }
    };
    // Blocks: the interior from `values`, unused slots holding noise (their weights are
    // zero), the halo zero.
    let block_len = geometry.block_len();
    let mut input = vec![0f32; case.in_blocks * block_len];
    for n in 0..case.samples {
        for y in 0..h {
            for x in 0..w {
                let position = geometry.position(n, [0, y, x]);
                for slot in 0..case.in_blocks * LANES {
                    let at = (slot / LANES) * block_len + position * LANES + slot % LANES;
                    input[at] = match case.slots.iter().position(|&s| s == slot) {
                        Some(c) => value(n, c, y as isize, x as isize) as f32,
                        None => rng.random_range(-1.0..1.0),
                    };
                }
            }
        }
    }
    let mut expected = vec![0f32; case.samples * case.out_channels * h * w];
    for n in 0..case.samples {
        for o in 0..case.out_channels {
            for y in 0..h {
                for x in 0..w {
                    let mut sum = bias[o] as f64;
                    for c in 0..case.in_channels {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                sum += weight[((o * case.in_channels + c) * 3 + ky) * 3 + kx]
                                    as f64
                                    * value(
                                        n,
                                        c,
                                        y as isize + ky as isize - 1,
                                        x as isize + kx as isize - 1,
                                    );
                            }
                        }
                    }
                    let sum = sum as f32;
                    expected[((n * case.out_channels + o) * h + y) * w + x] =
                        if case.relu { sum.max(0.0) } else { sum };
                }
            }
        }
    }
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    let out_blocks = case.out_channels.div_ceil(LANES);
    let range = geometry.computed(case.samples);
    let interior = |n: usize, y: usize, x: usize| geometry.position(n, [0, y, x]);
    for isa in Isa::supported() {
        let mut results = Vec::new();
        for method in [Method::Direct, Method::Winograd] {
            let conv = PackedConv::with_method(
                method,
                isa,
                &weight,
                &bias,
                case.out_channels,
                &case.slots,
                case.in_blocks,
                [1, 3, 3],
                case.relu,
            );
            assert_eq!(conv.is_winograd(), method == Method::Winograd);
            for threads in [1, 2] {
                let mut output = vec![f32::NAN; out_blocks * block_len];
                conv.run(&geometry, case.samples, &input, &mut output, threads);
                let mut worst = 0f32;
                for n in 0..case.samples {
                    for o in 0..case.out_channels {
                        for y in 0..h {
                            for x in 0..w {
                                let got = output[(o / LANES) * block_len
                                    + interior(n, y, x) * LANES
                                    + o % LANES];
                                let want = expected[((n * case.out_channels + o) * h + y) * w + x];
                                worst = worst.max((got - want).abs());
                            }
                        }
                    }
                }
                let name = format!(
                    "{}→{} {h}×{w}×{} relu {} {} {method:?} threads {threads}",
                    case.in_channels,
                    case.out_channels,
                    case.samples,
                    case.relu,
                    isa.name()
                );
                assert!(
                    worst <= 1e-5 * scale,
                    "{name}: max error {worst} (scale {scale})"
                );
                // The halo between interior positions is zero again.
                for (start, end) in geometry_halo(&geometry, case.samples, range.clone()) {
                    for block in 0..out_blocks {
                        let halo =
                            &output[block * block_len + start * LANES..][..(end - start) * LANES];
                        assert!(halo.iter().all(|&v| v == 0.0), "{name}: halo not zero");
                    }
                }
                results.push((method, threads, output));
            }
        }
        // Winograd does not depend on the thread count.
        let winograd: Vec<_> = results
            .iter()
            .filter(|(m, _, _)| *m == Method::Winograd)
            .collect();
        let same = winograd[0]
            .2
            .iter()
            .zip(&winograd[1].2)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
        assert!(
            same,
            "{}: Winograd differs between 1 and 2 threads",
            isa.name()
        );
    }
}

/// Halo positions inside `range`: those not in any sample's interior rows.
fn geometry_halo(
    geometry: &Geometry,
    samples: usize,
    range: std::ops::Range<usize>,
) -> Vec<(usize, usize)> {
    geometry.halo_runs(samples, range)
}

#[test]
fn one_tile_and_partial_tiles() {
    check(&contiguous(16, 16, [4, 4], 2), 1);
    check(&contiguous(20, 40, [5, 7], 3), 2);
    check(&contiguous(3, 5, [1, 1], 2), 3);
    check(&contiguous(20, 40, [2, 9], 1), 4);
}

#[test]
fn partial_blocks_and_relu_off() {
    let mut case = contiguous(20, 40, [13, 20], 2);
    check(&case, 5);
    case.relu = false;
    check(&case, 6);
}

#[test]
fn decoder_slotted_input() {
    check(&slotted(20, 12, 24, [13, 20], 2), 7);
    check(&slotted(40, 20, 20, [5, 7], 3), 8);
}

#[test]
fn wide_layer_at_64x64() {
    check(&contiguous(64, 48, [64, 64], 1), 9);
    check(&slotted(32, 32, 32, [64, 64], 2), 10);
}

#[test]
fn many_groups_and_an_odd_block_count() {
    // Enough tiles for several groups per thread; three output blocks (a one-block group).
    check(&contiguous(32, 48, [40, 44], 2), 11);
}

/// The paper network (widths 64…1024, 60 input channels) on a 64×64 input: Winograd wherever
/// it is chosen against direct everywhere, relative to max |output|.
#[test]
fn paper_network_winograd_against_direct() {
    let mut rng = StdRng::seed_from_u64(21);
    let k3 = [1, 3, 3];
    let widths = [64, 128, 256, 512];
    let mut shapes = Vec::new();
    let mut channels = 60;
    for &w in &widths {
        shapes.push((channels, w, k3));
        channels = w;
    }
    shapes.push((channels, 1024, k3));
    channels = 1024;
    for &w in widths.iter().rev() {
        shapes.push((channels + w, w, k3));
        channels = w;
    }
    shapes.push((channels, 1, [1, 1, 1]));
    let convs: Vec<ConvWeights> = shapes
        .iter()
        .map(|&(cin, cout, kernel)| {
            let taps: usize = kernel.iter().product();
            // He (normal-variance) scale as a uniform bound.
            let bound = (6.0 / (cin * taps) as f32).sqrt();
            ConvWeights {
                out_channels: cout,
                in_channels: cin,
                kernel,
                weight: (0..cout * cin * taps)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect(),
                bias: (0..cout).map(|_| rng.random_range(-0.1..0.1)).collect(),
            }
        })
        .collect();
    let size = [1, 64, 64];
    let input: Vec<f32> = (0..60 * 64 * 64)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let isa = Isa::supported()[0];
    let run = |method: Method| {
        let net = UNet::with_method(isa, method, &convs, &[[1, 2, 2]; 4]).unwrap();
        let mut output = vec![0f32; 64 * 64];
        net.forward(&mut Workspace::new(), &input, 1, size, &mut output)
            .unwrap();
        output
    };
    let direct = run(Method::Direct);
    let winograd = run(Method::Winograd);
    let scale = direct.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = direct
        .iter()
        .zip(&winograd)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "paper network 64×64 ({}): max |winograd − direct| / max |out| = {:.2e}",
        isa.name(),
        worst / scale
    );
    assert!(worst <= 3e-5 * scale, "relative error {}", worst / scale);
}

/// Inference on a Winograd first layer packs the input planes a band of rows at a time
/// instead of packing the whole input: the same values as the training layout's forward pass
/// (which packs it whole), bit for bit, and no input blocks held. Several samples, heights
/// that are and are not multiples of the tile, bands spanning tile rows, one and two threads.
#[test]
fn banded_first_layer_matches_the_packed_input() {
    let mut rng = StdRng::seed_from_u64(12);
    let k = [1, 3, 3];
    let convs = common::network(&mut rng, 20, &[16, 32], 32, &[k, k, k, k, k, [1, 1, 1]]);
    let pools = [[1, 2, 2], [1, 2, 2]];
    for isa in Isa::supported() {
        // Narrow planes (groups of whole tile rows) and a wide one (several groups per row).
        for (size, samples) in [
            ([1, 8, 8], 1),
            ([1, 42, 40], 3),
            ([1, 64, 128], 2),
            ([1, 12, 600], 2),
        ] {
            let voxels: usize = size.iter().product();
            let input: Vec<f32> = (0..samples * 20 * voxels)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            for threads in [1, 2] {
                let mut net = UNet::with_method(isa, Method::Winograd, &convs, &pools).unwrap();
                net.set_threads(threads);
                let mut banded = vec![0f32; samples * voxels];
                let mut inference = Workspace::new();
                net.forward(&mut inference, &input, samples, size, &mut banded)
                    .unwrap();
                let mut packed = vec![0f32; samples * voxels];
                let mut training = Workspace::new();
                net.forward_for_training(&mut training, &input, samples, size, &mut packed)
                    .unwrap();
                let name = format!("{} {size:?}×{samples} threads {threads}", isa.name());
                assert_eq!(banded, packed, "{name}");
                assert!(
                    inference.bytes() < training.bytes(),
                    "{name}: the input was packed whole"
                );
            }
        }
    }
}
