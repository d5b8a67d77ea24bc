//! Rollout: `n_steps` steps of every training env under `no_grad`, stored for the update
//! (CleanRL's "storage setup" and the `for step in range(num_steps)` loop).
//!
//! Each step is one transfer of logits and values to the host, where the actions are
//! sampled (among those the env's action masks allow, with `training.action_masking`) from
//! the learner's ChaCha8 stream (the position of that stream is checkpointed;
//! torch's generator is never used after initialization). Rewards are scaled as they
//! arrive, and a truncated episode's reward gets γ·V(final_obs) added (the bootstrap) before
//! GAE sees it; bankruptcy (termination) gets nothing.

use super::checkpoint::ModelSpec;
use super::cuda_graph::{self, CudaGraph};
use super::learner::{Learner, observe, observe_where_built};
use super::model::Inference;
use super::{PpoError, gae, model};
use crate::vec_env::TradingEnv;
use rand::Rng;
use tch::{Device, Kind, Tensor};

/// One rollout, kept on the device except what the host needs for GAE.
#[derive(Debug)]
pub(super) struct Rollout {
    /// Normalized network inputs. `[n_steps, n_envs, input_dim]`
    pub(super) x: Tensor,
    /// `[n_steps, n_envs, n_tickers]`, host (sampled there)
    pub(super) actions: Vec<u8>,
    /// Summed log-probabilities of the actions. `[n_steps, n_envs]`, host
    pub(super) logp: Vec<f32>,
    /// `[n_steps, n_envs]`, host
    pub(super) values: Vec<f32>,
    /// Scaled rewards, plus γ·V(final_obs) on truncation. `[n_steps, n_envs]`, host
    pub(super) rewards: Vec<f32>,
    /// Episode ended at this step. `[n_steps, n_envs]`, host
    pub(super) dones: Vec<bool>,
    /// The env's action masks the actions were sampled under. `[n_steps, n_envs,
    /// n_tickers, n_actions]`, host; empty without action masking
    pub(super) masks: Vec<bool>,
}

impl Rollout {
    /// Zeroed storage for `n_steps` steps of `n_envs` envs; the inputs in `x_kind` (bf16
    /// under mixed precision) on `device`; room for the masks when `masking`.
    ///
    /// # Errors
    /// A torch error when the device cannot allocate.
    pub(super) fn new(
        n_steps: usize,
        n_envs: usize,
        spec: &ModelSpec,
        x_kind: Kind,
        device: Device,
        masking: bool,
    ) -> Result<Self, PpoError> {
        let (s, n, d) = (n_steps as i64, n_envs as i64, spec.input_dim as i64);
        let (n_tickers, n_actions) = (spec.n_tickers, spec.n_actions);
        Ok(Self {
            x: Tensor::f_zeros([s, n, d], (x_kind, device))?,
            actions: vec![0; n_steps * n_envs * n_tickers],
            logp: vec![0.0; n_steps * n_envs],
            values: vec![0.0; n_steps * n_envs],
            rewards: vec![0.0; n_steps * n_envs],
            dones: vec![false; n_steps * n_envs],
            masks: if masking { vec![true; n_steps * n_envs * n_tickers * n_actions] } else { Vec::new() },
        })
    }
}

/// What a rollout saw of the episodes.
#[derive(Debug, Default)]
pub(super) struct RolloutStats {
    pub(super) ep_rewards: Vec<f64>,
    pub(super) ep_returns: Vec<f64>,
    pub(super) trades: u64,
    pub(super) equity_mean: f64,
    /// Share of buy and sell actions the env's masks forbade (0 without masking).
    pub(super) masked_share: f64,
}

impl Learner {
    /// Runs `n_steps` steps of every env under `no_grad`, filling the rollout.
    pub(super) fn collect(&mut self, env: &mut TradingEnv) -> Result<RolloutStats, PpoError> {
        tch::no_grad(|| self.collect_inner(env))
    }

    fn collect_inner(&mut self, env: &mut TradingEnv) -> Result<RolloutStats, PpoError> {
        let (n, k, a) = (self.n_envs, self.spec.n_tickers, self.spec.n_actions);
        let clip = self.cfg.obs_clip;
        let mut stats = RolloutStats::default();
        let acting = Acting::new(self.model.inference()?, &self.x, self.device)?;
        let masking = self.cfg.action_masking;
        let mut masked = 0usize;
        self.mark_start();
        for t in 0..self.cfg.n_steps {
            for u in self.uniforms.iter_mut() {
                *u = self.rng.random::<f32>();
            }
            self.rollout.x.f_select(0, t as i64)?.f_copy_(&self.x)?;
            // One transfer per step: both networks' outputs to the host, actions sampled
            // there. Row i of the first half is env i's logits, of the second its value.
            let out = acting.outputs(&self.x)?.f_to(Device::Cpu)?;
            let out = Vec::<f32>::try_from(out.f_contiguous()?.f_view([-1])?)?;
            let width = a * k;
            for i in 0..n {
                self.logits_host[i * width..(i + 1) * width].copy_from_slice(&out[i * width..(i + 1) * width]);
                self.rollout.values[t * n + i] = out[(n + i) * width];
            }
            self.mark("rollout: inference (device round trip)");
            if masking {
                // Sampled among the allowed actions only: the masked ones get no probability.
                let cells = t * n * k * a..(t + 1) * n * k * a;
                self.rollout.masks[cells].copy_from_slice(&self.masks);
                model::mask_host(&mut self.logits_host, &self.masks);
                masked += self.masks.iter().filter(|&&m| !m).count();
            }
            let actions = &mut self.rollout.actions[t * n * k..(t + 1) * n * k];
            model::sample_host(&self.logits_host, &self.uniforms, actions, &mut self.rollout.logp[t * n..(t + 1) * n]);
            self.mark("rollout: sampling (host)");

            let buffers = env.step(&self.rollout.actions[t * n * k..(t + 1) * n * k])?;
            self.mark("rollout: env step");
            if masking {
                self.masks.copy_from_slice(&buffers.action_masks);
            }
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
            let next = observe_where_built(&mut self.obs_norm, clip, &self.input, &buffers.obs, n, true)?;
            if let Some(scaler) = &mut self.rew_scaler {
                let dones = self.rollout.dones[row.clone()].to_vec();
                scaler.scale(&mut self.rollout.rewards[row.clone()], dones.into_iter());
            }
            self.mark("rollout: observe (inputs, normalization)");
            // In place: a rollout's captured graph reads its inputs there.
            self.x.f_copy_(&next)?;
            self.mark("rollout: upload");
            if any_truncated {
                // Bootstrap: r += γ·V(final_obs) where the data ran out or the episode
                // reached its length; bankruptcy (termination) is a true end.
                let final_x =
                    observe(&mut self.obs_norm, clip, &self.input, self.device, &buffers.final_obs, n, false)?;
                let v_final = Vec::<f32>::try_from(self.model.value(&final_x)?.f_to(Device::Cpu)?)?;
                gae::bootstrap_truncated(&mut self.rollout.rewards[row], &buffers.truncated, &v_final, self.cfg.gamma);
                self.mark("rollout: truncation bootstrap");
            }
        }
        // Of the actions that trade: two of the seed's three, all levels but one.
        stats.masked_share = masked as f64 / ((a - 1) * self.cfg.n_steps * n * k) as f64;
        Ok(stats)
    }
}

/// How a rollout runs its networks: eagerly, or on CUDA as a graph captured at the start
/// of the rollout (see [`super::cuda_graph`]).
enum Acting {
    Eager(Inference),
    Graph {
        /// What every replay overwrites: [`Inference::outputs`] of the captured input.
        out: Tensor,
        /// Where the captured input lives: the graph reads it there and nowhere else.
        input: usize,
        graph: CudaGraph,
        /// The weights the graph reads.
        _net: Inference,
    },
}

impl Acting {
    /// A graph of `net` reading `x` in place on CUDA when the build has graphs, checked
    /// once against the eager pass; else, or when the capture or the check fails (said
    /// once, and not tried again in this process), eager.
    fn new(net: Inference, x: &Tensor, device: Device) -> Result<Self, PpoError> {
        let Device::Cuda(index) = device else { return Ok(Self::Eager(net)) };
        if !cuda_graph::enabled() {
            return Ok(Self::Eager(net));
        }
        let captured = CudaGraph::capture(index, || net.outputs(x)).and_then(|(graph, out)| {
            graph.replay()?;
            let gap = out.f_sub(&net.outputs(x)?)?.f_abs()?.f_max()?.f_double_value(&[])?;
            if gap.is_nan() || gap > 1e-6 {
                return Err(PpoError::Setup(format!("the replayed outputs differ from the eager ones by {gap}")));
            }
            Ok((graph, out))
        });
        match captured {
            Ok((graph, out)) => Ok(Self::Graph { out, input: x.data_ptr() as usize, graph, _net: net }),
            Err(e) => {
                cuda_graph::disable(&format!("a rollout's capture: {e}"));
                Ok(Self::Eager(net))
            }
        }
    }

    /// Both networks' outputs for `x` (the tensor the graph was captured on).
    fn outputs(&self, x: &Tensor) -> Result<Tensor, PpoError> {
        match self {
            Self::Eager(net) => net.outputs(x),
            Self::Graph { out, input, graph, .. } => {
                if x.data_ptr() as usize != *input {
                    return Err(PpoError::Setup("the rollout's inputs moved while a CUDA graph reads them".into()));
                }
                graph.replay()?;
                Ok(out.shallow_clone())
            }
        }
    }
}
