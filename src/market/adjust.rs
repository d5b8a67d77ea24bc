//! Corporate actions: what `data.adjust` does with a file's splits and dividends.
//!
//! A file tells of its events through its `Stock Splits` and `Dividends` columns, or, without
//! a `Dividends` column, through the steps of `Adj Close / Close` (a back-adjusted close
//! steps up on every ex-date by `1 / (1 − dividend / previous close)`; steps under
//! [`MIN_DIVIDEND_STEP`] are the exporter's rounding, not dividends). Events on a file's first
//! bar are before anything could be held and are ignored.
//!
//! **Raw prices first.** yfinance writes prices (and dividends, and volumes) already adjusted
//! for splits, other sources the prices that printed. Each split is judged on the file's own
//! prices: when the gap from the previous close to the ex-date's open is closer to the
//! split's ratio than to no gap, the prices show the split (they are raw); otherwise they
//! were adjusted for it, and the bars before it are scaled back to what printed (prices ×
//! ratio, volumes ÷ ratio, dividends × ratio). The report counts both kinds.
//!
//! **Then the mode** ([`Adjust`]):
//!
//! - `splits_and_dividends`: prices × S_t × G_t, volumes ÷ S_t, nothing for the account;
//! - `splits`: prices × S_t, volumes ÷ S_t; dividends (× S_t, per adjusted share) are
//!   credited to cash by the env on their ex-date;
//! - `none`: prices as they printed; the env applies splits to positions and credits
//!   dividends on their ex-date.
//!
//! where S_t is the product of the split ratios of bars 1..=t and G_t the product of
//! `C / (C − D)` over the dividends of bars 1..=t (C the previous close, D the dividend, both
//! split-adjusted). Both are 1 at the first bar: prices are adjusted **forward**, in the
//! terms of the file's first bar, so an adjusted price at bar t depends on events up to t
//! only and the no-look-ahead rule holds for prices as it does for features. (A
//! back-adjusted series, yfinance's `Adj Close`, scales past prices by future dividends.)
//! A file with no event reads the same under every mode, bit for bit.

use super::csv::RawActions;
use super::{BarSeries, DataError};
use crate::config::Adjust;
use std::path::Path;

/// Smallest step of `Adj Close / Close` read as a dividend: 0.05% of the price. Exporters
/// round adjusted closes to a few digits, which makes the ratio wander by about 1e-6.
pub const MIN_DIVIDEND_STEP: f64 = 5e-4;

/// Largest dividend read from a step of `Adj Close / Close` and paid to the account
/// (`data.adjust: splits` or `none`), as a share of the previous close: a larger step is far
/// more often a split the file's `Adj Close` adjusts for but no column records (many vendors
/// adjust it for splits too) than a special dividend, and reading it as cash would pay the
/// account that share of its position. Refused, naming the bar; a `Stock Splits` (or
/// `Dividends`) column says which it is. Under the default `splits_and_dividends` the step
/// only adjusts prices, which is right for a split as for a dividend, so it stands.
pub const MAX_ADJ_CLOSE_DIVIDEND: f64 = 0.25;

/// A split and/or a dividend the env applies to the account on an ex-date bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorporateAction {
    /// The ex-date bar's open time, Unix seconds.
    pub timestamp: i64,
    /// New shares per old share (1 = no split), applied first.
    pub ratio: f64,
    /// Cash per share held after the split (0 = none), in the prices the env trades.
    pub dividend: f64,
}

/// Where a file's dividends came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DividendSource {
    /// No dividend information in the file.
    #[default]
    None,
    /// The `Dividends` column.
    Column,
    /// The steps of `Adj Close / Close`.
    AdjClose,
}

/// What one file held and what adjusting it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionCounts {
    /// Splits after the first bar.
    pub splits: usize,
    /// Of them, those the file's prices show as a gap (raw prices); the others were already
    /// adjusted in the file.
    pub splits_in_prices: usize,
    /// Dividends after the first bar.
    pub dividends: usize,
    /// Where the dividends came from.
    pub dividend_source: DividendSource,
}

/// Applies `mode` to `series` (prices and volumes in place) and returns the events the env
/// applies to the account (none under `splits_and_dividends`) with the counts for the
/// report. See the module docs.
///
/// # Errors
/// [`DataError::CorporateAction`] naming the line of a dividend at or above the close it is
/// paid from.
pub(crate) fn apply(
    series: &mut BarSeries,
    raw: &RawActions,
    mode: Adjust,
    path: &Path,
) -> Result<(Vec<CorporateAction>, ActionCounts), DataError> {
    let n = series.len();
    let mut counts = ActionCounts::default();
    let mut ratio = vec![1.0f64; n];
    if let Some(splits) = &raw.splits {
        for i in 1..n {
            if splits[i] > 0.0 && splits[i] != 1.0 {
                ratio[i] = splits[i];
            }
        }
    }
    // Whether the file's prices show each split: the overnight gap is closer to the ratio
    // than to nothing.
    let shown: Vec<bool> = (0..n)
        .map(|i| {
            ratio[i] != 1.0 && {
                let gap = (series.close[i - 1] / series.open[i]).ln();
                (gap - ratio[i].ln()).abs() < gap.abs()
            }
        })
        .collect();
    counts.splits = ratio.iter().filter(|&&r| r != 1.0).count();
    counts.splits_in_prices = shown.iter().filter(|&&s| s).count();

    // File terms to raw terms: the product of the ratios of later splits the file had
    // already adjusted for.
    let mut unadjust = vec![1.0f64; n];
    let mut acc = 1.0;
    for j in (0..n).rev() {
        unadjust[j] = acc;
        if ratio[j] != 1.0 && !shown[j] {
            acc *= ratio[j];
        }
    }
    // The previous close in the terms of bar i's shares (raw, after bar i's split).
    let prev_close = |i: usize| series.close[i - 1] * unadjust[i - 1] / ratio[i];

    // Dividends per raw share of their ex-date.
    let mut dividend = vec![0.0f64; n];
    if let Some(column) = &raw.dividends {
        counts.dividend_source = DividendSource::Column;
        for i in 1..n {
            dividend[i] = column[i] * unadjust[i];
        }
    } else if let Some(adj) = &raw.adj_close {
        counts.dividend_source = DividendSource::AdjClose;
        for i in 1..n {
            let step =
                (adj[i] / series.close[i]) / (adj[i - 1] / series.close[i - 1]) / if shown[i] { ratio[i] } else { 1.0 };
            if step.is_finite() && step > 1.0 + MIN_DIVIDEND_STEP {
                if 1.0 - 1.0 / step > MAX_ADJ_CLOSE_DIVIDEND && mode != Adjust::SplitsAndDividends {
                    return Err(DataError::CorporateAction {
                        path: path.into(),
                        line: raw.lines[i],
                        message: format!(
                            "Adj Close / Close steps by ×{step:.4}, a dividend of {:.0}% of the price: a split Adj Close adjusts for? Add a Stock Splits column (or a Dividends column) to say what it is",
                            100.0 * (1.0 - 1.0 / step)
                        ),
                    });
                }
                dividend[i] = prev_close(i) * (1.0 - 1.0 / step);
            } else if step.is_finite() && step < 1.0 - MAX_ADJ_CLOSE_DIVIDEND {
                // Back-adjustment only ever lowers earlier bars' ratio: a fall this large is
                // an adjustment the file does not record (a reverse split) or an error,
                // whatever the mode (smaller falls are the rounding of the adjusted close).
                return Err(DataError::CorporateAction {
                    path: path.into(),
                    line: raw.lines[i],
                    message: format!(
                        "Adj Close / Close falls by ×{step:.4}, which no dividend does: a reverse split Adj Close adjusts for? Add a Stock Splits column to say what it is, or drop Adj Close"
                    ),
                });
            }
        }
    }
    if let Some(i) = (1..n).find(|&i| dividend[i] > 0.0 && dividend[i] >= prev_close(i)) {
        return Err(DataError::CorporateAction {
            path: path.into(),
            line: raw.lines[i],
            message: format!(
                "column Dividends: a dividend of {} per share is not below the previous close {}",
                dividend[i],
                prev_close(i)
            ),
        });
    }
    counts.dividends = dividend.iter().filter(|&&d| d > 0.0).count();
    if counts.dividend_source == DividendSource::AdjClose && counts.dividends == 0 {
        counts.dividend_source = DividendSource::None;
    }

    // Each bar's factor, raw terms then the mode's forward adjustment, applied in place.
    let (mut split_factor, mut dividend_factor) = (1.0f64, 1.0f64);
    let mut events = Vec::new();
    // The previous bar's close in raw terms, read before that bar was adjusted in place.
    let mut raw_close_before = 0.0;
    for i in 0..n {
        let adjusted_close_before = raw_close_before * split_factor * dividend_factor;
        split_factor *= ratio[i];
        let (prices, volumes) = match mode {
            Adjust::None => {
                if ratio[i] != 1.0 || dividend[i] > 0.0 {
                    events.push(CorporateAction {
                        timestamp: series.timestamps[i],
                        ratio: ratio[i],
                        dividend: dividend[i],
                    });
                }
                (1.0, 1.0)
            }
            Adjust::Splits => {
                if dividend[i] > 0.0 {
                    events.push(CorporateAction {
                        timestamp: series.timestamps[i],
                        ratio: 1.0,
                        dividend: dividend[i] * split_factor,
                    });
                }
                (split_factor, split_factor)
            }
            Adjust::SplitsAndDividends => {
                if dividend[i] > 0.0 {
                    let d = dividend[i] * split_factor * dividend_factor;
                    dividend_factor *= adjusted_close_before / (adjusted_close_before - d);
                }
                (split_factor * dividend_factor, split_factor)
            }
        };
        raw_close_before = series.close[i] * unadjust[i];
        let (p, v) = (unadjust[i] * prices, unadjust[i] * volumes);
        if p != 1.0 {
            for col in [&mut series.open, &mut series.high, &mut series.low, &mut series.close] {
                col[i] *= p;
            }
        }
        if v != 1.0 {
            series.volume[i] /= v;
        }
    }
    Ok((events, counts))
}
