//! Exponential moving averages exactly as pandas `ewm(..., adjust=False).mean()` evaluates
//! them, which is what `ta` 0.11.0 uses for EMA, MACD, TSI, force index (span) and RSI
//! (`alpha = 1/n`, Wilder).
//!
//! The recursion is `y_t = ((1-α)·y_{t-1} + α·x_t) / ((1-α) + α)`, seeded with the first
//! non-`NaN` input (no SMA seed); pandas divides by the weight sum, which is not exactly 1 in
//! floating point, and skips the update when `y == x`, so this module does the same to agree
//! with the reference to the last bits. The first `min_periods - 1` outputs after the seed
//! are hidden (`NaN`), as with pandas' `min_periods`.

/// α of an EMA with span `n`, computed the way pandas does (via the center of mass).
pub(crate) fn alpha_from_span(span: f64) -> f64 {
    let com = (span - 1.0) / 2.0;
    1.0 / (1.0 + com)
}

/// α given directly (Wilder's `1/n`), round-tripped through the center of mass as pandas
/// does.
pub(crate) fn alpha_direct(alpha: f64) -> f64 {
    let com = 1.0 / alpha - 1.0;
    1.0 / (1.0 + com)
}

/// pandas `x.ewm(alpha=alpha, min_periods=min_periods, adjust=False).mean()`.
///
/// Leading `NaN`s are skipped and the EMA is seeded with the first defined value (this is
/// how chained EMAs such as the MACD signal are seeded with the first defined MACD). A
/// `NaN` after the seed leaves the average unchanged but still decays its weight (pandas'
/// `ignore_na=False`). Computed by [`Ewm`], one value at a time: the batch and a live
/// feed share one recursion. (The features push values into [`Ewm`]s directly; this batch
/// form remains the reference the tests compare with pandas' whole-series loop.)
#[cfg(test)]
pub(crate) fn ewm(x: &[f64], alpha: f64, min_periods: usize) -> Vec<f64> {
    let mut state = Ewm::new(alpha, min_periods);
    x.iter().map(|&v| state.push(v)).collect()
}

/// The state of [`ewm`] after the values pushed so far: feeding a series value by value
/// gives `ewm` of it bit for bit, so features can follow bars as they arrive (`ploutos
/// trade`) without recomputing the history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ewm {
    old_wt_factor: f64,
    new_wt: f64,
    /// Between observations the weights are always (1-α, α); when they sum to exactly 1.0
    /// (the usual case) pandas' division is the identity and is skipped, which shortens the
    /// dependency chain of the recursion without changing a bit.
    unit_sum: bool,
    min_periods: usize,
    /// The average, once a defined value has seeded it.
    y: Option<f64>,
    /// Defined values seen.
    nobs: usize,
    /// Weight of the average at the next update (decayed by every value, `NaN` or not).
    old_wt: f64,
}

impl Ewm {
    pub(crate) fn new(alpha: f64, min_periods: usize) -> Self {
        let old_wt_factor = 1.0 - alpha;
        Self {
            old_wt_factor,
            new_wt: alpha,
            unit_sum: old_wt_factor + alpha == 1.0,
            min_periods,
            y: None,
            nobs: 0,
            old_wt: 1.0,
        }
    }

    /// Takes the next value and returns the average after it (`NaN` during the warm-up).
    #[inline]
    pub(crate) fn push(&mut self, cur: f64) -> f64 {
        let is_obs = !cur.is_nan();
        let y = match self.y {
            // Not seeded: the first defined value is the seed.
            None if !is_obs => return f64::NAN,
            None => {
                self.nobs = 1;
                cur
            }
            Some(y) => {
                self.nobs += usize::from(is_obs);
                self.old_wt *= self.old_wt_factor;
                if !is_obs {
                    y
                } else {
                    let y = if y == cur {
                        y
                    } else if self.unit_sum && self.old_wt == self.old_wt_factor {
                        self.old_wt * y + self.new_wt * cur
                    } else {
                        (self.old_wt * y + self.new_wt * cur) / (self.old_wt + self.new_wt)
                    };
                    self.old_wt = 1.0;
                    y
                }
            }
        };
        self.y = Some(y);
        if self.nobs >= self.min_periods { y } else { f64::NAN }
    }
}

/// EMA with span `n` and `min_periods = n` (ta's `_ema`, also [`crate::features`]'s
/// `ema_10` rule).
#[cfg(test)]
pub(crate) fn ema_span(x: &[f64], n: usize) -> Vec<f64> {
    ewm(x, alpha_from_span(n as f64), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_with_first_value_and_hides_warm_up() {
        let x = [f64::NAN, 1.0, 2.0, 3.0, 4.0];
        let y = ewm(&x, 0.5, 2);
        assert!(y[0].is_nan() && y[1].is_nan());
        assert!((y[2] - 1.5).abs() < 1e-15);
        assert!((y[3] - 2.25).abs() < 1e-15);
        assert!((y[4] - 3.125).abs() < 1e-15);
    }

    #[test]
    fn alphas_match_textbook_values() {
        assert!((alpha_from_span(10.0) - 2.0 / 11.0).abs() < 1e-16);
        assert!((alpha_direct(1.0 / 14.0) - 1.0 / 14.0).abs() < 1e-16);
    }

    /// The recursion as it was written for whole series (before [`Ewm`]), kept as the
    /// reference the value-by-value state must equal bit for bit.
    fn ewm_batch(x: &[f64], alpha: f64, min_periods: usize) -> Vec<f64> {
        let mut out = vec![f64::NAN; x.len()];
        let Some(seed) = x.iter().position(|v| !v.is_nan()) else {
            return out;
        };
        let (old_wt_factor, new_wt) = (1.0 - alpha, alpha);
        let unit_sum = old_wt_factor + new_wt == 1.0;
        let (mut y, mut nobs, mut old_wt) = (x[seed], 1usize, 1.0f64);
        if nobs >= min_periods {
            out[seed] = y;
        }
        for t in seed + 1..x.len() {
            let cur = x[t];
            let is_obs = !cur.is_nan();
            nobs += usize::from(is_obs);
            old_wt *= old_wt_factor;
            if is_obs {
                if y != cur {
                    y = if unit_sum && old_wt == old_wt_factor {
                        old_wt * y + new_wt * cur
                    } else {
                        (old_wt * y + new_wt * cur) / (old_wt + new_wt)
                    };
                }
                old_wt = 1.0;
            }
            if nobs >= min_periods {
                out[t] = y;
            }
        }
        out
    }

    proptest::proptest! {
        /// Value by value equals the whole-series recursion, bit for bit, `NaN`s (leading
        /// and inside) and repeated values included.
        #[test]
        fn value_by_value_equals_the_series(
            x in proptest::collection::vec(
                proptest::prop_oneof![4 => -1e3..1e3f64, 1 => proptest::strategy::Just(f64::NAN), 1 => proptest::strategy::Just(5.0)],
                0..120,
            ),
            span in 1usize..40,
            min_periods in 0usize..30,
        ) {
            for alpha in [alpha_from_span(span as f64), alpha_direct(1.0 / span as f64)] {
                let got = ewm(&x, alpha, min_periods);
                let want = ewm_batch(&x, alpha, min_periods);
                proptest::prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    proptest::prop_assert_eq!(g.to_bits(), w.to_bits());
                }
            }
        }
    }

    #[test]
    fn constant_series_stays_exact() {
        let x = [7.3; 40];
        assert!(ema_span(&x, 10)[9..].iter().all(|v| *v == 7.3));
    }
}
