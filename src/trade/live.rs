//! The market as `ploutos trade` sees it: bars arrive one timestamp at a time, and each
//! becomes the same market row (`MarketData`) that a backtest over the same bars builds
//! from the whole file, to the bit: observation features from [`IncrementalFeatures`], the
//! cost inputs (`atr_14 / close`, `ret_std_20`, the trailing mean volume) from the same
//! raw values and sums.
//!
//! What a live feed does not carry is not invented: no forward-filled bars (a ticker
//! without a bar at a timestamp is a gap, an error), no corporate actions (the account of
//! record is the broker's).

use super::broker::BrokerBar;
use crate::config::Interval;
use crate::env::{MarketColumns, MarketData};
use crate::features::{Bar, FeatureScaler, IncrementalFeatures, N_FEATURES, raw::Feature};
use crate::market::calendar;
use std::collections::VecDeque;

/// Bars of the trailing mean volume (the panel's `mean_volume_20`).
const VOLUME_WINDOW: usize = 20;

/// Why bars cannot join the live market; nothing is decided on them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LiveError {
    /// A ticker has no bar at a timestamp where another has one.
    #[error("no bar for {ticker} at {time} (a gap in the feed): nothing is decided on incomplete bars")]
    Gap { ticker: String, time: i64 },
    /// A bar of a ticker the model does not trade.
    #[error("a bar for {0}, which the model does not trade")]
    UnknownTicker(String),
    /// Two bars of one ticker at one timestamp.
    #[error("two bars for {ticker} at {time}")]
    Duplicate { ticker: String, time: i64 },
    /// A timestamp not after the last one.
    #[error("bars at {time} arrive after bars at {last}")]
    OutOfOrder { time: i64, last: i64 },
    /// Prices that are not positive finite numbers, or a negative volume.
    #[error("the bar of {ticker} at {time} is not valid OHLCV ({problem})")]
    Invalid { ticker: String, time: i64, problem: &'static str },
}

/// The bars received so far as market rows (see the module docs).
#[derive(Debug, Clone)]
pub struct LiveMarket {
    tickers: Vec<String>,
    interval: Interval,
    scaler: FeatureScaler,
    features: Vec<IncrementalFeatures>,
    /// The last `VOLUME_WINDOW` volumes of each ticker.
    recent_volume: Vec<VecDeque<f64>>,
    times: Vec<i64>,
    /// Bar-major rows, as [`MarketData::new`] takes them.
    columns: MarketColumns,
    volume: Vec<f64>,
}

impl LiveMarket {
    /// No bars yet; `scaler` is the model's standardization.
    pub fn new(tickers: Vec<String>, interval: Interval, scaler: FeatureScaler) -> Self {
        let d = tickers.len();
        Self {
            tickers,
            interval,
            scaler,
            features: vec![IncrementalFeatures::new(); d],
            recent_volume: vec![VecDeque::with_capacity(VOLUME_WINDOW); d],
            times: Vec::new(),
            columns: MarketColumns::default(),
            volume: Vec::new(),
        }
    }

    /// The tickers, in the model's order.
    pub fn tickers(&self) -> &[String] {
        &self.tickers
    }

    /// Bars (timestamps) received.
    pub fn n_bars(&self) -> usize {
        self.times.len()
    }

    /// Each bar's open time, Unix seconds.
    pub fn times(&self) -> &[i64] {
        &self.times
    }

    /// The close of every ticker at bar `t`.
    ///
    /// # Panics
    /// If `t >= n_bars()`.
    pub fn close_row(&self, t: usize) -> &[f64] {
        let d = self.tickers.len();
        &self.columns.close[t * d..(t + 1) * d]
    }

    /// Appends every timestamp of `bars` after the last one received, oldest first; returns
    /// how many were appended. Bars at or before the last timestamp are skipped (a feed that
    /// repeats its latest bars).
    ///
    /// # Errors
    /// [`LiveError`] for the first timestamp that cannot join (a gap, an unknown ticker, a
    /// duplicate, an invalid bar); the timestamps before it stay appended.
    pub fn extend(&mut self, bars: &[BrokerBar]) -> Result<usize, LiveError> {
        let last = self.times.last().copied();
        let mut fresh: Vec<&BrokerBar> = bars.iter().filter(|b| last.is_none_or(|l| b.time > l)).collect();
        fresh.sort_by_key(|b| b.time);
        let mut added = 0;
        for group in fresh.chunk_by(|a, b| a.time == b.time) {
            self.push(group)?;
            added += 1;
        }
        Ok(added)
    }

    /// Appends the bars of one timestamp, one per ticker, in any order.
    ///
    /// # Errors
    /// [`LiveError`]; nothing is appended then.
    pub fn push(&mut self, bars: &[&BrokerBar]) -> Result<(), LiveError> {
        let Some(time) = bars.first().map(|b| b.time) else { return Ok(()) };
        if let Some(&last) = self.times.last().filter(|&&l| time <= l) {
            return Err(LiveError::OutOfOrder { time, last });
        }
        let d = self.tickers.len();
        let mut row: Vec<Option<&BrokerBar>> = vec![None; d];
        for b in bars {
            let k =
                self.tickers.iter().position(|t| *t == b.ticker).ok_or(LiveError::UnknownTicker(b.ticker.clone()))?;
            if b.time != time || row[k].is_some() {
                return Err(LiveError::Duplicate { ticker: b.ticker.clone(), time: b.time });
            }
            let problem = if ![b.open, b.high, b.low, b.close].iter().all(|p| p.is_finite() && *p > 0.0) {
                Some("prices must be positive numbers")
            } else if !(b.volume.is_finite() && b.volume >= 0.0) {
                Some("volume must be a non-negative number")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(LiveError::Invalid { ticker: b.ticker.clone(), time, problem });
            }
            row[k] = Some(b);
        }
        if let Some(k) = row.iter().position(Option::is_none) {
            return Err(LiveError::Gap { ticker: self.tickers[k].clone(), time });
        }
        let day = match (self.times.last(), self.columns.day.last()) {
            (Some(&prev), Some(&prev_day)) => prev_day + calendar::trading_days(&[prev, time], self.interval)[1],
            _ => 0,
        };
        let c = &mut self.columns;
        c.day.push(day);
        for (k, b) in row.into_iter().flatten().enumerate() {
            let bar = Bar { open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume, day };
            self.features[k].push(bar).expect("Invariant: days never decrease");
            let (raw, observation) = self.features[k].last_rows(&self.scaler).expect("Invariant: a bar was pushed");
            let recent = &mut self.recent_volume[k];
            if recent.len() == VOLUME_WINDOW {
                recent.pop_front();
            }
            recent.push_back(b.volume);
            c.open.push(b.open);
            c.close.push(b.close);
            c.atr_frac.push(raw[Feature::Atr14.index()] / b.close);
            c.ret_std.push(raw[Feature::RetStd20.index()]);
            // As the panel's trailing mean: the window's sum, oldest first, over its length.
            c.mean_volume.push(recent.iter().sum::<f64>() / recent.len() as f64);
            c.features.extend_from_slice(&observation);
            self.volume.push(b.volume);
        }
        self.times.push(time);
        Ok(())
    }

    /// The market of the bars received plus one provisional bar that opens at `next_time`:
    /// its open is `next_open` when the bar has opened (every other value of it is a copy of
    /// the last bar's, read by nothing an order of the last bar depends on), the last
    /// closes before then.
    ///
    /// # Panics
    /// If no bar was received, or `next_open` has not one price per ticker.
    pub fn market_with_next(&self, next_time: i64, next_open: Option<&[f64]>) -> MarketData {
        let (n, d) = (self.n_bars(), self.tickers.len());
        assert!(n > 0, "no bar received yet");
        let last = n - 1;
        let mut c = self.columns.clone();
        let row = |v: &Vec<f64>| v[last * d..(last + 1) * d].to_vec();
        let open = next_open.map_or_else(|| row(&c.close), <[f64]>::to_vec);
        assert_eq!(open.len(), d, "one opening price per ticker");
        c.close.extend_from_slice(&open);
        c.open.extend_from_slice(&open);
        for column in [&mut c.atr_frac, &mut c.ret_std, &mut c.mean_volume] {
            let last_row = row(column);
            column.extend_from_slice(&last_row);
        }
        let step = calendar::trading_days(&[self.times[last], next_time], self.interval)[1];
        c.day.push(c.day[last] + step);
        c.features.extend_from_within(last * d * N_FEATURES..n * d * N_FEATURES);
        let mut volume = self.volume.clone();
        volume.extend_from_within(last * d..n * d);
        MarketData::new(n + 1, d, N_FEATURES, c)
            .and_then(|m| m.with_volume(volume))
            .and_then(|m| m.with_tickers(&self.tickers))
            .expect("Invariant: columns built to shape")
    }
}
