//! The replay broker (`ploutos::trade::ReplayBroker`): it fills an order exactly as the env
//! fills the same order over the same bars (shares, price, fees, cash), never shows a bar
//! after the present one, and answers as a broker: duplicates, unknown symbols, buying
//! power, quantities, cancels, day trades.

use ploutos::config::EnvironmentConfig;
use ploutos::env::{EpisodeBounds, MarketData, Side};
use ploutos::trade::{Broker, BrokerError, OrderRequest, OrderSide, OrderStatus, Quantity, ReplayBroker};
use ploutos::{EnvOptions, TradingEnv};

const START: usize = 200;

fn market() -> MarketData {
    MarketData::random_walk(400, 2, 3, 11).with_tickers(&["AAA".into(), "BBB".into()]).expect("names")
}

fn times(n: usize) -> Vec<i64> {
    (0..n as i64).map(|t| 1_700_000_000 + 3_600 * t).collect()
}

fn order(id: &str, ticker: &str, side: OrderSide, quantity: Quantity) -> OrderRequest {
    OrderRequest { client_order_id: id.into(), ticker: ticker.into(), side, quantity }
}

/// The env buys AAA at bar 200 (20% of the cash: $2,000 of notional) and sells it at bar
/// 206; the broker, given a $2,000 buy and then a sell of the shares bought, fills both at
/// the same shares, prices and fees, and its cash after each equals the env's.
#[test]
fn fills_like_the_env() {
    let cfg = EnvironmentConfig { bankruptcy_pct: 0.0, ..EnvironmentConfig::default() };
    let bounds = EpisodeBounds { first: START as u32, last: 399, random_start: false };
    let mut env = TradingEnv::new(&cfg, market(), EnvOptions::replay(bounds)).expect("env");
    env.reset(0);
    env.step(&[1, 0]).expect("step");
    for _ in 0..5 {
        env.step(&[0, 0]).expect("step");
    }
    env.step(&[2, 0]).expect("step");
    let trades = env.take_trades(0);
    assert_eq!(trades.iter().map(|t| t.side).collect::<Vec<_>>(), [Side::Buy, Side::Sell]);

    let mut broker = ReplayBroker::new(&cfg, market(), times(400), START).expect("broker");
    broker.submit(&order("b", "AAA", OrderSide::Buy, Quantity::Notional(2_000.0))).unwrap();
    broker.advance();
    let b = broker.order("b").unwrap().unwrap();
    assert_eq!(b.status, OrderStatus::Filled);
    assert_eq!((b.filled_shares, b.fill_price), (trades[0].shares, Some(trades[0].fill_price)));
    assert_eq!(broker.account().unwrap().cash, trades[0].cash_after);
    for _ in 0..5 {
        broker.advance();
    }
    broker.submit(&order("s", "AAA", OrderSide::Sell, Quantity::Shares(b.filled_shares))).unwrap();
    broker.advance();
    let s = broker.order("s").unwrap().unwrap();
    assert_eq!((s.filled_shares, s.fill_price), (trades[1].shares, Some(trades[1].fill_price)));
    assert_eq!(broker.account().unwrap().cash, trades[1].cash_after);
    assert!(broker.positions().unwrap().is_empty());
    assert_eq!(broker.now(), START + 7);
}

#[test]
fn answers_as_a_broker() {
    let cfg = EnvironmentConfig::default();
    let mut broker = ReplayBroker::new(&cfg, market(), times(400), START).expect("broker");
    // No bar after the present one.
    let bars = broker.bars_since(&["AAA".into(), "BBB".into()], 0).unwrap();
    assert_eq!(bars.len(), 2 * (START + 1));
    assert_eq!(bars.last().unwrap().time, times(400)[START]);
    assert_eq!(broker.clock().unwrap().next_open, times(400)[START + 1]);

    let buy = order("pl-x-1-AAA-o", "AAA", OrderSide::Buy, Quantity::Notional(3_000.0));
    assert_eq!(broker.submit(&buy).unwrap().status, OrderStatus::Accepted);
    assert!(matches!(broker.submit(&buy), Err(BrokerError::Duplicate(_))), "an id is used once");
    let unknown = order("u", "ZZZ", OrderSide::Buy, Quantity::Shares(1.0));
    assert!(matches!(broker.submit(&unknown), Err(BrokerError::Rejected { reason, .. }) if reason == "unknown symbol"));
    let too_much = order("big", "BBB", OrderSide::Buy, Quantity::Notional(50_000.0));
    broker.submit(&too_much).unwrap();
    let naked = order("naked", "BBB", OrderSide::Sell, Quantity::Shares(1.0));
    broker.submit(&naked).unwrap();
    let cancelled = order("c", "BBB", OrderSide::Buy, Quantity::Shares(1.0));
    broker.submit(&cancelled).unwrap();
    broker.cancel("c").unwrap();
    assert!(broker.advance());
    let status = |b: &mut ReplayBroker, id: &str| b.order(id).unwrap().map(|o| (o.status, o.reason));
    assert_eq!(status(&mut broker, "pl-x-1-AAA-o").unwrap().0, OrderStatus::Filled);
    assert_eq!(status(&mut broker, "big"), Some((OrderStatus::Rejected, Some("insufficient buying power".into()))));
    assert_eq!(status(&mut broker, "naked"), Some((OrderStatus::Rejected, Some("insufficient qty".into()))));
    assert_eq!(status(&mut broker, "c").unwrap().0, OrderStatus::Canceled);
    let positions = broker.positions().unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].ticker, "AAA");
    // Sold at the next bar: a day trade when it is the same trading day.
    let shares = positions[0].shares;
    broker.submit(&order("out", "AAA", OrderSide::Sell, Quantity::Shares(shares))).unwrap();
    broker.advance();
    let account = broker.account().unwrap();
    let m = market();
    assert_eq!(account.day_trade_count, u32::from(m.day(broker.now()) == m.day(START + 1)));
    assert!((account.equity - account.cash).abs() < 1e-9, "flat: equity is cash");
}

/// Hourly bars of the NYSE's regular sessions from 2024-06-28 (a Friday): 09:30, 10:30, ...,
/// 15:30 on full days, up to 12:30 on a half day; weekends and holidays have none.
fn nyse_hourly_times(n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let mut date = chrono::NaiveDate::from_ymd_opt(2024, 6, 28).unwrap();
    while out.len() < n {
        if let Some((open, close)) = ploutos::market::nyse::session(date) {
            out.extend((open..close).step_by(3_600).take(n - out.len()));
        }
        date = date.succ_opt().unwrap();
    }
    out
}

/// The replay clock stands at each bar's close: inside a session the market is still open
/// and the next bar opens an hour later; at the last bar of a session (13:00 on the half day
/// of 2024-07-03) it is closed and the next open is the next session's (2024-07-05, after
/// Independence Day).
#[test]
fn the_clock_follows_the_nyse_sessions() {
    let cfg = EnvironmentConfig::default();
    let times = nyse_hourly_times(400);
    let ny =
        |d: u32, h: u32, m: u32| chrono::NaiveDate::from_ymd_opt(2024, 7, d).unwrap().and_hms_opt(h, m, 0).unwrap();
    let unix = |t: chrono::NaiveDateTime| {
        use chrono::TimeZone;
        chrono_tz::America::New_York.from_local_datetime(&t).unwrap().timestamp()
    };
    let at = |ts: i64| times.iter().position(|&t| t == ts).expect("a bar opens then");
    // 2024-07-03 10:30: the bar closes at 11:30, the session goes on.
    let mut broker = ReplayBroker::new(&cfg, market(), times.clone(), at(unix(ny(3, 10, 30)))).unwrap();
    let c = broker.clock().unwrap();
    assert_eq!((c.now, c.is_open, c.next_open), (unix(ny(3, 11, 30)), true, unix(ny(3, 11, 30))));
    assert_eq!(c.next_close, unix(ny(3, 13, 0)), "a half day");
    // 12:30, the half day's last bar: closed at 13:00 until the 5th (the 4th is a holiday).
    let mut broker = ReplayBroker::new(&cfg, market(), times.clone(), at(unix(ny(3, 12, 30)))).unwrap();
    let c = broker.clock().unwrap();
    assert_eq!((c.now, c.is_open), (unix(ny(3, 13, 0)), false));
    assert_eq!((c.next_open, c.next_close), (unix(ny(5, 9, 30)), unix(ny(5, 16, 0))));
}

/// Opening prices are those of the bar asked for: before it opens, none; once it opened,
/// its opens; asked for an earlier bar (a loop that fell behind), an error naming both.
#[test]
fn opening_prices_are_the_asked_bars_or_an_error() {
    let mut broker = ReplayBroker::new(&EnvironmentConfig::default(), market(), times(400), START).expect("broker");
    let tickers = ["AAA".to_string(), "BBB".to_string()];
    let next = times(400)[START + 1];
    assert_eq!(broker.opening_prices(&tickers, next).unwrap(), None);
    assert!(broker.open_next());
    assert_eq!(broker.opening_prices(&tickers, next).unwrap(), Some(market().open_row(START + 1).to_vec()));
    let late = broker.opening_prices(&tickers, times(400)[START]).unwrap_err();
    assert!(matches!(&late, BrokerError::Other(m) if m.contains("the loop is late")), "{late}");
}

/// A long bought with all the cash and sold after its price collapsed: the sale cannot pay
/// its commission, which the env waives down to what the account holds (no leverage on
/// longs); the broker waives it the same way, so its cash (which the session reads at each
/// close) is still the env's.
#[test]
fn a_sale_that_cannot_pay_its_fees_has_them_waived_as_in_the_env() {
    let n = 12;
    let price: Vec<f64> = (0..n).map(|t| if t < 4 { 100.0 } else { 0.01 }).collect();
    let columns = ploutos::env::MarketColumns {
        open: price.clone(),
        close: price,
        atr_frac: vec![0.01; n],
        ret_std: vec![0.01; n],
        mean_volume: vec![1e6; n],
        day: (0..n as u32).collect(),
        features: vec![0.0; n * 3],
    };
    let market = || MarketData::new(n, 1, 3, columns.clone()).unwrap().with_tickers(&["AAA".into()]).unwrap();
    let mut cfg = EnvironmentConfig {
        bankruptcy_pct: 0.0,
        buy_pct: 0.9,
        max_position_pct: 1.0,
        min_holding_bars: 0,
        ..EnvironmentConfig::default()
    };
    cfg.fees.commission_per_order = 800.0;
    let bounds = EpisodeBounds { first: 1, last: n as u32 - 1, random_start: false };
    let mut env = TradingEnv::new(&cfg, market(), EnvOptions::replay(bounds)).expect("env");
    env.reset(0);
    env.step(&[1]).expect("step");
    for _ in 0..4 {
        env.step(&[0]).expect("step");
    }
    env.step(&[2]).expect("step");
    let trades = env.take_trades(0);
    assert_eq!(trades.iter().map(|t| t.side).collect::<Vec<_>>(), [Side::Buy, Side::Sell]);
    let sale = &trades[1];
    assert!(sale.fees < 800.0, "the commission was waived in part: {}", sale.fees);

    let mut broker = ReplayBroker::new(&cfg, market(), times(n), 1).expect("broker");
    let shares = trades[0].shares;
    broker.submit(&order("b", "AAA", OrderSide::Buy, Quantity::Shares(shares))).unwrap();
    broker.advance();
    // The env priced the buy from its budget, the broker the shares it bought: the same
    // cash up to rounding.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
    assert!(close(broker.account().unwrap().cash, trades[0].cash_after));
    for _ in 0..4 {
        broker.advance();
    }
    broker.submit(&order("s", "AAA", OrderSide::Sell, Quantity::Shares(shares))).unwrap();
    broker.advance();
    assert_eq!(broker.order("s").unwrap().unwrap().status, OrderStatus::Filled);
    // Without the waiver the broker's cash would be hundreds of dollars below zero.
    assert!(close(broker.account().unwrap().cash, sale.cash_after), "{:?}", broker.account());
    assert!(sale.cash_after >= 0.0);
}
