//! The PPO loop: rollout, GAE, update, evaluation, checkpoints; and `bench_train`.
//!
//! Read [`Learner::update`] top to bottom as CleanRL's `ppo.py`: every detail is one
//! config field and one visible line (minibatch advantage normalization, clipped
//! surrogate, clipped value loss, entropy bonus, global grad-norm clip, Adam eps 1e-5,
//! `set_lr` annealing, `target_kl` stop).
//!
//! Determinism: torch's generator is used only to initialize the network; action sampling
//! and minibatch shuffles draw from one ChaCha8 stream whose position is checkpointed, and
//! Adam's moments are ours and checkpointed too. The env's state cannot be saved, so after
//! every scheduled checkpoint the training envs restart from a seed derived from (seed,
//! timesteps), in an uninterrupted run exactly as in a resumed one: resuming from a
//! scheduled checkpoint reproduces the uninterrupted run (at equal thread counts).

use super::checkpoint::{self, CheckpointState, ModelSpec};
use super::gae::{self, compute_gae, explained_variance};
use super::loss;
use super::model::{self, ActorCritic, InputBuilder, actions_to_host};
use super::normalize::{RewardScaler, RunningMeanStd};
use super::optimizer::Adam;
use super::{EvalStats, IterationStats, PpoError, RunPaths, TrainHooks, TrainSummary, device};
use crate::config::{BestMetric, Config, LrSchedule, ObservationLayout, Precision, TrainingConfig};
use crate::env::{EnvOptions, EpisodeBounds, MarketData, TradingEnv, observation};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Mixed into the seed of the learner's stream so that it never equals env 0's stream
/// (envs use `ChaCha8Rng::seed_from_u64(seed)` with stream = env index).
const LEARNER_SALT: u64 = 0x5050_4f5f_4c45_4152; // "PPO_LEAR"
/// Mixed into the seed of the evaluation env's resets: every evaluation of a run sees the
/// same episode starts.
const EVAL_SALT: u64 = 0x4556_414c_5f53_4545; // "EVAL_SEE"

/// Seed of the training envs' reset after `timesteps` (the seed itself at the start).
pub fn reset_seed(seed: u64, timesteps: u64) -> u64 {
    seed.wrapping_add(timesteps.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// One rollout, kept on the device except what the host needs for GAE.
#[derive(Debug)]
struct Rollout {
    /// Normalized network inputs. `[n_steps, n_envs, input_dim]`
    x: Tensor,
    /// `[n_steps, n_envs, n_tickers]`, host (sampled there)
    actions: Vec<u8>,
    /// Summed log-probabilities of the actions. `[n_steps, n_envs]`, host
    logp: Vec<f32>,
    /// `[n_steps, n_envs]`, host
    values: Vec<f32>,
    /// Scaled rewards, plus γ·V(final_obs) on truncation. `[n_steps, n_envs]`, host
    rewards: Vec<f32>,
    /// Episode ended at this step. `[n_steps, n_envs]`, host
    dones: Vec<bool>,
}

/// What a rollout saw of the episodes.
#[derive(Debug, Default)]
struct RolloutStats {
    ep_rewards: Vec<f64>,
    ep_returns: Vec<f64>,
    trades: u64,
    equity_mean: f64,
}

/// What an update measured.
#[derive(Debug, Default)]
struct UpdateStats {
    policy_loss: f64,
    value_loss: f64,
    entropy: f64,
    approx_kl: f64,
    clip_fraction: f64,
    grad_norm: f64,
    explained_variance: f64,
    epochs: usize,
    early_stopped: bool,
}

/// Network, optimizer, normalizers, RNG and rollout storage: everything PPO needs besides
/// the envs and the run's bookkeeping.
#[derive(Debug)]
pub(crate) struct Learner {
    cfg: TrainingConfig,
    device: Device,
    spec: ModelSpec,
    model: ActorCritic,
    adam: Adam,
    input: InputBuilder,
    obs_norm: Option<RunningMeanStd>,
    rew_scaler: Option<RewardScaler>,
    rng: ChaCha8Rng,
    n_envs: usize,
    rollout: Rollout,
    /// Normalized inputs of the observations to act on next. `[n_envs, input_dim]`
    x: Tensor,
    /// Buffers reused every step: the step's logits on the host `[n_envs, n_tickers, 3]`
    /// and the uniforms actions are sampled with `[n_envs, n_tickers]`.
    logits_host: Vec<f32>,
    uniforms: Vec<f32>,
}

/// The model shape a config and an env give.
fn model_spec(cfg: &Config, env: &TradingEnv) -> Result<ModelSpec, PpoError> {
    let m = env.market();
    let layout = cfg.environment.observation_layout;
    let expected = observation::obs_dim(layout, m.n_tickers(), m.n_features());
    if env.obs_dim() != expected {
        return Err(PpoError::Setup(format!(
            "env observations are {} wide, but environment.observation_layout = {layout:?} with {} tickers × {} features means {expected}",
            env.obs_dim(),
            m.n_tickers(),
            m.n_features()
        )));
    }
    Ok(ModelSpec {
        obs_dim: env.obs_dim(),
        input_dim: model::input_dim(m.n_tickers(), m.n_features()),
        n_tickers: m.n_tickers(),
        n_features: m.n_features(),
        layout,
        net_arch: cfg.training.net_arch.clone(),
        activation: cfg.training.activation,
    })
}

impl Learner {
    /// Builds everything for `env`; the initial weights and the learner's stream come from
    /// `training.seed`.
    fn new(cfg: &Config, env: &TradingEnv) -> Result<Self, PpoError> {
        let t = &cfg.training;
        let device = device::parse_device(&t.device)?;
        device::set_threads(device, t.threads);
        let spec = model_spec(cfg, env)?;
        let n_envs = env.n_envs();
        if n_envs != t.n_envs {
            return Err(PpoError::Setup(format!("the training env has {n_envs} envs, training.n_envs = {}", t.n_envs)));
        }
        if t.batch_size > t.n_steps * n_envs {
            return Err(PpoError::Setup(format!(
                "training.batch_size = {} exceeds the rollout of n_steps × n_envs = {}",
                t.batch_size,
                t.n_steps * n_envs
            )));
        }
        let mut model = ActorCritic::new(&spec, device, t.seed)?;
        let precision = device::resolve_precision(t.precision, device);
        model.set_precision(precision);
        let adam = Adam::new(&model.vs, t.learning_rate, 1e-5)?;
        let input = InputBuilder::new(&spec, Some(env.market()), device)?;
        let obs_norm = if t.normalize_obs { Some(RunningMeanStd::new(spec.input_dim, device)?) } else { None };
        let rew_scaler = t.normalize_reward.then(|| RewardScaler::new(n_envs, t.gamma));
        let (s, n, d) = (t.n_steps as i64, n_envs as i64, spec.input_dim as i64);
        // With mixed precision the inputs are kept in bf16: the network casts them anyway,
        // and minibatch gathers move half the bytes.
        let x_kind = match precision {
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp32 | Precision::Auto => Kind::Float,
        };
        let rollout = Rollout {
            x: Tensor::f_zeros([s, n, d], (x_kind, device))?,
            actions: vec![0; t.n_steps * n_envs * spec.n_tickers],
            logp: vec![0.0; t.n_steps * n_envs],
            values: vec![0.0; t.n_steps * n_envs],
            rewards: vec![0.0; t.n_steps * n_envs],
            dones: vec![false; t.n_steps * n_envs],
        };
        Ok(Self {
            cfg: t.clone(),
            device,
            x: Tensor::f_zeros([n, d], (Kind::Float, device))?,
            logits_host: vec![0.0; n_envs * spec.n_tickers * 3],
            uniforms: vec![0.0; n_envs * spec.n_tickers],
            spec,
            model,
            adam,
            input,
            obs_norm,
            rew_scaler,
            rng: ChaCha8Rng::seed_from_u64(t.seed ^ LEARNER_SALT),
            n_envs,
            rollout,
        })
    }

    /// Restarts every training env's episode from `seed`.
    fn reset_envs(&mut self, env: &mut TradingEnv, seed: u64) -> Result<(), PpoError> {
        let buffers = env.reset(seed);
        self.x =
            observe(&mut self.obs_norm, self.cfg.obs_clip, &self.input, self.device, &buffers.obs, self.n_envs, true)?;
        if let Some(s) = &mut self.rew_scaler {
            s.restart();
        }
        Ok(())
    }

    /// Runs `n_steps` steps of every env under `no_grad`, filling the rollout.
    fn collect(&mut self, env: &mut TradingEnv) -> Result<RolloutStats, PpoError> {
        tch::no_grad(|| self.collect_inner(env))
    }

    fn collect_inner(&mut self, env: &mut TradingEnv) -> Result<RolloutStats, PpoError> {
        let (n, k) = (self.n_envs, self.spec.n_tickers);
        let clip = self.cfg.obs_clip;
        let mut stats = RolloutStats::default();
        let net = self.model.inference()?;
        for t in 0..self.cfg.n_steps {
            for u in self.uniforms.iter_mut() {
                *u = self.rng.random::<f32>();
            }
            // One transfer per step: logits and values to the host, actions sampled there.
            let (logits, values) = net.logits_values(&self.x)?;
            let out = Tensor::f_cat(&[logits.f_view([n as i64, -1])?, values.f_unsqueeze(1)?], 1)?.f_to(Device::Cpu)?;
            let out = Vec::<f32>::try_from(out.f_contiguous()?.f_view([-1])?)?;
            let width = 3 * k + 1;
            for i in 0..n {
                self.logits_host[i * 3 * k..(i + 1) * 3 * k].copy_from_slice(&out[i * width..i * width + 3 * k]);
                self.rollout.values[t * n + i] = out[i * width + 3 * k];
            }
            let step = t as i64;
            self.rollout.x.f_select(0, step)?.f_copy_(&self.x)?;
            let actions = &mut self.rollout.actions[t * n * k..(t + 1) * n * k];
            model::sample_host(&self.logits_host, &self.uniforms, actions, &mut self.rollout.logp[t * n..(t + 1) * n]);

            let buffers = env.step(actions)?;
            let row = t * n..(t + 1) * n;
            self.rollout.rewards[row.clone()].copy_from_slice(&buffers.rewards);
            let mut any_truncated = false;
            for (i, done) in self.rollout.dones[row.clone()].iter_mut().enumerate() {
                let info = &buffers.infos[i];
                *done = buffers.terminated[i] || buffers.truncated[i];
                any_truncated |= buffers.truncated[i];
                stats.trades += u64::from(info.executed);
                if *done {
                    stats.ep_rewards.push(info.episode_reward);
                    stats.ep_returns.push(info.episode_return);
                }
            }
            if t + 1 == self.cfg.n_steps {
                stats.equity_mean = buffers.infos.iter().map(|i| i.equity).sum::<f64>() / n as f64;
            }
            let next_x = observe(&mut self.obs_norm, clip, &self.input, self.device, &buffers.obs, n, true)?;
            if let Some(scaler) = &mut self.rew_scaler {
                let dones = self.rollout.dones[row.clone()].to_vec();
                scaler.scale(&mut self.rollout.rewards[row.clone()], dones.into_iter());
            }
            if any_truncated {
                // Bootstrap: r += γ·V(final_obs) where the data ran out or the episode
                // reached its length; bankruptcy (termination) is a true end.
                let final_x =
                    observe(&mut self.obs_norm, clip, &self.input, self.device, &buffers.final_obs, n, false)?;
                let v_final = Vec::<f32>::try_from(self.model.value(&final_x)?.f_to(Device::Cpu)?)?;
                gae::bootstrap_truncated(&mut self.rollout.rewards[row], &buffers.truncated, &v_final, self.cfg.gamma);
            }
            self.x = next_x;
        }
        Ok(stats)
    }

    /// GAE on the host, then `n_epochs` of clipped-PPO minibatch updates at `lr`.
    fn update(&mut self, lr: f64) -> Result<UpdateStats, PpoError> {
        let c = self.cfg.clone();
        let (s, n) = (c.n_steps, self.n_envs);
        let total = (s * n) as i64;

        // --- GAE(γ, λ) ---
        let (values, last_values) = tch::no_grad(|| {
            let values = self.rollout.values.clone();
            let last = Vec::<f32>::try_from(self.model.value(&self.x)?.f_to(Device::Cpu)?)?;
            Ok::<_, PpoError>((values, last))
        })?;
        let (adv, returns) =
            compute_gae(&self.rollout.rewards, &values, &self.rollout.dones, &last_values, n, c.gamma, c.gae_lambda);
        let ev = explained_variance(&values, &returns);
        let b_adv = Tensor::f_from_slice(&adv)?.f_to(self.device)?;
        let b_returns = Tensor::f_from_slice(&returns)?.f_to(self.device)?;
        let b_x = self.rollout.x.f_view([total, self.spec.input_dim as i64])?;
        let b_actions = Tensor::f_from_slice(&self.rollout.actions)?
            .f_to_kind(Kind::Int64)?
            .f_view([total, self.spec.n_tickers as i64])?
            .f_to(self.device)?;
        let b_logp = Tensor::f_from_slice(&self.rollout.logp)?.f_to(self.device)?;
        let b_values = Tensor::f_from_slice(&values)?.f_to(self.device)?;

        // --- Adam learning rate (`set_lr`: constant or linearly annealed) ---
        self.adam.set_lr(lr);

        let mut mb_stats: Vec<Tensor> = Vec::new();
        let mut early_stopped = false;
        let mut epochs = 0;
        let mut perm: Vec<i64> = (0..total).collect();
        'epochs: for _ in 0..c.n_epochs {
            epochs += 1;
            // --- shuffled minibatches of batch_size (the last one may be smaller, as SB3) ---
            perm.shuffle(&mut self.rng);
            let order = Tensor::f_from_slice(&perm)?.f_to(self.device)?;
            for start in (0..total).step_by(c.batch_size) {
                let len = (c.batch_size as i64).min(total - start);
                let idx = order.f_narrow(0, start, len)?;
                let mb_x = b_x.f_index_select(0, &idx)?;
                let mb_actions = b_actions.f_index_select(0, &idx)?;
                let mb_old_logp = b_logp.f_index_select(0, &idx)?;
                let mb_old_values = b_values.f_index_select(0, &idx)?;
                let mb_returns = b_returns.f_index_select(0, &idx)?;
                let mut mb_adv = b_adv.f_index_select(0, &idx)?;

                let (new_logp, entropy, new_values) = self.model.evaluate(&mb_x, &mb_actions)?;

                // --- approximate KL and clip fraction (no grad) ---
                let (kl, clipfrac) = tch::no_grad(|| {
                    Ok::<_, tch::TchError>((
                        loss::approx_kl(&new_logp, &mb_old_logp)?,
                        loss::clip_fraction(&new_logp, &mb_old_logp, c.clip_range)?,
                    ))
                })?;

                // --- minibatch advantage normalization ---
                if c.normalize_advantage && len > 1 {
                    let (std, mean) = mb_adv.f_std_mean(true)?;
                    mb_adv = mb_adv.f_sub(&mean)?.f_div(&std.f_add_scalar(1e-8)?)?;
                }

                // --- clipped surrogate, (clipped) value loss, entropy bonus ---
                let pg_loss = loss::policy_loss(&new_logp, &mb_old_logp, &mb_adv, c.clip_range)?;
                let v_loss = loss::value_loss(&new_values, &mb_old_values, &mb_returns, c.clip_range_vf)?;
                let entropy_mean = entropy.f_mean(Kind::Float)?;
                let loss =
                    pg_loss.f_sub(&entropy_mean.f_mul_scalar(c.ent_coef)?)?.f_add(&v_loss.f_mul_scalar(c.vf_coef)?)?;

                // --- target_kl: stop before stepping past 1.5 × target (SB3) ---
                if let Some(target) = c.target_kl
                    && kl.f_double_value(&[])? > 1.5 * target
                {
                    mb_stats.push(stats_row(&pg_loss, &v_loss, &entropy_mean, &kl, &clipfrac, None)?);
                    early_stopped = true;
                    break 'epochs;
                }

                // --- backward, global grad-norm clip, Adam (eps 1e-5) ---
                self.adam.zero_grad();
                loss.f_backward()?;
                let grad_norm = self.adam.clip_grad_norm(c.max_grad_norm)?;
                self.adam.step()?;
                mb_stats.push(stats_row(&pg_loss, &v_loss, &entropy_mean, &kl, &clipfrac, Some(&grad_norm))?);
            }
        }
        // One host sync for all minibatch statistics.
        let means = Vec::<f64>::try_from(
            Tensor::f_stack(&mb_stats, 0)?
                .f_to_kind(Kind::Double)?
                .f_nanmean(&[0i64][..], false, None::<Kind>)?
                .f_to(Device::Cpu)?,
        )?;
        let get = |i: usize| means.get(i).copied().unwrap_or(f64::NAN);
        Ok(UpdateStats {
            policy_loss: get(0),
            value_loss: get(1),
            entropy: get(2),
            approx_kl: get(3),
            clip_fraction: get(4),
            grad_norm: get(5),
            explained_variance: ev,
            epochs,
            early_stopped,
        })
    }

    /// Mean reward, return and Sharpe of each eval env's first episode, acting greedily on
    /// observations normalized with the training statistics (not updated).
    ///
    /// An auto-resetting eval env runs until every env has finished its first episode. One
    /// without auto-reset refuses to step once any env has finished, so there the envs
    /// still running are scored on their episode so far (with equal episode lengths and
    /// no bankruptcy, all finish on the same step anyway).
    fn evaluate(
        &mut self,
        env: &mut TradingEnv,
        input: &InputBuilder,
        seed: u64,
        bars_per_year: f64,
    ) -> Result<(usize, f64, f64, f64), PpoError> {
        let n = env.n_envs();
        let auto_reset = env.auto_reset();
        let mut done = vec![false; n];
        let mut step_returns: Vec<Vec<f64>> = vec![Vec::new(); n];
        let (mut ep_reward, mut ep_return) = (vec![0.0; n], vec![0.0; n]);
        let mut obs = env.reset(seed).obs.clone();
        let max_steps = env.market().n_bars() + 1;
        // The same stream at every evaluation: common random numbers.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniforms = vec![0f32; n * self.spec.n_tickers];
        for _ in 0..max_steps {
            let actions = tch::no_grad(|| {
                let x = observe(&mut self.obs_norm, self.cfg.obs_clip, input, self.device, &obs, n, false)?;
                if self.cfg.eval_deterministic {
                    return actions_to_host(&self.model.greedy(&x)?);
                }
                uniforms.iter_mut().for_each(|u| *u = rng.random::<f32>());
                actions_to_host(&self.model.sample_actions(&x, &uniforms)?)
            })?;
            let b = env.step(&actions)?;
            let mut any_finished = false;
            for i in 0..n {
                if done[i] {
                    continue;
                }
                let info = &b.infos[i];
                step_returns[i].push(info.step_return);
                ep_reward[i] = info.episode_reward;
                ep_return[i] = info.episode_return;
                if b.terminated[i] || b.truncated[i] {
                    done[i] = true;
                    any_finished = true;
                }
            }
            if done.iter().all(|&d| d) || (any_finished && !auto_reset) {
                break;
            }
            obs.copy_from_slice(&b.obs);
        }
        let sharpe = step_returns.iter().map(|r| sharpe(r, bars_per_year)).sum::<f64>() / n as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        Ok((n, mean(&ep_reward), mean(&ep_return), sharpe))
    }

    /// Writes model, optimizer and normalizer files into `dir`.
    fn save_tensors(&self, dir: &Path) -> Result<(), PpoError> {
        self.model.vs.save(dir.join(checkpoint::MODEL_FILE))?;
        Tensor::write_safetensors(&self.adam.named_tensors()?, dir.join(checkpoint::OPTIMIZER_FILE))?;
        let mut norm = match &self.obs_norm {
            Some(o) => o.named_tensors("obs")?,
            None => Vec::new(),
        };
        if let Some(r) = &self.rew_scaler {
            for (name, v) in [("ret.mean", r.mean), ("ret.var", r.var), ("ret.count", r.count)] {
                norm.push((name.to_string(), Tensor::f_from_slice(&[v])?));
            }
        }
        if norm.is_empty() {
            // safetensors needs at least one tensor; an empty normalizer says "none".
            norm.push(("none".to_string(), Tensor::f_from_slice(&[0u8])?));
        }
        Tensor::write_safetensors(&norm, dir.join(checkpoint::NORMALIZER_FILE))?;
        Ok(())
    }

    /// Restores weights, optimizer, normalizers and RNG position from a checkpoint.
    fn load(&mut self, dir: &Path, state: &CheckpointState) -> Result<(), PpoError> {
        let err = |file: &str, message: String| PpoError::Checkpoint { path: dir.join(file), message };
        self.model.vs.load(dir.join(checkpoint::MODEL_FILE))?;
        let opt = Tensor::read_safetensors(dir.join(checkpoint::OPTIMIZER_FILE))?;
        self.adam.load_named(&opt).map_err(|m| err(checkpoint::OPTIMIZER_FILE, m))?;
        if self.obs_norm.is_some() {
            self.obs_norm = model::load_obs_norm(dir, state, self.device)?;
            if self.obs_norm.is_none() {
                tracing::warn!("the checkpoint has no observation statistics; starting them afresh");
                self.obs_norm = Some(RunningMeanStd::new(self.spec.input_dim, self.device)?);
            }
        }
        if let Some(r) = &mut self.rew_scaler {
            let named = Tensor::read_safetensors(dir.join(checkpoint::NORMALIZER_FILE))?;
            let get = |k: &str| named.iter().find(|(n, _)| n == k).map(|(_, t)| t.f_double_value(&[0]));
            match (get("ret.mean"), get("ret.var"), get("ret.count")) {
                (Some(m), Some(v), Some(c)) => {
                    r.mean = m?;
                    r.var = v?;
                    r.count = c?;
                }
                _ => tracing::warn!("the checkpoint has no reward statistics; starting them afresh"),
            }
        }
        self.rng = ChaCha8Rng::seed_from_u64(state.seed ^ LEARNER_SALT);
        self.rng.set_word_pos(u128::from(state.rng_word_pos));
        Ok(())
    }
}

/// Raw observation rows → normalized network inputs; `update` merges them into the
/// running statistics first (SB3 updates, then normalizes, on every training step).
fn observe(
    obs_norm: &mut Option<RunningMeanStd>,
    clip: f64,
    input: &InputBuilder,
    device: Device,
    obs: &[f32],
    n: usize,
    update: bool,
) -> Result<Tensor, PpoError> {
    let raw = input.build(obs, n, device)?;
    match obs_norm {
        Some(norm) => {
            if update {
                norm.update(&raw)?;
            }
            Ok(norm.normalize(&raw, clip)?)
        }
        None => Ok(raw),
    }
}

/// One minibatch's statistics as a device vector (grad norm NaN when no step was taken).
fn stats_row(
    pg: &Tensor,
    vl: &Tensor,
    ent: &Tensor,
    kl: &Tensor,
    cf: &Tensor,
    gn: Option<&Tensor>,
) -> Result<Tensor, PpoError> {
    let device = pg.device();
    let gn = match gn {
        Some(g) => g.f_to(device)?.f_to_kind(Kind::Float)?,
        None => Tensor::f_full([], f64::NAN, (Kind::Float, device))?,
    };
    let parts = [pg.f_detach()?, vl.f_detach()?, ent.f_detach()?, kl.f_detach()?, cf.f_detach()?, gn];
    Ok(Tensor::f_stack(&parts, 0)?)
}

/// Annualized Sharpe ratio of step returns: mean / sample std × √(bars per year); 0 for
/// fewer than two returns or no variation.
pub fn sharpe(returns: &[f64], bars_per_year: f64) -> f64 {
    let n = returns.len();
    if n < 2 {
        return 0.0;
    }
    let mean = returns.iter().sum::<f64>() / n as f64;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    if var <= 0.0 || !var.is_finite() {
        return 0.0;
    }
    mean / var.sqrt() * bars_per_year.sqrt()
}

/// Learning rate of iteration `iteration` (1-based) of `n_iterations`: constant, or
/// CleanRL's linear annealing `lr × (1 − (iteration − 1) / n_iterations)`.
pub fn learning_rate(cfg: &TrainingConfig, iteration: u64, n_iterations: u64) -> f64 {
    match cfg.lr_schedule {
        LrSchedule::Constant => cfg.learning_rate,
        LrSchedule::Linear => {
            let frac = 1.0 - (iteration.saturating_sub(1)) as f64 / n_iterations.max(1) as f64;
            cfg.learning_rate * frac.max(0.0)
        }
    }
}

/// A PPO training run: learner, envs, evaluation and checkpoints.
pub struct Trainer {
    cfg: Config,
    learner: Learner,
    train_env: TradingEnv,
    eval_env: Option<(TradingEnv, InputBuilder)>,
    out: RunPaths,
    timesteps: u64,
    iteration: u64,
    best_metric: Option<f64>,
    /// Timesteps of the last checkpoint written (no second save at the same step).
    last_saved: Option<u64>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("timesteps", &self.timesteps)
            .field("iteration", &self.iteration)
            .field("best_metric", &self.best_metric)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// Builds a fresh run: network initialized from `training.seed`, envs reset with it.
    ///
    /// `train_env` must have `training.n_envs` envs and `eval_env` (the validation split)
    /// the same observation layout and market shape.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when the config, the envs and the device do not fit together.
    pub fn new(
        cfg: &Config,
        train_env: TradingEnv,
        eval_env: Option<TradingEnv>,
        out: RunPaths,
    ) -> Result<Self, PpoError> {
        let mut train_env = train_env;
        let mut learner = Learner::new(cfg, &train_env)?;
        let eval_env = match eval_env {
            Some(e) => {
                let spec = model_spec(cfg, &e)?;
                if spec != learner.spec {
                    return Err(PpoError::Setup(format!(
                        "the eval env's observations ({} wide, {} tickers) differ from the training env's ({} wide, {} tickers)",
                        spec.obs_dim, spec.n_tickers, learner.spec.obs_dim, learner.spec.n_tickers
                    )));
                }
                let input = InputBuilder::new(&spec, Some(e.market()), learner.device)?;
                Some((e, input))
            }
            None => None,
        };
        learner.reset_envs(&mut train_env, reset_seed(cfg.training.seed, 0))?;
        Ok(Self {
            cfg: cfg.clone(),
            learner,
            train_env,
            eval_env,
            out,
            timesteps: 0,
            iteration: 0,
            best_metric: None,
            last_saved: None,
        })
    }

    /// Continues a run from the latest checkpoint under `dir` (a checkpoint directory, or
    /// `models/<run>` whose newest `checkpoints/step_<N>/` or `final/` is taken), with
    /// weights, Adam moments, normalizers, RNG position, counters and best metric restored.
    /// `cfg` may extend `total_timesteps`; the network shape must match.
    ///
    /// # Errors
    /// [`PpoError::Checkpoint`] when there is no usable checkpoint or it does not match the
    /// config and env; [`PpoError::Setup`] as [`Trainer::new`].
    pub fn resume(
        dir: &Path,
        cfg: &Config,
        train_env: TradingEnv,
        eval_env: Option<TradingEnv>,
        out: RunPaths,
    ) -> Result<Self, PpoError> {
        let ckpt = checkpoint::latest(dir)?;
        let state = checkpoint::read_state(&ckpt)?;
        let mut cfg = cfg.clone();
        if state.seed != cfg.training.seed {
            tracing::warn!(saved = state.seed, config = cfg.training.seed, "resuming with the checkpoint's seed");
            cfg.training.seed = state.seed;
        }
        let mut t = Self::new(&cfg, train_env, eval_env, out)?;
        if state.model != t.learner.spec {
            return Err(PpoError::Checkpoint {
                path: ckpt,
                message: format!(
                    "saved network {:?} does not match this config and env {:?}",
                    state.model, t.learner.spec
                ),
            });
        }
        t.learner.load(&ckpt, &state)?;
        t.timesteps = state.timesteps;
        t.iteration = state.iteration;
        t.best_metric = state.best_metric;
        t.last_saved = Some(state.timesteps);
        t.learner.reset_envs(&mut t.train_env, reset_seed(state.seed, state.timesteps))?;
        tracing::info!(
            checkpoint = %ckpt.display(),
            timesteps = state.timesteps,
            iteration = state.iteration,
            adam_steps = t.learner.adam.steps(),
            "resumed: weights, Adam moments, normalizers and RNG restored; envs restart"
        );
        Ok(t)
    }

    /// Env steps so far.
    pub fn timesteps(&self) -> u64 {
        self.timesteps
    }

    /// Iterations so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The network (for inspection and tests).
    pub fn model(&self) -> &ActorCritic {
        &self.learner.model
    }

    /// Greedy actions and values of observation rows under the training statistics
    /// (not updated): what [`super::Policy`] loaded from this run's next checkpoint must
    /// reproduce.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `obs` is not `n_envs × obs_dim` long.
    pub fn greedy(&mut self, obs: &[f32], n_envs: usize) -> Result<(Vec<u8>, Vec<f32>), PpoError> {
        let l = &mut self.learner;
        tch::no_grad(|| {
            let x = observe(&mut l.obs_norm, l.cfg.obs_clip, &l.input, l.device, obs, n_envs, false)?;
            let actions = actions_to_host(&l.model.greedy(&x)?)?;
            let values = Vec::<f32>::try_from(l.model.value(&x)?.f_to(Device::Cpu)?)?;
            Ok((actions, values))
        })
    }

    /// Trains until `total_timesteps` or until `hooks.should_stop()`; either way the last
    /// state is saved first (`final/`, or `checkpoints/step_<N>/` when stopped).
    ///
    /// # Errors
    /// Any [`PpoError`] of the env, torch or the file system.
    pub fn train(&mut self, hooks: &mut dyn TrainHooks) -> Result<TrainSummary, PpoError> {
        let t0 = Instant::now();
        let start_ts = self.timesteps;
        let tc = self.cfg.training.clone();
        let per_iter = (tc.n_steps * self.learner.n_envs) as u64;
        let n_iterations = tc.total_timesteps.div_ceil(per_iter);
        let bars_per_year = self.cfg.data.interval.bars_per_year();
        let mut interrupted = false;
        while self.timesteps < tc.total_timesteps {
            if hooks.should_stop() {
                interrupted = true;
                break;
            }
            self.iteration += 1;
            let lr = learning_rate(&tc, self.iteration, n_iterations);
            let ro = self.learner.collect(&mut self.train_env)?;
            let prev_ts = self.timesteps;
            self.timesteps += per_iter;
            let up = self.learner.update(lr)?;
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            hooks.on_iteration(&IterationStats {
                timesteps: self.timesteps,
                iteration: self.iteration,
                fps: (self.timesteps - start_ts) as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                policy_loss: up.policy_loss,
                value_loss: up.value_loss,
                entropy: up.entropy,
                approx_kl: up.approx_kl,
                clip_fraction: up.clip_fraction,
                explained_variance: up.explained_variance,
                learning_rate: lr,
                grad_norm: up.grad_norm,
                epochs: up.epochs,
                early_stopped: up.early_stopped,
                ep_reward_mean: mean(&ro.ep_rewards),
                equity_mean: ro.equity_mean,
                total_return_mean: mean(&ro.ep_returns),
                total_trades: ro.trades,
                episodes: ro.ep_rewards.len() as u64,
            });
            if tc.eval_freq > 0 && self.timesteps / tc.eval_freq > prev_ts / tc.eval_freq {
                self.run_eval(hooks, bars_per_year)?;
            }
            if tc.checkpoint_freq > 0 && self.timesteps / tc.checkpoint_freq > prev_ts / tc.checkpoint_freq {
                let dir = checkpoint::step_dir(&self.out.models, self.timesteps);
                self.save(&dir)?;
                checkpoint::prune(&self.out.models, tc.keep_checkpoints);
                // Checkpoints are episode boundaries, so that a resume replays this run.
                self.learner.reset_envs(&mut self.train_env, reset_seed(tc.seed, self.timesteps))?;
            }
        }
        let last_checkpoint = if interrupted {
            let dir = checkpoint::step_dir(&self.out.models, self.timesteps);
            if self.last_saved != Some(self.timesteps) || !dir.join(checkpoint::STATE_FILE).is_file() {
                self.save(&dir)?;
            }
            dir
        } else {
            let dir = checkpoint::final_dir(&self.out.models);
            self.save(&dir)?;
            dir
        };
        Ok(TrainSummary {
            timesteps: self.timesteps,
            iterations: self.iteration,
            seconds: t0.elapsed().as_secs_f64(),
            interrupted,
            last_checkpoint,
            best_metric: self.best_metric,
        })
    }

    /// Evaluates on the validation env and keeps `best/`.
    fn run_eval(&mut self, hooks: &mut dyn TrainHooks, bars_per_year: f64) -> Result<(), PpoError> {
        let Some((env, input)) = &mut self.eval_env else {
            return Ok(());
        };
        let seed = self.cfg.training.seed ^ EVAL_SALT;
        let (episodes, mean_reward, total_return, sharpe) = self.learner.evaluate(env, input, seed, bars_per_year)?;
        let metric = match self.cfg.training.best_metric {
            BestMetric::Sharpe => sharpe,
            BestMetric::TotalReturn => total_return,
            BestMetric::EpisodeReward => mean_reward,
        };
        let is_best = metric.is_finite() && self.best_metric.is_none_or(|b| metric > b);
        if is_best {
            self.best_metric = Some(metric);
            self.save(&checkpoint::best_dir(&self.out.models))?;
        }
        hooks.on_eval(&EvalStats {
            timesteps: self.timesteps,
            episodes,
            mean_reward,
            total_return,
            sharpe,
            metric,
            is_best,
        });
        Ok(())
    }

    /// Writes a full checkpoint into `dir`, atomically.
    fn save(&mut self, dir: &Path) -> Result<(), PpoError> {
        let rng_word_pos = u64::try_from(self.learner.rng.get_word_pos())
            .map_err(|_| PpoError::Setup("RNG position beyond 2^64 words".into()))?;
        let state = CheckpointState {
            format: checkpoint::FORMAT,
            timesteps: self.timesteps,
            iteration: self.iteration,
            seed: self.cfg.training.seed,
            rng_word_pos,
            best_metric: self.best_metric,
            best_metric_name: format!("{:?}", self.cfg.training.best_metric).to_lowercase(),
            normalize_obs: self.cfg.training.normalize_obs,
            obs_clip: self.cfg.training.obs_clip,
            model: self.learner.spec.clone(),
        };
        let config = self.cfg.to_ron();
        checkpoint::write_atomic(dir, |tmp| {
            self.learner.save_tensors(tmp)?;
            let path = tmp.join(checkpoint::CONFIG_FILE);
            std::fs::write(&path, &config).map_err(|source| PpoError::File { path, source })?;
            checkpoint::write_state(tmp, &state)
        })?;
        if dir != checkpoint::best_dir(&self.out.models) {
            self.last_saved = Some(self.timesteps);
        }
        Ok(())
    }
}

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
pub fn bench_train(
    cfg: &Config,
    net: &[usize],
    n_envs: usize,
    n_steps: usize,
    batch: usize,
    epochs: usize,
    iterations: usize,
) -> Result<TrainBench, PpoError> {
    let mut c = cfg.clone();
    c.training.net_arch = net.to_vec();
    c.training.n_envs = n_envs;
    c.training.n_steps = n_steps;
    c.training.batch_size = batch;
    c.training.n_epochs = epochs;
    c.training.target_kl = None;
    c.environment.observation_layout = ObservationLayout::Materialized;
    let market = MarketData::random_walk(17_640, 10, 55, 0);
    let bounds = EpisodeBounds { first: 100, last: (market.n_bars() - 1) as u32, random_start: true };
    let opts = EnvOptions { threads: c.training.threads, ..EnvOptions::training(n_envs, bounds) };
    let mut env = TradingEnv::new(&c.environment, market, opts)?;
    let mut learner = Learner::new(&c, &env)?;
    learner.reset_envs(&mut env, c.training.seed)?;
    let lr = c.training.learning_rate;
    learner.collect(&mut env)?;
    learner.update(lr)?;
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
        net_arch: net.to_vec(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_starts_at_lr_and_nears_zero() {
        let cfg = TrainingConfig { lr_schedule: LrSchedule::Linear, learning_rate: 1e-3, ..Default::default() };
        assert_eq!(learning_rate(&cfg, 1, 10), 1e-3);
        assert!((learning_rate(&cfg, 10, 10) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn sharpe_of_constant_returns_is_zero() {
        assert_eq!(sharpe(&[0.01, 0.01, 0.01], 252.0), 0.0);
        assert!(sharpe(&[0.01, 0.02, 0.0, 0.015], 252.0) > 0.0);
    }
}
