//! Direct convolution on channel-blocked activations (see [`crate::layout`]).
//!
//! Weights are packed once per network into groups of output blocks: `[input block][tap]
//! [input lane][output block of the group][output lane]`, so the kernel reads them in order.
//! A tile computes `MR` consecutive positions × one group's output blocks in registers: per
//! input channel it loads the group's weight vectors once and multiplies them with the `MR`
//! input values, broadcast. Input blocks are taken in chunks small enough for a group's
//! weights to stay in cache; the first chunk starts from the bias, later ones from the partial
//! sums, and the last applies the ReLU.

use crate::LANES;
use crate::dispatch::Isa;
use crate::layout::Geometry;
use crate::winograd::{self, Winograd};

/// Bytes of a group's weights a chunk of input blocks may use (they are reused by every tile).
const CHUNK_WEIGHT_BYTES: usize = 256 * 1024;

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Winograd where [`winograd::suits`] says it wins, direct elsewhere.
    Auto,
    /// Always direct.
    Direct,
    /// Winograd F(4×4, 3×3) if the kernel is planar 3×3 (any instruction set), else direct.
    Winograd,
}

/// A convolution's weights packed for one instruction set.
#[derive(Clone, Debug)]
pub struct PackedConv {
    /// Channel blocks read.
    pub in_blocks: usize,
    /// Channel blocks written.
    pub out_blocks: usize,
    /// Kernel sides `[depth, height, width]`.
    pub kernel: [usize; 3],
    /// Whether a ReLU follows.
    pub relu: bool,
    /// Kernel taps before the output position per axis: Keras `same`'s `(k-1)/2`, or the
    /// rest for the flipped kernel of a backward pass (they differ for even kernels).
    origin: [usize; 3],
    isa: Isa,
    groups: Vec<Group>,
    /// `[out_blocks × LANES]`, zero past the real output channels.
    bias: Vec<f32>,
    /// Set when the convolution runs as Winograd (then `groups` is empty).
    winograd: Option<Box<Winograd>>,
}

/// Output blocks the micro-kernel computes together, with their weights packed for it.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) first_block: usize,
    pub(crate) width: usize,
    pub(crate) weights: Vec<f32>,
}

/// `bias` with zeros up to whole output blocks (the lanes past `out_channels`).
pub(crate) fn padded_bias(bias: &[f32], out_channels: usize) -> Vec<f32> {
    let mut padded = vec![0f32; out_channels.div_ceil(LANES) * LANES];
    padded[..out_channels].copy_from_slice(&bias[..out_channels]);
    padded
}

/// Where the kernel taps (or Winograd's products) go in a group's packed weights.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TapOrder {
    /// `[input block][tap][input lane][output block][output lane]` (direct convolution).
    InsideBlocks,
    /// `[tap][input block][input lane][output block][output lane]` (Winograd's 36 GEMMs).
    OutsideBlocks,
}

/// Packs `values` (`[out][in][tap]`, `taps` per channel pair) into groups of output blocks
/// as wide as `isa`'s tiles; input channel `i` goes to slot `in_slots[i]` of `in_blocks`
/// blocks, every other slot and output lane past `out_channels` is zero.
pub(crate) fn pack_groups(
    isa: Isa,
    values: &[f32],
    taps: usize,
    out_channels: usize,
    in_slots: &[usize],
    in_blocks: usize,
    order: TapOrder,
) -> Vec<Group> {
    let in_channels = in_slots.len();
    let out_blocks = out_channels.div_ceil(LANES);
    let mut slot_channel = vec![None; in_blocks * LANES];
    for (channel, &slot) in in_slots.iter().enumerate() {
        slot_channel[slot] = Some(channel);
    }
    let mut groups = Vec::new();
    let mut first_block = 0;
    while first_block < out_blocks {
        let (width, _) = tile_shape(isa, out_blocks - first_block);
        let mut weights = vec![0f32; in_blocks * taps * LANES * width * LANES];
        for block in 0..in_blocks {
            for tap in 0..taps {
                let row = match order {
                    TapOrder::InsideBlocks => block * taps + tap,
                    TapOrder::OutsideBlocks => tap * in_blocks + block,
                };
                for lane_in in 0..LANES {
                    let Some(input) = slot_channel[block * LANES + lane_in] else {
                        continue;
                    };
                    for j in 0..width {
                        for lane_out in 0..LANES {
                            let output = (first_block + j) * LANES + lane_out;
                            if output >= out_channels {
                                continue;
                            }
                            let at = ((row * LANES + lane_in) * width + j) * LANES + lane_out;
                            weights[at] = values[(output * in_channels + input) * taps + tap];
                        }
                    }
                }
            }
        }
        groups.push(Group {
            first_block,
            width,
            weights,
        });
        first_block += width;
    }
    groups
}

/// Output blocks a tile computes at once, and positions per tile.
pub(crate) fn tile_shape(isa: Isa, remaining_blocks: usize) -> (usize, usize) {
    match isa {
        Isa::Avx512 if remaining_blocks >= 2 => (2, 14),
        Isa::Avx512 => (1, 24),
        Isa::Avx2 => (1, 6),
        Isa::Portable => (1, 4),
    }
}

impl PackedConv {
    /// Packs `weight` (`[out][in][kd][kh][kw]`, burn's order) and `bias`; input channel `i`
    /// is read from channel slot `in_slots[i]` of the input blocks.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        isa: Isa,
        weight: &[f32],
        bias: &[f32],
        out_channels: usize,
        in_slots: &[usize],
        in_blocks: usize,
        kernel: [usize; 3],
        relu: bool,
    ) -> Self {
        Self::with_method(
            Method::Auto,
            isa,
            weight,
            bias,
            out_channels,
            in_slots,
            in_blocks,
            kernel,
            relu,
        )
    }

    /// As [`PackedConv::new`], computed by `method`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_method(
        method: Method,
        isa: Isa,
        weight: &[f32],
        bias: &[f32],
        out_channels: usize,
        in_slots: &[usize],
        in_blocks: usize,
        kernel: [usize; 3],
        relu: bool,
    ) -> Self {
        let in_channels = in_slots.len();
        let planar_3x3 = kernel == [1, 3, 3];
        let use_winograd = match method {
            Method::Auto => winograd::suits(isa, kernel, in_channels, out_channels),
            Method::Direct => false,
            Method::Winograd => planar_3x3,
        };
        if use_winograd {
            let winograd =
                Winograd::new(isa, weight, bias, out_channels, in_slots, in_blocks, relu);
            return Self {
                in_blocks,
                out_blocks: out_channels.div_ceil(LANES),
                kernel,
                relu,
                origin: kernel.map(|k| (k - 1) / 2),
                isa,
                groups: Vec::new(),
                bias: Vec::new(),
                winograd: Some(Box::new(winograd)),
            };
        }
        let taps: usize = kernel.iter().product();
        let out_blocks = out_channels.div_ceil(LANES);
        let groups = pack_groups(
            isa,
            weight,
            taps,
            out_channels,
            in_slots,
            in_blocks,
            TapOrder::InsideBlocks,
        );
        Self {
            in_blocks,
            out_blocks,
            kernel,
            relu,
            origin: kernel.map(|k| (k - 1) / 2),
            isa,
            groups,
            bias: padded_bias(bias, out_channels),
            winograd: None,
        }
    }

    /// The same convolution with `origin` taps before the output position per axis instead
    /// of Keras `same`'s `(k-1)/2` (Winograd, planar 3×3 only, keeps its centred origin).
    pub fn with_origin(mut self, origin: [usize; 3]) -> Self {
        assert!(
            self.winograd.is_none() || origin == self.origin,
            "Winograd convolutions are centred"
        );
        assert!(
            (0..3).all(|a| origin[a] < self.kernel[a]),
            "origin outside the kernel"
        );
        self.origin = origin;
        self
    }

    /// Whether this convolution runs as Winograd F(4×4, 3×3).
    pub fn is_winograd(&self) -> bool {
        self.winograd.is_some()
    }

    /// Whether [`PackedConv::run_from_planes`] can compute this geometry (see
    /// [`Winograd::reads_planes`]).
    pub fn reads_planes(&self, geometry: &Geometry) -> bool {
        self.winograd
            .as_ref()
            .is_some_and(|winograd| winograd.reads_planes(geometry))
    }

    /// As [`PackedConv::run`], the input given as each sample's channel planes (see
    /// [`Winograd::run_from_planes`]); needs [`PackedConv::reads_planes`].
    pub fn run_from_planes(
        &self,
        geometry: &Geometry,
        samples: usize,
        planes: &[&[f32]],
        output: &mut [f32],
        threads: usize,
    ) {
        let winograd = self
            .winograd
            .as_ref()
            .expect("run_from_planes on a convolution that cannot read planes");
        winograd.run_from_planes(geometry, samples, planes, output, threads);
    }

    /// Computes the convolution for `samples` samples of `geometry`: reads `in_blocks`
    /// blocks from `input`, writes `out_blocks` blocks to `output` (both laid out by
    /// `geometry`), halo left zero.
    pub fn run(
        &self,
        geometry: &Geometry,
        samples: usize,
        input: &[f32],
        output: &mut [f32],
        threads: usize,
    ) {
        if let Some(winograd) = &self.winograd {
            return winograd.run(geometry, samples, input, output, threads);
        }
        let block_len = geometry.block_len();
        assert!(input.len() >= self.in_blocks * block_len, "input too short");
        assert!(
            output.len() >= self.out_blocks * block_len,
            "output too short"
        );
        let range = geometry.computed(samples);
        if range.is_empty() {
            return;
        }
        let strides = geometry.strides();
        let before = self.origin;
        let mut taps = Vec::new();
        for kz in 0..self.kernel[0] {
            for ky in 0..self.kernel[1] {
                for kx in 0..self.kernel[2] {
                    let offset = (kz as isize - before[0] as isize) * strides[0] as isize
                        + (ky as isize - before[1] as isize) * strides[1] as isize
                        + (kx as isize - before[2] as isize);
                    taps.push(offset * LANES as isize);
                }
            }
        }
        // Every tile reads and writes inside the blocks: the halo covers the taps' reach,
        // the tail the last tile's overrun.
        for ((&have_before, &have_after), (&reach, &side)) in geometry
            .before
            .iter()
            .zip(&geometry.after)
            .zip(before.iter().zip(&self.kernel))
        {
            assert!(
                have_before >= reach && have_after >= side - 1 - reach,
                "halo narrower than the kernel"
            );
        }
        let block_positions = geometry.block_positions();
        let max_tile = 32;
        assert!(range.end + max_tile <= block_positions);

        let per_block_bytes = |width: usize| taps.len() * LANES * width * LANES * 4;
        let chunk = (CHUNK_WEIGHT_BYTES / per_block_bytes(2).max(1)).max(1);
        let shared = Shared {
            input: input.as_ptr(),
            output: output.as_mut_ptr(),
        };
        let work = |part: std::ops::Range<usize>| {
            let shared = &shared;
            let mut first_in = 0;
            while first_in < self.in_blocks {
                let in_blocks = chunk.min(self.in_blocks - first_in);
                let accumulate = first_in > 0;
                let last = first_in + in_blocks == self.in_blocks;
                for group in &self.groups {
                    let (_, mr) = tile_shape(self.isa, self.out_blocks - group.first_block);
                    let group_taps = taps.len() * LANES * group.width * LANES;
                    let args = TileArgs {
                        // SAFETY (all pointer offsets): inside the blocks, checked above.
                        input: unsafe { shared.input.add(first_in * block_len) },
                        in_stride: block_len,
                        in_blocks,
                        taps: &taps,
                        weights: unsafe { group.weights.as_ptr().add(first_in * group_taps) },
                        output: unsafe { shared.output.add(group.first_block * block_len) },
                        out_stride: block_len,
                        bias: unsafe { self.bias.as_ptr().add(group.first_block * LANES) },
                        accumulate,
                        relu: self.relu && last,
                    };
                    let mut p = part.start;
                    while p < part.end {
                        // SAFETY: `p + mr <= range.end + max_tile` stays inside the blocks.
                        unsafe { run_tile(self.isa, group.width, mr, &args, p) };
                        p += mr;
                    }
                }
                first_in += in_blocks;
            }
        };
        // Parts are multiples of every tile height so that no two threads write a position.
        let align = 2 * 3 * 4 * 7; // lcm of 14, 24, 6, 4
        let len = range.end - range.start;
        let threads = threads.clamp(1, len.div_ceil(align).max(1));
        if threads == 1 {
            work(range.clone());
        } else {
            let per = len.div_ceil(threads).next_multiple_of(align);
            std::thread::scope(|scope| {
                let work = &work;
                for t in 0..threads {
                    let start = range.start + t * per;
                    let end = (start + per).min(range.end);
                    if start < end {
                        scope.spawn(move || work(start..end));
                    }
                }
            });
        }
        for block in 0..self.out_blocks {
            let base = block * block_len;
            for (start, end) in geometry.halo_runs(samples, range.start..range.end + max_tile) {
                output[base + start * LANES..base + end * LANES].fill(0.0);
            }
        }
    }
}

/// Raw pointers shared by the threads of one convolution, which write disjoint positions.
struct Shared {
    input: *const f32,
    output: *mut f32,
}
// SAFETY: threads read `input` and write disjoint position ranges of `output`.
unsafe impl Sync for Shared {}

/// What one tile needs besides its first position.
pub(crate) struct TileArgs<'a> {
    /// First input block of the chunk, position 0.
    pub(crate) input: *const f32,
    pub(crate) in_stride: usize,
    pub(crate) in_blocks: usize,
    /// Tap offsets in floats.
    pub(crate) taps: &'a [isize],
    /// The group's weights from the chunk's first input block.
    pub(crate) weights: *const f32,
    /// The group's first output block, position 0.
    pub(crate) output: *mut f32,
    pub(crate) out_stride: usize,
    pub(crate) bias: *const f32,
    pub(crate) accumulate: bool,
    pub(crate) relu: bool,
}

/// # Safety
/// `args` must describe blocks that hold every position the tile reads and writes.
pub(crate) unsafe fn run_tile(isa: Isa, width: usize, mr: usize, args: &TileArgs<'_>, p: usize) {
    unsafe {
        match (isa, width, mr) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 2, 14) => x86::tile_avx512::<14, 2>(args, p),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 1, 24) => x86::tile_avx512::<24, 1>(args, p),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 1, 6) => x86::tile_avx2::<6>(args, p),
            (_, 1, 4) => tile_portable::<4>(args, p),
            _ => unreachable!("no kernel for {isa:?} width {width} height {mr}"),
        }
    }
}

/// # Safety
/// As [`run_tile`].
unsafe fn tile_portable<const MR: usize>(t: &TileArgs<'_>, p: usize) {
    unsafe {
        let out = t.output.add(p * LANES);
        let mut acc = [[0f32; LANES]; MR];
        for (m, row) in acc.iter_mut().enumerate() {
            for (lane, value) in row.iter_mut().enumerate() {
                *value = if t.accumulate {
                    *out.add(m * LANES + lane)
                } else {
                    *t.bias.add(lane)
                };
            }
        }
        let taps = t.taps.len();
        for block in 0..t.in_blocks {
            let a_block = t.input.add(block * t.in_stride + p * LANES);
            let w_block = t.weights.add(block * taps * LANES * LANES);
            for (tap, &offset) in t.taps.iter().enumerate() {
                let a = a_block.offset(offset);
                let w = w_block.add(tap * LANES * LANES);
                for lane_in in 0..LANES {
                    let weights = std::slice::from_raw_parts(w.add(lane_in * LANES), LANES);
                    for (m, row) in acc.iter_mut().enumerate() {
                        let x = *a.add(m * LANES + lane_in);
                        for (value, &weight) in row.iter_mut().zip(weights) {
                            *value += x * weight;
                        }
                    }
                }
            }
        }
        for (m, row) in acc.iter().enumerate() {
            for (lane, &value) in row.iter().enumerate() {
                *out.add(m * LANES + lane) = if t.relu { value.max(0.0) } else { value };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::TileArgs;
    use crate::LANES;
    use std::arch::x86_64::*;

    /// `MR` positions × `NR` output blocks in `MR × NR` registers.
    ///
    /// # Safety
    /// As [`super::run_tile`]; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_avx512<const MR: usize, const NR: usize>(t: &TileArgs<'_>, p: usize) {
        unsafe {
            let out = t.output.add(p * LANES);
            let mut acc = [[_mm512_setzero_ps(); NR]; MR];
            if t.accumulate {
                for (m, row) in acc.iter_mut().enumerate() {
                    for (j, value) in row.iter_mut().enumerate() {
                        *value = _mm512_loadu_ps(out.add(j * t.out_stride + m * LANES));
                    }
                }
            } else {
                for j in 0..NR {
                    let bias = _mm512_loadu_ps(t.bias.add(j * LANES));
                    for row in acc.iter_mut() {
                        row[j] = bias;
                    }
                }
            }
            let taps = t.taps.len();
            for block in 0..t.in_blocks {
                let a_block = t.input.add(block * t.in_stride + p * LANES);
                let w_block = t.weights.add(block * taps * LANES * NR * LANES);
                for (tap, &offset) in t.taps.iter().enumerate() {
                    let a = a_block.offset(offset);
                    let w = w_block.add(tap * LANES * NR * LANES);
                    for lane_in in 0..LANES {
                        let mut weights = [_mm512_setzero_ps(); NR];
                        for (j, weight) in weights.iter_mut().enumerate() {
                            *weight = _mm512_loadu_ps(w.add((lane_in * NR + j) * LANES));
                        }
                        for (m, row) in acc.iter_mut().enumerate() {
                            let x = _mm512_set1_ps(*a.add(m * LANES + lane_in));
                            for (value, weight) in row.iter_mut().zip(&weights) {
                                *value = _mm512_fmadd_ps(x, *weight, *value);
                            }
                        }
                    }
                }
            }
            let zero = _mm512_setzero_ps();
            for (m, row) in acc.iter().enumerate() {
                for (j, &value) in row.iter().enumerate() {
                    let value = if t.relu {
                        _mm512_max_ps(value, zero)
                    } else {
                        value
                    };
                    _mm512_storeu_ps(out.add(j * t.out_stride + m * LANES), value);
                }
            }
        }
    }

    /// `MR` positions × one output block (two 8-lane halves) in `2 × MR` registers.
    ///
    /// # Safety
    /// As [`super::run_tile`]; the CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2<const MR: usize>(t: &TileArgs<'_>, p: usize) {
        unsafe {
            let out = t.output.add(p * LANES);
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            for (m, row) in acc.iter_mut().enumerate() {
                for (half, value) in row.iter_mut().enumerate() {
                    *value = if t.accumulate {
                        _mm256_loadu_ps(out.add(m * LANES + half * 8))
                    } else {
                        _mm256_loadu_ps(t.bias.add(half * 8))
                    };
                }
            }
            let taps = t.taps.len();
            for block in 0..t.in_blocks {
                let a_block = t.input.add(block * t.in_stride + p * LANES);
                let w_block = t.weights.add(block * taps * LANES * LANES);
                for (tap, &offset) in t.taps.iter().enumerate() {
                    let a = a_block.offset(offset);
                    let w = w_block.add(tap * LANES * LANES);
                    for lane_in in 0..LANES {
                        let weights = [
                            _mm256_loadu_ps(w.add(lane_in * LANES)),
                            _mm256_loadu_ps(w.add(lane_in * LANES + 8)),
                        ];
                        for (m, row) in acc.iter_mut().enumerate() {
                            let x = _mm256_set1_ps(*a.add(m * LANES + lane_in));
                            row[0] = _mm256_fmadd_ps(x, weights[0], row[0]);
                            row[1] = _mm256_fmadd_ps(x, weights[1], row[1]);
                        }
                    }
                }
            }
            let zero = _mm256_setzero_ps();
            for (m, row) in acc.iter().enumerate() {
                for (half, &value) in row.iter().enumerate() {
                    let value = if t.relu {
                        _mm256_max_ps(value, zero)
                    } else {
                        value
                    };
                    _mm256_storeu_ps(out.add(m * LANES + half * 8), value);
                }
            }
        }
    }
}
