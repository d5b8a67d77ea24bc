//! Trend features: simple and exponential moving averages, MACD and Wilder's ADX.
//!
//! `ta` 0.11.0 semantics: EMAs are seeded with the first close (no SMA seed), the MACD
//! signal is seeded with the first defined MACD (bar 25), and the ADX uses Wilder sums whose
//! first sum covers bars 1..=14, with the first ADX at bar 27.

use super::ema::{alpha_from_span, ema_span, ewm};
use super::window::rolling_mean;
use super::{Feature, RawFeatures, RawInput};

/// Writes `sma_*`, `ema_*`, `macd*` and `adx_14`.
pub(super) fn compute(input: &RawInput, out: &mut RawFeatures) {
    let c = input.close;
    out.col_mut(Feature::Sma10).copy_from_slice(&rolling_mean(c, 10));
    out.col_mut(Feature::Sma20).copy_from_slice(&rolling_mean(c, 20));
    out.col_mut(Feature::Sma50).copy_from_slice(&rolling_mean(c, 50));
    out.col_mut(Feature::Ema10).copy_from_slice(&ema_span(c, 10));
    out.col_mut(Feature::Ema20).copy_from_slice(&ema_span(c, 20));
    macd(c, out);
    adx(input, 14, out.col_mut(Feature::Adx14));
}

/// MACD(12, 26, 9): the fast-minus-slow EMA, its 9-span EMA seeded with the first defined
/// MACD, and their difference.
fn macd(c: &[f64], out: &mut RawFeatures) {
    let fast = ema_span(c, 12);
    let slow = ema_span(c, 26);
    let line: Vec<f64> = fast.iter().zip(&slow).map(|(f, s)| f - s).collect();
    let signal = ewm(&line, alpha_from_span(9.0), 9);
    let [m, s, d] = out.cols_mut([Feature::Macd, Feature::MacdSignal, Feature::MacdDiff]);
    m.copy_from_slice(&line);
    s.copy_from_slice(&signal);
    for ((d, l), s) in d.iter_mut().zip(&line).zip(&signal) {
        *d = l - s;
    }
}

/// Wilder's ADX over `n` bars, as `ta` computes it.
///
/// For `t >= 1`: `TR = max(h, c1) - min(l, c1)`, `+DM`/`-DM` from the high/low changes. The
/// Wilder sum of bars `1..=n` is the first (at bar `n`), then `S_t = S_{t-1} - S_{t-1}/n +
/// x_t`. `DX` is defined from bar `n`; the ADX is the mean of the first `n` DX values (bar
/// `2n - 1`) and then Wilder-smoothed. A zero true-range sum gives `DI = 0` and a zero
/// `DI` sum gives `DX = 0`, as in `ta`.
fn adx(input: &RawInput, n: usize, out: &mut [f64]) {
    let (h, l, c) = (input.high, input.low, input.close);
    let len = c.len();
    if len < 2 * n {
        return;
    }
    let nf = n as f64;
    let (mut s_tr, mut s_pdm, mut s_ndm) = (0.0, 0.0, 0.0);
    let mut dx = vec![0.0; len]; // defined from bar n
    for t in 1..len {
        let tr = h[t].max(c[t - 1]) - l[t].min(c[t - 1]);
        let up = h[t] - h[t - 1];
        let dn = l[t - 1] - l[t];
        let pdm = if up > dn && up > 0.0 { up } else { 0.0 };
        let ndm = if dn > up && dn > 0.0 { dn } else { 0.0 };
        if t <= n {
            s_tr += tr;
            s_pdm += pdm;
            s_ndm += ndm;
        } else {
            s_tr = s_tr - s_tr / nf + tr;
            s_pdm = s_pdm - s_pdm / nf + pdm;
            s_ndm = s_ndm - s_ndm / nf + ndm;
        }
        if t >= n {
            let (pdi, ndi) = if s_tr != 0.0 { (100.0 * (s_pdm / s_tr), 100.0 * (s_ndm / s_tr)) } else { (0.0, 0.0) };
            dx[t] = if pdi + ndi != 0.0 { 100.0 * ((pdi - ndi) / (pdi + ndi)).abs() } else { 0.0 };
        }
    }
    let first = 2 * n - 1;
    let mut adx = dx[n..=first].iter().sum::<f64>() / nf;
    out[first] = adx;
    for t in first + 1..len {
        adx = (adx * (nf - 1.0) + dx[t]) / nf;
        out[t] = adx;
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
        let mut out = vec![f64::NAN; n];
        adx(&input, 14, &mut out);
        assert!(out[26].is_nan());
        assert!((out[27] - 100.0).abs() < 1e-9 && (out[59] - 100.0).abs() < 1e-9);
    }
}
