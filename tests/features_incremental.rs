//! Features bar by bar (`IncrementalFeatures`, what `ploutos trade` runs on a live feed)
//! equal the batch computation over the whole history to the bit, for every bar and all 55
//! raw features, and so do the observation rows; on random walks (daily and intraday
//! calendars, zero-volume bars, flat stretches) and on the real bars of the golden tests.

mod common;

use std::path::PathBuf;

use common::Bars;
use ploutos::features::{
    Bar, FEATURE_NAMES, FeatureError, FeatureScaler, IncrementalFeatures, N_FEATURES, RawInput, compute_raw, scale_free,
};
use proptest::prelude::*;

/// Streams `bars` and checks every bar's raw and observation row against the batch.
fn check_streaming_equals_batch(bars: &Bars) {
    let input = bars.input();
    let raw = compute_raw(&input);
    let sf = scale_free(&raw, &bars.close, &bars.volume);
    let scaler = FeatureScaler::fit(&sf, 0..bars.close.len() / 2 + 1);
    let batch_obs = scaler.transform(&sf);
    let mut live = IncrementalFeatures::new();
    for t in 0..input.len() {
        live.push(input.bar(t)).expect("days never decrease");
        assert_eq!(live.n_bars(), t + 1);
        let got = live.last_raw().expect("a bar was pushed");
        let want = raw.row(t);
        for i in 0..N_FEATURES {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "bar {t}, {}: {} vs {}", FEATURE_NAMES[i], got[i], want[i]);
        }
        let obs = live.last_observation(&scaler).expect("a bar was pushed");
        let want = batch_obs.row(t);
        for i in 0..N_FEATURES {
            assert_eq!(obs[i].to_bits(), want[i].to_bits(), "observation, bar {t}, {}", FEATURE_NAMES[i]);
        }
    }
}

/// Bars with flat stretches (equal closes, h = l, zero volume): the ties and zero
/// divisions where a different evaluation order would show.
fn with_flat_stretches(mut bars: Bars, every: usize) -> Bars {
    for t in 1..bars.close.len() {
        if (t / every) % 3 == 1 {
            let c = bars.close[t - 1];
            (bars.open[t], bars.high[t], bars.low[t], bars.close[t], bars.volume[t]) = (c, c, c, c, 0.0);
        }
    }
    bars
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn streaming_equals_batch_on_random_walks(
        n in 1usize..700,
        bars_per_day in 1u32..8,
        seed in any::<u64>(),
        flat in proptest::option::of(3usize..40),
    ) {
        let bars = Bars::random_walk(n, bars_per_day, seed);
        let bars = match flat {
            Some(every) => with_flat_stretches(bars, every),
            None => bars,
        };
        check_streaming_equals_batch(&bars);
    }
}

fn read_fixture(name: &str) -> Bars {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/features").join(name);
    let mut reader = csv::Reader::from_path(path).expect("fixture exists");
    let mut bars = Bars::default();
    for row in reader.records() {
        let row = row.expect("row");
        let num = |i: usize| row[i].parse::<f64>().expect("number");
        bars.open.push(num(1));
        bars.high.push(num(2));
        bars.low.push(num(3));
        bars.close.push(num(4));
        bars.volume.push(num(5));
        bars.day.push(row[6].parse().expect("day"));
    }
    bars
}

#[test]
fn streaming_equals_batch_on_real_daily_and_hourly_bars() {
    check_streaming_equals_batch(&read_fixture("daily_bars.csv"));
    check_streaming_equals_batch(&read_fixture("hourly_bars.csv"));
}

#[test]
fn a_long_history_then_live_bars() {
    // Ten years of hourly bars as the history, then bars one at a time: the 52-week levels
    // span 1,764 bars here, far beyond the tail, and still agree.
    let bars = Bars::random_walk(18_000, 7, 42);
    let raw = compute_raw(&bars.input());
    let history = 17_000;
    let head = RawInput::new(
        &bars.open[..history],
        &bars.high[..history],
        &bars.low[..history],
        &bars.close[..history],
        &bars.volume[..history],
        &bars.day[..history],
    )
    .expect("valid");
    let mut live = IncrementalFeatures::new();
    live.extend(&head).expect("valid history");
    for t in history..bars.close.len() {
        live.push(bars.input().bar(t)).expect("days never decrease");
        let got = live.last_raw().expect("bars");
        let want = raw.row(t);
        for i in 0..N_FEATURES {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "bar {t}, {}", FEATURE_NAMES[i]);
        }
    }
}

#[test]
fn a_bar_from_an_earlier_day_is_refused_and_not_kept() {
    let mut live = IncrementalFeatures::new();
    let bar = |day| Bar { open: 10.0, high: 11.0, low: 9.0, close: 10.5, volume: 100.0, day };
    live.push(bar(3)).expect("first bar");
    assert_eq!(live.push(bar(2)), Err(FeatureError::DayDecreasing { bar: 1 }));
    assert_eq!(live.n_bars(), 1);
    assert!(live.last_raw().is_some());
    assert!(IncrementalFeatures::new().last_raw().is_none());
}
