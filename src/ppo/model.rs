//! The actor-critic network, the observation → network-input step both layouts share,
//! and [`Policy`], a trained model for backtests.
//!
//! Policy and value are separate MLPs (no shared trunk, as SB3's `MlpPolicy` with
//! `net_arch=dict(pi=.., vf=..)` and the seed's ~2.5M-parameter network) in one
//! `VarStore` under `actor.*` and `critic.*`. The policy head gives `n_actions` logits per
//! ticker, one independent categorical each (over {hold, buy, sell}, or the target
//! levels); log-probabilities and
//! entropies are summed over tickers, so the joint action is one sample for PPO.

use super::PpoError;
use super::checkpoint::{self, ModelSpec};
use super::normalize::RunningMeanStd;
use crate::config::{Activation, ObservationLayout, Precision};
use crate::env::MarketData;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tch::nn;
use tch::{Device, Kind, Tensor};

/// The logit of a masked action (sb3-contrib's `MaskableCategorical`): its probability
/// underflows to exactly 0 in f32, while every sum and product stays finite (no NaN in
/// the entropy, whose term p × log p is then 0).
pub const MASKED_LOGIT: f32 = -1e8;
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
#[derive(Debug)]
struct Mlp {
    layers: Vec<nn::Linear>,
    act: Activation,
}

impl Mlp {
    fn new(
        p: nn::Path,
        rng: &mut ChaCha8Rng,
        input: i64,
        hidden: &[usize],
        out: i64,
        out_gain: f64,
        act: Activation,
    ) -> Result<Self, tch::TchError> {
        let mut linear = |p: nn::Path, d_in: i64, d_out: i64, gain: f64| -> Result<nn::Linear, tch::TchError> {
            let ws = p.f_var_copy("weight", &orthogonal(rng, d_out, d_in, gain)?)?;
            let bs = p.f_zeros("bias", &[d_out])?;
            Ok(nn::Linear { ws, bs: Some(bs) })
        };
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut d = input;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(linear(&p / i, d, h as i64, std::f64::consts::SQRT_2)?);
            d = h as i64;
        }
        layers.push(linear(&p / "head", d, out, out_gain)?);
        Ok(Self { layers, act })
    }

    /// The output, in f32. With `kind` bf16 the input, weights and biases are cast for the
    /// products (the f32 weights stay the masters: gradients flow back through the casts).
    fn forward(&self, x: &Tensor, kind: Kind) -> Result<Tensor, tch::TchError> {
        let cast = |t: &Tensor| if t.kind() == kind { Ok(t.shallow_clone()) } else { t.f_to_kind(kind) };
        let mut h = cast(x)?;
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let b = l.bs.as_ref().map(cast).transpose()?;
            h = h.f_linear(&cast(&l.ws)?, b.as_ref())?;
            if i < last {
                h = match self.act {
                    Activation::Tanh => h.f_tanh()?,
                    Activation::Relu => h.f_relu()?,
                };
            }
        }
        if h.kind() == Kind::Float { Ok(h) } else { h.f_to_kind(Kind::Float) }
    }
}

/// Separate policy and value MLPs in one `VarStore`.
#[derive(Debug)]
pub struct ActorCritic {
    /// `actor.{0,1,..,head}.{weight,bias}`, `critic.…`.
    pub vs: nn::VarStore,
    actor: Mlp,
    critic: Mlp,
    /// Kind of the layers' products: f32, or bf16 for mixed precision.
    compute: Kind,
    input_dim: i64,
    n_tickers: i64,
    n_actions: i64,
}

impl ActorCritic {
    /// Builds the network on the CPU with weights drawn from `seed`, then moves it to
    /// `device`: a seed gives the same initial weights on every device.
    ///
    /// # Errors
    /// [`PpoError::Setup`] for an empty shape.
    pub fn new(spec: &ModelSpec, device: Device, seed: u64) -> Result<Self, PpoError> {
        if spec.input_dim == 0 || spec.n_tickers == 0 || spec.n_actions < 2 || spec.net_arch.is_empty() {
            return Err(PpoError::Setup(format!("cannot build a network for {spec:?}")));
        }
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let (input, n_tickers, n_actions) = (spec.input_dim as i64, spec.n_tickers as i64, spec.n_actions as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ INIT_SALT);
        let actor =
            Mlp::new(&root / "actor", &mut rng, input, &spec.net_arch, n_tickers * n_actions, 0.01, spec.activation)?;
        let critic = Mlp::new(&root / "critic", &mut rng, input, &spec.net_arch, 1, 1.0, spec.activation)?;
        vs.set_device(device);
        Ok(Self { vs, actor, critic, compute: Kind::Float, input_dim: input, n_tickers, n_actions })
    }

    /// Runs the products of [`Self::evaluate`] (the update's forward pass) in `precision`
    /// from now on; everything that acts stays f32 (f32 after [`Self::new`]; pass a
    /// precision resolved with [`super::device::resolve_precision`]: `auto` means f32 here).
    pub fn set_precision(&mut self, precision: Precision) {
        self.compute = match precision {
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp32 | Precision::Tf32 | Precision::Auto => Kind::Float,
        };
    }

    /// Trainable parameters.
    pub fn n_params(&self) -> usize {
        self.vs.trainable_variables().iter().map(Tensor::numel).sum()
    }

    fn check(&self, x: &Tensor) -> Result<(), PpoError> {
        match x.size().as_slice() {
            [_, w] if *w == self.input_dim => Ok(()),
            other => {
                Err(PpoError::Setup(format!("network input has shape {other:?}, expected [n, {}]", self.input_dim)))
            }
        }
    }

    /// Logits `[n, n_tickers, 3]` of network inputs `x` `[n, input_dim]`.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        self.logits_in(x, Kind::Float)
    }

    fn logits_in(&self, x: &Tensor, kind: Kind) -> Result<Tensor, PpoError> {
        self.check(x)?;
        Ok(self.actor.forward(x, kind)?.f_view([-1, self.n_tickers, self.n_actions])?)
    }

    /// Logits of `x` with the actions `masks` forbids (`[n, n_tickers, 3]` bool, true =
    /// allowed) set to [`MASKED_LOGIT`]; unmasked without `masks`.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width; a torch error when `masks` has
    /// another shape.
    pub fn masked_logits(&self, x: &Tensor, masks: Option<&Tensor>) -> Result<Tensor, PpoError> {
        mask(self.logits(x)?, masks)
    }

    /// State values `[n]`.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width.
    pub fn value(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        self.value_in(x, Kind::Float)
    }

    fn value_in(&self, x: &Tensor, kind: Kind) -> Result<Tensor, PpoError> {
        self.check(x)?;
        Ok(self.critic.forward(x, kind)?.f_view([-1])?)
    }

    /// Samples actions `[n, n_tickers]` (i64) by inverse CDF from `uniforms` `[n,
    /// n_tickers]` in [0, 1), among the actions `masks` allows (all without), with their summed log-probabilities `[n]` and the values `[n]`.
    ///
    /// The uniforms come from the learner's own seeded stream, not torch's generator, so
    /// that the stream's position is one number in the checkpoint and a resumed run samples
    /// exactly what the uninterrupted one would have.
    ///
    /// # Errors
    /// [`PpoError::Setup`] or a torch error on mismatched shapes.
    pub fn sample(
        &self,
        x: &Tensor,
        uniforms: &Tensor,
        masks: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor), PpoError> {
        let logits = self.masked_logits(x, masks)?;
        let log_p = logits.f_log_softmax(-1, Kind::Float)?;
        let cdf = log_p.f_exp()?.f_cumsum(-1, Kind::Float)?;
        // Action k when cdf[k−1] ≤ u < cdf[k]; rounding can leave the last cdf just below 1.
        let actions = cdf
            .f_le_tensor(&uniforms.f_unsqueeze(-1)?)?
            .f_sum_dim_intlist(&[-1i64][..], false, Kind::Int64)?
            .f_clamp_max(self.n_actions - 1)?;
        let logp = log_p.f_gather(-1, &actions.f_unsqueeze(-1)?, false)?.f_squeeze_dim(-1)?.f_sum_dim_intlist(
            &[-1i64][..],
            false,
            Kind::Float,
        )?;
        Ok((actions, logp, self.value(x)?))
    }

    /// Actions `[n, n_tickers]` (i64) sampled by [`Self::sample`] with host `uniforms`
    /// (`n × n_tickers`, in [0, 1)), moved to `x`'s device.
    ///
    /// # Errors
    /// [`PpoError::Setup`] or a torch error on mismatched shapes.
    pub fn sample_actions(&self, x: &Tensor, uniforms: &[f32], masks: Option<&Tensor>) -> Result<Tensor, PpoError> {
        let u = Tensor::f_from_slice(uniforms)?.f_view([-1, self.n_tickers])?.f_to(x.device())?;
        Ok(self.sample(x, &u, masks)?.0)
    }

    /// The most likely allowed action of every ticker `[n, n_tickers]` (i64).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `x` has the wrong width.
    pub fn greedy(&self, x: &Tensor, masks: Option<&Tensor>) -> Result<Tensor, PpoError> {
        Ok(self.masked_logits(x, masks)?.f_argmax(-1, false)?)
    }

    /// Log-probabilities `[n]` of `actions` `[n, n_tickers]`, entropies `[n]` (both summed
    /// over tickers) and values `[n]`, with gradients: the update's forward pass. With
    /// `logit_bias` ([`mask_bias`] of the masks: 0 where allowed, [`MASKED_LOGIT`] where
    /// not), of the distribution over the allowed actions (a masked action gets no
    /// probability, no gradient and no entropy). An added bias rather than a masked fill:
    /// one operation per minibatch, with nothing to do on the way back.
    ///
    /// # Errors
    /// [`PpoError::Setup`] or a torch error on mismatched shapes.
    pub fn evaluate(
        &self,
        x: &Tensor,
        actions: &Tensor,
        logit_bias: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor), PpoError> {
        let logits = self.logits_in(x, self.compute)?;
        let logits = match logit_bias {
            Some(b) => logits.f_add(b)?,
            None => logits,
        };
        let log_p = logits.f_log_softmax(-1, Kind::Float)?;
        let logp = log_p.f_gather(-1, &actions.f_unsqueeze(-1)?, false)?.f_squeeze_dim(-1)?.f_sum_dim_intlist(
            &[-1i64][..],
            false,
            Kind::Float,
        )?;
        let entropy = log_p.f_exp()?.f_mul(&log_p)?.f_sum_dim_intlist(&[-1i64, -2][..], false, Kind::Float)?.f_neg()?;
        Ok((logp, entropy, self.value_in(x, self.compute)?))
    }
}

/// The networks frozen for a rollout: weights without gradients, in f32, policy and value
/// stacked layer by layer so that each layer of both is one batched product.
///
/// A rollout step runs the networks on a few rows (one per env). On a CPU its cost is
/// mostly the dispatch of each tensor operation, on a GPU the launch of each kernel: so
/// it pays to do fewer of them. Policy and value have the same hidden widths, so layer
/// `i` of both is one `baddbmm` over a batch of two (`[2, n, d_in] × [2, d_in, d_out]`,
/// the input shared by both for the first layer); the heads are padded to the wider one
/// (the policy's `n_tickers × n_actions`; the value's single output, zeros beside it). A
/// step is then one product and one activation per layer, and the outputs of both
/// networks are one tensor that reaches the host in one transfer. The weights do not
/// change during a rollout. Acting is always in f32, as [`Policy`] acts in backtests:
/// with `precision: bf16` only the update's products are in bf16, where the rows are
/// thousands and bf16 pays (on a few rows it is slower than f32).
#[derive(Debug)]
pub struct Inference {
    /// Per layer: `[actorᵀ, criticᵀ]` stacked `[2, d_in, d_out]` and the biases `[2, 1,
    /// d_out]`.
    layers: Vec<(Tensor, Tensor)>,
    act: Activation,
    n_tickers: i64,
    n_actions: i64,
}

impl Inference {
    /// Both networks' outputs `[2, n, n_tickers × n_actions]` in f32: row `[0, i]` env
    /// `i`'s logits, `[1, i, 0]` its value (the rest of row `[1, i]` is padding).
    ///
    /// # Errors
    /// A torch error on mismatched shapes.
    pub fn outputs(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        let x = if x.kind() == Kind::Float { x.shallow_clone() } else { x.f_to_kind(Kind::Float)? };
        let size = x.size();
        let mut h = x.f_unsqueeze(0)?.f_expand([2, size[0], size[1]], false)?;
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = b.f_baddbmm(&h, w, 1.0, 1.0)?;
            if i < last {
                h = match self.act {
                    Activation::Tanh => h.f_tanh()?,
                    Activation::Relu => h.f_relu()?,
                };
            }
        }
        Ok(h)
    }

    /// Logits `[n, n_tickers, n_actions]` and values `[n]`, both f32.
    ///
    /// # Errors
    /// A torch error on mismatched shapes.
    pub fn logits_values(&self, x: &Tensor) -> Result<(Tensor, Tensor), PpoError> {
        let out = self.outputs(x)?;
        let logits = out.f_select(0, 0)?.f_view([-1, self.n_tickers, self.n_actions])?;
        let values = out.f_select(0, 1)?.f_select(1, 0)?;
        Ok((logits, values))
    }
}

impl ActorCritic {
    /// The networks frozen for a rollout (see [`Inference`]).
    ///
    /// # Errors
    /// A torch error when a copy fails.
    pub fn inference(&self) -> Result<Inference, PpoError> {
        tch::no_grad(|| {
            // Every layer of an `Mlp` has a bias. Hidden layers have the same widths in
            // both networks; the heads are padded with zero rows to the wider one.
            let padded = |l: &nn::Linear, rows: i64| -> Result<(Tensor, Tensor), tch::TchError> {
                let (w, b) = (l.ws.f_detach()?, l.bs.as_ref().expect("Mlp layers have biases").f_detach()?);
                let missing = rows - w.size()[0];
                if missing == 0 {
                    return Ok((w, b));
                }
                let zw = Tensor::f_zeros([missing, w.size()[1]], (w.kind(), w.device()))?;
                let zb = Tensor::f_zeros([missing], (b.kind(), b.device()))?;
                Ok((Tensor::f_cat(&[&w, &zw], 0)?, Tensor::f_cat(&[&b, &zb], 0)?))
            };
            let layers = self
                .actor
                .layers
                .iter()
                .zip(&self.critic.layers)
                .map(|(a, c)| {
                    let rows = a.ws.size()[0].max(c.ws.size()[0]);
                    let ((aw, ab), (cw, cb)) = (padded(a, rows)?, padded(c, rows)?);
                    let w = Tensor::f_stack(&[aw.f_tr()?, cw.f_tr()?], 0)?.f_contiguous()?;
                    let b = Tensor::f_stack(&[ab, cb], 0)?.f_unsqueeze(1)?;
                    Ok::<_, tch::TchError>((w, b))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Inference { layers, act: self.actor.act, n_tickers: self.n_tickers, n_actions: self.n_actions })
        })
    }
}

/// `logits` `[n, n_tickers, 3]` with the actions `masks` forbids at [`MASKED_LOGIT`].
fn mask(logits: Tensor, masks: Option<&Tensor>) -> Result<Tensor, PpoError> {
    match masks {
        Some(m) => Ok(logits.f_masked_fill(&m.f_logical_not()?, f64::from(MASKED_LOGIT))?),
        None => Ok(logits),
    }
}

/// Sets the logits of the actions `masks` forbids (host rows, true = allowed) to
/// [`MASKED_LOGIT`], for [`sample_host`].
pub fn mask_host(logits: &mut [f32], masks: &[bool]) {
    for (l, &allowed) in logits.iter_mut().zip(masks) {
        if !allowed {
            *l = MASKED_LOGIT;
        }
    }
}

/// The additive form of `masks` (bool `[n, n_tickers, 3]`) for [`ActorCritic::evaluate`]:
/// 0 where allowed, [`MASKED_LOGIT`] where not (f32).
///
/// # Errors
/// A torch error when `masks` is not a bool tensor.
pub fn mask_bias(masks: &Tensor) -> Result<Tensor, PpoError> {
    Ok(masks.f_logical_not()?.f_to_kind(Kind::Float)?.f_mul_scalar(f64::from(MASKED_LOGIT))?)
}

/// Host masks (`[n × n_tickers × n_actions]`, true = allowed) as a bool tensor `[n,
/// n_tickers, n_actions]` on `device`.
///
/// # Errors
/// A torch error when the copy fails or `masks` has another length.
pub fn masks_tensor(masks: &[bool], spec: &ModelSpec, device: Device) -> Result<Tensor, PpoError> {
    let shape = [-1, spec.n_tickers as i64, spec.n_actions as i64];
    Ok(Tensor::f_from_slice(masks)?.f_view(shape)?.f_to(device)?)
}

/// Samples one action per ticker from `logits` (`[n × n_tickers × n_actions]`, host) by
/// inverse CDF with `uniforms` (`[n × n_tickers]` in [0, 1)): action k when
/// `cdf[k−1] ≤ u < cdf[k]`. Writes the actions and, per row, the summed log-probability of its actions.
///
/// On the host: these are a few hundred numbers per step, fewer than the tensor operations
/// it would take on the device would cost to dispatch.
pub fn sample_host(logits: &[f32], uniforms: &[f32], actions: &mut [u8], logp: &mut [f32]) {
    let n_tickers = uniforms.len() / logp.len().max(1);
    let n_actions = logits.len() / uniforms.len().max(1);
    for (row, lp) in logp.iter_mut().enumerate() {
        let mut sum = 0.0f32;
        for j in row * n_tickers..(row + 1) * n_tickers {
            let l = &logits[n_actions * j..n_actions * (j + 1)];
            let m = l.iter().copied().fold(l[0], f32::max);
            let lse = m + l.iter().map(|&x| (x - m).exp()).fold(0.0f32, |s, e| s + e).ln();
            let (u, mut cdf, mut a) = (uniforms[j], 0.0f32, 0usize);
            // Rounding can leave the last cdf just below 1: clamp to the last action.
            while a < n_actions - 1 {
                cdf += (l[a] - lse).exp();
                if u < cdf {
                    break;
                }
                a += 1;
            }
            actions[j] = a as u8;
            sum += l[a] - lse;
        }
        *lp = sum;
    }
}

/// Turns the env's observation rows into network inputs on the device.
///
/// Materialized rows already are the input. Index rows are [state | bar index]: the
/// shared feature table is uploaded once and gathered per row, `cat(state,
/// table[bar])`, so the host never copies features. On the CPU the table is the market's
/// own memory, not a copy of it.
#[derive(Debug)]
pub struct InputBuilder {
    layout: ObservationLayout,
    obs_dim: usize,
    state_dim: usize,
    /// `[n_bars, n_tickers × n_features]` on the device (index layout only). Declared
    /// before `_features` so that it drops first.
    table: Option<Tensor>,
    /// The market's feature table, kept alive for `table` when that tensor is a view of
    /// it (on the CPU).
    _features: TableMemory,
    device: Device,
}

/// The memory a CPU feature table views (`None`: the tensor owns its own).
type TableMemory = Option<Arc<[f32]>>;

/// The index layout's table of `m` as a `[n_bars, width]` tensor on `device`: on the CPU a
/// view of the market's own memory (returned with it, to be kept alive as long as the
/// tensor), elsewhere an upload.
fn feature_table(m: &MarketData, device: Device) -> Result<(Tensor, TableMemory), tch::TchError> {
    let shape = [m.n_bars() as i64, (m.n_tickers() * m.n_features()) as i64];
    if device != Device::Cpu {
        return Ok((Tensor::f_from_slice(m.feature_table())?.f_view(shape)?.f_to(device)?, None));
    }
    let features = Arc::clone(&m.features);
    // SAFETY: `features` holds `n_bars × width` initialized f32 values (checked when the
    // market was built), never written after that; the caller keeps this Arc alive for
    // as long as the tensor, and the tensor is only read (`index_select` copies rows out).
    let table = unsafe { Tensor::f_from_blob(features.as_ptr().cast::<u8>(), &shape, &[], Kind::Float, Device::Cpu)? };
    Ok((table, Some(features)))
}

impl InputBuilder {
    /// The builder for `spec`; for the index layout, `market` gives the feature table.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when the market does not match the spec, or the index layout has
    /// no market.
    pub fn new(spec: &ModelSpec, market: Option<&MarketData>, device: Device) -> Result<Self, PpoError> {
        // Checked for both layouts, before anything runs: a materialized model on another
        // market would otherwise fail only at its first step, after the replay was set up.
        if let Some(m) = market
            && (m.n_tickers() != spec.n_tickers || m.n_features() != spec.n_features)
        {
            return Err(PpoError::Setup(format!(
                "market has {} tickers × {} features, the model expects {} × {}",
                m.n_tickers(),
                m.n_features(),
                spec.n_tickers,
                spec.n_features
            )));
        }
        let (table, features) = match spec.layout {
            ObservationLayout::Materialized => (None, None),
            ObservationLayout::Index => {
                let m = market.ok_or_else(|| {
                    PpoError::Setup("the index observation layout needs the market's feature table".into())
                })?;
                let (table, features) = feature_table(m, device)?;
                (Some(table), features)
            }
        };
        Ok(Self {
            layout: spec.layout,
            obs_dim: spec.obs_dim,
            state_dim: spec.obs_dim - 1,
            table,
            _features: features,
            device,
        })
    }

    /// Where [`Self::build`] should build (where the index layout's table lives).
    pub fn device(&self) -> Device {
        self.device
    }

    /// Uploads `n` observation rows in one copy and builds the network input `[n,
    /// input_dim]` (raw, before normalization).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `obs` is not `n × obs_dim` long; a torch error for a bar
    /// index outside the table.
    pub fn build(&self, obs: &[f32], n: usize, device: Device) -> Result<Tensor, PpoError> {
        self.check_rows(obs, n)?;
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

impl InputBuilder {
    /// [`Self::build`] on the host, for a builder on the CPU: the inputs as row-major
    /// floats `[n, input_dim]`, with no tensor in between (a rollout step builds a few
    /// rows, where each tensor operation costs more than copying them).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when `obs` is not `n × obs_dim` long, the builder is not on the
    /// CPU, or a bar index is outside the table.
    pub fn build_host(&self, obs: &[f32], n: usize) -> Result<Vec<f32>, PpoError> {
        self.check_rows(obs, n)?;
        let table = match (self.layout, &self._features) {
            (ObservationLayout::Materialized, _) => return Ok(obs.to_vec()),
            (ObservationLayout::Index, Some(table)) if self.device == Device::Cpu => table,
            (ObservationLayout::Index, _) => {
                return Err(PpoError::Setup("the index layout's host inputs need the feature table on the CPU".into()));
            }
        };
        let width = self.table_width();
        let n_bars = table.len() / width.max(1);
        let mut rows = Vec::with_capacity(n * (self.state_dim + width));
        for row in obs.chunks_exact(self.obs_dim) {
            let (state, bar) = row.split_at(self.state_dim);
            let b = bar[0];
            if b.fract() != 0.0 || !b.is_finite() {
                return Err(PpoError::Setup(format!("bar index {b} is not a whole number")));
            }
            if !(b >= 0.0 && (b as usize) < n_bars) {
                return Err(PpoError::Setup(format!("bar index {b} is outside the feature table's {n_bars} bars")));
            }
            rows.extend_from_slice(state);
            rows.extend_from_slice(&table[b as usize * width..(b as usize + 1) * width]);
        }
        Ok(rows)
    }
}

impl InputBuilder {
    /// `obs` must be `n` observation rows.
    fn check_rows(&self, obs: &[f32], n: usize) -> Result<(), PpoError> {
        if obs.len() != n * self.obs_dim {
            return Err(PpoError::Setup(format!(
                "observations: expected {n} × {} floats, got {}",
                self.obs_dim,
                obs.len()
            )));
        }
        Ok(())
    }

    /// The width of the index layout's table rows (0 for the materialized layout).
    fn table_width(&self) -> usize {
        self.table.as_ref().and_then(|t| t.size().get(1).copied()).unwrap_or(0) as usize
    }

    /// The width of the rows [`Self::build`] and [`Self::build_host`] give.
    pub fn input_dim(&self) -> usize {
        match self.layout {
            ObservationLayout::Materialized => self.obs_dim,
            ObservationLayout::Index => self.state_dim + self.table_width(),
        }
    }
}

/// The network's input width for observation rows `obs_dim` wide, the same for both
/// layouts: the row with the bar index (index layout, always the last column) replaced by
/// all tickers' features.
pub fn input_dim(layout: ObservationLayout, obs_dim: usize, n_tickers: usize, n_features: usize) -> usize {
    match layout {
        ObservationLayout::Materialized => obs_dim,
        ObservationLayout::Index => obs_dim - 1 + n_tickers * n_features,
    }
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
    action_masking: bool,
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
            action_masking: state.action_masking,
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

    /// Acts on materialized observation rows whatever layout the model was trained with:
    /// an index row is the materialized one with the features replaced by the bar index, so
    /// the network input is the same. `ploutos trade` builds rows this way from a live feed,
    /// with no feature table to gather from.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when the builder cannot be made.
    pub fn use_materialized_rows(&mut self) -> Result<(), PpoError> {
        let spec =
            ModelSpec { layout: ObservationLayout::Materialized, obs_dim: self.spec.input_dim, ..self.spec.clone() };
        self.input = Some(InputBuilder::new(&spec, None, self.device)?);
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

    /// Whether the model was trained with action masking, and so acts on masked logits
    /// when given the env's masks ([`Policy::try_act_masked`]).
    pub fn action_masking(&self) -> bool {
        self.action_masking
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
        self.try_act_masked(obs, None, n_envs, deterministic)
    }

    /// [`Policy::try_act`] among the actions `masks` allows (`[n_envs × n_tickers ×
    /// n_actions]`,
    /// the env's [`crate::env::StepBuffers::action_masks`]; all without).
    ///
    /// # Errors
    /// As [`Policy::try_act`], and when `masks` has the wrong length.
    pub fn try_act_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
        n_envs: usize,
        deterministic: bool,
    ) -> Result<Vec<u8>, PpoError> {
        if let Some(m) = masks
            && m.len() != n_envs * self.spec.n_tickers * self.spec.n_actions
        {
            return Err(PpoError::Setup(format!(
                "action masks: expected {n_envs} × {} × {} flags, got {}",
                self.spec.n_tickers,
                self.spec.n_actions,
                m.len()
            )));
        }
        tch::no_grad(|| {
            let x = self.inputs(obs, n_envs)?;
            let masks = masks.map(|m| masks_tensor(m, &self.spec, self.device)).transpose()?;
            let actions = if deterministic {
                self.model.greedy(&x, masks.as_ref())?
            } else {
                let n = n_envs * self.spec.n_tickers;
                let u: Vec<f32> = {
                    let mut rng = self.rng.lock().map_err(|_| PpoError::Setup("policy RNG poisoned".into()))?;
                    (0..n).map(|_| rng.random::<f32>()).collect()
                };
                self.model.sample_actions(&x, &u, masks.as_ref())?
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

/// A policy replays in backtests ([`crate::backtest::replay_agent`]) as any agent does.
impl crate::backtest::Agent for Policy {
    type Error = PpoError;

    fn try_act(&self, obs: &[f32], n_envs: usize, deterministic: bool) -> Result<Vec<u8>, PpoError> {
        Policy::try_act(self, obs, n_envs, deterministic)
    }

    fn action_masks(&self) -> bool {
        self.action_masking
    }

    fn try_act_masked(
        &self,
        obs: &[f32],
        masks: &[bool],
        n_envs: usize,
        deterministic: bool,
    ) -> Result<Vec<u8>, PpoError> {
        Policy::try_act_masked(self, obs, Some(masks), n_envs, deterministic)
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
    model.vs.load(&path).map_err(|e| checkpoint::unreadable(&path, &e))?;
    Ok(model)
}

/// Loads the observation statistics of a checkpoint (none when the run did not normalize).
///
/// # Errors
/// [`PpoError::Checkpoint`] when the file or a tensor is missing.
pub fn load_obs_norm(
    dir: &Path,
    state: &checkpoint::CheckpointState,
    device: Device,
) -> Result<Option<RunningMeanStd>, PpoError> {
    if !state.normalize_obs {
        return Ok(None);
    }
    let path = dir.join(checkpoint::NORMALIZER_FILE);
    let named = Tensor::read_safetensors(&path).map_err(|e| checkpoint::unreadable(&path, &e))?;
    RunningMeanStd::from_named(&named, "obs", state.model.input_dim, device)
        .map(Some)
        .map_err(|message| PpoError::Checkpoint { path, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n_actions: usize) -> ModelSpec {
        ModelSpec {
            obs_dim: 13,
            input_dim: 13,
            n_tickers: 3,
            n_actions,
            n_features: 0,
            layout: ObservationLayout::Materialized,
            net_arch: vec![16, 8],
            activation: Activation::Tanh,
        }
    }

    fn model() -> ActorCritic {
        ActorCritic::new(&spec(3), Device::Cpu, 7).expect("model")
    }

    /// On the CPU the index layout's table is the market's own memory (no copy), kept alive
    /// by the builder after the market is gone, and gathered per row.
    #[test]
    fn the_cpu_feature_table_is_the_markets_memory() {
        let market = MarketData::random_walk(50, 3, 4, 0);
        let (state_dim, width) = (5, 3 * 4);
        let spec = ModelSpec {
            obs_dim: state_dim + 1,
            input_dim: state_dim + width,
            n_features: 4,
            layout: ObservationLayout::Index,
            ..spec(3)
        };
        let input = InputBuilder::new(&spec, Some(&market), Device::Cpu).expect("builder");
        let table = input.table.as_ref().expect("index table");
        assert_eq!(table.data_ptr() as *const f32, market.feature_table().as_ptr());
        let want: Vec<Vec<f32>> = [7usize, 49].iter().map(|&t| market.feature_row(t).to_vec()).collect();
        drop(market);
        let mut obs = vec![0.5f32; 2 * (state_dim + 1)];
        (obs[state_dim], obs[2 * state_dim + 1]) = (7.0, 49.0);
        let x = input.build(&obs, 2, Device::Cpu).expect("inputs");
        assert_eq!(x.size(), [2, (state_dim + width) as i64]);
        for (i, row) in want.iter().enumerate() {
            let got = Vec::<f32>::try_from(x.get(i as i64).narrow(0, state_dim as i64, width as i64)).expect("row");
            assert_eq!(&got, row);
        }
        // The host builder gives the same rows, and refuses a bar outside the table.
        let host = input.build_host(&obs, 2).expect("host inputs");
        assert_eq!(host, Vec::<f32>::try_from(x.view([-1])).expect("rows"));
        assert_eq!(input.input_dim(), state_dim + width);
        obs[state_dim] = 50.0;
        let err = input.build_host(&obs, 2).unwrap_err().to_string();
        assert!(err.contains("bar index 50 is outside the feature table's 50 bars"), "{err}");
        obs[state_dim] = 7.5;
        let err = input.build_host(&obs, 2).unwrap_err().to_string();
        assert!(err.contains("bar index 7.5 is not a whole number"), "{err}");
    }

    #[test]
    fn rollout_inference_matches_the_training_networks() {
        tch::manual_seed(0);
        let m = model();
        let x = Tensor::randn([5, 13], (Kind::Float, Device::Cpu));
        let (logits, values) = m.inference().unwrap().logits_values(&x).unwrap();
        let dl = (logits - m.logits(&x).unwrap()).abs().max().double_value(&[]);
        let dv = (values - m.value(&x).unwrap()).abs().max().double_value(&[]);
        assert!(dl < 1e-5 && dv < 1e-5, "logits differ by {dl}, values by {dv}");
    }

    #[test]
    fn host_sampling_matches_the_device_sampler() {
        // The seed's three actions, and five target levels.
        for n_actions in [3u8, 5] {
            tch::manual_seed(1);
            let m = ActorCritic::new(&spec(usize::from(n_actions)), Device::Cpu, 7).expect("model");
            let x = Tensor::randn([256, 13], (Kind::Float, Device::Cpu)) * 3.0;
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let uniforms: Vec<f32> = (0..256 * 3).map(|_| rng.random::<f32>()).collect();
            let u = Tensor::from_slice(&uniforms).view([256, 3]);
            let (want_actions, want_logp, _) = m.sample(&x, &u, None).unwrap();
            let logits = Vec::<f32>::try_from(m.logits(&x).unwrap().contiguous().view([-1])).unwrap();
            assert_eq!(logits.len(), 256 * 3 * usize::from(n_actions));
            let (mut actions, mut logp) = (vec![0u8; 256 * 3], vec![0f32; 256]);
            sample_host(&logits, &uniforms, &mut actions, &mut logp);
            assert_eq!(actions, actions_to_host(&want_actions).unwrap());
            let want_logp = Vec::<f32>::try_from(&want_logp).unwrap();
            for (g, w) in logp.iter().zip(&want_logp) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
            // Every action occurs: the uniforms span the whole CDF.
            assert!((0..n_actions).all(|a| actions.contains(&a)), "{n_actions} actions");
        }
    }

    #[test]
    fn masked_actions_get_no_probability_on_host_device_and_in_the_update() {
        tch::manual_seed(2);
        let m = model();
        let x = Tensor::randn([64, 13], (Kind::Float, Device::Cpu)) * 3.0;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Hold always allowed; buy and sell each forbidden about half the time.
        let masks: Vec<bool> = (0..64 * 3 * 3).map(|i| i % 3 == 0 || rng.random::<bool>()).collect();
        let uniforms: Vec<f32> = (0..64 * 3).map(|_| rng.random::<f32>()).collect();
        let mt = masks_tensor(&masks, &spec(3), Device::Cpu).unwrap();
        let (want_actions, want_logp, _) =
            m.sample(&x, &Tensor::from_slice(&uniforms).view([64, 3]), Some(&mt)).unwrap();
        let want_logp = Vec::<f32>::try_from(&want_logp).unwrap();
        let mut logits = Vec::<f32>::try_from(m.logits(&x).unwrap().contiguous().view([-1])).unwrap();
        mask_host(&mut logits, &masks);
        let (mut actions, mut logp) = (vec![0u8; 64 * 3], vec![0f32; 64]);
        sample_host(&logits, &uniforms, &mut actions, &mut logp);
        assert_eq!(actions, actions_to_host(&want_actions).unwrap());
        assert!(logp.iter().zip(&want_logp).all(|(g, w)| (g - w).abs() < 1e-4), "{logp:?} vs {want_logp:?}");
        for (j, &a) in actions.iter().enumerate() {
            assert!(masks[3 * j + a as usize], "cell {j}: sampled masked action {a}");
        }
        // The update's log-probabilities are the rollout's, and its entropy is that of the
        // allowed actions only: finite, and below the unmasked one.
        let a = actions_to_host(&want_actions).unwrap();
        let at = Tensor::from_slice(&a).to_kind(Kind::Int64).view([64, 3]);
        let (logp_u, ent_masked, _) = m.evaluate(&x, &at, Some(&mask_bias(&mt).unwrap())).unwrap();
        let (_, ent_free, _) = m.evaluate(&x, &at, None).unwrap();
        let got = Vec::<f32>::try_from(&logp_u).unwrap();
        for (g, w) in got.iter().zip(&logp) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        let (em, ef) = (Vec::<f32>::try_from(&ent_masked).unwrap(), Vec::<f32>::try_from(&ent_free).unwrap());
        assert!(em.iter().zip(&ef).all(|(m, f)| m.is_finite() && m <= f), "{em:?} vs {ef:?}");
        let greedy = actions_to_host(&m.greedy(&x, Some(&mt)).unwrap()).unwrap();
        assert!(greedy.iter().enumerate().all(|(j, &a)| masks[3 * j + a as usize]));
    }
}
