//! Statistical features of returns and closes: rolling moments of simple returns, z-score,
//! lag-1 autocorrelation, the rescaled-range Hurst exponent and the Lo–MacKinlay variance
//! ratio.
//!
//! Every moment is two-pass (window mean first, then powers of the deviations from it), so
//! quiet, high-priced series keep their digits. `ret_std_20` is the sample std (ddof = 1),
//! `zscore_20` uses the population std (ddof = 0, as the Bollinger bands); skewness and
//! kurtosis are the bias-corrected G1/G2 of pandas (`kurt` is excess kurtosis);
//! `autocorr_20` is the Pearson correlation of the last 20 pairs `(r_{t-1}, r_t)`, each side
//! with its own mean.
//!
//! `hurst_100` and `variance_ratio` read the last 100 log returns (first value at bar 100).
//! The R/S statistic of every chunk (start, size) is computed once and shared by the up to
//! `100/size` windows that contain it as an aligned chunk, so the Hurst exponent costs
//! `O(n · (10+20+25+50+100))` instead of `O(n · 100 · 5)`. Their window means come from
//! prefix sums of the log returns (`ln(c_t/c_0)`, small numbers); deviations from those
//! means are still summed two-pass. `zscore_20` is written by `volatility.rs`, next to the
//! Bollinger bands whose mean and std it shares.

use super::carry::Carry;
use super::window::{div_or_nan, prefix_sums_from, rolling_centered_sum, rolling_mean, rolling_sum};
use super::{Feature, RawFeatures, RawInput};

/// Returns window of the rolling return statistics.
const RET_WINDOW: usize = 20;
/// Log returns read by `hurst_100` and `variance_ratio`.
const LONG_WINDOW: usize = 100;
/// Chunk sizes of the R/S analysis (the divisors of 100 from 10 up).
const HURST_CHUNKS: [usize; 5] = [10, 20, 25, 50, 100];
/// Horizon of the variance ratio VR(q).
const VR_Q: usize = 5;

/// Writes seven statistical features; `zscore_20` shares the Bollinger bands' mean and
/// population std and is written with them (`volatility.rs`). The long windows' prefix sums
/// of log returns continue `carry`'s.
pub(super) fn compute(input: &RawInput, carry: &Carry, out: &mut RawFeatures) {
    let c = input.close;
    let len = c.len();
    let ret: Vec<f64> = (0..len).map(|t| if t == 0 { f64::NAN } else { c[t] / c[t - 1] - 1.0 }).collect();
    return_moments(&ret, out);
    autocorr(&ret, out.col_mut(Feature::Autocorr20));

    let log_ret: Vec<f64> = (0..len).map(|t| if t == 0 { f64::NAN } else { (c[t] / c[t - 1]).ln() }).collect();
    // The prefix sum of the log returns through the first bar (0 at the series' start).
    let p0 = if len == 0 { 0.0 } else { carry.log_prefix_through(&input.bar(0)) };
    hurst(&log_ret, p0, out.col_mut(Feature::Hurst100));
    variance_ratio(&log_ret, p0, out.col_mut(Feature::VarianceRatio));
}

/// Mean, sample std, G1 skewness and G2 excess kurtosis of the last 20 simple returns.
fn return_moments(r: &[f64], out: &mut RawFeatures) {
    let w = RET_WINDOW;
    let n = w as f64;
    let len = r.len();
    let mean = rolling_mean(r, w);
    // Second pass: central moments 2, 3, 4 in one sweep over the lags.
    let (mut s2, mut s3, mut s4) = (vec![f64::NAN; len], vec![f64::NAN; len], vec![f64::NAN; len]);
    if len >= w {
        let m = len - (w - 1);
        let (d2, d3, d4) = (&mut s2[w - 1..], &mut s3[w - 1..], &mut s4[w - 1..]);
        let mu = &mean[w - 1..];
        d2.fill(0.0);
        d3.fill(0.0);
        d4.fill(0.0);
        for lag in 0..w {
            let x = &r[lag..lag + m];
            for i in 0..m {
                let d = x[i] - mu[i];
                let sq = d * d;
                d2[i] += sq;
                d3[i] += sq * d;
                d4[i] += sq * sq;
            }
        }
    }
    let [mean_col, std_col, skew_col, kurt_col] =
        out.cols_mut([Feature::RetMean20, Feature::RetStd20, Feature::RetSkew20, Feature::RetKurt20]);
    mean_col.copy_from_slice(&mean);
    let g1 = (n * (n - 1.0)).sqrt() / (n - 2.0);
    let g2 = (n - 1.0) / ((n - 2.0) * (n - 3.0));
    for t in 0..len {
        std_col[t] = (s2[t] / (n - 1.0)).sqrt();
        let m2 = s2[t] / n;
        let (m3, m4) = (s3[t] / n, s4[t] / n);
        if m2 == 0.0 {
            continue; // skew and kurtosis undefined: left NaN
        }
        skew_col[t] = g1 * m3 / m2.powf(1.5);
        kurt_col[t] = g2 * ((n + 1.0) * (m4 / (m2 * m2) - 3.0) + 6.0);
    }
}

/// Pearson correlation of `(r_{k-1}, r_k)` over the last 20 pairs (first at bar 21).
fn autocorr(r: &[f64], out: &mut [f64]) {
    let w = RET_WINDOW;
    let len = r.len();
    if len < w + 2 {
        return;
    }
    let prev: Vec<f64> = (0..len).map(|t| if t == 0 { f64::NAN } else { r[t - 1] }).collect();
    let (ma, mb) = (rolling_mean(&prev, w), rolling_mean(r, w));
    let m = len - (w - 1);
    let (mut sab, mut saa, mut sbb) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    for lag in 0..w {
        let (a, b) = (&prev[lag..lag + m], &r[lag..lag + m]);
        for i in 0..m {
            let da = a[i] - ma[w - 1 + i];
            let db = b[i] - mb[w - 1 + i];
            sab[i] += da * db;
            saa[i] += da * da;
            sbb[i] += db * db;
        }
    }
    for i in 0..m {
        out[w - 1 + i] = if saa[i] == 0.0 || sbb[i] == 0.0 { f64::NAN } else { sab[i] / (saa[i] * sbb[i]).sqrt() };
    }
}

/// R/S statistic of every chunk `r[s..s+size]`: the range of the cumulative deviations
/// from the chunk mean over the population std; `NaN` when the std is 0. Index `s` is the
/// chunk's first return; `prefix` holds the prefix sums of `r`.
fn chunk_rescaled_ranges(r: &[f64], prefix: &[f64], size: usize) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { chunk_rescaled_ranges_avx2(r, prefix, size) };
    }
    chunk_rescaled_ranges_body(r, prefix, size)
}

/// [`chunk_rescaled_ranges`] compiled for AVX2: wider vectors, bit-identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_rescaled_ranges_avx2(r: &[f64], prefix: &[f64], size: usize) -> Vec<f64> {
    chunk_rescaled_ranges_body(r, prefix, size)
}

#[inline(always)]
fn chunk_rescaled_ranges_body(r: &[f64], prefix: &[f64], size: usize) -> Vec<f64> {
    const TILE: usize = 512;
    if r.len() < size {
        return Vec::new();
    }
    let m = r.len() - size + 1;
    let sz = size as f64;
    let mut out = vec![f64::NAN; m];
    let (mut cum, mut hi, mut lo, mut ss, mut mean) = ([0.0; TILE], [0.0; TILE], [0.0; TILE], [0.0; TILE], [0.0; TILE]);
    for start in (0..m).step_by(TILE) {
        let len = (start + TILE).min(m) - start;
        for i in 0..len {
            let s = start + i;
            mean[i] = (prefix[s + size] - prefix[s]) / sz;
            (cum[i], hi[i], lo[i], ss[i]) = (0.0, f64::NEG_INFINITY, f64::INFINITY, 0.0);
        }
        for k in 0..size {
            let xs = &r[start + k..start + k + len];
            for i in 0..len {
                let d = xs[i] - mean[i];
                let c = cum[i] + d;
                cum[i] = c;
                hi[i] = if c > hi[i] { c } else { hi[i] };
                lo[i] = if c < lo[i] { c } else { lo[i] };
                ss[i] += d * d;
            }
        }
        for i in 0..len {
            let sd = (ss[i] / sz).sqrt();
            if sd > 0.0 {
                out[start + i] = (hi[i] - lo[i]) / sd;
            }
        }
    }
    out
}

/// Rescaled-range Hurst exponent of the last 100 log returns: the least-squares slope of
/// `ln(mean R/S)` on `ln(size)` over the chunk sizes that have a chunk with `S > 0`. At least
/// two sizes are needed for a slope; otherwise `NaN`. `p0` is the prefix sum of the log
/// returns through bar 0 of `log_ret` (whose own return is not in it).
fn hurst(log_ret: &[f64], p0: f64, out: &mut [f64]) {
    let len = log_ret.len();
    if len <= LONG_WINDOW {
        return;
    }
    let r = &log_ret[1..]; // r[k] is the return of bar k+1
    let prefix = prefix_sums_from(r, p0);
    let rs: Vec<Vec<f64>> = HURST_CHUNKS.iter().map(|&s| chunk_rescaled_ranges(r, &prefix, s)).collect();
    let ln_size: Vec<f64> = HURST_CHUNKS.iter().map(|&s| (s as f64).ln()).collect();
    for (t, o) in out.iter_mut().enumerate().take(len).skip(LONG_WINDOW) {
        let start = t - LONG_WINDOW; // r index of bar t-99's return
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (ci, &size) in HURST_CHUNKS.iter().enumerate() {
            let (mut sum, mut count) = (0.0, 0usize);
            for j in 0..LONG_WINDOW / size {
                let v = rs[ci][start + j * size];
                if !v.is_nan() {
                    sum += v;
                    count += 1;
                }
            }
            let avg = sum / count as f64;
            if count > 0 && avg > 0.0 {
                let (px, py) = (ln_size[ci], avg.ln());
                n += 1.0;
                sx += px;
                sy += py;
                sxx += px * px;
                sxy += px * py;
            }
        }
        if n >= 2.0 {
            // Slope of the least-squares line through the (ln size, ln R/S) points.
            *o = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        }
    }
}

/// Lo–MacKinlay VR(5) of the last 100 log returns: the variance of the 96 overlapping 5-bar
/// sums around `5·mean`, over 5 times the one-bar variance (both unbiased by their counts
/// as FEATURES.md states). `p0` as for [`hurst`].
fn variance_ratio(x: &[f64], p0: f64, out: &mut [f64]) {
    let w = LONG_WINDOW;
    let n_sums = w - VR_Q + 1; // 96
    if x.len() <= w {
        return;
    }
    // Window means from prefix sums of the returns of bars 1.. (bar 0 has none).
    let prefix = prefix_sums_from(&x[1..], p0);
    let mean: Vec<f64> =
        (0..x.len()).map(|t| if t >= w { (prefix[t] - prefix[t - w]) / w as f64 } else { f64::NAN }).collect();
    let s1 = rolling_centered_sum(x, &mean, w, |d| d * d);
    let y = rolling_sum(x, VR_Q);
    let center: Vec<f64> = mean.iter().map(|m| VR_Q as f64 * m).collect();
    let s5 = rolling_centered_sum(&y, &center, n_sums, |d| d * d);
    for t in 0..x.len() {
        let one_bar = s1[t] / (w - 1) as f64;
        let q_bar = s5[t] / (VR_Q * n_sums) as f64;
        out[t] = div_or_nan(q_bar, one_bar);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescaled_range_of_a_known_chunk() {
        // x = [1, -1, 1, -1]: mean 0, cum = [1, 0, 1, 0], R = 1, S = 1.
        let r = [1.0, -1.0, 1.0, -1.0, 5.0, 5.0, 5.0, 5.0];
        let rs = chunk_rescaled_ranges(&r, &prefix_sums_from(&r, 0.0), 4);
        assert!((rs[0] - 1.0).abs() < 1e-15);
        assert!(rs[4].is_nan()); // constant chunk: S = 0
    }

    #[test]
    fn variance_ratio_of_alternating_returns_is_one_fifth() {
        let x: Vec<f64> = (0..150)
            .map(|i| {
                if i == 0 {
                    f64::NAN
                } else if i % 2 == 0 {
                    0.01
                } else {
                    -0.01
                }
            })
            .collect();
        let mut out = vec![f64::NAN; 150];
        variance_ratio(&x, 0.0, &mut out);
        assert!(out[99].is_nan());
        // 5-bar sums are ±0.01 like the returns: VR = (96/480) / (100/99) = 0.198.
        assert!((out[100] - 0.198).abs() < 1e-12, "{}", out[100]);
    }
}
