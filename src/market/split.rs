//! Chronological train / validation / test splits over a [`Panel`], never shuffled.
//!
//! Cuts fall on trading-day boundaries so no day (and no PDT window or pivot day) straddles
//! two splits. With dates (`data.split.train_end`, `validation_end`, inclusive New York
//! dates) a split ends with the last bar on or before its date; without, it ends at the first
//! day boundary at or after `fraction × n_bars`. A date wins over its fraction; the
//! validation fraction counts from the training cut.
//!
//! Warm-up: features are computed once over the whole panel (they only look backward), so
//! the first bars of validation and test take their warm-up from the preceding split, which
//! is history the agent would have had. The training split drops its first
//! [`crate::features::MIN_BARS`] bars, whose features are not all defined yet.

use super::{DataError, Panel};
use crate::config::SplitConfig;
use chrono::NaiveDate;
use std::ops::Range;

/// Bar ranges of the three splits over a panel's timeline.
///
/// Keeps true: `train.end ≤ validation.start`, `validation.end == test.start`,
/// `test.end == n_bars`, `train` is non-empty and starts at `MIN_BARS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training bars (after the warm-up).
    pub train: Range<usize>,
    /// Validation bars (may be empty).
    pub validation: Range<usize>,
    /// Test bars (may be empty).
    pub test: Range<usize>,
}

impl Split {
    /// Cuts `panel` as `cfg` says (see the module docs).
    ///
    /// # Errors
    /// [`DataError::Split`] when the training split would hold no bar after the warm-up.
    pub fn new(panel: &Panel, cfg: &SplitConfig) -> Result<Split, DataError> {
        let n = panel.n_bars();
        let day = panel.day();
        let train_cut = match cfg.train_end {
            Some(date) => cut_after_date(panel, date),
            None => day_boundary_at_or_after(day, fraction_index(n, cfg.train_fraction)),
        };
        let validation_cut = match cfg.validation_end {
            Some(date) => cut_after_date(panel, date).max(train_cut),
            None => day_boundary_at_or_after(day, train_cut + fraction_index(n, cfg.validation_fraction)),
        };
        let warm_up = crate::features::MIN_BARS;
        if train_cut <= warm_up {
            return Err(DataError::Split(format!(
                "the training split ends at bar {train_cut} of {n}, leaving nothing after the {warm_up}-bar feature warm-up; move train_end later or raise train_fraction"
            )));
        }
        Ok(Split { train: warm_up..train_cut, validation: train_cut..validation_cut, test: validation_cut..n })
    }
}

fn fraction_index(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).min(n)
}

/// First index `≥ i` that starts a trading day (or `n`).
fn day_boundary_at_or_after(day: &[u32], i: usize) -> usize {
    let mut j = i.min(day.len());
    while j > 0 && j < day.len() && day[j] == day[j - 1] {
        j += 1;
    }
    j
}

/// Index of the first bar whose New York date is after `date` (or `n`).
fn cut_after_date(panel: &Panel, date: NaiveDate) -> usize {
    let ts = panel.timestamps();
    // Dates are non-decreasing along the timeline, so partition_point applies.
    let (mut lo, mut hi) = (0usize, ts.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if panel.date(mid) <= date {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
