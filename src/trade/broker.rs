//! What `ploutos trade` asks of a broker, whatever it is: the account, the positions, the
//! orders, the bars and the clock. The replay broker (the account of record for tests) and
//! Alpaca's REST API implement it.

use serde::{Deserialize, Serialize};

/// The account as the broker reports it: what the observation and the rules read at each
/// bar close instead of the simulated account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub cash: f64,
    /// Cash + long value − short liability, at the broker's latest marks.
    pub equity: f64,
    /// Equity at the previous trading day's close (FINRA's PDT equity).
    pub last_equity: f64,
    /// Day trades in the broker's rolling five-business-day window.
    pub day_trade_count: u32,
    /// The broker flags the account as a pattern day trader.
    pub pattern_day_trader: bool,
    /// Trading is blocked (a restricted or closed account): nothing is sent.
    pub trading_blocked: bool,
}

/// One position held at the broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerPosition {
    pub ticker: String,
    /// Signed: negative for a short.
    pub shares: f64,
    pub avg_cost: f64,
}

/// Side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderSide {
    Buy,
    Sell,
}

/// How much an order trades, as brokers take it (Alpaca's `qty` or `notional`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Shares, > 0 (fractional where the broker allows).
    Shares(f64),
    /// Dollars, > 0: the seed's buys are sized in cash, and their shares depend on the
    /// fill price, unknown when the order is sent.
    Notional(f64),
}

/// A market order for the next open, as `ploutos trade` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Derived from (run, session tag, bar, ticker, leg) by [`super::client_order_id`]: a broker that
    /// has seen it refuses a second order with it, so a restart never doubles an order.
    pub client_order_id: String,
    pub ticker: String,
    pub side: OrderSide,
    pub quantity: Quantity,
}

/// Where an order stands at the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, not filled yet.
    Accepted,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
}

impl OrderStatus {
    /// The order can no longer fill.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Filled | Self::Canceled | Self::Rejected | Self::Expired)
    }
}

/// An order as the broker knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub client_order_id: String,
    pub ticker: String,
    pub side: OrderSide,
    pub quantity: Quantity,
    pub status: OrderStatus,
    pub filled_shares: f64,
    /// Average fill price; `None` before any fill.
    pub fill_price: Option<f64>,
    /// The broker's reason for a rejection, as it gave it.
    pub reason: Option<String>,
}

/// One bar of one ticker, timestamped at its open (Unix seconds, UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerBar {
    pub ticker: String,
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// The market's clock as the broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketClock {
    /// Now (Unix seconds, UTC).
    pub now: i64,
    /// The regular session is open.
    pub is_open: bool,
    /// The next session's open (the next bar's, for the replay broker).
    pub next_open: i64,
    pub next_close: i64,
}

/// Why a broker call failed. `Transient` failures (HTTP 429, 5xx, a timeout) may be retried
/// with backoff; the others may not: retrying a rejected order cannot make it pass.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker: {0} (transient, retried)")]
    Transient(String),
    #[error("broker rejected the order {client_order_id}: {reason}")]
    Rejected { client_order_id: String, reason: String },
    #[error("broker: an order with client id {0} exists already")]
    Duplicate(String),
    #[error("broker: {0}")]
    Other(String),
}

impl BrokerError {
    /// Opening prices asked for the bar that opened at `bar_open` while the bar that opened
    /// at `trading` trades: the loop is late, and nothing is sent for the bar it missed.
    pub fn late(bar_open: i64, trading: i64) -> Self {
        let at = |t: i64| crate::market::calendar::ny_datetime(t).format("%Y-%m-%d %H:%M %Z").to_string();
        Self::Other(format!(
            "the orders are for the bar that opened at {}, the bar trading now opened at {}: the loop is late and sends nothing for it",
            at(bar_open),
            at(trading)
        ))
    }
}

/// A stock split, as the broker's corporate actions list it.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub ticker: String,
    /// The session on which the share count re-bases and the price adjusts (New York).
    pub ex_date: chrono::NaiveDate,
    /// New shares per old share: 4 for a 4-for-1 split, 0.1 for a 1-for-10 reverse split.
    pub ratio: f64,
}

/// A broker `ploutos trade` can trade with.
///
/// Implementations must make [`Broker::submit`] idempotent on
/// [`OrderRequest::client_order_id`]: a second submission of an id the broker has seen
/// answers [`BrokerError::Duplicate`] and sends nothing.
pub trait Broker {
    /// The account now.
    fn account(&mut self) -> Result<Account, BrokerError>;
    /// Every open position.
    fn positions(&mut self) -> Result<Vec<BrokerPosition>, BrokerError>;
    /// Sends a market order for the next open.
    fn submit(&mut self, order: &OrderRequest) -> Result<OrderState, BrokerError>;
    /// Cancels an order not filled yet (a no-op for a final one).
    fn cancel(&mut self, client_order_id: &str) -> Result<(), BrokerError>;
    /// The order with this client id, if the broker has it.
    fn order(&mut self, client_order_id: &str) -> Result<Option<OrderState>, BrokerError>;
    /// The bars of `tickers` that opened at or after `since` (Unix seconds), oldest first.
    fn bars_since(&mut self, tickers: &[String], since: i64) -> Result<Vec<BrokerBar>, BrokerError>;
    /// The market clock.
    fn clock(&mut self) -> Result<MarketClock, BrokerError>;
    /// The price each of `tickers` opened at in the bar that opened at `bar_open` (the bar
    /// after the decision's, [`super::Paced::next_bar_open`]), once it has opened (`None`
    /// before): what the orders of the last close are sized at.
    ///
    /// # Errors
    /// [`BrokerError::Other`] when the bar now trading is a later one: the loop is late (a
    /// machine that slept), and prices of another bar would size orders meant for this one.
    fn opening_prices(&mut self, tickers: &[String], bar_open: i64) -> Result<Option<Vec<f64>>, BrokerError>;
    /// The splits of `tickers` whose ex-date is in `from..=to`, in any order. A broker whose
    /// bars are already adjusted for splits (the replay broker's) has none: the default.
    fn splits(
        &mut self,
        _tickers: &[String],
        _from: chrono::NaiveDate,
        _to: chrono::NaiveDate,
    ) -> Result<Vec<Split>, BrokerError> {
        Ok(Vec::new())
    }
}
