//! Support and resistance levels: classic floor pivots from the previous trading day and
//! the 52-week high and low.
//!
//! Both read [`RawInput::day`], so they work the same on daily and intraday bars: a trading
//! day is a run of bars with the same day ordinal.
//!
//! * Pivots: from the previous trading day's high `H` (max of its highs), low `L` (min of its
//!   lows) and close `C` (its last close), `P = (H + L + C)/3`, `R1 = 2P - L`, `S1 = 2P - H`,
//!   `R2 = P + (H - L)`, `S2 = P - (H - L)`; constant within a day, `NaN` on the first day.
//!   The previous trading day is the previous run of bars, whatever the gap in ordinals.
//! * 52 weeks = 252 trading days: the bars whose day ordinal is at least `day_t - 251`, up to
//!   bar `t` (the current day included so far). A partial window at the start.

use std::collections::VecDeque;

use super::carry::Carry;
use super::{Bar, Feature, RawFeatures, RawInput};

/// Trading days in 52 weeks.
pub(super) const DAYS_52W: u32 = 252;

/// Writes `pivot_*`, `high_52w` and `low_52w`, resuming from `carry`.
pub(super) fn compute(input: &RawInput, carry: &Carry, out: &mut RawFeatures) {
    let mut pivots = carry.pivots.clone();
    let [r1, r2, s1, s2] = out.cols_mut([Feature::PivotR1, Feature::PivotR2, Feature::PivotS1, Feature::PivotS2]);
    for (t, (prev, bar)) in input.bars_with_prev(carry.prev).enumerate() {
        [r1[t], r2[t], s1[t], s2[t]] = pivots.push(prev.as_ref(), &bar);
    }
    let (mut high, mut low) = (carry.high_52w.clone(), carry.low_52w.clone());
    let [hi, lo] = out.cols_mut([Feature::High52w, Feature::Low52w]);
    for t in 0..input.len() {
        hi[t] = high.push(input.high[t], input.day[t]);
        lo[t] = low.push(input.low[t], input.day[t]);
    }
}

/// Floor pivots from the previous trading day's high, low and close.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pivots {
    /// r1, r2, s1, s2 of the current day.
    levels: [f64; 4],
    day_high: f64,
    day_low: f64,
}

impl Pivots {
    pub(super) fn new() -> Self {
        Self { levels: [f64::NAN; 4], day_high: f64::NEG_INFINITY, day_low: f64::INFINITY }
    }

    /// Takes the next bar (and its predecessor); returns r1, r2, s1, s2.
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> [f64; 4] {
        if let Some(p) = prev
            && bar.day != p.day
        {
            // The bar opens a new day: the day that just ended sets today's levels.
            let (hh, ll, cc) = (self.day_high, self.day_low, p.close);
            let pivot = (hh + ll + cc) / 3.0;
            self.levels = [2.0 * pivot - ll, pivot + (hh - ll), 2.0 * pivot - hh, pivot - (hh - ll)];
            (self.day_high, self.day_low) = (f64::NEG_INFINITY, f64::INFINITY);
        }
        self.day_high = self.day_high.max(bar.high);
        self.day_low = self.day_low.min(bar.low);
        self.levels
    }
}

/// Extreme of a series over the bars of the last `days` trading days (by ordinal), up to
/// the current bar, with a monotonic deque of `(day, value)`: `O(1)` amortized per bar.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TrailingExtreme {
    days: u32,
    /// Highest (`true`) or lowest.
    highest: bool,
    window: VecDeque<(u32, f64)>,
}

impl TrailingExtreme {
    pub(super) fn new(days: u32, highest: bool) -> Self {
        Self { days, highest, window: VecDeque::new() }
    }

    /// Takes the next value and its day ordinal; returns the extreme of the window.
    #[inline]
    pub(super) fn push(&mut self, x: f64, day: u32) -> f64 {
        let dominates = |a: f64, b: f64| if self.highest { a >= b } else { a <= b };
        while self.window.back().is_some_and(|&(_, b)| dominates(x, b)) {
            self.window.pop_back();
        }
        self.window.push_back((day, x));
        let oldest_day = day.saturating_sub(self.days - 1);
        while self.window.front().is_some_and(|&(d, _)| d < oldest_day) {
            self.window.pop_front();
        }
        self.window.front().map_or(f64::NAN, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_drops_days_older_than_252() {
        let n = 300;
        let x: Vec<f64> = (0..n).map(|i| if i == 10 { 1e6 } else { i as f64 }).collect();
        let day: Vec<u32> = (0..n as u32).collect();
        let mut high = TrailingExtreme::new(252, true);
        let out: Vec<f64> = x.iter().zip(&day).map(|(&x, &d)| high.push(x, d)).collect();
        assert_eq!(out[10], 1e6);
        assert_eq!(out[261], 1e6); // days 10..=261
        assert_eq!(out[262], 262.0);
    }
}
