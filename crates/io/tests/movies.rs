//! Movie writers and readers: round trips for every format and dtype,
//! clipping, partial reads, atomic output and the bad-input errors.

mod common;

use std::path::Path;

use common::{ScratchDir, keras_fixture};
use deepinterp_io::{Dtype, IoError, MovieInfo, create_movie, open_movie, open_movie_dataset};

const FORMATS: [&str; 2] = ["h5", "tif"];
const DTYPES: [Dtype; 3] = [Dtype::I16, Dtype::U16, Dtype::F32];

/// Deterministic test frames whose values are exactly representable in
/// `dtype` (so a round trip must be bit-exact), including the extremes.
fn test_frames(info: &MovieInfo) -> Vec<f32> {
    let n = info.frames * info.frame_len();
    (0..n)
        .map(|i| {
            let k = (i as u64).wrapping_mul(2_654_435_761) % 100_003;
            match info.dtype {
                Dtype::I16 => match i % 97 {
                    0 => -32768.0,
                    1 => 32767.0,
                    _ => (k as f32) - 50_000.0 * 0.5,
                }
                .clamp(-32768.0, 32767.0),
                Dtype::U16 => match i % 89 {
                    0 => 0.0,
                    1 => 65535.0,
                    _ => (k % 65536) as f32,
                },
                _ => (k as f32) * 0.037 - 1234.5,
            }
        })
        .collect()
}

fn write_movie(path: &Path, info: &MovieInfo, frames: &[f32], calls: &[usize]) -> u64 {
    let mut writer = create_movie(path, info).expect("create writer");
    let mut at = 0;
    for &count in calls {
        let len = count * info.frame_len();
        writer
            .write_frames(&frames[at..at + len], count)
            .expect("write frames");
        at += len;
    }
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.frames, info.frames);
    assert_eq!(summary.path, path);
    summary.clipped_values
}

fn read_all(path: &Path) -> (MovieInfo, Vec<f32>) {
    let mut reader = open_movie(path).expect("open movie");
    let info = reader.info().clone();
    let mut out = vec![0f32; info.frames * info.frame_len()];
    reader.read_frames(0, info.frames, &mut out).expect("read");
    (info, out)
}

#[test]
fn every_format_and_dtype_round_trips_exactly() {
    let dir = ScratchDir::new("roundtrip");
    for format in FORMATS {
        for dtype in DTYPES {
            let info = MovieInfo {
                frames: 7,
                height: 5,
                width: 6,
                dtype,
            };
            let frames = test_frames(&info);
            let path = dir.join(&format!("movie_{dtype}.{format}"));
            let clipped = write_movie(&path, &info, &frames, &[3, 1, 3]);
            assert_eq!(clipped, 0, "{format} {dtype}");
            let (read_info, read) = read_all(&path);
            assert_eq!(read_info, info, "{format} {dtype}");
            assert_eq!(read, frames, "{format} {dtype}");
        }
    }
    // Only the finished files remain: no temporary files.
    assert_eq!(dir.file_names().len(), FORMATS.len() * DTYPES.len());
}

#[test]
fn integer_output_is_rounded_and_clipped_values_are_counted() {
    let dir = ScratchDir::new("clip");
    for format in FORMATS {
        let info = MovieInfo {
            frames: 1,
            height: 1,
            width: 4,
            dtype: Dtype::I16,
        };
        let path = dir.join(&format!("clip.{format}"));
        let clipped = write_movie(&path, &info, &[40000.0, 1.4, -2.6, 12.5], &[1]);
        assert_eq!(clipped, 1, "{format}");
        assert_eq!(
            read_all(&path).1,
            vec![32767.0, 1.0, -3.0, 12.0],
            "{format}"
        );

        let info = MovieInfo {
            dtype: Dtype::U16,
            ..info
        };
        let path = dir.join(&format!("clip_u16.{format}"));
        let clipped = write_movie(&path, &info, &[-5.0, 70000.0, 65535.0, 0.4], &[1]);
        assert_eq!(clipped, 2, "{format}");
        assert_eq!(
            read_all(&path).1,
            vec![0.0, 65535.0, 65535.0, 0.0],
            "{format}"
        );
    }
}

#[test]
fn partial_reads_equal_the_slice_of_a_full_read() {
    let dir = ScratchDir::new("partial");
    for format in FORMATS {
        for dtype in DTYPES {
            // 150 frames: more than one HDF5 write batch.
            let info = MovieInfo {
                frames: 150,
                height: 8,
                width: 9,
                dtype,
            };
            let frames = test_frames(&info);
            let path = dir.join(&format!("partial_{dtype}.{format}"));
            write_movie(&path, &info, &frames, &[100, 50]);
            let (_, full) = read_all(&path);
            assert_eq!(full, frames);

            let mut reader = open_movie(&path).expect("open");
            let frame_len = info.frame_len();
            let mut part = vec![0f32; 5 * frame_len];
            reader.read_frames(37, 5, &mut part).expect("read 37..42");
            assert_eq!(
                part,
                full[37 * frame_len..42 * frame_len],
                "{format} {dtype}"
            );
            // Out of order and repeated reads work too.
            let mut last = vec![0f32; frame_len];
            reader.read_frames(149, 1, &mut last).expect("read last");
            assert_eq!(last, full[149 * frame_len..]);
            reader.read_frames(0, 1, &mut last).expect("read first");
            assert_eq!(last, full[..frame_len]);

            // Past the end and wrong buffer sizes are errors naming the file.
            let err = reader.read_frames(148, 5, &mut part).unwrap_err();
            assert!(matches!(err, IoError::FrameRange { .. }), "{err}");
            assert!(err.to_string().contains("partial_"), "{err}");
            let err = reader.read_frames(0, 2, &mut part).unwrap_err();
            assert!(matches!(err, IoError::BufferSize { .. }), "{err}");
        }
    }
}

#[test]
fn finished_output_replaces_an_existing_file() {
    let dir = ScratchDir::new("replace");
    for format in FORMATS {
        let path = dir.join(&format!("out.{format}"));
        std::fs::write(&path, b"old contents").expect("write old file");
        let info = MovieInfo {
            frames: 2,
            height: 3,
            width: 3,
            dtype: Dtype::F32,
        };
        let frames = test_frames(&info);
        write_movie(&path, &info, &frames, &[2]);
        assert_eq!(read_all(&path).1, frames);
    }
}

#[test]
fn dropping_a_writer_without_finish_leaves_nothing_behind() {
    let dir = ScratchDir::new("drop");
    for format in FORMATS {
        let info = MovieInfo {
            frames: 100,
            height: 16,
            width: 16,
            dtype: Dtype::I16,
        };
        let frames = test_frames(&info);
        let path = dir.join(&format!("dropped.{format}"));
        let mut writer = create_movie(&path, &info).expect("create");
        writer
            .write_frames(&frames[..70 * info.frame_len()], 70)
            .expect("write");
        // The temporary file exists while writing, not the output.
        assert!(!path.exists());
        assert_eq!(dir.file_names().len(), 1, "{:?}", dir.file_names());
        assert!(
            dir.file_names()[0].starts_with(".dropped."),
            "{:?}",
            dir.file_names()
        );
        drop(writer);
        assert_eq!(dir.file_names(), Vec::<String>::new(), "{format}");
    }
}

#[test]
fn a_panic_while_writing_leaves_nothing_behind() {
    let dir = ScratchDir::new("panic");
    let path = dir.join("panicked.h5");
    let result = std::panic::catch_unwind(|| {
        let info = MovieInfo {
            frames: 3,
            height: 4,
            width: 4,
            dtype: Dtype::F32,
        };
        let mut writer = create_movie(&path, &info).expect("create");
        writer.write_frames(&[1.0; 16], 1).expect("write");
        panic!("simulated failure while writing");
    });
    assert!(result.is_err());
    assert_eq!(dir.file_names(), Vec::<String>::new());
}

#[test]
fn finishing_with_too_few_frames_fails_and_leaves_no_output() {
    let dir = ScratchDir::new("short");
    for format in FORMATS {
        let info = MovieInfo {
            frames: 10,
            height: 4,
            width: 4,
            dtype: Dtype::U16,
        };
        let path = dir.join(&format!("short.{format}"));
        let mut writer = create_movie(&path, &info).expect("create");
        writer.write_frames(&vec![1.0; 9 * 16], 9).expect("write");
        let err = writer.finish().unwrap_err();
        assert!(
            matches!(
                err,
                IoError::FrameCount {
                    written: 9,
                    expected: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("short."), "{err}");
        assert_eq!(dir.file_names(), Vec::<String>::new(), "{format}");

        // Writing more frames than announced is refused as well.
        let mut writer = create_movie(&path, &info).expect("create");
        let err = writer.write_frames(&vec![1.0; 11 * 16], 11).unwrap_err();
        assert!(matches!(err, IoError::FrameCount { .. }), "{err}");
        drop(writer);
        assert_eq!(dir.file_names(), Vec::<String>::new(), "{format}");
    }
}

#[test]
fn bad_writer_requests_are_refused() {
    let dir = ScratchDir::new("badwrite");
    let info = MovieInfo {
        frames: 0,
        height: 4,
        width: 4,
        dtype: Dtype::F32,
    };
    let err = create_movie(&dir.join("empty.h5"), &info)
        .err()
        .expect("zero frames");
    assert!(err.to_string().contains("empty.h5"), "{err}");
    let info = MovieInfo {
        frames: 1,
        dtype: Dtype::F64,
        ..info
    };
    let err = create_movie(&dir.join("f64.tif"), &info)
        .err()
        .expect("f64 output");
    assert!(
        err.to_string().contains("f64.tif") && err.to_string().contains("float64"),
        "{err}"
    );
    let info = MovieInfo {
        dtype: Dtype::F32,
        ..info
    };
    let err = create_movie(&dir.join("movie.avi"), &info)
        .err()
        .expect("extension");
    assert!(err.to_string().contains("movie.avi"), "{err}");
    let err = create_movie(&dir.join("no/such/dir/out.h5"), &info)
        .err()
        .expect("missing directory");
    assert!(err.to_string().contains("out.h5"), "{err}");
    assert_eq!(dir.file_names(), Vec::<String>::new());
}

/// Opens `path` expecting an error; checks the message names the file and
/// contains `needle`.
fn expect_open_error(path: &Path, needle: &str) -> IoError {
    let err = open_movie(path)
        .err()
        .unwrap_or_else(|| panic!("{} opened", path.display()));
    let message = err.to_string();
    let file_name = path.file_name().unwrap().to_string_lossy();
    assert!(
        message.contains(&*file_name),
        "message does not name the file: {message}"
    );
    assert!(
        message.contains(needle),
        "message lacks '{needle}': {message}"
    );
    assert!(
        !message.contains('\n'),
        "message is not one line: {message}"
    );
    err
}

#[test]
fn missing_and_foreign_files_are_clear_errors() {
    let dir = ScratchDir::new("foreign");
    for format in FORMATS {
        let err = expect_open_error(&dir.join(&format!("absent.{format}")), "not found");
        assert!(matches!(err, IoError::NotFound { .. }));
        let text = dir.join(&format!("text.{format}"));
        std::fs::write(&text, "this is not a movie\n".repeat(100)).expect("write");
        expect_open_error(&text, "not a readable");
    }
    expect_open_error(&dir.join("movie.mp4"), "unknown movie format");
}

#[test]
fn truncated_files_are_clear_errors() {
    let dir = ScratchDir::new("truncated");
    // A real HDF5 movie cut in half.
    let source = std::fs::read(keras_fixture("ophys_input_movie.h5")).expect("read fixture");
    let cut = dir.join("cut.h5");
    std::fs::write(&cut, &source[..source.len() / 2]).expect("write");
    match open_movie(&cut) {
        Err(err) => {
            assert!(err.to_string().contains("cut.h5"), "{err}");
        }
        Ok(mut reader) => {
            // If the metadata survived, reading the missing half must fail.
            let info = reader.info().clone();
            let mut out = vec![0f32; info.frames * info.frame_len()];
            let err = reader.read_frames(0, info.frames, &mut out).unwrap_err();
            assert!(err.to_string().contains("cut.h5"), "{err}");
        }
    }

    // Our own TIFF and HDF5 output, cut in half.
    for format in FORMATS {
        let info = MovieInfo {
            frames: 20,
            height: 16,
            width: 16,
            dtype: Dtype::U16,
        };
        let whole = dir.join(&format!("whole.{format}"));
        write_movie(&whole, &info, &test_frames(&info), &[20]);
        let bytes = std::fs::read(&whole).expect("read");
        let cut = dir.join(&format!("half.{format}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        match open_movie(&cut) {
            Err(err) => assert!(err.to_string().contains("half."), "{err}"),
            Ok(mut reader) => {
                let info = reader.info().clone();
                let mut out = vec![0f32; info.frames * info.frame_len()];
                let err = reader.read_frames(0, info.frames, &mut out).unwrap_err();
                assert!(err.to_string().contains("half."), "{err}");
            }
        }
    }
}

#[test]
fn a_missing_dataset_lists_the_datasets_that_exist() {
    let path = keras_fixture("ophys_input_movie.h5");
    let err = open_movie_dataset(&path, "movie")
        .err()
        .expect("missing dataset");
    let message = err.to_string();
    assert!(matches!(err, IoError::MissingDataset { .. }), "{message}");
    assert!(message.contains("ophys_input_movie.h5"), "{message}");
    assert!(
        message.contains("'movie'") && message.contains("'data'"),
        "{message}"
    );
}

/// Writes an HDF5 file with dataset `data` of the given shape and type.
fn write_raw_hdf5<T: rust_hdf5::H5Type + Clone>(path: &Path, shape: &[usize], value: T) {
    let file = rust_hdf5::H5File::create(path).expect("create");
    let n: usize = shape.iter().product();
    let dataset = file
        .new_dataset::<T>()
        .shape(shape)
        .create("data")
        .expect("dataset");
    if n > 0 {
        dataset.write_raw(&vec![value; n]).expect("write");
    }
    file.close().expect("close");
}

#[test]
fn wrong_shapes_and_types_are_clear_errors() {
    let dir = ScratchDir::new("badhdf5");
    let flat = dir.join("flat.h5");
    write_raw_hdf5::<i16>(&flat, &[64, 64], 1);
    let err = expect_open_error(&flat, "dataset 'data' has 2 dimensions, expected 3 [t,y,x]");
    assert!(matches!(err, IoError::WrongDimensions { ndims: 2, .. }));

    let int32 = dir.join("int32.h5");
    write_raw_hdf5::<i32>(&int32, &[2, 3, 3], 1);
    expect_open_error(&int32, "unsupported data type int32");

    let int64 = dir.join("int64.h5");
    write_raw_hdf5::<i64>(&int64, &[2, 3, 3], 1);
    let err = expect_open_error(&int64, "unsupported data type int64");
    assert!(err.to_string().contains("int16, uint16, float32"), "{err}");

    let complex = dir.join("complex.h5");
    write_raw_hdf5(
        &complex,
        &[2, 3, 3],
        rust_hdf5::Complex32 { re: 1.0, im: 0.0 },
    );
    expect_open_error(&complex, "unsupported data type");

    let empty = dir.join("empty.h5");
    write_raw_hdf5::<i16>(&empty, &[0, 3, 3], 1);
    expect_open_error(&empty, "empty");

    // float64 and uint8 input are read, converted to f32.
    let float64 = dir.join("float64.h5");
    write_raw_hdf5::<f64>(&float64, &[2, 3, 3], 2.5);
    let (info, values) = read_all(&float64);
    assert_eq!(info.dtype, Dtype::F64);
    assert_eq!(values, vec![2.5f32; 18]);
    let uint8 = dir.join("uint8.h5");
    write_raw_hdf5::<u8>(&uint8, &[2, 3, 3], 200);
    let (info, values) = read_all(&uint8);
    assert_eq!(info.dtype, Dtype::U8);
    assert_eq!(values, vec![200f32; 18]);
}

#[test]
fn non_finite_values_are_errors_naming_the_frame() {
    let dir = ScratchDir::new("nan");
    for format in FORMATS {
        for (bad, label) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
            let info = MovieInfo {
                frames: 6,
                height: 3,
                width: 4,
                dtype: Dtype::F32,
            };
            let mut frames = vec![1.0f32; info.frames * info.frame_len()];
            frames[3 * info.frame_len() + 5] = bad;
            let path = dir.join(&format!("bad_{label}.{format}"));
            write_movie(&path, &info, &frames, &[6]);

            let mut reader = open_movie(&path).expect("open");
            let mut out = vec![0f32; 6 * info.frame_len()];
            let err = reader.read_frames(0, 6, &mut out).unwrap_err();
            assert!(matches!(err, IoError::NonFinite { frame: 3, .. }), "{err}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("bad_{label}.{format}")),
                "{message}"
            );
            assert!(message.contains("frame 3"), "{message}");
            // Frames without the bad value still read.
            let mut out = vec![0f32; 3 * info.frame_len()];
            reader.read_frames(0, 3, &mut out).expect("frames 0..3");
        }
    }
}

#[test]
fn tiff_pages_of_different_sizes_are_refused() {
    use tiff::encoder::{TiffEncoder, colortype};
    let dir = ScratchDir::new("tiffpages");
    let path = dir.join("mixed.tif");
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut encoder = TiffEncoder::new(file).expect("encoder");
        encoder
            .write_image::<colortype::Gray16>(4, 4, &[1u16; 16])
            .expect("page 0");
        encoder
            .write_image::<colortype::Gray16>(5, 4, &[1u16; 20])
            .expect("page 1");
    }
    let err = expect_open_error(&path, "page 1");
    assert!(
        matches!(err, IoError::InconsistentPages { page: 1, .. }),
        "{err}"
    );

    let rgb = dir.join("rgb.tif");
    {
        let file = std::fs::File::create(&rgb).expect("create");
        let mut encoder = TiffEncoder::new(file).expect("encoder");
        encoder
            .write_image::<colortype::RGB8>(2, 2, &[1u8; 12])
            .expect("page 0");
    }
    expect_open_error(&rgb, "unsupported data type");
}

#[test]
fn bigtiff_and_uint8_tiff_input_are_read() {
    use tiff::encoder::{TiffEncoder, colortype};
    let dir = ScratchDir::new("bigtiff");
    let path = dir.join("big.tif");
    let pages: Vec<Vec<i16>> = (0..4)
        .map(|p| (0..12).map(|i| (p * 100 + i) as i16 - 200).collect())
        .collect();
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut encoder = TiffEncoder::new_big(file).expect("encoder");
        for page in &pages {
            encoder
                .write_image::<colortype::GrayI16>(4, 3, page)
                .expect("page");
        }
    }
    let (info, values) = read_all(&path);
    assert_eq!(
        info,
        MovieInfo {
            frames: 4,
            height: 3,
            width: 4,
            dtype: Dtype::I16
        }
    );
    let expected: Vec<f32> = pages.iter().flatten().map(|&v| f32::from(v)).collect();
    assert_eq!(values, expected);

    let path = dir.join("bytes.tiff");
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut encoder = TiffEncoder::new(file).expect("encoder");
        encoder
            .write_image::<colortype::Gray8>(3, 2, &[0, 1, 2, 253, 254, 255])
            .expect("page");
    }
    let (info, values) = read_all(&path);
    assert_eq!(info.dtype, Dtype::U8);
    assert_eq!(values, vec![0.0, 1.0, 2.0, 253.0, 254.0, 255.0]);
}

#[test]
fn readers_can_move_to_another_thread() {
    let path = keras_fixture("ophys_input_movie.h5");
    let mut reader = open_movie(&path).expect("open");
    let handle = std::thread::spawn(move || {
        let mut out = vec![0f32; 64 * 64];
        reader.read_frames(10, 1, &mut out).expect("read");
        out.iter().map(|&v| f64::from(v)).sum::<f64>()
    });
    assert!(handle.join().expect("thread") > 0.0);
}
