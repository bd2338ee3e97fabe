//! Ground-truth extracellular recordings: the spike band (~300 Hz–6 kHz) of a Neuropixels-like
//! probe, as the sum of known units' spikes plus thermal noise.
//!
//! [`EphysSimulator`] streams a recording sample by sample as two `f32` buffers in µV,
//! sample-major `[sample][channel]`: the *clean* recording (every unit's spikes, zero-mean, no
//! LFP) and the *noisy* one (clean plus white Gaussian noise), the pair a denoiser of
//! electrophysiology (DeepInterpolation, Lecoq et al. 2021, Fig. 4) is scored against. The
//! ground truth — units ([`UnitTruth`]), their multichannel waveforms ([`UnitTemplate`]) and
//! every spike ([`GroundTruthSpike`]) — is available before anything is rendered.
//!
//! Memory holds the units, their templates and the spike list (drawn at construction), and
//! does not otherwise grow with the recording's length. The output is a pure function of
//! [`EphysConfig`] however the recording is split into [`EphysSimulator::next_samples`] calls.
//!
//! Modules: `config` (parameters, probe layout, validation), `units` (placement, amplitudes
//! and waveforms), `spikes` (spike trains), `simulator` (rendering and noise).

mod config;
mod simulator;
mod spikes;
mod units;

pub use config::{
    EphysConfig, MAX_EPHYS_CHANNELS, MAX_EPHYS_FIRING_RATE_HZ, MIN_EPHYS_SAMPLE_RATE_HZ,
    NEUROPIXELS_CHANNELS,
};
pub use simulator::{EphysSimulator, NOISE_BLOCK_SAMPLES};
pub use spikes::{GroundTruthSpike, REFRACTORY_PERIOD_S};
pub use units::{UnitTemplate, UnitTruth};

use crate::rng::{Stream, StreamRng};

/// Mixed into the seed of every electrophysiology stream, so that a recording and a two-photon
/// movie simulated with the same seed do not share random numbers.
const EPHYS_SEED_SALT: u64 = 0x6570_6879_735f_7369;

/// The random stream for `stream`, sub-stream `index` (a unit, a noise block) of the recording
/// with `seed`.
fn ephys_rng(seed: u64, stream: Stream, index: u64) -> StreamRng {
    StreamRng::new(seed ^ EPHYS_SEED_SALT, stream, index)
}
