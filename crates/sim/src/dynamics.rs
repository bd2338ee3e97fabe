//! Time evolution of the scene: spikes and calcium-indicator kinetics per neuron, neuropil
//! fluctuations, and rigid motion. State is O(neurons), carried from frame to frame; nothing
//! is stored per frame, so memory does not grow with movie length.
//!
//! Calcium model: spikes (Poisson bursts, sub-frame timing) drive a double-exponential kernel
//! `exp(-t/τ_decay) - exp(-t/τ_rise)` normalised to a peak of 1, tracked exactly with two
//! exponentially decaying accumulators; ΔF/F = `dff_per_spike · c / (1 + c / 8)` saturates
//! softly for large bursts, and a soma's fluorescence is `brightness · (1 + ΔF/F)`.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::config::TwoPhotonConfig;
use crate::rng::{Stream, StreamRng};
use crate::scene::{NEUROPIL_COMPONENTS, NeuronTruth};

/// Mean number of spikes in one firing event (1 + Poisson(1)).
const MEAN_BURST_SPIKES: f32 = 2.0;
/// Number of coincident spikes at which the indicator response is half of linear.
const SATURATION_SPIKES: f32 = 8.0;
/// Time constant of the neuropil's independent fluctuations, seconds.
const NEUROPIL_TAU_S: f32 = 3.0;
/// Stationary relative standard deviation of each neuropil component.
const NEUROPIL_FLUCTUATION: f32 = 0.15;
/// How strongly neuropil follows the mean ΔF/F of the population.
const NEUROPIL_POPULATION_COUPLING: f32 = 0.5;
/// Time constant of the slow motion drift, seconds.
const DRIFT_TAU_S: f32 = 5.0;

/// The per-frame quantities the renderer needs; one record per frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameLayout {
    pub(crate) neurons: usize,
}

impl FrameLayout {
    /// Floats per frame record: neuron fluorescences, neuropil gains, shift (dy, dx).
    pub(crate) fn stride(self) -> usize {
        self.neurons + NEUROPIL_COMPONENTS + 2
    }
}

/// Evolving state of the simulated scene.
#[derive(Clone, Debug)]
pub(crate) struct Dynamics {
    rng: StreamRng,
    frame_seconds: f32,
    decay_per_frame: f32,
    rise_per_frame: f32,
    indicator_decay_s: f32,
    indicator_rise_s: f32,
    kernel_peak: f32,
    calcium_decay: Vec<f32>,
    calcium_rise: Vec<f32>,
    neuropil_state: [f32; NEUROPIL_COMPONENTS],
    neuropil_persistence: f32,
    population_smoothed: f32,
    motion_px: f32,
    drift: (f32, f32),
    drift_persistence: f32,
}

impl Dynamics {
    /// Initial state for `config` (assumed validated) with `neurons` somata.
    pub(crate) fn new(config: &TwoPhotonConfig, neurons: usize) -> Self {
        let mut rng = StreamRng::new(config.seed, Stream::Dynamics, 0);
        let frame_seconds = 1.0 / config.frame_rate_hz;
        let (tau_decay, tau_rise) = (config.indicator_decay_s, config.indicator_rise_s);
        let peak_time = (tau_decay / tau_rise).ln() * tau_decay * tau_rise / (tau_decay - tau_rise);
        let kernel_peak = (-peak_time / tau_decay).exp() - (-peak_time / tau_rise).exp();
        let mut neuropil_state = [0.0f32; NEUROPIL_COMPONENTS];
        for value in &mut neuropil_state {
            *value = NEUROPIL_FLUCTUATION * rng.sample::<f32, _>(StandardNormal);
        }
        let motion_px = config.motion_px;
        let drift = if motion_px > 0.0 {
            (
                0.8 * motion_px * rng.sample::<f32, _>(StandardNormal),
                0.8 * motion_px * rng.sample::<f32, _>(StandardNormal),
            )
        } else {
            (0.0, 0.0)
        };
        Self {
            rng,
            frame_seconds,
            decay_per_frame: (-frame_seconds / tau_decay).exp(),
            rise_per_frame: (-frame_seconds / tau_rise).exp(),
            indicator_decay_s: tau_decay,
            indicator_rise_s: tau_rise,
            kernel_peak,
            calcium_decay: vec![0.0; neurons],
            calcium_rise: vec![0.0; neurons],
            neuropil_state,
            neuropil_persistence: (-frame_seconds / NEUROPIL_TAU_S).exp(),
            population_smoothed: 0.0,
            motion_px,
            drift,
            drift_persistence: (-frame_seconds / DRIFT_TAU_S).exp(),
        }
    }

    /// Advances one frame and writes its record (see [`FrameLayout`]) into `record`.
    /// `neurons` receives updated spike counts.
    pub(crate) fn advance(&mut self, neurons: &mut [NeuronTruth], record: &mut [f32]) {
        let neuron_count = neurons.len();
        let (fluorescence, rest) = record.split_at_mut(neuron_count);
        let (neuropil_gain, shift) = rest.split_at_mut(NEUROPIL_COMPONENTS);

        let mut population_dff = 0.0f32;
        for (index, neuron) in neurons.iter_mut().enumerate() {
            self.calcium_decay[index] *= self.decay_per_frame;
            self.calcium_rise[index] *= self.rise_per_frame;
            let event_rate = neuron.spike_rate_hz / MEAN_BURST_SPIKES * self.frame_seconds;
            let events = small_poisson(&mut self.rng, event_rate);
            for _ in 0..events {
                let spikes = 1 + small_poisson(&mut self.rng, MEAN_BURST_SPIKES - 1.0);
                for _ in 0..spikes {
                    // Time from the spike to the end of this frame.
                    let elapsed_s = self.rng.random::<f32>() * self.frame_seconds;
                    self.calcium_decay[index] += (-elapsed_s / self.indicator_decay_s).exp();
                    self.calcium_rise[index] += (-elapsed_s / self.indicator_rise_s).exp();
                }
                neuron.spikes_emitted += u64::from(spikes);
            }
            let calcium = ((self.calcium_decay[index] - self.calcium_rise[index])
                / self.kernel_peak)
                .max(0.0);
            let dff = neuron.dff_per_spike * calcium / (1.0 + calcium / SATURATION_SPIKES);
            population_dff += dff;
            fluorescence[index] = neuron.brightness * (1.0 + dff);
        }
        if neuron_count > 0 {
            population_dff /= neuron_count as f32;
        }
        // Neuropil follows a smoothed population signal (time constant ≈ indicator decay).
        self.population_smoothed = self.decay_per_frame * self.population_smoothed
            + (1.0 - self.decay_per_frame) * population_dff;

        let innovation = NEUROPIL_FLUCTUATION * (1.0 - self.neuropil_persistence.powi(2)).sqrt();
        for (state, gain) in self.neuropil_state.iter_mut().zip(neuropil_gain.iter_mut()) {
            *state = self.neuropil_persistence * *state
                + innovation * self.rng.sample::<f32, _>(StandardNormal);
            *gain =
                (1.0 + *state + NEUROPIL_POPULATION_COUPLING * self.population_smoothed).max(0.0);
        }

        if self.motion_px > 0.0 {
            let drift_std = 0.8 * self.motion_px;
            let drift_innovation = drift_std * (1.0 - self.drift_persistence.powi(2)).sqrt();
            let jitter = 0.3 * self.motion_px;
            let limit = 3.0 * self.motion_px;
            self.drift.0 = self.drift_persistence * self.drift.0
                + drift_innovation * self.rng.sample::<f32, _>(StandardNormal);
            self.drift.1 = self.drift_persistence * self.drift.1
                + drift_innovation * self.rng.sample::<f32, _>(StandardNormal);
            shift[0] = (self.drift.0 + jitter * self.rng.sample::<f32, _>(StandardNormal))
                .clamp(-limit, limit);
            shift[1] = (self.drift.1 + jitter * self.rng.sample::<f32, _>(StandardNormal))
                .clamp(-limit, limit);
        } else {
            shift[0] = 0.0;
            shift[1] = 0.0;
        }
    }
}

/// Poisson sample for a small mean (Knuth's multiplication method; fine below ~20).
fn small_poisson(rng: &mut StreamRng, mean: f32) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    let threshold = (-f64::from(mean)).exp();
    let mut product: f64 = rng.random();
    let mut count = 0u32;
    while product > threshold {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_poisson_has_right_mean() {
        let mut rng = StreamRng::new(3, Stream::Dynamics, 9);
        let n = 200_000;
        let total: u64 = (0..n)
            .map(|_| u64::from(small_poisson(&mut rng, 0.5)))
            .sum();
        let mean = total as f64 / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn single_spike_peaks_near_dff_per_spike() {
        let config = TwoPhotonConfig {
            spike_rate_hz: 0.0,
            ..TwoPhotonConfig::default()
        };
        let mut dynamics = Dynamics::new(&config, 1);
        // Inject one spike at the end of frame 0 by hand, then free-run.
        dynamics.calcium_decay[0] = 1.0;
        dynamics.calcium_rise[0] = 1.0;
        let mut neurons = vec![NeuronTruth {
            id: 0,
            centre_y: 0.0,
            centre_x: 0.0,
            radius_major: 5.0,
            radius_minor: 5.0,
            angle_rad: 0.0,
            brightness: 1.0,
            has_nucleus: false,
            spike_rate_hz: 0.0,
            dff_per_spike: 0.4,
            spikes_emitted: 0,
        }];
        let layout = FrameLayout { neurons: 1 };
        let mut record = vec![0.0; layout.stride()];
        let mut peak = 0.0f32;
        let mut after_two_seconds = 0.0;
        for _ in 0..60 {
            dynamics.advance(&mut neurons, &mut record);
            peak = peak.max(record[0] - 1.0);
            after_two_seconds = record[0] - 1.0;
        }
        // Frame sampling misses the exact peak slightly; saturation lowers it by ~1/9.
        assert!(peak > 0.3 && peak <= 0.4, "peak ΔF/F {peak}");
        assert!(
            after_two_seconds < 0.1 * peak,
            "decayed to {after_two_seconds}"
        );
    }
}
