//! [`Panel`]: several tickers' bars on one shared timeline, laid out for the env's speed.
//!
//! Layout: per-ticker contiguous `f64` columns (`open`, `high`, `low`, `close`, `volume`,
//! each `[n_tickers, n_bars]` ticker-major) plus shared `timestamps` and `day` vectors. A
//! step of the env reads one bar of every ticker; features scan one ticker's column; both get
//! a plain slice.
//!
//! Alignment ([`Panel::align`]) follows `data.missing_bars`:
//!
//! - `drop`: keep only timestamps every ticker has. Each ticker's bars at other timestamps
//!   are dropped and counted.
//! - `forward_fill`: keep the union of timestamps from the first one at which every ticker
//!   has started trading (earlier timestamps have nothing to fill from and are dropped and
//!   counted). A missing bar repeats the previous close as a flat (`o = h = l = c`),
//!   zero-volume bar, and is counted and marked ([`Panel::invented`]): the env refuses
//!   orders that would fill on an invented bar (`invented_bar`), since nothing traded then.
//!
//! Tickers with no bar time in common cannot be aligned under either policy (`drop` would
//! keep nothing, `forward_fill` would invent one ticker's whole history):
//! [`unshared_ranges`] names each ticker's first and last bar for the error.
//!
//! [`PanelReport`] carries the counts so the CLI can say how much was changed.

use super::{Bar, BarSeries, calendar};
use crate::config::{Interval, MissingBarPolicy};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use std::fmt;

/// Window of the trailing mean volume the env uses for participation limits.
pub const VOLUME_WINDOW: usize = 20;

/// Aligned multi-ticker bars. See the module docs for layout and alignment.
///
/// Keeps true: every column has `n_tickers * n_bars` values; timestamps strictly increase;
/// `day` is non-decreasing, starts at 0 and steps by at most 1; each bar is valid OHLC.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    interval: Interval,
    tickers: Vec<String>,
    timestamps: Vec<i64>,
    day: Vec<u32>,
    // [n_tickers, n_bars]
    open: Vec<f64>,
    // [n_tickers, n_bars]
    high: Vec<f64>,
    // [n_tickers, n_bars]
    low: Vec<f64>,
    // [n_tickers, n_bars]
    close: Vec<f64>,
    // [n_tickers, n_bars]
    volume: Vec<f64>,
    /// Bit k of bar t: ticker k's bar t was invented by `forward_fill`. [n_bars], or empty
    /// when no bar was.
    invented: Vec<u64>,
    /// Split ratio of each ticker's bar (1 = none), `[n_tickers, n_bars]`, or empty when no
    /// ticker has a split or a dividend for the account (`data.adjust`).
    split_ratio: Vec<f64>,
    /// Dividend per share (after the bar's split) of each ticker's bar, `[n_tickers, n_bars]`,
    /// or empty like `split_ratio`.
    dividend: Vec<f64>,
}

/// Per-ticker counts of what loading and alignment changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerReport {
    /// Ticker.
    pub ticker: String,
    /// Bars read from the source.
    pub bars_read: usize,
    /// Bars removed by alignment (`drop` policy, or before every ticker started).
    pub bars_dropped: usize,
    /// Flat bars inserted by `forward_fill`.
    pub bars_filled: usize,
    /// Bars whose high/low was clamped within [`super::validate::OHLC_TOLERANCE`].
    pub bars_clamped: usize,
    /// Splits and dividends the file held ([`super::adjust`]).
    pub actions: super::ActionCounts,
}

/// What [`super::load_panel`] built and what it changed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelReport {
    /// `synthetic (seed N)` or the CSV folder.
    pub source: String,
    /// Bar interval.
    pub interval: Interval,
    /// Missing-bar policy applied.
    pub policy: MissingBarPolicy,
    /// Bars in the panel (per ticker).
    pub bars: usize,
    /// Trading days in the panel.
    pub days: usize,
    /// Distinct timestamps over all tickers before alignment.
    pub union_timestamps: usize,
    /// Timestamps of the union not kept in the panel.
    pub dropped_timestamps: usize,
    /// Per-ticker counts, in panel order.
    pub tickers: Vec<TickerReport>,
    /// What was done with splits and dividends (`data.adjust`).
    pub adjust: crate::config::Adjust,
    /// Opens that moved by [`SUSPECT_GAP`] or more from the previous close with no split
    /// recorded there, as `TICKER date ×ratio`: most often a split the file does not record
    /// (an agent would read a crash, a replay would mark one). Said, not refused.
    pub suspect_gaps: Vec<String>,
}

/// An open at this fraction of the previous close or below (or its inverse or above) with
/// no split recorded is reported ([`PanelReport::suspect_gaps`]): a 2:1 split is ×0.5, and
/// whole-market crashes open far closer (−23% over the 1987 crash's day).
pub const SUSPECT_GAP: f64 = 0.6;

impl PanelReport {
    /// Notes the opens of `panel` that moved by [`SUSPECT_GAP`] or more from the previous
    /// close on a bar without a recorded split ([`PanelReport::suspect_gaps`]).
    pub fn note_suspect_gaps(&mut self, panel: &Panel) {
        for k in 0..panel.n_tickers() {
            let (open, close) = (panel.open(k), panel.close(k));
            let splits = panel.corporate_actions(k).map(|(ratio, _)| ratio);
            for t in 1..panel.n_bars() {
                let r = open[t] / close[t - 1];
                let split = splits.is_some_and(|s| s[t] != 1.0);
                if r.is_finite() && (r <= SUSPECT_GAP || r >= 1.0 / SUSPECT_GAP) && !split {
                    self.suspect_gaps.push(format!("{} {} ×{r:.2}", panel.tickers()[k], panel.date(t)));
                }
            }
        }
    }

    /// Bars dropped plus bars filled, over all tickers.
    pub fn affected_bars(&self) -> usize {
        self.tickers.iter().map(|t| t.bars_dropped + t.bars_filled).sum()
    }

    /// One line on splits and dividends: the mode, and what the files held.
    pub fn corporate_actions(&self) -> String {
        use crate::config::Adjust;
        let splits: usize = self.tickers.iter().map(|t| t.actions.splits).sum();
        let in_prices: usize = self.tickers.iter().map(|t| t.actions.splits_in_prices).sum();
        let dividends: usize = self.tickers.iter().map(|t| t.actions.dividends).sum();
        let from_adj = self.tickers.iter().any(|t| t.actions.dividend_source == super::DividendSource::AdjClose);
        let what = match self.adjust {
            Adjust::SplitsAndDividends => "prices adjusted for splits and dividends",
            Adjust::Splits => "prices adjusted for splits, dividends paid to cash",
            Adjust::None => "prices as printed, splits applied to positions, dividends paid to cash",
        };
        let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        format!(
            "corporate actions ({}, {what}): {} ({} already in the file's prices), {}{}",
            self.adjust.as_str(),
            plural(splits, "split"),
            splits - in_prices,
            plural(dividends, "dividend"),
            if from_adj { " (some read from Adj Close)" } else { "" }
        )
    }
}

impl fmt::Display for PanelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dropped: usize = self.tickers.iter().map(|t| t.bars_dropped).sum();
        let filled: usize = self.tickers.iter().map(|t| t.bars_filled).sum();
        let clamped: usize = self.tickers.iter().map(|t| t.bars_clamped).sum();
        write!(
            f,
            "{} tickers × {} {} bars ({} trading days) from {}; missing bars ({}): {} timestamps dropped, {} bars dropped, {} bars filled; {} high/low clamped",
            self.tickers.len(),
            self.bars,
            self.interval.as_str(),
            self.days,
            self.source,
            // As the config spells it (`data.missing_bars`).
            match self.policy {
                crate::config::MissingBarPolicy::Drop => "drop",
                crate::config::MissingBarPolicy::ForwardFill => "forward_fill",
            },
            self.dropped_timestamps,
            dropped,
            filled,
            clamped
        )?;
        if self.tickers.iter().any(|t| t.actions.splits + t.actions.dividends > 0) {
            write!(f, "; {}", self.corporate_actions())?;
        }
        if let Some(first) = self.suspect_gaps.first() {
            let more = self.suspect_gaps.len() - 1;
            write!(
                f,
                "; warning: {} open{} at ×{SUSPECT_GAP} or less, or ×{:.2} or more, of the previous close with no split recorded ({first}{}): a split the file does not record? (a Stock Splits column records it)",
                self.suspect_gaps.len(),
                if more == 0 { "" } else { "s" },
                1.0 / SUSPECT_GAP,
                if more == 0 { String::new() } else { format!(" and {more} more") }
            )?;
        }
        Ok(())
    }
}

/// Each ticker's first and last bar (`SPY 2020-01-02 to 2020-12-31, QQQ ...`) when two or
/// more `series` have no timestamp in common; `None` when some bar time is shared by all.
///
/// Without a shared bar no row of an aligned panel would be real for every ticker, which
/// almost always means files of different periods (or of bars at different minutes), and
/// the ranges show which.
pub fn unshared_ranges(series: &[BarSeries], interval: Interval) -> Option<String> {
    let (first, rest) = series.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let mut shared: Vec<i64> = first.timestamps.clone();
    for s in rest {
        // Timestamps strictly increase (validated at load), so binary search applies.
        shared.retain(|t| s.timestamps.binary_search(t).is_ok());
    }
    if !shared.is_empty() {
        return None;
    }
    let range = |s: &BarSeries| match (s.timestamps.first(), s.timestamps.last()) {
        (Some(&a), Some(&b)) => format!(
            "{} {} to {}",
            s.ticker,
            calendar::format_timestamp(a, interval),
            calendar::format_timestamp(b, interval)
        ),
        _ => format!("{} (no bars)", s.ticker),
    };
    Some(series.iter().map(range).collect::<Vec<_>>().join(", "))
}

impl Panel {
    /// Builds a panel from columns already on one timeline (used by the synthetic market).
    ///
    /// # Panics
    /// If a column's length is not `tickers.len() * timestamps.len()`.
    pub(crate) fn from_columns(
        interval: Interval,
        tickers: Vec<String>,
        timestamps: Vec<i64>,
        columns: [Vec<f64>; 5],
    ) -> Self {
        let n = tickers.len() * timestamps.len();
        assert!(columns.iter().all(|c| c.len() == n), "Invariant: panel columns are [n_tickers, n_bars]");
        let day = calendar::trading_days(&timestamps, interval);
        let [open, high, low, close, volume] = columns;
        Self {
            interval,
            tickers,
            timestamps,
            day,
            open,
            high,
            low,
            close,
            volume,
            invented: Vec::new(),
            split_ratio: Vec::new(),
            dividend: Vec::new(),
        }
    }

    /// Puts each ticker's account events (`events[k]`, oldest first) on the panel's bars:
    /// an event falls on the first kept bar at or after its date (a later bar when `drop`
    /// removed its own), several on one bar compose (ratios multiply, a dividend is counted
    /// in the shares after every split of the bar), and an event before the panel's first
    /// bar is dropped (nothing can be held then).
    pub(crate) fn set_corporate_actions(&mut self, events: &[Vec<super::CorporateAction>]) {
        let n = self.n_bars();
        if events.iter().all(Vec::is_empty) || n == 0 {
            return;
        }
        let mut ratio = vec![1.0f64; n * self.n_tickers()];
        let mut dividend = vec![0.0f64; n * self.n_tickers()];
        for (k, list) in events.iter().enumerate() {
            for e in list {
                let b = self.timestamps.partition_point(|&t| t < e.timestamp);
                if b == n || (b == 0 && self.timestamps[0] != e.timestamp) {
                    continue;
                }
                let i = k * n + b;
                dividend[i] = dividend[i] / e.ratio + e.dividend;
                ratio[i] *= e.ratio;
            }
        }
        self.split_ratio = ratio;
        self.dividend = dividend;
    }

    /// Ticker `k`'s split ratios and dividends per bar (see [`super::adjust`]), or `None`
    /// when no ticker has an event for the account.
    pub fn corporate_actions(&self, k: usize) -> Option<(&[f64], &[f64])> {
        (!self.split_ratio.is_empty()).then(|| (self.column(&self.split_ratio, k), self.column(&self.dividend, k)))
    }

    /// Aligns series onto one timeline under `policy` (see the module docs).
    ///
    /// The report's `source` is left empty for the caller to fill; `bars_clamped` is 0.
    pub fn align(series: &[BarSeries], interval: Interval, policy: MissingBarPolicy) -> (Panel, PanelReport) {
        let mut union: Vec<i64> = series.iter().flat_map(|s| s.timestamps.iter().copied()).collect();
        union.sort_unstable();
        union.dedup();

        let keep: Vec<i64> = match policy {
            MissingBarPolicy::Drop => {
                let mut count = vec![0usize; union.len()];
                for s in series {
                    for ts in &s.timestamps {
                        if let Ok(i) = union.binary_search(ts) {
                            count[i] += 1;
                        }
                    }
                }
                union.iter().zip(&count).filter(|&(_, &c)| c == series.len()).map(|(&t, _)| t).collect()
            }
            MissingBarPolicy::ForwardFill => {
                let start = series.iter().filter_map(|s| s.timestamps.first().copied()).max();
                match start {
                    Some(start) if series.iter().all(|s| !s.is_empty()) => {
                        union.iter().copied().filter(|&t| t >= start).collect()
                    }
                    _ => Vec::new(),
                }
            }
        };

        let n = keep.len();
        let cap = n * series.len();
        let mut cols: [Vec<f64>; 5] = std::array::from_fn(|_| Vec::with_capacity(cap));
        let mut reports = Vec::with_capacity(series.len());
        let mut invented = vec![0u64; n];
        for (k, s) in series.iter().enumerate() {
            let mut j = 0usize; // cursor into s
            let mut dropped = 0usize;
            let mut filled = 0usize;
            let mut prev_close = f64::NAN;
            for (i, &t) in keep.iter().enumerate() {
                while j < s.len() && s.timestamps[j] < t {
                    dropped += 1;
                    prev_close = s.close[j];
                    j += 1;
                }
                if j < s.len() && s.timestamps[j] == t {
                    let b = s.bar(j);
                    for (c, v) in cols.iter_mut().zip([b.open, b.high, b.low, b.close, b.volume]) {
                        c.push(v);
                    }
                    prev_close = b.close;
                    j += 1;
                } else {
                    // Only forward_fill keeps a timestamp a ticker lacks, and only after the
                    // ticker's first bar, so prev_close is set.
                    debug_assert!(prev_close.is_finite(), "Invariant: forward fill has a previous close");
                    for (c, v) in cols.iter_mut().zip([prev_close, prev_close, prev_close, prev_close, 0.0]) {
                        c.push(v);
                    }
                    // An env trades at most 64 tickers (bit masks); wider panels are refused
                    // when an env is built on them.
                    invented[i] |= 1u64.checked_shl(k as u32).unwrap_or(0);
                    filled += 1;
                }
            }
            dropped += s.len() - j;
            reports.push(TickerReport {
                ticker: s.ticker.clone(),
                bars_read: s.len(),
                bars_dropped: dropped,
                bars_filled: filled,
                bars_clamped: 0,
                actions: super::ActionCounts::default(),
            });
        }
        let mut panel = Panel::from_columns(interval, series.iter().map(|s| s.ticker.clone()).collect(), keep, cols);
        if invented.iter().any(|&m| m != 0) {
            panel.invented = invented;
        }
        let report = PanelReport {
            source: String::new(),
            interval,
            policy,
            bars: panel.n_bars(),
            days: panel.n_days(),
            union_timestamps: union.len(),
            dropped_timestamps: union.len() - panel.n_bars(),
            tickers: reports,
            adjust: crate::config::Adjust::SplitsAndDividends,
            suspect_gaps: Vec::new(),
        };
        (panel, report)
    }

    /// Bar interval.
    /// Bit k of bar t is set when ticker k's bar t was invented by `forward_fill`
    /// (`[n_bars]`; empty when no bar was).
    pub fn invented(&self) -> &[u64] {
        &self.invented
    }

    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Tickers, in column order.
    pub fn tickers(&self) -> &[String] {
        &self.tickers
    }

    /// Number of tickers.
    pub fn n_tickers(&self) -> usize {
        self.tickers.len()
    }

    /// Index of `ticker`, if present.
    pub fn ticker_index(&self, ticker: &str) -> Option<usize> {
        self.tickers.iter().position(|t| t == ticker)
    }

    /// Bars per ticker.
    pub fn n_bars(&self) -> usize {
        self.timestamps.len()
    }

    /// Trading days covered.
    pub fn n_days(&self) -> usize {
        self.day.last().map_or(0, |&d| d as usize + 1)
    }

    /// Bar open times, Unix seconds (UTC). `[n_bars]`
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// Trading-day ordinal per bar. `[n_bars]`
    pub fn day(&self) -> &[u32] {
        &self.day
    }

    /// Bar `t`'s open time in New York.
    ///
    /// # Panics
    /// If `t >= self.n_bars()`.
    pub fn datetime(&self, t: usize) -> DateTime<Tz> {
        calendar::ny_datetime(self.timestamps[t])
    }

    /// Bar `t`'s trading date (New York).
    ///
    /// # Panics
    /// If `t >= self.n_bars()`.
    pub fn date(&self, t: usize) -> NaiveDate {
        calendar::ny_date(self.timestamps[t])
    }

    fn column<'a>(&self, col: &'a [f64], k: usize) -> &'a [f64] {
        let n = self.n_bars();
        &col[k * n..(k + 1) * n]
    }

    /// Ticker `k`'s opens. `[n_bars]`
    ///
    /// # Panics
    /// If `k >= self.n_tickers()`.
    pub fn open(&self, k: usize) -> &[f64] {
        self.column(&self.open, k)
    }

    /// Ticker `k`'s highs. `[n_bars]`
    ///
    /// # Panics
    /// If `k >= self.n_tickers()`.
    pub fn high(&self, k: usize) -> &[f64] {
        self.column(&self.high, k)
    }

    /// Ticker `k`'s lows. `[n_bars]`
    ///
    /// # Panics
    /// If `k >= self.n_tickers()`.
    pub fn low(&self, k: usize) -> &[f64] {
        self.column(&self.low, k)
    }

    /// Ticker `k`'s closes. `[n_bars]`
    ///
    /// # Panics
    /// If `k >= self.n_tickers()`.
    pub fn close(&self, k: usize) -> &[f64] {
        self.column(&self.close, k)
    }

    /// Ticker `k`'s volumes. `[n_bars]`
    ///
    /// # Panics
    /// If `k >= self.n_tickers()`.
    pub fn volume(&self, k: usize) -> &[f64] {
        self.column(&self.volume, k)
    }

    /// Ticker `k`'s bar `t`.
    ///
    /// # Panics
    /// If `k` or `t` is out of range.
    pub fn bar(&self, k: usize, t: usize) -> Bar {
        let i = k * self.n_bars() + t;
        assert!(t < self.n_bars(), "bar index {t} out of range");
        Bar {
            timestamp: self.timestamps[t],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
        }
    }

    /// Ticker `k` as a standalone series (copied), e.g. to compute its features.
    ///
    /// # Panics
    /// If `k >= self.n_tickers()`.
    pub fn series(&self, k: usize) -> BarSeries {
        BarSeries {
            ticker: self.tickers[k].clone(),
            timestamps: self.timestamps.clone(),
            day: self.day.clone(),
            open: self.open(k).to_vec(),
            high: self.high(k).to_vec(),
            low: self.low(k).to_vec(),
            close: self.close(k).to_vec(),
            volume: self.volume(k).to_vec(),
        }
    }

    /// Trailing mean volume over bars `t-window+1..=t`, per ticker. `[n_tickers, n_bars]`
    ///
    /// Never NaN: the first `window - 1` bars average the bars available so far (bar 0 is its
    /// own volume), because every consumer needs a finite participation cap and the training
    /// split skips those bars as warm-up anyway. Includes the current bar, so the env must
    /// read it only after the bar is known to the agent's orders (at fill time).
    /// Each mean is summed afresh, so values do not depend on how far into the series they
    /// are (no running-sum drift).
    ///
    /// # Panics
    /// If `window == 0`.
    pub fn trailing_mean_volume(&self, window: usize) -> Vec<f64> {
        assert!(window > 0, "window must be positive");
        let n = self.n_bars();
        let mut out = Vec::with_capacity(self.volume.len());
        for k in 0..self.n_tickers() {
            let v = self.volume(k);
            for t in 0..n {
                let lo = (t + 1).saturating_sub(window);
                let w = &v[lo..=t];
                out.push(w.iter().sum::<f64>() / w.len() as f64);
            }
        }
        out
    }

    /// [`Self::trailing_mean_volume`] over [`VOLUME_WINDOW`] (20) bars. `[n_tickers, n_bars]`
    pub fn mean_volume_20(&self) -> Vec<f64> {
        self.trailing_mean_volume(VOLUME_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(ticker: &str, ts: &[i64]) -> BarSeries {
        let bars: Vec<Bar> = ts
            .iter()
            .map(|&t| {
                let p = 100.0 + t as f64;
                Bar { timestamp: t, open: p, high: p + 1.0, low: p - 1.0, close: p + 0.5, volume: 10.0 * t as f64 }
            })
            .collect();
        BarSeries::from_bars(ticker, Interval::Day, &bars)
    }

    #[test]
    fn trailing_mean_volume_is_partial_then_full() {
        let s = series("A", &(1..=25).collect::<Vec<_>>());
        let (p, _) = Panel::align(&[s], Interval::Day, MissingBarPolicy::Drop);
        let m = p.mean_volume_20();
        assert_eq!(m[0], 10.0);
        assert_eq!(m[1], 15.0);
        // Bars 6..=25 → volumes 60..=250, mean 155.
        assert_eq!(m[24], 155.0);
    }

    #[test]
    fn unshared_ranges_name_each_ticker_only_when_no_bar_is_common() {
        let day = 86_400;
        let a = series("A", &[day, 2 * day, 3 * day]);
        let b = series("B", &[10 * day, 11 * day]);
        let c = series("C", &[3 * day, 10 * day]);
        assert_eq!(unshared_ranges(std::slice::from_ref(&a), Interval::Day), None);
        assert_eq!(unshared_ranges(&[a.clone(), c.clone()], Interval::Day), None);
        let text = unshared_ranges(&[a.clone(), b.clone()], Interval::Day).unwrap();
        let (a0, a1) =
            (calendar::format_timestamp(day, Interval::Day), calendar::format_timestamp(3 * day, Interval::Day));
        assert!(text.starts_with(&format!("A {a0} to {a1}, B ")), "{text}");
        // Pairwise overlaps are not enough: every ticker must share one bar.
        assert!(unshared_ranges(&[a, b, c], Interval::Day).is_some());
    }

    #[test]
    fn accessors_slice_ticker_major_columns() {
        let a = series("A", &[1, 2, 3]);
        let b = series("B", &[1, 2, 3]);
        let (p, _) = Panel::align(&[a.clone(), b], Interval::Day, MissingBarPolicy::Drop);
        assert_eq!(p.n_tickers(), 2);
        assert_eq!(p.close(1), &a.close[..]);
        assert_eq!(p.bar(1, 2), a.bar(2));
        assert_eq!(p.series(0).close, a.close);
        assert_eq!(p.ticker_index("B"), Some(1));
    }
}
