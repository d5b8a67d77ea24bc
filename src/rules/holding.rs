//! Minimum holding period: a position cannot be sold until `min_holding_bars` bars after
//! its latest buy filled. Age = fill bar of the sell − fill bar of the latest buy (an
//! add-on buy restarts the clock). With short selling the same holds for a short: its
//! cover (a buy) waits as long after its latest short sale.

use super::RulesConfig;
use crate::env::{ActionMask, EnvParams, EpisodeClock, Orders, Position, Positions, Refusal, Targets, exits};
use bevy_ecs::prelude::*;

/// Refuses sells of positions younger than `min_holding_bars`.
///
/// Reads [`Positions`], [`EpisodeClock`], [`RulesConfig`], [`EnvParams`] (fill timing); writes [`Orders`]. Runs first
/// in [`crate::env::StepSystems::Rules`].
pub fn enforce_holding_period(
    rules: Res<RulesConfig>,
    params: Res<EnvParams>,
    mut envs: Query<(&mut Orders, &Positions, &EpisodeClock)>,
) {
    let min = rules.min_holding_bars;
    let short_selling = params.short_selling;
    envs.iter_mut().for_each(|(mut orders, positions, clock)| {
        let fill_bar = params.fill_bar(clock.bar as usize) as u32;
        if short_selling {
            refuse_young_exits(&mut orders, &positions.0, fill_bar, min);
        } else {
            refuse_young_sells(&mut orders, &positions.0, fill_bar, min);
        }
    });
}

/// The rule for one env that may hold shorts: sells of young longs and buys of young shorts.
pub fn refuse_young_exits(orders: &mut Orders, positions: &[Position], fill_bar: u32, min_bars: u32) {
    let exits = exits(orders);
    orders.refuse(young(positions, fill_bar, min_bars) & exits, Refusal::HOLDING_PERIOD);
}

/// The rule for one env.
pub fn refuse_young_sells(orders: &mut Orders, positions: &[Position], fill_bar: u32, min_bars: u32) {
    orders.refuse(young(positions, fill_bar, min_bars) & orders.sell, Refusal::HOLDING_PERIOD);
}

/// Tickers whose latest buy filled fewer than `min_bars` bars before `fill_bar`.
#[inline]
pub fn young(positions: &[Position], fill_bar: u32, min_bars: u32) -> u64 {
    // Every ticker, then masked by the sells: a loop over the sells' bits exits at an
    // unpredictable count with random actions.
    let mut young = 0u64;
    for (k, pos) in positions.iter().enumerate() {
        young |= u64::from(fill_bar.saturating_sub(pos.last_buy_bar) < min_bars) << k;
    }
    young
}

/// Masks the sells the rule would refuse at the coming decision.
///
/// Reads what [`enforce_holding_period`] reads; writes [`ActionMask`]. An action-mask
/// system (only with [`EnvParams::action_masks`]).
pub fn mask_young_sells(
    rules: Res<RulesConfig>,
    params: Res<EnvParams>,
    targets: Res<Targets>,
    mut envs: Query<(&Positions, &EpisodeClock, &mut ActionMask)>,
) {
    let min = rules.min_holding_bars;
    targets.for_each_mut(&mut envs, |(positions, clock, mut mask)| {
        let fill_bar = params.fill_bar(clock.bar as usize) as u32;
        let young = young(&positions.0, fill_bar, min);
        if params.short_selling {
            mask.forbid_exits(young, &positions.0);
        } else {
            mask.forbid_sell(young);
        }
    });
}
