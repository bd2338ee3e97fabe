//! The U-Net family used by DeepInterpolation, generic over burn's `Backend`.
//!
//! One network type covers the paper's `unet_single_1024` (two-photon) and smaller variants:
//! an encoder of single `k×k` conv + ReLU levels separated by max-pooling, a bottleneck conv,
//! a decoder that upsamples (nearest), concatenates `[upsampled, skip]` (Keras order) and
//! applies one conv + ReLU per level, and a final linear 1×1 conv to one channel.
//! Convolutions use Keras `same` padding: `(k-1)/2` zeros before and the rest after.
//!
//! Tensors are NCHW: `[batch, channels = pre+post frames, height, width]`.

use burn::module::{Module, Param};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::PaddedConvOptions;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// Shape of a U-Net: widths, kernels and pooling per level. Serialised into model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Input channels: the number of frames in a window (`pre_frames + post_frames`).
    pub in_channels: usize,
    /// Output channels of each encoder conv, shallowest first; the decoder mirrors them.
    pub encoder_widths: Vec<usize>,
    /// Output channels of the bottleneck conv.
    pub bottleneck_width: usize,
    /// Kernel of each encoder conv, shallowest first.
    pub encoder_kernels: Vec<[usize; 2]>,
    /// Kernel of the bottleneck conv.
    pub bottleneck_kernel: [usize; 2],
    /// Kernel of each decoder conv, deepest first (the order they run in).
    pub decoder_kernels: Vec<[usize; 2]>,
    /// Pool (= upsampling) factor below each encoder level, shallowest first.
    pub pools: Vec<[usize; 2]>,
}

impl UNetConfig {
    /// The paper's two-photon network `unet_single_1024` (15,704,769 parameters).
    pub fn unet_single_1024(in_channels: usize) -> Self {
        Self::uniform(in_channels, &[64, 128, 256, 512], 1024)
    }

    /// A U-Net of `depth` pooling levels whose widths double from `base_width`, 3×3 kernels
    /// and 2×2 pooling everywhere (the shape of `unet_single_1024`, smaller).
    pub fn scaled(in_channels: usize, depth: usize, base_width: usize) -> Self {
        let widths: Vec<usize> = (0..depth).map(|level| base_width << level).collect();
        Self::uniform(in_channels, &widths, base_width << depth)
    }

    /// The paper's Neuropixels network `unet_single_ephys_1024` (5,253,057 parameters), for a
    /// `rows × 2` probe grid: 2×2 convs at full resolution with one (2,2) pool that merges the
    /// two columns, then 3×1 convs with (2,1) pooling along the probe.
    pub fn unet_single_ephys_1024(in_channels: usize) -> Self {
        Self::probe(in_channels, &[64, 128, 256, 512], 1024)
    }

    /// The shape of `unet_single_ephys_1024` with `depth` levels whose widths double from
    /// `base_width`.
    pub fn scaled_probe(in_channels: usize, depth: usize, base_width: usize) -> Self {
        let widths: Vec<usize> = (0..depth).map(|level| base_width << level).collect();
        Self::probe(in_channels, &widths, base_width << depth)
    }

    fn probe(in_channels: usize, widths: &[usize], bottleneck_width: usize) -> Self {
        let depth = widths.len();
        let mut config = Self {
            in_channels,
            encoder_widths: widths.to_vec(),
            bottleneck_width,
            encoder_kernels: vec![[3, 1]; depth],
            bottleneck_kernel: [3, 1],
            decoder_kernels: vec![[3, 1]; depth],
            pools: vec![[2, 1]; depth],
        };
        if depth > 0 {
            config.encoder_kernels[0] = [2, 2];
            config.decoder_kernels[depth - 1] = [2, 2];
            config.pools[0] = [2, 2];
        }
        config
    }

    fn uniform(in_channels: usize, widths: &[usize], bottleneck_width: usize) -> Self {
        Self {
            in_channels,
            encoder_widths: widths.to_vec(),
            bottleneck_width,
            encoder_kernels: vec![[3, 3]; widths.len()],
            bottleneck_kernel: [3, 3],
            decoder_kernels: vec![[3, 3]; widths.len()],
            pools: vec![[2, 2]; widths.len()],
        }
    }

    /// Number of pooling levels.
    pub fn depth(&self) -> usize {
        self.encoder_widths.len()
    }

    /// Height and width an input side must be a multiple of (the product of the pools).
    pub fn size_multiple(&self) -> [usize; 2] {
        self.pools
            .iter()
            .fold([1, 1], |acc, pool| [acc[0] * pool[0], acc[1] * pool[1]])
    }

    /// Checks that the lists agree in length and nothing is zero.
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
        let any_zero = self.in_channels == 0
            || self.bottleneck_width == 0
            || self.encoder_widths.contains(&0)
            || self
                .encoder_kernels
                .iter()
                .chain(&self.decoder_kernels)
                .chain(&self.pools)
                .chain(std::iter::once(&self.bottleneck_kernel))
                .any(|pair| pair[0] == 0 || pair[1] == 0);
        if !lengths_agree || any_zero {
            return Err(EngineError::InvalidModel(format!(
                "inconsistent U-Net configuration {self:?}"
            )));
        }
        Ok(())
    }

    /// The convolution shapes in execution order: encoder, bottleneck, decoder, final 1×1.
    /// Each entry is `(in_channels, out_channels, kernel)`.
    pub fn conv_shapes(&self) -> Vec<(usize, usize, [usize; 2])> {
        unet_conv_shapes(
            self.in_channels,
            &self.encoder_widths,
            self.bottleneck_width,
            (
                &self.encoder_kernels,
                self.bottleneck_kernel,
                &self.decoder_kernels,
            ),
            [1, 1],
        )
    }

    /// Total trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.conv_shapes()
            .iter()
            .map(|&(cin, cout, k)| cin * cout * k[0] * k[1] + cout)
            .sum()
    }

    /// Pyramid level (0 = full resolution) each convolution of [`Self::conv_shapes`] runs at.
    fn conv_levels(&self) -> Vec<usize> {
        let depth = self.depth();
        (0..depth)
            .chain(std::iter::once(depth))
            .chain((0..depth).rev())
            .chain(std::iter::once(0))
            .collect()
    }

    /// FLOPs (2 per multiply-accumulate) of one forward pass on an `height × width` input.
    pub fn forward_flops(&self, height: usize, width: usize) -> f64 {
        let mut sizes = vec![(height, width)];
        for pool in &self.pools {
            let (h, w) = sizes[sizes.len() - 1];
            sizes.push((h / pool[0], w / pool[1]));
        }
        self.conv_shapes()
            .iter()
            .zip(self.conv_levels())
            .map(|(&(cin, cout, k), level)| {
                let (h, w) = sizes[level];
                2.0 * (h * w * cin * cout * k[0] * k[1]) as f64
            })
            .sum()
    }

    /// Builds a network with He-uniform random weights (deterministic given the backend seed).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<UNet<B>, EngineError> {
        self.validate()?;
        let convs = self
            .conv_shapes()
            .into_iter()
            .map(|(cin, cout, kernel)| ConvLayer::random(cin, cout, kernel, device))
            .collect();
        Ok(UNet {
            convs,
            pools: self.pools.clone(),
        })
    }
}

/// The convolutions of a U-Net in execution order (encoder, bottleneck, decoder, final
/// linear conv to one channel) as `(in_channels, out_channels, kernel)`, whatever the
/// kernel's dimensionality: each decoder conv reads `[upsampled, skip]`.
pub(crate) fn unet_conv_shapes<K: Copy>(
    in_channels: usize,
    encoder_widths: &[usize],
    bottleneck_width: usize,
    (encoder_kernels, bottleneck_kernel, decoder_kernels): (&[K], K, &[K]),
    final_kernel: K,
) -> Vec<(usize, usize, K)> {
    let mut shapes = Vec::with_capacity(2 * encoder_widths.len() + 2);
    let mut channels = in_channels;
    for (&width, &kernel) in encoder_widths.iter().zip(encoder_kernels) {
        shapes.push((channels, width, kernel));
        channels = width;
    }
    shapes.push((channels, bottleneck_width, bottleneck_kernel));
    channels = bottleneck_width;
    for (&skip_width, &kernel) in encoder_widths.iter().rev().zip(decoder_kernels) {
        shapes.push((channels + skip_width, skip_width, kernel));
        channels = skip_width;
    }
    shapes.push((channels, 1, final_kernel));
    shapes
}

/// One convolution with Keras `same` padding and stride 1.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// `[out, in, kh, kw]`.
    pub weight: Param<Tensor<B, 4>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> ConvLayer<B> {
    fn random(cin: usize, cout: usize, kernel: [usize; 2], device: &B::Device) -> Self {
        let fan_in = (cin * kernel[0] * kernel[1]) as f64;
        let bound = (6.0 / fan_in).sqrt();
        let weight = Tensor::random(
            [cout, cin, kernel[0], kernel[1]],
            burn::tensor::Distribution::Uniform(-bound, bound),
            device,
        );
        Self {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
        }
    }

    /// Builds a layer from an `[out, in, kh, kw]` kernel and an `[out]` bias.
    pub fn from_data(
        kernel: Vec<f32>,
        shape: [usize; 4],
        bias: Vec<f32>,
        device: &B::Device,
    ) -> Self {
        let cout = shape[0];
        Self {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(kernel, shape), device)),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(bias, [cout]), device)),
        }
    }

    fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, kh, kw] = self.weight.dims();
        let before = [(kh - 1) / 2, (kw - 1) / 2];
        let after = [kh - 1 - before[0], kw - 1 - before[1]];
        let options = PaddedConvOptions::asymmetric([1, 1], before, after, [1, 1], 1);
        conv2d(input, self.weight.val(), Some(self.bias.val()), options)
    }
}

/// A DeepInterpolation U-Net. Build it with [`UNetConfig::init`] or from weights.
#[derive(Module, Debug)]
pub struct UNet<B: Backend> {
    /// Convolutions in execution order (see [`UNetConfig::conv_shapes`]).
    pub convs: Vec<ConvLayer<B>>,
    #[module(skip)]
    pools: Vec<[usize; 2]>,
}

impl<B: Backend> UNet<B> {
    /// Pool sides below each encoder level, shallowest first.
    pub fn pools(&self) -> &[[usize; 2]] {
        &self.pools
    }

    /// Assembles a network from layers in execution order; checks them against `config`.
    pub fn from_layers(config: &UNetConfig, convs: Vec<ConvLayer<B>>) -> Result<Self, EngineError> {
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
            if layer.weight.dims() != [cout, cin, k[0], k[1]] {
                return Err(EngineError::InvalidModel(format!(
                    "convolution {index}: kernel shape {:?}, expected {:?}",
                    layer.weight.dims(),
                    [cout, cin, k[0], k[1]]
                )));
            }
        }
        Ok(Self {
            convs,
            pools: config.pools.clone(),
        })
    }

    /// The same network with its encoder convolutions (those above the bottleneck) fixed:
    /// training leaves them as they are (fine-tuning the decoder only).
    pub fn freeze_encoder(mut self) -> Self {
        let depth = self.pools.len();
        for conv in self.convs.iter_mut().take(depth) {
            conv.weight = conv.weight.clone().set_require_grad(false);
            conv.bias = conv.bias.clone().set_require_grad(false);
        }
        self
    }

    /// Height and width multiples the pools need.
    pub fn size_multiple(&self) -> [usize; 2] {
        self.pools
            .iter()
            .fold([1, 1], |acc, pool| [acc[0] * pool[0], acc[1] * pool[1]])
    }

    /// Forward pass on `[batch, in_channels, H, W]`; H and W must be multiples of
    /// [`UNetConfig::size_multiple`] (see [`UNet::forward_any_size`] otherwise).
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let depth = self.pools.len();
        let mut skips = Vec::with_capacity(depth);
        let mut x = input;
        for level in 0..depth {
            x = burn::tensor::activation::relu(self.convs[level].forward(x));
            skips.push(x.clone());
            let pool = self.pools[level];
            x = max_pool2d(x, pool, pool, [0, 0], [1, 1], false);
        }
        x = burn::tensor::activation::relu(self.convs[depth].forward(x));
        for level in (0..depth).rev() {
            let up = upsample_nearest(x, self.pools[level]);
            let skip = skips.pop().expect("one skip per level");
            let merged = Tensor::cat(vec![up, skip], 1);
            x = burn::tensor::activation::relu(self.convs[2 * depth - level].forward(merged));
        }
        self.convs[2 * depth + 1].forward(x)
    }

    /// Forward pass on any H × W: pads the bottom/right edges by reflection up to the next
    /// multiple the pools need, runs the network and crops back. Reflection keeps the padded
    /// border statistically like the image, so edge pixels see no artificial zeros.
    pub fn forward_any_size(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, _, height, width] = input.dims();
        let multiple = self.size_multiple();
        let pad_h = height.next_multiple_of(multiple[0]) - height;
        let pad_w = width.next_multiple_of(multiple[1]) - width;
        if pad_h == 0 && pad_w == 0 {
            return self.forward(input);
        }
        let padded = pad_reflect_or_edge(input, pad_h, pad_w);
        self.forward(padded)
            .slice([0..batch, 0..1, 0..height, 0..width])
    }
}

/// Pads bottom/right by reflection where the side is long enough, by edge replication otherwise.
pub(crate) fn pad_reflect_or_edge<B: Backend>(
    input: Tensor<B, 4>,
    pad_h: usize,
    pad_w: usize,
) -> Tensor<B, 4> {
    use burn::tensor::ops::PadMode;
    let [_, _, height, width] = input.dims();
    let mode_h = if pad_h < height {
        PadMode::Reflect
    } else {
        PadMode::Edge
    };
    let mode_w = if pad_w < width {
        PadMode::Reflect
    } else {
        PadMode::Edge
    };
    let x = input.pad([(0, pad_h), (0, 0)], mode_h);
    x.pad([(0, pad_w)], mode_w)
}

/// Nearest-neighbour upsampling by an integer factor per axis (Keras `UpSampling2D`).
fn upsample_nearest<B: Backend>(x: Tensor<B, 4>, factor: [usize; 2]) -> Tensor<B, 4> {
    if factor == [1, 1] {
        return x;
    }
    let [batch, channels, height, width] = x.dims();
    let x: Tensor<B, 6> = x.reshape([batch, channels, height, 1, width, 1]);
    x.expand([batch, channels, height, factor[0], width, factor[1]])
        .reshape([batch, channels, height * factor[0], width * factor[1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    #[test]
    fn paper_network_has_the_paper_parameter_count() {
        assert_eq!(
            UNetConfig::unet_single_1024(60).parameter_count(),
            15_704_769
        );
    }

    #[test]
    fn paper_network_costs_289_gflop_per_512_frame() {
        let gflop = UNetConfig::unet_single_1024(60).forward_flops(512, 512) / 1e9;
        assert!((gflop - 289.0).abs() < 1.5, "{gflop} GFLOP");
    }

    #[test]
    fn ephys_network_has_the_paper_parameter_count_and_cost() {
        let config = UNetConfig::unet_single_ephys_1024(60);
        assert_eq!(config.parameter_count(), 5_253_057);
        let gflop = config.forward_flops(384, 2) / 1e9;
        assert!((gflop - 0.64).abs() < 0.01, "{gflop} GFLOP");
        assert_eq!(config.size_multiple(), [16, 2]);
    }

    #[test]
    fn odd_frame_sizes_are_padded_and_cropped() {
        let device = Default::default();
        let net = UNetConfig::scaled(4, 2, 4).init::<Cpu>(&device).unwrap();
        let input = Tensor::<Cpu, 4>::random(
            [2, 4, 13, 10],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert_eq!(net.forward_any_size(input).dims(), [2, 1, 13, 10]);
    }

    #[test]
    fn upsampling_repeats_each_value() {
        let device = Default::default();
        let x = Tensor::<Cpu, 4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device,
        );
        let up = upsample_nearest(x, [2, 1])
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(up, vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    }
}
