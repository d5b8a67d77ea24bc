//! One buy and one sell on hand-set prices, every number computed by hand in the comments:
//! fill prices, shares, spread/slippage/impact dollars, SEC and TAF fees, cash, and the
//! env's lifetime totals.

use ploutos::config::{EnvironmentConfig, TafModel};
use ploutos::env::{EpisodeBounds, MarketColumns, MarketData, Side};
use ploutos::{EnvOptions, TradingEnv};
use rstest::rstest;

/// One ticker, daily bars 0..=4.
///
/// | bar | open | close | atr/close | ret_std_20 | mean volume |
/// | --- | --- | --- | --- | --- | --- |
/// | 0 | 40.1 | 40.2 | 0.004 | 0.01 | 10,000 | ← buy decided on this close
/// | 1 | 40 | 42 | | | | ← buy fills at this open
/// | 2 | 48 | 49.5 | 0.002 | 0.02 | 9,900 | ← sell decided on this close
/// | 3 | 50 | 50.5 | | | | ← sell fills at this open
/// | 4 | 51 | 51 | | | |
fn market() -> MarketData {
    let c = MarketColumns {
        open: vec![40.1, 40.0, 48.0, 50.0, 51.0],
        close: vec![40.2, 42.0, 49.5, 50.5, 51.0],
        atr_frac: vec![0.004, 0.003, 0.002, 0.003, 0.003],
        ret_std: vec![0.01, 0.05, 0.02, 0.05, 0.05],
        mean_volume: vec![10_000.0, 1.0, 9_900.0, 1.0, 1.0],
        day: vec![0, 1, 2, 3, 4],
        features: vec![0.0; 5],
    };
    MarketData::new(5, 1, 1, c).expect("shapes")
}

/// Spread 10 bps (half-spread h = 0.0005), slippage 0.5 × ATR/close, impact coefficient 1,
/// buys of 40.1% of cash, no position cap, whole shares, default SEC fee and TAF.
fn config(taf: TafModel, fractional: bool) -> EnvironmentConfig {
    let mut cfg = EnvironmentConfig {
        initial_cash: 10_000.0,
        buy_pct: 0.401,
        max_position_pct: 1.0,
        fractional_shares: fractional,
        spread_bps: 10.0,
        slippage_atr_mult: 0.5,
        impact_coef: 1.0,
        max_trades_per_day: None,
        min_holding_bars: 2,
        ..EnvironmentConfig::default()
    };
    cfg.fees.taf_model = taf;
    cfg.pdt.enabled = false;
    cfg.validate().expect("valid");
    cfg
}

fn env(cfg: &EnvironmentConfig) -> TradingEnv {
    let bounds = EpisodeBounds { first: 0, last: 4, random_start: false };
    let mut env =
        TradingEnv::new(cfg, market(), EnvOptions { auto_reset: true, ..EnvOptions::replay(bounds) }).expect("env");
    env.reset(0);
    env
}

#[track_caller]
fn near(got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
}

// The buy, decided at bar 0, fills at bar 1's open, $40:
//   h = 10 / 2 / 1e4 = 0.0005, s = 0.5 × 0.004 = 0.002 (bar 0's ATR)
//   N = min(0.401 × 10,000, 1.0 × 10,000 − 0) = 4,010
//   pre-impact price = 40 × 1.0025 = 40.1, q0 = 4,010 / 40.1 = 100 shares
//   impact = 1 × 0.01 × sqrt(100 / 10,000) = 0.001
//   fill = 40 × (1 + 0.0005 + 0.002 + 0.001) = 40 × 1.0035 = 40.14
//   whole shares: q = floor(4,010 / 40.14) = floor(99.90…) = 99, spent 99 × 40.14 = 3,973.86
//   spread = 99 × 40 × 0.0005 = 1.98, slippage = 99 × 40 × 0.002 = 7.92,
//   impact = 99 × 40 × 0.001 = 3.96 (sum 13.86 = 3,973.86 − 99 × 40)
//   no fee on buys: cash = 10,000 − 3,973.86 = 6,026.14
//   equity at bar 1's close: 6,026.14 + 99 × 42 = 10,184.14
//
// The sell, decided at bar 2 (held 3 − 1 = 2 bars at its fill), fills at bar 3's open, $50:
//   s = 0.5 × 0.002 = 0.001, impact = 1 × 0.02 × sqrt(99 / 9,900) = 0.002 (bar 2's figures)
//   fill = 50 × (1 − 0.0005 − 0.001 − 0.002) = 50 × 0.9965 = 49.825
//   notional = 99 × 49.825 = 4,932.675
//   spread = 99 × 50 × 0.0005 = 2.475, slippage = 4.95, impact = 9.9 (sum 17.325)
//   SEC = 0.0000221 × 4,932.675 = 0.1090121175
//   TAF (notional) = 0.000145 × 4,932.675 = 0.715237875 → fees 0.8242499925
//   TAF (per share) = 99 × 0.000166 = 0.016434 (under the $8.30 cap) → fees 0.1254461175
//   cash = 6,026.14 + 4,932.675 − fees
#[rstest]
#[case::notional_taf(TafModel::Notional, 0.8242499925)]
#[case::per_share_taf(TafModel::PerShare, 0.1254461175)]
fn one_buy_one_sell_by_hand(#[case] taf: TafModel, #[case] sell_fees: f64) {
    let cfg = config(taf, false);
    let mut env = env(&cfg);

    let b = env.step(&[1]).expect("step");
    near(b.infos[0].cash, 6_026.14);
    near(b.infos[0].equity, 10_184.14);
    let buy = env.take_trades(0);
    assert_eq!(buy.len(), 1);
    let t = buy[0];
    assert_eq!((t.bar, t.ticker, t.side), (1, 0, Side::Buy), "written at the fill bar");
    assert_eq!(t.shares, 99.0);
    near(t.reference_price, 40.0);
    near(t.fill_price, 40.14);
    near(t.spread, 1.98);
    near(t.slippage, 7.92);
    near(t.impact, 3.96);
    near(t.fees, 0.0);
    near(t.cash_after, 6_026.14);
    let (_, pos, _) = env.env_state(0).expect("env");
    near(pos[0].avg_cost, 40.14);

    env.step(&[2]).expect("step"); // decided at bar 1: held 2 − 1 = 1 bar at its fill
    assert_eq!(env.buffers().infos[0].refused, 1, "holding period");
    let b = env.step(&[2]).expect("step");
    let cash = 6_026.14 + 4_932.675 - sell_fees;
    near(b.infos[0].cash, cash);
    near(b.infos[0].equity, cash);
    let sell = env.take_trades(0);
    assert_eq!(sell.len(), 1);
    let t = sell[0];
    assert_eq!((t.bar, t.ticker, t.side), (3, 0, Side::Sell));
    assert_eq!(t.shares, 99.0);
    near(t.reference_price, 50.0);
    near(t.fill_price, 49.825);
    near(t.spread, 2.475);
    near(t.slippage, 4.95);
    near(t.impact, 9.9);
    near(t.fees, sell_fees);
    near(t.cash_after, cash);

    let totals = env.totals();
    near(totals.costs.spread, 1.98 + 2.475);
    near(totals.costs.slippage, 7.92 + 4.95);
    near(totals.costs.impact, 3.96 + 9.9);
    near(totals.costs.fees, sell_fees);
    near(totals.turnover, 3_973.86 + 4_932.675);
    assert_eq!((totals.buys, totals.sells, totals.closed_trades, totals.winning_trades), (1, 1, 1, 1));
    assert_eq!(totals.trade_bars, 2, "opened at bar 1, closed at bar 3");
}

// Fractional shares: q = 4,010 / 40.14 = 99.9003…, spending exactly N = 4,010; the costs
// are q × 40 × (0.0005, 0.002, 0.001) = q × (0.02, 0.08, 0.04).
#[test]
fn fractional_buy_spends_its_notional() {
    let mut env = env(&config(TafModel::Notional, true));
    let b = env.step(&[1]).expect("step");
    near(b.infos[0].cash, 5_990.0);
    let t = env.take_trades(0)[0];
    let q = 4_010.0 / 40.14;
    near(t.shares, q);
    near(t.shares * t.fill_price, 4_010.0);
    near(t.spread, q * 0.02);
    near(t.slippage, q * 0.08);
    near(t.impact, q * 0.04);
}

/// A fill model of the tests' own, without costs: `buy(notional, reference, fractional)`
/// gives the shares a buy gets and the price it pays; sells go at the reference price.
#[derive(Clone, Copy)]
struct NoCost {
    buy: fn(f64, f64, bool) -> (f64, f64),
}

/// A quote at `price` with no spread, slippage or impact.
fn at(price: f64) -> ploutos::execution::FillQuote {
    ploutos::execution::FillQuote { reference: price, half_spread: 0.0, slippage: 0.0, impact: 0.0 }
}

impl ploutos::execution::FillModel for NoCost {
    fn can_fill(&self, _: &ploutos::execution::CostModel, _: &ploutos::execution::FillInput) -> bool {
        true
    }
    fn buy(
        &self,
        _: &ploutos::execution::CostModel,
        input: &ploutos::execution::FillInput,
        notional: f64,
        fractional: bool,
    ) -> (f64, ploutos::execution::FillQuote) {
        let (shares, price) = (self.buy)(notional, input.reference, fractional);
        (shares, at(price))
    }
    fn sell(
        &self,
        _: &ploutos::execution::CostModel,
        input: &ploutos::execution::FillInput,
        _: f64,
    ) -> ploutos::execution::FillQuote {
        at(input.reference)
    }
}

/// Round lots of 10 shares at the reference price.
const ROUND_LOTS: NoCost =
    NoCost { buy: |notional, reference, _| ((notional / reference / 10.0).floor() * 10.0, reference) };
/// Ten shares at no price at all (NaN).
const NO_PRICE: NoCost = NoCost { buy: |_, _, _| (10.0, f64::NAN) };
/// Whole shares unless fractional, at the reference price.
const AT_REFERENCE: NoCost = NoCost {
    buy: |notional, reference, fractional| {
        let shares = notional / reference;
        (if fractional { shares } else { shares.floor() }, reference)
    },
};

/// An env over the hand-set market with `model` for its fills (the built-in one: `None`),
/// reset.
fn env_with_fills(cfg: &EnvironmentConfig, opts: EnvOptions, model: Option<NoCost>) -> TradingEnv {
    let mut env = TradingEnv::with_plugins(cfg, market(), opts, |app| {
        if let Some(model) = model {
            app.insert_resource(ploutos::execution::Fills::custom(model));
        }
    })
    .expect("env");
    env.reset(0);
    env
}

/// With fractional shares on, a buy of round lots pays for the shares it got, not its
/// budget.
#[test]
fn a_custom_fill_model_is_charged_for_the_shares_it_fills() {
    let mut cfg = config(TafModel::PerShare, true);
    cfg.fees.sec_fee_rate = 0.0;
    cfg.fees.taf_rate = 0.0;
    let bounds = EpisodeBounds { first: 0, last: 4, random_start: false };
    let mut env = env_with_fills(&cfg, EnvOptions::replay(bounds), Some(ROUND_LOTS));
    env.step(&[1]).expect("step");
    // 40.1% of $10,000 at the open of 40: 100.25 shares, 100 in round lots, $4,000.
    let trades = env.take_trades(0);
    assert_eq!((trades.len(), trades[0].shares, trades[0].fill_price), (1, 100.0, 40.0));
    let (portfolio, positions, _) = env.env_state(0).expect("env 0");
    assert!((portfolio.cash - 6_000.0).abs() < 1e-9, "cash {}", portfolio.cash);
    assert!((positions[0].avg_cost - 40.0).abs() < 1e-12, "average cost {}", positions[0].avg_cost);
}

/// A fill model that prices nothing (NaN): the buy is refused as `no_liquidity`, the cash
/// stays whole.
#[test]
fn a_fill_model_that_prices_nothing_fills_nothing() {
    let cfg = config(TafModel::PerShare, true);
    let bounds = EpisodeBounds { first: 0, last: 4, random_start: false };
    let mut env = env_with_fills(&cfg, EnvOptions::replay(bounds), Some(NO_PRICE));
    env.step(&[1]).expect("step");
    assert!(env.take_trades(0).is_empty());
    assert_eq!(env.env_state(0).expect("env 0").0.cash, 10_000.0);
    assert_eq!(env.refused("no_liquidity"), Some(1));
}

/// Action masks ask a fill model of one's own whether a whole-share buy gets a share: a
/// budget of $40.21 at a close of $40.20 buys one share at no cost (the built-in model's
/// half-spread of 5 bps makes it $40.22, too dear, and masks the buy).
#[test]
fn action_masks_ask_a_custom_fill_model_for_whole_shares() {
    let mut cfg = config(TafModel::PerShare, false);
    cfg.initial_cash = 100.0;
    cfg.buy_pct = 0.4021;
    cfg.min_order_notional = 0.0;
    let bounds = EpisodeBounds { first: 0, last: 4, random_start: false };
    let opts = EnvOptions { action_masks: true, ..EnvOptions::replay(bounds) };
    let buy_allowed = |model: Option<NoCost>| env_with_fills(&cfg, opts.clone(), model).buffers().action_masks[1];
    assert!(!buy_allowed(None), "the built-in model's half-spread leaves no whole share");
    assert!(buy_allowed(Some(AT_REFERENCE)), "a share at the close, no cost");
}
