//! Benchmarks the full 55-feature table for 10 tickers × 17,640 hourly bars (about 10
//! years of 7 bars a day), computed in parallel across tickers: the cost of rebuilding
//! every ticker's features at start-up.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ploutos::features::{RawInput, compute_table, observation_features};
use std::hint::black_box;

#[path = "../tests/common/mod.rs"]
mod common;
use common::Bars;

const TICKERS: usize = 10;
const BARS: usize = 17_640;
const BARS_PER_DAY: u32 = 7;

fn table(c: &mut Criterion) {
    let bars: Vec<Bars> = (0..TICKERS as u64).map(|seed| Bars::random_walk(BARS, BARS_PER_DAY, seed)).collect();
    let inputs: Vec<RawInput> = bars.iter().map(Bars::input).collect();

    let mut group = c.benchmark_group("features/table");
    group.throughput(Throughput::Elements((TICKERS * BARS) as u64));
    group.sample_size(30);
    group.bench_function(BenchmarkId::new("raw", format!("{TICKERS}x{BARS}")), |b| {
        b.iter(|| compute_table(black_box(&inputs)))
    });
    let raw = compute_table(&inputs);
    group.bench_function(BenchmarkId::new("observation", format!("{TICKERS}x{BARS}")), |b| {
        b.iter(|| {
            raw.iter()
                .zip(&bars)
                .map(|(r, b)| observation_features(black_box(r), &b.close, &b.volume, 0..BARS * 7 / 10))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, table);
criterion_main!(benches);
