//! The NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers, in either byte
//! order: reading the header and its extensions (every byte before
//! `vox_offset`), describing the image they announce, and deriving the
//! header of an output image from a source header or from scratch.
//!
//! A header is kept as its raw bytes and read or patched field by field
//! through a per-version table of offsets, so that a copied header keeps
//! every field this crate does not interpret, bit for bit.

use std::io::Read;
use std::path::Path;

use super::{NiftiDtype, SUPPORTED_NIFTI_DTYPES, VolumeInfo};
use crate::error::IoError;

pub(crate) const NIFTI1_HEADER_LEN: usize = 348;
pub(crate) const NIFTI2_HEADER_LEN: usize = 540;
/// The 4 bytes after the header whose first byte says whether extensions
/// follow; part of every single-file image.
const EXTENSION_FLAG_LEN: usize = 4;
const NIFTI1_MAGIC: &[u8] = b"n+1\0";
const NIFTI1_PAIR_MAGIC: &[u8] = b"ni1\0";
const NIFTI2_MAGIC: &[u8] = b"n+2\0\r\n\x1a\n";
const NIFTI2_PAIR_MAGIC: &[u8] = b"ni2\0\r\n\x1a\n";
/// Extensions beyond this are refused rather than buffered: real ones are
/// kilobytes (DICOM fields, JSON sidecars, AFNI attributes).
const MAX_DATA_OFFSET: u64 = 256 << 20;
/// `xyzt_units` codes (`NIFTI_UNITS_*`).
const UNITS_MM: i64 = 2;
const UNITS_SEC: i64 = 8;
const UNITS_MSEC: i64 = 16;
const UNITS_USEC: i64 = 24;
const TIME_UNITS_MASK: i64 = 0x38;

/// Where a field (or the first element of an array field) sits in a header
/// version, and the width of one element in bytes.
#[derive(Clone, Copy, Debug)]
struct Field {
    offset: usize,
    width: usize,
}

const fn field(offset: usize, width: usize) -> Field {
    Field { offset, width }
}

/// The fields this crate reads or writes, per header version.
struct Layout {
    header_len: usize,
    magic: Field,
    dim: Field,
    datatype: Field,
    bitpix: Field,
    pixdim: Field,
    /// A float in NIfTI-1, an integer in NIfTI-2.
    vox_offset: Field,
    scl_slope: Field,
    scl_inter: Field,
    cal_max: Field,
    cal_min: Field,
    xyzt_units: Field,
    descrip: Field,
    qform_code: Field,
    sform_code: Field,
    /// quatern_b, c, d, qoffset_x, y, z.
    quatern: Field,
    /// srow_x[4], srow_y[4], srow_z[4].
    srow: Field,
}

/// `nifti1.h`'s `struct nifti_1_header`.
const NIFTI1: Layout = Layout {
    header_len: NIFTI1_HEADER_LEN,
    magic: field(344, 4),
    dim: field(40, 2),
    datatype: field(70, 2),
    bitpix: field(72, 2),
    pixdim: field(76, 4),
    vox_offset: field(108, 4),
    scl_slope: field(112, 4),
    scl_inter: field(116, 4),
    cal_max: field(124, 4),
    cal_min: field(128, 4),
    xyzt_units: field(123, 1),
    descrip: field(148, 80),
    qform_code: field(252, 2),
    sform_code: field(254, 2),
    quatern: field(256, 4),
    srow: field(280, 4),
};

/// `nifti2.h`'s `struct nifti_2_header`.
const NIFTI2: Layout = Layout {
    header_len: NIFTI2_HEADER_LEN,
    magic: field(4, 8),
    dim: field(16, 8),
    datatype: field(12, 2),
    bitpix: field(14, 2),
    pixdim: field(104, 8),
    vox_offset: field(168, 8),
    scl_slope: field(176, 8),
    scl_inter: field(184, 8),
    cal_max: field(192, 8),
    cal_min: field(200, 8),
    xyzt_units: field(500, 4),
    descrip: field(240, 80),
    qform_code: field(344, 4),
    sform_code: field(348, 4),
    quatern: field(352, 8),
    srow: field(400, 8),
};

/// A NIfTI header with its extension flag and extensions: every byte of the
/// file before the data.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    version: u8,
    big_endian: bool,
    bytes: Vec<u8>,
}

impl Header {
    fn layout(&self) -> &'static Layout {
        if self.version == 1 { &NIFTI1 } else { &NIFTI2 }
    }

    pub(crate) fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// The header bytes, extensions included; the data starts right after.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where the data starts in the (decompressed) file.
    pub(crate) fn data_offset(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn raw<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut raw = [0u8; N];
        raw.copy_from_slice(&self.bytes[offset..offset + N]);
        if self.big_endian {
            raw.reverse();
        }
        raw
    }

    fn put_raw<const N: usize>(&mut self, offset: usize, mut little_endian: [u8; N]) {
        if self.big_endian {
            little_endian.reverse();
        }
        self.bytes[offset..offset + N].copy_from_slice(&little_endian);
    }

    /// Element `index` of an integer field.
    fn int(&self, f: Field, index: usize) -> i64 {
        let at = f.offset + index * f.width;
        match f.width {
            1 => i64::from(self.bytes[at]),
            2 => i64::from(i16::from_le_bytes(self.raw(at))),
            4 => i64::from(i32::from_le_bytes(self.raw(at))),
            _ => i64::from_le_bytes(self.raw(at)),
        }
    }

    /// Sets element `index` of an integer field; `value` must fit its width
    /// (the callers check the ranges first).
    fn set_int(&mut self, f: Field, index: usize, value: i64) {
        let at = f.offset + index * f.width;
        match f.width {
            1 => self.bytes[at] = value as u8,
            2 => self.put_raw(at, (value as i16).to_le_bytes()),
            4 => self.put_raw(at, (value as i32).to_le_bytes()),
            _ => self.put_raw(at, value.to_le_bytes()),
        }
    }

    /// Element `index` of a float field, exactly.
    fn float(&self, f: Field, index: usize) -> f64 {
        let at = f.offset + index * f.width;
        if f.width == 4 {
            f64::from(f32::from_le_bytes(self.raw(at)))
        } else {
            f64::from_le_bytes(self.raw(at))
        }
    }

    /// Element `index` of a float field as a person would write it: a
    /// NIfTI-1 float32 `1.35` is 1.35, not 1.350000023841858.
    fn decimal(&self, f: Field, index: usize) -> f64 {
        let value = self.float(f, index);
        if f.width == 4 {
            (value as f32).to_string().parse().unwrap_or(value)
        } else {
            value
        }
    }

    fn set_float(&mut self, f: Field, index: usize, value: f64) {
        let at = f.offset + index * f.width;
        if f.width == 4 {
            self.put_raw(at, (value as f32).to_le_bytes());
        } else {
            self.put_raw(at, value.to_le_bytes());
        }
    }

    fn set_vox_offset(&mut self, offset: usize) {
        let f = self.layout().vox_offset;
        if self.version == 1 {
            self.set_float(f, 0, offset as f64);
        } else {
            self.set_int(f, 0, offset as i64);
        }
    }

    /// Checks the header and describes the image it announces.
    pub(crate) fn volume_info(&self, path: &Path, compressed: bool) -> Result<VolumeInfo, IoError> {
        let bad = |detail: String| IoError::Nifti {
            path: path.to_path_buf(),
            detail,
        };
        let layout = self.layout();
        let ndim = self.int(layout.dim, 0);
        if !(1..=7).contains(&ndim) {
            return Err(bad(format!(
                "dim[0] (the number of dimensions) is {ndim}, expected 1 to 7"
            )));
        }
        let mut sizes = [1usize; 7];
        for (axis, size) in sizes.iter_mut().enumerate().take(ndim as usize) {
            let value = self.int(layout.dim, axis + 1);
            *size = usize::try_from(value)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    bad(format!(
                        "dim[{}] is {value}: every dimension must hold at least one voxel",
                        axis + 1
                    ))
                })?;
        }
        if let Some(axis) = sizes[4..].iter().position(|&s| s != 1) {
            return Err(bad(format!(
                "dimension {} has size {} (dim = {:?}): only 3D and 4D images [x, y, z, t] are \
                 supported",
                axis + 5,
                sizes[axis + 4],
                &sizes[..ndim as usize]
            )));
        }

        let code = self.int(layout.datatype, 0);
        let dtype = NiftiDtype::from_code(code).ok_or_else(|| IoError::UnsupportedDtype {
            path: path.to_path_buf(),
            found: format!("{} (NIfTI datatype {code})", datatype_name(code)),
            supported: SUPPORTED_NIFTI_DTYPES,
        })?;
        // bitpix is redundant with datatype and some writers get it wrong;
        // like nibabel, the datatype code alone decides the layout.

        let volume_bytes = sizes[..3]
            .iter()
            .try_fold(dtype.size_bytes(), |acc, &s| acc.checked_mul(s));
        let total_bytes = volume_bytes
            .and_then(|v| v.checked_mul(sizes[3]))
            .and_then(|t| u64::try_from(t).ok())
            .and_then(|t| t.checked_add(self.data_offset()));
        if total_bytes.is_none() {
            return Err(bad(format!(
                "dimensions {:?} are too large to address",
                &sizes[..4]
            )));
        }

        let slope = self.float(layout.scl_slope, 0);
        let inter = self.float(layout.scl_inter, 0);
        let scaling = if !slope.is_finite() || slope == 0.0 {
            None
        } else if !inter.is_finite() {
            return Err(bad(format!(
                "scl_slope is {slope} but scl_inter is {inter}: the stored values cannot be scaled"
            )));
        } else if slope == 1.0 && inter == 0.0 {
            None
        } else {
            Some((slope, inter))
        };

        Ok(VolumeInfo {
            path: path.to_path_buf(),
            shape: [sizes[0], sizes[1], sizes[2]],
            frames: sizes[3],
            dtype,
            voxel_size: [1, 2, 3].map(|i| self.decimal(layout.pixdim, i)),
            repetition_time_s: self.repetition_time_s(),
            scaling,
            version: self.version,
            compressed,
        })
    }

    /// `pixdim[4]` in seconds, when the fourth dimension is time.
    fn repetition_time_s(&self) -> Option<f64> {
        let layout = self.layout();
        let value = self.decimal(layout.pixdim, 4);
        let seconds = match self.int(layout.xyzt_units, 0) & TIME_UNITS_MASK {
            // An unspecified unit: many writers leave it 0 meaning seconds.
            0 | UNITS_SEC => value,
            UNITS_MSEC => value / 1e3,
            UNITS_USEC => value / 1e6,
            // Hz, ppm, rad/s: the fourth dimension is not time.
            _ => return None,
        };
        (seconds.is_finite() && seconds > 0.0).then_some(seconds)
    }

    /// This header adapted to new data: `dtype` elements, `frames` volumes,
    /// unscaled, no display range. Everything else (affine, pixdim and TR,
    /// units, intent, slice timing, description, extensions, byte order) is
    /// kept.
    pub(crate) fn for_output(
        &self,
        output: &Path,
        dtype: NiftiDtype,
        frames: usize,
    ) -> Result<Header, IoError> {
        let mut header = self.clone();
        let layout = header.layout();
        if frames == 0 {
            return Err(IoError::InvalidRequest {
                path: output.to_path_buf(),
                detail: "a NIfTI image needs at least one volume".to_string(),
            });
        }
        let max_frames = if self.version == 1 {
            i16::MAX as usize
        } else {
            i64::MAX as usize
        };
        if frames > max_frames {
            return Err(IoError::InvalidRequest {
                path: output.to_path_buf(),
                detail: format!("{frames} volumes do not fit a NIfTI-1 header (at most 32767)"),
            });
        }
        // A header without the extension flag (vox_offset 348) gets an
        // empty one, as every single-file image must have.
        let minimum_len = layout.header_len + EXTENSION_FLAG_LEN;
        if header.bytes.len() < minimum_len {
            header.bytes.resize(minimum_len, 0);
        }
        header.set_vox_offset(header.bytes.len());
        let ndim = header.int(layout.dim, 0);
        if frames > 1 || ndim >= 4 {
            header.set_int(layout.dim, 0, 4);
        }
        header.set_int(layout.dim, 4, frames as i64);
        for axis in 5..=7 {
            header.set_int(layout.dim, axis, 1);
        }
        header.set_int(layout.datatype, 0, i64::from(dtype.code()));
        header.set_int(layout.bitpix, 0, 8 * dtype.size_bytes() as i64);
        // slope 1 / intercept 0 reads as "unscaled" in every tool (nibabel,
        // FSL, AFNI, SPM); 0 or NaN would too, but not in some older ones.
        header.set_float(layout.scl_slope, 0, 1.0);
        header.set_float(layout.scl_inter, 0, 0.0);
        header.set_float(layout.cal_max, 0, 0.0);
        header.set_float(layout.cal_min, 0, 0.0);
        Ok(header)
    }

    /// A fresh little-endian NIfTI-1 header: diagonal affine with the grid
    /// centred on the scanner origin, units mm and s. The caller checks
    /// that the sizes are positive and fit.
    pub(crate) fn new_nifti1(
        shape: [usize; 3],
        frames: usize,
        dtype: NiftiDtype,
        voxel_size: [f64; 3],
        repetition_time_s: f64,
        description: &str,
    ) -> Header {
        let mut header = Header {
            version: 1,
            big_endian: false,
            bytes: vec![0; NIFTI1_HEADER_LEN + EXTENSION_FLAG_LEN],
        };
        let layout = &NIFTI1;
        header.bytes[..4].copy_from_slice(&(NIFTI1_HEADER_LEN as i32).to_le_bytes());
        header.bytes[layout.magic.offset..][..4].copy_from_slice(NIFTI1_MAGIC);
        // ANALYZE's `regular` = 'r', which some old readers still check.
        header.bytes[38] = b'r';
        header.set_int(layout.dim, 0, 4);
        for (axis, &size) in shape.iter().chain([&frames]).enumerate() {
            header.set_int(layout.dim, axis + 1, size as i64);
        }
        for axis in 5..=7 {
            header.set_int(layout.dim, axis, 1);
        }
        header.set_int(layout.datatype, 0, i64::from(dtype.code()));
        header.set_int(layout.bitpix, 0, 8 * dtype.size_bytes() as i64);
        // pixdim[0] is qfac: +1, a right-handed voxel grid.
        let pixdim = [
            1.0,
            voxel_size[0],
            voxel_size[1],
            voxel_size[2],
            repetition_time_s,
            1.0,
            1.0,
            1.0,
        ];
        for (i, value) in pixdim.into_iter().enumerate() {
            header.set_float(layout.pixdim, i, value);
        }
        header.set_vox_offset(header.bytes.len());
        header.set_float(layout.scl_slope, 0, 1.0);
        header.set_int(layout.xyzt_units, 0, UNITS_MM | UNITS_SEC);
        let mut end = description.len().min(layout.descrip.width - 1);
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        header.bytes[layout.descrip.offset..][..end]
            .copy_from_slice(&description.as_bytes()[..end]);
        // Scanner coordinates (code 1) with the centre of the grid at the
        // origin; qform (identity rotation) and sform say the same.
        header.set_int(layout.qform_code, 0, 1);
        header.set_int(layout.sform_code, 0, 1);
        let origin = [0, 1, 2].map(|i| -(shape[i] as f64 - 1.0) / 2.0 * voxel_size[i]);
        for (i, &value) in origin.iter().enumerate() {
            header.set_float(layout.quatern, 3 + i, value);
        }
        for row in 0..3 {
            header.set_float(layout.srow, 4 * row + row, voxel_size[row]);
            header.set_float(layout.srow, 4 * row + 3, origin[row]);
        }
        header
    }
}

/// Reads a header, its extension flag and its extensions (everything up to
/// `vox_offset`) from the start of a (decompressed) file.
pub(crate) fn read_header<R: Read>(path: &Path, input: &mut R) -> Result<Header, IoError> {
    let not_nifti = |detail: String| IoError::NotNifti {
        path: path.to_path_buf(),
        detail,
    };
    let mut bytes = vec![0u8; 4];
    let got = read_up_to(path, input, &mut bytes, "the header")?;
    if got < 4 {
        return Err(not_nifti(format!("the file holds only {got} bytes")));
    }
    let sizeof_hdr = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let (version, big_endian) = match (
        i32::from_le_bytes(sizeof_hdr),
        i32::from_be_bytes(sizeof_hdr),
    ) {
        (348, _) => (1, false),
        (540, _) => (2, false),
        (_, 348) => (1, true),
        (_, 540) => (2, true),
        _ => {
            return Err(not_nifti(format!(
                "it starts with bytes {} (hex), but sizeof_hdr must be 348 (NIfTI-1) or 540 \
                 (NIfTI-2)",
                hex(&sizeof_hdr)
            )));
        }
    };
    let layout = if version == 1 { &NIFTI1 } else { &NIFTI2 };
    bytes.resize(layout.header_len, 0);
    let got = 4 + read_up_to(path, input, &mut bytes[4..], "the header")?;
    if got < layout.header_len {
        return Err(not_nifti(format!(
            "the NIfTI-{version} header is cut short: {got} of its {} bytes are present",
            layout.header_len
        )));
    }
    let magic = &bytes[layout.magic.offset..][..layout.magic.width];
    let (single, pair) = if version == 1 {
        (NIFTI1_MAGIC, NIFTI1_PAIR_MAGIC)
    } else {
        (NIFTI2_MAGIC, NIFTI2_PAIR_MAGIC)
    };
    if magic == pair {
        return Err(IoError::Nifti {
            path: path.to_path_buf(),
            detail: format!(
                "the header of a NIfTI-{version} .hdr/.img pair: only single-file .nii / .nii.gz \
                 images are supported (convert it, e.g. with nibabel or fslchfiletype)"
            ),
        });
    }
    if magic != single {
        return Err(not_nifti(format!(
            "the magic is {} (hex), expected {:?} (an ANALYZE 7.5 file?)",
            hex(magic),
            String::from_utf8_lossy(single)
        )));
    }

    let mut header = Header {
        version,
        big_endian,
        bytes,
    };
    let data_offset = header.declared_data_offset(path)?;
    let extensions = data_offset - layout.header_len as u64;
    let got = input
        .take(extensions)
        .read_to_end(&mut header.bytes)
        .map_err(|e| stream_error(path, "the header extensions", e))?;
    if (got as u64) < extensions {
        return Err(IoError::Nifti {
            path: path.to_path_buf(),
            detail: format!(
                "truncated: the file ends at byte {}, before the data, which starts at \
                 vox_offset {data_offset}",
                layout.header_len + got
            ),
        });
    }
    Ok(header)
}

impl Header {
    /// `vox_offset`, checked: a whole number of bytes past the header.
    fn declared_data_offset(&self, path: &Path) -> Result<u64, IoError> {
        let layout = self.layout();
        let raw = if self.version == 1 {
            self.float(layout.vox_offset, 0)
        } else {
            self.int(layout.vox_offset, 0) as f64
        };
        let offset = raw as u64;
        if raw.fract() != 0.0 || raw < layout.header_len as f64 || raw > MAX_DATA_OFFSET as f64 {
            return Err(IoError::Nifti {
                path: path.to_path_buf(),
                detail: format!(
                    "vox_offset is {raw}, expected a whole number of bytes from {} to {} (the \
                     data must follow the {}-byte header)",
                    layout.header_len, MAX_DATA_OFFSET, layout.header_len
                ),
            });
        }
        Ok(offset)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_up_to<R: Read>(
    path: &Path,
    input: &mut R,
    buf: &mut [u8],
    what: &str,
) -> Result<usize, IoError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A gzip stream cut short reports the end of its input as an error.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(stream_error(path, what, e)),
        }
    }
    Ok(filled)
}

/// An error of the byte stream itself (a corrupt gzip member, a disk error)
/// while reading `what`.
pub(crate) fn stream_error(path: &Path, what: &str, error: std::io::Error) -> IoError {
    IoError::Nifti {
        path: path.to_path_buf(),
        detail: format!(
            "cannot read {what}: {} (a corrupt .nii.gz, or a disk error)",
            crate::error::one_line(error)
        ),
    }
}

/// `bytes` as hex pairs, `6e 2b 31 00`, for error messages.
fn hex(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(" ")
}

/// Names a NIfTI datatype code for error messages.
fn datatype_name(code: i64) -> &'static str {
    match code {
        0 => "unknown",
        1 => "binary",
        32 => "complex64",
        128 => "rgb24",
        1024 => "int64",
        1280 => "uint64",
        1536 => "float128",
        1792 => "complex128",
        2048 => "complex256",
        2304 => "rgba32",
        _ => "not a NIfTI datatype",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fresh() -> Header {
        Header::new_nifti1(
            [4, 3, 2],
            5,
            NiftiDtype::I16,
            [2.0, 2.5, 3.0],
            1.35,
            "simulated",
        )
    }

    fn parse(bytes: &[u8]) -> Result<Header, IoError> {
        read_header(Path::new("t.nii"), &mut &bytes[..])
    }

    #[test]
    fn a_fresh_header_reads_back() {
        let header = fresh();
        let parsed = parse(header.bytes()).expect("parse");
        let info = parsed.volume_info(Path::new("t.nii"), false).expect("info");
        assert_eq!(info.shape, [4, 3, 2]);
        assert_eq!(info.frames, 5);
        assert_eq!(info.dtype, NiftiDtype::I16);
        assert_eq!(info.voxel_size, [2.0, 2.5, 3.0]);
        assert_eq!(info.repetition_time_s, Some(1.35));
        assert_eq!(info.scaling, None);
        assert_eq!(parsed.data_offset(), 352);
        // Affine: diagonal, centred.
        assert_eq!(parsed.float(NIFTI1.srow, 0), 2.0);
        assert_eq!(parsed.float(NIFTI1.srow, 3), -3.0);
        assert_eq!(parsed.float(NIFTI1.srow, 5), 2.5);
        assert_eq!(parsed.float(NIFTI1.srow, 7), -2.5);
        assert_eq!(parsed.float(NIFTI1.srow, 11), -1.5);
        assert_eq!(&parsed.bytes()[148..157], b"simulated");
    }

    /// `header` re-encoded big-endian (the fields a fresh header sets).
    fn big_endian_copy(header: &Header) -> Header {
        let mut out = header.clone();
        out.big_endian = true;
        out.bytes[..4].copy_from_slice(&348i32.to_be_bytes());
        let l = &NIFTI1;
        let ints = [
            (l.dim, 8),
            (l.datatype, 1),
            (l.bitpix, 1),
            (l.qform_code, 1),
        ];
        for (f, n) in ints
            .into_iter()
            .chain([(l.sform_code, 1), (l.xyzt_units, 1)])
        {
            for i in 0..n {
                out.set_int(f, i, header.int(f, i));
            }
        }
        let floats = [
            (l.pixdim, 8),
            (l.vox_offset, 1),
            (l.scl_slope, 1),
            (l.scl_inter, 1),
        ];
        for (f, n) in floats.into_iter().chain([(l.quatern, 6), (l.srow, 12)]) {
            for i in 0..n {
                out.set_float(f, i, header.float(f, i));
            }
        }
        out
    }

    #[test]
    fn a_byte_swapped_header_is_read_as_big_endian() {
        let little = fresh();
        let big = big_endian_copy(&little);
        assert_ne!(big.bytes(), little.bytes());
        let parsed = parse(big.bytes()).expect("parse");
        assert!(parsed.big_endian());
        let path = Path::new("t.nii");
        assert_eq!(
            parsed.volume_info(path, false).expect("big"),
            little.volume_info(path, false).expect("little")
        );
        assert_eq!(parsed.float(NIFTI1.srow, 7), -2.5);
    }

    #[test]
    fn time_units_convert_to_seconds() {
        let mut header = fresh();
        header.set_float(NIFTI1.pixdim, 4, 1500.0);
        header.set_int(NIFTI1.xyzt_units, 0, UNITS_MM | UNITS_MSEC);
        assert_eq!(header.repetition_time_s(), Some(1.5));
        header.set_int(NIFTI1.xyzt_units, 0, UNITS_MM | UNITS_USEC);
        assert_eq!(header.repetition_time_s(), Some(0.0015));
        header.set_int(NIFTI1.xyzt_units, 0, UNITS_MM | 32); // Hz
        assert_eq!(header.repetition_time_s(), None);
        header.set_int(NIFTI1.xyzt_units, 0, 0);
        assert_eq!(header.repetition_time_s(), Some(1500.0));
        header.set_float(NIFTI1.pixdim, 4, 0.0);
        assert_eq!(header.repetition_time_s(), None);
    }

    #[test]
    fn malformed_headers_are_refused_with_the_reason() {
        let path = PathBuf::from("t.nii");
        let check = |header: &Header, wanted: &str| {
            let err = parse(header.bytes())
                .and_then(|h| h.volume_info(&path, false))
                .expect_err(wanted);
            let message = err.to_string();
            assert!(message.starts_with("t.nii: "), "{message}");
            assert!(message.contains(wanted), "{message} lacks {wanted}");
        };

        let mut h = fresh();
        h.set_int(NIFTI1.dim, 2, 0);
        check(&h, "dim[2] is 0");
        let mut h = fresh();
        h.set_int(NIFTI1.dim, 0, 5);
        h.set_int(NIFTI1.dim, 5, 3);
        check(&h, "dimension 5 has size 3");
        let mut h = fresh();
        h.set_int(NIFTI1.dim, 0, 9);
        check(&h, "dim[0]");
        let mut h = fresh();
        h.set_int(NIFTI1.datatype, 0, 32);
        check(&h, "complex64 (NIfTI datatype 32)");
        let mut h = fresh();
        h.set_float(NIFTI1.vox_offset, 0, 100.0);
        check(&h, "vox_offset is 100");
        let mut h = fresh();
        h.set_float(NIFTI1.scl_slope, 0, 2.0);
        h.set_float(NIFTI1.scl_inter, 0, f64::NAN);
        check(&h, "scl_inter is NaN");
        let mut h = fresh();
        h.bytes[344..348].copy_from_slice(NIFTI1_PAIR_MAGIC);
        check(&h, ".hdr/.img pair");
        let mut h = fresh();
        h.bytes[344..348].copy_from_slice(b"\0\0\0\0");
        check(&h, "not a NIfTI-1/2 image");
        let h = fresh();
        let err = parse(&h.bytes()[..200]).expect_err("short");
        assert!(err.to_string().contains("200 of its 348 bytes"), "{err}");
        let err = parse(b"GIF89a").expect_err("other format");
        assert!(err.to_string().contains("sizeof_hdr"), "{err}");
    }

    #[test]
    fn an_output_header_changes_only_type_frames_and_scaling() {
        let mut source = fresh();
        source.set_float(NIFTI1.scl_slope, 0, 2.0);
        source.set_float(NIFTI1.scl_inter, 0, 10.0);
        source.set_float(NIFTI1.cal_max, 0, 99.0);
        let out = source
            .for_output(Path::new("o.nii"), NiftiDtype::F32, 7)
            .expect("output header");
        let info = out.volume_info(Path::new("o.nii"), false).expect("info");
        assert_eq!(
            (info.dtype, info.frames, info.scaling),
            (NiftiDtype::F32, 7, None)
        );
        assert_eq!(out.int(NIFTI1.bitpix, 0), 32);
        assert_eq!(out.float(NIFTI1.cal_max, 0), 0.0);
        let changed = [70..74, 48..50, 112..120, 124..132];
        for (i, (a, b)) in source.bytes().iter().zip(out.bytes()).enumerate() {
            if !changed.iter().any(|r| r.contains(&i)) {
                assert_eq!(a, b, "byte {i} changed");
            }
        }
        assert!(
            source
                .for_output(Path::new("o.nii"), NiftiDtype::F32, 40_000)
                .is_err()
        );
        assert!(
            source
                .for_output(Path::new("o.nii"), NiftiDtype::F32, 0)
                .is_err()
        );
    }
}
