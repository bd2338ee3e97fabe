//! The streaming renderer: [`EphysSimulator`] adds the units' templates at their spike times
//! (clean recording) and thermal noise on top (noisy recording), a chunk at a time.
//!
//! A chunk is cut at multiples of [`NOISE_BLOCK_SAMPLES`] into segments rendered in parallel
//! (rayon). Each segment sums the templates of every spike that overlaps it, clipped to it, so
//! spikes straddling a chunk border are drawn on both sides. The noise of block `b` is one
//! random stream indexed by `b`, drawn sample-major over all channels; a block that a call only
//! partly covers is drawn whole and its values kept for the next call, so the output is
//! bitwise the same however the recording is split into calls and whatever the thread count.

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::config::EphysConfig;
use super::ephys_rng;
use super::spikes::{GroundTruthSpike, draw_spike_trains, refractory_samples};
use super::units::{UnitTemplate, UnitTruth, generate_units};
use crate::config::SimError;
use crate::rng::Stream;

/// Samples per noise block: the unit of noise seeding and of parallel rendering.
pub const NOISE_BLOCK_SAMPLES: usize = 256;

/// The noise of one whole block, kept when a call ends inside it.
#[derive(Clone, Debug)]
struct NoiseBlock {
    /// Index of the block (its first sample is `index · NOISE_BLOCK_SAMPLES`).
    index: usize,
    /// Noise values in µV, sample-major `[samples of the block][channels]`.
    values: Vec<f32>,
}

/// The part of a chunk that falls in one noise block, with its output buffers.
struct Segment<'a> {
    /// First sample of the segment in the recording.
    start: usize,
    /// Noise block the segment lies in.
    block: usize,
    /// Whether the segment is the whole block (its noise is then drawn in place).
    whole_block: bool,
    clean: &'a mut [f32],
    noisy: &'a mut [f32],
}

/// Streaming generator of a spike-band extracellular recording with ground truth.
///
/// ```
/// use deepinterp_sim::{EphysConfig, EphysSimulator};
/// let config = EphysConfig { duration_s: 0.1, channels: 32, ..EphysConfig::default() };
/// let mut simulator = EphysSimulator::new(config)?;
/// let channels = simulator.channels();
/// let (mut clean, mut noisy) = (vec![0.0; 1000 * channels], vec![0.0; 1000 * channels]);
/// let mut total = 0;
/// loop {
///     let rendered = simulator.next_samples(1000, &mut clean, &mut noisy);
///     if rendered == 0 { break; }
///     total += rendered; // use clean[..rendered * channels], noisy[..rendered * channels]
/// }
/// assert_eq!(total, simulator.samples());
/// # Ok::<(), deepinterp_sim::SimError>(())
/// ```
#[derive(Clone, Debug)]
pub struct EphysSimulator {
    config: EphysConfig,
    positions: Vec<(f32, f32)>,
    samples: usize,
    units: Vec<UnitTruth>,
    templates: Vec<UnitTemplate>,
    /// Every spike of the recording, sorted by `(sample, unit)`.
    spikes: Vec<GroundTruthSpike>,
    /// Longest template stretch before the spike sample, samples.
    max_before: u64,
    /// Longest template stretch from the spike sample on (inclusive), samples.
    max_from: u64,
    noise_rms: f32,
    samples_rendered: usize,
    /// Noise of the block the previous call ended inside, if any.
    pending_noise: Option<NoiseBlock>,
}

impl EphysSimulator {
    /// Validates `config`, places the units, builds their templates and draws every spike.
    pub fn new(config: EphysConfig) -> Result<Self, SimError> {
        config.validate()?;
        let positions = config.channel_positions();
        let samples = config.sample_count();
        let (mut units, templates) = generate_units(&config, &positions);
        let rates: Vec<f64> = units.iter().map(|unit| unit.firing_rate_hz).collect();
        let spikes = draw_spike_trains(config.seed, &rates, samples as u64, config.sample_rate_hz);
        for spike in &spikes {
            units[spike.unit as usize].spike_count += 1;
        }
        let max_before = templates
            .iter()
            .map(|template| template.trough_offset() as u64)
            .max()
            .unwrap_or(0);
        let max_from = templates
            .iter()
            .map(|template| (template.samples() - template.trough_offset()) as u64)
            .max()
            .unwrap_or(0);
        Ok(Self {
            noise_rms: config.noise_uv_rms as f32,
            config,
            positions,
            samples,
            units,
            templates,
            spikes,
            max_before,
            max_from,
            samples_rendered: 0,
            pending_noise: None,
        })
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &EphysConfig {
        &self.config
    }

    /// Number of samples per channel in the whole recording.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.positions.len()
    }

    /// `(x, y)` of every channel on the probe, µm.
    pub fn positions(&self) -> &[(f32, f32)] {
        &self.positions
    }

    /// Samples rendered so far.
    pub fn samples_rendered(&self) -> usize {
        self.samples_rendered
    }

    /// Samples still to come.
    pub fn samples_remaining(&self) -> usize {
        self.samples - self.samples_rendered
    }

    /// The absolute refractory period in samples: no unit fires twice within fewer samples.
    pub fn refractory_samples(&self) -> u64 {
        refractory_samples(self.config.sample_rate_hz)
    }

    /// Ground truth about every unit, indexed by unit.
    pub fn units(&self) -> &[UnitTruth] {
        &self.units
    }

    /// Every unit's template, indexed by unit.
    pub fn templates(&self) -> &[UnitTemplate] {
        &self.templates
    }

    /// The multichannel waveform one spike of `unit` adds to the recording.
    ///
    /// # Panics
    /// If `unit >= self.units().len()`.
    pub fn template(&self, unit: usize) -> &UnitTemplate {
        &self.templates[unit]
    }

    /// Every spike of the whole recording (rendered or not), sorted by sample then unit.
    pub fn spikes(&self) -> Vec<GroundTruthSpike> {
        self.spikes.clone()
    }

    /// [`spikes`](Self::spikes) without the copy.
    pub fn spike_list(&self) -> &[GroundTruthSpike] {
        &self.spikes
    }

    /// Renders the next samples into `clean` (the sum of the units' spikes) and `noisy` (clean
    /// plus thermal noise), both in µV, sample-major `[sample][channel]`.
    ///
    /// Renders `min(count, samples remaining, clean.len() / channels, noisy.len() / channels)`
    /// samples and returns that number (0 once the recording is complete); values beyond them
    /// are left untouched. The result is bitwise the same however the recording is split into
    /// calls.
    pub fn next_samples(&mut self, count: usize, clean: &mut [f32], noisy: &mut [f32]) -> usize {
        let channels = self.channels();
        let count = count
            .min(self.samples_remaining())
            .min(clean.len() / channels)
            .min(noisy.len() / channels);
        if count == 0 {
            return 0;
        }
        let start = self.samples_rendered;
        let end = start + count;
        let segments = self.segments(
            start,
            end,
            &mut clean[..count * channels],
            &mut noisy[..count * channels],
        );

        // Noise of the (at most two) blocks this call covers only in part.
        let mut partial_noise = Vec::new();
        let mut to_draw = Vec::new();
        if self.noise_rms > 0.0 {
            for segment in segments.iter().filter(|segment| !segment.whole_block) {
                match self
                    .pending_noise
                    .take_if(|pending| pending.index == segment.block)
                {
                    Some(pending) => partial_noise.push(pending),
                    None => to_draw.push(segment.block),
                }
            }
            partial_noise.par_extend(to_draw.into_par_iter().map(|block| NoiseBlock {
                index: block,
                values: self.block_noise(block),
            }));
        }

        segments.into_par_iter().for_each(|segment| {
            self.render_clean(segment.start, segment.clean);
            if self.noise_rms == 0.0 {
                segment.noisy.copy_from_slice(segment.clean);
            } else if segment.whole_block {
                let mut rng = ephys_rng(self.config.seed, Stream::Noise, segment.block as u64);
                for (noisy, &clean) in segment.noisy.iter_mut().zip(segment.clean.iter()) {
                    *noisy = clean + self.noise_value(&mut rng);
                }
            } else {
                let block = partial_noise
                    .iter()
                    .find(|noise| noise.index == segment.block)
                    .expect("noise of every partial block is prepared");
                let offset = (segment.start - segment.block * NOISE_BLOCK_SAMPLES) * channels;
                let noise = &block.values[offset..offset + segment.noisy.len()];
                for ((noisy, &clean), &noise) in segment
                    .noisy
                    .iter_mut()
                    .zip(segment.clean.iter())
                    .zip(noise)
                {
                    *noisy = clean + noise;
                }
            }
        });

        self.pending_noise = (!end.is_multiple_of(NOISE_BLOCK_SAMPLES) && end < self.samples)
            .then(|| {
                partial_noise
                    .into_iter()
                    .find(|noise| noise.index == end / NOISE_BLOCK_SAMPLES)
            })
            .flatten();
        self.samples_rendered = end;
        count
    }

    /// Cuts `[start, end)` and its output buffers at noise-block boundaries.
    fn segments<'a>(
        &self,
        start: usize,
        end: usize,
        mut clean: &'a mut [f32],
        mut noisy: &'a mut [f32],
    ) -> Vec<Segment<'a>> {
        let channels = self.channels();
        let mut segments = Vec::with_capacity((end - start) / NOISE_BLOCK_SAMPLES + 2);
        let mut sample = start;
        while sample < end {
            let block = sample / NOISE_BLOCK_SAMPLES;
            let block_start = block * NOISE_BLOCK_SAMPLES;
            let block_end = (block_start + NOISE_BLOCK_SAMPLES).min(self.samples);
            let segment_end = block_end.min(end);
            let values = (segment_end - sample) * channels;
            let (segment_clean, clean_rest) = std::mem::take(&mut clean).split_at_mut(values);
            let (segment_noisy, noisy_rest) = std::mem::take(&mut noisy).split_at_mut(values);
            clean = clean_rest;
            noisy = noisy_rest;
            segments.push(Segment {
                start: sample,
                block,
                whole_block: sample == block_start && segment_end == block_end,
                clean: segment_clean,
                noisy: segment_noisy,
            });
            sample = segment_end;
        }
        segments
    }

    /// One thermal-noise value, µV.
    fn noise_value(&self, rng: &mut impl Rng) -> f32 {
        self.noise_rms * rng.sample::<f32, _>(StandardNormal)
    }

    /// The noise of the whole of `block`, sample-major.
    fn block_noise(&self, block: usize) -> Vec<f32> {
        let block_start = block * NOISE_BLOCK_SAMPLES;
        let block_samples = NOISE_BLOCK_SAMPLES.min(self.samples - block_start);
        let mut rng = ephys_rng(self.config.seed, Stream::Noise, block as u64);
        (0..block_samples * self.channels())
            .map(|_| self.noise_value(&mut rng))
            .collect()
    }

    /// Writes the clean signal of the samples starting at `start` into `clean` (whole samples
    /// of all channels): the sum, in spike order, of every template overlapping them.
    fn render_clean(&self, start: usize, clean: &mut [f32]) {
        clean.fill(0.0);
        let channels = self.channels();
        let start = start as u64;
        let end = start + (clean.len() / channels) as u64;
        // A spike at `t` covers samples [t - trough_offset, t - trough_offset + samples).
        let first = self
            .spikes
            .partition_point(|spike| spike.sample + self.max_from <= start);
        for spike in &self.spikes[first..] {
            if spike.sample >= end + self.max_before {
                break;
            }
            let template = &self.templates[spike.unit as usize];
            let origin = spike.sample as i64 - template.trough_offset() as i64;
            let first_offset = (start as i64 - origin).max(0) as usize;
            let end_offset = (end as i64 - origin).clamp(0, template.samples() as i64) as usize;
            let width = template.channels().len();
            for offset in first_offset..end_offset {
                let row = (origin + offset as i64 - start as i64) as usize;
                let row = &mut clean[row * channels..(row + 1) * channels];
                let values = &template.waveforms()[offset * width..(offset + 1) * width];
                for (&channel, &value) in template.channels().iter().zip(values) {
                    row[channel] += value;
                }
            }
        }
    }
}
