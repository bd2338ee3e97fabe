//! The streaming renderer: [`FmriSimulator`] holds each voxel's signal model (baseline and the
//! weights of the shared time courses) and renders volumes from it, with thermal noise.
//!
//! A voxel's clean intensity at volume `t` is
//! `baseline · (1 + Σ_k spontaneous_k · s_k(t) + Σ_j drift_j · d_j(t) + task · r(t))`, where the
//! `s_k`, `d_j` and the region's response `r` are shared time courses (module `bold`) and the
//! weights are smooth spatial maps. The noisy intensity is the magnitude of the clean value
//! plus complex Gaussian noise of one standard deviation σ (Rician, as in magnitude MR
//! images: Gaussian in the brain, Rayleigh-like in the background). Each (volume, z-slice)
//! draws its noise from its own random stream and slices render in parallel, so the output
//! does not depend on how the run is split into calls nor on the thread count.

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::anatomy::{Anatomy, Tissue};
use super::bold::{
    ActiveRegion, DRIFT_COMPONENTS, SPONTANEOUS_COMPONENTS, distance, drift_basis, place_regions,
    region_profile, spontaneous_time_courses,
};
use super::config::FmriConfig;
use super::field::SmoothField;
use super::fmri_rng;
use crate::config::SimError;
use crate::rng::Stream;

/// Number of shared time courses a voxel weighs: spontaneous components, then drift.
const BASIS: usize = SPONTANEOUS_COMPONENTS + DRIFT_COMPONENTS;

/// Largest intensity written: the int16 maximum, so that the run can be stored as int16.
const MAX_INTENSITY: f32 = i16::MAX as f32;

/// A voxel belongs to [`FmriSimulator::active_mask`] when its task response is at least this
/// fraction of its region's full amplitude.
const ACTIVE_THRESHOLD: f32 = 0.5;

/// Scene sub-streams of the spontaneous maps (`+ k`) and drift maps (`+ j`).
const SPONTANEOUS_MAP_STREAM: u64 = 10;
const DRIFT_MAP_STREAM: u64 = 20;

/// The signal model of one voxel.
#[derive(Clone, Copy, Debug, Default)]
struct VoxelModel {
    /// Noise-free baseline intensity.
    baseline: f32,
    /// Weights of the shared time courses (fractions of baseline).
    weights: [f32; BASIS],
    /// Weight of the task response (fraction of baseline per unit response).
    task_weight: f32,
    /// Region whose response the voxel follows; the region count means none.
    region: u8,
}

/// Streaming generator of a gradient-echo EPI fMRI run with ground truth.
///
/// ```
/// use deepinterp_sim::{FmriConfig, FmriSimulator};
/// let mut simulator = FmriSimulator::new(FmriConfig::new([16, 16, 8], 12))?;
/// let voxels = simulator.config().volume_voxels();
/// let (mut clean, mut noisy) = (vec![0.0; 5 * voxels], vec![0.0; 5 * voxels]);
/// let mut total = 0;
/// loop {
///     let rendered = simulator.next_volumes(5, &mut clean, &mut noisy);
///     if rendered == 0 { break; }
///     total += rendered; // use clean[..rendered * voxels], noisy[..rendered * voxels]
/// }
/// assert_eq!(total, 12);
/// # Ok::<(), deepinterp_sim::SimError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FmriSimulator {
    config: FmriConfig,
    tissue: Vec<Tissue>,
    brain_mask: Vec<bool>,
    active_mask: Vec<bool>,
    baseline: Vec<f32>,
    models: Vec<VoxelModel>,
    regions: Vec<ActiveRegion>,
    /// Shared time courses per volume: spontaneous components, then drift.
    basis: Vec<[f32; BASIS]>,
    /// Region responses per volume, `regions + 1` per volume (the last is always 0, for
    /// voxels outside every region).
    responses: Vec<f32>,
    noise_sigma: f64,
    frames_rendered: usize,
}

impl FmriSimulator {
    /// Validates `config`, builds the head, places the active regions and draws every time
    /// course and spatial map.
    pub fn new(config: FmriConfig) -> Result<Self, SimError> {
        config.validate()?;
        let anatomy = Anatomy::generate(&config);
        let mut regions = place_regions(&config, &anatomy);
        let mut models = signal_models(&config, &anatomy, regions.len());
        let active_mask = add_task_weights(&config, &anatomy, &mut regions, &mut models);
        let noise_sigma = median_parenchyma_baseline(&anatomy) / config.tsnr;

        let spontaneous = spontaneous_time_courses(&config);
        let drift = drift_basis(config.frames);
        let basis = spontaneous
            .iter()
            .zip(&drift)
            .map(|(spontaneous, drift)| {
                let mut row = [0.0; BASIS];
                row[..SPONTANEOUS_COMPONENTS].copy_from_slice(spontaneous);
                row[SPONTANEOUS_COMPONENTS..].copy_from_slice(drift);
                row
            })
            .collect();
        let responses = (0..config.frames)
            .flat_map(|frame| {
                regions
                    .iter()
                    .map(move |region| region.response[frame])
                    .chain([0.0])
            })
            .collect();
        Ok(Self {
            config,
            tissue: anatomy.tissue,
            brain_mask: anatomy.mask,
            active_mask,
            baseline: anatomy.baseline,
            models,
            regions,
            basis,
            responses,
            noise_sigma,
            frames_rendered: 0,
        })
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &FmriConfig {
        &self.config
    }

    /// Volumes in the whole run.
    pub fn frames(&self) -> usize {
        self.config.frames
    }

    /// Volumes rendered so far.
    pub fn frames_rendered(&self) -> usize {
        self.frames_rendered
    }

    /// Volumes still to come.
    pub fn frames_remaining(&self) -> usize {
        self.config.frames - self.frames_rendered
    }

    /// Whether each voxel is inside the brain (CSF, grey or white matter), x fastest.
    pub fn brain_mask(&self) -> &[bool] {
        &self.brain_mask
    }

    /// Tissue class of each voxel, x fastest.
    pub fn tissue(&self) -> &[Tissue] {
        &self.tissue
    }

    /// Whether each voxel carries a task response of at least half its region's amplitude,
    /// x fastest. (Voxels at the regions' edges and white-matter voxels inside them carry
    /// weaker responses and are not in the mask.)
    pub fn active_mask(&self) -> &[bool] {
        &self.active_mask
    }

    /// Noise-free baseline intensity of each voxel (tissue contrast, texture, blur and coil
    /// sensitivity, before any time-varying signal), x fastest.
    pub fn baseline(&self) -> &[f32] {
        &self.baseline
    }

    /// The task-activated regions.
    pub fn regions(&self) -> &[ActiveRegion] {
        &self.regions
    }

    /// Standard deviation σ of the thermal noise (of each of its real and imaginary parts),
    /// intensity units: the median baseline of grey- and white-matter voxels divided by
    /// [`FmriConfig::tsnr`].
    pub fn noise_sigma(&self) -> f64 {
        self.noise_sigma
    }

    /// Renders the next volumes into `clean` (noise-free) and `noisy` (with thermal noise), in
    /// intensity units within `[0, 32767]`, NIfTI order: x fastest, then y, z, time.
    ///
    /// Renders `min(count, volumes remaining, clean.len() / voxels, noisy.len() / voxels)`
    /// volumes and returns that number (0 once the run is complete); values beyond them are
    /// left untouched. The result is bitwise the same however the run is split into calls.
    pub fn next_volumes(&mut self, count: usize, clean: &mut [f32], noisy: &mut [f32]) -> usize {
        let voxels = self.models.len();
        let count = count
            .min(self.frames_remaining())
            .min(clean.len() / voxels)
            .min(noisy.len() / voxels);
        if count == 0 {
            return 0;
        }
        let [nx, ny, nz] = self.config.shape;
        let slice = nx * ny;
        let first_frame = self.frames_rendered;
        clean[..count * voxels]
            .par_chunks_mut(slice)
            .zip(noisy[..count * voxels].par_chunks_mut(slice))
            .enumerate()
            .for_each(|(slice_index, (clean, noisy))| {
                let frame = first_frame + slice_index / nz;
                self.render_slice(frame, slice_index % nz, clean, noisy);
            });
        self.frames_rendered += count;
        count
    }

    /// Renders z-slice `z` of volume `frame`.
    fn render_slice(&self, frame: usize, z: usize, clean: &mut [f32], noisy: &mut [f32]) {
        let slice = clean.len();
        let models = &self.models[z * slice..(z + 1) * slice];
        let basis = &self.basis[frame];
        let stride = self.regions.len() + 1;
        let responses = &self.responses[frame * stride..(frame + 1) * stride];
        let sigma = self.noise_sigma as f32;
        let stream = (frame * self.config.shape[2] + z) as u64;
        let mut rng = fmri_rng(self.config.seed, Stream::Noise, stream);
        for ((model, clean), noisy) in models.iter().zip(clean).zip(noisy) {
            let mut modulation = model.task_weight * responses[usize::from(model.region)];
            for (weight, value) in model.weights.iter().zip(basis) {
                modulation += weight * value;
            }
            let value = (model.baseline * (1.0 + modulation)).clamp(0.0, MAX_INTENSITY);
            let real = value + sigma * rng.sample::<f32, _>(StandardNormal);
            let imaginary = sigma * rng.sample::<f32, _>(StandardNormal);
            *clean = value;
            *noisy = (real * real + imaginary * imaginary)
                .sqrt()
                .min(MAX_INTENSITY);
        }
    }
}

/// Every voxel's baseline and the weights of the spontaneous and drift time courses.
///
/// Spontaneous maps are smooth random fields scaled so that their summed fluctuation has an
/// RMS of `spontaneous_percent` in grey matter (less in white matter, none elsewhere). Drift
/// maps cover the whole head: a trend of `drift_percent` (0.5–1.5× of it, one sign for the
/// run, as scanner heating does) plus two spatially varying slow cosines.
/// `regions` is the number of active regions: every voxel starts out following none.
fn signal_models(config: &FmriConfig, anatomy: &Anatomy, regions: usize) -> Vec<VoxelModel> {
    let maps = |stream: u64, count: usize| -> Vec<SmoothField> {
        (0..count as u64)
            .map(|k| {
                let mut rng = fmri_rng(config.seed, Stream::Scene, stream + k);
                SmoothField::random(&mut rng, 5, (0.4, 1.5))
            })
            .collect()
    };
    let spontaneous_maps = maps(SPONTANEOUS_MAP_STREAM, SPONTANEOUS_COMPONENTS);
    let drift_maps = maps(DRIFT_MAP_STREAM, DRIFT_COMPONENTS);
    let trend_sign = if fmri_rng(config.seed, Stream::Scene, DRIFT_MAP_STREAM + 10).random::<bool>()
    {
        1.0
    } else {
        -1.0
    };
    let spontaneous = config.spontaneous_percent / 100.0 / (SPONTANEOUS_COMPONENTS as f64).sqrt();
    let drift = config.drift_percent / 100.0;
    // At most `MAX_ACTIVE_REGIONS` (32), so the index fits a byte.
    let no_region = regions as u8;
    (0..anatomy.tissue.len())
        .map(|index| {
            let tissue = anatomy.tissue[index];
            let mut model = VoxelModel {
                baseline: anatomy.baseline[index],
                region: no_region,
                ..VoxelModel::default()
            };
            if tissue == Tissue::Background {
                return model;
            }
            let q = anatomy.geometry.normalised_index(index);
            let bold = f64::from(tissue.bold_weight());
            for (weight, map) in model.weights.iter_mut().zip(&spontaneous_maps) {
                *weight = (spontaneous * bold * map.value(q)) as f32;
            }
            let drift_weights = &mut model.weights[SPONTANEOUS_COMPONENTS..];
            drift_weights[0] = (trend_sign * drift * (1.0 + 0.5 * drift_maps[0].bounded(q))) as f32;
            drift_weights[1] = (0.5 * drift * drift_maps[1].value(q)) as f32;
            drift_weights[2] = (0.3 * drift * drift_maps[2].value(q)) as f32;
            model
        })
        .collect()
}

/// Gives the voxels of every region their task weight (the strongest region wins where two
/// overlap), counts each region's active voxels and returns the active mask.
fn add_task_weights(
    config: &FmriConfig,
    anatomy: &Anatomy,
    regions: &mut [ActiveRegion],
    models: &mut [VoxelModel],
) -> Vec<bool> {
    let shape = config.shape;
    for (region_index, region) in regions.iter().enumerate() {
        // Only voxels within `radius + 1` of the centre can respond.
        let reach = (region.radius_voxels + 1.0).ceil() as usize;
        let range = |axis: usize| {
            let centre = region.centre_voxel[axis];
            centre.saturating_sub(reach)..(centre + reach + 1).min(shape[axis])
        };
        for z in range(2) {
            for y in range(1) {
                for x in range(0) {
                    let index = x + shape[0] * (y + shape[1] * z);
                    let profile = region_profile(
                        distance([x, y, z], region.centre_voxel),
                        region.radius_voxels,
                    );
                    let strength = profile as f32 * anatomy.tissue[index].bold_weight();
                    let weight = strength * (region.amplitude_percent / 100.0) as f32;
                    let model = &mut models[index];
                    if strength > 0.0 && weight > model.task_weight {
                        model.task_weight = weight;
                        model.region = region_index as u8;
                    }
                }
            }
        }
    }
    let mut active = vec![false; models.len()];
    for (index, model) in models.iter().enumerate() {
        let Some(region) = regions.get_mut(usize::from(model.region)) else {
            continue;
        };
        let full = (region.amplitude_percent / 100.0) as f32;
        if full > 0.0 && model.task_weight >= ACTIVE_THRESHOLD * full {
            active[index] = true;
            region.active_voxels += 1;
        }
    }
    active
}

/// The median baseline of grey- and white-matter voxels (of the brain if it has none, of the
/// whole volume if there is no brain).
fn median_parenchyma_baseline(anatomy: &Anatomy) -> f64 {
    let select = |keep: &dyn Fn(Tissue) -> bool| -> Vec<f32> {
        anatomy
            .tissue
            .iter()
            .zip(&anatomy.baseline)
            .filter(|&(&tissue, _)| keep(tissue))
            .map(|(_, &value)| value)
            .collect()
    };
    let mut values = select(&Tissue::is_parenchyma);
    if values.is_empty() {
        values = select(&|tissue| tissue != Tissue::Background);
    }
    if values.is_empty() {
        values = anatomy.baseline.clone();
    }
    let middle = values.len() / 2;
    let (_, median, _) = values.select_nth_unstable_by(middle, f32::total_cmp);
    f64::from(*median)
}
