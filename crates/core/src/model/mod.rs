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

/// Named architectures that `--arch` accepts.
pub fn architecture_config(name: &str, window: &Window) -> Result<UNetConfig, EngineError> {
    let channels = window.input_frames();
    if name == "unet_single_1024" {
        return Ok(UNetConfig::unet_single_1024(channels));
    }
    // "unet-d<depth>-w<base width>", e.g. unet-d3-w16.
    let parsed = name.strip_prefix("unet-d").and_then(|rest| {
        let (depth, width) = rest.split_once("-w")?;
        Some((depth.parse::<usize>().ok()?, width.parse::<usize>().ok()?))
    });
    match parsed {
        Some((depth, width)) if (1..=6).contains(&depth) && width > 0 => {
            Ok(UNetConfig::scaled(channels, depth, width))
        }
        _ => Err(EngineError::Settings(format!(
            "unknown architecture '{name}': use unet_single_1024 or unet-d<depth>-w<width> (e.g. unet-d3-w16)"
        ))),
    }
}

/// Loads a model: our own file, or an original Keras `.h5`.
///
/// A Keras file records no window; `keras_window` supplies it (the paper's two-photon default
/// is 30/30/0, and the window must have as many frames as the network has input channels).
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
    let window = match keras_window {
        Some(window) => window,
        None => Window::new(channels / 2, channels - channels / 2, 0)?,
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
    } else {
        "keras-unet".to_string()
    };
    Ok(Model {
        spec: ModelSpec {
            architecture,
            modality: Modality::TwoPhoton,
            network: imported.config,
            window,
            normalization: NormalizationPolicy::default(),
            training: None,
            source: format!("keras:{}", path.display()),
        },
        network: imported.network,
    })
}
