//! The trading loop of `ploutos trade`: at each bar close, new bars in, the agent's
//! decision; at the next open, the orders that decision means, checked against the limits
//! and sent; everything written to the journal and synced before the next bar.
//!
//! Order of one bar (see [`trade`]):
//!
//! 1. fetch the bars since the last one, and the broker's splits of their days first
//!    ([`extend_live`]; a gap stops the loop before any decision on it). No new bar after a close (or, at a run's first bar, the
//!    next bar ended already but is not served yet): ask again a few times
//!    ([`Paced::wait_briefly`]), then stop; several new bars after a decision (the loop
//!    missed closes): stop, since the orders of the missed bars were never sent;
//! 2. the kill switch and the daily loss (equity against the broker's previous close):
//!    stop, after flattening for the daily loss;
//! 3. settle the previous decision's orders, which filled at this bar's open (not with
//!    `dry_run`): one still open is cancelled (a market order the book could not fill
//!    whole); when one filled in part, the broker's positions must be the env's but for
//!    what went unfilled (otherwise stop, as at step 5), and they replace the env's from
//!    this close on ([`super::session::Session::set_holdings`]);
//!    decide ([`super::session::Session::decide`]) on the broker's account (cash, previous
//!    close's equity, day trades, those positions: [`super::broker_account`]), journaled
//!    first (not with `dry_run`, which decides on the simulated account);
//! 4. wait for the open of the bar after this one ([`Paced::next_bar_open`], from the bar,
//!    not from the clock: a run resumed in the middle of that bar still fills in it; the
//!    kill switch is checked again: a decision and its orders can be a night apart), read
//!    its opening prices (asked again a few times while a ticker has not printed; an error
//!    when a later bar trades already: the loop is late), ask for the splits of its day
//!    (the broker splits positions before the open), compute the env's orders at them
//!    ([`super::session::Session::orders`]);
//! 5. reconcile: the broker's positions in the model's tickers must be the session's
//!    before these orders, plus what those of them the broker has already (sent before a
//!    restart in the middle of the bar) filled (not with `dry_run`, where nothing is sent):
//!    otherwise stop, since the agent would act on an account that is not the real one;
//! 6. each order: one the broker has already is not sent again; over the maximum notional
//!    → withheld; with `dry_run` → withheld; else written to the journal, then sent (an id
//!    the broker has seen answers as the order it is). Once an order is withheld (not in a
//!    dry run), rejected or found dead at the broker, the bar's later orders are withheld too
//!    (buys are sized from the cash the sells free) and the loop stops after the bar: the
//!    account no longer follows the agent;
//! 7. the bar is done: the journal is synced.

use super::broker::{Broker, BrokerBar, BrokerError, OrderRequest, OrderSide, OrderState, OrderStatus, Quantity};
use super::broker_account::AccountSnapshot;
use super::journal::{Entry, Journal};
use super::live::{LiveError, LiveMarket};
use super::order_id::{Leg, client_order_id};
use super::replay::ReplayBroker;
use super::safety::{Limits, Stop};
use super::session::{PlannedOrder, Session, SessionError};
use crate::backtest::Agent;
use crate::market::calendar;

/// A broker whose clock the loop can wait on.
pub trait Paced: Broker {
    /// The open time of the bar after the bar that opened at `bar_time`: the bar a decision
    /// at that bar's close fills in (`i64::MAX` after the last bar of a finite feed).
    ///
    /// # Errors
    /// The broker's, or a `bar_time` that is not a bar of its feed.
    fn next_bar_open(&mut self, bar_time: i64) -> Result<i64, BrokerError>;
    /// Whether the bar that opens at `bar_open` has ended by the broker's clock (a live
    /// feed serves it a little later; a replay serves every bar at once: never).
    ///
    /// # Errors
    /// The broker's.
    fn has_ended(&mut self, bar_open: i64) -> Result<bool, BrokerError> {
        let _ = bar_open;
        Ok(false)
    }
    /// Waits until the next bar has opened; false when there is no next bar.
    ///
    /// # Errors
    /// The broker's.
    fn wait_for_open(&mut self) -> Result<bool, BrokerError>;
    /// Waits until the bar in progress has closed; false when there is none.
    ///
    /// # Errors
    /// The broker's.
    fn wait_for_close(&mut self) -> Result<bool, BrokerError>;
    /// Waits a little before asking again for data that is late (a bar after its close, an
    /// opening print after the open).
    ///
    /// # Errors
    /// The broker's.
    fn wait_briefly(&mut self) -> Result<(), BrokerError>;
}

/// Times the loop asks again for a late bar or opening print ([`Paced::wait_briefly`]
/// between two).
const LATE_DATA_TRIES: u32 = 30;

/// How many times the daily-loss stop looks again at orders it canceled before it closes
/// the positions (a [`Paced::wait_briefly`] apart: about a minute on Alpaca).
const CANCEL_TRIES: u32 = 6;

impl Paced for ReplayBroker {
    fn next_bar_open(&mut self, bar_time: i64) -> Result<i64, BrokerError> {
        self.bar_after(bar_time)
    }

    fn wait_for_open(&mut self) -> Result<bool, BrokerError> {
        Ok(self.open_next())
    }

    fn wait_for_close(&mut self) -> Result<bool, BrokerError> {
        Ok(self.advance())
    }

    fn wait_briefly(&mut self) -> Result<(), BrokerError> {
        Ok(())
    }
}

/// What the loop is told.
#[derive(Debug, Clone, Default)]
pub struct TradeOptions {
    /// The run's name: part of every client order id.
    pub run: String,
    /// The session's tag, also part of every client order id ([`TradeOptions::id_kept`]):
    /// drawn when a session starts on a real broker and journaled, so that a resume derives
    /// the same ids and a new session under a reused run name never takes an earlier
    /// session's orders at the broker for its own. `None` for sessions journaled before
    /// tags, whose ids stay as they were.
    pub session: Option<String>,
    /// The open time of the session's first decision bar, which the feed may not have
    /// served yet (a session started during that bar, or restarted before its first
    /// decision): once that bar has ended, the loop asks again shortly for it instead of
    /// waiting for the next close, which would miss it. `None`: the first bar's close is
    /// waited for.
    pub first_bar_time: Option<i64>,
    /// Decide and journal, send nothing.
    pub dry_run: bool,
    pub limits: Limits,
}

impl TradeOptions {
    /// What client order ids carry after the run's name, never cut: `.<session tag>` (none
    /// for a journal from before tags) and then `purpose` (`-flatten` for the daily-loss
    /// stop's orders, empty for the agent's).
    pub fn id_kept(&self, purpose: &str) -> String {
        match &self.session {
            Some(tag) => format!(".{tag}{purpose}"),
            None => purpose.to_string(),
        }
    }
}

/// A new session's tag: six random base-36 characters (two billion tags).
pub fn session_tag() -> String {
    let mut n = rand::random::<u64>() % 36u64.pow(6);
    let mut tag = String::with_capacity(6);
    for _ in 0..6 {
        tag.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    tag
}

/// An order sent, with the open time of the bar it is meant to fill at.
#[derive(Debug, Clone, PartialEq)]
pub struct SentOrder {
    pub fill_time: i64,
    pub request: OrderRequest,
}

/// What a loop did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TradeSummary {
    /// Bars decided.
    pub decisions: usize,
    /// Orders sent (or found sent before a restart), in order.
    pub sent: Vec<SentOrder>,
    /// Orders not sent, with the reason and the open they were for (Unix seconds).
    pub withheld: Vec<(OrderRequest, String, i64)>,
    /// Why the loop stopped before the broker's last bar, if it did.
    pub stopped: Option<String>,
}

/// Why the loop cannot go on (after writing it to the journal).
#[derive(Debug, thiserror::Error)]
pub enum TradeError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("bars: {0}")]
    Live(#[from] LiveError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("journal {path}: {source}")]
    Journal { path: String, source: std::io::Error },
    /// The broker's account is not the one the session trades.
    #[error(
        "the broker holds {broker} shares of {ticker}, the session expects {expected}: the account changed outside this run (reconcile it, or start a new run)"
    )]
    Mismatch { ticker: String, broker: f64, expected: f64 },
    /// The broker has no opening prices after saying the bar opened.
    #[error("the broker has no opening prices for the bar that opened at {0}")]
    NoOpeningPrices(i64),
    /// No bar arrived after a close.
    #[error("no new bar after the bar at {0}: the feed is late or down")]
    NoNewBar(i64),
    /// Orders of the session still open at the broker after their cancel: the account is
    /// still moving.
    #[error(
        "{} still open at the broker after its cancel at the bar's close: the account is still moving (see to it at the broker, then resume)",
        .0.join(", ")
    )]
    StillOpen(Vec<String>),
    /// Several bars arrived at once after a decision: the loop missed closes.
    #[error(
        "{0} bars arrived at once after the bar at {1}: the orders of the bars in between were never sent, so the account no longer follows the agent (start a new run)"
    )]
    MissedBars(usize, i64),
}

/// Runs the loop until the broker has no next bar or a limit stops it (see the module docs).
///
/// # Errors
/// [`TradeError`], written to the journal first when the journal still works.
pub fn trade<B: Paced, A: Agent + ?Sized>(
    broker: &mut B,
    live: &mut LiveMarket,
    session: &mut Session<'_, A>,
    journal: &mut Journal,
    opts: &TradeOptions,
) -> Result<TradeSummary, TradeError> {
    let mut summary = TradeSummary::default();
    let result = run_loop(broker, live, session, journal, opts, &mut summary);
    if let Err(e) = &result {
        let now = live.times().last().copied().unwrap_or_default();
        // The journal may be what failed: this line is best effort.
        let _ = journal.write_synced(&Entry::Error { time: now, message: e.to_string(), stopped: true });
    }
    result.map(|()| summary)
}

fn run_loop<B: Paced, A: Agent + ?Sized>(
    broker: &mut B,
    live: &mut LiveMarket,
    session: &mut Session<'_, A>,
    journal: &mut Journal,
    opts: &TradeOptions,
    summary: &mut TradeSummary,
) -> Result<(), TradeError> {
    let tickers = live.tickers().to_vec();
    // The newest bar decided by this loop, and whether a bar's orders left the account
    // behind the agent.
    let mut decided: Option<i64> = None;
    let mut late = 0;
    // The session's first bar was in progress and has closed since: a bar that is not there
    // yet is late (asked again shortly), not a bar away (which would miss its close).
    let mut first_closed = false;
    loop {
        let since = live.times().last().map_or(i64::MIN, |t| t + 1);
        let bars = broker.bars_since(&tickers, since)?;
        let added = extend_live(broker, live, &bars)?;
        let n = live.n_bars();
        if n == 0 || n - 1 < session.start() {
            if !first_closed && let Some(first) = opts.first_bar_time {
                first_closed = broker.has_ended(first)?;
            }
            if first_closed {
                wait_for_late_bar(broker, &mut late, live.times().last().copied().unwrap_or_default())?;
            } else if broker.wait_for_close()? {
                first_closed = true;
            } else {
                stop_if_asked(opts, journal, live.times().last().copied().unwrap_or_default(), summary)?;
                return Ok(());
            }
            continue;
        }
        let bar_time = live.times()[n - 1];
        if let Some(last) = decided {
            if added == 0 {
                wait_for_late_bar(broker, &mut late, last)?;
                continue;
            }
            if added > 1 {
                return Err(TradeError::MissedBars(added, last));
            }
        }
        // The bar the decision at this close fills in, from the bar itself: a loop resumed
        // in the middle of the next bar must not take the clock's next open for it.
        let next_open = broker.next_bar_open(bar_time)?;
        let first_of_run = decided.is_none();
        if first_of_run {
            // A run (re)started after that bar ended, before the broker served it: the bar is
            // late data, not a bar to trade in (asked again shortly).
            if broker.has_ended(next_open)? {
                wait_for_late_bar(broker, &mut late, bar_time)?;
                continue;
            }
        }
        late = 0;
        let account = broker.account()?;
        if let Err(stop) = opts.limits.check_bar(account.last_equity, account.equity) {
            journal
                .write_synced(&Entry::Error { time: bar_time, message: stop.to_string(), stopped: true })
                .map_err(|e| journal_error(journal, e))?;
            let mut stopped = stop.to_string();
            if matches!(stop, Stop::DailyLoss { .. }) && !opts.dry_run {
                // The orders that may still be open: the last decision's, sent at this bar's
                // open, and (restarted after sending them) this bar's own.
                let mut ids = Vec::new();
                for bar in decided.into_iter().chain([bar_time]) {
                    for ticker in &tickers {
                        ids.extend(
                            [Leg::Close, Leg::Open]
                                .map(|leg| client_order_id(&opts.run, &opts.id_kept(""), bar, ticker, leg)),
                        );
                    }
                }
                let open = settle(broker, journal, &ids, bar_time)?.open;
                flatten(broker, journal, opts, &tickers, bar_time, next_open, summary)?;
                if !open.is_empty() {
                    stopped = format!("{stopped}; still open after their cancel: {}", open.join(", "));
                }
            }
            summary.stopped = Some(stopped);
            return Ok(());
        }
        if !opts.dry_run && !session.has_account(bar_time) {
            // The decision reads the broker's account (a dry run's, the simulated one: the
            // broker's does not follow orders that are never sent).
            // A bar decided before a restart keeps the account it was decided on.
            let (holdings, looked) = settle_fills(broker, journal, opts, session, live, bar_time, next_open)?;
            // The previous decision's orders may have filled (or been cancelled) since the
            // account was read: the decision reads it as they left it.
            let account = if looked { broker.account()? } else { account.clone() };
            let snapshot = AccountSnapshot::from(&account);
            session.set_account(bar_time, snapshot);
            if let Some(held) = &holdings {
                session.set_holdings(bar_time, held);
            }
            let entry = Entry::Account { bar_time, account: snapshot, holdings };
            journal.write(&entry).map_err(|e| journal_error(journal, e))?;
        }
        let actions = session.decide(live, next_open)?.to_vec();
        decided = Some(bar_time);
        summary.decisions += 1;
        if !broker.wait_for_open()? {
            // Cut short by an interrupt: stopped before this bar's orders, not done.
            if !stop_if_asked(opts, journal, bar_time, summary)? {
                journal
                    .write_synced(&Entry::BarDone { bar_time, equity: account.equity })
                    .map_err(|e| journal_error(journal, e))?;
            }
            return Ok(());
        }
        if stop_if_asked(opts, journal, bar_time, summary)? {
            return Ok(());
        }
        let mut tries = 0;
        let opens = loop {
            if let Some(opens) = broker.opening_prices(&tickers, next_open)? {
                break opens;
            }
            tries += 1;
            if tries > LATE_DATA_TRIES {
                return Err(TradeError::NoOpeningPrices(next_open));
            }
            broker.wait_briefly()?;
        };
        learn_splits(broker, live, calendar::ny_date(next_open))?;
        let (orders, mut expected) = session.orders(live, next_open, &opens)?;
        // Orders of this bar the broker has already: sent before a restart in the middle of
        // the bar. What they filled is in the broker's positions; they are not sent again.
        let mut at_broker = std::collections::BTreeMap::new();
        if !opts.dry_run {
            let before = expected.clone();
            let mut tries = 0;
            loop {
                if first_of_run {
                    expected.clone_from(&before);
                    for order in &orders {
                        let id = request(opts, bar_time, &tickers, order).client_order_id;
                        if let Some(state) = broker.order(&id)? {
                            let sign = if state.side == OrderSide::Buy { 1.0 } else { -1.0 };
                            expected[order.ticker] += sign * state.filled_shares;
                            at_broker.insert(id, state);
                        }
                    }
                }
                // An order found still open may fill between its lookup and the positions:
                // look again a few times before calling the account someone else's.
                let filling = at_broker.values().any(|s: &OrderState| !s.status.is_final());
                match reconcile(broker, &tickers, &expected) {
                    Err(_) if filling && tries < 3 => {
                        tries += 1;
                        broker.wait_briefly()?;
                    }
                    result => break result?,
                }
            }
        }
        for (k, ticker) in tickers.iter().enumerate() {
            let shares = orders
                .iter()
                .filter(|o| o.ticker == k)
                .map(|o| if o.side == OrderSide::Buy { o.shares } else { -o.shares })
                .sum();
            let entry = Entry::Decision { bar_time, ticker: ticker.clone(), action: actions[k], shares };
            journal.write(&entry).map_err(|e| journal_error(journal, e))?;
        }
        let mut stop_after: Option<String> = None;
        let (sent_before, withheld_before) = (summary.sent.len(), summary.withheld.len());
        for order in &orders {
            let request = request(opts, bar_time, &tickers, order);
            if let Some(state) = at_broker.remove(&request.client_order_id) {
                let id = request.client_order_id.clone();
                match answered(journal, bar_time, state, &request)? {
                    None => summary.sent.push(SentOrder { fill_time: next_open, request }),
                    Some(message) => {
                        summary.withheld.push((request, message, next_open));
                        stop_after.get_or_insert(format!(
                            "order {id} did not fill at the broker; the account no longer follows the agent"
                        ));
                    }
                }
                continue;
            }
            let withheld = if let Some(why) = &stop_after {
                Some(format!("not sent: {why}"))
            } else {
                match opts.limits.check_order(order.shares * order.price) {
                    Err(stop) => {
                        stop_after = Some(format!("{stop}; the account no longer follows the agent"));
                        Some(stop.to_string())
                    }
                    Ok(()) if opts.dry_run => Some("dry run".to_string()),
                    Ok(()) => None,
                }
            };
            if let Some(reason) = withheld {
                let entry = Entry::Withheld { bar_time, request: request.clone(), reason: reason.clone() };
                journal.write(&entry).map_err(|e| journal_error(journal, e))?;
                summary.withheld.push((request, reason, next_open));
                continue;
            }
            let id = request.client_order_id.clone();
            let at_broker = send(broker, journal, bar_time, SentOrder { fill_time: next_open, request }, summary)?;
            if !at_broker {
                stop_after = Some(format!("order {id} was rejected; the account no longer follows the agent"));
            }
        }
        journal
            .write_synced(&Entry::BarDone { bar_time, equity: account.equity })
            .map_err(|e| journal_error(journal, e))?;
        // A heartbeat for whoever watches a session that runs for days.
        tracing::info!(
            "bar {} done: {} orders sent, {} withheld; equity {:.2} at its close",
            calendar::ny_datetime(bar_time).format("%Y-%m-%d %H:%M %Z"),
            summary.sent.len() - sent_before,
            summary.withheld.len() - withheld_before,
            account.equity
        );
        if let Some(reason) = stop_after {
            summary.stopped = Some(format!("{reason}: stopped after this bar"));
            return Ok(());
        }
        if !broker.wait_for_close()? {
            stop_if_asked(opts, journal, bar_time, summary)?;
            return Ok(());
        }
    }
}

/// When the interrupt (Ctrl-C) or the kill switch asks to stop (checked after a wait, and
/// right before a bar's orders go out), journals the stop and records it; returns whether
/// it did.
fn stop_if_asked(
    opts: &TradeOptions,
    journal: &mut Journal,
    time: i64,
    summary: &mut TradeSummary,
) -> Result<bool, TradeError> {
    let Err(stop) = opts.limits.check_kill_switch() else { return Ok(false) };
    journal
        .write_synced(&Entry::Error { time, message: stop.to_string(), stopped: true })
        .map_err(|e| journal_error(journal, e))?;
    summary.stopped = Some(stop.to_string());
    Ok(true)
}

/// Appends `bars` to `live` ([`LiveMarket::extend`]) once the broker's splits of the days
/// they cover are known ([`LiveMarket::add_splits`]; asked again even where the open asked
/// already, for a split the broker listed since); returns how many timestamps were
/// appended.
///
/// # Errors
/// The broker's, or [`TradeError::Live`] for bars (or splits) that cannot join.
pub fn extend_live<B: Broker>(broker: &mut B, live: &mut LiveMarket, bars: &[BrokerBar]) -> Result<usize, TradeError> {
    let last = live.times().last().copied();
    let fresh = bars.iter().map(|b| b.time).filter(|&t| last.is_none_or(|l| t > l));
    if let (Some(first), Some(newest)) = (fresh.clone().min(), fresh.max()) {
        let (from, through) = (calendar::ny_date(first), calendar::ny_date(newest));
        live.add_splits(&broker.splits(live.tickers(), from, through)?)?;
        live.set_splits_known_through(through);
    }
    Ok(live.extend(bars)?)
}

/// Asks the broker for the splits of `live`'s tickers on `day` unless they were asked for
/// already, and adds them.
fn learn_splits<B: Broker>(broker: &mut B, live: &mut LiveMarket, day: chrono::NaiveDate) -> Result<(), TradeError> {
    if live.splits_known_through().is_none_or(|known| known < day) {
        live.add_splits(&broker.splits(live.tickers(), day, day)?)?;
        live.set_splits_known_through(day);
    }
    Ok(())
}

/// The broker order of a planned one; its id names the decision bar, so that a restart
/// derives the same one whatever the time.
fn request(opts: &TradeOptions, bar_time: i64, tickers: &[String], order: &PlannedOrder) -> OrderRequest {
    let ticker = &tickers[order.ticker];
    OrderRequest {
        client_order_id: client_order_id(&opts.run, &opts.id_kept(""), bar_time, ticker, order.leg),
        ticker: ticker.clone(),
        side: order.side,
        quantity: Quantity::Shares(order.shares),
    }
}

/// Journals and sends one order; an id the broker already has (sent before a restart) is
/// looked up instead of sent again. Returns whether the order is at the broker (false: it
/// was rejected).
fn send<B: Broker>(
    broker: &mut B,
    journal: &mut Journal,
    bar_time: i64,
    order: SentOrder,
    summary: &mut TradeSummary,
) -> Result<bool, TradeError> {
    let request = &order.request;
    journal
        .write_synced(&Entry::Order { bar_time, request: request.clone() })
        .map_err(|e| journal_error(journal, e))?;
    let state = match broker.submit(request) {
        Ok(state) => Some(state),
        Err(BrokerError::Duplicate(id)) => match broker.order(&id)? {
            Some(state) => Some(state),
            None => return Err(BrokerError::Other(format!("order {id}: a duplicate the broker cannot find")).into()),
        },
        Err(BrokerError::Rejected { client_order_id, reason }) => {
            let message = format!("order {client_order_id} rejected: {reason}");
            journal
                .write(&Entry::Error { time: bar_time, message, stopped: false })
                .map_err(|e| journal_error(journal, e))?;
            None
        }
        Err(e) => return Err(e.into()),
    };
    let Some(state) = state else { return Ok(false) };
    if answered(journal, bar_time, state, request)?.is_some() {
        return Ok(false);
    }
    summary.sent.push(order);
    Ok(true)
}

/// Journals the broker's answer for `request`, and returns why the order will not fill as
/// asked when it will not: rejected, canceled or expired short of its shares (an order sent
/// before a restart, refused or dropped since), journaled as an error too.
///
/// # Errors
/// [`TradeError::Journal`].
fn answered(
    journal: &mut Journal,
    bar_time: i64,
    state: OrderState,
    request: &OrderRequest,
) -> Result<Option<String>, TradeError> {
    let dead = match request.quantity {
        Quantity::Shares(want) => {
            let short = state.filled_shares < want * (1.0 - 1e-9);
            (state.status.is_final() && state.status != OrderStatus::Filled && short).then(|| {
                format!(
                    "order {} is {:?} at the broker with {} of {want} shares filled",
                    state.client_order_id, state.status, state.filled_shares
                )
            })
        }
        Quantity::Notional(_) => None,
    };
    let mut entries = vec![Entry::Answer { state }];
    if let Some(message) = &dead {
        entries.push(Entry::Error { time: bar_time, message: message.clone(), stopped: false });
    }
    for entry in &entries {
        journal.write(entry).map_err(|source| journal_error(journal, source))?;
    }
    Ok(dead)
}

/// A journal that cannot be written, named.
fn journal_error(journal: &Journal, source: std::io::Error) -> TradeError {
    TradeError::Journal { path: journal.path().display().to_string(), source }
}

/// Counts one more try for a bar that is late (a feed that has not served it yet), waits a
/// little, and gives up with [`TradeError::NoNewBar`] after [`LATE_DATA_TRIES`].
///
/// # Errors
/// [`TradeError::NoNewBar`] (`after`: the newest bar received), or the broker's.
fn wait_for_late_bar<B: Paced>(broker: &mut B, late: &mut u32, after: i64) -> Result<(), TradeError> {
    *late += 1;
    if *late > LATE_DATA_TRIES {
        return Err(TradeError::NoNewBar(after));
    }
    Ok(broker.wait_briefly()?)
}

/// Checks that the broker holds what the session expects in the model's tickers.
fn reconcile<B: Broker>(broker: &mut B, tickers: &[String], expected: &[f64]) -> Result<(), TradeError> {
    let held = broker.positions()?;
    for (ticker, &want) in tickers.iter().zip(expected) {
        let got = held.iter().filter(|p| &p.ticker == ticker).map(|p| p.shares).sum::<f64>();
        if (got - want).abs() > 1e-6 * want.abs().max(1.0) {
            return Err(TradeError::Mismatch { ticker: ticker.clone(), broker: got, expected: want });
        }
    }
    Ok(())
}

/// What [`settle`] found of a set of orders.
struct Settled {
    /// The latest state of each order the broker has.
    states: Vec<OrderState>,
    /// Those it cancelled (their last states journaled).
    canceled: Vec<String>,
    /// Those still open after their cancel (journaled as errors).
    open: Vec<String>,
}

/// Cancels the orders of `ids` still open at the broker and looks at them again a few
/// times until they are final: before the daily-loss stop closes the positions
/// ([`flatten`]: a halted ticker's order, one filling in parts, or those a loop restarted
/// in the bar they went out in meets the stop right after; what they filled after the
/// positions were read would leave the account holding shares once flat), and before a
/// decision reads the positions the previous decision's orders made ([`settle_fills`]).
/// The cancels go out together; an order still open after [`CANCEL_TRIES`] looks is
/// journaled as an error (at `bar_time`).
fn settle<B: Paced>(
    broker: &mut B,
    journal: &mut Journal,
    ids: &[String],
    bar_time: i64,
) -> Result<Settled, TradeError> {
    let (mut states, mut canceled) = (Vec::new(), Vec::new());
    for id in ids {
        let Some(state) = broker.order(id)? else { continue };
        if !state.status.is_final() {
            broker.cancel(id)?;
            canceled.push(id.clone());
        }
        states.push(state);
    }
    // The canceled orders' last states: looked at again until all are final, or give up.
    for tries in 0..=CANCEL_TRIES {
        for state in &mut states {
            if canceled.contains(&state.client_order_id)
                && let Some(now) = broker.order(&state.client_order_id)?
            {
                *state = now;
            }
        }
        if states.iter().all(|s| s.status.is_final()) || tries == CANCEL_TRIES {
            break;
        }
        broker.wait_briefly()?;
    }
    let open: Vec<String> = states.iter().filter(|s| !s.status.is_final()).map(|s| s.client_order_id.clone()).collect();
    // Every order's state once settled (its fill: shares and price; a cancelled one's last
    // state), so that the journal alone tells what each order did.
    for state in &states {
        journal.write(&Entry::Answer { state: state.clone() }).map_err(|e| journal_error(journal, e))?;
    }
    for id in &open {
        let message = format!("order {id} is still open after its cancel: what it fills stays in the account");
        journal
            .write(&Entry::Error { time: bar_time, message, stopped: false })
            .map_err(|e| journal_error(journal, e))?;
    }
    Ok(Settled { states, canceled, open })
}

/// At the close of the bar that opened at `bar_time`, before the decision: the orders of
/// the previous decision, which filled at this bar's open, are settled ([`settle`]: one
/// still open is cancelled, and one still open after that stops the loop). When one of
/// them filled in part, the broker's positions must be the env's but for what the orders
/// left unfilled; they are returned for the session to take from this close on, and each
/// order filled in part is journaled. Filled in part: some shares, or none before the
/// loop's cancel; an order the broker does not have, or dropped with nothing filled
/// (rejected, expired), counts as filled whole, as the env filled it, and the positions
/// then stop the loop. `None` when every order filled whole (the next open's check
/// compares the positions). Also returns whether there were orders to look at.
fn settle_fills<B: Paced, A: Agent + ?Sized>(
    broker: &mut B,
    journal: &mut Journal,
    opts: &TradeOptions,
    session: &mut Session<'_, A>,
    live: &LiveMarket,
    bar_time: i64,
    next_open: i64,
) -> Result<(Option<Vec<super::Holding>>, bool), TradeError> {
    let (fills, before) = session.filled_at_newest(live, next_open)?;
    if fills.is_empty() {
        return Ok((None, false));
    }
    let tickers = live.tickers();
    let decision = live.times()[live.n_bars() - 2];
    let ids: Vec<String> = fills.iter().map(|order| request(opts, decision, tickers, order).client_order_id).collect();
    let settled = settle(broker, journal, &ids, bar_time)?;
    if !settled.open.is_empty() {
        return Err(TradeError::StillOpen(settled.open));
    }
    let mut expected = before;
    let mut short = Vec::new();
    for (order, id) in fills.iter().zip(&ids) {
        let sign = if order.side == OrderSide::Buy { 1.0 } else { -1.0 };
        let filled = match settled.states.iter().find(|s| &s.client_order_id == id) {
            Some(state) => {
                let asked = match state.quantity {
                    Quantity::Shares(q) => q,
                    Quantity::Notional(_) => order.shares,
                };
                let cut = state.filled_shares > 0.0 || settled.canceled.contains(id);
                if cut && state.filled_shares < asked * (1.0 - 1e-9) {
                    short.push((state, asked));
                    state.filled_shares
                } else {
                    order.shares
                }
            }
            None => order.shares,
        };
        expected[order.ticker] += sign * filled;
    }
    if short.is_empty() {
        return Ok((None, true));
    }
    let held = broker.positions()?;
    let mut holdings = Vec::with_capacity(tickers.len());
    for (ticker, &want) in tickers.iter().zip(&expected) {
        let mine: Vec<_> = held.iter().filter(|p| &p.ticker == ticker).collect();
        let shares = mine.iter().map(|p| p.shares).sum::<f64>();
        if (shares - want).abs() > 1e-6 * want.abs().max(1.0) {
            return Err(TradeError::Mismatch { ticker: ticker.clone(), broker: shares, expected: want });
        }
        let avg_cost = mine.first().map_or(0.0, |p| p.avg_cost);
        holdings.push(super::Holding { shares, avg_cost });
    }
    for (state, want) in short {
        let message = format!(
            "order {} filled {} of {want} shares ({:?}): the session goes on from the broker's positions",
            state.client_order_id, state.filled_shares, state.status
        );
        tracing::warn!("{message}");
        journal
            .write(&Entry::Error { time: bar_time, message, stopped: false })
            .map_err(|e| journal_error(journal, e))?;
    }
    Ok((Some(holdings), true))
}

/// Sends an order closing every position the broker holds in the session's tickers (the
/// daily-loss stop, after [`settle`]; positions in other tickers are not the
/// session's).
fn flatten<B: Broker>(
    broker: &mut B,
    journal: &mut Journal,
    opts: &TradeOptions,
    tickers: &[String],
    bar_time: i64,
    fill_time: i64,
    summary: &mut TradeSummary,
) -> Result<(), TradeError> {
    for position in broker.positions()?.into_iter().filter(|p| tickers.contains(&p.ticker)) {
        let side = if position.shares > 0.0 { OrderSide::Sell } else { OrderSide::Buy };
        let request = OrderRequest {
            client_order_id: client_order_id(
                &opts.run,
                &opts.id_kept("-flatten"),
                bar_time,
                &position.ticker,
                Leg::Close,
            ),
            ticker: position.ticker.clone(),
            side,
            quantity: Quantity::Shares(position.shares.abs()),
        };
        send(broker, journal, bar_time, SentOrder { fill_time, request }, summary)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tags_are_six_base36_characters_in_the_ids() {
        let (a, b) = (session_tag(), session_tag());
        assert!(a.len() == 6 && a.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()), "{a}");
        assert_ne!(a, b, "two sessions, two tags");
        let opts = TradeOptions { run: "r".into(), session: Some(a.clone()), ..TradeOptions::default() };
        assert_eq!(opts.id_kept("-flatten"), format!(".{a}-flatten"));
        assert_eq!(TradeOptions { session: None, ..opts }.id_kept(""), "", "journals without a tag keep their ids");
    }
}
