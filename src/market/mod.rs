//! Market data: bar series, CSV loading and validation, trading calendar, aligned
//! multi-ticker panels, chronological splits and the built-in synthetic market.
//!
//! [`load_panel`] is the entry point: it builds a [`Panel`] from the `data` config section,
//! either the [`synthetic`] market (the default, no download) or one CSV per ticker
//! ([`load_csv_file`]), and a [`PanelReport`] saying what alignment changed.
//!
//! Conventions:
//!
//! - **Time**: timestamps are Unix seconds (UTC) of the bar's open. A trading day is the
//!   bar's New York calendar date ([`calendar`]); `day` numbers them 0, 1, 2, ... Daily bars
//!   carry midnight New York of their date.
//! - **Missing bars** across tickers follow `data.missing_bars` (`drop` or `forward_fill`,
//!   see [`panel`]); the report counts every dropped or filled bar.
//! - **Validation** ([`validate`]) rejects bad bars with a one-line error naming file and
//!   line rather than guessing a fix; only float-noise high/low violations are clamped.
//! - **Warm-up**: features are computed once over the whole panel (they only look
//!   backward), so a split's first bars take their warm-up from the preceding split; the
//!   training split drops its first [`crate::features::MIN_BARS`] bars ([`split`]).

pub mod adjust;
mod bars;
pub mod calendar;
mod csv;
mod error;
pub mod nyse;
pub mod panel;
pub mod split;
pub mod synthetic;
pub mod validate;
mod write;

pub use adjust::{ActionCounts, CorporateAction, DividendSource};
pub use bars::{Bar, BarSeries};
pub use csv::{InferredInterval, IntervalEvidence, infer_interval, load_csv_file, parse_timestamp};
pub use error::DataError;
pub use panel::{Panel, PanelReport, TickerReport, VOLUME_WINDOW};
pub use split::Split;
pub use synthetic::synthetic_panel;
pub use write::write_csv_dir;

use crate::config::{DataConfig, DataSource};
use std::path::Path;

/// Builds the panel `cfg` describes: synthetic or CSV according to `cfg.source`.
///
/// For CSV, reads `<csv_dir>/<TICKER>.csv` for every ticker of `cfg.tickers`, validates
/// each, and aligns them under `cfg.missing_bars`.
///
/// # Errors
/// [`DataError::MissingFile`] naming the first missing file, [`DataError::NotAFile`] for a
/// folder in its place; any validation error of [`load_csv_file`];
/// [`DataError::NoSharedDates`] naming each ticker's range when the tickers have no bar
/// time in common; [`DataError::PanelTooShort`] when fewer than
/// [`crate::features::MIN_BARS`] bars remain after alignment.
pub fn load_panel(cfg: &DataConfig) -> Result<(Panel, PanelReport), DataError> {
    let min = crate::features::MIN_BARS;
    let (panel, report) = match cfg.source {
        DataSource::Synthetic => {
            let panel = synthetic_panel(cfg);
            let report = PanelReport {
                source: format!("synthetic (seed {})", cfg.synthetic.seed),
                interval: cfg.interval,
                policy: cfg.missing_bars,
                bars: panel.n_bars(),
                days: panel.n_days(),
                union_timestamps: panel.n_bars(),
                dropped_timestamps: 0,
                tickers: cfg
                    .tickers
                    .iter()
                    .map(|t| TickerReport {
                        ticker: t.clone(),
                        bars_read: panel.n_bars(),
                        bars_dropped: 0,
                        bars_filled: 0,
                        bars_clamped: 0,
                        actions: ActionCounts::default(),
                    })
                    .collect(),
                adjust: cfg.adjust,
                suspect_gaps: Vec::new(),
            };
            (panel, report)
        }
        DataSource::Csv => {
            let dir = Path::new(&cfg.csv_dir);
            let mut series = Vec::with_capacity(cfg.tickers.len());
            let mut clamped = Vec::with_capacity(cfg.tickers.len());
            let mut events = Vec::with_capacity(cfg.tickers.len());
            let mut counts = Vec::with_capacity(cfg.tickers.len());
            for ticker in &cfg.tickers {
                let path = dir.join(format!("{ticker}.csv"));
                match std::fs::metadata(&path) {
                    Err(_) if !dir.is_dir() => {
                        // The folder itself, not one file: say so (an unreadable one: its error).
                        let why = match std::fs::metadata(dir) {
                            Ok(_) => "not a folder",
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such folder",
                            Err(e) => return Err(DataError::io(dir.to_path_buf(), e)),
                        };
                        return Err(DataError::NoFolder { path: dir.to_path_buf(), why });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(DataError::MissingFile { path, ticker: ticker.clone() });
                    }
                    Err(e) => return Err(DataError::io(path, e)),
                    Ok(meta) if meta.is_dir() => return Err(DataError::NotAFile { path }),
                    Ok(_) => {}
                }
                let (mut s, raw, c) = csv::read_csv_file(&path, cfg.interval)?;
                s.ticker = ticker.clone();
                let (e, n) = adjust::apply(&mut s, &raw, cfg.adjust, &path)?;
                series.push(s);
                clamped.push(c);
                events.push(e);
                counts.push(n);
            }
            if let Some(ranges) = panel::unshared_ranges(&series, cfg.interval) {
                let what = if cfg.interval == crate::config::Interval::Day { "dates" } else { "timestamps" };
                return Err(DataError::NoSharedDates { source_name: dir.display().to_string(), what, ranges });
            }
            let (mut panel, mut report) = Panel::align(&series, cfg.interval, cfg.missing_bars);
            panel.set_corporate_actions(&events);
            report.source = dir.display().to_string();
            report.adjust = cfg.adjust;
            for ((t, c), n) in report.tickers.iter_mut().zip(clamped).zip(counts) {
                t.bars_clamped = c;
                t.actions = n;
            }
            report.note_suspect_gaps(&panel);
            (panel, report)
        }
    };
    if panel.n_bars() < min {
        return Err(DataError::PanelTooShort {
            source_name: report.source.clone(),
            bars: panel.n_bars(),
            min,
            detail: format!(
                "{} of {} timestamps dropped by missing_bars = {:?}",
                report.dropped_timestamps, report.union_timestamps, report.policy
            ),
        });
    }
    Ok((panel, report))
}
