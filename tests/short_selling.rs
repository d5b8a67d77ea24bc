//! Short selling and Reg T margin (`environment.short_selling`, execution contract answer
//! 20): a short's account by hand (proceeds, borrow fee, cover), a margin call's forced
//! buy-in, the `no_short` list, the config's refusals, and properties over random markets:
//! cash + long value − short liability = equity at every bar, a forced buy-in leaves
//! the equity at or above the maintenance margin of what is left (or only positions on an
//! invented bar), and nothing (a forced buy-in included) fills on an invented bar.

use ploutos::config::{Account, Config, EnvironmentConfig};
use ploutos::env::{EpisodeBounds, MarketColumns, MarketData, Refusal, Side};
use ploutos::{EnvError, EnvOptions, TradingEnv};
use proptest::prelude::*;

mod hand;

/// Shorts on, no costs, one trading day per bar, sells and buys of `buy_pct` of free cash.
fn config(buy_pct: f64, borrow_rate: f64, adjust: impl FnOnce(&mut EnvironmentConfig)) -> EnvironmentConfig {
    hand::cost_free(|c| {
        c.buy_pct = buy_pct;
        c.short_selling.enabled = true;
        c.short_selling.borrow_rate = borrow_rate;
        c.pdt.enabled = false;
        // Replays run to the end, as `ploutos backtest` does.
        c.bankruptcy_pct = 0.0;
        adjust(c);
    })
}

fn days(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

/// $10,000; bar 0: sell when flat at $100 → a short of 0.5 × 10,000 = $5,000, 50 shares,
/// filled at bar 1's open; cash $15,000. Borrow fee 2.52% a year = 0.01% a trading day on
/// the short's value at each new day's close: $0.50 at bar 1 ($5,000), $0.40 at bar 2
/// ($4,000). Bar 2: buy → covers the 50 shares at bar 3's open, $80: cash 14,999.10 −
/// 4,000 = 10,999.10, the round trip won $1,000 less $0.90 of fees.
#[test]
fn a_short_by_hand() {
    let cfg = config(0.5, 0.0252, |_| {});
    let mut env = hand::replay(&cfg, hand::one_ticker(vec![100.0, 100.0, 80.0, 80.0, 80.0], days(5)));
    let b = env.step(&[2]).expect("step");
    hand::near(b.infos[0].cash, 15_000.0 - 0.5);
    hand::near(b.infos[0].equity, 15_000.0 - 0.5 - 5_000.0);
    let b = env.step(&[0]).expect("step");
    hand::near(b.infos[0].cash, 15_000.0 - 0.9);
    hand::near(b.infos[0].equity, 15_000.0 - 0.9 - 4_000.0);
    let b = env.step(&[1]).expect("step");
    hand::near(b.infos[0].cash, 10_999.1);
    hand::near(b.infos[0].equity, 10_999.1);
    let totals = env.totals();
    hand::near(totals.borrow_fees, 0.9);
    assert_eq!((totals.sells, totals.buys, totals.closed_trades, totals.winning_trades), (1, 1, 1, 1));
    let trades = env.take_trades(0);
    let sides: Vec<_> = trades.iter().map(|t| (t.bar, t.side, t.shares, t.fill_price, t.forced)).collect();
    assert_eq!(sides, vec![(1, Side::Sell, 50.0, 100.0, None), (3, Side::Buy, 50.0, 80.0, None)]);
    let closed = ploutos::backtest::metrics::closed_trades(&trades, 1);
    assert_eq!(closed.len(), 1);
    hand::near(closed[0].pnl, 1_000.0);
}

/// Off (the default), a sell when flat is refused as before.
#[test]
fn off_a_sell_when_flat_has_no_position() {
    let cfg = hand::cost_free(|_| {});
    let mut env = hand::replay(&cfg, hand::one_ticker(vec![100.0; 3], days(3)));
    env.step(&[2]).expect("step");
    assert_eq!(env.totals().refused.0[Refusal::NO_POSITION.0 as usize], 1);
    assert!(env.take_trades(0).is_empty());
}

/// $10,000 shorted whole at $100 (100 shares, cash $20,000). Maintenance 25%: the equity
/// 20,000 − 100 p meets 0.25 × 100 p up to p = $160. At $150 (bar 2) it does; at $170
/// (bar 3) equity is $3,000 < $4,250: the broker buys the 100 shares in at bar 4's open
/// ($170), a forced order, and the agent's sell decided at bar 3 is refused as
/// `margin_call`. Cash and equity are then $3,000, and nothing is left to call.
#[test]
fn a_margin_call_buys_the_short_in() {
    let cfg = config(1.0, 0.0, |_| {});
    let prices = vec![100.0, 100.0, 150.0, 170.0, 170.0, 170.0];
    let mut env = hand::replay(&cfg, hand::one_ticker(prices, days(6)));
    env.step(&[2]).expect("step");
    env.step(&[0]).expect("step");
    let b = env.step(&[0]).expect("step");
    hand::near(b.infos[0].equity, 3_000.0);
    let b = env.step(&[2]).expect("step");
    hand::near(b.infos[0].cash, 3_000.0);
    hand::near(b.infos[0].equity, 3_000.0);
    let totals = env.totals();
    assert_eq!(totals.forced_orders, 1);
    assert_eq!(totals.refused.0[Refusal::MARGIN_CALL.0 as usize], 1);
    let trades = env.take_trades(0);
    let last = trades.last().unwrap();
    assert_eq!((last.bar, last.side, last.shares, last.forced), (4, Side::Buy, 100.0, Some(Refusal::MARGIN_CALL)));
}

/// At $150 the short (cash $20,000, liability $15,000) has $5,000 of equity and no free cash
/// left: 20,000 − 1.5 × 15,000 < 0, so a second short sale is refused as `margin`, and so is
/// a buy (no free cash); a cover is never refused for cash.
#[test]
fn shorts_lock_their_proceeds_and_margin() {
    let cfg = config(1.0, 0.0, |_| {});
    let mut env = hand::replay(&cfg, hand::one_ticker(vec![100.0, 100.0, 150.0, 150.0, 150.0, 150.0], days(6)));
    env.step(&[2]).expect("step");
    env.step(&[0]).expect("step");
    env.step(&[2]).expect("step");
    assert_eq!(env.totals().refused.0[Refusal::MARGIN.0 as usize], 1);
    let b = env.step(&[1]).expect("step");
    hand::near(b.infos[0].cash, 20_000.0 - 15_000.0);
    assert_eq!(env.take_trades(0).len(), 2);
}

fn two_tickers(names: [&str; 2]) -> MarketData {
    let n = 4;
    let c = MarketColumns {
        open: vec![100.0; 2 * n],
        close: vec![100.0; 2 * n],
        atr_frac: vec![0.0; 2 * n],
        ret_std: vec![0.0; 2 * n],
        mean_volume: vec![1e6; 2 * n],
        day: days(n),
        features: vec![0.0; 2 * n],
    };
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    MarketData::new(n, 2, 1, c).and_then(|m| m.with_tickers(&names)).expect("shapes")
}

/// `no_short: ["B"]`: a sell of B when flat is refused as `not_shortable`, of A it opens a
/// short; with masks on, the mask forbids it beforehand.
#[test]
fn no_short_tickers_cannot_be_sold_short() {
    let cfg = config(0.2, 0.0, |c| c.short_selling.no_short = vec!["B".into()]);
    let mut env = hand::replay(&cfg, two_tickers(["A", "B"]));
    env.step(&[2, 2]).expect("step");
    assert_eq!(env.totals().refused.0[Refusal::NOT_SHORTABLE.0 as usize], 1);
    let trades = env.take_trades(0);
    assert_eq!(trades.iter().map(|t| (t.ticker, t.side)).collect::<Vec<_>>(), vec![(0, Side::Sell)]);

    let bounds = EpisodeBounds { first: 0, last: 3, random_start: false };
    let opts = EnvOptions { action_masks: true, ..EnvOptions::replay(bounds) };
    let mut env = TradingEnv::new(&cfg, two_tickers(["A", "B"]), opts).expect("env");
    let b = env.reset(0);
    // [env, ticker, action]: hold, buy, sell
    assert_eq!(&b.action_masks[..6], &[true, true, true, true, true, false]);
}

/// A `no_short` name the market does not have is refused when the env is built, and by the
/// config against `data.tickers`; shorts in a cash account are refused by the config.
#[test]
fn bad_short_settings_are_refused() {
    let cfg = config(0.2, 0.0, |c| c.short_selling.no_short = vec!["C".into()]);
    let bounds = EpisodeBounds { first: 0, last: 3, random_start: false };
    let err = TradingEnv::new(&cfg, two_tickers(["A", "B"]), EnvOptions::replay(bounds)).err().expect("refused");
    assert!(matches!(err, EnvError::UnknownTicker(ref t) if t == "C"), "{err}");

    let mut full = Config::default();
    full.environment.short_selling.enabled = true;
    full.environment.short_selling.no_short = vec!["XYZ".into()];
    let msg = full.validate().unwrap_err().to_string();
    assert!(msg.contains("environment.short_selling.no_short") && msg.contains("XYZ"), "{msg}");

    let mut cash = EnvironmentConfig { account: Account::Cash, ..EnvironmentConfig::default() };
    cash.short_selling.enabled = true;
    let msg = cash.validate().unwrap_err().to_string();
    assert!(msg.contains("environment.short_selling.enabled"), "{msg}");
    let mut cfg = EnvironmentConfig::default();
    cfg.short_selling.maintenance_margin = 0.6;
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("environment.short_selling.maintenance_margin"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random volatile markets with random invented (forward-filled) bars, random actions,
    /// every realism switch that moves orders (shorts with a maintenance margin at the
    /// initial one, so that calls happen; target positions or the seed's actions; a
    /// participation cap or none; either fill timing): no trade, the agent's or a forced
    /// buy-in, fills on an invented bar of its ticker; after a bar's forced buy-ins the
    /// equity at the fill's reference prices meets the maintenance margin of what is left,
    /// or nothing is left but positions on an invented bar of that fill.
    #[test]
    fn no_fill_on_an_invented_bar(
        returns in proptest::collection::vec(-0.08f64..0.08, 3 * 120),
        gaps in proptest::collection::vec(-0.03f64..0.03, 3 * 120),
        invented in proptest::collection::vec(0u64..8, 120),
        share_invented in 0.0f64..0.5,
        actions in proptest::collection::vec(0u8..5, 3 * 119),
        targets in any::<bool>(),
        cap in proptest::option::of(0.01f64..0.5),
        close_fills in any::<bool>(),
    ) {
        // About `share_invented` of the bars have some tickers invented (the mask's bits).
        let mask: Vec<u64> = invented
            .iter()
            .enumerate()
            .map(|(t, &bits)| if ((t as f64 * 0.618_034) % 1.0) < share_invented { bits } else { 0 })
            .collect();
        let volume: Vec<f64> = (0..3 * 120).map(|i| 100.0 + (i * 37 % 1_000) as f64).collect();
        let m = hand::volatile_market(3, &returns, &gaps)
            .with_volume(volume)
            .and_then(|m| m.with_invented_bars(mask.clone()))
            .expect("shapes");
        let mut cfg = EnvironmentConfig { buy_pct: 0.9, max_position_pct: 1.0, ..EnvironmentConfig::default() };
        cfg.short_selling.enabled = true;
        cfg.short_selling.maintenance_margin = 0.5;
        cfg.max_trades_per_day = None;
        cfg.bankruptcy_pct = 0.0;
        cfg.max_participation = cap;
        cfg.target_positions.enabled = targets;
        cfg.target_positions.levels = vec![-1.0, -0.5, 0.0, 0.5, 1.0];
        if close_fills {
            cfg.fill_timing = ploutos::config::FillTiming::Close;
        }
        cfg.validate().expect("valid");
        // The fills' reference prices: the fill bar's open, or its close.
        let refs: Vec<Vec<f64>> =
            (0..120).map(|t| if close_fills { m.close_row(t).to_vec() } else { m.open_row(t).to_vec() }).collect();
        let maintenance = cfg.short_selling.maintenance_margin;
        let mut env = hand::replay(&cfg, m);
        let n_actions = env.n_actions() as u8;
        let (mut fills, mut shares) = (0, [0.0f64; 3]);
        for a in actions.chunks(3) {
            let a: Vec<u8> = a.iter().map(|&x| x % n_actions).collect();
            env.step(&a).expect("step");
            let trades = env.take_trades(0);
            let n_forced = trades.iter().take_while(|t| t.forced.is_some()).count();
            for (i, t) in trades.iter().enumerate() {
                prop_assert!(mask[t.bar as usize] >> t.ticker & 1 == 0,
                    "{:?} trade of ticker {} on its invented bar {}", t.forced, t.ticker, t.bar);
                fills += 1;
                shares[t.ticker as usize] += if t.side == Side::Buy { t.shares } else { -t.shares };
                if i + 1 == n_forced {
                    let (bar, r) = (t.bar as usize, &refs[t.bar as usize]);
                    let net = t.cash_after + shares.iter().zip(r).map(|(q, r)| q * r).sum::<f64>();
                    let gross: f64 = shares.iter().zip(r).map(|(q, r)| q.abs() * r).sum();
                    let stuck = (0..3).all(|k| shares[k] == 0.0 || mask[bar] >> k & 1 == 1);
                    prop_assert!(net >= maintenance * gross - 1e-9 * gross || stuck,
                        "bar {bar}: equity {net} under {maintenance} × {gross} after the buy-in, {shares:?} left");
                }
            }
        }
        prop_assert!(fills > 0);
    }

    /// Random volatile markets and random actions, shorts on with the seed's costs and a
    /// maintenance margin at the initial one (so that calls happen): at every bar equity =
    /// cash + Σ signed shares × close (shares rebuilt from the trades), and after every
    /// forced buy-in the equity at the fill's reference prices meets the maintenance
    /// margin of what is left, or nothing is left.
    #[test]
    fn equity_adds_up_and_buy_ins_restore_maintenance(
        returns in proptest::collection::vec(-0.08f64..0.08, 3 * 120),
        gaps in proptest::collection::vec(-0.03f64..0.03, 3 * 120),
        actions in proptest::collection::vec(0u8..3, 3 * 119),
        buy_pct in 0.2f64..1.0,
    ) {
        let m = hand::volatile_market(3, &returns, &gaps);
        let opens: Vec<Vec<f64>> = (0..120).map(|t| m.open_row(t).to_vec()).collect();
        let closes: Vec<Vec<f64>> = (0..120).map(|t| m.close_row(t).to_vec()).collect();
        let mut cfg = EnvironmentConfig { buy_pct, max_position_pct: 1.0, ..EnvironmentConfig::default() };
        cfg.short_selling.enabled = true;
        cfg.short_selling.maintenance_margin = 0.5;
        cfg.short_selling.borrow_rate = 0.05;
        cfg.max_trades_per_day = None;
        cfg.bankruptcy_pct = 0.0;
        cfg.validate().expect("valid");
        let maintenance = cfg.short_selling.maintenance_margin;
        let mut env = hand::replay(&cfg, m);
        let mut shares = [0.0f64; 3];
        for (step, a) in actions.chunks(3).enumerate() {
            let b = env.step(a).expect("step").infos[0];
            let trades = env.take_trades(0);
            // Forced orders come first in their bar, before any of the agent's.
            let n_forced = trades.iter().take_while(|t| t.forced.is_some()).count();
            prop_assert!(trades[n_forced..].iter().all(|t| t.forced.is_none()));
            for (i, t) in trades.iter().enumerate() {
                // A fee is never a credit, even on a sale waived down to a cash in debit.
                prop_assert!(t.fees >= 0.0, "bar {}: fees {} on {:?}", t.bar, t.fees, t);
                let k = t.ticker as usize;
                shares[k] += if t.side == Side::Buy { t.shares } else { -t.shares };
                if i + 1 == n_forced {
                    let refs = &opens[t.bar as usize];
                    let net = t.cash_after + shares.iter().zip(refs).map(|(q, r)| q * r).sum::<f64>();
                    let gross: f64 = shares.iter().zip(refs).map(|(q, r)| q.abs() * r).sum();
                    prop_assert!(net >= maintenance * gross - 1e-9 * gross || gross == 0.0,
                        "bar {}: equity {net} under {maintenance} × {gross} after the buy-in", t.bar);
                }
            }
            let bar = step + 1;
            let marked = b.cash + shares.iter().zip(&closes[bar]).map(|(q, c)| q * c).sum::<f64>();
            prop_assert!((marked - b.equity).abs() <= 1e-9 * b.equity.abs().max(1.0),
                "bar {bar}: cash + positions {marked} vs equity {}", b.equity);
        }
    }
}
