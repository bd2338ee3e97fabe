//! A U-Net engine with the samples of a batch in the vector lanes: [`LaneUNet`] and its
//! [`LaneWorkspace`].
//!
//! [`crate::UNet`] puts channels in the lanes, which wastes most of them when a network is
//! narrow (5, 8 or 16 channels) and spends half its work on the zero halo when the volumes are
//! small (a 7³ block is a 9³ grid once padded). This engine is for that case — small volumes
//! (the fMRI U-Net's 7×7×7 blocks, small planar patches) run in large batches: it takes the
//! samples 16 at a time (a *group*, the last one zero-filled), one sample per lane, and lays
//! every activation out as `[channel][position][16 samples]` over one padded grid per group.
//! Any channel count then fills every lane, a tap is a constant offset, and the zero halo is
//! read for free but never computed. Use [`crate::UNet`] for large frames (where channels are
//! wide and the halo is thin) and for batches much smaller than 16.
//!
//! A convolution tile computes a few interior positions × a few output channels in registers:
//! per input channel and tap it loads the positions' vectors, broadcasts each weight and
//! multiplies; bias and ReLU are applied on the way out. Weights are packed once, at
//! construction, in the order the tile reads them. Each thread takes whole groups through the
//! whole network with its own activations (one group's worth, about the size of an L2 cache);
//! results do not depend on how many threads run.

use std::sync::Mutex;

use crate::dispatch::Isa;
use crate::layout::halo_for;
use crate::unet::{ConvWeights, UNetShape, check_unet, level_sizes};
use crate::{KernelError, LANES};

/// Samples per group: one per lane of an AVX-512 register.
const GROUP: usize = LANES;

/// Positions × output channels of the largest tile, per instruction set. AVX-512: 6 × 4
/// accumulators + 4 broadcast weights + 1 loaded input = 29 of 32 registers, and 10 loads per
/// 24 FMAs, well under the two loads a cycle (3 × 8 measures the same on the fMRI network;
/// 4-wide chunks split more channel counts evenly). AVX2 holds a position in two registers:
/// 3 × 2 × 2 accumulators + 2 weights + 1 input = 15 of 16. The portable tile is left to the
/// compiler's vectors; on baseline x86-64 (16 SSE registers of 4) anything larger than one
/// position × 2 channels spills and runs 5× slower.
fn tile_limits(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Avx512 => (6, 4),
        Isa::Avx2 => (3, 2),
        Isa::Portable => (1, 2),
    }
}

/// One convolution's weights, packed per chunk of output channels.
#[derive(Clone, Debug)]
struct LaneConv {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 3],
    relu: bool,
    chunks: Vec<Chunk>,
}

/// Output channels `first..first + width`: weights `[input channel][tap][width]` (the order a
/// tile reads them, so the inner loop walks them forwards) and bias `[width]`.
#[derive(Clone, Debug)]
struct Chunk {
    first: usize,
    width: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl LaneConv {
    fn new(isa: Isa, conv: &ConvWeights, relu: bool) -> Self {
        let taps: usize = conv.kernel.iter().product();
        let (_, most) = tile_limits(isa);
        // Chunks as even as they can be: 6 channels are 3 + 3 rather than 4 + 2, so that no
        // tile runs with a small share of its registers.
        let count = conv.out_channels.div_ceil(most);
        let mut chunks = Vec::with_capacity(count);
        let mut first = 0;
        for index in 0..count {
            let width = (conv.out_channels - first).div_ceil(count - index);
            let mut weights = Vec::with_capacity(conv.in_channels * taps * width);
            for input in 0..conv.in_channels {
                for tap in 0..taps {
                    for output in first..first + width {
                        weights.push(conv.weight[(output * conv.in_channels + input) * taps + tap]);
                    }
                }
            }
            chunks.push(Chunk {
                first,
                width,
                weights,
                bias: conv.bias[first..first + width].to_vec(),
            });
            first += width;
        }
        Self {
            in_channels: conv.in_channels,
            out_channels: conv.out_channels,
            kernel: conv.kernel,
            relu,
            chunks,
        }
    }
}

/// A U-Net with its weights packed for one instruction set, run with samples in the lanes.
/// Same networks, inputs and outputs as [`crate::UNet`].
#[derive(Clone, Debug)]
pub struct LaneUNet {
    isa: Isa,
    in_channels: usize,
    widths: Vec<usize>,
    bottleneck_width: usize,
    pools: Vec<[usize; 3]>,
    /// In execution order: encoder, bottleneck, decoder (deepest first), final.
    convs: Vec<LaneConv>,
    threads: usize,
}

impl LaneUNet {
    /// Packs `convs` (in execution order) for the best instruction set of this CPU.
    pub fn new(convs: &[ConvWeights], pools: &[[usize; 3]]) -> Result<Self, KernelError> {
        Self::with_isa(Isa::detected(), convs, pools)
    }

    /// Packs `convs` for `isa` (which the CPU must support: see [`Isa::supported`]).
    pub fn with_isa(
        isa: Isa,
        convs: &[ConvWeights],
        pools: &[[usize; 3]],
    ) -> Result<Self, KernelError> {
        let UNetShape {
            in_channels,
            widths,
            bottleneck_width,
        } = check_unet(isa, convs, pools)?;
        let last = convs.len() - 1;
        Ok(Self {
            isa,
            in_channels,
            widths,
            bottleneck_width,
            pools: pools.to_vec(),
            convs: convs
                .iter()
                .enumerate()
                .map(|(index, conv)| LaneConv::new(isa, conv, index != last))
                .collect(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// The instruction set the weights were packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads the groups of 16 samples are split over (default: the CPUs available).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    fn depth(&self) -> usize {
        self.pools.len()
    }

    /// Channels upsampled into level `level`'s decoder input.
    fn up_channels(&self, level: usize) -> usize {
        if level + 1 == self.depth() {
            self.bottleneck_width
        } else {
            self.widths[level + 1]
        }
    }

    /// Runs the network on `samples` inputs `[samples][in_channels][depth][height][width]`
    /// of interior `size`; writes `[samples][depth][height][width]` to `output`.
    pub fn forward(
        &self,
        workspace: &mut LaneWorkspace,
        input: &[f32],
        samples: usize,
        size: [usize; 3],
        output: &mut [f32],
    ) -> Result<(), KernelError> {
        let voxels: usize = size.iter().product();
        if input.len() != samples * self.in_channels * voxels || output.len() != samples * voxels {
            return Err(KernelError::Shape(format!(
                "{} input and {} output values for {samples} samples of {size:?} with {} channels",
                input.len(),
                output.len(),
                self.in_channels
            )));
        }
        if voxels == 0 {
            // Nothing to compute, but a size the pools cannot divide is still an error.
            level_sizes(&self.pools, size)?;
            return Ok(());
        }
        if samples == 0 {
            return Ok(());
        }
        let groups = samples.div_ceil(GROUP);
        let threads = self.threads.min(groups);
        self.prepare(workspace, size, threads)?;
        let plan = workspace.plan.as_ref().expect("prepared");
        let in_group = GROUP * self.in_channels * voxels;
        let out_group = GROUP * voxels;
        if threads == 1 {
            let scratch = &mut workspace.scratch[0];
            for (input, output) in input.chunks(in_group).zip(output.chunks_mut(out_group)) {
                self.group(plan, scratch, input, output);
            }
            return Ok(());
        }
        // Groups are handed out one at a time: the CPUs may be shared, and a thread that is
        // held up then takes fewer groups instead of making the others wait.
        let jobs = Mutex::new(input.chunks(in_group).zip(output.chunks_mut(out_group)));
        std::thread::scope(|scope| {
            for scratch in &mut workspace.scratch[..threads] {
                let jobs = &jobs;
                scope.spawn(move || {
                    loop {
                        let job = jobs.lock().expect("no thread panics holding it").next();
                        let Some((input, output)) = job else { break };
                        self.group(plan, scratch, input, output);
                    }
                });
            }
        });
        Ok(())
    }

    /// One group of up to 16 samples through the whole network.
    fn group(&self, plan: &Plan, s: &mut Scratch, input: &[f32], output: &mut [f32]) {
        let depth = self.depth();
        let levels = &plan.levels;
        let voxels = levels[0].voxels();
        let samples = output.len() / voxels;
        pack_input(
            &levels[0],
            self.in_channels,
            samples,
            input,
            &mut s.front[0],
        );
        for level in 0..depth {
            let geometry = &levels[level];
            let skip_start = self.up_channels(level) * geometry.channel_len();
            // The encoder's output is written straight into the decoder input's channels
            // after the upsampled ones: the concatenation costs nothing.
            let skip = &mut s.concat[level].as_mut_slice()[skip_start..];
            self.conv(level, geometry, &plan.taps[level], &s.front[level], skip);
            max_pool(
                geometry,
                &levels[level + 1],
                self.widths[level],
                self.pools[level],
                skip,
                &mut s.front[level + 1],
            );
        }
        self.conv(
            depth,
            &levels[depth],
            &plan.taps[depth],
            &s.front[depth],
            &mut s.bottleneck,
        );
        for level in (0..depth).rev() {
            let below = if level + 1 == depth {
                &s.bottleneck
            } else {
                &s.front[level + 1]
            };
            upsample(
                &levels[level + 1],
                &levels[level],
                self.up_channels(level),
                self.pools[level],
                below,
                &mut s.concat[level],
            );
            let index = 2 * depth - level;
            self.conv(
                index,
                &levels[level],
                &plan.taps[index],
                &s.concat[level],
                &mut s.front[level],
            );
        }
        // The last conv writes into a level-0 buffer that is dead by then: the first decoder
        // input when there is one, else the network's input.
        let index = 2 * depth + 1;
        let taps = &plan.taps[index];
        let last = if depth == 0 {
            self.conv(index, &levels[0], taps, &s.bottleneck, &mut s.front[0]);
            &s.front[0]
        } else {
            self.conv(index, &levels[0], taps, &s.front[0], &mut s.concat[0]);
            &s.concat[0]
        };
        read_output(&levels[0], samples, last, output);
    }

    /// Convolution `index` on one group laid out by `geometry`, `taps` its offsets there.
    fn conv(
        &self,
        index: usize,
        geometry: &Level,
        taps: &[isize],
        input: &[f32],
        output: &mut [f32],
    ) {
        let conv = &self.convs[index];
        let stride = geometry.channel_len();
        assert!(input.len() >= conv.in_channels * stride, "input too short");
        assert!(
            output.len() >= conv.out_channels * stride,
            "output too short"
        );
        let (input, output) = (input.as_ptr(), output.as_mut_ptr());
        for tile in &geometry.tiles {
            let positions = &geometry.interior[tile.clone()];
            for chunk in &conv.chunks {
                let args = Tile {
                    input,
                    stride,
                    in_channels: conv.in_channels,
                    taps,
                    weights: chunk.weights.as_ptr(),
                    bias: chunk.bias.as_ptr(),
                    relu: conv.relu,
                    // SAFETY: the chunk's channels are inside `output` (asserted above).
                    output: unsafe { output.add(chunk.first * stride) },
                };
                // SAFETY: positions are interior and the plan checked that the halo covers
                // every tap's reach, so every read and write is inside the buffers.
                unsafe { run_tile(self.isa, positions, chunk.width, &args) };
            }
        }
    }

    /// Sizes `workspace` for inputs of `size` and `threads` threads (kept when it fits).
    fn prepare(
        &self,
        workspace: &mut LaneWorkspace,
        size: [usize; 3],
        threads: usize,
    ) -> Result<(), KernelError> {
        let fits = workspace
            .plan
            .as_ref()
            .is_some_and(|plan| plan.fits(self, size));
        if !fits {
            workspace.plan = Some(Plan::new(self, size)?);
            workspace.scratch.clear();
        }
        let plan = workspace.plan.as_ref().expect("just made");
        while workspace.scratch.len() < threads {
            workspace.scratch.push(Scratch::new(self, plan));
        }
        Ok(())
    }
}

/// The padded grid of one level for one group.
#[derive(Debug)]
struct Level {
    /// Interior sides `[depth, height, width]`.
    size: [usize; 3],
    /// Halo before the interior per axis.
    before: [usize; 3],
    /// Padded sides.
    padded: [usize; 3],
    /// Float offset (position × 16) of every interior voxel, in `[z][y][x]` order.
    interior: Vec<usize>,
    /// Ranges of `interior` computed by one tile each.
    tiles: Vec<std::ops::Range<usize>>,
}

impl Level {
    fn new(size: [usize; 3], kernels: &[[usize; 3]], most: usize) -> Self {
        let (before, after) = halo_for(kernels);
        let padded = [0, 1, 2].map(|a| size[a] + before[a] + after[a]);
        let mut level = Self {
            size,
            before,
            padded,
            interior: Vec::new(),
            tiles: Vec::new(),
        };
        for z in 0..size[0] {
            for y in 0..size[1] {
                for x in 0..size[2] {
                    level.interior.push(level.position([z, y, x]) * GROUP);
                }
            }
        }
        // Tiles as even as they can be (343 positions are 52 × 6 + 6 × 5, not 57 × 6 + 1).
        let count = level.interior.len().div_ceil(most);
        let mut start = 0;
        for index in 0..count {
            let len = (level.interior.len() - start).div_ceil(count - index);
            level.tiles.push(start..start + len);
            start += len;
        }
        level
    }

    fn voxels(&self) -> usize {
        self.interior.len()
    }

    /// Position strides of the three axes.
    fn strides(&self) -> [usize; 3] {
        [self.padded[1] * self.padded[2], self.padded[2], 1]
    }

    /// Position of interior voxel `(z, y, x)`.
    fn position(&self, [z, y, x]: [usize; 3]) -> usize {
        let s = self.strides();
        (z + self.before[0]) * s[0] + (y + self.before[1]) * s[1] + x + self.before[2]
    }

    /// Floats of one channel: every padded position × 16 samples.
    fn channel_len(&self) -> usize {
        self.padded.iter().product::<usize>() * GROUP
    }

    /// Float offsets of `kernel`'s taps (Keras `same`: `(k - 1) / 2` before), which the halo
    /// must cover.
    fn taps(&self, kernel: [usize; 3]) -> Vec<isize> {
        let before = kernel.map(|k| (k - 1) / 2);
        for axis in 0..3 {
            assert!(
                self.before[axis] >= before[axis]
                    && self.padded[axis] - self.size[axis] - self.before[axis]
                        >= kernel[axis] - 1 - before[axis],
                "halo narrower than the kernel"
            );
        }
        let strides = self.strides();
        let mut taps = Vec::with_capacity(kernel.iter().product());
        for kz in 0..kernel[0] {
            for ky in 0..kernel[1] {
                for kx in 0..kernel[2] {
                    let offset = (kz as isize - before[0] as isize) * strides[0] as isize
                        + (ky as isize - before[1] as isize) * strides[1] as isize
                        + (kx as isize - before[2] as isize);
                    taps.push(offset * GROUP as isize);
                }
            }
        }
        taps
    }
}

/// What a workspace was sized for: the levels of one input size and every conv's taps there.
#[derive(Debug)]
struct Plan {
    size: [usize; 3],
    pools: Vec<[usize; 3]>,
    /// `(in, out, kernel)` of every conv, to tell networks apart.
    convs: Vec<(usize, usize, [usize; 3])>,
    levels: Vec<Level>,
    /// Per conv (execution order): tap offsets in floats on its level.
    taps: Vec<Vec<isize>>,
}

impl Plan {
    fn new(net: &LaneUNet, size: [usize; 3]) -> Result<Self, KernelError> {
        let depth = net.depth();
        let sizes = level_sizes(&net.pools, size)?;
        let kernel = |index: usize| net.convs[index].kernel;
        let (most, _) = tile_limits(net.isa);
        let levels: Vec<Level> = (0..=depth)
            .map(|level| {
                let mut kernels = Vec::new();
                if level < depth {
                    kernels.push(kernel(level));
                    kernels.push(kernel(2 * depth - level));
                } else {
                    kernels.push(kernel(depth));
                }
                if level == 0 {
                    kernels.push(kernel(2 * depth + 1));
                }
                Level::new(sizes[level], &kernels, most)
            })
            .collect();
        // Encoder convs run on their level, the bottleneck on the deepest, decoder conv
        // `2 × depth - level` on `level`, and the final conv on the first.
        let conv_level = |index: usize| {
            if index <= depth {
                index
            } else {
                (2 * depth).saturating_sub(index)
            }
        };
        let taps = (0..net.convs.len())
            .map(|index| levels[conv_level(index)].taps(kernel(index)))
            .collect();
        Ok(Self {
            size,
            pools: net.pools.clone(),
            convs: Self::signature(net).collect(),
            levels,
            taps,
        })
    }

    fn signature(net: &LaneUNet) -> impl Iterator<Item = (usize, usize, [usize; 3])> + '_ {
        net.convs
            .iter()
            .map(|conv| (conv.in_channels, conv.out_channels, conv.kernel))
    }

    fn fits(&self, net: &LaneUNet, size: [usize; 3]) -> bool {
        self.size == size
            && self.pools == net.pools
            && self.convs.iter().copied().eq(Self::signature(net))
    }
}

/// A buffer of floats starting on a 64-byte boundary, so that every channel (a multiple of
/// 16 floats) and every position's vector is aligned and no load straddles two cache lines.
#[derive(Debug)]
struct Aligned {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` zeros. The halo is never written after this, so it stays zero.
    fn zeros(len: usize) -> Self {
        let data = vec![0f32; len + GROUP];
        let start = data.as_ptr().align_offset(64).min(GROUP);
        Self { data, start, len }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[self.start..self.start + self.len]
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
}

/// One thread's activations for one group. Buffers are shared by values whose lives do not
/// overlap, to keep a thread's footprint near the L2 cache's size (the fMRI network's
/// activations take 2.0 MiB instead of 2.3); sharing is safe because every buffer of a level
/// has the same halo, which stays zero, and every value is written before it is read.
#[derive(Debug)]
struct Scratch {
    /// Per level: its input (the network's input, or the pooled encoder output), then, once
    /// the encoder conv has read it, the decoder conv's output.
    front: Vec<Aligned>,
    /// Per level above the bottleneck: `[upsampled channels | encoder output channels]`; on
    /// level 0 it takes the final conv's output at the end.
    concat: Vec<Aligned>,
    bottleneck: Aligned,
}

impl Scratch {
    fn new(net: &LaneUNet, plan: &Plan) -> Self {
        let depth = net.depth();
        let buffer = |level: usize, channels: usize| {
            Aligned::zeros(channels * plan.levels[level].channel_len())
        };
        let front_channels = |level: usize| {
            let input = if level == 0 {
                net.in_channels
            } else {
                net.widths[level - 1]
            };
            let output = if level < depth { net.widths[level] } else { 1 };
            input.max(output)
        };
        Self {
            front: (0..=depth).map(|l| buffer(l, front_channels(l))).collect(),
            concat: (0..depth)
                .map(|l| buffer(l, net.up_channels(l) + net.widths[l]))
                .collect(),
            bottleneck: buffer(depth, net.bottleneck_width),
        }
    }

    fn floats(&self) -> usize {
        self.bottleneck.len()
            + [&self.front, &self.concat]
                .iter()
                .flat_map(|buffers| buffers.iter())
                .map(|buffer| buffer.len())
                .sum::<usize>()
    }
}

/// The activations of [`LaneUNet`]'s forward passes: one group's worth per thread, kept
/// between calls of the same input size so that nothing is allocated or zeroed per call.
#[derive(Debug, Default)]
pub struct LaneWorkspace {
    plan: Option<Plan>,
    scratch: Vec<Scratch>,
}

impl LaneWorkspace {
    /// An empty workspace; the first forward pass sizes it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.scratch.iter().map(Scratch::floats).sum::<usize>() * 4
    }
}

/// Writes `samples` (≤ 16) inputs `[sample][channel][voxel]` into lanes; the lanes of absent
/// samples are zeroed (they may hold an earlier group's values). Each position's 16 lanes are
/// gathered and written at once: writing one lane at a time would touch every cache line of
/// the channel 16 times.
fn pack_input(level: &Level, channels: usize, samples: usize, input: &[f32], target: &mut [f32]) {
    let voxels = level.voxels();
    let stride = level.channel_len();
    for c in 0..channels {
        let channel = &mut target[c * stride..][..stride];
        let sources: [&[f32]; GROUP] = std::array::from_fn(|lane| {
            if lane < samples {
                &input[(lane * channels + c) * voxels..][..voxels]
            } else {
                &[]
            }
        });
        for (v, &at) in level.interior.iter().enumerate() {
            let lanes: [f32; GROUP] =
                std::array::from_fn(|lane| sources[lane].get(v).copied().unwrap_or(0.0));
            channel[at..at + GROUP].copy_from_slice(&lanes);
        }
    }
}

/// Max-pools (floor) `channels` channels from `source` (laid out by `from`) into `target`
/// (laid out by `to`).
fn max_pool(
    from: &Level,
    to: &Level,
    channels: usize,
    pool: [usize; 3],
    source: &[f32],
    target: &mut [f32],
) {
    let (from_len, to_len) = (from.channel_len(), to.channel_len());
    let [d, h, w] = to.size;
    for c in 0..channels {
        let source = &source[c * from_len..][..from_len];
        let target = &mut target[c * to_len..][..to_len];
        for z in 0..d {
            for y in 0..h {
                for x in 0..w {
                    let mut best = [f32::NEG_INFINITY; GROUP];
                    for dz in 0..pool[0] {
                        for dy in 0..pool[1] {
                            for dx in 0..pool[2] {
                                let at = from.position([
                                    z * pool[0] + dz,
                                    y * pool[1] + dy,
                                    x * pool[2] + dx,
                                ]) * GROUP;
                                for (b, &v) in best.iter_mut().zip(&source[at..at + GROUP]) {
                                    *b = b.max(v);
                                }
                            }
                        }
                    }
                    let at = to.position([z, y, x]) * GROUP;
                    target[at..at + GROUP].copy_from_slice(&best);
                }
            }
        }
    }
}

/// Nearest upsampling by `factor` of `channels` channels from `source` (laid out by `from`)
/// into the first channels of `target` (laid out by `to`); voxels of `to` past `from`'s
/// interior × `factor` are zero (Keras pads the upsampled map to the skip's size).
fn upsample(
    from: &Level,
    to: &Level,
    channels: usize,
    factor: [usize; 3],
    source: &[f32],
    target: &mut [f32],
) {
    let (from_len, to_len) = (from.channel_len(), to.channel_len());
    let [d, h, w] = to.size;
    for c in 0..channels {
        let source = &source[c * from_len..][..from_len];
        let target = &mut target[c * to_len..][..to_len];
        for z in 0..d {
            for y in 0..h {
                for x in 0..w {
                    let (sz, sy, sx) = (z / factor[0], y / factor[1], x / factor[2]);
                    let at = to.position([z, y, x]) * GROUP;
                    let target = &mut target[at..at + GROUP];
                    if sz < from.size[0] && sy < from.size[1] && sx < from.size[2] {
                        let src = from.position([sz, sy, sx]) * GROUP;
                        target.copy_from_slice(&source[src..src + GROUP]);
                    } else {
                        target.fill(0.0);
                    }
                }
            }
        }
    }
}

/// The one output channel back to `[sample][voxel]`, for the group's `samples` samples (as in
/// [`pack_input`], a position's lanes are read together).
fn read_output(level: &Level, samples: usize, source: &[f32], output: &mut [f32]) {
    let voxels = level.voxels();
    let mut chunks = output.chunks_exact_mut(voxels);
    let mut targets: [&mut [f32]; GROUP] =
        std::array::from_fn(|_| chunks.next().unwrap_or(&mut []));
    for (v, &at) in level.interior.iter().enumerate() {
        let lanes = &source[at..at + GROUP];
        for (target, &value) in targets[..samples].iter_mut().zip(lanes) {
            target[v] = value;
        }
    }
}

/// What a tile needs besides its positions.
struct Tile<'a> {
    /// Input channel 0, position 0.
    input: *const f32,
    /// Floats per channel (input and output lie on the same grid).
    stride: usize,
    in_channels: usize,
    /// Tap offsets in floats.
    taps: &'a [isize],
    /// The chunk's weights, `[input channel][tap][width]`.
    weights: *const f32,
    bias: *const f32,
    relu: bool,
    /// The chunk's first output channel, position 0.
    output: *mut f32,
}

type Kernel = unsafe fn(&Tile<'_>, &[usize]);

/// Picks the kernel for `R` positions and `width` output channels.
fn by_width<const R: usize>(isa: Isa, width: usize) -> Kernel {
    macro_rules! pick {
        ($($c:literal)*) => {
            match (isa, width) {
                $(
                    #[cfg(target_arch = "x86_64")]
                    (Isa::Avx512, $c) => x86::tile_avx512::<R, $c>,
                    #[cfg(target_arch = "x86_64")]
                    (Isa::Avx2, $c) => x86::tile_avx2::<R, $c>,
                    (_, $c) => tile_portable::<R, $c>,
                )*
                _ => unreachable!("no kernel for {width} output channels"),
            }
        };
    }
    pick!(1 2 3 4)
}

/// # Safety
/// `args` and `positions` (float offsets, at most 6) must describe buffers that hold every
/// position the tile reads and writes; `width` ≤ 4; the CPU must support `isa`.
unsafe fn run_tile(isa: Isa, positions: &[usize], width: usize, args: &Tile<'_>) {
    let kernel = match positions.len() {
        1 => by_width::<1>(isa, width),
        2 => by_width::<2>(isa, width),
        3 => by_width::<3>(isa, width),
        4 => by_width::<4>(isa, width),
        5 => by_width::<5>(isa, width),
        6 => by_width::<6>(isa, width),
        n => unreachable!("no kernel for {n} positions"),
    };
    unsafe { kernel(args, positions) }
}

/// # Safety
/// As [`run_tile`].
unsafe fn tile_portable<const R: usize, const C: usize>(t: &Tile<'_>, positions: &[usize]) {
    let positions: &[usize; R] = positions.try_into().expect("R positions");
    unsafe {
        let mut acc = [[[0f32; GROUP]; C]; R];
        for row in acc.iter_mut() {
            for (c, lanes) in row.iter_mut().enumerate() {
                *lanes = [*t.bias.add(c); GROUP];
            }
        }
        let mut w = t.weights;
        for channel in 0..t.in_channels {
            let base = t.input.add(channel * t.stride);
            for &tap in t.taps {
                let a = base.offset(tap);
                let weights: [f32; C] = std::array::from_fn(|c| *w.add(c));
                w = w.add(C);
                for (row, &p) in acc.iter_mut().zip(positions) {
                    let x = &*(a.add(p) as *const [f32; GROUP]);
                    for (lanes, &weight) in row.iter_mut().zip(&weights) {
                        for (value, &x) in lanes.iter_mut().zip(x) {
                            *value += x * weight;
                        }
                    }
                }
            }
        }
        for (row, &p) in acc.iter().zip(positions) {
            for (c, lanes) in row.iter().enumerate() {
                let out = &mut *(t.output.add(c * t.stride + p) as *mut [f32; GROUP]);
                for (o, &value) in out.iter_mut().zip(lanes) {
                    *o = if t.relu { value.max(0.0) } else { value };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Tile;
    use std::arch::x86_64::*;

    /// `R` positions × `C` output channels in `R × C` registers of 16 samples. (Loads and
    /// stores are the unaligned forms, as fast as the aligned ones on the aligned addresses
    /// [`super::Aligned`] gives them.)
    ///
    /// # Safety
    /// As [`super::run_tile`]; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_avx512<const R: usize, const C: usize>(t: &Tile<'_>, positions: &[usize]) {
        let positions: &[usize; R] = positions.try_into().expect("R positions");
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; R];
            for row in acc.iter_mut() {
                for (c, value) in row.iter_mut().enumerate() {
                    *value = _mm512_set1_ps(*t.bias.add(c));
                }
            }
            let mut w = t.weights;
            for channel in 0..t.in_channels {
                let base = t.input.add(channel * t.stride);
                for &tap in t.taps {
                    let a = base.offset(tap);
                    let weights: [__m512; C] = std::array::from_fn(|c| _mm512_set1_ps(*w.add(c)));
                    w = w.add(C);
                    for (row, &p) in acc.iter_mut().zip(positions) {
                        let x = _mm512_loadu_ps(a.add(p));
                        for (value, &weight) in row.iter_mut().zip(&weights) {
                            *value = _mm512_fmadd_ps(x, weight, *value);
                        }
                    }
                }
            }
            let zero = _mm512_setzero_ps();
            for (row, &p) in acc.iter().zip(positions) {
                for (c, &value) in row.iter().enumerate() {
                    let value = if t.relu {
                        _mm512_max_ps(value, zero)
                    } else {
                        value
                    };
                    _mm512_storeu_ps(t.output.add(c * t.stride + p), value);
                }
            }
        }
    }

    /// `R` positions × `C` output channels, each 16 samples in two 8-lane registers.
    ///
    /// # Safety
    /// As [`super::run_tile`]; the CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2<const R: usize, const C: usize>(t: &Tile<'_>, positions: &[usize]) {
        let positions: &[usize; R] = positions.try_into().expect("R positions");
        unsafe {
            let mut acc = [[[_mm256_setzero_ps(); 2]; C]; R];
            for row in acc.iter_mut() {
                for (c, halves) in row.iter_mut().enumerate() {
                    *halves = [_mm256_set1_ps(*t.bias.add(c)); 2];
                }
            }
            let mut w = t.weights;
            for channel in 0..t.in_channels {
                let base = t.input.add(channel * t.stride);
                for &tap in t.taps {
                    let a = base.offset(tap);
                    let weights: [__m256; C] = std::array::from_fn(|c| _mm256_set1_ps(*w.add(c)));
                    w = w.add(C);
                    for (row, &p) in acc.iter_mut().zip(positions) {
                        for half in 0..2 {
                            let x = _mm256_loadu_ps(a.add(p + 8 * half));
                            for (halves, &weight) in row.iter_mut().zip(&weights) {
                                halves[half] = _mm256_fmadd_ps(x, weight, halves[half]);
                            }
                        }
                    }
                }
            }
            let zero = _mm256_setzero_ps();
            for (row, &p) in acc.iter().zip(positions) {
                for (c, halves) in row.iter().enumerate() {
                    for (half, &value) in halves.iter().enumerate() {
                        let value = if t.relu {
                            _mm256_max_ps(value, zero)
                        } else {
                            value
                        };
                        _mm256_storeu_ps(t.output.add(c * t.stride + p + 8 * half), value);
                    }
                }
            }
        }
    }
}
