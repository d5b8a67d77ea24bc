//! No fill on an invented bar: with `data.missing_bars: forward_fill`, a ticker's missing
//! bar is a copy of its previous close with no volume. Nothing traded then, so an order of
//! that ticker whose fill bar is invented is refused (`invented_bar`) rather than filled
//! at a price nobody offered.

use crate::env::{EnvParams, EpisodeClock, MarketData, Orders, Refusal};
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
