//! Momentum features: RSI, stochastic oscillator, rate of change, Williams %R, TSI, the
//! ultimate oscillator, CCI and MFI.
//!
//! `ta` 0.11.0 semantics: the RSI is Wilder smoothing (`α = 1/n`) seeded at bar 0 with a zero
//! change (first value at bar `n-1`, not TA-Lib's SMA seed); the TSI chains two span EMAs,
//! each seeded with its input's first defined value; the MFI compares typical prices
//! computed exactly as `(h + l + c) / 3.0` so that rounding-level ties resolve as in the
//! reference.

use super::carry::Carry;
use super::ema::{Ewm, alpha_direct, alpha_from_span};
use super::window::{div_or_nan, lagged, rolling_centered_sum, rolling_max, rolling_mean, rolling_min, rolling_sum};
use super::{Bar, Feature, RawFeatures, RawInput};

/// Writes the eleven momentum features; the RSIs and the TSI resume from `carry`.
pub(super) fn compute(input: &RawInput, carry: &Carry, out: &mut RawFeatures) {
    let (h, l, c) = (input.high, input.low, input.close);
    for (feature, rsi) in [(Feature::Rsi7, &carry.rsi7), (Feature::Rsi14, &carry.rsi14)] {
        let mut rsi = rsi.clone();
        for ((prev, bar), o) in input.bars_with_prev(carry.prev).zip(out.col_mut(feature)) {
            *o = rsi.push(prev.as_ref(), &bar);
        }
    }

    let hh = rolling_max(h, 14);
    let ll = rolling_min(l, 14);
    let stoch_k: Vec<f64> = (0..c.len()).map(|t| div_or_nan(100.0 * (c[t] - ll[t]), hh[t] - ll[t])).collect();
    out.col_mut(Feature::StochD).copy_from_slice(&rolling_mean(&stoch_k, 3));
    out.col_mut(Feature::StochK).copy_from_slice(&stoch_k);
    for (t, w) in out.col_mut(Feature::WilliamsR).iter_mut().enumerate() {
        *w = div_or_nan(-100.0 * (hh[t] - c[t]), hh[t] - ll[t]);
    }

    for (feature, n) in [(Feature::Roc10, 10), (Feature::Roc20, 20)] {
        for (t, r) in out.col_mut(feature).iter_mut().enumerate() {
            let past = lagged(c, t, n);
            *r = div_or_nan(c[t] - past, past) * 100.0;
        }
    }

    let mut tsi = carry.tsi.clone();
    for ((prev, bar), o) in input.bars_with_prev(carry.prev).zip(out.col_mut(Feature::Tsi)) {
        *o = tsi.push(prev.as_ref(), &bar);
    }
    ultimate_oscillator(input, out.col_mut(Feature::UltimateOsc));
    cci(input, 20, out.col_mut(Feature::Cci20));
    mfi(input, 14, out.col_mut(Feature::Mfi14));
}

/// Typical price `(h + l + c) / 3.0`, evaluated left to right then divided (not multiplied
/// by 1/3), as pandas does.
pub(super) fn typical_price(input: &RawInput) -> Vec<f64> {
    (0..input.len()).map(|t| (input.high[t] + input.low[t] + input.close[t]) / 3.0).collect()
}

/// Wilder RSI with `ta`'s seed: a zero change at bar 0, `ewm(alpha = 1/n, adjust=False)` of
/// gains and losses, shown from bar `n-1`; 100 when the average loss is 0.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rsi {
    gain: Ewm,
    loss: Ewm,
}

impl Rsi {
    pub(super) fn new(n: usize) -> Self {
        let alpha = alpha_direct(1.0 / n as f64);
        Self { gain: Ewm::new(alpha, n), loss: Ewm::new(alpha, n) }
    }

    /// Takes the next bar (and its predecessor); returns the RSI.
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        let d = prev.map_or(0.0, |p| bar.close - p.close);
        let (gain, loss) = if d > 0.0 {
            (d, 0.0)
        } else if d < 0.0 {
            (0.0, -d)
        } else {
            (0.0, 0.0)
        };
        let (g, l) = (self.gain.push(gain), self.loss.push(loss));
        if l.is_nan() || g.is_nan() {
            f64::NAN
        } else if l == 0.0 {
            100.0
        } else {
            100.0 - 100.0 / (1.0 + g / l)
        }
    }
}

/// True strength index (25, 13): `100 · E13(E25(d)) / E13(E25(|d|))`, `d = c_t - c_{t-1}`
/// (undefined at bar 0, so each EMA is seeded with its input's first defined value).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tsi {
    num: [Ewm; 2],
    den: [Ewm; 2],
}

impl Tsi {
    pub(super) fn new() -> Self {
        let pair = || [Ewm::new(alpha_from_span(25.0), 25), Ewm::new(alpha_from_span(13.0), 13)];
        Self { num: pair(), den: pair() }
    }

    /// Takes the next bar (and its predecessor); returns the TSI.
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        let d = prev.map_or(f64::NAN, |p| bar.close - p.close);
        let inner = self.num[0].push(d);
        let num = self.num[1].push(inner);
        let inner = self.den[0].push(d.abs());
        let den = self.den[1].push(inner);
        div_or_nan(num, den) * 100.0
    }
}

/// Ultimate oscillator (7, 14, 28; weights 4, 2, 1) from bar 1's buying pressure and true
/// range (`ta` fills bar 0's previous close with the series mean, so bar 0 is left out and
/// the 28-bar average first appears at bar 28).
fn ultimate_oscillator(input: &RawInput, out: &mut [f64]) {
    let (h, l, c) = (input.high, input.low, input.close);
    let mut bp = vec![f64::NAN; c.len()];
    let mut tr = vec![f64::NAN; c.len()];
    for t in 1..c.len() {
        let low = l[t].min(c[t - 1]);
        bp[t] = c[t] - low;
        tr[t] = h[t].max(c[t - 1]) - low;
    }
    let avg = |n: usize| -> Vec<f64> {
        let (b, r) = (rolling_sum(&bp, n), rolling_sum(&tr, n));
        b.iter().zip(&r).map(|(b, r)| div_or_nan(*b, *r)).collect()
    };
    let (a7, a14, a28) = (avg(7), avg(14), avg(28));
    for t in 0..c.len() {
        out[t] = 100.0 * ((4.0 * a7[t]) + (2.0 * a14[t]) + a28[t]) / 7.0;
    }
}

/// Commodity channel index: `(tp - SMA(tp)) / (0.015 · MD)`, MD the mean absolute
/// deviation around the window mean.
fn cci(input: &RawInput, n: usize, out: &mut [f64]) {
    let tp = typical_price(input);
    let mean = rolling_mean(&tp, n);
    let mad = rolling_centered_sum(&tp, &mean, n, f64::abs);
    for t in 0..tp.len() {
        out[t] = div_or_nan(tp[t] - mean[t], 0.015 * (mad[t] / n as f64));
    }
}

/// Money flow index: signed raw money flows `tp·v·s` (`s` from the exact typical-price
/// comparison, 0 at bar 0), positive and negative sums over `n` bars.
fn mfi(input: &RawInput, n: usize, out: &mut [f64]) {
    let tp = typical_price(input);
    let v = input.volume;
    let mut pos = vec![0.0; tp.len()];
    let mut neg = vec![0.0; tp.len()];
    for t in 1..tp.len() {
        if tp[t] > tp[t - 1] {
            pos[t] = tp[t] * v[t];
        } else if tp[t] < tp[t - 1] {
            neg[t] = tp[t] * v[t];
        }
    }
    let (p, q) = (rolling_sum(&pos, n), rolling_sum(&neg, n));
    for t in 0..tp.len() {
        // P/N = inf gives exactly 100 (N = 0 < P); P = N = 0 gives NaN: both as specified.
        let m = 100.0 - 100.0 / (1.0 + p[t] / q[t]);
        out[t] = if m.is_finite() { m } else { f64::NAN };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsi_is_100_without_losses_and_starts_at_n_minus_1() {
        let c: Vec<f64> = (0..20).map(|i| 10.0 + i as f64).collect();
        let day: Vec<u32> = (0..20).collect();
        let input = RawInput { open: &c, high: &c, low: &c, close: &c, volume: &c, day: &day };
        let mut rsi = Rsi::new(7);
        let r: Vec<f64> = input.bars_with_prev(None).map(|(p, b)| rsi.push(p.as_ref(), &b)).collect();
        assert!(r[5].is_nan());
        assert_eq!(r[6], 100.0);
    }

    #[test]
    fn mfi_edge_cases() {
        let n = 20;
        let up: Vec<f64> = (0..n).map(|i| 10.0 + i as f64).collect();
        let flat = vec![10.0; n];
        let v = vec![5.0; n];
        let day: Vec<u32> = (0..n as u32).collect();
        let mut out = vec![f64::NAN; n];
        let input = RawInput { open: &up, high: &up, low: &up, close: &up, volume: &v, day: &day };
        mfi(&input, 14, &mut out);
        assert_eq!(out[13], 100.0);
        let input = RawInput { open: &flat, high: &flat, low: &flat, close: &flat, volume: &v, day: &day };
        mfi(&input, 14, &mut out);
        assert!(out[13].is_nan());
    }
}
