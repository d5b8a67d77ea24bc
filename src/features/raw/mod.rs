//! The 55 raw technical features of FEATURES.md, computed in `f64` from OHLCV bars.
//!
//! Everything here is a pure function of the bars: no bevy, no tch, no I/O. Each group of
//! indicators lives in its own module (trend, momentum, volatility, volume, levels,
//! statistics, price action) and writes its columns into one column-major [`RawFeatures`]
//! table; [`compute_table`] runs many tickers in parallel, on scoped threads.
//!
//! Conventions (the contract is FEATURES.md; `ta` 0.11.0 is the reference):
//!
//! * An undefined value (warm-up, division by zero) is `NaN`.
//! * Every value at bar `t` depends only on bars `0..=t` (no look-ahead).
//! * Windows count bars; nothing resets at session or day boundaries, except the pivots
//!   and the 52-week levels, which read [`RawInput::day`].

mod carry;
mod ema;
mod levels;
mod momentum;
mod price_action;
mod statistics;
mod trend;
mod volatility;
mod volume;
mod window;

use std::fmt;

pub(crate) use carry::Carry;

/// One ticker's bars, oldest first; every slice has the same length.
#[derive(Debug, Clone, Copy)]
pub struct RawInput<'a> {
    /// Open price of each bar.
    pub open: &'a [f64],
    /// High price of each bar.
    pub high: &'a [f64],
    /// Low price of each bar.
    pub low: &'a [f64],
    /// Close price of each bar.
    pub close: &'a [f64],
    /// Traded volume of each bar (may be 0).
    pub volume: &'a [f64],
    /// Trading-day ordinal of each bar, non-decreasing (for daily bars: 0,1,2,...).
    pub day: &'a [u32],
}

/// One bar, as the indicators that carry state from bar to bar read it (see
/// [`crate::features::IncrementalFeatures`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Traded volume (may be 0).
    pub volume: f64,
    /// Trading-day ordinal (non-decreasing along a series).
    pub day: u32,
}

/// Why a [`RawInput`] cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// The six slices of a [`RawInput`] do not all have the same length.
    #[error("input columns differ in length: {column} has {got} bars, close has {expected}")]
    LengthMismatch {
        /// The offending column.
        column: &'static str,
        /// Its length.
        got: usize,
        /// The length of `close`.
        expected: usize,
    },
    /// `day` decreases somewhere.
    #[error("day ordinals must be non-decreasing, but bar {bar} goes back in time")]
    DayDecreasing {
        /// The first bar whose day is smaller than its predecessor's.
        bar: usize,
    },
}

impl<'a> RawInput<'a> {
    /// Builds an input after checking it (see [`RawInput::validate`]).
    ///
    /// # Errors
    ///
    /// [`FeatureError`] when the slices differ in length or `day` decreases.
    pub fn new(
        open: &'a [f64],
        high: &'a [f64],
        low: &'a [f64],
        close: &'a [f64],
        volume: &'a [f64],
        day: &'a [u32],
    ) -> Result<Self, FeatureError> {
        let input = Self { open, high, low, close, volume, day };
        input.validate()?;
        Ok(input)
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.close.len()
    }

    /// Whether there are no bars.
    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    /// Bar `t`.
    ///
    /// # Panics
    ///
    /// If `t >= len()`.
    #[inline]
    pub fn bar(&self, t: usize) -> Bar {
        Bar {
            open: self.open[t],
            high: self.high[t],
            low: self.low[t],
            close: self.close[t],
            volume: self.volume[t],
            day: self.day[t],
        }
    }

    /// Every bar with the one before it; the first bar's predecessor is `first_prev` (`None`
    /// at the start of a series, the bar before a tail when [`Carry`] resumes one).
    pub(crate) fn bars_with_prev(&self, first_prev: Option<Bar>) -> impl Iterator<Item = (Option<Bar>, Bar)> + '_ {
        (0..self.len()).map(move |t| (if t == 0 { first_prev } else { Some(self.bar(t - 1)) }, self.bar(t)))
    }

    /// Checks that all columns have the same length and that `day` never decreases.
    ///
    /// # Errors
    ///
    /// [`FeatureError`] naming the first problem found.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let expected = self.close.len();
        let columns = [
            ("open", self.open.len()),
            ("high", self.high.len()),
            ("low", self.low.len()),
            ("volume", self.volume.len()),
            ("day", self.day.len()),
        ];
        for (column, got) in columns {
            if got != expected {
                return Err(FeatureError::LengthMismatch { column, got, expected });
            }
        }
        if let Some(bar) = self.day.windows(2).position(|w| w[1] < w[0]) {
            return Err(FeatureError::DayDecreasing { bar: bar + 1 });
        }
        Ok(())
    }
}

/// Number of raw features.
pub const N_FEATURES: usize = 55;

/// The 55 feature names, in table order: trend, momentum, volatility, volume,
/// support/resistance, statistical, price action.
#[rustfmt::skip]
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    // trend
    "sma_10", "sma_20", "sma_50", "ema_10", "ema_20", "macd", "macd_signal", "macd_diff", "adx_14",
    // momentum
    "rsi_7", "rsi_14", "stoch_k", "stoch_d", "roc_10", "roc_20", "williams_r", "tsi",
    "ultimate_osc", "cci_20", "mfi_14",
    // volatility
    "bb_high", "bb_low", "bb_width", "bb_pct", "atr_14", "kc_high", "kc_low", "ulcer_index",
    // volume
    "obv", "cmf", "force_index", "vpt", "eom", "volume_ratio", "vwap",
    // support / resistance
    "pivot_r1", "pivot_r2", "pivot_s1", "pivot_s2", "high_52w", "low_52w",
    // statistical
    "ret_mean_20", "ret_std_20", "ret_skew_20", "ret_kurt_20", "zscore_20", "autocorr_20",
    "hurst_100", "variance_ratio",
    // price action
    "body_size", "upper_shadow", "lower_shadow", "gap", "true_range", "daily_range",
];

/// One of the 55 features; `feature as usize` is its column in [`RawFeatures`] and its
/// index in [`FEATURE_NAMES`].
#[allow(missing_docs, reason = "each variant is the feature named in FEATURE_NAMES")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(usize)]
#[rustfmt::skip]
pub enum Feature {
    Sma10, Sma20, Sma50, Ema10, Ema20, Macd, MacdSignal, MacdDiff, Adx14,
    Rsi7, Rsi14, StochK, StochD, Roc10, Roc20, WilliamsR, Tsi, UltimateOsc, Cci20, Mfi14,
    BbHigh, BbLow, BbWidth, BbPct, Atr14, KcHigh, KcLow, UlcerIndex,
    Obv, Cmf, ForceIndex, Vpt, Eom, VolumeRatio, Vwap,
    PivotR1, PivotR2, PivotS1, PivotS2, High52w, Low52w,
    RetMean20, RetStd20, RetSkew20, RetKurt20, Zscore20, Autocorr20, Hurst100, VarianceRatio,
    BodySize, UpperShadow, LowerShadow, Gap, TrueRange, DailyRange,
}

impl Feature {
    /// All features in table order.
    #[rustfmt::skip]
    pub const ALL: [Feature; N_FEATURES] = {
        use Feature::*;
        [
            Sma10, Sma20, Sma50, Ema10, Ema20, Macd, MacdSignal, MacdDiff, Adx14,
            Rsi7, Rsi14, StochK, StochD, Roc10, Roc20, WilliamsR, Tsi, UltimateOsc, Cci20, Mfi14,
            BbHigh, BbLow, BbWidth, BbPct, Atr14, KcHigh, KcLow, UlcerIndex,
            Obv, Cmf, ForceIndex, Vpt, Eom, VolumeRatio, Vwap,
            PivotR1, PivotR2, PivotS1, PivotS2, High52w, Low52w,
            RetMean20, RetStd20, RetSkew20, RetKurt20, Zscore20, Autocorr20, Hurst100,
            VarianceRatio,
            BodySize, UpperShadow, LowerShadow, Gap, TrueRange, DailyRange,
        ]
    };

    /// The column index.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The feature's name as in FEATURES.md.
    pub const fn name(self) -> &'static str {
        FEATURE_NAMES[self as usize]
    }

    /// Looks a feature up by name.
    pub fn from_name(name: &str) -> Option<Self> {
        FEATURE_NAMES.iter().position(|n| *n == name).map(|i| Self::ALL[i])
    }

    /// The first bar at which the feature is defined on a long enough series (FEATURES.md's
    /// "first bar"); the pivots' depends on the calendar, so this is their value for daily
    /// bars (bar 1).
    pub const fn first_bar(self) -> usize {
        use Feature::*;
        match self {
            Sma10 | Ema10 => 9,
            Sma20 | Ema20 | Cci20 | BbHigh | BbLow | BbWidth | BbPct | KcHigh | KcLow | Cmf | VolumeRatio
            | Zscore20 => 19,
            Sma50 => 49,
            Macd => 25,
            MacdSignal | MacdDiff => 33,
            Adx14 => 27,
            Rsi7 => 6,
            Rsi14 | StochK | WilliamsR | Mfi14 | Atr14 | UlcerIndex | ForceIndex | Vwap => 13,
            StochD => 15,
            Roc10 => 10,
            Roc20 | RetMean20 | RetStd20 | RetSkew20 | RetKurt20 => 20,
            Tsi => 37,
            UltimateOsc => 28,
            Obv | High52w | Low52w | BodySize | UpperShadow | LowerShadow | DailyRange => 0,
            Vpt | Eom | Gap | TrueRange | PivotR1 | PivotR2 | PivotS1 | PivotS2 => 1,
            Autocorr20 => 21,
            Hurst100 | VarianceRatio => 100,
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that names a column of a feature table: a [`Feature`], its index or its name.
pub trait FeatureKey {
    /// The column index, or `None` if there is no such feature.
    fn feature_index(&self) -> Option<usize>;
}

impl FeatureKey for Feature {
    fn feature_index(&self) -> Option<usize> {
        Some(self.index())
    }
}

impl FeatureKey for usize {
    fn feature_index(&self) -> Option<usize> {
        (*self < N_FEATURES).then_some(*self)
    }
}

impl FeatureKey for &str {
    fn feature_index(&self) -> Option<usize> {
        FEATURE_NAMES.iter().position(|n| n == self)
    }
}

/// The 55 raw features of one ticker.
///
/// Column-major `[55][n_bars]`: a column is contiguous, which is how indicators are computed
/// and compared. `NaN` marks an undefined value.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFeatures {
    n_bars: usize,
    data: Vec<f64>, // [N_FEATURES, n_bars]
}

impl RawFeatures {
    /// A table of `n_bars` rows, all undefined.
    fn undefined(n_bars: usize) -> Self {
        Self { n_bars, data: vec![f64::NAN; N_FEATURES * n_bars] }
    }

    /// Number of bars (rows).
    pub fn n_bars(&self) -> usize {
        self.n_bars
    }

    /// The whole table, column-major `[55][n_bars]`.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// One feature's values over all bars, or `None` for an unknown name or index.
    pub fn try_column(&self, key: impl FeatureKey) -> Option<&[f64]> {
        let i = key.feature_index()?;
        self.data.get(i * self.n_bars..(i + 1) * self.n_bars)
    }

    /// One feature's values over all bars.
    ///
    /// # Panics
    ///
    /// If `key` names no feature (use [`RawFeatures::try_column`] for untrusted names).
    pub fn column(&self, key: impl FeatureKey) -> &[f64] {
        match key.feature_index() {
            Some(i) => &self.data[i * self.n_bars..(i + 1) * self.n_bars],
            None => panic!("no such feature (there are {N_FEATURES}; see FEATURE_NAMES)"),
        }
    }

    /// The value of `feature` at `bar` (`NaN` if undefined).
    ///
    /// # Panics
    ///
    /// If `bar >= n_bars` or `feature` names no feature.
    pub fn get(&self, bar: usize, feature: impl FeatureKey) -> f64 {
        assert!(bar < self.n_bars, "bar {bar} out of range (n_bars = {})", self.n_bars);
        self.column(feature)[bar]
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

    /// Mutable access to one column.
    fn col_mut(&mut self, feature: Feature) -> &mut [f64] {
        let n = self.n_bars;
        &mut self.data[feature.index() * n..(feature.index() + 1) * n]
    }

    /// Mutable access to several distinct columns at once.
    ///
    /// # Panics
    ///
    /// If a feature is requested twice (a bug in this module).
    fn cols_mut<const K: usize>(&mut self, features: [Feature; K]) -> [&mut [f64]; K] {
        let n_bars = self.n_bars;
        let mut slots: Vec<Option<&mut [f64]>> =
            if n_bars == 0 { Vec::new() } else { self.data.chunks_mut(n_bars).map(Some).collect() };
        features.map(|f| match slots.get_mut(f.index()) {
            None => <&mut [f64]>::default(), // no bars: every column is empty
            Some(slot) => slot.take().unwrap_or_else(|| panic!("Invariant: column {f} requested twice")),
        })
    }
}

/// Computes the 55 raw features of one ticker.
///
/// Linear in the number of bars (times a window length of at most 100).
///
/// # Panics
///
/// If the input is invalid (see [`RawInput::validate`]); build it with [`RawInput::new`] to
/// get an error instead.
pub fn compute_raw(input: &RawInput) -> RawFeatures {
    compute_from(input, &Carry::start())
}

/// Computes the features of bars that follow the ones `carry` has seen: the indicators that
/// carry state from bar 0 (EMAs, Wilder sums, running sums, the day levels) resume from
/// `carry`; the windowed ones read `input` only, so their values are exact from the bar
/// whose window lies inside `input` (see [`Carry`]). `compute_raw` is this with
/// [`Carry::start`].
///
/// # Panics
///
/// If the input is invalid (see [`compute_raw`]).
pub(crate) fn compute_from(input: &RawInput, carry: &Carry) -> RawFeatures {
    if let Err(e) = input.validate() {
        panic!("invalid RawInput: {e}");
    }
    let mut out = RawFeatures::undefined(input.len());
    trend::compute(input, carry, &mut out);
    momentum::compute(input, carry, &mut out);
    volatility::compute(input, carry, &mut out);
    volume::compute(input, carry, &mut out);
    levels::compute(input, carry, &mut out);
    statistics::compute(input, carry, &mut out);
    price_action::compute(input, &mut out);
    out
}

/// Computes the raw features of many tickers, in parallel across tickers, on threads of
/// its own (scoped, one per core at most): not rayon's global pool, whose threads a
/// process forked after its first use does not have (the Python package under
/// `multiprocessing`'s fork, Gymnasium's `AsyncVectorEnv`), so that a child's first
/// dataset would wait for them forever.
///
/// # Panics
///
/// If any input is invalid (see [`compute_raw`]).
pub fn compute_table(inputs: &[RawInput]) -> Vec<RawFeatures> {
    // One per core, or as many as `RAYON_NUM_THREADS` says (the cap users set for rayon).
    let cap = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cap.unwrap_or(cores).min(inputs.len());
    if threads <= 1 {
        return inputs.iter().map(compute_raw).collect();
    }
    let chunk = inputs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(compute_raw).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_enum_agree() {
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Feature::from_name(f.name()), Some(*f));
        }
        let mut names = FEATURE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), N_FEATURES);
    }

    #[test]
    fn keys_resolve() {
        let f = RawFeatures::undefined(3);
        assert_eq!(f.column("rsi_14").len(), 3);
        assert!(f.try_column("nope").is_none());
        assert!(f.try_column(55usize).is_none());
        assert!(f.get(2, Feature::Obv).is_nan());
    }

    #[test]
    fn empty_and_short_inputs_are_all_nan() {
        for n in [0usize, 1, 2, 5] {
            let x: Vec<f64> = (0..n).map(|i| 10.0 + i as f64).collect();
            let v = vec![100.0; n];
            let day: Vec<u32> = (0..n as u32).collect();
            let input = RawInput { open: &x, high: &x, low: &x, close: &x, volume: &v, day: &day };
            let raw = compute_raw(&input);
            assert_eq!(raw.n_bars(), n);
            for f in Feature::ALL {
                if f.first_bar() >= n {
                    assert!(raw.column(f).iter().all(|v| v.is_nan()), "{f} n={n}");
                }
            }
        }
    }

    #[test]
    fn validation_reports_the_problem() {
        let x = [1.0, 2.0];
        let day = [1u32, 0];
        let e = RawInput::new(&x, &x, &x, &x, &x, &day).unwrap_err();
        assert_eq!(e, FeatureError::DayDecreasing { bar: 1 });
        let e = RawInput::new(&x, &x[..1], &x, &x, &x, &[0, 1]).unwrap_err();
        assert!(matches!(e, FeatureError::LengthMismatch { column: "high", .. }));
    }
}
