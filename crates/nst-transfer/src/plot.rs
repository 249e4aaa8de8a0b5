//! The loss curves of a run as a PNG (total and each weighted part, log scale, against the
//! iteration counted across scales), drawn with plotters: the `plot` feature.

use crate::error::{Result, TransferError};
use crate::image::{self as img, Image};
use crate::log::LogRow;
use plotters::prelude::*;
use std::path::Path;

/// One reported iteration: its position across scales and the weighted losses.
struct Point {
    /// Iterations done so far, all scales counted.
    iteration: u64,
    /// Total, content, style, total variation.
    values: [f64; 4],
}

const NAMES: [&str; 4] = ["total", "content", "style", "total variation"];
const COLORS: [RGBColor; 4] = [BLACK, BLUE, RED, RGBColor(0, 140, 0)];
const SIZE: (u32, u32) = (960, 600);

/// Checks before a run that the plot can be written to `path`: a PNG name that is none of
/// `taken` (the inputs and the other outputs).
pub fn check_path(path: &Path, taken: &[&Path]) -> Result<()> {
    let fail = |reason: String| TransferError::Write {
        path: path.to_owned(),
        reason,
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !ext.eq_ignore_ascii_case("png") {
        return Err(fail("use a .png file name".into()));
    }
    img::check_output_path(path, taken, false).map_err(|e| fail(e.to_string()))
}

/// Draws the loss of each reported row of a run with `per_scale` iterations per scale (with
/// a vertical line where each later scale begins) and writes the PNG atomically.
pub fn write(path: &Path, rows: &[LogRow], per_scale: u32) -> Result<()> {
    let fail = |reason: String| TransferError::Write {
        path: path.to_owned(),
        reason,
    };
    let per_scale = per_scale as u64;
    let rows = rows.iter().filter(|r| !r.is_final);
    let points: Vec<Point> = rows
        .map(|r| Point {
            iteration: (r.scale as u64 - 1) * per_scale + r.iteration as u64,
            values: [
                r.values.total(),
                r.values.content(),
                r.values.style(),
                r.values.tv(),
            ],
        })
        .collect();
    let scales = points
        .last()
        .map_or(0, |p| (p.iteration.max(1) - 1) / per_scale.max(1));
    let starts: Vec<u64> = (1..=scales).map(|s| s * per_scale).collect();
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| fail("the embedded plot font could not be read".into()))?;
    let (w, h) = SIZE;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    draw(&mut rgb, &points, &starts).map_err(|e| fail(format!("drawing the plot: {e}")))?;
    // Interleaved RGB8 to the planar [0, 1] image the saver takes.
    let plane = (w * h) as usize;
    let mut data = vec![0.0f32; 3 * plane];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * plane + i] = px[c] as f32 / 255.0;
        }
    }
    let image = Image::new(w, h, data).expect("the plot's own size");
    img::save(&image, path, false).map_err(|e| fail(e.to_string()))
}

fn draw(
    rgb: &mut [u8], points: &[Point], scale_starts: &[u64],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let positive = || {
        points
            .iter()
            .flat_map(|p| p.values)
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    // The axis is log10 of the loss, linear, spanning whole decades: plotters' own log axis
    // leaves values below 1 unlabelled.
    let lo = positive().fold(f64::INFINITY, f64::min);
    let hi = positive().fold(0.0f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo.log10().floor(), (hi * 1.01).log10().ceil())
    } else {
        (-3.0, 0.0)
    };
    let last = points.last().map_or(1, |p| p.iteration.max(1));
    let mut chart = ChartBuilder::on(&root)
        .caption("loss at each reported iteration", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(0u64..last, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("iteration (all scales)")
        .y_desc("weighted loss (log scale)")
        .label_style(("sans-serif", 15))
        .y_label_formatter(&|v| format!("{:.1e}", 10f64.powf(*v)))
        .draw()?;
    let boundary = RGBColor(230, 140, 0);
    for (i, &x) in scale_starts.iter().enumerate() {
        let line = chart.draw_series(LineSeries::new(
            [(x, lo), (x, hi)],
            boundary.stroke_width(2),
        ))?;
        if i == 0 {
            line.label("next scale").legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], boundary.stroke_width(2))
            });
        }
    }
    for (k, name) in NAMES.iter().enumerate() {
        let series: Vec<(u64, f64)> = points
            .iter()
            .filter(|p| p.values[k].is_finite() && p.values[k] > 0.0)
            .map(|p| (p.iteration, p.values[k].log10()))
            .collect();
        if series.is_empty() {
            continue; // a term with weight 0
        }
        let color = COLORS[k];
        chart
            .draw_series(LineSeries::new(series, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
