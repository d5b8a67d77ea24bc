//! Trend features: simple and exponential moving averages, MACD and Wilder's ADX.
//!
//! `ta` 0.11.0 semantics: EMAs are seeded with the first close (no SMA seed), the MACD
//! signal is seeded with the first defined MACD (bar 25), and the ADX uses Wilder sums whose
//! first sum covers bars 1..=14, with the first ADX at bar 27.

use super::carry::Carry;
use super::ema::{Ewm, alpha_from_span};
use super::window::rolling_mean;
use super::{Bar, Feature, RawFeatures, RawInput};

/// Writes `sma_*`, `ema_*`, `macd*` and `adx_14`; the EMAs, MACD and ADX resume from
/// `carry`.
pub(super) fn compute(input: &RawInput, carry: &Carry, out: &mut RawFeatures) {
    let c = input.close;
    out.col_mut(Feature::Sma10).copy_from_slice(&rolling_mean(c, 10));
    out.col_mut(Feature::Sma20).copy_from_slice(&rolling_mean(c, 20));
    out.col_mut(Feature::Sma50).copy_from_slice(&rolling_mean(c, 50));
    for (feature, ema) in [(Feature::Ema10, &carry.ema10), (Feature::Ema20, &carry.ema20)] {
        let mut ema = ema.clone();
        for (o, &v) in out.col_mut(feature).iter_mut().zip(c) {
            *o = ema.push(v);
        }
    }
    let mut macd = carry.macd.clone();
    let [m, s, d] = out.cols_mut([Feature::Macd, Feature::MacdSignal, Feature::MacdDiff]);
    for (t, &v) in c.iter().enumerate() {
        [m[t], s[t], d[t]] = macd.push(v);
    }
    let mut adx = carry.adx.clone();
    for ((prev, bar), o) in input.bars_with_prev(carry.prev).zip(out.col_mut(Feature::Adx14)) {
        *o = adx.push(prev.as_ref(), &bar);
    }
}

/// MACD(12, 26, 9): the fast-minus-slow EMA, its 9-span EMA seeded with the first defined
/// MACD, and their difference.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Macd {
    fast: Ewm,
    slow: Ewm,
    signal: Ewm,
}

impl Macd {
    pub(super) fn new() -> Self {
        Self {
            fast: Ewm::new(alpha_from_span(12.0), 12),
            slow: Ewm::new(alpha_from_span(26.0), 26),
            signal: Ewm::new(alpha_from_span(9.0), 9),
        }
    }

    /// Takes the next close; returns the line, the signal and their difference.
    #[inline]
    pub(super) fn push(&mut self, close: f64) -> [f64; 3] {
        let line = self.fast.push(close) - self.slow.push(close);
        let signal = self.signal.push(line);
        [line, signal, line - signal]
    }
}

/// Wilder's ADX over `n` bars, as `ta` computes it.
///
/// For `t >= 1`: `TR = max(h, c1) - min(l, c1)`, `+DM`/`-DM` from the high/low changes. The
/// Wilder sum of bars `1..=n` is the first (at bar `n`), then `S_t = S_{t-1} - S_{t-1}/n +
/// x_t`. `DX` is defined from bar `n`; the ADX is the mean of the first `n` DX values (bar
/// `2n - 1`) and then Wilder-smoothed. A zero true-range sum gives `DI = 0` and a zero
/// `DI` sum gives `DX = 0`, as in `ta`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Adx {
    n: usize,
    /// Bars seen.
    t: usize,
    s_tr: f64,
    s_pdm: f64,
    s_ndm: f64,
    /// Sum of the DX values of bars `n..t` until the first ADX, then the ADX.
    adx: f64,
}

impl Adx {
    pub(super) fn new(n: usize) -> Self {
        Self { n, t: 0, s_tr: 0.0, s_pdm: 0.0, s_ndm: 0.0, adx: 0.0 }
    }

    /// Takes the next bar (and its predecessor); returns the ADX (`NaN` before bar `2n-1`).
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        let (n, t) = (self.n, self.t);
        self.t += 1;
        let Some(p) = prev else { return f64::NAN };
        let nf = n as f64;
        let tr = bar.high.max(p.close) - bar.low.min(p.close);
        let up = bar.high - p.high;
        let dn = p.low - bar.low;
        let pdm = if up > dn && up > 0.0 { up } else { 0.0 };
        let ndm = if dn > up && dn > 0.0 { dn } else { 0.0 };
        if t <= n {
            self.s_tr += tr;
            self.s_pdm += pdm;
            self.s_ndm += ndm;
        } else {
            self.s_tr = self.s_tr - self.s_tr / nf + tr;
            self.s_pdm = self.s_pdm - self.s_pdm / nf + pdm;
            self.s_ndm = self.s_ndm - self.s_ndm / nf + ndm;
        }
        if t < n {
            return f64::NAN;
        }
        let (s_tr, s_pdm, s_ndm) = (self.s_tr, self.s_pdm, self.s_ndm);
        let (pdi, ndi) = if s_tr != 0.0 { (100.0 * (s_pdm / s_tr), 100.0 * (s_ndm / s_tr)) } else { (0.0, 0.0) };
        let dx = if pdi + ndi != 0.0 { 100.0 * ((pdi - ndi) / (pdi + ndi)).abs() } else { 0.0 };
        let first = 2 * n - 1;
        if t < first {
            self.adx = if t == n { dx } else { self.adx + dx };
            f64::NAN
        } else if t == first {
            self.adx = (if t == n { dx } else { self.adx + dx }) / nf;
            self.adx
        } else {
            self.adx = (self.adx * (nf - 1.0) + dx) / nf;
            self.adx
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adx_of_a_steady_uptrend_is_100() {
        let n = 60;
        let c: Vec<f64> = (0..n).map(|i| 100.0 + i as f64).collect();
        let h: Vec<f64> = c.iter().map(|v| v + 0.5).collect();
        let l: Vec<f64> = c.iter().map(|v| v - 0.5).collect();
        let day: Vec<u32> = (0..n as u32).collect();
        let input = RawInput { open: &c, high: &h, low: &l, close: &c, volume: &c, day: &day };
        let mut adx = Adx::new(14);
        let out: Vec<f64> = input.bars_with_prev(None).map(|(p, b)| adx.push(p.as_ref(), &b)).collect();
        assert!(out[26].is_nan());
        assert!((out[27] - 100.0).abs() < 1e-9 && (out[59] - 100.0).abs() < 1e-9);
    }
}
