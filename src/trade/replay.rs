//! The replay broker: market data replayed bar by bar as if it arrived live, and an
//! account that fills orders with the env's own models, so that a replayed session and a
//! backtest over the same bars can be compared order for order.
//!
//! Time: the broker stands at the close of bar `now`; [`Broker::bars_since`] never returns
//! a later bar, and [`Broker::clock`] tells that close's time and whether the session goes
//! on after it, by the NYSE calendar. [`ReplayBroker::advance`] moves to the next bar: the orders accepted since
//! the last move fill at its open — sells first, then buys, each in the order received (the
//! env's order within a bar) — priced by the fill model ([`Fills`]) with the decision bar's
//! cost inputs, charged the fee model's fees ([`Fees`]), exactly as execution prices an
//! order of the same size; then the account is marked at the bar's close.
//!
//! Answers as a broker gives them: a buy whose cost and fees exceed the cash is rejected
//! (`insufficient buying power`), a sell of more shares than held without short selling
//! too (`insufficient qty`), an order of an unknown ticker (`unknown symbol`); an order of a
//! ticker the fill model cannot fill is cancelled at the open (`no liquidity`). A day trade
//! is a sell (or a cover) of a position bought (or shorted) on the same trading day; the
//! account reports those of the PDT window (`pdt.window_days`, FINRA's five trading days).
//! Shorts pay the env's borrow fee (`short_selling.borrow_rate`, per trading day, on their
//! value at the close), and a sale of a long has the fees it cannot pay waived, as in the
//! env: the account the session reads at each close is the env's.

use super::broker::{
    Account, Broker, BrokerBar, BrokerError, BrokerPosition, MarketClock, OrderRequest, OrderSide, OrderState,
    OrderStatus, Quantity,
};
use crate::config::EnvironmentConfig;
use crate::env::MarketData;
use crate::execution::{
    CostModel, FeeModel, Fees, FillInput, FillModel, FillQuote, Fills, SpreadSlippageImpact, UsEquityFees,
    long_sale_fees,
};
use crate::market::Panel;
use crate::short_selling::borrow_fee;
use std::collections::BTreeMap;

/// One position of the replayed account.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Held {
    shares: f64,
    avg_cost: f64,
    /// Trading day of the latest buy (short sale for a short).
    last_open_day: Option<u32>,
}

/// A deterministic broker over recorded bars (see the module docs).
pub struct ReplayBroker {
    market: MarketData,
    /// Each bar's high and low, bar-major like the market; `None`: the bars' highs and lows
    /// are their open and close's extremes.
    high_low: Option<(Vec<f64>, Vec<f64>)>,
    /// The next bar has opened ([`ReplayBroker::open_next`]): its opening prices are known.
    opened: bool,
    /// Each bar's open time, Unix seconds.
    times: Vec<i64>,
    now: usize,
    /// Bars from this one on are not served: the end of the period replayed.
    end: usize,
    cash: f64,
    held: Vec<Held>,
    orders: BTreeMap<String, OrderState>,
    /// Orders accepted since the last move, in arrival order.
    pending: Vec<OrderRequest>,
    /// Equity at the close of the last bar of the previous trading day.
    last_equity: f64,
    /// Trading day of every day trade.
    day_trades: Vec<u32>,
    cost: CostModel,
    fills: Fills,
    fees: Fees,
    fractional: bool,
    short_selling: bool,
    /// The shorts' yearly borrow rate (0 without short selling).
    borrow_rate: f64,
    /// Trading days of the PDT window the account counts day trades over.
    pdt_window: u32,
}

impl ReplayBroker {
    /// An account of `cfg.initial_cash` standing at the close of bar `start` of `market`,
    /// with the costs and fees of `cfg`; `times[t]` is bar t's open (Unix seconds).
    ///
    /// # Errors
    /// [`BrokerError::Other`] when `times` does not have one entry per bar, `start` is
    /// past the last bar or the market has no ticker names.
    pub fn new(
        cfg: &EnvironmentConfig,
        market: MarketData,
        times: Vec<i64>,
        start: usize,
    ) -> Result<Self, BrokerError> {
        if times.len() != market.n_bars() || start >= market.n_bars() {
            return Err(BrokerError::Other(format!(
                "replay: {} bar times and start bar {start} for {} bars",
                times.len(),
                market.n_bars()
            )));
        }
        let n = market.n_tickers();
        if market.tickers().len() != n {
            return Err(BrokerError::Other("replay: the market has no ticker names".into()));
        }
        Ok(Self {
            market,
            high_low: None,
            opened: false,
            end: times.len(),
            times,
            now: start,
            cash: cfg.initial_cash,
            held: vec![Held::default(); n],
            orders: BTreeMap::new(),
            pending: Vec::new(),
            last_equity: cfg.initial_cash,
            day_trades: Vec::new(),
            cost: CostModel::from_config(cfg),
            fills: Fills::SpreadSlippageImpact(SpreadSlippageImpact),
            fees: Fees::UsEquity(UsEquityFees::new(&cfg.fees)),
            fractional: cfg.fractional_shares,
            short_selling: cfg.short_selling.enabled,
            borrow_rate: if cfg.short_selling.enabled { cfg.short_selling.borrow_rate } else { 0.0 },
            pdt_window: cfg.pdt.window_days,
        })
    }

    /// Ends the replay before bar `end` (the end of the period asked for, exclusive): the
    /// last bar served is `end − 1`, as the market's last bar would be.
    pub fn ending_at(mut self, end: usize) -> Self {
        self.end = end.clamp(self.now + 1, self.times.len());
        self
    }

    /// The bars' highs and lows from `panel` (the one the market was built from), so that
    /// [`Broker::bars_since`] returns the real bars.
    ///
    /// # Errors
    /// [`BrokerError::Other`] when the panel's shape is not the market's.
    pub fn with_high_low(mut self, panel: &Panel) -> Result<Self, BrokerError> {
        let (n, d) = (self.market.n_bars(), self.market.n_tickers());
        if panel.n_bars() != n || panel.n_tickers() != d {
            return Err(BrokerError::Other(format!(
                "replay: a panel of {} bars × {} tickers for a market of {n} × {d}",
                panel.n_bars(),
                panel.n_tickers()
            )));
        }
        let bar_major = |column: fn(&Panel, usize) -> &[f64]| -> Vec<f64> {
            (0..n).flat_map(|t| (0..d).map(move |k| column(panel, k)[t])).collect()
        };
        self.high_low = Some((bar_major(Panel::high), bar_major(Panel::low)));
        Ok(self)
    }

    /// The open time of the bar after the one that opened at `bar_time` (`i64::MAX` after
    /// the last bar).
    ///
    /// # Errors
    /// [`BrokerError::Other`] when no bar opened at `bar_time`.
    pub fn bar_after(&self, bar_time: i64) -> Result<i64, BrokerError> {
        match self.times.binary_search(&bar_time) {
            Ok(t) => Ok(self.times.get(t + 1).copied().unwrap_or(i64::MAX)),
            Err(_) => Err(BrokerError::Other(format!("replay: no bar opened at {bar_time}"))),
        }
    }

    /// The bar the broker stands at (its close has printed).
    pub fn now(&self) -> usize {
        self.now
    }

    /// Moves to the next bar's open: its opening prices become known
    /// ([`Broker::opening_prices`]); orders sent now fill at that open when
    /// [`ReplayBroker::advance`] completes the bar. Returns false at the last bar.
    pub fn open_next(&mut self) -> bool {
        self.opened = self.now + 1 < self.end;
        self.opened
    }

    /// Equity marked at bar `t`'s close.
    fn equity_at(&self, t: usize) -> f64 {
        self.cash + self.held.iter().zip(self.market.close_row(t)).map(|(h, c)| h.shares * c).sum::<f64>()
    }

    fn ticker(&self, name: &str) -> Option<usize> {
        self.market.tickers().iter().position(|t| t == name)
    }

    /// Moves to the next bar: fills the pending orders at its open, then marks at its
    /// close. Returns false (and does nothing) at the last bar.
    pub fn advance(&mut self) -> bool {
        let (t, next) = (self.now, self.now + 1);
        if next >= self.end {
            return false;
        }
        self.opened = false;
        let days = self.market.day(next) - self.market.day(t);
        if days > 0 {
            // The close before a new trading day, before that day's fills.
            self.last_equity = self.equity_at(t);
        }
        let mut pending = std::mem::take(&mut self.pending);
        // Sells first, then buys, each in arrival order (a stable sort).
        pending.sort_by_key(|o| o.side == OrderSide::Buy);
        for order in pending {
            let state = self.fill(t, next, &order);
            self.orders.insert(order.client_order_id.clone(), state);
        }
        // The shorts' borrow fee, as the env charges it: per trading day, on their value at
        // the close.
        if days > 0 && self.borrow_rate > 0.0 {
            let shares = self.held.iter().map(|h| h.shares);
            self.cash -= borrow_fee(self.borrow_rate, days, shares, self.market.close_row(next));
        }
        self.now = next;
        true
    }

    /// Cash paid into the account (a deposit; negative: a withdrawal), as a broker's
    /// account sees transfers: the env's account does not know about it until the session
    /// reads the broker's ([`super::broker_account`]).
    pub fn transfer(&mut self, amount: f64) {
        self.cash += amount;
    }

    /// The budget a buy of `shares` comes from, and its quote: the notional `N` whose
    /// [`FillModel::buy`] buys `shares` (`N = shares × price(N)`, the price's impact being
    /// that of `N` before impact). The impact moves the price by basis points, so the fixed
    /// point is reached to the last bits in a few rounds.
    fn budget_for(&self, input: &FillInput, shares: f64) -> (f64, FillQuote) {
        let mut notional = shares * input.reference;
        let mut quote = self.fills.buy(&self.cost, input, notional, true).1;
        for _ in 0..32 {
            let next = shares * quote.buy_price();
            let converged = (next - notional).abs() <= f64::EPSILON * next.abs();
            notional = next;
            quote = self.fills.buy(&self.cost, input, notional, true).1;
            if converged {
                break;
            }
        }
        (notional, quote)
    }

    /// Fills one order decided at bar `t` at bar `next`'s open.
    fn fill(&mut self, t: usize, next: usize, order: &OrderRequest) -> OrderState {
        let mut state = accepted(order);
        let Some(k) = self.ticker(&order.ticker) else { unreachable!("checked when submitted") };
        let open = self.market.open_row(next)[k];
        let input = FillInput::at(&self.market, t, k, open);
        let done = |state: &mut OrderState, status, reason: &str| {
            state.status = status;
            state.reason = Some(reason.to_string());
        };
        if !self.fills.can_fill(&self.cost, &input) || open <= 0.0 {
            done(&mut state, OrderStatus::Canceled, "no liquidity");
            return state;
        }
        let day = self.market.day(next);
        let h = self.held[k];
        // Signed shares, the fill price, and the cash the fill costs (negative: received).
        let (shares, price, cost) = match (order.side, order.quantity) {
            (OrderSide::Sell, q) => {
                let shares = match q {
                    Quantity::Shares(s) => s,
                    Quantity::Notional(n) => n / open,
                };
                if !self.short_selling && shares > h.shares.max(0.0) * (1.0 + 1e-12) {
                    done(&mut state, OrderStatus::Rejected, "insufficient qty");
                    return state;
                }
                let quote = self.fills.sell(&self.cost, &input, shares);
                let (price, notional) = (quote.sell_price(), shares * quote.sell_price());
                let mut fees = self.fees.sell_fees(shares, notional);
                if h.shares > 0.0 {
                    fees = long_sale_fees(fees, self.cash, notional);
                }
                (-shares, price, fees - notional)
            }
            (OrderSide::Buy, Quantity::Shares(shares)) if h.shares < 0.0 => {
                // A cover, quoted by its shares as the env quotes one.
                let quote = self.fills.cover(&self.cost, &input, shares);
                let (price, spent) = (quote.buy_price(), shares * quote.buy_price());
                (shares, price, spent + self.fees.buy_fees(shares, spent))
            }
            (OrderSide::Buy, Quantity::Shares(shares)) => {
                // The env quotes a buy by its budget and sends the shares it bought: the
                // budget that buys them, at the env's quote, prices them the same (to the
                // last bits with fractional shares; with whole shares the env's budget was
                // up to a share more, its impact a hair larger: cents over a long session).
                let (notional, quote) = self.budget_for(&input, shares);
                let spent = if self.fractional { notional } else { shares * quote.buy_price() };
                (shares, quote.buy_price(), spent + self.fees.buy_fees(shares, spent))
            }
            (OrderSide::Buy, Quantity::Notional(notional)) => {
                // As execution sizes a buy of this notional.
                let (shares, quote) = self.fills.buy(&self.cost, &input, notional, self.fractional);
                let spent = if self.fractional { notional } else { shares * quote.buy_price() };
                (shares, quote.buy_price(), spent + self.fees.buy_fees(shares, spent))
            }
        };
        if shares == 0.0 {
            done(&mut state, OrderStatus::Rejected, "quantity rounds to zero shares");
            return state;
        }
        // A cover is paid from the short's proceeds; anything else needs the cash.
        if shares > 0.0 && h.shares >= 0.0 && cost > self.cash {
            done(&mut state, OrderStatus::Rejected, "insufficient buying power");
            return state;
        }
        self.cash -= cost;
        // An exit of a position opened today is a day trade.
        let exits = h.shares * shares < 0.0;
        if exits && h.last_open_day == Some(day) {
            self.day_trades.push(day);
        }
        let after = h.shares + shares;
        let held = &mut self.held[k];
        if after == 0.0 {
            *held = Held::default();
        } else if h.shares == 0.0 || h.shares * after < 0.0 {
            // Opened, or went through zero: the new side's cost is this fill's.
            *held = Held { shares: after, avg_cost: price, last_open_day: Some(day) };
        } else if !exits {
            held.avg_cost = (h.avg_cost * h.shares.abs() + shares.abs() * price) / after.abs();
            held.shares = after;
            held.last_open_day = Some(day);
        } else {
            held.shares = after;
        }
        state.status = OrderStatus::Filled;
        state.filled_shares = shares.abs();
        state.fill_price = Some(price);
        state
    }
}

fn accepted(order: &OrderRequest) -> OrderState {
    OrderState {
        client_order_id: order.client_order_id.clone(),
        ticker: order.ticker.clone(),
        side: order.side,
        quantity: order.quantity,
        status: OrderStatus::Accepted,
        filled_shares: 0.0,
        fill_price: None,
        reason: None,
    }
}

impl Broker for ReplayBroker {
    fn account(&mut self) -> Result<Account, BrokerError> {
        let day = self.market.day(self.now);
        // The PDT window (FINRA's: the last five trading days), today included.
        let count = self.day_trades.iter().filter(|&&d| d + self.pdt_window > day).count() as u32;
        Ok(Account {
            cash: self.cash,
            equity: self.equity_at(self.now),
            last_equity: self.last_equity,
            day_trade_count: count,
            pattern_day_trader: false,
            trading_blocked: false,
        })
    }

    fn positions(&mut self) -> Result<Vec<BrokerPosition>, BrokerError> {
        Ok(self
            .held
            .iter()
            .zip(self.market.tickers())
            .filter(|(h, _)| h.shares != 0.0)
            .map(|(h, t)| BrokerPosition { ticker: t.clone(), shares: h.shares, avg_cost: h.avg_cost })
            .collect())
    }

    fn submit(&mut self, order: &OrderRequest) -> Result<OrderState, BrokerError> {
        let id = &order.client_order_id;
        if self.orders.contains_key(id) {
            return Err(BrokerError::Duplicate(id.clone()));
        }
        let reject = |reason: &str| BrokerError::Rejected { client_order_id: id.clone(), reason: reason.into() };
        if self.ticker(&order.ticker).is_none() {
            return Err(reject("unknown symbol"));
        }
        let (Quantity::Shares(q) | Quantity::Notional(q)) = order.quantity;
        if !(q.is_finite() && q > 0.0) {
            return Err(reject("quantity must be positive"));
        }
        let state = accepted(order);
        self.orders.insert(id.clone(), state.clone());
        self.pending.push(order.clone());
        Ok(state)
    }

    fn cancel(&mut self, client_order_id: &str) -> Result<(), BrokerError> {
        if let Some(i) = self.pending.iter().position(|o| o.client_order_id == client_order_id) {
            self.pending.remove(i);
            if let Some(state) = self.orders.get_mut(client_order_id) {
                state.status = OrderStatus::Canceled;
            }
        }
        Ok(())
    }

    fn order(&mut self, client_order_id: &str) -> Result<Option<OrderState>, BrokerError> {
        Ok(self.orders.get(client_order_id).cloned())
    }

    fn bars_since(&mut self, tickers: &[String], since: i64) -> Result<Vec<BrokerBar>, BrokerError> {
        let ks: Vec<usize> = tickers
            .iter()
            .map(|t| self.ticker(t).ok_or_else(|| BrokerError::Other(format!("replay: unknown ticker {t}"))))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for t in (0..=self.now).filter(|&t| self.times[t] >= since) {
            for &k in &ks {
                let (o, c) = (self.market.open_row(t)[k], self.market.close_row(t)[k]);
                let cell = t * self.market.n_tickers() + k;
                let (high, low) = match &self.high_low {
                    Some((h, l)) => (h[cell], l[cell]),
                    None => (o.max(c), o.min(c)),
                };
                out.push(BrokerBar {
                    ticker: self.market.tickers()[k].clone(),
                    time: self.times[t],
                    open: o,
                    high,
                    low,
                    close: c,
                    volume: self.market.volume(t, k).unwrap_or(0.0),
                });
            }
        }
        Ok(out)
    }

    fn opening_prices(&mut self, tickers: &[String], bar_open: i64) -> Result<Option<Vec<f64>>, BrokerError> {
        if !self.opened {
            return Ok(None);
        }
        if self.times[self.now + 1] != bar_open {
            return Err(BrokerError::late(bar_open, self.times[self.now + 1]));
        }
        let row = self.market.open_row(self.now + 1);
        tickers
            .iter()
            .map(|t| {
                self.ticker(t).map(|k| row[k]).ok_or_else(|| BrokerError::Other(format!("replay: unknown ticker {t}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The broker stands at the close of bar `now`: the next bar's open when that bar opens
    /// in the same NYSE session (the market is open between the two), else the session's
    /// close (half days and special hours included, [`crate::market::nyse`]). `next_open` is
    /// the next bar's open and `next_close` its session's close (`i64::MAX` after the last
    /// bar).
    fn clock(&mut self) -> Result<MarketClock, BrokerError> {
        use crate::market::nyse;
        let (_, session_close) = nyse::next_session(self.times[self.now]);
        let next = self.times[..self.end].get(self.now + 1).copied();
        let now = next.filter(|&n| n < session_close).unwrap_or(session_close);
        Ok(MarketClock {
            now,
            is_open: now < session_close && nyse::is_open_at(now),
            next_open: next.unwrap_or(i64::MAX),
            next_close: next.map_or(i64::MAX, |n| nyse::next_session(n).1),
        })
    }
}
