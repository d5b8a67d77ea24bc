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

use super::{Feature, RawFeatures, RawInput};

/// Trading days in 52 weeks.
const DAYS_52W: u32 = 252;

/// Writes `pivot_*`, `high_52w` and `low_52w`.
pub(super) fn compute(input: &RawInput, out: &mut RawFeatures) {
    pivots(input, out);
    let [hi, lo] = out.cols_mut([Feature::High52w, Feature::Low52w]);
    trailing_days_extreme(input.high, input.day, DAYS_52W, |a, b| a >= b, hi);
    trailing_days_extreme(input.low, input.day, DAYS_52W, |a, b| a <= b, lo);
}

/// Floor pivots from the previous trading day's high, low and close.
fn pivots(input: &RawInput, out: &mut RawFeatures) {
    let (h, l, c, day) = (input.high, input.low, input.close, input.day);
    let [r1, r2, s1, s2] = out.cols_mut([Feature::PivotR1, Feature::PivotR2, Feature::PivotS1, Feature::PivotS2]);
    let mut levels = [f64::NAN; 4]; // r1, r2, s1, s2 of the current day
    let (mut day_high, mut day_low) = (f64::NEG_INFINITY, f64::INFINITY);
    for t in 0..c.len() {
        if t > 0 && day[t] != day[t - 1] {
            // Bar t opens a new day: the day that just ended sets today's levels.
            let (hh, ll, cc) = (day_high, day_low, c[t - 1]);
            let p = (hh + ll + cc) / 3.0;
            levels = [2.0 * p - ll, p + (hh - ll), 2.0 * p - hh, p - (hh - ll)];
            (day_high, day_low) = (f64::NEG_INFINITY, f64::INFINITY);
        }
        day_high = day_high.max(h[t]);
        day_low = day_low.min(l[t]);
        [r1[t], r2[t], s1[t], s2[t]] = levels;
    }
}

/// Extreme of `x` over the bars of the last `days` trading days (by ordinal), up to bar `t`,
/// with a monotonic deque: `O(n)`. `keep(a, b)` says whether `a` dominates `b`.
fn trailing_days_extreme(x: &[f64], day: &[u32], days: u32, keep: impl Fn(f64, f64) -> bool, out: &mut [f64]) {
    let mut deque: VecDeque<usize> = VecDeque::new();
    for t in 0..x.len() {
        while deque.back().is_some_and(|&b| keep(x[t], x[b])) {
            deque.pop_back();
        }
        deque.push_back(t);
        let oldest_day = day[t].saturating_sub(days - 1);
        while deque.front().is_some_and(|&f| day[f] < oldest_day) {
            deque.pop_front();
        }
        out[t] = deque.front().map_or(f64::NAN, |&f| x[f]);
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
        let mut out = vec![0.0; n];
        trailing_days_extreme(&x, &day, 252, |a, b| a >= b, &mut out);
        assert_eq!(out[10], 1e6);
        assert_eq!(out[261], 1e6); // days 10..=261
        assert_eq!(out[262], 262.0);
    }
}
