//! The actor-critic network, the observation → network-input step both layouts share,
//! and [`Policy`], a trained model for backtests.
//!
//! Policy and value are separate MLPs (no shared trunk, as SB3's `MlpPolicy` with
//! `net_arch=dict(pi=.., vf=..)` and the seed's ~2.5M-parameter network) in one
//! `VarStore` under `actor.*` and `critic.*`. The policy head gives 3 logits per ticker,
//! one independent categorical over {hold, buy, sell} each; log-probabilities and
//! entropies are summed over tickers, so the joint action is one sample for PPO.

use super::checkpoint::{self, ModelSpec};
use super::normalize::RunningMeanStd;
use super::PpoError;
use crate::config::{Activation, ObservationLayout};
use crate::env::MarketData;
use crate::env::observation::state_dim;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Mutex;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Actions per ticker: 0 hold, 1 buy, 2 sell.
pub const N_ACTIONS: i64 = 3;
/// Mixed into the seed of the weight-initialization stream.
const INIT_SALT: u64 = 0x494e_4954_5f57_4549; // "INIT_WEI"

/// A `[rows, cols]` orthogonal matrix × `gain` (`torch.nn.init.orthogonal_`): QR of a
/// standard-normal matrix drawn from `rng`, signs fixed by R's diagonal.
///
/// The normals come from the learner's seeded stream rather than torch's global
/// generator, which anything else in the process (another trainer, a test running in
/// parallel) may reseed or draw from: a seed alone fixes the initial weights.
fn orthogonal(rng: &mut ChaCha8Rng, rows: i64, cols: i64, gain: f64) -> Result<Tensor, tch::TchError> {
    let (r, c) = if rows < cols { (cols, rows) } else { (rows, cols) };
    let normals: Vec<f32> = (0..r * c)
        .map(|_| {
            // Box–Muller; 1 − u keeps the logarithm finite.
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    let a = Tensor::f_from_slice(&normals)?.f_view([r, c])?;
    let (q, rr) = Tensor::f_linalg_qr(&a, "reduced")?;
    let q = q.f_mul(&rr.f_diag(0)?.f_sign()?)?;
    let q = if rows < cols { q.f_t_copy()? } else { q };
    q.f_mul_scalar(gain)?.f_contiguous()
}

/// An MLP with orthogonal weights and zero biases: gain √2 on hidden layers, `out_gain` on
/// the head (0.01 for the policy, so that the first policy is near uniform; 1 for the
/// value), the CleanRL/SB3 initialization.
///
/// Returns `nn::Sequential` rather than `impl Module`: in edition 2024 an `impl` return
/// captures the `Path` borrow and blocks a later `VarStore::load`.
fn mlp(
    p: nn::Path,
    rng: &mut ChaCha8Rng,
    input: i64,
    hidden: &[usize],
    out: i64,
    out_gain: f64,
    act: Activation,
) -> Result<nn::Sequential, tch::TchError> {
    let mut linear = |p: nn::Path, d_in: i64, d_out: i64, gain: f64| -> Result<nn::Linear, tch::TchError> {
        let ws = p.f_var_copy("weight", &orthogonal(rng, d_out, d_in, gain)?)?;
        let bs = p.f_zeros("bias", &[d_out])?;
        Ok(nn::Linear { ws, bs: Some(bs) })
    };
    let mut seq = nn::seq();
    let mut d = input;
    for (i, &h) in hidden.iter().enumerate() {
        seq = seq.add(linear(&p / i, d, h as i64, std::f64::consts::SQRT_2)?);
        seq = match act {
            Activation::Tanh => seq.add_fn(|x| x.tanh()),
            Activation::Relu => seq.add_fn(|x| x.relu()),
        };
        d = h as i64;
    }
    Ok(seq.add(linear(&p / "head", d, out, out_gain)?))
}

/// Separate policy and value MLPs in one `VarStore`.
#[derive(Debug)]
pub struct ActorCritic {
    /// `actor.{0,1,..,head}.{weight,bias}`, `critic.…`.
    pub vs: nn::VarStore,
    actor: nn::Sequential,
    critic: nn::Sequential,
    input_dim: i64,
    n_tickers: i64,
}

impl ActorCritic {
    /// Builds the network on the CPU with weights drawn from `seed`, then moves it to
    /// `device`: a seed gives the same initial weights on every device.
    ///
    /// # Errors
    /// [`PpoError::Setup`] for an empty shape.
    pub fn new(spec: &ModelSpec, device: Device, seed: u64) -> Result<Self, PpoError> {
        if spec.input_dim == 0 || spec.n_tickers == 0 || spec.net_arch.is_empty() {
            return Err(PpoError::Setup(format!("cannot build a network for {spec:?}")));
        }
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let (input, n_tickers) = (spec.input_dim as i64, spec.n_tickers as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ INIT_SALT);
        let actor = mlp(&root / "actor", &mut rng, input, &spec.net_arch, n_tickers * N_ACTIONS, 0.01, spec.activation)?;
        let critic = mlp(&root / "critic", &mut rng, input, &spec.net_arch, 1, 1.0, spec.activation)?;
        vs.set_device(device);
        Ok(Self { vs, actor, critic, input_dim: input, n_tickers })
    }

    /// Trainable parameters.
    pub fn n_params(&self) -> usize {
        self.vs.trainable_variables().iter().map(Tensor::numel).sum()
    }

    fn check(&self, x: &Tensor) -> Result<(), PpoError> {
        match x.size().as_slice() {
            [_, w] if *w == self.input_dim => Ok(()),
            other => Err(PpoError::Setup(format!("network input has shape {other:?}, expected [n, {}]", self.input_dim))),
        }
    }

    /// Logits `[n, n_tickers, 3]` of network inputs `x` `[n, input_dim]`.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        self.check(x)?;
        Ok(self.actor.forward(x).f_view([-1, self.n_tickers, N_ACTIONS])?)
    }

    /// State values `[n]`.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width.
    pub fn value(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        self.check(x)?;
        Ok(self.critic.forward(x).f_view([-1])?)
    }

    /// Samples actions `[n, n_tickers]` (i64) by inverse CDF from `uniforms` `[n,
    /// n_tickers]` in [0, 1), with their summed log-probabilities `[n]` and the values `[n]`.
    ///
    /// The uniforms come from the learner's own seeded stream, not torch's generator, so
    /// that the stream's position is one number in the checkpoint and a resumed run samples
    /// exactly what the uninterrupted one would have.
    ///
    /// # Errors
    /// [`PpoError::Setup`] or a torch error on mismatched shapes.
    pub fn sample(&self, x: &Tensor, uniforms: &Tensor) -> Result<(Tensor, Tensor, Tensor), PpoError> {
        let logits = self.logits(x)?;
        let log_p = logits.f_log_softmax(-1, Kind::Float)?;
        let cdf = log_p.f_exp()?.f_cumsum(-1, Kind::Float)?;
        // Action k when cdf[k−1] ≤ u < cdf[k]; rounding can leave cdf[2] just below 1.
        let actions = cdf
            .f_le_tensor(&uniforms.f_unsqueeze(-1)?)?
            .f_sum_dim_intlist(&[-1i64][..], false, Kind::Int64)?
            .f_clamp_max(N_ACTIONS - 1)?;
        let logp = log_p.f_gather(-1, &actions.f_unsqueeze(-1)?, false)?.f_squeeze_dim(-1)?.f_sum_dim_intlist(
            &[-1i64][..],
            false,
            Kind::Float,
        )?;
        Ok((actions, logp, self.value(x)?))
    }

    /// The most likely action of every ticker `[n, n_tickers]` (i64).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width.
    pub fn greedy(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        Ok(self.logits(x)?.f_argmax(-1, false)?)
    }

    /// Log-probabilities `[n]` of `actions` `[n, n_tickers]`, entropies `[n]` (both summed
    /// over tickers) and values `[n]`, with gradients: the update's forward pass.
    ///
    /// # Errors
    /// [`PpoError::Setup`] or a torch error on mismatched shapes.
    pub fn evaluate(&self, x: &Tensor, actions: &Tensor) -> Result<(Tensor, Tensor, Tensor), PpoError> {
        let log_p = self.logits(x)?.f_log_softmax(-1, Kind::Float)?;
        let logp = log_p
            .f_gather(-1, &actions.f_unsqueeze(-1)?, false)?
            .f_squeeze_dim(-1)?
            .f_sum_dim_intlist(&[-1i64][..], false, Kind::Float)?;
        let entropy = log_p
            .f_exp()?
            .f_mul(&log_p)?
            .f_sum_dim_intlist(&[-1i64, -2][..], false, Kind::Float)?
            .f_neg()?;
        Ok((logp, entropy, self.value(x)?))
    }
}

/// Turns the env's observation rows into network inputs on the device.
///
/// Materialized rows already are the input. Index rows are [state | bar index]: the
/// shared feature table is uploaded once and gathered per row, `cat(state,
/// table[bar])`, so the host never copies features.
#[derive(Debug)]
pub struct InputBuilder {
    layout: ObservationLayout,
    obs_dim: usize,
    state_dim: usize,
    /// `[n_bars, n_tickers × n_features]` on the device (index layout only).
    table: Option<Tensor>,
}

impl InputBuilder {
    /// The builder for `spec`; for the index layout, `market` gives the feature table.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when the market does not match the spec, or the index layout has
    /// no market.
    pub fn new(spec: &ModelSpec, market: Option<&MarketData>, device: Device) -> Result<Self, PpoError> {
        let table = match spec.layout {
            ObservationLayout::Materialized => None,
            ObservationLayout::Index => {
                let m = market.ok_or_else(|| {
                    PpoError::Setup("the index observation layout needs the market's feature table".into())
                })?;
                if m.n_tickers() != spec.n_tickers || m.n_features() != spec.n_features {
                    return Err(PpoError::Setup(format!(
                        "market has {} tickers × {} features, the model expects {} × {}",
                        m.n_tickers(),
                        m.n_features(),
                        spec.n_tickers,
                        spec.n_features
                    )));
                }
                let width = (m.n_tickers() * m.n_features()) as i64;
                Some(Tensor::f_from_slice(m.feature_table())?.f_view([m.n_bars() as i64, width])?.f_to(device)?)
            }
        };
        Ok(Self { layout: spec.layout, obs_dim: spec.obs_dim, state_dim: state_dim(spec.n_tickers), table })
    }

    /// Uploads `n` observation rows in one copy and builds the network input `[n,
    /// input_dim]` (raw, before normalization).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `obs` is not `n × obs_dim` long; a torch error for a bar
    /// index outside the table.
    pub fn build(&self, obs: &[f32], n: usize, device: Device) -> Result<Tensor, PpoError> {
        if obs.len() != n * self.obs_dim {
            return Err(PpoError::Setup(format!(
                "observations: expected {n} × {} floats, got {}",
                self.obs_dim,
                obs.len()
            )));
        }
        let rows = Tensor::f_from_slice(obs)?.f_view([n as i64, self.obs_dim as i64])?.f_to(device)?;
        match (&self.layout, &self.table) {
            (ObservationLayout::Index, Some(table)) => {
                let s = self.state_dim as i64;
                let state = rows.f_narrow(1, 0, s)?;
                let bars = rows.f_narrow(1, s, 1)?.f_squeeze_dim(1)?.f_to_kind(Kind::Int64)?;
                Ok(Tensor::f_cat(&[state, table.f_index_select(0, &bars)?], 1)?)
            }
            _ => Ok(rows),
        }
    }
}

/// The network's input width, the same for both layouts: state + all tickers' features.
pub fn input_dim(n_tickers: usize, n_features: usize) -> usize {
    state_dim(n_tickers) + n_tickers * n_features
}

/// A trained policy for backtests: the saved network and observation statistics.
#[derive(Debug)]
pub struct Policy {
    model: ActorCritic,
    spec: ModelSpec,
    obs_norm: Option<RunningMeanStd>,
    obs_clip: f64,
    input: Option<InputBuilder>,
    device: Device,
    rng: Mutex<ChaCha8Rng>,
}

impl Policy {
    /// Loads a checkpoint directory (`final/`, `best/`, `checkpoints/step_<N>/`).
    ///
    /// With the index layout, call [`Policy::set_market`] before acting.
    ///
    /// # Errors
    /// [`PpoError::File`] or [`PpoError::Checkpoint`] for a missing or damaged checkpoint.
    pub fn load(dir: &Path, device: Device) -> Result<Self, PpoError> {
        let state = checkpoint::read_state(dir)?;
        let model = load_model(dir, &state.model, device)?;
        let obs_norm = load_obs_norm(dir, &state, device)?;
        let input = match state.model.layout {
            ObservationLayout::Materialized => Some(InputBuilder::new(&state.model, None, device)?),
            ObservationLayout::Index => None,
        };
        Ok(Self {
            model,
            obs_norm,
            obs_clip: state.obs_clip,
            input,
            device,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(state.seed)),
            spec: state.model,
        })
    }

    /// Gives the policy the market whose bar indices the observations hold (index layout;
    /// a no-op check for materialized rows).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when the market's shape differs from the model's.
    pub fn set_market(&mut self, market: &MarketData) -> Result<(), PpoError> {
        self.input = Some(InputBuilder::new(&self.spec, Some(market), self.device)?);
        Ok(())
    }

    /// The network's shape and observation layout.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The network (for inspection and tests).
    pub fn model(&self) -> &ActorCritic {
        &self.model
    }

    /// Reseeds the sampling stream of stochastic actions.
    pub fn seed(&self, seed: u64) {
        if let Ok(mut rng) = self.rng.lock() {
            *rng = ChaCha8Rng::seed_from_u64(seed);
        }
    }

    fn inputs(&self, obs: &[f32], n_envs: usize) -> Result<Tensor, PpoError> {
        let input = self
            .input
            .as_ref()
            .ok_or_else(|| PpoError::Setup("index layout: call Policy::set_market before acting".into()))?;
        let raw = input.build(obs, n_envs, self.device)?;
        Ok(match &self.obs_norm {
            Some(n) => n.normalize(&raw, self.obs_clip)?,
            None => raw,
        })
    }

    /// Actions `[n_envs × n_tickers]` (0 hold, 1 buy, 2 sell) for env observation rows.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `obs` is not `n_envs × obs_dim` long, or the index layout
    /// has no market yet.
    pub fn try_act(&self, obs: &[f32], n_envs: usize, deterministic: bool) -> Result<Vec<u8>, PpoError> {
        tch::no_grad(|| {
            let x = self.inputs(obs, n_envs)?;
            let actions = if deterministic {
                self.model.greedy(&x)?
            } else {
                let n = n_envs * self.spec.n_tickers;
                let u: Vec<f32> = {
                    let mut rng = self.rng.lock().map_err(|_| PpoError::Setup("policy RNG poisoned".into()))?;
                    (0..n).map(|_| rng.random::<f32>()).collect()
                };
                let u = Tensor::f_from_slice(&u)?
                    .f_view([n_envs as i64, self.spec.n_tickers as i64])?
                    .f_to(self.device)?;
                self.model.sample(&x, &u)?.0
            };
            actions_to_host(&actions)
        })
    }

    /// [`Policy::try_act`] for callers that have checked their shapes.
    ///
    /// # Panics
    /// When [`Policy::try_act`] fails: `obs` is not `n_envs × obs_dim` long, or the index
    /// layout has no market yet.
    pub fn act(&self, obs: &[f32], n_envs: usize, deterministic: bool) -> Vec<u8> {
        match self.try_act(obs, n_envs, deterministic) {
            Ok(a) => a,
            Err(e) => panic!("Policy::act: {e}"),
        }
    }

    /// State values `[n_envs]` of observation rows (in normalized-reward units when the
    /// run scaled rewards).
    ///
    /// # Errors
    /// As [`Policy::try_act`].
    pub fn values(&self, obs: &[f32], n_envs: usize) -> Result<Vec<f32>, PpoError> {
        tch::no_grad(|| {
            let v = self.model.value(&self.inputs(obs, n_envs)?)?;
            Ok(Vec::<f32>::try_from(v.f_to(Device::Cpu)?)?)
        })
    }
}

/// Copies actions `[n, n_tickers]` to the host as bytes, in one transfer.
///
/// # Errors
/// A torch error when the copy fails.
pub fn actions_to_host(actions: &Tensor) -> Result<Vec<u8>, PpoError> {
    let bytes = actions.f_to_kind(Kind::Uint8)?.f_to(Device::Cpu)?.f_contiguous()?;
    let mut out = vec![0u8; bytes.numel()];
    bytes.f_copy_data_u8(&mut out, bytes.numel())?;
    Ok(out)
}

/// Builds the network of `spec` and loads `model.safetensors` from `dir`.
///
/// # Errors
/// [`PpoError::Tch`] when a variable is missing or misshapen.
pub fn load_model(dir: &Path, spec: &ModelSpec, device: Device) -> Result<ActorCritic, PpoError> {
    let mut model = ActorCritic::new(spec, device, 0)?;
    let path = dir.join(checkpoint::MODEL_FILE);
    if !path.is_file() {
        return Err(PpoError::Checkpoint { path, message: "missing".into() });
    }
    model.vs.load(&path)?;
    Ok(model)
}

/// Loads the observation statistics of a checkpoint (none when the run did not normalize).
///
/// # Errors
/// [`PpoError::Checkpoint`] when the file or a tensor is missing.
pub fn load_obs_norm(dir: &Path, state: &checkpoint::CheckpointState, device: Device) -> Result<Option<RunningMeanStd>, PpoError> {
    if !state.normalize_obs {
        return Ok(None);
    }
    let path = dir.join(checkpoint::NORMALIZER_FILE);
    let named = Tensor::read_safetensors(&path)?;
    RunningMeanStd::from_named(&named, "obs", state.model.input_dim, device)
        .map(Some)
        .map_err(|message| PpoError::Checkpoint { path, message })
}
