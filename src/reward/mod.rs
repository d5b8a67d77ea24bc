//! The reward paid after each step.
//!
//! `seed` (default), the seed's shaped reward, with E the equity marked at closes:
//!
//! ```text
//! r = return_weight · ΔE/E_{t−1}                        step return, in % points
//!   − [DD > drawdown_threshold] · drawdown_weight · DD  DD = (peak − E_t)/peak of the episode
//!   + [S < 0] · sharpe_weight · S                       S = mean/std of the last sharpe_window
//!                                                       step returns (population std, not
//!                                                       annualized; 0 with < 2 returns or std 0)
//!   − [n > overtrade_threshold] · overtrade_weight · n  n = orders executed this step
//!   + [ΔE/E_{t−1} > bonus_threshold] · bonus
//! all × reward_scaling
//! ```
//!
//! `log_return`: `return_weight · ln(E_t/E_{t−1}) × reward_scaling`.
//!
//! With `turnover_penalty` = c > 0, every mode sees E_t − c × (notional traded in the step)
//! in place of E_t: a cost of c per dollar traded, charged in the reward only.
//!
//! `differential_sharpe` (Moody & Saffell 1998): with R the step return and moving moments
//! A, B updated at rate η = `dsr_eta`, `D = (B·ΔA − ½·A·ΔB) / (B − A²)^{3/2}` using the
//! moments before the update, × reward_scaling. The first ⌈1/η⌉ steps of an episode pay 0
//! and set A and B to the plain means of the returns so far (moments started at 0 would
//! give a variance of a step or two, and rewards of thousands), and the variance is floored
//! at (1 bp)² per step ([`DSR_MIN_STD`]), so that an agent that sat in cash does not divide
//! by zero when it first trades.

use crate::config::{EnvironmentConfig, RewardConfig, RewardMode};
use crate::env::{EnvAppExt, Portfolio, StepOutcome};
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

/// Floor of the differential Sharpe ratio's step-return std: 1 basis point.
pub const DSR_MIN_STD: f64 = 1e-4;

/// Reward settings shared by all envs.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct RewardSettings {
    pub reward: RewardConfig,
    pub scaling: f64,
}

/// The reward's own per-env state, reset at every episode start: the last step returns
/// (for the rolling Sharpe) and the differential Sharpe's moving moments.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct RewardState {
    /// Last `sharpe_window` step returns (ring buffer).
    pub returns: Box<[f64]>,
    /// Returns pushed so far this episode (the ring holds `min(n, window)`).
    pub n_returns: usize,
    /// Ring slot the next return goes to (`n_returns % window`).
    pub ret_slot: usize,
    /// Differential-Sharpe moving moments A and B.
    pub dsr_a: f64,
    pub dsr_b: f64,
}

impl RewardState {
    /// A fresh state with a ring of `window` returns.
    pub fn new(window: usize) -> Self {
        Self { returns: vec![0.0; window].into_boxed_slice(), n_returns: 0, ret_slot: 0, dsr_a: 0.0, dsr_b: 0.0 }
    }

    /// Pushes this step's return into the ring.
    #[inline]
    pub fn push(&mut self, r: f64) {
        self.returns[self.ret_slot] = r;
        // The next slot without a division (this runs for every env at every step).
        self.ret_slot = if self.ret_slot + 1 == self.returns.len() { 0 } else { self.ret_slot + 1 };
        self.n_returns += 1;
    }
}

/// Computes the step reward. Its [`RewardState`] is per-env state of the plugin's own,
/// reset through the core's episode-start hook ([`EnvAppExt::add_env_state`]).
pub struct RewardPlugin {
    pub settings: RewardSettings,
}

impl RewardPlugin {
    pub fn new(cfg: &EnvironmentConfig) -> Self {
        Self { settings: RewardSettings { reward: cfg.reward.clone(), scaling: cfg.reward_scaling } }
    }
}

impl Plugin for RewardPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.settings.clone())
            .add_env_state(RewardState::new(self.settings.reward.sharpe_window))
            .add_reward_systems(compute_reward);
    }
}

/// Adds the configured reward to [`StepOutcome::reward`].
///
/// Reads [`Portfolio`] (equity, peak, orders executed), [`StepOutcome::step_return`],
/// [`RewardSettings`]; writes [`StepOutcome::reward`], [`RewardState`]. Runs in
/// [`crate::env::StepSystems::Reward`], after mark-to-market.
pub fn compute_reward(
    settings: Res<RewardSettings>,
    mut envs: Query<(&Portfolio, &mut RewardState, &mut StepOutcome)>,
) {
    envs.iter_mut().for_each(|(portfolio, mut state, mut outcome)| {
        state.push(outcome.step_return);
        outcome.reward += reward(&settings, portfolio, &mut state);
    });
}

/// The reward of the step that `p` has just been marked for, whose return `state` has
/// just recorded.
pub fn reward(settings: &RewardSettings, p: &Portfolio, state: &mut RewardState) -> f64 {
    let c = &settings.reward;
    // The reward's own extra cost of trading (0 unless `turnover_penalty` is set: then the
    // returns below are exactly the account's).
    let penalty = c.turnover_penalty * p.traded_this_step;
    let step_return = if p.prev_equity > 0.0 { (p.equity - p.prev_equity - penalty) / p.prev_equity } else { 0.0 };
    let r = match c.mode {
        RewardMode::Seed => {
            // Each term is computed and then multiplied by its condition (0 or 1): random
            // actions make these conditions unpredictable, and a mispredicted branch costs
            // more than the term. Exact: x × 1 = x, and adding 0 changes nothing.
            let on = |cond: bool| f64::from(u8::from(cond));
            let mut r = c.return_weight * step_return;
            let dd = p.drawdown();
            r -= on(dd > c.drawdown_threshold) * c.drawdown_weight * dd;
            // Only a negative Sharpe ratio is penalized, and its sign is the mean's.
            let xs = window(&state.returns, state.n_returns);
            if c.sharpe_weight != 0.0
                && let Some(mean) = window_mean(xs)
            {
                r += on(mean < 0.0) * c.sharpe_weight * sharpe_of(xs, mean);
            }
            let n = p.executed_this_step;
            r -= on(n > c.overtrade_threshold) * c.overtrade_weight * f64::from(n);
            if step_return > c.bonus_threshold {
                r += c.bonus;
            }
            r
        }
        RewardMode::LogReturn => {
            if p.prev_equity > 0.0 && p.equity - penalty > 0.0 {
                c.return_weight * ((p.equity - penalty) / p.prev_equity).ln()
            } else {
                0.0
            }
        }
        RewardMode::DifferentialSharpe => {
            let (a, b) = (state.dsr_a, state.dsr_b);
            let (da, db) = (step_return - a, step_return * step_return - b);
            // Returns pushed this episode, this step's included (mark-to-market runs first).
            let n = state.n_returns.max(1) as f64;
            if n <= (1.0 / c.dsr_eta).ceil() {
                // Warm-up: plain means of the episode's returns so far, nothing paid.
                state.dsr_a = a + da / n;
                state.dsr_b = b + db / n;
                0.0
            } else {
                let var = (b - a * a).max(DSR_MIN_STD * DSR_MIN_STD);
                state.dsr_a = a + c.dsr_eta * da;
                state.dsr_b = b + c.dsr_eta * db;
                (b * da - 0.5 * a * db) / var.powf(1.5)
            }
        }
    };
    r * settings.scaling
}

/// The returns of the ring that were pushed: the last `min(n, window)` (with fewer than
/// `window` returns the ring is filled from index 0).
fn window(ring: &[f64], n: usize) -> &[f64] {
    &ring[..n.min(ring.len())]
}

/// Mean of a window of at least 2 returns.
fn window_mean(xs: &[f64]) -> Option<f64> {
    (xs.len() >= 2).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// `mean` / population std of `xs`, given their mean (the reward has it already).
fn sharpe_of(xs: &[f64], mean: f64) -> f64 {
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
    if var > 0.0 { mean / var.sqrt() } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portfolio(prev: f64, now: f64, peak: f64, executed: u32, rets: &[f64]) -> (Portfolio, RewardState) {
        let mut p = Portfolio::new(10_000.0);
        p.prev_equity = prev;
        p.equity = now;
        p.peak_equity = peak;
        p.executed_this_step = executed;
        let mut state = RewardState::new(RewardConfig::default().sharpe_window);
        for r in rets {
            state.push(*r);
        }
        (p, state)
    }

    #[test]
    fn seed_reward_terms_add_up() {
        let s = RewardSettings { reward: RewardConfig::default(), scaling: 1.0 };
        // +3% step, drawdown 20% from a peak of 12,875, 2 orders, returns window [-0.01, 0.03].
        let (p, mut st) = portfolio(10_000.0, 10_300.0, 12_875.0, 2, &[-0.01, 0.03]);
        let sharpe = (0.01) / 0.02; // mean 0.01, population std 0.02 → positive: no penalty
        assert!(sharpe > 0.0);
        let want = 100.0 * 0.03 - 10.0 * 0.2 - 0.01 * 2.0 + 0.5;
        assert!((reward(&s, &p, &mut st) - want).abs() < 1e-12);
        // A losing window: Sharpe = mean/std = -0.02/0.01 = -2 → +0.1 × -2.
        let (p, mut st) = portfolio(10_000.0, 9_900.0, 10_000.0, 0, &[-0.03, -0.01]);
        let want = 100.0 * -0.01 + 0.1 * -2.0;
        assert!((reward(&s, &p, &mut st) - want).abs() < 1e-12);
    }

    #[test]
    fn differential_sharpe_warms_up_and_stays_bounded() {
        // Moments started at 0 paid ~1e6 on the second step after a tiny first return.
        let cfg = RewardConfig { mode: RewardMode::DifferentialSharpe, dsr_eta: 0.01, ..RewardConfig::default() };
        let s = RewardSettings { reward: cfg, scaling: 1.0 };
        let (mut p, mut st) = portfolio(10_000.0, 10_000.0, 10_000.0, 0, &[]);
        let mut paid = vec![];
        for t in 0..400 {
            let r = match t {
                0..3 => 1e-9,
                3..200 => 0.0,
                _ => {
                    if t % 3 == 0 {
                        -0.004
                    } else {
                        0.005
                    }
                }
            };
            p.prev_equity = p.equity;
            p.equity *= 1.0 + r;
            st.n_returns += 1;
            paid.push(reward(&s, &p, &mut st));
        }
        assert!(paid[..100].iter().all(|&d| d == 0.0), "warm-up pays nothing");
        assert!(
            paid.iter().all(|d| d.is_finite() && d.abs() < 100.0),
            "max |D| = {}",
            paid.iter().fold(0.0f64, |m, d| m.max(d.abs()))
        );
        // Once trading, mostly-winning steps earn a positive total.
        assert!(paid[250..].iter().sum::<f64>() > 0.0);
    }

    #[test]
    fn log_return_mode() {
        let s = RewardSettings {
            reward: RewardConfig { mode: RewardMode::LogReturn, ..RewardConfig::default() },
            scaling: 2.0,
        };
        let (p, mut st) = portfolio(100.0, 110.0, 110.0, 5, &[]);
        assert!((reward(&s, &p, &mut st) - 2.0 * 100.0 * (1.1f64).ln()).abs() < 1e-12);
    }
}
