//! Train/serve parity: `trade` over the replay broker sends exactly the orders a backtest
//! of the same agent produces over the same bars — same bars, tickers, sides and shares, in
//! the same order — and the broker's account ends where the backtest's does. The trader
//! gets the bars one at a time and computes the features incrementally; the backtest
//! computes them over the whole file. Also: a restart in the middle of the period sends
//! nothing twice, `--dry-run` sends nothing, the kill switch stops before deciding, a
//! maximum notional withholds and stops, and an account that does not match is refused.
//! The session decides on the broker's account: cash paid in outside the run sizes the
//! buys, and the broker's day-trade count agrees with the env's where the PDT rule binds.

use ploutos::backtest::{Agent, replay_agent};
use ploutos::config::{DataConfig, EnvironmentConfig, Interval, SyntheticConfig};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::env::Refusal;
use ploutos::env::Side;
use ploutos::features::N_FEATURES;
use ploutos::observation::state_dim;
use ploutos::trade::{
    AccountSnapshot, Broker, Journal, Limits, LiveMarket, OrderRequest, OrderSide, Quantity, ReplayBroker, Replayed,
    SentOrder, Session, TradeError, TradeOptions, trade,
};

/// Buys a ticker whose first feature (sma_10's distance from the close) is below −0.3
/// standard deviations, sells above +0.3, holds otherwise: a deterministic function of
/// the observation's market part, so that any difference in features shows as orders.
struct Threshold {
    n_tickers: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Agent for Threshold {
    type Error = Never;
    fn try_act(&self, obs: &[f32], n_envs: usize, _deterministic: bool) -> Result<Vec<u8>, Never> {
        let d = self.n_tickers;
        let width = obs.len() / n_envs;
        let mut out = Vec::with_capacity(n_envs * d);
        for row in obs.chunks(width) {
            let market = &row[state_dim(d)..];
            for k in 0..d {
                let x = market[k * N_FEATURES];
                out.push(if x < -0.3 {
                    1
                } else if x > 0.3 {
                    2
                } else {
                    0
                });
            }
        }
        Ok(out)
    }
}

fn dataset() -> Dataset {
    let data = DataConfig {
        tickers: vec!["AAA".into(), "BBB".into(), "CCC".into()],
        interval: Interval::Day,
        synthetic: SyntheticConfig { years: 3.0, ..SyntheticConfig::default() },
        ..DataConfig::default()
    };
    Dataset::load(&data).expect("synthetic data")
}

fn env_config() -> EnvironmentConfig {
    EnvironmentConfig { max_trades_per_day: Some(4), ..EnvironmentConfig::default() }
}

/// The dataset, the env config, the test period and the [`Threshold`] agent's backtest
/// over it.
fn threshold_backtest() -> (Dataset, EnvironmentConfig, std::ops::Range<usize>, ploutos::backtest::ReplayResult) {
    let (ds, cfg) = (dataset(), env_config());
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
    (ds, cfg, range, backtest)
}

/// A replay broker over the dataset, standing at bar `start`'s close.
fn replay_broker(ds: &Dataset, cfg: &EnvironmentConfig, start: usize) -> ReplayBroker {
    ReplayBroker::new(cfg, ds.market.clone(), ds.panel.timestamps().to_vec(), start)
        .and_then(|b| b.with_high_low(&ds.panel))
        .expect("broker")
}

fn live_market(ds: &Dataset) -> LiveMarket {
    LiveMarket::new(ds.panel.tickers().to_vec(), Interval::Day, ds.scaler.clone())
}

fn as_orders(trades: &[ploutos::env::TradeRecord], tickers: &[String]) -> Vec<(String, OrderSide, f64)> {
    trades
        .iter()
        .map(|t| {
            let side = if t.side == Side::Buy { OrderSide::Buy } else { OrderSide::Sell };
            (tickers[usize::from(t.ticker)].clone(), side, t.shares)
        })
        .collect()
}

fn sent(orders: &[SentOrder]) -> Vec<(String, OrderSide, f64)> {
    requests(&orders.iter().map(|o| o.request.clone()).collect::<Vec<_>>())
}

fn requests(orders: &[OrderRequest]) -> Vec<(String, OrderSide, f64)> {
    orders
        .iter()
        .map(|o| {
            let Quantity::Shares(s) = o.quantity else { panic!("orders are sent in shares") };
            (o.ticker.clone(), o.side, s)
        })
        .collect()
}

fn options(run: &str) -> TradeOptions {
    TradeOptions { run: run.into(), ..TradeOptions::default() }
}

#[test]
fn trade_over_the_replay_broker_sends_the_backtests_orders() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    assert!(backtest.trades.len() >= 20, "the agent trades: {} trades", backtest.trades.len());

    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut live = live_market(&ds);
    let mut session = Session::new(&cfg, &agent, range.start);
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &options("parity")).expect("trade");

    assert_eq!(summary.decisions, range.len(), "one decision per bar (the last one's has no next bar to fill in)");
    assert_eq!(sent(&summary.sent), as_orders(&backtest.trades, ds.panel.tickers()));
    assert!(summary.withheld.is_empty() && summary.stopped.is_none());
    // The env prices a buy from its cash budget, the broker the shares that budget bought:
    // the same fill up to rounding (a cent is 1e-6 of this account).
    let account = broker.account().unwrap();
    let last = backtest.equity.last().unwrap();
    assert!((account.equity - last.equity).abs() <= 1e-8 * last.equity, "{} vs {}", account.equity, last.equity);
    // Every order went to the journal before the broker, with its answer after.
    let replayed = Replayed::read(journal.path()).unwrap();
    assert_eq!(replayed.sent_ids().len(), summary.sent.len());
    assert!(replayed.unanswered_ids().is_empty());
}

/// Parity over a long session (all three years, hundreds of buys): the replay broker prices
/// a buy of the shares the env's budget bought at the env's own quote, so that with
/// fractional shares the cash it reports never drifts from the env's by the half cent that
/// would make the session take it (and size later buys from it); every order is the
/// backtest's to the last bit, with whole shares too.
#[rstest::rstest]
fn parity_holds_over_a_long_session(#[values(true, false)] fractional: bool) {
    let ds = dataset();
    let cfg = EnvironmentConfig { fractional_shares: fractional, ..env_config() };
    let range = ds.range(SplitPart::All);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
    let buys = backtest.trades.iter().filter(|t| t.side == Side::Buy).count();
    assert!(buys >= 150, "{buys} buys");
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("long.jsonl")).unwrap();
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &options("long")).unwrap();
    assert!(summary.stopped.is_none(), "{:?}", summary.stopped);
    assert_eq!(sent(&summary.sent), as_orders(&backtest.trades, ds.panel.tickers()));
    let cash: Vec<f64> = Replayed::read(journal.path()).unwrap().accounts().map(|(_, a, _)| a.cash).collect();
    let env_cash: Vec<f64> = backtest.equity.iter().map(|r| r.cash).collect();
    let drift = cash.iter().zip(&env_cash).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    // Whole shares: the env's budget is a little more than the shares cost, and its impact is
    // that budget's, which the shares alone do not tell the broker: cents apart over the
    // session, the orders the same.
    let bound = if fractional { 1e-6 } else { 0.25 };
    assert!(drift < bound, "the broker's cash drifted {drift} from the env's");
}

#[test]
fn a_restart_in_the_middle_re_derives_the_decisions_and_sends_nothing_twice() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };

    // The first run dies at bar `cut`, after sending that bar's orders: a decision bar with
    // orders, a third into the period.
    let fill = backtest.trades.iter().map(|t| t.bar as usize).find(|&b| b > range.start + range.len() / 3).unwrap();
    let cut = fill - 1;
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut first_sent = Vec::new();
    {
        let mut live = live_market(&ds);
        let mut session = Session::new(&cfg, &agent, range.start);
        let mut journal = Journal::open(&path).unwrap();
        let mut limited = Limited { inner: &mut broker, last: cut, touch_at_open: None, reject: false, deposit: None };
        let summary = trade(&mut limited, &mut live, &mut session, &mut journal, &options("restart")).unwrap();
        first_sent.extend(summary.sent);
    }
    // The restart: a fresh session from the same first bar re-derives the decisions from
    // the bars; the orders of the bar in progress at the cut (sent already) are found at the
    // broker, not sent again.
    let mut live = live_market(&ds);
    let mut session = Session::new(&cfg, &agent, range.start);
    // As `ploutos trade` resumes: the earlier bars on the accounts they were decided on.
    let journaled = Replayed::read(&path).unwrap();
    assert_eq!(journaled.accounts().count(), cut + 1 - range.start, "one account per bar decided before the crash");
    session.restore(&journaled);
    let mut journal = Journal::open(&path).unwrap();
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &options("restart")).unwrap();
    let at_cut = first_sent.iter().filter(|o| summary.sent.contains(o)).count();
    assert!(at_cut > 0, "orders of the cut bar were sent before the crash");
    assert_eq!(summary.sent[..at_cut], first_sent[first_sent.len() - at_cut..], "found at the broker, in order");
    let mut all = first_sent.clone();
    all.extend_from_slice(&summary.sent[at_cut..]);
    assert_eq!(sent(&all), as_orders(&backtest.trades, ds.panel.tickers()));
    // Nothing doubled: the account ends where the backtest's does.
    let equity = broker.account().unwrap().equity;
    let want = backtest.equity.last().unwrap().equity;
    assert!((equity - want).abs() <= 1e-8 * want, "{equity} vs {want}");
}

/// The [`Broker`] reads (account, positions, bars, clock, opening prices) of a test broker
/// wrapping a [`ReplayBroker`] as `inner`, passed through.
macro_rules! replay_reads {
    () => {
        fn account(&mut self) -> Result<ploutos::trade::Account, ploutos::trade::BrokerError> {
            self.inner.account()
        }
        fn positions(&mut self) -> Result<Vec<ploutos::trade::BrokerPosition>, ploutos::trade::BrokerError> {
            self.inner.positions()
        }
        fn bars_since(
            &mut self,
            tickers: &[String],
            since: i64,
        ) -> Result<Vec<ploutos::trade::BrokerBar>, ploutos::trade::BrokerError> {
            self.inner.bars_since(tickers, since)
        }
        fn clock(&mut self) -> Result<ploutos::trade::MarketClock, ploutos::trade::BrokerError> {
            self.inner.clock()
        }
        fn opening_prices(
            &mut self,
            tickers: &[String],
            bar_open: i64,
        ) -> Result<Option<Vec<f64>>, ploutos::trade::BrokerError> {
            self.inner.opening_prices(tickers, bar_open)
        }
    };
}

/// The [`Broker`] cancels and order lookups of such a wrapper, passed through.
macro_rules! replay_orders {
    () => {
        fn cancel(&mut self, id: &str) -> Result<(), ploutos::trade::BrokerError> {
            self.inner.cancel(id)
        }
        fn order(&mut self, id: &str) -> Result<Option<ploutos::trade::OrderState>, ploutos::trade::BrokerError> {
            self.inner.order(id)
        }
    };
}

/// The [`ploutos::trade::Paced`] calendar and short waits of such a wrapper, passed through.
macro_rules! replay_pacing {
    () => {
        fn next_bar_open(&mut self, bar_time: i64) -> Result<i64, ploutos::trade::BrokerError> {
            self.inner.next_bar_open(bar_time)
        }
        fn wait_briefly(&mut self) -> Result<(), ploutos::trade::BrokerError> {
            self.inner.wait_briefly()
        }
    };
}

/// A replay broker that pretends the feed ends after bar `last` (a crash of the trader),
/// and can create a file when a bar opens and reject the orders of one bar.
struct Limited<'a> {
    inner: &'a mut ReplayBroker,
    last: usize,
    /// Created at the first open.
    touch_at_open: Option<std::path::PathBuf>,
    /// Orders are rejected while this is true (set by the first submission).
    reject: bool,
    /// Cash paid into the account at the close of this bar.
    deposit: Option<(usize, f64)>,
}

impl Broker for Limited<'_> {
    replay_reads!();
    fn submit(&mut self, order: &OrderRequest) -> Result<ploutos::trade::OrderState, ploutos::trade::BrokerError> {
        if self.reject {
            return Err(ploutos::trade::BrokerError::Rejected {
                client_order_id: order.client_order_id.clone(),
                reason: "insufficient buying power".into(),
            });
        }
        self.inner.submit(order)
    }
    replay_orders!();
}

impl ploutos::trade::Paced for Limited<'_> {
    replay_pacing!();
    fn wait_for_open(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        if let Some(path) = self.touch_at_open.take() {
            std::fs::write(path, "").unwrap();
        }
        self.inner.wait_for_open()
    }
    fn wait_for_close(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        // The crash: the orders of bar `last` are sent, the trader dies before its close.
        if self.inner.now() >= self.last {
            return Ok(false);
        }
        let more = self.inner.wait_for_close()?;
        if let Some((bar, amount)) = self.deposit.filter(|&(bar, _)| bar == self.inner.now()) {
            self.inner.transfer(amount);
            self.deposit = Some((bar, 0.0));
        }
        Ok(more)
    }
}

#[test]
fn dry_run_sends_nothing_and_journals_every_order_as_withheld() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
    let opts = TradeOptions { dry_run: true, ..options("dry") };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert!(summary.sent.is_empty());
    let withheld: Vec<OrderRequest> = summary.withheld.iter().map(|(o, ..)| o.clone()).collect();
    assert_eq!(requests(&withheld), as_orders(&backtest.trades, ds.panel.tickers()));
    assert!(summary.withheld.iter().all(|(_, why, _)| why == "dry run"));
    // Each at the open it was for (orders.csv's time).
    let opens: Vec<i64> = backtest.trades.iter().map(|t| ds.panel.timestamps()[t.bar as usize]).collect();
    assert_eq!(summary.withheld.iter().map(|(.., time)| *time).collect::<Vec<_>>(), opens);
    assert!(broker.positions().unwrap().is_empty());
    assert!(Replayed::read(journal.path()).unwrap().sent_ids().is_empty());
}

#[test]
fn limits_stop_the_loop() {
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let dir = tempfile::tempdir().unwrap();

    // Kill switch present from the start: nothing is decided, nothing sent.
    let kill = dir.path().join("STOP");
    std::fs::write(&kill, "").unwrap();
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let mut journal = Journal::open(&dir.path().join("k.jsonl")).unwrap();
    let opts = TradeOptions { limits: Limits { kill_switch: Some(kill), ..Limits::default() }, ..options("kill") };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert_eq!((summary.decisions, summary.sent.len()), (0, 0));
    assert!(summary.stopped.unwrap().contains("kill switch"));

    // A maximum notional under the first order's: withheld, and the loop stops after it.
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let mut journal = Journal::open(&dir.path().join("n.jsonl")).unwrap();
    let opts =
        TradeOptions { limits: Limits { max_order_notional: Some(100.0), ..Limits::default() }, ..options("cap") };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert!(summary.sent.is_empty());
    assert!(!summary.withheld.is_empty());
    assert!(summary.stopped.unwrap().contains("maximum order notional"));

    // A daily loss of 0.1%: at the first close where equity is that far under the previous
    // close, every position is closed and the loop stops.
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let mut journal = Journal::open(&dir.path().join("l.jsonl")).unwrap();
    let opts = TradeOptions { limits: Limits { max_daily_loss: Some(0.001), ..Limits::default() }, ..options("loss") };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert!(summary.stopped.unwrap().contains("daily loss"));
    let flatten: Vec<&SentOrder> =
        summary.sent.iter().filter(|o| o.request.client_order_id.contains("loss-flatten")).collect();
    assert!(!flatten.is_empty(), "it held positions when it stopped");
    assert!(broker.advance());
    assert!(broker.positions().unwrap().is_empty(), "flat after the flattening orders filled");
}

#[test]
fn an_account_that_is_not_the_sessions_is_refused_before_any_order() {
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let mut broker = replay_broker(&ds, &cfg, range.start - 1);
    // Someone bought BBB by hand the bar before the session starts.
    let manual = OrderRequest {
        client_order_id: "manual".into(),
        ticker: "BBB".into(),
        side: OrderSide::Buy,
        quantity: Quantity::Shares(3.0),
    };
    broker.submit(&manual).unwrap();
    broker.advance();
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("m.jsonl")).unwrap();
    let err = trade(&mut broker, &mut live, &mut session, &mut journal, &options("m")).unwrap_err();
    assert!(
        matches!(&err, TradeError::Mismatch { ticker, broker, expected } if ticker == "BBB" && *broker == 3.0 && *expected == 0.0),
        "{err}"
    );
    assert_eq!(broker.positions().unwrap().len(), 1, "nothing was sent");
}

/// The kill switch appears between a close and the next open (overnight): the decision was
/// taken, its orders are not sent.
#[test]
fn a_kill_switch_between_the_decision_and_the_open_stops_before_any_order() {
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut limited = Limited {
        inner: &mut broker,
        last: usize::MAX,
        touch_at_open: Some(kill.clone()),
        reject: false,
        deposit: None,
    };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
    let opts = TradeOptions { limits: Limits { kill_switch: Some(kill), ..Limits::default() }, ..options("night") };
    let summary = trade(&mut limited, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert_eq!((summary.decisions, summary.sent.len(), summary.withheld.len()), (1, 0, 0));
    assert!(summary.stopped.unwrap().contains("kill switch"));
}

/// A rejected order withholds the bar's later orders (the buys count on the cash of the
/// sells) and stops the loop after the bar.
#[test]
fn a_rejection_withholds_the_rest_of_the_bar_and_stops() {
    let (ds, cfg, _, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    // The first bar whose decision makes two orders or more.
    let fills: Vec<u32> = backtest.trades.iter().map(|t| t.bar).collect();
    let bar = fills.windows(2).find(|w| w[0] == w[1]).map(|w| w[0] as usize).expect("a bar with two orders");
    // A session whose first decision is that bar's, every order rejected.
    let mut broker = replay_broker(&ds, &cfg, bar - 1);
    let mut limited =
        Limited { inner: &mut broker, last: usize::MAX, touch_at_open: None, reject: true, deposit: None };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, bar - 1));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("r.jsonl")).unwrap();
    let summary = trade(&mut limited, &mut live, &mut session, &mut journal, &options("reject")).unwrap();
    assert!(summary.sent.is_empty());
    let stopped = summary.stopped.unwrap();
    assert!(stopped.contains("was rejected") && stopped.contains("stopped after this bar"), "{stopped}");
    assert!(!summary.withheld.is_empty(), "the bar's other orders are withheld");
    assert!(summary.withheld.iter().all(|(_, why, _)| why.starts_with("not sent: order ")), "{:?}", summary.withheld);
    assert_eq!(summary.decisions, 1);
}

/// The broker's account holds more than the config's initial cash (a new session on a
/// funded account): the session trades the broker's cash from the first bar, as a backtest
/// with that much cash does.
#[test]
fn the_session_trades_the_brokers_cash_not_the_configs() {
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let funded = EnvironmentConfig { initial_cash: cfg.initial_cash * 1.5, ..cfg.clone() };
    let backtest = replay_agent(&funded, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
    let mut broker = replay_broker(&ds, &cfg, range.start);
    broker.transfer(cfg.initial_cash * 0.5);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("f.jsonl")).unwrap();
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &options("funded")).unwrap();
    assert!(summary.stopped.is_none());
    assert_eq!(sent(&summary.sent), as_orders(&backtest.trades, ds.panel.tickers()));
    // One account per decision in the journal, the broker's.
    let replayed = Replayed::read(journal.path()).unwrap();
    let accounts: Vec<AccountSnapshot> = replayed.accounts().map(|(_, a, _)| a).collect();
    assert_eq!(accounts.len(), summary.decisions);
    assert_eq!(accounts[0].cash, cfg.initial_cash * 1.5);
}

/// Cash paid in during the session: the orders before it are the backtest's, the buys after
/// it are sized from the larger cash, and the positions still reconcile at every bar.
#[test]
fn a_deposit_during_the_session_sizes_the_later_buys_from_the_brokers_cash() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    let tickers = ds.panel.tickers();
    let deposit_bar = range.start + range.len() / 2;
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut limited = Limited {
        inner: &mut broker,
        last: usize::MAX,
        touch_at_open: None,
        reject: false,
        deposit: Some((deposit_bar, cfg.initial_cash)),
    };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("d.jsonl")).unwrap();
    let summary = trade(&mut limited, &mut live, &mut session, &mut journal, &options("deposit")).unwrap();
    assert!(summary.stopped.is_none(), "{:?}", summary.stopped);
    // Orders filling at or before the deposit bar were decided before it.
    let deposit_time = ds.panel.timestamps()[deposit_bar];
    let before = summary.sent.iter().filter(|o| o.fill_time <= deposit_time).count();
    let bt_before = backtest.trades.iter().filter(|t| t.bar as usize <= deposit_bar).count();
    assert_eq!(before, bt_before);
    assert_eq!(sent(&summary.sent[..before]), as_orders(&backtest.trades[..bt_before], tickers));
    // The first buy after it: the same ticker at the same bar as the backtest's, more shares.
    let ours = summary.sent[before..].iter().find(|o| o.request.side == OrderSide::Buy).expect("a later buy");
    let theirs = backtest.trades[bt_before..].iter().find(|t| t.side == Side::Buy).expect("a later buy");
    assert_eq!(ours.fill_time, ds.panel.timestamps()[theirs.bar as usize]);
    assert_eq!(ours.request.ticker, tickers[usize::from(theirs.ticker)]);
    let Quantity::Shares(shares) = ours.request.quantity else { panic!("shares") };
    assert!(shares > 1.5 * theirs.shares, "{shares} shares vs the backtest's {}", theirs.shares);
}

/// Hourly bars and an account under the PDT threshold: the env refuses day trades, and the
/// broker's day-trade count (which the session reads at each close) agrees with the env's,
/// so the trade sends the backtest's orders; with FINRA's rule (3 day trades in 5 days) and
/// a stricter one (1 in 3 days).
#[test]
fn parity_holds_where_the_pdt_rule_binds() {
    let data = DataConfig {
        tickers: vec!["AAA".into(), "BBB".into(), "CCC".into()],
        interval: Interval::Hour,
        synthetic: SyntheticConfig { years: 1.0, ..SyntheticConfig::default() },
        ..DataConfig::default()
    };
    let ds = Dataset::load(&data).unwrap();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    for (window_days, max_day_trades) in [(5, 3), (3, 1)] {
        let mut cfg = EnvironmentConfig { initial_cash: 20_000.0, ..EnvironmentConfig::default() };
        (cfg.pdt.window_days, cfg.pdt.max_day_trades) = (window_days, max_day_trades);
        let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
        let refused_pdt = backtest.totals.refused.0[usize::from(Refusal::PDT.0)];
        assert!(refused_pdt > 0, "the PDT rule binds");
        let mut broker = replay_broker(&ds, &cfg, range.start);
        let mut live = LiveMarket::new(ds.panel.tickers().to_vec(), Interval::Hour, ds.scaler.clone());
        let mut session = Session::new(&cfg, &agent, range.start);
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("p.jsonl")).unwrap();
        let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &options("pdt")).unwrap();
        assert!(summary.stopped.is_none(), "{:?}", summary.stopped);
        assert_eq!(sent(&summary.sent), as_orders(&backtest.trades, ds.panel.tickers()), "window {window_days}");
        let counts = Replayed::read(journal.path()).unwrap().accounts().map(|(_, a, _)| a.day_trade_count).max();
        assert!(counts.unwrap() >= max_day_trades, "the broker counted the day trades");
    }
}

/// Buys every ticker at every bar and keeps each observation it was given.
struct Recording {
    seen: std::sync::Mutex<Vec<Vec<f32>>>,
}

impl Agent for Recording {
    type Error = Never;
    fn try_act(&self, obs: &[f32], n_envs: usize, _deterministic: bool) -> Result<Vec<u8>, Never> {
        self.seen.lock().unwrap().push(obs.to_vec());
        Ok(vec![1; 3 * n_envs])
    }
}

/// The observation at a close reads the broker's day trades and cash, and the orders at the
/// next open are sized from the broker's cash.
#[test]
fn the_agent_observes_the_brokers_account() {
    let ds = dataset();
    let cfg = EnvironmentConfig { initial_cash: 20_000.0, ..EnvironmentConfig::default() };
    let start = ds.range(SplitPart::Test).start;
    let times = ds.panel.timestamps();
    let mut live = live_market(&ds);
    let bars = replay_broker(&ds, &cfg, start).bars_since(ds.panel.tickers(), i64::MIN).unwrap();
    live.extend(&bars).unwrap();
    let opens = ds.market.open_row(start + 1).to_vec();
    let pdt_column = state_dim(3) - 2;
    let decide = |account: Option<AccountSnapshot>| {
        let agent = Recording { seen: std::sync::Mutex::new(Vec::new()) };
        let mut session = Session::new(&cfg, &agent, start);
        if let Some(a) = account {
            session.set_account(times[start], a);
        }
        session.decide(&live, times[start + 1]).unwrap();
        let (orders, _) = session.orders(&live, times[start + 1], &opens).unwrap();
        let obs = agent.seen.lock().unwrap()[0].clone();
        let spent: f64 = orders.iter().map(|o| o.shares * o.price).sum();
        (obs, spent)
    };
    let (simulated, spent_simulated) = decide(None);
    let broker = AccountSnapshot { cash: 12_000.0, last_equity: 12_000.0, day_trade_count: 2 };
    let (real, spent_real) = decide(Some(broker));
    // Under $25,000, one day trade of three is left at the broker, all three in the env.
    assert_eq!((simulated[pdt_column], real[pdt_column]), (1.0, 1.0 / 3.0));
    // The buys spend shares of the broker's cash, not of the config's.
    let ratio = spent_real / spent_simulated;
    assert!((ratio - 0.6).abs() < 0.02, "{spent_real} vs {spent_simulated}");
}

/// Short selling: the replay broker charges the shorts' borrow fee as the env does, so the
/// broker's cash (which the session reads at every close) is the backtest's, and the trade
/// sends the backtest's orders, shorts and covers included.
#[test]
fn parity_holds_with_shorts_and_their_borrow_fees() {
    let ds = dataset();
    let mut cfg = env_config();
    cfg.short_selling.enabled = true;
    cfg.short_selling.borrow_rate = 0.5;
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
    assert!(backtest.totals.borrow_fees > 100.0, "shorts paid fees: {}", backtest.totals.borrow_fees);
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("s.jsonl")).unwrap();
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &options("shorts")).unwrap();
    assert!(summary.stopped.is_none(), "{:?}", summary.stopped);
    assert_eq!(sent(&summary.sent), as_orders(&backtest.trades, ds.panel.tickers()));
    let (equity, want) = (broker.account().unwrap().equity, backtest.equity.last().unwrap().equity);
    assert!((equity - want).abs() <= 1e-8 * want, "{equity} vs {want}");
}

/// A restart finds an order of the bar in progress canceled at the broker since (sent before
/// the crash, never filled): it is not counted as sent, the bar's later orders are withheld,
/// and the loop stops after the bar.
#[test]
fn a_restart_that_finds_an_order_canceled_stops_after_the_bar() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    let fill = backtest.trades.iter().map(|t| t.bar as usize).find(|&b| b > range.start + 10).unwrap();
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let first = {
        let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
        let mut limited =
            Limited { inner: &mut broker, last: fill - 1, touch_at_open: None, reject: false, deposit: None };
        trade(&mut limited, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &options("cancel")).unwrap()
    };
    let canceled = first.sent.last().unwrap().request.client_order_id.clone();
    broker.cancel(&canceled).unwrap();
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let again =
        trade(&mut broker, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &options("cancel")).unwrap();
    assert!(again.sent.iter().all(|o| o.request.client_order_id != canceled));
    assert!(again.withheld.iter().any(|(o, why, _)| o.client_order_id == canceled && why.contains("Canceled")));
    let stopped = again.stopped.unwrap();
    assert!(stopped.contains("did not fill") && stopped.contains("stopped after this bar"), "{stopped}");
    assert_eq!(again.decisions, 1);
}

/// A replay broker whose wait for the open of the bar after `at` is cut short by an
/// interrupt (Ctrl-C during the night, as the Alpaca broker's waits are): it raises the
/// flag and answers that the wait ended without the open.
struct Interrupting<'a> {
    inner: &'a mut ReplayBroker,
    at: usize,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Broker for Interrupting<'_> {
    replay_reads!();
    fn submit(&mut self, order: &OrderRequest) -> Result<ploutos::trade::OrderState, ploutos::trade::BrokerError> {
        self.inner.submit(order)
    }
    replay_orders!();
}

impl ploutos::trade::Paced for Interrupting<'_> {
    replay_pacing!();
    fn wait_for_open(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        if self.inner.now() >= self.at {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(false);
        }
        self.inner.wait_for_open()
    }
    fn wait_for_close(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        self.inner.wait_for_close()
    }
}

/// An interrupt that cuts the wait for an open short stops the session there: the stop is
/// journaled, the bar decided at that close is not journaled as done (its orders never left),
/// and the orders sent are the backtest's before it.
#[test]
fn an_interrupted_wait_for_the_open_stops_before_the_bars_orders() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    let at = range.start + 20;
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut interrupting = Interrupting { inner: &mut broker, at, flag: flag.clone() };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.jsonl");
    let limits = Limits { interrupt: Some(ploutos::trade::Interrupt(flag)), ..Limits::default() };
    let opts = TradeOptions { limits, ..options("int") };
    let summary = trade(&mut interrupting, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &opts).unwrap();
    assert_eq!(summary.stopped.as_deref(), Some("interrupted (Ctrl-C): stopping"));
    let bar_time = ds.panel.timestamps()[at];
    let replayed = Replayed::read(&path).unwrap();
    let last = replayed.entries.last().unwrap();
    assert!(matches!(last, ploutos::trade::Entry::Error { time, stopped: true, .. } if *time == bar_time), "{last:?}");
    assert_eq!(replayed.last_bar_done(), Some(ds.panel.timestamps()[at - 1]), "the interrupted bar is not done");
    let before: Vec<_> = backtest.trades.iter().filter(|t| (t.bar as usize) <= at).cloned().collect();
    assert_eq!(sent(&summary.sent), as_orders(&before, ds.panel.tickers()));
}

/// A replay broker that fills the session's first buy of two shares or more in part (half
/// its shares, rounded down) and leaves the rest working until it is cancelled, as a book
/// too thin for a market order does, or (`dead`) expires it unfilled; and optionally buys
/// shares of another ticker by hand at the same open, or pretends the feed ends after bar
/// `last` (a crash).
struct Partial<'a> {
    inner: &'a mut ReplayBroker,
    last: usize,
    /// The order filled in part, its shares asked and those filled.
    target: Option<(String, f64, f64)>,
    canceled: bool,
    /// The order expires with nothing filled, without a cancel.
    dead: Option<ploutos::trade::OrderState>,
    /// Cancels never take: the order stays partially filled.
    stuck: bool,
    /// A manual buy sent beside the partial order: (ticker, shares).
    manual: Option<(String, f64)>,
}

impl Partial<'_> {
    fn new(inner: &mut ReplayBroker) -> Partial<'_> {
        Partial { inner, last: usize::MAX, target: None, canceled: false, dead: None, stuck: false, manual: None }
    }
}

impl Broker for Partial<'_> {
    replay_reads!();
    fn submit(&mut self, order: &OrderRequest) -> Result<ploutos::trade::OrderState, ploutos::trade::BrokerError> {
        let Quantity::Shares(q) = order.quantity else { panic!("orders are sent in shares") };
        if self.target.is_none() && order.side == OrderSide::Buy && q >= 2.0 {
            let half = (q / 2.0).floor();
            self.target = Some((order.client_order_id.clone(), q, half));
            if let Some(dead) = &mut self.dead {
                *dead = ploutos::trade::OrderState {
                    client_order_id: order.client_order_id.clone(),
                    ticker: order.ticker.clone(),
                    side: order.side,
                    quantity: order.quantity,
                    status: ploutos::trade::OrderStatus::Expired,
                    filled_shares: 0.0,
                    fill_price: None,
                    reason: None,
                };
                return Ok(ploutos::trade::OrderState {
                    status: ploutos::trade::OrderStatus::Accepted,
                    ..dead.clone()
                });
            }
            if let Some((ticker, shares)) = self.manual.clone() {
                let manual = OrderRequest {
                    client_order_id: "by-hand".into(),
                    ticker,
                    side: OrderSide::Buy,
                    quantity: Quantity::Shares(shares),
                };
                self.inner.submit(&manual)?;
            }
            let mut state = self.inner.submit(&OrderRequest { quantity: Quantity::Shares(half), ..order.clone() })?;
            state.quantity = order.quantity;
            return Ok(state);
        }
        self.inner.submit(order)
    }
    fn cancel(&mut self, id: &str) -> Result<(), ploutos::trade::BrokerError> {
        if self.target.as_ref().is_some_and(|(t, _, _)| t == id) {
            self.canceled = !self.stuck;
        }
        self.inner.cancel(id)
    }
    fn order(&mut self, id: &str) -> Result<Option<ploutos::trade::OrderState>, ploutos::trade::BrokerError> {
        if let Some(dead) = self.dead.as_ref().filter(|d| d.client_order_id == id) {
            return Ok(Some(dead.clone()));
        }
        let state = self.inner.order(id)?;
        Ok(match (&self.target, state) {
            (Some((target, asked, _)), Some(mut state)) if target == id => {
                state.quantity = Quantity::Shares(*asked);
                if state.status == ploutos::trade::OrderStatus::Filled {
                    state.status = if self.canceled {
                        ploutos::trade::OrderStatus::Canceled
                    } else {
                        ploutos::trade::OrderStatus::PartiallyFilled
                    };
                }
                Some(state)
            }
            (_, state) => state,
        })
    }
}

impl ploutos::trade::Paced for Partial<'_> {
    replay_pacing!();
    fn wait_for_open(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        self.inner.wait_for_open()
    }
    fn wait_for_close(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        if self.inner.now() >= self.last {
            return Ok(false);
        }
        self.inner.wait_for_close()
    }
}

/// A buy filled in part at the broker: at the next close the rest is cancelled, the
/// broker's positions are checked against the env's less what went unfilled and taken from
/// then on (journaled), so the loop goes on where it used to stop on a position mismatch:
/// the agent's later sell of that ticker sells the shares the broker holds. A restart
/// after that bar decides the same way from the journal; a difference the partial fill
/// does not explain still stops the loop.
#[test]
fn a_partial_fill_is_taken_from_the_broker_and_the_session_goes_on() {
    let (ds, cfg, range, _) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    let tickers = ds.panel.tickers().to_vec();
    let dir = tempfile::tempdir().unwrap();

    let path = dir.path().join("p.jsonl");
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut partial = Partial::new(&mut broker);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let summary =
        trade(&mut partial, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &options("part")).unwrap();
    let (target, asked, half) = partial.target.clone().expect("a buy of two shares or more");
    assert!(partial.canceled, "the rest of the order was cancelled at the close");
    assert!(summary.stopped.is_none(), "{:?}", summary.stopped);
    assert_eq!(summary.decisions, range.len());

    // The close after the partial fill: the broker's positions, journaled.
    let replayed = Replayed::read(&path).unwrap();
    let held: Vec<_> = replayed.accounts().filter_map(|(t, _, h)| h.map(|h| (t, h.to_vec()))).collect();
    assert_eq!(held.len(), 1, "one close where the positions were the broker's: {held:?}");
    let i = summary.sent.iter().position(|o| o.request.client_order_id == target).unwrap();
    let ticker = summary.sent[i].request.ticker.clone();
    let k = tickers.iter().position(|t| *t == ticker).unwrap();
    assert_eq!(held[0].1[k].shares, half);
    assert!(replayed.entries.iter().any(|e| matches!(e,
        ploutos::trade::Entry::Error { message, stopped: false, .. }
            if message.contains(&target) && message.contains(&format!("filled {half} of {asked} shares")))));
    // The agent's next sell of that ticker sells the shares the broker holds: the half
    // filled, and the buys since.
    let later: Vec<_> = summary.sent[i + 1..].iter().filter(|o| o.request.ticker == ticker).collect();
    let j = later.iter().position(|o| o.request.side == OrderSide::Sell).expect("a later sell");
    let bought: f64 =
        requests(&later[..j].iter().map(|o| o.request.clone()).collect::<Vec<_>>()).iter().map(|o| o.2).sum();
    let Quantity::Shares(sold) = later[j].request.quantity else { unreachable!() };
    assert!((sold - (half + bought)).abs() < 1e-9, "sold {sold}, held {half} + {bought}");

    // The same run, crashed right after sending the order filled in part (the trader dies
    // before the bar's close), or two closes after that, and resumed: the same orders,
    // none twice.
    let fill_bar = ds.panel.timestamps().iter().position(|&t| t == summary.sent[i].fill_time).unwrap();
    for crash in [fill_bar - 1, fill_bar + 2] {
        let path = dir.path().join(format!("r{crash}.jsonl"));
        let mut broker = replay_broker(&ds, &cfg, range.start);
        let (first, target) = {
            let mut partial = Partial { last: crash, ..Partial::new(&mut broker) };
            let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
            let journal = &mut Journal::open(&path).unwrap();
            let first = trade(&mut partial, &mut live, &mut session, journal, &options("part")).unwrap();
            assert_eq!(partial.canceled, crash > fill_bar);
            (first, partial.target)
        };
        let mut partial = Partial { target, canceled: crash > fill_bar, ..Partial::new(&mut broker) };
        let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
        session.restore(&Replayed::read(&path).unwrap());
        let journal = &mut Journal::open(&path).unwrap();
        let again = trade(&mut partial, &mut live, &mut session, journal, &options("part")).unwrap();
        assert!(partial.canceled && again.stopped.is_none(), "{again:?}");
        let mut all = first.sent.clone();
        all.extend(again.sent.into_iter().filter(|o| !first.sent.contains(o)));
        assert_eq!(all, summary.sent, "the resumed session decides on the broker's positions (crash at {crash})");
    }

    // The rest of the order cannot be cancelled: the loop stops, naming it.
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut partial = Partial { stuck: true, ..Partial::new(&mut broker) };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let journal = &mut Journal::open(&dir.path().join("s.jsonl")).unwrap();
    let err = trade(&mut partial, &mut live, &mut session, journal, &options("part")).unwrap_err();
    assert!(matches!(&err, TradeError::StillOpen(ids) if *ids == [target.clone()]), "{err}");
    assert!(err.to_string().contains("still open"), "{err}");

    // The order expires with nothing filled, without the loop's cancel: not a partial
    // fill, the account no longer follows the agent.
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let mut partial = Partial { dead: Some(dead_state()), ..Partial::new(&mut broker) };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let journal = &mut Journal::open(&dir.path().join("d.jsonl")).unwrap();
    let err = trade(&mut partial, &mut live, &mut session, journal, &options("part")).unwrap_err();
    assert!(matches!(&err, TradeError::Mismatch { ticker: t, broker, .. } if *t == ticker && *broker == 0.0), "{err}");

    // Shares bought by hand at the same open: not what the partial fill explains.
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let other = tickers.iter().find(|t| **t != ticker).unwrap().clone();
    let mut partial = Partial { manual: Some((other.clone(), 3.0)), ..Partial::new(&mut broker) };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let journal = &mut Journal::open(&dir.path().join("m.jsonl")).unwrap();
    let err = trade(&mut partial, &mut live, &mut session, journal, &options("part")).unwrap_err();
    assert!(matches!(&err, TradeError::Mismatch { ticker, .. } if *ticker == other), "{err}");
}

/// A placeholder for [`Partial::dead`], filled in at the order's submission.
fn dead_state() -> ploutos::trade::OrderState {
    ploutos::trade::OrderState {
        client_order_id: String::new(),
        ticker: String::new(),
        side: OrderSide::Buy,
        quantity: Quantity::Shares(0.0),
        status: ploutos::trade::OrderStatus::Expired,
        filled_shares: 0.0,
        fill_price: None,
        reason: None,
    }
}

/// A broker at which `ticker` splits `ratio`-for-1 at the open of bar `ex_bar`: it serves the
/// prices that printed (from the ex-date on, the replay's ÷ `ratio`, volumes × `ratio`),
/// holds and trades the new shares from then on (`ratio` × the replay's), and lists the split
/// among its corporate actions. The replay broker inside trades the dataset's market, which
/// is this one adjusted for the split, in the old shares.
struct Splitting<'a> {
    inner: &'a mut ReplayBroker,
    ticker: String,
    ex_bar: usize,
    ex_time: i64,
    ratio: f64,
    /// The next bar has opened.
    opened: bool,
    /// Orders sent in the new shares.
    after: std::collections::BTreeSet<String>,
}

impl Splitting<'_> {
    fn split(&self) -> bool {
        self.inner.now() >= self.ex_bar || (self.opened && self.inner.now() + 1 >= self.ex_bar)
    }

    fn in_new_shares(&self, mut state: ploutos::trade::OrderState) -> ploutos::trade::OrderState {
        if self.after.contains(&state.client_order_id) {
            state.filled_shares *= self.ratio;
            state.fill_price = state.fill_price.map(|p| p / self.ratio);
            let Quantity::Shares(q) = state.quantity else { panic!("orders are sent in shares") };
            state.quantity = Quantity::Shares(q * self.ratio);
        }
        state
    }
}

impl Broker for Splitting<'_> {
    fn account(&mut self) -> Result<ploutos::trade::Account, ploutos::trade::BrokerError> {
        self.inner.account()
    }
    fn positions(&mut self) -> Result<Vec<ploutos::trade::BrokerPosition>, ploutos::trade::BrokerError> {
        let split = self.split();
        let mut held = self.inner.positions()?;
        for p in held.iter_mut().filter(|p| split && p.ticker == self.ticker) {
            p.shares *= self.ratio;
            p.avg_cost /= self.ratio;
        }
        Ok(held)
    }
    fn bars_since(
        &mut self,
        tickers: &[String],
        since: i64,
    ) -> Result<Vec<ploutos::trade::BrokerBar>, ploutos::trade::BrokerError> {
        let mut bars = self.inner.bars_since(tickers, since)?;
        for b in bars.iter_mut().filter(|b| b.ticker == self.ticker && b.time >= self.ex_time) {
            let r = self.ratio;
            (b.open, b.high, b.low, b.close, b.volume) = (b.open / r, b.high / r, b.low / r, b.close / r, b.volume * r);
        }
        Ok(bars)
    }
    fn clock(&mut self) -> Result<ploutos::trade::MarketClock, ploutos::trade::BrokerError> {
        self.inner.clock()
    }
    fn opening_prices(
        &mut self,
        tickers: &[String],
        bar_open: i64,
    ) -> Result<Option<Vec<f64>>, ploutos::trade::BrokerError> {
        let mut opens = self.inner.opening_prices(tickers, bar_open)?;
        if let Some(opens) = opens.as_mut().filter(|_| bar_open >= self.ex_time) {
            let k = tickers.iter().position(|t| *t == self.ticker).unwrap();
            opens[k] /= self.ratio;
        }
        Ok(opens)
    }
    fn submit(&mut self, order: &OrderRequest) -> Result<ploutos::trade::OrderState, ploutos::trade::BrokerError> {
        if !(self.split() && order.ticker == self.ticker) {
            return self.inner.submit(order);
        }
        let Quantity::Shares(q) = order.quantity else { panic!("orders are sent in shares") };
        self.after.insert(order.client_order_id.clone());
        let state = self.inner.submit(&OrderRequest { quantity: Quantity::Shares(q / self.ratio), ..order.clone() })?;
        Ok(self.in_new_shares(state))
    }
    fn cancel(&mut self, id: &str) -> Result<(), ploutos::trade::BrokerError> {
        self.inner.cancel(id)
    }
    fn order(&mut self, id: &str) -> Result<Option<ploutos::trade::OrderState>, ploutos::trade::BrokerError> {
        Ok(self.inner.order(id)?.map(|s| self.in_new_shares(s)))
    }
    fn splits(
        &mut self,
        tickers: &[String],
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<ploutos::trade::Split>, ploutos::trade::BrokerError> {
        let ex_date = ploutos::market::calendar::ny_date(self.ex_time);
        let listed = tickers.contains(&self.ticker) && (from..=to).contains(&ex_date);
        Ok(listed
            .then(|| ploutos::trade::Split { ticker: self.ticker.clone(), ex_date, ratio: self.ratio })
            .into_iter()
            .collect())
    }
}

impl ploutos::trade::Paced for Splitting<'_> {
    replay_pacing!();
    fn wait_for_open(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        self.opened = self.inner.wait_for_open()?;
        Ok(self.opened)
    }
    fn wait_for_close(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        self.opened = false;
        self.inner.wait_for_close()
    }
}

/// A split in the middle of a session, as a broker carries it out (new shares, prices that
/// printed): the features see the prices adjusted for it, the env splits its position as the
/// broker does, so the session goes on with the backtest's decisions over the adjusted
/// market: the same orders, in the new shares from the ex-date on, and the same account.
/// Once with a position held over the ex-date and sold later, once with its sale at the
/// ex-date's open (sized in the new shares, its impact on the volume in the new shares).
#[test]
fn a_split_during_the_session_is_followed_in_the_new_shares() {
    let (ds, cfg, range, backtest) = threshold_backtest();
    let agent = Threshold { n_tickers: 3 };
    let tickers = ds.panel.tickers().to_vec();
    // A buy, the sale of that position after the bar after it, and two more trades later.
    let (buy, sell) = backtest
        .trades
        .iter()
        .filter(|t| t.side == Side::Buy)
        .find_map(|buy| {
            let k = buy.ticker;
            let next = backtest.trades.iter().find(|t| t.ticker == k && t.bar > buy.bar)?;
            let later = backtest.trades.iter().filter(|t| t.ticker == k && t.bar > next.bar).count();
            (next.side == Side::Sell && next.bar > buy.bar + 1 && later >= 2).then_some((buy, next))
        })
        .expect("a position held over a bar, sold, and traded again");
    let ticker = buy.ticker;
    for ex_bar in [buy.bar as usize + 1, sell.bar as usize] {
        let ratio = 4.0;
        let mut broker = replay_broker(&ds, &cfg, range.start);
        let mut splitting = Splitting {
            inner: &mut broker,
            ticker: tickers[usize::from(ticker)].clone(),
            ex_bar,
            ex_time: ds.panel.timestamps()[ex_bar],
            ratio,
            opened: false,
            after: Default::default(),
        };
        let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
        let dir = tempfile::tempdir().unwrap();
        let journal = &mut Journal::open(&dir.path().join("journal.jsonl")).unwrap();
        let summary = trade(&mut splitting, &mut live, &mut session, journal, &options("split")).expect("trade");

        assert!(summary.stopped.is_none() && summary.withheld.is_empty());
        let in_new_shares: Vec<_> = backtest
            .trades
            .iter()
            .zip(as_orders(&backtest.trades, &tickers))
            .map(|(t, (name, side, shares))| {
                let split = t.ticker == ticker && t.bar as usize >= ex_bar;
                (name, side, if split { shares * ratio } else { shares })
            })
            .collect();
        assert_eq!(sent(&summary.sent), in_new_shares, "ex-date bar {ex_bar}");
        let after = summary.sent.iter().filter(|o| o.request.ticker == tickers[usize::from(ticker)]);
        assert!(after.filter(|o| o.fill_time >= ds.panel.timestamps()[ex_bar]).count() >= 3, "traded after the split");
        let equity = splitting.account().unwrap().equity;
        let want = backtest.equity.last().unwrap().equity;
        assert!((equity - want).abs() <= 1e-8 * want, "{equity} vs {want}");
    }
}
