//! Ploutos: realistic, massively parallel stock-trading simulations as bevy_ecs worlds, and
//! a PPO learner that trains on thousands of them at once.
//!
//! The crate is layered as bevy lays out its own crates, each layer importing only those
//! below it:
//!
//! 1. [`config`] (imports nothing from the crate), [`market`] data and the 55
//!    [`features`];
//! 2. [`mod@env`], the core: components, the step schedule and its phases, market arrays,
//!    buffers, episodes and the extension points ([`env::EnvAppExt`]);
//! 3. one plugin per concern, each depending on the core only: [`observation`],
//!    [`rules`], [`execution`], [`reward`];
//! 4. [`vec_env`]: the plugin group [`PloutosPlugins`] and the batched [`TradingEnv`];
//! 5. the learner (`ppo`), [`backtest`]s, [`mod@bench`], [`sweep`]s, [`trade`] and the
//!    `ploutos` binary on top.
//!
//! A plugin author imports [`prelude`] and nothing else. The simulation side builds and
//! tests without libtorch (`cargo test --no-default-features`); the learner sits behind
//! the default `learner` feature and the `ploutos` binary behind `cli`.

pub mod backtest;
pub mod bench;
pub mod config;
pub mod corporate_actions;
pub mod dataset;
pub mod env;
pub mod execution;
pub mod features;
pub mod fsutil;
pub mod market;
pub mod metrics;
pub mod observation;
#[cfg(feature = "learner")]
pub mod ppo;
pub mod prelude;
pub mod reward;
pub mod rules;
pub mod short_selling;
pub mod sweep;
pub mod trade;
pub mod vec_env;

pub use vec_env::{EnvError, EnvOptions, PloutosPlugins, TradingEnv};

/// Errors a user can cause with bad input (config, data, arguments): the CLI maps them to
/// exit code 2 with a one-line message.
pub trait UserError: std::error::Error {}

impl UserError for config::ConfigError {}
