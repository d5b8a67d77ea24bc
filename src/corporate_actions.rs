//! Splits and dividends on the account, on their ex-date (`data.adjust: splits | none`;
//! execution contract answer 19 in [`crate::env`]).
//!
//! What happens to the prices is decided when the data are loaded ([`crate::market::adjust`]);
//! what is left for the account arrives in [`MarketData::corporate_action`]: on the ex-date
//! bar, a split multiplies every position's shares by its ratio and divides its cost basis by
//! it (whole shares unless `fractional_shares`; the fraction is paid in cash at the previous
//! close ÷ ratio, as brokers pay cash in lieu), then a dividend credits cash with the
//! shares held × the dividend per share. Both count the shares held at the close before the
//! ex-date, as a record date does: a buy that fills at the ex-date's open is ex-dividend, a
//! sell that fills then still receives it. So under `next_open` fills the events of bar t+1
//! are applied before the orders decided at t fill; under `close` fills (at bar t's close,
//! before the ex-date) after them. The holding clocks do not change.
//!
//! On a market without events (the synthetic one, a CSV folder under `splits_and_dividends`)
//! the plugin adds no system: the default step is unchanged.

use crate::config::FillTiming;
use crate::env::{
    EnvParams, EpisodeClock, Ledger, MarketData, OrderShares, Orders, Portfolio, Position, Positions, Refusal,
    StepSystems, bits,
};
use crate::execution::{ExecutionConfig, fill_orders};
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

/// Applies the market's splits and dividends to every env's account.
pub struct CorporateActionsPlugin;

impl Plugin for CorporateActionsPlugin {
    fn build(&self, app: &mut App) {
        if !app.world().get_resource::<MarketData>().is_some_and(MarketData::has_corporate_actions) {
            return;
        }
        let system = apply_corporate_actions.in_set(StepSystems::Execute);
        match app.world().resource::<EnvParams>().fill_timing {
            FillTiming::NextOpen => app.add_systems(crate::env::EnvStep, system.before(fill_orders)),
            FillTiming::Close => app.add_systems(crate::env::EnvStep, system.after(fill_orders)),
        };
    }
}

/// Applies the splits and dividends of the bar each env steps to (its clock's bar + 1).
///
/// Reads [`MarketData`], [`EnvParams`], [`ExecutionConfig`], [`EpisodeClock`]; writes [`Positions`],
/// [`Portfolio`] cash, [`Ledger`] (`dividends`, `cash_in_lieu`), [`Orders`] (the sell of a
/// long, or the cover of a short, that a reverse split paid out in cash is refused as
/// `no_position`), [`OrderShares`] when present (a sized order waiting for the split's
/// open is multiplied by its ratio). Shorts are split like longs (their shares are negative) and pay the
/// dividend. Runs in
/// [`StepSystems::Execute`], before or after the fills (see the module docs).
#[allow(clippy::type_complexity, reason = "one query over what an event changes")]
pub fn apply_corporate_actions(
    market: Res<MarketData>,
    params: Res<EnvParams>,
    config: Res<ExecutionConfig>,
    clocks: Query<(Entity, &EpisodeClock)>,
    mut envs: Query<(&mut Positions, &mut Portfolio, &mut Ledger, &mut Orders, Option<&mut OrderShares>)>,
) {
    // Under `close` fills the orders have filled already (this runs after them).
    let before_fills = params.fill_timing == FillTiming::NextOpen;
    let fractional = config.fractional_shares || market.fractional_splits();
    // Most bars have no event: a pass over the clocks alone finds the envs that have one,
    // and only theirs are fetched whole.
    for (env, clock) in &clocks {
        // Past the last bar the mask is 0: nothing to apply.
        let bar = clock.bar as usize + 1;
        let events = market.corporate_action_tickers(bar);
        if events == 0 {
            continue;
        }
        let Ok((mut positions, mut portfolio, mut ledger, mut orders, mut sizes)) = envs.get_mut(env) else {
            continue;
        };
        // Cash and positions may change: no longer as marked.
        portfolio.marked_gross = None;
        for k in bits(events) {
            let (ratio, dividend) = market.corporate_action(bar, k);
            // A sized order waiting for this open was decided in the old shares: a broker
            // adjusts it by the ratio, as the position (whole shares toward zero; execution
            // contract answer 21). Where the broker keeps a split's fractions (live), it is
            // what takes the split position to the split target instead (the target in whole
            // shares unless fractional), so that an exit closes exactly what the split left.
            if let Some(sizes) = sizes.as_deref_mut().filter(|_| before_fills && ratio != 1.0) {
                let (held, fractional_account) = (positions.0[k].shares, config.fractional_shares);
                sizes.0[k] = if market.fractional_splits() {
                    split_shares(held + sizes.0[k], ratio, fractional_account) - split_shares(held, ratio, true)
                } else {
                    split_shares(sizes.0[k], ratio, fractional_account)
                };
            }
            let pos = &mut positions.0[k];
            if pos.shares == 0.0 {
                continue;
            }
            if ratio != 1.0 {
                let shares = pos.shares * ratio;
                let kept = split_shares(pos.shares, ratio, fractional);
                let lieu = (shares - kept) * market.close_row(bar - 1)[k] / ratio;
                portfolio.cash += lieu;
                ledger.cash_in_lieu += lieu;
                if kept != 0.0 {
                    pos.shares = kept;
                    pos.avg_cost /= ratio;
                } else {
                    // A reverse split left less than one share: all of it was paid in cash, and
                    // the order closing it (decided before the split) has nothing left to close.
                    let exit = if pos.shares > 0.0 { orders.sell } else { orders.buy };
                    *pos = Position::default();
                    if before_fills {
                        // Only the exit: an order opening the ticker again still fills.
                        orders.refuse(exit & (1 << k), Refusal::NO_POSITION);
                    }
                    continue;
                }
            }
            if dividend > 0.0 {
                // A short pays the dividend to the lender: negative.
                let paid = pos.shares * dividend;
                portfolio.cash += paid;
                ledger.dividends += paid;
            }
        }
    }
}

/// The shares a position of `shares` keeps through a split of `ratio`: all of them with
/// fractional shares, else the whole ones (the fraction is paid in cash). A ratio like 1/3
/// leaves 2.9999999 of 3: rounded first, then the whole taken toward zero (a short keeps whole
/// shares too, its fraction is bought back in cash).
pub fn split_shares(shares: f64, ratio: f64, fractional: bool) -> f64 {
    let shares = shares * ratio;
    if fractional { shares } else { ((shares * 1e9).round() / 1e9).trunc() }
}
