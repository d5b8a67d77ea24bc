//! `training`: PPO hyper-parameters, run naming, evaluation cadence and device.
//!
//! Defaults are the seed's V3 values (a GPU run); `config/default.ron` shrinks them for a
//! quick CPU run.

use super::{ConfigError, check};
use serde::{Deserialize, Serialize};

/// Hidden-layer activation of the policy and value MLPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
}

/// Number format of the networks' matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `bf16` on a CPU with AVX512-BF16 (where it is about 3.5× faster), else `fp32`
    /// (GPUs included: on an H200 neither bf16 nor tf32 is faster at the seed's sizes,
    /// where the update waits on kernel launches, not on arithmetic).
    Auto,
    /// f32 throughout.
    Fp32,
    /// On CUDA, the update's f32 matrix products on TF32 tensor cores (PyTorch's
    /// `torch.backends.cuda.matmul.allow_tf32 = True`: inputs rounded to a 10-bit
    /// mantissa, f32 accumulation); everything else, and every product on a CPU, in f32.
    /// Rollouts and backtests act in f32. Pays where the update's products are large
    /// enough to wait on arithmetic (wider networks, bigger minibatches).
    Tf32,
    /// Mixed precision: weights, optimizer, losses and statistics in f32; the layers'
    /// products in bfloat16 (as `torch.autocast(dtype=torch.bfloat16)`); rollouts and
    /// backtests act in f32. About 3.5× faster products on CPUs with AVX512-BF16; slower on
    /// CPUs without it, and on an H200 at these network sizes.
    Bf16,
}

/// Learning-rate schedule over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `learning_rate` throughout.
    Constant,
    /// From `learning_rate` down to 0 at `total_timesteps` (SB3/CleanRL annealing).
    Linear,
}

/// Validation metric that decides which model is kept in `models/<run>/best/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    Sharpe,
    TotalReturn,
    EpisodeReward,
}

/// PPO hyper-parameters; RON files override only what they change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Run name for `runs/`, `logs/` and `models/` (default: none, a UTC timestamp is used).
    pub run_name: Option<String>,
    /// Environment timesteps to train for, summed over envs (default: 10,000,000).
    pub total_timesteps: u64,
    /// Adam learning rate (default: 5e-5).
    pub learning_rate: f64,
    /// Learning-rate schedule (default: `constant`).
    pub lr_schedule: LrSchedule,
    /// Minibatch size, as in SB3 (default: 8192).
    pub batch_size: usize,
    /// Steps per env per rollout; rollout size = `n_steps` × `n_envs` (default: 4096).
    pub n_steps: usize,
    /// Passes over the rollout per update (default: 20).
    pub n_epochs: usize,
    /// Discount factor (default: 0.995).
    pub gamma: f64,
    /// GAE λ (default: 0.98).
    pub gae_lambda: f64,
    /// PPO clip range of the probability ratio (default: 0.2).
    pub clip_range: f64,
    /// Clip range of the value update around the old value; none = unclipped (default: none).
    pub clip_range_vf: Option<f64>,
    /// Entropy bonus coefficient (default: 0.01).
    pub ent_coef: f64,
    /// Value-loss coefficient (default: 0.5).
    pub vf_coef: f64,
    /// Global gradient-norm clip (default: 0.5).
    pub max_grad_norm: f64,
    /// Stop an update's epochs once the approximate KL exceeds 1.5 × this; none = never
    /// (default: 0.015).
    pub target_kl: Option<f64>,
    /// Normalize advantages per minibatch (default: true).
    pub normalize_advantage: bool,
    /// Running mean/variance observation normalization, clipped at `obs_clip` (default: true).
    pub normalize_obs: bool,
    /// Clip of normalized observations (default: 10).
    pub obs_clip: f64,
    /// Scale rewards by the running std of the discounted return, as SB3's VecNormalize
    /// (default: false).
    pub normalize_reward: bool,
    /// Parallel environments (default: 16).
    pub n_envs: usize,
    /// Hidden layer sizes of each of the policy and value MLPs (default: [1024, 512, 256]).
    pub net_arch: Vec<usize>,
    /// Hidden activation (default: `tanh`).
    pub activation: Activation,
    /// `auto`, `fp32`, `tf32` (CUDA) or `bf16` (mixed precision), see [`Precision`]
    /// (default: `auto`).
    pub precision: Precision,
    /// Master seed of envs, network init and minibatch shuffling (default: 42).
    pub seed: u64,
    /// `auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N` (default: `auto`).
    pub device: String,
    /// CPU threads for torch and env stepping; 0 = all cores (default: 0).
    pub threads: usize,
    /// Save a checkpoint every this many timesteps; 0 = only at the end (default: 500,000).
    pub checkpoint_freq: u64,
    /// Scheduled checkpoints kept (the newest); 0 = all (default: 5).
    pub keep_checkpoints: usize,
    /// Evaluate on the validation split every this many timesteps; 0 = never (default: 250,000).
    pub eval_freq: u64,
    /// Episodes per evaluation (validation envs, `episode_length` bars each from start bars
    /// fixed for the run) (default: 16).
    pub eval_episodes: usize,
    /// Evaluate the most likely action of every ticker (true) or actions sampled from the
    /// policy (false), as SB3's `EvalCallback(deterministic=…)`. Sampled evaluations draw
    /// the same random numbers at every evaluation of a run, so two evaluations differ only
    /// by the policy (default: true).
    pub eval_deterministic: bool,
    /// Metric that selects the best model (default: `sharpe`).
    pub best_metric: BestMetric,
    /// Invalid-action masking, as sb3-contrib's `MaskablePPO`: the training and evaluation
    /// envs mask the actions their rules would refuse (sell without a position, buy without
    /// cash or at the position cap, the holding period, PDT, the daily cap), and the policy
    /// samples, scores and updates over the allowed actions only (masked logits at −1e8).
    /// Backtests of the model mask the same way. Nothing of the masks is saved: the env
    /// recomputes them (default: true).
    pub action_masking: bool,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            run_name: None,
            total_timesteps: 10_000_000,
            learning_rate: 5e-5,
            lr_schedule: LrSchedule::Constant,
            batch_size: 8192,
            n_steps: 4096,
            n_epochs: 20,
            gamma: 0.995,
            gae_lambda: 0.98,
            clip_range: 0.2,
            clip_range_vf: None,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: Some(0.015),
            normalize_advantage: true,
            normalize_obs: true,
            obs_clip: 10.0,
            normalize_reward: false,
            n_envs: 16,
            net_arch: vec![1024, 512, 256],
            activation: Activation::Tanh,
            precision: Precision::Auto,
            seed: 42,
            device: "auto".to_string(),
            threads: 0,
            checkpoint_freq: 500_000,
            keep_checkpoints: 5,
            eval_freq: 250_000,
            eval_episodes: 16,
            eval_deterministic: true,
            best_metric: BestMetric::Sharpe,
            action_masking: true,
        }
    }
}

/// What a name that becomes a folder name (a run's, a sweep's, a trading session's) must be:
/// never a path out of its folder, nor a hidden one ([`is_run_name`]).
pub const RUN_NAME_RULE: &str = "non-empty ASCII letters, digits, '-', '_' or '.', not starting with '.'";

/// Whether `name` follows [`RUN_NAME_RULE`].
pub fn is_run_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !name.starts_with('.')
}

impl TrainingConfig {
    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = self.run_name.as_ref().filter(|n| !is_run_name(n)) {
            return Err(check::out("training.run_name", format!("{name:?}"), format!("must be {RUN_NAME_RULE}")));
        }
        if self.total_timesteps == 0 {
            return Err(check::out("training.total_timesteps", 0, "must be ≥ 1".into()));
        }
        check::above("training.learning_rate", self.learning_rate, 0.0, 1.0)?;
        check::count("training.batch_size", self.batch_size, 1, 1 << 24)?;
        check::count("training.n_steps", self.n_steps, 1, 1 << 20)?;
        check::count("training.n_epochs", self.n_epochs, 1, 1000)?;
        check::within("training.gamma", self.gamma, 0.0, 1.0)?;
        check::within("training.gae_lambda", self.gae_lambda, 0.0, 1.0)?;
        check::above("training.clip_range", self.clip_range, 0.0, 10.0)?;
        if let Some(v) = self.clip_range_vf {
            check::above("training.clip_range_vf", v, 0.0, 1e6)?;
        }
        check::within("training.ent_coef", self.ent_coef, 0.0, 10.0)?;
        check::within("training.vf_coef", self.vf_coef, 0.0, 100.0)?;
        check::above("training.max_grad_norm", self.max_grad_norm, 0.0, 1e6)?;
        if let Some(v) = self.target_kl {
            check::above("training.target_kl", v, 0.0, 10.0)?;
        }
        check::above("training.obs_clip", self.obs_clip, 0.0, 1e6)?;
        check::count("training.n_envs", self.n_envs, 1, 1 << 20)?;
        if self.net_arch.is_empty() || self.net_arch.len() > 16 || self.net_arch.iter().any(|&w| w == 0 || w > 65_536) {
            return Err(check::out(
                "training.net_arch",
                format!("{:?}", self.net_arch),
                "must list 1 to 16 layer widths, each in [1, 65536]".into(),
            ));
        }
        let device_ok = matches!(self.device.as_str(), "auto" | "cpu" | "cuda")
            || self.device.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
        if !device_ok {
            return Err(check::out(
                "training.device",
                format!("{:?}", self.device),
                "must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"".into(),
            ));
        }
        check::count("training.threads", self.threads, 0, 1024)?;
        check::count("training.eval_episodes", self.eval_episodes, 1, 1 << 16)?;
        check::count("training.keep_checkpoints", self.keep_checkpoints, 0, 1 << 20)?;
        Ok(())
    }
}
