//! Fill models. The built-in one, [`SpreadSlippageImpact`]: fill prices are reference ×
//! (1 ± (half-spread + slippage + impact)).
//!
//! - half-spread = `spread_bps` / 2 / 1e4;
//! - slippage = `slippage_atr_mult` × `atr_14[t] / close[t]`, read at the decision bar t;
//! - impact = `impact_coef` × `ret_std_20[t]` × sqrt(shares / mean volume of bars t−19..=t),
//!   the square-root law.
//!
//! A buy is sized by dollars: its notional N is fixed first. Its impact is computed from
//! the shares N would buy at the price *before* impact, `q0 = N / (ref × (1 + h + s))`; the
//! fill is then `ref × (1 + h + s + impact)` and the buy takes `q = N / fill` shares, so it
//! spends exactly N (with whole shares, `q = floor(N / fill)` and it spends `q × fill`). A
//! sell closes the whole position, so its impact uses its own share count.
//!
//! Costs are reported in dollars against the reference price: spread = q × ref × h,
//! slippage = q × ref × s, impact = q × ref × impact. They add up exactly to
//! |q × fill − q × ref|, the gap to a frictionless fill of the same shares.

use crate::config::EnvironmentConfig;
use bevy_ecs::prelude::*;
use std::sync::Arc;

/// Execution-cost parameters of one env: per env so that they can be randomized
/// (`environment.cost_randomization`). Per-env state of the execution plugin.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Half the quoted spread, as a fraction of price.
    pub half_spread: f64,
    pub slippage_atr_mult: f64,
    pub impact_coef: f64,
}

impl CostModel {
    pub fn from_config(cfg: &EnvironmentConfig) -> Self {
        Self {
            half_spread: cfg.spread_bps / 2e4,
            slippage_atr_mult: cfg.slippage_atr_mult,
            impact_coef: cfg.impact_coef,
        }
    }

    /// Every parameter scaled by `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            half_spread: self.half_spread * factor,
            slippage_atr_mult: self.slippage_atr_mult * factor,
            impact_coef: self.impact_coef * factor,
        }
    }
}

/// What the market says about one ticker for one order: the reference price, and at the
/// decision bar t, atr_14 / close, ret_std_20 and the mean volume of bars t−19..=t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillInput {
    pub reference: f64,
    pub atr_frac: f64,
    pub ret_std: f64,
    pub mean_volume: f64,
}

impl FillInput {
    /// Ticker `k`'s inputs at decision bar `t`, with `reference` as the reference price.
    #[inline]
    pub fn at(market: &crate::env::MarketData, t: usize, k: usize, reference: f64) -> Self {
        let cell = market.at(t) + k;
        Self {
            reference,
            atr_frac: market.atr_frac[cell],
            ret_std: market.ret_std[cell],
            mean_volume: market.mean_volume[cell],
        }
    }
}

/// Prices fills. Implement it for another slippage or impact law and install it with
/// [`Fills::custom`]; execution keeps the order of fills, sizing, the position cap, fees
/// and accounting.
pub trait FillModel: Send + Sync + 'static {
    /// Whether an order of this ticker can fill at all (else it is refused as
    /// `no_liquidity`).
    fn can_fill(&self, cost: &CostModel, input: &FillInput) -> bool;
    /// Share count and quote of a buy of `notional` dollars (whole shares unless
    /// `fractional`); the buy spends `shares × quote.buy_price()` (a non-finite count or
    /// price is refused as `no_liquidity`).
    fn buy(&self, cost: &CostModel, input: &FillInput, notional: f64, fractional: bool) -> (f64, FillQuote);
    /// Quote of a sell of `shares`.
    fn sell(&self, cost: &CostModel, input: &FillInput, shares: f64) -> FillQuote;
    /// Quote of a buy of `shares` that covers a short (paid at `quote.buy_price()`); by
    /// default the share-sized quote of [`FillModel::sell`], whose costs are symmetric.
    fn cover(&self, cost: &CostModel, input: &FillInput, shares: f64) -> FillQuote {
        self.sell(cost, input, shares)
    }
}

/// The built-in fill model (see the module docs): half-spread, ATR slippage and
/// square-root impact from the env's [`CostModel`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpreadSlippageImpact;

impl FillModel for SpreadSlippageImpact {
    /// No volume to measure impact against: refused, unless impact is off.
    #[inline]
    fn can_fill(&self, cost: &CostModel, input: &FillInput) -> bool {
        !(input.mean_volume <= 0.0 && cost.impact_coef > 0.0)
    }

    #[inline]
    fn buy(&self, cost: &CostModel, input: &FillInput, notional: f64, fractional: bool) -> (f64, FillQuote) {
        let slippage = cost.slippage_atr_mult * input.atr_frac;
        size_buy(
            input.reference,
            notional,
            cost.half_spread,
            slippage,
            cost.impact_coef,
            input.ret_std,
            input.mean_volume,
            fractional,
        )
    }

    #[inline]
    fn sell(&self, cost: &CostModel, input: &FillInput, shares: f64) -> FillQuote {
        let slippage = cost.slippage_atr_mult * input.atr_frac;
        quote_sell(
            input.reference,
            shares,
            cost.half_spread,
            slippage,
            cost.impact_coef,
            input.ret_std,
            input.mean_volume,
        )
    }
}

/// The fill model execution uses, a resource of every shard: [`SpreadSlippageImpact`] by
/// default; a plugin replaces it by inserting another `Fills`. The built-in model is called
/// without dynamic dispatch; a custom one through one virtual call per order.
#[derive(Resource, Clone)]
pub enum Fills {
    SpreadSlippageImpact(SpreadSlippageImpact),
    Custom(Arc<dyn FillModel>),
}

impl Fills {
    /// A custom fill model.
    pub fn custom(model: impl FillModel) -> Self {
        Self::Custom(Arc::new(model))
    }

    /// Whether a buy of `notional` dollars in whole shares gets none, as the action masks
    /// judge it at the decision bar: the built-in model pays at least the half-spread above
    /// the reference, so less than that buys nothing (slippage and impact are left to the
    /// fill, as the execution contract's masks are written); a custom model is asked, its
    /// whole quote counted (so a model wrapping the built-in one masks a little more).
    pub fn no_whole_share(&self, cost: &CostModel, input: &FillInput, notional: f64) -> bool {
        match self {
            Self::SpreadSlippageImpact(_) => notional < input.reference * (1.0 + cost.half_spread),
            // A NaN count buys nothing either.
            Self::Custom(m) => m.buy(cost, input, notional, false).0.partial_cmp(&1.0).is_none_or(|o| o.is_lt()),
        }
    }
}

impl std::fmt::Debug for Fills {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SpreadSlippageImpact(_) => f.write_str("SpreadSlippageImpact"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl FillModel for Fills {
    #[inline]
    fn can_fill(&self, cost: &CostModel, input: &FillInput) -> bool {
        match self {
            Self::SpreadSlippageImpact(m) => m.can_fill(cost, input),
            Self::Custom(m) => m.can_fill(cost, input),
        }
    }

    #[inline]
    fn buy(&self, cost: &CostModel, input: &FillInput, notional: f64, fractional: bool) -> (f64, FillQuote) {
        match self {
            Self::SpreadSlippageImpact(m) => m.buy(cost, input, notional, fractional),
            Self::Custom(m) => m.buy(cost, input, notional, fractional),
        }
    }

    #[inline]
    fn sell(&self, cost: &CostModel, input: &FillInput, shares: f64) -> FillQuote {
        match self {
            Self::SpreadSlippageImpact(m) => m.sell(cost, input, shares),
            Self::Custom(m) => m.sell(cost, input, shares),
        }
    }

    #[inline]
    fn cover(&self, cost: &CostModel, input: &FillInput, shares: f64) -> FillQuote {
        match self {
            Self::SpreadSlippageImpact(m) => m.cover(cost, input, shares),
            Self::Custom(m) => m.cover(cost, input, shares),
        }
    }
}

/// The pieces of one fill, as fractions of the reference price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillQuote {
    pub reference: f64,
    pub half_spread: f64,
    pub slippage: f64,
    pub impact: f64,
}

impl FillQuote {
    /// Price paid per share on a buy.
    #[inline]
    pub fn buy_price(&self) -> f64 {
        self.reference * (1.0 + self.half_spread + self.slippage + self.impact)
    }

    /// Price received per share on a sell (floored at 0: costs cannot make a sale cost money).
    #[inline]
    pub fn sell_price(&self) -> f64 {
        (self.reference * (1.0 - self.half_spread - self.slippage - self.impact)).max(0.0)
    }
}

/// Square-root impact fraction for `shares` against a mean bar volume.
#[inline]
pub fn sqrt_impact(impact_coef: f64, ret_std: f64, shares: f64, mean_volume: f64) -> f64 {
    if impact_coef == 0.0 || shares <= 0.0 {
        return 0.0;
    }
    impact_coef * ret_std * (shares / mean_volume).sqrt()
}

/// Quote and share count of a buy of `notional` dollars.
#[allow(clippy::too_many_arguments, reason = "the pieces of a quote, each a plain number")]
#[inline]
pub fn size_buy(
    reference: f64,
    notional: f64,
    half_spread: f64,
    slippage: f64,
    impact_coef: f64,
    ret_std: f64,
    mean_volume: f64,
    fractional: bool,
) -> (f64, FillQuote) {
    let pre_impact = reference * (1.0 + half_spread + slippage);
    let q0 = notional / pre_impact;
    let impact = sqrt_impact(impact_coef, ret_std, q0, mean_volume);
    let quote = FillQuote { reference, half_spread, slippage, impact };
    let raw = notional / quote.buy_price();
    let shares = if fractional { raw } else { raw.floor() };
    (shares, quote)
}

/// Quote of a sell of `shares`.
#[inline]
pub fn quote_sell(
    reference: f64,
    shares: f64,
    half_spread: f64,
    slippage: f64,
    impact_coef: f64,
    ret_std: f64,
    mean_volume: f64,
) -> FillQuote {
    let impact = sqrt_impact(impact_coef, ret_std, shares, mean_volume);
    FillQuote { reference, half_spread, slippage, impact }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buy of $2,000 at a $100 open: h = 1 bp, s = 0.1 × 0.6% = 6 bp, impact from
    /// q0 = 2000 / 100.07 shares against 100,000 shares of mean volume at 0.4% volatility.
    #[test]
    fn buy_is_sized_before_impact_and_spends_its_notional() {
        let (q, quote) = size_buy(100.0, 2000.0, 0.0001, 0.1 * 0.006, 0.5, 0.004, 100_000.0, true);
        let q0 = 2000.0 / (100.0 * (1.0 + 0.0001 + 0.0006));
        let impact = 0.5 * 0.004 * (q0 / 100_000.0f64).sqrt();
        assert!((quote.impact - impact).abs() < 1e-15);
        let fill = 100.0 * (1.0 + 0.0001 + 0.0006 + impact);
        assert!((quote.buy_price() - fill).abs() < 1e-12);
        assert!((q * fill - 2000.0).abs() < 1e-9);
    }

    #[test]
    fn whole_shares_round_down() {
        let (q, quote) = size_buy(100.0, 250.0, 0.0, 0.0, 0.0, 0.0, 1.0, false);
        assert_eq!(q, 2.0);
        assert_eq!(quote.buy_price(), 100.0);
    }

    #[test]
    fn costs_explain_the_gap_to_a_frictionless_fill() {
        let quote = quote_sell(50.0, 300.0, 0.0001, 0.0005, 0.5, 0.01, 10_000.0);
        let q = 300.0;
        let gap = q * quote.reference - q * quote.sell_price();
        let costs = q * 50.0 * (quote.half_spread + quote.slippage + quote.impact);
        assert!((gap - costs).abs() < 1e-9);
    }
}
