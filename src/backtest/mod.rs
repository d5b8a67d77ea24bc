//! Backtests: replays of models and policies over a period, their CSV outputs, metrics
//! and reports.

pub mod metrics;
pub mod output;
pub mod policy;
pub mod replay;
pub mod report;

pub use policy::{ActionTable, Policy, PolicyError, parse_action};
pub use replay::{Actor, EquityRow, ReplayResult, replay, replay_config, replay_policy};
