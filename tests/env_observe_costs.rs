//! `environment.observe_costs`: the `allowed` and `costs` observation columns, and the
//! reward's `turnover_penalty`.

use ploutos::config::{EnvironmentConfig, FeeConfig, FillTiming};
use ploutos::env::{EpisodeBounds, MarketColumns, MarketData};
use ploutos::{EnvOptions, TradingEnv};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const D: usize = 3;

/// Flat $100 bars, 7 a day, no slippage or impact inputs.
fn flat_market(n_bars: usize) -> MarketData {
    let cells = n_bars * D;
    let c = MarketColumns {
        open: vec![100.0; cells],
        close: vec![100.0; cells],
        atr_frac: vec![0.0; cells],
        ret_std: vec![0.0; cells],
        mean_volume: vec![1e6; cells],
        day: (0..n_bars as u32).map(|t| t / 7).collect(),
        features: vec![0.5; cells],
    };
    MarketData::new(n_bars, D, 1, c).expect("shapes")
}

fn env(cfg: &EnvironmentConfig, market: MarketData, n_envs: usize) -> TradingEnv {
    let bounds = EpisodeBounds { first: 0, last: market.n_bars() as u32 - 1, random_start: false };
    TradingEnv::new(cfg, market, EnvOptions { threads: 1, ..EnvOptions::training(n_envs, bounds) }).expect("env")
}

#[test]
fn the_columns_sit_between_the_state_and_the_market_and_show_the_masks() {
    let cfg = EnvironmentConfig { observe_costs: true, min_holding_bars: 2, ..EnvironmentConfig::default() };
    let mut e = env(&cfg, MarketData::random_walk(400, D, 4, 3), 16);
    let cols = e.observation_columns().clone();
    let (state, allowed, costs, market) = (
        cols.get("portfolio").unwrap(),
        cols.get("allowed").unwrap(),
        cols.get("costs").unwrap(),
        cols.get("market").unwrap(),
    );
    assert_eq!((allowed.len(), costs.len()), (2 * D, 2 * D));
    assert!(state.end <= allowed.start && allowed.end <= costs.start && costs.end == market.start);
    assert_eq!(e.obs_dim(), 3 * D + 4 + 4 * D + 4 * D);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w = e.obs_dim();
    for _ in 0..200 {
        let actions: Vec<u8> = (0..16 * D).map(|_| rng.random_range(0..3)).collect();
        let out = e.step(&actions).unwrap();
        for i in 0..16 {
            let row = &out.obs[i * w..(i + 1) * w];
            let masks = &out.action_masks[i * D * 3..(i + 1) * D * 3];
            for k in 0..D {
                assert_eq!(row[allowed.start + k] == 1.0, masks[3 * k + 1], "env {i} buy {k}");
                assert_eq!(row[allowed.start + D + k] == 1.0, masks[3 * k + 2], "env {i} sell {k}");
                let (buy, sell) = (row[costs.start + k], row[costs.start + D + k]);
                // Spread 1 bp each side at least, well under 5% with the default costs.
                assert!(buy > 0.004 && buy < 5.0 && sell > 0.004 && sell < 5.0, "costs {buy} {sell}");
            }
        }
    }
}

#[test]
fn the_cost_columns_are_the_spread_and_fees_in_percent() {
    let cfg = EnvironmentConfig {
        observe_costs: true,
        spread_bps: 10.0,
        slippage_atr_mult: 0.0,
        impact_coef: 0.0,
        fees: FeeConfig { sec_fee_rate: 0.0, taf_rate: 0.0, taf_per_share: 0.0, ..FeeConfig::default() },
        fill_timing: FillTiming::Close,
        ..EnvironmentConfig::default()
    };
    let mut e = env(&cfg, flat_market(50), 1);
    let costs = e.observation_columns().get("costs").unwrap();
    let obs = e.reset(0).obs.clone();
    for x in &obs[costs] {
        assert!((x - 0.05).abs() < 1e-6, "half of 10 bp in percent: {x}");
    }
}

#[test]
fn the_turnover_penalty_charges_the_reward_not_the_account() {
    let base = EnvironmentConfig {
        spread_bps: 0.0,
        slippage_atr_mult: 0.0,
        impact_coef: 0.0,
        fees: FeeConfig { sec_fee_rate: 0.0, taf_rate: 0.0, taf_per_share: 0.0, ..FeeConfig::default() },
        fill_timing: FillTiming::Close,
        fractional_shares: true,
        ..EnvironmentConfig::default()
    };
    let mut penalized = base.clone();
    penalized.reward.turnover_penalty = 0.001;
    let (mut a, mut b) = (env(&base, flat_market(50), 1), env(&penalized, flat_market(50), 1));
    a.reset(0);
    b.reset(0);
    // Buy ticker 0: flat prices, so the plain reward is 0 and the equity does not move.
    let (ra, rb) = (a.step(&[1, 0, 0]).unwrap().clone(), b.step(&[1, 0, 0]).unwrap().clone());
    assert_eq!(ra.infos[0].equity, rb.infos[0].equity, "the account pays nothing more");
    let traded = base.initial_cash * base.buy_pct;
    let want = -(base.reward.return_weight * 0.001 * traded / base.initial_cash) * base.reward_scaling;
    assert!(
        (f64::from(rb.rewards[0] - ra.rewards[0]) - want).abs() < 1e-6,
        "{} vs {want}",
        rb.rewards[0] - ra.rewards[0]
    );
    // A step without a trade pays no penalty.
    let (ra, rb) = (a.step(&[0, 0, 0]).unwrap().clone(), b.step(&[0, 0, 0]).unwrap().clone());
    assert_eq!(ra.rewards, rb.rewards);
}
