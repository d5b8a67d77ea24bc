//! Prints, as one JSON object, what the training envs of `ploutos train` see at the start of
//! a run: the observations after the reset with `training.seed` and after a few steps of
//! fixed actions, with the rewards and flags. The Python package's test
//! (`python/tests/test_parity.py`) builds `ploutos.make_vec` from the same config and
//! compares: `cargo run --no-default-features --example first_observations -- CONFIG
//! STEPS [key=value]...`.
//!
//! The envs are built exactly as `ploutos train` builds them: [`Dataset::load`],
//! [`Dataset::env_options`] over the training split with `training.n_envs` (and
//! `training.threads`, `training.action_masking`), [`TradingEnv::new`], then reset with
//! `training.seed`.

use ploutos::TradingEnv;
use ploutos::config::Config;
use ploutos::dataset::{Dataset, SplitPart};
use std::path::Path;
use std::process::ExitCode;

/// The action code of env `i`, ticker `k` at step `t`: the same formula as the test's.
fn action(i: usize, k: usize, t: usize) -> u8 {
    ((i * 7 + k * 3 + t * 5) % 3) as u8
}

fn run(config: &str, steps: usize, overrides: &[String]) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let cfg = Config::load(Path::new(config), overrides)?;
    let ds = Dataset::load(&cfg.data)?;
    let opts = ds.env_options(&cfg.training, SplitPart::Train, cfg.training.n_envs)?;
    let mut env = TradingEnv::new(&cfg.environment, ds.market.clone(), opts)?;
    let (n, d) = (env.n_envs(), env.n_tickers());
    let b = env.reset(cfg.training.seed);
    let (mut obs, mut masks) = (vec![b.obs.clone()], vec![b.action_masks.clone()]);
    let (mut rewards, mut done) = (Vec::new(), Vec::new());
    for t in 0..steps {
        let actions: Vec<u8> = (0..n * d).map(|j| action(j / d, j % d, t)).collect();
        let b = env.step(&actions)?;
        obs.push(b.obs.clone());
        masks.push(b.action_masks.clone());
        rewards.push(b.rewards.clone());
        done.push(b.terminated.iter().zip(&b.truncated).map(|(a, b)| *a || *b).collect::<Vec<_>>());
    }
    Ok(serde_json::json!({
        "n_envs": n, "n_tickers": d, "obs_dim": env.obs_dim(),
        "obs": obs, "rewards": rewards, "done": done, "masks": masks,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(config), Some(Ok(steps))) = (args.first(), args.get(1).map(|s| s.parse::<usize>())) else {
        eprintln!("usage: first_observations CONFIG STEPS [key=value]...");
        return ExitCode::from(2);
    };
    match run(config, steps, &args[2..]) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("first_observations: {e}");
            ExitCode::FAILURE
        }
    }
}
