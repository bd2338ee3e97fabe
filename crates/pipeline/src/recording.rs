//! Opening recordings of every modality. The modality comes from the file (its content first,
//! then its name): HDF5 and TIFF files are two-photon movies; SpikeGLX, Open Ephys binary
//! (`structure.oebin`), Open Ephys legacy (`.continuous`) and raw `.bin`/`.dat`/`.raw` files
//! are extracellular recordings, seen by the engine as movies of probe-grid frames; NIfTI
//! files are fMRI runs, which the engine reads as volumes (see `deepinterp_io::nifti`) rather
//! than through [`Recording`].

use std::path::Path;

use deepinterp::inference::DenoisePlan;
use deepinterp::model::Modality;
use deepinterp::probe::{GridRecording, GridWriter};
use deepinterp_io::ephys::{
    EphysOptions, RawLayout, create_ephys_like, is_ephys_path, open_ephys_with,
};
use deepinterp_io::{
    Dtype, MovieInfo, MovieReader, MovieWriter, RecordingKind, create_movie, open_movie,
    recording_kind,
};

use crate::error::{Result, ensure, refuse};

/// Sample rate assumed for a headerless raw file when none is given.
pub const DEFAULT_SAMPLE_RATE_HZ: f64 = 30_000.0;

/// How to read a headerless raw extracellular file (`.dat`/`.bin`/`.raw` with no `.meta` or
/// `structure.oebin` beside it), and Open Ephys legacy files of unequal length.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RawOptions {
    /// Channels interleaved in a headerless raw file.
    #[cfg_attr(feature = "clap", arg(long, value_parser = crate::parse::at_least_one))]
    pub channels: Option<usize>,
    /// Sample rate in Hz of a headerless raw file (default 30000).
    #[cfg_attr(feature = "clap", arg(long, value_parser = crate::parse::positive_f64))]
    pub sample_rate: Option<f64>,
    /// Open Ephys legacy: read channel files of unequal length up to the shortest one
    /// (without it, unequal lengths are an error).
    #[cfg_attr(feature = "clap", arg(long))]
    pub cut_to_shortest: bool,
}

impl RawOptions {
    /// How to open an extracellular recording.
    pub fn ephys_options(&self) -> EphysOptions {
        EphysOptions {
            raw: self.layout(),
            cut_to_shortest: self.cut_to_shortest,
        }
    }

    /// The layout of a headerless raw file, when the channel count is given.
    pub fn layout(&self) -> Option<RawLayout> {
        self.channels.map(|channels| RawLayout {
            channels,
            sample_rate_hz: self.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE_HZ),
            dtype: Dtype::I16,
        })
    }
}

/// The modality of a recording: from its content where the content says it (HDF5 and TIFF
/// movies, NIfTI runs, whatever their names), else from its name and the files beside it
/// (see [`deepinterp_io::recording_kind`]).
pub fn modality_of(path: &Path) -> Modality {
    match recording_kind(path) {
        RecordingKind::Movie => Modality::TwoPhoton,
        RecordingKind::Extracellular => Modality::Ephys,
        RecordingKind::Volumes => Modality::Fmri,
    }
}

/// The modality shared by all `paths` (two-photon when there are none); mixing modalities
/// is an error.
pub fn common_modality<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<Modality> {
    let mut found: Option<(Modality, &Path)> = None;
    for path in paths {
        let modality = modality_of(path);
        match found {
            Some((first, first_path)) if first != modality => refuse!(
                "{}: a {} recording, but {} is {}: inputs must be of one modality",
                path.display(),
                modality.name(),
                first_path.display(),
                first.name()
            ),
            None => found = Some((modality, path)),
            _ => {}
        }
    }
    Ok(found.map_or(Modality::TwoPhoton, |(modality, _)| modality))
}

/// An opened frame recording: what the engine denoises and trains on frame by frame.
pub enum Recording {
    /// A two-photon movie.
    Movie(Box<dyn MovieReader>),
    /// An extracellular recording on its probe grid.
    Ephys(Box<GridRecording>),
}

impl Recording {
    /// Opens `path`; an ephys grid gets rows in multiples of `row_multiple` (the network's
    /// pooling along the probe).
    pub fn open(path: &Path, raw: &RawOptions, row_multiple: usize) -> Result<Self> {
        Ok(match modality_of(path) {
            Modality::TwoPhoton => Recording::Movie(open_movie(path)?),
            Modality::Fmri => refuse!(
                "{}: an fMRI run is read as volumes, not frames",
                path.display()
            ),
            Modality::Ephys => Recording::Ephys(Box::new(GridRecording::new(
                open_ephys_with(path, &raw.ephys_options())?,
                row_multiple,
            ))),
        })
    }

    /// The modality of the recording.
    pub fn modality(&self) -> Modality {
        match self {
            Recording::Movie(_) => Modality::TwoPhoton,
            Recording::Ephys(_) => Modality::Ephys,
        }
    }

    /// What one frame is called in messages: "frames" or (ephys) "samples".
    pub fn unit(&self) -> &'static str {
        match self {
            Recording::Movie(_) => "frames",
            Recording::Ephys(_) => "samples",
        }
    }

    /// The engine's view: frames (time samples, for ephys).
    pub fn reader(&mut self) -> &mut dyn MovieReader {
        match self {
            Recording::Movie(reader) => reader.as_mut(),
            Recording::Ephys(grid) => grid.as_mut(),
        }
    }

    /// The engine's view, owned.
    pub fn into_reader(self) -> Box<dyn MovieReader> {
        match self {
            Recording::Movie(reader) => reader,
            Recording::Ephys(grid) => grid,
        }
    }

    /// The output data type when the user names none: float32 movies; ephys keeps its own
    /// (int16, so Kilosort and SpikeInterface read it unchanged), float32 on a grid movie.
    pub fn default_output_dtype(&self, output: &Path) -> Dtype {
        match self {
            Recording::Ephys(grid) if is_ephys_path(output) => grid.ephys().info().dtype,
            _ => Dtype::F32,
        }
    }

    /// A writer for the planned output. Ephys written to `.bin`/`.dat` keeps the input's file
    /// layout (channels, sync passed through, header updated); ephys written to `.h5`/`.tif`
    /// is the probe grid `[samples, rows, 2]`, the original's output layout.
    pub fn create_output(
        &self,
        output: &Path,
        dtype: Dtype,
        plan: &DenoisePlan,
    ) -> Result<Box<dyn MovieWriter>> {
        match self {
            Recording::Ephys(grid) if is_ephys_path(output) => {
                ensure!(
                    plan.head_zero_frames == 0,
                    "{}: --edges drop-pad-head writes zero samples that are not in the recording; use keep or drop for ephys files",
                    output.display()
                );
                let writer = create_ephys_like(
                    grid.ephys(),
                    output,
                    dtype,
                    plan.output_frames,
                    plan.centres.start,
                )?;
                Ok(Box::new(GridWriter::new(writer, grid.grid().clone())))
            }
            _ => {
                let info = MovieInfo {
                    frames: plan.output_frames,
                    height: plan.height,
                    width: plan.width,
                    dtype,
                };
                Ok(create_movie(output, &info)?)
            }
        }
    }
}
