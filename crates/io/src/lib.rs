//! File I/O for deepinterp: two-photon movies (HDF5 and multi-page TIFF,
//! streamed frame by frame, written atomically), extracellular
//! electrophysiology recordings (raw, SpikeGLX, Open Ephys; streamed sample
//! by sample), the original DeepInterpolation Keras `.h5` model files, and
//! `.npy` float32 arrays.
//!
//! Every error is an [`IoError`] whose one-line message names the file.

pub mod ephys;
pub mod error;
pub mod hdf5;
pub mod keras;
pub mod movie;
pub mod npy;
pub mod tiff;

pub use ephys::{
    ChannelPosition, EphysFormat, EphysInfo, EphysReader, EphysWriter, NewSpikeGlx, RawLayout,
    create_ephys_like, create_spikeglx, is_ephys_path, neuropixels1_positions, open_ephys,
};
pub use error::IoError;
pub use keras::{KerasLayerWeights, KerasModelFile, NamedArray, read_keras_model};
pub use movie::{
    DEFAULT_DATASET, Dtype, MovieInfo, MovieReader, MovieWriter, ParseDtypeError, WriteSummary,
    create_movie, open_movie, open_movie_dataset,
};
pub use npy::{read_npy_f32, write_npy_f32};
