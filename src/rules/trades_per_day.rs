//! The seed's cap on executed orders per trading day (`max_trades_per_day`).
//!
//! Orders are admitted in execution order (sells by ticker, then buys by ticker) while
//! `executed today + admitted this bar < cap`; the rest are refused. An admitted order that
//! execution then refuses (no cash, position cap) does not count as executed, but its slot
//! is not handed to a later order of the same bar.

use crate::env::{EnvParams, EpisodeClock, MarketData, Orders, Portfolio, Refusal};
use bevy_ecs::prelude::*;

/// Refuses orders over the daily cap.
///
/// Reads [`Portfolio`], [`EpisodeClock`]; writes [`Orders`]. Runs last among the
/// built-in rules.
pub fn enforce_trades_per_day(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    mut envs: Query<(&mut Orders, &Portfolio, &EpisodeClock)>,
) {
    let Some(cap) = params.max_trades_per_day else { return };
    envs.iter_mut().for_each(|(mut orders, portfolio, clock)| {
        let day = market.day(params.fill_bar(clock.bar as usize));
        refuse_over_cap(&mut orders, portfolio.executed_on(day), cap);
    });
}

/// The rule for one env that executed `executed_today` orders earlier on the fill day.
pub fn refuse_over_cap(orders: &mut Orders, executed_today: u32, cap: u32) {
    let mut left = cap.saturating_sub(executed_today);
    let sells = keep_lowest(orders.sell, &mut left);
    let buys = keep_lowest(orders.buy, &mut left);
    orders.refuse((orders.sell & !sells) | (orders.buy & !buys), Refusal::TRADES_PER_DAY);
}

/// The lowest `*left` set bits of `mask`, decrementing `*left` by the bits kept.
#[inline]
fn keep_lowest(mask: u64, left: &mut u32) -> u64 {
    if mask.count_ones() <= *left {
        *left -= mask.count_ones();
        return mask;
    }
    let mut kept = 0u64;
    let mut m = mask;
    while *left > 0 {
        let low = m & m.wrapping_neg();
        kept |= low;
        m &= m - 1;
        *left -= 1;
    }
    kept
}
