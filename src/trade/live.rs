//! The market as `ploutos trade` sees it: bars arrive one timestamp at a time, and each
//! becomes the same market row (`MarketData`) that a backtest over the same bars builds
//! from the whole file, to the bit: observation features from [`IncrementalFeatures`], the
//! cost inputs (`atr_14 / close`, `ret_std_20`, the trailing mean volume) from the same
//! raw values and sums.
//!
//! What a live feed does not carry is not invented: no forward-filled bars (a ticker
//! without a bar at a timestamp is a gap, an error), no dividends (the account of record is
//! the broker's: its cash has them).
//!
//! **Splits** ([`LiveMarket::add_splits`], from the broker's corporate actions) are read
//! both ways a model needs them. The features see prices adjusted **forward** from the
//! first bar received, as `data.adjust` adjusts a file (a bar from a split's ex-date on is
//! multiplied by the split's ratio, its volume divided by it): no 75% fall on a 4-for-1
//! split, and nothing that depends on a later event. The account sees the split as the
//! broker applies it: the market's prices stay the ones that printed, and the ex-date bar
//! carries the split for the corporate-actions plugin ([`crate::corporate_actions`]: shares
//! × ratio, cost ÷ ratio), so that the env's positions are the broker's share counts. A
//! fraction of a share a split leaves is kept, whole-share trading or not
//! ([`MarketData::with_fractional_splits`]): Alpaca pays fractional shares, not cash in
//! lieu, since August 2021. The trailing mean volume is kept in the shares of the bar it
//! sizes: at a split the volumes of the window are multiplied by its ratio, and so is the
//! decision bar's mean volume, which prices the impact of orders filling at the ex-date's
//! open (in new shares).

use super::broker::{BrokerBar, Split};
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
    /// A split whose ex-date bars were read already without it, or whose ratio is not a
    /// positive number.
    #[error("a split of {ticker} on {ex_date} (ratio {ratio}) {problem}")]
    Split { ticker: String, ex_date: chrono::NaiveDate, ratio: f64, problem: &'static str },
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
    /// Each ticker's splits not applied yet, `(ex-date, ratio)` by date.
    pending: Vec<Vec<(chrono::NaiveDate, f64)>>,
    /// Each ticker's forward adjustment: the product of the ratios of its splits applied
    /// (the features read the bars' prices × it and volumes ÷ it).
    factor: Vec<f64>,
    /// The splits applied, `(bar, ticker, ratio)`, oldest first.
    applied: Vec<(usize, usize, f64)>,
    /// The broker's splits are known through this date (New York).
    splits_known_through: Option<chrono::NaiveDate>,
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
            pending: vec![Vec::new(); d],
            factor: vec![1.0; d],
            applied: Vec::new(),
            splits_known_through: None,
        }
    }

    /// Adds the splits of the model's tickers (others are skipped), applied from the first
    /// bar at or after each one's ex-date (see the module docs). A split of a day at or
    /// before the first bar received is before anything could be held, and is skipped; one
    /// applied already (the same ticker, ex-date and ratio) too.
    ///
    /// # Errors
    /// [`LiveError::Split`] for a ratio that is not a positive number, or a split of a day
    /// whose bars were received without it (its prices would be out by its ratio); nothing
    /// is added then.
    pub fn add_splits(&mut self, splits: &[Split]) -> Result<(), LiveError> {
        let first_day = self.times.first().map(|&t| calendar::ny_date(t));
        let last_day = self.times.last().map(|&t| calendar::ny_date(t));
        let mut fresh = Vec::new();
        for split in splits {
            let Some(k) = self.tickers.iter().position(|t| *t == split.ticker) else { continue };
            let refused = |problem| LiveError::Split {
                ticker: split.ticker.clone(),
                ex_date: split.ex_date,
                ratio: split.ratio,
                problem,
            };
            if !(split.ratio.is_finite() && split.ratio > 0.0) {
                return Err(refused("has no positive ratio"));
            }
            if first_day.is_some_and(|first| split.ex_date <= first)
                || self.pending[k].contains(&(split.ex_date, split.ratio))
                || fresh.contains(&(k, split.ex_date, split.ratio))
            {
                continue;
            }
            if last_day.is_some_and(|last| split.ex_date <= last) {
                let applied_at = |&(bar, kk, r): &(usize, usize, f64)| {
                    kk == k && r == split.ratio && self.first_bar_on_or_after(split.ex_date) == Some(bar)
                };
                if self.applied.iter().any(applied_at) {
                    continue;
                }
                return Err(refused(
                    "comes after its bars were read: the features and positions would be out by its ratio",
                ));
            }
            fresh.push((k, split.ex_date, split.ratio));
        }
        for (k, ex_date, ratio) in fresh {
            self.pending[k].push((ex_date, ratio));
            self.pending[k].sort_by_key(|&(d, _)| d);
        }
        Ok(())
    }

    /// The first bar received on or after `date`.
    fn first_bar_on_or_after(&self, date: chrono::NaiveDate) -> Option<usize> {
        let i = self.times.partition_point(|&t| calendar::ny_date(t) < date);
        (i < self.times.len()).then_some(i)
    }

    /// The date through which the broker's splits were asked for ([`LiveMarket::add_splits`]).
    pub fn splits_known_through(&self) -> Option<chrono::NaiveDate> {
        self.splits_known_through
    }

    /// Records that the broker's splits were asked for through `date`.
    pub fn set_splits_known_through(&mut self, date: chrono::NaiveDate) {
        self.splits_known_through = self.splits_known_through.max(Some(date));
    }

    /// Every split the account meets through the provisional bar that opens at `next_time`
    /// (bar `n_bars()`, [`LiveMarket::market_with_next`]), as `(bar, ticker, ratio)`, oldest
    /// first.
    pub fn splits_through(&self, next_time: i64) -> Vec<(usize, usize, f64)> {
        let mut all = self.applied.clone();
        let day = calendar::ny_date(next_time);
        for (k, pending) in self.pending.iter().enumerate() {
            let ratio: f64 = pending.iter().filter(|&&(d, _)| d <= day).map(|&(_, r)| r).product();
            if ratio != 1.0 && !self.times.is_empty() {
                all.push((self.n_bars(), k, ratio));
            }
        }
        all
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
        let (n, date) = (self.times.len(), calendar::ny_date(time));
        let c = &mut self.columns;
        c.day.push(day);
        for (k, b) in row.into_iter().flatten().enumerate() {
            // The splits whose ex-date this bar is the first at or after (none at the first
            // bar: nothing was held before it).
            let mut ratio = 1.0;
            self.pending[k].retain(|&(ex_date, r)| {
                if ex_date <= date && n > 0 {
                    ratio *= r;
                }
                ex_date > date
            });
            if ratio != 1.0 {
                self.factor[k] *= ratio;
                self.applied.push((n, k, ratio));
                // The window and the decision bar's mean volume in the new shares.
                self.recent_volume[k].iter_mut().for_each(|v| *v *= ratio);
                c.mean_volume[(n - 1) * d + k] *= ratio;
            }
            let f = self.factor[k];
            let bar = Bar {
                open: b.open * f,
                high: b.high * f,
                low: b.low * f,
                close: b.close * f,
                volume: b.volume / f,
                day,
            };
            self.features[k].push(bar).expect("Invariant: days never decrease");
            let (raw, observation) = self.features[k].last_rows(&self.scaler).expect("Invariant: a bar was pushed");
            let recent = &mut self.recent_volume[k];
            if recent.len() == VOLUME_WINDOW {
                recent.pop_front();
            }
            recent.push_back(b.volume);
            c.open.push(b.open);
            c.close.push(b.close);
            c.atr_frac.push(raw[Feature::Atr14.index()] / bar.close);
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
        let splits = self.splits_through(next_time);
        let mut actions = Vec::new();
        if !splits.is_empty() {
            actions = vec![(1.0, 0.0); (n + 1) * d];
            for &(bar, k, ratio) in &splits {
                actions[bar * d + k] = (ratio, 0.0);
                if bar == n {
                    // As `push` will when the bar arrives.
                    c.mean_volume[last * d + k] *= ratio;
                }
            }
        }
        MarketData::new(n + 1, d, N_FEATURES, c)
            .and_then(|m| m.with_volume(volume))
            .and_then(|m| m.with_tickers(&self.tickers))
            .and_then(|m| if splits.is_empty() { Ok(m) } else { m.with_corporate_actions(actions) })
            .expect("Invariant: columns built to shape")
            .with_fractional_splits()
    }
}
