//! Paper and live trading (`ploutos trade`, issue 15), built up in steps. What is here so
//! far, each piece tested on its own:
//!
//! * [`broker`]: the [`Broker`] trait `trade` drives (account, positions, orders, bars,
//!   clock) and its types; [`replay::ReplayBroker`], the deterministic account of record
//!   for tests, which fills with the env's own fill and fee models; [`alpaca`], Alpaca's
//!   REST API (feature `alpaca`, part of `cli`).
//! * [`order_id`]: client order ids derived from (run, bar, ticker, leg), so that a restart
//!   never doubles an order.
//! * [`journal`]: every decision, order and answer as JSON lines, synced per bar, read back
//!   at a restart (a line cut by a crash is dropped).
//! * [`safety`]: the maximum order notional, the maximum daily loss and the kill switch.
//!
//! The session calendar is [`crate::market::nyse`].

#[cfg(feature = "alpaca")]
pub mod alpaca;
pub mod broker;
pub mod journal;
pub mod live;
pub mod order_id;
pub mod replay;
pub mod run;
pub mod safety;
pub mod session;

pub use broker::{
    Account, Broker, BrokerBar, BrokerError, BrokerPosition, MarketClock, OrderRequest, OrderSide, OrderState,
    OrderStatus, Quantity,
};
pub use journal::{Entry, Journal, Replayed};
pub use live::{LiveError, LiveMarket};
pub use order_id::{Leg, MAX_ID_LEN, client_order_id};
pub use replay::ReplayBroker;
pub use run::{Paced, SentOrder, TradeError, TradeOptions, TradeSummary, trade};
pub use safety::{Limits, Stop};
pub use session::{PlannedOrder, Session, SessionError};
