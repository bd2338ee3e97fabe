//! The backends this build runs on, and the engine a run uses unless told otherwise: our CPU
//! kernels on a CPU build, burn on a CUDA build (`cuda` feature).

#[cfg(not(feature = "cuda"))]
pub use deepinterp::backend::{Cpu as Infer, CpuTrain as Train};
#[cfg(feature = "cuda")]
pub use deepinterp::backend::{Gpu as Infer, GpuTrain as Train};
use deepinterp::engine::Engine;

/// What runs inference unless a request names an engine.
#[cfg(not(feature = "cuda"))]
pub const DEFAULT_ENGINE: Engine = Engine::Kernels;
/// What runs inference unless a request names an engine.
#[cfg(feature = "cuda")]
pub const DEFAULT_ENGINE: Engine = Engine::Burn;

/// The engine asked for, else this build's default.
pub fn engine_or_default(asked: Option<Engine>) -> Engine {
    asked.unwrap_or(DEFAULT_ENGINE)
}
