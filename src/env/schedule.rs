//! The schedules the learner runs and the fixed order of one step.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

/// Advances every env by one bar. Run by [`crate::env::TradingEnv::step`].
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvStep;

/// Starts a fresh episode in every env. Run by [`crate::env::TradingEnv::reset`].
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvReset;

/// The phases of one step, chained once in [`crate::env::EnvPlugin`] in this order:
///
/// `Act → Rules → Execute → Account → Reward → Observe → Episode`
///
/// A new market rule is a system in [`StepSystems::Rules`]; it refuses orders in
/// [`crate::env::Orders`] before anything fills.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepSystems {
    /// Actions from the learner become orders.
    Act,
    /// Market rules refuse orders (holding period, PDT, trades per day, custom rules).
    Rules,
    /// Orders fill at the reference price with costs; cash and positions change.
    Execute,
    /// Equity is marked at the next bar's close and the clock advances.
    Account,
    /// The reward of the step.
    Reward,
    /// Observation rows are written.
    Observe,
    /// Finished episodes are reported and reset in place.
    Episode,
}

/// How `par_iter` splits the envs: several batches per thread, so that a thread delayed by
/// the OS (2-core machines are shared) does not hold up the whole step.
pub fn batching() -> bevy_ecs::batching::BatchingStrategy {
    bevy_ecs::batching::BatchingStrategy::new().batches_per_thread(4)
}
