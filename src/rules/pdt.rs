//! Pattern-Day-Trader rule (FINRA 4210), for accounts under `equity_threshold`.
//!
//! A day trade is a sell that fills on the same trading day as the position's latest buy
//! fill. While the account's equity (marked at the decision bar's close, or with
//! `pdt.equity: previous_close` at the close before the fill's day) is below the threshold, a
//! sell that would make more than `max_day_trades` day trades within the last
//! `window_days` trading days (the fill's day and the `window_days − 1` trading days
//! before it, by trading-day ordinal) is refused. Sells that are not day trades are never
//! refused by this rule.

use crate::config::PdtConfig;
use crate::env::{
    ActionMask, EnvParams, EpisodeClock, MarketData, Orders, PdtState, Portfolio, Position, Positions, Refusal,
    Targets, exits,
};
use bevy_ecs::prelude::*;

/// Refuses day-trading sells over the limit.
///
/// Reads [`Positions`], [`Portfolio`], [`PdtState`], [`EpisodeClock`], [`EnvParams`]; writes
/// [`Orders`].
/// Runs in [`crate::env::StepSystems::Rules`] after the holding period.
pub fn enforce_pdt(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    mut envs: Query<(&mut Orders, &Positions, &Portfolio, &PdtState, &EpisodeClock)>,
) {
    envs.iter_mut().for_each(|(mut orders, positions, portfolio, pdt, clock)| {
        let t = clock.bar as usize;
        let day = market.day(params.fill_bar(t));
        let equity = portfolio.pdt_equity(&params.pdt, market.day(t), day);
        if params.short_selling {
            refuse_day_trade_exits(&mut orders, &positions.0, equity, pdt, day, &params.pdt);
        } else {
            refuse_day_trades(&mut orders, &positions.0, equity, pdt, day, &params.pdt);
        }
    });
}

/// The rule for one env whose orders fill on trading day `day`.
pub fn refuse_day_trades(
    orders: &mut Orders,
    positions: &[Position],
    equity: f64,
    pdt: &PdtState,
    day: u32,
    cfg: &PdtConfig,
) {
    if orders.sell == 0 || equity >= cfg.equity_threshold {
        return;
    }
    let day_trades = bought_on(positions, day) & orders.sell;
    refuse_past_count(orders, day_trades, pdt, day, cfg);
}

/// The rule for one env that may hold shorts: exits (sells of longs, buys of shorts)
/// that are day trades.
pub fn refuse_day_trade_exits(
    orders: &mut Orders,
    positions: &[Position],
    equity: f64,
    pdt: &PdtState,
    day: u32,
    cfg: &PdtConfig,
) {
    if equity >= cfg.equity_threshold {
        return;
    }
    let exits = exits(orders);
    refuse_past_count(orders, bought_on(positions, day) & exits, pdt, day, cfg);
}

/// Refuses the day trades of `day_trades` past the account's count, in ticker order.
#[inline]
fn refuse_past_count(orders: &mut Orders, day_trades: u64, pdt: &PdtState, day: u32, cfg: &PdtConfig) {
    if day_trades == 0 {
        return;
    }
    // The first `left` day trades, in ticker order, pass; the others are refused.
    let left = cfg.max_day_trades.saturating_sub(pdt.in_window(day, cfg.window_days));
    let mut refused = day_trades;
    for _ in 0..left.min(u64::BITS) {
        refused &= refused.wrapping_sub(1);
    }
    orders.refuse(refused, Refusal::PDT);
}

/// Tickers whose latest buy filled on trading day `day`: selling them then is a day trade.
#[inline]
pub fn bought_on(positions: &[Position], day: u32) -> u64 {
    // A fixed loop over every ticker rather than over the sells' bits: random actions make
    // the number of sells, and so the bit loop's exit, unpredictable.
    let mut bought = 0u64;
    for (k, pos) in positions.iter().enumerate() {
        bought |= u64::from(pos.last_buy_day == day) << k;
    }
    bought
}

/// Masks day-trading sells when the account has no day trade left: with one left or more,
/// each sell alone would pass (several at once may still be refused past the count).
///
/// Reads what [`enforce_pdt`] reads; writes [`ActionMask`]. An action-mask system (only
/// with [`EnvParams::action_masks`] and the rule on).
pub fn mask_day_trades(
    params: Res<EnvParams>,
    market: Res<MarketData>,
    targets: Res<Targets>,
    mut envs: Query<(&Positions, &Portfolio, &PdtState, &EpisodeClock, &mut ActionMask)>,
) {
    targets.for_each_mut(&mut envs, |(positions, portfolio, pdt, clock, mut mask)| {
        let t = clock.bar as usize;
        let day = params.fill_day(&market, t);
        if pdt.day_trades_left(portfolio.pdt_equity(&params.pdt, market.day(t), day), day, &params.pdt) == 0 {
            let bought = bought_on(&positions.0, day);
            if params.short_selling {
                mask.forbid_exits(bought, &positions.0);
            } else {
                mask.forbid_sell(bought);
            }
        }
    });
}
