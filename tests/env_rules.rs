//! Market rules on tiny hand-built markets: PDT across trading days, the minimum holding
//! period, the daily order cap, and the refusals execution makes (sell while flat, cash,
//! position cap, too small, no liquidity), each checked by reason.
//!
//! Prices are flat at $100 unless a test moves them, and every cost is zero, so equity
//! stays exactly at the initial cash and the PDT threshold is compared with a known number.

use ploutos::config::{EnvironmentConfig, FeeConfig, FillTiming};
use ploutos::env::{EnvId, EpisodeBounds, MarketColumns, MarketData, Orders, StepBuffers};
use ploutos::{EnvOptions, TradingEnv};
use rstest::rstest;

/// `n_bars` bars of `n_tickers` tickers at $100, `bars_per_day` bars per trading day.
fn columns(n_bars: usize, n_tickers: usize, bars_per_day: u32) -> MarketColumns {
    let cells = n_bars * n_tickers;
    MarketColumns {
        open: vec![100.0; cells],
        close: vec![100.0; cells],
        atr_frac: vec![0.0; cells],
        ret_std: vec![0.0; cells],
        mean_volume: vec![1e6; cells],
        day: (0..n_bars as u32).map(|t| t / bars_per_day).collect(),
        features: vec![0.0; cells],
    }
}

/// No costs, no rules: each test switches on what it checks.
fn bare_config() -> EnvironmentConfig {
    let mut cfg = EnvironmentConfig {
        spread_bps: 0.0,
        slippage_atr_mult: 0.0,
        impact_coef: 0.0,
        fees: FeeConfig { sec_fee_rate: 0.0, taf_rate: 0.0, taf_per_share: 0.0, ..FeeConfig::default() },
        max_trades_per_day: None,
        min_holding_bars: 0,
        bankruptcy_pct: 0.0,
        episode_length: 1_000_000,
        ..EnvironmentConfig::default()
    };
    cfg.pdt.enabled = false;
    cfg
}

/// One env over a hand-built market, stepping bar by bar from bar 0.
struct Sim {
    env: TradingEnv,
    names: Vec<String>,
    n: usize,
}

impl Sim {
    fn new(cfg: &EnvironmentConfig, n_tickers: usize, c: MarketColumns) -> Self {
        cfg.validate().expect("valid config");
        let n_bars = c.day.len();
        let market = MarketData::new(n_bars, n_tickers, 1, c).expect("market shape");
        let bounds = EpisodeBounds { first: 0, last: n_bars as u32 - 1, random_start: false };
        let mut env =
            TradingEnv::new(cfg, market, EnvOptions { auto_reset: true, ..EnvOptions::replay(bounds) }).expect("env");
        env.reset(0);
        let names = env.refusal_names();
        Self { env, names, n: n_tickers }
    }

    /// Steps with `orders` = (ticker, code); other tickers hold.
    fn step(&mut self, orders: &[(usize, u8)]) -> StepBuffers {
        let mut a = vec![0u8; self.n];
        for &(k, code) in orders {
            a[k] = code;
        }
        self.env.step(&a).expect("step").clone()
    }

    fn code(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("known reason")
    }

    /// Refusals of the last step for `name`, from the env's `Orders`.
    fn refused_now(&mut self, name: &str) -> u32 {
        let c = self.code(name);
        self.env
            .worlds_mut()
            .map(|world| {
                let mut q = world.query::<(&EnvId, &Orders)>();
                q.iter(world).map(|(_, o)| o.refused.0[c]).sum::<u32>()
            })
            .sum()
    }

    /// Lifetime refusals for `name`, from the env's totals.
    fn refused_total(&mut self, name: &str) -> u32 {
        let c = self.code(name);
        self.env.totals().refused.0[c]
    }

    fn shares(&mut self, k: usize) -> f64 {
        self.env.env_state(0).expect("env 0").1[k].shares
    }

    fn cash(&mut self) -> f64 {
        self.env.env_state(0).expect("env 0").0.cash
    }

    fn bar(&mut self) -> u32 {
        self.env.env_state(0).expect("env 0").2.bar
    }
}

const BUY: u8 = 1;
const SELL: u8 = 2;

/// Hourly-like days of 3 bars (bars 3d, 3d+1, 3d+2 on day d), next-open fills, no holding
/// period. Every day: buy at 3d (fills at 3d+1), sell at 3d+1 (fills at 3d+2, same day: a
/// day trade), and at 3d+2 sell what a refused day trade left (fills on day d+1: not a day
/// trade). With 3 day trades allowed in 5 trading days, days 0, 1, 2 day-trade, days 3 and
/// 4 are refused (3 in the window), day 5 is allowed again (days 1, 2 in the window 1..=5),
/// days 6 and 7 too, days 8 and 9 are refused (5, 6, 7 in the window), day 10 is allowed.
#[rstest]
#[case::under_threshold(24_999.0, &[3, 4, 8, 9])]
#[case::at_threshold(25_000.0, &[])]
#[case::above_threshold(40_000.0, &[])]
fn pdt_limits_day_trades_in_five_trading_days(#[case] cash: f64, #[case] refused_days: &[u32]) {
    let mut cfg = bare_config();
    cfg.initial_cash = cash;
    cfg.pdt.enabled = true;
    let days = 11u32;
    let mut sim = Sim::new(&cfg, 1, columns(3 * days as usize + 2, 1, 3));
    for d in 0..days {
        sim.step(&[(0, BUY)]);
        assert_eq!(sim.refused_now("pdt"), 0, "a buy is never a PDT refusal");
        // Before the sell: the observation's day trades left for the sell's fill day.
        let left_before = sim.env.buffers().obs[5];
        sim.step(&[(0, SELL)]);
        let refused = sim.refused_now("pdt");
        let want_refused = refused_days.contains(&d);
        assert_eq!(refused, u32::from(want_refused), "day {d}: day-trade sell refused?");
        if cash < 25_000.0 {
            assert_eq!(left_before == 0.0, want_refused, "day {d}: observation's day trades left {left_before}");
        } else {
            assert_eq!(left_before, 1.0, "the rule does not bind at or above the threshold");
        }
        let held = sim.shares(0) > 0.0;
        assert_eq!(held, want_refused, "day {d}: position after the sell");
        if held {
            // Sold on the next day's first bar: not a day trade, never refused.
            sim.step(&[(0, SELL)]);
            assert_eq!(sim.refused_now("pdt"), 0, "day {d}: overnight sell");
            assert_eq!(sim.shares(0), 0.0);
        } else {
            sim.step(&[]);
        }
    }
    assert_eq!(sim.refused_total("pdt"), refused_days.len() as u32);
    let totals = sim.env.totals();
    assert_eq!(totals.refused.total(), refused_days.len() as u32, "no other refusal");
    assert_eq!(totals.sells, u64::from(days), "every position is closed, one way or the other");
    assert_eq!(sim.cash(), cash, "zero costs, flat prices");
}

/// Daily bars are each their own trading day: with next-open fills a sell can never fill
/// on its buy's day, so the PDT rule never refuses.
#[test]
fn daily_bars_never_day_trade() {
    let mut cfg = bare_config();
    cfg.pdt.enabled = true;
    let mut sim = Sim::new(&cfg, 1, columns(41, 1, 1));
    for _ in 0..20 {
        sim.step(&[(0, BUY)]);
        sim.step(&[(0, SELL)]);
        assert_eq!(sim.shares(0), 0.0);
    }
    assert_eq!(sim.refused_total("pdt"), 0);
    assert_eq!(sim.env.totals().sells, 20);
}

/// `min_holding_bars: 3`: a sell fills at least 3 bars after the latest buy filled; an
/// add-on buy restarts the clock but keeps the position's opening bar.
#[rstest]
#[case::next_open(FillTiming::NextOpen, 1)]
#[case::close(FillTiming::Close, 0)]
fn holding_period_refuses_young_sells(#[case] timing: FillTiming, #[case] lag: u32) {
    let mut cfg = bare_config();
    cfg.fill_timing = timing;
    cfg.min_holding_bars = 3;
    cfg.buy_pct = 0.1;
    let mut sim = Sim::new(&cfg, 1, columns(20, 1, 1));
    sim.step(&[(0, BUY)]); // decision 0, fills at bar lag
    for age in 1..3 {
        sim.step(&[(0, SELL)]);
        assert_eq!(sim.refused_now("holding_period"), 1, "age {age}");
    }
    sim.step(&[(0, SELL)]); // age 3
    assert_eq!(sim.refused_now("holding_period"), 0);
    assert_eq!(sim.shares(0), 0.0);

    sim.step(&[(0, BUY)]); // decision 4, fills at 4 + lag
    sim.step(&[]);
    sim.step(&[(0, BUY)]); // decision 6: add-on, fills at 6 + lag
    let (_, pos, _) = sim.env.env_state(0).expect("env");
    assert_eq!((pos[0].opened_bar, pos[0].last_buy_bar), (4 + lag, 6 + lag), "add-on keeps the opening bar");
    sim.step(&[(0, SELL)]); // age 1 from the add-on
    assert_eq!(sim.refused_now("holding_period"), 1);
    sim.step(&[]);
    sim.step(&[(0, SELL)]); // age 3
    assert_eq!(sim.refused_now("holding_period"), 0);
    assert_eq!(sim.shares(0), 0.0);
    assert_eq!(sim.refused_total("holding_period"), 3);
    assert_eq!(sim.env.totals().refused.total(), 3);
}

/// `max_trades_per_day: 4` with 5 bars a day: the 5th order of a day is refused, orders
/// count on their fill day, and the counter starts again the next day.
#[test]
fn daily_cap_refuses_the_fifth_order() {
    let mut cfg = bare_config();
    cfg.max_trades_per_day = Some(4);
    cfg.buy_pct = 0.1;
    cfg.max_position_pct = 1.0;
    let mut sim = Sim::new(&cfg, 6, columns(16, 6, 5));
    let left = |b: &StepBuffers| b.obs[3 + 3 * 6];
    // Decision at bar 0 fills at bar 1 (day 0): 4 orders.
    let b = sim.step(&[(0, BUY), (1, BUY), (2, BUY), (3, BUY)]);
    assert_eq!(b.infos[0].executed, 4);
    assert_eq!(left(&b), 0.0, "no order left today");
    // The 5th order of day 0.
    let b = sim.step(&[(4, BUY)]);
    assert_eq!((b.infos[0].executed, b.infos[0].refused), (0, 1));
    assert_eq!(sim.refused_now("trades_per_day"), 1);
    sim.step(&[]);
    sim.step(&[]);
    // Decision at bar 4 (day 0) fills at bar 5 (day 1): a new day.
    assert_eq!(sim.bar(), 4);
    assert_eq!(left(sim.env.buffers()), 1.0, "the next fill is on day 1");
    let b = sim.step(&[(4, BUY)]);
    assert_eq!((b.infos[0].executed, b.infos[0].refused), (1, 0));
    assert_eq!(left(&b), 0.75);
    // Three slots left on day 1: sells are admitted first, in ticker order, then buys.
    let b = sim.step(&[(5, BUY), (0, SELL), (1, SELL), (2, SELL)]);
    assert_eq!((b.infos[0].executed, b.infos[0].refused), (3, 1));
    assert_eq!(sim.shares(5), 0.0, "the buy was the refused order");
    assert_eq!((sim.shares(0), sim.shares(1), sim.shares(2)), (0.0, 0.0, 0.0));
    assert_eq!(sim.refused_total("trades_per_day"), 2);
    assert_eq!(sim.env.totals().refused.total(), 2);
}

/// A sell while flat is `no_position`, an unknown code `invalid_action`; both hold.
#[test]
fn sell_while_flat_and_invalid_codes() {
    let mut sim = Sim::new(&bare_config(), 2, columns(4, 2, 7));
    let b = sim.step(&[(0, SELL), (1, 9)]);
    assert_eq!((b.infos[0].executed, b.infos[0].refused), (0, 2));
    assert_eq!(sim.refused_now("no_position"), 1);
    assert_eq!(sim.refused_now("invalid_action"), 1);
    assert_eq!(sim.cash(), 10_000.0);
    assert_eq!(sim.refused_total("no_position"), 1);
}

/// `buy_pct: 1`: the first buy of the bar spends all the cash, the second finds none.
#[test]
fn cash_runs_out_within_a_bar() {
    let mut cfg = bare_config();
    cfg.buy_pct = 1.0;
    cfg.max_position_pct = 1.0;
    let mut sim = Sim::new(&cfg, 2, columns(4, 2, 7));
    let b = sim.step(&[(0, BUY), (1, BUY)]);
    assert_eq!((b.infos[0].executed, b.infos[0].refused), (1, 1));
    assert_eq!(sim.refused_now("cash"), 1);
    assert_eq!(sim.cash(), 0.0);
    assert_eq!((sim.shares(0), sim.shares(1)), (100.0, 0.0));
}

/// `max_position_pct: 0.3` of the equity after the bar's sells, at reference prices: a
/// position above its cap cannot grow; below it, a buy spends exactly the room left.
#[test]
fn position_cap_limits_and_sizes_buys() {
    let mut cfg = bare_config();
    cfg.buy_pct = 0.5;
    cfg.max_position_pct = 0.3;
    let mut c = columns(6, 1, 7);
    c.open[2] = 120.0; // the decision at bar 1 fills here
    c.open[3] = 80.0; // the decision at bar 2 fills here
    let mut sim = Sim::new(&cfg, 1, c);
    // min(0.5 × 10,000, 0.3 × 10,000) = 3,000 at $100 = 30 shares.
    sim.step(&[(0, BUY)]);
    assert_eq!((sim.shares(0), sim.cash()), (30.0, 7_000.0));
    // At $120: equity 7,000 + 3,600 = 10,600, room 3,180 − 3,600 < 0.
    sim.step(&[(0, BUY)]);
    assert_eq!(sim.refused_now("position_cap"), 1);
    // At $80: equity 7,000 + 2,400 = 9,400, room 2,820 − 2,400 = 420 < 0.5 × 7,000.
    sim.step(&[(0, BUY)]);
    assert_eq!(sim.refused_now("position_cap"), 0);
    assert!((sim.shares(0) - (30.0 + 420.0 / 80.0)).abs() < 1e-9);
    assert!((sim.cash() - 6_580.0).abs() < 1e-9);
    assert_eq!(sim.refused_total("position_cap"), 1);
}

/// Buys under the minimum notional, or rounding to zero whole shares, are `too_small`; a
/// ticker without volume is `no_liquidity` when impact is on.
#[test]
fn too_small_and_no_liquidity() {
    let mut cfg = bare_config();
    cfg.buy_pct = 0.005; // $50
    cfg.fractional_shares = false;
    let mut sim = Sim::new(&cfg, 1, columns(4, 1, 7));
    sim.step(&[(0, BUY)]);
    assert_eq!(sim.refused_now("too_small"), 1, "$50 buys no whole $100 share");
    cfg.fractional_shares = true;
    cfg.min_order_notional = 60.0;
    let mut sim = Sim::new(&cfg, 1, columns(4, 1, 7));
    sim.step(&[(0, BUY)]);
    assert_eq!(sim.refused_now("too_small"), 1, "$50 is under the $60 minimum");

    let mut cfg = bare_config();
    cfg.impact_coef = 0.5;
    let mut c = columns(4, 2, 7);
    c.mean_volume[0] = 0.0; // ticker 0 at bar 0
    let mut sim = Sim::new(&cfg, 2, c);
    sim.step(&[(0, BUY), (1, BUY)]);
    assert_eq!(sim.refused_now("no_liquidity"), 1);
    assert_eq!((sim.shares(0) == 0.0, sim.shares(1) > 0.0), (true, true));
}

/// `auto_reset: false` (replays): a finished env keeps its final state and observation.
#[test]
fn without_auto_reset_a_finished_env_keeps_its_state() {
    let cfg = bare_config();
    let mut c = columns(4, 1, 7);
    c.close[3] = 110.0;
    let market = MarketData::new(4, 1, 1, c).expect("market shape");
    let bounds = EpisodeBounds { first: 0, last: 3, random_start: false };
    let opts = EnvOptions { trade_log: false, ..EnvOptions::replay(bounds) };
    let mut env = TradingEnv::new(&cfg, market, opts).expect("env");
    env.reset(0);
    env.step(&[BUY]).expect("step"); // 20% of cash: 20 shares at $100
    env.step(&[0]).expect("step");
    let b = env.step(&[0]).expect("step").clone();
    assert!(b.truncated[0], "the data ends at bar 3");
    let (p, pos, clock) = env.env_state(0).expect("env");
    assert_eq!((clock.bar, clock.steps), (3, 3));
    assert_eq!((pos[0].shares, p.cash), (20.0, 8_000.0));
    assert_eq!(p.equity, 8_000.0 + 20.0 * 110.0);
    assert_eq!(b.infos[0].equity, p.equity);
    assert_eq!(b.obs[1], (2_200.0 / 10_200.0) as f32, "the final observation, not a new episode's");
    assert_eq!(env.totals().episodes, 1);
}

/// Orders that would fill on an invented (forward-filled) bar of their ticker are refused
/// as `invented_bar`; the other ticker trades as usual.
#[test]
fn no_fill_on_an_invented_bar() {
    let market = MarketData::new(20, 2, 1, columns(20, 2, 7)).unwrap();
    // Ticker 1's bars 5 and 6 are invented: decisions at bars 4 and 5 fill on them.
    let mut mask = vec![0u64; 20];
    mask[5] = 0b10;
    mask[6] = 0b10;
    let market = market.with_invented_bars(mask).unwrap();
    let cfg = EnvironmentConfig { max_position_pct: 1.0, buy_pct: 0.05, ..bare_config() };
    let bounds = EpisodeBounds { first: 0, last: 19, random_start: false };
    let mut env = TradingEnv::new(&cfg, market, EnvOptions::replay(bounds)).unwrap();
    let code = env.refusal_names().iter().position(|n| n == "invented_bar").unwrap();
    env.reset(0);
    let mut refused = vec![];
    for _ in 0..8 {
        env.step(&[1, 1]).unwrap();
        refused.push(
            env.worlds_mut().map(|w| w.query::<&Orders>().iter(w).map(|o| o.refused.0[code]).sum::<u32>()).sum::<u32>(),
        );
    }
    assert_eq!(refused, vec![0, 0, 0, 0, 1, 1, 0, 0]);
    let fills: Vec<(u32, u16)> = env.take_trades(0).iter().map(|t| (t.bar, t.ticker)).collect();
    assert!(!fills.iter().any(|&(bar, k)| k == 1 && (bar == 5 || bar == 6)), "{fills:?}");
    assert!(fills.contains(&(5, 0)) && fills.contains(&(6, 0)), "{fills:?}");
}
