//! The kernels against a plain, obviously-correct U-Net written with nested loops (burn is
//! compared in `deepinterp`'s tests): every instruction set this CPU runs, planar and
//! volumetric shapes, channel counts that fill blocks partly, and input chunks.

use deepinterp_kernels::{ConvWeights, Isa, UNet, Workspace};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// `[channels][d][h][w]` of one sample.
struct Map {
    channels: usize,
    size: [usize; 3],
    values: Vec<f32>,
}

impl Map {
    fn at(&self, c: usize, z: usize, y: usize, x: usize) -> f32 {
        let [_, h, w] = self.size;
        self.values[((c * self.size[0] + z) * h + y) * w + x]
    }
}

fn conv(input: &Map, weights: &ConvWeights, relu: bool) -> Map {
    let [d, h, w] = input.size;
    let k = weights.kernel;
    let before = k.map(|side| (side - 1) / 2);
    let mut values = vec![0f32; weights.out_channels * d * h * w];
    for o in 0..weights.out_channels {
        for z in 0..d {
            for y in 0..h {
                for x in 0..w {
                    let mut sum = weights.bias[o] as f64;
                    for i in 0..weights.in_channels {
                        for kz in 0..k[0] {
                            for ky in 0..k[1] {
                                for kx in 0..k[2] {
                                    let (sz, sy, sx) = (
                                        (z + kz) as isize - before[0] as isize,
                                        (y + ky) as isize - before[1] as isize,
                                        (x + kx) as isize - before[2] as isize,
                                    );
                                    if sz < 0
                                        || sy < 0
                                        || sx < 0
                                        || sz >= d as isize
                                        || sy >= h as isize
                                        || sx >= w as isize
                                    {
                                        continue;
                                    }
                                    let weight = weights.weight[(((o * weights.in_channels + i)
                                        * k[0]
                                        + kz)
                                        * k[1]
                                        + ky)
                                        * k[2]
                                        + kx];
                                    sum += weight as f64
                                        * input.at(i, sz as usize, sy as usize, sx as usize) as f64;
                                }
                            }
                        }
                    }
                    let value = sum as f32;
                    values[((o * d + z) * h + y) * w + x] =
                        if relu { value.max(0.0) } else { value };
                }
            }
        }
    }
    Map {
        channels: weights.out_channels,
        size: input.size,
        values,
    }
}

fn pool(input: &Map, p: [usize; 3]) -> Map {
    let size = [0, 1, 2].map(|a| input.size[a] / p[a]);
    let mut values = Vec::new();
    for c in 0..input.channels {
        for z in 0..size[0] {
            for y in 0..size[1] {
                for x in 0..size[2] {
                    let mut best = f32::NEG_INFINITY;
                    for dz in 0..p[0] {
                        for dy in 0..p[1] {
                            for dx in 0..p[2] {
                                best = best.max(input.at(
                                    c,
                                    z * p[0] + dz,
                                    y * p[1] + dy,
                                    x * p[2] + dx,
                                ));
                            }
                        }
                    }
                    values.push(best);
                }
            }
        }
    }
    Map {
        channels: input.channels,
        size,
        values,
    }
}

/// Nearest upsampling to `size` (zeros past the upsampled extent), then `[up, skip]`.
fn up_and_concat(low: &Map, skip: &Map, f: [usize; 3]) -> Map {
    let size = skip.size;
    let mut values = Vec::new();
    for c in 0..low.channels {
        for z in 0..size[0] {
            for y in 0..size[1] {
                for x in 0..size[2] {
                    let (sz, sy, sx) = (z / f[0], y / f[1], x / f[2]);
                    values.push(
                        if sz < low.size[0] && sy < low.size[1] && sx < low.size[2] {
                            low.at(c, sz, sy, sx)
                        } else {
                            0.0
                        },
                    );
                }
            }
        }
    }
    values.extend_from_slice(&skip.values);
    Map {
        channels: low.channels + skip.channels,
        size,
        values,
    }
}

fn reference(convs: &[ConvWeights], pools: &[[usize; 3]], input: Map) -> Vec<f32> {
    let depth = pools.len();
    let mut skips = Vec::new();
    let mut x = input;
    for level in 0..depth {
        let y = conv(&x, &convs[level], true);
        x = pool(&y, pools[level]);
        skips.push(y);
    }
    x = conv(&x, &convs[depth], true);
    for level in (0..depth).rev() {
        let skip = skips.pop().unwrap();
        x = conv(
            &up_and_concat(&x, &skip, pools[level]),
            &convs[2 * depth - level],
            true,
        );
    }
    conv(&x, &convs[2 * depth + 1], false).values
}

/// Random weights for a U-Net of these widths and kernels.
fn network(
    rng: &mut StdRng,
    in_channels: usize,
    widths: &[usize],
    bottleneck: usize,
    kernels: &[[usize; 3]],
) -> Vec<ConvWeights> {
    let depth = widths.len();
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
    assert_eq!(kernels.len(), 2 * depth + 2);
    shapes
        .iter()
        .zip(kernels)
        .map(|(&(cin, cout), &kernel)| {
            let taps: usize = kernel.iter().product();
            let bound = (3.0 / (cin * taps) as f32).sqrt();
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
        .collect()
}

fn check(
    name: &str,
    convs: &[ConvWeights],
    pools: &[[usize; 3]],
    samples: usize,
    size: [usize; 3],
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let in_channels = convs[0].in_channels;
    let voxels: usize = size.iter().product();
    let input: Vec<f32> = (0..samples * in_channels * voxels)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut expected = Vec::new();
    for sample in input.chunks(in_channels * voxels) {
        expected.extend(reference(
            convs,
            pools,
            Map {
                channels: in_channels,
                size,
                values: sample.to_vec(),
            },
        ));
    }
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    for isa in Isa::supported() {
        for threads in [1, 2] {
            let mut net = UNet::with_isa(isa, convs, pools).unwrap();
            net.set_threads(threads);
            let mut workspace = Workspace::new();
            // Twice through one workspace: the second call must not see the first's values.
            for round in 0..2 {
                let mut output = vec![f32::NAN; samples * voxels];
                net.forward(&mut workspace, &input, samples, size, &mut output)
                    .unwrap();
                let worst = output
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 2e-5 * scale,
                    "{name} {} threads {threads} round {round}: max error {worst} (scale {scale})",
                    isa.name()
                );
            }
            // Fewer samples through a workspace sized for more.
            let mut output = vec![0f32; voxels];
            net.forward(
                &mut workspace,
                &input[..in_channels * voxels],
                1,
                size,
                &mut output,
            )
            .unwrap();
            let worst = output
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 2e-5 * scale, "{name} {}: one sample", isa.name());
        }
    }
}

#[test]
fn planar_unet_with_partial_blocks_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(1);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 6, &[4, 20], 40, &[k3, k3, k3, k3, k3, [1, 1, 1]]);
    check("planar", &convs, &[[1, 2, 2]; 2], 3, [1, 12, 20], 2);
}

#[test]
fn planar_unet_with_full_and_paired_blocks_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    let k3 = [1, 3, 3];
    let convs = network(
        &mut rng,
        60,
        &[32, 48],
        64,
        &[k3, k3, k3, k3, k3, [1, 1, 1]],
    );
    check("wide", &convs, &[[1, 2, 2]; 2], 2, [1, 8, 12], 4);
}

#[test]
fn input_chunks_accumulate_like_one_pass() {
    // A 3×3 conv on more than 14 input blocks is computed in chunks.
    let mut rng = StdRng::seed_from_u64(5);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 4, &[96], 256, &[k3, k3, k3, [1, 1, 1]]);
    check("chunked", &convs, &[[1, 2, 2]], 1, [1, 6, 6], 6);
}

#[test]
fn probe_unet_matches_the_reference() {
    // The ephys shape: 2×2 kernels at full resolution, a (2,2) pool, then 3×1 with (2,1).
    let mut rng = StdRng::seed_from_u64(7);
    let (k22, k31) = ([1, 2, 2], [1, 3, 1]);
    let convs = network(
        &mut rng,
        8,
        &[16, 24],
        32,
        &[k22, k31, k31, k31, k22, [1, 1, 1]],
    );
    check("probe", &convs, &[[1, 2, 2], [1, 2, 1]], 3, [1, 16, 2], 8);
}

#[test]
fn volumetric_unet_with_floored_pools_matches_the_reference() {
    // The fMRI shape: 7³ blocks pooled 7 → 3 → 1, zero-padded back up on the way out.
    let mut rng = StdRng::seed_from_u64(9);
    let k = [3, 3, 3];
    let convs = network(&mut rng, 5, &[8, 16], 24, &[k, k, k, k, k, [1, 1, 1]]);
    check("volumetric", &convs, &[[2, 2, 2]; 2], 4, [7, 7, 7], 10);
}

#[test]
fn a_network_without_pooling_is_one_conv_and_the_output() {
    let mut rng = StdRng::seed_from_u64(11);
    let convs = network(&mut rng, 3, &[], 5, &[[1, 3, 3], [1, 1, 1]]);
    check("flat", &convs, &[], 2, [1, 5, 7], 12);
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let mut rng = StdRng::seed_from_u64(13);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 4, &[8], 16, &[k3, k3, k3, [1, 1, 1]]);
    assert!(UNet::new(&convs[..3], &[[1, 2, 2]]).is_err());
    let mut bad = convs.clone();
    bad[1].weight.pop();
    assert!(UNet::new(&bad, &[[1, 2, 2]]).is_err());
    let net = UNet::new(&convs, &[[1, 2, 2]]).unwrap();
    let mut workspace = Workspace::new();
    let mut output = vec![0f32; 1];
    // 1×1 cannot be pooled by 2.
    assert!(
        net.forward(&mut workspace, &[0.0; 4], 1, [1, 1, 1], &mut output)
            .is_err()
    );
    assert!(
        net.forward(&mut workspace, &[0.0; 3], 1, [1, 1, 1], &mut output)
            .is_err()
    );
}
