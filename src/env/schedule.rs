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

/// Default fewest envs for which systems iterate in parallel. Below it a step's work per
/// system is tens of microseconds, about what waking the compute pool's threads costs
/// (measured on the 2-core machine: 1,024 envs step faster on one thread), so systems
/// iterate serially.
pub const PARALLEL_MIN_ENVS: usize = 8192;

static PARALLEL_MIN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(PARALLEL_MIN_ENVS);

/// The current threshold (process-wide, like bevy's compute pool).
#[inline]
pub fn parallel_min_envs() -> usize {
    PARALLEL_MIN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets the threshold for the whole process (1 = always parallel, e.g. to test that
/// results do not depend on the thread count).
pub fn set_parallel_min_envs(n: usize) {
    PARALLEL_MIN.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Runs `$body` for every item of `$query`, in parallel when the query holds at least
/// [`parallel_min_envs`] entities. `iter_mut`/`par_iter_mut` (or `iter`/`par_iter` with
/// `ref`) are chosen by the first token.
#[macro_export]
#[doc(hidden)]
macro_rules! each_env {
    (mut $query:expr, |$pat:pat_param| $body:expr $(,)?) => {{
        if $query.iter().len() >= $crate::env::parallel_min_envs() {
            $query.par_iter_mut().batching_strategy($crate::env::batching()).for_each(|$pat| $body)
        } else {
            $query.iter_mut().for_each(|$pat| $body)
        }
    }};
    (ref $query:expr, min = $min:expr, |$pat:pat_param| $body:expr $(,)?) => {{
        if $query.iter().len() >= $min {
            $query.par_iter().batching_strategy($crate::env::batching()).for_each(|$pat| $body)
        } else {
            $query.iter().for_each(|$pat| $body)
        }
    }};
    (ref $query:expr, |$pat:pat_param| $body:expr $(,)?) => {{
        if $query.iter().len() >= $crate::env::parallel_min_envs() {
            $query.par_iter().batching_strategy($crate::env::batching()).for_each(|$pat| $body)
        } else {
            $query.iter().for_each(|$pat| $body)
        }
    }};
}

/// How `par_iter` splits the envs: several batches per thread, so that a thread delayed by
/// the OS (2-core machines are shared) does not hold up the whole step.
pub fn batching() -> bevy_ecs::batching::BatchingStrategy {
    bevy_ecs::batching::BatchingStrategy::new().batches_per_thread(4)
}
