//! Hostile and broken files: each case builds the bad file here and checks
//! that opening or reading it is a one-line error naming the file and the
//! cause (and the field), never a panic or an allocation sized from an
//! unchecked header.

mod common;

use std::io::Write;
use std::path::Path;

use common::{ScratchDir, fixture};
use deepinterp_io::{
    Dtype, EphysOptions, IoError, NewSpikeGlx, NewVolume, NiftiDtype, RawLayout, create_spikeglx,
    create_volume, neuropixels1_positions, open_ephys, open_ephys_with, open_movie,
    open_movie_dataset, open_volume, read_keras_model, read_npy_f32,
};

/// The error must be one line starting with `path` and free of control
/// characters, and contain every one of `needles`.
fn assert_error(err: &IoError, path: &Path, needles: &[&str]) {
    let message = err.to_string();
    assert!(
        !message.chars().any(char::is_control),
        "control characters in: {message:?}"
    );
    assert!(
        message.starts_with(&path.display().to_string()),
        "error does not start with {}: {message}",
        path.display()
    );
    for needle in needles {
        assert!(
            message.contains(needle),
            "'{needle}' missing from: {message}"
        );
    }
}

fn expect_err<T>(result: Result<T, IoError>, what: &str) -> IoError {
    match result {
        Ok(_) => panic!("{what}: expected an error"),
        Err(err) => err,
    }
}

// ---------------------------------------------------------------------------
// HDF5.
// ---------------------------------------------------------------------------

/// A 1.4 KB file whose chunked `data` declares frames of 10^6 x 10^6 values
/// with no chunk written: refused on open, before any frame buffer is sized
/// from it (a chunked dataset may legitimately hold less than it declares —
/// unwritten chunks read as the fill value — so what is bounded is what one
/// read takes: a frame beyond any machine's memory budget).
#[test]
fn hdf5_huge_declared_dataset_is_refused_on_open() {
    let dir = ScratchDir::new("hostile-h5");
    let path = dir.join("huge.h5");
    {
        let file = rust_hdf5::H5File::create(&path).expect("create");
        file.new_dataset::<u16>()
            .shape([100_000, 1_000_000, 1_000_000])
            .chunk(&[1, 100, 100])
            .max_shape(&[None, Some(1_000_000), Some(1_000_000)])
            .create("data")
            .expect("dataset");
        file.close().expect("close");
    }
    let size = std::fs::metadata(&path).expect("size").len();
    assert!(size < 64 << 10, "test file is {size} bytes");
    let err = expect_err(open_movie(&path), "huge chunked dataset");
    assert_error(&err, &path, &["dataset 'data'", "would need", "budget"]);

    // The same shape with deflate.
    let path = dir.join("huge_deflate.h5");
    {
        let file = rust_hdf5::H5File::create(&path).expect("create");
        file.new_dataset::<i16>()
            .shape([100_000, 1_000_000, 1_000_000])
            .chunk(&[1, 100, 100])
            .max_shape(&[None, Some(1_000_000), Some(1_000_000)])
            .shuffle_deflate(1)
            .create("data")
            .expect("dataset");
        file.close().expect("close");
    }
    let err = expect_err(open_movie(&path), "huge deflated dataset");
    assert_error(&err, &path, &["dataset 'data'", "would need", "budget"]);
}

/// A dataset name with control characters is echoed escaped.
#[test]
fn hdf5_dataset_names_are_escaped_in_messages() {
    let dir = ScratchDir::new("hostile-h5-name");
    let path = dir.join("names.h5");
    {
        let file = rust_hdf5::H5File::create(&path).expect("create");
        let ds = file
            .new_dataset::<u16>()
            .shape([2, 3, 4])
            .create("evil\x1b[2Jname")
            .expect("dataset");
        ds.write_raw(&[0u16; 24]).expect("write");
        file.close().expect("close");
    }
    let err = expect_err(open_movie(&path), "no dataset 'data'");
    assert_error(&err, &path, &["no dataset 'data'", "evil\\u{1b}[2Jname"]);
    let err = expect_err(open_movie_dataset(&path, "x\ny"), "no such dataset");
    assert_error(&err, &path, &["no dataset 'x\\ny'"]);
}

// ---------------------------------------------------------------------------
// TIFF.
// ---------------------------------------------------------------------------

/// A classic little-endian TIFF with one uncompressed 16-bit page of
/// `width` x `height` whose single strip holds `strip_bytes` bytes at the
/// end of the file (`stored` of them actually present).
fn tiff_bytes(width: u32, height: u32, strip_bytes: u32, stored: usize) -> Vec<u8> {
    let entries: [(u16, u16, u32); 9] = [
        (256, 4, width),       // ImageWidth, LONG
        (257, 4, height),      // ImageLength
        (258, 3, 16),          // BitsPerSample, SHORT
        (259, 3, 1),           // Compression: none
        (262, 3, 1),           // Photometric: black is zero
        (273, 4, 0),           // StripOffsets (patched below)
        (277, 3, 1),           // SamplesPerPixel
        (278, 4, height),      // RowsPerStrip
        (279, 4, strip_bytes), // StripByteCounts
    ];
    let ifd_len = 2 + entries.len() * 12 + 4;
    let data_at = (8 + ifd_len) as u32;
    let mut bytes = b"II*\0".to_vec();
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        let value = if tag == 273 { data_at } else { value };
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        if kind == 3 {
            bytes.extend_from_slice(&(value as u16).to_le_bytes());
            bytes.extend_from_slice(&[0, 0]);
        } else {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.resize(bytes.len() + stored, 7);
    bytes
}

#[test]
fn tiff_with_impossible_sizes_is_refused_before_reading() {
    let dir = ScratchDir::new("hostile-tiff");
    // A well-formed small page still reads (the builder above is right).
    let good = dir.join("good.tif");
    std::fs::write(&good, tiff_bytes(3, 2, 12, 12)).expect("write");
    let mut reader = open_movie(&good).expect("a small page opens");
    let mut frame = vec![0.0; 6];
    reader.read_frames(0, 1, &mut frame).expect("read");
    assert_eq!(frame, [1799.0; 6]);

    for (name, width, height, strip, needles) in [
        // 4e9 x 4e9 pixels: more bytes than the file (or any memory) holds.
        (
            "four_billion.tif",
            4_000_000_000u32,
            4_000_000_000u32,
            4096u32,
            &["page 0", "4000000000x4000000000"][..],
        ),
        (
            "hundred_thousand.tif",
            100_000,
            100_000,
            4096,
            &["page 0", "100000x100000 uint16"][..],
        ),
        // A strip that claims more bytes than the file has.
        (
            "strip_past_end.tif",
            64,
            64,
            8192,
            &["strip or tile 0", "file holds only"][..],
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, tiff_bytes(width, height, strip, 4096)).expect("write");
        let err = expect_err(open_movie(&path), name);
        assert_error(&err, &path, needles);
    }
}

// ---------------------------------------------------------------------------
// NIfTI.
// ---------------------------------------------------------------------------

/// The bytes of a small valid int16 `.nii` whose header `dim[1..=4]` is then
/// replaced by `dims`.
fn nii_with_dims(dir: &ScratchDir, dims: [i16; 4]) -> Vec<u8> {
    let path = dir.join("template.nii");
    let new = NewVolume {
        shape: [2, 2, 2],
        frames: 2,
        dtype: NiftiDtype::I16,
        voxel_size: [1.0; 3],
        repetition_time_s: 2.0,
        description: String::new(),
    };
    let mut writer = create_volume(&path, &new).expect("create");
    writer.write_volumes(&[1.0; 16], 2).expect("write");
    writer.finish().expect("finish");
    let mut bytes = std::fs::read(&path).expect("read");
    // NIfTI-1: dim is eight int16 at byte 40; dim[0] = 4 dimensions.
    bytes[40..42].copy_from_slice(&4i16.to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        let at = 42 + 2 * i;
        bytes[at..at + 2].copy_from_slice(&d.to_le_bytes());
    }
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

#[test]
fn nifti_declaring_more_than_the_file_holds_is_refused() {
    let dir = ScratchDir::new("hostile-nifti");
    // A gzip "bomb": 65 KB of compressed zeros declaring 4096x4096x256x2
    // int16 (16 GiB), more than deflate can inflate 65 KB to.
    let mut bomb = nii_with_dims(&dir, [4096, 4096, 256, 2]);
    let path = dir.join("bomb.nii.gz");
    let mut filler = vec![0u8; 64 << 10];
    // Incompressible-ish filler so the compressed file really is ~65 KB.
    let mut state = 12345u32;
    for byte in &mut filler {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *byte = (state >> 24) as u8;
    }
    bomb.extend_from_slice(&filler);
    std::fs::write(&path, gzip(&bomb)).expect("write");
    let err = expect_err(open_volume(&path), "gzip bomb");
    assert_error(
        &err,
        &path,
        &["[4096, 4096, 256, 2] int16", "deflate", "1032:1"],
    );

    // Huge dims in a .nii.gz.
    let path = dir.join("huge.nii.gz");
    let huge = nii_with_dims(&dir, [i16::MAX, i16::MAX, i16::MAX, i16::MAX]);
    std::fs::write(&path, gzip(&huge)).expect("write");
    let err = expect_err(open_volume(&path), "huge .nii.gz");
    assert_error(&err, &path, &["32767", "deflate"]);

    // Huge dims in a plain .nii: compared with the file size.
    let path = dir.join("huge.nii");
    std::fs::write(&path, nii_with_dims(&dir, [4096, 4096, 256, 2])).expect("write");
    let err = expect_err(open_volume(&path), "huge .nii");
    assert_error(&err, &path, &["truncated", "but the file has"]);
}

// ---------------------------------------------------------------------------
// SpikeGLX.
// ---------------------------------------------------------------------------

/// A fresh 4-channel SpikeGLX recording (plus sync); returns the `.bin`
/// and the `.meta` text.
fn fresh_spikeglx(dir: &ScratchDir) -> (std::path::PathBuf, String) {
    let bin = dir.join("rec.ap.bin");
    let spec = NewSpikeGlx {
        sample_rate_hz: 30_000.0,
        positions: neuropixels1_positions(4),
        microvolts_per_bit: 2.34375,
        with_sync_channel: true,
        samples: 10,
    };
    let mut writer = create_spikeglx(&bin, &spec).expect("create");
    writer.write_samples(&[1.0; 40], 10).expect("write");
    writer.finish().expect("finish");
    let meta = std::fs::read_to_string(bin.with_extension("meta")).expect("meta");
    (bin, meta)
}

/// Replaces (or adds) `key=value` lines of a meta text.
fn edit_meta(meta: &str, changes: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = meta
        .lines()
        .filter(|line| {
            !changes.iter().any(|(key, _)| {
                line.trim_start_matches('~')
                    .starts_with(&format!("{}=", key.trim_start_matches('~')))
            })
        })
        .map(str::to_string)
        .collect();
    lines.extend(changes.iter().map(|(key, value)| format!("{key}={value}")));
    lines.join("\n") + "\n"
}

#[test]
fn spikeglx_channel_counts_that_overflow_are_refused() {
    let dir = ScratchDir::new("hostile-sglx-count");
    let (bin, meta) = fresh_spikeglx(&dir);
    let meta_path = bin.with_extension("meta");
    assert!(open_ephys(&bin, None).is_ok(), "the fresh recording opens");
    std::fs::write(
        &meta_path,
        edit_meta(&meta, &[("nSavedChans", "9223372036855930808")]),
    )
    .expect("write");
    let err = expect_err(open_ephys(&bin, None), "huge nSavedChans");
    assert_error(&err, &meta_path, &["nSavedChans=9223372036855930808"]);

    // The CLI's --channels on a headerless file.
    let raw = dir.join("plain.dat");
    std::fs::write(&raw, [0u8; 64]).expect("write");
    let layout = RawLayout {
        channels: 9_223_372_036_855_927_808,
        sample_rate_hz: 30_000.0,
        dtype: Dtype::I16,
    };
    let err = expect_err(open_ephys(&raw, Some(layout)), "huge --channels");
    assert_error(&err, &raw, &["9223372036855927808 channels (--channels)"]);
    // More channels than the file has bytes for one sample.
    let layout = RawLayout {
        channels: 1000,
        ..layout
    };
    let err = expect_err(open_ephys(&raw, Some(layout)), "1000 channels in 64 bytes");
    assert_error(&err, &raw, &["1000 channels", "holds only 64"]);
}

/// A "header" the size of a recording is refused before it is read.
#[test]
fn oversized_header_files_are_refused_before_reading() {
    let dir = ScratchDir::new("hostile-header-size");
    let (bin, _) = fresh_spikeglx(&dir);
    let meta_path = bin.with_extension("meta");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&meta_path)
        .expect("open");
    file.set_len(65 << 20).expect("grow (sparse)");
    drop(file);
    let err = expect_err(open_ephys(&bin, None), "65 MiB .meta");
    assert_error(&err, &meta_path, &["65.0 MiB, too large for a .meta file"]);

    let oebin = write_oebin(dir.path(), "ok", 2);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&oebin)
        .expect("open");
    file.set_len(65 << 20).expect("grow (sparse)");
    drop(file);
    let err = expect_err(open_ephys(&oebin, None), "65 MiB structure.oebin");
    assert_error(&err, &oebin, &["too large for a structure.oebin file"]);
}

#[test]
fn spikeglx_zero_or_non_finite_gains_name_the_field() {
    let dir = ScratchDir::new("hostile-sglx-gain");
    let (bin, meta) = fresh_spikeglx(&dir);
    let meta_path = bin.with_extension("meta");
    for (changes, field) in [
        (
            vec![(
                "~imroTbl",
                "(0,4)(0 0 0 0 250 1)(1 0 0 500 250 1)(2 0 0 500 250 1)(3 0 0 500 250 1)",
            )],
            "the AP gain of channel 0 in ~imroTbl is 0",
        ),
        (vec![("imAiRangeMax", "0")], "imAiRangeMax is 0"),
        (vec![("imAiRangeMax", "-0.6")], "imAiRangeMax is -0.6"),
        (vec![("imAiRangeMax", "NaN")], "imAiRangeMax is NaN"),
        (vec![("imMaxInt", "0")], "imMaxInt is 0"),
    ] {
        std::fs::write(&meta_path, edit_meta(&meta, &changes)).expect("write");
        let err = expect_err(open_ephys(&bin, None), field);
        assert_error(&err, &meta_path, &[field, "positive"]);
    }
}

#[test]
fn spikeglx_meta_text_is_escaped_in_messages() {
    let dir = ScratchDir::new("hostile-sglx-escape");
    let (bin, meta) = fresh_spikeglx(&dir);
    let meta_path = bin.with_extension("meta");
    std::fs::write(&meta_path, format!("{meta}evil\x1b]0;owned\x07line\n")).expect("write");
    let err = expect_err(open_ephys(&bin, None), "line without =");
    assert_error(
        &err,
        &meta_path,
        &["is not key=value", "evil\\u{1b}]0;owned\\u{7}line"],
    );
    std::fs::write(&meta_path, edit_meta(&meta, &[("imMaxInt", "5\x1b[2J")])).expect("write");
    let err = expect_err(open_ephys(&bin, None), "bad number");
    assert_error(
        &err,
        &meta_path,
        &["imMaxInt='5\\u{1b}[2J' is not a valid number"],
    );
}

// ---------------------------------------------------------------------------
// Open Ephys.
// ---------------------------------------------------------------------------

fn write_oebin(dir: &Path, folder_name: &str, num_channels: u64) -> std::path::PathBuf {
    let oebin = dir.join("structure.oebin");
    let document = serde_json::json!({
        "GUI version": "0.6.7",
        "continuous": [{
            "folder_name": folder_name,
            "sample_rate": 30000.0,
            "num_channels": num_channels,
        }]
    });
    std::fs::write(&oebin, document.to_string()).expect("write oebin");
    oebin
}

#[test]
fn open_ephys_folder_names_outside_the_recording_are_refused() {
    let dir = ScratchDir::new("hostile-oebin");
    // Data a hostile oebin would point at, outside the recording folder.
    let outside = dir.join("outside");
    std::fs::create_dir_all(outside.join("continuous/x")).expect("dir");
    std::fs::write(outside.join("continuous/x/continuous.dat"), [0u8; 8]).expect("write");
    let recording = dir.join("recording");
    std::fs::create_dir_all(recording.join("continuous/ok")).expect("dir");
    std::fs::write(recording.join("continuous/ok/continuous.dat"), [0u8; 8]).expect("write");

    let oebin = write_oebin(&recording, "ok/", 2);
    assert!(
        open_ephys(&oebin, None).is_ok(),
        "a plain folder_name opens"
    );
    let escaped_outside = "../../outside/continuous/x";
    for (folder, why) in [
        (escaped_outside, "contains '..'"),
        ("/etc", "is an absolute path"),
        ("..\\..\\outside", "contains '..'"),
        ("", "is empty"),
    ] {
        let oebin = write_oebin(&recording, folder, 2);
        let err = expect_err(open_ephys(&oebin, None), folder);
        assert_error(
            &err,
            &oebin,
            &["folder_name", why, "inside the recording folder"],
        );
    }
    let oebin = write_oebin(&recording, "ok\x1b[2J", 2);
    let err = expect_err(open_ephys(&oebin, None), "escape in folder_name");
    assert_error(
        &err,
        &oebin,
        &["ok\\u{1b}[2J", "contains control characters"],
    );

    let oebin = write_oebin(&recording, "ok", 9_223_372_036_854_775_807);
    let err = expect_err(open_ephys(&oebin, None), "huge num_channels");
    assert_error(&err, &oebin, &["num_channels=9223372036854775807"]);
}

// ---------------------------------------------------------------------------
// Open Ephys legacy.
// ---------------------------------------------------------------------------

/// Copies the 16 channel files of the example recording into `dir`.
fn copy_legacy_example(dir: &ScratchDir) -> Vec<std::path::PathBuf> {
    let source = fixture("data/ephys/openephys_example_data_v0.6.7");
    let mut copies = Vec::new();
    for entry in std::fs::read_dir(&source).expect("example folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains("_CH") && name.ends_with(".continuous") {
            let copy = dir.join(name);
            std::fs::copy(&path, &copy).expect("copy");
            copies.push(copy);
        }
    }
    assert_eq!(copies.len(), 16, "the example has 16 channel files");
    copies
}

#[test]
fn legacy_channels_of_unequal_length_are_an_error_unless_cut() {
    let dir = ScratchDir::new("hostile-legacy");
    copy_legacy_example(&dir);
    let short = dir.join("100_example-data_CH3.continuous");
    // Keep the 1024-byte header and 10 whole records of 2070 bytes.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .expect("open");
    file.set_len(1024 + 10 * 2070 + 100).expect("truncate");
    drop(file);

    let err = expect_err(open_ephys(dir.path(), None), "one short channel");
    assert_error(
        &err,
        &short,
        &[
            "holds 10 whole records",
            "15 of the 16 channel files",
            "130",
        ],
    );
    let options = EphysOptions {
        raw: None,
        cut_to_shortest: true,
    };
    let reader = open_ephys_with(dir.path(), &options).expect("cut to the shortest");
    assert_eq!(reader.info().samples, 10 * 1024);
}

#[test]
fn legacy_header_fields_are_checked() {
    let dir = ScratchDir::new("hostile-legacy-header");
    let files = copy_legacy_example(&dir);
    let target = files
        .iter()
        .find(|p| p.ends_with("100_example-data_CH1.continuous"))
        .expect("CH1")
        .clone();
    let original = std::fs::read(&target).expect("read");
    let header = String::from_utf8_lossy(&original[..1024]).into_owned();
    for (from, to, needle) in [
        (
            "header.blockLength = 1024;",
            "header.blockLength = 9999999;",
            "header.blockLength = 9999999 is not a whole number from 1 to 65535",
        ),
        (
            "header.sampleRate = 40000;",
            "header.sampleRate = 20000000;",
            "header.sampleRate = 20000000 is not a sample rate",
        ),
        (
            "header.sampleRate = 40000;",
            "header.sampleRate = \x1b[2J;",
            "header.sampleRate = '\\u{1b}[2J' is not a number",
        ),
    ] {
        assert!(header.contains(from), "example header lacks '{from}'");
        let mut text = header.replacen(from, to, 1).into_bytes();
        text.resize(1024, b' ');
        let mut bytes = text;
        bytes.extend_from_slice(&original[1024..]);
        std::fs::write(&target, &bytes).expect("write");
        let err = expect_err(open_ephys(&target, None), needle);
        assert_error(&err, &target, &[needle]);
    }
}

// ---------------------------------------------------------------------------
// Keras .h5
// ---------------------------------------------------------------------------

/// A small Keras-layout file whose one weight declares 100000 x 100000
/// float32 (37 GiB) with no data written: refused before the read
/// allocates, and
/// its (hostile) name is echoed escaped.
#[test]
fn keras_weight_declaring_more_than_the_file_holds_is_refused() {
    let dir = ScratchDir::new("hostile-keras");
    let path = dir.join("model.h5");
    let layer = "dense\x1b[2J";
    {
        // The layout h5py (and so Keras) writes.
        let file = rust_hdf5::H5File::options()
            .libver(rust_hdf5::LibverBound::Earliest)
            .create(&path)
            .expect("create");
        file.set_attr_string("model_config", "{}").expect("config");
        let weights = file.create_group("model_weights").expect("group");
        weights
            .set_attr_string_array("layer_names", &[layer])
            .expect("layer_names");
        let group = weights.create_group(layer).expect("layer group");
        let kernel = format!("{layer}/kernel:0");
        group
            .set_attr_string_array("weight_names", &[kernel.as_str()])
            .expect("weight_names");
        group
            .create_group(layer)
            .expect("inner group")
            .new_dataset::<f32>()
            .shape([10_000_000, 10_000_000])
            // Chunked with no chunk written, so the file stays small (a
            // contiguous one is allocated, sparsely, at its full size).
            .chunk(&[100, 100])
            .create("kernel:0")
            .expect("dataset");
        file.close().expect("close");
    }
    let err = expect_err(read_keras_model(&path), "huge weight");
    assert_error(
        &err,
        &path,
        &["dense\\u{1b}[2J/kernel:0", "would need", "budget"],
    );
}

// ---------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------

fn npy_with_header(dict: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[test]
fn npy_shapes_that_overflow_or_exceed_the_file_are_refused() {
    let dir = ScratchDir::new("hostile-npy");
    let cases = [
        (
            "overflow.npy",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
            "too large to be real",
        ),
        (
            "big.npy",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
            "(truncated?)",
        ),
        (
            "escape.npy",
            "{'descr': '<f4\x1b\x07', 'fortran_order': False, 'shape': (2,), }",
            "dtype '<f4\\u{1b}\\u{7}' is not supported",
        ),
    ];
    for (name, dict, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, npy_with_header(dict, &[0u8; 8])).expect("write");
        let err = expect_err(read_npy_f32(&path), name);
        assert_error(&err, &path, &[needle]);
    }
}

// ---------------------------------------------------------------------------
// Files that are not regular files.
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn fifos_devices_and_directories_are_named_for_what_they_are() {
    let dir = ScratchDir::new("hostile-kinds");
    let fifo = dir.join("pipe.h5");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
    let err = expect_err(open_movie(&fifo), "FIFO");
    assert_error(&err, &fifo, &["is a FIFO", "a regular file is needed"]);

    let zero = dir.join("zero.tif");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let err = expect_err(open_movie(&zero), "/dev/zero");
    assert_error(
        &err,
        &zero,
        &["is a character device", "a regular file is needed"],
    );

    let folder = dir.join("folder.nii");
    std::fs::create_dir(&folder).expect("dir");
    let err = expect_err(open_volume(&folder), "directory");
    assert_error(
        &err,
        &folder,
        &["is a directory", "a regular file is needed"],
    );
}
