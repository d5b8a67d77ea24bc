//! Hand-computed tests of the nine features without a reference library: pivots (across
//! day boundaries of hourly bars), 52-week levels, `hurst_100`, `variance_ratio` and
//! `volume_ratio` (FEATURES.md, "The other nine").

mod common;

use common::Bars;
use ploutos::features::Feature;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Closes whose log returns follow an AR(1) with coefficient `phi` (0: a random walk).
fn ar1_walk(n: usize, phi: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Vec::with_capacity(n);
    let (mut price, mut r) = (100.0f64, 0.0);
    for _ in 0..n {
        r = phi * r + 0.01 * normal(&mut rng);
        price *= r.exp();
        c.push(price);
    }
    c
}

fn mean_defined(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn pivots_use_the_previous_trading_day_of_hourly_bars() {
    // Three days of 4, 3 and 2 hourly bars; ordinals jump from 1 to 5 (a long weekend).
    let day = vec![0, 0, 0, 0, 1, 1, 1, 5, 5];
    let high = vec![10.0, 12.0, 11.0, 10.5, 20.0, 21.0, 19.0, 30.0, 31.0];
    let low = vec![9.0, 9.5, 8.0, 9.0, 18.0, 17.5, 18.5, 29.0, 28.0];
    let close = vec![9.5, 11.0, 9.0, 10.0, 19.0, 20.0, 18.75, 29.5, 30.0];
    let bars = Bars { open: close.clone(), high, low, close, volume: vec![1.0; 9], day };
    let raw = bars.raw();
    for t in 0..4 {
        for f in [Feature::PivotR1, Feature::PivotR2, Feature::PivotS1, Feature::PivotS2] {
            assert!(raw.get(t, f).is_nan(), "first day has no pivots");
        }
    }
    let check = |t: usize, (h, l, c): (f64, f64, f64)| {
        let p = (h + l + c) / 3.0;
        assert_eq!(raw.get(t, Feature::PivotR1), 2.0 * p - l, "bar {t}");
        assert_eq!(raw.get(t, Feature::PivotS1), 2.0 * p - h, "bar {t}");
        assert_eq!(raw.get(t, Feature::PivotR2), p + (h - l), "bar {t}");
        assert_eq!(raw.get(t, Feature::PivotS2), p - (h - l), "bar {t}");
    };
    // Day 1 uses day 0: H = 12, L = 8, C = 10 (its last bar), whatever bar of day 1.
    for t in 4..7 {
        check(t, (12.0, 8.0, 10.0));
    }
    // Day 5 uses day 1 (the previous trading day, not ordinal 4).
    for t in 7..9 {
        check(t, (21.0, 17.5, 18.75));
    }
    assert_eq!(raw.get(4, Feature::PivotR1), 2.0 * 10.0 - 8.0);
}

#[test]
fn fifty_two_week_levels_cover_252_trading_days() {
    // Daily bars: a spike at bar 10 stays in the window through bar 261.
    let n = 400;
    let mut close: Vec<f64> = (0..n).map(|i| 50.0 + (i as f64 * 0.3).sin()).collect();
    close[10] = 80.0;
    close[20] = 20.0;
    let bars = Bars::from_closes(close, (0..n as u32).collect());
    let raw = bars.raw();
    assert_eq!(raw.get(0, Feature::High52w), bars.high[0]);
    assert_eq!(raw.get(0, Feature::Low52w), bars.low[0]);
    assert_eq!(raw.get(261, Feature::High52w), 80.0 * 1.001);
    assert!(raw.get(262, Feature::High52w) < 60.0);
    assert_eq!(raw.get(271, Feature::Low52w), 20.0 * 0.999);
    assert!(raw.get(272, Feature::Low52w) > 40.0);

    // Hourly bars, 7 a day: the window is 252 days = 1764 bars (whole days), and the
    // current day counts only up to the current bar.
    let n = 7 * 300;
    let day: Vec<u32> = (0..n as u32).map(|i| i / 7).collect();
    let mut close: Vec<f64> = vec![50.0; n];
    close[3] = 90.0; // day 0
    close[7 * 260 + 5] = 70.0; // day 260, bar 5 of the day
    let bars = Bars::from_closes(close, day);
    let raw = bars.raw();
    assert_eq!(raw.get(7 * 251 + 6, Feature::High52w), 90.0 * 1.001); // day 251: day 0 still in
    assert_eq!(raw.get(7 * 252, Feature::High52w), 50.0 * 1.001); // day 252: day 0 out
    assert_eq!(raw.get(7 * 260 + 4, Feature::High52w), 50.0 * 1.001); // spike not yet
    assert_eq!(raw.get(7 * 260 + 5, Feature::High52w), 70.0 * 1.001);
}

#[test]
fn volume_ratio_is_volume_over_its_20_bar_mean() {
    let n = 45;
    let close: Vec<f64> = (0..n).map(|i| 10.0 + i as f64).collect();
    let mut bars = Bars::from_closes(close, (0..n as u32).collect());
    bars.volume = (0..n)
        .map(|i| {
            if i < 20 {
                100.0
            } else if i < 40 {
                0.0
            } else {
                50.0
            }
        })
        .collect();
    bars.volume[19] = 300.0; // window 0..=19: mean (19·100 + 300)/20 = 110
    let raw = bars.raw();
    assert!(raw.get(18, Feature::VolumeRatio).is_nan());
    assert_eq!(raw.get(19, Feature::VolumeRatio), 300.0 / 110.0);
    assert_eq!(raw.get(20, Feature::VolumeRatio), 0.0); // window 1..=20 still has volume
    assert!(raw.get(39, Feature::VolumeRatio).is_nan()); // 20 zero-volume bars: 0/0
    assert_eq!(raw.get(40, Feature::VolumeRatio), 50.0 / 2.5);
}

/// Naive R/S Hurst of one window of 100 log returns, written straight from FEATURES.md.
fn naive_hurst(x: &[f64]) -> f64 {
    let mut pts = Vec::new();
    for size in [10usize, 20, 25, 50, 100] {
        let mut rs = Vec::new();
        for chunk in x.chunks(size) {
            let m = chunk.iter().sum::<f64>() / size as f64;
            let s = (chunk.iter().map(|v| (v - m).powi(2)).sum::<f64>() / size as f64).sqrt();
            if s > 0.0 {
                let mut cum = 0.0;
                let (mut hi, mut lo) = (f64::MIN, f64::MAX);
                for v in chunk {
                    cum += v - m;
                    hi = hi.max(cum);
                    lo = lo.min(cum);
                }
                rs.push((hi - lo) / s);
            }
        }
        if !rs.is_empty() {
            pts.push(((size as f64).ln(), (rs.iter().sum::<f64>() / rs.len() as f64).ln()));
        }
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>()
}

/// Naive Lo–MacKinlay VR(5) of one window of 100 log returns.
fn naive_vr(x: &[f64]) -> f64 {
    let m = x.iter().sum::<f64>() / 100.0;
    let s1 = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 99.0;
    let s5 = x.windows(5).map(|w| (w.iter().sum::<f64>() - 5.0 * m).powi(2)).sum::<f64>() / (5.0 * 96.0);
    s5 / s1
}

#[test]
fn hurst_and_variance_ratio_match_naive_definitions() {
    let n = 400;
    let close = ar1_walk(n, 0.2, 7);
    let raw = Bars::from_closes(close.clone(), (0..n as u32).collect()).raw();
    let log_ret: Vec<f64> = (1..n).map(|t| (close[t] / close[t - 1]).ln()).collect();
    assert!(raw.get(99, Feature::Hurst100).is_nan());
    assert!(raw.get(99, Feature::VarianceRatio).is_nan());
    for t in 100..n {
        let window = &log_ret[t - 100..t]; // returns of bars t-99..=t
        let (h, vr) = (raw.get(t, Feature::Hurst100), raw.get(t, Feature::VarianceRatio));
        assert!((h - naive_hurst(window)).abs() < 1e-9, "hurst at {t}: {h}");
        assert!((vr - naive_vr(window)).abs() < 1e-9, "VR at {t}: {vr}");
    }
}

#[test]
fn hurst_and_variance_ratio_on_random_walks_and_trends() {
    let n = 20_000;
    let day: Vec<u32> = (0..n as u32).collect();
    let walk = Bars::from_closes(ar1_walk(n, 0.0, 42), day.clone()).raw();
    let trend = Bars::from_closes(ar1_walk(n, 0.5, 42), day).raw();
    let (h_walk, vr_walk) =
        (mean_defined(walk.column(Feature::Hurst100)), mean_defined(walk.column(Feature::VarianceRatio)));
    let (h_trend, vr_trend) =
        (mean_defined(trend.column(Feature::Hurst100)), mean_defined(trend.column(Feature::VarianceRatio)));
    // Small-sample R/S is biased up a little (≈ 0.55 for n ≤ 100); VR is ≈ 1 (slightly
    // below in small samples).
    assert!((0.45..0.62).contains(&h_walk), "hurst on a random walk: {h_walk}");
    assert!((0.9..1.05).contains(&vr_walk), "VR on a random walk: {vr_walk}");
    assert!(h_trend > h_walk + 0.1, "hurst on a trend: {h_trend} vs {h_walk}");
    assert!(vr_trend > 1.5, "VR on a trend: {vr_trend}");
}

#[test]
fn constant_closes_leave_hurst_and_vr_undefined() {
    let n = 150;
    let raw = Bars::from_closes(vec![42.0; n], (0..n as u32).collect()).raw();
    assert!(raw.column(Feature::Hurst100).iter().all(|v| v.is_nan()));
    assert!(raw.column(Feature::VarianceRatio).iter().all(|v| v.is_nan()));
}
