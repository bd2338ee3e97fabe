//! Sampling: which frames form a network input, how recordings are normalised, and the
//! in-memory blocks of normalised frames that training and inference draw windows from.
//!
//! A sample centred on frame `t` takes `pre_frames` frames before and `post_frames` after,
//! skipping `t` itself and `omitted_frames` on each side (dropped, not zeroed). Channels are in
//! time order. The target is frame `t`. See REFERENCE.md §1.

use deepinterp_io::MovieReader;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// The most frames a window may span (centre and omitted frames included): far beyond any
/// real recording, and small enough that every offset and sum of the window's fields fits
/// in `isize` without wrapping.
pub const MAX_WINDOW_SPAN: usize = 1 << 31;

/// The temporal window around a predicted frame.
///
/// Deserialising checks it like [`Window::new`], so a window read from a model file or a
/// checkpoint is as sane as one built from flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowFields")]
pub struct Window {
    /// Frames used before the centre.
    pub pre_frames: usize,
    /// Frames used after the centre.
    pub post_frames: usize,
    /// Frames left out on each side of the centre (besides the centre itself).
    pub omitted_frames: usize,
}

/// The serialised form of a [`Window`], checked on the way in.
#[derive(Deserialize)]
struct WindowFields {
    pre_frames: usize,
    post_frames: usize,
    omitted_frames: usize,
}

impl TryFrom<WindowFields> for Window {
    type Error = String;

    fn try_from(fields: WindowFields) -> Result<Self, String> {
        Window::new(fields.pre_frames, fields.post_frames, fields.omitted_frames)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pre {}, post {}, omitted {}",
            self.pre_frames, self.post_frames, self.omitted_frames
        )
    }
}

impl Window {
    /// A window; at least one input frame is required, and the whole window may span at
    /// most [`MAX_WINDOW_SPAN`] frames (a larger one would wrap the offset arithmetic and
    /// hand the network the very frame it predicts).
    pub fn new(
        pre_frames: usize,
        post_frames: usize,
        omitted_frames: usize,
    ) -> Result<Self, EngineError> {
        let window = Self {
            pre_frames,
            post_frames,
            omitted_frames,
        };
        window.validate()?;
        Ok(window)
    }

    /// Checks a window built field by field: [`Window::new`]'s rules.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.pre_frames == 0 && self.post_frames == 0 {
            return Err(EngineError::Settings(
                "the window needs at least one pre or post frame".into(),
            ));
        }
        let span = self
            .pre_frames
            .checked_add(self.post_frames)
            .and_then(|frames| frames.checked_add(self.omitted_frames.checked_mul(2)?))
            .and_then(|frames| frames.checked_add(1));
        match span {
            Some(span) if span <= MAX_WINDOW_SPAN => Ok(()),
            _ => Err(EngineError::Settings(format!(
                "the window would span more than {MAX_WINDOW_SPAN} frames: --pre-frames {}, --post-frames {}, --omitted-frames {}",
                self.pre_frames, self.post_frames, self.omitted_frames
            ))),
        }
    }

    /// Number of input channels (frames) of a sample.
    pub fn input_frames(&self) -> usize {
        self.pre_frames.saturating_add(self.post_frames)
    }

    /// Frames spanned by a whole window, centre and omitted frames included. Saturates
    /// rather than wraps, so an unchecked window is "longer than any recording".
    pub fn span(&self) -> usize {
        self.pre_frames
            .saturating_add(self.post_frames)
            .saturating_add(self.omitted_frames.saturating_mul(2))
            .saturating_add(1)
    }

    /// First centre whose window lies inside the recording.
    pub fn first_full_centre(&self) -> usize {
        self.pre_frames.saturating_add(self.omitted_frames)
    }

    /// Last centre whose window lies inside a recording of `frames` frames, if any.
    pub fn last_full_centre(&self, frames: usize) -> Option<usize> {
        let after = self
            .post_frames
            .checked_add(self.omitted_frames)?
            .checked_add(1)?;
        frames
            .checked_sub(after)
            .filter(|&last| last >= self.first_full_centre())
    }

    /// Offsets from the centre of each input channel, in channel order.
    pub fn offsets(&self) -> Vec<isize> {
        // Saturating conversions: a checked window (span <= 2^31) never saturates.
        let signed = |value: usize| isize::try_from(value).unwrap_or(isize::MAX);
        let gap = signed(self.omitted_frames);
        let before = (1..=signed(self.pre_frames))
            .rev()
            .map(move |k| gap.saturating_add(k).saturating_neg());
        let after = (1..=signed(self.post_frames)).map(move |k| gap.saturating_add(k));
        before.chain(after).collect()
    }

    /// Shortest recording every frame of which can be predicted with [`Self::source_frames`].
    pub fn min_frames_full_length(&self) -> usize {
        self.pre_frames
            .max(self.post_frames)
            .saturating_mul(2)
            .saturating_add(self.omitted_frames.saturating_mul(2))
            .saturating_add(1)
    }

    /// The frame each input channel reads for centre `centre` of a `frames`-long recording.
    ///
    /// Inside the recording this is `centre + offset`. Near the edges a missing neighbour
    /// `centre - k` is replaced by its mirror about the centre, `centre + k` (and vice versa),
    /// so the network sees real frames at the distances it was trained on and never the frame
    /// it predicts nor an omitted one. Needs `frames >= min_frames_full_length()`.
    pub fn source_frames(&self, centre: usize, frames: usize) -> Vec<usize> {
        let signed = |value: usize| isize::try_from(value).unwrap_or(isize::MAX);
        let (centre, frames) = (signed(centre), signed(frames));
        self.offsets()
            .into_iter()
            .map(|offset| {
                let direct = centre.saturating_add(offset);
                let mirrored = centre.saturating_sub(offset);
                let chosen = if (0..frames).contains(&direct) {
                    direct
                } else {
                    mirrored
                };
                chosen.clamp(0, (frames - 1).max(0)) as usize
            })
            .collect()
    }
}

/// Global normalisation of a recording: `(x - mean) / std`, undone by `y * std + mean`.
///
/// The statistics are float32 values, as in the original; normalising subtracts in float64
/// and rounds to float32 (the two-photon path of the original), rescaling is float32.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of the raw values.
    pub mean: f32,
    /// Standard deviation of the raw values.
    pub std: f32,
}

impl Normalization {
    /// Statistics over the first `min(frames, stats_frames)` frames of the recording (the
    /// original's convention: always the head of the file, whatever range is processed).
    /// Only the pixels of the reader's [`MovieReader::site_mask`] count.
    pub fn from_head(
        reader: &mut dyn MovieReader,
        stats_frames: usize,
    ) -> Result<Self, EngineError> {
        let info = reader.info().clone();
        let frames = info.frames.min(stats_frames.max(1));
        let frame_len = info.height * info.width;
        let mask: Option<Vec<bool>> = reader.site_mask().map(<[bool]>::to_vec);
        let chunk = (16 << 20) / (4 * frame_len).max(1);
        let chunk = chunk.clamp(1, frames);
        let mut buffer = vec![0f32; chunk * frame_len];
        let (mut sum, mut count) = (0f64, 0usize);
        let mut squared_deviations = 0f64;
        // Two passes (mean, then squared deviations) keep the variance exact in f64.
        for pass in 0..2 {
            let mean = if count > 0 { sum / count as f64 } else { 0.0 };
            let mut start = 0;
            while start < frames {
                let n = chunk.min(frames - start);
                let values = &mut buffer[..n * frame_len];
                reader.read_frames(start, n, values)?;
                let used = values.chunks(frame_len).flat_map(|frame| {
                    frame
                        .iter()
                        .enumerate()
                        .filter_map(|(pixel, &value)| match &mask {
                            Some(mask) if !mask[pixel] => None,
                            _ => Some(value as f64),
                        })
                });
                if pass == 0 {
                    for value in used {
                        sum += value;
                        count += 1;
                    }
                } else {
                    squared_deviations += used.map(|value| (value - mean).powi(2)).sum::<f64>();
                }
                start += n;
            }
        }
        let mean = sum / count.max(1) as f64;
        let std = (squared_deviations / count.max(1) as f64).sqrt();
        if !(std.is_finite() && std > 0.0) {
            return Err(EngineError::recording(
                reader.path(),
                format!("the first {frames} frames are constant: cannot normalise (std = 0)"),
            ));
        }
        Ok(Self {
            mean: mean as f32,
            std: std as f32,
        })
    }

    /// Normalises raw values in place.
    pub fn apply(&self, values: &mut [f32]) {
        let (mean, std) = (self.mean as f64, self.std as f64);
        for value in values {
            *value = ((*value as f64 - mean) / std) as f32;
        }
    }

    /// Maps network outputs back to raw units in place.
    pub fn restore(&self, values: &mut [f32]) {
        for value in values {
            *value = *value * self.std + self.mean;
        }
    }
}

/// A contiguous run of normalised frames `[start, start + frames)` held in memory.
#[derive(Debug, Clone)]
pub struct FrameBlock {
    start: usize,
    frames: usize,
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl FrameBlock {
    /// An empty block for frames of `height × width`.
    pub fn new(height: usize, width: usize) -> Self {
        Self {
            start: 0,
            frames: 0,
            height,
            width,
            data: Vec::new(),
        }
    }

    /// First frame held.
    pub fn start(&self) -> usize {
        self.start
    }

    /// One past the last frame held.
    pub fn end(&self) -> usize {
        self.start + self.frames
    }

    /// Pixels per frame.
    pub fn frame_len(&self) -> usize {
        self.height * self.width
    }

    /// Makes the block hold exactly `range`, reusing frames it already has and reading the rest.
    pub fn load(
        &mut self,
        reader: &mut dyn MovieReader,
        normalization: &Normalization,
        range: std::ops::Range<usize>,
    ) -> Result<(), EngineError> {
        let frame_len = self.frame_len();
        let overlap_start = range.start.max(self.start);
        let overlap_end = range.end.min(self.end());
        // Frames already held at the head of the new range are moved down in place, so a
        // sliding window reads and normalises each frame once and reuses one buffer.
        let kept = if overlap_start < overlap_end && overlap_start == range.start {
            let from = (overlap_start - self.start) * frame_len;
            let to = (overlap_end - self.start) * frame_len;
            self.data.copy_within(from..to, 0);
            overlap_end - overlap_start
        } else {
            0
        };
        self.data.resize(range.len() * frame_len, 0.0);
        let fresh = &mut self.data[kept * frame_len..];
        let result = reader.read_frames(range.start + kept, range.len() - kept, fresh);
        if let Err(error) = result {
            self.frames = 0;
            return Err(error.into());
        }
        normalization.apply(fresh);
        if let Some(mask) = reader.site_mask() {
            // Empty grid sites are zero in normalised units (the original's checkerboard).
            for frame in fresh.chunks_mut(frame_len) {
                for (value, &used) in frame.iter_mut().zip(mask) {
                    if !used {
                        *value = 0.0;
                    }
                }
            }
        }
        self.start = range.start;
        self.frames = range.len();
        Ok(())
    }

    /// One normalised frame (must be held).
    pub fn frame(&self, index: usize) -> &[f32] {
        let offset = (index - self.start) * self.frame_len();
        &self.data[offset..offset + self.frame_len()]
    }

    /// Copies the `crop` of frames `sources` as consecutive channels into `out`
    /// (`sources.len() * crop.height * crop.width` values).
    pub fn gather(&self, sources: &[usize], crop: Crop, out: &mut [f32]) {
        let plane = crop.height * crop.width;
        for (channel, &source) in sources.iter().enumerate() {
            let frame = self.frame(source);
            let dst = &mut out[channel * plane..(channel + 1) * plane];
            for row in 0..crop.height {
                let src_offset = (crop.top + row) * self.width + crop.left;
                dst[row * crop.width..(row + 1) * crop.width]
                    .copy_from_slice(&frame[src_offset..src_offset + crop.width]);
            }
        }
    }
}

/// A rectangle of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Crop {
    /// The whole frame.
    pub fn full(height: usize, width: usize) -> Self {
        Self {
            top: 0,
            left: 0,
            height,
            width,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_skip_centre_and_omitted_frames() {
        let window = Window::new(2, 3, 1).unwrap();
        assert_eq!(window.offsets(), vec![-3, -2, 2, 3, 4]);
        assert_eq!(window.first_full_centre(), 3);
        assert_eq!(window.last_full_centre(20), Some(15));
        assert_eq!(window.last_full_centre(8), Some(3));
        assert_eq!(window.last_full_centre(7), None);
    }

    #[test]
    fn paper_two_photon_window_matches_golden_layout() {
        // ophys golden: channel c = frame f-30+c for c<30, f+1+(c-30) for c>=30.
        let window = Window::new(30, 30, 0).unwrap();
        let sources = window.source_frames(45, 100);
        let expected: Vec<usize> = (15..45).chain(46..76).collect();
        assert_eq!(sources, expected);
        assert_eq!(window.first_full_centre(), 30);
        assert_eq!(window.last_full_centre(100), Some(69));
    }

    #[test]
    fn edge_windows_mirror_and_never_contain_the_centre() {
        let window = Window::new(4, 4, 1).unwrap();
        let frames = window.min_frames_full_length();
        for centre in 0..frames {
            let sources = window.source_frames(centre, frames);
            assert_eq!(sources.len(), 8);
            for &source in &sources {
                assert!(source < frames);
                assert!(
                    source.abs_diff(centre) > 1,
                    "centre {centre} reads {source}"
                );
            }
        }
        // At frame 0 every "before" neighbour is mirrored to its "after" twin.
        assert_eq!(window.source_frames(0, 20), vec![5, 4, 3, 2, 2, 3, 4, 5]);
    }

    #[test]
    fn huge_windows_are_refused_and_never_wrap() {
        for omitted in [usize::MAX, 1 << 63, 1 << 31] {
            let error = Window::new(3, 3, omitted).unwrap_err().to_string();
            assert!(error.contains("would span more than"), "{error}");
            assert!(
                error.contains(&format!("--omitted-frames {omitted}")),
                "{error}"
            );
        }
        assert!(Window::new(usize::MAX, 1, 0).is_err());
        assert!(Window::new(0, 0, 0).is_err());
        // A window built field by field saturates: longer than any recording, never the
        // predicted frame itself.
        let wild = Window {
            pre_frames: 3,
            post_frames: 3,
            omitted_frames: usize::MAX,
        };
        assert!(wild.validate().is_err());
        assert_eq!(wild.span(), usize::MAX);
        assert_eq!(wild.last_full_centre(1000), None);
        assert!(wild.offsets().iter().all(|&offset| offset != 0));
        // Deserialising checks too (model files, checkpoints).
        let json = r#"{"pre_frames":3,"post_frames":3,"omitted_frames":18446744073709551615}"#;
        assert!(serde_json::from_str::<Window>(json).is_err());
        let fine: Window =
            serde_json::from_str(r#"{"pre_frames":3,"post_frames":2,"omitted_frames":1}"#).unwrap();
        assert_eq!(fine.to_string(), "pre 3, post 2, omitted 1");
    }
}
