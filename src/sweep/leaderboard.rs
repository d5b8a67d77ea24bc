//! The leaderboard: one row per point (its config difference), the median and range over
//! its seeds and folds of the validation metric it is ranked by and of the test metrics,
//! beside buy-and-hold and the random policy on the same bars; every trial with its status,
//! failed ones with their error. Written as `leaderboard.csv`, `leaderboard.json` and
//! `leaderboard.html` (the table and a plot of every trial's evaluation curve).

use super::result::TrialResult;
use super::spec::{Point, SweepSpec, Trial};
use crate::backtest::html::escape;
use crate::backtest::plots::{FAMILY, register};
use crate::config::BestMetric;
use crate::fsutil::write_atomic;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// How a trial ended, as the sweep recorded it in the trial's `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TrialStatus {
    /// Ran to `training.total_timesteps`.
    Done,
    /// Stopped by ASHA at a rung: the timesteps and the metric it was judged on.
    Stopped { timesteps: u64, metric: f64 },
    /// The run failed: its error (the last line it wrote) and exit code.
    Failed { error: String },
}

impl TrialStatus {
    /// The file name inside a trial's folder.
    pub const FILE: &'static str = "status.json";

    fn name(status: Option<&TrialStatus>) -> &'static str {
        match status {
            Some(TrialStatus::Done) => "done",
            Some(TrialStatus::Stopped { .. }) => "stopped",
            Some(TrialStatus::Failed { .. }) => "failed",
            None => "not run",
        }
    }
}

/// Everything known about one trial when the leaderboard is written.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    pub trial: Trial,
    pub status: Option<TrialStatus>,
    pub result: Option<TrialResult>,
    /// The training's evaluations: (timesteps, value of the ranked metric's column).
    pub curve: Vec<(u64, f64)>,
}

impl TrialOutcome {
    /// The value the trial is ranked by: its model's validation `metric`, or for
    /// `episode_reward` the best evaluation reward during training.
    pub fn metric(&self, metric: BestMetric) -> Option<f64> {
        let v = match metric {
            BestMetric::Sharpe => self.result.as_ref()?.split("validation")?.sharpe,
            BestMetric::TotalReturn => self.result.as_ref()?.split("validation")?.total_return,
            BestMetric::EpisodeReward => self.curve.iter().map(|c| c.1).filter(|v| !v.is_nan()).reduce(f64::max)?,
        };
        (!v.is_nan()).then_some(v)
    }

    fn test(&self, f: impl Fn(&super::result::SplitOutcome) -> f64) -> Option<f64> {
        self.result.as_ref()?.split("test").map(f).filter(|v| !v.is_nan())
    }

    fn validation(&self, f: impl Fn(&super::result::SplitOutcome) -> f64) -> Option<f64> {
        self.result.as_ref()?.split("validation").map(f).filter(|v| !v.is_nan())
    }
}

/// Median, smallest and largest; NaN when there is no value.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let med = crate::bench::median(v.to_vec());
    (med, v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

fn median_or_nan(v: &[f64]) -> f64 {
    spread(v).0
}

/// One point of the sweep, over its seeds and folds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub rank: usize,
    pub point: String,
    /// The varied keys, `key=value` separated by spaces (empty: the base config).
    pub config: String,
    pub trials: usize,
    pub done: usize,
    pub stopped: usize,
    pub failed: usize,
    /// The ranked validation metric (see [`TrialOutcome::metric`]).
    pub metric_median: f64,
    pub metric_min: f64,
    pub metric_max: f64,
    pub validation_sharpe_median: f64,
    pub validation_return_median: f64,
    pub validation_buy_and_hold_sharpe: f64,
    pub test_sharpe_median: f64,
    pub test_sharpe_min: f64,
    pub test_sharpe_max: f64,
    pub test_return_median: f64,
    pub test_turnover_per_year_median: f64,
    /// Trials whose test Sharpe ratio is above buy-and-hold's on the same bars.
    pub test_beat_buy_and_hold: usize,
    pub test_buy_and_hold_sharpe: f64,
    pub test_buy_and_hold_return: f64,
    pub test_random_sharpe: f64,
}

/// One trial, as listed under the table.
#[derive(Debug, Clone, Serialize)]
pub struct TrialRow {
    pub id: String,
    pub point: String,
    pub seed: u64,
    pub fold: usize,
    pub status: &'static str,
    /// The failure, or for a stopped trial the rung it stopped at.
    pub detail: String,
    pub timesteps: u64,
    pub seconds: f64,
    pub metric: f64,
    pub test_sharpe: f64,
    pub test_return: f64,
}

/// The whole leaderboard.
#[derive(Debug, Clone, Serialize)]
pub struct Leaderboard {
    pub sweep: String,
    pub metric: BestMetric,
    pub rows: Vec<Row>,
    pub trials: Vec<TrialRow>,
}

impl Leaderboard {
    /// Ranks the points of `spec` by the median of their trials' metric (highest first;
    /// points without any result last).
    pub fn build(name: &str, spec: &SweepSpec, points: &[Point], outcomes: &[TrialOutcome]) -> Self {
        let metric = spec.metric;
        let mut rows: Vec<Row> = points
            .iter()
            .map(|p| {
                let mine: Vec<&TrialOutcome> = outcomes.iter().filter(|o| o.trial.point == p.index).collect();
                let count = |name: &str| mine.iter().filter(|o| TrialStatus::name(o.status.as_ref()) == name).count();
                let col = |f: &dyn Fn(&TrialOutcome) -> Option<f64>| -> Vec<f64> { mine.iter().filter_map(|o| f(o)).collect() };
                let m = spread(&col(&|o| o.metric(metric)));
                let ts = spread(&col(&|o| o.test(|s| s.sharpe)));
                let bh_test = col(&|o| o.test(|s| s.buy_and_hold_sharpe));
                let beat = mine
                    .iter()
                    .filter(|o| matches!((o.test(|s| s.sharpe), o.test(|s| s.buy_and_hold_sharpe)), (Some(a), Some(b)) if a > b))
                    .count();
                Row {
                    rank: 0,
                    point: format!("p{:03}", p.index),
                    config: p.overrides.join(" "),
                    trials: mine.len(),
                    done: count("done"),
                    stopped: count("stopped"),
                    failed: count("failed"),
                    metric_median: m.0,
                    metric_min: m.1,
                    metric_max: m.2,
                    validation_sharpe_median: median_or_nan(&col(&|o| o.validation(|s| s.sharpe))),
                    validation_return_median: median_or_nan(&col(&|o| o.validation(|s| s.total_return))),
                    validation_buy_and_hold_sharpe: median_or_nan(&col(&|o| o.validation(|s| s.buy_and_hold_sharpe))),
                    test_sharpe_median: ts.0,
                    test_sharpe_min: ts.1,
                    test_sharpe_max: ts.2,
                    test_return_median: median_or_nan(&col(&|o| o.test(|s| s.total_return))),
                    test_turnover_per_year_median: median_or_nan(&col(&|o| o.test(|s| s.turnover_per_year))),
                    test_beat_buy_and_hold: beat,
                    test_buy_and_hold_sharpe: median_or_nan(&bh_test),
                    test_buy_and_hold_return: median_or_nan(&col(&|o| o.test(|s| s.buy_and_hold_return))),
                    test_random_sharpe: median_or_nan(&col(&|o| o.test(|s| s.random_sharpe))),
                }
            })
            .collect();
        // NaN (no result) ranks last; ties keep the expansion's order.
        rows.sort_by(|a, b| {
            let key = |r: &Row| if r.metric_median.is_nan() { f64::NEG_INFINITY } else { r.metric_median };
            key(b).total_cmp(&key(a)).then(a.point.cmp(&b.point))
        });
        for (i, r) in rows.iter_mut().enumerate() {
            r.rank = i + 1;
        }
        let trials = outcomes
            .iter()
            .map(|o| {
                let detail = match &o.status {
                    Some(TrialStatus::Failed { error }) => error.clone(),
                    Some(TrialStatus::Stopped { timesteps, metric: m }) => {
                        format!(
                            "stopped by ASHA at {timesteps} timesteps ({} {m:.3})",
                            super::result::eval_column(metric)
                        )
                    }
                    _ => String::new(),
                };
                TrialRow {
                    id: o.trial.id.clone(),
                    point: format!("p{:03}", o.trial.point),
                    seed: o.trial.seed,
                    fold: o.trial.fold,
                    status: TrialStatus::name(o.status.as_ref()),
                    detail,
                    timesteps: o.result.as_ref().map_or(0, |r| r.timesteps),
                    seconds: o.result.as_ref().map_or(0.0, |r| r.seconds),
                    metric: o.metric(metric).unwrap_or(f64::NAN),
                    test_sharpe: o.test(|s| s.sharpe).unwrap_or(f64::NAN),
                    test_return: o.test(|s| s.total_return).unwrap_or(f64::NAN),
                }
            })
            .collect();
        Self { sweep: name.to_string(), metric, rows, trials }
    }

    /// Writes `leaderboard.csv`, `leaderboard.json` and `leaderboard.html` into `dir`, each
    /// atomically; `outcomes` give the plot's curves.
    ///
    /// # Errors
    /// I/O errors, and a drawing error as [`io::ErrorKind::Other`].
    pub fn write(&self, dir: &Path, outcomes: &[TrialOutcome]) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in &self.rows {
            w.serialize(r).map_err(io::Error::other)?;
        }
        write_atomic(&dir.join("leaderboard.csv"), &w.into_inner().map_err(|e| io::Error::other(e.to_string()))?)?;
        write_atomic(&dir.join("leaderboard.json"), &serde_json::to_vec_pretty(self).map_err(io::Error::other)?)?;
        let svg = self.plot(outcomes)?;
        write_atomic(&dir.join("leaderboard.html"), self.html(&svg).as_bytes())
    }

    /// The table as text, best first, for the terminal.
    pub fn table(&self) -> String {
        let metric = super::result::eval_column(self.metric).trim_start_matches("eval/");
        let mut s = format!(
            "{:<4} {:<5} {:>14} {:>22} {:>10} {:>7} {:>13}  {}\n",
            "rank",
            "point",
            format!("val {metric}"),
            "test sharpe [min,max]",
            "test b&h",
            "beat",
            "done/stop/fail",
            "config"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<4} {:<5} {:>14.3} {:>8.2} [{:>5.2},{:>5.2}] {:>10.2} {:>3}/{:<3} {:>5}/{}/{}  {}",
                r.rank,
                r.point,
                r.metric_median,
                r.test_sharpe_median,
                r.test_sharpe_min,
                r.test_sharpe_max,
                r.test_buy_and_hold_sharpe,
                r.test_beat_buy_and_hold,
                r.trials,
                r.done,
                r.stopped,
                r.failed,
                if r.config.is_empty() { "(base config)" } else { &r.config },
            );
        }
        s
    }

    fn html(&self, svg: &str) -> String {
        let f = |x: f64| if x.is_nan() { "–".to_string() } else { format!("{x:.3}") };
        let pct = |x: f64| if x.is_nan() { "–".to_string() } else { format!("{:+.1}%", 100.0 * x) };
        let column = super::result::eval_column(self.metric);
        // The validation Sharpe ratio is its own column when the ranking is by another metric.
        let show_sharpe = self.metric != BestMetric::Sharpe;
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Ploutos sweep {name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>Sweep {name}</h1>\n<p>Ranked by the median over seeds and folds of the validation {metric:?} of each trial's model; test columns are the same models on the held-out test split, beside equal-weight buy-and-hold and the random policy on the same bars.</p>\n<table>\n<tr><th>rank</th><th>point</th><th>config</th><th>validation {metric:?} median [min, max]</th>{sharpe_th}<th>validation return</th><th>validation buy-and-hold sharpe</th><th>test sharpe median [min, max]</th><th>test return</th><th>test turnover/yr</th><th>beats buy-and-hold</th><th>test buy-and-hold sharpe</th><th>test random sharpe</th><th>trials (done/stopped/failed)</th></tr>\n",
            name = escape(&self.sweep),
            metric = self.metric,
            sharpe_th = if show_sharpe { "<th>validation sharpe</th>" } else { "" },
        );
        for r in &self.rows {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"l\"><code>{}</code></td><td>{} [{}, {}]</td>{}<td>{}</td><td>{}</td><td>{} [{}, {}]</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{} ({}/{}/{})</td></tr>",
                r.rank,
                r.point,
                escape(if r.config.is_empty() { "(base config)" } else { &r.config }),
                f(r.metric_median),
                f(r.metric_min),
                f(r.metric_max),
                if show_sharpe { format!("<td>{}</td>", f(r.validation_sharpe_median)) } else { String::new() },
                pct(r.validation_return_median),
                f(r.validation_buy_and_hold_sharpe),
                f(r.test_sharpe_median),
                f(r.test_sharpe_min),
                f(r.test_sharpe_max),
                pct(r.test_return_median),
                f(r.test_turnover_per_year_median),
                r.test_beat_buy_and_hold,
                r.trials,
                f(r.test_buy_and_hold_sharpe),
                f(r.test_random_sharpe),
                r.trials,
                r.done,
                r.stopped,
                r.failed,
            );
        }
        let _ = write!(
            h,
            "</table>\n<figure>{svg}<figcaption>{} during training, one line per trial, coloured by point; a line that ends early is a trial stopped by ASHA (or one that failed).</figcaption></figure>\n<h2>Trials</h2>\n<table>\n<tr><th>trial</th><th>status</th><th>timesteps</th><th>seconds</th><th>validation {:?}</th><th>test sharpe</th><th>test return</th><th>detail</th></tr>\n",
            escape(column),
            self.metric
        );
        for t in &self.trials {
            let _ = writeln!(
                h,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                t.status.replace(' ', "-"),
                escape(&t.id),
                t.status,
                t.timesteps,
                t.seconds,
                f(t.metric),
                f(t.test_sharpe),
                pct(t.test_return),
                escape(&t.detail)
            );
        }
        h.push_str("</table>\n</body>\n</html>\n");
        h
    }

    /// Every trial's evaluation curve, as an SVG document.
    fn plot(&self, outcomes: &[TrialOutcome]) -> io::Result<String> {
        if !register() {
            return Err(io::Error::other("the bundled font assets/fonts/DejaVuSans.ttf does not parse"));
        }
        let column = super::result::eval_column(self.metric);
        let points: Vec<(f64, f64)> = outcomes
            .iter()
            .flat_map(|o| o.curve.iter().map(|&(t, v)| (t as f64, v)))
            .filter(|p| p.1.is_finite())
            .collect();
        let (mut x1, mut y0, mut y1) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in &points {
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1000, 450)).into_drawing_area();
            let err = |e: DrawingAreaErrorKind<_>| io::Error::other(format!("leaderboard plot: {e}"));
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("{column} by timesteps"), (FAMILY, 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..x1 * 1.02, (y0 - pad)..(y1 + pad))
                .map_err(err)?;
            chart.configure_mesh().x_desc("timesteps").y_desc(column).label_style((FAMILY, 13)).draw().map_err(err)?;
            let mut labelled = std::collections::BTreeSet::new();
            for o in outcomes {
                let color = Palette99::pick(o.trial.point).to_rgba();
                let line: Vec<(f64, f64)> =
                    o.curve.iter().map(|&(t, v)| (t as f64, v)).filter(|p| p.1.is_finite()).collect();
                let series = chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2))).map_err(err)?;
                // One legend entry per point, at its first trial with a curve.
                if !line.is_empty() && labelled.insert(o.trial.point) {
                    series
                        .label(format!("p{:03}", o.trial.point))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
                }
                if let Some(&last) = line.last() {
                    chart.draw_series(std::iter::once(Circle::new(last, 3, color.filled()))).map_err(err)?;
                }
            }
            if !labelled.is_empty() {
                chart
                    .configure_series_labels()
                    .label_font((FAMILY, 13))
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
th { background: #f4f4f4; }
td.l { text-align: left; }
td code { white-space: nowrap; }
tr.failed td { background: #fdecea; }
tr.stopped td { color: #777; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
";
