//! DeepInterpolation's application layer: what every front end (the `deepinterp` CLI, the
//! Python package, a shard runner) calls. It owns the recipes that sit above the engine:
//!
//! - [`preset`]: each modality's defaults, as data;
//! - [`recording`]: which modality a file is, and opening it for the engine;
//! - [`train`]: training and fine-tuning runs (settings resolved in one place, outputs
//!   claimed before work, the best model kept, loss history written);
//! - [`denoise`]: denoising runs of every modality, outputs written atomically;
//! - [`evaluate`]: quality measurements of a denoised recording (JSON report, summary lines);
//! - [`inspect`]: what a file is (model or recording), with a timed estimate of denoising it;
//! - [`simulate`]: simulated recordings of every modality with their ground truth;
//! - [`progress`]: the news a long call gives its front end (lines to show, counts to draw);
//! - [`backend`]: the backends of this build and the default engine.
//!
//! Front ends parse their input into the request types here (with the `clap` feature they
//! derive `clap::Args`), call one function, and show what it reports. Errors are
//! [`PipelineError`]s whose messages are one line naming the file and the cause.

pub mod backend;
pub mod denoise;
mod error;
pub mod evaluate;
pub mod inspect;
pub mod parse;
pub mod preset;
pub mod progress;
pub mod recording;
pub mod simulate;
pub mod train;

pub use denoise::{DenoiseReport, DenoiseRequest, OutputDtype, denoise};
pub use error::{PipelineError, Result, escape_controls, one_line};
pub use evaluate::{EvaluateRequest, Evaluation, evaluate};
pub use inspect::{Inspection, inspect};
pub use preset::Preset;
pub use progress::{Observer, Progress, Reporter};
pub use recording::{RawOptions, Recording, modality_of};
pub use train::{FinetuneRequest, TrainReport, TrainRequest, finetune, train};
