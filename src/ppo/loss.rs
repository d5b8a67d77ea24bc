//! The PPO loss terms and their diagnostics on plain tensors, as pure functions so that each
//! can be checked against a hand computation: clipped surrogate, (clipped) value loss,
//! approximate KL and clip fraction. The minibatch that combines them is `losses` in
//! `minibatch.rs`.

use tch::{Kind, Tensor};

/// The clipped surrogate loss, mean over the batch:
/// max(−A·r, −A·clip(r, 1 − ε, 1 + ε)) with r = exp(new_logp − old_logp).
///
/// # Errors
/// A [`tch::TchError`] when the shapes do not broadcast.
pub fn policy_loss(
    new_logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    clip: f64,
) -> Result<Tensor, tch::TchError> {
    let ratio = new_logp.f_sub(old_logp)?.f_exp()?;
    let unclipped = advantages.f_neg()?.f_mul(&ratio)?;
    let clipped = advantages.f_neg()?.f_mul(&ratio.f_clamp(1.0 - clip, 1.0 + clip)?)?;
    unclipped.f_maximum(&clipped)?.f_mean(Kind::Float)
}

/// Approximate KL of the old policy from the new, ((r − 1) − ln r).mean(): unbiased and
/// never negative (Schulman's k3 estimator, CleanRL's and SB3's).
///
/// # Errors
/// A [`tch::TchError`] when the shapes differ.
pub fn approx_kl(new_logp: &Tensor, old_logp: &Tensor) -> Result<Tensor, tch::TchError> {
    let log_ratio = new_logp.f_sub(old_logp)?;
    log_ratio.f_exp()?.f_sub_scalar(1.0)?.f_sub(&log_ratio)?.f_mean(Kind::Float)
}

/// Fraction of samples with |r − 1| > ε, the ones the clip stopped.
///
/// # Errors
/// A [`tch::TchError`] when the shapes differ.
pub fn clip_fraction(new_logp: &Tensor, old_logp: &Tensor, clip: f64) -> Result<Tensor, tch::TchError> {
    let ratio = new_logp.f_sub(old_logp)?.f_exp()?;
    ratio.f_sub_scalar(1.0)?.f_abs()?.f_gt(clip)?.f_to_kind(Kind::Float)?.f_mean(Kind::Float)
}

/// Value loss as SB3: MSE of the returns against the new values, which with
/// `clip_range_vf` are first clipped to old ± clip (SB3's semantics of the knob; CleanRL's
/// alternative takes the max of both squared errors).
///
/// # Errors
/// A [`tch::TchError`] when the shapes differ.
pub fn value_loss(
    values: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    clip_vf: Option<f64>,
) -> Result<Tensor, tch::TchError> {
    let pred = match clip_vf {
        Some(c) => old_values.f_add(&values.f_sub(old_values)?.f_clamp(-c, c)?)?,
        None => values.shallow_clone(),
    };
    pred.f_sub(returns)?.f_square()?.f_mean(Kind::Float)
}
