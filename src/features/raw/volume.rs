//! Volume features: OBV, Chaikin money flow, force index, volume-price trend, ease of
//! movement, volume ratio and rolling VWAP.
//!
//! `ta` 0.11.0 semantics: OBV adds the volume on an unchanged close (only a lower close
//! subtracts) and bar 0 adds `v_0`; the VPT is a plain cumulative sum from bar 1; the ease of
//! movement is the raw one-bar value, not its 14-bar mean; the VWAP is a rolling 14-bar one
//! with no session anchor. Zero-volume bars are kept as they are: a division by a zero volume
//! (or a zero volume sum) gives `NaN`.

use super::carry::Carry;
use super::ema::{Ewm, alpha_from_span};
use super::momentum::typical_price;
use super::window::{div_or_nan, rolling_mean, rolling_sum};
use super::{Bar, Feature, RawFeatures, RawInput};

/// Writes the seven volume features; OBV, force index and VPT resume from `carry`.
pub(super) fn compute(input: &RawInput, carry: &Carry, out: &mut RawFeatures) {
    let (h, l, c, v) = (input.high, input.low, input.close, input.volume);
    let len = c.len();

    let (mut obv, mut force, mut vpt) = (carry.obv.clone(), carry.force.clone(), carry.vpt.clone());
    let [obv_col, force_col, vpt_col] = out.cols_mut([Feature::Obv, Feature::ForceIndex, Feature::Vpt]);
    for (t, (prev, bar)) in input.bars_with_prev(carry.prev).enumerate() {
        obv_col[t] = obv.push(prev.as_ref(), &bar);
        force_col[t] = force.push(prev.as_ref(), &bar);
        vpt_col[t] = vpt.push(prev.as_ref(), &bar);
    }

    // Chaikin money flow: the money-flow multiplier is 0 on a bar with h = l.
    let mfv: Vec<f64> = (0..len)
        .map(|t| {
            let m = ((c[t] - l[t]) - (h[t] - c[t])) / (h[t] - l[t]);
            (if m.is_nan() { 0.0 } else { m }) * v[t]
        })
        .collect();
    let (num, den) = (rolling_sum(&mfv, 20), rolling_sum(v, 20));
    for (t, o) in out.col_mut(Feature::Cmf).iter_mut().enumerate() {
        *o = div_or_nan(num[t], den[t]);
    }

    for (t, o) in out.col_mut(Feature::Eom).iter_mut().enumerate().skip(1) {
        let e = div_or_nan(((h[t] - h[t - 1]) + (l[t] - l[t - 1])) * (h[t] - l[t]), 2.0 * v[t]);
        *o = e * 100_000_000.0;
    }

    let mean_v = rolling_mean(v, 20);
    for (t, o) in out.col_mut(Feature::VolumeRatio).iter_mut().enumerate() {
        *o = div_or_nan(v[t], mean_v[t]);
    }

    let tp = typical_price(input);
    let tpv: Vec<f64> = tp.iter().zip(v).map(|(p, v)| p * v).collect();
    let (pv, vol) = (rolling_sum(&tpv, 14), rolling_sum(v, 14));
    for (t, o) in out.col_mut(Feature::Vwap).iter_mut().enumerate() {
        *o = div_or_nan(pv[t], vol[t]);
    }
}

/// On-balance volume: a running sum of the volume, subtracted on a lower close only (bar 0
/// adds `v_0`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Obv(f64);

impl Obv {
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        self.0 += if prev.is_some_and(|p| bar.close < p.close) { -bar.volume } else { bar.volume };
        self.0
    }
}

/// Force index: the 13-span EMA of `(c_t - c_{t-1})·v_t`, seeded at bar 1.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Force(Ewm);

impl Force {
    pub(super) fn new() -> Self {
        Self(Ewm::new(alpha_from_span(13.0), 13))
    }

    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        self.0.push(prev.map_or(f64::NAN, |p| (bar.close - p.close) * bar.volume))
    }
}

/// Volume-price trend: the running sum of `(c_t / c_{t-1} - 1)·v_t` from bar 1 (undefined
/// at bar 0).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Vpt(f64);

impl Vpt {
    #[inline]
    pub(super) fn push(&mut self, prev: Option<&Bar>, bar: &Bar) -> f64 {
        match prev {
            None => f64::NAN,
            Some(p) => {
                self.0 += (bar.close / p.close - 1.0) * bar.volume;
                self.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obv_adds_on_unchanged_close() {
        let c = [10.0, 10.0, 9.0, 9.5];
        let v = [1.0, 2.0, 4.0, 8.0];
        let day = [0, 1, 2, 3];
        let input = RawInput { open: &c, high: &c, low: &c, close: &c, volume: &v, day: &day };
        let mut out = RawFeatures::undefined(4);
        compute(&input, &Carry::start(), &mut out);
        assert_eq!(out.column(Feature::Obv), &[1.0, 3.0, -1.0, 7.0]);
        // h = l everywhere: eom is 0 (not NaN) where volume is positive
        assert_eq!(out.get(1, Feature::Eom), 0.0);
        assert!(out.get(0, Feature::Vpt).is_nan());
        assert_eq!(out.get(2, Feature::Vpt), 2.0 * 0.0 + 4.0 * (0.9 - 1.0));
    }
}
