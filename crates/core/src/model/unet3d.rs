//! The volumetric U-Net of the paper's fMRI denoiser (`fmri_unet_denoiser`), generic over
//! burn's `Backend`.
//!
//! The shape mirrors [`super::unet`] in 3D: one `k³` conv + ReLU per level with max-pooling
//! that floors (7 → 3 → 1), a bottleneck conv, a decoder that upsamples (nearest), pads one
//! zero plane at the high end of each axis where the skip is one voxel larger (Keras
//! `ZeroPadding3D(((0,1),(0,1),(0,1)))`, 2 → 3 and 6 → 7), concatenates `[upsampled, skip]`
//! and applies one conv + ReLU, then a linear `1³` conv to one channel.
//!
//! Tensors are NCDHW: `[batch, channels = time points, x, y, z]` — the original's
//! `(x, y, z, t)` blocks with time as channels.

use burn::module::{Module, Param};
use burn::tensor::module::{conv3d, max_pool2d};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::unet::unet_conv_shapes;
use crate::error::EngineError;

/// Shape of a volumetric U-Net. Serialised into model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeUNetConfig {
    /// Input channels: the time points of a block (`2 × pre_post_t + 1`, centre included).
    pub in_channels: usize,
    /// Output channels of each encoder conv, shallowest first; the decoder mirrors them.
    pub encoder_widths: Vec<usize>,
    /// Output channels of the bottleneck conv.
    pub bottleneck_width: usize,
    /// Kernel of each encoder conv (odd sides), shallowest first.
    pub encoder_kernels: Vec<[usize; 3]>,
    /// Kernel of the bottleneck conv.
    pub bottleneck_kernel: [usize; 3],
    /// Kernel of each decoder conv, deepest first.
    pub decoder_kernels: Vec<[usize; 3]>,
    /// Pool (= upsampling) factor below each encoder level, shallowest first.
    pub pools: Vec<[usize; 3]>,
}

impl VolumeUNetConfig {
    /// The paper's fMRI network `fmri_unet_denoiser` (44,369 parameters for 5 time points):
    /// 3³ convs 8-16-32-16-8 with 2³ pooling.
    pub fn fmri_unet_denoiser(in_channels: usize) -> Self {
        Self::scaled(in_channels, 2, 8)
    }

    /// `depth` levels of 3³ convs whose widths double from `base_width`, 2³ pooling.
    pub fn scaled(in_channels: usize, depth: usize, base_width: usize) -> Self {
        Self {
            in_channels,
            encoder_widths: (0..depth).map(|level| base_width << level).collect(),
            bottleneck_width: base_width << depth,
            encoder_kernels: vec![[3; 3]; depth],
            bottleneck_kernel: [3; 3],
            decoder_kernels: vec![[3; 3]; depth],
            pools: vec![[2; 3]; depth],
        }
    }

    /// Number of pooling levels.
    pub fn depth(&self) -> usize {
        self.encoder_widths.len()
    }

    /// Checks lengths, zeros and odd kernels (Keras `same` padding of an even 3D kernel is
    /// asymmetric, which no DeepInterpolation network uses).
    pub fn validate(&self) -> Result<(), EngineError> {
        super::network::check_bounds(
            self.in_channels,
            &self.encoder_widths,
            self.bottleneck_width,
            self.encoder_kernels
                .iter()
                .chain(&self.decoder_kernels)
                .chain(&self.pools)
                .chain(std::iter::once(&self.bottleneck_kernel))
                .flat_map(|sides| sides.iter().copied()),
        )?;
        let depth = self.depth();
        let lengths_agree = self.encoder_kernels.len() == depth
            && self.decoder_kernels.len() == depth
            && self.pools.len() == depth;
        let kernels_odd = self
            .encoder_kernels
            .iter()
            .chain(&self.decoder_kernels)
            .chain(std::iter::once(&self.bottleneck_kernel))
            .all(|kernel| kernel.iter().all(|&side| side % 2 == 1));
        let any_zero = self.in_channels == 0
            || self.bottleneck_width == 0
            || self.encoder_widths.contains(&0)
            || self.pools.iter().any(|pool| pool.contains(&0));
        if !lengths_agree || !kernels_odd || any_zero {
            return Err(EngineError::InvalidModel(format!(
                "inconsistent volumetric U-Net configuration {self:?}"
            )));
        }
        Ok(())
    }

    /// The convolution shapes in execution order, `(in_channels, out_channels, kernel)`.
    pub fn conv_shapes(&self) -> Vec<(usize, usize, [usize; 3])> {
        unet_conv_shapes(
            self.in_channels,
            &self.encoder_widths,
            self.bottleneck_width,
            (
                &self.encoder_kernels,
                self.bottleneck_kernel,
                &self.decoder_kernels,
            ),
            [1; 3],
        )
    }

    /// Total trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.conv_shapes()
            .iter()
            .map(|&(cin, cout, k)| cin * cout * k.iter().product::<usize>() + cout)
            .sum()
    }

    /// FLOPs (2 per multiply-accumulate) of one forward pass on a `side³` block.
    pub fn forward_flops(&self, side: [usize; 3]) -> f64 {
        let mut sizes = vec![side];
        for pool in &self.pools {
            let last = sizes[sizes.len() - 1];
            sizes.push([last[0] / pool[0], last[1] / pool[1], last[2] / pool[2]]);
        }
        let depth = self.depth();
        let levels = (0..=depth)
            .chain((0..depth).rev())
            .chain(std::iter::once(0));
        self.conv_shapes()
            .iter()
            .zip(levels)
            .map(|(&(cin, cout, k), level)| {
                let voxels: usize = sizes[level].iter().product();
                2.0 * (voxels * cin * cout * k.iter().product::<usize>()) as f64
            })
            .sum()
    }

    /// Builds a network with He-uniform random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<VolumeUNet<B>, EngineError> {
        self.validate()?;
        let convs = self
            .conv_shapes()
            .into_iter()
            .map(|(cin, cout, kernel)| Conv3Layer::random(cin, cout, kernel, device))
            .collect();
        Ok(VolumeUNet {
            convs,
            pools: self.pools.clone(),
        })
    }
}

/// One 3D convolution with Keras `same` padding (odd kernels) and stride 1.
#[derive(Module, Debug)]
pub struct Conv3Layer<B: Backend> {
    /// `[out, in, kx, ky, kz]`.
    pub weight: Param<Tensor<B, 5>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Conv3Layer<B> {
    fn random(cin: usize, cout: usize, kernel: [usize; 3], device: &B::Device) -> Self {
        let fan_in = (cin * kernel.iter().product::<usize>()) as f64;
        let bound = (6.0 / fan_in).sqrt();
        let weight = Tensor::random(
            [cout, cin, kernel[0], kernel[1], kernel[2]],
            burn::tensor::Distribution::Uniform(-bound, bound),
            device,
        );
        Self {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
        }
    }

    /// Builds a layer from an `[out, in, kx, ky, kz]` kernel and an `[out]` bias.
    pub fn from_data(
        kernel: Vec<f32>,
        shape: [usize; 5],
        bias: Vec<f32>,
        device: &B::Device,
    ) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(kernel, shape), device)),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(bias, [shape[0]]), device)),
        }
    }

    fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let [_, _, kx, ky, kz] = self.weight.dims();
        let options = ConvOptions::new([1; 3], [kx / 2, ky / 2, kz / 2], [1; 3], 1);
        conv3d(input, self.weight.val(), Some(self.bias.val()), options)
    }
}

/// A volumetric DeepInterpolation U-Net. Build it with [`VolumeUNetConfig::init`] or from
/// weights.
#[derive(Module, Debug)]
pub struct VolumeUNet<B: Backend> {
    /// Convolutions in execution order (see [`VolumeUNetConfig::conv_shapes`]).
    pub convs: Vec<Conv3Layer<B>>,
    #[module(skip)]
    pools: Vec<[usize; 3]>,
}

impl<B: Backend> VolumeUNet<B> {
    /// Pool sides below each encoder level, shallowest first.
    pub fn pools(&self) -> &[[usize; 3]] {
        &self.pools
    }

    /// Assembles a network from layers in execution order; checks them against `config`.
    pub fn from_layers(
        config: &VolumeUNetConfig,
        convs: Vec<Conv3Layer<B>>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let expected = config.conv_shapes();
        if expected.len() != convs.len() {
            return Err(EngineError::InvalidModel(format!(
                "expected {} convolutions, got {}",
                expected.len(),
                convs.len()
            )));
        }
        for (index, (layer, &(cin, cout, k))) in convs.iter().zip(&expected).enumerate() {
            let want = [cout, cin, k[0], k[1], k[2]];
            if layer.weight.dims() != want {
                return Err(EngineError::InvalidModel(format!(
                    "convolution {index}: kernel shape {:?}, expected {want:?}",
                    layer.weight.dims()
                )));
            }
        }
        Ok(Self {
            convs,
            pools: config.pools.clone(),
        })
    }

    /// The same network with its encoder convolutions (those above the bottleneck) fixed.
    pub fn freeze_encoder(mut self) -> Self {
        let depth = self.pools.len();
        for conv in self.convs.iter_mut().take(depth) {
            conv.weight = conv.weight.clone().set_require_grad(false);
            conv.bias = conv.bias.clone().set_require_grad(false);
        }
        self
    }

    /// Forward pass on `[batch, time points, x, y, z]`. Any block side works whose pooled
    /// sizes stay at least 1; the paper's blocks are 7³.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let depth = self.pools.len();
        let mut skips = Vec::with_capacity(depth);
        let mut x = input;
        for level in 0..depth {
            x = burn::tensor::activation::relu(self.convs[level].forward(x));
            skips.push(x.clone());
            x = max_pool3d_floor(x, self.pools[level]);
        }
        x = burn::tensor::activation::relu(self.convs[depth].forward(x));
        for level in (0..depth).rev() {
            let skip = skips.pop().expect("one skip per level");
            let up = upsample3_nearest(x, self.pools[level]);
            let up = pad_high_to(up, skip.dims());
            let merged = Tensor::cat(vec![up, skip], 1);
            x = burn::tensor::activation::relu(self.convs[2 * depth - level].forward(merged));
        }
        self.convs[2 * depth + 1].forward(x)
    }
}

/// Max-pooling by `pool` per spatial axis with floor (Keras `MaxPooling3D`, `valid`): two
/// 2D pools, over (y, z) then over x, since burn has no 3D pool.
fn max_pool3d_floor<B: Backend>(x: Tensor<B, 5>, pool: [usize; 3]) -> Tensor<B, 5> {
    let [batch, channels, sx, sy, sz] = x.dims();
    let (px, py, pz) = (sx / pool[0], sy / pool[1], sz / pool[2]);
    let planes: Tensor<B, 4> = x.reshape([batch, channels * sx, sy, sz]);
    let planes = max_pool2d(
        planes,
        [pool[1], pool[2]],
        [pool[1], pool[2]],
        [0, 0],
        [1, 1],
        false,
    );
    let columns: Tensor<B, 4> = planes.reshape([batch, channels, sx, py * pz]);
    let pooled = max_pool2d(columns, [pool[0], 1], [pool[0], 1], [0, 0], [1, 1], false);
    pooled.reshape([batch, channels, px, py, pz])
}

/// Nearest-neighbour upsampling by an integer factor per axis (Keras `UpSampling3D`).
fn upsample3_nearest<B: Backend>(x: Tensor<B, 5>, factor: [usize; 3]) -> Tensor<B, 5> {
    if factor == [1; 3] {
        return x;
    }
    let [batch, channels, sx, sy, sz] = x.dims();
    let x: Tensor<B, 8> = x.reshape([batch, channels, sx, 1, sy, 1, sz, 1]);
    x.expand([batch, channels, sx, factor[0], sy, factor[1], sz, factor[2]])
        .reshape([
            batch,
            channels,
            sx * factor[0],
            sy * factor[1],
            sz * factor[2],
        ])
}

/// Zero planes at the high end of each spatial axis up to the skip's size (Keras
/// `ZeroPadding3D(((0,1),(0,1),(0,1)))` on the paper's 7³ blocks).
fn pad_high_to<B: Backend>(x: Tensor<B, 5>, target: [usize; 5]) -> Tensor<B, 5> {
    let dims = x.dims();
    let extra = |axis: usize| target[axis].saturating_sub(dims[axis]);
    if (2..5).all(|axis| extra(axis) == 0) {
        return x;
    }
    x.pad(
        [(0, extra(2)), (0, extra(3)), (0, extra(4))],
        PadMode::Constant(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    #[test]
    fn paper_fmri_network_has_the_paper_parameter_count_and_cost() {
        let config = VolumeUNetConfig::fmri_unet_denoiser(5);
        assert_eq!(config.parameter_count(), 44_369);
        let mflop = config.forward_flops([7; 3]) / 1e6;
        assert!((mflop - 5.6).abs() < 0.1, "{mflop} MFLOP");
    }

    #[test]
    fn blocks_keep_their_size_through_floor_pools_and_padding() {
        let device = Default::default();
        let net = VolumeUNetConfig::fmri_unet_denoiser(5)
            .init::<Cpu>(&device)
            .unwrap();
        for side in [7, 11, 15] {
            let input = Tensor::<Cpu, 5>::random(
                [2, 5, side, side, side],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            assert_eq!(net.forward(input).dims(), [2, 1, side, side, side]);
        }
    }

    #[test]
    fn pooling_takes_the_maximum_of_each_cube_and_floors() {
        let device = Default::default();
        let values: Vec<f32> = (0..27).map(|v| v as f32).collect();
        let x = Tensor::<Cpu, 5>::from_data(TensorData::new(values, [1, 1, 3, 3, 3]), &device);
        let pooled = max_pool3d_floor(x, [2; 3])
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // The cube x,y,z in 0..2 holds indices x*9 + y*3 + z; its maximum is 9 + 3 + 1.
        assert_eq!(pooled, vec![13.0]);
    }

    #[test]
    fn upsampling_repeats_and_padding_adds_zero_planes_at_the_high_end() {
        let device = Default::default();
        let x =
            Tensor::<Cpu, 5>::from_data(TensorData::new(vec![2.0f32], [1, 1, 1, 1, 1]), &device);
        let up = pad_high_to(upsample3_nearest(x, [2; 3]), [1, 1, 3, 3, 3]);
        let values = up.into_data().to_vec::<f32>().unwrap();
        for xi in 0..3 {
            for yi in 0..3 {
                for zi in 0..3 {
                    let expected = if xi < 2 && yi < 2 && zi < 2 { 2.0 } else { 0.0 };
                    assert_eq!(values[(xi * 3 + yi) * 3 + zi], expected, "{xi},{yi},{zi}");
                }
            }
        }
    }
}
