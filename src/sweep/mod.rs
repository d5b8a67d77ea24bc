//! Sweeps: many trainings of one base config that differ by hyper-parameters, seeds and
//! walk-forward folds, ranked on one leaderboard.
//!
//! This module is the part of `ploutos sweep` that needs no process or cluster: the spec
//! and its expansion into trials ([`spec`]), the early-stopping rule ([`asha`]), what a
//! trial leaves behind ([`result`]) and the leaderboard ([`leaderboard`]). The `ploutos`
//! binary runs the trials, each one `ploutos train --config <trial>/config.ron --out
//! <trial>`, on this machine or on a Ray cluster.

pub mod asha;
pub mod leaderboard;
pub mod result;
pub mod spec;

pub use asha::{Asha, Decision};
pub use leaderboard::{Leaderboard, TrialOutcome, TrialStatus};
pub use result::{MetricTail, SplitOutcome, TrialResult, eval_column, read_curve};
pub use spec::{Point, SpecError, SweepSpec, Trial, trial_config};
