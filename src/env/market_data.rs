//! The market as the env sees it: flat, bar-major arrays shared by every env.
//!
//! Everything a step reads for bar t and ticker k sits at `t * n_tickers + k`, so one step
//! of one env reads a few adjacent cache lines. The observation features of all tickers at
//! bar t form one contiguous `f32` row, so materializing an observation is one `memcpy`.

use bevy_ecs::prelude::*;
use std::sync::Arc;

/// Per-bar, per-ticker market arrays; built once, read by every env. The arrays are
/// reference-counted, so every shard of an env holds the same ones (cloning is cheap).
#[derive(Resource, Debug, Clone)]
pub struct MarketData {
    n_bars: usize,
    n_tickers: usize,
    n_features: usize,
    /// [n_bars, n_tickers]
    pub(crate) open: Arc<[f64]>,
    /// [n_bars, n_tickers]
    pub(crate) close: Arc<[f64]>,
    /// atr_14 / close at each bar: the slippage unit. [n_bars, n_tickers]
    pub(crate) atr_frac: Arc<[f64]>,
    /// ret_std_20 at each bar: the impact's volatility. [n_bars, n_tickers]
    pub(crate) ret_std: Arc<[f64]>,
    /// Mean volume of bars t-19..=t (fewer at the start). [n_bars, n_tickers]
    pub(crate) mean_volume: Arc<[f64]>,
    /// Trading-day ordinal of each bar. [n_bars]
    pub(crate) day: Arc<[u32]>,
    /// Observation features. [n_bars, n_tickers * n_features]
    pub(crate) features: Arc<[f32]>,
    /// Bit k of bar t: ticker k's bar t is invented (forward-filled), nothing traded. [n_bars],
    /// or empty when every bar is real.
    pub(crate) invented: Arc<[u64]>,
    /// Each bar's traded volume, [n_bars, n_tickers], or empty when not given.
    pub(crate) volume: Arc<[f64]>,
    /// Each bar's split ratio and dividend per share for the account, `(ratio, dividend)`,
    /// [n_bars, n_tickers], or empty when there is none (`data.adjust`).
    pub(crate) corporate_actions: Arc<[(f64, f64)]>,
    /// Bit k of bar t: ticker k has a split or a dividend at bar t. [n_bars], or empty like
    /// `corporate_actions`.
    pub(crate) corporate_action_bars: Arc<[u64]>,
    /// Splits keep the fractions of shares they leave, whole-share trading or not (a broker
    /// that pays fractional shares rather than cash in lieu, as Alpaca does).
    pub(crate) fractional_splits: bool,
    /// The tickers' symbols in order, or empty when not given (the config's settings that
    /// name tickers, like `short_selling.no_short`, need them).
    pub(crate) tickers: Arc<[String]>,
}

/// A column that does not have `n_bars × n_tickers` entries.
#[derive(Debug, thiserror::Error)]
#[error("market data column `{column}` has {got} values, expected {expected}")]
pub struct MarketDataError {
    pub column: &'static str,
    pub got: usize,
    pub expected: usize,
}

/// The columns [`MarketData::new`] takes, all bar-major `[n_bars, n_tickers]` except `day`
/// (`[n_bars]`) and `features` (`[n_bars, n_tickers * n_features]`).
#[derive(Debug, Clone, Default)]
pub struct MarketColumns {
    pub open: Vec<f64>,
    pub close: Vec<f64>,
    pub atr_frac: Vec<f64>,
    pub ret_std: Vec<f64>,
    pub mean_volume: Vec<f64>,
    pub day: Vec<u32>,
    pub features: Vec<f32>,
}

impl MarketData {
    /// Checks shapes. Non-finite slippage or impact inputs (feature warm-up) count as 0.
    ///
    /// # Errors
    /// [`MarketDataError`] when a column has the wrong length.
    pub fn new(
        n_bars: usize,
        n_tickers: usize,
        n_features: usize,
        mut c: MarketColumns,
    ) -> Result<Self, MarketDataError> {
        let cells = n_bars * n_tickers;
        for (column, got, expected) in [
            ("open", c.open.len(), cells),
            ("close", c.close.len(), cells),
            ("atr_frac", c.atr_frac.len(), cells),
            ("ret_std", c.ret_std.len(), cells),
            ("mean_volume", c.mean_volume.len(), cells),
            ("day", c.day.len(), n_bars),
            ("features", c.features.len(), cells * n_features),
        ] {
            if got != expected {
                return Err(MarketDataError { column, got, expected });
            }
        }
        for v in c.atr_frac.iter_mut().chain(c.ret_std.iter_mut()) {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        for v in c.mean_volume.iter_mut() {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        Ok(Self {
            n_bars,
            n_tickers,
            n_features,
            open: c.open.into(),
            close: c.close.into(),
            atr_frac: c.atr_frac.into(),
            ret_std: c.ret_std.into(),
            mean_volume: c.mean_volume.into(),
            day: c.day.into(),
            features: c.features.into(),
            invented: Arc::from([]),
            volume: Arc::from([]),
            corporate_actions: Arc::from([]),
            corporate_action_bars: Arc::from([]),
            fractional_splits: false,
            tickers: Arc::from([]),
        })
    }

    /// A random-walk market for benchmarks and tests, with the statistics of the NumPy
    /// baseline (`shared/bench/numpy_env.py`): Student-t(4) hourly returns of 0.4%, 7 bars a
    /// day, ATR ≈ 0.6% of price, 20-bar return std ≈ 0.4%, mean volume 1e5..1e6.
    pub fn random_walk(n_bars: usize, n_tickers: usize, n_features: usize, seed: u64) -> Self {
        use rand::{Rng, SeedableRng};
        use statrs::distribution::{ContinuousCDF, StudentsT};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let t4 = StudentsT::new(0.0, 1.0, 4.0).expect("valid Student-t");
        let cells = n_bars * n_tickers;
        let mut c = MarketColumns { day: (0..n_bars as u32).map(|t| t / 7).collect(), ..Default::default() };
        let mut price = vec![100.0; n_tickers];
        for _ in 0..n_bars {
            for p in price.iter_mut() {
                let u: f64 = rng.random_range(1e-9..1.0 - 1e-9);
                let r = t4.inverse_cdf(u) * 0.004;
                let open = *p * (1.0 + rng.random_range(-0.0005..0.0005));
                *p = open * r.exp();
                c.open.push(open);
                c.close.push(*p);
                c.atr_frac.push((0.006 + rng.random_range(-0.002f64..0.002)).abs());
                c.ret_std.push((0.004 + rng.random_range(-0.001f64..0.001)).abs());
                c.mean_volume.push(rng.random_range(1e5..1e6));
            }
        }
        c.features = (0..cells * n_features).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        // Each bar's volume around its mean (drawn after everything else, so that the
        // columns above stay what they were).
        let volume = c.mean_volume.iter().map(|m| m * rng.random_range(0.5..1.5)).collect();
        Self::new(n_bars, n_tickers, n_features, c).and_then(|m| m.with_volume(volume)).expect("shapes built above")
    }

    /// Marks invented (forward-filled) bars: bit k of `mask[t]` for ticker k at bar t.
    ///
    /// # Errors
    /// [`MarketDataError`] when `mask` does not have `n_bars` entries.
    pub fn with_invented_bars(mut self, mask: Vec<u64>) -> Result<Self, MarketDataError> {
        if mask.len() != self.n_bars {
            return Err(MarketDataError { column: "invented", got: mask.len(), expected: self.n_bars });
        }
        self.invented = if mask.iter().any(|&m| m != 0) { mask.into() } else { Arc::from([]) };
        Ok(self)
    }

    /// Adds each bar's traded volume (bar-major `[n_bars, n_tickers]`), which the
    /// participation cap (`environment.max_participation`) reads at the fill bar.
    ///
    /// # Errors
    /// [`MarketDataError`] when `volume` does not have `n_bars × n_tickers` entries.
    pub fn with_volume(mut self, volume: Vec<f64>) -> Result<Self, MarketDataError> {
        let cells = self.n_bars * self.n_tickers;
        if volume.len() != cells {
            return Err(MarketDataError { column: "volume", got: volume.len(), expected: cells });
        }
        self.volume = volume.into_iter().map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 }).collect();
        Ok(self)
    }

    /// Adds the splits and dividends the account receives on their ex-date bars
    /// (bar-major `[n_bars, n_tickers]` of `(ratio, dividend per share after the split)`,
    /// `(1, 0)` for none); read by the corporate-actions plugin.
    ///
    /// # Errors
    /// [`MarketDataError`] when `actions` does not have `n_bars × n_tickers` entries.
    pub fn with_corporate_actions(mut self, actions: Vec<(f64, f64)>) -> Result<Self, MarketDataError> {
        let cells = self.n_bars * self.n_tickers;
        if actions.len() != cells {
            return Err(MarketDataError { column: "corporate_actions", got: actions.len(), expected: cells });
        }
        let none = |&(r, d): &(f64, f64)| r == 1.0 && d == 0.0;
        if actions.iter().all(none) {
            self.corporate_actions = Arc::from([]);
            self.corporate_action_bars = Arc::from([]);
            return Ok(self);
        }
        let n = self.n_tickers.max(1);
        self.corporate_action_bars = actions
            .chunks(n)
            .map(|row| row.iter().enumerate().filter(|(_, a)| !none(a)).fold(0u64, |m, (k, _)| m | 1u64 << (k % 64)))
            .collect();
        self.corporate_actions = actions.into();
        Ok(self)
    }

    /// Names the tickers (the config's symbols, in order).
    ///
    /// # Errors
    /// [`MarketDataError`] when there are not `n_tickers` names.
    pub fn with_tickers(mut self, tickers: &[String]) -> Result<Self, MarketDataError> {
        if tickers.len() != self.n_tickers {
            return Err(MarketDataError { column: "tickers", got: tickers.len(), expected: self.n_tickers });
        }
        self.tickers = tickers.into();
        Ok(self)
    }

    /// The tickers' symbols in order; empty when the market was not given them.
    pub fn tickers(&self) -> &[String] {
        &self.tickers
    }

    /// Tickers with a split or a dividend at `bar`, as a bit mask (0 when none).
    #[inline]
    pub fn corporate_action_tickers(&self, bar: usize) -> u64 {
        self.corporate_action_bars.get(bar).copied().unwrap_or(0)
    }

    /// Whether some bar has a split or a dividend for the account.
    pub fn has_corporate_actions(&self) -> bool {
        !self.corporate_actions.is_empty()
    }

    /// Splits keep the fractions of shares they leave, whatever `fractional_shares` says
    /// (a broker that pays fractional shares rather than cash in lieu).
    pub fn with_fractional_splits(mut self) -> Self {
        self.fractional_splits = true;
        self
    }

    /// Whether splits keep the fractions of shares they leave ([`MarketData::with_fractional_splits`]).
    pub fn fractional_splits(&self) -> bool {
        self.fractional_splits
    }

    /// Ticker `k`'s split ratio and dividend per share at `bar`; `(1, 0)` when none.
    #[inline]
    pub fn corporate_action(&self, bar: usize, k: usize) -> (f64, f64) {
        self.corporate_actions.get(self.at(bar) + k).copied().unwrap_or((1.0, 0.0))
    }

    /// Whether the market has a volume column ([`MarketData::with_volume`]).
    pub fn has_volume(&self) -> bool {
        !self.volume.is_empty()
    }

    /// Ticker `k`'s volume at `bar`: `None` when the market has no volume column (built
    /// without [`MarketData::with_volume`]).
    #[inline]
    pub fn volume(&self, bar: usize, k: usize) -> Option<f64> {
        self.volume.get(self.at(bar) + k).copied()
    }

    /// Whether some bar is invented.
    pub fn has_invented_bars(&self) -> bool {
        !self.invented.is_empty()
    }

    /// Tickers whose bar `bar` is invented, as a bit mask (0 when every bar is real).
    #[inline]
    pub fn invented(&self, bar: usize) -> u64 {
        self.invented.get(bar).copied().unwrap_or(0)
    }

    pub fn n_bars(&self) -> usize {
        self.n_bars
    }

    pub fn n_tickers(&self) -> usize {
        self.n_tickers
    }

    /// Observation features per ticker.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    #[inline]
    pub(crate) fn at(&self, bar: usize) -> usize {
        bar * self.n_tickers
    }

    /// Opens of every ticker at `bar`.
    #[inline]
    pub fn open_row(&self, bar: usize) -> &[f64] {
        &self.open[self.at(bar)..self.at(bar) + self.n_tickers]
    }

    /// Closes of every ticker at `bar`.
    #[inline]
    pub fn close_row(&self, bar: usize) -> &[f64] {
        &self.close[self.at(bar)..self.at(bar) + self.n_tickers]
    }

    /// atr_14 / close of every ticker at `bar` (the slippage unit; 0 during warm-up).
    #[inline]
    pub fn atr_frac_row(&self, bar: usize) -> &[f64] {
        &self.atr_frac[self.at(bar)..self.at(bar) + self.n_tickers]
    }

    /// ret_std_20 of every ticker at `bar` (the impact's volatility; 0 during warm-up).
    #[inline]
    pub fn ret_std_row(&self, bar: usize) -> &[f64] {
        &self.ret_std[self.at(bar)..self.at(bar) + self.n_tickers]
    }

    /// Mean volume of bars `bar`−19..=`bar` of every ticker (the impact's volume).
    #[inline]
    pub fn mean_volume_row(&self, bar: usize) -> &[f64] {
        &self.mean_volume[self.at(bar)..self.at(bar) + self.n_tickers]
    }

    /// Trading day of `bar`.
    #[inline]
    pub fn day(&self, bar: usize) -> u32 {
        self.day[bar]
    }

    /// Observation features of all tickers at `bar`: `[n_tickers * n_features]`.
    #[inline]
    pub fn feature_row(&self, bar: usize) -> &[f32] {
        let w = self.n_tickers * self.n_features;
        &self.features[bar * w..(bar + 1) * w]
    }

    /// The whole feature table `[n_bars, n_tickers * n_features]`, for learners that gather
    /// observations themselves (index layout).
    pub fn feature_table(&self) -> &[f32] {
        &self.features
    }
}

/// How many envs ahead a hot loop over envs at their own random bars asks for the market
/// rows it will read ([`prefetch_ahead`]): far enough for a row to arrive from memory while
/// a few envs are worked on, near enough that it is still cached when its turn comes.
pub(crate) const PREFETCH_AHEAD: usize = 4;

/// In a loop over envs whose bars are `bars` (in loop order), at the `n`-th: asks for
/// `row(bar)` of the env [`PREFETCH_AHEAD`] places later, if there is one.
#[inline]
pub(crate) fn prefetch_ahead<'a, T: 'a>(bars: &[u32], n: usize, row: impl FnOnce(usize) -> &'a [T]) {
    if let Some(&bar) = bars.get(n + PREFETCH_AHEAD) {
        prefetch_lines(row(bar as usize));
    }
}

/// Asks the CPU to bring `data` into the cache (a hint: no effect on results).
#[inline]
pub(crate) fn prefetch_lines<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = std::mem::size_of_val(data);
        if bytes == 0 {
            return;
        }
        // Every 64-byte line that holds a byte of `data`, the last one included.
        let (start, last) = (data.as_ptr() as usize, data.as_ptr() as usize + bytes - 1);
        for line in (start & !63..=last).step_by(64) {
            // SAFETY: a prefetch is a hint: it reads nothing the program sees and never
            // faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
