//! The backward pass of a [`UNet`]: from dL/d(output) to dL/d(every weight and bias) and,
//! on request, dL/d(input), reading the activations [`UNet::forward_for_training`] left in
//! the workspace.
//!
//! This module owns the gradient buffers ([`GradBuffers`], laid out as the activations, zero
//! halos included) and the pieces of the pass:
//! - backward-data of a convolution: itself a convolution ([`PackedConv`]) of the output
//!   gradient with the kernel flipped and in/out swapped; its origin is the forward kernel's
//!   reach after a position, which differs from Keras `same`'s `(k-1)/2` for even kernels.
//!   A decoder convolution's flipped kernel writes straight into the `[up | skip]` slots of
//!   its input, so the skip's gradient lands where the encoder's pool gradient is added;
//! - backward-weights: per tap, a reduction over positions of dY ⊗ X (register-blocked on
//!   AVX-512, vectorised by the compiler elsewhere), and the bias as the sum of dY. Halos of
//!   dY are zero, so a reduction over every computed position is one over the interior;
//! - ReLU (mask from the stored post-ReLU output), max-pool (to the first maximum of each
//!   window) and upsampling (a sum over each factor block) backward.
//!
//! Every reduction runs in an order fixed by the shapes only (threads own disjoint outputs,
//! never parts of one sum), so a training run repeats bit for bit.

use crate::arena::Act;
use crate::conv::PackedConv;
use crate::dispatch::Isa;
use crate::layout::{Geometry, blocks};
use crate::resample::pack_input;
use crate::unet::{UNet, Workspace};
use crate::{KernelError, LANES};

/// Positions summed in registers before they are added to the total: the reduction is
/// two-level (better rounding than one running sum) and a chunk of dY and X stays in L1.
const CHUNK: usize = 256;

/// dL/d(one convolution's parameters), in [`crate::ConvWeights`]' order.
#[derive(Clone, Debug, Default)]
pub struct ConvGradients {
    /// `[out][in][depth][height][width]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// What a backward pass computes besides the data gradients it needs.
#[derive(Clone, Debug, Default)]
pub struct BackwardRequest {
    /// Per convolution (execution order): whether its weights' gradient is wanted (a frozen
    /// layer's is not). Empty: all of them.
    pub weights: Vec<bool>,
    /// Whether dL/d(input) is wanted.
    pub input: bool,
}

/// The gradients of one backward pass.
#[derive(Clone, Debug, Default)]
pub struct Gradients {
    /// Per convolution, in execution order; empty vectors where not requested.
    pub convs: Vec<ConvGradients>,
    /// dL/d(input) `[samples][in_channels][depth][height][width]`, if requested.
    pub input: Option<Vec<f32>>,
}

/// Gradient buffers, one per activation of the workspace, sized with it.
#[derive(Debug, Default)]
pub(crate) struct GradBuffers {
    /// The shape they were sized for.
    shape: Option<(usize, [usize; 3])>,
    last: Vec<f32>,
    decoded: Vec<Vec<f32>>,
    concat: Vec<Vec<f32>>,
    bottleneck: Vec<f32>,
    pooled: Vec<Vec<f32>>,
    input: Vec<f32>,
}

impl GradBuffers {
    pub(crate) fn floats(&self) -> usize {
        self.last.len()
            + self.bottleneck.len()
            + self.input.len()
            + [&self.decoded, &self.concat, &self.pooled]
                .iter()
                .flat_map(|b| b.iter())
                .map(Vec::len)
                .sum::<usize>()
    }
}

impl UNet {
    /// The backward pass after [`UNet::forward_for_training`] on `workspace`: `grad_output`
    /// is dL/d(output) `[samples][depth][height][width]`.
    pub fn backward(
        &self,
        workspace: &mut Workspace,
        grad_output: &[f32],
        request: &BackwardRequest,
    ) -> Result<Gradients, KernelError> {
        let depth = self.pools().len();
        let count = 2 * depth + 2;
        let wanted = |index: usize| request.weights.get(index).copied().unwrap_or(true);
        if !request.weights.is_empty() && request.weights.len() != count {
            return Err(KernelError::Shape(format!(
                "{} weight requests for {count} convolutions",
                request.weights.len()
            )));
        }
        let Some((_, size)) = workspace.shape else {
            return Err(KernelError::Shape(
                "backward before any forward pass".into(),
            ));
        };
        if !workspace.training {
            return Err(KernelError::Shape(
                "backward needs a workspace of forward_for_training".into(),
            ));
        }
        if self.weights.len() != count {
            return Err(KernelError::Shape(
                "backward needs the weights that drop_backward_weights freed".into(),
            ));
        }
        let samples = workspace.samples;
        let voxels: usize = size.iter().product();
        if grad_output.len() != samples * voxels {
            return Err(KernelError::Shape(format!(
                "{} output gradients for {samples} samples of {size:?}",
                grad_output.len()
            )));
        }
        self.size_grads(workspace);
        let ws = workspace;
        let geo = &ws.geometries;
        let g = &mut ws.grads;
        let mut convs: Vec<ConvGradients> = vec![ConvGradients::default(); count];
        if samples == 0 {
            return Ok(Gradients {
                convs,
                input: request.input.then(Vec::new),
            });
        }
        // Which encoder levels the gradient must reach: down to the shallowest one whose
        // weights (or the input) want it.
        let lowest = if request.input {
            Some(0)
        } else {
            (0..depth).find(|&l| wanted(l))
        };
        let needs_level = |level: usize| lowest.is_some_and(|low| level >= low);
        // Data gradients: every decoder conv's and the final's; an encoder conv's (and the
        // bottleneck's) when a shallower level or the input needs it.
        let needed: Vec<bool> = (0..count)
            .map(|index| match index {
                0 => request.input,
                index if index <= depth => needs_level(index - 1),
                _ => true,
            })
            .collect();
        let flipped = self.flipped_convs(&needed);
        let threads = self.threads;
        let data_grad = |index: usize, geometry: &Geometry, grad: &[f32], target: &mut [f32]| {
            flipped[index]
                .as_ref()
                .expect("a needed data gradient")
                .run(geometry, samples, grad, target, threads);
        };

        pack_input(self.isa(), &geo[0], samples, 1, grad_output, &mut g.last);
        let last = 2 * depth + 1;
        let features = if depth == 0 {
            ws.activations.get(Act::Bottleneck)
        } else {
            ws.activations.get(Act::Decoded(0))
        };
        if wanted(last) {
            convs[last] = self.weight_grad(last, &geo[0], samples, features, &g.last);
        }
        // The final conv's input: the first decoder's output (or the bottleneck's).
        let top = if depth == 0 {
            &mut g.bottleneck
        } else {
            &mut g.decoded[0]
        };
        data_grad(last, &geo[0], &g.last, top);
        relu_mask(features, top);

        for level in 0..depth {
            let index = 2 * depth - level;
            if wanted(index) {
                convs[index] = self.weight_grad(
                    index,
                    &geo[level],
                    samples,
                    ws.activations.get(Act::Concat(level)),
                    &g.decoded[level],
                );
            }
            data_grad(index, &geo[level], &g.decoded[level], &mut g.concat[level]);
            let up_blocks = blocks(self.up_channels(level));
            let (below_act, below_grad) = if level + 1 == depth {
                (ws.activations.get(Act::Bottleneck), &mut g.bottleneck)
            } else {
                (
                    ws.activations.get(Act::Decoded(level + 1)),
                    &mut g.decoded[level + 1],
                )
            };
            upsample_backward(
                &geo[level + 1],
                &geo[level],
                samples,
                up_blocks,
                self.pools()[level],
                &g.concat[level],
                below_grad,
            );
            relu_mask(below_act, below_grad);
        }

        let bottom_input = if depth == 0 {
            ws.activations.get(Act::Input)
        } else {
            ws.activations.get(Act::Pooled(depth - 1))
        };
        if wanted(depth) {
            convs[depth] =
                self.weight_grad(depth, &geo[depth], samples, bottom_input, &g.bottleneck);
        }
        if depth > 0 && needs_level(depth - 1) {
            data_grad(depth, &geo[depth], &g.bottleneck, &mut g.pooled[depth - 1]);
        } else if depth == 0 && request.input {
            data_grad(depth, &geo[0], &g.bottleneck, &mut g.input);
        }

        for level in (0..depth).rev() {
            if !needs_level(level) {
                continue;
            }
            let skip_start = blocks(self.up_channels(level)) * geo[level].block_len();
            let width_blocks = blocks(self.widths()[level]);
            let encoded = &ws.activations.get(Act::Concat(level))[skip_start..];
            let grad = &mut g.concat[level][skip_start..];
            max_pool_backward(
                &geo[level],
                &geo[level + 1],
                samples,
                width_blocks,
                self.pools()[level],
                encoded,
                &g.pooled[level],
                grad,
            );
            relu_mask(
                &encoded[..width_blocks * geo[level].block_len()],
                &mut grad[..width_blocks * geo[level].block_len()],
            );
            let source = if level == 0 {
                ws.activations.get(Act::Input)
            } else {
                ws.activations.get(Act::Pooled(level - 1))
            };
            let grad = &g.concat[level][skip_start..];
            if wanted(level) {
                convs[level] = self.weight_grad(level, &geo[level], samples, source, grad);
            }
            if level > 0 && needs_level(level - 1) {
                data_grad(level, &geo[level], grad, &mut g.pooled[level - 1]);
            } else if level == 0 && request.input {
                data_grad(level, &geo[0], grad, &mut g.input);
            }
        }
        let input = request.input.then(|| {
            let mut values = vec![0f32; samples * self.in_channels() * voxels];
            unpack(&geo[0], samples, self.in_channels(), &g.input, &mut values);
            values
        });
        Ok(Gradients { convs, input })
    }

    /// (Re)allocates the gradient buffers for the workspace's shape; kept across calls, their
    /// halos are never written and stay zero.
    fn size_grads(&self, ws: &mut Workspace) {
        if ws.grads.shape == ws.shape {
            return;
        }
        let depth = self.pools().len();
        let geo = &ws.geometries;
        let buffer =
            |level: usize, channels: usize| vec![0f32; blocks(channels) * geo[level].block_len()];
        ws.grads = GradBuffers {
            shape: ws.shape,
            last: buffer(0, 1),
            decoded: (0..depth).map(|l| buffer(l, self.widths()[l])).collect(),
            concat: (0..depth)
                .map(|l| {
                    vec![
                        0f32;
                        (blocks(self.up_channels(l)) + blocks(self.widths()[l]))
                            * geo[l].block_len()
                    ]
                })
                .collect(),
            bottleneck: buffer(depth, self.weights[depth].out_channels),
            pooled: (0..depth)
                .map(|l| buffer(l + 1, self.widths()[l]))
                .collect(),
            input: buffer(0, self.in_channels()),
        };
    }

    /// The convolutions computing each needed data gradient (`None` where not needed),
    /// packed on parallel threads: packing a large network's flipped kernels costs as much as
    /// a layer's convolution.
    fn flipped_convs(&self, needed: &[bool]) -> Vec<Option<PackedConv>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = needed
                .iter()
                .enumerate()
                .map(|(index, &needed)| needed.then(|| scope.spawn(move || self.flipped(index))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.map(|h| h.join().expect("packing thread")))
                .collect()
        })
    }

    /// The convolution that maps dL/d(output of convolution `index`) (zero halo) to
    /// dL/d(its input), in the input's slot layout: the kernel flipped, in/out swapped.
    fn flipped(&self, index: usize) -> PackedConv {
        let conv = &self.weights[index];
        let (slots, in_blocks) = &self.slots[index];
        let taps: usize = conv.kernel.iter().product();
        let (fwd_in, fwd_out) = (conv.in_channels, conv.out_channels);
        let out_slots = in_blocks * LANES;
        // Flipping every axis reverses the tap index.
        let mut flipped = vec![0f32; out_slots * fwd_out * taps];
        for o in 0..fwd_out {
            for (i, &slot) in slots.iter().enumerate() {
                let from = &conv.weight[(o * fwd_in + i) * taps..][..taps];
                let to = &mut flipped[(slot * fwd_out + o) * taps..][..taps];
                for (t, value) in to.iter_mut().rev().zip(from) {
                    *t = *value;
                }
            }
        }
        let contiguous: Vec<usize> = (0..fwd_out).collect();
        let packed = PackedConv::with_method(
            self.method,
            self.isa(),
            &flipped,
            &vec![0f32; out_slots],
            out_slots,
            &contiguous,
            blocks(fwd_out),
            conv.kernel,
            false,
        );
        if packed.is_winograd() {
            packed
        } else {
            packed.with_origin(conv.kernel.map(|k| k - 1 - (k - 1) / 2))
        }
    }

    /// dL/d(weights, bias) of convolution `index` from its input `x` and dL/d(its output)
    /// `grad` (both laid out by `geometry`, zero halos).
    fn weight_grad(
        &self,
        index: usize,
        geometry: &Geometry,
        samples: usize,
        x: &[f32],
        grad: &[f32],
    ) -> ConvGradients {
        let conv = &self.weights[index];
        let (slots, in_blocks) = &self.slots[index];
        let in_blocks = *in_blocks;
        let out_blocks = blocks(conv.out_channels);
        let kernel = conv.kernel;
        let taps: usize = kernel.iter().product();
        let strides = geometry.strides();
        let before = kernel.map(|k| (k - 1) / 2);
        let mut offsets = Vec::with_capacity(taps);
        for kz in 0..kernel[0] {
            for ky in 0..kernel[1] {
                for kx in 0..kernel[2] {
                    offsets.push(
                        (kz as isize - before[0] as isize) * strides[0] as isize
                            + (ky as isize - before[1] as isize) * strides[1] as isize
                            + (kx as isize - before[2] as isize),
                    );
                }
            }
        }
        let range = geometry.computed(samples);
        let block_len = geometry.block_len();
        assert!(x.len() >= in_blocks * block_len && grad.len() >= out_blocks * block_len);
        for axis in 0..3 {
            assert!(
                geometry.before[axis] >= before[axis]
                    && geometry.after[axis] >= kernel[axis] - 1 - before[axis],
                "halo narrower than the kernel"
            );
        }
        let isa = self.isa();
        // One item per (output block, input block): threads own whole items, each summed in
        // the same order whatever the thread count.
        // Two output blocks share each broadcast input value on AVX-512 (fewer loads per
        // multiply-add); elsewhere one block at a time.
        let pair = if isa == Isa::Avx512 { 2 } else { 1 };
        let items: Vec<(usize, usize, usize)> = (0..out_blocks)
            .step_by(pair)
            .flat_map(|ob| {
                let width = pair.min(out_blocks - ob);
                (0..in_blocks).map(move |ib| (ob, width, ib))
            })
            .collect();
        let tap_len = LANES * LANES;
        let item = |&(ob, width, ib): &(usize, usize, usize)| -> Vec<f32> {
            let mut sums = vec![0f32; width * taps * tap_len];
            let xb = &x[ib * block_len..][..block_len];
            let mut start = range.start;
            while start < range.end {
                let len = CHUNK.min(range.end - start);
                let dy =
                    |j: usize| &grad[(ob + j) * block_len..][start * LANES..(start + len) * LANES];
                for (tap, &offset) in offsets.iter().enumerate() {
                    let at = (start as isize + offset) as usize;
                    let xs = &xb[at * LANES..(at + len) * LANES];
                    let (first, second) = sums.split_at_mut(taps * tap_len);
                    let out0: &mut [f32; LANES * LANES] = (&mut first
                        [tap * tap_len..(tap + 1) * tap_len])
                        .try_into()
                        .expect("one tap");
                    if width == 2 {
                        let out1: &mut [f32; LANES * LANES] = (&mut second
                            [tap * tap_len..(tap + 1) * tap_len])
                            .try_into()
                            .expect("one tap");
                        outer_sum_pair(isa, xs, [dy(0), dy(1)], [out0, out1]);
                    } else {
                        outer_sum(isa, xs, dy(0), out0);
                    }
                }
                start += len;
            }
            sums
        };
        let threads = self.threads.clamp(1, items.len().max(1));
        let computed: Vec<Vec<f32>> = if threads == 1 {
            items.iter().map(item).collect()
        } else {
            let mut parts: Vec<Vec<(usize, Vec<f32>)>> = Vec::new();
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let items = &items;
                        let item = &item;
                        scope.spawn(move || {
                            (t..items.len())
                                .step_by(threads)
                                .map(|k| (k, item(&items[k])))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for handle in handles {
                    parts.push(handle.join().expect("weight gradient thread"));
                }
            });
            let mut computed = vec![Vec::new(); items.len()];
            for (k, sums) in parts.into_iter().flatten() {
                computed[k] = sums;
            }
            computed
        };
        // `[tap][input lane][output lane]` sums of each (output block, input block).
        let mut results: Vec<&[f32]> = vec![&[]; out_blocks * in_blocks];
        for (&(ob, width, ib), sums) in items.iter().zip(&computed) {
            for j in 0..width {
                results[(ob + j) * in_blocks + ib] = &sums[j * taps * tap_len..][..taps * tap_len];
            }
        }
        let (fwd_in, fwd_out) = (conv.in_channels, conv.out_channels);
        let mut weight = vec![0f32; fwd_out * fwd_in * taps];
        for o in 0..fwd_out {
            let (ob, lo) = (o / LANES, o % LANES);
            for (i, &slot) in slots.iter().enumerate() {
                let (ib, li) = (slot / LANES, slot % LANES);
                let sums = &results[ob * in_blocks + ib];
                for tap in 0..taps {
                    weight[(o * fwd_in + i) * taps + tap] = sums[(tap * LANES + li) * LANES + lo];
                }
            }
        }
        let mut bias = vec![0f32; fwd_out];
        for ob in 0..out_blocks {
            let dy = &grad[ob * block_len..][..block_len];
            let mut total = [0f32; LANES];
            let mut start = range.start;
            while start < range.end {
                let len = CHUNK.min(range.end - start);
                let mut partial = [0f32; LANES];
                for values in dy[start * LANES..(start + len) * LANES].chunks_exact(LANES) {
                    for (p, v) in partial.iter_mut().zip(values) {
                        *p += v;
                    }
                }
                for (t, p) in total.iter_mut().zip(partial) {
                    *t += p;
                }
                start += len;
            }
            for (lane, value) in total.into_iter().enumerate() {
                if ob * LANES + lane < fwd_out {
                    bias[ob * LANES + lane] = value;
                }
            }
        }
        ConvGradients { weight, bias }
    }
}

/// `out[li][lo] += Σ_p x[p][li] · dy[p][lo]` over the positions of `x` and `dy` (each
/// `[positions][LANES]`).
fn outer_sum(isa: Isa, x: &[f32], dy: &[f32], out: &mut [f32; LANES * LANES]) {
    assert_eq!(x.len(), dy.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only chosen where the CPU has AVX-512F.
        Isa::Avx512 => unsafe { x86::outer_sum_avx512(x, dy, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only chosen where the CPU has AVX2 and FMA.
        Isa::Avx2 => unsafe { x86::outer_sum_avx2(x, dy, out) },
        _ => outer_sum_portable::<false>(x, dy, out),
    }
}

/// [`outer_sum`] for two output blocks read with the same `x`.
fn outer_sum_pair(isa: Isa, x: &[f32], dy: [&[f32]; 2], out: [&mut [f32; LANES * LANES]; 2]) {
    assert!(x.len() == dy[0].len() && x.len() == dy[1].len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only chosen where the CPU has AVX-512F.
        Isa::Avx512 => unsafe { x86::outer_sum_pair_avx512(x, dy, out) },
        _ => {
            let [out0, out1] = out;
            outer_sum(isa, x, dy[0], out0);
            outer_sum(isa, x, dy[1], out1);
        }
    }
}

/// Four input lanes at a time (4 × 16 sums: eight 256-bit registers), which compilers keep
/// in registers and vectorise; `FMA` fuses the multiply-adds where the CPU has them.
#[inline(always)]
fn outer_sum_portable<const FMA: bool>(x: &[f32], dy: &[f32], out: &mut [f32; LANES * LANES]) {
    const GROUP: usize = 4;
    for first in (0..LANES).step_by(GROUP) {
        let mut acc = [[0f32; LANES]; GROUP];
        for (xs, gs) in x.chunks_exact(LANES).zip(dy.chunks_exact(LANES)) {
            for (j, row) in acc.iter_mut().enumerate() {
                let xv = xs[first + j];
                for (a, &g) in row.iter_mut().zip(gs) {
                    *a = if FMA { xv.mul_add(g, *a) } else { *a + xv * g };
                }
            }
        }
        for (j, row) in acc.iter().enumerate() {
            for (o, a) in out[(first + j) * LANES..][..LANES].iter_mut().zip(row) {
                *o += a;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::outer_sum_portable;
    use crate::LANES;
    use std::arch::x86_64::*;

    /// 16 accumulators, one per input lane, each 16 output lanes; per position one load of
    /// dY and 16 broadcast multiply-adds.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn outer_sum_avx512(x: &[f32], dy: &[f32], out: &mut [f32; LANES * LANES]) {
        let positions = x.len() / LANES;
        unsafe {
            let mut acc = [_mm512_setzero_ps(); LANES];
            let (xp, gp) = (x.as_ptr(), dy.as_ptr());
            for p in 0..positions {
                let g = _mm512_loadu_ps(gp.add(p * LANES));
                let xs = xp.add(p * LANES);
                for (li, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*xs.add(li)), g, *a);
                }
            }
            for (li, a) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add(li * LANES);
                _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *a));
            }
        }
    }

    /// Two output blocks × 8 input lanes in 16 accumulators, twice: per position two loads
    /// of dY and 8 broadcasts feed 16 multiply-adds.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn outer_sum_pair_avx512(
        x: &[f32],
        dy: [&[f32]; 2],
        out: [&mut [f32; LANES * LANES]; 2],
    ) {
        const HALF: usize = LANES / 2;
        let positions = x.len() / LANES;
        unsafe {
            let (xp, g0p, g1p) = (x.as_ptr(), dy[0].as_ptr(), dy[1].as_ptr());
            let [out0, out1] = out;
            for half in 0..2 {
                let mut acc = [[_mm512_setzero_ps(); 2]; HALF];
                for p in 0..positions {
                    let g0 = _mm512_loadu_ps(g0p.add(p * LANES));
                    let g1 = _mm512_loadu_ps(g1p.add(p * LANES));
                    let xs = xp.add(p * LANES + half * HALF);
                    for (l, a) in acc.iter_mut().enumerate() {
                        let xv = _mm512_set1_ps(*xs.add(l));
                        a[0] = _mm512_fmadd_ps(xv, g0, a[0]);
                        a[1] = _mm512_fmadd_ps(xv, g1, a[1]);
                    }
                }
                for (l, a) in acc.iter().enumerate() {
                    let row = (half * HALF + l) * LANES;
                    let o0 = out0.as_mut_ptr().add(row);
                    _mm512_storeu_ps(o0, _mm512_add_ps(_mm512_loadu_ps(o0), a[0]));
                    let o1 = out1.as_mut_ptr().add(row);
                    _mm512_storeu_ps(o1, _mm512_add_ps(_mm512_loadu_ps(o1), a[1]));
                }
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn outer_sum_avx2(x: &[f32], dy: &[f32], out: &mut [f32; LANES * LANES]) {
        outer_sum_portable::<true>(x, dy, out)
    }
}

/// Zeroes `grad` wherever the ReLU's output `activation` is not positive.
fn relu_mask(activation: &[f32], grad: &mut [f32]) {
    for (g, &a) in grad.iter_mut().zip(activation) {
        if a <= 0.0 {
            *g = 0.0;
        }
    }
}

/// Adds each pooled gradient of `pooled` (laid out by `to`) to the first position of its
/// window holding the maximum of `source` (laid out by `from`) in `grad`.
#[allow(clippy::too_many_arguments)]
fn max_pool_backward(
    from: &Geometry,
    to: &Geometry,
    samples: usize,
    blocks: usize,
    pool: [usize; 3],
    source: &[f32],
    pooled: &[f32],
    grad: &mut [f32],
) {
    let [d, h, w] = to.size;
    let (from_len, to_len) = (from.block_len(), to.block_len());
    for block in 0..blocks {
        let source = &source[block * from_len..][..from_len];
        let grad = &mut grad[block * from_len..][..from_len];
        let pooled = &pooled[block * to_len..][..to_len];
        for n in 0..samples {
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let mut best = [f32::NEG_INFINITY; LANES];
                        let mut at = [0usize; LANES];
                        for dz in 0..pool[0] {
                            for dy in 0..pool[1] {
                                let row = from
                                    .position(n, [z * pool[0] + dz, y * pool[1] + dy, x * pool[2]]);
                                for dx in 0..pool[2] {
                                    let values = &source[(row + dx) * LANES..][..LANES];
                                    for lane in 0..LANES {
                                        if values[lane] > best[lane] {
                                            best[lane] = values[lane];
                                            at[lane] = row + dx;
                                        }
                                    }
                                }
                            }
                        }
                        let here = to.position(n, [z, y, x]) * LANES;
                        for lane in 0..LANES {
                            grad[at[lane] * LANES + lane] += pooled[here + lane];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of nearest upsampling: each position of `to_grad` (laid out by `from`, the
/// coarse level) gets the sum of its factor block in `grad` (laid out by `to`); what the
/// upsampling padded with zeros gets nothing.
fn upsample_backward(
    from: &Geometry,
    to: &Geometry,
    samples: usize,
    blocks: usize,
    factor: [usize; 3],
    grad: &[f32],
    to_grad: &mut [f32],
) {
    let [d, h, w] = from.size;
    let (from_len, to_len) = (from.block_len(), to.block_len());
    for block in 0..blocks {
        let grad = &grad[block * to_len..][..to_len];
        let target = &mut to_grad[block * from_len..][..from_len];
        for n in 0..samples {
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let mut sum = [0f32; LANES];
                        for dz in 0..factor[0] {
                            for dy in 0..factor[1] {
                                let row = to.position(
                                    n,
                                    [z * factor[0] + dz, y * factor[1] + dy, x * factor[2]],
                                );
                                for dx in 0..factor[2] {
                                    let values = &grad[(row + dx) * LANES..][..LANES];
                                    for (s, v) in sum.iter_mut().zip(values) {
                                        *s += v;
                                    }
                                }
                            }
                        }
                        let at = from.position(n, [z, y, x]) * LANES;
                        target[at..at + LANES].copy_from_slice(&sum);
                    }
                }
            }
        }
    }
}

/// The inverse of [`pack_input`]: channel blocks back to `[samples][channels][d][h][w]`.
fn unpack(
    geometry: &Geometry,
    samples: usize,
    channels: usize,
    blocks: &[f32],
    output: &mut [f32],
) {
    let [d, h, w] = geometry.size;
    let plane = d * h * w;
    let block_len = geometry.block_len();
    for n in 0..samples {
        for c in 0..channels {
            let target = &mut output[(n * channels + c) * plane..][..plane];
            let block = &blocks[(c / LANES) * block_len..][..block_len];
            let lane = c % LANES;
            let mut rows = target.chunks_exact_mut(w);
            for z in 0..d {
                for y in 0..h {
                    let row = rows.next().expect("plane has d × h rows");
                    let start = geometry.position(n, [z, y, 0]) * LANES + lane;
                    for (x, value) in row.iter_mut().enumerate() {
                        *value = block[start + x * LANES];
                    }
                }
            }
        }
    }
}
