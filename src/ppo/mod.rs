//! PPO on tch: the learner that trains a policy on thousands of [`TradingEnv`] accounts at
//! once (behind the `learner` feature).
//!
//! The algorithm follows SB3/CleanRL line by line. Read the files in this order and they
//! are CleanRL's `ppo.py` from top to bottom; each step of it is one function:
//!
//! | PPO step | function (file) |
//! | --- | --- |
//! | set-up: network (orthogonal init), Adam, normalizers, rollout storage | `Learner::new` (`learner.rs`) |
//! | the iteration loop | [`Trainer::train`] (`trainer.rs`) |
//! | learning-rate annealing (constant or linear) | [`learning_rate`], applied by [`Adam::set_lr`] at the top of `Learner::update` |
//! | collect a rollout (`n_steps` × `n_envs`, under `no_grad`) | `Learner::collect` (`rollout.rs`) |
//! | observation normalization, reward scaling | `observe` (`learner.rs`) with [`RunningMeanStd`]; [`RewardScaler`] in `Learner::collect` |
//! | bootstrap on truncation (bankruptcy is termination) | [`bootstrap_truncated`] (`gae.rs`), called in `Learner::collect` |
//! | GAE(γ, λ) | [`compute_gae`] (`gae.rs`), called at the top of `Learner::update` (`update.rs`) |
//! | shuffled minibatches, `n_epochs` passes | `Learner::update` |
//! | per-minibatch advantage normalization | `losses` (`minibatch.rs`) |
//! | clipped surrogate | [`policy_loss`] (`loss.rs`) |
//! | (clipped) value loss | [`value_loss`] (`loss.rs`) |
//! | entropy bonus | `losses` (`minibatch.rs`: `loss = pg − ent_coef·H + vf_coef·v`) |
//! | approximate KL, clip fraction | [`approx_kl`], [`clip_fraction`] (`loss.rs`) |
//! | `target_kl` early stop (1.5 × target, before the step) | `Learner::eager_minibatch` (`minibatch.rs`) |
//! | global grad-norm clip | [`Adam::clip_grad_norm`] (`optimizer.rs`) |
//! | Adam (β = 0.9, 0.999, eps 1e-5) | [`Adam::step`] (`optimizer.rs`) |
//! | explained variance | [`explained_variance`] (`gae.rs`) |
//! | evaluation on the validation env | `Learner::evaluate` (`evaluate.rs`), scored with [`sharpe`] |
//! | best model (`training.best_metric`, never a non-finite one) | `Trainer::run_eval` (`trainer.rs`) |
//! | checkpoint: scheduled, best, final; resume | `Trainer::save`, [`Trainer::resume`] (`trainer.rs`); `Learner::save_tensors`, `Learner::load` (`learner.rs`); file layout in [`checkpoint`] |
//! | throughput of whole iterations | [`bench_train`] (`bench.rs`) |
//!
//! Determinism (resuming reproduces the uninterrupted run) is described in [`trainer`].
//!
//! Beside the loop:
//! - [`model`]: separate policy and value MLPs in one `VarStore`, one categorical over
//!   {hold, buy, sell} per ticker; [`Policy`] for backtests.
//! - [`normalize`]: running observation statistics and reward scaling (SB3 `VecNormalize`).
//! - [`checkpoint`]: atomic `step_<N>/`, `best/`, `final/` directories, resume.
//! - [`device`]: `training.device`, thread settings and the TF32 switch.
//! - [`cuda_graph`]: CUDA graphs, which rollouts on CUDA capture their network pass as,
//!   and the update its minibatch (`minibatch.rs`).
//! - [`profile`]: where an iteration's time goes (`ploutos bench --train --profile`).
//!
//! Everything a run reports goes out through [`TrainHooks`]; the metrics writers live
//! elsewhere and never see a tensor.
//!
//! [`TradingEnv`]: crate::vec_env::TradingEnv

pub mod bench;
pub mod checkpoint;
pub mod cuda_graph;
pub mod device;
mod evaluate;
pub mod gae;
mod learner;
pub mod loss;
mod minibatch;
pub mod model;
pub mod normalize;
pub mod optimizer;
pub mod profile;
mod rollout;
pub mod trainer;
mod update;

/// The Sharpe ratio evaluation scores episodes with: the backtest reports' own.
pub use crate::backtest::metrics::sharpe;
pub use bench::{TrainBench, TrainShape, bench_train, profile_train};
pub use checkpoint::{CheckpointState, ModelSpec};
pub use device::{parse_device, set_threads};
pub use gae::{bootstrap_truncated, compute_gae, explained_variance};
pub use loss::{approx_kl, clip_fraction, policy_loss, value_loss};
pub use model::{ActorCritic, Policy};
pub use normalize::{RewardScaler, RunningMeanStd};
pub use optimizer::Adam;
pub use trainer::{Trainer, learning_rate, reset_seed};

use std::path::PathBuf;

/// Errors of the learner: torch, files, env and bad set-ups.
#[derive(Debug, thiserror::Error)]
pub enum PpoError {
    /// A libtorch operation failed (shape, device, file format).
    #[error("torch: {0}")]
    Tch(#[from] tch::TchError),
    /// A file or folder could not be read or written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A file or folder could not be read or written, with its path.
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The env rejected a call.
    #[error("env: {0}")]
    Env(#[from] crate::vec_env::EnvError),
    /// A checkpoint is missing, incomplete or does not match the env.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A run folder holds no checkpoint at all (one that is there but unreadable is
    /// [`PpoError::Checkpoint`]).
    #[error("checkpoint {path}: no checkpoint found (expected state.ron here, in checkpoints/step_*/ or in final/)")]
    NoCheckpoint { path: PathBuf },
    /// The config, the envs or the device do not fit together.
    #[error("{0}")]
    Setup(String),
    /// The config needs more memory than the machine has (a lower bound of the weights,
    /// Adam, the rollout and a minibatch).
    #[error("{0}")]
    TooBig(String),
}

/// Where a run writes: `models/<run>` (checkpoints), `runs/<run>` (the metrics writers'),
/// `logs/` (the CLI's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// `models/<run>`: `checkpoints/step_<N>/`, `best/`, `final/`.
    pub models: PathBuf,
    /// `runs/<run>`: TensorBoard and `metrics.csv`, written by the hooks, not the learner.
    pub runs: PathBuf,
    /// Log folder of the CLI.
    pub logs: PathBuf,
}

/// What one PPO iteration (rollout + update) measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IterationStats {
    /// Env steps so far, summed over envs, including this iteration's.
    pub timesteps: u64,
    /// 1-based iteration count of the whole run (resumes continue it).
    pub iteration: u64,
    /// Env steps per second since this `train` call started (`charts/SPS`).
    pub fps: f64,
    /// Mean clipped-surrogate loss over the minibatches of the update.
    pub policy_loss: f64,
    /// Mean value loss (MSE against the GAE returns).
    pub value_loss: f64,
    /// Mean policy entropy in nats, summed over tickers.
    pub entropy: f64,
    /// Mean approximate KL, ((r − 1) − ln r).mean() (`losses/approx_kl`).
    pub approx_kl: f64,
    /// Mean fraction of samples whose ratio left the clip range (`losses/clipfrac`).
    pub clip_fraction: f64,
    /// 1 − Var(returns − values) / Var(returns) of the rollout (`losses/explained_variance`).
    pub explained_variance: f64,
    /// Learning rate of this update.
    pub learning_rate: f64,
    /// Mean pre-clip global gradient norm over the minibatches.
    pub grad_norm: f64,
    /// Epochs run (fewer than `n_epochs` after a `target_kl` stop).
    pub epochs: usize,
    /// The update stopped early on `target_kl`.
    pub early_stopped: bool,
    /// Mean undiscounted, unscaled reward of the episodes that ended in this rollout; none
    /// when none ended.
    pub ep_reward_mean: Option<f64>,
    /// Mean equity of all envs at the end of the rollout, in dollars.
    pub equity_mean: f64,
    /// Mean total return (final equity / initial cash − 1) of the episodes that ended in
    /// this rollout; none when none ended.
    pub total_return_mean: Option<f64>,
    /// Orders executed during this rollout, all envs together.
    pub total_trades: u64,
    /// Episodes that ended (terminated or truncated) during this rollout.
    pub episodes: u64,
    /// Share of the rollout's buy and sell actions that the env's masks forbade (0 without
    /// `training.action_masking`).
    pub masked_share: f64,
}

/// One evaluation on the validation env (deterministic policy, each env's first episode).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalStats {
    /// Training timesteps at the evaluation.
    pub timesteps: u64,
    /// Episodes evaluated (one per eval env).
    pub episodes: usize,
    /// Mean episode reward (unscaled).
    pub mean_reward: f64,
    /// Mean total return of the episodes.
    pub total_return: f64,
    /// Mean over episodes of the annualized Sharpe ratio of the step returns.
    pub sharpe: f64,
    /// Mean over episodes of the maximum drawdown (a positive fraction).
    pub max_drawdown: f64,
    /// The value of `training.best_metric`.
    pub metric: f64,
    /// This evaluation is the best so far and was saved to `best/`.
    pub is_best: bool,
    /// Equal-weight buy-and-hold over the same episodes (mean total return and Sharpe,
    /// marked at the closes without costs).
    pub buy_and_hold_return: f64,
    pub buy_and_hold_sharpe: f64,
    /// The random policy (uniform actions) over the same episodes, with the env's costs
    /// and rules.
    pub random_return: f64,
    pub random_sharpe: f64,
}

/// How a `train` call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    pub timesteps: u64,
    pub iterations: u64,
    /// Wall time of this `train` call.
    pub seconds: f64,
    /// `should_stop` ended the run before `total_timesteps`.
    pub interrupted: bool,
    /// The checkpoint written last (`final/`, or `checkpoints/step_<N>/` on a stop).
    pub last_checkpoint: PathBuf,
    /// Best validation metric so far, when evaluation ran.
    pub best_metric: Option<f64>,
}

/// Callbacks of a training run: the CLI's progress bar, metrics writers and Ctrl-C flag.
pub trait TrainHooks {
    /// Called after every iteration's update.
    fn on_iteration(&mut self, _stats: &IterationStats) {}
    /// Called after every evaluation.
    fn on_eval(&mut self, _e: &EvalStats) {}
    /// Polled before every iteration; true saves a checkpoint and ends `train`.
    fn should_stop(&self) -> bool {
        false
    }
}

/// Hooks that do nothing: for tests and benches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl TrainHooks for NoHooks {}
