//! Policies a replay can run: built-in ones and per-bar action files.
//!
//! An action file is a CSV with header `timestamp` then one column per ticker (any
//! subset, any order, names as in `data.tickers`); cells are `hold`/`buy`/`sell` or
//! `0`/`1`/`2` (case-insensitive, empty = hold); each row is a bar at whose close the agent
//! acts; bars without a row hold.

use crate::config::Interval;
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
    /// # Errors
    /// [`PolicyError`] for an unreadable or invalid action file.
    pub fn parse(spec: &str, panel: &Panel, seed: u64) -> Result<Self, PolicyError> {
        match spec {
            "buy-and-hold" | "buy_and_hold" => Ok(Self::BuyAndHold),
            "flat" => Ok(Self::Flat),
            "random" => Ok(Self::Random { seed }),
            path if path.ends_with(".csv") || Path::new(path).exists() => {
                Ok(Self::Actions(ActionTable::load(Path::new(path), panel)?))
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
    n_tickers: usize,
    actions: Vec<u8>,
}

impl ActionTable {
    /// Reads an action CSV against a panel's timeline and tickers.
    ///
    /// # Errors
    /// [`PolicyError`] naming the file and line: missing `timestamp` column, unknown ticker,
    /// bad cell, timestamp that is not a bar of the data, duplicate row.
    pub fn load(path: &Path, panel: &Panel) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let file_err = |message: String| PolicyError::File { path: shown.clone(), message };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| file_err(format!("cannot read: {e}")))?;
        let headers = reader.headers().map_err(|e| file_err(format!("bad header: {e}")))?.clone();
        let mut ts_col = None;
        let mut columns = Vec::new(); // (csv column, ticker index)
        for (i, h) in headers.iter().enumerate() {
            if h.eq_ignore_ascii_case("timestamp")
                || h.eq_ignore_ascii_case("date")
                || h.eq_ignore_ascii_case("datetime")
            {
                ts_col = Some(i);
            } else {
                let k = panel.ticker_index(h).ok_or_else(|| {
                    file_err(format!("column {h:?} is not a ticker of the data ({})", panel.tickers().join(", ")))
                })?;
                columns.push((i, k));
            }
        }
        let ts_col = ts_col.ok_or_else(|| file_err("missing column `timestamp`".into()))?;
        let bar_of: HashMap<i64, usize> = panel.timestamps().iter().enumerate().map(|(t, &ts)| (ts, t)).collect();
        let (n_bars, d) = (panel.n_bars(), panel.n_tickers());
        let mut actions = vec![0u8; n_bars * d];
        let mut seen = vec![false; n_bars];
        let interval: Interval = panel.interval();
        for (row, record) in reader.records().enumerate() {
            let line = row + 2;
            let line_err = |message: String| PolicyError::Line { path: shown.clone(), line, message };
            let record = record.map_err(|e| line_err(e.to_string()))?;
            let text = record.get(ts_col).unwrap_or("");
            let ts = parse_timestamp(text, interval).map_err(|e| line_err(format!("timestamp {text:?}: {e}")))?;
            let t = *bar_of.get(&ts).ok_or_else(|| line_err(format!("timestamp {text:?} is not a bar of the data")))?;
            if std::mem::replace(&mut seen[t], true) {
                return Err(line_err(format!("duplicate row for {text:?}")));
            }
            for &(i, k) in &columns {
                let cell = record.get(i).unwrap_or("");
                actions[t * d + k] = parse_action(cell).ok_or_else(|| {
                    line_err(format!("column {:?}: {cell:?} is not hold/buy/sell or 0/1/2", &headers[i]))
                })?;
            }
        }
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "actions".into());
        Ok(Self { name, n_tickers: d, actions })
    }

    /// Actions at bar `t`.
    pub fn row(&self, t: usize) -> &[u8] {
        &self.actions[t * self.n_tickers..(t + 1) * self.n_tickers]
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

/// Draws uniform random actions.
pub fn random_actions(rng: &mut ChaCha8Rng, out: &mut [u8]) {
    for a in out {
        *a = rng.random_range(0..3);
    }
}

/// The random stream of the `random` policy.
pub fn random_stream(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x5_EED0_FAC7_10A5)
}
