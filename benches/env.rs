//! Env throughput: `env/step` for 256, 1024 and 4096 envs × 10 tickers, both observation
//! layouts, random actions (the NumPy baseline's protocol; `ploutos bench` runs that
//! baseline beside the same measurement).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ploutos::bench::bench_market;
use ploutos::config::{EnvironmentConfig, ObservationLayout};
use ploutos::env::EpisodeBounds;
use ploutos::{EnvOptions, TradingEnv};
use rand::{Rng, SeedableRng};
use std::hint::black_box;

fn env_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("env/step");
    group.sample_size(20);
    for layout in [ObservationLayout::Index, ObservationLayout::Materialized] {
        for n_envs in [256usize, 1024, 4096] {
            let cfg = EnvironmentConfig { observation_layout: layout, ..Default::default() };
            let market = bench_market(10);
            let bounds = EpisodeBounds { first: 100, last: (market.n_bars() - 1) as u32, random_start: true };
            let mut env = TradingEnv::new(&cfg, market, EnvOptions::training(n_envs, bounds)).expect("bench env");
            env.reset(0);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            let pool: Vec<Vec<u8>> =
                (0..16).map(|_| (0..n_envs * 10).map(|_| rng.random_range(0..3u8)).collect()).collect();
            let mut i = 0usize;
            group.throughput(Throughput::Elements(n_envs as u64));
            group.bench_function(BenchmarkId::new(ploutos::bench::layout_name(layout), n_envs), |b| {
                b.iter(|| {
                    i += 1;
                    black_box(env.step(black_box(&pool[i & 15])).expect("actions fit").rewards[0])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, env_step);
criterion_main!(benches);
