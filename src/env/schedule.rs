//! The schedules the batched env runs and the fixed order of one step.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

/// Advances every env by one bar. Run by `TradingEnv::step`.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvStep;

/// Starts a fresh episode in every env. Run by `TradingEnv::reset`.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvReset;

/// The phases of one step, chained once in [`crate::env::EnvPlugin`] in this order:
///
/// `Act → Rules → Execute → Account → Reward → Observe → Episode → Restart`
///
/// A new market rule is a system in [`StepSystems::Rules`]; it refuses orders in
/// [`crate::env::Orders`] before anything fills. Observation columns, action masks and
/// episode-start hooks are not added to these sets directly but through
/// [`crate::env::EnvAppExt`], which also runs them when an episode starts.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepSystems {
    /// Actions from the learner become orders; orders the action mask forbade are refused.
    Act,
    /// Market rules refuse orders (holding period, PDT, trades per day, plugins' rules).
    Rules,
    /// Orders fill at the reference price with costs; cash and positions change.
    Execute,
    /// Equity is marked at the next bar's close and the clock advances.
    Account,
    /// The reward of the step: each system adds its term to [`crate::env::StepOutcome`].
    Reward,
    /// Observation rows and action masks are written, for every env.
    Observe,
    /// Finished episodes are reported (rewards, flags, infos, final observations).
    Episode,
    /// Finished episodes restart in place ([`ResetSystems`], for those envs only); skipped
    /// when no episode finished, and without auto-reset.
    Restart,
}

/// The phases of an episode start, in [`EnvReset`] (every env) and in
/// [`StepSystems::Restart`] (the envs whose episode just ended), chained in this order.
/// [`crate::env::Targets`] says which envs a run is for.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetSystems {
    /// The core's own state: a new first bar, the initial cash, no positions, no day trades.
    Start,
    /// Plugins' reset hooks ([`crate::env::EnvAppExt::add_episode_start_systems`],
    /// [`crate::env::EnvAppExt::add_env_state`]), after the core's.
    Hooks,
    /// The new episode's first observation and action masks.
    Observe,
}

/// When an observation is written: after every step for every env, or at an episode start
/// for the envs that start one. Observation systems are added once per pass (by
/// [`crate::env::EnvAppExt`]), each pass with its own sets so that the orders inside a pass
/// do not tie the passes together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Pass {
    Step,
    Start,
}

/// Inside one pass: observation columns, then action masks, then the masks' export to the
/// learner's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Stage {
    Columns,
    Masks,
    Export,
}

/// One stage of one observation pass.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ObserveStage(pub(crate) Pass, pub(crate) Stage);

impl ObserveStage {
    /// The stages of `pass`, in order.
    pub(crate) fn of(pass: Pass) -> (ObserveStage, ObserveStage, ObserveStage) {
        (ObserveStage(pass, Stage::Columns), ObserveStage(pass, Stage::Masks), ObserveStage(pass, Stage::Export))
    }
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
