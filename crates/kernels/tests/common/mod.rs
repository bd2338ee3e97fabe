//! A plain, obviously-correct U-Net written with nested loops in f64, and random networks:
//! the reference every engine's tests (forward and backward) compare against.

#![allow(dead_code)] // each test binary uses a part

use deepinterp_kernels::ConvWeights;
use rand::{Rng, rngs::StdRng};

/// `[channels][d][h][w]` of one sample, in f64.
pub struct Map {
    pub channels: usize,
    pub size: [usize; 3],
    pub values: Vec<f64>,
}

impl Map {
    fn at(&self, c: usize, z: usize, y: usize, x: usize) -> f64 {
        let [d, h, w] = self.size;
        self.values[((c * d + z) * h + y) * w + x]
    }
}

/// A convolution's weights in f64 (central differences perturb them).
#[derive(Clone)]
pub struct Conv64 {
    pub out_channels: usize,
    pub in_channels: usize,
    pub kernel: [usize; 3],
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
}

fn conv(input: &Map, weights: &Conv64, relu: bool) -> Map {
    let [d, h, w] = input.size;
    let k = weights.kernel;
    let before = k.map(|side| (side - 1) / 2);
    let mut values = vec![0f64; weights.out_channels * d * h * w];
    for o in 0..weights.out_channels {
        for z in 0..d {
            for y in 0..h {
                for x in 0..w {
                    let mut sum = weights.bias[o];
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
                                    sum +=
                                        weight * input.at(i, sz as usize, sy as usize, sx as usize);
                                }
                            }
                        }
                    }
                    values[((o * d + z) * h + y) * w + x] = if relu { sum.max(0.0) } else { sum };
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
                    let mut best = f64::NEG_INFINITY;
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

pub fn reference(convs: &[Conv64], pools: &[[usize; 3]], input: Map) -> Vec<f64> {
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

/// The reference's form of `convs`.
pub fn to64(convs: &[ConvWeights]) -> Vec<Conv64> {
    convs
        .iter()
        .map(|c| Conv64 {
            out_channels: c.out_channels,
            in_channels: c.in_channels,
            kernel: c.kernel,
            weight: c.weight.iter().map(|&v| v as f64).collect(),
            bias: c.bias.iter().map(|&v| v as f64).collect(),
        })
        .collect()
}

/// Random weights with every bias in [-0.1, 0.2) and a He-uniform gain: most ReLUs active,
/// for gradients worth checking.
pub fn loss_network(
    rng: &mut StdRng,
    in_channels: usize,
    widths: &[usize],
    bottleneck: usize,
    kernels: &[[usize; 3]],
) -> Vec<ConvWeights> {
    random_unet(
        rng,
        (in_channels, widths, bottleneck),
        kernels,
        6.0,
        -0.1..0.2,
    )
}

/// Random weights for a U-Net of these widths and kernels.
pub fn network(
    rng: &mut StdRng,
    in_channels: usize,
    widths: &[usize],
    bottleneck: usize,
    kernels: &[[usize; 3]],
) -> Vec<ConvWeights> {
    random_unet(
        rng,
        (in_channels, widths, bottleneck),
        kernels,
        3.0,
        -0.1..0.1,
    )
}

/// Weights uniform in ±√(`gain` / fan-in), biases uniform in `bias`.
fn random_unet(
    rng: &mut StdRng,
    (in_channels, widths, bottleneck): (usize, &[usize], usize),
    kernels: &[[usize; 3]],
    gain: f32,
    bias: std::ops::Range<f32>,
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
            let bound = (gain / (cin * taps) as f32).sqrt();
            ConvWeights {
                out_channels: cout,
                in_channels: cin,
                kernel,
                weight: (0..cout * cin * taps)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect(),
                bias: (0..cout).map(|_| rng.random_range(bias.clone())).collect(),
            }
        })
        .collect()
}

/// `samples` random inputs for `convs` and the reference's outputs for each, concatenated.
pub fn inputs_and_expected(
    convs: &[ConvWeights],
    pools: &[[usize; 3]],
    samples: usize,
    size: [usize; 3],
    rng: &mut StdRng,
) -> (Vec<f32>, Vec<f32>) {
    let in_channels = convs[0].in_channels;
    let voxels: usize = size.iter().product();
    let input: Vec<f32> = (0..samples * in_channels * voxels)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut expected = Vec::new();
    let convs = to64(convs);
    for sample in input.chunks(in_channels * voxels) {
        let output = reference(
            &convs,
            pools,
            Map {
                channels: in_channels,
                size,
                values: sample.iter().map(|&v| v as f64).collect(),
            },
        );
        expected.extend(output.into_iter().map(|v| v as f32));
    }
    (input, expected)
}

/// The largest absolute difference.
pub fn max_error(output: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(output.len(), expected.len());
    output
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}
