//! GAE and the PPO loss terms against numbers worked out by hand: one env truncated and
//! one terminated inside the rollout, and a minibatch whose ratios sit inside, above and
//! below the clip range.
#![cfg(feature = "learner")]

use ploutos::ppo::{approx_kl, bootstrap_truncated, clip_fraction, compute_gae, policy_loss, value_loss};
use rstest::rstest;
use tch::Tensor;

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-5
}

/// γ = 0.9, λ = 0.8, 2 envs × 3 steps, step-major.
///
/// Env 0: rewards 1, 2, 3; values 0.5, 1.0, 1.5; truncated at t = 1 with V(final_obs) = 4,
/// so r₁ = 2 + 0.9·4 = 5.6; V(last obs) = 2.
///   t=2: δ = 3 + 0.9·2 − 1.5 = 3.3                    A = 3.3
///   t=1: done, δ = 5.6 − 1.0 = 4.6                    A = 4.6
///   t=0: δ = 1 + 0.9·1.0 − 0.5 = 1.4                  A = 1.4 + 0.72·4.6 = 4.712
/// Env 1: rewards −1, 0.5, 0; values 0.2, 0.3, 0.4; terminated at t = 0 (no bootstrap);
/// V(last obs) = 1.
///   t=2: δ = 0 + 0.9·1 − 0.4 = 0.5                    A = 0.5
///   t=1: δ = 0.5 + 0.9·0.4 − 0.3 = 0.56               A = 0.56 + 0.72·0.5 = 0.92
///   t=0: done, δ = −1 − 0.2 = −1.2                    A = −1.2
#[test]
fn gae_with_a_truncation_and_a_termination() {
    let gamma = 0.9;
    let mut rewards = vec![1.0f32, -1.0, 2.0, 0.5, 3.0, 0.0];
    // Step 1: env 0 truncated (bootstrap from its final observation's value).
    bootstrap_truncated(&mut rewards[2..4], &[true, false], &[4.0, 99.0], gamma);
    // Step 0: env 1 terminated: no bootstrap even with a value at hand.
    bootstrap_truncated(&mut rewards[0..2], &[false, false], &[99.0, 99.0], gamma);
    assert!(close(rewards[2], 5.6) && close(rewards[3], 0.5));

    let values = [0.5f32, 0.2, 1.0, 0.3, 1.5, 0.4];
    let dones = [false, true, true, false, false, false];
    let (adv, ret) = compute_gae(&rewards, &values, &dones, &[2.0, 1.0], 2, gamma, 0.8);
    let expected_adv = [4.712, -1.2, 4.6, 0.92, 3.3, 0.5];
    for (k, (&a, &e)) in adv.iter().zip(&expected_adv).enumerate() {
        assert!(close(a, e), "advantage {k}: got {a}, expected {e}");
        assert!(close(ret[k], e + f64::from(values[k])), "return {k}");
    }
}

#[rstest]
#[case(1.0, 1.0)] // λ = 1: Monte-Carlo returns with bootstrap
#[case(0.0, 0.5)] // λ = 0: one-step TD
fn gae_limits_on_one_env(#[case] lambda: f64, #[case] gamma: f64) {
    let rewards = [1.0f32, 2.0, 4.0];
    let values = [0.25f32, 0.5, 1.0];
    let (adv, _) = compute_gae(&rewards, &values, &[false; 3], &[8.0], 1, gamma, lambda);
    let next = [0.5, 1.0, 8.0];
    for t in 0..3 {
        let expected = if lambda == 0.0 {
            f64::from(rewards[t]) + gamma * next[t] - f64::from(values[t])
        } else {
            let mc: f64 = (t..3).map(|k| gamma.powi((k - t) as i32) * f64::from(rewards[k])).sum::<f64>()
                + gamma.powi((3 - t) as i32) * 8.0;
            mc - f64::from(values[t])
        };
        assert!(close(adv[t], expected), "t={t}: {} vs {expected}", adv[t]);
    }
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// Ratios 1, 1.5, 0.5 with advantages 1, 1, −1 and ε = 0.2:
/// max(−A·r, −A·clip(r)) = max(−1, −1) = −1; max(−1.5, −1.2) = −1.2; max(0.5, 0.8) = 0.8;
/// mean = −1.4 / 3. KL terms (r − 1) − ln r: 0, 0.5 − ln 1.5, −0.5 + ln 2. Clipped: 2 of 3.
#[test]
fn clipped_surrogate_kl_and_clip_fraction() {
    let old = Tensor::from_slice(&[0.0f32, 0.0, 0.0]);
    let new = Tensor::from_slice(&[0.0f32, 1.5f32.ln(), 0.5f32.ln()]);
    let adv = Tensor::from_slice(&[1.0f32, 1.0, -1.0]);
    let loss = scalar(&policy_loss(&new, &old, &adv, 0.2).unwrap());
    assert!((loss - (-1.4 / 3.0)).abs() < 1e-6, "{loss}");
    let kl = scalar(&approx_kl(&new, &old).unwrap());
    let expected = (0.5 - 1.5f64.ln() + (-0.5 + 2f64.ln())) / 3.0;
    assert!((kl - expected).abs() < 1e-6, "{kl} vs {expected}");
    assert!(kl >= 0.0);
    let cf = scalar(&clip_fraction(&new, &old, 0.2).unwrap());
    assert!((cf - 2.0 / 3.0).abs() < 1e-6);
    // Identical policies: ratio 1, loss −mean(A), no KL, nothing clipped.
    let same = scalar(&policy_loss(&old, &old, &adv, 0.2).unwrap());
    assert!((same - (-1.0 / 3.0)).abs() < 1e-6);
    assert_eq!(scalar(&approx_kl(&old, &old).unwrap()), 0.0);
}

/// Values 1, 2 against returns 0.5, 0.5 from old values 0, 0: unclipped MSE
/// (0.25 + 2.25) / 2 = 1.25; clipped to old ± 0.5 the prediction is 0.5, 0.5 and the loss 0.
#[test]
fn value_loss_with_and_without_clip() {
    let v = Tensor::from_slice(&[1.0f32, 2.0]);
    let old = Tensor::from_slice(&[0.0f32, 0.0]);
    let ret = Tensor::from_slice(&[0.5f32, 0.5]);
    assert!((scalar(&value_loss(&v, &old, &ret, None).unwrap()) - 1.25).abs() < 1e-6);
    assert!(scalar(&value_loss(&v, &old, &ret, Some(0.5)).unwrap()).abs() < 1e-6);
}
