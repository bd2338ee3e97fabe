//! Training samples of frame recordings (two-photon movies, probe grids): windows of
//! neighbouring frames cut from a bounded block of frames in memory, refreshed from a random
//! place in a random input every few steps, with fixed validation samples from held-out tails
//! or separate files.

use deepinterp_io::MovieReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Batch, Sampler, TrainSettings, ValidationSource, pick_stretch};
use crate::error::EngineError;
use crate::sampling::{Crop, FrameBlock, Normalization, Window};

/// Validation recordings with their normalisation.
type ValidationReaders = Vec<(Box<dyn MovieReader>, Normalization)>;

/// One input recording with its normalisation and the frames training may use.
struct Source {
    reader: Box<dyn MovieReader>,
    normalization: Normalization,
    train_range: std::ops::Range<usize>,
}

/// A sample already cut out: `channels` input planes and a target plane of one crop.
struct Sample {
    input: Vec<f32>,
    target: Vec<f32>,
}

/// Draws batches of frame windows.
pub(super) struct FrameSampler {
    sources: Vec<Source>,
    block: FrameBlock,
    window: Window,
    crop: CropRule,
    height: usize,
    width: usize,
    validation: Option<Vec<Batch>>,
    cache_frames: usize,
}

impl FrameSampler {
    /// Opens the sampler: checks the inputs, computes their statistics and cuts the fixed
    /// validation samples. `size_multiple` is what the network's pools need of a crop.
    pub(super) fn new(
        inputs: Vec<Box<dyn MovieReader>>,
        validation_inputs: Vec<Box<dyn MovieReader>>,
        settings: &TrainSettings,
        size_multiple: [usize; 2],
        activations: f64,
    ) -> Result<Self, EngineError> {
        if settings.stats_frames == 0 {
            return Err(EngineError::Settings(
                "--stats-frames must be at least 1, got 0".into(),
            ));
        }
        let (mut sources, validation_readers) = split_sources(inputs, validation_inputs, settings)?;
        // After the recordings are checked: a recording too short for the window is the
        // first thing to fix.
        if let (Some(patch), Some(first)) = (settings.patch_size, sources.first()) {
            let info = first.reader.info();
            if patch > info.height || patch > info.width {
                return Err(EngineError::recording(
                    first.reader.path(),
                    format!(
                        "--patch-size {patch} is larger than the frames ({}x{}): give a smaller one",
                        info.height, info.width
                    ),
                ));
            }
        }
        let (height, width) = {
            let info = sources[0].reader.info();
            (info.height, info.width)
        };
        let crop_shape = crop_size(size_multiple, settings.patch_size, height, width);
        super::check_sample_memory(
            settings,
            settings.window.input_frames(),
            crop_shape.0.saturating_mul(crop_shape.1),
            activations,
        )?;
        let frame_bytes = deepinterp_io::limits::checked_product(
            sources[0].reader.path(),
            "the frame cache",
            &[
                settings.cache_frames.max(settings.window.span()) as u64,
                height as u64,
                width as u64,
                4,
            ],
        )?;
        deepinterp_io::limits::check_memory(
            sources[0].reader.path(),
            "the frame cache",
            frame_bytes,
        )?;
        let crop = CropRule {
            size: crop_shape,
            // A probe grid's checkerboard repeats every two sites: crops keep its phase.
            alignment: if sources[0].reader.site_mask().is_some() {
                2
            } else {
                1
            },
        };
        let samples = validation_set(&mut sources, validation_readers, settings, crop)?;
        let window = settings.window;
        let validation = samples.map(|samples| {
            samples
                .chunks(settings.batch_size.max(1))
                .map(|chunk| batch_of(chunk, window.input_frames(), crop.size))
                .collect()
        });
        Ok(Self {
            sources,
            block: FrameBlock::new(height, width),
            window,
            crop,
            height,
            width,
            validation,
            cache_frames: settings.cache_frames,
        })
    }
}

fn batch_of(samples: &[Sample], channels: usize, crop: (usize, usize)) -> Batch {
    Batch {
        input: samples
            .iter()
            .flat_map(|s| s.input.iter().copied())
            .collect(),
        input_shape: vec![samples.len(), channels, crop.0, crop.1],
        target: samples
            .iter()
            .flat_map(|s| s.target.iter().copied())
            .collect(),
    }
}

impl Sampler for FrameSampler {
    fn train_frames(&self) -> usize {
        self.sources.iter().map(|s| s.train_range.len()).sum()
    }

    fn next_batch(
        &mut self,
        batch_size: usize,
        refresh: bool,
        rng: &mut StdRng,
    ) -> Result<Batch, EngineError> {
        if refresh {
            refill_cache(
                &mut self.sources,
                &mut self.block,
                self.cache_frames,
                &self.window,
                rng,
            )?;
        }
        let samples: Vec<Sample> = (0..batch_size)
            .map(|_| {
                draw_sample(
                    &self.block,
                    &self.window,
                    self.crop,
                    rng,
                    self.height,
                    self.width,
                )
            })
            .collect();
        Ok(batch_of(
            &samples,
            self.window.input_frames(),
            self.crop.size,
        ))
    }

    fn validation(&self) -> Option<&[Batch]> {
        self.validation.as_deref()
    }
}

/// The crop trained on: the patch size rounded down to what the pools need, capped by the frame.
fn crop_size(
    multiple: [usize; 2],
    patch: Option<usize>,
    height: usize,
    width: usize,
) -> (usize, usize) {
    let side = |limit: usize, frame: usize, multiple: usize| {
        let wanted = limit.min(frame);
        let rounded = wanted / multiple * multiple;
        if rounded == 0 { frame } else { rounded }
    };
    match patch {
        Some(p) => (side(p, height, multiple[0]), side(p, width, multiple[1])),
        None => (height, width),
    }
}

fn split_sources(
    inputs: Vec<Box<dyn MovieReader>>,
    validation_inputs: Vec<Box<dyn MovieReader>>,
    settings: &TrainSettings,
) -> Result<(Vec<Source>, ValidationReaders), EngineError> {
    let window = settings.window;
    if inputs.is_empty() {
        return Err(EngineError::Settings("no training input".into()));
    }
    let first = inputs[0].info().clone();
    let mut sources = Vec::new();
    for mut reader in inputs {
        let info = reader.info().clone();
        if (info.height, info.width) != (first.height, first.width) {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "frames are {}x{}, the first input's are {}x{}: train inputs must share a frame size",
                    info.height, info.width, first.height, first.width
                ),
            ));
        }
        let held_out = match settings.validation {
            ValidationSource::HeldOut { fraction } => {
                (info.frames as f64 * fraction.clamp(0.0, 0.5)) as usize
            }
            ValidationSource::Separate => 0,
        };
        let held_out = if held_out > 0 {
            held_out.max(window.span())
        } else {
            0
        };
        let train_frames = info.frames.saturating_sub(held_out);
        if info.frames < window.span() {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "{} frames is too few: a window ({window}) spans {}",
                    info.frames,
                    window.span()
                ),
            ));
        }
        if train_frames < window.span() {
            return Err(EngineError::recording(
                reader.path(),
                format!(
                    "{} frames is too few to hold out {held_out} for validation and keep a {}-frame window for training: give a --validation file or --validation-fraction 0",
                    info.frames,
                    window.span()
                ),
            ));
        }
        let normalization = Normalization::from_head(reader.as_mut(), settings.stats_frames)?;
        sources.push(Source {
            reader,
            normalization,
            train_range: 0..train_frames,
        });
    }
    let mut validation_readers = Vec::new();
    if settings.validation == ValidationSource::Separate {
        for mut reader in validation_inputs {
            let path = reader.path().to_path_buf();
            let info = reader.info().clone();
            if (info.height, info.width) != (first.height, first.width)
                || info.frames < window.span()
            {
                return Err(EngineError::recording(
                    &path,
                    format!(
                        "validation recording is {}x{}x{}; it needs {}x{} frames and at least {}",
                        info.frames,
                        info.height,
                        info.width,
                        first.height,
                        first.width,
                        window.span()
                    ),
                ));
            }
            let normalization = Normalization::from_head(reader.as_mut(), settings.stats_frames)?;
            validation_readers.push((reader, normalization));
        }
    }
    Ok((sources, validation_readers))
}

/// Loads a random block of a random source (weighted by its training frames) into `block`.
fn refill_cache(
    sources: &mut [Source],
    block: &mut FrameBlock,
    cache_frames: usize,
    window: &Window,
    rng: &mut StdRng,
) -> Result<(), EngineError> {
    let ranges: Vec<_> = sources.iter().map(|s| s.train_range.clone()).collect();
    let (index, stretch) = pick_stretch(&ranges, cache_frames.max(window.span()), rng);
    let source = &mut sources[index];
    block.load(source.reader.as_mut(), &source.normalization, stretch)?;
    Ok(())
}

/// Size of the training crops and the grid their corners snap to.
#[derive(Clone, Copy, Debug)]
struct CropRule {
    size: (usize, usize),
    alignment: usize,
}

impl CropRule {
    fn draw(&self, rng: &mut StdRng, height: usize, width: usize) -> Crop {
        let step = self.alignment.max(1);
        Crop {
            top: rng.random_range(0..=(height - self.size.0) / step) * step,
            left: rng.random_range(0..=(width - self.size.1) / step) * step,
            height: self.size.0,
            width: self.size.1,
        }
    }
}

fn draw_sample(
    block: &FrameBlock,
    window: &Window,
    crop: CropRule,
    rng: &mut StdRng,
    height: usize,
    width: usize,
) -> Sample {
    let first = block.start() + window.first_full_centre();
    let last = block.end() - 1 - window.post_frames - window.omitted_frames;
    let centre = rng.random_range(first..=last);
    let crop = crop.draw(rng, height, width);
    cut_sample(block, window, centre, crop)
}

fn cut_sample(block: &FrameBlock, window: &Window, centre: usize, crop: Crop) -> Sample {
    let sources: Vec<usize> = window
        .offsets()
        .iter()
        .map(|&offset| (centre as isize + offset) as usize)
        .collect();
    let plane = crop.height * crop.width;
    let mut input = vec![0f32; sources.len() * plane];
    block.gather(&sources, crop, &mut input);
    let mut target = vec![0f32; plane];
    block.gather(&[centre], crop, &mut target);
    Sample { input, target }
}

/// Fixed validation samples: from the held-out tails, or from the validation files.
fn validation_set(
    sources: &mut [Source],
    mut files: ValidationReaders,
    settings: &TrainSettings,
    crop_rule: CropRule,
) -> Result<Option<Vec<Sample>>, EngineError> {
    let window = settings.window;
    let mut regions: Vec<(&mut dyn MovieReader, Normalization, std::ops::Range<usize>)> =
        Vec::new();
    for source in sources.iter_mut() {
        let frames = source.reader.info().frames;
        if source.train_range.end < frames {
            let range = source.train_range.end..frames;
            regions.push((source.reader.as_mut(), source.normalization, range));
        }
    }
    for (reader, normalization) in files.iter_mut() {
        let frames = reader.info().frames;
        regions.push((reader.as_mut(), *normalization, 0..frames));
    }
    if regions.is_empty() || settings.validation_samples == 0 {
        return Ok(None);
    }
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(0x5eed));
    let mut samples = Vec::with_capacity(settings.validation_samples);
    let per_region = settings.validation_samples.div_ceil(regions.len());
    for (reader, normalization, range) in regions {
        let info = reader.info().clone();
        let mut block = FrameBlock::new(info.height, info.width);
        // Spread the samples over the region; each sample reads just its window.
        for _ in 0..per_region {
            if samples.len() == settings.validation_samples {
                break;
            }
            let first = range.start + window.first_full_centre();
            let last = range.end - 1 - window.post_frames - window.omitted_frames;
            let centre = rng.random_range(first..=last);
            let window_start = centre - window.first_full_centre();
            block.load(
                reader,
                &normalization,
                window_start..window_start + window.span(),
            )?;
            let crop = crop_rule.draw(&mut rng, info.height, info.width);
            samples.push(cut_sample(&block, &window, centre, crop));
        }
    }
    Ok(Some(samples))
}
