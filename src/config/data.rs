//! `data`: which tickers, from where, at which bar interval, split how.

use super::{ConfigError, check};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Where bars come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The built-in synthetic market (no download needed).
    Synthetic,
    /// One CSV file per ticker in `data.csv_dir` (`NVDA.csv`, ...).
    Csv,
}

/// Bar length, written `"1d"` or `"1h"` (a string: RON identifiers cannot start with a digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Interval {
    /// Daily bars.
    Day,
    /// Hourly bars of the US regular session (7 a day, as yfinance gives them).
    Hour,
}

impl TryFrom<String> for Interval {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Interval> for String {
    fn from(i: Interval) -> String {
        i.as_str().to_string()
    }
}

impl std::str::FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1d" => Ok(Interval::Day),
            "1h" => Ok(Interval::Hour),
            other => Err(format!("unknown interval {other:?}: expected \"1d\" or \"1h\"")),
        }
    }
}

impl Interval {
    /// Bars per regular trading day.
    pub fn bars_per_day(self) -> usize {
        match self {
            Interval::Day => 1,
            Interval::Hour => 7,
        }
    }

    /// Bars per year for annualization (252 trading days).
    pub fn bars_per_year(self) -> f64 {
        252.0 * self.bars_per_day() as f64
    }

    /// `1d` or `1h`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "1d",
            Interval::Hour => "1h",
        }
    }
}

/// What to do with a timestamp some tickers have and others lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingBarPolicy {
    /// Keep only timestamps every ticker has (default).
    Drop,
    /// Keep the union of timestamps; a missing bar repeats the previous close as a flat,
    /// zero-volume bar.
    ForwardFill,
}

/// What the env does with splits and dividends (`data.adjust`; execution contract answer 19
/// in `src/env/mod.rs`).
///
/// Events come from a CSV file's `Stock Splits` and `Dividends` columns, or, without a
/// `Dividends` column, from the steps of its `Adj Close` against `Close`. Adjusted prices are
/// adjusted *forward*, from the file's first bar: an adjusted price at bar t depends on the
/// events up to t only (yfinance's `Adj Close` is adjusted backward, from the last bar, which
/// puts future dividends into past prices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjust {
    /// Prices adjusted for splits and dividends (a total-return series); nothing happens to
    /// the account (default).
    SplitsAndDividends,
    /// Prices adjusted for splits; dividends are credited to cash on their ex-date.
    Splits,
    /// Prices as they printed; splits change positions (shares × ratio, cost basis ÷ ratio)
    /// and dividends are credited to cash, both on their ex-date.
    None,
}

impl Adjust {
    /// How the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Adjust::SplitsAndDividends => "splits_and_dividends",
            Adjust::Splits => "splits",
            Adjust::None => "none",
        }
    }
}

/// Chronological train / validation / test split. Dates win over fractions when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Last date (inclusive) of the training split (default: none, use `train_fraction`).
    pub train_end: Option<NaiveDate>,
    /// Last date (inclusive) of the validation split (default: none, use
    /// `validation_fraction`).
    pub validation_end: Option<NaiveDate>,
    /// Share of bars in the training split when no date is given (default: 0.7).
    pub train_fraction: f64,
    /// Share of bars in the validation split when no date is given (default: 0.15).
    pub validation_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { train_end: None, validation_end: None, train_fraction: 0.7, validation_fraction: 0.15 }
    }
}

/// The built-in synthetic market.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Seed of the generator; same seed, same market (default: 7).
    pub seed: u64,
    /// Years of bars (default: 10).
    pub years: f64,
    /// First trading day (default: 2015-01-02).
    pub start: NaiveDate,
    /// Annual log-drift of each ticker's own persistent trend, whose sign flips at random
    /// (mean `trend_days` days between flips): a learnable, stationary edge (time-series
    /// momentum) planted on top of the regimes. 0 = none, a market with nothing to predict
    /// but its regimes (default: 0).
    pub trend: f64,
    /// Mean trading days between flips of a ticker's trend sign (default: 20).
    pub trend_days: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            years: 10.0,
            start: NaiveDate::from_ymd_opt(2015, 1, 2).expect("valid date"),
            trend: 0.0,
            trend_days: 20.0,
        }
    }
}

/// Data selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Tickers to trade (default: the seed's ten: NVDA TSLA AMD MSTR MSFT AAPL GOOGL META
    /// SPY QQQ).
    pub tickers: Vec<String>,
    /// Data source (default: `synthetic`).
    pub source: DataSource,
    /// Folder of `<TICKER>.csv` files when `source` is `csv` (default: `data`).
    pub csv_dir: String,
    /// Bar interval, `1d` or `1h` (default: `1h`).
    pub interval: Interval,
    /// Missing-bar policy across tickers (default: `drop`).
    pub missing_bars: MissingBarPolicy,
    /// Splits and dividends: adjust the prices or apply them to the account (default:
    /// `splits_and_dividends`). A file without such events reads the same under every mode.
    pub adjust: Adjust,
    /// Train / validation / test split.
    pub split: SplitConfig,
    /// The synthetic market's parameters.
    pub synthetic: SyntheticConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            tickers: ["NVDA", "TSLA", "AMD", "MSTR", "MSFT", "AAPL", "GOOGL", "META", "SPY", "QQQ"]
                .map(String::from)
                .to_vec(),
            source: DataSource::Synthetic,
            csv_dir: "data".to_string(),
            interval: Interval::Hour,
            missing_bars: MissingBarPolicy::Drop,
            adjust: Adjust::SplitsAndDividends,
            split: SplitConfig::default(),
            synthetic: SyntheticConfig::default(),
        }
    }
}

impl DataConfig {
    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::count("data.tickers", self.tickers.len(), 1, super::MAX_TICKERS)?;
        for t in &self.tickers {
            let ok = !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_.^=".contains(c));
            if !ok {
                return Err(check::out(
                    "data.tickers",
                    format!("{t:?}"),
                    "tickers must be non-empty ASCII symbols (letters, digits, - _ . ^ =)".into(),
                ));
            }
        }
        // Unique up to case: `aaa.csv` and `AAA.csv` are one file on the file systems of
        // macOS and Windows (and one symbol at every broker).
        let mut sorted: Vec<(String, &String)> = self.tickers.iter().map(|t| (t.to_ascii_uppercase(), t)).collect();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            let what =
                if w[0].1 == w[1].1 { format!("{:?}", w[0].1) } else { format!("{:?} and {:?}", w[0].1, w[1].1) };
            return Err(check::out("data.tickers", what, "tickers must be unique, whatever their case".into()));
        }
        let s = &self.split;
        check::above("data.split.train_fraction", s.train_fraction, 0.0, 1.0)?;
        check::within("data.split.validation_fraction", s.validation_fraction, 0.0, 1.0)?;
        if s.train_fraction + s.validation_fraction > 1.0 {
            return Err(check::out(
                "data.split.validation_fraction",
                s.validation_fraction,
                format!("train_fraction + validation_fraction must be ≤ 1 (train_fraction = {})", s.train_fraction),
            ));
        }
        if let (Some(a), Some(b)) = (s.train_end, s.validation_end)
            && b < a
        {
            return Err(check::out(
                "data.split.validation_end",
                b,
                format!("must be on or after data.split.train_end = {a}"),
            ));
        }
        // The built-in NYSE calendar's range (and the market's `years` after it).
        let (earliest, latest) = (NaiveDate::from_ymd_opt(1900, 1, 1), NaiveDate::from_ymd_opt(2200, 12, 31));
        if !(earliest..=latest).contains(&Some(self.synthetic.start)) {
            return Err(check::out(
                "data.synthetic.start",
                self.synthetic.start,
                "must be a date from 1900-01-01 to 2200-12-31".into(),
            ));
        }
        check::above("data.synthetic.years", self.synthetic.years, 0.0, 100.0)?;
        check::within("data.synthetic.trend", self.synthetic.trend, 0.0, 10.0)?;
        check::within("data.synthetic.trend_days", self.synthetic.trend_days, 1.0, 10_000.0)?;
        Ok(())
    }
}
