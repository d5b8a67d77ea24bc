//! Minimum holding period: a position cannot be sold until `min_holding_bars` bars after
//! its latest buy filled. Age = fill bar of the sell − fill bar of the latest buy (an
//! add-on buy restarts the clock).

use super::RulesConfig;
use crate::env::{EnvParams, EpisodeClock, Orders, Position, Positions, Refusal};
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
    envs.iter_mut().for_each(|(mut orders, positions, clock)| {
        let fill_bar = params.fill_bar(clock.bar as usize) as u32;
        refuse_young_sells(&mut orders, &positions.0, fill_bar, min);
    });
}

/// The rule for one env.
pub fn refuse_young_sells(orders: &mut Orders, positions: &[Position], fill_bar: u32, min_bars: u32) {
    // Every ticker, then masked by the sells: a loop over the sells' bits exits at an
    // unpredictable count with random actions.
    let mut young = 0u64;
    for (k, pos) in positions.iter().enumerate() {
        young |= u64::from(fill_bar.saturating_sub(pos.last_buy_bar) < min_bars) << k;
    }
    young &= orders.sell;
    orders.refuse(young, Refusal::HOLDING_PERIOD);
}
