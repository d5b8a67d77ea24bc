//! Market rules: systems in [`StepSystems::Rules`] that refuse orders before they fill.
//!
//! They run in this order, each seeing what the previous ones left: no fill on an invented
//! (forward-filled) bar, minimum holding period, Pattern-Day-Trader, trades per day, then
//! any rule a user plugin adds (see `examples/custom_market_rule.rs`). A refused order is counted per reason in
//! [`crate::env::Orders::refused`] and the env's [`crate::env::Ledger`]. Counts that
//! depend on fills (day trades, orders per day) are those executed before this bar, plus
//! the orders this bar that an earlier order of the same rule already let through.
//!
//! With [`EnvParams::action_masks`] each rule also masks, at every observation, the
//! actions it would refuse if sent alone: the sells of positions younger than the holding
//! period, day-trading sells once no day trade is left, every order once the day's cap is
//! reached, and (with `fill_timing: close` only) orders on an invented bar. A mask never
//! reads a bar after the decision bar.

pub mod holding;
pub mod invented;
pub mod pdt;
pub mod trades_per_day;

use crate::config::EnvironmentConfig;
use crate::env::{EnvAppExt, EnvParams, EnvStep, StepSystems};
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

/// Settings of the built-in rules that the core does not hold. The PDT rule and the daily
/// cap are limits of the account, which the core keeps ([`EnvParams::pdt`],
/// [`EnvParams::max_trades_per_day`]) since execution records what they count and the
/// observation shows what is left of them.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct RulesConfig {
    pub min_holding_bars: u32,
}

/// Orders the built-in rules inside [`StepSystems::Rules`].
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BuiltInRules;

/// The built-in market rules, each switchable in config.
pub struct RulesPlugin {
    pub config: RulesConfig,
}

impl RulesPlugin {
    pub fn new(cfg: &EnvironmentConfig) -> Self {
        Self { config: RulesConfig { min_holding_bars: cfg.min_holding_bars } }
    }
}

impl Plugin for RulesPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.config.clone()).add_systems(
            EnvStep,
            (
                invented::refuse_invented_fills.run_if(invented::market_has_invented_bars),
                holding::enforce_holding_period.run_if(|c: Res<RulesConfig>| c.min_holding_bars > 1),
                pdt::enforce_pdt.run_if(|p: Res<EnvParams>| p.pdt.enabled),
                trades_per_day::enforce_trades_per_day.run_if(|p: Res<EnvParams>| p.max_trades_per_day.is_some()),
            )
                .chain()
                .in_set(BuiltInRules)
                .in_set(StepSystems::Rules),
        );
        // Each rule masks what it would refuse of a single order, when the rule is on.
        let world = app.world();
        let params = world.resource::<EnvParams>();
        if !params.action_masks {
            return;
        }
        let invented = world.resource::<crate::env::MarketData>().has_invented_bars();
        let (pdt, cap) = (params.pdt.enabled, params.max_trades_per_day.is_some());
        if invented {
            app.add_action_mask_systems(invented::mask_invented_fills);
        }
        if self.config.min_holding_bars > 1 {
            app.add_action_mask_systems(holding::mask_young_sells);
        }
        if pdt {
            app.add_action_mask_systems(pdt::mask_day_trades);
        }
        if cap {
            app.add_action_mask_systems(trades_per_day::mask_over_cap);
        }
    }
}
