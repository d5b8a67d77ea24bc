//! Ploutos: realistic, massively parallel stock-trading simulations as bevy_ecs worlds, and
//! a PPO learner that trains on thousands of them at once.
//!
//! The simulation side — [`config`], [`market`] data, the 55 [`features`] and the trading
//! [`env`] — builds and tests without libtorch (`cargo test --no-default-features`). The
//! learner (`ppo`) sits behind the default `learner` feature and the `ploutos` binary behind
//! `cli`.

pub mod backtest;
pub mod bench;
pub mod config;
pub mod dataset;
pub mod env;
pub mod execution;
pub mod features;
pub mod fsutil;
pub mod market;
pub mod metrics;
#[cfg(feature = "learner")]
pub mod ppo;
pub mod reward;
pub mod rules;

/// Errors a user can cause with bad input (config, data, arguments): the CLI maps them to
/// exit code 2 with a one-line message.
pub trait UserError: std::error::Error {}

impl UserError for config::ConfigError {}
