//! Ground-truth two-photon calcium movies for testing and benchmarking denoisers.
//!
//! [`TwoPhotonSimulator`] streams a movie frame by frame as two `f32` buffers, row-major
//! `[frame][row][column]`: the *clean* movie (expected photon count per pixel) and the *noisy*
//! movie (Poisson shot noise on it), the pair DeepInterpolation's simulations (Lecoq et al.
//! 2021, Ext. Fig. 1) compare against. The scene has soft-edged elliptical somata (some with a
//! dark nucleus) whose calcium follows Poisson spike bursts through a rise/decay indicator
//! kernel, a smooth slowly fluctuating neuropil, a vignetted baseline and optional rigid
//! sub-pixel motion.
//!
//! Memory does not grow with the number of frames (state is per neuron, spikes are drawn on
//! the fly) and the output is a pure function of [`TwoPhotonConfig`] — in particular of its
//! seed — however the movie is split into [`TwoPhotonSimulator::next_frames`] calls. The crate
//! knows nothing of file formats.
//!
//! [`EphysSimulator`] does the same for extracellular electrophysiology: a Neuropixels-like
//! spike-band recording (units' multichannel spike templates plus white Gaussian noise, in µV)
//! with its ground-truth units and spike times; see [`EphysConfig`].
//!
//! [`FmriSimulator`] does the same for functional MRI: a gradient-echo EPI run of a
//! brain-shaped head (tissue contrast, task responses through a canonical haemodynamic
//! response, spontaneous fluctuations, drift, Rician thermal noise at a target tSNR) with its
//! tissue classes, brain and activation masks and active regions; see [`FmriConfig`].
//!
//! Modules: `config` (parameters, validation, errors), `scene` (static footprints and
//! backgrounds), `dynamics` (spikes, calcium, neuropil, motion), `simulator` (rendering and
//! noise), `rng` (seeded random streams), `ephys` (the extracellular recording simulator),
//! `fmri` (the fMRI simulator).

mod config;
mod dynamics;
mod ephys;
mod fmri;
mod rng;
mod scene;
mod simulator;

pub use config::{MAX_FRAME_PIXELS, PIXELS_PER_NEURON, SimError, TwoPhotonConfig};
pub use ephys::{
    EphysConfig, EphysSimulator, GroundTruthSpike, MAX_EPHYS_CHANNELS, MAX_EPHYS_FIRING_RATE_HZ,
    MIN_EPHYS_SAMPLE_RATE_HZ, NEUROPIXELS_CHANNELS, NOISE_BLOCK_SAMPLES, REFRACTORY_PERIOD_S,
    UnitTemplate, UnitTruth,
};
pub use fmri::{
    ActiveRegion, FmriConfig, FmriSimulator, MAX_ACTIVE_REGIONS, MAX_FMRI_VOXELS,
    MAX_REPETITION_TIME_S, MIN_FMRI_FRAMES, TaskDesign, Tissue, canonical_hrf,
};
pub use scene::NeuronTruth;
pub use simulator::{GroundTruthSummary, TwoPhotonSimulator};
