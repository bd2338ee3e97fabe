//! fMRI: the voxel blocks a volumetric network reads, the original's central-block
//! normalisation, and streaming full-run inference in two modes.
//!
//! A sample centred on voxel `(x, y, z)` at time `t` is a `side³` block (`side = 2r + 1`, the
//! paper's 7³) at each of the window's time points `t - pre … t + post`, the centre time point
//! included, as channels. At the centre time point the centre voxel and the cube of indices
//! `[r - (hole - 1), r + (hole - 1))` on each axis are zeroed — asymmetric, as in the
//! original (`center_omission_size` 4 zeroes indices 0–5 of 0–6). Voxels and time points
//! outside the run are zero. All zeros are applied in raw units *before* normalisation, so
//! they become `-mean/std` (REFERENCE.md §1, fixture README pitfall 5). The training target
//! is the centre time point's whole block.
//!
//! [`VolumeMode::Parity`] predicts each voxel from its own block and keeps only the centre
//! voxel, as the original does (one network pass per voxel and time point). [`VolumeMode::Fast`]
//! tiles each volume with blocks and keeps a hidden sub-cube of every predicted block, many
//! voxels per pass, and mirrors missing time points at the run's ends instead of zeroing them
//! (as training does); its quality difference is measured in BENCHMARKS.md.

use std::ops::Range;
use std::path::Path;

use burn::tensor::backend::Backend;
use deepinterp_io::nifti::{VolumeReader, VolumeWriter};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Forward};
use crate::error::EngineError;
use crate::model::Model;
use crate::sampling::{Normalization, Window};

/// The spatial block of a volumetric model and the hole at its centre time point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeBlock {
    /// Voxels on each side of the centre along x, y and z (paper: 3, i.e. 7³ blocks).
    pub radius: [usize; 3],
    /// The original's `center_omission_size`: 1 hides only the centre voxel, `h > 1` also the
    /// cube `[r - (h - 1), r + (h - 1))` of the centre time point (paper: 4).
    pub hole: usize,
}

impl VolumeBlock {
    /// The paper's block (7³, hole 4), or one whose sides a Keras file records.
    pub fn paper(recorded_sides: Option<&[usize]>) -> Result<Self, EngineError> {
        let radius = match recorded_sides {
            Some(&[x, y, z]) if [x, y, z].iter().all(|side| side % 2 == 1) => [x / 2, y / 2, z / 2],
            Some(other) => {
                return Err(EngineError::InvalidModel(format!(
                    "the network's recorded block {other:?} is not three odd sides"
                )));
            }
            None => [3; 3],
        };
        let block = Self { radius, hole: 4 };
        block.validate()?;
        Ok(block)
    }

    /// Checks the hole fits inside the block.
    pub fn validate(&self) -> Result<(), EngineError> {
        // Bounded before any side or voxel count is computed from it (a model file's block
        // is read from its header): the paper's radius is 3.
        if let Some(radius) = self.radius.iter().find(|&&r| r > MAX_BLOCK_RADIUS) {
            return Err(EngineError::Settings(format!(
                "a block radius of {radius} is larger than the {MAX_BLOCK_RADIUS} deepinterp accepts"
            )));
        }
        if self.hole == 0 || self.radius.iter().any(|&r| self.hole > r + 1) {
            return Err(EngineError::Settings(format!(
                "a block of radius {:?} cannot hold a hole of size {}",
                self.radius, self.hole
            )));
        }
        Ok(())
    }

    /// Block sides `2r + 1`.
    pub fn sides(&self) -> [usize; 3] {
        self.radius.map(|r| 2 * r + 1)
    }

    /// Voxels in one block.
    pub fn voxels(&self) -> usize {
        self.sides().iter().product()
    }

    /// In-block indices of the hole along `axis` (besides the centre voxel).
    pub fn hole_range(&self, axis: usize) -> Range<usize> {
        let r = self.radius[axis];
        if self.hole > 1 {
            r + 1 - self.hole..r + self.hole - 1
        } else {
            r..r
        }
    }

    /// Whether the in-block voxel `(i, j, k)` is hidden at the centre time point.
    pub fn is_hidden(&self, index: [usize; 3]) -> bool {
        index == self.radius || (0..3).all(|axis| self.hole_range(axis).contains(&index[axis]))
    }
}

/// Time offsets of a volumetric sample's channels: the window's frames with the centre
/// (offset 0, which carries the hole) between the pre and post frames.
pub fn channel_offsets(window: &Window) -> Vec<isize> {
    let mut offsets = window.offsets();
    offsets.insert(window.pre_frames, 0);
    offsets
}

/// Round half to even, numpy's `np.round`.
fn round_half_even(value: f64) -> usize {
    value.round_ties_even().max(0.0) as usize
}

/// The original's fMRI statistics: mean and std (float64, population) of the raw values in the
/// central block `[m - h, m + h)` of every axis, time included, with `m = round(n/2)` and
/// `h = round(n/4)` rounded half to even as numpy does. Reads only the volumes of that block.
pub fn central_block_statistics(reader: &mut VolumeReader) -> Result<Normalization, EngineError> {
    let info = reader.info().clone();
    let dims = [info.shape[0], info.shape[1], info.shape[2], info.frames];
    let ranges: Vec<Range<usize>> = dims
        .iter()
        .map(|&n| {
            let middle = round_half_even(n as f64 / 2.0);
            let half = round_half_even(n as f64 / 4.0);
            middle.saturating_sub(half)..(middle + half).min(n)
        })
        .collect();
    if ranges.iter().any(|range| range.is_empty()) {
        return Err(EngineError::recording(
            reader.path(),
            format!("the run {dims:?} is too small for the central-block statistics"),
        ));
    }
    let volume_len = info.shape.iter().product::<usize>();
    let mut volume = vec![0f32; volume_len];
    let (mut sum, mut count, mut squared_deviations) = (0f64, 0usize, 0f64);
    // Two passes (mean, then squared deviations) keep the variance exact in f64.
    for pass in 0..2 {
        let mean = if count > 0 { sum / count as f64 } else { 0.0 };
        for t in ranges[3].clone() {
            reader.read_volumes(t, 1, &mut volume)?;
            for z in ranges[2].clone() {
                for y in ranges[1].clone() {
                    let row = (z * info.shape[1] + y) * info.shape[0];
                    for &value in &volume[row + ranges[0].start..row + ranges[0].end] {
                        if pass == 0 {
                            sum += value as f64;
                            count += 1;
                        } else {
                            squared_deviations += (value as f64 - mean).powi(2);
                        }
                    }
                }
            }
        }
    }
    let mean = sum / count as f64;
    let std = (squared_deviations / count as f64).sqrt();
    if !(std.is_finite() && std > 0.0) {
        return Err(EngineError::recording(
            reader.path(),
            "the central block of the run is constant: cannot normalise (std = 0)",
        ));
    }
    Ok(Normalization {
        mean: mean as f32,
        std: std as f32,
    })
}

/// Consecutive raw volumes held in memory, advanced through a run in time order so that a
/// compressed file is decoded once.
#[derive(Debug)]
pub struct VolumeStack {
    shape: [usize; 3],
    frames: usize,
    start: usize,
    volumes: Vec<Vec<f32>>,
}

impl VolumeStack {
    /// An empty stack for a run of `frames` volumes of `shape`.
    pub fn new(shape: [usize; 3], frames: usize) -> Self {
        Self {
            shape,
            frames,
            start: 0,
            volumes: Vec::new(),
        }
    }

    /// Holds volumes `range` (clipped to the run): keeps those already held, reads the rest.
    pub fn hold(
        &mut self,
        reader: &mut VolumeReader,
        range: Range<usize>,
    ) -> Result<(), EngineError> {
        let range = range.start.min(self.frames)..range.end.min(self.frames);
        let held = self.start..self.start + self.volumes.len();
        let mut kept: Vec<Option<Vec<f32>>> = vec![None; range.len()];
        for (offset, volume) in std::mem::take(&mut self.volumes).into_iter().enumerate() {
            let t = held.start + offset;
            if range.contains(&t) {
                kept[t - range.start] = Some(volume);
            }
        }
        let volume_len = self.shape.iter().product::<usize>();
        let mut volumes = Vec::with_capacity(range.len());
        for (offset, slot) in kept.into_iter().enumerate() {
            let volume = match slot {
                Some(volume) => volume,
                None => {
                    let mut volume = vec![0f32; volume_len];
                    reader.read_volumes(range.start + offset, 1, &mut volume)?;
                    volume
                }
            };
            volumes.push(volume);
        }
        self.start = range.start;
        self.volumes = volumes;
        Ok(())
    }

    /// Volumes held.
    pub fn held(&self) -> Range<usize> {
        self.start..self.start + self.volumes.len()
    }

    /// The raw volume at time `t`, if held.
    fn volume(&self, t: isize) -> Option<&[f32]> {
        let index = t - self.start as isize;
        if index < 0 {
            return None;
        }
        self.volumes.get(index as usize).map(Vec::as_slice)
    }

    /// Fills one network input, `[channel][x][y][z]` normalised, for the block whose low
    /// corner is `origin` at time `t`; with `target`, also the centre time point's block
    /// (normalised, no hole). Time points outside the run are handled by `edges`; those
    /// inside it must be held.
    #[allow(clippy::too_many_arguments)]
    pub fn cut_block(
        &self,
        origin: [isize; 3],
        t: usize,
        offsets: &[isize],
        edges: TimeEdges,
        block: &VolumeBlock,
        normalization: &Normalization,
        input: &mut [f32],
        target: Option<&mut [f32]>,
    ) {
        let sides = block.sides();
        let block_len = block.voxels();
        let (mean, std) = (normalization.mean, normalization.std);
        let zero = (0.0 - mean) / std;
        let [sx, sy, sz] = self.shape;
        let mut target = target;
        for (channel, &offset) in offsets.iter().enumerate() {
            let out = &mut input[channel * block_len..(channel + 1) * block_len];
            let time = edges.source(t, offset, self.frames);
            let volume = if (0..self.frames as isize).contains(&time) {
                Some(
                    self.volume(time)
                        .expect("the stack holds every in-run time point"),
                )
            } else {
                None
            };
            let centre = offset == 0;
            let mut index = 0;
            for i in 0..sides[0] {
                let x = origin[0] + i as isize;
                for j in 0..sides[1] {
                    let y = origin[1] + j as isize;
                    for k in 0..sides[2] {
                        let z = origin[2] + k as isize;
                        let inside = (0..sx as isize).contains(&x)
                            && (0..sy as isize).contains(&y)
                            && (0..sz as isize).contains(&z);
                        let raw = match volume {
                            Some(volume) if inside => {
                                volume[(z as usize * sy + y as usize) * sx + x as usize]
                            }
                            _ => 0.0,
                        };
                        let value = (raw - mean) / std;
                        if centre {
                            if let Some(target) = target.as_deref_mut() {
                                target[index] = value;
                            }
                            out[index] = if block.is_hidden([i, j, k]) {
                                zero
                            } else {
                                value
                            };
                        } else {
                            out[index] = value;
                        }
                        index += 1;
                    }
                }
            }
        }
    }
}

/// What a block holds at time points beyond the run's ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeEdges {
    /// Zeros (raw units), as the original does: parity mode.
    Zero,
    /// The time point mirrored about the centre (`t - o` for a missing `t + o`), so the
    /// network sees real volumes at the distances it was trained on: training and fast mode.
    Mirror,
}

impl TimeEdges {
    /// The time point channel `offset` of centre `t` reads; outside `0..frames` means zeros.
    fn source(self, t: usize, offset: isize, frames: usize) -> isize {
        let direct = t as isize + offset;
        let inside = |time: isize| (0..frames as isize).contains(&time);
        match self {
            TimeEdges::Mirror if !inside(direct) && inside(t as isize - offset) => {
                t as isize - offset
            }
            _ => direct,
        }
    }
}

/// How a run is denoised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum VolumeMode {
    /// One block per voxel and time point, keeping its centre, with zeros beyond the run's
    /// ends: the original's output exactly.
    Parity,
    /// Blocks tiled over each volume, keeping [`fast_kept`] of each on every axis (in-block
    /// indices 1–4 of the paper's 0–6), with time-mirrored neighbours at the run's ends.
    Fast,
}

/// In-block indices a fast-mode block contributes on each axis: hidden voxels one away from
/// the block's low face (index 0 has no spatial context below it) and from the hole's edge
/// next to the visible high face. Paper blocks: 1..5, i.e. 4³ = 64 voxels per pass. Measured
/// on a simulated run with a trained model (BENCHMARKS.md): keeping 1–5 raised the squared
/// error by 17% over 1–4, whose error is 5% below parity mode's; 2–4 gains 2% more for 2.8×
/// the passes.
pub fn fast_kept(block: &VolumeBlock, axis: usize) -> Range<usize> {
    let hole = block.hole_range(axis);
    if hole.len() >= 3 {
        hole.start + 1..hole.end - 1
    } else {
        block.radius[axis]..block.radius[axis] + 1
    }
}

/// Settings of a volumetric denoising run.
#[derive(Clone, Copy, Debug)]
pub struct VolumeDenoiseSettings {
    /// Parity or fast.
    pub mode: VolumeMode,
    /// Blocks per network call.
    pub batch_blocks: usize,
    /// What runs the network.
    pub engine: Engine,
}

impl Default for VolumeDenoiseSettings {
    fn default() -> Self {
        Self {
            mode: VolumeMode::Fast,
            batch_blocks: 1024,
            engine: Engine::default(),
        }
    }
}

/// What a volumetric run did.
#[derive(Clone, Copy, Debug)]
pub struct VolumeDenoiseSummary {
    /// Volumes written.
    pub volumes: usize,
    /// Network passes (blocks) run.
    pub blocks: usize,
    /// The statistics used.
    pub normalization: Normalization,
}

/// The low corners of the blocks that cover one volume: one per voxel (parity), or tiles whose
/// [`fast_kept`] sub-cubes cover every voxel (fast).
fn block_plan(shape: [usize; 3], block: &VolumeBlock, mode: VolumeMode) -> Vec<[isize; 3]> {
    let axis_origins = |axis: usize| -> Vec<isize> {
        let n = shape[axis];
        let r = block.radius[axis] as isize;
        match mode {
            VolumeMode::Parity => (0..n as isize).map(|v| v - r).collect(),
            VolumeMode::Fast => {
                let kept = fast_kept(block, axis);
                let step = kept.len();
                let mut starts: Vec<usize> = (0..n).step_by(step).collect();
                // The last tile ends at the volume's edge rather than beyond it.
                if let Some(last) = starts.last_mut() {
                    *last = (*last).min(n.saturating_sub(step));
                }
                starts.dedup();
                starts
                    .into_iter()
                    .map(|start| start as isize - kept.start as isize)
                    .collect()
            }
        }
    };
    let (xs, ys, zs) = (axis_origins(0), axis_origins(1), axis_origins(2));
    let mut origins = Vec::with_capacity(xs.len() * ys.len() * zs.len());
    for &z in &zs {
        for &y in &ys {
            for &x in &xs {
                origins.push([x, y, z]);
            }
        }
    }
    origins
}

/// Largest radius of a voxel block along any axis.
pub const MAX_BLOCK_RADIUS: usize = 1024;

/// Denoises a whole run, volume by volume in time order, writing each to `writer`.
/// Memory holds the window's volumes and one batch of blocks, whatever the run's length.
/// `progress` is called with the number of volumes written; an error from it ends the run.
pub fn denoise_volumes<B: Backend>(
    model: &Model<B>,
    reader: &mut VolumeReader,
    writer: &mut VolumeWriter,
    settings: &VolumeDenoiseSettings,
    device: &B::Device,
    progress: &mut dyn FnMut(usize) -> Result<(), EngineError>,
) -> Result<VolumeDenoiseSummary, EngineError> {
    model.network.volumetric().ok_or_else(|| {
        EngineError::Settings(format!(
            "a {} model cannot denoise an fMRI run",
            model.spec.modality.name()
        ))
    })?;
    let block = model
        .spec
        .block
        .ok_or_else(|| EngineError::InvalidModel("a volumetric model without a block".into()))?;
    let info = reader.info().clone();
    let shape = info.shape;
    let frames = info.frames;
    let window = model.spec.window;
    let offsets = channel_offsets(&window);
    if offsets.len() != model.spec.network.in_channels() {
        return Err(EngineError::InvalidModel(format!(
            "the window gives {} time points, the network takes {}",
            offsets.len(),
            model.spec.network.in_channels()
        )));
    }
    window.validate()?;
    block.validate()?;
    let batch_blocks = settings.batch_blocks.max(1);
    {
        // One network call: the inputs, outputs and activations of `batch_blocks` blocks,
        // checked against the budget before the batch exists.
        let per_voxel = model.network.activation_floats_per_pixel() + offsets.len() as f64 + 1.0;
        let bytes = 2.0 * 4.0 * per_voxel * batch_blocks as f64 * block.voxels() as f64;
        let bytes = if bytes >= u64::MAX as f64 {
            u64::MAX
        } else {
            bytes as u64
        };
        deepinterp_io::limits::check_memory(
            Path::new(&format!("--batch-size {batch_blocks}")),
            "a batch of voxel blocks and its network activations",
            bytes,
        )?;
    }
    let normalization = central_block_statistics(reader)?;
    let origins = block_plan(shape, &block, settings.mode);
    let sides = block.sides();
    let block_len = block.voxels();
    let channels = offsets.len();
    let (kept, edges): ([Range<usize>; 3], TimeEdges) = match settings.mode {
        VolumeMode::Parity => (block.radius.map(|r| r..r + 1), TimeEdges::Zero),
        VolumeMode::Fast => (
            [0, 1, 2].map(|axis| fast_kept(&block, axis)),
            TimeEdges::Mirror,
        ),
    };
    let reach_before = offsets.iter().copied().min().unwrap_or(0).unsigned_abs();
    let reach_after = offsets.iter().copied().max().unwrap_or(0).max(0) as usize;
    let volume_len = shape.iter().product::<usize>();
    let mut stack = VolumeStack::new(shape, frames);
    let mut output = vec![0f32; volume_len];
    let mut blocks_run = 0;
    let mut forward = Forward::new(&model.network, settings.engine, device)?;
    let mut inputs: Vec<f32> = Vec::new();
    for t in 0..frames {
        stack.hold(reader, t.saturating_sub(reach_before)..t + reach_after + 1)?;
        for batch in origins.chunks(batch_blocks) {
            // One buffer for every batch, zeroed again: blocks rely on zeros outside the run.
            inputs.clear();
            inputs.resize(batch.len() * channels * block_len, 0.0);
            for (sample, &origin) in inputs.chunks_mut(channels * block_len).zip(batch) {
                stack.cut_block(
                    origin,
                    t,
                    &offsets,
                    edges,
                    &block,
                    &normalization,
                    sample,
                    None,
                );
            }
            let predicted = forward.volumetric(
                &inputs,
                [batch.len(), channels, sides[0], sides[1], sides[2]],
            )?;
            // A NaN or infinity never reaches the writer: the run fails and the writer,
            // dropped on the error, removes its unfinished file.
            if let Some((_, value)) = crate::error::first_non_finite(&predicted) {
                return Err(EngineError::recording(
                    reader.path(),
                    format!(
                        "the network's output for time point {t} is not finite ({value}); nothing was written"
                    ),
                ));
            }
            for (values, origin) in predicted.chunks(block_len).zip(batch) {
                for i in kept[0].clone() {
                    let x = origin[0] + i as isize;
                    for j in kept[1].clone() {
                        let y = origin[1] + j as isize;
                        for k in kept[2].clone() {
                            let z = origin[2] + k as isize;
                            let inside = (0..shape[0] as isize).contains(&x)
                                && (0..shape[1] as isize).contains(&y)
                                && (0..shape[2] as isize).contains(&z);
                            if inside {
                                let value = values[(i * sides[1] + j) * sides[2] + k];
                                output[(z as usize * shape[1] + y as usize) * shape[0]
                                    + x as usize] = value * normalization.std + normalization.mean;
                            }
                        }
                    }
                }
            }
            blocks_run += batch.len();
        }
        writer.write_volumes(&output, 1)?;
        progress(t + 1)?;
    }
    Ok(VolumeDenoiseSummary {
        volumes: frames,
        blocks: blocks_run,
        normalization,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_hole_is_asymmetric() {
        let block = VolumeBlock::paper(None).unwrap();
        assert_eq!(block.hole_range(0), 0..6);
        assert!(block.is_hidden([0, 0, 0]) && block.is_hidden([5, 5, 5]));
        assert!(block.is_hidden([3, 3, 3]));
        assert!(!block.is_hidden([6, 3, 3]) && !block.is_hidden([3, 6, 0]));
        let single = VolumeBlock {
            radius: [3; 3],
            hole: 1,
        };
        assert!(single.is_hidden([3, 3, 3]) && !single.is_hidden([2, 3, 3]));
    }

    #[test]
    fn numpy_rounding_is_half_to_even() {
        assert_eq!(round_half_even(6.5), 6);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
    }

    #[test]
    fn fast_tiles_cover_every_voxel_once_or_more() {
        let block = VolumeBlock::paper(None).unwrap();
        for n in [1, 4, 5, 6, 13, 64] {
            let shape = [n, 3, 7];
            let origins = block_plan(shape, &block, VolumeMode::Fast);
            let mut covered = vec![false; n * 3 * 7];
            for origin in &origins {
                for i in fast_kept(&block, 0) {
                    for j in fast_kept(&block, 1) {
                        for k in fast_kept(&block, 2) {
                            let v = [
                                origin[0] + i as isize,
                                origin[1] + j as isize,
                                origin[2] + k as isize,
                            ];
                            if (0..n as isize).contains(&v[0])
                                && (0..3).contains(&v[1])
                                && (0..7).contains(&v[2])
                            {
                                covered[(v[2] as usize * 3 + v[1] as usize) * n + v[0] as usize] =
                                    true;
                            }
                        }
                    }
                }
            }
            assert!(covered.iter().all(|&c| c), "side {n}");
        }
        assert_eq!(
            block_plan([13, 12, 10], &block, VolumeMode::Parity).len(),
            13 * 12 * 10
        );
    }

    #[test]
    fn channel_offsets_put_the_centre_between_pre_and_post() {
        let window = Window::new(2, 2, 0).unwrap();
        assert_eq!(channel_offsets(&window), vec![-2, -1, 0, 1, 2]);
    }
}
