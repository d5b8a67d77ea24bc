//! Short selling and Reg T margin (`environment.short_selling`; execution contract answer 20
//! in [`crate::env`]).
//!
//! Execution does the orders themselves (a sell when flat opens a short, a buy when short
//! covers it, the initial margin, the forced buy-in of a margin call: see
//! [`crate::execution`]); this plugin adds what lives around them: the `no_short` list
//! (refused as `not_shortable`), the daily borrow fee, and the masks of short sales the
//! account could not open. With shorting off it adds nothing, so the default step is
//! unchanged.

use crate::config::EnvironmentConfig;
use crate::env::{
    ActionMask, EnvAppExt, EnvStep, EpisodeClock, Ledger, MarketData, OrderShares, Orders, Portfolio, Positions,
    Refusal, StepSystems, Targets, into_short, long_short, mark_to_market,
};
use crate::rules::BuiltInRules;
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

/// Trading days in a year: the borrow fee's annual rate is charged as `rate / 252` per
/// trading day (bars carry trading-day ordinals, not calendar dates).
pub const TRADING_DAYS_PER_YEAR: f64 = 252.0;

/// What the plugin reads of `environment.short_selling`.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct ShortSelling {
    /// Annual borrow fee on the shorts' market value.
    pub borrow_rate: f64,
    /// Tickers that cannot be sold short, as a bit mask over the config's tickers.
    pub no_short: u64,
}

/// Short selling's rule, fee and masks; nothing unless `short_selling.enabled`.
pub struct ShortSellingPlugin {
    pub config: crate::config::ShortSellingConfig,
}

impl ShortSellingPlugin {
    pub fn new(cfg: &EnvironmentConfig) -> Self {
        Self { config: cfg.short_selling.clone() }
    }
}

impl Plugin for ShortSellingPlugin {
    fn build(&self, app: &mut App) {
        let s = &self.config;
        if !s.enabled {
            return;
        }
        // `no_short` names tickers of the market (checked against it when the env is built).
        let tickers = app.world().resource::<MarketData>().tickers();
        let no_short = tickers.iter().enumerate().fold(0u64, |m, (k, t)| m | u64::from(s.no_short.contains(t)) << k);
        let config = ShortSelling { borrow_rate: s.borrow_rate, no_short };
        app.insert_resource(config);
        if config.no_short != 0 {
            app.add_systems(EnvStep, refuse_not_shortable.in_set(StepSystems::Rules).before(BuiltInRules));
            if app.world().resource::<crate::env::EnvParams>().action_masks {
                app.add_action_mask_systems(mask_not_shortable);
            }
        }
        if config.borrow_rate > 0.0 {
            app.add_systems(EnvStep, charge_borrow_fees.in_set(StepSystems::Account).before(mark_to_market));
        }
    }
}

/// Refuses short sales (sells of tickers not held long) of the `no_short` tickers, and
/// with target-position actions the sells that would go through zero into a short (the
/// whole order: it is not cut down to an exit).
///
/// Reads [`ShortSelling`], [`Positions`], [`OrderShares`] when present; writes [`Orders`].
/// Runs in [`StepSystems::Rules`], before the built-in rules.
pub fn refuse_not_shortable(
    short: Res<ShortSelling>,
    mut envs: Query<(&mut Orders, &Positions, Option<&OrderShares>)>,
) {
    envs.iter_mut().for_each(|(mut orders, positions, sizes)| {
        let long = orders.long;
        let opening = match sizes {
            None => !long,
            Some(s) => into_short(&positions.0, &s.0),
        };
        let sells = orders.sell;
        orders.refuse(sells & short.no_short & opening, Refusal::NOT_SHORTABLE);
    });
}

/// Masks the short sales [`refuse_not_shortable`] would refuse, and with target positions
/// the levels that would flip a long of those tickers into a short.
///
/// Reads [`ShortSelling`], [`Positions`]; writes [`ActionMask`]. An action-mask system.
pub fn mask_not_shortable(
    short: Res<ShortSelling>,
    targets: Res<Targets>,
    mut envs: Query<(&Positions, &mut ActionMask)>,
) {
    targets.for_each_mut(&mut envs, |(positions, mut mask)| {
        let (long, _) = long_short(&positions.0);
        mask.forbid_sell(short.no_short & !long);
        mask.forbid_short(short.no_short);
    });
}

/// The borrow fee of `days` trading days on the shorts among `shares` (signed, by ticker),
/// valued at `closes`: `borrow_rate / 252 × days × value`. The env's accounting and the
/// replay broker's both charge it, so that the two accounts cannot drift apart.
pub fn borrow_fee(borrow_rate: f64, days: u32, shares: impl Iterator<Item = f64>, closes: &[f64]) -> f64 {
    let value: f64 = shares.zip(closes).map(|(q, c)| (-q).max(0.0) * c).sum();
    borrow_rate / TRADING_DAYS_PER_YEAR * f64::from(days) * value
}

/// Charges the borrow fee of the shorts held at the coming mark: `borrow_rate / 252` × the
/// trading days from the decision bar's day to the mark bar's day × the shorts' value at
/// the mark bar's close (nothing between two bars of one day).
///
/// Reads [`ShortSelling`], [`MarketData`], [`EpisodeClock`], [`Positions`]; writes
/// [`Portfolio`] cash and [`Ledger`] `borrow_fees`. Runs in [`StepSystems::Account`],
/// before mark-to-market (so the fee is in the equity it marks).
pub fn charge_borrow_fees(
    short: Res<ShortSelling>,
    market: Res<MarketData>,
    mut envs: Query<(&mut Portfolio, &mut Ledger, &Positions, &EpisodeClock)>,
) {
    envs.iter_mut().for_each(|(mut portfolio, mut ledger, positions, clock)| {
        let t = clock.bar as usize;
        let days = market.day(t + 1) - market.day(t);
        if days == 0 {
            return;
        }
        let fee = borrow_fee(short.borrow_rate, days, positions.0.iter().map(|p| p.shares), market.close_row(t + 1));
        if fee > 0.0 {
            portfolio.cash -= fee;
            ledger.borrow_fees += fee;
        }
    });
}
