//! Backend choice: the pure-Rust CPU backend (Flex, SIMD + rayon) by default, CUDA with the
//! `cuda` feature. Everything else in the crate is generic over `burn::tensor::backend::Backend`.

/// CPU inference backend.
pub type Cpu = burn::backend::Flex;
/// CPU training backend (reverse-mode autodiff over [`Cpu`]).
pub type CpuTrain = burn::backend::Autodiff<Cpu>;

/// CUDA inference backend (kernels compiled at run time through NVRTC).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
/// CUDA training backend.
#[cfg(feature = "cuda")]
pub type GpuTrain = burn::backend::Autodiff<Gpu>;
