//! Fill prices: reference × (1 ± (half-spread + slippage + impact)).
//!
//! - half-spread = `spread_bps` / 2 / 1e4;
//! - slippage = `slippage_atr_mult` × atr_14[t] / close[t], read at the decision bar t;
//! - impact = `impact_coef` × ret_std_20[t] × sqrt(shares / mean volume of bars t−19..=t),
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
#[allow(clippy::too_many_arguments)]
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
