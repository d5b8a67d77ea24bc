//! Evaluation on the validation env: each eval env's first episode under the current
//! policy (on the env's action masks with `training.action_masking`), observations normalized with the training statistics (not updated), scored by
//! mean reward, total return and Sharpe ratio. The trainer keeps the best model in `best/`.
//!
//! The Sharpe ratio is the backtest reports' [`sharpe`], so that the best model is chosen by
//! the number a report of it shows.

use super::PpoError;
use super::learner::{Learner, observe};
use super::model::{InputBuilder, actions_to_host, masks_tensor};
use crate::backtest::metrics::{drawdown, sharpe};
use crate::env::StepBuffers;
use crate::vec_env::TradingEnv;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mixed into the seed of the evaluation env's resets: every evaluation of a run sees the
/// same episode starts.
pub(super) const EVAL_SALT: u64 = 0x4556_414c_5f53_4545; // "EVAL_SEE"

impl Learner {
    /// Mean reward, return and Sharpe of each eval env's first episode, acting greedily on
    /// observations normalized with the training statistics (not updated).
    ///
    /// An auto-resetting eval env runs until every env has finished its first episode. One
    /// without auto-reset refuses to step once any env has finished, so there the envs
    /// still running are scored on their episode so far (with equal episode lengths and
    /// no bankruptcy, all finish on the same step anyway).
    pub(super) fn evaluate(
        &mut self,
        env: &mut TradingEnv,
        input: &InputBuilder,
        seed: u64,
        bars_per_year: f64,
    ) -> Result<Scores, PpoError> {
        let n = env.n_envs();
        let mut step_returns: Vec<Vec<f64>> = vec![Vec::new(); n];
        let (mut ep_reward, mut ep_return) = (vec![0.0; n], vec![0.0; n]);
        let masking = self.cfg.action_masking;
        // The same stream at every evaluation: common random numbers.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniforms = vec![0f32; n * self.spec.n_tickers];
        let act = |obs: &[f32], masks: &[bool], actions: &mut [u8]| {
            let chosen = tch::no_grad(|| {
                let x = observe(&mut self.obs_norm, self.cfg.obs_clip, input, self.device, obs, n, false)?;
                let m = masking.then(|| masks_tensor(masks, &self.spec, self.device)).transpose()?;
                if self.cfg.eval_deterministic {
                    return actions_to_host(&self.model.greedy(&x, m.as_ref())?);
                }
                uniforms.iter_mut().for_each(|u| *u = rng.random::<f32>());
                actions_to_host(&self.model.sample_actions(&x, &uniforms, m.as_ref())?)
            })?;
            actions.copy_from_slice(&chosen);
            Ok(())
        };
        first_episodes(env, seed, act, |i, b| {
            let info = &b.infos[i];
            step_returns[i].push(info.step_return);
            ep_reward[i] = info.episode_reward;
            ep_return[i] = info.episode_return;
        })?;
        let sharpe = step_returns.iter().map(|r| sharpe(r, bars_per_year)).sum::<f64>() / n as f64;
        // Each episode's deepest fall from its running peak, its equity rebuilt from its
        // step returns.
        let max_drawdown = step_returns
            .iter()
            .map(|r| {
                let equity: Vec<f64> = std::iter::once(1.0)
                    .chain(r.iter().scan(1.0, |e, x| {
                        *e *= 1.0 + x;
                        Some(*e)
                    }))
                    .collect();
                drawdown(&equity).0
            })
            .sum::<f64>()
            / n as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        Ok(Scores { episodes: n, mean_reward: mean(&ep_reward), total_return: mean(&ep_return), sharpe, max_drawdown })
    }
}

/// What [`Learner::evaluate`] scores, each a mean over the episodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scores {
    pub(super) episodes: usize,
    pub(super) mean_reward: f64,
    pub(super) total_return: f64,
    pub(super) sharpe: f64,
    /// Mean of the episodes' maximum drawdowns (a positive fraction).
    pub(super) max_drawdown: f64,
}

/// What the two baselines make over the evaluation's episodes: equal-weight buy-and-hold and
/// the random policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Baselines {
    pub(super) buy_and_hold_return: f64,
    pub(super) buy_and_hold_sharpe: f64,
    pub(super) random_return: f64,
    pub(super) random_sharpe: f64,
}

/// The baselines over the episodes [`Learner::evaluate`] scores with `seed` (the same start
/// bars and lengths), by the same mean of per-episode returns and Sharpe ratios.
///
/// Buy-and-hold holds every ticker in equal parts from each episode's first bar, marked at
/// the closes, without costs: the market the agent is asked to beat. The random policy
/// draws uniform actions (the backtests' `random`, stream `seed`) through the eval env, its
/// costs and rules included.
pub(super) fn baselines(env: &mut TradingEnv, seed: u64, bars_per_year: f64) -> Result<Baselines, PpoError> {
    let (n, k, n_actions) = (env.n_envs(), env.n_tickers(), env.n_actions());

    // Buy-and-hold: the bars each episode visits, from a run that holds.
    env.reset(seed);
    let starts: Vec<usize> = (0..n).map(|i| env.env_state(i).map_or(0, |(_, _, clock)| clock.bar as usize)).collect();
    let mut bars: Vec<Vec<usize>> = starts.iter().map(|&b| vec![b]).collect();
    // The actions start at the hold code (no order) and stay there.
    first_episodes(env, seed, |_, _, _| Ok(()), |i, b| bars[i].push(b.infos[i].bar as usize))?;
    let market = env.market();
    let (mut bh_return, mut bh_sharpe) = (0.0, 0.0);
    for (i, visited) in bars.iter().enumerate() {
        let first = market.close_row(starts[i]);
        // A finishing step reports the bar the episode ended on (the restart comes after).
        let value = |bar: usize| {
            let c = market.close_row(bar);
            c.iter().zip(first).map(|(c, f)| c / f).sum::<f64>() / k as f64
        };
        let values: Vec<f64> = visited.iter().map(|&b| value(b)).collect();
        let returns: Vec<f64> = values.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        bh_return += values.last().copied().unwrap_or(1.0) - 1.0;
        bh_sharpe += sharpe(&returns, bars_per_year);
    }

    // Random: uniform actions through the env.
    let mut rng = crate::backtest::random_stream(seed);
    let mut step_returns: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut ep_return = vec![0.0; n];
    let random = |_: &[f32], _: &[bool], actions: &mut [u8]| {
        crate::backtest::random_actions(&mut rng, n_actions, actions);
        Ok(())
    };
    first_episodes(env, seed, random, |i, b| {
        step_returns[i].push(b.infos[i].step_return);
        ep_return[i] = b.infos[i].episode_return;
    })?;
    let mean = |x: f64| x / n as f64;
    Ok(Baselines {
        buy_and_hold_return: mean(bh_return),
        buy_and_hold_sharpe: mean(bh_sharpe),
        random_return: mean(ep_return.iter().sum()),
        random_sharpe: mean(step_returns.iter().map(|r| sharpe(r, bars_per_year)).sum()),
    })
}

/// Steps `env` from a reset with `seed` until every env has finished its first episode
/// (without auto-reset: until one has, as the env then refuses to step; with equal episode
/// lengths and no bankruptcy all finish on the same step anyway). `act(obs, masks,
/// actions)` chooses each step's actions (they start at 0, hold, and keep what it last
/// wrote) from the previous step's observations and masks;
/// `record(i, buffers)` sees each step of env i's first episode, the finishing one included.
fn first_episodes(
    env: &mut TradingEnv,
    seed: u64,
    mut act: impl FnMut(&[f32], &[bool], &mut [u8]) -> Result<(), PpoError>,
    mut record: impl FnMut(usize, &StepBuffers),
) -> Result<(), PpoError> {
    let (n, auto_reset) = (env.n_envs(), env.auto_reset());
    let max_steps = env.market().n_bars() + 1;
    let mut actions = vec![env.hold_code(); n * env.n_tickers()];
    let first = env.reset(seed);
    let (mut obs, mut masks) = (first.obs.clone(), first.action_masks.clone());
    let mut done = vec![false; n];
    for _ in 0..max_steps {
        act(&obs, &masks, &mut actions)?;
        let b = env.step(&actions)?;
        let mut any_finished = false;
        for (i, finished) in done.iter_mut().enumerate() {
            if *finished {
                continue;
            }
            record(i, b);
            *finished = b.terminated[i] || b.truncated[i];
            any_finished |= *finished;
        }
        if done.iter().all(|&d| d) || (any_finished && !auto_reset) {
            break;
        }
        obs.copy_from_slice(&b.obs);
        masks.copy_from_slice(&b.action_masks);
    }
    Ok(())
}
