//! Ground-truth functional MRI: a gradient-echo EPI run of a brain-shaped head, as the sum of
//! known task responses, spontaneous fluctuations and scanner drift on a tissue-contrast
//! baseline, plus thermal noise.
//!
//! [`FmriSimulator`] streams a run volume by volume as two `f32` buffers in scanner intensity
//! units (a few hundred to ~1000 in the brain, like int16 EPI data), NIfTI order (x fastest,
//! then y, then z, then time): the *clean* run (noise-free magnitude) and the *noisy* one (the
//! magnitude of the clean signal plus complex Gaussian noise), the pair a denoiser of fMRI
//! (DeepInterpolation, Lecoq et al. 2021, Fig. 5) is scored against. The ground truth — tissue
//! classes ([`Tissue`]), brain and activation masks, the active regions ([`ActiveRegion`]) with
//! their task designs and responses — is available before anything is rendered.
//!
//! Memory holds a few numbers per voxel and per time point (never one per voxel *and* time
//! point). The output is a pure function of [`FmriConfig`] however the run is split into
//! [`FmriSimulator::next_volumes`] calls, and whatever the thread count.
//!
//! Modules: `config` (parameters, validation), `field` (smooth random spatial fields),
//! `anatomy` (head shape, tissue classes, baseline image), `bold` (haemodynamic response, task
//! designs, spontaneous and drift time courses, active regions), `simulator` (per-voxel signal
//! model, rendering and noise).

mod anatomy;
mod bold;
mod config;
mod field;
mod simulator;

pub use anatomy::Tissue;
pub use bold::{ActiveRegion, TaskDesign, canonical_hrf};
pub use config::{
    FmriConfig, MAX_ACTIVE_REGIONS, MAX_FMRI_VOXELS, MAX_REPETITION_TIME_S, MIN_FMRI_FRAMES,
};
pub use simulator::FmriSimulator;

use crate::rng::{Stream, StreamRng};

/// Mixed into the seed of every fMRI stream, so that a run and a two-photon movie or an
/// extracellular recording simulated with the same seed do not share random numbers.
const FMRI_SEED_SALT: u64 = 0x666d_7269_5f73_696d;

/// The random stream for `stream`, sub-stream `index` (a spatial field, a region, a slice of
/// one volume) of the run with `seed`.
fn fmri_rng(seed: u64, stream: Stream, index: u64) -> StreamRng {
    StreamRng::new(seed ^ FMRI_SEED_SALT, stream, index)
}
