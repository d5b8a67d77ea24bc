//! Throughput measurement of the bare env, shared by `ploutos bench` and the criterion
//! benches: env-steps per second with observation buffers filled and random actions, the
//! same protocol as `shared/bench/numpy_env.py` (16 pre-drawn action batches, 3 timed
//! runs, median).

use crate::config::{EnvironmentConfig, ObservationLayout};
use crate::env::{EpisodeBounds, MarketData};
use crate::vec_env::{EnvError, EnvOptions, TradingEnv};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Instant;

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct EnvBench {
    pub system: &'static str,
    pub n_envs: usize,
    pub n_tickers: usize,
    pub layout: &'static str,
    pub obs_dim: usize,
    pub env_steps_per_sec: f64,
    /// Observation bytes written per second.
    pub obs_bytes_per_sec: f64,
}

/// Layout name as printed.
pub fn layout_name(l: ObservationLayout) -> &'static str {
    match l {
        ObservationLayout::Materialized => "materialized",
        ObservationLayout::Index => "index",
    }
}

/// The NumPy baseline's market: 17,640 bars, 55 features per ticker.
pub fn bench_market(n_tickers: usize) -> MarketData {
    MarketData::random_walk(17_640, n_tickers, 55, 0)
}

/// [`bench_market`] with events for the account (`bench --corporate-actions`): ticker k
/// pays a dividend of 0.5% of its close every quarter (441 hourly bars) and splits 2:1 every
/// two years (3,528 bars), each ticker on its own bars.
pub fn bench_market_with_actions(n_tickers: usize) -> MarketData {
    let market = bench_market(n_tickers);
    let n_bars = market.n_bars();
    let mut actions = vec![(1.0, 0.0); n_bars * n_tickers];
    for t in 1..n_bars {
        for k in 0..n_tickers {
            let at = t + 37 * k;
            let ratio = if at % 3_528 == 0 { 2.0 } else { 1.0 };
            let dividend = if at % 441 == 0 { 0.005 * market.close_row(t)[k] } else { 0.0 };
            actions[t * n_tickers + k] = (ratio, dividend);
        }
    }
    market.with_corporate_actions(actions).expect("one event per bar and ticker")
}

/// Switches on every part of the market realism that has a switch (`bench
/// --realism-cost`): short selling and margin with a borrow fee, target positions over
/// five levels from −1 to 1 (random actions pick among them), a participation cap of 10%
/// of each bar's volume, FINRA's PDT equity (the previous close). The corporate actions
/// come with the market ([`bench_market_with_actions`]); the account stays a margin
/// account, since shorts need one.
pub fn all_realism_on(cfg: &mut EnvironmentConfig) {
    cfg.short_selling.enabled = true;
    cfg.target_positions.enabled = true;
    cfg.target_positions.levels = vec![-1.0, -0.5, 0.0, 0.5, 1.0];
    cfg.max_participation = Some(0.1);
    cfg.pdt.equity = crate::config::PdtEquity::PreviousClose;
}

/// Measures env-steps per second of `n_envs` envs for about `seconds`: the median of 3
/// timed runs of [`EnvRun`].
///
/// # Errors
/// [`EnvError`] when the env cannot be built (no envs, a market too short for its bounds).
pub fn measure_env(
    cfg: &EnvironmentConfig,
    market: MarketData,
    n_envs: usize,
    threads: usize,
    seconds: f64,
) -> Result<EnvBench, EnvError> {
    let mut run = EnvRun::new(cfg, market, n_envs, threads)?;
    let rate = median((0..3).map(|_| run.rate_for(seconds / 3.0)).collect());
    Ok(EnvBench {
        system: "ploutos",
        n_envs,
        n_tickers: run.n_tickers,
        layout: layout_name(cfg.observation_layout),
        obs_dim: run.env.obs_dim(),
        env_steps_per_sec: rate,
        obs_bytes_per_sec: rate * (run.env.obs_dim() * 4) as f64,
    })
}

/// A built env stepping random actions (16 pre-drawn batches, cycled), timed in runs of a
/// given length. Two of them alive side by side can be timed in alternation (`bench
/// --realism-cost`), so that both see the same load of a shared machine.
pub struct EnvRun {
    env: TradingEnv,
    actions: Vec<Vec<u8>>,
    n_envs: usize,
    n_tickers: usize,
    steps: usize,
}

impl EnvRun {
    /// Builds `n_envs` envs over episodes with random starts, resets them (seed 0) and
    /// steps 3 warm-up batches.
    ///
    /// # Errors
    /// [`EnvError`] when the env cannot be built (no envs, a market too short for its
    /// bounds).
    pub fn new(cfg: &EnvironmentConfig, market: MarketData, n_envs: usize, threads: usize) -> Result<Self, EnvError> {
        let n_tickers = market.n_tickers();
        let bounds = EpisodeBounds { first: 100, last: (market.n_bars() - 1) as u32, random_start: true };
        let mut env = TradingEnv::new(cfg, market, EnvOptions { threads, ..EnvOptions::training(n_envs, bounds) })?;
        env.reset(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n_actions = env.n_actions() as u8;
        let actions: Vec<Vec<u8>> =
            (0..16).map(|_| (0..n_envs * n_tickers).map(|_| rng.random_range(0..n_actions)).collect()).collect();
        let mut run = Self { env, actions, n_envs, n_tickers, steps: 0 };
        for _ in 0..3 {
            run.step();
        }
        Ok(run)
    }

    fn step(&mut self) {
        let _ = self.env.step(&self.actions[self.steps & 15]);
        self.steps += 1;
    }

    /// Env-steps per second over a run of about `seconds` (whole batches).
    pub fn rate_for(&mut self, seconds: f64) -> f64 {
        let (mut batches, t0) = (0usize, Instant::now());
        while t0.elapsed().as_secs_f64() < seconds {
            self.step();
            batches += 1;
        }
        (batches * self.n_envs) as f64 / t0.elapsed().as_secs_f64()
    }
}

/// Write bandwidth of this machine in bytes per second: the median of 3 fills of a
/// 256 MiB buffer split over `threads` threads (0 = all cores). The ceiling for bytes that
/// are written without being read first.
pub fn measure_write_bandwidth(threads: usize) -> f64 {
    use rayon::prelude::*;
    let mut buf = vec![0f32; 64 << 20];
    median_rate(threads, buf.len() * 4, |v| buf.par_chunks_mut(1 << 16).for_each(|c| c.fill(v)))
}

/// Copy bandwidth in bytes written per second: the median of 3 copies of 128 MiB into
/// another 128 MiB buffer over `threads` threads. The ceiling for materialized
/// observations: each written byte is first read from the feature table (a random bar
/// per env, so from memory, not cache).
pub fn measure_copy_bandwidth(threads: usize) -> f64 {
    use rayon::prelude::*;
    let src = vec![1f32; 32 << 20];
    let mut dst = vec![0f32; 32 << 20];
    median_rate(threads, dst.len() * 4, |v| {
        dst.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| {
            d.copy_from_slice(s);
            d[0] = v;
        })
    })
}

/// Bytes per second of `run` (which moves `bytes`) on a pool of `threads` threads: one
/// warm-up run, then the median of 3.
fn median_rate(threads: usize, bytes: usize, mut run: impl FnMut(f32) + Send) -> f64 {
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
    let mut timed = |v: f32| {
        let t0 = Instant::now();
        match &pool {
            Ok(pool) => pool.install(|| run(v)),
            Err(_) => run(v),
        }
        bytes as f64 / t0.elapsed().as_secs_f64()
    };
    timed(0.5);
    median(vec![timed(1.0), timed(2.0), timed(3.0)])
}

/// Median of the runs of one measurement (the mean of the middle two for an even count).
pub fn median(rates: Vec<f64>) -> f64 {
    statrs::statistics::Median::median(&statrs::statistics::Data::new(rates))
}
