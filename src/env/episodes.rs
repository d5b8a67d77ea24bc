//! Episodes: the end of an episode is reported, and a new one starts in place (on
//! [`crate::env::EnvReset`] for every env, after a step for the envs whose episode ended).

use crate::env::{
    ActionMask, EnvId, EnvInfo, EnvParams, EnvRng, EpisodeBounds, EpisodeClock, Ledger, Orders, PdtState, Portfolio,
    Positions, ResetSeed, StepOutcome, StepRows, Targets,
};
use bevy_ecs::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Reports each env's step, and marks finished episodes for a restart.
///
/// Reads [`StepOutcome`], [`Orders`], [`Portfolio`], [`EpisodeClock`]; writes
/// [`StepRows`] (rewards, done flags, infos, and for finished envs `final_obs`), [`Ledger`],
/// [`Portfolio::episode_reward`], and [`Targets`] (the envs to restart, with auto-reset).
/// Runs in [`crate::env::StepSystems::Episode`], after the observation. Bankruptcy (equity
/// < `bankruptcy_pct` × initial cash, when it is above 0) terminates; running out of bars or reaching
/// `episode_length` truncates.
pub fn end_episodes(
    params: Res<EnvParams>,
    bounds: Res<EpisodeBounds>,
    mut rows: ResMut<StepRows>,
    mut targets: ResMut<Targets>,
    mut envs: Query<(Entity, &EnvId, &StepOutcome, &Orders, &mut Portfolio, &EpisodeClock, &mut Ledger)>,
) {
    let rows = &mut *rows;
    for (entity, id, outcome, orders, mut portfolio, clock, mut ledger) in &mut envs {
        let i = id.index();
        ledger.refused.merge(&orders.refused);
        portfolio.episode_reward += outcome.reward;
        let p = &*portfolio;
        // 0 is off: with shorts, equity can fall below zero, and a replay runs on.
        let is_terminated = params.bankruptcy_pct > 0.0 && p.equity < params.bankruptcy_pct * p.initial_cash;
        let is_truncated =
            !is_terminated && (clock.steps as usize >= params.episode_length || clock.bar >= bounds.last);
        rows.rewards.row_mut(i)[0] = outcome.reward as f32;
        rows.terminated.row_mut(i)[0] = is_terminated;
        rows.truncated.row_mut(i)[0] = is_truncated;
        rows.infos.row_mut(i)[0] = EnvInfo {
            equity: p.equity,
            cash: p.cash,
            step_return: outcome.step_return,
            executed: p.executed_this_step,
            refused: orders.n_refused,
            bar: clock.bar,
            episode_reward: p.episode_reward,
            episode_steps: clock.steps,
            episode_return: p.equity / p.initial_cash - 1.0,
            terminated: is_terminated,
            truncated: is_truncated,
        };
        if is_terminated || is_truncated {
            ledger.episodes += 1;
            if params.auto_reset {
                let (obs, final_obs) = (rows.obs.row_mut(i), rows.final_obs.row_mut(i));
                final_obs.copy_from_slice(obs);
                targets.push(entity);
            }
        }
    }
}

/// Puts every targeted env at the start of a new episode: a new first bar, the initial
/// cash, no positions, no day trades, no mask.
///
/// Reads [`EpisodeBounds`], [`EnvParams`]; writes [`EpisodeClock`], [`Portfolio`],
/// [`Positions`], [`PdtState`], [`ActionMask`], [`EnvRng`] (one draw). Runs first in
/// [`crate::env::ResetSystems::Start`], before plugins' hooks.
#[allow(clippy::type_complexity, reason = "one query over the core's per-episode components")]
pub fn start_episodes(
    params: Res<EnvParams>,
    bounds: Res<EpisodeBounds>,
    targets: Res<Targets>,
    mut envs: Query<(&mut EnvRng, &mut EpisodeClock, &mut Portfolio, &mut Positions, &mut PdtState, &mut ActionMask)>,
) {
    targets.for_each_mut(&mut envs, |(mut rng, mut clock, mut portfolio, mut positions, mut pdt, mut mask)| {
        *clock = start_episode(&mut rng.0, &bounds, params.episode_length);
        portfolio.reset();
        positions.0.fill(Default::default());
        pdt.reset();
        *mask = ActionMask::default();
    });
}

/// Reports each env's starting account in its info row at [`crate::env::EnvReset`] (equity
/// and cash after the episode-start hooks, the first decision bar; nothing executed yet),
/// so that returns can be taken from a reset's infos. An env restarted inside a step keeps
/// its finished episode's row (see [`end_episodes`]).
///
/// Reads [`Portfolio`], [`EpisodeClock`]; writes [`StepRows`] infos. Runs in
/// [`crate::env::EnvReset`], between [`crate::env::ResetSystems::Hooks`] and the observation.
pub fn report_starts(mut rows: ResMut<StepRows>, envs: Query<(&EnvId, &Portfolio, &EpisodeClock)>) {
    for (id, p, clock) in &envs {
        rows.infos.row_mut(id.index())[0] =
            EnvInfo { equity: p.equity, cash: p.cash, bar: clock.bar, ..EnvInfo::default() };
    }
}

/// Back to targeting every env once the restarted envs have their first observation.
/// Runs last in [`crate::env::StepSystems::Restart`].
pub fn finish_restart(mut targets: ResMut<Targets>) {
    targets.select_all();
}

/// Reseeds every env from [`ResetSeed`] and clears what the previous step reported, before
/// every env starts an episode. Runs first in [`crate::env::EnvReset`].
pub fn begin_reset(
    seed: Res<ResetSeed>,
    mut targets: ResMut<Targets>,
    mut rows: ResMut<StepRows>,
    mut envs: Query<(&EnvId, &mut EnvRng, &mut Orders, &mut StepOutcome)>,
) {
    targets.select_all();
    rows.clear();
    for (id, mut rng, mut orders, mut outcome) in &mut envs {
        rng.0 = env_rng(seed.0, id.index());
        orders.refused = Default::default();
        orders.n_refused = 0;
        *outcome = StepOutcome::default();
    }
}

/// Draws the first bar of a new episode.
///
/// With `random_start`, uniformly in `[first, max(first, last − episode_length)]`, so that
/// episodes run their full length when the split allows; else at `first`.
pub fn start_episode(rng: &mut ChaCha8Rng, bounds: &EpisodeBounds, episode_length: usize) -> EpisodeClock {
    let latest = bounds.last.saturating_sub(episode_length.min(u32::MAX as usize) as u32).max(bounds.first);
    let latest = latest.min(bounds.last - 1);
    let start = if bounds.random_start && latest > bounds.first {
        rng.random_range(bounds.first..=latest)
    } else {
        bounds.first
    };
    EpisodeClock { start_bar: start, bar: start, steps: 0 }
}

/// The random stream of env `index` for `seed`: one ChaCha8 stream per env.
pub fn env_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}
