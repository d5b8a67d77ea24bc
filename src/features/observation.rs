//! Observation features: what the agent sees, derived from the 55 raw features.
//!
//! Three steps, each causal (the value at bar `t` reads bars `0..=t` only):
//!
//! 1. **Scale-free transform** ([`scale_free`]): the raw values are made comparable across
//!    tickers, price levels and eras.
//!
//!    | raw features | observation value |
//!    | --- | --- |
//!    | price levels: `sma_*`, `ema_*`, `bb_high`, `bb_low`, `kc_*`, `vwap`, `pivot_*`, `high_52w`, `low_52w` | `x / c - 1` (distance from the close) |
//!    | price differences: `macd`, `macd_signal`, `macd_diff`, `atr_14`, `true_range` | `x / c` (fraction of the close) |
//!    | `obv` | `(obv_t - obv_{t-20}) / sum20(v)`: net signed share of the last 20 bars' volume, in [-1, 1] |
//!    | `vpt` | `(vpt_t - vpt_{t-20}) / SMA20(v)`: the last 20 returns weighted by relative volume |
//!    | `force_index` | `force_index / (c · SMA20(v))` |
//!    | `eom` | `eom · SMA20(v) / (1e8 · c²)` (undoes its price² / volume units) |
//!    | everything else (oscillators, percents, ratios, return statistics, candle shapes) | unchanged: already scale-free |
//!
//!    `SMA20(v)` and `sum20(v)` cover bars `t-19..=t`; a zero volume sum gives `NaN`.
//! 2. **Standardization** ([`FeatureScaler`]): `(x - mean) / std` per feature, with mean and
//!    population std fitted on the finite values of the TRAINING rows only (a `[start, end)`
//!    bar range the caller gives, or several tickers' ranges), so nothing from the
//!    validation or test periods leaks into the inputs. A feature with no finite training
//!    value gets mean 0, and one with zero (or no) spread gets std 1. The scaler serializes
//!    (serde) so that a saved model reapplies the very same statistics to new data.
//! 3. **Clip and fill**: standardized values are clipped to `±clip` (default 5, i.e. five
//!    training standard deviations, which tames heavy-tailed quantities such as
//!    `volume_ratio` and `eom` without hiding ordinary moves), then undefined values (`NaN`:
//!    warm-up, division by zero) become 0, the training mean. Stored as `f32`, row-major.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::raw::{Feature, N_FEATURES, RawFeatures};

/// Window of the volume normalizations (`SMA20(v)`, `sum20(v)`, 20-bar OBV/VPT changes).
const VOLUME_WINDOW: usize = 20;

/// The raw features after the scale-free transform (step 1 of the module docs).
///
/// Column-major `[55][n_bars]` `f64`, same columns as [`RawFeatures`]; `NaN` where undefined.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleFreeFeatures {
    n_bars: usize,
    data: Vec<f64>, // [N_FEATURES, n_bars]
}

impl ScaleFreeFeatures {
    /// Number of bars.
    pub fn n_bars(&self) -> usize {
        self.n_bars
    }

    /// One feature's values over all bars.
    pub fn column(&self, feature: Feature) -> &[f64] {
        &self.data[feature.index() * self.n_bars..(feature.index() + 1) * self.n_bars]
    }

    /// Row `bar` of every feature, in table order.
    ///
    /// # Panics
    ///
    /// If `bar >= n_bars`.
    pub fn row(&self, bar: usize) -> [f64; N_FEATURES] {
        assert!(bar < self.n_bars, "bar {bar} out of range (n_bars = {})", self.n_bars);
        std::array::from_fn(|i| self.data[i * self.n_bars + bar])
    }
}

/// The features the agent sees: row-major `[n_bars][n_features]` `f32`, standardized,
/// clipped, no `NaN`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationFeatures {
    /// Number of bars (rows).
    pub n_bars: usize,
    /// Number of features per bar (55).
    pub n_features: usize,
    /// Row-major values, `[n_bars][n_features]`.
    pub data: Vec<f32>,
}

impl ObservationFeatures {
    /// The observation of one bar.
    ///
    /// # Panics
    ///
    /// If `bar >= n_bars`.
    pub fn row(&self, bar: usize) -> &[f32] {
        &self.data[bar * self.n_features..(bar + 1) * self.n_features]
    }
}

/// Per-feature standardization statistics fitted on a training split (step 2 and 3 of the
/// module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaler {
    /// Training mean of each scale-free feature (table order, 55 values).
    pub mean: Vec<f64>,
    /// Training population std of each feature (1 where it would be 0 or undefined).
    pub std: Vec<f64>,
    /// Standardized values are clipped to `[-clip, clip]` (default 5).
    pub clip: f64,
    /// Timestamps of the first and last training bars the statistics were fitted on
    /// (inclusive): what lets a backtest of the model on other data say that it replays
    /// bars the model was trained on. `None` for a scaler fitted on rows alone, or saved
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_on: Option<(i64, i64)>,
}

impl FeatureScaler {
    /// Default clip, in training standard deviations.
    pub const DEFAULT_CLIP: f64 = 5.0;

    /// Fits mean and std on rows `train` (clamped to the table) of one ticker.
    pub fn fit(features: &ScaleFreeFeatures, train: Range<usize>) -> Self {
        Self::fit_many([(features, train)])
    }

    /// Fits mean and std on the training rows of several tickers pooled together.
    pub fn fit_many<'a>(splits: impl IntoIterator<Item = (&'a ScaleFreeFeatures, Range<usize>)>) -> Self {
        let splits: Vec<(&ScaleFreeFeatures, Range<usize>)> = splits
            .into_iter()
            .map(|(f, r)| {
                let end = r.end.min(f.n_bars);
                (f, r.start.min(end)..end)
            })
            .collect();
        let mut mean = vec![0.0; N_FEATURES];
        let mut std = vec![1.0; N_FEATURES];
        for feature in Feature::ALL {
            let values = || {
                splits
                    .iter()
                    .flat_map(move |(f, r)| f.column(feature)[r.clone()].iter().copied())
                    .filter(|v| v.is_finite())
            };
            let (sum, count) = values().fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
            if count == 0 {
                continue;
            }
            let m = sum / count as f64;
            let var = values().map(|v| (v - m) * (v - m)).sum::<f64>() / count as f64;
            let i = feature.index();
            mean[i] = m;
            if var.is_finite() && var > 0.0 {
                std[i] = var.sqrt();
            }
        }
        Self { mean, std, clip: Self::DEFAULT_CLIP, fitted_on: None }
    }

    /// Whether `other` standardizes every feature as this one does (whatever bars each
    /// records having been fitted on).
    pub fn standardizes_like(&self, other: &Self) -> bool {
        self.mean == other.mean && self.std == other.std && self.clip == other.clip
    }

    /// Standardizes, clips and fills: the observation features of every bar.
    ///
    /// # Panics
    ///
    /// If `mean` or `std` hold fewer than 55 values (a hand-edited or foreign scaler).
    pub fn transform(&self, features: &ScaleFreeFeatures) -> ObservationFeatures {
        let n_bars = features.n_bars;
        let mut data = vec![0.0f32; n_bars * N_FEATURES];
        for feature in Feature::ALL {
            let i = feature.index();
            for (t, &v) in features.column(feature).iter().enumerate() {
                data[t * N_FEATURES + i] = self.standardize(i, v);
            }
        }
        ObservationFeatures { n_bars, n_features: N_FEATURES, data }
    }

    /// [`FeatureScaler::transform`] of one bar's scale-free values (table order): what a
    /// live feed turns its newest bar into.
    ///
    /// # Panics
    ///
    /// As [`FeatureScaler::transform`].
    pub fn transform_row(&self, values: &[f64; N_FEATURES]) -> [f32; N_FEATURES] {
        std::array::from_fn(|i| self.standardize(i, values[i]))
    }

    /// Feature `i`'s value `v` standardized, clipped, `NaN` → 0.
    #[inline]
    fn standardize(&self, i: usize, v: f64) -> f32 {
        let z = (v - self.mean[i]) / self.std[i];
        if z.is_finite() { z.clamp(-self.clip, self.clip) as f32 } else { 0.0 }
    }
}

/// Step 1: the scale-free transform of the raw features (see the module docs' table).
///
/// # Panics
///
/// If `close` or `volume` do not have `raw.n_bars()` bars.
pub fn scale_free(raw: &RawFeatures, close: &[f64], volume: &[f64]) -> ScaleFreeFeatures {
    let n = raw.n_bars();
    assert!(close.len() == n && volume.len() == n, "close and volume must have {n} bars");
    let w = VOLUME_WINDOW;
    // Trailing volume sums over bars t-19..=t, each evaluated directly (no running error).
    let vol_sum: Vec<f64> =
        (0..n).map(|t| if t + 1 >= w { volume[t + 1 - w..=t].iter().sum() } else { f64::NAN }).collect();
    let ratio = |a: f64, b: f64| if b == 0.0 { f64::NAN } else { a / b };
    let change = |x: &[f64], t: usize| if t >= w { x[t] - x[t - w] } else { f64::NAN };

    let mut data = Vec::with_capacity(N_FEATURES * n);
    for feature in Feature::ALL {
        use Feature::*;
        let x = raw.column(feature);
        let col: Vec<f64> = match feature {
            Sma10 | Sma20 | Sma50 | Ema10 | Ema20 | BbHigh | BbLow | KcHigh | KcLow | Vwap | PivotR1 | PivotR2
            | PivotS1 | PivotS2 | High52w | Low52w => (0..n).map(|t| ratio(x[t], close[t]) - 1.0).collect(),
            Macd | MacdSignal | MacdDiff | Atr14 | TrueRange => (0..n).map(|t| ratio(x[t], close[t])).collect(),
            Obv => (0..n).map(|t| ratio(change(x, t), vol_sum[t])).collect(),
            Vpt => (0..n).map(|t| ratio(change(x, t), vol_sum[t] / w as f64)).collect(),
            ForceIndex => (0..n).map(|t| ratio(x[t], close[t] * (vol_sum[t] / w as f64))).collect(),
            Eom => (0..n).map(|t| ratio(x[t] * (vol_sum[t] / w as f64), 1e8 * close[t] * close[t])).collect(),
            _ => x.to_vec(),
        };
        data.extend_from_slice(&col);
    }
    ScaleFreeFeatures { n_bars: n, data }
}

/// The observation features of one ticker with statistics fitted on its rows `train`
/// (`[start, end)`): [`scale_free`], [`FeatureScaler::fit`], [`FeatureScaler::transform`].
/// Use those three directly to keep the scaler (to save it with a model) or to pool the
/// training rows of several tickers.
///
/// # Panics
///
/// If `close` or `volume` do not have `raw.n_bars()` bars.
pub fn observation_features(
    raw: &RawFeatures,
    close: &[f64],
    volume: &[f64],
    train: Range<usize>,
) -> ObservationFeatures {
    let features = scale_free(raw, close, volume);
    FeatureScaler::fit(&features, train).transform(&features)
}

#[cfg(test)]
mod tests {
    use super::super::raw::{RawInput, compute_raw};
    use super::*;

    /// High, low, close, volume and day of a smooth test series.
    type Series = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<u32>);

    fn series(n: usize) -> Series {
        let c: Vec<f64> = (0..n).map(|i| 100.0 + 10.0 * ((i as f64) * 0.1).sin() + i as f64 * 0.05).collect();
        let h: Vec<f64> = c.iter().map(|v| v + 1.0).collect();
        let l: Vec<f64> = c.iter().map(|v| v - 1.0).collect();
        let v: Vec<f64> = (0..n).map(|i| 1000.0 + (i % 7) as f64 * 100.0).collect();
        (h, l, c, v, (0..n as u32).collect())
    }

    #[test]
    fn observations_are_finite_clipped_and_standardized_on_train() {
        let n = 400;
        let (h, l, c, v, day) = series(n);
        let input = RawInput { open: &c, high: &h, low: &l, close: &c, volume: &v, day: &day };
        let raw = compute_raw(&input);
        let sf = scale_free(&raw, &c, &v);
        let scaler = FeatureScaler::fit(&sf, 0..300);
        let obs = scaler.transform(&sf);
        assert_eq!((obs.n_bars, obs.n_features, obs.data.len()), (n, 55, n * 55));
        assert!(obs.data.iter().all(|x| x.is_finite() && x.abs() <= 5.0));
        // On the training rows, sma_20's standardized values have mean ≈ 0.
        let i = Feature::Sma20.index();
        let m: f64 = (19..300).map(|t| obs.row(t)[i] as f64).sum::<f64>() / 281.0;
        assert!(m.abs() < 1e-3, "{m}");
        // Undefined warm-up values become 0.
        assert_eq!(obs.row(0)[Feature::Hurst100.index()], 0.0);
    }

    #[test]
    fn scaler_round_trips_through_ron() {
        let n = 200;
        let (h, l, c, v, day) = series(n);
        let input = RawInput { open: &c, high: &h, low: &l, close: &c, volume: &v, day: &day };
        let sf = scale_free(&compute_raw(&input), &c, &v);
        let scaler = FeatureScaler::fit(&sf, 0..150);
        let text = ron::to_string(&scaler).unwrap();
        let back: FeatureScaler = ron::from_str(&text).unwrap();
        assert_eq!(back, scaler);
        assert_eq!(back.transform(&sf), scaler.transform(&sf));
    }

    #[test]
    fn price_levels_become_distances_from_close() {
        let n = 60;
        let (h, l, c, v, day) = series(n);
        let input = RawInput { open: &c, high: &h, low: &l, close: &c, volume: &v, day: &day };
        let raw = compute_raw(&input);
        let sf = scale_free(&raw, &c, &v);
        let t = 30;
        let want = raw.get(t, Feature::Sma10) / c[t] - 1.0;
        assert_eq!(sf.column(Feature::Sma10)[t], want);
        let want = raw.get(t, Feature::Atr14) / c[t];
        assert_eq!(sf.column(Feature::Atr14)[t], want);
    }
}
