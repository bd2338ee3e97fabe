//! NIfTI-1 and NIfTI-2 images (`.nii`, `.nii.gz`): 3D or 4D `[x, y, z, t]`
//! fMRI recordings, read and written one volume at a time.
//!
//! This module owns the NIfTI element types, the description of an image
//! ([`VolumeInfo`]), the streaming [`VolumeReader`] and the atomic
//! [`VolumeWriter`]. Headers are parsed here from the `nifti1.h` /
//! `nifti2.h` field layout, in either byte order. A writer copies its
//! source's header bytes (affine, pixdim and TR, units, intent, description,
//! extensions) and changes only what the new data requires, so the output
//! lines up with the input in every viewer.
//!
//! Memory does not grow with the recording: `.nii` volumes are read with
//! positioned reads, `.nii.gz` is decoded as a stream (forward reads decode
//! ahead, a backward read restarts the stream), and writers stream too.
//! Only single-file images are handled; a `.hdr`/`.img` pair is refused.

mod header;
mod reader;
mod samples;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use reader::{VolumeReader, open_volume};
pub use writer::{NewVolume, VolumeWriter, create_volume, create_volume_like};

/// The element types a NIfTI image can be read and written as.
///
/// Other NIfTI datatypes (complex, RGB, 64-bit integers, float128, binary)
/// are refused with [`crate::IoError::UnsupportedDtype`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NiftiDtype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

/// The types listed in "unsupported data type" errors.
pub(crate) const SUPPORTED_NIFTI_DTYPES: &str =
    "uint8, int8, int16, uint16, int32, uint32, float32, float64";

impl NiftiDtype {
    /// Every supported type, in datatype-code order.
    pub const ALL: [NiftiDtype; 8] = [
        NiftiDtype::U8,
        NiftiDtype::I16,
        NiftiDtype::I32,
        NiftiDtype::F32,
        NiftiDtype::F64,
        NiftiDtype::I8,
        NiftiDtype::U16,
        NiftiDtype::U32,
    ];

    /// The numpy-style name: `uint8`, `int16`, `float32`, ...
    pub fn name(self) -> &'static str {
        match self {
            NiftiDtype::U8 => "uint8",
            NiftiDtype::I8 => "int8",
            NiftiDtype::I16 => "int16",
            NiftiDtype::U16 => "uint16",
            NiftiDtype::I32 => "int32",
            NiftiDtype::U32 => "uint32",
            NiftiDtype::F32 => "float32",
            NiftiDtype::F64 => "float64",
        }
    }

    /// The header's `datatype` code (`NIFTI_TYPE_*`).
    pub fn code(self) -> i16 {
        match self {
            NiftiDtype::U8 => 2,
            NiftiDtype::I16 => 4,
            NiftiDtype::I32 => 8,
            NiftiDtype::F32 => 16,
            NiftiDtype::F64 => 64,
            NiftiDtype::I8 => 256,
            NiftiDtype::U16 => 512,
            NiftiDtype::U32 => 768,
        }
    }

    /// The type with datatype code `code`, if it is a supported one.
    pub fn from_code(code: i64) -> Option<Self> {
        NiftiDtype::ALL
            .into_iter()
            .find(|d| i64::from(d.code()) == code)
    }

    /// Bytes per stored element.
    pub fn size_bytes(self) -> usize {
        match self {
            NiftiDtype::U8 | NiftiDtype::I8 => 1,
            NiftiDtype::I16 | NiftiDtype::U16 => 2,
            NiftiDtype::I32 | NiftiDtype::U32 | NiftiDtype::F32 => 4,
            NiftiDtype::F64 => 8,
        }
    }

    /// Whether the type stores floating-point values (no rounding or
    /// clipping on write).
    pub fn is_float(self) -> bool {
        matches!(self, NiftiDtype::F32 | NiftiDtype::F64)
    }
}

impl fmt::Display for NiftiDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of [`NiftiDtype::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown NIfTI dtype '{0}' (expected uint8, int8, int16, uint16, int32, uint32, float32 or float64)"
)]
pub struct ParseNiftiDtypeError(pub String);

impl FromStr for NiftiDtype {
    type Err = ParseNiftiDtypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        NiftiDtype::ALL
            .into_iter()
            .find(|d| {
                // Accept the short Rust spelling too: "i16" for "int16".
                let short = d.name().replace("uint", "u").replace("int", "i");
                let short = short.replace("float", "f");
                wanted == d.name() || wanted == short
            })
            .ok_or_else(|| ParseNiftiDtypeError(s.to_string()))
    }
}

/// What a NIfTI image holds, as its header describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeInfo {
    pub path: PathBuf,
    /// `[x, y, z]` (`dim[1..=3]`; dimensions the header lacks are 1).
    pub shape: [usize; 3],
    /// Volumes (`dim[4]`; 1 for a 3D image).
    pub frames: usize,
    pub dtype: NiftiDtype,
    /// `pixdim[1..=3]`, in the file's spatial unit (normally mm).
    pub voxel_size: [f64; 3],
    /// `pixdim[4]` in seconds (the header's time unit converted; an
    /// unspecified unit is taken as seconds). `None` when it is 0 or when
    /// the fourth dimension is not time (Hz, ppm, rad/s).
    pub repetition_time_s: Option<f64>,
    /// `(scl_slope, scl_inter)` when the stored values are scaled: the
    /// slope is finite, non-zero and the pair is not exactly (1, 0).
    pub scaling: Option<(f64, f64)>,
    /// 1 for NIfTI-1, 2 for NIfTI-2.
    pub version: u8,
    /// Whether the file is gzip-compressed (`.nii.gz`).
    pub compressed: bool,
}

impl VolumeInfo {
    /// Voxels in one volume (`x * y * z`).
    pub fn volume_len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Whether `path` names a single-file NIfTI image: `.nii` or `.nii.gz`
/// (any case).
pub fn is_nifti_path(path: &Path) -> bool {
    nifti_compression(path).is_some()
}

/// `Some(true)` for `.nii.gz`, `Some(false)` for `.nii`, `None` otherwise.
pub(crate) fn nifti_compression(path: &Path) -> Option<bool> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".nii.gz") {
        Some(true)
    } else if name.ends_with(".nii") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_codes_and_parsing_agree() {
        for d in NiftiDtype::ALL {
            assert_eq!(d.name().parse::<NiftiDtype>(), Ok(d));
            assert_eq!(NiftiDtype::from_code(i64::from(d.code())), Some(d));
        }
        assert_eq!("I16".parse::<NiftiDtype>(), Ok(NiftiDtype::I16));
        assert_eq!("u32".parse::<NiftiDtype>(), Ok(NiftiDtype::U32));
        assert_eq!(" Float64".parse::<NiftiDtype>(), Ok(NiftiDtype::F64));
        assert!("int64".parse::<NiftiDtype>().is_err());
        assert!("complex64".parse::<NiftiDtype>().is_err());
        assert_eq!(NiftiDtype::from_code(32), None);
    }

    #[test]
    fn nifti_paths_are_recognised_by_extension() {
        for name in ["a.nii", "b.NII", "dir/c.nii.gz", "d.Nii.Gz"] {
            assert!(is_nifti_path(Path::new(name)), "{name}");
        }
        for name in ["a.gz", "a.hdr", "a.img", "a.nii.bz2", "nii", "a.h5"] {
            assert!(!is_nifti_path(Path::new(name)), "{name}");
        }
    }
}
