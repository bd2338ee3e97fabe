//! Models: the networks, how they are described, and the files they travel in.
//!
//! A [`Model`] is a network plus the [`ModelSpec`] needed to use it on a recording without
//! further flags: modality, window, normalisation policy and a training summary. Our own
//! model file ([`file`]) stores both; the original's Keras files ([`keras`]) carry only the
//! network, so the spec is completed with the paper's defaults for the modality.

pub mod file;
pub mod keras;
pub mod unet;

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::sampling::Window;
pub use unet::{UNet, UNetConfig};

/// The kind of recording a model denoises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    /// Two-photon calcium imaging movies `[t, y, x]`.
    TwoPhoton,
    /// Extracellular recordings `[sample, channel]`, laid out on a probe grid (see
    /// [`crate::probe`]).
    Ephys,
}

impl Modality {
    /// The paper's window for the modality (2P: 30/30/0; Neuropixels: 30/30/1).
    pub fn default_window(self) -> Window {
        match self {
            Modality::TwoPhoton => Window {
                pre_frames: 30,
                post_frames: 30,
                omitted_frames: 0,
            },
            Modality::Ephys => Window {
                pre_frames: 30,
                post_frames: 30,
                omitted_frames: 1,
            },
        }
    }

    /// The original's normalisation for the modality: statistics from the first 100 frames
    /// (2P) or the first 200,000 samples of all channels (ephys).
    pub fn default_normalization(self) -> NormalizationPolicy {
        match self {
            Modality::TwoPhoton => NormalizationPolicy { stats_frames: 100 },
            Modality::Ephys => NormalizationPolicy {
                stats_frames: 200_000,
            },
        }
    }

    /// The name users see ("2p", "ephys").
    pub fn name(self) -> &'static str {
        match self {
            Modality::TwoPhoton => "2p",
            Modality::Ephys => "ephys",
        }
    }
}

/// How a recording's global mean and std are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizationPolicy {
    /// Statistics come from the first `stats_frames` frames of the file (original: 100).
    pub stats_frames: usize,
}

impl Default for NormalizationPolicy {
    fn default() -> Self {
        Self { stats_frames: 100 }
    }
}

/// What a trained model was trained on, and how it went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Input files.
    pub inputs: Vec<String>,
    /// Frame size the model was trained on (height, width).
    pub frame_size: Option<[usize; 2]>,
    /// Optimiser steps run.
    pub steps: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Loss function ("l1" or "l2").
    pub loss: String,
    /// Best validation loss, if validation ran.
    pub best_validation_loss: Option<f64>,
    /// `(step, training loss, validation loss)` at the end of each epoch.
    pub history: Vec<(usize, f64, Option<f64>)>,
    /// Seed of the run.
    pub seed: u64,
}

/// Everything, besides weights, needed to use a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Name of the architecture ("unet_single_1024", "unet-d3-w16", ...).
    pub architecture: String,
    /// Kind of recording.
    pub modality: Modality,
    /// The network's shape.
    pub network: UNetConfig,
    /// Frames around the predicted one.
    pub window: Window,
    /// How recordings are normalised.
    pub normalization: NormalizationPolicy,
    /// Training provenance, when trained by deepinterp.
    pub training: Option<TrainingSummary>,
    /// Where the weights came from (a Keras file, a training run, ...).
    pub source: String,
}

/// A network with its spec.
#[derive(Debug)]
pub struct Model<B: Backend> {
    /// The description.
    pub spec: ModelSpec,
    /// The network.
    pub network: UNet<B>,
}

/// Named architectures that `--arch` accepts, and the modality each is shaped for.
///
/// Two-photon: `unet_single_1024` and `unet-d<depth>-w<width>` (3×3 kernels, 2×2 pools).
/// Ephys: `unet_single_ephys_1024` and `unet-ephys-d<depth>-w<width>` (probe-grid kernels).
pub fn architecture_config(
    name: &str,
    window: &Window,
) -> Result<(UNetConfig, Modality), EngineError> {
    let channels = window.input_frames();
    match name {
        "unet_single_1024" => {
            return Ok((UNetConfig::unet_single_1024(channels), Modality::TwoPhoton));
        }
        "unet_single_ephys_1024" => {
            return Ok((
                UNetConfig::unet_single_ephys_1024(channels),
                Modality::Ephys,
            ));
        }
        _ => {}
    }
    let (modality, rest) = match name.strip_prefix("unet-ephys-d") {
        Some(rest) => (Modality::Ephys, Some(rest)),
        None => (Modality::TwoPhoton, name.strip_prefix("unet-d")),
    };
    let parsed = rest.and_then(|rest| {
        let (depth, width) = rest.split_once("-w")?;
        Some((depth.parse::<usize>().ok()?, width.parse::<usize>().ok()?))
    });
    match parsed {
        Some((depth, width)) if (1..=6).contains(&depth) && width > 0 => {
            let config = match modality {
                Modality::TwoPhoton => UNetConfig::scaled(channels, depth, width),
                Modality::Ephys => UNetConfig::scaled_probe(channels, depth, width),
            };
            Ok((config, modality))
        }
        _ => Err(EngineError::Settings(format!(
            "unknown architecture '{name}': use unet_single_1024 or unet-d<depth>-w<width> (two-photon, e.g. unet-d3-w16), unet_single_ephys_1024 or unet-ephys-d<depth>-w<width> (ephys)"
        ))),
    }
}

/// The modality a network's shape is made for: probe-grid networks (a (2,1) pool, i.e. pooling
/// along the probe only) are ephys, the rest two-photon.
pub fn network_modality(config: &UNetConfig) -> Modality {
    if config.pools.iter().any(|pool| pool[0] != pool[1]) {
        Modality::Ephys
    } else {
        Modality::TwoPhoton
    }
}

/// Loads a model: our own file, or an original Keras `.h5`.
///
/// A Keras file records no window; `keras_window` supplies it (by default the paper's window
/// of the network's modality: 30/30/0 for two-photon, 30/30/1 for ephys). The window must have
/// as many frames as the network has input channels.
pub fn load_model<B: Backend>(
    path: &Path,
    keras_window: Option<Window>,
    device: &B::Device,
) -> Result<Model<B>, EngineError> {
    if file::is_model_file(path)? {
        return file::read_model(path, device);
    }
    let imported = keras::import_keras_unet::<B>(path, device)?;
    let channels = imported.config.in_channels;
    let modality = network_modality(&imported.config);
    let window = match keras_window {
        Some(window) => window,
        None => {
            let paper = modality.default_window();
            if paper.input_frames() == channels {
                paper
            } else {
                Window::new(channels / 2, channels - channels / 2, paper.omitted_frames)?
            }
        }
    };
    if window.input_frames() != channels {
        return Err(EngineError::model_file(
            path,
            format!(
                "the network takes {channels} frames but the window has {} (pre {} + post {})",
                window.input_frames(),
                window.pre_frames,
                window.post_frames
            ),
        ));
    }
    let architecture = if imported.config == UNetConfig::unet_single_1024(channels) {
        "unet_single_1024".to_string()
    } else if imported.config == UNetConfig::unet_single_ephys_1024(channels) {
        "unet_single_ephys_1024".to_string()
    } else {
        "keras-unet".to_string()
    };
    Ok(Model {
        spec: ModelSpec {
            architecture,
            modality,
            network: imported.config,
            window,
            normalization: modality.default_normalization(),
            training: None,
            source: format!("keras:{}", path.display()),
        },
        network: imported.network,
    })
}
