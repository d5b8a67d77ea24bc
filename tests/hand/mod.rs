//! The shared parts of the hand-computed env scenarios (accounts, liquidity, corporate
//! actions): one ticker whose opens are its closes and an account without costs, so that
//! every number in a scenario's table is shares × price.

#![allow(dead_code, reason = "each test uses its own part")]

use ploutos::config::EnvironmentConfig;
use ploutos::env::{EpisodeBounds, MarketColumns, MarketData};
use ploutos::{EnvOptions, TradingEnv};

/// One ticker at `price` (opens = closes), on trading days `day`, with no slippage or
/// impact inputs and a mean volume of 1,000,000.
pub fn one_ticker(price: Vec<f64>, day: Vec<u32>) -> MarketData {
    one_ticker_open_close(price.clone(), price, day)
}

/// [`one_ticker`] with opens and closes of their own.
pub fn one_ticker_open_close(open: Vec<f64>, close: Vec<f64>, day: Vec<u32>) -> MarketData {
    let n = close.len();
    let c = MarketColumns {
        open,
        close,
        atr_frac: vec![0.0; n],
        ret_std: vec![0.0; n],
        mean_volume: vec![1e6; n],
        day,
        features: vec![0.0; n],
    };
    MarketData::new(n, 1, 1, c).expect("shapes")
}

/// A market of `d` tickers from proptest's returns (closes) and gaps (opens), with costs'
/// inputs: ATR 1% of price, return std 2%, mean volume 10,000 shares; three bars a
/// trading day.
pub fn volatile_market(d: usize, returns: &[f64], gaps: &[f64]) -> MarketData {
    let n = returns.len() / d;
    let mut close = vec![0.0; n * d];
    let mut open = vec![0.0; n * d];
    for k in 0..d {
        let mut p = 100.0;
        for t in 0..n {
            open[t * d + k] = p * (1.0 + gaps[t * d + k]);
            p = open[t * d + k] * (1.0 + returns[t * d + k]);
            close[t * d + k] = p;
        }
    }
    let c = MarketColumns {
        open,
        close,
        atr_frac: vec![0.01; n * d],
        ret_std: vec![0.02; n * d],
        mean_volume: vec![1e4; n * d],
        day: (0..n as u32).map(|t| t / 3).collect(),
        features: vec![0.0; n * d],
    };
    MarketData::new(n, d, 1, c).expect("shapes")
}

/// $10,000, positions up to all of equity, no spread, slippage, impact or fees, no daily
/// cap, no holding period; then `adjust`, then validated.
pub fn cost_free(adjust: impl FnOnce(&mut EnvironmentConfig)) -> EnvironmentConfig {
    let mut cfg = EnvironmentConfig {
        initial_cash: 10_000.0,
        max_position_pct: 1.0,
        spread_bps: 0.0,
        slippage_atr_mult: 0.0,
        impact_coef: 0.0,
        max_trades_per_day: None,
        min_holding_bars: 0,
        ..EnvironmentConfig::default()
    };
    cfg.fees.sec_fee_rate = 0.0;
    cfg.fees.taf_rate = 0.0;
    cfg.fees.taf_per_share = 0.0;
    adjust(&mut cfg);
    cfg.validate().expect("valid");
    cfg
}

/// One env replaying every bar of `market` from the first, reset.
pub fn replay(cfg: &EnvironmentConfig, market: MarketData) -> TradingEnv {
    let bounds = EpisodeBounds { first: 0, last: market.n_bars() as u32 - 1, random_start: false };
    let mut env = TradingEnv::new(cfg, market, EnvOptions::replay(bounds)).expect("env");
    env.reset(0);
    env
}

/// `got` within 1e-9 (relative, absolute below 1) of `want`.
#[track_caller]
pub fn near(got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
}
