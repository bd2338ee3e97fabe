//! NIfTI images: the golden fixture and real fMRI data, round trips of
//! fresh and copied headers in every type, NIfTI-2, big-endian, scaled,
//! random access into `.nii.gz`, atomic output and the bad-input errors.
//!
//! Sources with unusual headers are built byte by byte here, from the
//! `nifti1.h` / `nifti2.h` offsets, independently of the crate's parser.
//!
//! With `DEEPINTERP_NIFTI_INTEROP_DIR` set, `interop_files_for_nibabel`
//! also writes sample images and their expected values there for
//! `tests/nifti_interop.py` to check with nibabel.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{ScratchDir, fixture};
use deepinterp_io::{
    IoError, NewVolume, NiftiDtype, VolumeInfo, create_volume, create_volume_like, is_nifti_path,
    open_volume, write_npy_f32,
};
use flate2::Compression;
use flate2::write::GzEncoder;

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn read_all(path: &Path) -> (VolumeInfo, Vec<f32>) {
    let mut reader = open_volume(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let info = reader.info().clone();
    let mut out = vec![0f32; info.frames * info.volume_len()];
    reader.read_volumes(0, info.frames, &mut out).expect("read");
    (info, out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

/// A NIfTI header built field by field, for sources with unusual content.
#[derive(Clone)]
struct RawImage {
    version: u8,
    big_endian: bool,
    /// dim[0..8].
    dim: [i64; 8],
    datatype: i64,
    bitpix: i64,
    pixdim: [f64; 8],
    scl_slope: f64,
    scl_inter: f64,
    cal_max: f64,
    xyzt_units: i64,
    intent_code: i64,
    intent_name: &'static [u8],
    descrip: &'static [u8],
    qform_code: i64,
    sform_code: i64,
    quatern: [f64; 6],
    srow: [f64; 12],
    /// One extension's content (code 6 = comment), padded to 16 bytes.
    extension: Option<&'static [u8]>,
    /// The stored elements, already in the file's byte order.
    data: Vec<u8>,
}

impl RawImage {
    fn new(version: u8, dtype: NiftiDtype, shape: [i64; 4]) -> Self {
        RawImage {
            version,
            big_endian: false,
            dim: [4, shape[0], shape[1], shape[2], shape[3], 1, 1, 1],
            datatype: i64::from(dtype.code()),
            bitpix: 8 * dtype.size_bytes() as i64,
            pixdim: [-1.0, 2.5, 3.0, 3.5, 1500.0, 0.0, 0.0, 0.0],
            scl_slope: 1.0,
            scl_inter: 0.0,
            cal_max: 250.0,
            // mm + ms: the TR reads as 1.5 s.
            xyzt_units: 2 | 16,
            intent_code: 2001,
            intent_name: b"timeseries",
            descrip: b"a hand-built source",
            qform_code: 1,
            sform_code: 4,
            quatern: [0.1, -0.2, 0.3, -40.25, 17.5, 9.125],
            srow: [
                -2.5, 0.01, 0.02, 30.0, 0.03, 3.0, -0.04, -20.5, 0.05, 0.06, 3.5, 12.75,
            ],
            extension: Some(b"created by the deepinterp tests"),
            data: Vec::new(),
        }
    }

    fn header_len(&self) -> usize {
        if self.version == 1 { 348 } else { 540 }
    }

    fn extension_bytes(&self) -> Vec<u8> {
        let Some(content) = self.extension else {
            return Vec::new();
        };
        let esize = (8 + content.len()).div_ceil(16) * 16;
        let mut bytes = vec![0u8; esize];
        self.put(&mut bytes, 0, &(esize as i32).to_le_bytes());
        self.put(&mut bytes, 4, &6i32.to_le_bytes());
        bytes[8..8 + content.len()].copy_from_slice(content);
        bytes
    }

    fn vox_offset(&self) -> usize {
        self.header_len() + 4 + self.extension_bytes().len()
    }

    /// Writes `little_endian` at `offset`, in the file's byte order.
    fn put(&self, bytes: &mut [u8], offset: usize, little_endian: &[u8]) {
        let target = &mut bytes[offset..offset + little_endian.len()];
        target.copy_from_slice(little_endian);
        if self.big_endian {
            target.reverse();
        }
    }

    fn put_float(&self, bytes: &mut [u8], offset: usize, value: f64) {
        if self.version == 1 {
            self.put(bytes, offset, &(value as f32).to_le_bytes());
        } else {
            self.put(bytes, offset, &value.to_le_bytes());
        }
    }

    fn put_int(&self, bytes: &mut [u8], offset: usize, width: usize, value: i64) {
        self.put(bytes, offset, &value.to_le_bytes()[..width]);
    }

    /// Header, extension flag and extensions: the bytes before the data.
    fn prefix(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.header_len()];
        let v1 = self.version == 1;
        let f = if v1 { 4 } else { 8 };
        self.put_int(&mut b, 0, 4, self.header_len() as i64);
        let (magic, magic_at): (&[u8], usize) = if v1 {
            (b"n+1\0", 344)
        } else {
            (b"n+2\0\r\n\x1a\n", 4)
        };
        b[magic_at..magic_at + magic.len()].copy_from_slice(magic);
        let (dim_at, dim_w) = if v1 { (40, 2) } else { (16, 8) };
        for (i, &d) in self.dim.iter().enumerate() {
            self.put_int(&mut b, dim_at + i * dim_w, dim_w, d);
        }
        let datatype_at = if v1 { 70 } else { 12 };
        self.put_int(&mut b, datatype_at, 2, self.datatype);
        self.put_int(&mut b, datatype_at + 2, 2, self.bitpix);
        let pixdim_at = if v1 { 76 } else { 104 };
        for (i, &p) in self.pixdim.iter().enumerate() {
            self.put_float(&mut b, pixdim_at + i * f, p);
        }
        let vox_offset = self.vox_offset();
        if v1 {
            self.put_float(&mut b, 108, vox_offset as f64);
        } else {
            self.put_int(&mut b, 168, 8, vox_offset as i64);
        }
        let slope_at = if v1 { 112 } else { 176 };
        self.put_float(&mut b, slope_at, self.scl_slope);
        self.put_float(&mut b, slope_at + f, self.scl_inter);
        self.put_float(&mut b, if v1 { 124 } else { 192 }, self.cal_max);
        let (units_at, code_w) = if v1 { (123, 1) } else { (500, 4) };
        self.put_int(&mut b, units_at, code_w, self.xyzt_units);
        let (intent_at, intent_w) = if v1 { (68, 2) } else { (504, 4) };
        self.put_int(&mut b, intent_at, intent_w, self.intent_code);
        let name_at = if v1 { 328 } else { 508 };
        b[name_at..name_at + self.intent_name.len()].copy_from_slice(self.intent_name);
        let descrip_at = if v1 { 148 } else { 240 };
        b[descrip_at..descrip_at + self.descrip.len()].copy_from_slice(self.descrip);
        let (form_at, form_w) = if v1 { (252, 2) } else { (344, 4) };
        self.put_int(&mut b, form_at, form_w, self.qform_code);
        self.put_int(&mut b, form_at + form_w, form_w, self.sform_code);
        let quatern_at = if v1 { 256 } else { 352 };
        for (i, &q) in self.quatern.iter().enumerate() {
            self.put_float(&mut b, quatern_at + i * f, q);
        }
        let srow_at = if v1 { 280 } else { 400 };
        for (i, &s) in self.srow.iter().enumerate() {
            self.put_float(&mut b, srow_at + i * f, s);
        }
        let extension = self.extension_bytes();
        b.extend_from_slice(&[u8::from(!extension.is_empty()), 0, 0, 0]);
        b.extend_from_slice(&extension);
        b
    }

    fn file_bytes(&self) -> Vec<u8> {
        let mut bytes = self.prefix();
        bytes.extend_from_slice(&self.data);
        bytes
    }

    /// Writes the image (gzip-compressed for a `.gz` name).
    fn write(&self, path: &Path) {
        let bytes = self.file_bytes();
        if path.extension().is_some_and(|e| e == "gz") {
            write_file(path, &gzip(&bytes));
        } else {
            write_file(path, &bytes);
        }
    }

    /// Fills the data with int16 values `f(i)`.
    fn with_i16(mut self, values: impl Iterator<Item = i16>) -> Self {
        self.data = values
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect();
        self
    }

    fn with_f32(mut self, values: impl Iterator<Item = f32>) -> Self {
        self.data = values
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect();
        self
    }

    /// Offsets of the fields a copied header may change: datatype, bitpix,
    /// dim[0], dim[4], scl_slope, scl_inter, cal_max, cal_min.
    fn changed_ranges(&self) -> Vec<std::ops::Range<usize>> {
        if self.version == 1 {
            vec![70..74, 40..42, 48..50, 112..120, 124..132]
        } else {
            vec![12..16, 16..24, 48..56, 176..192, 192..208]
        }
    }
}

/// Checks that `output`'s header bytes equal `source`'s except where a
/// copied header may differ.
fn assert_header_copied(source: &RawImage, output: &[u8]) {
    let expected = source.prefix();
    assert_eq!(output.len(), expected.len(), "header + extension length");
    let changed = source.changed_ranges();
    for (i, (a, b)) in expected.iter().zip(output).enumerate() {
        if !changed.iter().any(|r| r.contains(&i)) {
            assert_eq!(a, b, "header byte {i} changed");
        }
    }
}

/// Values exactly representable in `dtype` (extremes included for the
/// small integer types).
fn test_values(dtype: NiftiDtype, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let k = ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f32;
            match dtype {
                NiftiDtype::U8 => [0.0, 255.0, k % 256.0][i % 3],
                NiftiDtype::I8 => [-128.0, 127.0, k % 256.0 - 128.0][i % 3],
                NiftiDtype::I16 => [-32768.0, 32767.0, k * 7.0 - 3000.0][i % 3],
                NiftiDtype::U16 => [0.0, 65535.0, k * 60.0][i % 3],
                NiftiDtype::I32 => [-16_777_216.0, 16_777_216.0, k * 1000.0 - 7.0][i % 3],
                NiftiDtype::U32 => [0.0, 4_294_967_040.0, k * 1000.0][i % 3],
                NiftiDtype::F32 | NiftiDtype::F64 => k * 0.037 - 12.5,
            }
        })
        .collect()
}

fn simulation(shape: [usize; 3], frames: usize, dtype: NiftiDtype) -> NewVolume {
    NewVolume {
        shape,
        frames,
        dtype,
        voxel_size: [2.0, 2.5, 3.0],
        repetition_time_s: 0.8,
        description: "deepinterp simulation".to_string(),
    }
}

/// A NIfTI-1 header's srow_x/y/z (12 floats at 280), little-endian.
fn nifti1_srow(header: &[u8]) -> Vec<f32> {
    header[280..328]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

// ---------------------------------------------------------------------------
// Fixtures and real data.
// ---------------------------------------------------------------------------

#[test]
fn golden_fixture_reads_with_the_expected_region_statistics() {
    let path = fixture("keras/fmri_input_13x12x10x12_int16.nii.gz");
    let (info, values) = read_all(&path);
    assert_eq!(info.shape, [13, 12, 10]);
    assert_eq!(info.frames, 12);
    assert_eq!(info.dtype, NiftiDtype::I16);
    assert_eq!(info.scaling, None);
    assert_eq!((info.version, info.compressed), (1, true));
    assert_eq!(info.voxel_size, [3.0, 3.0, 3.5]);
    // xyzt_units is 0 (unspecified): pixdim[4] = 2 is taken as seconds.
    assert_eq!(info.repetition_time_s, Some(2.0));

    let at = |x: usize, y: usize, z: usize, t: usize| values[x + 13 * (y + 12 * (z + 10 * t))];
    let mut region = Vec::new();
    for t in 3..9 {
        for z in 3..7 {
            for y in 3..9 {
                for x in 3..9 {
                    region.push(f64::from(at(x, y, z, t)));
                }
            }
        }
    }
    let n = region.len() as f64;
    let mean = region.iter().sum::<f64>() / n;
    let std = (region.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!((mean - 757.0960648148148).abs() < 1e-9, "mean {mean}");
    assert!((std - 105.03899753440545).abs() < 1e-9, "std {std}");
}

#[test]
fn nitime_recording_header_and_values() {
    let path = fixture("data/fmri/nitime_fmri1.nii.gz");
    let (info, values) = read_all(&path);
    assert_eq!(info.shape, [10, 10, 18]);
    assert_eq!(info.frames, 40);
    assert_eq!(info.dtype, NiftiDtype::I16);
    assert_eq!(info.scaling, None);
    // pixdim[4] is float32 1.35 with xyzt_units 10 (mm, s).
    assert_eq!(info.repetition_time_s, Some(1.35));
    assert_eq!(info.voxel_size, [2.0833333, 2.0833333, 2.3]);
    // Reference values decoded separately (Python gzip + struct).
    let at = |x: usize, y: usize, z: usize, t: usize| values[x + 10 * (y + 10 * (z + 18 * t))];
    assert_eq!(at(5, 5, 9, 0), 676.0);
    assert_eq!(at(9, 9, 17, 39), 797.0);
    assert_eq!(at(3, 7, 11, 20), 730.0);
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
    assert_eq!(total, 49_828_854.0);
    let first: f64 = values[..1800].iter().map(|&v| f64::from(v)).sum();
    assert_eq!(first, 1_109_446.0);

    // A float32 copy keeps the affine and reads back equal.
    let dir = ScratchDir::new("nifti-nitime");
    let reader = open_volume(&path).expect("open");
    let output = dir.join("copy.nii");
    let mut writer = create_volume_like(&reader, &output, NiftiDtype::F32, 40).expect("create");
    writer.write_volumes(&values, 40).expect("write");
    writer.finish().expect("finish");
    let copy = open_volume(&output).expect("open copy");
    assert_eq!(
        nifti1_srow(copy.header_bytes()),
        nifti1_srow(reader.header_bytes())
    );
    assert_eq!(copy.info().repetition_time_s, Some(1.35));
    assert_eq!(read_all(&output).1, values);
}

// ---------------------------------------------------------------------------
// Round trips.
// ---------------------------------------------------------------------------

#[test]
fn fresh_images_round_trip_in_every_type_and_container() {
    let dir = ScratchDir::new("nifti-fresh");
    for dtype in NiftiDtype::ALL {
        for name in ["fresh.nii", "fresh.nii.gz"] {
            let path = dir.join(&format!("{dtype}-{name}"));
            let new = simulation([5, 4, 3], 6, dtype);
            let values = test_values(dtype, 6 * 60);
            let mut writer = create_volume(&path, &new).expect("create");
            assert_eq!(writer.info().frames, 6);
            writer.write_volumes(&values[..2 * 60], 2).expect("write 2");
            writer.write_volumes(&values[2 * 60..], 4).expect("write 4");
            let summary = writer.finish().expect("finish");
            assert_eq!((summary.frames, summary.clipped_values), (6, 0));
            assert_eq!(summary.path, path);

            let (info, back) = read_all(&path);
            assert_eq!(back, values, "{dtype} {name}");
            assert_eq!(info.shape, [5, 4, 3]);
            assert_eq!(info.dtype, dtype);
            assert_eq!(info.voxel_size, [2.0, 2.5, 3.0]);
            assert_eq!(info.repetition_time_s, Some(0.8));
            assert_eq!((info.version, info.scaling), (1, None));
            assert_eq!(info.compressed, name.ends_with(".gz"));

            let header = open_volume(&path).expect("open").header_bytes().to_vec();
            assert_eq!(header.len(), 352);
            assert_eq!(&header[148..169], b"deepinterp simulation");
            assert_eq!(header[123], 2 | 8, "xyzt_units mm + s");
            assert_eq!(&header[252..256], &[1, 0, 1, 0], "qform/sform code 1");
            // Diagonal, the grid centred on the origin.
            let srow = nifti1_srow(&header);
            assert_eq!(
                srow,
                [
                    2.0, 0.0, 0.0, -4.0, 0.0, 2.5, 0.0, -3.75, 0.0, 0.0, 3.0, -3.0
                ]
            );
        }
    }
    assert_eq!(dir.file_names().len(), 16, "no temporary files left");
}

#[test]
fn a_copied_header_keeps_everything_but_type_frames_and_scaling() {
    let dir = ScratchDir::new("nifti-copy");
    let mut source = RawImage::new(1, NiftiDtype::I16, [4, 3, 2, 5]);
    source.scl_slope = 2.0;
    source.scl_inter = 10.0;
    let source = source.with_i16((0..120).map(|i| i as i16 * 3 - 100));
    for input in ["src.nii", "src.nii.gz"] {
        let input = dir.join(input);
        source.write(&input);
        let reader = open_volume(&input).expect("open source");
        assert_eq!(reader.header_bytes(), source.prefix().as_slice());
        let info = reader.info();
        assert_eq!(info.scaling, Some((2.0, 10.0)));
        assert_eq!(info.repetition_time_s, Some(1.5), "1500 ms");
        assert_eq!(info.voxel_size, [2.5, 3.0, 3.5]);

        for (output, dtype) in [
            ("out.nii.gz", NiftiDtype::F32),
            ("out.nii", NiftiDtype::U16),
        ] {
            let output = dir.join(output);
            let mut writer = create_volume_like(&reader, &output, dtype, 3).expect("create like");
            assert_eq!(writer.info().scaling, None);
            assert_eq!(writer.info().frames, 3);
            let values: Vec<f32> = (0..72).map(|i| i as f32 * 0.5).collect();
            writer.write_volumes(&values, 3).expect("write");
            writer.finish().expect("finish");

            let copy = open_volume(&output).expect("open copy");
            assert_header_copied(&source, copy.header_bytes());
            let header = copy.header_bytes();
            assert_eq!(i16::from_le_bytes([header[48], header[49]]), 3, "dim[4]");
            assert_eq!(i16::from_le_bytes([header[70], header[71]]), dtype.code());
            assert_eq!(
                &header[112..120],
                &[0, 0, 128, 63, 0, 0, 0, 0],
                "slope 1, inter 0"
            );
            assert_eq!(copy.info().repetition_time_s, Some(1.5));
            let (_, back) = read_all(&output);
            let expected: Vec<f32> = match dtype {
                NiftiDtype::F32 => values,
                // Rounded half to even.
                _ => values.iter().map(|v| v.round_ties_even()).collect(),
            };
            assert_eq!(back, expected);
        }
    }
}

#[test]
fn scaled_values_are_applied_on_read() {
    let dir = ScratchDir::new("nifti-scaled");
    let mut source = RawImage::new(1, NiftiDtype::I16, [3, 2, 2, 2]);
    source.scl_slope = 2.0;
    source.scl_inter = 10.0;
    let source = source.with_i16((0..24).map(|i| i as i16 - 12));
    let path = dir.join("scaled.nii");
    source.write(&path);
    let (info, values) = read_all(&path);
    assert_eq!(info.scaling, Some((2.0, 10.0)));
    let expected: Vec<f32> = (0..24).map(|i| (i as f32 - 12.0) * 2.0 + 10.0).collect();
    assert_eq!(values, expected);

    // A slope of 0 (or NaN) means unscaled, whatever the intercept.
    for slope in [0.0, f64::NAN] {
        let mut unscaled = source.clone();
        unscaled.scl_slope = slope;
        unscaled.scl_inter = 5.0;
        unscaled.write(&path);
        let (info, values) = read_all(&path);
        assert_eq!(info.scaling, None);
        assert_eq!(values[0], -12.0);
    }
}

#[test]
fn nifti2_images_read_and_write() {
    let dir = ScratchDir::new("nifti-2");
    let source = RawImage::new(2, NiftiDtype::F32, [3, 4, 2, 4]);
    let values: Vec<f32> = (0..96).map(|i| i as f32 * 1.25 - 7.0).collect();
    let source = source.with_f32(values.iter().copied());
    let input = dir.join("v2.nii.gz");
    source.write(&input);
    let reader = open_volume(&input).expect("open");
    let info = reader.info().clone();
    assert_eq!(info.version, 2);
    assert_eq!((info.shape, info.frames), ([3, 4, 2], 4));
    assert_eq!(info.repetition_time_s, Some(1.5));
    assert_eq!(read_all(&input).1, values);

    for name in ["out.nii", "out.nii.gz"] {
        let output = dir.join(name);
        let mut writer = create_volume_like(&reader, &output, NiftiDtype::I16, 4).expect("like");
        assert_eq!(writer.info().version, 2);
        writer.write_volumes(&values, 4).expect("write");
        writer.finish().expect("finish");
        let copy = open_volume(&output).expect("open copy");
        assert_eq!(copy.info().version, 2);
        assert_eq!(copy.info().dtype, NiftiDtype::I16);
        assert_header_copied(&source, copy.header_bytes());
        let expected: Vec<f32> = values.iter().map(|v| v.round_ties_even()).collect();
        assert_eq!(read_all(&output).1, expected);
    }
}

#[test]
fn big_endian_images_read_and_their_copies_stay_big_endian() {
    let dir = ScratchDir::new("nifti-big-endian");
    for version in [1, 2] {
        let mut source = RawImage::new(version, NiftiDtype::I16, [2, 3, 2, 3]);
        source.big_endian = true;
        source.scl_slope = 0.5;
        source.scl_inter = -1.0;
        let source = source.with_i16((0..36).map(|i| 1000 - 37 * i as i16));
        let input = dir.join(&format!("be{version}.nii"));
        source.write(&input);
        let (info, values) = read_all(&input);
        assert_eq!(info.version, version);
        assert_eq!(info.repetition_time_s, Some(1.5));
        assert_eq!(info.voxel_size, [2.5, 3.0, 3.5]);
        let expected: Vec<f32> = (0..36)
            .map(|i| (1000.0 - 37.0 * i as f32) * 0.5 - 1.0)
            .collect();
        assert_eq!(values, expected);

        let reader = open_volume(&input).expect("open");
        let output = dir.join(&format!("be{version}-copy.nii.gz"));
        let mut writer = create_volume_like(&reader, &output, NiftiDtype::F32, 3).expect("like");
        writer.write_volumes(&values, 3).expect("write");
        writer.finish().expect("finish");
        let copy = open_volume(&output).expect("open copy");
        assert_header_copied(&source, copy.header_bytes());
        assert_eq!(read_all(&output).1, values);
    }
}

#[test]
fn gzip_volumes_read_in_any_order() {
    let dir = ScratchDir::new("nifti-order");
    let path = dir.join("order.nii.gz");
    let new = simulation([4, 3, 2], 8, NiftiDtype::I16);
    let values: Vec<f32> = (0..8 * 24).map(|i| i as f32).collect();
    let mut writer = create_volume(&path, &new).expect("create");
    writer.write_volumes(&values, 8).expect("write");
    writer.finish().expect("finish");

    let mut reader = open_volume(&path).expect("open");
    let mut one = vec![0f32; 24];
    for t in [5, 1, 3, 3, 7, 0, 6] {
        reader.read_volumes(t, 1, &mut one).expect("read");
        assert_eq!(one, values[t * 24..(t + 1) * 24], "volume {t}");
    }
    let mut three = vec![0f32; 72];
    for start in [4, 2, 5] {
        reader.read_volumes(start, 3, &mut three).expect("read 3");
        assert_eq!(
            three,
            values[start * 24..(start + 3) * 24],
            "volumes {start}.."
        );
    }
    reader
        .read_volumes(8, 0, &mut [])
        .expect("empty read at the end");

    // A multi-member gzip file (the data split over two members) reads too.
    let raw = {
        let plain = dir.join("order.nii");
        let mut writer = create_volume(&plain, &new).expect("create");
        writer.write_volumes(&values, 8).expect("write");
        writer.finish().expect("finish");
        std::fs::read(&plain).expect("read plain")
    };
    let mut members = gzip(&raw[..500]);
    members.extend(gzip(&raw[500..]));
    let multi = dir.join("multi.nii.gz");
    write_file(&multi, &members);
    let mut reader = open_volume(&multi).expect("open multi-member");
    reader.read_volumes(7, 1, &mut one).expect("read");
    assert_eq!(one, values[7 * 24..]);
    reader.read_volumes(0, 1, &mut one).expect("read");
    assert_eq!(one, values[..24]);
}

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

fn error_of<T>(result: Result<T, IoError>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.contains('\n'),
                "{what}: multi-line message {message}"
            );
            message
        }
    }
}

#[test]
fn truncated_files_fail_naming_the_file_and_volume() {
    let dir = ScratchDir::new("nifti-truncated");
    let source =
        RawImage::new(1, NiftiDtype::I16, [4, 4, 2, 6]).with_i16((0..192).map(|i| i as i16));
    let full = source.file_bytes();
    let volume_bytes = 64;
    // Cut inside volume 3.
    let cut = &full[..source.vox_offset() + 3 * volume_bytes + 10];

    let plain = dir.join("cut.nii");
    write_file(&plain, cut);
    let message = error_of(open_volume(&plain), "truncated .nii");
    assert!(
        message.starts_with(&plain.display().to_string()),
        "{message}"
    );
    assert!(message.contains("truncated"), "{message}");
    assert!(
        message.contains(&format!("{}", full.len())),
        "expected size: {message}"
    );
    assert!(
        message.contains(&format!("has {}", cut.len())),
        "present size: {message}"
    );
    assert!(message.contains("volume 3"), "{message}");

    // The decompressed stream ends early: volumes before the cut still read.
    let gz = dir.join("cut.nii.gz");
    write_file(&gz, &gzip(cut));
    let mut reader = open_volume(&gz).expect("a short .nii.gz opens");
    let mut out = vec![0f32; 32];
    reader
        .read_volumes(2, 1, &mut out)
        .expect("volume 2 is complete");
    let message = error_of(reader.read_volumes(4, 1, &mut out), "read past the cut");
    assert!(message.starts_with(&gz.display().to_string()), "{message}");
    assert!(message.contains("volume 3"), "{message}");
    assert!(message.contains("10 of its 64 bytes"), "{message}");
    // After the error the stream restarts cleanly.
    reader
        .read_volumes(1, 1, &mut out)
        .expect("volume 1 after an error");
    assert_eq!(out[0], 32.0);

    // The compressed file itself cut short (no gzip trailer).
    let compressed = gzip(&full);
    let gz_cut = dir.join("cut-stream.nii.gz");
    write_file(&gz_cut, &compressed[..compressed.len() * 2 / 3]);
    let result = open_volume(&gz_cut).and_then(|mut r| {
        let mut all = vec![0f32; 6 * 32];
        r.read_volumes(0, 6, &mut all)
    });
    let message = error_of(result, "cut gzip stream");
    assert!(
        message.starts_with(&gz_cut.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("truncated") || message.contains("cannot read"),
        "{message}"
    );

    // A header cut short.
    let short = dir.join("short.nii");
    write_file(&short, &full[..200]);
    let message = error_of(open_volume(&short), "short header");
    assert!(message.contains("200 of its 348 bytes"), "{message}");
}

#[test]
fn non_finite_values_fail_naming_the_volume() {
    let dir = ScratchDir::new("nifti-nan");
    let mut values: Vec<f32> = (0..48).map(|i| i as f32).collect();
    values[2 * 16 + 5] = f32::NAN;
    let source = RawImage::new(1, NiftiDtype::F32, [4, 2, 2, 3]).with_f32(values.into_iter());
    for name in ["nan.nii", "nan.nii.gz"] {
        let path = dir.join(name);
        source.write(&path);
        let mut reader = open_volume(&path).expect("open");
        let mut out = vec![0f32; 32];
        reader
            .read_volumes(0, 2, &mut out)
            .expect("volumes 0 and 1 are finite");
        let message = error_of(reader.read_volumes(1, 2, &mut out), "NaN");
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("frame 2") && message.contains("NaN"),
            "{message}"
        );
    }
}

#[test]
fn an_unfinished_writer_leaves_no_file() {
    let dir = ScratchDir::new("nifti-unfinished");
    for name in ["a.nii", "a.nii.gz"] {
        let path = dir.join(name);
        let mut writer =
            create_volume(&path, &simulation([3, 3, 3], 4, NiftiDtype::I16)).expect("create");
        writer.write_volumes(&[1.0; 54], 2).expect("write");
        assert_eq!(dir.file_names().len(), 1, "only the temporary file exists");
        assert!(!path.exists());
        drop(writer);
        assert!(dir.file_names().is_empty(), "{:?}", dir.file_names());
    }
}

#[test]
fn writers_refuse_a_wrong_volume_count_or_buffer() {
    let dir = ScratchDir::new("nifti-count");
    let path = dir.join("count.nii.gz");
    let new = simulation([2, 2, 2], 3, NiftiDtype::F32);

    let mut writer = create_volume(&path, &new).expect("create");
    let message = error_of(writer.write_volumes(&[0.0; 32], 4), "too many");
    assert!(
        message.contains("4 frames written, but 3 were announced"),
        "{message}"
    );
    let message = error_of(writer.write_volumes(&[0.0; 10], 1), "buffer");
    assert!(
        message.contains("buffer holds 10 values, expected 8"),
        "{message}"
    );
    writer.write_volumes(&[0.0; 16], 2).expect("write 2");
    let message = error_of(writer.finish(), "too few");
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("2 frames written, but 3 were announced"),
        "{message}"
    );
    assert!(dir.file_names().is_empty(), "{:?}", dir.file_names());
}

#[test]
fn integer_outputs_are_rounded_clipped_and_counted() {
    let dir = ScratchDir::new("nifti-clip");
    let path = dir.join("clip.nii");
    let mut writer =
        create_volume(&path, &simulation([4, 1, 1], 1, NiftiDtype::U8)).expect("create");
    writer
        .write_volumes(&[-3.0, 2.5, 300.0, f32::NAN], 1)
        .expect("write");
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.clipped_values, 3);
    assert_eq!(read_all(&path).1, [0.0, 2.0, 255.0, 0.0]);
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let dir = ScratchDir::new("nifti-bad");
    let named = |path: &PathBuf, message: &str| {
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message} does not start with {}",
            path.display()
        );
    };

    let missing = dir.join("missing.nii");
    let message = error_of(open_volume(&missing), "missing");
    assert!(message.contains("file not found"), "{message}");

    let text = dir.join("text.nii");
    write_file(
        &text,
        b"this is not an image, but it is long enough to have a header",
    );
    let message = error_of(open_volume(&text), "text");
    named(&text, &message);
    assert!(message.contains("not a NIfTI-1/2 image"), "{message}");

    let good = RawImage::new(1, NiftiDtype::I16, [2, 2, 2, 2]).with_i16(0..16);
    let compressed = gzip(&good.file_bytes());
    let mut corrupt = compressed.clone();
    let middle = corrupt.len() / 2;
    for byte in &mut corrupt[middle..middle + 8] {
        *byte ^= 0x5a;
    }
    let bad_gzip = dir.join("corrupt.nii.gz");
    write_file(&bad_gzip, &corrupt);
    let result = open_volume(&bad_gzip).and_then(|mut r| {
        let mut out = vec![0f32; 16];
        r.read_volumes(0, 2, &mut out)
    });
    let message = error_of(result, "corrupt gzip");
    named(&bad_gzip, &message);

    let mut pair = good.clone();
    pair.extension = None;
    let mut bytes = pair.file_bytes();
    bytes[344..348].copy_from_slice(b"ni1\0");
    let hdr = dir.join("pair.nii");
    write_file(&hdr, &bytes);
    let message = error_of(open_volume(&hdr), "pair");
    named(&hdr, &message);
    assert!(message.contains(".hdr/.img pair"), "{message}");

    let mut complex = good.clone();
    complex.datatype = 32;
    let path = dir.join("complex.nii");
    complex.write(&path);
    let message = error_of(open_volume(&path), "complex");
    named(&path, &message);
    assert!(
        message.contains("unsupported data type complex64"),
        "{message}"
    );

    let mut five = good.clone();
    five.dim = [5, 2, 2, 2, 1, 2, 1, 1];
    let path = dir.join("five.nii");
    five.write(&path);
    let message = error_of(open_volume(&path), "5D");
    named(&path, &message);
    assert!(message.contains("dimension 5 has size 2"), "{message}");

    let mut empty = good.clone();
    empty.dim = [4, 2, 0, 2, 2, 1, 1, 1];
    let path = dir.join("empty.nii");
    empty.write(&path);
    let message = error_of(open_volume(&path), "zero dim");
    assert!(message.contains("dim[2] is 0"), "{message}");

    let path = dir.join("ok.nii");
    good.write(&path);
    let mut reader = open_volume(&path).expect("open");
    let mut out = vec![0f32; 8];
    let message = error_of(reader.read_volumes(1, 2, &mut out), "past the end");
    assert!(
        message.contains("frames 1..3 requested, but the movie has 2"),
        "{message}"
    );
    let message = error_of(reader.read_volumes(0, 2, &mut out), "short buffer");
    assert!(message.contains("expected 16"), "{message}");

    let wrong = dir.join("out.h5");
    let message = error_of(
        create_volume_like(&reader, &wrong, NiftiDtype::F32, 2),
        "output name",
    );
    named(&wrong, &message);
    assert!(message.contains(".nii or .nii.gz"), "{message}");
    let message = error_of(
        create_volume(
            &dir.join("zero.nii"),
            &simulation([2, 0, 2], 3, NiftiDtype::F32),
        ),
        "zero shape",
    );
    assert!(
        message.contains("every size must be 1 to 32767"),
        "{message}"
    );
    assert!(is_nifti_path(&path) && !is_nifti_path(&wrong));
}

// ---------------------------------------------------------------------------
// Files for the nibabel check (tests/nifti_interop.py).
// ---------------------------------------------------------------------------

/// Writes images in several types, containers, versions and byte orders, each
/// with its expected values (`.npy`, float32 `[t, z, y, x]`), plus
/// `manifest.json` saying what nibabel must find, and reads every image back
/// through our reader. The files go to `DEEPINTERP_NIFTI_INTEROP_DIR` when it
/// is set (CI then runs `tests/nifti_interop.py` on them), else to a scratch
/// folder.
#[test]
fn interop_files_for_nibabel() {
    let scratch = ScratchDir::new("nibabel");
    let dir = std::env::var_os("DEEPINTERP_NIFTI_INTEROP_DIR")
        .map_or_else(|| scratch.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create the interop directory");
    let mut entries = Vec::new();
    let mut written: Vec<(String, Vec<f32>)> = Vec::new();
    let mut add = |file: &str, values: &[f32], info: &VolumeInfo, like: Option<&str>| {
        written.push((file.to_string(), values.to_vec()));
        let [x, y, z] = info.shape;
        let npy = format!("{file}.expected.npy");
        write_npy_f32(&dir.join(&npy), &[info.frames, z, y, x], values).expect("write npy");
        entries.push(serde_json::json!({
            "file": file,
            "expected": npy,
            "shape": [x, y, z, info.frames],
            "dtype": info.dtype.name(),
            "tr_s": info.repetition_time_s,
            "voxel_size": info.voxel_size,
            "affine_like": like,
        }));
    };

    // Fresh simulations: the affine is checked against the voxel sizes.
    for (file, dtype) in [
        ("fresh_int16.nii.gz", NiftiDtype::I16),
        ("fresh_float32.nii", NiftiDtype::F32),
        ("fresh_uint8.nii", NiftiDtype::U8),
        ("fresh_uint16.nii.gz", NiftiDtype::U16),
    ] {
        let new = simulation([7, 6, 5], 4, dtype);
        let values = test_values(dtype, 4 * 210);
        let mut writer = create_volume(&dir.join(file), &new).expect("create");
        writer.write_volumes(&values, 4).expect("write");
        let info = writer.info().clone();
        writer.finish().expect("finish");
        add(file, &values, &info, None);
    }

    // Copies: the affine must equal the source's as nibabel reads both.
    let nitime = fixture("data/fmri/nitime_fmri1.nii.gz");
    std::fs::copy(&nitime, dir.join("nitime_source.nii.gz")).expect("copy nitime");
    let mut sources = vec![("nitime_source.nii.gz".to_string(), NiftiDtype::F32)];
    for (version, big_endian) in [(1, true), (2, false), (2, true)] {
        let mut raw = RawImage::new(version, NiftiDtype::I16, [5, 4, 3, 6]);
        raw.big_endian = big_endian;
        raw.pixdim[0] = 1.0;
        // A rotation-free qform consistent with nibabel's checks.
        raw.quatern = [0.0, 0.0, 0.0, -40.25, 17.5, 9.125];
        let raw = raw.with_i16((0..360).map(|i| i as i16 * 5 - 900));
        let name = format!(
            "source_v{version}_{}.nii",
            if big_endian { "be" } else { "le" }
        );
        raw.write(&dir.join(&name));
        sources.push((name, NiftiDtype::I16));
    }
    for (source, dtype) in sources {
        let reader = open_volume(&dir.join(&source)).expect("open source");
        let (_, values) = read_all(&dir.join(&source));
        let info = reader.info().clone();
        let stem = source.trim_end_matches(".gz").trim_end_matches(".nii");
        let file = format!("copy_of_{stem}.nii.gz");
        let mut writer =
            create_volume_like(&reader, &dir.join(&file), dtype, info.frames).expect("create like");
        let scaled: Vec<f32> = values.iter().map(|v| v * 0.5).collect();
        writer.write_volumes(&scaled, info.frames).expect("write");
        let out_info = writer.info().clone();
        writer.finish().expect("finish");
        let expected: Vec<f32> = match dtype {
            NiftiDtype::F32 => scaled,
            _ => scaled.iter().map(|v| v.round_ties_even()).collect(),
        };
        add(&file, &expected, &out_info, Some(&source));
    }
    let manifest = serde_json::to_string_pretty(&entries).expect("manifest");
    std::fs::write(dir.join("manifest.json"), manifest).expect("write manifest");
    assert_eq!(written.len(), 8);
    for (file, expected) in written {
        let (_, values) = read_all(&dir.join(&file));
        assert_eq!(values, expected, "{file} reads back differently");
    }
}
