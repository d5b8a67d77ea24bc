//! The learner's state: network, optimizer, normalizers, RNG and rollout storage, everything
//! PPO needs besides the envs and the run's bookkeeping (CleanRL's set-up before the loop);
//! how raw observations become network inputs; and the tensors a checkpoint saves of it.
//!
//! Its steps live beside it, one file each: [`super::rollout`] (`collect`),
//! [`super::update`] (`update`), [`super::evaluate`] (`evaluate`).

use super::checkpoint::{self, CheckpointState, ModelSpec};
use super::minibatch::{Batch, UpdateGraph};
use super::model::{self, ActorCritic, InputBuilder};
use super::normalize::{RewardScaler, RunningMeanStd};
use super::optimizer::Adam;
use super::profile::Profiler;
use super::rollout::Rollout;
use super::{PpoError, device};
use crate::config::{Config, Precision, TrainingConfig};
use crate::observation;
use crate::vec_env::TradingEnv;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Mixed into the seed of the learner's stream so that it never equals env 0's stream
/// (envs use `ChaCha8Rng::seed_from_u64(seed)` with stream = env index).
const LEARNER_SALT: u64 = 0x5050_4f5f_4c45_4152; // "PPO_LEAR"

/// Rollouts of at most this many input floats per step (`n_envs × input_dim`) build and
/// normalize their inputs on the host and upload them once, whatever the device.
///
/// On a GPU, building and normalizing a step's inputs there costs about twenty kernel
/// launches (the index layout's gather, the running statistics' merge, the
/// normalization), each some microseconds of host time, whatever the rows: for the seed's
/// 16 envs, more than the arithmetic on the host (16 × 584 floats). For thousands of envs
/// the device's bandwidth wins. 64 Ki floats is 112 envs of the 584-float input.
pub(super) const HOST_INPUT_FLOATS: usize = 1 << 16;

/// Network, optimizer, normalizers, RNG and rollout storage: everything PPO needs besides
/// the envs and the run's bookkeeping.
#[derive(Debug)]
pub(crate) struct Learner {
    pub(super) cfg: TrainingConfig,
    pub(super) device: Device,
    pub(super) spec: ModelSpec,
    pub(super) model: ActorCritic,
    pub(super) adam: Adam,
    /// Builds the network inputs, on the host for small rollouts ([`HOST_INPUT_FLOATS`]),
    /// else on the device; the observation statistics live where the inputs are built.
    pub(super) input: InputBuilder,
    pub(super) obs_norm: Option<RunningMeanStd>,
    /// The update's f32 products may use TF32 (`precision: tf32` on CUDA).
    pub(super) tf32: bool,
    /// Per-phase wall times, for `ploutos bench --train --profile` (off otherwise: a mark
    /// waits for the device).
    pub(super) profiler: Option<Profiler>,
    pub(super) rew_scaler: Option<RewardScaler>,
    pub(super) rng: ChaCha8Rng,
    pub(super) n_envs: usize,
    pub(super) rollout: Rollout,
    /// The rollout's samples as the update reads them.
    pub(super) batch: Batch,
    /// The update's minibatch captured as a CUDA graph (on CUDA, after the first update).
    pub(super) update_graph: Option<UpdateGraph>,
    /// Tests: full minibatches run the captured pass eagerly on any device, to check it
    /// against the eager minibatch.
    pub(super) force_pass: bool,
    /// Tests: the update runs eagerly even where graphs are on, to compare both on CUDA.
    pub(super) eager_update: bool,
    /// Normalized inputs of the observations to act on next. `[n_envs, input_dim]`
    pub(super) x: Tensor,
    /// Buffers reused every step: the step's logits on the host `[n_envs, n_tickers, n_actions]`
    /// and the uniforms actions are sampled with `[n_envs, n_tickers]`.
    pub(super) logits_host: Vec<f32>,
    pub(super) uniforms: Vec<f32>,
    /// The env's action masks for the observations to act on next `[n_envs, n_tickers,
    /// 3]` (empty without `training.action_masking`).
    pub(super) masks: Vec<bool>,
}

/// The model shape a config and an env give.
pub(super) fn model_spec(cfg: &Config, env: &TradingEnv) -> Result<ModelSpec, PpoError> {
    let m = env.market();
    let layout = cfg.environment.observation_layout;
    let expected = observation::market_dim(layout, m.n_tickers(), m.n_features());
    let market = env.observation_columns().get("market").unwrap_or_default();
    if market.len() != expected || market.end != env.obs_dim() {
        return Err(PpoError::Setup(format!(
            "env observations end with {} market columns of {}, but environment.observation_layout = {layout:?} with {} tickers × {} features means the last {expected}",
            market.len(),
            env.obs_dim(),
            m.n_tickers(),
            m.n_features()
        )));
    }
    Ok(ModelSpec {
        obs_dim: env.obs_dim(),
        input_dim: model::input_dim(layout, env.obs_dim(), m.n_tickers(), m.n_features()),
        n_tickers: m.n_tickers(),
        n_features: m.n_features(),
        layout,
        net_arch: cfg.training.net_arch.clone(),
        activation: cfg.training.activation,
        n_actions: env.n_actions(),
    })
}

impl Learner {
    /// Builds everything for `env`; the initial weights and the learner's stream come from
    /// `training.seed`.
    pub(super) fn new(cfg: &Config, env: &TradingEnv) -> Result<Self, PpoError> {
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
        if device == Device::Cpu {
            refuse_too_big(&spec, t, n_envs)?;
        }
        let mut model = ActorCritic::new(&spec, device, t.seed)?;
        let precision = device::resolve_precision(t.precision, device);
        model.set_precision(precision);
        let adam = Adam::new(&model.vs, t.learning_rate, 1e-5)?;
        let input_device = if n_envs * spec.input_dim <= HOST_INPUT_FLOATS { Device::Cpu } else { device };
        let input = InputBuilder::new(&spec, Some(env.market()), input_device)?;
        let obs_norm = if t.normalize_obs { Some(RunningMeanStd::new(spec.input_dim, input_device)?) } else { None };
        let rew_scaler = t.normalize_reward.then(|| RewardScaler::new(n_envs, t.gamma));
        // With mixed precision the inputs are kept in bf16: the network casts them anyway,
        // and minibatch gathers move half the bytes.
        let x_kind = match precision {
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp32 | Precision::Tf32 | Precision::Auto => Kind::Float,
        };
        let tf32 = precision == Precision::Tf32 && device.is_cuda();
        let rollout = Rollout::new(t.n_steps, n_envs, &spec, x_kind, device, t.action_masking)?;
        let batch = Batch::new(&rollout, spec.n_tickers, spec.n_actions, device)?;
        let (n, d) = (n_envs as i64, spec.input_dim as i64);
        Ok(Self {
            cfg: t.clone(),
            device,
            x: Tensor::f_zeros([n, d], (Kind::Float, device))?,
            logits_host: vec![0.0; n_envs * spec.n_tickers * spec.n_actions],
            uniforms: vec![0.0; n_envs * spec.n_tickers],
            masks: if t.action_masking { vec![true; n_envs * spec.n_tickers * spec.n_actions] } else { Vec::new() },
            spec,
            model,
            adam,
            input,
            obs_norm,
            tf32,
            profiler: None,
            rew_scaler,
            rng: ChaCha8Rng::seed_from_u64(t.seed ^ LEARNER_SALT),
            n_envs,
            rollout,
            batch,
            update_graph: None,
            force_pass: false,
            eager_update: false,
        })
    }

    /// Restarts every training env's episode from `seed`.
    pub(super) fn reset_envs(&mut self, env: &mut TradingEnv, seed: u64) -> Result<(), PpoError> {
        let buffers = env.reset(seed);
        self.x =
            observe(&mut self.obs_norm, self.cfg.obs_clip, &self.input, self.device, &buffers.obs, self.n_envs, true)?;
        if self.cfg.action_masking {
            self.masks.copy_from_slice(&buffers.action_masks);
        }
        if let Some(s) = &mut self.rew_scaler {
            s.restart();
        }
        Ok(())
    }

    /// Writes model, optimizer and normalizer files into `dir`.
    pub(super) fn save_tensors(&self, dir: &Path) -> Result<(), PpoError> {
        let at = |file: &str| {
            let path = dir.join(file);
            move |e: tch::TchError| checkpoint::unwritable(&path, &e)
        };
        self.model.vs.save(dir.join(checkpoint::MODEL_FILE)).map_err(at(checkpoint::MODEL_FILE))?;
        Tensor::write_safetensors(&self.adam.named_tensors()?, dir.join(checkpoint::OPTIMIZER_FILE))
            .map_err(at(checkpoint::OPTIMIZER_FILE))?;
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
        Tensor::write_safetensors(&norm, dir.join(checkpoint::NORMALIZER_FILE))
            .map_err(at(checkpoint::NORMALIZER_FILE))?;
        Ok(())
    }

    /// Restores weights, optimizer, normalizers and RNG position from a checkpoint.
    pub(super) fn load(&mut self, dir: &Path, state: &CheckpointState) -> Result<(), PpoError> {
        let err = |file: &str, message: String| PpoError::Checkpoint { path: dir.join(file), message };
        let model = dir.join(checkpoint::MODEL_FILE);
        self.model.vs.load(&model).map_err(|e| checkpoint::unreadable(&model, &e))?;
        let optimizer = dir.join(checkpoint::OPTIMIZER_FILE);
        let opt = Tensor::read_safetensors(&optimizer).map_err(|e| checkpoint::unreadable(&optimizer, &e))?;
        self.adam.load_named(&opt).map_err(|m| err(checkpoint::OPTIMIZER_FILE, m))?;
        if self.obs_norm.is_some() {
            self.obs_norm = model::load_obs_norm(dir, state, self.input.device())?;
            if self.obs_norm.is_none() {
                tracing::warn!("the checkpoint has no observation statistics; starting them afresh");
                self.obs_norm = Some(RunningMeanStd::new(self.spec.input_dim, self.input.device())?);
            }
        }
        if let Some(r) = &mut self.rew_scaler {
            let normalizer = dir.join(checkpoint::NORMALIZER_FILE);
            let named = Tensor::read_safetensors(&normalizer).map_err(|e| checkpoint::unreadable(&normalizer, &e))?;
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

/// Raw observation rows → normalized network inputs on `device`; `update` merges them
/// into the running statistics first (SB3 updates, then normalizes, on every training
/// step).
pub(super) fn observe(
    obs_norm: &mut Option<RunningMeanStd>,
    clip: f64,
    input: &InputBuilder,
    device: Device,
    obs: &[f32],
    n: usize,
    update: bool,
) -> Result<Tensor, PpoError> {
    Ok(observe_where_built(obs_norm, clip, input, obs, n, update)?.f_to(device)?)
}

/// [`observe`], left where `input` builds (the host for small rollouts): the rollout
/// uploads it straight into its storage.
pub(super) fn observe_where_built(
    obs_norm: &mut Option<RunningMeanStd>,
    clip: f64,
    input: &InputBuilder,
    obs: &[f32],
    n: usize,
    update: bool,
) -> Result<Tensor, PpoError> {
    if input.device() == Device::Cpu && obs_norm.as_ref().is_none_or(|s| s.mean.device() == Device::Cpu) {
        // The rollout's per-step path: rows, statistics and normalization as host loops.
        let mut rows = input.build_host(obs, n)?;
        let dim = input.input_dim();
        if let Some(norm) = obs_norm {
            if update {
                norm.update_rows(&rows, dim)?;
            }
            norm.normalize_rows(&mut rows, dim, clip)?;
        }
        return Ok(Tensor::f_from_slice(&rows)?.f_view([n as i64, dim as i64])?);
    }
    let raw = input.build(obs, n, input.device())?;
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

impl Learner {
    /// Charges the time since the last mark to `phase` when profiling (see [`Profiler`]).
    pub(super) fn mark(&mut self, phase: &'static str) {
        if let Some(p) = &mut self.profiler {
            p.mark(phase);
        }
    }

    /// Starts a profiled stretch (a rollout, an update) without charging anything.
    pub(super) fn mark_start(&mut self) {
        if let Some(p) = &mut self.profiler {
            p.start();
        }
    }
}

/// An estimate of the bytes a run holds at once on its device: the policy's and the value's
/// weights with their gradients and Adam's two moments, the rollout's network inputs and
/// per-step scalars, and a minibatch's inputs and activations, all in f32 (bf16 rollout
/// inputs take half).
pub(crate) fn memory_needed(spec: &ModelSpec, t: &TrainingConfig, n_envs: usize) -> u64 {
    let mlp = |out: usize| {
        let dims: Vec<u64> = std::iter::once(spec.input_dim)
            .chain(spec.net_arch.iter().copied())
            .chain([out])
            .map(|d| d as u64)
            .collect();
        dims.windows(2).map(|w| w[0] * w[1] + w[1]).sum::<u64>()
    };
    let params = mlp(spec.n_tickers * spec.n_actions) + mlp(1);
    let rows = (t.n_steps as u64) * (n_envs as u64);
    let per_row = spec.input_dim as u64 + 8 + 2 * (spec.n_tickers * spec.n_actions) as u64;
    let hidden: u64 = spec.net_arch.iter().map(|&h| h as u64).sum();
    let minibatch = t.batch_size as u64 * (spec.input_dim as u64 + 4 * hidden);
    4 * (4 * params + rows * per_row + minibatch)
}

/// Refuses a config whose [`memory_needed`] is over the machine's memory (`MemTotal`, or
/// a cgroup's limit when lower): the allocation would fail or the kernel kill the run
/// somewhere in its set-up, instead of one line saying which keys to change.
fn refuse_too_big(spec: &ModelSpec, t: &TrainingConfig, n_envs: usize) -> Result<(), PpoError> {
    let need = memory_needed(spec, t, n_envs);
    let Some(have) = machine_memory() else { return Ok(()) };
    if need <= have {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    Err(PpoError::TooBig(format!(
        "training.net_arch {:?} with {} envs × {} steps needs at least {:.1} GiB, this machine has {:.1} GiB: make training.net_arch, training.n_envs or training.n_steps smaller",
        spec.net_arch,
        n_envs,
        t.n_steps,
        gib(need),
        gib(have)
    )))
}

/// The machine's memory in bytes (`/proc/meminfo`'s `MemTotal`, or a lower cgroup v2
/// limit); `None` where neither can be read.
fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|s| s.trim().parse::<u64>().ok());
    match (total, limit) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, l) => t.or(l),
    }
}
