//! A model trained for one iteration and loaded from its checkpoint replays as a backtest
//! agent: one equity row per bar, the same replay each time when greedy, and the same as
//! stepping a replay env by hand with the policy's greedy actions.
#![cfg(feature = "learner")]

use ploutos::backtest::{AgentReplayError, ReplayResult, replay, replay_agent, replay_config, replay_masked};
use ploutos::config::Config;
use ploutos::env::{EpisodeBounds, MarketData};
use ploutos::ppo::{NoHooks, Policy, RunPaths, Trainer};
use ploutos::{EnvOptions, TradingEnv};
use tch::Device;

fn config() -> Config {
    let mut c = Config::default();
    let t = &mut c.training;
    t.n_envs = 2;
    t.n_steps = 8;
    t.batch_size = 8;
    t.n_epochs = 1;
    t.net_arch = vec![8, 8];
    t.total_timesteps = 16;
    t.device = "cpu".into();
    t.threads = 1;
    t.eval_freq = 0;
    t.checkpoint_freq = 0;
    c.validate().unwrap();
    c
}

fn market() -> MarketData {
    MarketData::random_walk(300, 2, 3, 11)
}

/// Trains one iteration into `root` and loads the final model.
fn trained_policy(c: &Config, root: &std::path::Path) -> Policy {
    let bounds = EpisodeBounds { first: 0, last: 199, random_start: true };
    let opts = EnvOptions { threads: 1, ..EnvOptions::training(c.training.n_envs, bounds) };
    let env = TradingEnv::new(&c.environment, market(), opts).unwrap();
    let paths = RunPaths { models: root.join("models"), runs: root.join("runs"), logs: root.join("logs") };
    let summary = Trainer::new(c, env, None, paths).unwrap().train(&mut NoHooks).unwrap();
    let mut policy = Policy::load(&summary.last_checkpoint, Device::Cpu).unwrap();
    policy.set_market(&market()).unwrap();
    policy
}

fn curve(r: &ReplayResult) -> Vec<f64> {
    r.equity.iter().map(|e| e.equity).collect()
}

#[test]
fn a_trained_policy_replays_over_a_test_period() {
    let c = config();
    let dir = tempfile::tempdir().unwrap();
    let policy = trained_policy(&c, dir.path());
    let range = 200..280;
    let got = replay_agent(&c.environment, market(), range.clone(), &policy, "fold_0".into(), true).unwrap();
    assert_eq!(got.name, "fold_0");
    assert_eq!(got.equity.len(), range.len());
    assert_eq!(got.equity.first().map(|e| e.bar), Some(range.start));
    assert_eq!(got.equity.last().map(|e| e.bar), Some(range.end - 1));

    let again = replay_agent(&c.environment, market(), range.clone(), &policy, "fold_0".into(), true).unwrap();
    assert_eq!(curve(&got), curve(&again), "greedy replays repeat");
    assert_eq!(got.trades.len(), again.trades.len());

    // The policy was trained with masks: its replays act on the env's masks.
    assert!(policy.action_masking());
    let env_cfg = replay_config(&c.environment, None, range.len());
    let by_hand = replay_masked(&env_cfg, market(), range.clone(), "by hand".into(), true, |_t, obs, masks, out| {
        out.copy_from_slice(&policy.try_act_masked(obs, Some(masks), 1, true).unwrap());
    })
    .unwrap();
    assert_eq!(curve(&got), curve(&by_hand));
    assert_eq!(got.trades.len(), by_hand.trades.len());
    let masked = got.refusal_names.iter().position(|n| n == "masked").unwrap();
    assert_eq!(got.totals.refused.0[masked], 0, "a masked policy sends no masked order");
    // Unmasked, the same network acts on all its logits and may send what the rules refuse.
    let unmasked =
        replay(&env_cfg, market(), range.clone(), "unmasked".into(), |_t: usize, obs: &[f32], out: &mut [u8]| {
            out.copy_from_slice(&policy.act(obs, 1, true));
        })
        .unwrap();
    assert_eq!(unmasked.equity.len(), got.equity.len());

    // Stochastic replays run too (the policy's own stream).
    let sampled = replay_agent(&c.environment, market(), range, &policy, "sampled".into(), false).unwrap();
    assert_eq!(sampled.equity.len(), got.equity.len());
}

#[test]
fn a_policy_error_is_reported_with_the_model_name() {
    let c = config();
    let dir = tempfile::tempdir().unwrap();
    let policy = trained_policy(&c, dir.path());
    // Observations of another market (3 tickers) do not fit a 2-ticker policy.
    let other = MarketData::random_walk(300, 3, 3, 11);
    let err = replay_agent(&c.environment, other, 200..220, &policy, "fold_1".into(), true).unwrap_err();
    assert!(matches!(&err, AgentReplayError::Agent { name, .. } if name == "fold_1"), "{err:?}");
}
