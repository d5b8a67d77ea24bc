//! One minibatch of the PPO update, two ways: eagerly, operation by operation with a host
//! check of `target_kl` ([`Learner::eager_minibatch`]), and as one CUDA graph
//! ([`Learner::graph_minibatch`]).
//!
//! On a GPU a minibatch of the seed's network is some 200 kernels (gathers, forward,
//! losses, backward, clip, Adam) whose launches, not their arithmetic, set its time: the
//! profile on an H200 showed the same 4.7 ms per minibatch in f32, TF32 and bf16. Captured
//! once per run and replayed, a minibatch is one launch.
//!
//! A graph reads and writes fixed addresses and cannot wait for the host. So the captured
//! pass ([`minibatch_pass`]) gathers its samples from [`Batch`], tensors that live as long as
//! the learner and that each update refills; its sample indices and Adam's step-dependent
//! factors are device tensors filled before each replay; and the `target_kl` stop is
//! decided on the device: Adam writes its step only where the KL allows it
//! ([`Adam::masked_step`]), and the host reads that flag after the replay. The pass gives
//! the eager minibatch's results: bit for bit on the CPU, where the tests run it against the
//! eager update; on CUDA within a rounding step (the eager step divides by a host scalar,
//! which CUDA's kernel turns into a product with its reciprocal).
//!
//! [`Adam::masked_step`]: super::optimizer::Adam::masked_step

use super::PpoError;
use super::cuda_graph::{self, CudaGraph};
use super::learner::Learner;
use super::loss;
use super::model::{self, ActorCritic};
use super::optimizer::Adam;
use super::rollout::Rollout;
use crate::config::TrainingConfig;
use tch::{Device, Kind, Tensor};

/// The rollout's samples as the update reads them, at addresses fixed for the learner's
/// life (a captured minibatch gathers from them): each update writes its rollout in.
#[derive(Debug)]
pub(super) struct Batch {
    /// The rollout's inputs, a view of its storage. `[total, input_dim]`
    x: Tensor,
    /// `[total, n_tickers]`, i64
    actions: Tensor,
    /// Old log-probability, value, return and advantage of each sample side by side, so
    /// that a minibatch gathers them in one operation. `[total, 4]`
    scalars: Tensor,
    /// Logit bias of the masks each action was sampled under (the update scores the same
    /// distribution). `[total, n_tickers, n_actions]`; `None` without action masking
    bias: Option<Tensor>,
}

/// One minibatch's samples.
struct Samples {
    x: Tensor,
    actions: Tensor,
    old_logp: Tensor,
    old_values: Tensor,
    returns: Tensor,
    advantages: Tensor,
    bias: Option<Tensor>,
}

impl Batch {
    /// Storage for `rollout`'s samples on `device`.
    ///
    /// # Errors
    /// A torch error when the device cannot allocate.
    pub(super) fn new(rollout: &Rollout, n_tickers: usize, n_actions: usize, device: Device) -> Result<Self, PpoError> {
        let size = rollout.x.size();
        let total = size.iter().take(2).product::<i64>();
        let input_dim = size.last().copied().unwrap_or(0);
        let k = n_tickers as i64;
        let bias = if rollout.masks.is_empty() {
            None
        } else {
            Some(Tensor::f_zeros([total, k, n_actions as i64], (Kind::Float, device))?)
        };
        Ok(Self {
            x: rollout.x.f_view([total, input_dim])?,
            actions: Tensor::f_zeros([total, k], (Kind::Int64, device))?,
            scalars: Tensor::f_zeros([total, 4], (Kind::Float, device))?,
            bias,
        })
    }

    /// Writes a rollout's actions, masks and per-sample scalars in (the inputs are read
    /// from the rollout's own storage).
    ///
    /// # Errors
    /// A torch error when a length differs from the storage's.
    pub(super) fn fill(
        &mut self,
        rollout: &Rollout,
        [values, returns, advantages]: [&[f32]; 3],
        spec: &super::ModelSpec,
    ) -> Result<(), PpoError> {
        let device = self.scalars.device();
        let actions = Tensor::f_from_slice(&rollout.actions)?.f_to_kind(Kind::Int64)?;
        let scalars: Vec<f32> =
            (0..rollout.logp.len()).flat_map(|i| [rollout.logp[i], values[i], returns[i], advantages[i]]).collect();
        tch::no_grad(|| {
            self.actions.f_copy_(&actions.f_view_as(&self.actions)?)?;
            self.scalars.f_copy_(&Tensor::f_from_slice(&scalars)?.f_view_as(&self.scalars)?)?;
            if let Some(bias) = &mut self.bias {
                bias.f_copy_(&model::mask_bias(&model::masks_tensor(&rollout.masks, spec, device)?)?)?;
            }
            Ok(())
        })
    }

    /// The samples at `idx` (i64, on the storage's device).
    fn gather(&self, idx: &Tensor) -> Result<Samples, PpoError> {
        let scalars = self.scalars.f_index_select(0, idx)?;
        Ok(Samples {
            x: self.x.f_index_select(0, idx)?,
            actions: self.actions.f_index_select(0, idx)?,
            old_logp: scalars.f_select(1, 0)?,
            old_values: scalars.f_select(1, 1)?,
            returns: scalars.f_select(1, 2)?,
            advantages: scalars.f_select(1, 3)?,
            bias: self.bias.as_ref().map(|b| b.f_index_select(0, idx)).transpose()?,
        })
    }
}

/// A minibatch's loss and diagnostics, before any step.
struct Losses {
    loss: Tensor,
    policy: Tensor,
    value: Tensor,
    entropy: Tensor,
    kl: Tensor,
    clip_fraction: Tensor,
}

/// Forward pass, KL and clip fraction, advantage normalization, and the loss
/// pg − ent_coef·H + vf_coef·v.
fn losses(model: &ActorCritic, s: &Samples, c: &TrainingConfig) -> Result<Losses, PpoError> {
    let (new_logp, entropy, new_values) = model.evaluate(&s.x, &s.actions, s.bias.as_ref())?;

    // --- approximate KL and clip fraction (no grad) ---
    let (kl, clip_fraction) = tch::no_grad(|| {
        Ok::<_, tch::TchError>((
            loss::approx_kl(&new_logp, &s.old_logp)?,
            loss::clip_fraction(&new_logp, &s.old_logp, c.clip_range)?,
        ))
    })?;

    // --- minibatch advantage normalization ---
    let mut adv = s.advantages.shallow_clone();
    if c.normalize_advantage && adv.size().first().is_some_and(|&n| n > 1) {
        let (std, mean) = adv.f_std_mean(true)?;
        adv = adv.f_sub(&mean)?.f_div(&std.f_add_scalar(1e-8)?)?;
    }

    // --- clipped surrogate, (clipped) value loss, entropy bonus ---
    let policy = loss::policy_loss(&new_logp, &s.old_logp, &adv, c.clip_range)?;
    let value = loss::value_loss(&new_values, &s.old_values, &s.returns, c.clip_range_vf)?;
    let entropy = entropy.f_mean(Kind::Float)?;
    let loss = policy.f_sub(&entropy.f_mul_scalar(c.ent_coef)?)?.f_add(&value.f_mul_scalar(c.vf_coef)?)?;
    Ok(Losses { loss, policy, value, entropy, kl, clip_fraction })
}

impl Losses {
    /// The minibatch's statistics as a device vector `[6]`: policy loss, value loss,
    /// entropy, KL, clip fraction and grad norm (NaN when no step was taken).
    fn stats(&self, grad_norm: Option<&Tensor>) -> Result<Tensor, PpoError> {
        let device = self.policy.device();
        let gn = match grad_norm {
            Some(g) => g.f_to(device)?.f_to_kind(Kind::Float)?,
            None => Tensor::f_full([], f64::NAN, (Kind::Float, device))?,
        };
        let parts = [
            self.policy.f_detach()?,
            self.value.f_detach()?,
            self.entropy.f_detach()?,
            self.kl.f_detach()?,
            self.clip_fraction.f_detach()?,
            gn,
        ];
        Ok(Tensor::f_stack(&parts, 0)?)
    }
}

/// What a minibatch did.
pub(super) struct Done {
    /// Its statistics (see [`Losses::stats`]).
    pub(super) stats: Tensor,
    /// `target_kl` stopped the update before this minibatch's step.
    pub(super) stopped: bool,
}

/// A captured minibatch's factor vector (f64, `[FACTORS]`): slots 0 and 1 are Adam's
/// step factors ([`Adam::step_factors`]); then the KL limit (1.5 × target_kl, +∞
/// without) and the commit flag (1: take the step if the KL allows; 0: a warm-up, step
/// nothing).
const FACTORS: usize = 4;
const KL_LIMIT: i64 = 2;
const COMMIT: i64 = 3;

/// The minibatch as [`Learner::eager_minibatch`] computes it, in device operations only
/// (what a CUDA graph can capture): samples at `idx`, losses, gradients, clip, and Adam's
/// step with the factors in `factors` (`[FACTORS]`, f64), written only where the KL is at
/// most the limit and the commit slot is 1. Returns the statistics `[6]` and, last, 1 where
/// the step was taken (`[7]`).
fn minibatch_pass(
    model: &ActorCritic,
    adam: &mut Adam,
    batch: &Batch,
    idx: &Tensor,
    factors: &Tensor,
    c: &TrainingConfig,
) -> Result<Tensor, PpoError> {
    let l = losses(model, &batch.gather(idx)?, c)?;
    // The eager minibatch stops where f64(kl) > 1.5 × target: the same comparison.
    let commit = tch::no_grad(|| {
        let over = l.kl.f_to_kind(Kind::Double)?.f_gt_tensor(&factors.f_select(0, KL_LIMIT)?)?;
        over.f_logical_not()?.f_logical_and(&factors.f_select(0, COMMIT)?.f_gt(0.5)?)
    })?;
    adam.backward(&l.loss)?;
    let grad_norm = adam.clip_grad_norm(c.max_grad_norm)?;
    adam.masked_step(&factors.f_narrow(0, 0, 2)?.f_to_kind(Kind::Float)?, &commit)?;
    let grad_norm = tch::no_grad(|| {
        let nan = Tensor::f_full([], f64::NAN, (Kind::Float, grad_norm.device()))?;
        grad_norm.f_to_kind(Kind::Float)?.f_where_self(&commit, &nan)
    })?;
    let stepped = commit.f_to_kind(Kind::Float)?.f_reshape([1])?;
    Ok(Tensor::f_cat(&[l.stats(Some(&grad_norm))?, stepped], 0)?)
}

/// A minibatch captured as a CUDA graph, with the tensors it reads its sample indices and
/// factors from and the one it writes its result to.
#[derive(Debug)]
pub(super) struct UpdateGraph {
    graph: CudaGraph,
    /// `[batch_size]`, i64
    idx: Tensor,
    /// `[FACTORS]`, f64
    factors: Tensor,
    /// [`minibatch_pass`]'s result, overwritten by every replay. `[7]`
    out: Tensor,
}

/// The gap between a replay's results and the eager pass's that a capture may show,
/// relative to their scale: rounding, not a broken capture.
const CHECK_TOLERANCE: f64 = 1e-3;

impl Learner {
    /// One minibatch, operation by operation (any size, any device), with `target_kl`
    /// checked on the host before the step.
    pub(super) fn eager_minibatch(&mut self, idx: &Tensor, c: &TrainingConfig) -> Result<Done, PpoError> {
        let samples = self.batch.gather(idx)?;
        self.mark("update: minibatch gathers");
        let l = losses(&self.model, &samples, c)?;
        self.mark("update: forward and losses");

        // --- target_kl: stop before stepping past 1.5 × target (SB3) ---
        if let Some(target) = c.target_kl
            && l.kl.f_double_value(&[])? > 1.5 * target
        {
            return Ok(Done { stats: l.stats(None)?, stopped: true });
        }

        // --- backward, global grad-norm clip, Adam (eps 1e-5) ---
        self.adam.backward(&l.loss)?;
        self.mark("update: backward");
        let grad_norm = self.adam.clip_grad_norm(c.max_grad_norm)?;
        self.adam.step()?;
        self.mark("update: optimizer (clip, Adam)");
        let stats = l.stats(Some(&grad_norm))?;
        self.mark("update: minibatch statistics");
        Ok(Done { stats, stopped: false })
    }

    /// Whether full minibatches go through [`Learner::graph_minibatch`]: on CUDA with
    /// graphs on, or on any device when a test asks for the captured pass
    /// ([`Learner::force_pass`]).
    pub(super) fn graphs_wanted(&self) -> bool {
        self.force_pass
            || (!self.eager_update && self.device.is_cuda() && (self.update_graph.is_some() || cuda_graph::enabled()))
    }

    /// The factors of the `n` steps this update may take, one row each, on the device:
    /// row `j` is step `steps + j + 1` at the current learning rate, which minibatch `j`
    /// takes unless the update stopped before it. One upload per update, where a row per
    /// minibatch would wait for the device each time.
    pub(super) fn replay_factors(&self, n: usize, c: &TrainingConfig) -> Result<Tensor, PpoError> {
        let first = self.adam.steps();
        let limit = c.target_kl.map_or(f64::INFINITY, |t| 1.5 * t);
        let rows: Vec<f64> = (1..=n as u64)
            .flat_map(|j| {
                let [coef, bc2_sqrt] = self.adam.step_factors(first + j);
                [coef, bc2_sqrt, limit, 1.0]
            })
            .collect();
        Ok(Tensor::f_from_slice(&rows)?.f_view([n as i64, FACTORS as i64])?.f_to(self.device)?)
    }

    /// One full minibatch as a replay of the captured pass, with `factors` (a row of
    /// [`Learner::replay_factors`]); the first call captures it. `None` when graphs are
    /// unavailable or the capture or its check failed (said once): the caller runs the
    /// minibatch eagerly. With [`Learner::force_pass`] off CUDA, the pass runs eagerly.
    pub(super) fn graph_minibatch(
        &mut self,
        idx: &Tensor,
        factors: &Tensor,
        c: &TrainingConfig,
    ) -> Result<Option<Done>, PpoError> {
        let out = match self.device {
            Device::Cuda(index) if cuda_graph::enabled() || self.update_graph.is_some() => {
                if self.update_graph.is_none() {
                    match self.capture_update(index, idx, factors, c) {
                        Ok(g) => self.update_graph = Some(g),
                        Err(e) => {
                            cuda_graph::disable(&format!("the update's capture: {e}"));
                            return Ok(None);
                        }
                    }
                }
                let Some(g) = &mut self.update_graph else { return Ok(None) };
                tch::no_grad(|| {
                    g.idx.f_copy_(idx)?;
                    g.factors.f_copy_(factors)
                })?;
                g.graph.replay()?;
                let mut row = g.out.f_empty_like()?;
                tch::no_grad(|| row.f_copy_(&g.out))?;
                row
            }
            _ if self.force_pass => minibatch_pass(&self.model, &mut self.adam, &self.batch, idx, factors, c)?,
            _ => return Ok(None),
        };
        // Without target_kl every step is taken: no need to wait for the device to know.
        let stopped = c.target_kl.is_some() && out.f_double_value(&[6])? < 0.5;
        if !stopped {
            self.adam.count_step();
        }
        self.mark("update: minibatch (captured pass)");
        Ok(Some(Done { stats: out.f_narrow(0, 0, 6)?, stopped }))
    }

    /// Captures [`minibatch_pass`] on CUDA device `index` (its warm-up passes commit
    /// nothing), then checks it: from the same weights, one replay for `idx` must give the
    /// pass's eager result. Leaves the weights as before the call.
    fn capture_update(
        &mut self,
        index: usize,
        idx: &Tensor,
        factors: &Tensor,
        c: &TrainingConfig,
    ) -> Result<UpdateGraph, PpoError> {
        let mut idx_static = idx.f_empty_like()?;
        let mut factors_static = factors.f_empty_like()?;
        tch::no_grad(|| {
            idx_static.f_copy_(idx)?;
            factors_static.f_copy_(factors)?;
            let _ = factors_static.f_select(0, COMMIT)?.f_fill_(0.0)?;
            Ok::<_, tch::TchError>(())
        })?;
        let before = self.adam.snapshot()?;
        let (model, adam, batch) = (&self.model, &mut self.adam, &self.batch);
        let (graph, out) =
            CudaGraph::capture(index, || minibatch_pass(model, adam, batch, &idx_static, &factors_static, c))?;
        let mut g = UpdateGraph { graph, idx: idx_static, factors: factors_static, out };
        tch::no_grad(|| g.factors.f_copy_(factors))?;
        let graph = &g.graph;
        self.check_replay(&g.idx, &g.factors, &g.out, &before, c, &mut |_| graph.replay())?;
        Ok(g)
    }

    /// From the weights `before`, the pass run eagerly on `idx` and `factors` and one
    /// `replay` (which writes `out`) must agree ([`replay_agrees`]). The weights are as
    /// `before` afterwards, whatever happened.
    fn check_replay(
        &mut self,
        idx: &Tensor,
        factors: &Tensor,
        out: &Tensor,
        before: &[Tensor; 3],
        c: &TrainingConfig,
        replay: &mut dyn FnMut(&mut Self) -> Result<(), PpoError>,
    ) -> Result<(), PpoError> {
        let runs = (|| {
            self.adam.restore(before)?;
            let eager = minibatch_pass(&self.model, &mut self.adam, &self.batch, idx, factors, c)?;
            let eager_state = self.adam.snapshot()?;
            self.adam.restore(before)?;
            replay(self)?;
            Ok::<_, PpoError>((eager, eager_state, self.adam.snapshot()?))
        })();
        let restored = self.adam.restore(before);
        let (eager, eager_state, replayed) = runs?;
        restored?;
        replay_agrees(before, (&eager_state, &eager), (&replayed, out))
    }
}

/// Whether a replay's weights, moments and statistics (`replayed`, from the weights
/// `before`) agree with the eager pass's (`eager`): the weights' change, both moments and
/// the statistics within [`CHECK_TOLERANCE`] of their scale (a capture that reads stale
/// inputs or misses kernels is off by far more; the same kernels on another stream may
/// round differently), the step taken or not alike.
fn replay_agrees(
    before: &[Tensor; 3],
    (eager_state, eager): (&[Tensor; 3], &Tensor),
    (replayed, out): (&[Tensor; 3], &Tensor),
) -> Result<(), PpoError> {
    let host = |t: &Tensor| -> Result<Vec<f64>, PpoError> {
        Ok(Vec::<f64>::try_from(t.f_to_kind(Kind::Double)?.f_to(Device::Cpu)?.f_reshape([-1])?)?)
    };
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let w0 = host(&before[0])?;
    for (k, name) in ["weight changes", "first moments", "second moments"].iter().enumerate() {
        let (mut e, mut r) = (host(&eager_state[k])?, host(&replayed[k])?);
        if k == 0 {
            e.iter_mut().zip(&w0).for_each(|(x, w)| *x -= w);
            r.iter_mut().zip(&w0).for_each(|(x, w)| *x -= w);
        }
        let off = max_abs(&e.iter().zip(&r).map(|(a, b)| a - b).collect::<Vec<_>>());
        let scale = max_abs(&e);
        if off.is_nan() || off > CHECK_TOLERANCE * scale + 4.0 * f64::from(f32::EPSILON) * max_abs(&w0) {
            return Err(PpoError::Setup(format!(
                "a replay's {name} are {off:.3e} away from the eager pass's (of scale {scale:.3e})"
            )));
        }
    }
    let (e, r) = (host(eager)?, host(out)?);
    let agree = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || (a - b).abs() <= CHECK_TOLERANCE * a.abs().max(b.abs());
    if !e.iter().zip(&r).all(|(&a, &b)| agree(a, b)) {
        return Err(PpoError::Setup(format!("a replay's statistics {r:?} differ from the eager pass's {e:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::env::{EpisodeBounds, MarketData};
    use crate::vec_env::{EnvOptions, TradingEnv};

    /// A small env and learner (masks on, 3 × 40 samples in minibatches of 32: three full
    /// ones and a remainder of 24 per epoch).
    fn learner(target_kl: Option<f64>, force_pass: bool) -> (TradingEnv, Learner) {
        learner_on("cpu", target_kl, force_pass)
    }

    fn learner_on(device: &str, target_kl: Option<f64>, force_pass: bool) -> (TradingEnv, Learner) {
        let mut c = Config::default();
        let t = &mut c.training;
        (t.net_arch, t.n_envs, t.n_steps, t.batch_size, t.n_epochs) = (vec![16, 16], 3, 40, 32, 3);
        (t.target_kl, t.action_masking, t.threads, t.device) = (target_kl, true, 1, device.into());
        let market = MarketData::random_walk(600, 3, 55, 5);
        let bounds = EpisodeBounds { first: 60, last: (market.n_bars() - 1) as u32, random_start: true };
        let opts = EnvOptions { threads: 1, action_masks: true, ..EnvOptions::training(3, bounds) };
        let mut env = TradingEnv::new(&c.environment, market, opts).unwrap();
        let mut learner = Learner::new(&c, &env).unwrap();
        learner.force_pass = force_pass;
        learner.reset_envs(&mut env, 7).unwrap();
        (env, learner)
    }

    /// An update's epochs, early stop and statistics.
    type UpdateRow = (usize, bool, [f64; 6]);

    /// Weights and moments, step count and each update's row after three iterations of
    /// collect and update.
    struct Trained {
        state: Vec<Vec<f32>>,
        steps: u64,
        updates: Vec<UpdateRow>,
    }

    fn train(target_kl: Option<f64>, force_pass: bool, lr: f64) -> Trained {
        let (mut env, mut l) = learner(target_kl, force_pass);
        let mut updates = Vec::new();
        for _ in 0..3 {
            l.collect(&mut env).unwrap();
            let u = l.update(lr).unwrap();
            let stats = [u.policy_loss, u.value_loss, u.entropy, u.approx_kl, u.clip_fraction, u.grad_norm];
            updates.push((u.epochs, u.early_stopped, stats));
        }
        let state = l.adam.snapshot().unwrap().iter().map(|t| Vec::<f32>::try_from(t).unwrap()).collect();
        Trained { state, steps: l.adam.steps(), updates }
    }

    #[test]
    fn the_captured_pass_gives_the_eager_minibatch_results() {
        for (target_kl, lr) in [(None, 3e-3), (Some(2e-3), 3e-2)] {
            let eager = train(target_kl, false, lr);
            let pass = train(target_kl, true, lr);
            // Bit for bit: the same operations in the same order, the step written with
            // `where` instead of in place.
            assert_eq!(pass.state, eager.state, "weights and moments, target_kl {target_kl:?}");
            assert_eq!(pass.steps, eager.steps, "steps, target_kl {target_kl:?}");
            for (p, e) in pass.updates.iter().zip(&eager.updates) {
                assert_eq!((p.0, p.1), (e.0, e.1), "epochs and early stop, target_kl {target_kl:?}");
                for (a, b) in p.2.iter().zip(&e.2) {
                    assert!(a == b || a.is_nan() && b.is_nan(), "statistics {:?} vs {:?}", p.2, e.2);
                }
            }
        }
    }

    /// The cases the CUDA comparison runs: (target_kl, learning rate). The second stops at
    /// its KL limit within its one update (checked on the CPU below).
    const CUDA_CASES: [(Option<f64>, f64); 2] = [(None, 3e-3), (Some(1e-5), 3e-2)];

    /// One collect and update of the test learner on `device` (the update eager or not).
    struct OneUpdate {
        before: Vec<f32>,
        after: Vec<f32>,
        /// Epochs, early stop, steps.
        steps: (usize, bool, u64),
        stats: [f64; 6],
        captured: bool,
    }

    fn one_update(device: &str, eager: bool, (target_kl, lr): (Option<f64>, f64)) -> OneUpdate {
        let (mut env, mut l) = learner_on(device, target_kl, false);
        l.eager_update = eager;
        let weights = |l: &Learner| Vec::<f32>::try_from(l.adam.snapshot().unwrap()[0].to(Device::Cpu)).unwrap();
        let before = weights(&l);
        l.collect(&mut env).unwrap();
        let u = l.update(lr).unwrap();
        OneUpdate {
            before,
            after: weights(&l),
            steps: (u.epochs, u.early_stopped, l.adam.steps()),
            stats: [u.policy_loss, u.value_loss, u.entropy, u.approx_kl, u.clip_fraction, u.grad_norm],
            captured: l.update_graph.is_some(),
        }
    }

    #[test]
    fn the_cuda_comparisons_cases_stop_at_the_kl_limit_or_not() {
        let [free, limited] = CUDA_CASES.map(|case| one_update("cpu", true, case).steps);
        assert_eq!(free, (3, false, 12), "three epochs of four minibatches");
        assert!(limited.1 && limited.2 < 12, "{limited:?}");
    }

    /// On CUDA, where the update replays its captured minibatch: the graph is captured (no
    /// silent fall back to kernel-by-kernel launches) and one update gives the eager
    /// update's weights and statistics within rounding (the eager step divides by a host
    /// scalar, which CUDA turns into a product with its reciprocal), with and without a
    /// `target_kl` stop.
    #[test]
    #[ignore = "needs CUDA: scripts/gpu-check.sh runs it"]
    fn on_cuda_the_update_graph_follows_the_eager_update() {
        assert!(tch::Cuda::is_available() && cuda_graph::supported(), "needs CUDA and a build with graphs");
        for case in CUDA_CASES {
            let eager = one_update("cuda", true, case);
            let graph = one_update("cuda", false, case);
            assert!(graph.captured && cuda_graph::enabled(), "the update was captured, {case:?}");
            assert_eq!(graph.steps, eager.steps, "epochs, early stop and steps, {case:?}");
            assert_eq!(eager.steps.1, case.0.is_some(), "the KL case stops early, the other not: {case:?}");
            let max_abs = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0f64, |m, x| m.max(x.abs()));
            let moved = max_abs(&mut eager.after.iter().zip(&eager.before).map(|(a, b)| f64::from(a - b)));
            let off = max_abs(&mut graph.after.iter().zip(&eager.after).map(|(a, b)| f64::from(a - b)));
            let scale = max_abs(&mut eager.before.iter().map(|&w| f64::from(w)));
            assert!(off <= 1e-3 * moved + 4.0 * f64::from(f32::EPSILON) * scale, "{off:e} of {moved:e}, {case:?}");
            for (a, b) in graph.stats.iter().zip(&eager.stats) {
                let close = (a - b).abs() <= 1e-3 * a.abs().max(b.abs()) || a.is_nan() && b.is_nan();
                assert!(close, "{:?} vs {:?}", graph.stats, eager.stats);
            }
        }
    }

    #[test]
    fn the_target_kl_case_stops_early_and_the_other_does_not() {
        // What the test above compares must cover both paths: updates that stop at the
        // KL limit (mid-epoch, on a full minibatch) and updates that run every epoch.
        let Trained { steps, updates, .. } = train(Some(2e-3), true, 3e-2);
        assert!(updates.iter().any(|u| u.1), "{updates:?}");
        assert!(steps < 3 * 3 * 4, "{steps}");
        let Trained { steps, updates, .. } = train(None, true, 3e-3);
        assert!(updates.iter().all(|u| !u.1 && u.0 == 3), "{updates:?}");
        assert_eq!(steps, 3 * 3 * 4);
    }

    /// The capture's check, with the replay played by the pass itself (what a good graph
    /// does) and by broken ones: only the first passes, and the weights are left as they
    /// were in every case.
    #[test]
    fn the_capture_check_tells_a_faithful_replay_from_a_broken_one() {
        let (mut env, mut l) = learner(Some(0.5), false);
        l.collect(&mut env).unwrap();
        l.update(3e-3).unwrap();
        let c = l.cfg.clone();
        let idx = Tensor::arange(32, (Kind::Int64, Device::Cpu));
        let factors = l.replay_factors(1, &c).unwrap().get(0);
        let out = Tensor::zeros([7], (Kind::Float, Device::Cpu));
        let before = l.adam.snapshot().unwrap();
        let weights = |l: &Learner| Vec::<f32>::try_from(&l.adam.snapshot().unwrap()[0]).unwrap();
        let w0 = weights(&l);
        let replay_on = |idx: Tensor, factors: Tensor, mut out: Tensor| {
            move |l: &mut Learner| {
                let r = minibatch_pass(&l.model, &mut l.adam, &l.batch, &idx, &factors, &l.cfg.clone())?;
                Ok(out.f_copy_(&r)?)
            }
        };
        let mut faithful = replay_on(idx.shallow_clone(), factors.shallow_clone(), out.shallow_clone());
        l.check_replay(&idx, &factors, &out, &before, &c, &mut faithful).expect("a faithful replay passes");
        assert_eq!(weights(&l), w0);

        let mut idle = |_: &mut Learner| Ok(());
        let err = l.check_replay(&idx, &factors, &out, &before, &c, &mut idle).unwrap_err().to_string();
        assert!(err.contains("a replay's weight changes are"), "{err}");
        let other = Tensor::arange_start(32, 64, (Kind::Int64, Device::Cpu));
        let mut stale = replay_on(other, factors.shallow_clone(), out.shallow_clone());
        let err = l.check_replay(&idx, &factors, &out, &before, &c, &mut stale).unwrap_err().to_string();
        assert!(err.contains("away from the eager pass's") || err.contains("differ from the eager"), "{err}");
        let mut failing = |_: &mut Learner| Err(PpoError::Setup("launch failed".into()));
        let err = l.check_replay(&idx, &factors, &out, &before, &c, &mut failing).unwrap_err().to_string();
        assert!(err.contains("launch failed"), "{err}");
        assert_eq!(weights(&l), w0, "the weights are as before after every failed check");
    }

    #[test]
    fn a_masked_step_that_does_not_commit_changes_nothing() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], tch::nn::Init::Const(0.5));
        let mut adam = Adam::new(&vs, 0.1, 1e-8).unwrap();
        let before = adam.snapshot().unwrap();
        let loss = (&w * Tensor::from_slice(&[1.0f32, -2.0, 3.0])).sum(Kind::Float);
        adam.backward(&loss).unwrap();
        let factors = Tensor::from_slice(&adam.step_factors(1).map(|f| f as f32));
        adam.masked_step(&factors, &Tensor::from(false)).unwrap();
        let after = adam.snapshot().unwrap();
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(Vec::<f32>::try_from(a).unwrap(), Vec::<f32>::try_from(b).unwrap());
        }
        assert_eq!(adam.steps(), 0);
    }
}
