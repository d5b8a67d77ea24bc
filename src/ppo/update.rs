//! The PPO update (CleanRL's "bootstrap value if not done" and "optimizing the policy and
//! value network"): GAE on the host, then `n_epochs` passes of shuffled minibatches, each
//! one clipped-PPO gradient step. Read [`Learner::update`] top to bottom: every detail is one
//! config field and one visible line.

use super::PpoError;
use super::gae::{compute_gae, explained_variance};
use super::learner::Learner;
use super::{device, loss, model};
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
        let b_x = self.rollout.x.f_view([total, self.spec.input_dim as i64])?;
        let b_actions = Tensor::f_from_slice(&self.rollout.actions)?
            .f_to_kind(Kind::Int64)?
            .f_view([total, self.spec.n_tickers as i64])?
            .f_to(self.device)?;
        // The per-sample scalars side by side (old log-probability, value, return,
        // advantage), uploaded once: one gather per minibatch instead of four.
        let scalars: Vec<f32> =
            (0..total as usize).flat_map(|i| [self.rollout.logp[i], values[i], returns[i], adv[i]]).collect();
        let b_scalars = Tensor::f_from_slice(&scalars)?.f_view([total, 4])?.f_to(self.device)?;
        // The masks each action was sampled under: the update scores the same distribution.
        let b_bias = if c.action_masking {
            Some(model::mask_bias(&model::masks_tensor(&self.rollout.masks, &self.spec, self.device)?)?)
        } else {
            None
        };

        // --- Adam learning rate (`set_lr`: constant or linearly annealed) ---
        self.adam.set_lr(lr);
        // --- `precision: tf32` on CUDA: the products below on TF32 tensor cores ---
        let _tf32 = device::Tf32Guard::new(self.tf32);
        self.mark("update: GAE and uploads");

        let mut mb_stats: Vec<Tensor> = Vec::new();
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
                let mb_x = b_x.f_index_select(0, &idx)?;
                let mb_actions = b_actions.f_index_select(0, &idx)?;
                let mb_scalars = b_scalars.f_index_select(0, &idx)?;
                let mb_old_logp = mb_scalars.f_select(1, 0)?;
                let mb_old_values = mb_scalars.f_select(1, 1)?;
                let mb_returns = mb_scalars.f_select(1, 2)?;
                let mut mb_adv = mb_scalars.f_select(1, 3)?;
                let mb_bias = b_bias.as_ref().map(|b| b.f_index_select(0, &idx)).transpose()?;
                self.mark("update: minibatch gathers");

                let (new_logp, entropy, new_values) = self.model.evaluate(&mb_x, &mb_actions, mb_bias.as_ref())?;

                // --- approximate KL and clip fraction (no grad) ---
                let (kl, clipfrac) = tch::no_grad(|| {
                    Ok::<_, tch::TchError>((
                        loss::approx_kl(&new_logp, &mb_old_logp)?,
                        loss::clip_fraction(&new_logp, &mb_old_logp, c.clip_range)?,
                    ))
                })?;

                // --- minibatch advantage normalization ---
                if c.normalize_advantage && len > 1 {
                    let (std, mean) = mb_adv.f_std_mean(true)?;
                    mb_adv = mb_adv.f_sub(&mean)?.f_div(&std.f_add_scalar(1e-8)?)?;
                }

                // --- clipped surrogate, (clipped) value loss, entropy bonus ---
                let pg_loss = loss::policy_loss(&new_logp, &mb_old_logp, &mb_adv, c.clip_range)?;
                let v_loss = loss::value_loss(&new_values, &mb_old_values, &mb_returns, c.clip_range_vf)?;
                let entropy_mean = entropy.f_mean(Kind::Float)?;
                let loss =
                    pg_loss.f_sub(&entropy_mean.f_mul_scalar(c.ent_coef)?)?.f_add(&v_loss.f_mul_scalar(c.vf_coef)?)?;
                self.mark("update: forward and losses");

                // --- target_kl: stop before stepping past 1.5 × target (SB3) ---
                if let Some(target) = c.target_kl
                    && kl.f_double_value(&[])? > 1.5 * target
                {
                    mb_stats.push(stats_row(&pg_loss, &v_loss, &entropy_mean, &kl, &clipfrac, None)?);
                    early_stopped = true;
                    break 'epochs;
                }

                // --- backward, global grad-norm clip, Adam (eps 1e-5) ---
                self.adam.backward(&loss)?;
                self.mark("update: backward");
                let grad_norm = self.adam.clip_grad_norm(c.max_grad_norm)?;
                self.adam.step()?;
                self.mark("update: optimizer (clip, Adam)");
                mb_stats.push(stats_row(&pg_loss, &v_loss, &entropy_mean, &kl, &clipfrac, Some(&grad_norm))?);
                self.mark("update: minibatch statistics");
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

/// One minibatch's statistics as a device vector (grad norm NaN when no step was taken).
fn stats_row(
    pg: &Tensor,
    vl: &Tensor,
    ent: &Tensor,
    kl: &Tensor,
    cf: &Tensor,
    gn: Option<&Tensor>,
) -> Result<Tensor, PpoError> {
    let device = pg.device();
    let gn = match gn {
        Some(g) => g.f_to(device)?.f_to_kind(Kind::Float)?,
        None => Tensor::f_full([], f64::NAN, (Kind::Float, device))?,
    };
    let parts = [pg.f_detach()?, vl.f_detach()?, ent.f_detach()?, kl.f_detach()?, cf.f_detach()?, gn];
    Ok(Tensor::f_stack(&parts, 0)?)
}
