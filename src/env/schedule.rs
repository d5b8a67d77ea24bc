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

/// Fewest envs per thread (and so per shard) by default. The batch is split over as many
/// threads as give each at least this many envs, each thread stepping its shards (bevy
/// worlds) whole, so a step costs one fork-join however many systems it has. Below it the
/// fork-join costs more than the thread saves (measured on the 2-core machine; see the
/// README's env table).
pub const MIN_SHARD_ENVS: usize = 256;

/// Most envs per shard. A thread steps its shards one after another, and a shard of this
/// size keeps its components and market rows in the core's L2 cache through all the
/// systems of a step (about 5% faster than one big shard per thread at 4,096 envs).
pub const MAX_SHARD_ENVS: usize = 512;
