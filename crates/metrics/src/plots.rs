//! PNG figures for reports: training/validation loss curves and side-by-side comparisons of
//! one frame (raw, denoised, clean, …) with a pixel's traces under them.
//!
//! Text uses DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream Vera
//! licence in `assets/DejaVuSans-LICENSE.txt`) and registered with plotters' `ab_glyph` font
//! backend, so no system font library is needed. Files are written atomically: drawn into a
//! temporary file next to the target, then renamed over it.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use deepinterp_io::output::AtomicOutput;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::MetricsError;

/// The embedded font (DejaVu Sans).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Font family name the embedded font is registered under (plotters' default family).
const FONT_FAMILY: &str = "sans-serif";

/// Series colours: the first (thin grey) is meant for the raw input, the others stand out.
const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(150, 150, 150),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// Colour of pixels that are NaN or infinite in an image panel.
const NON_FINITE_COLOR: RGBColor = RGBColor(255, 0, 255);

/// A named series of values over time, e.g. `("denoised", &trace)`.
pub type NamedTrace<'a> = (&'a str, &'a [f32]);

type Backend<'a> = BitMapBackend<'a>;
type Area<'a> = DrawingArea<Backend<'a>, Shift>;

fn plot_error<E: std::fmt::Debug>(error: E) -> MetricsError {
    MetricsError::Plot(format!("{error:?}"))
}

/// Registers the embedded font once per process.
fn ensure_font() -> Result<(), MetricsError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(MetricsError::Plot(
            "embedded font could not be loaded".to_owned(),
        ))
    }
}

/// Draws into a temporary PNG next to `path` with `draw`, then renames it to `path`.
fn write_png_atomically(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), MetricsError>,
) -> Result<(), MetricsError> {
    ensure_font()?;
    let io_error = |error: deepinterp_io::IoError| MetricsError::Plot(error.to_string());
    // Registered as a pending output: removed on error, drop or interruption.
    let output = AtomicOutput::keeping_extension(path).map_err(io_error)?;
    let root = BitMapBackend::new(output.temp_path(), size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    draw(&root)?;
    root.present().map_err(plot_error)?;
    drop(root);
    output.commit().map_err(io_error)?;
    Ok(())
}

/// Finite points of a series, as `f64` pairs.
fn finite_points(series: &[(usize, f64)]) -> Vec<(f64, f64)> {
    series
        .iter()
        .filter(|(_, value)| value.is_finite())
        .map(|&(step, value)| (step as f64, value))
        .collect()
}

/// `min..max` of `values`, widened by `margin` of the span (or ±0.5 / ±|v|·5 % when flat).
fn padded_range(values: impl Iterator<Item = f64>, margin: f64) -> Option<Range<f64>> {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    if !low.is_finite() || !high.is_finite() {
        return None;
    }
    let span = high - low;
    if span > 0.0 {
        Some(low - margin * span..high + margin * span)
    } else {
        let half = if low == 0.0 { 0.5 } else { 0.05 * low.abs() };
        Some(low - half..high + half)
    }
}

/// Writes a PNG of training and validation loss against step (or epoch).
///
/// The y axis is logarithmic when every loss is positive and they span more than a factor of
/// 30, linear otherwise. Non-finite losses are skipped. Fails with
/// [`MetricsError::EmptyPlot`] when there is no finite point at all.
pub fn loss_curve_png(
    path: &Path,
    train: &[(usize, f64)],
    validation: &[(usize, f64)],
    title: &str,
) -> Result<(), MetricsError> {
    let train_points = finite_points(train);
    let validation_points = finite_points(validation);
    let all = || train_points.iter().chain(&validation_points);
    let x_range = padded_range(all().map(|point| point.0), 0.02)
        .ok_or(MetricsError::EmptyPlot("no finite loss values"))?;
    let (low, high) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), point| {
        (low.min(point.1), high.max(point.1))
    });
    let logarithmic = low > 0.0 && high / low > 30.0;
    write_png_atomically(path, (900, 560), |root| {
        if logarithmic {
            let y_range = (low / 1.2..high * 1.2).log_scale();
            draw_loss_chart(
                root,
                title,
                x_range,
                y_range,
                &train_points,
                &validation_points,
            )
        } else {
            let y_range = padded_range(all().map(|point| point.1), 0.05)
                .ok_or(MetricsError::EmptyPlot("no finite loss values"))?;
            draw_loss_chart(
                root,
                title,
                x_range,
                y_range,
                &train_points,
                &validation_points,
            )
        }
    })
}

fn draw_loss_chart<Y>(
    root: &Area<'_>,
    title: &str,
    x_range: Range<f64>,
    y_range: Y,
    train: &[(f64, f64)],
    validation: &[(f64, f64)],
) -> Result<(), MetricsError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format_number(*y))
        .label_style((FONT_FAMILY, 14))
        .axis_desc_style((FONT_FAMILY, 16))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(2)
        .draw()
        .map_err(plot_error)?;
    let train_color = SERIES_COLORS[1];
    let validation_color = SERIES_COLORS[5];
    if !train.is_empty() {
        chart
            .draw_series(LineSeries::new(
                train.iter().copied(),
                train_color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label("train")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], train_color.stroke_width(2))
            });
    }
    if !validation.is_empty() {
        chart
            .draw_series(LineSeries::new(
                validation.iter().copied(),
                validation_color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label("validation")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], validation_color.stroke_width(2))
            });
        chart
            .draw_series(
                validation
                    .iter()
                    .map(|&point| Circle::new(point, 3, validation_color.filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 15))
        .draw()
        .map_err(plot_error)
}

/// Compact axis label: plain decimals in a moderate range, scientific notation otherwise.
fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-2..1e5).contains(&magnitude) {
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_owned()
    } else {
        format!("{value:.2e}")
    }
}

/// The 1st and 99th percentiles (nearest rank) of the finite values of `frame`, widened to a
/// unit range when equal; `None` when no value is finite.
fn robust_range(frame: &[f32]) -> Option<(f32, f32)> {
    let mut values: Vec<f32> = frame.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    let last = values.len() - 1;
    let low_rank = (0.01 * last as f64).round() as usize;
    let high_rank = (0.99 * last as f64).round() as usize;
    let low = *values.select_nth_unstable_by(low_rank, f32::total_cmp).1;
    let high = *values.select_nth_unstable_by(high_rank, f32::total_cmp).1;
    Some(if high > low {
        (low, high)
    } else {
        (low, low + 1.0)
    })
}

/// Writes a PNG with the same frame from several movies side by side (grayscale, each panel
/// scaled to its own 1st–99th percentile range, shown in its title) and, optionally, a line
/// plot of named traces under them (e.g. one pixel's raw, denoised and clean values over time).
///
/// `panels` are `(title, frame)` with frames of `height × width` values, row-major. Panels are
/// shown at 256–512 px (nearest-neighbour resampling). In the trace plot the first series is
/// drawn as a thin grey line (meant for the raw input), the others in strong colours; the x
/// axis is the index in the traces (frames). Non-finite pixels are drawn magenta; non-finite
/// trace values are skipped.
pub fn comparison_png(
    path: &Path,
    height: usize,
    width: usize,
    panels: &[(&str, &[f32])],
    trace: Option<(&str, &[NamedTrace<'_>])>,
) -> Result<(), MetricsError> {
    if height == 0 || width == 0 {
        return Err(MetricsError::InvalidDimensions(format!(
            "frame of {height}x{width}"
        )));
    }
    if panels.is_empty() {
        return Err(MetricsError::EmptyPlot("no image panels"));
    }
    for (_, frame) in panels {
        if frame.len() != height * width {
            return Err(MetricsError::BufferLength {
                buffer: "panel",
                actual: frame.len(),
                expected: height * width,
                count: 1,
                height,
                width,
            });
        }
    }
    let trace = match trace {
        Some((_, series)) if series.iter().all(|(_, values)| values.is_empty()) => {
            return Err(MetricsError::EmptyPlot("trace series are empty"));
        }
        other => other,
    };

    // Display scale: the longer side shown at 256–512 px.
    let longer = height.max(width) as f64;
    let scale = longer.clamp(256.0, 512.0) / longer;
    let panel_width = ((width as f64 * scale).round() as u32).max(1);
    let panel_height = ((height as f64 * scale).round() as u32).max(1);
    let margin = 12u32;
    let title_height = 30u32;
    let trace_height = if trace.is_some() { 320u32 } else { 0 };
    let panel_count = panels.len() as u32;
    let image_width =
        (panel_count * (panel_width + margin) + margin).max(if trace.is_some() { 800 } else { 0 });
    let image_height = title_height + panel_height + 2 * margin + trace_height;

    write_png_atomically(path, (image_width, image_height), |root| {
        let (top, bottom) = root.split_vertically(title_height + panel_height + 2 * margin);
        for (index, (title, frame)) in panels.iter().enumerate() {
            let left = margin + index as u32 * (panel_width + margin);
            let range = robust_range(frame);
            let label = match range {
                Some((low, high)) => {
                    format!(
                        "{title}  [{}, {}]",
                        format_number(low.into()),
                        format_number(high.into())
                    )
                }
                None => format!("{title}  [no finite values]"),
            };
            top.draw(&Text::new(
                label,
                (left as i32, (margin / 2) as i32 + 4),
                (FONT_FAMILY, 17).into_font().color(&BLACK),
            ))
            .map_err(plot_error)?;
            let (low, high) = range.unwrap_or((0.0, 1.0));
            let top_edge = title_height + margin / 2;
            for display_row in 0..panel_height {
                let row = ((f64::from(display_row) / scale) as usize).min(height - 1);
                for display_column in 0..panel_width {
                    let column = ((f64::from(display_column) / scale) as usize).min(width - 1);
                    let value = frame[row * width + column];
                    let color = if value.is_finite() {
                        let level = ((value - low) / (high - low)).clamp(0.0, 1.0);
                        let gray = (level * 255.0).round() as u8;
                        RGBColor(gray, gray, gray)
                    } else {
                        NON_FINITE_COLOR
                    };
                    top.draw_pixel(
                        (
                            (left + display_column) as i32,
                            (top_edge + display_row) as i32,
                        ),
                        &color,
                    )
                    .map_err(plot_error)?;
                }
            }
        }
        if let Some((trace_title, series)) = trace {
            draw_traces(&bottom, trace_title, series)?;
        }
        Ok(())
    })
}

fn draw_traces(
    area: &Area<'_>,
    title: &str,
    series: &[NamedTrace<'_>],
) -> Result<(), MetricsError> {
    let longest = series
        .iter()
        .map(|(_, values)| values.len())
        .max()
        .unwrap_or(0);
    let x_range = 0.0..(longest.max(2) - 1) as f64;
    let y_range = padded_range(
        series
            .iter()
            .flat_map(|(_, values)| values.iter())
            .filter(|v| v.is_finite())
            .map(|&v| f64::from(v)),
        0.05,
    )
    .ok_or(MetricsError::EmptyPlot("traces have no finite values"))?;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT_FAMILY, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("frame")
        .y_desc("value")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format_number(*y))
        .label_style((FONT_FAMILY, 13))
        .axis_desc_style((FONT_FAMILY, 15))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(2)
        .draw()
        .map_err(plot_error)?;
    for (index, (name, values)) in series.iter().enumerate() {
        let color = SERIES_COLORS[index % SERIES_COLORS.len()];
        let width = if index == 0 { 1 } else { 2 };
        let points = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(frame, &v)| (frame as f64, f64::from(v)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width)))
            .map_err(plot_error)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 14))
        .draw()
        .map_err(plot_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_range_ignores_outliers() {
        let mut frame: Vec<f32> = (0..1000).map(|v| v as f32).collect();
        frame[0] = -1e9;
        frame[999] = 1e9;
        frame[500] = f32::NAN;
        let (low, high) = robust_range(&frame).expect("finite values");
        assert!((5.0..15.0).contains(&low), "low {low}");
        assert!((985.0..995.0).contains(&high), "high {high}");
        assert_eq!(robust_range(&[3.0, 3.0]), Some((3.0, 4.0)));
        assert_eq!(robust_range(&[f32::NAN]), None);
    }

    #[test]
    fn number_format_is_compact() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(12.5), "12.5");
        assert_eq!(format_number(0.001234), "1.23e-3");
    }
}
