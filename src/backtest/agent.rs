//! Replays of trained agents: a policy network, or anything else that chooses actions from
//! observations and may fail doing so, over a period with a config's costs and rules.
//!
//! Backtests sit below the learner: [`Agent`] is all they need of one, and `ppo::Policy`
//! implements it, so that the backtests build and test without libtorch.

use super::ReplayResult;
use super::replay::{replay_config, replay_masked};
use crate::config::EnvironmentConfig;
use crate::env::MarketData;
use crate::vec_env::EnvError;
use std::ops::Range;

/// A trained agent: actions for observation rows.
pub trait Agent {
    /// Why the agent could not choose (a torch failure, observations of the wrong width).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Actions `[n_envs × n_tickers]` (0 hold, 1 buy, 2 sell) for `n_envs` observation rows;
    /// the most likely ones when `deterministic`, else sampled.
    ///
    /// # Errors
    /// [`Agent::Error`] when no actions could be chosen.
    fn try_act(&self, obs: &[f32], n_envs: usize, deterministic: bool) -> Result<Vec<u8>, Self::Error>;

    /// Whether the agent acts on the env's action masks: its replays then compute them
    /// (`EnvOptions::action_masks`) and call [`Agent::try_act_masked`] (default: false).
    fn action_masks(&self) -> bool {
        false
    }

    /// [`Agent::try_act`] among the actions `masks` allows (`[n_envs × n_tickers × n_actions]`, true
    /// = allowed, as [`crate::env::StepBuffers::action_masks`]); ignores them by default.
    ///
    /// # Errors
    /// [`Agent::Error`] when no actions could be chosen.
    fn try_act_masked(
        &self,
        obs: &[f32],
        masks: &[bool],
        n_envs: usize,
        deterministic: bool,
    ) -> Result<Vec<u8>, Self::Error> {
        let _ = masks;
        self.try_act(obs, n_envs, deterministic)
    }
}

/// A replay of an agent that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum AgentReplayError {
    /// The period does not fit the market (fewer than 2 bars, or past its end).
    #[error("period")]
    Period(#[from] EnvError),
    /// The agent failed to choose actions at some bar.
    #[error("model {name}")]
    Agent {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Replays `agent` over bars `range` of `market` with `cfg`'s costs and rules (as
/// [`replay_config`] sets them for a policy that is not buy-and-hold), acting greedily when
/// `deterministic`, on the env's action masks when the agent asks for them.
///
/// A bar where the agent fails holds every position, and the replay runs on to the end so
/// that the env's state is never left half-stepped; the first failure is then returned.
///
/// # Errors
/// [`AgentReplayError::Period`] when the range holds fewer than 2 bars or ends past the
/// market; [`AgentReplayError::Agent`] with the agent's first error.
pub fn replay_agent<A: Agent + ?Sized>(
    cfg: &EnvironmentConfig,
    market: MarketData,
    range: Range<usize>,
    agent: &A,
    name: String,
    deterministic: bool,
) -> Result<ReplayResult, AgentReplayError> {
    let env_cfg = replay_config(cfg, None, range.len());
    let mut failure = None;
    let masked = agent.action_masks();
    let actor = |_t: usize, obs: &[f32], masks: &[bool], out: &mut [u8]| {
        let chosen = if masked {
            agent.try_act_masked(obs, masks, 1, deterministic)
        } else {
            agent.try_act(obs, 1, deterministic)
        };
        match chosen {
            Ok(a) => out.copy_from_slice(&a),
            Err(e) => {
                out.fill(0);
                failure.get_or_insert(e);
            }
        }
    };
    let result = replay_masked(&env_cfg, market, range, name.clone(), masked, actor)?;
    if let Some(e) = failure {
        return Err(AgentReplayError::Agent { name, source: Box::new(e) });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::{Policy, replay_policy};

    /// Buys every ticker at bar `buy_at`, holds otherwise; fails from bar `fail_from` on
    /// (bars counted by calls).
    struct Scripted {
        n_tickers: usize,
        buy_at: usize,
        fail_from: usize,
        calls: std::cell::Cell<usize>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("scripted failure")]
    struct Failure;

    impl Agent for Scripted {
        type Error = Failure;
        fn try_act(&self, _obs: &[f32], n_envs: usize, _deterministic: bool) -> Result<Vec<u8>, Failure> {
            let t = self.calls.replace(self.calls.get() + 1);
            if t >= self.fail_from {
                return Err(Failure);
            }
            Ok(vec![u8::from(t == self.buy_at); n_envs * self.n_tickers])
        }
    }

    fn agent(buy_at: usize, fail_from: usize) -> Scripted {
        Scripted { n_tickers: 3, buy_at, fail_from, calls: Default::default() }
    }

    fn market() -> MarketData {
        MarketData::random_walk(300, 3, 4, 5)
    }

    #[test]
    fn an_agent_that_holds_replays_as_the_flat_policy() {
        let cfg = EnvironmentConfig::default();
        let got = replay_agent(&cfg, market(), 120..200, &agent(usize::MAX, usize::MAX), "a".into(), true).unwrap();
        let flat = replay_policy(&cfg, market(), 120..200, &Policy::Flat).unwrap();
        assert_eq!(got.equity, flat.equity);
        assert_eq!(got.equity.len(), 80, "one row per bar of the period");
        assert!(got.trades.is_empty());
        assert_eq!(got.name, "a");
    }

    #[test]
    fn an_agent_that_buys_trades() {
        let cfg = EnvironmentConfig::default();
        let got = replay_agent(&cfg, market(), 120..200, &agent(0, usize::MAX), "a".into(), true).unwrap();
        assert!(!got.trades.is_empty());
        assert_eq!(got.equity.len(), 80);
        assert_ne!(got.equity.last().map(|r| r.cash), Some(cfg.initial_cash));
    }

    #[test]
    fn the_first_failure_is_returned_after_the_whole_period() {
        let cfg = EnvironmentConfig::default();
        let a = agent(usize::MAX, 10);
        let err = replay_agent(&cfg, market(), 120..200, &a, "fold_0".into(), true).unwrap_err();
        assert_eq!(a.calls.get(), 79, "the replay ran to its last decision");
        assert!(matches!(&err, AgentReplayError::Agent { name, .. } if name == "fold_0"), "{err:?}");
        assert_eq!(format!("{err}: {}", std::error::Error::source(&err).unwrap()), "model fold_0: scripted failure");
    }

    #[test]
    fn a_period_outside_the_market_is_an_env_error() {
        let cfg = EnvironmentConfig::default();
        for range in [120..121, 250..400] {
            let err = replay_agent(&cfg, market(), range.clone(), &agent(0, usize::MAX), "a".into(), true);
            assert!(matches!(err, Err(AgentReplayError::Period(_))), "{range:?}: {err:?}");
        }
    }
}
