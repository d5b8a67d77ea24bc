//! A broker's commission written outside the crate: a `FeeModel` chosen from the config.
//!
//! Interactive Brokers' per-share pricing (IBKR Pro, tiered, its lowest-volume tier):
//! $0.0035 a share, at least $0.35 and at most 1% of the trade's value per order, on buys
//! and sells, on top of the regulatory fees of sells (SEC fee, FINRA TAF) that Ploutos
//! already charges. The schedule is read from the run's config, under
//! `environment.plugins.per_share_commission`:
//!
//! ```ron
//! environment: (plugins: { "per_share_commission": (per_share: 0.0035, min_per_order: 0.35, max_pct: 0.01) })
//! ```
//!
//! `cargo run --no-default-features --example tiered_commission`

use ploutos::prelude::*;
use serde::Deserialize;

/// The commission schedule, as written in the config.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PerShareCommission {
    /// Dollars per share.
    pub per_share: f64,
    /// Least commission of an order, in dollars.
    pub min_per_order: f64,
    /// Most commission of an order, as a fraction of its value.
    pub max_pct: f64,
}

impl PerShareCommission {
    /// The schedule in `cfg`, if any.
    pub fn from_config(cfg: &EnvironmentConfig) -> Result<Option<Self>, String> {
        let key = "environment.plugins.per_share_commission";
        let Some(c) = cfg.plugin::<Self>("per_share_commission").map_err(|e| e.to_string())? else { return Ok(None) };
        let ok = [c.per_share, c.min_per_order, c.max_pct].iter().all(|v| v.is_finite() && *v >= 0.0);
        if !ok || c.max_pct > 1.0 {
            return Err(format!("config key `{key}`: rates must be finite, ≥ 0, and max_pct ≤ 1"));
        }
        Ok(Some(c))
    }

    /// The commission of one order of `shares` worth `notional`.
    pub fn commission(&self, shares: f64, notional: f64) -> f64 {
        (self.per_share * shares).max(self.min_per_order).min(self.max_pct * notional)
    }
}

/// The commission plus the built-in regulatory fees.
struct WithRegulatoryFees {
    commission: PerShareCommission,
    regulatory: UsEquityFees,
}

impl FeeModel for WithRegulatoryFees {
    fn sell_fees(&self, shares: f64, notional: f64) -> f64 {
        self.commission.commission(shares, notional) + self.regulatory.sell_fees(shares, notional)
    }

    fn buy_fees(&self, shares: f64, notional: f64) -> f64 {
        self.commission.commission(shares, notional) + self.regulatory.buy_fees(shares, notional)
    }
}

/// Replaces the env's fee model (a plugin built after Ploutos' execution plugin).
#[derive(Clone)]
pub struct CommissionPlugin {
    pub commission: PerShareCommission,
    pub regulatory: UsEquityFees,
}

impl Plugin for CommissionPlugin {
    fn build(&self, app: &mut App) {
        let model = WithRegulatoryFees { commission: self.commission, regulatory: self.regulatory };
        app.insert_resource(Fees::custom(model));
    }
}

/// An env with the config's commission, if it names one.
pub fn env_with_commission(
    cfg: &EnvironmentConfig,
    market: MarketData,
    opts: EnvOptions,
) -> Result<TradingEnv, String> {
    let plugin = PerShareCommission::from_config(cfg)?
        .map(|commission| CommissionPlugin { commission, regulatory: UsEquityFees::new(&cfg.fees) });
    TradingEnv::with_plugins(cfg, market, opts, |app| {
        if let Some(p) = &plugin {
            app.add_plugins(p.clone());
        }
    })
    .map_err(|e| e.to_string())
}

/// A config with the schedule, as a user would write it in a run's RON file.
pub fn config(schedule: &str) -> Result<EnvironmentConfig, String> {
    let text = format!("(environment: (plugins: {{ \"per_share_commission\": {schedule} }}))");
    Config::from_ron_str(&text, "run.ron").map(|c| c.environment).map_err(|e| e.to_string())
}

fn main() {
    let cfg = config("(per_share: 0.0035, min_per_order: 0.35, max_pct: 0.01)").expect("valid config");
    let market = MarketData::random_walk(200, 2, 1, 7);
    let bounds = EpisodeBounds { first: 0, last: 199, random_start: false };
    let mut env = env_with_commission(&cfg, market, EnvOptions::replay(bounds)).expect("env");
    env.reset(0);
    for t in 0..50u8 {
        env.step(&[1 + t % 2, 2 - t % 2]).expect("two actions");
    }
    let fees: f64 = env.take_trades(0).iter().map(|t| t.fees).sum();
    println!("fees over 50 bars with a per-share commission: ${fees:.2}");
}
