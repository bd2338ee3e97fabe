//! One function per subcommand; each returns what a caller (the demo, tests) may reuse.

mod demo;
mod denoise;
mod evaluate;
mod export;
mod inspect;
mod simulate;
mod train;

pub use demo::demo;
pub use denoise::denoise;
pub use evaluate::evaluate;
pub use export::export;
pub use inspect::inspect;
pub use simulate::{simulate_2p, simulate_ephys, simulate_fmri};
pub use train::{finetune, train};
