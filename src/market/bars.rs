//! [`Bar`] and [`BarSeries`]: one ticker's OHLCV bars, stored column by column.
//!
//! Columns (one `Vec<f64>` per field) rather than a `Vec<Bar>` because every consumer —
//! features, the env — scans one field over many bars, and columns hand it a `&[f64]`.

use crate::config::Interval;

/// One OHLCV bar. `timestamp` is the bar's open time in Unix seconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Open time, Unix seconds (UTC). Daily bars use midnight America/New_York.
    pub timestamp: i64,
    /// First trade price.
    pub open: f64,
    /// Highest trade price.
    pub high: f64,
    /// Lowest trade price.
    pub low: f64,
    /// Last trade price.
    pub close: f64,
    /// Shares traded.
    pub volume: f64,
}

/// One ticker's validated bars, oldest first.
///
/// Keeps true: all columns have the same length; timestamps strictly increase; prices are
/// finite and positive; `low ≤ min(open, close) ≤ max(open, close) ≤ high`; volume ≥ 0;
/// `day` is the trading-day ordinal of [`super::calendar::trading_days`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarSeries {
    /// Ticker (the file stem when loaded from `<TICKER>.csv`).
    pub ticker: String,
    /// Open times, Unix seconds (UTC).
    pub timestamps: Vec<i64>,
    /// Trading-day ordinal per bar (0, 1, 2, ... over the distinct New York dates).
    pub day: Vec<u32>,
    /// Opens.
    pub open: Vec<f64>,
    /// Highs.
    pub high: Vec<f64>,
    /// Lows.
    pub low: Vec<f64>,
    /// Closes.
    pub close: Vec<f64>,
    /// Volumes.
    pub volume: Vec<f64>,
}

impl BarSeries {
    /// Builds a series from bars (assumed valid and sorted) and computes `day`.
    pub fn from_bars(ticker: impl Into<String>, interval: Interval, bars: &[Bar]) -> Self {
        let timestamps: Vec<i64> = bars.iter().map(|b| b.timestamp).collect();
        let day = super::calendar::trading_days(&timestamps, interval);
        Self {
            ticker: ticker.into(),
            timestamps,
            day,
            open: bars.iter().map(|b| b.open).collect(),
            high: bars.iter().map(|b| b.high).collect(),
            low: bars.iter().map(|b| b.low).collect(),
            close: bars.iter().map(|b| b.close).collect(),
            volume: bars.iter().map(|b| b.volume).collect(),
        }
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the series has no bar.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Bar `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn bar(&self, i: usize) -> Bar {
        Bar {
            timestamp: self.timestamps[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
        }
    }

    /// All bars, oldest first.
    pub fn bars(&self) -> impl ExactSizeIterator<Item = Bar> + '_ {
        (0..self.len()).map(|i| self.bar(i))
    }
}
