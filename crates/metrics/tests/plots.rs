//! The PNG figures decode, have the expected size, and are not blank.

use std::fs::File;
use std::path::Path;

use deepinterp_metrics::MetricsError;
use deepinterp_metrics::plots::{comparison_png, loss_curve_png};

/// Decodes a PNG and returns (width, height, standard deviation of its 8-bit samples).
fn decode(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        File::open(path).expect("file exists"),
    ));
    let mut reader = decoder.read_info().expect("valid PNG header");
    let mut buffer = vec![0; reader.output_buffer_size().expect("size known")];
    let info = reader.next_frame(&mut buffer).expect("valid PNG data");
    let samples = &buffer[..info.buffer_size()];
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let variance = samples
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (info.width, info.height, variance.sqrt())
}

fn no_leftovers(directory: &Path, expected: usize) {
    let entries = std::fs::read_dir(directory).expect("readable").count();
    assert_eq!(entries, expected, "temporary files left behind");
}

#[test]
fn loss_curve_is_a_real_image() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("loss.png");
    let train: Vec<(usize, f64)> = (0..200)
        .map(|step| (step, 1.0 / (1.0 + step as f64 * 0.1)))
        .collect();
    let validation: Vec<(usize, f64)> = (0..200)
        .step_by(20)
        .map(|step| (step, 1.1 / (1.0 + step as f64 * 0.08)))
        .collect();
    loss_curve_png(&path, &train, &validation, "L1 loss").expect("plot written");
    let (width, height, spread) = decode(&path);
    assert_eq!((width, height), (900, 560));
    assert!(spread > 10.0, "image looks blank (std {spread})");
    no_leftovers(directory.path(), 1);

    // Log scale (wide range) and a NaN loss are handled too.
    let wide: Vec<(usize, f64)> = (0..50)
        .map(|step| {
            (
                step,
                if step == 10 {
                    f64::NAN
                } else {
                    10f64.powf(-(step as f64) / 10.0)
                },
            )
        })
        .collect();
    loss_curve_png(&path, &wide, &[], "wide").expect("plot written");
    assert!(decode(&path).2 > 10.0);

    assert!(matches!(
        loss_curve_png(&path, &[], &[(3, f64::NAN)], "empty"),
        Err(MetricsError::EmptyPlot(_))
    ));
}

#[test]
fn comparison_is_a_real_image() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("compare.png");
    let (height, width) = (64, 80);
    let clean: Vec<f32> = (0..height * width)
        .map(|i| {
            let (row, col) = ((i / width) as f32, (i % width) as f32);
            10.0 + 30.0 * (-((row - 30.0).powi(2) + (col - 40.0).powi(2)) / 60.0).exp()
        })
        .collect();
    let noisy: Vec<f32> = clean
        .iter()
        .enumerate()
        .map(|(i, v)| v + ((i * 7919) % 11) as f32 - 5.0)
        .collect();
    let trace_raw: Vec<f32> = (0..300).map(|t| 10.0 + ((t * 31) % 9) as f32).collect();
    let trace_clean: Vec<f32> = (0..300).map(|t| 14.0 + (t as f32 * 0.05).sin()).collect();
    comparison_png(
        &path,
        height,
        width,
        &[("raw", &noisy), ("denoised", &clean), ("clean", &clean)],
        Some((
            "pixel (30, 40)",
            &[("raw", &trace_raw), ("clean", &trace_clean)],
        )),
    )
    .expect("plot written");
    let (image_width, image_height, spread) = decode(&path);
    // Panels are upscaled to 256 px on the longer side: 80 → 256, 64 → 205.
    assert_eq!(image_width, 3 * (256 + 12) + 12);
    assert_eq!(image_height, 30 + 205 + 24 + 320);
    assert!(spread > 20.0, "image looks blank (std {spread})");
    no_leftovers(directory.path(), 1);

    // Without traces, just the panels.
    comparison_png(&path, height, width, &[("clean", &clean)], None).expect("plot written");
    assert_eq!(decode(&path).1, 30 + 205 + 24);

    assert!(matches!(
        comparison_png(&path, height, width, &[("short", &clean[..10])], None),
        Err(MetricsError::BufferLength { .. })
    ));
    assert!(matches!(
        comparison_png(&path, height, width, &[], None),
        Err(MetricsError::EmptyPlot(_))
    ));
}
