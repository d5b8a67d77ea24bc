//! Walk-forward analysis: train on a rolling window, test on the next, roll forward.
//!
//! Fold i trains on `train_days` trading days and tests on the following `test_days`; the
//! next fold starts `test_days` later, so the test windows tile the end of the data without
//! overlap, and no fold's test bars are among its own training bars. Training a fold's agent
//! is the caller's (`ploutos walk-forward` trains a fresh one per fold, with the feature
//! standardization fitted on that fold's training window); this module builds the folds
//! and puts the folds' out-of-sample replays together ([`chain`], [`out_of_sample_metrics`]).

use super::metrics::{self, Metrics};
use super::{EquityRow, ReplayResult};
use std::ops::Range;

/// How a walk-forward cuts the data: `folds` test windows of `test_days` trading days each,
/// every one preceded by `train_days` trading days of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkForward {
    /// Number of folds (test windows), at least 1.
    pub folds: usize,
    /// Trading days in each training window, at least 2.
    pub train_days: usize,
    /// Trading days in each test window, and the step from one fold to the next; at least 1.
    pub test_days: usize,
}

/// The bars one fold trains on and tests on (`train.end == test.start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Range<usize>,
    pub test: Range<usize>,
}

/// A walk-forward that does not fit the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkForwardError {
    /// A size is below its minimum.
    #[error("a walk-forward needs at least 1 fold and 1 test day, and at least 2 training days")]
    Sizes,
    /// The data holds fewer trading days than the folds need.
    #[error("the folds need {needed} trading days (train_days + folds × test_days); the data has {n_days}")]
    TooFewDays { folds: usize, train_days: usize, test_days: usize, needed: usize, n_days: usize },
    /// A fold's training window (after the warm-up) or test window holds fewer than 2 bars.
    #[error("fold {fold}: the training or test window holds fewer than 2 bars")]
    FoldTooShort { fold: usize },
}

impl crate::UserError for WalkForwardError {}

impl WalkForward {
    /// Trading days the folds span: one training window and every test window.
    pub fn days_needed(&self) -> usize {
        self.train_days + self.folds * self.test_days
    }

    /// The folds over bars whose trading-day indices are `day` (non-decreasing, from 0:
    /// [`crate::market::Panel::day`]), placed so that the last test window ends with the
    /// data. No training window starts before bar `warmup`, the first bar with every
    /// feature ([`crate::features::MIN_BARS`]).
    ///
    /// All folds are checked before any is returned, so that a run never trains some folds
    /// and then stops on a later one.
    ///
    /// # Errors
    /// [`WalkForwardError`] when a size is below its minimum, the data holds fewer than
    /// [`WalkForward::days_needed`] trading days, or a window holds fewer than 2 bars.
    pub fn folds(&self, day: &[u32], warmup: usize) -> Result<Vec<Fold>, WalkForwardError> {
        if self.folds == 0 || self.train_days < 2 || self.test_days < 1 {
            return Err(WalkForwardError::Sizes);
        }
        // As `Panel::n_days`: days are numbered from 0 without gaps.
        let n_days = day.last().map_or(0, |&d| d as usize + 1);
        let needed = self.days_needed();
        if needed > n_days {
            return Err(WalkForwardError::TooFewDays {
                folds: self.folds,
                train_days: self.train_days,
                test_days: self.test_days,
                needed,
                n_days,
            });
        }
        let first_bar_of = |d: usize| day.partition_point(|&x| (x as usize) < d);
        let start_day = n_days - needed;
        (0..self.folds)
            .map(|fold| {
                let s = start_day + fold * self.test_days;
                let train = first_bar_of(s).max(warmup)..first_bar_of(s + self.train_days);
                let test = first_bar_of(s + self.train_days)..first_bar_of(s + self.train_days + self.test_days);
                if train.len() < 2 || test.len() < 2 {
                    return Err(WalkForwardError::FoldTooShort { fold });
                }
                Ok(Fold { train, test })
            })
            .collect()
    }
}

/// Concatenates replays over consecutive windows into one curve: each window's equity is
/// rescaled to start where the previous one ended (the first bar of a window repeats the
/// previous window's last bar, so it is skipped). Trades and costs are summed.
pub fn chain<'a>(name: &str, parts: impl Iterator<Item = &'a ReplayResult>) -> ReplayResult {
    let mut out: Option<ReplayResult> = None;
    for p in parts {
        match &mut out {
            None => {
                let mut first = p.clone();
                first.name = name.to_string();
                out = Some(first);
            }
            Some(acc) => {
                let scale = acc.equity.last().map_or(1.0, |e| e.equity) / p.initial_cash;
                acc.equity.extend(p.equity.iter().skip(1).map(|e| EquityRow {
                    bar: e.bar,
                    equity: e.equity * scale,
                    cash: e.cash * scale,
                    values: e.values.iter().map(|v| v * scale).collect(),
                }));
                acc.trades.extend(p.trades.iter().copied());
                acc.totals.merge(&p.totals);
            }
        }
    }
    out.unwrap_or_else(|| ReplayResult {
        name: name.to_string(),
        initial_cash: 0.0,
        equity: Vec::new(),
        trades: Vec::new(),
        totals: Default::default(),
        refusal_names: Vec::new(),
    })
}

/// Metrics of the chained out-of-sample curve `oos` ([`chain`] of `folds`), with the trade
/// statistics taken from each fold's own closed trades: positions do not carry from one
/// fold's agent to the next, so a round trip never spans two folds.
pub fn out_of_sample_metrics(
    oos: &ReplayResult,
    folds: &[ReplayResult],
    n_tickers: usize,
    bars_per_year: f64,
) -> Metrics {
    let closed: Vec<_> = folds.iter().flat_map(|r| metrics::closed_trades(&r.trades, n_tickers)).collect();
    let stats = metrics::TradeStats::of(&closed);
    let mut m = metrics::compute(oos, bars_per_year);
    m.closed_trades = closed.len();
    m.win_rate = stats.win_rate;
    m.profit_factor = stats.profit_factor;
    m.avg_trade_bars = stats.avg_trade_bars;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trading-day index of each bar: `bars_per_day` bars on each of `n_days` days.
    fn days(n_days: u32, bars_per_day: usize) -> Vec<u32> {
        (0..n_days).flat_map(|d| std::iter::repeat_n(d, bars_per_day)).collect()
    }

    fn wf(folds: usize, train_days: usize, test_days: usize) -> WalkForward {
        WalkForward { folds, train_days, test_days }
    }

    #[test]
    fn folds_tile_the_end_of_the_data() {
        // 20 days of 7 bars; 3 folds of 2 test days after 10 training days span the last
        // 16 days (4..20).
        let day = days(20, 7);
        let folds = wf(3, 10, 2).folds(&day, 0).unwrap();
        assert_eq!(
            folds,
            vec![
                Fold { train: 28..98, test: 98..112 },
                Fold { train: 42..112, test: 112..126 },
                Fold { train: 56..126, test: 126..140 },
            ]
        );
        assert_eq!(folds.last().unwrap().test.end, day.len(), "the last test window ends with the data");
        for (f, next) in folds.iter().zip(&folds[1..]) {
            assert_eq!(f.test.end, next.test.start, "test windows are consecutive and disjoint");
        }
        for f in &folds {
            assert_eq!(f.train.end, f.test.start, "a fold tests right after it trains");
            assert!(f.train.end <= f.test.start, "no bar is in both a fold's training and test window");
            assert_eq!(day[f.train.start], day[f.train.end - 1] - 9, "10 whole training days");
            assert_eq!(day[f.test.start], day[f.test.end - 1] - 1, "2 whole test days");
        }
    }

    #[test]
    fn training_starts_after_the_warm_up() {
        let day = days(20, 7);
        let folds = wf(3, 10, 2).folds(&day, 50).unwrap();
        assert_eq!(folds.iter().map(|f| f.train.clone()).collect::<Vec<_>>(), vec![50..98, 50..112, 56..126]);
        // A warm-up that swallows a training window.
        assert_eq!(wf(3, 10, 2).folds(&day, 97), Err(WalkForwardError::FoldTooShort { fold: 0 }));
    }

    #[test]
    fn uneven_days_are_cut_at_day_boundaries() {
        // Day d has d % 3 + 1 bars (a half day now and then).
        let day: Vec<u32> = (0..10u32).flat_map(|d| std::iter::repeat_n(d, d as usize % 3 + 1)).collect();
        let folds = wf(2, 3, 2).folds(&day, 0).unwrap();
        for f in &folds {
            assert!(f.train.start == 0 || day[f.train.start - 1] < day[f.train.start]);
            assert!(day[f.test.start - 1] < day[f.test.start]);
            assert!(f.test.end == day.len() || day[f.test.end - 1] < day[f.test.end]);
        }
        assert_eq!(folds[1].test.end, day.len());
    }

    #[test]
    fn all_the_data_may_be_used() {
        let day = days(12, 1);
        let folds = wf(2, 8, 2).folds(&day, 0).unwrap();
        assert_eq!(folds[0], Fold { train: 0..8, test: 8..10 });
        assert_eq!(folds[1], Fold { train: 2..10, test: 10..12 });
    }

    #[test]
    fn too_few_days_or_bars_are_errors() {
        let day = days(12, 1);
        let err = wf(3, 8, 2).folds(&day, 0).unwrap_err();
        assert_eq!(err, WalkForwardError::TooFewDays { folds: 3, train_days: 8, test_days: 2, needed: 14, n_days: 12 });
        assert_eq!(err.to_string(), "the folds need 14 trading days (train_days + folds × test_days); the data has 12");
        assert!(matches!(wf(1, 2, 1).folds(&[], 0), Err(WalkForwardError::TooFewDays { n_days: 0, .. })));
        // One bar a day: a 1-day test window holds one bar.
        assert_eq!(wf(2, 8, 1).folds(&day, 0), Err(WalkForwardError::FoldTooShort { fold: 0 }));
        for (f, tr, te) in [(0, 8, 2), (2, 1, 2), (2, 8, 0)] {
            assert_eq!(wf(f, tr, te).folds(&day, 0), Err(WalkForwardError::Sizes), "{f} {tr} {te}");
        }
    }

    fn replay(initial_cash: f64, bars: Range<usize>, equity: &[f64]) -> ReplayResult {
        ReplayResult {
            name: "fold".into(),
            initial_cash,
            equity: bars
                .zip(equity)
                .map(|(bar, &e)| EquityRow { bar, equity: e, cash: e / 2.0, values: vec![e / 2.0] })
                .collect(),
            trades: Vec::new(),
            totals: Default::default(),
            refusal_names: Vec::new(),
        }
    }

    #[test]
    fn chain_compounds_each_window_from_the_last_ones_end() {
        let a = replay(100.0, 10..13, &[100.0, 110.0, 150.0]);
        let b = replay(100.0, 12..15, &[100.0, 90.0, 150.0]);
        let c = chain("oos", [a, b].iter());
        assert_eq!(c.name, "oos");
        assert_eq!(c.equity.iter().map(|r| r.bar).collect::<Vec<_>>(), vec![10, 11, 12, 13, 14]);
        let eq: Vec<f64> = c.equity.iter().map(|r| r.equity).collect();
        assert_eq!(eq, vec![100.0, 110.0, 150.0, 135.0, 225.0]);
        assert_eq!((c.equity[4].cash, c.equity[4].values[0]), (112.5, 112.5));
        assert!(chain("none", std::iter::empty()).equity.is_empty());
    }
}
