//! Policies a replay can run: built-in ones and per-bar action files.
//!
//! An action file is a CSV with header `timestamp` then one column per ticker (any
//! subset, any order, names as in `data.tickers`); cells are `hold`/`buy`/`sell` or
//! `0`/`1`/`2` (case-insensitive, empty = hold); each row is a bar at whose close the agent
//! acts; bars without a row hold. With target-position actions
//! (`environment.target_positions`) a cell is one of the configured levels as a number
//! (`-0.5`, `1`: the target as a fraction of `max_position_pct` × equity), `hold` or empty
//! sends no order.
//!
//! Rows dated in the features' warm-up (the data's first [`MIN_BARS`] bars, whose features
//! are not all defined) can never act: every replay starts after it. They are counted
//! ([`ActionTable::ignored`]) and [`Policy::parse`] says so on stderr rather than dropping
//! them in silence.

use crate::config::Interval;
use crate::env::KEEP;
use crate::features::MIN_BARS;
use crate::market::calendar::format_timestamp;
use crate::market::{Panel, parse_timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// A bad action file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Line { path: String, line: usize, message: String },
    #[error("unknown policy {0:?}: expected buy-and-hold, flat, random, or a path to an actions CSV")]
    Unknown(String),
}

impl crate::UserError for PolicyError {}

/// What decides the actions of a replay.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Equal weight at the first bar, held to the end.
    BuyAndHold,
    /// Never trades.
    Flat,
    /// Uniform random actions from a seed.
    Random { seed: u64 },
    /// Actions per bar from a file.
    Actions(ActionTable),
}

impl Policy {
    /// Parses `buy-and-hold`, `flat`, `random` or a path to an action CSV.
    ///
    /// Prints one line on stderr when the file has rows in the features' warm-up, which no
    /// replay acts on ([`ActionTable::ignored`]).
    ///
    /// # Errors
    /// [`PolicyError`] for an unreadable or invalid action file.
    /// `levels`: the target levels when actions are target positions, `None` for the
    /// seed's {hold, buy, sell}.
    pub fn parse(spec: &str, panel: &Panel, seed: u64, levels: Option<&[f64]>) -> Result<Self, PolicyError> {
        match spec {
            "buy-and-hold" | "buy_and_hold" => Ok(Self::BuyAndHold),
            "flat" => Ok(Self::Flat),
            "random" => Ok(Self::Random { seed }),
            path if path.ends_with(".csv") || Path::new(path).exists() => {
                let table = ActionTable::load(Path::new(path), panel, levels)?;
                if let Some(ignored) = &table.ignored {
                    eprintln!("ploutos: {path}: {ignored}");
                }
                Ok(Self::Actions(table))
            }
            other => Err(PolicyError::Unknown(other.to_string())),
        }
    }

    /// A short name for tables and folders.
    pub fn name(&self) -> String {
        match self {
            Self::BuyAndHold => "buy-and-hold".into(),
            Self::Flat => "flat".into(),
            Self::Random { .. } => "random".into(),
            Self::Actions(t) => t.name.clone(),
        }
    }
}

/// Per-bar actions read from a file: `[n_bars, n_tickers]` codes over the panel.
#[derive(Debug, Clone)]
pub struct ActionTable {
    pub name: String,
    /// Rows dated in the features' warm-up, which no replay acts on; `None` when there are
    /// none.
    pub ignored: Option<IgnoredActions>,
    n_tickers: usize,
    actions: Vec<u8>,
    /// The bars the file has a row for.
    dated: Vec<bool>,
}

/// Action rows dated in the features' warm-up (the first [`MIN_BARS`] bars of the data),
/// where no replay acts; rendered as the line a user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredActions {
    /// How many rows.
    pub rows: usize,
    /// The earliest of their timestamps, as written in the file.
    pub first: String,
    /// The latest of their timestamps, as written in the file.
    pub last: String,
    /// The first bar a replay can act on, if the data has one.
    pub first_usable: Option<String>,
}

impl std::fmt::Display for IgnoredActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, s) = (self.rows, if self.rows == 1 { "" } else { "s" });
        let dated = if self.rows == 1 { self.first.clone() } else { format!("{} to {}", self.first, self.last) };
        write!(
            f,
            "ignoring {rows} action row{s} dated {dated}: the first {MIN_BARS} bars of the data are the features' warm-up, where no replay acts"
        )?;
        match &self.first_usable {
            Some(first) => write!(f, " (the first bar a replay can act on is {first})"),
            None => write!(f, " (and the data has no later bar)"),
        }
    }
}

impl ActionTable {
    /// Reads an action CSV against a panel's timeline and tickers; cells are target
    /// `levels` when given.
    ///
    /// # Errors
    /// [`PolicyError`] naming the file and line: missing `timestamp` column, unknown ticker,
    /// bad cell, timestamp that is not a bar of the data, duplicate row.
    pub fn load(path: &Path, panel: &Panel, levels: Option<&[f64]>) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let file_err = |message: String| PolicyError::File { path: shown.clone(), message };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| file_err(format!("cannot read: {e}")))?;
        let headers = reader.headers().map_err(|e| file_err(format!("bad header: {}", csv_message(&e))))?.clone();
        let mut ts_col = None;
        let mut columns = Vec::new(); // (csv column, ticker index)
        for (i, h) in headers.iter().enumerate() {
            if h.eq_ignore_ascii_case("timestamp")
                || h.eq_ignore_ascii_case("date")
                || h.eq_ignore_ascii_case("datetime")
            {
                if ts_col.is_some() {
                    return Err(file_err(format!("two timestamp columns (the second is {h:?})")));
                }
                ts_col = Some(i);
            } else {
                let k = panel.ticker_index(h).ok_or_else(|| {
                    file_err(format!("column {h:?} is not a ticker of the data ({})", panel.tickers().join(", ")))
                })?;
                if columns.iter().any(|&(_, seen)| seen == k) {
                    return Err(file_err(format!("two columns for {h:?}: which one acts?")));
                }
                columns.push((i, k));
            }
        }
        let ts_col = ts_col.ok_or_else(|| file_err("missing column `timestamp`".into()))?;
        let bar_of: HashMap<i64, usize> = panel.timestamps().iter().enumerate().map(|(t, &ts)| (ts, t)).collect();
        let (n_bars, d) = (panel.n_bars(), panel.n_tickers());
        // Bars without a row send no order.
        let mut actions = vec![if levels.is_some() { KEEP } else { 0 }; n_bars * d];
        let mut seen = vec![false; n_bars];
        let interval: Interval = panel.interval();
        let mut warm_up = WarmUpRows::default();
        for (row, record) in reader.records().enumerate() {
            // The reader skips blank lines and a quoted cell may span lines: the line is the
            // record's own (1-based), not its index.
            let line = match &record {
                Ok(r) => r.position().map(|p| p.line()),
                Err(e) => e.position().map(|p| p.line()),
            }
            .map_or(row + 2, |l| l as usize);
            let line_err = |message: String| PolicyError::Line { path: shown.clone(), line, message };
            let record = record.map_err(|e| line_err(csv_message(&e)))?;
            let text = record.get(ts_col).unwrap_or("");
            let ts = parse_timestamp(text, interval).map_err(|e| line_err(format!("timestamp {text:?}: {e}")))?;
            let t = *bar_of.get(&ts).ok_or_else(|| line_err(format!("timestamp {text:?} is not a bar of the data")))?;
            if std::mem::replace(&mut seen[t], true) {
                return Err(line_err(format!("duplicate row for {text:?}")));
            }
            if t < MIN_BARS {
                // Rows need not be sorted: keep the earliest and the latest by bar.
                warm_up.rows += 1;
                if warm_up.first.as_ref().is_none_or(|(f, _)| t < *f) {
                    warm_up.first = Some((t, text.to_string()));
                }
                if warm_up.last.as_ref().is_none_or(|(l, _)| t > *l) {
                    warm_up.last = Some((t, text.to_string()));
                }
            }
            for &(i, k) in &columns {
                let cell = record.get(i).unwrap_or("");
                actions[t * d + k] = match levels {
                    None => parse_action(cell).ok_or_else(|| {
                        line_err(format!("column {:?}: {cell:?} is not hold/buy/sell or 0/1/2", &headers[i]))
                    })?,
                    Some(levels) => parse_level(cell, levels).ok_or_else(|| {
                        let listed: Vec<String> = levels.iter().map(f64::to_string).collect();
                        line_err(format!(
                            "column {:?}: {cell:?} is not a target level ({}), hold or empty",
                            &headers[i],
                            listed.join(", ")
                        ))
                    })?,
                };
            }
        }
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "actions".into());
        let ignored = match (warm_up.first, warm_up.last) {
            (Some((_, first)), Some((_, last))) => Some(IgnoredActions {
                rows: warm_up.rows,
                first,
                last,
                first_usable: panel.timestamps().get(MIN_BARS).map(|&ts| format_timestamp(ts, interval)),
            }),
            _ => None,
        };
        Ok(Self { name, ignored, n_tickers: d, actions, dated: seen })
    }

    /// Actions at bar `t`.
    pub fn row(&self, t: usize) -> &[u8] {
        &self.actions[t * self.n_tickers..(t + 1) * self.n_tickers]
    }

    /// Rows after the features' warm-up dated outside `bars` (the period replayed, whose
    /// last bar acts on nothing): no replay of that period acts on them.
    pub fn rows_outside(&self, bars: std::ops::Range<usize>) -> usize {
        let acted = bars.start..bars.end.saturating_sub(1);
        self.dated.iter().enumerate().filter(|&(t, &d)| d && t >= MIN_BARS && !acted.contains(&t)).count()
    }
}

/// Rows of an action file seen in the warm-up so far: count, earliest and latest (bar, text).
#[derive(Default)]
struct WarmUpRows {
    rows: usize,
    first: Option<(usize, String)>,
    last: Option<(usize, String)>,
}

/// What a CSV reader error says, without the record and byte positions the error line
/// already gives as `FILE:LINE`.
fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("row has {len} fields, header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        _ => e.to_string(),
    }
}

/// `hold`/`buy`/`sell`/`0`/`1`/`2`/empty → code.
pub fn parse_action(cell: &str) -> Option<u8> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "" | "hold" | "0" => Some(0),
        "buy" | "1" => Some(1),
        "sell" | "2" => Some(2),
        _ => None,
    }
}

/// A target-level cell → the level's code: a number equal to one of `levels` (within
/// 1e-9), or `hold`/empty → [`KEEP`].
pub fn parse_level(cell: &str, levels: &[f64]) -> Option<u8> {
    let cell = cell.trim();
    if cell.is_empty() || cell.eq_ignore_ascii_case("hold") {
        return Some(KEEP);
    }
    let x: f64 = cell.parse().ok().filter(|x: &f64| x.is_finite())?;
    levels.iter().position(|l| (l - x).abs() < 1e-9).map(|i| i as u8)
}

/// Draws uniform random actions among `n_actions` codes.
pub fn random_actions(rng: &mut ChaCha8Rng, n_actions: usize, out: &mut [u8]) {
    for a in out {
        *a = rng.random_range(0..n_actions as u8);
    }
}

/// The random stream of the `random` policy.
pub fn random_stream(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x5_EED0_FAC7_10A5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, SyntheticConfig};
    use crate::market::synthetic_panel;

    fn daily_panel() -> Panel {
        synthetic_panel(&DataConfig {
            tickers: vec!["AAA".into(), "BBB".into()],
            interval: Interval::Day,
            synthetic: SyntheticConfig { years: 1.0, ..SyntheticConfig::default() },
            ..DataConfig::default()
        })
    }

    fn load(panel: &Panel, bars: &[usize]) -> ActionTable {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signals.csv");
        let mut text = String::from("timestamp,AAA\n");
        for &t in bars {
            text.push_str(&format!("{},buy\n", format_timestamp(panel.timestamps()[t], Interval::Day)));
        }
        std::fs::write(&path, text).unwrap();
        ActionTable::load(&path, panel, None).unwrap()
    }

    /// Rows a replay of a period does not act on: before it, at its last bar, after it.
    #[test]
    fn rows_outside_the_period_are_counted() {
        let panel = daily_panel();
        let table = load(&panel, &[MIN_BARS, MIN_BARS + 3, MIN_BARS + 5, MIN_BARS + 9]);
        assert_eq!(table.rows_outside(MIN_BARS + 1..MIN_BARS + 6), 3);
        assert_eq!(table.rows_outside(MIN_BARS..MIN_BARS + 10), 1, "the last bar acts on nothing");
        assert_eq!(table.rows_outside(MIN_BARS..MIN_BARS + 11), 0);
    }

    #[test]
    fn rows_in_the_warm_up_are_counted_with_their_range() {
        let panel = daily_panel();
        let stamp = |t: usize| format_timestamp(panel.timestamps()[t], Interval::Day);
        // Unsorted on purpose: the range is by bar, not by row order.
        let table = load(&panel, &[5, MIN_BARS, 0, MIN_BARS - 1, MIN_BARS + 20]);
        let ignored = table.ignored.clone().unwrap();
        assert_eq!(
            ignored,
            IgnoredActions { rows: 3, first: stamp(0), last: stamp(MIN_BARS - 1), first_usable: Some(stamp(MIN_BARS)) }
        );
        assert_eq!(
            ignored.to_string(),
            format!(
                "ignoring 3 action rows dated {} to {}: the first {MIN_BARS} bars of the data are the features' warm-up, where no replay acts (the first bar a replay can act on is {})",
                stamp(0),
                stamp(MIN_BARS - 1),
                stamp(MIN_BARS)
            )
        );
        // The usable rows are kept.
        assert_eq!(table.row(MIN_BARS), &[1, 0]);
        assert!(load(&panel, &[MIN_BARS, MIN_BARS + 1]).ignored.is_none());
    }

    #[test]
    fn errors_name_the_line_as_in_the_file() {
        let panel = daily_panel();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signals.csv");
        let stamp = |t: usize| format_timestamp(panel.timestamps()[t], Interval::Day);
        let check = |text: String, want: &str| {
            std::fs::write(&path, text).unwrap();
            let err = ActionTable::load(&path, &panel, None).unwrap_err().to_string();
            assert_eq!(err, format!("{}:{want}", path.display()));
        };
        // A blank line (which the reader skips) before the bad row on line 4.
        check(
            format!("timestamp,AAA\n\n{},buy\n{},jump\n", stamp(1), stamp(2)),
            "4: column \"AAA\": \"jump\" is not hold/buy/sell or 0/1/2",
        );
        // A quoted cell over lines 3 and 4 (a valid `buy`), then a ragged row on line 5.
        check(
            format!("timestamp,AAA\n{},buy\n{},\"buy\n\"\n{},buy,sell\n", stamp(1), stamp(2), stamp(3)),
            "5: row has 3 fields, header has 2",
        );
        check(
            format!("timestamp,AAA\n\n{},buy\n{},buy,sell\n", stamp(1), stamp(2)),
            "4: row has 3 fields, header has 2",
        );
        // One column per ticker: a second would silently win.
        std::fs::write(&path, format!("timestamp,AAA,BBB,AAA\n{},buy,hold,sell\n", stamp(1))).unwrap();
        let err = ActionTable::load(&path, &panel, None).unwrap_err().to_string();
        assert!(err.contains("two columns for \"AAA\""), "{err}");
    }
}
