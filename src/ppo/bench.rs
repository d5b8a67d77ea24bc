//! `bench_train`: throughput of whole PPO iterations (rollout + update) on a fixed synthetic
//! set-up, for `ploutos bench --train` and the README's figures.

use super::learner::Learner;
use super::profile::{PhaseTime, Profiler};
use super::{PpoError, device};
use crate::config::{Config, ObservationLayout};
use crate::env::{EpisodeBounds, MarketData};
use crate::vec_env::{EnvOptions, TradingEnv};
use serde::Serialize;
use std::time::Instant;

/// Throughput of whole PPO iterations (rollout + update).
#[derive(Debug, Clone, Serialize)]
pub struct TrainBench {
    /// Env steps per second over the timed iterations, rollout and update together.
    pub timesteps_per_sec: f64,
    /// Trainable parameters of policy + value networks.
    pub params: usize,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `fp32` or `bf16` (`training.precision`).
    pub precision: &'static str,
    pub net_arch: Vec<usize>,
    pub n_envs: usize,
    pub n_steps: usize,
    pub batch_size: usize,
    pub n_epochs: usize,
    /// Timed iterations (after one warm-up).
    pub iterations: usize,
    pub obs_dim: usize,
    /// Seconds spent collecting rollouts and updating, over the timed iterations.
    pub rollout_secs: f64,
    pub update_secs: f64,
}

/// Measures PPO iterations on the SB3 baseline's set-up: `MarketData::random_walk(17_640,
/// 10, 55, 0)`, materialized observations (3·10 + 4 + 550 = 584 floats), `cfg`'s
/// environment and device, the given network and sizes, no `target_kl` stop (every epoch
/// runs). One warm-up iteration is not timed.
///
/// # Errors
/// [`PpoError::Setup`] for sizes that do not fit (batch > rollout), or torch and env errors.
pub fn bench_train(cfg: &Config, shape: &TrainShape, iterations: usize) -> Result<TrainBench, PpoError> {
    let (c, mut env, mut learner) = set_up(cfg, shape)?;
    let TrainShape { net, n_envs, n_steps, batch, epochs } = shape.clone();
    let lr = c.training.learning_rate;
    let (mut rollout_secs, mut update_secs) = (0.0, 0.0);
    for _ in 0..iterations {
        let t = Instant::now();
        learner.collect(&mut env)?;
        rollout_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        learner.update(lr)?;
        update_secs += t.elapsed().as_secs_f64();
    }
    let steps = (iterations * n_steps * n_envs) as f64;
    Ok(TrainBench {
        timesteps_per_sec: steps / (rollout_secs + update_secs).max(1e-9),
        params: learner.model.n_params(),
        device: device::device_name(learner.device),
        precision: device::precision_name(device::resolve_precision(c.training.precision, learner.device)),
        net_arch: net,
        n_envs,
        n_steps,
        batch_size: batch,
        n_epochs: epochs,
        iterations,
        obs_dim: env.obs_dim(),
        rollout_secs,
        update_secs,
    })
}

/// Where the time of [`bench_train`]'s iterations goes: the same set-up and warm-up, then
/// `iterations` profiled iterations (see [`super::profile`]: each phase waits for the
/// device, so these iterations are slower than plain ones), summed per phase.
///
/// # Errors
/// As [`bench_train`].
pub fn profile_train(cfg: &Config, shape: &TrainShape, iterations: usize) -> Result<Vec<PhaseTime>, PpoError> {
    let (c, mut env, mut learner) = set_up(cfg, shape)?;
    learner.profiler = Some(Profiler::new(learner.device));
    for _ in 0..iterations {
        learner.collect(&mut env)?;
        learner.update(c.training.learning_rate)?;
    }
    Ok(learner.profiler.map(|p| p.phases().to_vec()).unwrap_or_default())
}

/// The sizes of a measured training run ([`bench_train`], [`profile_train`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainShape {
    /// Hidden layers.
    pub net: Vec<usize>,
    pub n_envs: usize,
    /// Steps per env per rollout.
    pub n_steps: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Epochs per update.
    pub epochs: usize,
}

/// The bench's config, env and learner, after one untimed warm-up iteration.
fn set_up(cfg: &Config, shape: &TrainShape) -> Result<(Config, TradingEnv, Learner), PpoError> {
    let n_envs = shape.n_envs;
    let mut c = cfg.clone();
    c.training.net_arch = shape.net.clone();
    c.training.n_envs = n_envs;
    c.training.n_steps = shape.n_steps;
    c.training.batch_size = shape.batch;
    c.training.n_epochs = shape.epochs;
    c.training.target_kl = None;
    c.environment.observation_layout = ObservationLayout::Materialized;
    let market = MarketData::random_walk(17_640, 10, 55, 0);
    let bounds = EpisodeBounds { first: 100, last: (market.n_bars() - 1) as u32, random_start: true };
    let opts = EnvOptions {
        threads: c.training.threads,
        action_masks: c.training.action_masking,
        ..EnvOptions::training(n_envs, bounds)
    };
    let mut env = TradingEnv::new(&c.environment, market, opts)?;
    let mut learner = Learner::new(&c, &env)?;
    learner.reset_envs(&mut env, c.training.seed)?;
    learner.collect(&mut env)?;
    learner.update(c.training.learning_rate)?;
    Ok((c, env, learner))
}
