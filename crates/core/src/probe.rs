//! Probe layouts: how the channels of an extracellular recording become the 2-D frames the
//! network sees, and back.
//!
//! The original feeds Neuropixels 1.0 data as a `384 × 2` checkerboard: channel `2r` at
//! `(2r, 0)`, channel `2r+1` at `(2r+1, 1)`, the other sites empty (zero after
//! normalisation). We build that grid from channel positions instead of assuming the channel
//! order: channels are ranked by depth (shank, then `y`, ties in channel order) and rank `k`
//! goes to `(k, k mod 2)`. For Neuropixels 1.0 and 2.0, whose channels are numbered by depth,
//! this is exactly the original's layout; a probe without positions is taken in channel
//! order; a probe with fewer rows than the network's pooling needs is padded with empty rows.
//!
//! [`GridRecording`] presents an [`EphysReader`] as a [`MovieReader`] of grid frames (one per
//! time sample) with the empty sites masked, so the whole two-photon engine (windows,
//! normalisation, training, inference) runs unchanged on ephys. [`GridWriter`] takes predicted
//! grid frames and writes the channel sites in the input's own file layout.

use std::path::Path;

use deepinterp_io::ephys::{ChannelPosition, EphysReader, EphysWriter};
use deepinterp_io::{IoError, MovieInfo, MovieReader, MovieWriter, WriteSummary};

/// Columns of the probe grid (the original's checkerboard has two).
pub const GRID_COLUMNS: usize = 2;

/// Where each channel sits on the network's `rows × 2` grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeGrid {
    rows: usize,
    /// Flat grid index (`row * 2 + column`) of each neural channel, in channel order.
    sites: Vec<usize>,
    /// Grid places that hold a channel.
    mask: Vec<bool>,
}

impl ProbeGrid {
    /// The checkerboard layout of `channels` channels ranked by depth (`positions`, when
    /// known), with the row count rounded up to a multiple of `row_multiple`.
    pub fn from_positions(
        channels: usize,
        positions: Option<&[ChannelPosition]>,
        row_multiple: usize,
    ) -> Self {
        let mut order: Vec<usize> = (0..channels).collect();
        if let Some(positions) = positions.filter(|p| p.len() == channels) {
            order.sort_by(|&a, &b| {
                let (pa, pb) = (positions[a], positions[b]);
                pa.shank
                    .cmp(&pb.shank)
                    .then(pa.y_um.total_cmp(&pb.y_um))
                    .then(a.cmp(&b))
            });
        }
        let rows = channels.max(1).next_multiple_of(row_multiple.max(1));
        let mut sites = vec![0; channels];
        let mut mask = vec![false; rows * GRID_COLUMNS];
        for (rank, &channel) in order.iter().enumerate() {
            let site = rank * GRID_COLUMNS + rank % GRID_COLUMNS;
            sites[channel] = site;
            mask[site] = true;
        }
        Self { rows, sites, mask }
    }

    /// Grid rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Grid columns.
    pub fn columns(&self) -> usize {
        GRID_COLUMNS
    }

    /// Neural channels placed on the grid.
    pub fn channels(&self) -> usize {
        self.sites.len()
    }

    /// `(row, column)` of a channel.
    pub fn site(&self, channel: usize) -> (usize, usize) {
        let site = self.sites[channel];
        (site / GRID_COLUMNS, site % GRID_COLUMNS)
    }

    /// Grid places that hold a channel, row-major.
    pub fn mask(&self) -> &[bool] {
        &self.mask
    }

    /// Places sample-major channel values `[count][channels]` on `count` grids (empty sites 0).
    pub fn scatter(&self, samples: &[f32], count: usize, grids: &mut [f32]) {
        let (channels, plane) = (self.channels(), self.rows * GRID_COLUMNS);
        grids[..count * plane].fill(0.0);
        for (sample, grid) in samples
            .chunks_exact(channels)
            .zip(grids.chunks_exact_mut(plane))
            .take(count)
        {
            for (&value, &site) in sample.iter().zip(&self.sites) {
                grid[site] = value;
            }
        }
    }

    /// Reads the channel sites of `count` grids into sample-major `[count][channels]`.
    pub fn gather(&self, grids: &[f32], count: usize, samples: &mut [f32]) {
        let (channels, plane) = (self.channels(), self.rows * GRID_COLUMNS);
        for (grid, sample) in grids
            .chunks_exact(plane)
            .zip(samples.chunks_exact_mut(channels))
            .take(count)
        {
            for (value, &site) in sample.iter_mut().zip(&self.sites) {
                *value = grid[site];
            }
        }
    }
}

/// An extracellular recording seen as a movie of probe-grid frames, one per time sample.
pub struct GridRecording {
    reader: Box<dyn EphysReader>,
    grid: ProbeGrid,
    info: MovieInfo,
    samples: Vec<f32>,
}

impl GridRecording {
    /// Lays `reader`'s neural channels out on a grid whose rows are a multiple of
    /// `row_multiple` (the network's pooling along the probe).
    pub fn new(reader: Box<dyn EphysReader>, row_multiple: usize) -> Self {
        let ephys = reader.info();
        let grid = ProbeGrid::from_positions(
            ephys.neural_channels.len(),
            ephys.positions.as_deref(),
            row_multiple,
        );
        let info = MovieInfo {
            frames: ephys.samples,
            height: grid.rows(),
            width: grid.columns(),
            dtype: ephys.dtype,
        };
        Self {
            reader,
            grid,
            info,
            samples: Vec::new(),
        }
    }

    /// The layout in use.
    pub fn grid(&self) -> &ProbeGrid {
        &self.grid
    }

    /// The underlying recording.
    pub fn ephys(&self) -> &dyn EphysReader {
        self.reader.as_ref()
    }
}

impl MovieReader for GridRecording {
    fn info(&self) -> &MovieInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        self.reader.path()
    }

    fn read_frames(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        let channels = self.grid.channels();
        if out.len() != count * self.info.frame_len() {
            return Err(IoError::InvalidRequest {
                path: self.reader.path().to_path_buf(),
                detail: format!(
                    "buffer of {} values for {count} grid frames of {}",
                    out.len(),
                    self.info.frame_len()
                ),
            });
        }
        self.samples.resize(count * channels, 0.0);
        self.reader.read_samples(start, count, &mut self.samples)?;
        if let Some(position) = self.samples.iter().position(|v| !v.is_finite()) {
            return Err(IoError::NonFinite {
                path: self.reader.path().to_path_buf(),
                frame: start + position / channels.max(1),
                value: self.samples[position],
            });
        }
        self.grid.scatter(&self.samples, count, out);
        Ok(())
    }

    fn site_mask(&self) -> Option<&[bool]> {
        Some(self.grid.mask())
    }
}

/// Writes predicted grid frames as channel samples in the layout of the input recording.
pub struct GridWriter {
    writer: Box<dyn EphysWriter>,
    grid: ProbeGrid,
    samples: Vec<f32>,
}

impl GridWriter {
    /// Wraps an ephys writer; `grid` must be the layout the frames were predicted on.
    pub fn new(writer: Box<dyn EphysWriter>, grid: ProbeGrid) -> Self {
        Self {
            writer,
            grid,
            samples: Vec::new(),
        }
    }
}

impl MovieWriter for GridWriter {
    fn write_frames(&mut self, frames: &[f32], count: usize) -> Result<(), IoError> {
        self.samples.resize(count * self.grid.channels(), 0.0);
        self.grid.gather(frames, count, &mut self.samples);
        self.writer.write_samples(&self.samples, count)
    }

    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError> {
        self.writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np1(channels: usize) -> Vec<ChannelPosition> {
        (0..channels)
            .map(|c| ChannelPosition {
                x_um: [43.0, 11.0, 59.0, 27.0][c % 4],
                y_um: 20.0 * (c / 2) as f32,
                shank: 0,
            })
            .collect()
    }

    #[test]
    fn neuropixels_1_gets_the_original_checkerboard() {
        let grid = ProbeGrid::from_positions(384, Some(&np1(384)), 16);
        assert_eq!(grid.rows(), 384);
        for channel in 0..384 {
            assert_eq!(
                grid.site(channel),
                (channel, channel % 2),
                "channel {channel}"
            );
        }
        assert_eq!(grid.mask().iter().filter(|&&m| m).count(), 384);
        // Without positions the channel order is used: the same layout.
        assert_eq!(grid, ProbeGrid::from_positions(384, None, 16));
    }

    #[test]
    fn neuropixels_2_four_shanks_are_laid_out_shank_by_shank() {
        // NP2.0 four-shank: two aligned columns (x 0 / 32 µm) at 15 µm rows; channels listed
        // shank by shank but, as on a real probe, not in depth order within a shank.
        let mut positions = Vec::new();
        for shank in 0..4u32 {
            for c in (0..96).rev() {
                positions.push(ChannelPosition {
                    x_um: 250.0 * shank as f32 + 32.0 * (c % 2) as f32,
                    y_um: 15.0 * (c / 2) as f32,
                    shank,
                });
            }
        }
        let grid = ProbeGrid::from_positions(384, Some(&positions), 16);
        assert_eq!(grid.rows(), 384);
        // Shank 1's shallowest channel follows shank 0's deepest one.
        let shallowest_of_shank_1 = (96..192)
            .min_by(|&a, &b| {
                positions[a]
                    .y_um
                    .total_cmp(&positions[b].y_um)
                    .then(a.cmp(&b))
            })
            .unwrap();
        assert_eq!(grid.site(shallowest_of_shank_1), (96, 0));
        // Every row holds exactly one channel, alternating columns: the checkerboard.
        let mut rows = vec![0; 384];
        for channel in 0..384 {
            let (row, column) = grid.site(channel);
            assert_eq!(column, row % 2);
            rows[row] += 1;
        }
        assert!(rows.iter().all(|&n| n == 1));
    }

    #[test]
    fn channels_are_ranked_by_depth_and_small_probes_padded() {
        // A 4-channel probe numbered top to bottom.
        let positions: Vec<ChannelPosition> = (0..4)
            .map(|c| ChannelPosition {
                x_um: 0.0,
                y_um: 100.0 - 25.0 * c as f32,
                shank: 0,
            })
            .collect();
        let grid = ProbeGrid::from_positions(4, Some(&positions), 16);
        assert_eq!(grid.rows(), 16);
        assert_eq!(grid.site(3), (0, 0));
        assert_eq!(grid.site(0), (3, 1));
        let samples = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut grids = vec![f32::NAN; 2 * 32];
        grid.scatter(&samples, 2, &mut grids);
        assert_eq!(grids[0], 4.0);
        assert_eq!(grids[32 + 7], 5.0);
        assert_eq!(grids.iter().filter(|v| **v != 0.0).count(), 8);
        let mut back = vec![0.0; 8];
        grid.gather(&grids, 2, &mut back);
        assert_eq!(back, samples);
    }
}
