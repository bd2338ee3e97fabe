//! The DeepInterpolation engine.
//!
//! - [`sampling`]: windows of neighbouring frames, normalisation, frame blocks;
//! - [`probe`]: extracellular channels laid out on the network's probe grid, and back;
//! - [`volume`]: fMRI voxel blocks, central-block normalisation, parity and fast inference;
//! - [`model`]: the U-Net family (2D and 3D), Keras import, our self-describing model file;
//! - [`training`]: self-supervised training with validation, checkpoints and resume;
//! - [`inference`]: streaming, chunked denoising of whole recordings;
//! - [`engine`]: which implementation runs the forward pass (our CPU kernels or burn);
//! - [`backend`]: the CPU (default) and CUDA (`cuda` feature) backends.
//!
//! Formats live in `deepinterp-io`, simulation in `deepinterp-sim`, metrics in
//! `deepinterp-metrics`; this crate is the part that runs networks.

pub mod backend;
pub mod engine;
pub mod error;
pub mod inference;
pub mod model;
pub mod probe;
pub mod sampling;
pub mod training;
pub mod volume;

pub use error::EngineError;

#[cfg(test)]
mod integrity_tests;
