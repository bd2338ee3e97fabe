//! The static head: its geometry, the tissue class of every voxel and the noise-free baseline
//! image (T2*-weighted EPI contrast, partial-volume blur, coil sensitivity), drawn once from
//! the scene random stream.
//!
//! The brain is an ellipsoid filling 80 % of the field of view in x and y and 85 % in z whose
//! surface is perturbed by low-order random harmonics. Inward from the surface come a thin
//! CSF shell and a folded grey-matter ribbon about two voxels thick; inside, white matter with
//! two CSF ventricles near the centre and four deep grey nuclei beside and behind them.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::FmriConfig;
use super::field::SmoothField;
use super::fmri_rng;
use crate::rng::Stream;

/// Tissue class of a voxel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tissue {
    /// Outside the head: only the receiver's noise floor.
    Background,
    /// Cerebrospinal fluid: the surface shell and the ventricles.
    Csf,
    /// Grey matter: the cortical ribbon and the deep nuclei; carries the BOLD signal.
    GreyMatter,
    /// White matter: the rest of the brain.
    WhiteMatter,
}

impl Tissue {
    /// Noise-free EPI intensity of the tissue before texture, blur and coil sensitivity
    /// (long-T2* CSF is brightest in gradient-echo EPI, then grey, then white matter).
    pub fn baseline_intensity(self) -> f32 {
        match self {
            Tissue::Background => 10.0,
            Tissue::Csf => 1000.0,
            Tissue::GreyMatter => 800.0,
            Tissue::WhiteMatter => 650.0,
        }
    }

    /// Share of grey matter's BOLD signal change the tissue shows: white matter's is weak
    /// and CSF has no haemodynamics.
    pub(crate) fn bold_weight(self) -> f32 {
        match self {
            Tissue::GreyMatter => 1.0,
            Tissue::WhiteMatter => 0.2,
            Tissue::Background | Tissue::Csf => 0.0,
        }
    }

    /// Whether the voxel is brain parenchyma (grey or white matter).
    pub(crate) fn is_parenchyma(self) -> bool {
        matches!(self, Tissue::GreyMatter | Tissue::WhiteMatter)
    }
}

/// Semi-axes of the head ellipsoid as fractions of the field of view (x, y, z).
const HEAD_SEMI_AXES: [f64; 3] = [0.40, 0.40, 0.425];

/// Largest relative deviation of the head surface from the ellipsoid.
const SURFACE_ROUGHNESS: f64 = 0.08;

/// Thickness of the CSF shell under the surface, voxels.
const CSF_SHELL_VOXELS: f64 = 1.0;

/// Mean thickness of the cortical ribbon, voxels, and how much folding changes it (per unit
/// of the folding field, which is clamped to ±1.5).
const CORTEX_VOXELS: f64 = 2.5;
const CORTEX_FOLDING_VOXELS: f64 = 1.0;

/// Relative amplitude (standard deviation) of the within-tissue intensity texture.
const TEXTURE: f64 = 0.03;

/// A deep structure: an axis-aligned ellipsoid in normalised coordinates.
#[derive(Clone, Copy, Debug)]
struct Ellipsoid {
    centre: [f64; 3],
    semi_axes: [f64; 3],
}

impl Ellipsoid {
    fn contains(&self, q: [f64; 3]) -> bool {
        (0..3)
            .map(|axis| ((q[axis] - self.centre[axis]) / self.semi_axes[axis]).powi(2))
            .sum::<f64>()
            < 1.0
    }

    /// A copy shifted by up to ±0.03 per axis and scaled by 0.85–1.15 per axis.
    fn jittered(&self, rng: &mut impl Rng) -> Self {
        Self {
            centre: self.centre.map(|c| c + rng.random_range(-0.03..=0.03)),
            semi_axes: self.semi_axes.map(|s| s * rng.random_range(0.85..=1.15)),
        }
    }
}

/// The lateral ventricles (CSF), left and right of the midline, elongated front to back.
const VENTRICLES: [Ellipsoid; 2] = [
    Ellipsoid {
        centre: [-0.14, 0.05, 0.10],
        semi_axes: [0.09, 0.28, 0.15],
    },
    Ellipsoid {
        centre: [0.14, 0.05, 0.10],
        semi_axes: [0.09, 0.28, 0.15],
    },
];

/// Deep grey nuclei: striatum-like lateral to the ventricles, thalamus-like behind and below.
const DEEP_NUCLEI: [Ellipsoid; 4] = [
    Ellipsoid {
        centre: [-0.32, 0.10, 0.0],
        semi_axes: [0.10, 0.18, 0.15],
    },
    Ellipsoid {
        centre: [0.32, 0.10, 0.0],
        semi_axes: [0.10, 0.18, 0.15],
    },
    Ellipsoid {
        centre: [-0.12, -0.25, -0.12],
        semi_axes: [0.10, 0.12, 0.12],
    },
    Ellipsoid {
        centre: [0.12, -0.25, -0.12],
        semi_axes: [0.10, 0.12, 0.12],
    },
];

/// Scene sub-streams of the anatomy.
const SURFACE_STREAM: u64 = 0;
const FOLDING_STREAM: u64 = 1;
const DEEP_STREAM: u64 = 2;
const TEXTURE_STREAM: u64 = 3;
const BIAS_STREAM: u64 = 4;

/// Where the head sits in the grid: maps voxels to normalised coordinates, in which the head
/// ellipsoid (before surface perturbation) is the unit ball.
#[derive(Clone, Debug)]
pub(crate) struct HeadGeometry {
    shape: [usize; 3],
    centre: [f64; 3],
    /// Semi-axes of the head ellipsoid, voxels.
    semi_axes: [f64; 3],
}

impl HeadGeometry {
    pub(crate) fn new(shape: [usize; 3]) -> Self {
        Self {
            shape,
            centre: shape.map(|side| (side as f64 - 1.0) / 2.0),
            semi_axes: std::array::from_fn(|axis| HEAD_SEMI_AXES[axis] * shape[axis] as f64),
        }
    }

    /// Normalised coordinates of voxel `[x, y, z]`.
    pub(crate) fn normalised(&self, voxel: [usize; 3]) -> [f64; 3] {
        std::array::from_fn(|axis| (voxel[axis] as f64 - self.centre[axis]) / self.semi_axes[axis])
    }

    /// Normalised coordinates of the voxel with linear index `index` (x fastest).
    pub(crate) fn normalised_index(&self, index: usize) -> [f64; 3] {
        self.normalised(self.voxel(index))
    }

    /// `[x, y, z]` of the voxel with linear index `index` (x fastest).
    pub(crate) fn voxel(&self, index: usize) -> [usize; 3] {
        let [nx, ny, _] = self.shape;
        [index % nx, (index / nx) % ny, index / (nx * ny)]
    }
}

/// Everything about the head that does not change over time.
#[derive(Clone, Debug)]
pub(crate) struct Anatomy {
    pub(crate) geometry: HeadGeometry,
    /// Tissue class per voxel, x fastest.
    pub(crate) tissue: Vec<Tissue>,
    /// Whether each voxel is inside the brain (not background).
    pub(crate) mask: Vec<bool>,
    /// Noise-free baseline intensity per voxel, x fastest.
    pub(crate) baseline: Vec<f32>,
}

impl Anatomy {
    pub(crate) fn generate(config: &FmriConfig) -> Self {
        let geometry = HeadGeometry::new(config.shape);
        let field = |stream: u64, waves: usize, cycles: (f64, f64)| {
            SmoothField::random(
                &mut fmri_rng(config.seed, Stream::Scene, stream),
                waves,
                cycles,
            )
        };
        // Surface and folding are functions of direction only (evaluated on the unit sphere):
        // ~1 cycle gives the head's low-order bumps, 2–4 cycles the gyri and sulci.
        let surface = field(SURFACE_STREAM, 6, (0.3, 0.9));
        let folding = field(FOLDING_STREAM, 10, (2.0, 4.0));
        let texture = field(TEXTURE_STREAM, 12, (1.5, 4.0));
        let bias = field(BIAS_STREAM, 3, (0.15, 0.4));
        let mut deep_rng = fmri_rng(config.seed, Stream::Scene, DEEP_STREAM);
        let ventricles = VENTRICLES.map(|ventricle| ventricle.jittered(&mut deep_rng));
        let nuclei = DEEP_NUCLEI.map(|nucleus| nucleus.jittered(&mut deep_rng));

        let voxels = config.volume_voxels();
        let mut tissue = Vec::with_capacity(voxels);
        let mut intensity = Vec::with_capacity(voxels);
        for index in 0..voxels {
            let q = geometry.normalised_index(index);
            let class = classify(&geometry, q, &surface, &folding, &ventricles, &nuclei);
            let texture_gain = if class == Tissue::Background {
                1.0
            } else {
                1.0 + TEXTURE * texture.value(q)
            };
            tissue.push(class);
            intensity.push((f64::from(class.baseline_intensity()) * texture_gain) as f32);
        }
        // The point-spread function of EPI (and partial volume) blurs tissue edges.
        blur_121(&mut intensity, config.shape);
        let bias_depth = config.bias_field_percent / 100.0;
        let baseline = intensity
            .iter()
            .enumerate()
            .map(|(index, &value)| {
                let gain = 1.0 + bias_depth * bias.bounded(geometry.normalised_index(index));
                (f64::from(value) * gain) as f32
            })
            .collect();
        let mask = tissue
            .iter()
            .map(|&class| class != Tissue::Background)
            .collect();
        Self {
            geometry,
            tissue,
            mask,
            baseline,
        }
    }
}

/// The tissue class at normalised position `q`.
fn classify(
    geometry: &HeadGeometry,
    q: [f64; 3],
    surface: &SmoothField,
    folding: &SmoothField,
    ventricles: &[Ellipsoid],
    nuclei: &[Ellipsoid],
) -> Tissue {
    let radius = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    // The centre has no direction; any will do, it is deep inside.
    let direction = if radius > 1e-12 {
        q.map(|c| c / radius)
    } else {
        [1.0, 0.0, 0.0]
    };
    let surface_radius = 1.0 + SURFACE_ROUGHNESS * surface.bounded(direction);
    if radius >= surface_radius {
        return Tissue::Background;
    }
    // Depth below the surface along the ray from the centre, in voxels.
    let voxels_per_unit = (0..3)
        .map(|axis| (geometry.semi_axes[axis] * direction[axis]).powi(2))
        .sum::<f64>()
        .sqrt();
    let depth = (surface_radius - radius) * voxels_per_unit;
    if depth < CSF_SHELL_VOXELS {
        return Tissue::Csf;
    }
    let cortex = CORTEX_VOXELS + CORTEX_FOLDING_VOXELS * folding.value(direction).clamp(-1.5, 1.5);
    if depth < CSF_SHELL_VOXELS + cortex {
        return Tissue::GreyMatter;
    }
    if ventricles.iter().any(|ventricle| ventricle.contains(q)) {
        return Tissue::Csf;
    }
    if nuclei.iter().any(|nucleus| nucleus.contains(q)) {
        return Tissue::GreyMatter;
    }
    Tissue::WhiteMatter
}

/// Blurs a volume (x fastest) in place with the kernel `[1, 2, 1] / 4` along each axis in
/// turn, repeating the edge voxels beyond the border.
fn blur_121(volume: &mut [f32], shape: [usize; 3]) {
    let strides = [1, shape[0], shape[0] * shape[1]];
    let mut line = Vec::new();
    for axis in 0..3 {
        let (length, stride) = (shape[axis], strides[axis]);
        if length < 2 {
            continue;
        }
        for start in (0..volume.len()).filter(|&index| (index / stride) % length == 0) {
            line.clear();
            line.extend((0..length).map(|i| volume[start + i * stride]));
            for i in 0..length {
                let before = line[i.saturating_sub(1)];
                let after = line[(i + 1).min(length - 1)];
                volume[start + i * stride] = 0.25 * before + 0.5 * line[i] + 0.25 * after;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmri_tissue_goes_background_csf_grey_white_from_the_edge_inwards() {
        let config = FmriConfig::new([48, 48, 24], 10);
        let anatomy = Anatomy::generate(&config);
        let index = |x: usize, y: usize, z: usize| x + 48 * (y + 48 * z);
        // Along the y = 28, z = 12 line (off the ventricles), from x = 0 to the centre.
        let classes: Vec<Tissue> = (0..24).map(|x| anatomy.tissue[index(x, 28, 12)]).collect();
        let first = |wanted: Tissue| classes.iter().position(|&class| class == wanted);
        let (csf, grey, white) = (
            first(Tissue::Csf).expect("CSF shell"),
            first(Tissue::GreyMatter).expect("cortex"),
            first(Tissue::WhiteMatter).expect("white matter"),
        );
        assert_eq!(classes[0], Tissue::Background);
        assert!(csf < grey && grey < white, "{classes:?}");
        assert!(white - grey <= 4, "cortex too thick: {classes:?}");
        assert_eq!(anatomy.tissue[0], Tissue::Background);
        assert!(!anatomy.mask[0] && anatomy.mask[index(24, 24, 12)]);
    }

    #[test]
    fn fmri_baseline_follows_tissue_contrast() {
        let shape = [64, 64, 32];
        let anatomy = Anatomy::generate(&FmriConfig::new(shape, 10));
        let strides = [1, shape[0], shape[0] * shape[1]];
        // Mean over voxels whose six neighbours share their tissue (edges are blurred).
        let mean_of = |wanted: Tissue| {
            let values: Vec<f64> = (0..anatomy.tissue.len())
                .filter(|&index| {
                    let voxel = anatomy.geometry.voxel(index);
                    anatomy.tissue[index] == wanted
                        && (0..3).all(|axis| {
                            voxel[axis] > 0
                                && voxel[axis] + 1 < shape[axis]
                                && anatomy.tissue[index - strides[axis]] == wanted
                                && anatomy.tissue[index + strides[axis]] == wanted
                        })
                })
                .map(|index| f64::from(anatomy.baseline[index]))
                .collect();
            assert!(
                values.len() > 10,
                "{wanted:?}: {} interior voxels",
                values.len()
            );
            values.iter().sum::<f64>() / values.len() as f64
        };
        let (background, csf, grey, white) = (
            mean_of(Tissue::Background),
            mean_of(Tissue::Csf),
            mean_of(Tissue::GreyMatter),
            mean_of(Tissue::WhiteMatter),
        );
        assert!(background < 20.0, "background {background}");
        assert!(white > 550.0 && white < 750.0, "white {white}");
        assert!(
            csf > grey && grey > white,
            "csf {csf} grey {grey} white {white}"
        );
    }

    #[test]
    fn fmri_blur_preserves_constants_and_spreads_a_point() {
        let shape = [5, 4, 3];
        let mut constant = vec![7.0f32; 60];
        blur_121(&mut constant, shape);
        assert!(constant.iter().all(|&value| (value - 7.0).abs() < 1e-5));
        let mut point = vec![0.0f32; 60];
        point[2 + 5 * (1 + 4)] = 64.0;
        blur_121(&mut point, shape);
        assert!((point.iter().sum::<f32>() - 64.0).abs() < 1e-3);
        assert_eq!(point[2 + 5 * (1 + 4)], 8.0);
    }
}
