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
/// `ignore_na=False`).
pub(crate) fn ewm(x: &[f64], alpha: f64, min_periods: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    let Some(seed) = x.iter().position(|v| !v.is_nan()) else {
        return out;
    };
    let old_wt_factor = 1.0 - alpha;
    let new_wt = alpha;
    // Between observations the weights are always (1-α, α); when they sum to exactly 1.0
    // (the usual case) pandas' division is the identity and is skipped, which shortens the
    // dependency chain of the recursion without changing a bit.
    let unit_sum = old_wt_factor + new_wt == 1.0;
    let mut y = x[seed];
    let mut nobs = 1usize;
    let mut old_wt = 1.0f64;
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

/// EMA with span `n` and `min_periods = n` (ta's `_ema`, also [`crate::features`]'s
/// `ema_10` rule).
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

    #[test]
    fn constant_series_stays_exact() {
        let x = [7.3; 40];
        assert!(ema_span(&x, 10)[9..].iter().all(|v| *v == 7.3));
    }
}
