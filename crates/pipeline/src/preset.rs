//! Each modality's defaults, as data: what a user gets without flags. One place holds them;
//! `train`, `finetune`, `inspect`'s estimate and the Python package all read them here.

use deepinterp::model::{Modality, NormalizationPolicy};
use deepinterp::sampling::Window;
use deepinterp::training::{Convergence, Loss, OptimizerKind};

/// The defaults of one modality.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// The modality these defaults are for.
    pub modality: Modality,
    /// Architecture trained when none is named.
    pub architecture: &'static str,
    /// Training loss.
    pub loss: Loss,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// Samples per step.
    pub batch_size: usize,
    /// Side of square training crops (0: whole frames). Frames no larger than it train whole.
    pub patch_size: usize,
    /// When a run without `--steps` is done: when its validation loss stops improving.
    pub convergence: Convergence,
    /// The most steps such a run takes (a bound for runs with no time budget).
    pub max_steps: usize,
    /// Optimiser steps of a run that has no validation to tell when it is done.
    pub steps: usize,
    /// Steps between validations, checkpoints and loss-history points.
    pub steps_per_epoch: usize,
    /// Fraction of each input held out for validation when no validation recording is given.
    pub validation_fraction: f64,
    /// Fixed validation samples scored after each epoch.
    pub validation_samples: usize,
    /// Frames held in memory for sampling at once.
    pub cache_frames: usize,
    /// Steps between refreshes of that cache.
    pub cache_refresh_steps: usize,
    /// Optimiser steps of a fine-tuning run without validation: the paper's point is that
    /// little data and time recover quality.
    pub finetune_steps: usize,
    /// Fine-tuning's learning rate relative to training's: a fresh optimiser's first steps on
    /// a trained network are large (RMSprop's running average starts at zero), and at the
    /// training rate they undid more than 160 steps could recover on a simulated movie.
    pub finetune_learning_rate_factor: f64,
}

/// The convergence rule of every modality, counted in each preset's epochs (50 steps; 250 for
/// extracellular recordings, see [`EPHYS`]); progress is judged on the
/// fixed validation samples, paired, against their spread (see
/// `deepinterp::training::Convergence`). Measured on a two-photon movie at 4 photons per unit
/// with an 8-minute cap (BENCHMARKS.md, "Training until it converges"): the self-supervised
/// loss is mostly noise that cannot be predicted, so a model still getting markedly closer to
/// the truth lowers it by ~0.02% per epoch, less than it moves from epoch to epoch. A minimum
/// relative improvement of 0.05% with halvings after 4 epochs and an end after 12 stopped at
/// 2,300 steps with a 15% higher error than the whole budget at a constant rate; significance
/// alone with 8 and 24 stopped at 3,650 steps (261 s) with a 5% lower error than the whole
/// budget. The floor of 0.001% only keeps rounding-level changes of a network that does not
/// move (a paired difference of 1e-12 with a smaller spread is "significant") from counting.
const CONVERGENCE: Convergence = Convergence {
    min_improvement: 1e-5,
    plateau_epochs: 8,
    patience_epochs: 24,
};

/// A bound on a converging run with no time budget: 100,000 steps are hours on 2 cores.
const MAX_STEPS: usize = 100_000;

/// Two-photon movies: a small network that trains well in minutes on 2 CPU cores, on 64²
/// crops. L2, not the paper's L1: photon counts are Poisson, and L1 aims at their median,
/// which lies below their mean; on simulated movies from 0.5 to 100 photons per unit L2 gave
/// a lower error to the truth at every photon count, by up to 50× at the lowest
/// (BENCHMARKS.md, "Which loss"). 64 validation crops rank models to about 0.1% of the loss.
pub const TWO_PHOTON: Preset = Preset {
    modality: Modality::TwoPhoton,
    architecture: "unet-d3-w16",
    loss: Loss::L2,
    optimizer: OptimizerKind::RmsProp,
    learning_rate: 5e-4,
    batch_size: 8,
    patch_size: 64,
    convergence: CONVERGENCE,
    max_steps: MAX_STEPS,
    steps: 1000,
    steps_per_epoch: 50,
    validation_fraction: 0.1,
    validation_samples: 64,
    cache_frames: 512,
    cache_refresh_steps: 25,
    finetune_steps: 500,
    finetune_learning_rate_factor: 0.2,
};

/// Extracellular recordings on the paper's probe grid, narrower and shallower. A probe grid
/// is small (384 × 2): whole grids, more of them per step. Spikes are a small part of each
/// sample's loss, so telling a better model from a worse one takes many validation samples
/// (512 of 384 channels hold 94 MB). L2, not the paper's L1: where spikes are sparse and
/// small against the noise (SpikeInterface's simulator, 2–12 Hz units at 12 µV noise), L1's
/// best guess is the median, zero, and a network trained with it learned nothing in 4,000
/// steps while one trained with L2 kept improving; on our own simulator L2 was as good or
/// slightly better (BENCHMARKS.md, "Which loss"). Epochs of 250 steps: the spikes the
/// network is still learning move the validation loss by about 0.0015% per 50 steps, below
/// what 512 samples resolve; a run judged every 50 steps ended at 2,900 steps with 1.7
/// times the squared error to the truth of one judged every 250 steps, which went
/// on (halving its rate six times) to 19,500 (BENCHMARKS.md, "Training until it converges").
pub const EPHYS: Preset = Preset {
    modality: Modality::Ephys,
    architecture: "unet-ephys-d3-w16",
    loss: Loss::L2,
    optimizer: OptimizerKind::RmsProp,
    learning_rate: 5e-4,
    batch_size: 32,
    patch_size: 0,
    convergence: CONVERGENCE,
    max_steps: MAX_STEPS,
    steps: 1000,
    steps_per_epoch: 250,
    validation_fraction: 0.1,
    validation_samples: 512,
    cache_frames: 512,
    cache_refresh_steps: 25,
    finetune_steps: 500,
    finetune_learning_rate_factor: 0.2,
};

/// fMRI runs: the paper's network. It is tiny (44k parameters, 5.6 MFLOP per block). Its
/// inputs span about ±12 central-block stds (dark background, zeros beyond the volume),
/// where RMSprop at 1e-3 stalls far above a plain temporal mean (L1 0.9 vs 0.26 after 600
/// steps on a simulated run) and Adam reaches 0.47 in 300. Small batches of 64 blocks give
/// 4× the steps of 256 in the same time for the same progress per step. L1 stays: after
/// 1,500 steps on a simulated run it cut the error to the truth 1.37× where L2 cut it 1.05×
/// (BENCHMARKS.md, "Which loss"). Blocks are small,
/// so thousands of validation blocks cost little; volumes are large frames, so a few dozen
/// time points in memory suffice for varied blocks.
pub const FMRI: Preset = Preset {
    modality: Modality::Fmri,
    architecture: "fmri_unet_denoiser",
    loss: Loss::L1,
    optimizer: OptimizerKind::Adam,
    learning_rate: 1e-3,
    batch_size: 64,
    patch_size: 0,
    convergence: CONVERGENCE,
    max_steps: MAX_STEPS,
    steps: 1000,
    steps_per_epoch: 50,
    validation_fraction: 0.1,
    validation_samples: 4096,
    cache_frames: 48,
    cache_refresh_steps: 25,
    finetune_steps: 500,
    finetune_learning_rate_factor: 0.2,
};

impl Preset {
    /// The preset of `modality`.
    pub fn of(modality: Modality) -> &'static Preset {
        match modality {
            Modality::TwoPhoton => &TWO_PHOTON,
            Modality::Ephys => &EPHYS,
            Modality::Fmri => &FMRI,
        }
    }

    /// The paper's window for this modality.
    pub fn window(&self) -> Window {
        self.modality.default_window()
    }

    /// Where the normalisation statistics come from by default.
    pub fn normalization(&self) -> NormalizationPolicy {
        self.modality.default_normalization()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepinterp::model::architecture_config;

    #[test]
    fn each_preset_names_an_architecture_of_its_modality() {
        for modality in [Modality::TwoPhoton, Modality::Ephys, Modality::Fmri] {
            let preset = Preset::of(modality);
            assert_eq!(preset.modality, modality);
            let (_, arch_modality) =
                architecture_config(preset.architecture, &preset.window()).unwrap();
            assert_eq!(arch_modality, modality, "{}", preset.architecture);
        }
    }
}
