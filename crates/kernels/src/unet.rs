//! A DeepInterpolation U-Net (planar or volumetric) run by this crate's kernels: encoder
//! conv + ReLU levels separated by max-pooling (floor), a bottleneck conv, a decoder that
//! upsamples (nearest, zero-padded to the skip's size), concatenates `[upsampled, skip]` and
//! applies conv + ReLU, then a linear conv to one channel.
//!
//! The concatenation is never copied: each level's decoder input is one set of channel
//! blocks, the upsampled map written into its first blocks and the encoder conv's output
//! written straight into the rest.

use crate::arena::{Act, Arena, Need};
use crate::backward::GradBuffers;
use crate::conv::{Method, PackedConv};
use crate::dispatch::Isa;
use crate::layout::{Geometry, blocks, halo_for};
use crate::resample::{max_pool, pack_planes, project_output, read_output, upsample};
use crate::{KernelError, LANES};

/// One convolution's weights as burn stores them.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    /// Output channels.
    pub out_channels: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Kernel sides `[depth, height, width]` (a planar kernel has depth 1).
    pub kernel: [usize; 3],
    /// `[out][in][depth][height][width]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// A U-Net with its weights packed for one instruction set.
#[derive(Clone, Debug)]
pub struct UNet {
    isa: Isa,
    in_channels: usize,
    widths: Vec<usize>,
    bottleneck_width: usize,
    pools: Vec<[usize; 3]>,
    /// In execution order: encoder, bottleneck, decoder (deepest first), final.
    pub(crate) convs: Vec<PackedConv>,
    /// The weights as given, kept for the backward pass (its flipped kernels and the order
    /// of its weight gradients).
    pub(crate) weights: Vec<ConvWeights>,
    /// Per convolution: the channel slot of each input channel, and input blocks read.
    pub(crate) slots: Vec<(Vec<usize>, usize)>,
    pub(crate) method: Method,
    pub(crate) threads: usize,
    /// The last convolution's weights (padded to whole blocks) and bias when it is 1×1 to
    /// one channel: inference computes it while reading the output back.
    readout: Option<(Vec<f32>, f32)>,
}

impl UNet {
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
        Self::with_method(isa, Method::Auto, convs, pools)
    }

    /// As [`UNet::with_isa`], every convolution computed by `method` (tests compare them).
    #[doc(hidden)]
    pub fn with_method(
        isa: Isa,
        method: Method,
        convs: &[ConvWeights],
        pools: &[[usize; 3]],
    ) -> Result<Self, KernelError> {
        let UNetShape {
            in_channels,
            widths,
            bottleneck_width,
        } = check_unet(isa, convs, pools)?;
        let depth = pools.len();
        let contiguous = |channels: usize| (0..channels).collect::<Vec<_>>();
        let all_slots: Vec<(Vec<usize>, usize)> = convs
            .iter()
            .enumerate()
            .map(|(index, conv)| {
                if index > depth && index <= 2 * depth {
                    let level = 2 * depth - index;
                    let up = conv.in_channels - widths[level];
                    let up_slots = blocks(up) * LANES;
                    let slots: Vec<usize> = (0..conv.in_channels)
                        .map(|c| if c < up { c } else { up_slots + c - up })
                        .collect();
                    (slots, blocks(up) + blocks(widths[level]))
                } else {
                    (contiguous(conv.in_channels), blocks(conv.in_channels))
                }
            })
            .collect();
        // Packing is independent per convolution and, for a large network, as long as a
        // layer's run (training packs every step): one thread each.
        let packed: Vec<PackedConv> = std::thread::scope(|scope| {
            let handles: Vec<_> = convs
                .iter()
                .zip(&all_slots)
                .enumerate()
                .map(|(index, (conv, (slots, in_blocks)))| {
                    scope.spawn(move || {
                        PackedConv::with_method(
                            method,
                            isa,
                            &conv.weight,
                            &conv.bias,
                            conv.out_channels,
                            slots,
                            *in_blocks,
                            conv.kernel,
                            index != 2 * depth + 1,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("packing thread"))
                .collect()
        });
        let last = &convs[2 * depth + 1];
        let readout = (last.kernel == [1, 1, 1] && last.out_channels == 1).then(|| {
            let mut weight = last.weight.clone();
            weight.resize(blocks(last.in_channels) * LANES, 0.0);
            (weight, last.bias[0])
        });
        Ok(Self {
            readout,
            isa,
            in_channels,
            widths,
            bottleneck_width,
            pools: pools.to_vec(),
            convs: packed,
            weights: convs.to_vec(),
            slots: all_slots,
            method,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// Frees the copy of the weights kept for [`UNet::backward`] (as large as the model's
    /// parameters): a network used only for inference then holds its packed weights alone.
    pub fn drop_backward_weights(&mut self) {
        self.weights = Vec::new();
    }

    /// The instruction set the weights were packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads each convolution splits its positions over (default: the CPUs available).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Pool sides below each encoder level.
    pub(crate) fn pools(&self) -> &[[usize; 3]] {
        &self.pools
    }

    /// Output channels of each encoder level.
    pub(crate) fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Runs the network on `samples` inputs `[samples][in_channels][depth][height][width]`
    /// of interior `size`; writes `[samples][depth][height][width]` to `output`.
    pub fn forward(
        &self,
        workspace: &mut Workspace,
        input: &[f32],
        samples: usize,
        size: [usize; 3],
        output: &mut [f32],
    ) -> Result<(), KernelError> {
        let planes = self.planes(input, samples, size)?;
        self.run_forward(workspace, &planes, samples, size, output, false)
    }

    /// As [`UNet::forward`], each sample's input channels given as separate planes
    /// (`planes[n * in_channels + c]`, `[depth][height][width]` each): a sliding window of
    /// frames goes in without being copied into one batch first.
    pub fn forward_planes(
        &self,
        workspace: &mut Workspace,
        planes: &[&[f32]],
        samples: usize,
        size: [usize; 3],
        output: &mut [f32],
    ) -> Result<(), KernelError> {
        self.run_forward(workspace, planes, samples, size, output, false)
    }

    /// As [`UNet::forward`], in a workspace laid out for [`UNet::backward`] to follow: halos
    /// wide enough for the flipped kernels too. Every activation the backward pass reads
    /// stays in the workspace until the next forward pass.
    pub fn forward_for_training(
        &self,
        workspace: &mut Workspace,
        input: &[f32],
        samples: usize,
        size: [usize; 3],
        output: &mut [f32],
    ) -> Result<(), KernelError> {
        let planes = self.planes(input, samples, size)?;
        self.run_forward(workspace, &planes, samples, size, output, true)
    }

    /// `input` (`[samples][in_channels][voxels]`) cut into planes, or why it does not fit.
    fn planes<'a>(
        &self,
        input: &'a [f32],
        samples: usize,
        size: [usize; 3],
    ) -> Result<Vec<&'a [f32]>, KernelError> {
        let voxels: usize = size.iter().product();
        if input.len() != samples * self.in_channels * voxels {
            return Err(KernelError::Shape(format!(
                "{} input values for {samples} samples of {size:?} with {} channels",
                input.len(),
                self.in_channels
            )));
        }
        Ok(input.chunks_exact(voxels.max(1)).collect())
    }

    fn run_forward(
        &self,
        workspace: &mut Workspace,
        planes: &[&[f32]],
        samples: usize,
        size: [usize; 3],
        output: &mut [f32],
        training: bool,
    ) -> Result<(), KernelError> {
        let voxels: usize = size.iter().product();
        if planes.len() != samples * self.in_channels
            || planes.iter().any(|plane| plane.len() != voxels)
            || output.len() != samples * voxels
        {
            return Err(KernelError::Shape(format!(
                "{} input planes and {} output values for {samples} samples of {size:?} with {} channels",
                planes.len(),
                output.len(),
                self.in_channels
            )));
        }
        if samples == 0 {
            workspace.samples = 0;
            return Ok(());
        }
        self.prepare(workspace, samples, size, training)?;
        workspace.samples = samples;
        let depth = self.pools.len();
        let threads = self.threads;
        let ws = workspace;
        let geo = &ws.geometries;
        let arena = &mut ws.activations;
        let from_planes = self.first_conv_reads_planes(geo, training);
        if !from_planes {
            arena.clear_halo(Act::Input, &geo[0], samples, blocks(self.in_channels));
            pack_planes(
                self.isa,
                &geo[0],
                samples,
                self.in_channels,
                planes,
                arena.get_mut(Act::Input),
            );
        }
        for level in 0..depth {
            let concat_blocks = blocks(self.up_channels(level)) + blocks(self.widths[level]);
            arena.clear_halo(Act::Concat(level), &geo[level], samples, concat_blocks);
            let skip_start = blocks(self.up_channels(level)) * geo[level].block_len();
            if level == 0 && from_planes {
                let skip = &mut arena.get_mut(Act::Concat(0))[skip_start..];
                self.convs[0].run_from_planes(&geo[0], samples, planes, skip, threads);
            } else {
                let source = if level == 0 {
                    Act::Input
                } else {
                    Act::Pooled(level - 1)
                };
                let (source, concat) = arena.read_write(source, Act::Concat(level));
                let skip = &mut concat[skip_start..];
                self.convs[level].run(&geo[level], samples, source, skip, threads);
            }
            let width_blocks = blocks(self.widths[level]);
            arena.clear_halo(Act::Pooled(level), &geo[level + 1], samples, width_blocks);
            let (concat, pooled) = arena.read_write(Act::Concat(level), Act::Pooled(level));
            max_pool(
                &geo[level],
                &geo[level + 1],
                samples,
                width_blocks,
                self.pools[level],
                &concat[skip_start..],
                pooled,
            );
        }
        let bottom_input = if depth == 0 {
            Act::Input
        } else {
            Act::Pooled(depth - 1)
        };
        let bottleneck_blocks = blocks(self.bottleneck_width);
        arena.clear_halo(Act::Bottleneck, &geo[depth], samples, bottleneck_blocks);
        let (source, bottleneck) = arena.read_write(bottom_input, Act::Bottleneck);
        self.convs[depth].run(&geo[depth], samples, source, bottleneck, threads);
        for level in (0..depth).rev() {
            let below = if level == depth - 1 {
                Act::Bottleneck
            } else {
                Act::Decoded(level + 1)
            };
            let (below, concat) = arena.read_write(below, Act::Concat(level));
            upsample(
                &geo[level + 1],
                &geo[level],
                samples,
                blocks(self.up_channels(level)),
                self.pools[level],
                below,
                concat,
            );
            let width_blocks = blocks(self.widths[level]);
            arena.clear_halo(Act::Decoded(level), &geo[level], samples, width_blocks);
            let (concat, decoded) = arena.read_write(Act::Concat(level), Act::Decoded(level));
            self.convs[2 * depth - level].run(&geo[level], samples, concat, decoded, threads);
        }
        let features = if depth == 0 {
            Act::Bottleneck
        } else {
            Act::Decoded(0)
        };
        match &self.readout {
            Some((weight, bias)) if !training => {
                let in_blocks = blocks(
                    self.widths
                        .first()
                        .copied()
                        .unwrap_or(self.bottleneck_width),
                );
                project_output(
                    self.isa,
                    &geo[0],
                    samples,
                    in_blocks,
                    arena.get(features),
                    weight,
                    *bias,
                    output,
                );
            }
            _ => {
                arena.clear_halo(Act::Last, &geo[0], samples, 1);
                let (features, last) = arena.read_write(features, Act::Last);
                self.convs[2 * depth + 1].run(&geo[0], samples, features, last, threads);
                read_output(&geo[0], samples, arena.get(Act::Last), output);
            }
        }
        Ok(())
    }

    /// Whether the first convolution reads the input planes itself (inference, Winograd,
    /// a geometry it can band): then the input is never packed whole and the workspace
    /// holds no input blocks.
    fn first_conv_reads_planes(&self, geometries: &[Geometry], training: bool) -> bool {
        !training && !self.pools.is_empty() && self.convs[0].reads_planes(&geometries[0])
    }

    /// What a workspace's layout depends on: channels, kernels and pools.
    fn signature(&self) -> Vec<usize> {
        let mut signature = vec![self.in_channels, self.bottleneck_width];
        signature.extend(&self.widths);
        signature.extend(self.convs.iter().flat_map(|c| c.kernel));
        signature.extend(self.pools.iter().flatten());
        signature
    }

    /// Channels upsampled into level `level`'s decoder input.
    pub(crate) fn up_channels(&self, level: usize) -> usize {
        if level + 1 == self.pools.len() {
            self.bottleneck_width
        } else {
            self.widths[level + 1]
        }
    }

    /// Sizes the workspace's buffers for `samples` inputs of `size` (kept when they fit).
    fn prepare(
        &self,
        workspace: &mut Workspace,
        samples: usize,
        size: [usize; 3],
        training: bool,
    ) -> Result<(), KernelError> {
        if let Some((capacity, held)) = workspace.shape
            && held == size
            && capacity >= samples
            && workspace.isa == Some(self.isa)
            && workspace.training == training
            && workspace.network == self.signature()
        {
            return Ok(());
        }
        let depth = self.pools.len();
        let sizes = level_sizes(&self.pools, size)?;
        let kernel = |index: usize| self.convs[index].kernel;
        let geometries: Vec<Geometry> = (0..=depth)
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
                let (mut before, mut after) = halo_for(&kernels);
                if training {
                    // The backward pass runs each kernel flipped, which reaches as far
                    // after a position as the kernel reaches before it (even kernels).
                    for axis in 0..3 {
                        let reach = before[axis].max(after[axis]);
                        before[axis] = reach;
                        after[axis] = reach;
                    }
                }
                Geometry {
                    size: sizes[level],
                    before,
                    after,
                    capacity: samples,
                }
            })
            .collect();
        let floats =
            |level: usize, channels: usize| blocks(channels) * geometries[level].block_len();
        let from_planes = self.first_conv_reads_planes(&geometries, training);
        let readout = self.readout.is_some() && !training;
        // Steps of a pass: 0 packs the input; level l's encoder conv is 1 + 2l, its pool
        // 2 + 2l; the bottleneck conv 1 + 2·depth; level l's upsampling 2 + 4·depth − 2l − 2
        // and its decoder conv one after; the last conv (or the readout) 2 + 4·depth. A
        // training pass keeps everything alive for the backward pass.
        let encoder = |level: usize| 1 + 2 * level;
        let pool = |level: usize| 2 + 2 * level;
        let bottom = 1 + 2 * depth;
        let up = |level: usize| 2 + 4 * depth - 2 * level - 2;
        let decoder = |level: usize| up(level) + 1;
        let end = 2 + 4 * depth;
        let live = |first: usize, last: usize| {
            if training {
                0..end + 1
            } else {
                first..last + 1
            }
        };
        let mut needs = vec![
            Need {
                act: Act::Input,
                floats: if from_planes {
                    0
                } else {
                    floats(0, self.in_channels)
                },
                live: live(0, if depth == 0 { bottom } else { encoder(0) }),
            },
            Need {
                act: Act::Bottleneck,
                floats: floats(depth, self.bottleneck_width),
                live: live(bottom, if depth == 0 { end } else { up(depth - 1) }),
            },
            Need {
                act: Act::Last,
                floats: if readout { 0 } else { floats(0, 1) },
                live: live(end, end),
            },
        ];
        for level in 0..depth {
            needs.push(Need {
                act: Act::Concat(level),
                floats: floats(level, self.up_channels(level)) + floats(level, self.widths[level]),
                live: live(encoder(level), decoder(level)),
            });
            needs.push(Need {
                act: Act::Pooled(level),
                floats: floats(level + 1, self.widths[level]),
                live: live(
                    pool(level),
                    if level + 1 < depth {
                        encoder(level + 1)
                    } else {
                        bottom
                    },
                ),
            });
            needs.push(Need {
                act: Act::Decoded(level),
                floats: floats(level, self.widths[level]),
                live: live(decoder(level), if level > 0 { up(level - 1) } else { end }),
            });
        }
        *workspace = Workspace {
            network: self.signature(),
            shape: Some((samples, size)),
            samples,
            training,
            isa: Some(self.isa),
            activations: Arena::new(depth, &needs),
            geometries,
            grads: Default::default(),
        };
        Ok(())
    }
}

/// Channel counts of a valid U-Net, as [`check_unet`] reads them from its convolutions.
pub(crate) struct UNetShape {
    pub in_channels: usize,
    /// Encoder widths, shallowest first.
    pub widths: Vec<usize>,
    pub bottleneck_width: usize,
}

/// Checks that `convs` (in execution order) and `pools` describe a U-Net that `isa` can run
/// on this CPU; shared by [`UNet`] and [`crate::LaneUNet`] so both accept the same networks.
pub(crate) fn check_unet(
    isa: Isa,
    convs: &[ConvWeights],
    pools: &[[usize; 3]],
) -> Result<UNetShape, KernelError> {
    if !Isa::supported().contains(&isa) {
        return Err(KernelError::Shape(format!(
            "this CPU cannot run the {} kernels",
            isa.name()
        )));
    }
    let depth = pools.len();
    if convs.len() != 2 * depth + 2 {
        return Err(KernelError::Shape(format!(
            "a U-Net of depth {depth} has {} convolutions, not {}",
            2 * depth + 2,
            convs.len()
        )));
    }
    for (index, conv) in convs.iter().enumerate() {
        let taps: usize = conv.kernel.iter().product();
        if taps == 0
            || conv.out_channels == 0
            || conv.in_channels == 0
            || conv.weight.len() != conv.out_channels * conv.in_channels * taps
            || conv.bias.len() != conv.out_channels
        {
            return Err(KernelError::Shape(format!(
                "convolution {index}: weights do not match its shape {}→{} {:?}",
                conv.in_channels, conv.out_channels, conv.kernel
            )));
        }
    }
    if pools.iter().flatten().any(|&side| side == 0) {
        return Err(KernelError::Shape("a pool side of 0".into()));
    }
    let in_channels = convs[0].in_channels;
    let widths: Vec<usize> = convs[..depth].iter().map(|c| c.out_channels).collect();
    let bottleneck_width = convs[depth].out_channels;
    let expect = |index: usize, input: usize, output: usize| {
        let conv = &convs[index];
        if conv.in_channels == input && conv.out_channels == output {
            Ok(())
        } else {
            Err(KernelError::Shape(format!(
                "convolution {index} maps {}→{} channels where the U-Net needs {input}→{output}",
                conv.in_channels, conv.out_channels
            )))
        }
    };
    let mut channels = in_channels;
    for (level, &width) in widths.iter().enumerate() {
        expect(level, channels, width)?;
        channels = width;
    }
    expect(depth, channels, bottleneck_width)?;
    channels = bottleneck_width;
    for level in (0..depth).rev() {
        expect(2 * depth - level, channels + widths[level], widths[level])?;
        channels = widths[level];
    }
    expect(2 * depth + 1, channels, 1)?;

    Ok(UNetShape {
        in_channels,
        widths,
        bottleneck_width,
    })
}

/// Interior sides of every level for an input of `size`, or why it is too small.
pub(crate) fn level_sizes(
    pools: &[[usize; 3]],
    size: [usize; 3],
) -> Result<Vec<[usize; 3]>, KernelError> {
    let mut sizes = vec![size];
    for pool in pools {
        let last = sizes[sizes.len() - 1];
        let next = [0, 1, 2].map(|a| last[a] / pool[a]);
        if next.contains(&0) {
            return Err(KernelError::Shape(format!(
                "an input of {size:?} is too small for pools {pools:?}"
            )));
        }
        sizes.push(next);
    }
    Ok(sizes)
}

/// The activations of one forward pass, kept between calls of the same shape so that
/// nothing is allocated per call (only the halos of memory two activations share are
/// zeroed again: see the `arena` module).
#[derive(Debug, Default)]
pub struct Workspace {
    /// Samples held and interior size of the input.
    pub(crate) shape: Option<(usize, [usize; 3])>,
    /// The network the buffers were laid out for (see `UNet::signature`): a workspace is
    /// only reused by networks of the same channels, kernels and pools.
    pub(crate) network: Vec<usize>,
    /// Samples of the last forward pass.
    pub(crate) samples: usize,
    /// Whether the halos suit a backward pass (see [`UNet::forward_for_training`]) and
    /// every activation is kept for it.
    pub(crate) training: bool,
    pub(crate) isa: Option<Isa>,
    pub(crate) geometries: Vec<Geometry>,
    /// The activations (see [`Act`]).
    pub(crate) activations: Arena,
    /// The backward pass's gradients, laid out as the activations.
    pub(crate) grads: GradBuffers,
}

impl Workspace {
    /// An empty workspace; the first forward pass sizes it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let floats = self.activations.len() + self.grads.floats();
        floats * 4
    }
}
