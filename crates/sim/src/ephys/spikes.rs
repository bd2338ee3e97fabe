//! Ground-truth spike trains: a Poisson process per unit with an absolute refractory period,
//! drawn in whole samples for the entire recording when the simulator is built (a few spikes
//! per unit per second, so the list stays small) and kept sorted by time.

use rand::Rng;
use rand_distr::Exp1;
use serde::{Deserialize, Serialize};

use super::ephys_rng;
use crate::rng::Stream;

/// Absolute refractory period of every unit, seconds.
pub const REFRACTORY_PERIOD_S: f64 = 0.002;

/// One spike of the recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroundTruthSpike {
    /// Sample index of the spike: where its trough falls on the unit's peak channel.
    pub sample: u64,
    /// Index of the unit that fired (into [`crate::EphysSimulator::units`]).
    pub unit: u32,
}

/// The refractory period in whole samples (at least one): `ceil(2 ms · sample rate)`, with a
/// tolerance so that exact products such as 60.000000001 are not rounded up.
pub(crate) fn refractory_samples(sample_rate_hz: f64) -> u64 {
    ((REFRACTORY_PERIOD_S * sample_rate_hz - 1e-6).ceil() as u64).max(1)
}

/// Every unit's spikes in `[0, samples)`, sorted by `(sample, unit)`.
///
/// Inter-spike intervals are the refractory period plus a geometric number of samples (the
/// discrete-time Poisson process), the latter with mean `rate⁻¹ − refractory` so that the mean
/// interval is exactly `1 / rate`. The first spike has no refractory lead-in. Each unit has its
/// own random stream.
pub(crate) fn draw_spike_trains(
    seed: u64,
    rates_hz: &[f64],
    samples: u64,
    sample_rate_hz: f64,
) -> Vec<GroundTruthSpike> {
    let refractory = refractory_samples(sample_rate_hz);
    let mut spikes = Vec::new();
    for (unit, &rate) in rates_hz.iter().enumerate() {
        let mut rng = ephys_rng(seed, Stream::Dynamics, unit as u64);
        // floor(Exp(1) / λ) is geometric with mean 1 / (e^λ − 1); pick λ for the wanted mean.
        let free_mean = (sample_rate_hz / rate - refractory as f64).max(1e-9);
        let lambda = (1.0 / free_mean).ln_1p();
        let mut sample = geometric_gap(&mut rng, lambda);
        while sample < samples {
            spikes.push(GroundTruthSpike {
                sample,
                unit: unit as u32,
            });
            sample = sample
                .saturating_add(refractory)
                .saturating_add(geometric_gap(&mut rng, lambda));
        }
    }
    spikes.sort_unstable();
    spikes
}

/// `floor(E / lambda)` for a standard exponential `E`: a geometric number of samples with mean
/// `1 / (e^lambda − 1)` (saturating for very small `lambda`).
fn geometric_gap(rng: &mut impl Rng, lambda: f64) -> u64 {
    let exponential: f64 = rng.sample(Exp1);
    (exponential / lambda).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refractory_period_in_samples() {
        assert_eq!(refractory_samples(30_000.0), 60);
        assert_eq!(refractory_samples(20_000.0), 40);
        assert_eq!(refractory_samples(25_100.0), 51);
    }

    #[test]
    fn trains_have_the_wanted_rate_and_gaps() {
        let rate = 50.0;
        let sample_rate = 30_000.0;
        let samples = 600 * 30_000;
        let spikes = draw_spike_trains(3, &[rate], samples, sample_rate);
        let observed = spikes.len() as f64 / 600.0;
        assert!((observed - rate).abs() < 0.02 * rate, "rate {observed}");
        assert!(
            spikes
                .windows(2)
                .all(|pair| pair[1].sample - pair[0].sample >= 60)
        );
    }
}
