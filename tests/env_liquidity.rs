//! The participation cap (`environment.max_participation`): partial fills computed by hand,
//! refusals on zero-volume bars, and for random markets and actions: no fill above the cap,
//! and cash + positions at their fill prices add up.

use hand::near;
use ploutos::config::EnvironmentConfig;
use ploutos::env::{EpisodeBounds, MarketColumns, MarketData, Refusal, Side};
use ploutos::{EnvError, EnvOptions, TradingEnv};
use proptest::prelude::*;

mod hand;

/// One ticker, daily bars 0..=6, opens = closes (no cost model: spread, slippage, impact and
/// fees are 0), so every number below is shares × price.
///
/// | bar | price | volume | |
/// | --- | --- | --- | --- |
/// | 0 | 50 | 1,000 | buy decided |
/// | 1 | 50 | 455 | buy fills: cap floor(0.1 × 455) = 45 of 100 shares |
/// | 2 | 60 | 1,000 | sell decided |
/// | 3 | 60 | 200 | sell fills: cap 20 of 45, 25 stay |
/// | 4 | 60 | 0 | the next sell would fill here: refused, zero_volume |
/// | 5 | 55 | 1,000 | the next sell fills the last 25 |
/// | 6 | 55 | 5 | a buy here: cap floor(0.5) = 0, refused, participation |
fn market(volume: Vec<f64>) -> MarketData {
    let market = hand::one_ticker(vec![50.0, 50.0, 60.0, 60.0, 60.0, 55.0, 55.0], (0..7).collect());
    market.with_volume(volume).expect("shapes")
}

fn config(participation: Option<f64>) -> EnvironmentConfig {
    hand::cost_free(|c| {
        c.buy_pct = 0.5;
        c.fractional_shares = false;
        c.max_participation = participation;
        c.pdt.enabled = false;
    })
}

fn env(cfg: &EnvironmentConfig, market: MarketData) -> TradingEnv {
    hand::replay(cfg, market)
}

#[test]
fn partial_fills_and_zero_volume_by_hand() {
    let mut env = env(&config(Some(0.1)), market(vec![1_000.0, 455.0, 1_000.0, 200.0, 0.0, 1_000.0, 5.0]));
    // Bar 0: buy of 0.5 × 10,000 = 5,000 → 100 shares at 50; the cap fills 45 = 2,250.
    let b = env.step(&[1]).expect("step");
    near(b.infos[0].cash, 7_750.0);
    let t = env.take_trades(0);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].bar, t[0].side, t[0].shares, t[0].unfilled), (1, Side::Buy, 45.0, 55.0));
    env.step(&[0]).expect("step");
    // Bar 2: sell of 45 at bar 3's 60, cap 20: 1,200 in, 25 shares left at avg cost 50.
    let b = env.step(&[2]).expect("step");
    near(b.infos[0].cash, 8_950.0);
    near(b.infos[0].equity, 8_950.0 + 25.0 * 60.0);
    let t = env.take_trades(0);
    assert_eq!((t[0].bar, t[0].side, t[0].shares, t[0].unfilled), (3, Side::Sell, 20.0, 25.0));
    let (_, pos, _) = env.env_state(0).expect("env");
    assert_eq!(pos[0].shares, 25.0);
    near(pos[0].avg_cost, 50.0);
    // Bar 3: the sell would fill at bar 4, which traded nothing.
    let b = env.step(&[2]).expect("step");
    assert_eq!(b.infos[0].refused, 1);
    assert!(env.take_trades(0).is_empty());
    // Bar 4: the last 25 fill at bar 5's 55.
    let b = env.step(&[2]).expect("step");
    near(b.infos[0].cash, 8_950.0 + 25.0 * 55.0);
    let t = env.take_trades(0);
    assert_eq!((t[0].shares, t[0].unfilled), (25.0, 0.0));
    assert_eq!(env.env_state(0).expect("env").1[0].shares, 0.0);
    // Bar 5: a buy into bar 6's volume of 5: 0.5 shares, under one whole share.
    let b = env.step(&[1]).expect("step");
    assert_eq!(b.infos[0].refused, 1);
    let totals = env.totals();
    assert_eq!(totals.refused.0[Refusal::ZERO_VOLUME.0 as usize], 1);
    assert_eq!(totals.refused.0[Refusal::PARTICIPATION.0 as usize], 1);
    // Two sells closed two lots: 20 × (60 − 50) won, 25 × (55 − 50) won.
    assert_eq!((totals.buys, totals.sells, totals.closed_trades, totals.winning_trades), (1, 2, 2, 2));
    near(totals.turnover, 2_250.0 + 1_200.0 + 1_375.0);
}

#[test]
fn without_the_cap_the_same_orders_fill_in_full() {
    let mut env = env(&config(None), market(vec![1_000.0, 455.0, 1_000.0, 200.0, 0.0, 1_000.0, 5.0]));
    env.step(&[1]).expect("step");
    let t = env.take_trades(0);
    assert_eq!((t[0].shares, t[0].unfilled), (100.0, 0.0));
}

#[test]
fn the_cap_needs_a_volume_column() {
    let c = MarketColumns {
        open: vec![1.0; 3],
        close: vec![1.0; 3],
        atr_frac: vec![0.0; 3],
        ret_std: vec![0.0; 3],
        mean_volume: vec![1.0; 3],
        day: vec![0, 1, 2],
        features: vec![0.0; 3],
    };
    let m = MarketData::new(3, 1, 1, c).expect("shapes");
    let bounds = EpisodeBounds { first: 0, last: 2, random_start: false };
    let err = TradingEnv::new(&config(Some(0.1)), m, EnvOptions::replay(bounds)).err().expect("refused");
    assert!(matches!(err, EnvError::NoVolume), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random walks with random volumes (zeros included), random actions, fractional or
    /// whole shares: every fill is at most the cap of its fill bar, a zero-volume bar fills
    /// nothing, and cash after each trade follows from the trades.
    #[test]
    fn no_fill_above_the_cap(
        seed in 0u64..1_000,
        p in 0.001f64..0.5,
        fractional in any::<bool>(),
        zeros in 0.0f64..0.3,
        actions in proptest::collection::vec(0u8..3, 3 * 150),
    ) {
        let base = MarketData::random_walk(151, 3, 2, seed);
        let volume: Vec<f64> = (0..151 * 3)
            .map(|i| {
                let u = ((i as u64 * 2_654_435_761 + seed) % 1_000) as f64 / 1_000.0;
                if u < zeros { 0.0 } else { 50.0 + 5_000.0 * u }
            })
            .collect();
        let market = base.clone().with_volume(volume.clone()).expect("shape");
        let mut cfg = EnvironmentConfig { max_participation: Some(p), fractional_shares: fractional, ..EnvironmentConfig::default() };
        cfg.max_trades_per_day = None;
        cfg.validate().expect("valid");
        let bounds = EpisodeBounds { first: 0, last: 150, random_start: false };
        let mut env = TradingEnv::new(&cfg, market, EnvOptions::replay(bounds)).expect("env");
        env.reset(0);
        let mut cash = cfg.initial_cash;
        for step in actions.chunks(3) {
            env.step(step).expect("step");
            for t in env.take_trades(0) {
                let v = volume[t.bar as usize * 3 + t.ticker as usize];
                prop_assert!(v > 0.0, "a fill on a zero-volume bar");
                prop_assert!(t.shares <= p * v * (1.0 + 1e-12), "{} shares > {p} × {v}", t.shares);
                prop_assert!(t.unfilled >= 0.0);
                let notional = t.shares * t.fill_price;
                cash += match t.side { Side::Buy => -notional - t.fees, _ => notional - t.fees };
                prop_assert!((t.cash_after - cash).abs() <= 1e-9 * cash.abs().max(1.0), "cash {} vs {cash}", t.cash_after);
                cash = t.cash_after;
            }
        }
        let (portfolio, positions, _) = env.env_state(0).expect("env");
        prop_assert!(positions.iter().all(|p| p.shares >= 0.0));
        prop_assert!(portfolio.cash >= 0.0);
    }
}
