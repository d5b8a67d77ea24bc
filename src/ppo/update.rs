//! The PPO update (CleanRL's "bootstrap value if not done" and "optimizing the policy and
//! value network"): GAE on the host, then `n_epochs` passes of shuffled minibatches, each
//! one clipped-PPO gradient step. Read [`Learner::update`] top to bottom, then a minibatch
//! in `minibatch.rs` (`Learner::eager_minibatch`): every detail is one config field and one
//! visible line.

use super::PpoError;
use super::device;
use super::gae::{compute_gae, explained_variance};
use super::learner::Learner;
use rand::seq::SliceRandom;
use tch::{Device, Kind, Tensor};

/// What an update measured.
#[derive(Debug, Default)]
pub(super) struct UpdateStats {
    pub(super) policy_loss: f64,
    pub(super) value_loss: f64,
    pub(super) entropy: f64,
    pub(super) approx_kl: f64,
    pub(super) clip_fraction: f64,
    pub(super) grad_norm: f64,
    pub(super) explained_variance: f64,
    pub(super) epochs: usize,
    pub(super) early_stopped: bool,
}

impl Learner {
    /// GAE on the host, then `n_epochs` of clipped-PPO minibatch updates at `lr`.
    pub(super) fn update(&mut self, lr: f64) -> Result<UpdateStats, PpoError> {
        let c = self.cfg.clone();
        let (s, n) = (c.n_steps, self.n_envs);
        self.mark_start();
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
        self.batch.fill(&self.rollout, [&values, &returns, &adv], &self.spec)?;

        // --- Adam learning rate (`set_lr`: constant or linearly annealed) ---
        self.adam.set_lr(lr);
        // --- `precision: tf32` on CUDA: the products below on TF32 tensor cores ---
        let _tf32 = device::Tf32Guard::new(self.tf32);
        let minibatches = c.n_epochs * (total as usize).div_ceil(c.batch_size);
        let factors = if self.graphs_wanted() { Some(self.replay_factors(minibatches, &c)?) } else { None };
        self.mark("update: GAE and uploads");

        let mut mb_stats: Vec<Tensor> = Vec::with_capacity(minibatches);
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
                // A full minibatch as one CUDA graph where there is one (`minibatch.rs`).
                let graphed = match &factors {
                    Some(f) if len == c.batch_size as i64 => {
                        self.graph_minibatch(&idx, &f.f_select(0, mb_stats.len() as i64)?, &c)?
                    }
                    _ => None,
                };
                let done = match graphed {
                    Some(done) => done,
                    None => self.eager_minibatch(&idx, &c)?,
                };
                mb_stats.push(done.stats);
                if done.stopped {
                    early_stopped = true;
                    break 'epochs;
                }
            }
        }
        // One host sync for all minibatch statistics.
        let means = Vec::<f64>::try_from(
            Tensor::f_stack(&mb_stats, 0)?
                .f_to_kind(Kind::Double)?
                .f_nanmean(&[0i64][..], false, None::<Kind>)?
                .f_to(Device::Cpu)?,
        )?;
        self.mark("update: statistics readback");
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
}
