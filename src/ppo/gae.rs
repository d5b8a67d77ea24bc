//! Generalized advantage estimation, the bootstrap on truncation and the explained variance,
//! as pure functions so that each can be checked against a hand computation (the loss
//! terms are in [`super::loss`]).
//!
//! GAE runs on the host: rewards and done flags come from the env there, and a rollout's
//! values are one copy back; a sequential loop over `n_steps` on a GPU would cost one
//! kernel launch per step instead.

/// Advantages and returns (advantage + value) of a rollout by GAE(γ, λ).
///
/// All slices are step-major, `[n_steps, n_envs]` flattened: index `t * n_envs + i`.
/// `dones[t]` says that transition t ended its episode (terminated or truncated), so
/// the next observation belongs to a new episode and nothing flows back across it.
/// Truncation is not a cut in value: the caller has already added γ·V(final_obs) to the
/// reward of a truncated step (SB3's bootstrap), while termination adds nothing.
/// `last_values` are V(obs) after the last step, the bootstrap of unfinished episodes.
///
/// δ_t = r_t + γ·V_{t+1}·(1 − done_t) − V_t;  A_t = δ_t + γλ·(1 − done_t)·A_{t+1}.
///
/// # Panics
/// When the slice lengths do not match `n_steps × n_envs` (and `n_envs` for
/// `last_values`).
pub fn compute_gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    n_envs: usize,
    gamma: f64,
    lambda: f64,
) -> (Vec<f32>, Vec<f32>) {
    assert!(n_envs > 0 && rewards.len().is_multiple_of(n_envs), "rewards must be whole [n_steps, n_envs] rows");
    assert_eq!(values.len(), rewards.len(), "values and rewards differ in length");
    assert_eq!(dones.len(), rewards.len(), "dones and rewards differ in length");
    assert_eq!(last_values.len(), n_envs, "last_values must have n_envs entries");
    let n_steps = rewards.len() / n_envs;
    let mut adv = vec![0f32; rewards.len()];
    for (i, &last) in last_values.iter().enumerate() {
        // f64 accumulation: over 4096 steps f32 would drift in the last digits.
        let mut next_adv = 0f64;
        let mut next_value = f64::from(last);
        for t in (0..n_steps).rev() {
            let k = t * n_envs + i;
            let live = if dones[k] { 0.0 } else { 1.0 };
            let delta = f64::from(rewards[k]) + gamma * next_value * live - f64::from(values[k]);
            next_adv = delta + gamma * lambda * live * next_adv;
            adv[k] = next_adv as f32;
            next_value = f64::from(values[k]);
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// SB3's bootstrap on truncation: `r_i += γ·V(final_obs_i)` for every truncated env, so
/// that running out of data or reaching `episode_length` does not look like a zero-value
/// end. Terminated envs (bankruptcy) get nothing: that end is real.
///
/// # Panics
/// When the slices differ in length.
pub fn bootstrap_truncated(rewards: &mut [f32], truncated: &[bool], final_values: &[f32], gamma: f64) {
    assert!(rewards.len() == truncated.len() && rewards.len() == final_values.len(), "one entry per env");
    for ((r, &trunc), &v) in rewards.iter_mut().zip(truncated).zip(final_values) {
        if trunc {
            *r = (f64::from(*r) + gamma * f64::from(v)) as f32;
        }
    }
}

/// 1 − Var(returns − values) / Var(returns); NaN when the returns do not vary (as SB3).
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    fn var(it: impl Iterator<Item = f64> + Clone) -> f64 {
        let n = it.clone().count() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let mean = it.clone().sum::<f64>() / n;
        it.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n
    }
    let var_y = var(returns.iter().map(|&y| f64::from(y)));
    if var_y == 0.0 {
        return f64::NAN;
    }
    let var_res = var(returns.iter().zip(values).map(|(&y, &v)| f64::from(y) - f64::from(v)));
    1.0 - var_res / var_y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_env_no_done_is_discounted_td() {
        // λ = 1: A_t = Σ γ^k r_{t+k} + γ^n V_last − V_t.
        let (adv, ret) = compute_gae(&[1.0, 1.0], &[0.0, 0.0], &[false, false], &[2.0], 1, 0.5, 1.0);
        assert!((adv[1] - (1.0 + 0.5 * 2.0)).abs() < 1e-6);
        assert!((adv[0] - (1.0 + 0.5 * 1.0 + 0.25 * 2.0)).abs() < 1e-6);
        assert_eq!(adv, ret);
    }

    #[test]
    fn explained_variance_of_a_perfect_fit_is_one() {
        assert!((explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!(explained_variance(&[0.0, 0.0], &[1.0, 1.0]).is_nan());
    }
}
