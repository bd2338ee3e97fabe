//! Each modality's defaults, as data: what a user gets without flags. One place holds them;
//! `train`, `finetune`, `inspect`'s estimate and the Python package all read them here.

use deepinterp::model::{Modality, NormalizationPolicy};
use deepinterp::sampling::Window;
use deepinterp::training::{Loss, OptimizerKind};

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
    /// Optimiser steps of a training run.
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
    /// Optimiser steps of a fine-tuning run: the paper's point is that little data and time
    /// recover quality.
    pub finetune_steps: usize,
    /// Fine-tuning's learning rate relative to training's: a fresh optimiser's first steps on
    /// a trained network are large (RMSprop's running average starts at zero), and at the
    /// training rate they undid more than 160 steps could recover on a simulated movie.
    pub finetune_learning_rate_factor: f64,
}

/// Two-photon movies: a small network that trains well in minutes on 2 CPU cores, on 64²
/// crops.
pub const TWO_PHOTON: Preset = Preset {
    modality: Modality::TwoPhoton,
    architecture: "unet-d3-w16",
    loss: Loss::L1,
    optimizer: OptimizerKind::RmsProp,
    learning_rate: 5e-4,
    batch_size: 8,
    patch_size: 64,
    steps: 1000,
    steps_per_epoch: 50,
    validation_fraction: 0.1,
    validation_samples: 16,
    cache_frames: 512,
    cache_refresh_steps: 25,
    finetune_steps: 500,
    finetune_learning_rate_factor: 0.2,
};

/// Extracellular recordings on the paper's probe grid, narrower and shallower. A probe grid
/// is small (384 × 2): whole grids, more of them per step. Spikes are a small part of each
/// sample's loss, so telling a better model from a worse one takes many validation samples
/// (512 of 384 channels hold 94 MB).
pub const EPHYS: Preset = Preset {
    modality: Modality::Ephys,
    architecture: "unet-ephys-d3-w16",
    loss: Loss::L1,
    optimizer: OptimizerKind::RmsProp,
    learning_rate: 5e-4,
    batch_size: 32,
    patch_size: 0,
    steps: 1000,
    steps_per_epoch: 50,
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
/// 4× the steps of 256 in the same time for the same progress per step. Blocks are small,
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
