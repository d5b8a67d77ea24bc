//! Accounting invariants over random configs and action sequences: equity is cash plus
//! positions at the current close, cash and shares never go negative, every cost is
//! non-negative, and the costs of the trade log exactly explain the gap between the final
//! cash and a frictionless accounting of the same trades.

mod property_tests {
    use ploutos::config::{EnvironmentConfig, FillTiming, TafModel};
    use ploutos::env::{EpisodeBounds, MarketData, Side, TradeRecord};
    use ploutos::{EnvOptions, TradingEnv};
    use proptest::prelude::*;

    const N_ENVS: usize = 2;
    const N_TICKERS: usize = 3;

    fn config() -> impl Strategy<Value = EnvironmentConfig> {
        (
            (1_000.0..60_000.0f64, 0.05..1.0f64, 0.1..1.0f64, any::<bool>(), any::<bool>()),
            (0.0..30.0f64, 0.0..1.0f64, 0.0..3.0f64, any::<bool>(), 0.0..1.0f64),
            (proptest::option::of(1u32..8), 0u32..4, any::<bool>()),
        )
            .prop_map(
                |(
                    (cash, buy_pct, cap, fractional, close),
                    (spread, slip, impact, per_share, commission),
                    (per_day, hold, pdt),
                )| {
                    let mut cfg = EnvironmentConfig {
                        initial_cash: cash,
                        buy_pct,
                        max_position_pct: cap,
                        fractional_shares: fractional,
                        fill_timing: if close { FillTiming::Close } else { FillTiming::NextOpen },
                        spread_bps: spread,
                        slippage_atr_mult: slip,
                        impact_coef: impact,
                        max_trades_per_day: per_day,
                        min_holding_bars: hold,
                        // One episode per case: equity is checked against the live state.
                        bankruptcy_pct: 0.0,
                        episode_length: 1_000_000,
                        ..EnvironmentConfig::default()
                    };
                    cfg.fees.taf_model = if per_share { TafModel::PerShare } else { TafModel::Notional };
                    cfg.fees.commission_per_order = commission;
                    cfg.pdt.enabled = pdt;
                    cfg
                },
            )
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn accounting_is_conserved(
            cfg in config(),
            seed in 0u64..1_000,
            actions in proptest::collection::vec(proptest::collection::vec(0u8..3, N_ENVS * N_TICKERS), 150),
        ) {
            cfg.validate().expect("strategy makes valid configs");
            let market = MarketData::random_walk(200, N_TICKERS, 1, seed);
            let bounds = EpisodeBounds { first: 25, last: 199, random_start: true };
            let opts = EnvOptions { n_envs: N_ENVS, threads: 0, min_shard_envs: 1, bounds, trade_log: true, auto_reset: true, action_masks: false };
            let mut env = TradingEnv::new(&cfg, market.clone(), opts).expect("env");
            let start = env.reset(seed).clone();
            // A reset reports the starting account: nothing executed yet.
            for i in 0..N_ENVS {
                let (info, clock) = (start.infos[i], env.env_state(i).expect("env").2);
                prop_assert_eq!((info.equity, info.cash), (cfg.initial_cash, cfg.initial_cash));
                prop_assert_eq!((info.bar, info.episode_steps, info.executed), (clock.bar, 0, 0));
            }
            let mut log: Vec<Vec<TradeRecord>> = vec![vec![]; N_ENVS];
            let mut steps = 0;
            for a in &actions {
                // Stop before the data runs out: one episode per case.
                let bar = env.env_state(0).expect("env").2.bar.max(env.env_state(1).expect("env").2.bar);
                if bar + 1 >= bounds.last {
                    break;
                }
                let b = env.step(a).expect("step").clone();
                steps += 1;
                for (i, env_log) in log.iter_mut().enumerate() {
                    prop_assert!(!b.terminated[i] && !b.truncated[i]);
                    let (p, pos, clock) = env.env_state(i).expect("env");
                    let closes = market.close_row(clock.bar as usize);
                    let marked = p.cash + pos.iter().zip(closes).map(|(q, c)| q.shares * c).sum::<f64>();
                    prop_assert!(rel(p.equity, marked) < 1e-12, "equity {} vs {}", p.equity, marked);
                    prop_assert!(rel(b.infos[i].equity, marked) < 1e-12);
                    prop_assert!(p.cash >= 0.0, "cash {}", p.cash);
                    prop_assert!(pos.iter().all(|q| q.shares >= 0.0));
                    let trades = env.take_trades(i);
                    prop_assert_eq!(trades.len() as u32, b.infos[i].executed);
                    env_log.extend(trades);
                }
            }
            prop_assert!(steps > 50);

            let mut all = ploutos::env::CostTotals::default();
            for (i, trades) in log.iter().enumerate() {
                let (p, pos, _) = env.env_state(i).expect("env");
                let mut frictionless = cfg.initial_cash;
                let mut costs = 0.0;
                let mut cash = cfg.initial_cash;
                let mut held = vec![0.0; N_TICKERS];
                for t in trades {
                    prop_assert!(t.spread >= 0.0 && t.slippage >= 0.0 && t.impact >= 0.0 && t.fees >= 0.0, "{t:?}");
                    prop_assert!(t.shares > 0.0);
                    let friction = t.spread + t.slippage + t.impact;
                    // Costs explain the gap between the fill and a frictionless fill.
                    let gap = (t.fill_price - t.reference_price).abs() * t.shares;
                    prop_assert!((gap - friction).abs() <= 1e-9 * (t.shares * t.reference_price).max(1.0), "{t:?}");
                    let k = usize::from(t.ticker);
                    match t.side {
                        Side::Buy => {
                            frictionless -= t.shares * t.reference_price;
                            cash -= t.shares * t.fill_price + t.fees;
                            held[k] += t.shares;
                        }
                        Side::Sell => {
                            frictionless += t.shares * t.reference_price;
                            cash += t.shares * t.fill_price - t.fees;
                            prop_assert!(rel(t.shares, held[k]) < 1e-12, "a sell closes the position");
                            held[k] = 0.0;
                        }
                        Side::Hold => prop_assert!(false, "a hold is never a trade"),
                    }
                    costs += friction + t.fees;
                    prop_assert!(rel(t.cash_after, cash) < 1e-9, "cash after {} vs {}", t.cash_after, cash);
                    all.spread += t.spread;
                    all.slippage += t.slippage;
                    all.impact += t.impact;
                    all.fees += t.fees;
                }
                prop_assert!(rel(p.cash, frictionless - costs) < 1e-6, "cash {} vs frictionless {} − costs {}", p.cash, frictionless, costs);
                for (q, h) in pos.iter().zip(&held) {
                    prop_assert!(rel(q.shares, *h) < 1e-9);
                }
            }
            let totals = env.totals();
            prop_assert!(rel(totals.costs.spread, all.spread) < 1e-9);
            prop_assert!(rel(totals.costs.slippage, all.slippage) < 1e-9);
            prop_assert!(rel(totals.costs.impact, all.impact) < 1e-9);
            prop_assert!(rel(totals.costs.fees, all.fees) < 1e-9);
            prop_assert_eq!(totals.buys + totals.sells, log.iter().map(|l| l.len() as u64).sum::<u64>());
        }
    }
}
