//! Moving activations between layouts and levels: packing a batch into channel blocks,
//! max-pooling (floor), nearest upsampling (zero where the skip is larger, as Keras pads it),
//! and reading the one-channel output back.

use crate::LANES;
use crate::layout::Geometry;

/// Writes `input` (`[samples][channels][depth][height][width]`, the interior of `geometry`)
/// into channel blocks: channel `c` goes to block `c / LANES`, lane `c % LANES`.
pub fn pack_input(
    geometry: &Geometry,
    samples: usize,
    channels: usize,
    input: &[f32],
    blocks: &mut [f32],
) {
    let [d, h, w] = geometry.size;
    let plane = d * h * w;
    let block_len = geometry.block_len();
    for n in 0..samples {
        for c in 0..channels {
            let source = &input[(n * channels + c) * plane..][..plane];
            let block = &mut blocks[(c / LANES) * block_len..][..block_len];
            let lane = c % LANES;
            let mut rows = source.chunks_exact(w);
            for z in 0..d {
                for y in 0..h {
                    let row = rows.next().expect("plane has d × h rows");
                    let start = geometry.position(n, [z, y, 0]) * LANES + lane;
                    for (x, &value) in row.iter().enumerate() {
                        block[start + x * LANES] = value;
                    }
                }
            }
        }
    }
}

/// Max-pools `blocks` channel blocks from `source` (laid out by `from`) into `target` (laid
/// out by `to`, whose interior is `from`'s divided by `pool`, floored).
pub fn max_pool(
    from: &Geometry,
    to: &Geometry,
    samples: usize,
    blocks: usize,
    pool: [usize; 3],
    source: &[f32],
    target: &mut [f32],
) {
    let [d, h, w] = to.size;
    let (from_len, to_len) = (from.block_len(), to.block_len());
    for block in 0..blocks {
        let source = &source[block * from_len..][..from_len];
        let target = &mut target[block * to_len..][..to_len];
        for n in 0..samples {
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let mut best = [f32::NEG_INFINITY; LANES];
                        for dz in 0..pool[0] {
                            for dy in 0..pool[1] {
                                let row = from
                                    .position(n, [z * pool[0] + dz, y * pool[1] + dy, x * pool[2]]);
                                for dx in 0..pool[2] {
                                    let values = &source[(row + dx) * LANES..][..LANES];
                                    for (b, &v) in best.iter_mut().zip(values) {
                                        *b = b.max(v);
                                    }
                                }
                            }
                        }
                        let at = to.position(n, [z, y, x]) * LANES;
                        target[at..at + LANES].copy_from_slice(&best);
                    }
                }
            }
        }
    }
}

/// Nearest upsampling of `blocks` channel blocks by `factor` from `source` (laid out by
/// `from`) into `target` (laid out by `to`); positions of `to` past `from`'s interior ×
/// `factor` are zero (Keras pads the upsampled map to the skip's size with zeros).
pub fn upsample(
    from: &Geometry,
    to: &Geometry,
    samples: usize,
    blocks: usize,
    factor: [usize; 3],
    source: &[f32],
    target: &mut [f32],
) {
    let [d, h, w] = to.size;
    let (from_len, to_len) = (from.block_len(), to.block_len());
    for block in 0..blocks {
        let source = &source[block * from_len..][..from_len];
        let target = &mut target[block * to_len..][..to_len];
        for n in 0..samples {
            for z in 0..d {
                for y in 0..h {
                    let (sz, sy) = (z / factor[0], y / factor[1]);
                    let row = to.position(n, [z, y, 0]) * LANES;
                    for x in 0..w {
                        let sx = x / factor[2];
                        let at = row + x * LANES;
                        if sz < from.size[0] && sy < from.size[1] && sx < from.size[2] {
                            let src = from.position(n, [sz, sy, sx]) * LANES;
                            target[at..at + LANES].copy_from_slice(&source[src..src + LANES]);
                        } else {
                            target[at..at + LANES].fill(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// Lane 0 of the first block's interior, as `[samples][depth][height][width]`.
pub fn read_output(geometry: &Geometry, samples: usize, block: &[f32], output: &mut [f32]) {
    let [d, h, w] = geometry.size;
    let mut values = output.iter_mut();
    for n in 0..samples {
        for z in 0..d {
            for y in 0..h {
                let row = geometry.position(n, [z, y, 0]) * LANES;
                for x in 0..w {
                    *values.next().expect("output holds every interior voxel") =
                        block[row + x * LANES];
                }
            }
        }
    }
}
