//! Benchmarks the full 55-feature table for 10 tickers × 17,640 hourly bars (about 10
//! years of 7 bars a day), computed in parallel across tickers: the cost of rebuilding
//! every ticker's features at start-up.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ploutos::features::{RawInput, compute_table, observation_features};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

const TICKERS: usize = 10;
const BARS: usize = 17_640;
const BARS_PER_DAY: usize = 7;

/// One ticker's random-walk OHLCV bars.
struct Bars {
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    day: Vec<u32>,
}

fn random_walk(seed: u64) -> Bars {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = Bars {
        open: vec![],
        high: vec![],
        low: vec![],
        close: vec![],
        volume: vec![],
        day: vec![],
    };
    let mut price = 50.0 + 100.0 * rng.random::<f64>();
    for t in 0..BARS {
        let o: f64 = price * (1.0 + rng.random_range(-0.002..0.002));
        let c: f64 = o * (1.0 + rng.random_range(-0.01..0.01));
        b.high.push(o.max(c) * (1.0 + rng.random_range(0.0..0.004)));
        b.low.push(o.min(c) * (1.0 - rng.random_range(0.0..0.004)));
        b.open.push(o);
        b.close.push(c);
        b.volume.push(rng.random_range(1e4..1e6f64).round());
        b.day.push((t / BARS_PER_DAY) as u32);
        price = c;
    }
    b
}

fn table(c: &mut Criterion) {
    let bars: Vec<Bars> = (0..TICKERS as u64).map(random_walk).collect();
    let inputs: Vec<RawInput> = bars
        .iter()
        .map(|b| RawInput {
            open: &b.open,
            high: &b.high,
            low: &b.low,
            close: &b.close,
            volume: &b.volume,
            day: &b.day,
        })
        .collect();

    let mut group = c.benchmark_group("features/table");
    group.throughput(Throughput::Elements((TICKERS * BARS) as u64));
    group.sample_size(30);
    group.bench_function(BenchmarkId::new("raw", format!("{TICKERS}x{BARS}")), |b| {
        b.iter(|| compute_table(black_box(&inputs)))
    });
    let raw = compute_table(&inputs);
    group.bench_function(
        BenchmarkId::new("observation", format!("{TICKERS}x{BARS}")),
        |b| {
            b.iter(|| {
                raw.iter()
                    .zip(&bars)
                    .map(|(r, b)| {
                        observation_features(black_box(r), &b.close, &b.volume, 0..BARS * 7 / 10)
                    })
                    .collect::<Vec<_>>()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, table);
criterion_main!(benches);
