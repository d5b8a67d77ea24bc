//! The seed's cap on executed orders per trading day (`max_trades_per_day`).
//!
//! Orders are admitted in execution order (sells by ticker, then buys by ticker; with short
//! selling sells of longs, covers, short sales, then buys) while
//! `executed today + admitted this bar < cap`; the rest are refused. An admitted order that
//! execution then refuses (no cash, position cap) does not count as executed, but its slot
//! is not handed to a later order of the same bar.

use crate::env::{ActionMask, EnvParams, EpisodeClock, MarketData, Orders, Portfolio, Refusal, Targets};
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
    let short_selling = params.short_selling;
    envs.iter_mut().for_each(|(mut orders, portfolio, clock)| {
        let day = market.day(params.fill_bar(clock.bar as usize));
        if short_selling {
            let (long, short) = (orders.long, orders.short);
            refuse_over_cap_in_order(&mut orders, portfolio.executed_on(day), cap, long, short);
        } else {
            refuse_over_cap(&mut orders, portfolio.executed_on(day), cap);
        }
    });
}

/// The rule for one env that may hold shorts (`long`, `short`: the tickers held so):
/// admitted in the execution order of answer 20.
pub fn refuse_over_cap_in_order(orders: &mut Orders, executed_today: u32, cap: u32, long: u64, short: u64) {
    let mut left = cap.saturating_sub(executed_today);
    let sells = keep_lowest(orders.sell & long, &mut left);
    let covers = keep_lowest(orders.buy & short, &mut left);
    let opens = keep_lowest(orders.sell & !long, &mut left);
    let buys = keep_lowest(orders.buy & !short, &mut left);
    orders.refuse((orders.sell & !(sells | opens)) | (orders.buy & !(covers | buys)), Refusal::TRADES_PER_DAY);
}

/// The rule for one env that executed `executed_today` orders earlier on the fill day.
pub fn refuse_over_cap(orders: &mut Orders, executed_today: u32, cap: u32) {
    let mut left = cap.saturating_sub(executed_today);
    let sells = keep_lowest(orders.sell, &mut left);
    let buys = keep_lowest(orders.buy, &mut left);
    orders.refuse((orders.sell & !sells) | (orders.buy & !buys), Refusal::TRADES_PER_DAY);
}

/// Masks every order when the day's cap is reached: with one slot left or more, each order
/// alone would pass (several at once may still be refused past the cap).
///
/// Reads what [`enforce_trades_per_day`] reads; writes [`ActionMask`]. An action-mask
/// system (only with [`EnvParams::action_masks`] and a cap).
pub fn mask_over_cap(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    targets: Res<Targets>,
    mut envs: Query<(&Portfolio, &EpisodeClock, &mut ActionMask)>,
) {
    let Some(cap) = params.max_trades_per_day else { return };
    targets.for_each_mut(&mut envs, |(portfolio, clock, mut mask)| {
        let day = params.fill_day(&market, clock.bar as usize);
        if portfolio.executed_on(day) >= cap {
            mask.forbid_buy(u64::MAX);
            mask.forbid_sell(u64::MAX);
        }
    });
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
