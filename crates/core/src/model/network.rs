//! One type for every network the engine runs: the planar U-Nets of two-photon and ephys
//! data and the volumetric U-Net of fMRI, so model files, training and import share code.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::unet::{ConvLayer, UNet, UNetConfig};
use super::unet3d::{Conv3Layer, VolumeUNet, VolumeUNetConfig};
use crate::error::EngineError;

/// Most pooling levels a network may have (the paper's deepest has 4).
pub const MAX_DEPTH: usize = 16;
/// Most channels of any convolution's input or output (the paper's widest is 1024).
pub const MAX_WIDTH: usize = 1 << 20;
/// Largest side of a kernel or pool (the paper's are 2 or 3).
pub const MAX_SIDE: usize = 64;

/// Bounds on a configuration read from a file or a flag, checked before any shape is
/// computed from it: within them every channel sum and parameter count fits in 64 bits,
/// so later arithmetic cannot wrap (the memory budget then decides what is too large).
pub(crate) fn check_bounds(
    in_channels: usize,
    encoder_widths: &[usize],
    bottleneck_width: usize,
    mut sides: impl Iterator<Item = usize>,
) -> Result<(), EngineError> {
    if encoder_widths.len() > MAX_DEPTH {
        return Err(EngineError::InvalidModel(format!(
            "a U-Net of depth {} is deeper than the {MAX_DEPTH} levels deepinterp accepts",
            encoder_widths.len()
        )));
    }
    let widest = encoder_widths
        .iter()
        .copied()
        .chain([in_channels, bottleneck_width])
        .max()
        .unwrap_or(0);
    if widest > MAX_WIDTH {
        return Err(EngineError::InvalidModel(format!(
            "a U-Net layer of {widest} channels is wider than the {MAX_WIDTH} deepinterp accepts"
        )));
    }
    if let Some(side) = sides.find(|&side| side > MAX_SIDE) {
        return Err(EngineError::InvalidModel(format!(
            "a kernel or pool side of {side} is larger than the {MAX_SIDE} deepinterp accepts"
        )));
    }
    Ok(())
}

/// Floats of activations per input pixel (voxel) of one sample in a forward pass: every
/// convolution's input and output at its level's resolution. Estimates memory before a
/// batch is allocated; `pools` are the pool sides per level.
pub(crate) fn activation_floats_per_pixel(
    weight_shapes: &[Vec<usize>],
    pools: &[Vec<usize>],
) -> f64 {
    let depth = pools.len();
    let levels = (0..depth)
        .chain(std::iter::once(depth))
        .chain((0..depth).rev())
        .chain(std::iter::once(0));
    let mut scales = vec![1f64];
    for pool in pools {
        let area: f64 = pool.iter().map(|&side| side.max(1) as f64).product();
        scales.push(scales.last().copied().unwrap_or(1.0) * area);
    }
    weight_shapes
        .iter()
        .zip(levels)
        .map(|(shape, level)| {
            let channels = shape.first().copied().unwrap_or(0) + shape.get(1).copied().unwrap_or(0);
            channels as f64 / scales.get(level).copied().unwrap_or(1.0)
        })
        .sum()
}

/// The shape of a network. Model files store the inner configuration as is (no tag): a
/// planar config has 2-element kernels, a volumetric one 3-element kernels, so older files
/// of planar networks read unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetworkConfig {
    /// A 2D U-Net on frames (two-photon) or probe grids (ephys).
    Planar(UNetConfig),
    /// A 3D U-Net on voxel blocks (fMRI).
    Volumetric(VolumeUNetConfig),
}

/// A U-Net's shape in either dimensionality, with one side per spatial axis in every kernel
/// and pool: what Keras import and export and `inspect` work with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UNetShape {
    /// Spatial dimensions: 2 (planar) or 3 (volumetric).
    pub dims: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels of each encoder conv, shallowest first.
    pub encoder_widths: Vec<usize>,
    /// Output channels of the bottleneck conv.
    pub bottleneck_width: usize,
    /// Kernel of each encoder conv.
    pub encoder_kernels: Vec<Vec<usize>>,
    /// Kernel of the bottleneck conv.
    pub bottleneck_kernel: Vec<usize>,
    /// Kernel of each decoder conv, deepest first.
    pub decoder_kernels: Vec<Vec<usize>>,
    /// Pool below each encoder level, shallowest first.
    pub pools: Vec<Vec<usize>>,
}

impl UNetShape {
    /// Pooling levels.
    pub fn depth(&self) -> usize {
        self.encoder_widths.len()
    }

    /// The configuration of this shape (2 or 3 dimensions, every list of the right length),
    /// validated.
    pub fn to_config(&self) -> Result<NetworkConfig, EngineError> {
        fn fixed<const N: usize>(sides: &[Vec<usize>]) -> Result<Vec<[usize; N]>, EngineError> {
            sides
                .iter()
                .map(|side| {
                    side.as_slice().try_into().map_err(|_| {
                        EngineError::InvalidModel(format!("{side:?} is not {N} sides"))
                    })
                })
                .collect()
        }
        let bottleneck = std::slice::from_ref(&self.bottleneck_kernel);
        let config = match self.dims {
            2 => NetworkConfig::Planar(UNetConfig {
                in_channels: self.in_channels,
                encoder_widths: self.encoder_widths.clone(),
                bottleneck_width: self.bottleneck_width,
                encoder_kernels: fixed(&self.encoder_kernels)?,
                bottleneck_kernel: fixed(bottleneck)?[0],
                decoder_kernels: fixed(&self.decoder_kernels)?,
                pools: fixed(&self.pools)?,
            }),
            3 => NetworkConfig::Volumetric(VolumeUNetConfig {
                in_channels: self.in_channels,
                encoder_widths: self.encoder_widths.clone(),
                bottleneck_width: self.bottleneck_width,
                encoder_kernels: fixed(&self.encoder_kernels)?,
                bottleneck_kernel: fixed(bottleneck)?[0],
                decoder_kernels: fixed(&self.decoder_kernels)?,
                pools: fixed(&self.pools)?,
            }),
            dims => {
                return Err(EngineError::InvalidModel(format!(
                    "a {dims}-dimensional U-Net is not supported"
                )));
            }
        };
        config.validate()?;
        Ok(config)
    }
}

impl NetworkConfig {
    /// Checks the configuration (see [`UNetConfig::validate`], [`VolumeUNetConfig::validate`]).
    pub fn validate(&self) -> Result<(), EngineError> {
        match self {
            NetworkConfig::Planar(config) => config.validate(),
            NetworkConfig::Volumetric(config) => config.validate(),
        }
    }

    /// The shape as plain lists.
    pub fn shape(&self) -> UNetShape {
        fn lists<const N: usize>(sides: &[[usize; N]]) -> Vec<Vec<usize>> {
            sides.iter().map(|side| side.to_vec()).collect()
        }
        match self {
            NetworkConfig::Planar(c) => UNetShape {
                dims: 2,
                in_channels: c.in_channels,
                encoder_widths: c.encoder_widths.clone(),
                bottleneck_width: c.bottleneck_width,
                encoder_kernels: lists(&c.encoder_kernels),
                bottleneck_kernel: c.bottleneck_kernel.to_vec(),
                decoder_kernels: lists(&c.decoder_kernels),
                pools: lists(&c.pools),
            },
            NetworkConfig::Volumetric(c) => UNetShape {
                dims: 3,
                in_channels: c.in_channels,
                encoder_widths: c.encoder_widths.clone(),
                bottleneck_width: c.bottleneck_width,
                encoder_kernels: lists(&c.encoder_kernels),
                bottleneck_kernel: c.bottleneck_kernel.to_vec(),
                decoder_kernels: lists(&c.decoder_kernels),
                pools: lists(&c.pools),
            },
        }
    }

    /// Input channels: frames of a window (planar) or time points of a block (volumetric).
    pub fn in_channels(&self) -> usize {
        match self {
            NetworkConfig::Planar(config) => config.in_channels,
            NetworkConfig::Volumetric(config) => config.in_channels,
        }
    }

    /// Total trainable parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            NetworkConfig::Planar(config) => config.parameter_count(),
            NetworkConfig::Volumetric(config) => config.parameter_count(),
        }
    }

    /// Builds a network with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Network<B>, EngineError> {
        Ok(match self {
            NetworkConfig::Planar(config) => Network::Planar(config.init(device)?),
            NetworkConfig::Volumetric(config) => Network::Volumetric(config.init(device)?),
        })
    }

    /// burn's `[out, in, kernel...]` shape of each convolution's weight, in execution order.
    pub fn weight_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            NetworkConfig::Planar(config) => config
                .conv_shapes()
                .iter()
                .map(|&(cin, cout, k)| vec![cout, cin, k[0], k[1]])
                .collect(),
            NetworkConfig::Volumetric(config) => config
                .conv_shapes()
                .iter()
                .map(|&(cin, cout, k)| vec![cout, cin, k[0], k[1], k[2]])
                .collect(),
        }
    }

    /// Assembles a network from `(weight, bias)` values in execution order, shaped as
    /// [`Self::weight_shapes`] says.
    pub fn from_weights<B: Backend>(
        &self,
        weights: Vec<(Vec<f32>, Vec<f32>)>,
        device: &B::Device,
    ) -> Result<Network<B>, EngineError> {
        let shapes = self.weight_shapes();
        if shapes.len() != weights.len() {
            return Err(EngineError::InvalidModel(format!(
                "expected {} convolutions, got {}",
                shapes.len(),
                weights.len()
            )));
        }
        let pairs = shapes.into_iter().zip(weights);
        Ok(match self {
            NetworkConfig::Planar(config) => {
                let convs = pairs
                    .map(|(s, (w, b))| ConvLayer::from_data(w, [s[0], s[1], s[2], s[3]], b, device))
                    .collect();
                Network::Planar(UNet::from_layers(config, convs)?)
            }
            NetworkConfig::Volumetric(config) => {
                let convs = pairs
                    .map(|(s, (w, b))| {
                        Conv3Layer::from_data(w, [s[0], s[1], s[2], s[3], s[4]], b, device)
                    })
                    .collect();
                Network::Volumetric(VolumeUNet::from_layers(config, convs)?)
            }
        })
    }
}

/// One convolution's weights as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvValues {
    /// burn's `[out, in, kernel...]` shape of the weight.
    pub shape: Vec<usize>,
    /// The weight, row-major in that shape.
    pub weight: Vec<f32>,
    /// The bias, `[out]`.
    pub bias: Vec<f32>,
}

/// A network of either kind.
#[derive(Module, Debug)]
pub enum Network<B: Backend> {
    /// A 2D U-Net.
    Planar(UNet<B>),
    /// A 3D U-Net.
    Volumetric(VolumeUNet<B>),
}

impl<B: Backend> Network<B> {
    /// The planar network, if this is one.
    pub fn planar(&self) -> Option<&UNet<B>> {
        match self {
            Network::Planar(network) => Some(network),
            Network::Volumetric(_) => None,
        }
    }

    /// The volumetric network, if this is one.
    pub fn volumetric(&self) -> Option<&VolumeUNet<B>> {
        match self {
            Network::Volumetric(network) => Some(network),
            Network::Planar(_) => None,
        }
    }

    /// burn's `[out, in, kernel...]` shape of each convolution's weight, in execution order
    /// (read from the tensors, no values copied).
    pub fn weight_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            Network::Planar(network) => network
                .convs
                .iter()
                .map(|c| c.weight.dims().to_vec())
                .collect(),
            Network::Volumetric(network) => network
                .convs
                .iter()
                .map(|c| c.weight.dims().to_vec())
                .collect(),
        }
    }

    /// Pool sides below each encoder level, shallowest first.
    pub fn pools(&self) -> Vec<Vec<usize>> {
        match self {
            Network::Planar(network) => network.pools().iter().map(|p| p.to_vec()).collect(),
            Network::Volumetric(network) => network.pools().iter().map(|p| p.to_vec()).collect(),
        }
    }

    /// Floats of activations per input pixel (voxel) of one sample in a forward pass (an
    /// estimate for memory checks: each convolution's input and output at its resolution).
    pub fn activation_floats_per_pixel(&self) -> f64 {
        activation_floats_per_pixel(&self.weight_shapes(), &self.pools())
    }

    /// The same network with its encoder convolutions fixed (see [`UNet::freeze_encoder`]).
    pub fn freeze_encoder(self) -> Self {
        match self {
            Network::Planar(network) => Network::Planar(network.freeze_encoder()),
            Network::Volumetric(network) => Network::Volumetric(network.freeze_encoder()),
        }
    }

    /// Each convolution's weights as plain values, in execution order.
    pub fn weight_values(&self) -> Result<Vec<ConvValues>, EngineError> {
        fn values(data: TensorData) -> Result<Vec<f32>, EngineError> {
            data.convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| EngineError::InvalidModel(format!("cannot read weights: {e:?}")))
        }
        fn conv<B: Backend, const D: usize>(
            weight: Tensor<B, D>,
            bias: Tensor<B, 1>,
        ) -> Result<ConvValues, EngineError> {
            Ok(ConvValues {
                shape: weight.dims().to_vec(),
                weight: values(weight.into_data())?,
                bias: values(bias.into_data())?,
            })
        }
        match self {
            Network::Planar(network) => network
                .convs
                .iter()
                .map(|c| conv(c.weight.val(), c.bias.val()))
                .collect(),
            Network::Volumetric(network) => network
                .convs
                .iter()
                .map(|c| conv(c.weight.val(), c.bias.val()))
                .collect(),
        }
    }

    /// Forward pass on a batch given as flat values and its shape: `[n, c, h, w]` for a
    /// planar network (any h × w, see [`UNet::forward_any_size`]), `[n, c, x, y, z]` for a
    /// volumetric one. Returns the output in the same layout with one channel.
    pub fn forward_flat(&self, input: Tensor<B, 1>, shape: &[usize]) -> Tensor<B, 1> {
        match (self, shape) {
            (Network::Planar(network), &[n, c, h, w]) => {
                let output = network.forward_any_size(input.reshape([n, c, h, w]));
                output.reshape([n * h * w])
            }
            (Network::Volumetric(network), &[n, c, x, y, z]) => {
                let output = network.forward(input.reshape([n, c, x, y, z]));
                output.reshape([n * x * y * z])
            }
            _ => panic!("a batch of shape {shape:?} does not fit this network"),
        }
    }
}
