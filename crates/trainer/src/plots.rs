//! The figures a pruning paper shows, drawn with plotters into PNG files:
//! - accuracy against remaining weights, one line per method (mean over seeds, with the
//!   spread as error bars; the dense model as a dashed line);
//! - the kept fraction of each encoder layer, one line per run.
//!
//! plotters draws text with a TrueType font that it does not ship: the first of
//! `PRUNEKIT_FONT` and a few usual system fonts (DejaVu, Liberation, Noto, Arial, Helvetica)
//! is used. Without one the plots are skipped with a warning; the tables are still written.

use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// One point of a series: x = remaining fraction, y = accuracy, spread = its standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub spread: f64,
}

/// A line: a label and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

const FONT_CANDIDATES: [&str; 8] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font as "sans-serif" once; the path it came from, or why there is none.
pub fn font() -> Result<&'static str, String> {
    static FONT: OnceLock<Result<String, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var("PRUNEKIT_FONT").ok();
        let candidates = env.iter().map(String::as_str).chain(FONT_CANDIDATES);
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(path.to_string());
                }
            }
        }
        Err("no TrueType font found for the plots; set PRUNEKIT_FONT=/path/to/font.ttf".to_string())
    })
    .as_ref()
    .map(String::as_str)
    .map_err(Clone::clone)
}

fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Accuracy (y, in %) against remaining weights (x, in %, log scale), one line per series,
/// error bars of ± spread, and `dense` (if any) as a dashed horizontal line.
pub fn accuracy_vs_remaining(path: &Path, title: &str, y_desc: &str, series: &[Series], dense: Option<f64>) -> Result<(), String> {
    font()?;
    let xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| 100.0 * p.x)).collect();
    let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().flat_map(|p| [100.0 * (p.y - p.spread), 100.0 * (p.y + p.spread)])).chain(dense.map(|d| 100.0 * d)).collect();
    if xs.is_empty() {
        return Err(format!("{}: nothing to plot", path.display()));
    }
    let (xmin, xmax) = (xs.iter().cloned().fold(f64::INFINITY, f64::min), xs.iter().cloned().fold(0.0, f64::max));
    let (ymin, ymax) = (ys.iter().cloned().fold(f64::INFINITY, f64::min), ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    let pad = ((ymax - ymin) * 0.08).max(0.5);
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(((xmin * 0.8).max(0.01)..(xmax * 1.25).min(100.0)).log_scale(), (ymin - pad)..(ymax + pad).min(100.5))
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("remaining encoder weights (%, log scale)")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string())
        .draw()
        .map_err(err(path))?;
    if let Some(d) = dense {
        let y = 100.0 * d;
        chart
            .draw_series(DashedLineSeries::new([((xmin * 0.8).max(0.01), y), ((xmax * 1.25).min(100.0), y)], 6, 4, BLACK.stroke_width(1)))
            .map_err(err(path))?
            .label(format!("dense ({y:.2}%)"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut pts: Vec<(f64, f64)> = s.points.iter().map(|p| (100.0 * p.x, 100.0 * p.y)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err(path))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled()))).map_err(err(path))?;
        chart
            .draw_series(s.points.iter().filter(|p| p.spread > 0.0).map(|p| {
                ErrorBar::new_vertical(100.0 * p.x, 100.0 * (p.y - p.spread), 100.0 * p.y, 100.0 * (p.y + p.spread), color.stroke_width(1), 8)
            }))
            .map_err(err(path))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// Kept fraction (%) of each encoder layer (x = layer index), one line per series; the points'
/// `x` is the layer index and `y` the kept fraction.
pub fn kept_per_layer(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    font()?;
    let layers = series.iter().flat_map(|s| s.points.iter().map(|p| p.x as usize)).max().ok_or_else(|| format!("{}: nothing to plot", path.display()))?;
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.3f64..(layers as f64 + 0.3), 0f64..105f64)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("encoder layer")
        .y_desc("kept weights (%)")
        .x_labels(layers + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(err(path))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.x, 100.0 * p.y)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err(path))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled()))).map_err(err(path))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}
