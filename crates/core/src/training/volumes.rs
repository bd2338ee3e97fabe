//! Training samples of fMRI runs: voxel blocks (see [`crate::volume`]) centred on random
//! voxels and time points of a bounded stack of volumes in memory, refreshed from a random
//! place in a random run every few steps. As in the original, centres are uniform over the
//! whole volume and every time point and the target is the centre time point's whole block;
//! unlike it, time points beyond the run's ends are mirrored about the centre rather than
//! zeroed (see [`TimeEdges`]), as fast-mode inference reads them.

use std::ops::Range;

use deepinterp_io::nifti::VolumeReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Batch, Sampler, TrainSettings, ValidationSource, pick_stretch};
use crate::error::EngineError;
use crate::sampling::Normalization;
use crate::volume::{
    TimeEdges, VolumeBlock, VolumeStack, central_block_statistics, channel_offsets,
};

/// One run with its normalisation and the time points training may use.
struct Run {
    reader: VolumeReader,
    normalization: Normalization,
    train_range: Range<usize>,
}

/// Draws batches of voxel blocks.
pub(super) struct VolumeSampler {
    runs: Vec<Run>,
    active: usize,
    stack: VolumeStack,
    block: VolumeBlock,
    offsets: Vec<isize>,
    validation: Option<Vec<Batch>>,
    cache_frames: usize,
}

impl VolumeSampler {
    /// Checks the runs, computes their statistics and cuts the fixed validation samples.
    pub(super) fn new(
        inputs: Vec<VolumeReader>,
        validation_inputs: Vec<VolumeReader>,
        block: VolumeBlock,
        settings: &TrainSettings,
        activations: f64,
    ) -> Result<Self, EngineError> {
        block.validate()?;
        super::check_sample_memory(
            settings,
            channel_offsets(&settings.window).len(),
            block.voxels(),
            activations,
        )?;
        if inputs.is_empty() {
            return Err(EngineError::Settings("no training input".into()));
        }
        let offsets = channel_offsets(&settings.window);
        let span = settings.window.span();
        let mut runs = Vec::with_capacity(inputs.len());
        let mut held_out_regions = Vec::new();
        for mut reader in inputs {
            let frames = reader.info().frames;
            let held_out = match settings.validation {
                ValidationSource::HeldOut { fraction } if fraction > 0.0 => {
                    ((frames as f64 * fraction.clamp(0.0, 0.5)) as usize).max(span)
                }
                _ => 0,
            };
            if frames < span.saturating_add(held_out) {
                return Err(EngineError::recording(
                    reader.path(),
                    format!(
                        "{frames} time points is too few: training needs {span} (the window) plus {held_out} held out for validation; give a --validation run or --validation-fraction 0"
                    ),
                ));
            }
            let normalization = central_block_statistics(&mut reader)?;
            let train_range = 0..frames - held_out;
            if held_out > 0 {
                held_out_regions.push((runs.len(), frames - held_out..frames));
            }
            runs.push(Run {
                reader,
                normalization,
                train_range,
            });
        }
        let mut separate = Vec::new();
        if settings.validation == ValidationSource::Separate {
            for mut reader in validation_inputs {
                let frames = reader.info().frames;
                if frames < span {
                    return Err(EngineError::recording(
                        reader.path(),
                        format!(
                            "validation run has {frames} time points; it needs at least {span}"
                        ),
                    ));
                }
                let normalization = central_block_statistics(&mut reader)?;
                separate.push(Run {
                    reader,
                    normalization,
                    train_range: 0..frames,
                });
            }
        }
        let shape = runs[0].reader.info().shape;
        let frames = runs[0].reader.info().frames;
        let mut sampler = Self {
            runs,
            active: usize::MAX,
            stack: VolumeStack::new(shape, frames),
            block,
            offsets,
            validation: None,
            cache_frames: settings.cache_frames.max(span),
        };
        sampler.validation = sampler.validation_batches(held_out_regions, separate, settings)?;
        Ok(sampler)
    }

    /// Fixed, seeded validation samples, spread over the held-out tails or separate runs.
    fn validation_batches(
        &mut self,
        held_out: Vec<(usize, Range<usize>)>,
        mut separate: Vec<Run>,
        settings: &TrainSettings,
    ) -> Result<Option<Vec<Batch>>, EngineError> {
        let mut regions: Vec<(&mut Run, Range<usize>)> = Vec::new();
        let mut held_out = held_out.into_iter().peekable();
        for (index, run) in self.runs.iter_mut().enumerate() {
            if let Some((_, range)) = held_out.next_if(|(owner, _)| *owner == index) {
                regions.push((run, range));
            }
        }
        for run in separate.iter_mut() {
            let range = run.train_range.clone();
            regions.push((run, range));
        }
        if regions.is_empty() || settings.validation_samples == 0 {
            return Ok(None);
        }
        let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(0x5eed));
        let per_region = settings.validation_samples.div_ceil(regions.len());
        let mut samples = Vec::new();
        let mut collected = 0;
        for (run, range) in regions {
            let info = run.reader.info().clone();
            let mut stack = VolumeStack::new(info.shape, info.frames);
            stack.hold(&mut run.reader, range.clone())?;
            let count = per_region.min(settings.validation_samples - collected);
            for _ in 0..count {
                let t = random_centre(&stack, &self.offsets, info.frames, &mut rng);
                let origin = random_origin(info.shape, &self.block, &mut rng);
                samples.push(cut(
                    &stack,
                    origin,
                    t,
                    &self.offsets,
                    &self.block,
                    &run.normalization,
                ));
            }
            collected += count;
        }
        let batches = samples
            .chunks(settings.batch_size.max(1))
            .map(|chunk| batch_of(chunk, self.offsets.len(), &self.block))
            .collect();
        Ok(Some(batches))
    }
}

/// One sample: the input block's channels and the target block.
type Sample = (Vec<f32>, Vec<f32>);

fn cut(
    stack: &VolumeStack,
    origin: [isize; 3],
    t: usize,
    offsets: &[isize],
    block: &VolumeBlock,
    normalization: &Normalization,
) -> Sample {
    let mut input = vec![0f32; offsets.len() * block.voxels()];
    let mut target = vec![0f32; block.voxels()];
    stack.cut_block(
        origin,
        t,
        offsets,
        TimeEdges::Mirror,
        block,
        normalization,
        &mut input,
        Some(&mut target),
    );
    (input, target)
}

fn batch_of(samples: &[Sample], channels: usize, block: &VolumeBlock) -> Batch {
    let sides = block.sides();
    Batch {
        input: samples.iter().flat_map(|s| s.0.iter().copied()).collect(),
        input_shape: vec![samples.len(), channels, sides[0], sides[1], sides[2]],
        target: samples.iter().flat_map(|s| s.1.iter().copied()).collect(),
    }
}

/// A centre time point whose every channel is held in `stack` or lies outside the run.
fn random_centre(stack: &VolumeStack, offsets: &[isize], frames: usize, rng: &mut StdRng) -> usize {
    let held = stack.held();
    let before = offsets.iter().copied().min().unwrap_or(0).unsigned_abs();
    let after = offsets.iter().copied().max().unwrap_or(0).max(0) as usize;
    let first = if held.start == 0 {
        0
    } else {
        held.start + before
    };
    let last = if held.end == frames {
        frames - 1
    } else {
        held.end.saturating_sub(after + 1)
    };
    rng.random_range(first..=last.max(first))
}

/// The low corner of a block centred on a uniformly random voxel.
fn random_origin(shape: [usize; 3], block: &VolumeBlock, rng: &mut StdRng) -> [isize; 3] {
    [0, 1, 2].map(|axis| rng.random_range(0..shape[axis]) as isize - block.radius[axis] as isize)
}

impl Sampler for VolumeSampler {
    fn train_frames(&self) -> usize {
        self.runs.iter().map(|run| run.train_range.len()).sum()
    }

    fn next_batch(
        &mut self,
        batch_size: usize,
        refresh: bool,
        rng: &mut StdRng,
    ) -> Result<Batch, EngineError> {
        if refresh || self.active == usize::MAX {
            let ranges: Vec<_> = self.runs.iter().map(|r| r.train_range.clone()).collect();
            let (index, stretch) = pick_stretch(&ranges, self.cache_frames, rng);
            let run = &mut self.runs[index];
            let info = run.reader.info().clone();
            if index != self.active {
                self.stack = VolumeStack::new(info.shape, info.frames);
            }
            self.stack.hold(&mut run.reader, stretch)?;
            self.active = index;
        }
        let run = &self.runs[self.active];
        let info = run.reader.info();
        let samples: Vec<Sample> = (0..batch_size)
            .map(|_| {
                let t = random_centre(&self.stack, &self.offsets, info.frames, rng);
                let origin = random_origin(info.shape, &self.block, rng);
                cut(
                    &self.stack,
                    origin,
                    t,
                    &self.offsets,
                    &self.block,
                    &run.normalization,
                )
            })
            .collect();
        Ok(batch_of(&samples, self.offsets.len(), &self.block))
    }

    fn validation(&self) -> Option<&[Batch]> {
        self.validation.as_deref()
    }
}
