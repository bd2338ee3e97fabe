//! File I/O for deepinterp: two-photon movies (HDF5 and multi-page TIFF,
//! streamed frame by frame, written atomically), extracellular
//! electrophysiology recordings (raw, SpikeGLX, Open Ephys; streamed sample
//! by sample), fMRI images (NIfTI-1/2 `.nii`/`.nii.gz`, streamed volume by
//! volume, header and affine kept), the original DeepInterpolation Keras
//! `.h5` model files (read, and written back in Keras 2.15's layout), and
//! `.npy` float32 arrays.
//!
//! Every error is an [`IoError`] whose one-line message names the file.

pub mod ephys;
pub mod error;
pub mod hdf5;
pub mod keras;
pub mod kind;
pub mod limits;
pub mod movie;
pub mod nifti;
pub mod npy;
pub mod output;
pub mod tiff;

pub use ephys::{
    ChannelPosition, EphysFormat, EphysInfo, EphysOptions, EphysReader, EphysWriter, MAX_CHANNELS,
    NewSpikeGlx, RawLayout, create_ephys_like, create_spikeglx, is_ephys_path,
    neuropixels1_positions, open_ephys, open_ephys_with,
};
pub use error::IoError;
pub use keras::{
    KerasLayerWeights, KerasModelFile, NamedArray, read_keras_model, write_keras_model,
};
pub use kind::{RecordingKind, recording_kind};
pub use movie::{
    DEFAULT_DATASET, Dtype, MovieInfo, MovieReader, MovieWriter, ParseDtypeError, WriteSummary,
    create_movie, open_movie, open_movie_dataset,
};
pub use nifti::{
    NewVolume, NiftiDtype, ParseNiftiDtypeError, VolumeInfo, VolumeReader, VolumeWriter,
    create_volume, create_volume_like, is_nifti_path, open_volume,
};
pub use npy::{read_npy_f32, write_npy_f32};
