//! A training run: the loop of CleanRL's `ppo.py`
//! (`for iteration in range(1, num_iterations + 1)`: anneal the learning rate, collect a
//! rollout, update), with evaluation, the best model and checkpoints on their schedules,
//! and resume.
//!
//! Determinism: torch's generator is used only to initialize the network; action sampling
//! and minibatch shuffles draw from one ChaCha8 stream whose position is checkpointed, and
//! Adam's moments are ours and checkpointed too. The env's state cannot be saved, so after
//! every scheduled checkpoint the training envs restart from a seed derived from (seed,
//! timesteps), in an uninterrupted run exactly as in a resumed one: resuming from a
//! scheduled checkpoint reproduces the uninterrupted run (at equal thread counts).

use super::checkpoint::{self, CheckpointState};
use super::evaluate::{Baselines, EVAL_SALT, baselines};
use super::learner::{Learner, model_spec, observe};
use super::model::{self, ActorCritic, InputBuilder, actions_to_host};
use super::{EvalStats, IterationStats, PpoError, RunPaths, TrainHooks, TrainSummary};
use crate::config::{BestMetric, Config, LrSchedule, TrainingConfig};
use crate::vec_env::TradingEnv;
use std::path::Path;
use std::time::Instant;
use tch::Device;

/// Seed of the training envs' reset after `timesteps` (the seed itself at the start).
pub fn reset_seed(seed: u64, timesteps: u64) -> u64 {
    seed.wrapping_add(timesteps.wrapping_mul(0x9E37_79B9_7F4A_7C15))
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
    /// The baselines over the evaluation's episodes (the same at every evaluation: computed
    /// at the first).
    baselines: Option<Baselines>,
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
                // Where the learner builds its own inputs: the observation statistics live there.
                let input = InputBuilder::new(&spec, Some(e.market()), learner.input.device())?;
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
            baselines: None,
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
                    "the saved network does not fit this config and market: {}",
                    state.model.differences(&t.learner.spec)
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

    /// Greedy actions (among those `masks` allows) and values of observation rows under the
    /// training statistics (not updated): what [`super::Policy`] loaded from this run's next checkpoint must
    /// reproduce.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `obs` is not `n_envs × obs_dim` long.
    pub fn greedy(
        &mut self,
        obs: &[f32],
        masks: Option<&[bool]>,
        n_envs: usize,
    ) -> Result<(Vec<u8>, Vec<f32>), PpoError> {
        let l = &mut self.learner;
        tch::no_grad(|| {
            let x = observe(&mut l.obs_norm, l.cfg.obs_clip, &l.input, l.device, obs, n_envs, false)?;
            let masks = masks.map(|m| model::masks_tensor(m, &l.spec, l.device)).transpose()?;
            let actions = actions_to_host(&l.model.greedy(&x, masks.as_ref())?)?;
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
                masked_share: ro.masked_share,
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
        let base = match self.baselines {
            Some(b) => b,
            None => *self.baselines.insert(baselines(env, seed, bars_per_year)?),
        };
        let scores = self.learner.evaluate(env, input, seed, bars_per_year)?;
        let (mean_reward, total_return, sharpe) = (scores.mean_reward, scores.total_return, scores.sharpe);
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
            episodes: scores.episodes,
            mean_reward,
            total_return,
            sharpe,
            max_drawdown: scores.max_drawdown,
            metric,
            is_best,
            buy_and_hold_return: base.buy_and_hold_return,
            buy_and_hold_sharpe: base.buy_and_hold_sharpe,
            random_return: base.random_return,
            random_sharpe: base.random_sharpe,
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
            action_masking: self.cfg.training.action_masking,
        };
        let config = self.cfg.to_ron();
        let scaler = self.out.models.join(checkpoint::SCALER_FILE);
        checkpoint::write_atomic(dir, |tmp| {
            self.learner.save_tensors(tmp)?;
            if scaler.is_file() {
                let to = tmp.join(checkpoint::SCALER_FILE);
                std::fs::copy(&scaler, &to).map_err(|source| PpoError::File { path: to, source })?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_starts_at_lr_and_nears_zero() {
        let cfg = TrainingConfig { lr_schedule: LrSchedule::Linear, learning_rate: 1e-3, ..Default::default() };
        assert_eq!(learning_rate(&cfg, 1, 10), 1e-3);
        assert!((learning_rate(&cfg, 10, 10) - 1e-4).abs() < 1e-12);
    }
}
