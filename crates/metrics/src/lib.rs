//! Quality metrics for denoised movies, computed while the movie streams by, and report plots.
//!
//! [`Evaluator`] takes consecutive chunks of `f32` frames (row-major `[frame][row][column]`) of
//! the noisy input, the denoised output and, for simulations, the clean ground truth, and
//! produces an [`EvalReport`] with the paper's measures (Lecoq et al. 2021): L1/L2 error to the
//! clean movie compared with the noisy input and with Gaussian-filter baselines (σ = 3; a
//! spatiotemporal 3D one and a spatial 2D one), and the per-pixel SNR
//! `median(trace) / median(std of 100-frame blocks)` before and after denoising. Memory stays
//! bounded however long the movie is. [`plots`] draws loss curves and side-by-side frame
//! comparisons to PNG with an embedded font (no system font libraries needed).
//! [`EphysEvaluator`] does the same for extracellular spike-band recordings (`[sample][channel]`
//! in µV): channel RMS noise within ±50 µV, error to clean, and waveform cosine and trough
//! amplitude of known spikes, in an [`EphysReport`].
//! [`FmriEvaluator`] does it for fMRI volumes (`[t][z][y][x]`, NIfTI order): per-voxel
//! temporal SNR (mean / std over time, edge frames dropped) in brain voxels before and after
//! denoising, and error to clean, in an [`FmriReport`].
//!
//! Movie reports also name the best of a range of Gaussian filters ([`baselines`]) and
//! summarise the residual `noisy − denoised` ([`residual`]): structure in it means signal
//! was removed.
//!
//! Modules: `evaluator` (the report), [`gaussian`] (baseline filters), [`snr`] (SNR definition
//! and sampling rule), [`plots`] (PNG figures), [`ephys`] (spike-band metrics and their
//! definitions), [`fmri`] (tSNR, brain mask and their definitions), `error` (errors).

pub mod baselines;
pub mod ephys;
mod error;
mod evaluator;
pub mod fmri;
pub mod gaussian;
pub mod plots;
pub mod residual;
pub mod snr;

pub use baselines::BestGaussian;
pub use ephys::{
    EphysErrorStats, EphysEvalSettings, EphysEvaluator, EphysReport, GroundTruthSpike,
    SpikeFidelity, UnitChannels, UnitFidelity,
};
pub use error::MetricsError;
pub use evaluator::{ErrorStats, EvalReport, Evaluator, SnrStats};
pub use fmri::{BrainThreshold, FmriErrorStats, FmriEvalSettings, FmriEvaluator, FmriReport};
pub use gaussian::{BASELINE_SIGMA, SpatialGaussian, SpatioTemporalGaussian, gaussian_kernel};
pub use residual::ResidualStats;
pub use snr::{MAX_SAMPLED_PIXELS, SNR_BLOCK_FRAMES, TRACE_VALUE_BUDGET};
