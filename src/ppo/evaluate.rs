//! Evaluation on the validation env: each eval env's first episode under the current
//! policy, observations normalized with the training statistics (not updated), scored by
//! mean reward, total return and Sharpe ratio. The trainer keeps the best model in `best/`.
//!
//! The Sharpe ratio is the backtest reports' [`sharpe`], so that the best model is chosen by
//! the number a report of it shows.

use super::PpoError;
use super::learner::{Learner, observe};
use super::model::{InputBuilder, actions_to_host};
use crate::backtest::metrics::sharpe;
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
    ) -> Result<(usize, f64, f64, f64), PpoError> {
        let n = env.n_envs();
        let auto_reset = env.auto_reset();
        let mut done = vec![false; n];
        let mut step_returns: Vec<Vec<f64>> = vec![Vec::new(); n];
        let (mut ep_reward, mut ep_return) = (vec![0.0; n], vec![0.0; n]);
        let mut obs = env.reset(seed).obs.clone();
        let max_steps = env.market().n_bars() + 1;
        // The same stream at every evaluation: common random numbers.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniforms = vec![0f32; n * self.spec.n_tickers];
        for _ in 0..max_steps {
            let actions = tch::no_grad(|| {
                let x = observe(&mut self.obs_norm, self.cfg.obs_clip, input, self.device, &obs, n, false)?;
                if self.cfg.eval_deterministic {
                    return actions_to_host(&self.model.greedy(&x)?);
                }
                uniforms.iter_mut().for_each(|u| *u = rng.random::<f32>());
                actions_to_host(&self.model.sample_actions(&x, &uniforms)?)
            })?;
            let b = env.step(&actions)?;
            let mut any_finished = false;
            for i in 0..n {
                if done[i] {
                    continue;
                }
                let info = &b.infos[i];
                step_returns[i].push(info.step_return);
                ep_reward[i] = info.episode_reward;
                ep_return[i] = info.episode_return;
                if b.terminated[i] || b.truncated[i] {
                    done[i] = true;
                    any_finished = true;
                }
            }
            if done.iter().all(|&d| d) || (any_finished && !auto_reset) {
                break;
            }
            obs.copy_from_slice(&b.obs);
        }
        let sharpe = step_returns.iter().map(|r| sharpe(r, bars_per_year)).sum::<f64>() / n as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        Ok((n, mean(&ep_reward), mean(&ep_return), sharpe))
    }
}
