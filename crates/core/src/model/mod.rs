//! Models: the networks, how they are described, and the files they travel in.
//!
//! A [`Model`] is a network plus the [`ModelSpec`] needed to use it on a recording without
//! further flags: modality, window, normalisation policy and a training summary. Our own
//! model file ([`file`]) stores both; the original's Keras files ([`keras`]) carry only the
//! network, so the spec is completed with the paper's defaults for the modality. Any of our
//! U-Nets can be written as such a Keras file ([`keras_export`]) for the original's tools.

pub mod file;
pub mod keras;
pub mod keras_export;
pub mod network;
pub mod unet;
pub mod unet3d;

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use deepinterp_io::limits::{check_memory, checked_product};

use crate::error::{EngineError, escape_text};
use crate::sampling::Window;
use crate::volume::VolumeBlock;
pub use keras_export::export_keras;
pub use network::{Network, NetworkConfig, UNetShape};
pub use unet::{UNet, UNetConfig};
pub use unet3d::{VolumeUNet, VolumeUNetConfig};

/// The kind of recording a model denoises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    /// Two-photon calcium imaging movies `[t, y, x]`.
    TwoPhoton,
    /// Extracellular recordings `[sample, channel]`, laid out on a probe grid (see
    /// [`crate::probe`]).
    Ephys,
    /// fMRI runs `[x, y, z, t]`, denoised voxel block by voxel block (see [`crate::volume`]).
    Fmri,
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
            Modality::Fmri => Window {
                pre_frames: 2,
                post_frames: 2,
                omitted_frames: 0,
            },
        }
    }

    /// Input channels of the modality's networks for `window`: its frames, plus the centre
    /// time point for fMRI (whose blocks keep the centre volume with a hole in it).
    pub fn network_channels(self, window: &Window) -> usize {
        match self {
            Modality::TwoPhoton | Modality::Ephys => window.input_frames(),
            Modality::Fmri => window.input_frames().saturating_add(1),
        }
    }

    /// The original's normalisation for the modality: statistics from the first 100 frames
    /// (2P), the first 200,000 samples of all channels (ephys) or the central block of the
    /// run (fMRI).
    pub fn default_normalization(self) -> NormalizationPolicy {
        match self {
            Modality::TwoPhoton => NormalizationPolicy::default(),
            Modality::Ephys => NormalizationPolicy {
                stats_frames: 200_000,
                region: StatsRegion::Head,
            },
            Modality::Fmri => NormalizationPolicy {
                stats_frames: 0,
                region: StatsRegion::CentralBlock,
            },
        }
    }

    /// The name users see ("2p", "ephys").
    pub fn name(self) -> &'static str {
        match self {
            Modality::TwoPhoton => "2p",
            Modality::Ephys => "ephys",
            Modality::Fmri => "fmri",
        }
    }
}

/// How a recording's global mean and std are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizationPolicy {
    /// Statistics come from the first `stats_frames` frames of the file (original: 100);
    /// unused for [`StatsRegion::CentralBlock`].
    pub stats_frames: usize,
    /// Which part of the recording the statistics come from.
    #[serde(default)]
    pub region: StatsRegion,
}

/// The part of a recording normalisation statistics are computed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsRegion {
    /// The first frames of the file (two-photon, ephys).
    #[default]
    Head,
    /// The middle ±25% of every axis, time included (the original's fMRI statistics; see
    /// [`crate::volume::central_block_statistics`]).
    CentralBlock,
}

impl Default for NormalizationPolicy {
    fn default() -> Self {
        Self {
            stats_frames: 100,
            region: StatsRegion::Head,
        }
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
    /// How the run ended; absent in models of older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<crate::training::RunEnd>,
}

/// Everything, besides weights, needed to use a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Name of the architecture ("unet_single_1024", "unet-d3-w16", ...).
    pub architecture: String,
    /// Kind of recording.
    pub modality: Modality,
    /// The network's shape.
    pub network: NetworkConfig,
    /// Frames (fMRI: time points) around the predicted one.
    pub window: Window,
    /// The voxel block of volumetric models (fMRI); `None` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<VolumeBlock>,
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
    pub network: Network<B>,
}

/// Named architectures that `--arch` accepts, and the modality each is shaped for.
///
/// Two-photon: `unet_single_1024` and `unet-d<depth>-w<width>` (3×3 kernels, 2×2 pools).
/// Ephys: `unet_single_ephys_1024` and `unet-ephys-d<depth>-w<width>` (probe-grid kernels).
/// fMRI: `fmri_unet_denoiser` and `unet3d-d<depth>-w<width>` (3³ kernels, 2³ pools).
///
/// Depth and width are bounded, and the network's training memory (weights, gradients and
/// two optimiser states per parameter) must fit the memory budget: a mistyped
/// `--arch unet-d1-w100000` is a one-line error, not an allocation abort.
pub fn architecture_config(
    name: &str,
    window: &Window,
) -> Result<(NetworkConfig, Modality), EngineError> {
    window.validate()?;
    let (config, modality) = parse_architecture(name, window)?;
    config.validate().map_err(|e| {
        EngineError::Settings(format!(
            "--arch {}: {}",
            escape_text(name),
            e.to_string().trim_start_matches("invalid model: ")
        ))
    })?;
    check_parameter_memory(
        &config,
        Path::new(&format!("--arch {}", escape_text(name))),
        TRAINING_COPIES,
    )?;
    Ok((config, modality))
}

/// Copies of every parameter training holds: the weights, their gradients and up to two
/// optimiser states (Adam's moments).
pub const TRAINING_COPIES: u64 = 4;

/// Errors when `copies` float32 values per parameter of `config` exceed the memory budget;
/// `source` names where the configuration came from (a file, or a flag such as `--arch`).
pub fn check_parameter_memory(
    config: &NetworkConfig,
    source: &Path,
    copies: u64,
) -> Result<(), EngineError> {
    // validate() bounds every width and side, so the count cannot overflow.
    let parameters = config.parameter_count() as u64;
    let bytes = checked_product(source, "the network's parameters", &[parameters, 4, copies])?;
    check_memory(
        source,
        &format!("the network's {parameters} parameters"),
        bytes,
    )?;
    Ok(())
}

/// The widest base width `--arch` accepts: far above any useful network, low enough that
/// the doubling widths of the deepest levels stay within [`network::MAX_WIDTH`].
const MAX_ARCH_WIDTH: usize = 1 << 13;

fn parse_architecture(
    name: &str,
    window: &Window,
) -> Result<(NetworkConfig, Modality), EngineError> {
    let channels = window.input_frames();
    let volume_channels = Modality::Fmri.network_channels(window);
    match name {
        "unet_single_1024" => {
            return Ok((
                NetworkConfig::Planar(UNetConfig::unet_single_1024(channels)),
                Modality::TwoPhoton,
            ));
        }
        "unet_single_ephys_1024" => {
            return Ok((
                NetworkConfig::Planar(UNetConfig::unet_single_ephys_1024(channels)),
                Modality::Ephys,
            ));
        }
        "fmri_unet_denoiser" => {
            return Ok((
                NetworkConfig::Volumetric(VolumeUNetConfig::fmri_unet_denoiser(volume_channels)),
                Modality::Fmri,
            ));
        }
        _ => {}
    }
    let (modality, rest) = if let Some(rest) = name.strip_prefix("unet-ephys-d") {
        (Modality::Ephys, Some(rest))
    } else if let Some(rest) = name.strip_prefix("unet3d-d") {
        (Modality::Fmri, Some(rest))
    } else {
        (Modality::TwoPhoton, name.strip_prefix("unet-d"))
    };
    let parsed = rest.and_then(|rest| {
        let (depth, width) = rest.split_once("-w")?;
        Some((depth.parse::<usize>().ok()?, width.parse::<usize>().ok()?))
    });
    match parsed {
        Some((depth, width)) if (1..=6).contains(&depth) && width > MAX_ARCH_WIDTH => {
            Err(EngineError::Settings(format!(
                "--arch {}: width {width} is larger than the {MAX_ARCH_WIDTH} deepinterp accepts",
                escape_text(name)
            )))
        }
        Some((depth, width)) if (1..=6).contains(&depth) && width > 0 => {
            let config = match modality {
                Modality::TwoPhoton => {
                    NetworkConfig::Planar(UNetConfig::scaled(channels, depth, width))
                }
                Modality::Ephys => {
                    NetworkConfig::Planar(UNetConfig::scaled_probe(channels, depth, width))
                }
                Modality::Fmri => NetworkConfig::Volumetric(VolumeUNetConfig::scaled(
                    volume_channels,
                    depth,
                    width,
                )),
            };
            Ok((config, modality))
        }
        _ => Err(EngineError::Settings(format!(
            "unknown architecture '{}': use unet_single_1024 or unet-d<depth>-w<width> (two-photon, e.g. unet-d3-w16), unet_single_ephys_1024 or unet-ephys-d<depth>-w<width> (ephys), fmri_unet_denoiser or unet3d-d<depth>-w<width> (fMRI)",
            escape_text(name)
        ))),
    }
}

/// The modality a network's shape is made for: volumetric networks are fMRI, probe-grid
/// networks (a (2,1) pool or a 3×1 kernel, i.e. working along the probe only) ephys, the
/// rest two-photon.
pub fn network_modality(config: &NetworkConfig) -> Modality {
    match config {
        NetworkConfig::Volumetric(_) => Modality::Fmri,
        NetworkConfig::Planar(config)
            if config
                .pools
                .iter()
                .chain(&config.encoder_kernels)
                .chain(&config.decoder_kernels)
                .chain(std::iter::once(&config.bottleneck_kernel))
                .any(|sides| sides[0] != sides[1]) =>
        {
            Modality::Ephys
        }
        NetworkConfig::Planar(_) => Modality::TwoPhoton,
    }
}

/// The `--arch` name of a network shape, if it is one of the paper's or of our scaled
/// families (so a model exported to Keras and imported again keeps its name).
fn known_architecture(config: &NetworkConfig) -> Option<String> {
    let channels = config.in_channels();
    let paper = [
        (
            NetworkConfig::Planar(UNetConfig::unet_single_1024(channels)),
            "unet_single_1024",
        ),
        (
            NetworkConfig::Planar(UNetConfig::unet_single_ephys_1024(channels)),
            "unet_single_ephys_1024",
        ),
        (
            NetworkConfig::Volumetric(VolumeUNetConfig::fmri_unet_denoiser(channels)),
            "fmri_unet_denoiser",
        ),
    ];
    if let Some((_, name)) = paper.iter().find(|(candidate, _)| candidate == config) {
        return Some(name.to_string());
    }
    let (depth, width) = match config {
        NetworkConfig::Planar(c) => (c.depth(), c.encoder_widths.first().copied()?),
        NetworkConfig::Volumetric(c) => (c.depth(), c.encoder_widths.first().copied()?),
    };
    let scaled = [
        (
            NetworkConfig::Planar(UNetConfig::scaled(channels, depth, width)),
            "unet",
        ),
        (
            NetworkConfig::Planar(UNetConfig::scaled_probe(channels, depth, width)),
            "unet-ephys",
        ),
        (
            NetworkConfig::Volumetric(VolumeUNetConfig::scaled(channels, depth, width)),
            "unet3d",
        ),
    ];
    scaled
        .iter()
        .find(|(candidate, _)| candidate == config)
        .map(|(_, family)| format!("{family}-d{depth}-w{width}"))
}

/// Loads a model: our own file, or an original Keras `.h5`.
///
/// A Keras file records no window; `keras_window` supplies it (by default the paper's window
/// of the network's modality: 30/30/0 for two-photon, 30/30/1 for ephys, 2/2/0 time points
/// for fMRI with the paper's 7³ block and hole). The window must match the network's input
/// channels.
pub fn load_model<B: Backend>(
    path: &Path,
    keras_window: Option<Window>,
    device: &B::Device,
) -> Result<Model<B>, EngineError> {
    if file::is_model_file(path)? {
        return file::read_model(path, device);
    }
    let imported = keras::import_keras_unet::<B>(path, device)?;
    let channels = imported.config.in_channels();
    let modality = network_modality(&imported.config);
    // Frames of the window: the fMRI network also reads the centre time point.
    let frames = match modality {
        Modality::Fmri => channels.saturating_sub(1),
        Modality::TwoPhoton | Modality::Ephys => channels,
    };
    let window = match keras_window {
        Some(window) => window,
        None => {
            let paper = modality.default_window();
            if paper.input_frames() == frames {
                paper
            } else {
                Window::new(frames / 2, frames - frames / 2, paper.omitted_frames)?
            }
        }
    };
    if modality.network_channels(&window) != channels {
        return Err(EngineError::model_file(
            path,
            format!(
                "the network takes {channels} input channels but the window ({window}) gives {}",
                modality.network_channels(&window)
            ),
        ));
    }
    let block = match modality {
        Modality::Fmri => Some(VolumeBlock::paper(imported.recorded_input_size.as_deref())?),
        Modality::TwoPhoton | Modality::Ephys => None,
    };
    let architecture =
        known_architecture(&imported.config).unwrap_or_else(|| "keras-unet".to_string());
    Ok(Model {
        spec: ModelSpec {
            architecture,
            modality,
            network: imported.config,
            window,
            block,
            normalization: modality.default_normalization(),
            training: None,
            source: format!("keras:{}", path.display()),
        },
        network: imported.network,
    })
}
