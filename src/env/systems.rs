//! Observation, episode-end and reset systems: the ones that write the batched buffers.

use crate::env::observation::{ObservationContext, write_row};
use crate::env::{
    EnvId, EnvInfo, EnvParams, EnvRng, EpisodeBounds, EpisodeClock, Ledger, MarketData, Orders, PdtState, Portfolio,
    Positions, ResetSeed, StepOutcome, StepRows,
};
use bevy_ecs::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn context<'a>(params: &'a EnvParams, market: &'a MarketData) -> ObservationContext<'a> {
    ObservationContext {
        market,
        layout: params.layout,
        pdt: &params.pdt,
        max_trades_per_day: params.max_trades_per_day,
        fill_offset: params.fill_offset,
    }
}

/// Writes every env's observation row at its new bar.
///
/// Reads [`Portfolio`], [`Positions`], [`PdtState`], [`EpisodeClock`], [`MarketData`];
/// writes [`StepRows::obs`]. Runs in [`crate::env::StepSystems::Observe`].
pub fn write_observations(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    mut rows: ResMut<StepRows>,
    mut bars: Local<Vec<u32>>,
    envs: Query<(&EnvId, &Portfolio, &Positions, &PdtState, &EpisodeClock)>,
) {
    let ctx = context(&params, &market);
    // Materialized rows copy a feature row of a random bar per env, from memory rather
    // than cache: ask for the rows of the envs a few places ahead while copying this one.
    const AHEAD: usize = 4;
    let prefetch = params.layout == crate::config::ObservationLayout::Materialized;
    if prefetch {
        bars.clear();
        bars.extend(envs.iter().map(|(.., clock)| clock.bar));
    }
    for (n, (id, portfolio, positions, pdt, clock)) in envs.iter().enumerate() {
        if let Some(&bar) = bars.get(n + AHEAD).filter(|_| prefetch) {
            crate::env::market_data::prefetch_lines(market.feature_row(bar as usize));
        }
        write_row(rows.obs.row_mut(id.index()), &ctx, portfolio, positions.0.as_ref(), pdt, clock);
    }
}

/// Reports each env's step, and resets finished episodes in place.
///
/// Reads [`StepOutcome`], [`Orders`]; writes [`StepRows`] (rewards, done flags, infos,
/// and for finished envs `final_obs` and the new episode's `obs`), [`Ledger`], and on reset
/// every per-episode component. Runs last, in [`crate::env::StepSystems::Episode`].
/// Bankruptcy (equity < `bankruptcy_pct` × initial cash) terminates; running out of bars
/// or reaching `episode_length` truncates.
#[allow(clippy::type_complexity)]
pub fn end_episodes(
    params: Res<EnvParams>,
    bounds: Res<EpisodeBounds>,
    market: Res<MarketData>,
    mut rows: ResMut<StepRows>,
    mut envs: Query<(
        &EnvId,
        &StepOutcome,
        &Orders,
        &mut Portfolio,
        &mut Positions,
        &mut PdtState,
        &mut EpisodeClock,
        &mut Ledger,
        &mut EnvRng,
    )>,
) {
    let ctx = context(&params, &market);
    let rows = &mut *rows;
    for (id, outcome, orders, mut portfolio, mut positions, mut pdt, mut clock, mut ledger, mut rng) in &mut envs {
        let i = id.index();
        ledger.refused.merge(&orders.refused);
        let p = &*portfolio;
        let is_terminated = p.equity < params.bankruptcy_pct * p.initial_cash;
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
            refused: orders.refused.total(),
            bar: clock.bar,
            episode_reward: p.episode_reward,
            episode_steps: clock.steps,
            episode_return: p.equity / p.initial_cash - 1.0,
            terminated: is_terminated,
            truncated: is_truncated,
        };
        if is_terminated || is_truncated {
            ledger.episodes += 1;
            if !params.auto_reset {
                continue;
            }
            let row = rows.obs.row_mut(i);
            rows.final_obs.row_mut(i).copy_from_slice(row);
            restart(&mut rng.0, &bounds, &params, &mut clock, &mut portfolio, &mut positions, &mut pdt);
            write_row(row, &ctx, &portfolio, positions.0.as_ref(), &pdt, &clock);
        }
    }
}

/// Puts one env at the start of a new episode: new first bar, initial cash, no positions,
/// no day trades.
fn restart(
    rng: &mut ChaCha8Rng,
    bounds: &EpisodeBounds,
    params: &EnvParams,
    clock: &mut EpisodeClock,
    portfolio: &mut Portfolio,
    positions: &mut Positions,
    pdt: &mut PdtState,
) {
    *clock = start_episode(rng, bounds, params.episode_length);
    portfolio.reset();
    positions.0.fill(Default::default());
    pdt.reset();
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

/// Starts a fresh episode in every env from [`ResetSeed`].
///
/// Writes every per-episode component and [`StepRows`]. Runs in [`crate::env::EnvReset`].
#[allow(clippy::type_complexity)]
pub fn reset_envs(
    seed: Res<ResetSeed>,
    params: Res<EnvParams>,
    bounds: Res<EpisodeBounds>,
    market: Res<MarketData>,
    mut rows: ResMut<StepRows>,
    mut envs: Query<(
        &EnvId,
        &mut Portfolio,
        &mut Positions,
        &mut PdtState,
        &mut EpisodeClock,
        &mut Orders,
        &mut StepOutcome,
        &mut EnvRng,
    )>,
) {
    let ctx = context(&params, &market);
    rows.clear();
    for (id, mut portfolio, mut positions, mut pdt, mut clock, mut orders, mut outcome, mut rng) in &mut envs {
        rng.0 = env_rng(seed.0, id.index());
        restart(&mut rng.0, &bounds, &params, &mut clock, &mut portfolio, &mut positions, &mut pdt);
        orders.refused = Default::default();
        *outcome = StepOutcome::default();
        write_row(rows.obs.row_mut(id.index()), &ctx, &portfolio, positions.0.as_ref(), &pdt, &clock);
    }
}
