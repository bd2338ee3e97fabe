//! CPU kernels for DeepInterpolation's U-Nets (planar and volumetric), independent of burn.
//!
//! This crate owns the CPU forward pass: [`UNet`] holds a network's weights packed once for
//! the kernels, [`Workspace`] the activations of one call, reused across calls of the same
//! shape (for inference, activations whose lives do not overlap share its memory: module
//! `arena`). Everything runs in one layout: channels in blocks of [`LANES`] innermost (so a
//! concatenation of channels is a concatenation of blocks, written in place by the layers
//! that produce it), spatial positions padded with a zero halo as wide as the kernels reach
//! (so Keras `same` padding, asymmetric included, is read in place), and the samples of a
//! batch stacked along the slowest axis. Convolutions are direct and register-blocked, with
//! bias and ReLU applied in their epilogue, except planar 3×3 ones of 16 channels or more on
//! AVX-512, which run as Winograd F(4×4, 3×3) (`DEEPINTERP_WINOGRAD=0` turns that off); the
//! instruction set is chosen at run time ([`Isa`]: AVX-512 → AVX2/FMA → portable).
//!
//! Training runs the same forward pass ([`UNet::forward_for_training`]) and then
//! [`UNet::backward`], which reads the activations the workspace kept (module `backward`).
//!
//! burn's implementation stays the reference: `deepinterp`'s tests compare the two on every
//! architecture family.
//!
//! [`LaneUNet`] runs the same networks with the samples of a batch in the vector lanes
//! instead of the channels: the engine for small volumes in large batches (see its module).

mod arena;
mod backward;
mod conv;
mod dispatch;
mod lanes;
mod layout;
mod resample;
mod unet;
mod winograd;

pub use backward::{BackwardRequest, ConvGradients, Gradients};
pub use dispatch::Isa;
pub use lanes::{LaneUNet, LaneWorkspace};
pub use unet::{ConvWeights, UNet, Workspace};

/// Single convolutions, for the tests and benchmarks that compare their methods.
#[doc(hidden)]
pub mod raw {
    pub use crate::conv::{Method, PackedConv};
    pub use crate::dispatch::Isa;
    pub use crate::layout::{Geometry, halo_for};
}

/// Channels per block: one AVX-512 register of `f32`.
pub const LANES: usize = 16;

/// Why a network cannot be built or run by these kernels.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Weights or shapes that do not describe a U-Net.
    #[error("{0}")]
    Shape(String),
}
