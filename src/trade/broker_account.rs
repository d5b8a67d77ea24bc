//! The broker's account in the session's replay: what the agent observes and the rules
//! read at a bar close is the broker's cash, previous-close equity and day-trade count, not
//! the simulated ones.
//!
//! The session replays the env over the bars received ([`super::session`]); the env's
//! account follows the orders the env filled, the broker's the orders that really filled,
//! at real prices, with real fees, plus whatever happened outside the run (a deposit, day
//! trades in other tickers). Positions must agree (the loop reconciles them before sending
//! anything), but for what the session's own orders left unfilled; cash and the day
//! trades may drift. [`BrokerAccountPlugin`] puts the broker's
//! values into the replayed env at each bar close the broker reported one for:
//!
//! * **cash**: the env's cash becomes the broker's (its equity moves by the difference)
//!   when they differ by half a cent or more ([`CASH_TOLERANCE`]): brokers report cash in
//!   cents, and a smaller difference is that rounding, not a different account;
//! * **equity at the previous close** (FINRA's PDT equity, `pdt.equity: previous_close`):
//!   the broker's `last_equity`, under the same tolerance;
//! * **day trades** in the PDT window: the broker's count, with
//!   [`PdtState::set_in_window`] (missing day trades are put on the bar's day, extra ones
//!   are taken from the oldest days);
//! * **positions**, where the broker filled an order of the session in part (a market
//!   order the book could not fill whole, cancelled at the bar's close): the broker's
//!   shares ([`Holding`]), which the loop has checked are the env's but for what those
//!   orders left unfilled. The rest of a position an exit left keeps what the env knew of
//!   it before the fill (cost, opening bar, last buy); an entry or an addition filled in
//!   part keeps the env's; a position the env does not have at all takes the broker's
//!   average cost and opens at the fill bar.
//!
//! So the observation's cash share, drawdown and day-trades-left columns, the buys' sizes
//! (from the cash), the PDT rule and a margin call all read the real account. When the
//! broker is the replay broker (the same fills and fees as the env) nothing moves, and
//! `trade --broker replay` still sends exactly the backtest's orders.

use super::broker::Account;
use crate::env::{
    EnvAppExt, EnvParams, EnvStep, EpisodeClock, MarketData, PdtState, Portfolio, Position, Positions, StepSystems,
    Targets, mark_to_market,
};
use crate::execution::fill_orders;
use crate::short_selling::charge_borrow_fees;
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Smallest cash difference that is a different account rather than the rounding of the
/// broker's report (half a cent).
pub const CASH_TOLERANCE: f64 = 0.005;

/// What the session reads from the broker's account at a bar close.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// Cash, as [`Account::cash`] (short sales' proceeds included).
    pub cash: f64,
    /// Equity at the previous trading day's close.
    pub last_equity: f64,
    /// Day trades in the broker's rolling window.
    pub day_trade_count: u32,
}

impl From<&Account> for AccountSnapshot {
    fn from(a: &Account) -> Self {
        Self { cash: a.cash, last_equity: a.last_equity, day_trade_count: a.day_trade_count }
    }
}

/// One position at the broker, in the session's record of a bar close where the broker's
/// positions are not the env's (a partial fill).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Holding {
    /// Signed shares: negative for a short.
    pub shares: f64,
    /// The broker's average entry price (0 when flat).
    pub avg_cost: f64,
}

/// The broker's account at each bar close of the replayed market (`None`: the broker
/// reported none, and the env's own account stands).
#[derive(Resource, Debug, Clone)]
pub struct BrokerAccounts(pub Arc<[Option<AccountSnapshot>]>);

impl BrokerAccounts {
    fn at(&self, bar: u32) -> Option<&AccountSnapshot> {
        self.0.get(bar as usize).and_then(Option::as_ref)
    }
}

/// The broker's positions in the model's tickers (in their order) at each bar close of the
/// replayed market where they are not the env's (`None` elsewhere: the env's stand).
#[derive(Resource, Debug, Clone)]
pub struct BrokerHoldings(pub Arc<[Option<Arc<[Holding]>>]>);

/// Each env's positions before the fills of the step in progress, which the rest of a
/// position an exit left in part takes its history from ([`broker_positions`]).
#[derive(Component, Debug, Clone, Default)]
pub struct PreFill(pub Box<[Position]>);

/// Puts the broker's account into the env at each bar close (see the module docs).
pub struct BrokerAccountPlugin {
    pub by_bar: Arc<[Option<AccountSnapshot>]>,
    /// The broker's positions where they are not the env's, by bar (empty: nowhere).
    pub holdings: Arc<[Option<Arc<[Holding]>>]>,
}

impl Plugin for BrokerAccountPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(BrokerAccounts(self.by_bar.clone()))
            .add_systems(
                EnvStep,
                (
                    broker_cash.in_set(StepSystems::Account).after(charge_borrow_fees).before(mark_to_market),
                    broker_pdt.in_set(StepSystems::Account).after(mark_to_market),
                ),
            )
            .add_episode_start_systems(broker_account_at_start);
        if self.holdings.iter().any(Option::is_some) {
            app.insert_resource(BrokerHoldings(self.holdings.clone())).insert_on_envs(PreFill::default()).add_systems(
                EnvStep,
                broker_positions.in_set(StepSystems::Account).before(charge_borrow_fees).before(mark_to_market),
            );
            let keep = keep_pre_fill.in_set(StepSystems::Execute).before(fill_orders);
            match app.world().resource::<crate::env::EnvParams>().fill_timing {
                // After a split at the same open (which comes before the fills then): the
                // positions before the fills in the new shares, as the broker's.
                crate::config::FillTiming::NextOpen => {
                    app.add_systems(EnvStep, keep.after(crate::corporate_actions::apply_corporate_actions))
                }
                crate::config::FillTiming::Close => app.add_systems(EnvStep, keep),
            };
        }
    }
}

/// Copies the positions before the fills of a bar the broker reported positions for.
///
/// Reads [`BrokerHoldings`], [`Positions`], [`EpisodeClock`]; writes [`PreFill`]. Runs in
/// [`StepSystems::Execute`], before the fills.
pub fn keep_pre_fill(holdings: Res<BrokerHoldings>, mut envs: Query<(&mut PreFill, &Positions, &EpisodeClock)>) {
    envs.iter_mut().for_each(|(mut pre, positions, clock)| {
        if holdings.0.get(clock.bar as usize + 1).is_some_and(Option::is_some) {
            pre.0.clone_from(&positions.0);
        }
    });
}

/// The broker's positions at the coming mark's bar, where it reported them, before the
/// mark (so that equity follows from them).
///
/// Reads [`BrokerHoldings`], [`PreFill`], [`MarketData`], [`EpisodeClock`]; writes
/// [`Positions`]. Runs in [`StepSystems::Account`], before the borrow fees (charged on the
/// broker's shorts) and mark-to-market.
pub fn broker_positions(
    holdings: Res<BrokerHoldings>,
    market: Res<MarketData>,
    mut envs: Query<(&mut Positions, &PreFill, &EpisodeClock)>,
) {
    envs.iter_mut().for_each(|(mut positions, pre, clock)| {
        let bar = clock.bar + 1;
        let Some(Some(held)) = holdings.0.get(bar as usize) else { return };
        let day = market.day(bar as usize);
        for (k, (pos, h)) in positions.0.iter_mut().zip(held.iter()).enumerate() {
            let before = pre.0.get(k).copied().unwrap_or_default();
            adopt(pos, &before, *h, bar, day);
        }
    });
}

/// Puts the broker's `held` in place of the env's `pos` filled at `fill_bar` (on trading
/// day `day`), from `before`, the position before that fill (see the module docs).
fn adopt(pos: &mut Position, before: &Position, held: Holding, fill_bar: u32, day: u32) {
    if (held.shares - pos.shares).abs() <= 1e-9 * held.shares.abs().max(1.0) {
        return;
    }
    let same_side = |p: &Position| p.shares * held.shares > 0.0;
    *pos = if held.shares == 0.0 {
        Position::default()
    } else if same_side(before) && held.shares.abs() <= before.shares.abs() {
        // An exit filled in part: the rest of the position as it was.
        Position { shares: held.shares, ..*before }
    } else if same_side(pos) {
        // An entry or an addition filled in part: the env's position, at the env's cost
        // of the shares the broker bought (an addition's averaged with the shares held).
        let added = pos.shares - before.shares;
        let avg_cost = if same_side(before) && added * held.shares > 0.0 {
            let price = (pos.shares * pos.avg_cost - before.shares * before.avg_cost) / added;
            (before.shares * before.avg_cost + (held.shares - before.shares) * price) / held.shares
        } else {
            pos.avg_cost
        };
        Position { shares: held.shares, avg_cost, ..*pos }
    } else {
        Position {
            shares: held.shares,
            avg_cost: held.avg_cost,
            opened_bar: fill_bar,
            last_buy_bar: fill_bar,
            last_buy_day: day,
        }
    };
}

/// The broker's cash at the coming mark's bar, before the mark (so that equity, its peak
/// and the step's return follow from it).
///
/// Reads [`BrokerAccounts`], [`EpisodeClock`]; writes [`Portfolio`] cash. Runs in
/// [`StepSystems::Account`], after the borrow fees and before mark-to-market.
pub fn broker_cash(accounts: Res<BrokerAccounts>, mut envs: Query<(&mut Portfolio, &EpisodeClock)>) {
    envs.iter_mut().for_each(|(mut portfolio, clock)| {
        if let Some(s) = accounts.at(clock.bar + 1) {
            set_cash(&mut portfolio, s.cash);
        }
    });
}

/// The broker's previous-close equity and day-trade count at the bar just marked.
///
/// Reads [`BrokerAccounts`], [`MarketData`], [`EnvParams`], [`EpisodeClock`]; writes
/// [`Portfolio`] `prior_close_equity` and [`PdtState`]. Runs in [`StepSystems::Account`],
/// after mark-to-market (which moves the previous close on a new day).
pub fn broker_pdt(
    accounts: Res<BrokerAccounts>,
    market: Res<MarketData>,
    params: Res<EnvParams>,
    mut envs: Query<(&mut Portfolio, &mut PdtState, &EpisodeClock)>,
) {
    envs.iter_mut().for_each(|(mut portfolio, mut pdt, clock)| {
        if let Some(s) = accounts.at(clock.bar) {
            set_pdt(&mut portfolio, &mut pdt, s, market.day(clock.bar as usize), params.pdt.window_days);
        }
    });
}

/// The broker's account at an episode's first bar: a session starts from it.
///
/// Reads [`BrokerAccounts`], [`MarketData`], [`EnvParams`], [`EpisodeClock`]; writes
/// [`Portfolio`], [`PdtState`]. An episode-start system.
pub fn broker_account_at_start(
    accounts: Res<BrokerAccounts>,
    market: Res<MarketData>,
    params: Res<EnvParams>,
    targets: Res<Targets>,
    mut envs: Query<(&mut Portfolio, &mut PdtState, &EpisodeClock)>,
) {
    targets.for_each_mut(&mut envs, |(mut portfolio, mut pdt, clock)| {
        if let Some(s) = accounts.at(clock.bar) {
            let p = &mut *portfolio;
            set_cash(p, s.cash);
            // A fresh episode holds nothing: its equity is its cash, from which the
            // drawdown and the first step's return count.
            p.prev_equity = p.equity;
            p.peak_equity = p.equity;
            set_pdt(p, &mut pdt, s, market.day(clock.bar as usize), params.pdt.window_days);
        }
    });
}

fn set_cash(p: &mut Portfolio, cash: f64) {
    let diff = cash - p.cash;
    if diff.abs() >= CASH_TOLERANCE {
        p.cash = cash;
        p.equity += diff;
        // Unsettled proceeds (a cash account) are part of the cash.
        p.unsettled = p.unsettled.min(cash.max(0.0));
    }
}

fn set_pdt(p: &mut Portfolio, pdt: &mut PdtState, s: &AccountSnapshot, day: u32, window: u32) {
    if (s.last_equity - p.prior_close_equity).abs() >= CASH_TOLERANCE {
        p.prior_close_equity = s.last_equity;
    }
    pdt.set_in_window(day, window, s.day_trade_count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pdt_window_takes_the_brokers_count() {
        let mut pdt = PdtState::new(5);
        pdt.record(10, 1);
        pdt.record(12, 2);
        assert_eq!(pdt.in_window(12, 5), 3);
        // Two day trades the env did not make: on the bar's day, out of the window last.
        pdt.set_in_window(13, 5, 5);
        assert_eq!((pdt.in_window(13, 5), pdt.in_window(15, 5), pdt.in_window(17, 5)), (5, 4, 2));
        // The broker counts fewer: the oldest go first (day 10's, then one of day 12's).
        pdt.set_in_window(13, 5, 3);
        assert_eq!((pdt.in_window(13, 5), pdt.in_window(12, 5), pdt.in_window(17, 5)), (3, 1, 2));
        pdt.set_in_window(13, 5, 0);
        assert_eq!(pdt.in_window(13, 5), 0);
    }

    #[test]
    fn the_brokers_positions_keep_what_the_env_knew_of_them() {
        let long = Position { shares: 10.0, avg_cost: 50.0, opened_bar: 3, last_buy_bar: 5, last_buy_day: 2 };
        let bought = Position { shares: 10.0, avg_cost: 20.0, opened_bar: 7, last_buy_bar: 7, last_buy_day: 4 };
        let held = |shares: f64| Holding { shares, avg_cost: 21.0 };
        let adopted = |mut pos: Position, before: Position, shares: f64| {
            adopt(&mut pos, &before, held(shares), 7, 4);
            pos
        };
        // An exit filled in part: the rest of the position as it was before the fill, also
        // when the env's order turned the position around.
        assert_eq!(adopted(Position::default(), long, 4.0), Position { shares: 4.0, ..long });
        assert_eq!(adopted(Position { shares: -5.0, ..bought }, long, 2.0), Position { shares: 2.0, ..long });
        // An entry or an addition filled in part: the env's position, with the broker's shares.
        assert_eq!(adopted(bought, Position::default(), 6.0), Position { shares: 6.0, ..bought });
        // 5 shares added at 20 to 10 at 50 (an average of 40); 2 of them bought: 540 / 12.
        let added = Position { shares: 15.0, avg_cost: 40.0, ..bought };
        let got = adopted(added, long, 12.0);
        assert!((got.avg_cost - 540.0 / 12.0).abs() < 1e-12, "{got:?}");
        assert_eq!(got, Position { shares: 12.0, avg_cost: got.avg_cost, ..bought });
        // Flat at the broker; a position the env has neither before nor after the fill.
        assert_eq!(adopted(bought, long, 0.0), Position::default());
        let fresh = Position { shares: -3.0, avg_cost: 21.0, opened_bar: 7, last_buy_bar: 7, last_buy_day: 4 };
        assert_eq!(adopted(Position::default(), Position::default(), -3.0), fresh);
        // The same shares (to rounding): nothing moves.
        assert_eq!(adopted(bought, long, 10.0 + 1e-12), bought);
    }

    #[test]
    fn cash_moves_past_the_rounding_of_a_report_only() {
        let mut p = Portfolio::new(10_000.0);
        set_cash(&mut p, 10_000.004);
        assert_eq!((p.cash, p.equity), (10_000.0, 10_000.0));
        set_cash(&mut p, 9_000.0);
        assert_eq!((p.cash, p.equity), (9_000.0, 9_000.0));
    }
}
