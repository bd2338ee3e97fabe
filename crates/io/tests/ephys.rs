//! Electrophysiology recordings: every format read (raw, SpikeGLX, Open Ephys
//! binary and legacy), the real example files, writers shaped like their
//! source (int16 rounding and clipping, sync passthrough, headers), fresh
//! SpikeGLX recordings, and the one-line errors for bad inputs.

mod common;

use std::path::{Path, PathBuf};

use common::{ScratchDir, fixture};
use deepinterp_io::{
    Dtype, EphysFormat, EphysReader, IoError, NewSpikeGlx, RawLayout, create_ephys_like,
    create_spikeglx, is_ephys_path, neuropixels1_positions, open_ephys,
};

fn legacy_example() -> PathBuf {
    fixture("data/ephys/openephys_example_data_v0.6.7")
}

fn layout(channels: usize, sample_rate_hz: f64) -> RawLayout {
    RawLayout {
        channels,
        sample_rate_hz,
        dtype: Dtype::I16,
    }
}

/// Writes int16 values little-endian.
fn write_i16(path: &Path, values: &[i16]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write test file");
}

fn decode_i16_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))
        .collect()
}

fn read_all_samples(reader: &mut dyn EphysReader) -> Vec<f32> {
    let info = reader.info().clone();
    let mut out = vec![0.0; info.samples * info.neural_channels.len()];
    reader
        .read_samples(0, info.samples, &mut out)
        .expect("read");
    out
}

fn read_all_saved(reader: &mut dyn EphysReader) -> Vec<f32> {
    let info = reader.info().clone();
    let mut out = vec![0.0; info.samples * info.saved_channels];
    reader.read_saved(0, info.samples, &mut out).expect("read");
    out
}

/// The error must be one line starting with `path`.
fn assert_one_line_naming(err: &IoError, path: &Path) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "multi-line error: {message}");
    assert!(
        message.starts_with(&path.display().to_string()),
        "error does not start with {}: {message}",
        path.display()
    );
}

fn meta_value(meta: &str, key: &str) -> Option<String> {
    meta.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

// ---------------------------------------------------------------------------
// Raw.
// ---------------------------------------------------------------------------

#[test]
fn raw_round_trip_rounds_half_to_even_and_counts_clipping() {
    let dir = ScratchDir::new("ephys-raw");
    let source_path = dir.join("source.dat");
    let channels = 3;
    let samples = 50;
    let values: Vec<i16> = (0..samples * channels)
        .map(|i| (i as i16) * 7 - 300)
        .collect();
    write_i16(&source_path, &values);
    let source = open_ephys(&source_path, Some(layout(channels, 20_000.0))).expect("open");
    assert_eq!(source.info().format, EphysFormat::Raw);
    assert_eq!(source.info().samples, samples);
    assert_eq!(source.info().neural_channels, [0, 1, 2]);

    let mut neural: Vec<f32> = values.iter().map(|&v| f32::from(v)).collect();
    neural[0] = 1.5; // -> 2
    neural[1] = 2.5; // -> 2 (ties to even)
    neural[2] = -0.5; // -> 0
    neural[3] = 40_000.0; // clipped
    neural[4] = -40_000.0; // clipped
    neural[5] = f32::NAN; // clipped, written as 0
    let output = dir.join("denoised.dat");
    let mut writer =
        create_ephys_like(source.as_ref(), &output, Dtype::I16, samples, 0).expect("create");
    writer
        .write_samples(&neural[..20 * channels], 20)
        .expect("write");
    writer
        .write_samples(&neural[20 * channels..], 30)
        .expect("write");
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.frames, samples);
    assert_eq!(summary.clipped_values, 3);
    assert_eq!(summary.path, output);
    assert_eq!(dir.file_names(), ["denoised.dat", "source.dat"]);

    let mut back = open_ephys(&output, Some(layout(channels, 20_000.0))).expect("reopen");
    let read = read_all_samples(back.as_mut());
    assert_eq!(&read[..6], &[2.0, 2.0, 0.0, 32767.0, -32768.0, 0.0]);
    assert_eq!(&read[6..], &neural[6..]);

    // float32 output keeps values exactly.
    let output = dir.join("denoised_f32.dat");
    let mut writer =
        create_ephys_like(source.as_ref(), &output, Dtype::F32, 10, 5).expect("create");
    let fractional: Vec<f32> = (0..10 * channels).map(|i| i as f32 * 0.37 - 4.0).collect();
    writer.write_samples(&fractional, 10).expect("write");
    assert_eq!(writer.finish().expect("finish").clipped_values, 0);
    let float_layout = RawLayout {
        channels,
        sample_rate_hz: 20_000.0,
        dtype: Dtype::F32,
    };
    let mut back = open_ephys(&output, Some(float_layout)).expect("reopen");
    assert_eq!(back.info().dtype, Dtype::F32);
    assert_eq!(read_all_samples(back.as_mut()), fractional);
}

#[test]
fn raw_reads_only_the_requested_range() {
    let dir = ScratchDir::new("ephys-raw-range");
    let path = dir.join("x.bin");
    let values: Vec<i16> = (0..4 * 1000).map(|i| (i % 3000) as i16 - 1500).collect();
    write_i16(&path, &values);
    let mut reader = open_ephys(&path, Some(layout(4, 1000.0))).expect("open");
    let mut out = vec![0.0; 7 * 4];
    reader.read_samples(993, 7, &mut out).expect("read");
    let expected: Vec<f32> = values[993 * 4..].iter().map(|&v| f32::from(v)).collect();
    assert_eq!(out, expected);
    reader.read_samples(0, 0, &mut []).expect("empty read");
}

#[test]
fn tetrode_raw_file_reads_with_a_layout() {
    // The first 30,000 samples (2 s) of the real locust tetrode recording.
    let path = fixture("data/ephys/tdc_locust_trial_01_first30000.raw");
    let err = open_ephys(&path, None).err().expect("needs a layout");
    assert_one_line_naming(&err, &path);
    assert!(
        err.to_string()
            .ends_with("no .meta or structure.oebin beside it: give --channels and --sample-rate"),
        "{err}"
    );

    let mut reader = open_ephys(&path, Some(layout(4, 15_000.0))).expect("open");
    let info = reader.info().clone();
    assert_eq!(info.samples, 30_000);
    assert_eq!(info.saved_channels, 4);
    assert_eq!(info.sample_rate_hz, 15_000.0);
    assert_eq!(info.microvolts_per_bit, None);

    let bytes = std::fs::read(&path).expect("read file");
    let start = 20_000;
    let count = 3000;
    let mut out = vec![0.0; count * 4];
    reader.read_samples(start, count, &mut out).expect("read");
    assert_eq!(out, decode_i16_le(&bytes[start * 8..(start + count) * 8]));
    // The last samples too.
    let mut tail = vec![0.0; 2 * 4];
    reader
        .read_samples(29_998, 2, &mut tail)
        .expect("read tail");
    assert_eq!(tail, decode_i16_le(&bytes[bytes.len() - 16..]));
}

#[test]
fn golden_dat_reads_400_samples_of_384_channels() {
    let path = fixture("keras/ephys_input_raw_400x384_int16.dat");
    let mut reader = open_ephys(&path, Some(layout(384, 30_000.0))).expect("open");
    assert_eq!(reader.info().samples, 400);
    assert_eq!(reader.info().neural_channels.len(), 384);
    let bytes = std::fs::read(&path).expect("read file");
    assert_eq!(read_all_samples(reader.as_mut()), decode_i16_le(&bytes));
}

// ---------------------------------------------------------------------------
// SpikeGLX.
// ---------------------------------------------------------------------------

/// Writes a fresh NP1 SpikeGLX recording whose neural value at sample `t`,
/// channel `c` is `neural_value(t, c)`.
fn write_fresh_spikeglx(path: &Path, channels: usize, samples: usize, with_sync: bool) {
    let spec = NewSpikeGlx {
        sample_rate_hz: 30_000.0,
        positions: neuropixels1_positions(channels),
        microvolts_per_bit: 2.34375,
        with_sync_channel: with_sync,
        samples,
    };
    let mut writer = create_spikeglx(path, &spec).expect("create spikeglx");
    let values: Vec<f32> = (0..samples)
        .flat_map(|t| (0..channels).map(move |c| neural_value(t, c)))
        .collect();
    writer.write_samples(&values, samples).expect("write");
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.frames, samples);
    assert_eq!(summary.clipped_values, 0);
}

fn neural_value(t: usize, c: usize) -> f32 {
    ((t * 31 + c * 7) % 401) as f32 - 200.0
}

#[test]
fn fresh_spikeglx_recording_reopens_with_gains_and_positions() {
    let dir = ScratchDir::new("ephys-sglx-fresh");
    let bin = dir.join("sim_g0_t0.imec0.ap.bin");
    let samples = 120;
    write_fresh_spikeglx(&bin, 384, samples, true);
    assert_eq!(
        dir.file_names(),
        ["sim_g0_t0.imec0.ap.bin", "sim_g0_t0.imec0.ap.meta"]
    );

    let meta = std::fs::read_to_string(dir.join("sim_g0_t0.imec0.ap.meta")).expect("meta");
    for key in [
        "acqApLfSy",
        "appVersion",
        "fileName",
        "fileSizeBytes",
        "fileTimeSecs",
        "firstSample",
        "imAiRangeMax",
        "imAiRangeMin",
        "imMaxInt",
        "imDatPrb_type",
        "imSampRate",
        "nSavedChans",
        "snsApLfSy",
        "snsSaveChanSubset",
        "typeThis",
        "~imroTbl",
        "~snsChanMap",
        "~snsShankMap",
        "~snsGeomMap",
    ] {
        assert!(
            meta_value(&meta, key).is_some(),
            "meta lacks {key}:\n{meta}"
        );
    }
    assert_eq!(meta_value(&meta, "nSavedChans").as_deref(), Some("385"));
    assert_eq!(meta_value(&meta, "snsApLfSy").as_deref(), Some("384,0,1"));
    assert_eq!(meta_value(&meta, "imAiRangeMax").as_deref(), Some("0.6"));
    assert_eq!(
        meta_value(&meta, "fileSizeBytes"),
        Some((samples * 385 * 2).to_string())
    );

    for path in [bin.clone(), dir.join("sim_g0_t0.imec0.ap.meta")] {
        let mut reader = open_ephys(&path, None).expect("open");
        let info = reader.info().clone();
        assert_eq!(info.format, EphysFormat::SpikeGlx);
        assert_eq!(info.samples, samples);
        assert_eq!(info.saved_channels, 385);
        assert_eq!(info.neural_channels, (0..384).collect::<Vec<_>>());
        assert_eq!(info.sample_rate_hz, 30_000.0);
        assert_eq!(info.dtype, Dtype::I16);
        let gains = info.microvolts_per_bit.expect("gains");
        assert_eq!(gains.len(), 384);
        assert!(
            gains.iter().all(|&g| (g - 2.34375).abs() < 1e-12),
            "{gains:?}"
        );
        assert_eq!(info.positions, Some(neuropixels1_positions(384)));

        let neural = read_all_samples(reader.as_mut());
        assert_eq!(neural[384 * 7 + 5], neural_value(7, 5));
        let saved = read_all_saved(reader.as_mut());
        assert!(saved.chunks_exact(385).all(|row| row[384] == 0.0));
        assert_eq!(saved[385 * 9 + 100], neural_value(9, 100));
    }
}

#[test]
fn neuropixels1_geometry_is_four_staggered_columns() {
    let p = neuropixels1_positions(6);
    let xy: Vec<(f32, f32, u32)> = p.iter().map(|p| (p.x_um, p.y_um, p.shank)).collect();
    assert_eq!(
        xy,
        [
            (43.0, 0.0, 0),
            (11.0, 0.0, 0),
            (59.0, 20.0, 0),
            (27.0, 20.0, 0),
            (43.0, 40.0, 0),
            (11.0, 40.0, 0)
        ]
    );
    assert_eq!(neuropixels1_positions(960).len(), 960);
}

#[test]
fn spikeglx_sync_channel_passes_through_and_meta_is_updated() {
    let dir = ScratchDir::new("ephys-sglx-sync");
    let bin = dir.join("rec.ap.bin");
    let channels = 8;
    let samples = 64;
    write_fresh_spikeglx(&bin, channels, samples, true);
    // Give the sync channel a nonzero pattern by editing the raw bytes.
    let sync_value = |t: usize| ((t * 3 + 1) % 64) as i16 - 10;
    let mut bytes = std::fs::read(&bin).expect("read bin");
    for t in 0..samples {
        let at = (t * (channels + 1) + channels) * 2;
        bytes[at..at + 2].copy_from_slice(&sync_value(t).to_le_bytes());
    }
    std::fs::write(&bin, &bytes).expect("write bin");

    let source = open_ephys(&bin, None).expect("open");
    let first = 10;
    let count = 40;
    for (dtype, name) in [(Dtype::I16, "out.ap.bin"), (Dtype::F32, "out_f32.ap.bin")] {
        let output = dir.join(name);
        let mut writer =
            create_ephys_like(source.as_ref(), &output, dtype, count, first).expect("create");
        let neural: Vec<f32> = (0..count * channels)
            .map(|i| (i as f32) * 0.5 - 7.25)
            .collect();
        writer
            .write_samples(&neural[..13 * channels], 13)
            .expect("write");
        writer
            .write_samples(&neural[13 * channels..], count - 13)
            .expect("write");
        let summary = writer.finish().expect("finish");
        assert_eq!(summary.frames, count);

        let meta_path = output.with_extension("meta");
        let meta = std::fs::read_to_string(&meta_path).expect("output meta");
        let size = count * (channels + 1) * dtype.size_bytes();
        assert_eq!(meta_value(&meta, "fileSizeBytes"), Some(size.to_string()));
        assert_eq!(std::fs::metadata(&output).expect("stat").len(), size as u64);
        assert_eq!(
            meta_value(&meta, "deepinterpFirstSample").as_deref(),
            Some("10")
        );
        assert_eq!(meta_value(&meta, "firstSample").as_deref(), Some("10"));
        let recorded_source = meta_value(&meta, "deepinterpSource").expect("source key");
        assert!(recorded_source.ends_with("rec.ap.bin"), "{recorded_source}");
        assert!(
            meta_value(&meta, "~imroTbl").is_some(),
            "tables keep their ~"
        );
        assert_eq!(
            meta_value(&meta, "deepinterpDtype").as_deref(),
            (dtype == Dtype::F32).then_some("float32")
        );

        let mut back = open_ephys(&output, None).expect("reopen output");
        let info = back.info().clone();
        assert_eq!(info.dtype, dtype);
        assert_eq!(info.samples, count);
        assert_eq!(info.saved_channels, channels + 1);
        assert_eq!(info.positions, Some(neuropixels1_positions(channels)));
        let saved = read_all_saved(back.as_mut());
        for (i, row) in saved.chunks_exact(channels + 1).enumerate() {
            assert_eq!(
                row[channels],
                f32::from(sync_value(first + i)),
                "sample {i}"
            );
        }
        let read = read_all_samples(back.as_mut());
        match dtype {
            Dtype::F32 => assert_eq!(read, neural),
            _ => {
                let rounded: Vec<f32> = neural.iter().map(|v| v.round_ties_even()).collect();
                assert_eq!(read, rounded);
            }
        }
    }
    // The sources are untouched.
    assert_eq!(std::fs::read(&bin).expect("read bin"), bytes);
}

#[test]
fn spikeglx_meta_with_subset_shank_map_and_mixed_gains() {
    let dir = ScratchDir::new("ephys-sglx-meta");
    let bin = dir.join("old.imec.ap.bin");
    let saved = 5;
    let samples = 10;
    write_i16(&bin, &vec![3; saved * samples]);
    let meta = format!(
        "acqApLfSy=384,384,1\nappVersion=20190327\nfileSizeBytes={}\nimSampRate=30000.5\n\
         nSavedChans=5\nsnsApLfSy=4,0,1\nsnsSaveChanSubset=0:3,768\ntypeThis=imec\n\
         ~imroTbl=(0,384)(0 0 0 500 250 1)(1 0 0 250 250 1)(2 0 0 1000 250 1)(3 0 0 500 250 1)\n\
         ~snsShankMap=(1,2,480)(0:1:0:1)(0:0:0:1)(0:1:1:1)(0:0:1:1)\n",
        saved * samples * 2
    );
    std::fs::write(bin.with_extension("meta"), meta).expect("write meta");
    let reader = open_ephys(&bin, None).expect("open");
    let info = reader.info();
    assert_eq!(info.neural_channels, [0, 1, 2, 3]);
    assert_eq!(info.sample_rate_hz, 30_000.5);
    assert_eq!(
        info.microvolts_per_bit.as_deref(),
        Some(&[2.34375, 4.6875, 1.171875, 2.34375][..])
    );
    assert_eq!(info.positions, Some(neuropixels1_positions(4)));

    // A raw layout that agrees with the header is accepted; one that does not is an error.
    assert!(open_ephys(&bin, Some(layout(5, 30_000.0))).is_ok());
    assert!(open_ephys(&bin, Some(layout(4, 30_000.0))).is_ok());
    let err = open_ephys(&bin, Some(layout(64, 30_000.0)))
        .err()
        .expect("disagrees");
    assert_one_line_naming(&err, &bin);
    assert!(err.to_string().contains("64 channels"), "{err}");
}

#[test]
fn truncated_spikeglx_bin_is_an_error() {
    let dir = ScratchDir::new("ephys-sglx-truncated");
    let bin = dir.join("cut.ap.bin");
    write_fresh_spikeglx(&bin, 4, 100, true);
    let bytes = std::fs::read(&bin).expect("read");
    // Cut a whole number of samples off: only fileSizeBytes can tell.
    std::fs::write(&bin, &bytes[..bytes.len() - 10 * 5 * 2]).expect("cut");
    let err = open_ephys(&bin, None).err().expect("truncated");
    assert_one_line_naming(&err, &bin);
    assert!(err.to_string().contains("truncated"), "{err}");
    // Cut mid-sample, and without fileSizeBytes to compare with.
    std::fs::write(&bin, &bytes[..bytes.len() - 3]).expect("cut");
    let meta_path = bin.with_extension("meta");
    let meta = std::fs::read_to_string(&meta_path).expect("meta");
    let meta: String = meta
        .lines()
        .filter(|l| !l.starts_with("fileSizeBytes="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&meta_path, meta).expect("write meta");
    let err = open_ephys(&bin, None).err().expect("truncated");
    assert_one_line_naming(&err, &bin);
    assert!(
        err.to_string()
            .contains("is not a whole number of samples of 5 channels × 2 bytes (truncated?)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Open Ephys binary.
// ---------------------------------------------------------------------------

const OE_CHANNELS: usize = 4;
const OE_SAMPLES: usize = 300;

/// `rec/structure.oebin` with one stream of three µV channels and one ADC
/// channel, and its `continuous.dat`. Returns the recording folder.
fn write_open_ephys_binary(dir: &ScratchDir) -> PathBuf {
    let rec = dir.join("rec");
    let stream = rec.join("continuous").join("Neuropix-PXI-100.0");
    std::fs::create_dir_all(&stream).expect("mkdir");
    let oebin = r#"{
        "GUI version": "0.6.4",
        "continuous": [{
            "folder_name": "Neuropix-PXI-100.0/",
            "sample_rate": 30000.0,
            "source_processor_name": "Neuropix-PXI",
            "num_channels": 4,
            "channels": [
                {"channel_name": "CH1", "bit_volts": 0.195, "units": "uV"},
                {"channel_name": "CH2", "bit_volts": 0.195, "units": "uV"},
                {"channel_name": "ADC1", "bit_volts": 0.00015, "units": "V"},
                {"channel_name": "CH3", "bit_volts": 0.195, "units": "uV"}
            ]
        }],
        "events": [],
        "spikes": []
    }"#;
    std::fs::write(rec.join("structure.oebin"), oebin).expect("write oebin");
    let values: Vec<i16> = (0..OE_SAMPLES * OE_CHANNELS)
        .map(|i| oe_value(i / OE_CHANNELS, i % OE_CHANNELS))
        .collect();
    write_i16(&stream.join("continuous.dat"), &values);
    rec
}

fn oe_value(t: usize, c: usize) -> i16 {
    if c == 2 {
        (t % 2) as i16 * 5000 // the ADC: a TTL-like square wave
    } else {
        ((t * 13 + c * 101) % 997) as i16 - 498
    }
}

#[test]
fn open_ephys_binary_opens_by_every_path_form() {
    let dir = ScratchDir::new("ephys-oe");
    let rec = write_open_ephys_binary(&dir);
    let dat = rec.join("continuous/Neuropix-PXI-100.0/continuous.dat");
    for path in [rec.clone(), rec.join("structure.oebin"), dat.clone()] {
        assert!(is_ephys_path(&path), "{}", path.display());
        let mut reader = open_ephys(&path, None).expect("open");
        assert_eq!(reader.path(), path);
        let info = reader.info().clone();
        assert_eq!(info.format, EphysFormat::OpenEphysBinary);
        assert_eq!(info.samples, OE_SAMPLES);
        assert_eq!(info.saved_channels, 4);
        assert_eq!(info.neural_channels, [0, 1, 3]);
        assert_eq!(info.sample_rate_hz, 30_000.0);
        assert_eq!(info.microvolts_per_bit, Some(vec![0.195; 3]));
        assert_eq!(info.positions, None);
        let neural = read_all_samples(reader.as_mut());
        assert_eq!(neural[3 * 5 + 2], f32::from(oe_value(5, 3)));
    }
}

#[test]
fn open_ephys_binary_output_has_its_own_oebin_and_keeps_the_adc() {
    let dir = ScratchDir::new("ephys-oe-out");
    let rec = write_open_ephys_binary(&dir);
    let source = open_ephys(&rec, None).expect("open");

    // Writing beside the source's own structure.oebin is refused.
    let err = create_ephys_like(
        source.as_ref(),
        &rec.join("denoised.dat"),
        Dtype::I16,
        10,
        0,
    )
    .err()
    .expect("refused");
    assert_one_line_naming(&err, &rec.join("structure.oebin"));

    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let first = 100;
    let count = 150;
    let neural: Vec<f32> = (0..count * 3).map(|i| (i % 50) as f32 - 25.0).collect();
    for (name, dtype) in [
        ("denoised.dat", Dtype::I16),
        ("denoised_f32.dat", Dtype::F32),
    ] {
        let output = out_dir.join(name);
        let mut writer =
            create_ephys_like(source.as_ref(), &output, dtype, count, first).expect("create");
        writer.write_samples(&neural, count).expect("write");
        writer.finish().expect("finish");
    }
    let mut names = std::fs::read_dir(&out_dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(
        names,
        ["denoised.dat", "denoised_f32.dat", "structure.oebin"]
    );

    for (path, dtype) in [
        (out_dir.join("denoised.dat"), Dtype::I16),
        (out_dir.clone(), Dtype::I16),
        (out_dir.join("structure.oebin"), Dtype::I16),
        (out_dir.join("denoised_f32.dat"), Dtype::F32),
    ] {
        let mut back = open_ephys(&path, None).expect("reopen output");
        let info = back.info().clone();
        assert_eq!(info.format, EphysFormat::OpenEphysBinary);
        assert_eq!(info.dtype, dtype, "{}", path.display());
        assert_eq!(info.samples, count);
        assert_eq!(info.neural_channels, [0, 1, 3]);
        assert_eq!(read_all_samples(back.as_mut()), neural);
        let saved = read_all_saved(back.as_mut());
        for (i, row) in saved.chunks_exact(4).enumerate() {
            assert_eq!(row[2], f32::from(oe_value(first + i, 2)), "ADC at {i}");
        }
    }
}

// ---------------------------------------------------------------------------
// Open Ephys legacy.
// ---------------------------------------------------------------------------

/// Decodes the first `count` samples of a legacy `.continuous` file by hand.
fn decode_legacy_by_hand(path: &Path, count: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("read channel file");
    let mut values = Vec::new();
    let mut record = 1024;
    while values.len() < count {
        let stored = u16::from_le_bytes([bytes[record + 8], bytes[record + 9]]);
        assert_eq!(stored, 1024);
        let samples = &bytes[record + 12..record + 12 + 2048];
        values.extend(
            samples
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_be_bytes([b[0], b[1]]))),
        );
        assert_eq!(
            &bytes[record + 2060..record + 2070],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 255]
        );
        record += 2070;
    }
    values.truncate(count);
    values
}

#[test]
fn legacy_example_reads_sixteen_channels() {
    let folder = legacy_example();
    let ch1 = folder.join("100_example-data_CH1.continuous");
    let ch10 = folder.join("100_example-data_CH10.continuous");
    for path in [folder.clone(), ch1.clone(), ch10.clone()] {
        assert!(is_ephys_path(&path));
        let mut reader = open_ephys(&path, None).expect("open");
        let info = reader.info().clone();
        assert_eq!(info.format, EphysFormat::OpenEphysLegacy);
        assert_eq!(info.saved_channels, 16);
        assert_eq!(info.neural_channels, (0..16).collect::<Vec<_>>());
        assert_eq!(info.samples, 133_120);
        assert_eq!(info.sample_rate_hz, 40_000.0);
        assert_eq!(info.microvolts_per_bit, Some(vec![0.05; 16]));

        // Across a record boundary (1024), from the start.
        let count = 1500;
        let mut out = vec![0.0; count * 16];
        reader.read_samples(0, count, &mut out).expect("read");
        let column = |c: usize| out.iter().skip(c).step_by(16).copied().collect::<Vec<_>>();
        let by_hand_ch1 = decode_legacy_by_hand(&ch1, count);
        assert_eq!(&by_hand_ch1[..5], &[-55.0, -43.0, -53.0, -64.0, -80.0]);
        assert_eq!(column(0), by_hand_ch1);
        // Channels are in channel-number order: index 9 is CH10, not CH2.
        assert_eq!(column(9), decode_legacy_by_hand(&ch10, count));

        // A range inside the recording.
        let mut part = vec![0.0; 100 * 16];
        reader.read_samples(1000, 100, &mut part).expect("read");
        assert_eq!(&part[..], &out[1000 * 16..1100 * 16]);
        // The very end.
        let mut end = vec![0.0; 16];
        reader.read_samples(133_119, 1, &mut end).expect("read end");
    }
}

#[test]
fn legacy_output_is_little_endian_interleaved() {
    let dir = ScratchDir::new("ephys-legacy-out");
    let source = open_ephys(&legacy_example(), None).expect("open");
    let mut source_reader = open_ephys(&legacy_example(), None).expect("open");
    let count = 2100;
    let mut values = vec![0.0; count * 16];
    source_reader
        .read_samples(500, count, &mut values)
        .expect("read");
    let output = dir.join("legacy_as_raw.dat");
    let mut writer =
        create_ephys_like(source.as_ref(), &output, Dtype::I16, count, 500).expect("create");
    writer.write_samples(&values, count).expect("write");
    writer.finish().expect("finish");
    assert_eq!(dir.file_names(), ["legacy_as_raw.dat"]);
    let bytes = std::fs::read(&output).expect("read output");
    assert_eq!(decode_i16_le(&bytes), values);
}

// ---------------------------------------------------------------------------
// Paths, atomic output, errors.
// ---------------------------------------------------------------------------

#[test]
fn ephys_paths_are_told_apart_from_movies() {
    let dir = ScratchDir::new("ephys-paths");
    for name in [
        "a.dat",
        "a.raw",
        "a.bin",
        "a.ap.bin",
        "a.ap.meta",
        "x/structure.oebin",
    ] {
        assert!(is_ephys_path(Path::new(name)), "{name}");
    }
    for name in ["movie.h5", "movie.tif", "brain.nii.gz", "model.npy"] {
        assert!(!is_ephys_path(Path::new(name)), "{name}");
    }
    // A Suite2p data.bin is a two-photon movie.
    std::fs::write(dir.join("ops.npy"), b"x").expect("write");
    assert!(!is_ephys_path(&dir.join("data.bin")));
    // A folder is judged by what it holds.
    assert!(!is_ephys_path(dir.path()));
    assert!(is_ephys_path(&legacy_example()));
}

#[test]
fn unfinished_writers_leave_no_files() {
    let dir = ScratchDir::new("ephys-atomic");
    let source_path = dir.join("src.dat");
    write_i16(&source_path, &[1; 2 * 30]);
    let source = open_ephys(&source_path, Some(layout(2, 1000.0))).expect("open");

    let output = dir.join("out.dat");
    let mut writer =
        create_ephys_like(source.as_ref(), &output, Dtype::I16, 30, 0).expect("create");
    writer.write_samples(&[0.0; 2 * 10], 10).expect("write");
    drop(writer);
    assert_eq!(dir.file_names(), ["src.dat"]);

    // Too few samples: finish fails and leaves nothing.
    let mut writer =
        create_ephys_like(source.as_ref(), &output, Dtype::I16, 30, 0).expect("create");
    writer.write_samples(&[0.0; 2 * 10], 10).expect("write");
    let err = writer.finish().expect_err("too few");
    assert_one_line_naming(&err, &output);
    assert_eq!(dir.file_names(), ["src.dat"]);

    // A fresh SpikeGLX recording dropped early leaves neither .bin nor .meta.
    let spec = NewSpikeGlx {
        sample_rate_hz: 30_000.0,
        positions: neuropixels1_positions(4),
        microvolts_per_bit: 2.34375,
        with_sync_channel: true,
        samples: 10,
    };
    let writer = create_spikeglx(&dir.join("sim.ap.bin"), &spec).expect("create");
    drop(writer);
    assert_eq!(dir.file_names(), ["src.dat"]);
}

#[test]
fn bad_inputs_give_one_line_errors_naming_the_path() {
    let dir = ScratchDir::new("ephys-errors");

    // Missing file.
    let missing = dir.join("missing.dat");
    let err = open_ephys(&missing, Some(layout(4, 1000.0)))
        .err()
        .expect("missing");
    assert!(matches!(err, IoError::NotFound { .. }));
    assert_one_line_naming(&err, &missing);

    // Size not a whole number of samples.
    let odd = dir.join("odd.dat");
    std::fs::write(&odd, [0u8; 13]).expect("write");
    let err = open_ephys(&odd, Some(layout(2, 1000.0)))
        .err()
        .expect("odd size");
    assert_one_line_naming(&err, &odd);
    assert!(
        err.to_string().contains(
            "file size 13 is not a whole number of samples of 2 channels × 2 bytes (truncated?)"
        ),
        "{err}"
    );

    // Empty file.
    let empty = dir.join("empty.dat");
    std::fs::write(&empty, []).expect("write");
    let err = open_ephys(&empty, Some(layout(2, 1000.0)))
        .err()
        .expect("empty");
    assert_one_line_naming(&err, &empty);

    // Impossible layouts.
    let good = dir.join("good.dat");
    write_i16(&good, &[0; 40]);
    for bad in [layout(0, 1000.0), layout(2, 0.0), layout(2, f64::NAN)] {
        let err = open_ephys(&good, Some(bad)).err().expect("bad layout");
        assert_one_line_naming(&err, &good);
    }
    let err = open_ephys(
        &good,
        Some(RawLayout {
            channels: 2,
            sample_rate_hz: 1000.0,
            dtype: Dtype::U16,
        }),
    )
    .err()
    .expect("bad dtype");
    assert_one_line_naming(&err, &good);

    // Reads past the end and wrong buffers.
    let mut reader = open_ephys(&good, Some(layout(2, 1000.0))).expect("open");
    let err = reader
        .read_samples(15, 10, &mut [0.0; 20])
        .expect_err("past end");
    assert!(matches!(err, IoError::SampleRange { .. }));
    assert_one_line_naming(&err, &good);
    assert!(err.to_string().contains("samples 15..25"), "{err}");
    let err = reader
        .read_samples(0, 2, &mut [0.0; 3])
        .expect_err("buffer");
    assert_one_line_naming(&err, &good);
    let err = reader
        .read_saved(usize::MAX, 2, &mut [0.0; 4])
        .expect_err("overflow");
    assert_one_line_naming(&err, &good);

    // Unknown extension.
    let movie = dir.join("movie.avi");
    std::fs::write(&movie, b"x").expect("write");
    let err = open_ephys(&movie, None).err().expect("unknown");
    assert_one_line_naming(&err, &movie);

    // A folder with no recording.
    let folder = dir.join("nothing");
    std::fs::create_dir(&folder).expect("mkdir");
    let err = open_ephys(&folder, None).err().expect("empty folder");
    assert_one_line_naming(&err, &folder);

    // Malformed SpikeGLX metas.
    let bin = dir.join("bad.ap.bin");
    write_i16(&bin, &[0; 20]);
    let meta = bin.with_extension("meta");
    for text in [
        "imSampRate=30000\n",
        "nSavedChans=x\nimSampRate=30000\n",
        "nSavedChans=2\n",
        "this is not a meta file\n",
        "nSavedChans=2\nimSampRate=30000\nsnsSaveChanSubset=0:7\n",
        "nSavedChans=2\nimSampRate=30000\nsnsApLfSy=1,0\n",
        "nSavedChans=2\nimSampRate=30000\nsnsApLfSy=0,0,2\n",
    ] {
        std::fs::write(&meta, text).expect("write meta");
        let err = open_ephys(&bin, None).err().expect("bad meta");
        assert_one_line_naming(&err, &meta);
    }

    // Malformed structure.oebin files.
    let rec = dir.join("oe");
    let stream = rec.join("continuous/S.0");
    std::fs::create_dir_all(&stream).expect("mkdir");
    write_i16(&stream.join("continuous.dat"), &[0; 8]);
    let oebin = rec.join("structure.oebin");
    for text in [
        "{not json",
        "[]",
        r#"{"continuous": []}"#,
        r#"{"continuous": [{"folder_name": "S.0/", "num_channels": 2}]}"#,
        r#"{"continuous": [{"folder_name": "S.0/", "sample_rate": 1000.0, "num_channels": 3,
            "channels": [{"channel_name": "CH1"}]}]}"#,
        r#"{"continuous": [{"folder_name": "S.0/", "sample_rate": 1000.0, "num_channels": 1,
            "channels": [{"channel_name": "ADC1", "units": "V"}]}]}"#,
    ] {
        std::fs::write(&oebin, text).expect("write oebin");
        let err = open_ephys(&rec, None).err().expect("bad oebin");
        assert_one_line_naming(&err, &oebin);
    }
    std::fs::write(
        &oebin,
        r#"{"continuous": [{"folder_name": "Other.0/", "sample_rate": 1000.0, "num_channels": 2}]}"#,
    )
    .expect("write oebin");
    let dat = stream.join("continuous.dat");
    let err = open_ephys(&dat, None).err().expect("no such stream");
    assert_one_line_naming(&err, &dat);

    // A legacy file that is not one.
    let fake = dir.join("legacy/100_CH1.continuous");
    std::fs::create_dir_all(fake.parent().expect("parent")).expect("mkdir");
    std::fs::write(&fake, vec![b'x'; 3000]).expect("write");
    let err = open_ephys(&fake, None).err().expect("bad legacy");
    assert_one_line_naming(&err, &fake);
    let aux = dir.join("legacy/100_AUX1.continuous");
    std::fs::write(&aux, b"x").expect("write");
    let err = open_ephys(&aux, None).err().expect("not a channel file");
    assert_one_line_naming(&err, &aux);

    // Writers: wrong dtype, wrong buffer, too many samples, output onto the source.
    let source = open_ephys(&good, Some(layout(2, 1000.0))).expect("open");
    let output = dir.join("out.dat");
    let err = create_ephys_like(source.as_ref(), &output, Dtype::U16, 5, 0)
        .err()
        .expect("dtype");
    assert_one_line_naming(&err, &output);
    let err = create_ephys_like(source.as_ref(), &output, Dtype::I16, 20, 1)
        .err()
        .expect("past the source's end");
    assert_one_line_naming(&err, &good);
    let err = create_ephys_like(source.as_ref(), &good, Dtype::I16, 5, 0)
        .err()
        .expect("onto the source");
    assert_one_line_naming(&err, &good);
    let mut writer = create_ephys_like(source.as_ref(), &output, Dtype::I16, 5, 0).expect("create");
    let err = writer.write_samples(&[0.0; 3], 2).expect_err("buffer");
    assert_one_line_naming(&err, &output);
    let err = writer.write_samples(&[0.0; 12], 6).expect_err("too many");
    assert!(matches!(err, IoError::SampleCount { .. }));
    assert_one_line_naming(&err, &output);
    let err = create_spikeglx(
        &dir.join("x.meta"),
        &NewSpikeGlx {
            sample_rate_hz: 30_000.0,
            positions: neuropixels1_positions(2),
            microvolts_per_bit: 2.34375,
            with_sync_channel: false,
            samples: 1,
        },
    )
    .err()
    .expect("meta as data name");
    assert_one_line_naming(&err, &dir.join("x.meta"));
}

/// Reading a recording start to end in chunks must not grow memory with
/// its length (nothing maps or buffers the whole file).
#[cfg(target_os = "linux")]
#[test]
fn reading_a_long_recording_in_chunks_keeps_memory_flat() {
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
    let dir = ScratchDir::new("ephys-memory");
    let path = dir.join("long.dat");
    let channels = 384;
    let samples = 400_000; // 307 MB, sparse
    let file = std::fs::File::create(&path).expect("create");
    file.set_len((samples * channels * 2) as u64)
        .expect("set_len");
    drop(file);
    let mut reader = open_ephys(&path, Some(layout(channels, 30_000.0))).expect("open");
    let chunk = 5000;
    let mut out = vec![0.0; chunk * channels];
    reader.read_samples(0, chunk, &mut out).expect("warm up");
    let before = resident_kib();
    let mut start = 0;
    while start < samples {
        let count = chunk.min(samples - start);
        reader
            .read_samples(start, count, &mut out[..count * channels])
            .expect("read");
        start += count;
    }
    let grown_mib = resident_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 100, "resident memory grew by {grown_mib} MiB");
}
