//! No fill on an invented bar: with `data.missing_bars: forward_fill`, a ticker's missing
//! bar is a copy of its previous close with no volume. Nothing traded then, so an order of
//! that ticker whose fill bar is invented is refused (`invented_bar`) rather than filled
//! at a price nobody offered.

use crate::env::{ActionMask, EnvParams, EpisodeClock, MarketData, Orders, Refusal, Targets};
use bevy_ecs::prelude::*;

/// Refuses orders whose fill bar is invented for their ticker.
///
/// Reads [`MarketData`] (the invented-bar mask), [`EpisodeClock`], [`EnvParams`] (fill
/// timing); writes [`Orders`]. Runs first among the built-in rules (a refused order takes
/// no slot of the daily cap), and only when the market has invented bars.
pub fn refuse_invented_fills(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    mut envs: Query<(&mut Orders, &EpisodeClock)>,
) {
    envs.iter_mut().for_each(|(mut orders, clock)| {
        let invented = market.invented(params.fill_bar(clock.bar as usize));
        orders.refuse(invented, Refusal::INVENTED_BAR);
    });
}

/// Whether the market has invented bars (the rule's run condition).
pub fn market_has_invented_bars(market: Res<MarketData>) -> bool {
    market.has_invented_bars()
}

/// Masks orders whose fill bar is invented, only when that bar is the decision bar itself
/// (`fill_timing: close`): with `next_open` the fill bar is the next one, and whether it
/// will be invented is the future, which no mask may reveal (the order is then refused
/// after the fact, as at a real broker).
///
/// Reads what [`refuse_invented_fills`] reads; writes [`ActionMask`]. An action-mask
/// system (only with [`EnvParams::action_masks`] and invented bars).
pub fn mask_invented_fills(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    targets: Res<Targets>,
    mut envs: Query<(&EpisodeClock, &mut ActionMask)>,
) {
    targets.for_each_mut(&mut envs, |(clock, mut mask)| {
        let (t, fill) = (clock.bar as usize, params.fill_bar(clock.bar as usize));
        if fill <= t {
            let invented = market.invented(fill);
            mask.forbid_buy(invented);
            mask.forbid_sell(invented);
        }
    });
}
