//! Volatility features: Bollinger bands, ATR, the original Keltner channel and the ulcer
//! index.
//!
//! `ta` 0.11.0 semantics: Bollinger uses the population std (ddof = 0), evaluated two-pass
//! here; `bb_width` is in percent and `bb_pct` a fraction. The ATR's first value (bar 13) is
//! the mean of bars 0..=13's true ranges with bar 0's true range `h - l` (TA-Lib starts a bar
//! later). The Keltner channel is Chester Keltner's original: 20-bar means of
//! `(4h - 2l + c)/3` and `(-2h + 4l + c)/3`, no ATR. The ulcer index's running maximum uses a
//! partial window at the start of the series. `zscore_20` is computed here too, from the
//! Bollinger mean and std.

use super::carry::Carry;
use super::window::{div_or_nan, rolling_max, rolling_mean, rolling_std};
use super::{Bar, Feature, RawFeatures, RawInput};

/// Writes `bb_*`, `atr_14`, `kc_*`, `ulcer_index` and `zscore_20`; the ATR resumes from
/// `carry`.
pub(super) fn compute(input: &RawInput, carry: &Carry, out: &mut RawFeatures) {
    bollinger(input.close, 20, 2.0, out);
    let mut atr = carry.atr.clone();
    for ((prev, bar), o) in input.bars_with_prev(carry.prev).zip(out.col_mut(Feature::Atr14)) {
        *o = atr.push(prev.as_ref(), &bar);
    }
    keltner(input, 20, out);
    ulcer_index(input.close, 14, out.col_mut(Feature::UlcerIndex));
}

/// Bollinger bands (20, 2) with the population std, and `zscore_20 = (c - mean)/sd` (a
/// statistical feature, written here because it shares the bands' mean and std).
fn bollinger(c: &[f64], n: usize, k: f64, out: &mut RawFeatures) {
    let mean = rolling_mean(c, n);
    let sd = rolling_std(c, &mean, n, 0);
    let [hi, lo, width, pct, z] =
        out.cols_mut([Feature::BbHigh, Feature::BbLow, Feature::BbWidth, Feature::BbPct, Feature::Zscore20]);
    for t in 0..c.len() {
        let h = mean[t] + k * sd[t];
        let l = mean[t] - k * sd[t];
        hi[t] = h;
        lo[t] = l;
        width[t] = div_or_nan(h - l, mean[t]) * 100.0;
        pct[t] = div_or_nan(c[t] - l, h - l);
        z[t] = div_or_nan(c[t] - mean[t], sd[t]);
    }
}

/// True range of bar `t`: `h - l` at bar 0, `max(h, c1) - min(l, c1)` after.
pub(super) fn true_range(input: &RawInput, t: usize) -> f64 {
    let prev = if t == 0 { None } else { Some(input.bar(t - 1)) };
    true_range_of(prev.as_ref(), &input.bar(t))
}

/// True range of `bar` after `prev`: `h - l` without one, `max(h, c1) - min(l, c1)` with.
#[inline]
fn true_range_of(prev: Option<&Bar>, bar: &Bar) -> f64 {
    match prev {
        None => bar.high - bar.low,
        Some(p) => bar.high.max(p.close) - bar.low.min(p.close),
    }
}

/// `ta`'s ATR: mean of the first `n` true ranges (bar 0 included) at bar `n-1`, then
/// Wilder's `(13·ATR + TR)/14`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Atr {
    n: usize,
    /// Bars seen.
    t: usize,
    /// The sum of the true ranges until bar `n-1`, then the ATR.
    a: f64,
}

impl Atr {
    pub(super) fn new(n: usize) -> Self {
        Self { n, t: 0, a: 0.0 }
    }

    /// Takes the next bar (and its predecessor); returns the ATR (`NaN` before bar `n-1`).
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        let tr = true_range_of(prev, bar);
        let (t, nf) = (self.t, self.n as f64);
        self.t += 1;
        if t + 1 < self.n {
            self.a = if t == 0 { tr } else { self.a + tr };
            f64::NAN
        } else if t + 1 == self.n {
            self.a = (if t == 0 { tr } else { self.a + tr }) / nf;
            self.a
        } else {
            self.a = (self.a * (nf - 1.0) + tr) / nf;
            self.a
        }
    }
}

/// Original Keltner channel: 20-bar means of `(4h - 2l + c)/3` and `(-2h + 4l + c)/3`.
fn keltner(input: &RawInput, n: usize, out: &mut RawFeatures) {
    let (h, l, c) = (input.high, input.low, input.close);
    let up: Vec<f64> = (0..c.len()).map(|t| ((4.0 * h[t]) - (2.0 * l[t]) + c[t]) / 3.0).collect();
    let dn: Vec<f64> = (0..c.len()).map(|t| ((-2.0 * h[t]) + (4.0 * l[t]) + c[t]) / 3.0).collect();
    out.col_mut(Feature::KcHigh).copy_from_slice(&rolling_mean(&up, n));
    out.col_mut(Feature::KcLow).copy_from_slice(&rolling_mean(&dn, n));
}

/// Ulcer index over `n` bars: root mean square of the percent drawdowns from the running
/// `n`-bar maximum close (a partial window for the first `n-1` bars).
fn ulcer_index(c: &[f64], n: usize, out: &mut [f64]) {
    let len = c.len();
    let mut run_max = rolling_max(c, n);
    for t in 0..len.min(n - 1) {
        run_max[t] = c[..=t].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
    let r2: Vec<f64> = (0..len)
        .map(|t| {
            let r = 100.0 * (c[t] - run_max[t]) / run_max[t];
            r * r / n as f64
        })
        .collect();
    let sums = super::window::rolling_sum(&r2, n);
    for (o, s) in out.iter_mut().zip(&sums) {
        *o = s.sqrt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulcer_index_is_zero_on_rising_closes() {
        let c: Vec<f64> = (0..30).map(|i| 1.0 + i as f64).collect();
        let mut out = vec![f64::NAN; 30];
        ulcer_index(&c, 14, &mut out);
        assert!(out[12].is_nan());
        assert!(out[13..].iter().all(|v| *v == 0.0));
    }
}
