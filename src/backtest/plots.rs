//! Report plots: equity, drawdown, weights and monthly returns, each as PNG and SVG.
//!
//! Text is drawn with the DejaVu Sans font bundled under `assets/fonts/` (through
//! plotters' `ab_glyph` backend), so a PNG renders the same on every machine, with or
//! without system fonts; SVGs name the `sans-serif` family and leave glyphs to the viewer.
//! The time axis is the bar index, labelled with the bars' New York dates, so nights,
//! weekends and holidays take no room. Every file is written atomically: rendered to a
//! temporary sibling, then renamed over the target.

use super::ReplayResult;
use crate::fsutil::write_atomic;
use crate::market::Panel;
use chrono::Datelike;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bundled font (DejaVu Sans 2.37, Bitstream Vera license: `assets/fonts/`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name every text style uses; the bundled font is registered under it.
pub(crate) const FAMILY: &str = "sans-serif";
/// Pixel size of every plot.
const SIZE: (u32, u32) = (1200, 600);

/// The plots, in the order [`write_plots`] writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plot {
    /// Each run's equity against equal-weight buy-and-hold.
    Equity,
    /// Drawdown from the running peak, filled, for each run and buy-and-hold.
    Drawdown,
    /// Position weight per ticker of one run, stacked (one plot per run).
    Weights,
    /// Monthly returns of one run, year × month, with values in the cells (one per run).
    MonthlyReturns,
}

impl Plot {
    pub const ALL: [Plot; 4] = [Plot::Equity, Plot::Drawdown, Plot::Weights, Plot::MonthlyReturns];

    /// Pixel size: 1200 × 600, the heat map as tall as its years need.
    fn size(self, d: &Data) -> (u32, u32) {
        match self {
            Plot::MonthlyReturns => {
                let mut years: Vec<i32> = monthly_returns(d.single(), d.panel).iter().map(|m| m.year).collect();
                years.dedup();
                (SIZE.0, (years.len().max(1) as u32 * 90 + 110).clamp(240, 1400))
            }
            _ => SIZE,
        }
    }

    /// Whether the plot shows one run (drawn once per run) rather than all of them.
    fn per_run(self) -> bool {
        matches!(self, Plot::Weights | Plot::MonthlyReturns)
    }

    /// File stem (`equity.png`, `equity.svg`, …).
    pub fn stem(self) -> &'static str {
        match self {
            Plot::Equity => "equity",
            Plot::Drawdown => "drawdown",
            Plot::Weights => "weights",
            Plot::MonthlyReturns => "monthly_returns",
        }
    }
}

/// What every plot draws from.
struct Data<'a> {
    results: &'a [ReplayResult],
    benchmark: &'a ReplayResult,
    panel: &'a Panel,
    /// Drawing a bitmap: thick lines go segment by segment (see [`line`]).
    bitmap: bool,
    /// The run a single-run plot shows (an index into `results`).
    run: usize,
}

impl Data<'_> {
    /// The first run (whose bars every run shares), or buy-and-hold when there is none.
    fn first(&self) -> &ReplayResult {
        self.results.first().unwrap_or(self.benchmark)
    }

    /// The run a single-run plot shows: run `run`, or buy-and-hold when there is none.
    fn single(&self) -> &ReplayResult {
        self.results.get(self.run).unwrap_or(self.benchmark)
    }

    /// Curves of the multi-run plots: every run, then buy-and-hold unless a run is it.
    fn curves(&self) -> Vec<(String, &ReplayResult, RGBColor)> {
        let mut out: Vec<(String, &ReplayResult, RGBColor)> =
            self.results.iter().enumerate().map(|(i, r)| (r.name.clone(), r, run_color(i))).collect();
        if !self.results.iter().any(|r| r.name == self.benchmark.name) {
            out.push((format!("{} (benchmark)", self.benchmark.name), self.benchmark, BENCHMARK));
        }
        out
    }

    /// Bar range of the x axis.
    fn x_range(&self) -> std::ops::Range<f64> {
        let rows = &self.first().equity;
        let first = rows.first().map_or(0.0, |r| r.bar as f64);
        let last = rows.last().map_or(1.0, |r| r.bar as f64);
        first..last.max(first + 1.0)
    }

    fn date_label(&self, x: f64) -> String {
        let t = x.round();
        if t >= 0.0 && (t as usize) < self.panel.n_bars() {
            self.panel.date(t as usize).format("%Y-%m-%d").to_string()
        } else {
            String::new()
        }
    }
}

const BENCHMARK: RGBColor = RGBColor(40, 40, 40);
const GREEN: RGBColor = RGBColor(26, 150, 65);
const RED: RGBColor = RGBColor(215, 48, 39);

fn run_color(i: usize) -> RGBColor {
    // Matplotlib's tab10 then the dark half of tab20b: 16 distinct colours.
    const COLORS: [RGBColor; 16] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(57, 59, 121),
        RGBColor(99, 121, 57),
        RGBColor(140, 109, 49),
        RGBColor(132, 60, 57),
        RGBColor(123, 65, 115),
        RGBColor(82, 84, 163),
    ];
    COLORS[i % COLORS.len()]
}

/// Registers the bundled font once; `false` when it cannot be parsed.
pub(crate) fn register() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok())
}

/// Writes the plots (`equity`, `drawdown`, then `weights` and `monthly_returns` of every
/// run: the first run's under those names, the others' as `weights_<run>`, …), each as
/// `.png` and `.svg`, into `dir`, and returns their paths (PNG then SVG, plot by plot).
///
/// `results` are the runs, `benchmark` equal-weight
/// buy-and-hold over the same bars, `panel` the bars' timeline and tickers.
///
/// # Errors
/// I/O errors, and a drawing error as [`io::ErrorKind::Other`]; a plot already written
/// stays, a failed one leaves no file behind.
pub fn write_plots(
    dir: &Path,
    results: &[ReplayResult],
    benchmark: &ReplayResult,
    panel: &Panel,
) -> io::Result<Vec<PathBuf>> {
    if !register() {
        return Err(io::Error::other("the bundled font assets/fonts/DejaVuSans.ttf does not parse"));
    }
    std::fs::create_dir_all(dir)?;
    let mut data = Data { results, benchmark, panel, bitmap: true, run: 0 };
    let mut paths = Vec::new();
    for plot in Plot::ALL {
        // The first run's plots keep the plain names; the others' carry the run's name.
        let others = if plot.per_run() { results.get(1..).unwrap_or_default() } else { &[] };
        let stems = std::iter::once(plot.stem().to_string())
            .chain(others.iter().map(|r| format!("{}_{}", plot.stem(), file_safe(&r.name))));
        for (run, stem) in stems.enumerate() {
            data.run = run;
            paths.extend(write_plot(dir, plot, &stem, &mut data)?);
        }
    }
    Ok(paths)
}

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.` replaced by `_`.
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// Writes one plot as `<stem>.png` and `<stem>.svg` and returns both paths.
fn write_plot(dir: &Path, plot: Plot, stem: &str, data: &mut Data) -> io::Result<[PathBuf; 2]> {
    let png = dir.join(format!("{stem}.png"));
    // The temporary name keeps `.png`: the encoder picks the format from it.
    let tmp = dir.join(format!(".{stem}.tmp-{}.png", std::process::id()));
    data.bitmap = true;
    let failed = |e: &dyn std::fmt::Display| io::Error::other(format!("{stem} plot: {e}"));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, plot.size(data)).into_drawing_area();
        draw(plot, data, &root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
        drop(root);
        std::fs::rename(&tmp, &png)
    })();
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drawn?;

    data.bitmap = false;
    let svg_path = dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size(data)).into_drawing_area();
        draw(plot, data, &root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok([png, svg_path])
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;
/// A chart with bars on x and values on y.
type TimeChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
/// A named, coloured series of (bar, value) points.
type Curve = (String, Vec<(f64, f64)>, RGBColor);

fn draw<DB: DrawingBackend>(plot: Plot, d: &Data, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    match plot {
        Plot::Equity => equity(d, root),
        Plot::Drawdown => drawdown(d, root),
        Plot::Weights => weights(d, root),
        Plot::MonthlyReturns => monthly(d, root),
    }
}

/// Caption style of every plot.
fn title() -> TextStyle<'static> {
    (FAMILY, 26).into_font().into()
}

/// Width of the legend panel right of the time plots, in pixels.
const LEGEND_WIDTH: u32 = 230;

/// Splits a plot into the chart (left) and its legend panel (right).
fn split<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (w, _) = root.dim_in_pixel();
    root.split_horizontally(w.saturating_sub(LEGEND_WIDTH))
}

/// One legend line: a swatch (a line or a filled box) and a name.
struct Key {
    name: String,
    color: RGBColor,
    filled: bool,
}

/// Draws `keys` top to bottom in the legend panel, level with the plotting area.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, keys: &[Key]) -> DrawResult<DB> {
    let style = TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, k) in keys.iter().enumerate() {
        let y = 70 + 26 * i as i32;
        if k.filled {
            area.draw(&Rectangle::new([(8, y - 7), (30, y + 7)], k.color.filled()))?;
        } else {
            area.draw(&PathElement::new(vec![(8, y), (30, y)], k.color.stroke_width(3)))?;
        }
        area.draw(&Text::new(k.name.clone(), (38, y), style.clone()))?;
    }
    Ok(())
}

/// At most two points (the lowest and the highest, in time order) per bucket of
/// `points.len() / buckets` consecutive points: a line through them covers the same
/// pixels as the full series, without thousands of sub-pixel segments.
pub fn envelope(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    let per = points.len().div_ceil(buckets.max(1)).max(1);
    if per <= 2 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(2 * buckets + 2);
    for chunk in points.chunks(per) {
        let lo = chunk.iter().enumerate().fold(0, |b, (i, p)| if p.1 < chunk[b].1 { i } else { b });
        let hi = chunk.iter().enumerate().fold(0, |b, (i, p)| if p.1 > chunk[b].1 { i } else { b });
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(chunk[a]);
        if b != a {
            out.push(chunk[b]);
        }
    }
    out
}

/// Draws a polyline. On a bitmap, a thick line goes one segment at a time: plotters fills
/// a thick path as one polygon, and the self-intersections of a jagged price line then
/// leave holes in it.
fn line<DB: DrawingBackend>(
    d: &Data,
    chart: &mut TimeChart<'_, DB>,
    points: &[(f64, f64)],
    style: ShapeStyle,
) -> DrawResult<DB> {
    if d.bitmap && style.stroke_width > 1 {
        chart.draw_series(points.windows(2).map(|w| PathElement::new(vec![w[0], w[1]], style)))?;
    } else {
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
    }
    Ok(())
}

/// Points per plot line: about one bucket per pixel column.
const BUCKETS: usize = 900;

/// Builds a time chart (bars on x, labelled with dates) with its mesh drawn.
fn time_chart<'a, DB: DrawingBackend>(
    d: &Data,
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    y: std::ops::Range<f64>,
    y_desc: &str,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<TimeChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, title())
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(d.x_range(), y)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_labels(7)
        .x_label_formatter(&|x| d.date_label(*x))
        .y_label_formatter(y_fmt)
        .y_desc(y_desc)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    Ok(chart)
}

fn equity<DB: DrawingBackend>(d: &Data, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let curves = d.curves();
    let (lo, hi) = curves
        .iter()
        .flat_map(|(_, r, _)| r.equity.iter().map(|e| e.equity))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-3).max(1e-9);
    let (plot, keys) = split(root);
    let mut chart = time_chart(
        d,
        &plot,
        "Equity: runs vs equal-weight buy-and-hold",
        (lo - pad)..(hi + pad),
        "equity ($)",
        &|y| format!("${y:.0}"),
    )?;
    // Buy-and-hold first, so the runs draw over it.
    for (_, r, color) in curves.iter().rev() {
        let points: Vec<(f64, f64)> = r.equity.iter().map(|e| (e.bar as f64, e.equity)).collect();
        line(d, &mut chart, &envelope(&points, BUCKETS), color.stroke_width(2))?;
    }
    let keys_list: Vec<Key> =
        curves.iter().map(|(n, _, c)| Key { name: n.clone(), color: *c, filled: false }).collect();
    legend(&keys, &keys_list)
}

/// Drawdown of an equity curve at each row: `E_i / max_{j≤i} E_j − 1` (zero or negative).
pub fn drawdown_series(equity: &[f64]) -> Vec<f64> {
    let mut peak = f64::MIN;
    equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            if peak > 0.0 { e / peak - 1.0 } else { 0.0 }
        })
        .collect()
}

fn drawdown<DB: DrawingBackend>(d: &Data, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let curves: Vec<Curve> = d
        .curves()
        .into_iter()
        .map(|(name, r, c)| {
            let eq: Vec<f64> = r.equity.iter().map(|e| e.equity).collect();
            let dd = drawdown_series(&eq);
            let points: Vec<(f64, f64)> = r.equity.iter().zip(dd).map(|(e, v)| (e.bar as f64, 100.0 * v)).collect();
            (name, envelope(&points, BUCKETS), c)
        })
        .collect();
    let lo = curves.iter().flat_map(|(_, p, _)| p.iter().map(|q| q.1)).filter(|v| v.is_finite()).fold(0.0f64, f64::min);
    let lo = (lo * 1.08).min(-1.0);
    let (plot, keys) = split(root);
    let mut chart =
        time_chart(d, &plot, "Drawdown from the running peak", lo..0.5, "drawdown (%)", &|y| format!("{y:.0}%"))?;
    // Only the first run is shaded: fills of several curves over one another blend into
    // colours no legend key has. Buy-and-hold's line first, so the runs draw over it.
    if let Some((_, points, color)) = curves.first() {
        chart.draw_series(AreaSeries::new(points.clone(), 0.0, color.mix(0.18)))?;
    }
    for (_, points, color) in curves.iter().rev() {
        line(d, &mut chart, points, color.stroke_width(2))?;
    }
    let keys_list: Vec<Key> =
        curves.iter().map(|(n, _, c)| Key { name: n.clone(), color: *c, filled: false }).collect();
    legend(&keys, &keys_list)
}

/// Position weights of a run: `[rows][tickers]`, each the position's value over equity.
pub fn weight_rows(result: &ReplayResult) -> Vec<Vec<f64>> {
    result
        .equity
        .iter()
        .map(|r| r.values.iter().map(|v| if r.equity > 0.0 { v / r.equity } else { 0.0 }).collect())
        .collect()
}

fn weights<DB: DrawingBackend>(d: &Data, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let run = d.single();
    let w = weight_rows(run);
    let n_tickers = w.first().map_or(0, Vec::len);
    // Mean weights over buckets of consecutive rows (about one per pixel column), then
    // cumulative sums: layer k's top is the sum of tickers 0..=k.
    let per = run.equity.len().div_ceil(BUCKETS).max(1);
    let mut xs = Vec::new();
    let mut cum: Vec<Vec<f64>> = Vec::new();
    for (rows, ws) in run.equity.chunks(per).zip(w.chunks(per)) {
        let mut s = 0.0;
        let layer: Vec<f64> = (0..n_tickers)
            .map(|k| {
                s += ws.iter().map(|r| r[k].max(0.0)).sum::<f64>() / ws.len() as f64;
                s
            })
            .collect();
        // A bucket spans its bars: draw it at its first and its last bar.
        for row in [rows.first(), rows.last()].into_iter().flatten() {
            xs.push(row.bar as f64);
            cum.push(layer.clone());
        }
    }
    let top = cum.iter().filter_map(|r| r.last().copied()).filter(|v| v.is_finite()).fold(1.0f64, f64::max);
    let (plot, keys) = split(root);
    let caption = format!("Position weights by ticker, stacked ({})", run.name);
    let mut chart =
        time_chart(d, &plot, &caption, 0.0..100.0 * top * 1.02, "weight (% of equity)", &|y| format!("{y:.0}%"))?;
    // Tallest layer first, so each lower layer paints over the part that is not its own.
    for k in (0..n_tickers).rev() {
        let color = run_color(k);
        let points: Vec<(f64, f64)> = xs.iter().zip(&cum).map(|(x, c)| (*x, 100.0 * c[k])).collect();
        chart.draw_series(AreaSeries::new(points, 0.0, color.filled()))?;
    }
    // Legend top to bottom as the layers stack: the last ticker is the top layer.
    let keys_list: Vec<Key> = (0..n_tickers)
        .rev()
        .map(|k| Key {
            name: d.panel.tickers().get(k).cloned().unwrap_or_else(|| format!("#{k}")),
            color: run_color(k),
            filled: true,
        })
        .collect();
    legend(&keys, &keys_list)
}

/// One calendar month of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonthlyReturn {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
    /// Equity at the month's last bar over equity at the previous month's last bar (the
    /// first row for the first month), minus one.
    pub ret: f64,
}

/// Monthly returns of a run, by the New York dates of its bars, in time order.
pub fn monthly_returns(result: &ReplayResult, panel: &Panel) -> Vec<MonthlyReturn> {
    let mut out: Vec<MonthlyReturn> = Vec::new();
    let Some(first) = result.equity.first() else { return out };
    let mut base = first.equity;
    let mut last = first.equity;
    let mut current: Option<(i32, u32)> = None;
    for row in &result.equity {
        if row.bar >= panel.n_bars() {
            break;
        }
        let date = panel.date(row.bar);
        let key = (date.year(), date.month());
        if current.is_some_and(|c| c != key) {
            if let Some((year, month)) = current {
                out.push(MonthlyReturn { year, month, ret: last / base - 1.0 });
            }
            base = last;
        }
        current = Some(key);
        last = row.equity;
    }
    if let Some((year, month)) = current {
        out.push(MonthlyReturn { year, month, ret: last / base - 1.0 });
    }
    out
}

/// White for zero, towards green (gains) or red (losses) with `|r| / scale`.
fn heat(r: f64, scale: f64) -> RGBColor {
    let a = if scale > 0.0 && r.is_finite() { (r.abs() / scale).min(1.0) * 0.85 } else { 0.0 };
    let to = if r >= 0.0 { GREEN } else { RED };
    let mix = |c: u8| (255.0 + (f64::from(c) - 255.0) * a).round() as u8;
    RGBColor(mix(to.0), mix(to.1), mix(to.2))
}

fn monthly<DB: DrawingBackend>(d: &Data, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    const NAMES: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let run = d.single();
    let months = monthly_returns(run, d.panel);
    let mut years: Vec<i32> = months.iter().map(|m| m.year).collect();
    years.dedup();
    let n_years = years.len().max(1);
    // Cell (month, year) spans [m, m + 1] × [row, row + 1]; the earliest year is the top row.
    let row_of = |year: i32| (n_years - 1 - years.iter().position(|&y| y == year).unwrap_or(0)) as f64;
    let scale = months.iter().map(|m| m.ret.abs()).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let caption = format!("Monthly returns ({})", run.name);
    let mut chart = ChartBuilder::on(root)
        .caption(&caption, title())
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..12f64, 0f64..n_years as f64)?;
    // Month and year labels in the label areas, centred on the cells (`root` has the
    // backend's pixel coordinates, which `backend_coord` gives).
    let label = TextStyle::from((FAMILY, 16).into_font());
    for (m, name) in NAMES.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(m as f64 + 0.5, 0.0));
        root.draw(&Text::new(*name, (px, py + 18), label.pos(Pos::new(HPos::Center, VPos::Center))))?;
    }
    for (i, year) in years.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(0.0, (n_years - 1 - i) as f64 + 0.5));
        root.draw(&Text::new(year.to_string(), (px - 10, py), label.pos(Pos::new(HPos::Right, VPos::Center))))?;
    }
    // Every cell, empty ones light grey, then the months' colours, values and borders.
    chart.draw_series(
        (0..12)
            .flat_map(|x| (0..n_years).map(move |y| (x as f64, y as f64)))
            .map(|(x, y)| Rectangle::new([(x, y + 1.0), (x + 1.0, y)], RGBColor(245, 245, 245).filled())),
    )?;
    chart.draw_series(months.iter().map(|m| {
        let (x, y) = (f64::from(m.month) - 1.0, row_of(m.year));
        Rectangle::new([(x, y + 1.0), (x + 1.0, y)], heat(m.ret, scale).filled())
    }))?;
    chart.draw_series(
        (0..12)
            .flat_map(|x| (0..n_years).map(move |y| (x as f64, y as f64)))
            .map(|(x, y)| Rectangle::new([(x, y + 1.0), (x + 1.0, y)], WHITE.stroke_width(2))),
    )?;
    let text = TextStyle::from((FAMILY, 17).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    chart.draw_series(months.iter().map(|m| {
        let (x, y) = (f64::from(m.month) - 1.0, row_of(m.year));
        let value = if m.ret.is_finite() { format!("{:+.1}%", 100.0 * m.ret) } else { "-".into() };
        Text::new(value, (x + 0.5, y + 0.5), text.clone())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::EquityRow;

    #[test]
    fn drawdown_series_is_relative_to_the_running_peak() {
        let dd = drawdown_series(&[100.0, 110.0, 99.0, 121.0, 110.0]);
        let want = [0.0, 0.0, -0.1, 0.0, 110.0 / 121.0 - 1.0];
        for (a, b) in dd.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{dd:?}");
        }
    }

    #[test]
    fn heat_is_white_at_zero_and_saturates() {
        assert_eq!(heat(0.0, 0.1), RGBColor(255, 255, 255));
        let g = heat(0.5, 0.1);
        assert!(g.1 > g.0 && g.1 > g.2, "{g:?}");
        let r = heat(-0.1, 0.1);
        assert!(r.0 > r.1 && r.0 > r.2, "{r:?}");
    }

    /// A daily panel of two tickers over about 14 months, and a run holding half its
    /// equity in the first ticker.
    fn fixture() -> (Panel, ReplayResult) {
        let mut cfg = crate::config::DataConfig {
            tickers: vec!["AAA".into(), "BBB".into()],
            interval: crate::config::Interval::Day,
            ..Default::default()
        };
        cfg.synthetic.years = 1.2;
        let panel = crate::market::synthetic::synthetic_panel(&cfg);
        let close = panel.close(0).to_vec();
        let equity = (0..panel.n_bars())
            .map(|bar| {
                let e = 5000.0 + 5000.0 * close[bar] / close[0];
                EquityRow { bar, equity: e, cash: 5000.0, values: vec![e - 5000.0, 0.0] }
            })
            .collect();
        let result = ReplayResult {
            name: "half".into(),
            initial_cash: 10000.0,
            equity,
            trades: vec![],
            totals: Default::default(),
            refusal_names: vec![],
        };
        (panel, result)
    }

    #[test]
    fn monthly_returns_chain_to_the_total_return() {
        let (panel, result) = fixture();
        let months = monthly_returns(&result, &panel);
        let first = panel.date(0);
        assert_eq!((months[0].year, months[0].month), (first.year(), first.month()));
        assert!(months.len() >= 14, "{}", months.len());
        for w in months.windows(2) {
            assert!((w[1].year, w[1].month) > (w[0].year, w[0].month));
        }
        let chained = months.iter().fold(1.0, |acc, m| acc * (1.0 + m.ret));
        let (e0, e1) = (result.equity[0].equity, result.equity[result.equity.len() - 1].equity);
        assert!((chained - e1 / e0).abs() < 1e-12, "{chained} vs {}", e1 / e0);
    }

    #[test]
    fn writes_every_plot_as_png_and_svg_and_no_temporaries() {
        let (panel, result) = fixture();
        let dir = tempfile::tempdir().unwrap();
        let paths = write_plots(dir.path(), std::slice::from_ref(&result), &result, &panel).unwrap();
        let names: Vec<String> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let want: Vec<String> =
            Plot::ALL.iter().flat_map(|p| [format!("{}.png", p.stem()), format!("{}.svg", p.stem())]).collect();
        assert_eq!(names, want);
        for p in &paths {
            let bytes = std::fs::read(p).unwrap();
            if p.extension().unwrap() == "png" {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
            } else {
                assert!(bytes.starts_with(b"<svg") && bytes.ends_with(b"</svg>\n"), "{}", p.display());
            }
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 8, "no temporary file is left");
    }

    #[test]
    fn every_run_gets_its_weights_and_monthly_returns() {
        let (panel, result) = fixture();
        let other = ReplayResult { name: "b/final model".into(), ..result.clone() };
        let dir = tempfile::tempdir().unwrap();
        let paths = write_plots(dir.path(), &[result.clone(), other], &result, &panel).unwrap();
        let names: Vec<String> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let stems = ["equity", "drawdown", "weights", "weights_b_final_model", "monthly_returns"];
        for stem in stems.into_iter().chain(["monthly_returns_b_final_model"]) {
            assert!(names.contains(&format!("{stem}.svg")) && names.contains(&format!("{stem}.png")), "{names:?}");
        }
        assert_eq!(names.len(), 12);
        let svg = std::fs::read_to_string(dir.path().join("weights_b_final_model.svg")).unwrap();
        assert!(svg.contains("b/final model"), "the run's own weights");
    }

    #[test]
    fn weights_are_values_over_equity() {
        let result = ReplayResult {
            name: "x".into(),
            initial_cash: 100.0,
            equity: vec![EquityRow { bar: 0, equity: 200.0, cash: 50.0, values: vec![100.0, 50.0] }],
            trades: vec![],
            totals: Default::default(),
            refusal_names: vec![],
        };
        assert_eq!(weight_rows(&result), vec![vec![0.5, 0.25]]);
    }
}
