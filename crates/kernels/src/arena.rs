//! Where a U-Net's activations live: one buffer, each activation a range of it. For
//! inference, activations whose lives do not overlap share memory (the input is dead once
//! the first convolution has read it, a pooled map once the next level's convolution has),
//! so a pass holds about what is live at its busiest step instead of every activation at
//! once. For training, every activation keeps its own range: the backward pass reads them
//! all.
//!
//! Shared ranges hold another activation's values when a producer starts writing, and
//! producers write only interior positions: [`Arena::clear_halo`] zeroes the halo (and the
//! tail) of such a range first, which is what every kernel reading it expects.

use std::ops::Range;

use crate::LANES;
use crate::layout::Geometry;

/// One activation of a forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// The packed network input (level 0).
    Input,
    /// Level `l`'s decoder input `[upsampled blocks | encoder output blocks]`.
    Concat(usize),
    /// Level `l`'s encoder output pooled (at level `l + 1`).
    Pooled(usize),
    /// The bottleneck convolution's output.
    Bottleneck,
    /// Level `l`'s decoder output.
    Decoded(usize),
    /// The last convolution's output (one block).
    Last,
}

/// One activation's size and the steps of the pass from its first write to its last read.
pub(crate) struct Need {
    pub act: Act,
    pub floats: usize,
    pub live: Range<usize>,
}

/// The activations of one forward pass in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    floats: Vec<f32>,
    depth: usize,
    /// Per activation (see [`Arena::index`]): its range of `floats`.
    places: Vec<Range<usize>>,
    /// Per activation: whether another activation uses some of its range.
    shared: Vec<bool>,
}

impl Arena {
    /// Places `needs` (one per activation of a network of `depth` levels) so that no two
    /// live at the same step overlap, the largest first, each at the lowest offset free
    /// during its life.
    pub fn new(depth: usize, needs: &[Need]) -> Self {
        let count = 3 * depth + 3;
        let mut places = vec![0..0; count];
        let mut order: Vec<&Need> = needs.iter().filter(|n| n.floats > 0).collect();
        order.sort_by_key(|need| std::cmp::Reverse(need.floats));
        let mut placed: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        for need in order {
            // Whole cache lines, so that every range starts aligned like the buffer.
            let floats = need.floats.next_multiple_of(LANES);
            let overlaps_in_time =
                |live: &Range<usize>| live.start < need.live.end && need.live.start < live.end;
            let mut candidates: Vec<usize> = std::iter::once(0)
                .chain(
                    placed
                        .iter()
                        .filter(|(_, live)| overlaps_in_time(live))
                        .map(|(range, _)| range.end),
                )
                .collect();
            candidates.sort_unstable();
            let start = candidates
                .into_iter()
                .find(|&start| {
                    placed.iter().all(|(range, live)| {
                        !overlaps_in_time(live)
                            || start + floats <= range.start
                            || range.end <= start
                    })
                })
                .expect("the end of the last placed range is always free");
            let range = start..start + floats;
            places[Self::index_in(depth, need.act)] = range.clone();
            placed.push((range, need.live.clone()));
        }
        let shared = places
            .iter()
            .enumerate()
            .map(|(i, a)| {
                !a.is_empty()
                    && places
                        .iter()
                        .enumerate()
                        .any(|(j, b)| i != j && a.start < b.end && b.start < a.end)
            })
            .collect();
        let total = places.iter().map(|r| r.end).max().unwrap_or(0);
        Self {
            floats: vec![0f32; total],
            depth,
            places,
            shared,
        }
    }

    fn index_in(depth: usize, act: Act) -> usize {
        match act {
            Act::Input => 0,
            Act::Concat(level) => 1 + level,
            Act::Pooled(level) => 1 + depth + level,
            Act::Bottleneck => 1 + 2 * depth,
            Act::Decoded(level) => 2 + 2 * depth + level,
            Act::Last => 2 + 3 * depth,
        }
    }

    fn place(&self, act: Act) -> Range<usize> {
        self.places[Self::index_in(self.depth, act)].clone()
    }

    /// An activation's values.
    pub fn get(&self, act: Act) -> &[f32] {
        &self.floats[self.place(act)]
    }

    /// An activation to write.
    pub fn get_mut(&mut self, act: Act) -> &mut [f32] {
        let place = self.place(act);
        &mut self.floats[place]
    }

    /// One activation to read and another to write; they must not share memory.
    pub fn read_write(&mut self, read: Act, write: Act) -> (&[f32], &mut [f32]) {
        let (r, w) = (self.place(read), self.place(write));
        if r.end <= w.start {
            let (low, high) = self.floats.split_at_mut(w.start);
            (&low[r], &mut high[..w.len()])
        } else {
            assert!(w.end <= r.start, "{read:?} and {write:?} share memory");
            let (low, high) = self.floats.split_at_mut(r.start);
            (&high[..r.len()], &mut low[w])
        }
    }

    /// Zeroes the halo and tail positions of `act`'s `blocks` blocks laid out by
    /// `geometry` if its range is shared (else they are still zero from allocation).
    pub fn clear_halo(&mut self, act: Act, geometry: &Geometry, samples: usize, blocks: usize) {
        if !self.shared[Self::index_in(self.depth, act)] {
            return;
        }
        let block_len = geometry.block_len();
        let runs = geometry.halo_runs(samples, 0..geometry.block_positions());
        let values = self.get_mut(act);
        for block in 0..blocks {
            for &(start, end) in &runs {
                values[block * block_len + start * LANES..block * block_len + end * LANES]
                    .fill(0.0);
            }
        }
    }

    /// Floats held.
    pub fn len(&self) -> usize {
        self.floats.len()
    }
}
