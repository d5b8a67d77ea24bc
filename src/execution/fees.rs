//! Broker and regulatory fees.
//!
//! US equities at a zero-commission broker: on **sells only**, the SEC Section 31 fee
//! (`sec_fee_rate` × sell notional) and FINRA's Trading Activity Fee (either
//! `taf_rate` × notional, the seed's figure, or FINRA's real per-share schedule capped per
//! trade). Notional is the fill price × shares. Fees are not rounded to the cent (the
//! simulation keeps full precision; real brokers round the SEC fee up to the cent, a
//! difference of at most $0.01 per sell). An optional flat commission applies to every
//! executed order.

use crate::config::{FeeConfig, TafModel};
use bevy_ecs::prelude::*;
use std::sync::Arc;

/// Computes the fees of one fill, in dollars. Implement it for a broker's schedule and
/// install it with [`Fees::custom`] (see `examples/tiered_commission.rs`).
pub trait FeeModel: Send + Sync + 'static {
    /// Fees in dollars for selling `shares` at a total `notional`.
    fn sell_fees(&self, shares: f64, notional: f64) -> f64;
    /// Fees in dollars for buying `shares` at a total `notional`.
    fn buy_fees(&self, shares: f64, notional: f64) -> f64;
}

/// The fee model execution charges, a resource of every shard: the built-in US-equity
/// schedule from `environment.fees` by default. A plugin replaces it by inserting another
/// `Fees` (plugins build after [`crate::execution::ExecutionPlugin`]). The built-in model
/// is called without dynamic dispatch; a custom one through one virtual call per fill.
#[derive(Resource, Clone)]
pub enum Fees {
    UsEquity(UsEquityFees),
    Custom(Arc<dyn FeeModel>),
}

impl Fees {
    /// A custom fee model.
    pub fn custom(model: impl FeeModel) -> Self {
        Self::Custom(Arc::new(model))
    }
}

impl std::fmt::Debug for Fees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UsEquity(m) => f.debug_tuple("UsEquity").field(m).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl FeeModel for Fees {
    #[inline]
    fn sell_fees(&self, shares: f64, notional: f64) -> f64 {
        match self {
            Self::UsEquity(m) => m.sell_fees(shares, notional),
            Self::Custom(m) => m.sell_fees(shares, notional),
        }
    }

    #[inline]
    fn buy_fees(&self, shares: f64, notional: f64) -> f64 {
        match self {
            Self::UsEquity(m) => m.buy_fees(shares, notional),
            Self::Custom(m) => m.buy_fees(shares, notional),
        }
    }
}

/// FINRA's Trading Activity Fee.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Taf {
    /// Fraction of sell notional.
    Notional { rate: f64 },
    /// Dollars per share sold, capped per trade.
    PerShare { rate: f64, max_per_trade: f64 },
}

/// SEC fee + TAF on sells, flat commission on every order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsEquityFees {
    pub sec_fee_rate: f64,
    pub taf: Taf,
    pub commission_per_order: f64,
}

impl UsEquityFees {
    /// From the validated `environment.fees` config.
    pub fn new(cfg: &FeeConfig) -> Self {
        let taf = match cfg.taf_model {
            TafModel::Notional => Taf::Notional { rate: cfg.taf_rate },
            TafModel::PerShare => Taf::PerShare { rate: cfg.taf_per_share, max_per_trade: cfg.taf_max_per_trade },
        };
        Self { sec_fee_rate: cfg.sec_fee_rate, taf, commission_per_order: cfg.commission_per_order }
    }
}

impl FeeModel for UsEquityFees {
    #[inline]
    fn sell_fees(&self, shares: f64, notional: f64) -> f64 {
        let taf = match self.taf {
            Taf::Notional { rate } => rate * notional,
            Taf::PerShare { rate, max_per_trade } => (rate * shares).min(max_per_trade),
        };
        self.sec_fee_rate * notional + taf + self.commission_per_order
    }

    #[inline]
    fn buy_fees(&self, _shares: f64, _notional: f64) -> f64 {
        self.commission_per_order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // $10,000 sold: SEC 0.00221% = $0.221, TAF 0.0145% = $1.45.
    #[case(TafModel::Notional, 100.0, 10_000.0, 0.221 + 1.45)]
    // 100 shares: TAF $0.000166 × 100 = $0.0166.
    #[case(TafModel::PerShare, 100.0, 10_000.0, 0.221 + 0.0166)]
    // 1,000,000 shares: TAF capped at $8.30.
    #[case(TafModel::PerShare, 1_000_000.0, 10_000.0, 0.221 + 8.30)]
    fn sell_fees_follow_the_schedule(
        #[case] taf: TafModel,
        #[case] shares: f64,
        #[case] notional: f64,
        #[case] want: f64,
    ) {
        let fees = UsEquityFees::new(&FeeConfig { taf_model: taf, ..FeeConfig::default() });
        assert!((fees.sell_fees(shares, notional) - want).abs() < 1e-12);
        assert_eq!(fees.buy_fees(shares, notional), 0.0);
    }
}
