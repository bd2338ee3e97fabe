//! Smooth random scalar fields over the head: sums of a few plane cosine waves of random
//! direction, wavelength and phase, evaluated at brain-normalised coordinates (the head
//! ellipsoid is the unit ball). They shape the head's surface and cortical folding, the coil
//! sensitivity, the tissue texture and the spatial maps of drift and spontaneous activity.

use std::f64::consts::TAU;

use rand::Rng;
use rand_distr::StandardNormal;

/// One plane cosine wave `cos(k · q + φ)`.
#[derive(Clone, Debug)]
struct PlaneWave {
    /// Wave vector, radians per unit of normalised coordinate.
    wavevector: [f64; 3],
    phase: f64,
}

/// A smooth random field: the sum of a few plane waves.
#[derive(Clone, Debug)]
pub(crate) struct SmoothField {
    waves: Vec<PlaneWave>,
}

impl SmoothField {
    /// A field of `waves` plane waves with isotropic random directions, uniform random phases
    /// and spatial frequencies drawn uniformly from `cycles` (cycles per unit of normalised
    /// coordinate; the head spans two units).
    pub(crate) fn random(rng: &mut impl Rng, waves: usize, cycles: (f64, f64)) -> Self {
        let waves = (0..waves)
            .map(|_| {
                let direction = random_direction(rng);
                let magnitude = TAU * rng.random_range(cycles.0..=cycles.1);
                PlaneWave {
                    wavevector: direction.map(|component| component * magnitude),
                    phase: TAU * rng.random::<f64>(),
                }
            })
            .collect();
        Self { waves }
    }

    /// The field at `q` scaled to unit variance over the random phases (an individual field's
    /// values typically lie within ±2).
    pub(crate) fn value(&self, q: [f64; 3]) -> f64 {
        self.sum(q) * (2.0 / self.waves.len().max(1) as f64).sqrt()
    }

    /// The field at `q` scaled into `[-1, 1]` (the bound is reached only where every wave
    /// peaks together, so typical values are well inside it).
    pub(crate) fn bounded(&self, q: [f64; 3]) -> f64 {
        self.sum(q) / self.waves.len().max(1) as f64
    }

    fn sum(&self, q: [f64; 3]) -> f64 {
        self.waves
            .iter()
            .map(|wave| {
                let [kx, ky, kz] = wave.wavevector;
                (kx * q[0] + ky * q[1] + kz * q[2] + wave.phase).cos()
            })
            .sum()
    }
}

/// A uniformly distributed unit vector.
fn random_direction(rng: &mut impl Rng) -> [f64; 3] {
    loop {
        let vector: [f64; 3] = std::array::from_fn(|_| rng.sample(StandardNormal));
        let norm = vector.iter().map(|c| c * c).sum::<f64>().sqrt();
        // A zero-length draw has no direction; it is astronomically rare, so redraw.
        if norm > 1e-9 {
            return vector.map(|component| component / norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, StreamRng};

    #[test]
    fn fmri_field_value_has_unit_variance_and_bounded_stays_in_range() {
        let mut rng = StreamRng::new(3, Stream::Scene, 0);
        let (mut sum_squares, mut count) = (0.0, 0);
        for _ in 0..200 {
            let field = SmoothField::random(&mut rng, 4, (0.3, 1.0));
            for i in 0..27 {
                let q = [
                    (i % 3) as f64 - 1.0,
                    ((i / 3) % 3) as f64 - 1.0,
                    (i / 9) as f64 - 1.0,
                ];
                sum_squares += field.value(q).powi(2);
                count += 1;
                assert!(field.bounded(q).abs() <= 1.0);
            }
        }
        let variance = sum_squares / count as f64;
        assert!((variance - 1.0).abs() < 0.1, "variance {variance}");
    }
}
