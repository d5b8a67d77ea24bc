//! Trailing-window helpers shared by the indicators: sums, means, extremes and two-pass
//! moments over the last `w` bars.
//!
//! Each window is evaluated on its own (no running sum that is updated by adding the new bar
//! and subtracting the old one), so no rounding error accumulates along the series and a
//! value never depends on bars outside its window. The loops run "one lag at a time over a
//! tile of bars", which keeps the per-window summation order fixed (oldest bar first) while
//! letting the compiler vectorise across bars and keeping the accumulators in L1: `O(n·w)`
//! work, but cheap.
//!
//! Outputs have the input's length; bars `0..w-1` (incomplete windows) are `NaN`. A `NaN`
//! inside a window makes a sum or moment `NaN`; the extremes are meant for prices, which are
//! never `NaN`.

/// Output bars processed together: the accumulators of one tile (4 KiB) stay in L1 while
/// the lags sweep over them.
const TILE: usize = 512;

/// The shared kernel: for every full window ending at bar `t`, folds `step(acc, x_k,
/// center_t)` over `k = t-w+1..=t` (oldest first) starting from `init`.
///
/// `center` must have `x`'s length; kernels that do not need it ignore the argument (and
/// the optimiser drops the load).
fn rolling_kernel(x: &[f64], center: &[f64], w: usize, init: f64, step: impl Fn(f64, f64, f64) -> f64) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { rolling_kernel_avx2(x, center, w, init, step) };
    }
    rolling_kernel_body(x, center, w, init, step)
}

/// [`rolling_kernel`] compiled for AVX2 (4 lanes instead of SSE2's 2). Only the vector
/// width changes: the same IEEE operations in the same order, so results are bit-identical.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rolling_kernel_avx2(
    x: &[f64],
    center: &[f64],
    w: usize,
    init: f64,
    step: impl Fn(f64, f64, f64) -> f64,
) -> Vec<f64> {
    rolling_kernel_body(x, center, w, init, step)
}

#[inline(always)]
fn rolling_kernel_body(
    x: &[f64],
    center: &[f64],
    w: usize,
    init: f64,
    step: impl Fn(f64, f64, f64) -> f64,
) -> Vec<f64> {
    let n = x.len();
    let mut out = vec![f64::NAN; n];
    if w == 0 || n < w {
        return out;
    }
    debug_assert_eq!(center.len(), n, "Invariant: one center per bar");
    let m = n - (w - 1);
    let dst = &mut out[w - 1..];
    for start in (0..m).step_by(TILE) {
        let end = (start + TILE).min(m);
        let acc = &mut dst[start..end];
        acc.fill(init);
        let c = &center[w - 1 + start..w - 1 + end];
        for lag in 0..w {
            // Output bar w-1+i reads x[i + lag]: lag 0 is the oldest bar of its window.
            let xs = &x[start + lag..end + lag];
            for ((a, &v), &c) in acc.iter_mut().zip(xs).zip(c) {
                *a = step(*a, v, c);
            }
        }
    }
    out
}

/// Sum of `x` over bars `t-w+1..=t`.
pub(crate) fn rolling_sum(x: &[f64], w: usize) -> Vec<f64> {
    rolling_kernel(x, x, w, 0.0, |a, v, _| a + v)
}

/// Mean of `x` over bars `t-w+1..=t` (sum divided by `w`).
pub(crate) fn rolling_mean(x: &[f64], w: usize) -> Vec<f64> {
    let mut out = rolling_sum(x, w);
    let wf = w as f64;
    out.iter_mut().for_each(|v| *v /= wf);
    out
}

/// Largest `x` over bars `t-w+1..=t`.
pub(crate) fn rolling_max(x: &[f64], w: usize) -> Vec<f64> {
    rolling_kernel(x, x, w, f64::NEG_INFINITY, |a, v, _| if v > a { v } else { a })
}

/// Smallest `x` over bars `t-w+1..=t`.
pub(crate) fn rolling_min(x: &[f64], w: usize) -> Vec<f64> {
    rolling_kernel(x, x, w, f64::INFINITY, |a, v, _| if v < a { v } else { a })
}

/// Sum over bars `t-w+1..=t` of `g(x_k - center_t)`, where `center` is a per-bar value
/// (typically the window mean): the second pass of a two-pass moment.
pub(crate) fn rolling_centered_sum(x: &[f64], center: &[f64], w: usize, g: impl Fn(f64) -> f64) -> Vec<f64> {
    rolling_kernel(x, center, w, 0.0, |a, v, c| a + g(v - c))
}

/// Prefix sums `P[k] = p0 + x_0 + … + x_{k-1}` (`P[0] = p0`, summed left to right), so
/// that a window sum is `P[t+1] - P[t+1-w]` in `O(1)`. Only used where no reference digits
/// are at stake (the log-return windows of `hurst_100` and `variance_ratio`, whose prefix is
/// just `ln(c_t / c_0)`, so no large magnitudes build up). `p0` is the prefix of the bars
/// before `x` (0 at a series' start), so that a tail's prefixes are the whole series' to the
/// bit.
pub(crate) fn prefix_sums_from(x: &[f64], p0: f64) -> Vec<f64> {
    let mut p = Vec::with_capacity(x.len() + 1);
    let mut s = p0;
    p.push(s);
    for v in x {
        s += v;
        p.push(s);
    }
    p
}

/// Standard deviation over bars `t-w+1..=t`, two-pass (mean first, then squared deviations
/// from it), with `ddof` delta degrees of freedom (0: population, 1: sample).
pub(crate) fn rolling_std(x: &[f64], mean: &[f64], w: usize, ddof: usize) -> Vec<f64> {
    let denom = w.saturating_sub(ddof) as f64;
    let mut out = rolling_centered_sum(x, mean, w, |d| d * d);
    out.iter_mut().for_each(|v| *v = (*v / denom).sqrt());
    out
}

/// `x_t - x_{t-k}` style lag access: `x[t - k]`, or `NaN` before the series starts.
pub(crate) fn lagged(x: &[f64], t: usize, k: usize) -> f64 {
    if t >= k { x[t - k] } else { f64::NAN }
}

/// `a / b`, or `NaN` when `b` is zero (the contract's "empty on division by zero").
pub(crate) fn div_or_nan(a: f64, b: f64) -> f64 {
    if b == 0.0 { f64::NAN } else { a / b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f64], w: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        (0..x.len()).map(|t| if t + 1 >= w { f(&x[t + 1 - w..=t]) } else { f64::NAN }).collect()
    }

    fn same(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-12, "bar {i}: {x} vs {y}");
        }
    }

    #[test]
    fn rolling_helpers_match_naive_windows() {
        let x: Vec<f64> = (0..50).map(|i| ((i * 37 % 11) as f64).sin() * 3.0 + i as f64).collect();
        for w in [1, 3, 14, 50, 51] {
            same(&rolling_sum(&x, w), &naive(&x, w, |s| s.iter().sum()));
            same(&rolling_max(&x, w), &naive(&x, w, |s| s.iter().cloned().fold(f64::MIN, f64::max)));
            same(&rolling_min(&x, w), &naive(&x, w, |s| s.iter().cloned().fold(f64::MAX, f64::min)));
            let mean = rolling_mean(&x, w);
            let sd = rolling_std(&x, &mean, w, 0);
            same(
                &sd,
                &naive(&x, w, |s| {
                    let m = s.iter().sum::<f64>() / s.len() as f64;
                    (s.iter().map(|v| (v - m).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
                }),
            );
        }
    }

    #[test]
    fn tiles_do_not_change_results() {
        let x: Vec<f64> = (0..3 * TILE + 17).map(|i| ((i * 7919) % 1000) as f64 / 7.0).collect();
        same(&rolling_sum(&x, 20), &naive(&x, 20, |s| s.iter().sum()));
        let p = prefix_sums_from(&x, 0.0);
        assert_eq!(p.len(), x.len() + 1);
        assert!((p[x.len()] - x.iter().sum::<f64>()).abs() < 1e-9);
    }

    #[test]
    fn vector_widths_agree_bitwise() {
        let x: Vec<f64> = (0..2000).map(|i| ((i * 7919) % 1009) as f64 / 13.0 - 30.0).collect();
        let mean = rolling_mean(&x, 20);
        let base = rolling_kernel_body(&x, &mean, 20, 0.0, |a, v, c| a + (v - c) * (v - c));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&rolling_centered_sum(&x, &mean, 20, |d| d * d)), bits(&base));
    }

    #[test]
    fn nan_propagates_and_division_by_zero_is_nan() {
        let x = [1.0, f64::NAN, 3.0, 4.0];
        let s = rolling_sum(&x, 2);
        assert!(s[1].is_nan() && s[2].is_nan());
        assert_eq!(s[3], 7.0);
        assert!(div_or_nan(1.0, 0.0).is_nan());
        assert!(lagged(&x, 0, 1).is_nan());
    }
}
