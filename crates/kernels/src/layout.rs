//! Where each value of an activation lives: `[channel block][position][LANES]`, positions
//! running over the samples of a batch, each a `depth × height × width` grid padded with a
//! zero halo. A convolution computes every position between a batch's first and last
//! interior ones as if all were interior, then puts the halo back to zero: tap offsets are
//! then the same constants everywhere and padding costs nothing to read.

use crate::LANES;

/// Positions left after the last sample so that a tile of a kernel may run past the end.
pub const TAIL_POSITIONS: usize = 64;

/// The padded grid of one pyramid level for `capacity` samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Interior sides `[depth, height, width]`.
    pub size: [usize; 3],
    /// Halo before the interior per axis.
    pub before: [usize; 3],
    /// Halo after the interior per axis.
    pub after: [usize; 3],
    /// Samples the grid holds.
    pub capacity: usize,
}

impl Geometry {
    /// Padded sides.
    pub fn padded(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.size[a] + self.before[a] + self.after[a])
    }

    /// Position strides of the three axes.
    pub fn strides(&self) -> [usize; 3] {
        let p = self.padded();
        [p[1] * p[2], p[2], 1]
    }

    /// Positions of one padded sample.
    pub fn sample_positions(&self) -> usize {
        self.padded().iter().product()
    }

    /// Positions per channel block, tail included.
    pub fn block_positions(&self) -> usize {
        self.capacity * self.sample_positions() + TAIL_POSITIONS
    }

    /// Floats of one channel block.
    pub fn block_len(&self) -> usize {
        self.block_positions() * LANES
    }

    /// Position of interior voxel `(z, y, x)` of sample `n`.
    pub fn position(&self, n: usize, [z, y, x]: [usize; 3]) -> usize {
        let s = self.strides();
        n * self.sample_positions()
            + (z + self.before[0]) * s[0]
            + (y + self.before[1]) * s[1]
            + (x + self.before[2])
    }

    /// The positions a layer computes for `samples` samples: from the first interior one to
    /// one past the last.
    pub fn computed(&self, samples: usize) -> std::ops::Range<usize> {
        if samples == 0 || self.size.contains(&0) {
            return 0..0;
        }
        let last = self.size.map(|side| side - 1);
        self.position(0, [0; 3])..self.position(samples - 1, last) + 1
    }

    /// Runs `(start, len)` of interior positions along the width axis, for `samples`.
    pub fn interior_rows(&self, samples: usize) -> impl Iterator<Item = usize> + '_ {
        let [d, h, _] = self.size;
        (0..samples).flat_map(move |n| {
            (0..d).flat_map(move |z| (0..h).map(move |y| self.position(n, [z, y, 0])))
        })
    }

    /// Runs `(start, end)` of halo positions inside `range` (what a layer must zero again
    /// after computing `range`).
    pub fn halo_runs(&self, samples: usize, range: std::ops::Range<usize>) -> Vec<(usize, usize)> {
        let width = self.size[2];
        let mut runs = Vec::new();
        let mut cursor = range.start;
        for row in self.interior_rows(samples) {
            if row > cursor {
                runs.push((cursor, row.min(range.end)));
            }
            cursor = cursor.max(row + width);
        }
        if cursor < range.end {
            runs.push((cursor, range.end));
        }
        runs.retain(|(start, end)| start < end);
        runs
    }
}

/// The halo a level needs for kernels of these sides: Keras `same` puts `(k-1)/2` before.
pub fn halo_for(kernels: &[[usize; 3]]) -> ([usize; 3], [usize; 3]) {
    let mut before = [0; 3];
    let mut after = [0; 3];
    for kernel in kernels {
        for axis in 0..3 {
            let b = (kernel[axis] - 1) / 2;
            before[axis] = before[axis].max(b);
            after[axis] = after[axis].max(kernel[axis] - 1 - b);
        }
    }
    (before, after)
}

/// Channel blocks holding `channels` channels.
pub fn blocks(channels: usize) -> usize {
    channels.div_ceil(LANES)
}
