//! Paper and live trading (`ploutos trade`, issue 15): a model traded bar by bar through
//! a broker with the systems that trained and backtested it.
//!
//! * [`live`]: bars arriving one timestamp at a time become the market rows a backtest
//!   builds from the whole file, with incremental features ([`crate::features::IncrementalFeatures`]);
//!   the broker's splits adjust the features and split the env's positions as the broker's.
//! * [`session`]: the decision at each close and the orders it means at the next open,
//!   from a replay of the env over the session's bars (parity with `backtest` by
//!   construction), on the broker's account ([`broker_account`]: its cash, previous-close
//!   equity and day-trade count replace the simulated ones).
//! * [`run`]: the loop: fetch, limits, decide, reconcile, send, journal; [`Paced`] brokers
//!   say when a bar opens and closes.
//! * [`broker`]: the [`Broker`] trait (account, positions, orders, bars, clock, opening
//!   prices, splits) and its types; [`replay::ReplayBroker`], the deterministic account of record
//!   for tests, which fills with the env's own fill and fee models; [`alpaca`], Alpaca's
//!   REST API (feature `alpaca`, part of `cli`), paced by Alpaca's clock for daily bars and
//!   for hourly ones aligned with the training data's (09:30, 10:30, …).
//! * [`order_id`]: client order ids derived from (run, session tag, bar, ticker, leg), so
//!   that a restart never doubles an order and a new session never takes an old one's.
//! * [`journal`]: every decision, order and answer as JSON lines, synced per bar, read back
//!   at a restart (a line cut by a crash is dropped).
//! * [`safety`]: the maximum order notional, the maximum daily loss and the kill switch.
//!
//! The session calendar is [`crate::market::nyse`].

#[cfg(feature = "alpaca")]
pub mod alpaca;
pub mod broker;
pub mod broker_account;
pub mod journal;
pub mod live;
pub mod order_id;
pub mod replay;
pub mod run;
pub mod safety;
pub mod session;

pub use broker::{
    Account, Broker, BrokerBar, BrokerError, BrokerPosition, MarketClock, OrderRequest, OrderSide, OrderState,
    OrderStatus, Quantity, Split,
};
pub use broker_account::{AccountSnapshot, BrokerAccountPlugin, CASH_TOLERANCE, Holding};
pub use journal::{Entry, Journal, Replayed};
pub use live::{LiveError, LiveMarket};
pub use order_id::{Leg, MAX_ID_LEN, client_order_id};
pub use replay::ReplayBroker;
pub use run::{Paced, SentOrder, TradeError, TradeOptions, TradeSummary, extend_live, session_tag, trade};
pub use safety::{Interrupt, Limits, Stop};
pub use session::{PlannedOrder, Session, SessionError, first_decision_bar, first_decision_bar_skipping};
