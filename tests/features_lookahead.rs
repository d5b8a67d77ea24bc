//! No look-ahead: perturbing every bar after `t` changes no raw feature and no observation
//! feature at or before `t`, for all 55 features.
//!
//! The observation check fits its standardization on rows `0..=t` (a training range that
//! ends at `t`), as a caller must; a deterministic sweep over many `t` on daily and hourly
//! calendars, plus a proptest over random series and cut points.

mod common;

use common::Bars;
use ploutos::features::{Feature, FeatureScaler, RawFeatures, compute_raw, observation_features, scale_free};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Test-only helpers on the shared bars.
trait Perturb {
    fn perturbed_after(&self, t: usize, seed: u64) -> Self;
}

impl Perturb for Bars {
    /// A copy whose bars after `t` are replaced by unrelated ones (prices, volumes and the
    /// day structure of the future all change).
    fn perturbed_after(&self, t: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut b = self.clone();
        for k in t + 1..b.close.len() {
            let f = rng.random_range(0.5..1.5);
            b.open[k] *= f;
            b.high[k] *= f * 1.01;
            b.low[k] *= f * 0.99;
            b.close[k] *= rng.random_range(0.5..1.5);
            b.volume[k] = if rng.random_range(0..3) == 0 { 0.0 } else { rng.random_range(1.0..1e7) };
            b.day[k] = b.day[k].max(b.day[t]) + u32::from(rng.random_range(0..3) == 0);
        }
        // keep the day ordinals non-decreasing
        for k in t + 1..b.day.len() {
            b.day[k] = b.day[k].max(b.day[k - 1]);
        }
        b
    }
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Checks raw and observation features of both series agree on bars `0..=t`.
fn assert_no_lookahead(a: &Bars, b: &Bars, t: usize) -> Result<(), String> {
    let (ra, rb): (RawFeatures, RawFeatures) = (compute_raw(&a.input()), compute_raw(&b.input()));
    for f in Feature::ALL {
        let (ca, cb) = (ra.column(f), rb.column(f));
        for bar in 0..=t {
            if !same(ca[bar], cb[bar]) {
                return Err(format!("raw {f} at bar {bar} (cut {t}): {} vs {}", ca[bar], cb[bar]));
            }
        }
    }
    let oa = observation_features(&ra, &a.close, &a.volume, 0..t + 1);
    let ob = observation_features(&rb, &b.close, &b.volume, 0..t + 1);
    for bar in 0..=t {
        for (i, (x, y)) in oa.row(bar).iter().zip(ob.row(bar)).enumerate() {
            if x.to_bits() != y.to_bits() {
                return Err(format!("observation {} at bar {bar} (cut {t}): {x} vs {y}", Feature::ALL[i]));
            }
        }
    }
    // A scaler held fixed (fitted elsewhere) gives the same conclusion.
    let scaler = FeatureScaler::fit(&scale_free(&ra, &a.close, &a.volume), 0..a.close.len());
    let (sa, sb) = (
        scaler.transform(&scale_free(&ra, &a.close, &a.volume)),
        scaler.transform(&scale_free(&rb, &b.close, &b.volume)),
    );
    if sa.data[..(t + 1) * sa.n_features] != sb.data[..(t + 1) * sb.n_features] {
        return Err(format!("fixed-scaler observations differ at or before bar {t}"));
    }
    Ok(())
}

#[test]
fn perturbing_the_future_changes_nothing_up_to_t() {
    for (bars_per_day, seed) in [(1u32, 1u64), (7, 2)] {
        let bars = Bars::random_walk(420, bars_per_day, seed);
        for t in [0, 1, 2, 6, 13, 19, 20, 21, 27, 33, 37, 49, 99, 100, 101, 150, 255, 300, 418] {
            let other = bars.perturbed_after(t, seed * 1000 + t as u64);
            assert_no_lookahead(&bars, &other, t).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_lookahead_on_random_series(seed in 0u64..10_000, n in 30usize..260, cut in 0.0f64..1.0, hourly in any::<bool>()) {
        let bars = Bars::random_walk(n, if hourly { 7 } else { 1 }, seed);
        let t = ((n - 1) as f64 * cut) as usize;
        let other = bars.perturbed_after(t, seed + 1);
        prop_assert!(assert_no_lookahead(&bars, &other, t).is_ok(), "{:?}", assert_no_lookahead(&bars, &other, t));
    }
}
