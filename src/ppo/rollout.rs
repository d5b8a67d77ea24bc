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
use super::learner::{Learner, observe};
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
        let net = self.model.inference()?;
        let masking = self.cfg.action_masking;
        let mut masked = 0usize;
        for t in 0..self.cfg.n_steps {
            for u in self.uniforms.iter_mut() {
                *u = self.rng.random::<f32>();
            }
            // One transfer per step: logits and values to the host, actions sampled there.
            let (logits, values) = net.logits_values(&self.x)?;
            let out = Tensor::f_cat(&[logits.f_view([n as i64, -1])?, values.f_unsqueeze(1)?], 1)?.f_to(Device::Cpu)?;
            let out = Vec::<f32>::try_from(out.f_contiguous()?.f_view([-1])?)?;
            let width = a * k + 1;
            for i in 0..n {
                self.logits_host[i * a * k..(i + 1) * a * k].copy_from_slice(&out[i * width..i * width + a * k]);
                self.rollout.values[t * n + i] = out[i * width + a * k];
            }
            let step = t as i64;
            self.rollout.x.f_select(0, step)?.f_copy_(&self.x)?;
            if masking {
                // Sampled among the allowed actions only: the masked ones get no probability.
                let cells = t * n * k * a..(t + 1) * n * k * a;
                self.rollout.masks[cells].copy_from_slice(&self.masks);
                model::mask_host(&mut self.logits_host, &self.masks);
                masked += self.masks.iter().filter(|&&m| !m).count();
            }
            let actions = &mut self.rollout.actions[t * n * k..(t + 1) * n * k];
            model::sample_host(&self.logits_host, &self.uniforms, actions, &mut self.rollout.logp[t * n..(t + 1) * n]);

            let buffers = env.step(actions)?;
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
        // Of the actions that trade: two of the seed's three, all levels but one.
        stats.masked_share = masked as f64 / ((a - 1) * self.cfg.n_steps * n * k) as f64;
        Ok(stats)
    }
}
