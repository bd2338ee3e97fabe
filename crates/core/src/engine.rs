//! Which implementation runs a network's forward pass at inference: our CPU kernels
//! (`deepinterp-kernels`, the default on the CPU) or burn (on CUDA, and the reference the
//! kernels are tested against). [`Forward`] hides the choice from the denoising loops: they
//! hand it flat inputs and get flat outputs back.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use deepinterp_kernels::{ConvWeights, LaneUNet, LaneWorkspace, UNet as KernelUNet, Workspace};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::{Network, UNet, VolumeUNet};

/// An implementation of the forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// `deepinterp-kernels` on the CPU, whatever burn backend holds the weights.
    #[default]
    Kernels,
    /// burn's backend (CUDA with the `cuda` feature, else burn's CPU backend).
    Burn,
}

impl Engine {
    /// Name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Kernels => "kernels",
            Engine::Burn => "burn",
        }
    }
}

/// A network ready to run forward passes with one engine.
pub struct Forward<'a, B: Backend> {
    network: &'a Network<B>,
    device: B::Device,
    kernels: Option<Kernels>,
}

/// The kernels' form of a network: channels in the vector lanes for frames and probe grids
/// (large samples), samples in the lanes for fMRI's small voxel blocks in large batches.
enum Kernels {
    ChannelLanes(Box<(KernelUNet, Workspace)>),
    SampleLanes(Box<(LaneUNet, LaneWorkspace)>),
}

impl<'a, B: Backend> Forward<'a, B> {
    /// Prepares `network` for `engine` (the kernels pack the weights once here).
    pub fn new(
        network: &'a Network<B>,
        engine: Engine,
        device: &B::Device,
    ) -> Result<Self, EngineError> {
        let kernels = match engine {
            Engine::Burn => None,
            Engine::Kernels => Some(match network {
                Network::Planar(net) => {
                    let (convs, pools) = planar_weights(net)?;
                    let mut unet = KernelUNet::new(&convs, &pools).map_err(kernel_error)?;
                    unet.drop_backward_weights();
                    Kernels::ChannelLanes(Box::new((unet, Workspace::new())))
                }
                Network::Volumetric(net) => {
                    let (convs, pools) = volumetric_weights(net)?;
                    let unet = LaneUNet::new(&convs, &pools).map_err(kernel_error)?;
                    Kernels::SampleLanes(Box::new((unet, LaneWorkspace::new())))
                }
            }),
        };
        Ok(Self {
            network,
            device: device.clone(),
            kernels,
        })
    }

    /// The engine in use.
    pub fn engine(&self) -> Engine {
        if self.kernels.is_some() {
            Engine::Kernels
        } else {
            Engine::Burn
        }
    }

    /// A planar network on `[batch, channels, height, width]`, any height and width (the
    /// bottom and right edges are padded by reflection to what the pools need and cropped
    /// back, as [`UNet::forward_any_size`] does); returns `[batch, height, width]`.
    pub fn planar(&mut self, input: &[f32], shape: [usize; 4]) -> Result<Vec<f32>, EngineError> {
        let Network::Planar(net) = self.network else {
            return Err(EngineError::InvalidModel(
                "a volumetric model cannot denoise frames".into(),
            ));
        };
        let Some(Kernels::ChannelLanes(kernels)) = &mut self.kernels else {
            let output = net.forward_any_size(Tensor::<B, 4>::from_data(
                TensorData::new(input.to_vec(), shape),
                &self.device,
            ));
            return read_values(output.into_data());
        };
        let [batch, channels, height, width] = shape;
        let multiple = net.size_multiple();
        let padded = [
            height.next_multiple_of(multiple[0]),
            width.next_multiple_of(multiple[1]),
        ];
        let padded_input;
        let input = if padded == [height, width] {
            input
        } else {
            padded_input = pad_bottom_right(input, batch * channels, [height, width], padded);
            &padded_input
        };
        let mut output = vec![0f32; batch * padded[0] * padded[1]];
        let (unet, workspace) = &mut **kernels;
        unet.forward(
            workspace,
            input,
            batch,
            [1, padded[0], padded[1]],
            &mut output,
        )
        .map_err(kernel_error)?;
        if padded == [height, width] {
            return Ok(output);
        }
        Ok(output
            .chunks_exact(padded[0] * padded[1])
            .flat_map(|plane| {
                plane
                    .chunks_exact(padded[1])
                    .take(height)
                    .flat_map(|row| &row[..width])
            })
            .copied()
            .collect())
    }

    /// As [`Forward::planar`], each sample's channels given as separate `height × width`
    /// planes (`planes[n * channels + c]`): the kernels pack a sliding window of frames
    /// straight from where they are held; other paths copy them into one batch first.
    pub fn planar_planes(
        &mut self,
        planes: &[&[f32]],
        shape: [usize; 4],
    ) -> Result<Vec<f32>, EngineError> {
        let [batch, channels, height, width] = shape;
        let multiple = self.network.planar().map(|net| net.size_multiple());
        if let (Some(Kernels::ChannelLanes(kernels)), Some(multiple)) =
            (&mut self.kernels, multiple)
            && height % multiple[0] == 0
            && width % multiple[1] == 0
            && planes.len() == batch * channels
        {
            let mut output = vec![0f32; batch * height * width];
            let (unet, workspace) = &mut **kernels;
            unet.forward_planes(workspace, planes, batch, [1, height, width], &mut output)
                .map_err(kernel_error)?;
            return Ok(output);
        }
        let input: Vec<f32> = planes.concat();
        self.planar(&input, shape)
    }

    /// A volumetric network on `[batch, channels, x, y, z]`; returns `[batch, x, y, z]`.
    pub fn volumetric(
        &mut self,
        input: &[f32],
        shape: [usize; 5],
    ) -> Result<Vec<f32>, EngineError> {
        let Network::Volumetric(net) = self.network else {
            return Err(EngineError::InvalidModel(
                "a planar model cannot denoise voxel blocks".into(),
            ));
        };
        let Some(Kernels::SampleLanes(kernels)) = &mut self.kernels else {
            let output = net.forward(Tensor::<B, 5>::from_data(
                TensorData::new(input.to_vec(), shape),
                &self.device,
            ));
            return read_values(output.into_data());
        };
        let [batch, _, x, y, z] = shape;
        let mut output = vec![0f32; batch * x * y * z];
        let (unet, workspace) = &mut **kernels;
        unet.forward(workspace, input, batch, [x, y, z], &mut output)
            .map_err(kernel_error)?;
        Ok(output)
    }
}

fn kernel_error(error: deepinterp_kernels::KernelError) -> EngineError {
    EngineError::InvalidModel(error.to_string())
}

fn read_values(data: TensorData) -> Result<Vec<f32>, EngineError> {
    data.convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| EngineError::InvalidModel(format!("cannot read network output: {e:?}")))
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>, EngineError> {
    read_values(tensor.into_data())
}

fn planar_weights<B: Backend>(
    net: &UNet<B>,
) -> Result<(Vec<ConvWeights>, Vec<[usize; 3]>), EngineError> {
    let convs = net
        .convs
        .iter()
        .map(|conv| {
            let [out_channels, in_channels, kh, kw] = conv.weight.dims();
            Ok(ConvWeights {
                out_channels,
                in_channels,
                kernel: [1, kh, kw],
                weight: values(conv.weight.val())?,
                bias: values(conv.bias.val())?,
            })
        })
        .collect::<Result<_, EngineError>>()?;
    let pools = net.pools().iter().map(|p| [1, p[0], p[1]]).collect();
    Ok((convs, pools))
}

fn volumetric_weights<B: Backend>(
    net: &VolumeUNet<B>,
) -> Result<(Vec<ConvWeights>, Vec<[usize; 3]>), EngineError> {
    let convs = net
        .convs
        .iter()
        .map(|conv| {
            let [out_channels, in_channels, kx, ky, kz] = conv.weight.dims();
            Ok(ConvWeights {
                out_channels,
                in_channels,
                kernel: [kx, ky, kz],
                weight: values(conv.weight.val())?,
                bias: values(conv.bias.val())?,
            })
        })
        .collect::<Result<_, EngineError>>()?;
    Ok((convs, net.pools().to_vec()))
}

/// Pads each of `planes` `size` planes at the bottom and right to `padded`: by reflection
/// (the edge row or column not repeated) where the side is long enough, else by repeating
/// the edge; rows first, then columns, as burn's `pad` does in
/// [`UNet::forward_any_size`].
fn pad_bottom_right(
    input: &[f32],
    planes: usize,
    [height, width]: [usize; 2],
    [padded_height, padded_width]: [usize; 2],
) -> Vec<f32> {
    let source_row = |y: usize| {
        if y < height {
            y
        } else if padded_height - height < height {
            2 * (height - 1) - y
        } else {
            height - 1
        }
    };
    let source_column = |x: usize| {
        if x < width {
            x
        } else if padded_width - width < width {
            2 * (width - 1) - x
        } else {
            width - 1
        }
    };
    let mut output = Vec::with_capacity(planes * padded_height * padded_width);
    for plane in input.chunks_exact(height * width).take(planes) {
        for y in 0..padded_height {
            let row = &plane[source_row(y) * width..][..width];
            output.extend((0..padded_width).map(|x| row[source_column(x)]));
        }
    }
    output
}
