//! Train/serve parity: `trade` over the replay broker sends exactly the orders a backtest
//! of the same agent produces over the same bars — same bars, tickers, sides and shares, in
//! the same order — and the broker's account ends where the backtest's does. The trader
//! gets the bars one at a time and computes the features incrementally; the backtest
//! computes them over the whole file. Also: a restart in the middle of the period sends
//! nothing twice, `--dry-run` sends nothing, the kill switch stops before deciding, a
//! maximum notional withholds and stops, and an account that does not match is refused.

use ploutos::backtest::{Agent, replay_agent};
use ploutos::config::{DataConfig, EnvironmentConfig, Interval, SyntheticConfig};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::env::Side;
use ploutos::features::N_FEATURES;
use ploutos::observation::state_dim;
use ploutos::trade::{
    Broker, Journal, Limits, LiveMarket, OrderRequest, OrderSide, Quantity, ReplayBroker, Replayed, SentOrder, Session,
    TradeError, TradeOptions, trade,
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
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).expect("backtest");
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

#[test]
fn a_restart_in_the_middle_re_derives_the_decisions_and_sends_nothing_twice() {
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();

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
        let mut limited = Limited { inner: &mut broker, last: cut, touch_at_open: None, reject: false };
        let summary = trade(&mut limited, &mut live, &mut session, &mut journal, &options("restart")).unwrap();
        first_sent.extend(summary.sent);
    }
    // The restart: a fresh session from the same first bar re-derives the decisions from
    // the bars; the orders of the bar in progress at the cut (sent already) are found at the
    // broker, not sent again.
    let mut live = live_market(&ds);
    let mut session = Session::new(&cfg, &agent, range.start);
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

/// A replay broker that pretends the feed ends after bar `last` (a crash of the trader),
/// and can create a file when a bar opens and reject the orders of one bar.
struct Limited<'a> {
    inner: &'a mut ReplayBroker,
    last: usize,
    /// Created at the first open.
    touch_at_open: Option<std::path::PathBuf>,
    /// Orders are rejected while this is true (set by the first submission).
    reject: bool,
}

impl Broker for Limited<'_> {
    fn account(&mut self) -> Result<ploutos::trade::Account, ploutos::trade::BrokerError> {
        self.inner.account()
    }
    fn positions(&mut self) -> Result<Vec<ploutos::trade::BrokerPosition>, ploutos::trade::BrokerError> {
        self.inner.positions()
    }
    fn submit(&mut self, order: &OrderRequest) -> Result<ploutos::trade::OrderState, ploutos::trade::BrokerError> {
        if self.reject {
            return Err(ploutos::trade::BrokerError::Rejected {
                client_order_id: order.client_order_id.clone(),
                reason: "insufficient buying power".into(),
            });
        }
        self.inner.submit(order)
    }
    fn cancel(&mut self, id: &str) -> Result<(), ploutos::trade::BrokerError> {
        self.inner.cancel(id)
    }
    fn order(&mut self, id: &str) -> Result<Option<ploutos::trade::OrderState>, ploutos::trade::BrokerError> {
        self.inner.order(id)
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
    fn opening_prices(&mut self, tickers: &[String]) -> Result<Option<Vec<f64>>, ploutos::trade::BrokerError> {
        self.inner.opening_prices(tickers)
    }
}

impl ploutos::trade::Paced for Limited<'_> {
    fn wait_for_open(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        if let Some(path) = self.touch_at_open.take() {
            std::fs::write(path, "").unwrap();
        }
        self.inner.wait_for_open()
    }
    fn wait_briefly(&mut self) -> Result<(), ploutos::trade::BrokerError> {
        self.inner.wait_briefly()
    }
    fn wait_for_close(&mut self) -> Result<bool, ploutos::trade::BrokerError> {
        // The crash: the orders of bar `last` are sent, the trader dies before its close.
        if self.inner.now() >= self.last {
            return Ok(false);
        }
        self.inner.wait_for_close()
    }
}

#[test]
fn dry_run_sends_nothing_and_journals_every_order_as_withheld() {
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
    let mut broker = replay_broker(&ds, &cfg, range.start);
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, range.start));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
    let opts = TradeOptions { dry_run: true, ..options("dry") };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert!(summary.sent.is_empty());
    let withheld: Vec<OrderRequest> = summary.withheld.iter().map(|(o, _)| o.clone()).collect();
    assert_eq!(requests(&withheld), as_orders(&backtest.trades, ds.panel.tickers()));
    assert!(summary.withheld.iter().all(|(_, why)| why == "dry run"));
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
    let mut limited =
        Limited { inner: &mut broker, last: usize::MAX, touch_at_open: Some(kill.clone()), reject: false };
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
    let ds = dataset();
    let cfg = env_config();
    let range = ds.range(SplitPart::Test);
    let agent = Threshold { n_tickers: 3 };
    let backtest = replay_agent(&cfg, ds.market.clone(), range.clone(), &agent, "bt".into(), true).unwrap();
    // The first bar whose decision makes two orders or more.
    let fills: Vec<u32> = backtest.trades.iter().map(|t| t.bar).collect();
    let bar = fills.windows(2).find(|w| w[0] == w[1]).map(|w| w[0] as usize).expect("a bar with two orders");
    // A session whose first decision is that bar's, every order rejected.
    let mut broker = replay_broker(&ds, &cfg, bar - 1);
    let mut limited = Limited { inner: &mut broker, last: usize::MAX, touch_at_open: None, reject: true };
    let (mut live, mut session) = (live_market(&ds), Session::new(&cfg, &agent, bar - 1));
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&dir.path().join("r.jsonl")).unwrap();
    let summary = trade(&mut limited, &mut live, &mut session, &mut journal, &options("reject")).unwrap();
    assert!(summary.sent.is_empty());
    let stopped = summary.stopped.unwrap();
    assert!(stopped.contains("was rejected") && stopped.contains("stopped after this bar"), "{stopped}");
    assert!(!summary.withheld.is_empty(), "the bar's other orders are withheld");
    assert!(summary.withheld.iter().all(|(_, why)| why.starts_with("not sent: order ")), "{:?}", summary.withheld);
    assert_eq!(summary.decisions, 1);
}
