//! The broker's account in the session's replay: what the agent observes and the rules
//! read at a bar close is the broker's cash, previous-close equity and day-trade count, not
//! the simulated ones.
//!
//! The session replays the env over the bars received ([`super::session`]); the env's
//! account follows the orders the env filled, the broker's the orders that really filled,
//! at real prices, with real fees, plus whatever happened outside the run (a deposit, day
//! trades in other tickers). Positions must agree (the loop reconciles them before sending
//! anything); cash and the day trades may drift. [`BrokerAccountPlugin`] puts the broker's
//! values into the replayed env at each bar close the broker reported one for:
//!
//! * **cash**: the env's cash becomes the broker's (its equity moves by the difference)
//!   when they differ by half a cent or more ([`CASH_TOLERANCE`]): brokers report cash in
//!   cents, and a smaller difference is that rounding, not a different account;
//! * **equity at the previous close** (FINRA's PDT equity, `pdt.equity: previous_close`):
//!   the broker's `last_equity`, under the same tolerance;
//! * **day trades** in the PDT window: the broker's count, with
//!   [`PdtState::set_in_window`] (missing day trades are put on the bar's day, extra ones
//!   are taken from the oldest days).
//!
//! So the observation's cash share, drawdown and day-trades-left columns, the buys' sizes
//! (from the cash), the PDT rule and a margin call all read the real account. When the
//! broker is the replay broker (the same fills and fees as the env) nothing moves, and
//! `trade --broker replay` still sends exactly the backtest's orders.

use super::broker::Account;
use crate::env::{
    EnvAppExt, EnvParams, EnvStep, EpisodeClock, MarketData, PdtState, Portfolio, StepSystems, Targets, mark_to_market,
};
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

/// The broker's account at each bar close of the replayed market (`None`: the broker
/// reported none, and the env's own account stands).
#[derive(Resource, Debug, Clone)]
pub struct BrokerAccounts(pub Arc<[Option<AccountSnapshot>]>);

impl BrokerAccounts {
    fn at(&self, bar: u32) -> Option<&AccountSnapshot> {
        self.0.get(bar as usize).and_then(Option::as_ref)
    }
}

/// Puts the broker's account into the env at each bar close (see the module docs).
pub struct BrokerAccountPlugin {
    pub by_bar: Arc<[Option<AccountSnapshot>]>,
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
    }
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
    fn cash_moves_past_the_rounding_of_a_report_only() {
        let mut p = Portfolio::new(10_000.0);
        set_cash(&mut p, 10_000.004);
        assert_eq!((p.cash, p.equity), (10_000.0, 10_000.0));
        set_cash(&mut p, 9_000.0);
        assert_eq!((p.cash, p.equity), (9_000.0, 9_000.0));
    }
}
