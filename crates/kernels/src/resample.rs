//! Moving activations between layouts and levels: packing a batch into channel blocks,
//! max-pooling (floor), nearest upsampling (zero where the skip is larger, as Keras pads it),
//! and reading the one-channel output back.

use crate::LANES;
use crate::dispatch::Isa;
use crate::layout::Geometry;

/// Writes `input` (`[samples][channels][depth][height][width]`, the interior of `geometry`)
/// into channel blocks: channel `c` goes to block `c / LANES`, lane `c % LANES`.
pub fn pack_input(
    isa: Isa,
    geometry: &Geometry,
    samples: usize,
    channels: usize,
    input: &[f32],
    blocks: &mut [f32],
) {
    let plane: usize = geometry.size.iter().product();
    let planes: Vec<&[f32]> = input
        .chunks_exact(plane.max(1))
        .take(samples * channels)
        .collect();
    pack_planes(isa, geometry, samples, channels, &planes, blocks);
}

/// As [`pack_input`], each sample's channels given as separate planes
/// (`planes[n * channels + c]`, `[depth][height][width]` each): a sliding window of frames
/// is packed without first being copied into one batch.
///
/// Row by row, every block of a row before the next row: the rows written (one per block,
/// `width × LANES` floats) stay in cache while their lanes are filled. On AVX-512 sixteen
/// channels × sixteen positions are transposed in registers, one store per position.
pub fn pack_planes(
    isa: Isa,
    geometry: &Geometry,
    samples: usize,
    channels: usize,
    planes: &[&[f32]],
    blocks: &mut [f32],
) {
    let [d, h, w] = geometry.size;
    let plane = d * h * w;
    assert!(
        planes.len() >= samples * channels && planes.iter().all(|p| p.len() >= plane),
        "planes too short"
    );
    let block_len = geometry.block_len();
    for n in 0..samples {
        let sample = &planes[n * channels..][..channels];
        for z in 0..d {
            for y in 0..h {
                let at = geometry.position(n, [z, y, 0]) * LANES;
                pack_row(isa, sample, (z * h + y) * w, w, blocks, block_len, at);
            }
        }
    }
}

/// Packs one row of every channel: `w` values of each `planes[c]` from `start`, written at
/// float `at` of each block (blocks `block_len` apart), channel `c` to block `c / LANES`,
/// lane `c % LANES`.
pub(crate) fn pack_row(
    isa: Isa,
    planes: &[&[f32]],
    start: usize,
    w: usize,
    blocks: &mut [f32],
    block_len: usize,
    at: usize,
) {
    for (block, group) in planes.chunks(LANES).enumerate() {
        let target = &mut blocks[block * block_len + at..][..w * LANES];
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            // SAFETY: AVX-512 is supported (the ISA was chosen from this CPU); rows of `w`
            // values from `start`, `target` holds `w` positions.
            done = unsafe { x86::pack_row_avx512(group, start, w, target) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
        for (c, source) in group.iter().enumerate() {
            let source = &source[start + done..start + w];
            let positions = target[done * LANES..].chunks_exact_mut(LANES);
            for (values, &value) in positions.zip(source) {
                values[c] = value;
            }
        }
        // Lanes past the last channel read as zero (the block may hold stale values).
        for values in target[done * LANES..].chunks_exact_mut(LANES) {
            values[group.len()..].fill(0.0);
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

/// The network's last convolution (1×1, one output channel) fused with reading the output
/// back: `output[voxel] = bias + Σ_c features[c][voxel] · weight[c]` over `in_blocks` blocks
/// (`weight` padded to whole blocks with zeros), summed in channel order with the same
/// operations as the direct kernel of `isa`, so the same bits as running that convolution.
#[allow(clippy::too_many_arguments)]
pub(crate) fn project_output(
    isa: Isa,
    geometry: &Geometry,
    samples: usize,
    in_blocks: usize,
    features: &[f32],
    weight: &[f32],
    bias: f32,
    output: &mut [f32],
) {
    let [d, h, w] = geometry.size;
    let block_len = geometry.block_len();
    assert!(weight.len() == in_blocks * LANES && features.len() >= in_blocks * block_len);
    assert!(output.len() >= samples * d * h * w, "output too short");
    let mut voxel = 0;
    for n in 0..samples {
        for z in 0..d {
            for y in 0..h {
                let row = geometry.position(n, [z, y, 0]);
                let out = &mut output[voxel..voxel + w];
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if isa == Isa::Avx512 {
                    // SAFETY: AVX-512 is supported (the ISA was chosen from this CPU); the
                    // row's `w` positions are inside every block.
                    done = unsafe {
                        x86::project_row_avx512(
                            features, block_len, in_blocks, row, weight, bias, out,
                        )
                    };
                }
                for (x, value) in out.iter_mut().enumerate().skip(done) {
                    let mut acc = bias;
                    for block in 0..in_blocks {
                        let at = block * block_len + (row + x) * LANES;
                        let lanes = &features[at..at + LANES];
                        for (&feature, &weight) in lanes.iter().zip(&weight[block * LANES..]) {
                            acc = match isa {
                                Isa::Portable => acc + feature * weight,
                                _ => feature.mul_add(weight, acc),
                            };
                        }
                    }
                    *value = acc;
                }
                voxel += w;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::LANES;
    use std::arch::x86_64::*;

    /// Packs the leading multiple of 16 positions of one row of up to 16 channels (`rows[c]`
    /// from `start`) into `target` (one block, `LANES` floats per position), channels past
    /// `rows.len()` written as zero; returns the positions done.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_row_avx512(
        rows: &[&[f32]],
        start: usize,
        width: usize,
        target: &mut [f32],
    ) -> usize {
        let full = width / LANES * LANES;
        assert!(rows.len() <= LANES && target.len() >= full * LANES);
        let mut x = 0;
        while x < full {
            // SAFETY: each row holds `start + width` values; `target` `full` positions.
            unsafe {
                let r: [__m512; LANES] = std::array::from_fn(|c| match rows.get(c) {
                    Some(row) => _mm512_loadu_ps(row[start + x..start + x + LANES].as_ptr()),
                    None => _mm512_setzero_ps(),
                });
                let columns = transpose(r);
                for (j, column) in columns.iter().enumerate() {
                    _mm512_storeu_ps(target.as_mut_ptr().add((x + j) * LANES), *column);
                }
            }
            x += LANES;
        }
        full
    }

    /// [`super::project_output`] on the leading multiple of 16 positions of one row (from
    /// position `row`): sixteen positions' channel vectors transposed, then one multiply-add
    /// per channel; returns the positions done.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `row + w` positions lie inside every block.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn project_row_avx512(
        features: &[f32],
        block_len: usize,
        in_blocks: usize,
        row: usize,
        weight: &[f32],
        bias: f32,
        out: &mut [f32],
    ) -> usize {
        let full = out.len() / LANES * LANES;
        let mut x = 0;
        while x < full {
            let mut acc = _mm512_set1_ps(bias);
            for block in 0..in_blocks {
                let start = block * block_len + (row + x) * LANES;
                let positions = &features[start..start + LANES * LANES];
                // SAFETY: `positions` holds 16 vectors.
                let r: [__m512; LANES] = std::array::from_fn(|j| unsafe {
                    _mm512_loadu_ps(positions[j * LANES..].as_ptr())
                });
                let channels = transpose(r);
                for (c, &values) in channels.iter().enumerate() {
                    let w = _mm512_set1_ps(weight[block * LANES + c]);
                    acc = _mm512_fmadd_ps(values, w, acc);
                }
            }
            // SAFETY: `out` holds `full` values.
            unsafe { _mm512_storeu_ps(out[x..x + LANES].as_mut_ptr(), acc) };
            x += LANES;
        }
        full
    }

    /// The 16×16 transpose: `out[j]` lane `i` = `r[i]` lane `j`. Pairs of rows interleave
    /// by floats, then by pairs of floats, leaving each 128-bit quarter of `u[4g + m]` with
    /// rows `4g..4g+4` of column `4 × quarter + m`; two rounds of quarter shuffles finish.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose(r: [__m512; LANES]) -> [__m512; LANES] {
        let t: [__m512; LANES] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        let u: [__m512; LANES] = std::array::from_fn(|i| {
            let (g, m) = (i / 4, i % 4);
            let a = _mm512_castps_pd(t[4 * g + m / 2]);
            let b = _mm512_castps_pd(t[4 * g + 2 + m / 2]);
            _mm512_castpd_ps(if m % 2 == 0 {
                _mm512_unpacklo_pd(a, b)
            } else {
                _mm512_unpackhi_pd(a, b)
            })
        });
        let mut out = [_mm512_setzero_ps(); LANES];
        for m in 0..4 {
            let (a, b, c, d) = (u[m], u[4 + m], u[8 + m], u[12 + m]);
            let low_ab = _mm512_shuffle_f32x4::<0x44>(a, b);
            let high_ab = _mm512_shuffle_f32x4::<0xEE>(a, b);
            let low_cd = _mm512_shuffle_f32x4::<0x44>(c, d);
            let high_cd = _mm512_shuffle_f32x4::<0xEE>(c, d);
            out[m] = _mm512_shuffle_f32x4::<0x88>(low_ab, low_cd);
            out[4 + m] = _mm512_shuffle_f32x4::<0xDD>(low_ab, low_cd);
            out[8 + m] = _mm512_shuffle_f32x4::<0x88>(high_ab, high_cd);
            out[12 + m] = _mm512_shuffle_f32x4::<0xDD>(high_ab, high_cd);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set packs the same blocks: widths with and without a tail, a
    /// partial channel block, several samples.
    #[test]
    fn packing_is_the_same_on_every_instruction_set() {
        for (channels, width) in [(60, 37), (16, 32), (5, 16), (33, 7)] {
            let geometry = Geometry {
                size: [1, 3, width],
                before: [0, 1, 1],
                after: [0, 1, 1],
                capacity: 2,
            };
            let plane = 3 * width;
            let input: Vec<f32> = (0..2 * channels * plane).map(|i| i as f32).collect();
            let blocks = |isa: Isa| {
                let mut out = vec![-1f32; channels.div_ceil(LANES) * geometry.block_len()];
                pack_input(isa, &geometry, 2, channels, &input, &mut out);
                out
            };
            let reference = blocks(Isa::Portable);
            for n in 0..2 {
                for c in 0..channels {
                    for y in 0..3 {
                        for x in 0..width {
                            let at = (c / LANES) * geometry.block_len()
                                + geometry.position(n, [0, y, x]) * LANES
                                + c % LANES;
                            assert_eq!(
                                reference[at],
                                input[((n * channels + c) * 3 + y) * width + x]
                            );
                        }
                    }
                }
            }
            for isa in Isa::supported() {
                let got = blocks(isa);
                // Lanes past the channels: left as they were (portable) or zeroed.
                let same = got
                    .iter()
                    .zip(&reference)
                    .all(|(a, b)| a == b || *b == -1.0);
                assert!(
                    same,
                    "{} packs differently ({channels} channels, width {width})",
                    isa.name()
                );
            }
        }
    }
}
