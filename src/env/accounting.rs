//! Mark-to-market: equity at the next bar's close, and the clock moves on.

use crate::env::{EnvParams, EpisodeClock, MarketData, Portfolio, Positions, StepOutcome, gross_value};
use bevy_ecs::prelude::*;

/// Marks every env at bar t+1's close and advances its clock to t+1.
///
/// Reads [`Positions`], [`MarketData`], [`EnvParams`]; writes [`Portfolio`] (equity,
/// previous equity, peak, and the marked gross value with short selling), [`EpisodeClock`],
/// [`StepOutcome`] (the step return; the reward zeroed for the reward systems to add to).
/// Runs in [`crate::env::StepSystems::Account`]. Keeps equity = cash + Σ shares × close.
pub fn mark_to_market(
    market: Res<MarketData>,
    params: Res<EnvParams>,
    mut envs: Query<(&mut Portfolio, &Positions, &mut EpisodeClock, &mut StepOutcome)>,
) {
    envs.iter_mut().for_each(|(mut portfolio, positions, mut clock, mut outcome)| {
        clock.bar += 1;
        clock.steps += 1;
        let closes = market.close_row(clock.bar as usize);
        let p = &mut *portfolio;
        // The last close before a new trading day (what `pdt.equity: previous_close` reads).
        if market.day(clock.bar as usize) != market.day(clock.bar as usize - 1) {
            p.prior_close_equity = p.equity;
        }
        p.prev_equity = p.equity;
        p.equity = p.cash + positions.0.iter().zip(closes).map(|(pos, c)| pos.shares * c).sum::<f64>();
        if params.short_selling {
            p.marked_gross = Some(gross_value(&positions.0, closes));
        }
        p.peak_equity = p.peak_equity.max(p.equity);
        outcome.step_return = if p.prev_equity > 0.0 { (p.equity - p.prev_equity) / p.prev_equity } else { 0.0 };
        outcome.reward = 0.0;
    });
}
