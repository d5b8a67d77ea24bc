//! Backtests: replays of models and policies over a period, their CSV outputs, metrics,
//! reports, plots and the self-contained HTML report; walk-forward folds.

pub mod agent;
pub mod html;
pub mod metrics;
pub mod output;
pub mod plots;
pub mod policy;
pub mod replay;
pub mod report;
pub mod walk_forward;

pub use agent::{Agent, AgentReplayError, replay_agent};
pub use policy::{ActionTable, IgnoredActions, Policy, PolicyError, parse_action, random_actions, random_stream};
pub use replay::{
    Actor, EquityRow, ReplayResult, replay, replay_config, replay_extended, replay_masked, replay_policy,
};
pub use walk_forward::{Fold, WalkForward, WalkForwardError};
