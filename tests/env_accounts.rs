//! Account types and the PDT rule's equity. `environment.account: cash`: sell proceeds
//! settle on the next trading day (T+1), a buy that would spend them before is refused as a
//! good-faith violation, and no PDT rule. `pdt.equity: previous_close`: FINRA's equity, at
//! the close before the fill's trading day.

use ploutos::TradingEnv;
use ploutos::config::{Account, EnvironmentConfig, PdtEquity};
use ploutos::env::{MarketData, Refusal, Side};
use proptest::prelude::*;

mod hand;

/// One ticker at a constant $100, two bars a day (days 0, 0, 1, 1, …), no costs, buys of
/// 60% of cash.
fn config(account: Account) -> EnvironmentConfig {
    hand::cost_free(|c| {
        c.account = account;
        c.buy_pct = 0.6;
    })
}

fn env(cfg: &EnvironmentConfig, n_bars: usize) -> TradingEnv {
    hand::replay(cfg, hand::one_ticker(vec![100.0; n_bars], (0..n_bars as u32).map(|t| t / 2).collect()))
}

/// bar 0: buy 6,000 (fills bar 1, day 0), cash 4,000; bar 1: sell 60 shares (fills bar 2,
/// day 1), cash 10,000 of which 6,000 unsettled until day 2; bar 2: a buy of 6,000 (fills
/// bar 3, day 1) would spend 2,000 of the unsettled 6,000: refused in a cash account,
/// filled in a margin account; bar 3: the same buy fills on day 2 in a cash account.
#[test]
fn proceeds_settle_the_next_trading_day() {
    let mut cash = env(&config(Account::Cash), 6);
    let mut margin = env(&config(Account::Margin), 6);
    for e in [&mut cash, &mut margin] {
        e.step(&[1]).expect("step");
        e.step(&[2]).expect("step");
        assert_eq!(e.buffers().infos[0].cash, 10_000.0);
    }
    let b = cash.step(&[1]).expect("step");
    assert_eq!((b.infos[0].refused, b.infos[0].cash), (1, 10_000.0));
    assert_eq!(cash.totals().refused.0[Refusal::GOOD_FAITH.0 as usize], 1);
    let b = margin.step(&[1]).expect("step");
    assert_eq!((b.infos[0].refused, b.infos[0].cash), (0, 4_000.0));
    let b = cash.step(&[1]).expect("step");
    assert_eq!((b.infos[0].refused, b.infos[0].cash), (0, 4_000.0));
    let t = cash.take_trades(0);
    assert_eq!((t.last().unwrap().bar, t.last().unwrap().side), (4, Side::Buy), "filled on day 2");
}

/// Five day trades on five days under $25,000: the margin account's PDT rule refuses the
/// fourth; a cash account has no PDT rule.
#[test]
fn a_cash_account_has_no_pdt_rule() {
    let refused = |account| {
        let mut e = env(&config(account), 12);
        e.step(&[0]).expect("step");
        for _ in 0..5 {
            e.step(&[1]).expect("step"); // buy decided at the day's last bar, fills at the next day's first
            e.step(&[2]).expect("step"); // sell fills at that day's second bar: a day trade
        }
        e.totals().refused.0
    };
    assert!(refused(Account::Margin)[Refusal::PDT.0 as usize] >= 1);
    assert_eq!(refused(Account::Cash).iter().sum::<u32>(), 0);
}

/// $24,000 all in at $100 on day 1's open; day 1's first close is $110, equity $26,400. A day
/// trade decided there (filling on day 1) with no day trade allowed under $25,000: the
/// decision bar's equity lets it through; FINRA's, the close before day 1 ($24,000), refuses it.
#[test]
fn pdt_equity_at_the_previous_close() {
    let sell_refused = |equity: PdtEquity| {
        let market = hand::one_ticker_open_close(
            vec![100.0, 100.0, 100.0, 110.0, 110.0, 110.0],
            vec![100.0, 100.0, 110.0, 110.0, 110.0, 110.0],
            vec![0, 0, 1, 1, 2, 2],
        );
        let mut cfg = config(Account::Margin);
        cfg.initial_cash = 24_000.0;
        cfg.buy_pct = 1.0;
        cfg.pdt.max_day_trades = 0;
        cfg.pdt.equity = equity;
        let mut env = hand::replay(&cfg, market);
        env.step(&[0]).expect("step");
        env.step(&[1]).expect("step"); // buy at bar 2's open (day 1)
        assert_eq!(env.buffers().infos[0].equity, 26_400.0);
        env.step(&[2]).expect("step"); // sell at bar 3's open (day 1): a day trade
        env.totals().refused.0[Refusal::PDT.0 as usize]
    };
    assert_eq!(sell_refused(PdtEquity::DecisionBar), 0);
    assert_eq!(sell_refused(PdtEquity::PreviousClose), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random walks and random actions in a cash account: every buy leaves at least the day's
    /// unsettled sell proceeds in cash (it never spends them).
    #[test]
    fn a_buy_never_spends_unsettled_proceeds(
        seed in 0u64..1_000,
        actions in proptest::collection::vec(0u8..3, 3 * 200),
    ) {
        let market = MarketData::random_walk(201, 3, 2, seed);
        let days: Vec<u32> = (0..201).map(|t| t / 7).collect();
        let mut cfg = EnvironmentConfig { account: Account::Cash, buy_pct: 0.5, ..EnvironmentConfig::default() };
        cfg.max_trades_per_day = None;
        cfg.validate().expect("valid");
        let mut env = hand::replay(&cfg, market);
        let (mut day, mut unsettled) = (u32::MAX, 0.0);
        for step in actions.chunks(3) {
            env.step(step).expect("step");
            for t in env.take_trades(0) {
                if days[t.bar as usize] != day {
                    (day, unsettled) = (days[t.bar as usize], 0.0);
                }
                match t.side {
                    Side::Sell => unsettled += t.shares * t.fill_price - t.fees,
                    _ => prop_assert!(t.cash_after >= unsettled - 1e-9 * unsettled.max(1.0),
                        "bar {}: cash after the buy {} < unsettled {unsettled}", t.bar, t.cash_after),
                }
            }
        }
    }
}
