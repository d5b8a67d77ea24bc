//! Batched, preallocated buffers shared with the learner: one row per env.

use bevy_ecs::prelude::*;

/// Actions of the step being run for one shard's envs: `[envs, n_tickers]`, 0 hold, 1 buy,
/// 2 sell.
#[derive(Resource, Debug, Clone)]
pub struct ActionBuffer {
    /// First env index of the shard.
    pub(crate) first_env: usize,
    pub(crate) n_tickers: usize,
    pub(crate) codes: Vec<u8>,
}

impl ActionBuffer {
    /// Codes of env `i` (a global env index of this shard).
    #[inline]
    pub fn row(&self, i: usize) -> &[u8] {
        let at = (i - self.first_env) * self.n_tickers;
        &self.codes[at..at + self.n_tickers]
    }
}

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
    /// `[n_envs, n_tickers, n_actions]`: whether each action of each ticker (hold, buy and
    /// sell; or each target level, [`crate::env::EnvParams::targets`]) is allowed at the
    /// coming decision (after an auto-reset, the new episode's first one), in the layout of
    /// sb3-contrib's `action_masks()` for a `MultiDiscrete([n_actions] * n_tickers)` space.
    /// All true unless a plugin masks actions
    /// ([`crate::env::EnvAppExt::add_action_mask_systems`]).
    pub action_masks: Vec<bool>,
}

impl StepBuffers {
    pub(crate) fn new(n_envs: usize, obs_dim: usize, n_tickers: usize, n_actions: usize) -> Self {
        Self {
            action_masks: vec![true; n_envs * n_tickers * n_actions],
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

/// One shard's view of the env's [`StepBuffers`]: the rows of its envs.
///
/// The buffers belong to the batched env (`TradingEnv`), which hands each shard (a bevy world
/// stepped on its own thread) raw pointers to them: shards own disjoint ranges of env
/// indices, so they write disjoint rows, and the learner sees one contiguous buffer with
/// nothing copied. A system writes the row of an env's [`crate::env::EnvId`], which is
/// unique and immutable.
#[derive(Resource)]
pub struct StepRows {
    pub(crate) obs: SharedRows<f32>,
    pub(crate) final_obs: SharedRows<f32>,
    pub(crate) rewards: SharedRows<f32>,
    pub(crate) terminated: SharedRows<bool>,
    pub(crate) truncated: SharedRows<bool>,
    pub(crate) infos: SharedRows<EnvInfo>,
    pub(crate) masks: SharedRows<bool>,
}

impl StepRows {
    /// Rows `envs` of `buffers`.
    ///
    /// # Safety
    /// `buffers` must outlive the returned value and never be resized; while it lives,
    /// nothing else may access rows `envs` except through it, and no other `StepRows` may
    /// cover any of them.
    pub(crate) unsafe fn new(
        buffers: &mut StepBuffers,
        obs_dim: usize,
        mask_width: usize,
        envs: std::ops::Range<usize>,
    ) -> Self {
        // `Vec::as_mut_ptr` takes no reference to the elements, so the pointers of several
        // shards stay valid beside each other and beside later reads of the buffers.
        Self {
            obs: SharedRows::new(&mut buffers.obs, obs_dim, envs.clone()),
            final_obs: SharedRows::new(&mut buffers.final_obs, obs_dim, envs.clone()),
            rewards: SharedRows::new(&mut buffers.rewards, 1, envs.clone()),
            terminated: SharedRows::new(&mut buffers.terminated, 1, envs.clone()),
            truncated: SharedRows::new(&mut buffers.truncated, 1, envs.clone()),
            infos: SharedRows::new(&mut buffers.infos, 1, envs.clone()),
            masks: SharedRows::new(&mut buffers.action_masks, mask_width, envs),
        }
    }

    /// The observation row of env `i` (an env of this shard), for observation systems
    /// that write their own columns ([`crate::env::EnvAppExt::add_observation_columns`]).
    ///
    /// # Panics
    /// When env `i` is not in this shard.
    #[inline]
    pub fn obs_row(&mut self, i: usize) -> &mut [f32] {
        self.obs.row_mut(i)
    }

    /// Env indices of this shard.
    pub fn envs(&self) -> std::ops::Range<usize> {
        self.obs.rows.clone()
    }

    /// Zero rewards, flags and infos of every env of the shard (before a reset).
    pub(crate) fn clear(&mut self) {
        for i in self.envs() {
            self.rewards.row_mut(i)[0] = 0.0;
            self.terminated.row_mut(i)[0] = false;
            self.truncated.row_mut(i)[0] = false;
            self.infos.row_mut(i)[0] = EnvInfo::default();
        }
    }
}

/// Rows `rows` of a buffer owned elsewhere (see [`StepRows`]).
pub(crate) struct SharedRows<T> {
    ptr: *mut T,
    row_len: usize,
    rows: std::ops::Range<usize>,
}

// SAFETY: a `SharedRows` is the only access to its rows (the contract of `StepRows::new`);
// `T: Send` values may be written from the thread that holds it.
unsafe impl<T: Send> Send for SharedRows<T> {}
unsafe impl<T: Send> Sync for SharedRows<T> {}

impl<T> SharedRows<T> {
    fn new(buf: &mut Vec<T>, row_len: usize, rows: std::ops::Range<usize>) -> Self {
        assert!(row_len > 0 && rows.end * row_len <= buf.len(), "rows {rows:?} of {row_len} fit the buffer");
        Self { ptr: buf.as_mut_ptr(), row_len, rows }
    }

    /// Row `i` (a global env index of this shard).
    #[inline]
    pub(crate) fn row_mut(&mut self, i: usize) -> &mut [T] {
        assert!(self.rows.contains(&i), "env {i} is not in this shard ({:?})", self.rows);
        // SAFETY: in this shard's rows (checked above), which only `self` accesses; `&mut
        // self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.row_len), self.row_len) }
    }
}
