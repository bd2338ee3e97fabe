//! Winograd F(4×4, 3×3) for planar 3×3 stride-1 convolutions (Lavin & Gray 2016): the
//! fast path [`crate::conv::PackedConv`] takes where [`suits`] says so, with the same contract
//! (channel blocks laid out by a [`Geometry`], bias, optional ReLU, halo left zero, Keras
//! `same` padding, slotted input channels).
//!
//! Each 4×4 block of outputs ("tile") is computed from the 6×6 inputs around it as
//! `Aᵀ [Σ_in (G g Gᵀ) ⊙ (Bᵀ d B)] A`: 36 products per tile and channel pair instead of 144.
//! The weights are transformed (in f64) and packed once. A run walks the tiles in groups
//! small enough for the group's transformed inputs and products to stay in L2: it transforms
//! the group's inputs, does the 36 element-wise products as 36 GEMMs (tiles × in-channels ×
//! out-channels) with the direct convolution's register-blocked micro-kernel (one tap, the
//! tiles taking the place of positions), then transforms the products back, adding the bias
//! and the ReLU. The transforms are vectorised over the 16 lanes of a channel block.
//!
//! Interpolation points: 0, 1, −1, ½, −2 and ∞. Against the usual 0, ±1, ±2 they lower the
//! error (Barabasz et al. 2020, "Error analysis and improving the accuracy of Winograd
//! convolution"), and with these points `Aᵀ` and `Bᵀ` hold only small dyadic fractions, so
//! the per-call transforms round only in their sums; the inexact thirds and fifteenths are
//! all in `G`, applied once in f64.

use std::sync::{Mutex, OnceLock};

use crate::LANES;
use crate::conv::{Group, TapOrder, TileArgs, pack_groups, padded_bias, run_tile, tile_shape};
use crate::dispatch::Isa;
use crate::layout::Geometry;
use crate::resample::pack_row;

/// Outputs per tile side, inputs per tile side, products per tile.
const M: usize = 4;
const N: usize = 6;
const XI: usize = N * N;

/// `Aᵀ`: products → outputs (rows: outputs; columns: points 0, 1, −1, ½, −2, ∞). Written
/// out in [`at`]; kept as the reference the tests check it against.
#[cfg_attr(not(test), allow(dead_code))]
const AT: [[f32; N]; M] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 0.5, -2.0, 0.0],
    [0.0, 1.0, 1.0, 0.25, 4.0, 0.0],
    [0.0, 1.0, -1.0, 0.125, -8.0, 1.0],
];

/// `G`: kernel → products, `G[j] = (1, a_j, a_j²) / Π_{l≠j} (a_j − a_l)`, the last row ∞.
const G: [[f64; 3]; N] = [
    [1.0, 0.0, 0.0],
    [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
    [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0],
    [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0],
    [1.0 / 15.0, -2.0 / 15.0, 4.0 / 15.0],
    [0.0, 0.0, 1.0],
];

/// `Bᵀ`: inputs → products; row `j` holds the coefficients of `Π_{l≠j} (x − a_l)`, the last
/// row those of `Π_l (x − a_l)`. Written out in [`bt`]; kept as its reference.
#[cfg_attr(not(test), allow(dead_code))]
const BT: [[f32; N]; N] = [
    [1.0, -1.5, -2.0, 1.5, 1.0, 0.0],
    [0.0, -1.0, 0.5, 2.5, 1.0, 0.0],
    [0.0, 1.0, -2.5, 0.5, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 0.5, -1.0, -0.5, 1.0, 0.0],
    [0.0, 1.0, -1.5, -2.0, 1.5, 1.0],
];

/// Bytes of transformed inputs and products a tile group may hold: half of this CPU
/// family's L2, so that everything a group makes stays there until it is used.
const GROUP_BYTES: usize = 1 << 20;

/// Transformed weights small enough to stay in L2 from one group to the next.
const RESIDENT_WEIGHT_BYTES: usize = 1 << 20;

/// Bytes of L2 one product's GEMM may use: its transformed inputs and products for the group
/// and one output group's weights (2 MiB L2, some left for the rest).
const PRODUCT_BYTES: usize = 3 << 19;

/// Tiles per group a layer with weights too large to stay in L2 aims for: each group
/// streams all of them from L3 once, then reuses each loaded slice for `tiles / 14`
/// micro-kernel calls from L2.
const STREAMING_GROUP_TILES: usize = 112;

/// Tiles per micro-kernel call for a two-block group (the widest tile shape).
const TILE_ALIGN: usize = 14;

/// Tiles a micro-kernel call may run past the end of a group (the tallest tile shape).
const TILE_OVERRUN: usize = 24;

/// Whether Winograd may be chosen: `DEEPINTERP_WINOGRAD=0` turns it off (read once).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("DEEPINTERP_WINOGRAD").ok().as_deref() != Some("0"))
}

/// Whether a convolution is worth computing this way: planar 3×3 on AVX-512 (elsewhere the
/// direct kernels are slower per multiply and no crossover was measured), at least 16
/// channels on both sides. Measured on one thread (bench `conv`, vectorised transforms):
/// 16→16 ties at 64² and wins by a fifth at 512²; 60→16 and 48→16 at 512² are 1.5× faster,
/// 64→64 and wider about 2×.
pub fn suits(isa: Isa, kernel: [usize; 3], in_channels: usize, out_channels: usize) -> bool {
    enabled() && isa == Isa::Avx512 && kernel == [1, 3, 3] && in_channels.min(out_channels) >= 16
}

/// A planar 3×3 convolution's weights transformed and packed for Winograd F(4×4, 3×3).
#[derive(Clone, Debug)]
pub struct Winograd {
    in_channels: usize,
    /// Whether input channel `i` sits in slot `i` (what [`Winograd::run_from_planes`] packs).
    contiguous_input: bool,
    in_blocks: usize,
    out_blocks: usize,
    relu: bool,
    isa: Isa,
    groups: Vec<Group>,
    /// `[out_blocks × LANES]`, zero past the real output channels.
    bias: Vec<f32>,
    /// As many zeros: the GEMMs start from zero, the bias is added after the transform back.
    zeros: Vec<f32>,
}

impl Winograd {
    /// Transforms and packs `weight` (`[out][in][1][3][3]`) and `bias`; input channel `i` is
    /// read from channel slot `in_slots[i]` of the input blocks.
    pub fn new(
        isa: Isa,
        weight: &[f32],
        bias: &[f32],
        out_channels: usize,
        in_slots: &[usize],
        in_blocks: usize,
        relu: bool,
    ) -> Self {
        let in_channels = in_slots.len();
        let out_blocks = out_channels.div_ceil(LANES);
        // U[o][i][ξ] = (G g Gᵀ)[a][b], ξ = 6a + b.
        let mut transformed = vec![0f32; out_channels * in_channels * XI];
        for o in 0..out_channels {
            for i in 0..in_channels {
                let g = &weight[(o * in_channels + i) * 9..][..9];
                let mut gg = [[0f64; 3]; N];
                for (a, row) in gg.iter_mut().enumerate() {
                    for (l, value) in row.iter_mut().enumerate() {
                        *value = (0..3).map(|k| G[a][k] * g[k * 3 + l] as f64).sum();
                    }
                }
                let u = &mut transformed[(o * in_channels + i) * XI..][..XI];
                for a in 0..N {
                    for b in 0..N {
                        u[a * N + b] = (0..3).map(|l| gg[a][l] * G[b][l]).sum::<f64>() as f32;
                    }
                }
            }
        }
        let groups = pack_groups(
            isa,
            &transformed,
            XI,
            out_channels,
            in_slots,
            in_blocks,
            TapOrder::OutsideBlocks,
        );
        Self {
            in_channels,
            contiguous_input: in_slots.iter().enumerate().all(|(i, &slot)| i == slot),
            in_blocks,
            out_blocks,
            relu,
            isa,
            groups,
            bias: padded_bias(bias, out_channels),
            zeros: vec![0f32; out_blocks * LANES],
        }
    }

    /// Tiles per group for this layer's channel counts.
    fn group_tiles(&self) -> usize {
        let (cin, cout) = (self.in_blocks * LANES, self.out_blocks * LANES);
        // Everything the group makes in L2 (enough while the weights stay there too).
        let mut tiles = GROUP_BYTES / (XI * (cin + cout) * 4);
        if XI * cin * cout * 4 > RESIDENT_WEIGHT_BYTES {
            // Larger groups, as far as one product's GEMM still fits in L2.
            let fits = PRODUCT_BYTES.saturating_sub(cin * 2 * LANES * 4) / ((cin + cout) * 4);
            tiles = tiles.max(fits.min(STREAMING_GROUP_TILES));
        }
        tiles.max(TILE_ALIGN) / TILE_ALIGN * TILE_ALIGN
    }

    /// As [`crate::conv::PackedConv::run`].
    pub fn run(
        &self,
        geometry: &Geometry,
        samples: usize,
        input: &[f32],
        output: &mut [f32],
        threads: usize,
    ) {
        assert!(
            input.len() >= self.in_blocks * geometry.block_len(),
            "input too short"
        );
        self.run_from(geometry, samples, Source::Blocks(input), output, threads);
    }

    /// Whether [`Winograd::run_from_planes`] can compute this geometry: planar, a width
    /// that is a multiple of the tile (so that every tile reads its window straight) and
    /// halos of at least one position, with the input channels contiguous.
    pub fn reads_planes(&self, geometry: &Geometry) -> bool {
        self.contiguous_input
            && geometry.size[0] == 1
            && geometry.size[2].is_multiple_of(M)
            && geometry.before[1..].iter().all(|&b| b >= 1)
            && geometry.after[1..].iter().all(|&a| a >= 1)
    }

    /// As [`Winograd::run`], the input given as each sample's channel planes
    /// (`planes[n * in_channels + c]`, `height × width` each) instead of channel blocks.
    /// Each thread packs the rows its tile group reads into a band of channel blocks a few
    /// rows tall, which stays in cache until the group's transform reads it: the whole
    /// input is never packed (for a frame network, the largest activation it holds).
    /// Needs [`Winograd::reads_planes`].
    pub fn run_from_planes(
        &self,
        geometry: &Geometry,
        samples: usize,
        planes: &[&[f32]],
        output: &mut [f32],
        threads: usize,
    ) {
        assert!(
            self.reads_planes(geometry),
            "a geometry run_from_planes cannot read"
        );
        let plane = geometry.size.iter().product::<usize>();
        assert!(
            planes.len() >= samples * self.in_channels && planes.iter().all(|p| p.len() >= plane),
            "planes too short"
        );
        self.run_from(geometry, samples, Source::Planes(planes), output, threads);
    }

    fn run_from(
        &self,
        geometry: &Geometry,
        samples: usize,
        source: Source<'_>,
        output: &mut [f32],
        threads: usize,
    ) {
        let block_len = geometry.block_len();
        assert!(
            output.len() >= self.out_blocks * block_len,
            "output too short"
        );
        let range = geometry.computed(samples);
        if range.is_empty() {
            return;
        }
        let [depth, height, width] = geometry.size;
        let plan = Plan {
            geometry,
            tiles_y: height.div_ceil(M),
            tiles_x: width.div_ceil(M),
            block_len,
        };
        let per_plane = plan.tiles_y * plan.tiles_x;
        let total = samples * depth * per_plane;
        // Every thread gets at least one group. Reading channel blocks, all groups of a
        // thread but its last are full; reading planes, groups also end with a tile row.
        let threads = threads.clamp(1, total.div_ceil(TILE_ALIGN));
        let per_thread = total.div_ceil(threads).next_multiple_of(TILE_ALIGN);
        let group = self.group_tiles().min(per_thread);
        let shared = Shared {
            input: match source {
                Source::Blocks(input) => input.as_ptr(),
                Source::Planes(_) => std::ptr::null(),
            },
            output: output.as_mut_ptr(),
        };
        let work = |tiles: std::ops::Range<usize>| {
            let stride = group + TILE_OVERRUN;
            let mut scratch = Scratch::take(
                stride,
                XI * self.in_blocks * stride * LANES,
                XI * self.out_blocks * stride * LANES,
            );
            let mut band = match source {
                Source::Blocks(_) => None,
                Source::Planes(planes) => Some(Band::new(self, &plan, group, planes)),
            };
            let mut first = tiles.start;
            while first < tiles.end {
                let mut count = group.min(tiles.end - first);
                if band.is_some() {
                    // Groups end where a tile row (or, for narrow planes, a run of whole tile
                    // rows) ends, so that consecutive groups read the same packed rows.
                    let within = first % per_plane;
                    let rows = (group / plan.tiles_x).max(1);
                    let row_block_end = (within / plan.tiles_x + rows) * plan.tiles_x;
                    count = count.min(row_block_end.min(per_plane) - within);
                }
                // SAFETY: `shared` points into the input and `output`, sized above; each
                // thread writes only the interior positions of its own tiles.
                unsafe {
                    self.run_group(&plan, &shared, band.as_mut(), &mut scratch, first, count)
                };
                first += count;
            }
            scratch.give_back();
        };
        if threads == 1 {
            work(0..total);
        } else {
            std::thread::scope(|scope| {
                let work = &work;
                for t in 0..threads {
                    let start = (t * per_thread).min(total);
                    let end = (start + per_thread).min(total);
                    if start < end {
                        scope.spawn(move || work(start..end));
                    }
                }
            });
        }
        // Only interior positions were written; the halo between them must read as zero.
        for block in 0..self.out_blocks {
            let base = block * block_len;
            for (start, end) in geometry.halo_runs(samples, range.clone()) {
                output[base + start * LANES..base + end * LANES].fill(0.0);
            }
        }
    }

    /// Transforms, multiplies and transforms back tiles `first..first + count` (with a
    /// band: tiles of one plane, whose input rows it packs first).
    ///
    /// # Safety
    /// `shared` must point to blocks laid out by `plan.geometry` (`in_blocks` of input,
    /// unless `band` holds the input, and `out_blocks` of output) that no other thread
    /// writes at these tiles' positions.
    unsafe fn run_group(
        &self,
        plan: &Plan<'_>,
        shared: &Shared,
        band: Option<&mut Band<'_>>,
        scratch: &mut Scratch,
        first: usize,
        count: usize,
    ) {
        let mut tiles = std::mem::take(&mut scratch.tiles);
        tiles.clear();
        tiles.extend((first..first + count).map(|t| plan.tile(t)));
        match band {
            None => unsafe {
                transform_inputs(
                    self.isa,
                    plan,
                    &tiles,
                    shared.input,
                    self.in_blocks,
                    scratch,
                )
            },
            Some(band) => {
                let band_tiles = band.pack(self, plan, &tiles);
                let band_plan = Plan {
                    geometry: &band.geometry,
                    tiles_y: band.geometry.size[1] / M,
                    tiles_x: plan.tiles_x,
                    block_len: band.geometry.block_len(),
                };
                // SAFETY: the band holds `in_blocks` blocks laid out by its geometry.
                unsafe {
                    transform_inputs(
                        self.isa,
                        &band_plan,
                        &band_tiles,
                        band.blocks.as_ptr(),
                        self.in_blocks,
                        scratch,
                    )
                };
                band.band_tiles = band_tiles;
            }
        }
        let stride = scratch.stride;
        let taps = [0isize];
        let transformed = scratch.transformed.as_ptr();
        let products = scratch.products.as_mut_ptr();
        for xi in 0..XI {
            for group in &self.groups {
                let (_, mr) = tile_shape(self.isa, self.out_blocks - group.first_block);
                let per_product = self.in_blocks * LANES * group.width * LANES;
                // SAFETY (offsets): inside the scratch and the packed weights; a call may run
                // up to `mr - 1 < TILE_OVERRUN` tiles past `count`, into the stride's slack.
                let args = TileArgs {
                    input: unsafe { transformed.add(xi * self.in_blocks * stride * LANES) },
                    in_stride: stride * LANES,
                    in_blocks: self.in_blocks,
                    taps: &taps,
                    weights: unsafe { group.weights.as_ptr().add(xi * per_product) },
                    output: unsafe {
                        products.add((xi * self.out_blocks + group.first_block) * stride * LANES)
                    },
                    out_stride: stride * LANES,
                    bias: self.zeros.as_ptr(),
                    accumulate: false,
                    relu: false,
                };
                let mut p = 0;
                while p < count {
                    unsafe { run_tile(self.isa, group.width, mr, &args, p) };
                    p += mr;
                }
            }
        }
        unsafe {
            transform_outputs(
                self.isa,
                plan,
                &tiles,
                scratch,
                self.out_blocks,
                &self.bias,
                self.relu,
                shared.output,
            );
        }
        scratch.tiles = tiles;
    }
}

/// Raw pointers shared by the threads of one convolution, which write disjoint tiles.
struct Shared {
    input: *const f32,
    output: *mut f32,
}
// SAFETY: threads read `input` and write the positions of disjoint tiles of `output`.
unsafe impl Sync for Shared {}

/// What a run reads: channel blocks laid out by its geometry, or each sample's channel planes.
#[derive(Clone, Copy)]
enum Source<'a> {
    Blocks(&'a [f32]),
    Planes(&'a [&'a [f32]]),
}

/// One thread's band: the input rows a tile group reads, packed into channel blocks. Its
/// interior holds whole tile rows; the halo rows above and below hold the plane's rows
/// there (zero past the plane's edges); the halo columns stay zero.
struct Band<'a> {
    geometry: Geometry,
    blocks: Vec<f32>,
    planes: &'a [&'a [f32]],
    band_tiles: Vec<TileAt>,
    /// The sample and first tile row whose rows the band holds, and how many tile rows.
    held: Option<(usize, usize, usize)>,
}

impl<'a> Band<'a> {
    fn new(conv: &Winograd, plan: &Plan<'_>, group: usize, planes: &'a [&'a [f32]]) -> Self {
        // A group of `group` tiles inside one plane touches at most this many tile rows.
        let tile_rows = group.div_ceil(plan.tiles_x) + 1;
        let geometry = Geometry {
            size: [1, tile_rows * M, plan.geometry.size[2]],
            before: [0, 1, 1],
            after: [0, 1, 1],
            capacity: 1,
        };
        Self {
            blocks: vec![0f32; conv.in_blocks * geometry.block_len()],
            geometry,
            planes,
            band_tiles: Vec::new(),
            held: None,
        }
    }

    /// Packs the rows `tiles` (of one plane, in order) read; returns the tiles as the band
    /// holds them.
    fn pack(&mut self, conv: &Winograd, plan: &Plan<'_>, tiles: &[TileAt]) -> Vec<TileAt> {
        let [_, height, width] = plan.geometry.size;
        let (first, last) = (tiles[0], tiles[tiles.len() - 1]);
        let sample = first.origin / plan.geometry.sample_positions();
        let channels = conv.in_channels;
        let planes = &self.planes[sample * channels..][..channels];
        let rows = last.y + M - first.y;
        assert!(
            rows <= self.geometry.size[1],
            "a group taller than its band"
        );
        let top = self.geometry.position(0, [0, 0, 0]);
        // The rows the band already holds serve a group inside them: a band is packed once
        // per tile row (or run of tile rows), whatever the number of groups reading it.
        let (tile_row, tile_rows) = (first.y / M, rows / M);
        let origin = match self.held {
            Some((held_sample, held_row, held_rows))
                if held_sample == sample
                    && held_row <= tile_row
                    && tile_row + tile_rows <= held_row + held_rows =>
            {
                (tile_row - held_row) * M
            }
            _ => {
                self.pack_rows(conv, planes, first.y, rows, height, width);
                self.held = Some((sample, tile_row, tile_rows));
                0
            }
        };
        let mut band_tiles = std::mem::take(&mut self.band_tiles);
        band_tiles.clear();
        band_tiles.extend(tiles.iter().map(|tile| TileAt {
            origin: top,
            y: tile.y - first.y + origin,
            x: tile.x,
        }));
        band_tiles
    }

    /// Packs plane rows `y0 − 1..=y0 + rows` into band rows `−1..=rows` (zero past the
    /// plane's edges).
    fn pack_rows(
        &mut self,
        conv: &Winograd,
        planes: &[&[f32]],
        y0: usize,
        rows: usize,
        height: usize,
        width: usize,
    ) {
        let block_len = self.geometry.block_len();
        let row_stride = self.geometry.strides()[1];
        let top = self.geometry.position(0, [0, 0, 0]);
        for r in 0..rows + 2 {
            let at = (top + r * row_stride - row_stride) * LANES;
            match (y0 + r).checked_sub(1).filter(|&y| y < height) {
                Some(y) => pack_row(
                    conv.isa,
                    planes,
                    y * width,
                    width,
                    &mut self.blocks,
                    block_len,
                    at,
                ),
                None => {
                    for block in 0..conv.in_blocks {
                        self.blocks[block * block_len + at..][..width * LANES].fill(0.0);
                    }
                }
            }
        }
    }
}

/// One thread's transformed inputs `[product][input block][tile][lane]` and products
/// `[product][output block][tile][lane]`, `stride` tiles per block.
struct Scratch {
    stride: usize,
    transformed: Vec<f32>,
    products: Vec<f32>,
    tiles: Vec<TileAt>,
}

/// Scratch buffers of finished runs, kept for the next: a group's buffers are tens of MiB
/// for the widest layers, too costly to fault in and zero on every call.
static SCRATCH: Mutex<Vec<(Vec<f32>, Vec<f32>)>> = Mutex::new(Vec::new());

impl Scratch {
    /// Buffers of at least these lengths, holding stale values: a group writes every value
    /// it reads except in the slack tiles past its end, whose results it never stores.
    fn take(stride: usize, transformed: usize, products: usize) -> Self {
        let kept = SCRATCH.lock().map(|mut pool| pool.pop()).unwrap_or(None);
        let (mut a, mut b) = kept.unwrap_or_default();
        if a.len() < transformed {
            a.resize(transformed, 0.0);
        }
        if b.len() < products {
            b.resize(products, 0.0);
        }
        Self {
            stride,
            transformed: a,
            products: b,
            tiles: Vec::new(),
        }
    }

    fn give_back(self) {
        if let Ok(mut pool) = SCRATCH.lock() {
            pool.push((self.transformed, self.products));
        }
    }
}

/// How tiles map onto a geometry.
struct Plan<'a> {
    geometry: &'a Geometry,
    tiles_y: usize,
    tiles_x: usize,
    block_len: usize,
}

/// Where a tile is: its plane's interior origin (a position) and its interior corner.
#[derive(Clone, Copy)]
struct TileAt {
    origin: usize,
    y: usize,
    x: usize,
}

impl Plan<'_> {
    /// Tile `t`, counted over the samples' planes, rows of tiles, then tiles of a row.
    fn tile(&self, t: usize) -> TileAt {
        let depth = self.geometry.size[0];
        let per_plane = self.tiles_y * self.tiles_x;
        let (plane, within) = (t / per_plane, t % per_plane);
        TileAt {
            origin: self.geometry.position(plane / depth, [plane % depth, 0, 0]),
            y: within / self.tiles_x * M,
            x: within % self.tiles_x * M,
        }
    }
}

type Lanes = [f32; LANES];

/// `Bᵀ x` on six lane vectors, the rows of [`BT`] written out to share terms and fuse
/// multiply-adds (every coefficient is exact in f32).
#[inline(always)]
fn bt(x: &[Lanes; N]) -> [Lanes; N] {
    let mut out = [[0f32; LANES]; N];
    for l in 0..LANES {
        let [d0, d1, d2, d3, d4, d5] = [0, 1, 2, 3, 4, 5].map(|r| x[r][l]);
        let t = d4 - d2;
        let u = d3 - d1;
        out[0][l] = u.mul_add(1.5, t - d2 + d0);
        out[1][l] = d3.mul_add(2.5, d2.mul_add(0.5, d4) - d1);
        out[2][l] = d2.mul_add(-2.5, d3.mul_add(0.5, d4) + d1);
        out[3][l] = u.mul_add(2.0, t);
        out[4][l] = u.mul_add(-0.5, t);
        out[5][l] = t.mul_add(1.5, d3.mul_add(-2.0, d1 + d5));
    }
    out
}

/// `Aᵀ x` on six lane vectors, the rows of [`AT`] written out.
#[inline(always)]
fn at(x: &[Lanes; N]) -> [Lanes; M] {
    let mut out = [[0f32; LANES]; M];
    for l in 0..LANES {
        let [m0, m1, m2, m3, m4, m5] = [0, 1, 2, 3, 4, 5].map(|r| x[r][l]);
        let sum = m1 + m2;
        let difference = m1 - m2;
        out[0][l] = (m0 + sum) + (m3 + m4);
        out[1][l] = m4.mul_add(-2.0, m3.mul_add(0.5, difference));
        out[2][l] = m4.mul_add(4.0, m3.mul_add(0.25, sum));
        out[3][l] = m4.mul_add(-8.0, m3.mul_add(0.125, difference + m5));
    }
    out
}

/// # Safety
/// As [`Winograd::run_group`].
unsafe fn transform_inputs(
    isa: Isa,
    plan: &Plan<'_>,
    tiles: &[TileAt],
    input: *const f32,
    in_blocks: usize,
    scratch: &mut Scratch,
) {
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::transform_inputs_avx512(plan, tiles, input, in_blocks, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::transform_inputs_avx2(plan, tiles, input, in_blocks, scratch),
            _ => transform_inputs_any(plan, tiles, input, in_blocks, scratch),
        }
    }
}

/// `Bᵀ d B` for every tile and input block; inputs outside the interior read as zero (Keras
/// `same` padding, and a partial tile's overhang).
///
/// # Safety
/// As [`Winograd::run_group`].
#[inline(always)]
unsafe fn transform_inputs_any(
    plan: &Plan<'_>,
    tiles: &[TileAt],
    input: *const f32,
    in_blocks: usize,
    scratch: &mut Scratch,
) {
    for block in 0..in_blocks {
        for (t, tile) in tiles.iter().enumerate() {
            unsafe { transform_input_tile(plan, tile, t, input, block, in_blocks, scratch) };
        }
    }
}

/// `Bᵀ d B` for tile `t` of the group and one input block, any tile (the vector paths leave
/// it the tiles whose window leaves the padded grid).
///
/// # Safety
/// As [`Winograd::run_group`].
#[inline(always)]
unsafe fn transform_input_tile(
    plan: &Plan<'_>,
    tile: &TileAt,
    t: usize,
    input: *const f32,
    block: usize,
    in_blocks: usize,
    scratch: &mut Scratch,
) {
    let geometry = plan.geometry;
    let [_, height, width] = geometry.size;
    let row_stride = geometry.strides()[1];
    let stride = scratch.stride;
    // The window reads the padded plane: the halo (zero in a layer's blocks, the plane's
    // neighbouring rows in a band) and zero beyond it.
    let (top, left) = (geometry.before[1] as isize, geometry.before[2] as isize);
    let rows = -top..(height + geometry.after[1]) as isize;
    let columns = -left..(width + geometry.after[2]) as isize;
    let mut d = [[[0f32; LANES]; N]; N];
    for (r, row) in d.iter_mut().enumerate() {
        let y = (tile.y + r) as isize - 1;
        if !rows.contains(&y) {
            continue;
        }
        for (c, value) in row.iter_mut().enumerate() {
            let x = (tile.x + c) as isize - 1;
            if !columns.contains(&x) {
                continue;
            }
            let position = (tile.origin as isize + y * row_stride as isize + x) as usize;
            // SAFETY: a position of the padded plane in input block `block`.
            let source = unsafe {
                std::slice::from_raw_parts(
                    input.add(block * plan.block_len + position * LANES),
                    LANES,
                )
            };
            value.copy_from_slice(source);
        }
    }
    // Columns first (Bᵀ d), then rows ((Bᵀ d) B).
    let mut columns = [[[0f32; LANES]; N]; N];
    for c in 0..N {
        let column = bt(&std::array::from_fn(|r| d[r][c]));
        for a in 0..N {
            columns[a][c] = column[a];
        }
    }
    for (a, row) in columns.iter().enumerate() {
        let v = bt(row);
        for (b, value) in v.iter().enumerate() {
            let at = (((a * N + b) * in_blocks + block) * stride + t) * LANES;
            scratch.transformed[at..at + LANES].copy_from_slice(value);
        }
    }
}

/// # Safety
/// As [`Winograd::run_group`].
#[allow(clippy::too_many_arguments)]
unsafe fn transform_outputs(
    isa: Isa,
    plan: &Plan<'_>,
    tiles: &[TileAt],
    scratch: &Scratch,
    out_blocks: usize,
    bias: &[f32],
    relu: bool,
    output: *mut f32,
) {
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                x86::transform_outputs_avx512(plan, tiles, scratch, out_blocks, bias, relu, output)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                x86::transform_outputs_avx2(plan, tiles, scratch, out_blocks, bias, relu, output)
            }
            _ => transform_outputs_any(plan, tiles, scratch, out_blocks, bias, relu, output),
        }
    }
}

/// `Aᵀ m A` + bias (+ ReLU) for every tile and output block, stored at the tile's interior
/// positions only.
///
/// # Safety
/// As [`Winograd::run_group`].
#[inline(always)]
unsafe fn transform_outputs_any(
    plan: &Plan<'_>,
    tiles: &[TileAt],
    scratch: &Scratch,
    out_blocks: usize,
    bias: &[f32],
    relu: bool,
    output: *mut f32,
) {
    for block in 0..out_blocks {
        for (t, tile) in tiles.iter().enumerate() {
            unsafe {
                transform_output_tile(
                    plan, tile, t, scratch, block, out_blocks, bias, relu, output,
                )
            };
        }
    }
}

/// `Aᵀ m A` + bias (+ ReLU) for tile `t` of the group and one output block, any tile (the
/// vector paths leave it the tiles cut by the interior's edge).
///
/// # Safety
/// As [`Winograd::run_group`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn transform_output_tile(
    plan: &Plan<'_>,
    tile: &TileAt,
    t: usize,
    scratch: &Scratch,
    block: usize,
    out_blocks: usize,
    bias: &[f32],
    relu: bool,
    output: *mut f32,
) {
    let [_, height, width] = plan.geometry.size;
    let row_stride = plan.geometry.strides()[1];
    let stride = scratch.stride;
    let bias: &Lanes = bias[block * LANES..][..LANES].try_into().unwrap();
    let m: [[Lanes; N]; N] = std::array::from_fn(|a| {
        std::array::from_fn(|b| {
            let at = (((a * N + b) * out_blocks + block) * stride + t) * LANES;
            scratch.products[at..at + LANES].try_into().unwrap()
        })
    });
    // Columns first (Aᵀ m), then rows ((Aᵀ m) A).
    let mut columns = [[[0f32; LANES]; N]; M];
    for b in 0..N {
        let column = at(&std::array::from_fn(|a| m[a][b]));
        for y in 0..M {
            columns[y][b] = column[y];
        }
    }
    let rows = (height - tile.y).min(M);
    let cols = (width - tile.x).min(M);
    for (y, row) in columns.iter().enumerate().take(rows) {
        let out = at(row);
        for (x, value) in out.iter().enumerate().take(cols) {
            let mut result = [0f32; LANES];
            for ((r, v), b) in result.iter_mut().zip(value).zip(bias) {
                let sum = v + b;
                *r = if relu { sum.max(0.0) } else { sum };
            }
            let position = tile.origin + (tile.y + y) * row_stride + tile.x + x;
            // SAFETY: an interior position of output block `block`, this tile's.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    result.as_ptr(),
                    output.add(block * plan.block_len + position * LANES),
                    LANES,
                );
            }
        }
    }
}

/// The transforms for x86: AVX-512 written out in intrinsics (the generic code, compiled for
/// wide vectors, spends most of its time zeroing and copying its per-tile arrays); AVX2
/// compiles the generic code with the instructions enabled.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// [`bt`] on vectors, with the same operations in the same order (same results).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn bt_avx512(d: &[__m512; N]) -> [__m512; N] {
        let [d0, d1, d2, d3, d4, d5] = *d;
        let splat = _mm512_set1_ps;
        let t = _mm512_sub_ps(d4, d2);
        let u = _mm512_sub_ps(d3, d1);
        [
            _mm512_fmadd_ps(u, splat(1.5), _mm512_add_ps(_mm512_sub_ps(t, d2), d0)),
            _mm512_fmadd_ps(
                d3,
                splat(2.5),
                _mm512_sub_ps(_mm512_fmadd_ps(d2, splat(0.5), d4), d1),
            ),
            _mm512_fmadd_ps(
                d2,
                splat(-2.5),
                _mm512_add_ps(_mm512_fmadd_ps(d3, splat(0.5), d4), d1),
            ),
            _mm512_fmadd_ps(u, splat(2.0), t),
            _mm512_fmadd_ps(u, splat(-0.5), t),
            _mm512_fmadd_ps(
                t,
                splat(1.5),
                _mm512_fmadd_ps(d3, splat(-2.0), _mm512_add_ps(d1, d5)),
            ),
        ]
    }

    /// [`at`] on vectors, with the same operations in the same order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn at_avx512(m: &[__m512; N]) -> [__m512; M] {
        let [m0, m1, m2, m3, m4, m5] = *m;
        let splat = _mm512_set1_ps;
        let sum = _mm512_add_ps(m1, m2);
        let difference = _mm512_sub_ps(m1, m2);
        [
            _mm512_add_ps(_mm512_add_ps(m0, sum), _mm512_add_ps(m3, m4)),
            _mm512_fmadd_ps(m4, splat(-2.0), _mm512_fmadd_ps(m3, splat(0.5), difference)),
            _mm512_fmadd_ps(m4, splat(4.0), _mm512_fmadd_ps(m3, splat(0.25), sum)),
            _mm512_fmadd_ps(
                m4,
                splat(-8.0),
                _mm512_fmadd_ps(m3, splat(0.125), _mm512_add_ps(difference, m5)),
            ),
        ]
    }

    /// # Safety
    /// As [`Winograd::run_group`]; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transform_inputs_avx512(
        plan: &Plan<'_>,
        tiles: &[TileAt],
        input: *const f32,
        in_blocks: usize,
        scratch: &mut Scratch,
    ) {
        let geometry = plan.geometry;
        let [_, height, width] = geometry.size;
        let row_stride = geometry.strides()[1];
        let stride = scratch.stride;
        // A tile whose 6×6 window stays inside the padded plane reads it straight: the halo
        // it crosses is zero.
        let inside = |tile: &TileAt| {
            geometry.before[1] >= 1
                && geometry.before[2] >= 1
                && tile.y + N - 1 <= height + geometry.after[1]
                && tile.x + N - 1 <= width + geometry.after[2]
        };
        for block in 0..in_blocks {
            for (t, tile) in tiles.iter().enumerate() {
                if !inside(tile) {
                    unsafe {
                        transform_input_tile(plan, tile, t, input, block, in_blocks, scratch)
                    };
                    continue;
                }
                let transformed = scratch.transformed.as_mut_ptr();
                // SAFETY: the window's positions are inside the block (checked above).
                unsafe {
                    let corner = input.add(
                        block * plan.block_len
                            + (tile.origin + tile.y * row_stride + tile.x - row_stride - 1) * LANES,
                    );
                    let mut columns = [[_mm512_setzero_ps(); N]; N];
                    for c in 0..N {
                        let d: [__m512; N] = std::array::from_fn(|r| {
                            _mm512_loadu_ps(corner.add((r * row_stride + c) * LANES))
                        });
                        for (row, value) in columns.iter_mut().zip(bt_avx512(&d)) {
                            row[c] = value;
                        }
                    }
                    for (a, row) in columns.iter().enumerate() {
                        let v = bt_avx512(row);
                        for (b, &value) in v.iter().enumerate() {
                            let at = (((a * N + b) * in_blocks + block) * stride + t) * LANES;
                            _mm512_storeu_ps(transformed.add(at), value);
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// As [`Winograd::run_group`]; the CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn transform_inputs_avx2(
        plan: &Plan<'_>,
        tiles: &[TileAt],
        input: *const f32,
        in_blocks: usize,
        scratch: &mut Scratch,
    ) {
        unsafe { transform_inputs_any(plan, tiles, input, in_blocks, scratch) }
    }

    /// # Safety
    /// As [`Winograd::run_group`]; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transform_outputs_avx512(
        plan: &Plan<'_>,
        tiles: &[TileAt],
        scratch: &Scratch,
        out_blocks: usize,
        bias: &[f32],
        relu: bool,
        output: *mut f32,
    ) {
        let [_, height, width] = plan.geometry.size;
        let row_stride = plan.geometry.strides()[1];
        let stride = scratch.stride;
        let products = scratch.products.as_ptr();
        for block in 0..out_blocks {
            // SAFETY: `bias` holds `out_blocks` blocks.
            let bias_block = unsafe { _mm512_loadu_ps(bias[block * LANES..][..LANES].as_ptr()) };
            for (t, tile) in tiles.iter().enumerate() {
                if tile.y + M > height || tile.x + M > width {
                    unsafe {
                        transform_output_tile(
                            plan, tile, t, scratch, block, out_blocks, bias, relu, output,
                        )
                    };
                    continue;
                }
                // SAFETY: products inside the scratch; outputs at this tile's interior
                // positions of block `block`.
                unsafe {
                    let mut columns = [[_mm512_setzero_ps(); N]; M];
                    for b in 0..N {
                        let m: [__m512; N] = std::array::from_fn(|a| {
                            let at = (((a * N + b) * out_blocks + block) * stride + t) * LANES;
                            _mm512_loadu_ps(products.add(at))
                        });
                        for (row, value) in columns.iter_mut().zip(at_avx512(&m)) {
                            row[b] = value;
                        }
                    }
                    let corner = output.add(
                        (block * plan.block_len)
                            + (tile.origin + tile.y * row_stride + tile.x) * LANES,
                    );
                    for (y, row) in columns.iter().enumerate() {
                        let out = at_avx512(row);
                        for (x, &value) in out.iter().enumerate() {
                            let sum = _mm512_add_ps(value, bias_block);
                            let result = if relu {
                                _mm512_max_ps(sum, _mm512_setzero_ps())
                            } else {
                                sum
                            };
                            _mm512_storeu_ps(corner.add((y * row_stride + x) * LANES), result);
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// As [`Winograd::run_group`]; the CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn transform_outputs_avx2(
        plan: &Plan<'_>,
        tiles: &[TileAt],
        scratch: &Scratch,
        out_blocks: usize,
        bias: &[f32],
        relu: bool,
        output: *mut f32,
    ) {
        unsafe { transform_outputs_any(plan, tiles, scratch, out_blocks, bias, relu, output) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written-out transforms are the matrices.
    #[test]
    fn transforms_match_their_matrices() {
        let x: [Lanes; N] =
            std::array::from_fn(|r| std::array::from_fn(|l| ((r * 7 + l * 3) % 11) as f32 - 5.0));
        let (b, a) = (bt(&x), at(&x));
        for l in 0..LANES {
            for (i, row) in BT.iter().enumerate() {
                let want: f32 = row.iter().zip(&x).map(|(c, v)| c * v[l]).sum();
                assert_eq!(b[i][l], want, "Bᵀ row {i}");
            }
            for (i, row) in AT.iter().enumerate() {
                let want: f32 = row.iter().zip(&x).map(|(c, v)| c * v[l]).sum();
                assert_eq!(a[i][l], want, "Aᵀ row {i}");
            }
        }
    }

    /// `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` is the 3×3 correlation, in one dimension.
    #[test]
    fn matrices_compute_the_correlation() {
        let g = [0.3, -1.1, 0.7];
        let d = [0.5, 2.0, -1.0, 0.25, 3.0, -2.5];
        let u: Vec<f64> = G
            .iter()
            .map(|row| (0..3).map(|k| row[k] * g[k]).sum())
            .collect();
        let v: Vec<f64> = BT
            .iter()
            .map(|row| (0..N).map(|k| row[k] as f64 * d[k]).sum())
            .collect();
        for (y, row) in AT.iter().enumerate() {
            let got: f64 = (0..N).map(|k| row[k] as f64 * u[k] * v[k]).sum();
            let want: f64 = (0..3).map(|k| g[k] * d[y + k]).sum();
            assert!((got - want).abs() < 1e-12, "output {y}: {got} vs {want}");
        }
    }
}
