//! What the agent decides and which orders that means, computed by the very systems a
//! backtest runs, so that trading and backtesting cannot disagree.
//!
//! The session replays one env from its first decision bar over the live market (the bars
//! received, plus the next bar as far as it is known), with the actions decided so far:
//! the env's account, positions, holding clocks, PDT count and daily cap at the newest bar
//! are then exactly a backtest's over the same bars. Two moments per bar:
//!
//! 1. **At a bar's close** ([`Session::decide`]): the replay reaches the newest bar's
//!    observation and the agent acts on it (deterministically). A restart re-derives every
//!    earlier action the same way, so nothing but the session's first bar and the broker's
//!    accounts (and positions) at the closes decided have to be kept (the journal's).
//! 2. **At the next bar's open** ([`Session::orders`]): with the opening prices known, the
//!    replay executes that decision as a backtest would (market rules, sells before buys,
//!    buys sized from the cash the sells left at these prices, whole shares, fees): the
//!    env's fills are the orders to send, in its order, in shares.
//!
//! The account in the replay is the broker's wherever the broker reported one
//! ([`Session::set_account`], [`super::broker_account`]): the agent observes the real cash,
//! previous-close equity and day-trade count, and the orders are sized from the real cash.
//! A bar without a report (a dry run) keeps the simulated account. Where the broker filled
//! an order in part, its positions replace the env's from that close on
//! ([`Session::set_holdings`]).
//!
//! A replay costs `O(bars since the first decision)` env steps (microseconds each); the
//! features are never recomputed ([`super::live::LiveMarket`]).

use super::broker::{MarketClock, OrderSide};
use super::broker_account::{AccountSnapshot, BrokerAccountPlugin, Holding};
use super::journal::Replayed;
use super::live::LiveMarket;
use super::order_id::Leg;
use crate::backtest::{Agent, ReplayResult, replay_config, replay_extended};
use crate::config::{EnvironmentConfig, Interval};
use crate::env::{Side, TradeRecord};
use crate::market::{calendar, nyse};
use crate::vec_env::EnvError;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One order of a decision, as the env filled it at the opening prices.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOrder {
    /// Index in the model's tickers.
    pub ticker: usize,
    pub side: OrderSide,
    /// Shares, > 0.
    pub shares: f64,
    /// The env's fill price (for the notional limit and the journal).
    pub price: f64,
    /// Whether it closes (part of) a position or opens one.
    pub leg: Leg,
    /// A forced order (a margin call's buy-in), not the agent's.
    pub forced: bool,
}

/// Why a session cannot decide.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The env refused the market (a period too short, a config it cannot run).
    #[error("env: {0}")]
    Env(#[from] EnvError),
    /// The agent failed to act.
    #[error("model: {0}")]
    Agent(Box<dyn std::error::Error + Send + Sync>),
    /// No decision has been made at the newest bar yet ([`Session::decide`] first).
    #[error("no decision at the newest bar yet")]
    NotDecided,
    /// The live market has not reached the session's first bar.
    #[error("the session starts at bar {start}, the market has {bars} bars")]
    BeforeStart { start: usize, bars: usize },
}

/// A trading session of one agent (see the module docs).
pub struct Session<'a, A: Agent + ?Sized> {
    cfg: EnvironmentConfig,
    agent: &'a A,
    /// Live bar of the first decision.
    start: usize,
    /// Actions of the bars decided so far, `[decisions × n_tickers]` from `start`.
    actions: Vec<u8>,
    /// The broker's account at bar closes, by bar time.
    accounts: BTreeMap<i64, AccountSnapshot>,
    /// The broker's positions at bar closes where they are not the env's, by bar time.
    holdings: BTreeMap<i64, Arc<[Holding]>>,
}

impl<'a, A: Agent + ?Sized> Session<'a, A> {
    /// A session whose first decision is at live bar `start`, with `cfg`'s costs and rules
    /// (as a backtest replays them) and `cfg.initial_cash` as the starting account.
    pub fn new(cfg: &EnvironmentConfig, agent: &'a A, start: usize) -> Self {
        Self {
            cfg: cfg.clone(),
            agent,
            start,
            actions: Vec::new(),
            accounts: BTreeMap::new(),
            holdings: BTreeMap::new(),
        }
    }

    /// A resumed session's accounts and positions at the bars it decided before, as its
    /// journal recorded them: it decides those bars again on them.
    pub fn restore(&mut self, journal: &Replayed) {
        for (bar_time, account, holdings) in journal.accounts() {
            self.set_account(bar_time, account);
            if let Some(held) = holdings {
                self.set_holdings(bar_time, held);
            }
        }
    }

    /// Whether the broker's account at the close of the bar that opened at `bar_time` is
    /// set already.
    pub fn has_account(&self, bar_time: i64) -> bool {
        self.accounts.contains_key(&bar_time)
    }

    /// The broker's positions in the model's tickers (in their order) at the close of the
    /// bar that opened at `bar_time`, where an order of the session filled in part: the
    /// replay puts them in place of the env's from that close on
    /// ([`super::broker_account`]). The first report of a bar stands; returns whether
    /// this one is the first.
    pub fn set_holdings(&mut self, bar_time: i64, held: &[Holding]) -> bool {
        insert_first(&mut self.holdings, bar_time, held.into())
    }

    /// The broker's account at the close of the bar that opened at `bar_time`: the replay
    /// puts it in place of the simulated one from that bar on. The first report of a bar
    /// stands (a restart re-derives a decision from the account it was taken on); returns
    /// whether this one is the first.
    pub fn set_account(&mut self, bar_time: i64, account: AccountSnapshot) -> bool {
        insert_first(&mut self.accounts, bar_time, account)
    }

    /// The replay of bars `start..=newest + 1` of `live`'s market plus the next bar
    /// (`opens` once it opened), with the broker's accounts, driven by `actor`.
    fn replay(
        &self,
        live: &LiveMarket,
        next_time: i64,
        opens: Option<&[f64]>,
        actor: impl FnMut(usize, &[f32], &[bool], &mut [u8]),
    ) -> Result<ReplayResult, SessionError> {
        let newest = self.newest(live)?;
        let market = live.market_with_next(next_time, opens);
        let cfg = replay_config(&self.cfg, None, newest + 2 - self.start);
        let by_bar: Arc<[Option<AccountSnapshot>]> =
            live.times().iter().map(|t| self.accounts.get(t).copied()).chain(std::iter::once(None)).collect();
        let holdings: Arc<[Option<Arc<[Holding]>>]> =
            live.times().iter().map(|t| self.holdings.get(t).cloned()).chain(std::iter::once(None)).collect();
        let extend = |app: &mut bevy_app::App| {
            if by_bar.iter().any(Option::is_some) || holdings.iter().any(Option::is_some) {
                app.add_plugins(BrokerAccountPlugin { by_bar: by_bar.clone(), holdings: holdings.clone() });
            }
        };
        // The env runs as when the decisions were taken (with the masks when the agent
        // reads them), as a backtest of the agent does.
        let masked = self.agent.action_masks();
        Ok(replay_extended(&cfg, market, self.start..newest + 2, String::new(), masked, extend, actor)?)
    }

    /// Live bar of the first decision.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Bars decided so far.
    pub fn decided(&self, n_tickers: usize) -> usize {
        self.actions.len() / n_tickers.max(1)
    }

    /// The newest bar of `live`, at or after the session's first.
    fn newest(&self, live: &LiveMarket) -> Result<usize, SessionError> {
        match live.n_bars().checked_sub(1) {
            Some(newest) if newest >= self.start => Ok(newest),
            _ => Err(SessionError::BeforeStart { start: self.start, bars: live.n_bars() }),
        }
    }

    /// The actions at the newest bar of `live`, deciding every bar not decided yet (the
    /// newest, or all of them after a restart). `next_time` is the next bar's open (the
    /// broker's clock): the day it falls on is the day the orders count on.
    ///
    /// # Errors
    /// [`SessionError`] when the env cannot replay or the agent fails.
    pub fn decide(&mut self, live: &LiveMarket, next_time: i64) -> Result<&[u8], SessionError> {
        let d = live.tickers().len();
        let newest = self.newest(live)?;
        self.decide_through(live, next_time, newest)?;
        let i = (newest - self.start) * d;
        Ok(&self.actions[i..i + d])
    }

    /// Decides every bar of `live` up to `last` not decided yet (a later bar holds in the
    /// replay, and stays undecided).
    fn decide_through(&mut self, live: &LiveMarket, next_time: i64, last: usize) -> Result<(), SessionError> {
        let d = live.tickers().len();
        if self.decided(d) < last + 1 - self.start {
            let decided_before = self.actions.len();
            let masked = self.agent.action_masks();
            let (agent, start) = (self.agent, self.start);
            let mut recorded = std::mem::take(&mut self.actions);
            let mut failure = None;
            let actor = |t: usize, obs: &[f32], masks: &[bool], out: &mut [u8]| {
                let i = (t - start) * d;
                if let Some(a) = recorded.get(i..i + d) {
                    out.copy_from_slice(a);
                    return;
                }
                if t > last {
                    out.fill(0);
                    return;
                }
                let chosen =
                    if masked { agent.try_act_masked(obs, masks, 1, true) } else { agent.try_act(obs, 1, true) };
                match chosen {
                    Ok(a) => out.copy_from_slice(&a),
                    Err(e) => {
                        out.fill(0);
                        failure.get_or_insert(e);
                    }
                }
                recorded.extend_from_slice(out);
            };
            let result = self.replay(live, next_time, None, actor);
            self.actions = recorded;
            if let Some(e) = failure {
                // Forget what this attempt decided: it is decided again at the next one.
                self.actions.truncate(decided_before);
                return Err(SessionError::Agent(Box::new(e)));
            }
            result?;
        }
        Ok(())
    }

    /// The orders of the newest decision, filled by the env at `opens` (the next bar's
    /// opening prices, which opened at `next_time`), in the order the env fills them; and
    /// every position (signed shares) before them.
    ///
    /// # Errors
    /// [`SessionError::NotDecided`] before [`Session::decide`] at the newest bar, or the
    /// env's refusal.
    pub fn orders(
        &self,
        live: &LiveMarket,
        next_time: i64,
        opens: &[f64],
    ) -> Result<(Vec<PlannedOrder>, Vec<f64>), SessionError> {
        let d = live.tickers().len();
        let newest = self.newest(live)?;
        if self.decided(d) != newest + 1 - self.start {
            return Err(SessionError::NotDecided);
        }
        let result = self.replay(live, next_time, Some(opens), self.recorded_actor(d))?;
        Ok(self.fills_at(live, next_time, &result, newest + 1))
    }

    /// The env's fills at the newest bar of `live` (the orders of the decision at the bar
    /// before, as they were sent), in the order the env filled them, and every position
    /// before them; none at the session's first bar. The bars before the newest not decided
    /// yet (after a restart) are decided first. `next_time` as for [`Session::decide`].
    ///
    /// # Errors
    /// [`SessionError`] when the env cannot replay or the agent fails.
    pub fn filled_at_newest(
        &mut self,
        live: &LiveMarket,
        next_time: i64,
    ) -> Result<(Vec<PlannedOrder>, Vec<f64>), SessionError> {
        let d = live.tickers().len();
        let newest = self.newest(live)?;
        if newest == self.start {
            return Ok((Vec::new(), vec![0.0; d]));
        }
        self.decide_through(live, next_time, newest - 1)?;
        let result = self.replay(live, next_time, None, self.recorded_actor(d))?;
        Ok(self.fills_at(live, next_time, &result, newest))
    }

    /// An actor that replays the recorded actions, and holds at a bar not decided yet.
    fn recorded_actor(&self, d: usize) -> impl FnMut(usize, &[f32], &[bool], &mut [u8]) + '_ {
        move |t: usize, _obs: &[f32], _masks: &[bool], out: &mut [u8]| {
            let i = (t - self.start) * d;
            match self.actions.get(i..i + d) {
                Some(a) => out.copy_from_slice(a),
                None => out.fill(0),
            }
        }
    }

    /// The fills of `result` at live bar `fill_bar` as orders, and every position before
    /// them: the broker's where the session has them at a close before ([`Session::set_holdings`]),
    /// plus the env's fills and the splits since (a split at `fill_bar` included: it comes
    /// before the open's fills, as at the broker). `next_time` as for [`Session::decide`].
    fn fills_at(
        &self,
        live: &LiveMarket,
        next_time: i64,
        result: &ReplayResult,
        fill_bar: usize,
    ) -> (Vec<PlannedOrder>, Vec<f64>) {
        let times = live.times();
        let upto = times.get(fill_bar).copied().unwrap_or(i64::MAX);
        let adopted = self.holdings.range(..upto).next_back().map(|(t, h)| (times.partition_point(|x| x < t), h));
        let (from, mut held) = match adopted {
            // Put in place at that bar's close, after its fills.
            Some((bar, h)) => (bar + 1, h.iter().map(|h| h.shares).collect()),
            None => (0, vec![0.0; live.tickers().len()]),
        };
        // As the corporate-actions plugin splits the env's positions: at the split's bar,
        // before its fills, fractions kept (the live market's `with_fractional_splits`).
        let mut splits = live.splits_through(next_time).into_iter().filter(|&(bar, ..)| bar >= from).peekable();
        let mut split_through = |held: &mut Vec<f64>, bar: usize| {
            while let Some((_, k, ratio)) = splits.next_if(|&(b, ..)| b <= bar) {
                held[k] *= ratio;
            }
        };
        for trade in result.trades.iter().filter(|t| (from..fill_bar).contains(&(t.bar as usize))) {
            split_through(&mut held, trade.bar as usize);
            held[usize::from(trade.ticker)] += signed(trade);
        }
        split_through(&mut held, fill_bar);
        let before = held.clone();
        let orders = result
            .trades
            .iter()
            .filter(|t| t.bar as usize == fill_bar)
            .map(|trade| {
                let k = usize::from(trade.ticker);
                let order = planned(trade, held[k]);
                held[k] += signed(trade);
                order
            })
            .collect();
        (orders, before)
    }
}

/// The open time of a new session's first decision bar, on the broker's `clock`, with
/// `newest` the open time of the newest bar received: the first close the session can act
/// on. While the market is open, the bar in progress's (today's session, or the hour in
/// progress, [`nyse::hourly_bar`]). While it is closed, the newest bar's, decided at once
/// (its orders go out at the next open, as a decision at that close would have), once the
/// last bar of the latest session that closed has been served; `None` before (start again
/// in a few minutes).
pub fn first_decision_bar(interval: Interval, clock: &MarketClock, newest: i64) -> Option<i64> {
    first_decision_bar_skipping(interval, clock, newest, |_| false)
}

/// [`first_decision_bar`], for a broker whose calendar lacks some of the built-in
/// calendar's sessions (`called_off`: called off after this build): their bars never come.
pub fn first_decision_bar_skipping(
    interval: Interval,
    clock: &MarketClock,
    newest: i64,
    called_off: impl Fn(chrono::NaiveDate) -> bool,
) -> Option<i64> {
    if clock.is_open {
        return Some(match interval {
            Interval::Day => calendar::session_timestamps(&[calendar::ny_date(clock.now)], Interval::Day)[0],
            Interval::Hour => nyse::hourly_bar(clock.now).map_or(clock.now, |(start, _)| start),
        });
    }
    // The latest session that closed at or before now (a few days back at most).
    let mut date = calendar::ny_date(clock.now);
    let close = loop {
        if let Some((_, close)) = nyse::session(date).filter(|&(_, close)| close <= clock.now && !called_off(date)) {
            break close;
        }
        date = date.pred_opt()?;
    };
    let last_bar = match interval {
        Interval::Day => calendar::session_timestamps(&[date], Interval::Day)[0],
        Interval::Hour => nyse::hourly_bar(close - 1).map_or(close, |(start, _)| start),
    };
    (newest >= last_bar).then_some(newest)
}

/// Inserts `value` at `key` unless the key has one already (the first report of a bar
/// stands); returns whether it did.
fn insert_first<V>(map: &mut BTreeMap<i64, V>, key: i64, value: V) -> bool {
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(value);
            true
        }
        std::collections::btree_map::Entry::Occupied(_) => false,
    }
}

/// The signed shares of a fill.
fn signed(trade: &TradeRecord) -> f64 {
    if trade.side == Side::Buy { trade.shares } else { -trade.shares }
}

/// A fill as an order, given the position before it.
fn planned(trade: &TradeRecord, held: f64) -> PlannedOrder {
    let side = if trade.side == Side::Buy { OrderSide::Buy } else { OrderSide::Sell };
    let closes = held * signed(trade) < 0.0;
    PlannedOrder {
        ticker: usize::from(trade.ticker),
        side,
        shares: trade.shares,
        price: trade.fill_price,
        leg: if closes { Leg::Close } else { Leg::Open },
        forced: trade.forced.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    /// A clock at `now` as Alpaca's reads.
    fn clock(now: &str) -> MarketClock {
        let now = at(now);
        let (open, close) = nyse::next_session(now);
        let is_open = nyse::is_open_at(now);
        let next_open = if is_open { nyse::next_session(close).0 } else { open };
        MarketClock { now, is_open, next_open, next_close: close }
    }

    #[test]
    fn a_new_session_decides_first_at_the_next_close_it_can_act_on() {
        let midnight = |d: &str| at(&format!("{d}T00:00:00-04:00"));
        let day = |now: &str, newest: &str| first_decision_bar(Interval::Day, &clock(now), midnight(newest));
        // Closed, the latest session's bar served: the newest bar, decided at once (evening,
        // night, before the open, a weekend, a holiday); not served yet: start later.
        assert_eq!(day("2024-07-02T18:00:00-04:00", "2024-07-02"), Some(midnight("2024-07-02")));
        assert_eq!(day("2024-07-03T08:00:00-04:00", "2024-07-02"), Some(midnight("2024-07-02")));
        assert_eq!(day("2024-07-04T12:00:00-04:00", "2024-07-03"), Some(midnight("2024-07-03")));
        assert_eq!(day("2024-07-06T12:00:00-04:00", "2024-07-05"), Some(midnight("2024-07-05")));
        assert_eq!(day("2024-07-02T16:01:00-04:00", "2024-07-01"), None);
        assert_eq!(day("2024-07-03T14:00:00-04:00", "2024-07-02"), None, "the half day's bar");
        // Open: today's close.
        assert_eq!(day("2024-07-02T11:00:00-04:00", "2024-07-01"), Some(midnight("2024-07-02")));
        let hour = |now: &str, newest: &str| first_decision_bar(Interval::Hour, &clock(now), at(newest));
        // Open: the hour in progress.
        assert_eq!(
            hour("2024-07-02T11:45:00-04:00", "2024-07-02T10:30:00-04:00"),
            Some(at("2024-07-02T11:30:00-04:00"))
        );
        assert_eq!(
            hour("2024-07-02T15:59:00-04:00", "2024-07-02T14:30:00-04:00"),
            Some(at("2024-07-02T15:30:00-04:00"))
        );
        // Closed: the session's last hour, decided at once, once served.
        let last = "2024-07-03T12:30:00-04:00";
        assert_eq!(hour("2024-07-03T13:30:00-04:00", last), Some(at(last)));
        assert_eq!(hour("2024-07-05T08:00:00-04:00", last), Some(at(last)));
        assert_eq!(hour("2024-07-03T13:01:00-04:00", "2024-07-03T11:30:00-04:00"), None);
        // Jul 2 called off (the clock closed all day): the Jul 1 bar, once served.
        let jul2 = chrono::NaiveDate::from_ymd_opt(2024, 7, 2).unwrap();
        let mut off = clock("2024-07-02T18:00:00-04:00");
        off.next_open = at("2024-07-03T09:30:00-04:00");
        let skipping = |newest: &str| first_decision_bar_skipping(Interval::Day, &off, midnight(newest), |d| d == jul2);
        assert_eq!(skipping("2024-07-01"), Some(midnight("2024-07-01")));
        assert_eq!(first_decision_bar(Interval::Day, &off, midnight("2024-07-01")), None, "waits for Jul 2's");
    }
}
