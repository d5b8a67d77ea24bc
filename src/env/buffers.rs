//! Batched, preallocated buffers shared with the learner: one row per env.

use bevy_ecs::prelude::*;
use std::marker::PhantomData;

/// Actions of the step being run. `[n_envs, n_tickers]`, 0 hold, 1 buy, 2 sell.
#[derive(Resource, Debug, Clone)]
pub struct ActionBuffer(pub Vec<u8>);

/// What an env reports after a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnvInfo {
    /// Equity marked at the new bar's close.
    pub equity: f64,
    pub cash: f64,
    /// (E_t − E_{t−1}) / E_{t−1}.
    pub step_return: f64,
    /// Orders executed and refused this step.
    pub executed: u32,
    pub refused: u32,
    /// Bar the env now stands on (the next decision bar).
    pub bar: u32,
    /// Sum of rewards and steps of the episode; for a finished episode, its totals.
    pub episode_reward: f64,
    pub episode_steps: u32,
    /// Equity / initial cash − 1 of the episode so far (at its end when done).
    pub episode_return: f64,
    pub terminated: bool,
    pub truncated: bool,
}

/// Outputs of the last step (or reset). Rows are env indices.
#[derive(Resource, Debug, Clone)]
pub struct StepBuffers {
    /// `[n_envs, obs_dim]`: the observation to act on next (after an auto-reset, the new
    /// episode's first one).
    pub obs: Vec<f32>,
    /// `[n_envs, obs_dim]`: for envs that finished this step, the last observation of the
    /// finished episode (the learner bootstraps from it on truncation). Other rows are
    /// stale.
    pub final_obs: Vec<f32>,
    /// `[n_envs]`
    pub rewards: Vec<f32>,
    /// `[n_envs]`: the episode ended by bankruptcy.
    pub terminated: Vec<bool>,
    /// `[n_envs]`: the episode ran out of bars or reached `episode_length`.
    pub truncated: Vec<bool>,
    /// `[n_envs]`
    pub infos: Vec<EnvInfo>,
}

impl StepBuffers {
    pub(crate) fn new(n_envs: usize, obs_dim: usize) -> Self {
        Self {
            obs: vec![0.0; n_envs * obs_dim],
            final_obs: vec![0.0; n_envs * obs_dim],
            rewards: vec![0.0; n_envs],
            terminated: vec![false; n_envs],
            truncated: vec![false; n_envs],
            infos: vec![EnvInfo::default(); n_envs],
        }
    }
}

/// Totals over all envs, gathered on demand (not per step): the sum of their ledgers.
pub type EnvTotals = crate::env::Ledger;

/// Lets parallel systems write disjoint rows of one buffer.
///
/// `par_iter` closures are shared between threads, so they cannot hold `&mut` to a
/// resource. Each env writes only the row of its [`crate::env::EnvId`], which is unique
/// and immutable, so concurrent writes never alias.
pub(crate) struct RowWriter<'a, T> {
    ptr: *mut T,
    row_len: usize,
    n_rows: usize,
    _buf: PhantomData<&'a mut [T]>,
}

// SAFETY: the writer only hands out rows through the `unsafe fn row`, whose contract
// forbids two live borrows of one row; `T: Send` values may be written from any thread.
unsafe impl<T: Send> Sync for RowWriter<'_, T> {}
unsafe impl<T: Send> Send for RowWriter<'_, T> {}

impl<'a, T> RowWriter<'a, T> {
    pub(crate) fn new(buf: &'a mut [T], row_len: usize) -> Self {
        assert!(row_len > 0 && buf.len().is_multiple_of(row_len), "buffer is whole rows");
        Self { ptr: buf.as_mut_ptr(), row_len, n_rows: buf.len() / row_len, _buf: PhantomData }
    }

    /// Row `i` of the buffer.
    ///
    /// # Safety
    /// No other borrow of row `i` may be alive while the returned one is.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row(&self, i: usize) -> &mut [T] {
        assert!(i < self.n_rows, "row {i} out of {}", self.n_rows);
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.row_len), self.row_len) }
    }
}
