//! Argument parsing (clap) and dispatch to one module per subcommand.

mod args;

pub use args::Cli;
use args::Command;

use anyhow::Context;
use ploutos::config::{Config, ConfigError};
use std::path::Path;

/// A bad command-line argument (as opposed to a bad config or data file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgument(pub String);

/// True when the error was caused by the user's input and deserves exit code 2.
pub fn is_user_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<ConfigError>() || e.is::<BadArgument>() // TODO(market): || e.is::<ploutos::market::DataError>()
    })
}

/// Where `--config` points when it is not given.
const DEFAULT_CONFIG: &str = "config/default.ron";

/// Loads `--config` (else `config/default.ron` when present, else the built-in defaults)
/// and applies `--set` overrides.
pub fn load_config(path: Option<&Path>, overrides: &[String]) -> anyhow::Result<Config> {
    let default = Path::new(DEFAULT_CONFIG);
    let cfg = match path {
        Some(path) => Config::load(path, overrides)?,
        None if default.exists() => Config::load(default, overrides)?,
        None => {
            let cfg = Config::default().with_overrides(overrides)?;
            cfg.validate()?;
            cfg
        }
    };
    Ok(cfg)
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => {
            let cfg = a.common.load()?;
            tracing_init();
            let _ = cfg;
            Err(anyhow::anyhow!("training is not yet available in this build")).context("train")
        }
        Command::Backtest(a) => {
            let _cfg = a.common.load()?;
            Err(anyhow::anyhow!("backtesting is not yet available")).context("backtest")
        }
        Command::Features(a) => {
            let _cfg = a.common.load()?;
            Err(anyhow::anyhow!("features is not yet available")).context("features")
        }
        Command::GenerateData(a) => {
            let _cfg = a.common.load()?;
            Err(anyhow::anyhow!("generate-data is not yet available")).context("generate-data")
        }
        Command::Bench(a) => {
            let _cfg = a.common.load()?;
            Err(anyhow::anyhow!("bench is not yet available")).context("bench")
        }
    }
}

fn tracing_init() {}
