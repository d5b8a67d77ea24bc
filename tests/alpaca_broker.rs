//! The Alpaca adapter against a real HTTP server on 127.0.0.1 that plays Alpaca's trading
//! and market-data endpoints, with the response shapes of Alpaca's documentation (and of
//! alpaca-py's models): accepted orders, rejections (insufficient buying power, PDT
//! protection), partial fills, HTTP 429 and 5xx, timeouts after the order was taken, a
//! restart in the middle of a day, paginated bars. No network beyond the loopback.
#![cfg(feature = "alpaca")]

use ploutos::config::Interval;
use ploutos::trade::alpaca::{AlpacaBroker, AlpacaConfig};
use ploutos::trade::{Broker, BrokerError, OrderRequest, OrderSide, OrderStatus, Quantity};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "PKTESTKEY";
const SECRET: &str = "s3cr3t-never-printed";

/// What the next POST /v2/orders meets before the order book sees it.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer this status (429 with `Retry-After: 0`), take no order.
    Status(u16),
    /// Take the order, then answer so late that the client has given up.
    TakeThenStall(Duration),
    /// Refuse with this status and Alpaca's message.
    Refuse(u16, &'static str),
}

#[derive(Default)]
struct State {
    account: Value,
    positions: Value,
    orders: Vec<Value>,
    faults: VecDeque<Fault>,
    /// Every request: method and path (query included).
    log: Vec<String>,
    /// Bars pages: (page token expected or None for the first, answer).
    bar_pages: Vec<(Option<String>, Value)>,
    /// The market's time (Unix seconds) when a test moves it: the clock then answers from
    /// the NYSE calendar at that time, as Alpaca's does.
    now: Option<i64>,
    /// AAPL's daily bars (time, open, high, low, close, volume) when a test trades on them:
    /// the bars route serves those that have started by `now` (today's while it trades, as
    /// Alpaca does), the snapshots today's once the session has opened.
    daily: Vec<(i64, f64, f64, f64, f64, f64)>,
    /// AAPL's 30-minute bars (time, open, high, low, close, volume) when a test trades
    /// hourly: the bars route serves those that have started by `now` (`30Min`), and a
    /// minute bar at each one's start with its open (`1Min`).
    halves: Vec<(i64, f64, f64, f64, f64, f64)>,
    /// Fill every order at once at the open of the bar in progress (the session's of
    /// `daily`, the hour's of `halves`), and move the positions and the cash: a broker
    /// whose market orders fill at the opening print.
    fill_at_open: bool,
    /// Sessions the exchange called off after the built-in calendar was written: the clock
    /// skips them (the bars route has none when a test removes them from `daily`).
    called_off: Vec<chrono::NaiveDate>,
    /// Cancels leave orders `pending_cancel` (a broker slow to carry them out) instead of
    /// canceling them.
    pending_cancels: bool,
    /// With `fill_at_open`, the next order fills this share of its shares (rounded down)
    /// and stays `partially_filled` until it is cancelled: a book too thin for it.
    fill_part: Option<f64>,
    /// Assets Alpaca describes otherwise than as an active, tradable, fractionable,
    /// shortable, easy-to-borrow name (`/v2/assets/{symbol}`), by symbol.
    assets: Vec<Value>,
    /// The last day `/v2/calendar` has (none: every day asked), and whether it answers at
    /// all (else 404).
    calendar_end: Option<chrono::NaiveDate>,
    calendar_missing: bool,
    /// Splits `/v1/corporate-actions` lists (`forward_split` or `reverse_split` in `type`,
    /// the rest as Alpaca writes them): forward splits on the first page, reverse splits on
    /// a second one.
    splits: Vec<Value>,
}

impl State {
    /// The daily bar of the latest session that has opened by `now`: today's once the bell
    /// has rung.
    fn session_bar(&self, now: i64) -> Option<(i64, f64, f64, f64, f64, f64)> {
        use ploutos::market::{calendar, nyse};
        self.daily
            .iter()
            .rev()
            .find(|b| nyse::session(calendar::ny_date(b.0)).is_some_and(|(open, _)| open <= now))
            .copied()
    }

    /// The opening print of the bar in progress at `now`.
    fn open_now(&self, now: i64) -> f64 {
        if self.halves.is_empty() {
            return self.session_bar(now).unwrap().1;
        }
        let (start, _) = ploutos::market::nyse::hourly_bar(now).expect("the session is open");
        self.halves.iter().find(|b| b.0 == start).unwrap().1
    }
}

/// The mock Alpaca: a tiny_http server on 127.0.0.1, one thread per request.
struct MockAlpaca {
    url: String,
    state: Arc<Mutex<State>>,
}

impl MockAlpaca {
    fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("an IP address"));
        let state = Arc::new(Mutex::new(State {
            account: json!({
                "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA2ZZTEST", "status": "ACTIVE",
                "currency": "USD", "cash": "10000.25", "equity": "12500.5", "last_equity": "12400",
                "buying_power": "20000.5", "long_market_value": "2500.25", "short_market_value": "0",
                "daytrade_count": 2, "pattern_day_trader": false, "trading_blocked": false,
                "account_blocked": false, "shorting_enabled": true, "multiplier": "2"
            }),
            positions: json!([
                {"asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": "AAPL", "exchange": "NASDAQ",
                 "asset_class": "us_equity", "avg_entry_price": "150.25", "qty": "10", "side": "long",
                 "market_value": "1600", "cost_basis": "1502.5", "qty_available": "10"},
                {"asset_id": "8ccae427-5dd0-45b3-b5fe-7ba5e422c766", "symbol": "TSLA", "exchange": "NASDAQ",
                 "asset_class": "us_equity", "avg_entry_price": "200", "qty": "-3", "side": "short",
                 "market_value": "-630", "cost_basis": "-600", "qty_available": "-3"}
            ]),
            ..State::default()
        }));
        let (s, st) = (Arc::clone(&server), Arc::clone(&state));
        std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || handle(request, &st));
            }
        });
        Self { url, state }
    }

    fn broker(&self, timeout: Duration) -> AlpacaBroker {
        let mut cfg = AlpacaConfig::new(&self.url, &self.url, KEY, SECRET, Interval::Hour);
        cfg.retries = 4;
        cfg.backoff = Duration::from_millis(20);
        cfg.timeout = timeout;
        AlpacaBroker::new(cfg)
    }

    fn posts(&self) -> usize {
        self.state.lock().unwrap().log.iter().filter(|l| l.starts_with("POST /v2/orders")).count()
    }

    fn orders(&self) -> Vec<Value> {
        self.state.lock().unwrap().orders.clone()
    }
}

fn respond(request: tiny_http::Request, status: u16, body: &Value, extra: Option<(&str, &str)>) {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    let mut response = tiny_http::Response::from_string(text)
        .with_status_code(status)
        .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap());
    if let Some((k, v)) = extra {
        response = response.with_header(tiny_http::Header::from_bytes(k, v).unwrap());
    }
    let _ = request.respond(response);
}

fn header<'a>(request: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

/// The `start` of a bars request (Unix seconds; 0 when absent).
fn start_of(url: &str) -> i64 {
    query(url, "start")
        .map(|s| s.replace("%3A", ":"))
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map_or(0, |t| t.timestamp())
}

fn query(url: &str, key: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn handle(mut request: tiny_http::Request, state: &Mutex<State>) {
    let method = request.method().to_string();
    let url = request.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    state.lock().unwrap().log.push(format!("{method} {url}"));
    if header(&request, "APCA-API-KEY-ID") != Some(KEY) || header(&request, "APCA-API-SECRET-KEY") != Some(SECRET) {
        return respond(request, 401, &json!({"code": 40110000, "message": "request is not authorized"}), None);
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/v2/calendar") => {
            // The NYSE's sessions, less those the exchange called off.
            let day = |k: &str| chrono::NaiveDate::parse_from_str(&query(&url, k).unwrap(), "%Y-%m-%d").unwrap();
            let (off, until, missing) = {
                let st = state.lock().unwrap();
                (st.called_off.clone(), st.calendar_end, st.calendar_missing)
            };
            if missing {
                return respond(request, 404, &json!({"message": "not found"}), None);
            }
            let end = until.map_or(day("end"), |u| u.min(day("end")));
            let days: Vec<Value> = day("start")
                .iter_days()
                .take_while(|d| *d <= end)
                .filter(|d| ploutos::market::nyse::session(*d).is_some() && !off.contains(d))
                .map(|d| json!({"date": d.format("%Y-%m-%d").to_string(), "open": "09:30", "close": "16:00"}))
                .collect();
            respond(request, 200, &Value::Array(days), None)
        }
        ("GET", "/v1/corporate-actions") => {
            // Those of the symbols asked for, processed in start..=end (Alpaca's `start` and
            // `end` are process dates, which may come before the ex-date).
            let day = |k: &str| query(&url, k).unwrap();
            let symbols = day("symbols").replace("%2C", ",");
            assert_eq!(day("types").replace("%2C", ","), "forward_split,reverse_split");
            let second = query(&url, "page_token").is_some();
            let kind = if second { "reverse_split" } else { "forward_split" };
            let listed: Vec<Value> = state
                .lock()
                .unwrap()
                .splits
                .iter()
                .filter(|s| s["type"] == kind && symbols.split(',').any(|t| s["symbol"] == t))
                .filter(|s| {
                    (day("start").as_str()..=day("end").as_str()).contains(&s["process_date"].as_str().unwrap())
                })
                .cloned()
                .collect();
            let body = if second {
                json!({"corporate_actions": {"reverse_splits": listed}, "next_page_token": null})
            } else {
                json!({"corporate_actions": {"forward_splits": listed}, "next_page_token": "page-2"})
            };
            respond(request, 200, &body, None)
        }
        ("GET", p) if p.starts_with("/v2/assets/") => {
            let symbol = p.trim_start_matches("/v2/assets/").to_string();
            let found = state.lock().unwrap().assets.iter().find(|a| a["symbol"] == symbol.as_str()).cloned();
            if found.as_ref().is_some_and(|a| a["missing"] == true) {
                return respond(request, 404, &json!({"code": 40410000, "message": "asset not found"}), None);
            }
            let asset = found.unwrap_or_else(|| {
                json!({"id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "class": "us_equity", "exchange": "NASDAQ",
                       "symbol": symbol, "name": symbol, "status": "active", "tradable": true, "marginable": true,
                       "shortable": true, "easy_to_borrow": true, "fractionable": true})
            });
            respond(request, 200, &asset, None)
        }
        ("GET", "/v2/account") => {
            let body = state.lock().unwrap().account.clone();
            respond(request, 200, &body, None)
        }
        ("GET", "/v2/positions") => {
            let body = state.lock().unwrap().positions.clone();
            respond(request, 200, &body, None)
        }
        ("GET", "/v2/clock") => {
            let now = state.lock().unwrap().now;
            let body = match now {
                None => json!({"timestamp": "2024-01-02T10:00:00.123456789-05:00", "is_open": true,
                               "next_open": "2024-01-03T09:30:00-05:00", "next_close": "2024-01-02T16:00:00-05:00"}),
                Some(now) => {
                    use ploutos::market::{calendar, nyse};
                    let rfc = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
                    let off = state.lock().unwrap().called_off.clone();
                    let session_after = |t: i64| {
                        let mut session = nyse::next_session(t);
                        while off.contains(&calendar::ny_date(session.0)) {
                            session = nyse::next_session(session.1);
                        }
                        session
                    };
                    let (open, close) = session_after(now);
                    let is_open = nyse::is_open_at(now) && !off.contains(&calendar::ny_date(now));
                    // Open: the next open is the following session's.
                    let next_open = if is_open { session_after(close).0 } else { open };
                    json!({"timestamp": rfc(now), "is_open": is_open, "next_open": rfc(next_open), "next_close": rfc(close)})
                }
            };
            respond(request, 200, &body, None)
        }
        ("GET", "/v2/stocks/bars") if !state.lock().unwrap().daily.is_empty() => {
            let st = state.lock().unwrap();
            let now = st.now.unwrap_or(i64::MAX);
            let since = start_of(&url);
            let rfc = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
            let bars: Vec<Value> = st
                .daily
                .iter()
                .filter(|b| b.0 >= since && b.0 <= now)
                .map(|&(t, o, h, l, c, v)| json!({"t": rfc(t), "o": o, "h": h, "l": l, "c": c, "v": v}))
                .collect();
            drop(st);
            respond(request, 200, &json!({"bars": {"AAPL": bars}, "next_page_token": null}), None)
        }
        ("GET", "/v2/stocks/bars") if !state.lock().unwrap().halves.is_empty() => {
            let st = state.lock().unwrap();
            let now = st.now.unwrap_or(i64::MAX);
            let since = start_of(&url);
            let minutes = query(&url, "timeframe").as_deref() == Some("1Min");
            let rfc = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
            let bars: Vec<Value> = st
                .halves
                .iter()
                .filter(|b| b.0 >= since && b.0 <= now)
                .map(|&(t, o, h, l, c, v)| {
                    if minutes {
                        json!({"t": rfc(t), "o": o, "h": o, "l": o, "c": o, "v": v / 30.0})
                    } else {
                        json!({"t": rfc(t), "o": o, "h": h, "l": l, "c": c, "v": v})
                    }
                })
                .collect();
            drop(st);
            respond(request, 200, &json!({"bars": {"AAPL": bars}, "next_page_token": null}), None)
        }
        ("GET", "/v2/stocks/snapshots") if !state.lock().unwrap().daily.is_empty() => {
            let st = state.lock().unwrap();
            let now = st.now.unwrap_or(0);
            let bar = st.session_bar(now);
            drop(st);
            let rfc = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
            let body = bar.map_or(json!({}), |(t, o, ..)| json!({"AAPL": {"dailyBar": {"t": rfc(t), "o": o}}}));
            respond(request, 200, &body, None)
        }
        ("GET", "/v2/stocks/snapshots") => {
            // AAPL's daily bar: today's once the session has opened (open 101.5), else the
            // previous session's (open 99).
            let now = state.lock().unwrap().now.unwrap_or(0);
            let (open, _) = ploutos::market::nyse::next_session(now - 8 * 3_600);
            let opened = ploutos::market::nyse::is_open_at(now) || now >= open;
            let day = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT04:00:00Z").to_string();
            let (t, o) = if opened { (day(open), 101.5) } else { (day(open - 86_400), 99.0) };
            respond(
                request,
                200,
                &json!({"AAPL": {"dailyBar": {"t": t, "o": o, "h": o, "l": o, "c": o, "v": 100}}}),
                None,
            )
        }
        ("POST", "/v2/orders") => {
            let mut text = String::new();
            request.as_reader().read_to_string(&mut text).unwrap();
            let body: Value = serde_json::from_str(&text).unwrap();
            let fault = state.lock().unwrap().faults.pop_front();
            match fault {
                Some(Fault::Status(code)) => {
                    return respond(request, code, &json!({"message": "try again"}), Some(("Retry-After", "0")));
                }
                Some(Fault::Refuse(code, message)) => {
                    return respond(request, code, &json!({"code": 40310000, "message": message}), None);
                }
                _ => {}
            }
            let id = body["client_order_id"].as_str().unwrap().to_string();
            let mut st = state.lock().unwrap();
            if st.orders.iter().any(|o| o["client_order_id"] == id.as_str()) {
                drop(st);
                return respond(
                    request,
                    422,
                    &json!({"code": 40010001, "message": "client_order_id must be unique"}),
                    None,
                );
            }
            let n = st.orders.len();
            let order = json!({
                "id": format!("61e69015-8549-4bfd-b9c3-01e75843f{n:03}"), "client_order_id": id,
                "created_at": "2024-01-02T21:00:01.1Z", "updated_at": "2024-01-02T21:00:01.1Z",
                "submitted_at": "2024-01-02T21:00:01.1Z", "filled_at": null, "expired_at": null,
                "canceled_at": null, "failed_at": null, "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
                "symbol": body["symbol"], "asset_class": "us_equity",
                "notional": body.get("notional").cloned().unwrap_or(Value::Null),
                "qty": body.get("qty").cloned().unwrap_or(Value::Null),
                "filled_qty": "0", "filled_avg_price": null, "order_class": "", "order_type": "market",
                "type": "market", "side": body["side"], "time_in_force": body["time_in_force"],
                "limit_price": null, "stop_price": null, "status": "accepted", "extended_hours": false
            });
            let mut order = order;
            if st.fill_at_open {
                let now = st.now.unwrap_or(0);
                let price = st.open_now(now);
                let asked: f64 = body["qty"].as_str().unwrap().parse().unwrap();
                let part = st.fill_part.take();
                let qty = part.map_or(asked, |p| (asked * p).floor());
                let signed = if body["side"] == "buy" { qty } else { -qty };
                order["status"] = json!(if part.is_some() { "partially_filled" } else { "filled" });
                order["filled_qty"] = json!(qty.to_string());
                order["filled_avg_price"] = json!(price.to_string());
                let symbol = body["symbol"].as_str().unwrap().to_string();
                let positions = st.positions.as_array_mut().unwrap();
                let held = positions.iter().position(|p| p["symbol"] == symbol.as_str());
                let before = held.map_or(0.0, |i| positions[i]["qty"].as_str().unwrap().parse::<f64>().unwrap());
                let after = before + signed;
                let cash: f64 = st.account["cash"].as_str().unwrap().parse().unwrap();
                st.account["cash"] = json!((cash - signed * price).to_string());
                let positions = st.positions.as_array_mut().unwrap();
                if let Some(i) = held {
                    positions.remove(i);
                }
                if after.abs() > 1e-9 {
                    positions
                        .push(json!({"symbol": symbol, "qty": after.to_string(), "avg_entry_price": price.to_string(),
                                          "side": if after > 0.0 { "long" } else { "short" }}));
                }
            }
            st.orders.push(order.clone());
            drop(st);
            if let Some(Fault::TakeThenStall(d)) = fault {
                std::thread::sleep(d);
            }
            respond(request, 200, &order, None)
        }
        ("GET", "/v2/orders:by_client_order_id") => {
            let id = query(&url, "client_order_id").unwrap_or_default();
            let found = state.lock().unwrap().orders.iter().find(|o| o["client_order_id"] == id.as_str()).cloned();
            match found {
                Some(o) => respond(request, 200, &o, None),
                None => respond(request, 404, &json!({"code": 40410000, "message": "order not found"}), None),
            }
        }
        ("DELETE", p) if p.starts_with("/v2/orders/") => {
            let id = p.trim_start_matches("/v2/orders/").to_string();
            let mut st = state.lock().unwrap();
            let pending = st.pending_cancels;
            match st.orders.iter_mut().find(|o| o["id"] == id.as_str()) {
                Some(o) if o["status"] == "filled" => {
                    drop(st);
                    respond(request, 422, &json!({"code": 42210000, "message": "order is not cancelable"}), None)
                }
                Some(o) => {
                    o["status"] = json!(if pending { "pending_cancel" } else { "canceled" });
                    drop(st);
                    respond(request, 204, &Value::Null, None)
                }
                None => {
                    drop(st);
                    respond(request, 404, &json!({"message": "order not found"}), None)
                }
            }
        }
        ("GET", "/v2/stocks/bars") => {
            let token = query(&url, "page_token");
            let page = state.lock().unwrap().bar_pages.iter().find(|(t, _)| *t == token).map(|(_, v)| v.clone());
            match page {
                Some(v) => respond(request, 200, &v, None),
                None => respond(request, 400, &json!({"message": "bad page token"}), None),
            }
        }
        _ => respond(request, 404, &json!({"message": "not found"}), None),
    }
}

fn order(id: &str, side: OrderSide, quantity: Quantity) -> OrderRequest {
    OrderRequest { client_order_id: id.to_string(), ticker: "AAPL".to_string(), side, quantity }
}

const PATIENT: Duration = Duration::from_secs(5);

#[test]
fn reads_the_account_positions_and_clock() {
    let alpaca = MockAlpaca::start();
    let mut broker = alpaca.broker(PATIENT);
    let a = broker.account().unwrap();
    assert_eq!((a.cash, a.equity, a.last_equity, a.day_trade_count), (10000.25, 12500.5, 12400.0, 2));
    assert!(!a.pattern_day_trader && !a.trading_blocked);
    let p = broker.positions().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].ticker.as_str(), p[0].shares, p[0].avg_cost), ("AAPL", 10.0, 150.25));
    // A short comes back with a negative share count.
    assert_eq!((p[1].ticker.as_str(), p[1].shares), ("TSLA", -3.0));
    let c = broker.clock().unwrap();
    // 10:00 New York (UTC−5) is 15:00 UTC.
    assert_eq!(c.now, 1_704_207_600);
    assert!(c.is_open);
    assert_eq!(c.next_open - c.now, 23 * 3600 + 30 * 60);
    // The bar after a bar, by the calendar: hourly, the next hour of the session, or the
    // next session's first; daily, the next session's open.
    use ploutos::trade::Paced;
    let et = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    let after = |b: &mut AlpacaBroker, t: &str| b.next_bar_open(et(t)).unwrap();
    assert_eq!(after(&mut broker, "2024-07-02T10:30:00-04:00"), et("2024-07-02T11:30:00-04:00"));
    assert_eq!(after(&mut broker, "2024-07-02T15:30:00-04:00"), et("2024-07-03T09:30:00-04:00"));
    assert_eq!(after(&mut broker, "2024-07-03T12:30:00-04:00"), et("2024-07-05T09:30:00-04:00"));
    let mut daily = AlpacaBroker::new(AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, SECRET, Interval::Day));
    assert_eq!(after(&mut daily, "2024-07-03T00:00:00-04:00"), et("2024-07-05T09:30:00-04:00"));
    assert_eq!(after(&mut daily, "2024-07-05T00:00:00-04:00"), et("2024-07-08T09:30:00-04:00"));
    // A blocked account says so.
    alpaca.state.lock().unwrap().account["account_blocked"] = json!(true);
    assert!(broker.account().unwrap().trading_blocked);
}

/// Alpaca's calendar says which of the built-in calendar's sessions were called off, as far
/// as it goes; unreadable, the built-in calendar stands.
#[test]
fn alpacas_calendar_marks_only_the_days_it_covers() {
    let date = |d: u32| chrono::NaiveDate::from_ymd_opt(2024, 7, d).unwrap();
    let alpaca = MockAlpaca::start();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.called_off = vec![date(9)];
        st.calendar_end = Some(date(10));
    }
    let mut broker = alpaca.broker(PATIENT);
    let off: Vec<bool> = [8, 9, 10, 11, 12].into_iter().map(|d| broker.called_off(date(d)).unwrap()).collect();
    assert_eq!(off, [false, true, false, false, false], "Jul 11 and 12 are past the calendar's end");
    assert!(!broker.called_off(date(6)).unwrap(), "a Saturday is no built-in session");

    let alpaca = MockAlpaca::start();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.called_off = vec![date(9)];
        st.calendar_missing = true;
    }
    let mut broker = alpaca.broker(PATIENT);
    assert!(!broker.called_off(date(9)).unwrap(), "unreadable: the built-in calendar stands");
}

/// Alpaca's description of a name, and what a model's env config cannot trade in it.
#[test]
fn assets_say_which_orders_alpaca_would_reject() {
    use ploutos::trade::alpaca::asset_refusal;
    let alpaca = MockAlpaca::start();
    alpaca.state.lock().unwrap().assets = vec![
        json!({"symbol": "BRK.A", "status": "active", "tradable": true, "fractionable": false,
               "shortable": false, "easy_to_borrow": false}),
        json!({"symbol": "ZZZZ", "missing": true}),
    ];
    let mut broker = alpaca.broker(PATIENT);
    let aapl = broker.asset("AAPL").unwrap();
    assert!(aapl.tradable && aapl.fractionable && aapl.shortable && aapl.easy_to_borrow);
    let berkshire = broker.asset("BRK.A").unwrap();
    assert!(!berkshire.fractionable && !berkshire.shortable);
    let err = broker.asset("ZZZZ").unwrap_err().to_string();
    assert!(err.contains("alpaca has no asset ZZZZ"), "{err}");

    // (fractional, shorts): whole long-only orders go anywhere tradable.
    assert_eq!(asset_refusal(&aapl, true, false), None);
    assert_eq!(asset_refusal(&aapl, false, true), None);
    assert_eq!(asset_refusal(&berkshire, false, false), None);
    let why = |a, f, s| asset_refusal(a, f, s).unwrap();
    assert!(why(&berkshire, true, false).contains("BRK.A is not fractionable"));
    assert!(why(&aapl, true, true).contains("whole shares only"));
    assert!(why(&berkshire, false, true).contains("BRK.A cannot be sold short"));
    let halted = ploutos::trade::alpaca::Asset { tradable: false, ..aapl.clone() };
    assert!(why(&halted, false, false).contains("AAPL is not tradable"));

    // Which tickers a model may sell short: short selling on, not in `no_short`, and an
    // action that opens a short.
    use ploutos::config::EnvironmentConfig;
    use ploutos::trade::alpaca::may_short;
    let mut env = EnvironmentConfig::default();
    assert!(!may_short(&env, "AAPL"), "long only by default");
    env.short_selling.enabled = true;
    env.short_selling.no_short = vec!["BRK.A".into()];
    assert!(may_short(&env, "AAPL") && !may_short(&env, "BRK.A"));
    env.target_positions.enabled = true;
    env.target_positions.levels = vec![0.0, 0.5, 1.0];
    assert!(!may_short(&env, "AAPL"), "no negative target");
    env.target_positions.levels = vec![-0.5, 0.0, 1.0];
    assert!(may_short(&env, "AAPL"));
}

/// Alpaca's corporate actions give the splits of the days asked for, forward and reverse,
/// their rates as numbers or strings, over two pages; a split without rates is refused.
#[test]
fn splits_come_from_alpacas_corporate_actions() {
    let date = |m: u32, d: u32| chrono::NaiveDate::from_ymd_opt(2024, m, d).unwrap();
    let alpaca = MockAlpaca::start();
    alpaca.state.lock().unwrap().splits = vec![
        // NVDA's 10-for-1 (payable the Friday before, ex-date the Monday).
        json!({"type": "forward_split", "id": "a1", "symbol": "NVDA", "cusip": "67066G104", "new_rate": 10,
               "old_rate": 1, "process_date": "2024-06-10", "ex_date": "2024-06-10", "record_date": "2024-06-06",
               "payable_date": "2024-06-07"}),
        json!({"type": "forward_split", "id": "a2", "symbol": "AAPL", "cusip": "037833100", "new_rate": 4,
               "old_rate": 1, "process_date": "2020-08-31", "ex_date": "2020-08-31"}),
        json!({"type": "reverse_split", "id": "a3", "symbol": "XYZ", "old_cusip": "1", "new_cusip": "2",
               "new_rate": "1", "old_rate": "20", "process_date": "2024-06-12", "ex_date": "2024-06-12"}),
        json!({"type": "forward_split", "id": "a4", "symbol": "MSFT", "cusip": "3", "new_rate": 2,
               "old_rate": 1, "process_date": "2024-06-11", "ex_date": "2024-06-11"}),
    ];
    let mut broker = alpaca.broker(PATIENT);
    let tickers = ["NVDA".to_string(), "AAPL".to_string(), "XYZ".to_string()];
    let splits = broker.splits(&tickers, date(6, 1), date(6, 30)).unwrap();
    let got: Vec<(&str, chrono::NaiveDate, f64)> =
        splits.iter().map(|s| (s.ticker.as_str(), s.ex_date, s.ratio)).collect();
    assert_eq!(got, [("NVDA", date(6, 10), 10.0), ("XYZ", date(6, 12), 0.05)], "not AAPL's of 2020, not MSFT");
    assert!(broker.splits(&tickers, date(6, 11), date(6, 11)).unwrap().is_empty());
    // Processed before its ex-date (by up to a week): still found when its day is asked.
    alpaca.state.lock().unwrap().splits[0]["process_date"] = json!("2024-06-05");
    let on_the_day = broker.splits(&tickers, date(6, 10), date(6, 10)).unwrap();
    assert_eq!(on_the_day.iter().map(|s| (s.ticker.as_str(), s.ex_date)).collect::<Vec<_>>(), [("NVDA", date(6, 10))]);

    alpaca.state.lock().unwrap().splits[0]["new_rate"] = json!(null);
    let err = broker.splits(&tickers, date(6, 1), date(6, 30)).unwrap_err().to_string();
    assert!(err.contains("split of NVDA") && err.contains("not positive numbers"), "{err}");
}

#[test]
fn an_accepted_order_is_found_by_its_client_id_and_reports_partial_fills() {
    let alpaca = MockAlpaca::start();
    let mut broker = alpaca.broker(PATIENT);
    let sent = broker.submit(&order("run-1-bar-7-AAPL-open", OrderSide::Buy, Quantity::Notional(500.0))).unwrap();
    assert_eq!(sent.status, OrderStatus::Accepted);
    assert_eq!(sent.quantity, Quantity::Notional(500.0));
    let posted = &alpaca.orders()[0];
    assert_eq!((posted["type"].as_str(), posted["time_in_force"].as_str()), (Some("market"), Some("day")));
    assert_eq!(posted["notional"], json!("500.00"));
    // The broker fills part of it.
    {
        let mut st = alpaca.state.lock().unwrap();
        st.orders[0]["status"] = json!("partially_filled");
        st.orders[0]["filled_qty"] = json!("2.5");
        st.orders[0]["filled_avg_price"] = json!("101.5");
    }
    let state = broker.order("run-1-bar-7-AAPL-open").unwrap().unwrap();
    assert_eq!(state.status, OrderStatus::PartiallyFilled);
    assert_eq!((state.filled_shares, state.fill_price), (2.5, Some(101.5)));
    assert!(broker.order("never-sent").unwrap().is_none());
    // Shares go as `qty`, with Alpaca's nine decimals.
    broker.submit(&order("run-1-bar-7-AAPL-exit", OrderSide::Sell, Quantity::Shares(3.0))).unwrap();
    assert_eq!(alpaca.orders()[1]["qty"], json!("3.000000000"));
    assert_eq!(alpaca.orders()[1]["side"], json!("sell"));
}

#[test]
fn rejections_keep_alpacas_reason_and_are_not_retried() {
    let alpaca = MockAlpaca::start();
    let mut broker = alpaca.broker(PATIENT);
    for (n, reason) in
        ["insufficient buying power", "trade denied due to pattern day trading protection"].into_iter().enumerate()
    {
        alpaca.state.lock().unwrap().faults.push_back(Fault::Refuse(403, reason));
        let id = format!("r-{n}");
        match broker.submit(&order(&id, OrderSide::Buy, Quantity::Shares(1.0))) {
            Err(BrokerError::Rejected { client_order_id, reason: got }) => {
                assert_eq!(client_order_id, id);
                assert!(got.contains(reason), "{got}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(alpaca.posts(), n + 1, "a rejection is not retried");
    }
    assert!(alpaca.orders().is_empty());
}

#[test]
fn rate_limits_and_server_errors_are_retried_into_one_order() {
    let alpaca = MockAlpaca::start();
    alpaca.state.lock().unwrap().faults.extend([Fault::Status(503), Fault::Status(429), Fault::Status(502)]);
    let mut broker = alpaca.broker(PATIENT);
    let sent = broker.submit(&order("retry-me", OrderSide::Buy, Quantity::Shares(2.0))).unwrap();
    assert_eq!(sent.status, OrderStatus::Accepted);
    assert_eq!(alpaca.posts(), 4);
    assert_eq!(alpaca.orders().len(), 1);
}

#[test]
fn a_timeout_after_the_order_was_taken_never_sends_it_twice() {
    let alpaca = MockAlpaca::start();
    alpaca.state.lock().unwrap().faults.push_back(Fault::TakeThenStall(Duration::from_millis(1500)));
    let mut broker = alpaca.broker(Duration::from_millis(300));
    let sent = broker.submit(&order("slow-answer", OrderSide::Buy, Quantity::Shares(2.0))).unwrap();
    assert_eq!(sent.client_order_id, "slow-answer");
    // One POST: the client gave up waiting, and its retry asked for the order by its client
    // id first and found it.
    assert_eq!(alpaca.posts(), 1);
    assert_eq!(alpaca.orders().len(), 1);
    let log = alpaca.state.lock().unwrap().log.clone();
    assert_eq!(log[0], "POST /v2/orders");
    assert!(log[1].starts_with("GET /v2/orders:by_client_order_id?client_order_id=slow-answer"), "{log:?}");
}

#[test]
fn a_broker_that_stays_down_gives_a_transient_error_and_no_order() {
    let alpaca = MockAlpaca::start();
    alpaca.state.lock().unwrap().faults.extend(std::iter::repeat_n(Fault::Status(503), 10));
    let mut broker = alpaca.broker(PATIENT);
    let err = broker.submit(&order("down", OrderSide::Buy, Quantity::Shares(1.0))).unwrap_err();
    assert!(matches!(err, BrokerError::Transient(_)), "{err}");
    assert_eq!(alpaca.posts(), 5, "the first attempt and 4 retries");
    assert!(alpaca.orders().is_empty());
}

#[test]
fn a_restart_in_the_middle_of_the_day_does_not_double_an_order() {
    let alpaca = MockAlpaca::start();
    let request = order("run-1-bar-9-AAPL-open", OrderSide::Buy, Quantity::Notional(250.0));
    alpaca.broker(PATIENT).submit(&request).unwrap();
    // A new process (a new adapter) sends the same decision again.
    let mut restarted = alpaca.broker(PATIENT);
    match restarted.submit(&request) {
        Err(BrokerError::Duplicate(id)) => assert_eq!(id, request.client_order_id),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(alpaca.orders().len(), 1);
    // And it finds the order the first process sent.
    assert_eq!(restarted.order(&request.client_order_id).unwrap().unwrap().status, OrderStatus::Accepted);
}

#[test]
fn cancel_cancels_an_open_order_and_leaves_a_filled_one() {
    let alpaca = MockAlpaca::start();
    let mut broker = alpaca.broker(PATIENT);
    broker.submit(&order("open-one", OrderSide::Buy, Quantity::Shares(1.0))).unwrap();
    broker.submit(&order("filled-one", OrderSide::Buy, Quantity::Shares(1.0))).unwrap();
    alpaca.state.lock().unwrap().orders[1]["status"] = json!("filled");
    broker.cancel("open-one").unwrap();
    broker.cancel("filled-one").unwrap();
    broker.cancel("unknown").unwrap();
    assert_eq!(broker.order("open-one").unwrap().unwrap().status, OrderStatus::Canceled);
    assert_eq!(broker.order("filled-one").unwrap().unwrap().status, OrderStatus::Filled);
    let deletes = alpaca.state.lock().unwrap().log.iter().filter(|l| l.starts_with("DELETE")).count();
    assert_eq!(deletes, 1, "a final order is not sent a cancel");
}

/// Hourly models: Alpaca's 30-minute bars, every page, become the training data's hours
/// (09:30, 10:30, … New York), only those of the regular session that have closed.
#[test]
fn bars_follow_the_pages_and_come_back_as_closed_session_hours_in_time_order() {
    let alpaca = MockAlpaca::start();
    let et = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    let bar = |t: &str, o: f64, h: f64, l: f64, c: f64, v: f64| json!({"t": t, "o": o, "h": h, "l": l, "c": c, "v": v, "n": 9, "vw": o});
    {
        let mut st = alpaca.state.lock().unwrap();
        st.now = Some(et("2024-01-02T11:35:00-05:00"));
        st.bar_pages = vec![
            (
                None,
                json!({"bars": {"AAPL": [bar("2024-01-02T13:00:00Z", 9.0, 9.0, 9.0, 9.0, 50.0),
                                         bar("2024-01-02T14:30:00Z", 10.0, 11.0, 9.5, 10.5, 1200.0),
                                         bar("2024-01-02T15:00:00Z", 10.5, 11.5, 10.0, 11.2, 800.0)],
                                "MSFT": [bar("2024-01-02T14:30:00Z", 20.0, 21.0, 19.0, 20.5, 800.0)]},
                       "next_page_token": "page-2"}),
            ),
            (
                Some("page-2".to_string()),
                json!({"bars": {"AAPL": [bar("2024-01-02T15:30:00Z", 11.2, 11.3, 10.1, 10.2, 900.0),
                                         bar("2024-01-02T16:30:00Z", 10.2, 10.4, 10.0, 10.3, 700.0)]},
                       "next_page_token": null}),
            ),
        ];
    }
    let mut broker = alpaca.broker(PATIENT);
    let bars = broker.bars_since(&["AAPL".to_string(), "MSFT".to_string()], 1_704_200_000).unwrap();
    let got: Vec<(&str, i64, [f64; 5])> =
        bars.iter().map(|b| (b.ticker.as_str(), b.time, [b.open, b.high, b.low, b.close, b.volume])).collect();
    let (h930, h1030) = (et("2024-01-02T09:30:00-05:00"), et("2024-01-02T10:30:00-05:00"));
    // Pre-market (08:00) is not a session bar, and the 11:30 hour has not closed at 11:35.
    assert_eq!(
        got,
        vec![
            ("AAPL", h930, [10.0, 11.5, 9.5, 11.2, 2000.0]),
            ("MSFT", h930, [20.0, 21.0, 19.0, 20.5, 800.0]),
            ("AAPL", h1030, [11.2, 11.3, 10.1, 10.2, 900.0]),
        ]
    );
    let log = alpaca.state.lock().unwrap().log.clone();
    let first = log.iter().find(|l| l.contains("/v2/stocks/bars")).unwrap();
    assert!(first.contains("symbols=AAPL%2CMSFT") || first.contains("symbols=AAPL,MSFT"), "{first}");
    assert!(first.contains("timeframe=30Min") && first.contains("start=2024-01-02T12%3A53%3A20Z"), "{first}");
}

#[test]
fn the_keys_never_show_in_debug_output_or_errors() {
    let alpaca = MockAlpaca::start();
    let mut cfg = AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, "wrong-secret-xyz", Interval::Day);
    assert!(!format!("{cfg:?}").contains("wrong-secret-xyz"));
    cfg.retries = 0;
    let err = AlpacaBroker::new(cfg).account().unwrap_err().to_string();
    assert!(err.contains("401") && err.contains("not authorized"), "{err}");
    assert!(!err.contains("wrong-secret-xyz") && !err.contains(KEY), "{err}");
}

#[test]
fn missing_keys_are_named() {
    // Not set in the test environment: the error names the variable.
    if std::env::var("APCA_API_KEY_ID").is_ok() {
        return;
    }
    let err = AlpacaConfig::from_env(false, Interval::Hour).unwrap_err().to_string();
    assert!(err.contains("APCA_API_KEY_ID"), "{err}");
}

/// Daily bars on Alpaca's clock: from the evening of 2024-07-03 (a half day), the next open
/// is 2024-07-05 09:30 (the 4th is a holiday); the opening prices appear once it opened; the
/// close is waited for (plus the settle time); the sleeps follow the market's clock.
#[test]
fn the_pacing_follows_alpacas_clock_over_a_holiday() {
    use ploutos::trade::Paced;
    let alpaca = MockAlpaca::start();
    let et = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    alpaca.state.lock().unwrap().now = Some(et("2024-07-03T20:00:00-04:00"));
    let mut cfg = AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, SECRET, Interval::Day);
    cfg.settle = Duration::from_secs(120);
    let state = Arc::clone(&alpaca.state);
    let mut broker = AlpacaBroker::new(cfg).with_sleep(move |d| {
        let mut s = state.lock().unwrap();
        s.now = s.now.map(|t| t + d.as_secs() as i64);
    });
    let now = |a: &MockAlpaca| a.state.lock().unwrap().now.unwrap();
    let tickers = ["AAPL".to_string()];
    let (jul3, jul5) = (et("2024-07-03T09:30:00-04:00"), et("2024-07-05T09:30:00-04:00"));
    assert_eq!(broker.opening_prices(&tickers, jul5).unwrap(), None, "closed: no opening prices");
    assert!(broker.wait_for_open().unwrap());
    let opened = now(&alpaca);
    assert!((jul5..jul5 + 60).contains(&opened), "{opened}");
    assert_eq!(broker.opening_prices(&tickers, jul5).unwrap(), Some(vec![101.5]));
    // A loop that slept through July 3's session does not size its orders at July 5's.
    let late = broker.opening_prices(&tickers, jul3).unwrap_err().to_string();
    assert!(late.contains("the loop is late") && late.contains("2024-07-03 09:30 EDT"), "{late}");
    assert!(broker.wait_for_close().unwrap());
    let closed = now(&alpaca);
    let close = et("2024-07-05T16:00:00-04:00");
    assert!((close + 120..close + 180).contains(&closed), "{closed}");
}

/// An interrupt (Ctrl-C) raised during the night's wait for the open ends it within a
/// second of the market's clock, not at the open: the loop then stops at its next check.
#[test]
fn an_interrupt_cuts_the_wait_for_the_open_short() {
    use ploutos::trade::{Interrupt, Paced};
    use std::sync::atomic::{AtomicBool, Ordering};
    let alpaca = MockAlpaca::start();
    let et = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    let evening = et("2024-07-03T20:00:00-04:00");
    alpaca.state.lock().unwrap().now = Some(evening);
    let cfg = AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, SECRET, Interval::Day);
    let (state, flag) = (Arc::clone(&alpaca.state), Arc::new(AtomicBool::new(false)));
    let raised = Arc::clone(&flag);
    let mut broker = AlpacaBroker::new(cfg)
        .with_sleep(move |d| {
            let mut s = state.lock().unwrap();
            s.now = s.now.map(|t| t + d.as_secs() as i64);
            // Ctrl-C ten minutes into the night.
            if s.now.is_some_and(|t| t >= evening + 600) {
                raised.store(true, Ordering::SeqCst);
            }
        })
        .with_interrupt(Interrupt(flag));
    assert!(!broker.wait_for_open().unwrap(), "the wait ends without an open");
    let now = alpaca.state.lock().unwrap().now.unwrap();
    assert!((evening + 600..evening + 602).contains(&now), "stopped waiting at {now}");
    assert!(!broker.wait_for_close().unwrap());
}

/// The whole loop on Alpaca's daily bars, dry run: the history is fetched, each session's
/// close brings one decision (none on the July 4 holiday), orders are sized at each open
/// from the snapshots and journaled as withheld, and the kill switch stops it.
#[test]
fn a_dry_run_loop_trades_daily_bars_on_alpacas_clock() {
    daily_loop(true);
}

/// The same loop sending its orders: Alpaca fills them at the opening print, the positions
/// match the session's at every open, every order is sent once.
#[test]
fn a_paper_loop_sends_each_order_once_and_follows_the_account() {
    daily_loop(false);
}

/// Buys on even decisions, sells on odd ones (one ticker): orders at every open.
struct Alternate(std::cell::Cell<u32>);

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl ploutos::backtest::Agent for Alternate {
    type Error = Never;
    fn try_act(&self, _obs: &[f32], _n: usize, _det: bool) -> Result<Vec<u8>, Never> {
        let i = self.0.replace(self.0.get() + 1);
        Ok(vec![if i.is_multiple_of(2) { 1 } else { 2 }])
    }
}

/// AAPL's daily bars of every session from 2023-06-01 to 2024-07-31, a deterministic walk.
fn daily_walk() -> Vec<(i64, f64, f64, f64, f64, f64)> {
    use ploutos::market::{calendar, nyse};
    let mut daily = Vec::new();
    let mut date = chrono::NaiveDate::from_ymd_opt(2023, 6, 1).unwrap();
    let mut price = 100.0f64;
    while date <= chrono::NaiveDate::from_ymd_opt(2024, 7, 31).unwrap() {
        if nyse::session(date).is_some() {
            let step = ((daily.len() * 7919 % 101) as f64 - 50.0) / 1_000.0;
            let (o, c) = (price, price * (1.0 + step));
            daily.push((calendar::ny_midnight(date), o, o.max(c) * 1.01, o.min(c) * 0.99, c, 1e6));
            price = c;
        }
        date = date.succ_opt().unwrap();
    }
    daily
}

/// A mock Alpaca with [`daily_walk`]'s bars at the evening of 2024-07-01, no positions,
/// filling orders at the open unless `dry_run`; an adapter whose sleeps move its clock and
/// create `kill` once the clock passes `stop_at`.
fn daily_setup(dry_run: bool, kill: &std::path::Path, stop_at: Arc<AtomicI64>) -> (MockAlpaca, AlpacaBroker) {
    let alpaca = MockAlpaca::start();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.daily = daily_walk();
        st.now = Some(et("2024-07-01T18:00:00-04:00"));
        st.positions = json!([]);
        st.fill_at_open = !dry_run;
    }
    let (state, k) = (Arc::clone(&alpaca.state), kill.to_path_buf());
    let mut cfg = AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, SECRET, Interval::Day);
    cfg.settle = Duration::from_secs(120);
    let broker = AlpacaBroker::new(cfg).with_sleep(move |d| {
        let mut s = state.lock().unwrap();
        let now = s.now.unwrap() + d.as_secs() as i64;
        s.now = Some(now);
        if now >= stop_at.load(Ordering::SeqCst) {
            std::fs::write(&k, "").unwrap();
        }
    });
    (alpaca, broker)
}

/// AAPL's daily bars from 2023-06-01 to the broker's present, as a live market.
fn daily_market(broker: &mut AlpacaBroker) -> ploutos::trade::LiveMarket {
    use ploutos::features::FeatureScaler;
    let tickers = vec!["AAPL".to_string()];
    let scaler = FeatureScaler { mean: vec![0.0; 55], std: vec![1.0; 55], clip: 5.0, fitted_on: None };
    let mut live = ploutos::trade::LiveMarket::new(tickers.clone(), Interval::Day, scaler);
    live.extend(&broker.bars_since(&tickers, et("2023-06-01T00:00:00-04:00")).unwrap()).unwrap();
    live
}

/// A session from live bar `start` that decides again on the accounts journaled in `path`,
/// as `ploutos trade` resumes one.
fn resumed<'a>(
    env: &ploutos::config::EnvironmentConfig,
    agent: &'a Alternate,
    start: usize,
    path: &std::path::Path,
) -> ploutos::trade::Session<'a, Alternate> {
    let mut session = ploutos::trade::Session::new(env, agent, start);
    session.restore(&ploutos::trade::Replayed::read(path).unwrap());
    session
}

fn et(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

/// Trades `live` from its bar `start` with the [`Alternate`] agent on the default account,
/// journaling to `journal`: the loop as `ploutos trade` runs it after its set-up.
fn trade_alternate(
    broker: &mut AlpacaBroker,
    live: &mut ploutos::trade::LiveMarket,
    start: usize,
    opts: &ploutos::trade::TradeOptions,
    journal: &std::path::Path,
) -> ploutos::trade::TradeSummary {
    let agent = Alternate(Default::default());
    let env = ploutos::config::EnvironmentConfig::default();
    let mut session = ploutos::trade::Session::new(&env, &agent, start);
    let mut journal = ploutos::trade::Journal::open(journal).unwrap();
    ploutos::trade::trade(broker, live, &mut session, &mut journal, opts).unwrap()
}

fn daily_loop(dry_run: bool) {
    use ploutos::market::calendar;
    use ploutos::trade::{Limits, TradeOptions};

    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    let stop_at = Arc::new(AtomicI64::new(et("2024-07-10T12:00:00-04:00")));
    let (alpaca, mut broker) = daily_setup(dry_run, &kill, stop_at);
    let mut live = daily_market(&mut broker);
    let newest = *live.times().last().unwrap();
    assert_eq!(newest, calendar::ny_midnight(chrono::NaiveDate::from_ymd_opt(2024, 7, 1).unwrap()));
    let opts = TradeOptions {
        run: "paper".into(),
        dry_run,
        limits: Limits { kill_switch: Some(kill), ..Limits::default() },
        ..TradeOptions::default()
    };
    let start = live.n_bars() - 1;
    let summary = trade_alternate(&mut broker, &mut live, start, &opts, &dir.path().join("journal.jsonl"));
    check_daily_loop(&alpaca, &summary, dry_run);
}

/// A daily paper run that dies in the middle of a session, after that morning's orders
/// filled, and is resumed at 11:00: it decides the previous close again on the account it
/// was decided on, finds that bar's orders at Alpaca (filled: the positions reconcile with
/// them) instead of sending them again, and goes on to the next closes.
#[test]
fn a_daily_run_resumed_during_the_session_finds_its_filled_orders_and_goes_on() {
    use ploutos::config::EnvironmentConfig;
    use ploutos::trade::{Journal, Limits, Session, TradeOptions, trade};

    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    // The first run: decisions at the Jul 1, 2 and 3 closes, the Jul 3 buy sent and filled
    // at the Jul 5 open (after the holiday); the switch appears at 10:00 and stops it at
    // the close.
    let stop_at = Arc::new(AtomicI64::new(et("2024-07-05T10:00:00-04:00")));
    let (alpaca, mut broker) = daily_setup(false, &kill, Arc::clone(&stop_at));
    let path = dir.path().join("journal.jsonl");
    let opts = TradeOptions {
        run: "paper".into(),
        dry_run: false,
        limits: Limits { kill_switch: Some(kill.clone()), ..Limits::default() },
        ..TradeOptions::default()
    };
    let env = EnvironmentConfig::default();
    let mut live = daily_market(&mut broker);
    let start = live.n_bars() - 1;
    let agent = Alternate(Default::default());
    let mut session = Session::new(&env, &agent, start);
    let first = trade(&mut broker, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &opts).unwrap();
    assert_eq!(first.decisions, 3);
    let jul3 = et("2024-07-03T00:00:00-04:00").to_string();
    let jul3_orders: Vec<String> = alpaca
        .orders()
        .iter()
        .map(|o| o["client_order_id"].as_str().unwrap().to_string())
        .filter(|id| id.contains(&jul3))
        .collect();
    assert!(!jul3_orders.is_empty() && alpaca.orders().iter().all(|o| o["status"] == "filled"));

    // The crash at 11:00 on Jul 5 (what the first run did after it: nothing but the stop).
    alpaca.state.lock().unwrap().now = Some(et("2024-07-05T11:00:00-04:00"));
    std::fs::remove_file(&kill).unwrap();
    stop_at.store(et("2024-07-09T12:00:00-04:00"), Ordering::SeqCst);
    let posts = alpaca.posts();
    let mut live = daily_market(&mut broker);
    assert_eq!(*live.times().last().unwrap(), et("2024-07-03T00:00:00-04:00"), "Jul 5 has not closed");
    let agent = Alternate(Default::default());
    let mut session = resumed(&env, &agent, start, &path);
    let again = trade(&mut broker, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &opts).unwrap();
    // The Jul 3 orders: found, not posted again; then the Jul 5 and 8 closes.
    let found: Vec<&str> =
        again.sent.iter().map(|o| o.request.client_order_id.as_str()).filter(|id| id.contains(&jul3)).collect();
    assert_eq!(found, jul3_orders.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.decisions, 3, "{again:?}");
    assert!(again.stopped.as_deref().unwrap().contains("kill switch"));
    let ids: std::collections::BTreeSet<String> =
        alpaca.orders().iter().map(|o| o["client_order_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), alpaca.orders().len(), "no id twice at Alpaca");
    assert_eq!(alpaca.posts() - posts, again.sent.len() - found.len(), "only the new orders were posted");
}

/// A run name used again for a new session (a fresh folder, the same evening) after the
/// first session's position was closed by hand: the new session's orders carry its own tag,
/// so it sends and follows them instead of taking the first session's filled order for its
/// own (which left the account short of what it expected, and stopped it).
#[test]
fn a_new_session_under_a_reused_run_name_sends_its_own_orders() {
    use ploutos::trade::{Limits, TradeOptions};

    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    // Each session decides the Jul 1 close; its buy fills at the Jul 2 open; the switch
    // appears at 10:00 and stops it at the Jul 2 close.
    let (alpaca, mut broker) = daily_setup(false, &kill, Arc::new(AtomicI64::new(et("2024-07-02T10:00:00-04:00"))));
    let session = |broker: &mut AlpacaBroker, tag: &str| {
        let opts = TradeOptions {
            run: "reused".into(),
            session: Some(tag.into()),
            limits: Limits { kill_switch: Some(kill.clone()), ..Limits::default() },
            ..TradeOptions::default()
        };
        let mut live = daily_market(broker);
        let start = live.n_bars() - 1;
        trade_alternate(broker, &mut live, start, &opts, &dir.path().join(format!("{tag}.jsonl")))
    };
    let jul1 = format!("-{}-", et("2024-07-01T00:00:00-04:00"));
    let first = session(&mut broker, "a1");
    let ids = |summary: &ploutos::trade::TradeSummary| -> Vec<String> {
        summary.sent.iter().map(|o| o.request.client_order_id.clone()).filter(|id| id.contains(&jul1)).collect()
    };
    assert_eq!(ids(&first), [format!("pl-reused.a1{jul1}AAPL-o")], "{first:?}");
    {
        let mut st = alpaca.state.lock().unwrap();
        st.positions = json!([]);
        st.now = Some(et("2024-07-01T18:00:00-04:00"));
    }
    std::fs::remove_file(&kill).unwrap();
    let posts = alpaca.posts();
    let second = session(&mut broker, "b2");
    assert_eq!(ids(&second), [format!("pl-reused.b2{jul1}AAPL-o")], "{second:?}");
    assert_eq!(alpaca.posts() - posts, second.sent.len(), "every order of the new session was posted");
    assert!(second.stopped.as_deref().unwrap().contains("kill switch"), "{second:?}");
}

/// A daily session started during Jul 2's session (its first decision at that close) that
/// died before deciding and is restarted a minute after the close, before Alpaca serves the
/// bar (the adapter waits `settle`, two minutes): knowing its first bar has ended, it asks
/// again shortly and decides it, where waiting for the next close would have skipped the
/// session's first decision.
#[test]
fn a_session_restarted_after_its_first_close_before_the_bar_is_served_decides_it() {
    use ploutos::trade::{Limits, TradeOptions};

    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    let (alpaca, mut broker) = daily_setup(false, &kill, Arc::new(AtomicI64::new(et("2024-07-03T10:00:00-04:00"))));
    alpaca.state.lock().unwrap().now = Some(et("2024-07-02T16:01:00-04:00"));
    let mut live = daily_market(&mut broker);
    let jul2 = et("2024-07-02T00:00:00-04:00");
    assert!(live.times().last().copied() < Some(jul2), "the Jul 2 bar is not served yet");
    let opts = TradeOptions {
        run: "late".into(),
        first_bar_time: Some(jul2),
        limits: Limits { kill_switch: Some(kill), ..Limits::default() },
        ..TradeOptions::default()
    };
    let path = dir.path().join("journal.jsonl");
    let start = live.n_bars();
    let summary = trade_alternate(&mut broker, &mut live, start, &opts, &path);
    let decided: Vec<i64> = ploutos::trade::Replayed::read(&path)
        .unwrap()
        .entries
        .iter()
        .filter_map(|e| match e {
            ploutos::trade::Entry::Decision { bar_time, .. } => Some(*bar_time),
            _ => None,
        })
        .collect();
    assert_eq!(decided.first(), Some(&jul2), "{decided:?}");
    // Its orders went out at the Jul 3 open and filled; the switch stops it at that close.
    assert!(!summary.sent.is_empty() && alpaca.orders().iter().all(|o| o["status"] == "filled"), "{summary:?}");
    assert!(summary.stopped.as_deref().unwrap().contains("kill switch"), "{summary:?}");
}

/// A loop restarted in the middle of Jul 2, after the orders of the Jul 1 close went out
/// and before one of them filled, that meets the daily-loss stop, with a broker whose
/// cancels complete at once or never (`pending_cancel`): the stop's summary, the Jul 1
/// order's id and status at the mock, and the journal.
fn daily_loss_after_a_restart(pending_cancels: bool) -> (ploutos::trade::TradeSummary, String, Value, String) {
    use ploutos::trade::{Leg, Limits, TradeOptions, client_order_id};

    let dir = tempfile::tempdir().unwrap();
    // Orders do not fill by themselves here (no fill at the open).
    let (alpaca, mut broker) = daily_setup(true, &dir.path().join("STOP"), Arc::new(AtomicI64::new(i64::MAX)));
    let jul1 = et("2024-07-01T00:00:00-04:00");
    let open_id = client_order_id("loss", ".t1", jul1, "AAPL", Leg::Open);
    broker.submit(&order(&open_id, OrderSide::Buy, Quantity::Shares(5.0))).unwrap();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.now = Some(et("2024-07-02T10:00:00-04:00"));
        st.pending_cancels = pending_cancels;
        st.account["equity"] = json!("11000");
        st.positions = json!([{"asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": "AAPL",
            "exchange": "NASDAQ", "asset_class": "us_equity", "avg_entry_price": "150.25", "qty": "10",
            "side": "long", "market_value": "1600", "cost_basis": "1502.5", "qty_available": "10"}]);
    }
    let mut live = daily_market(&mut broker);
    assert_eq!(live.times().last(), Some(&jul1));
    let opts = TradeOptions {
        run: "loss".into(),
        session: Some("t1".into()),
        limits: Limits { max_daily_loss: Some(0.03), ..Limits::default() },
        ..TradeOptions::default()
    };
    let path = dir.path().join("journal.jsonl");
    let start = live.n_bars() - 1;
    let summary = trade_alternate(&mut broker, &mut live, start, &opts, &path);
    assert!(summary.stopped.as_deref().unwrap().contains("daily loss"), "{summary:?}");
    // The positions are closed either way.
    let flatten = client_order_id("loss", ".t1-flatten", jul1, "AAPL", Leg::Close);
    let sent: Vec<&str> = summary.sent.iter().map(|o| o.request.client_order_id.as_str()).collect();
    assert_eq!(sent, [flatten.as_str()]);
    assert_eq!(summary.sent[0].request.side, OrderSide::Sell);
    let status = alpaca.orders().iter().find(|o| o["client_order_id"] == open_id.as_str()).unwrap()["status"].clone();
    (summary, open_id, status, std::fs::read_to_string(&path).unwrap())
}

/// The daily-loss stop of a restarted loop cancels the bar's open order before it closes
/// the positions, so that nothing fills once the account is meant to be flat.
#[test]
fn the_daily_loss_stop_cancels_the_bars_open_orders_before_it_flattens() {
    let (summary, _, status, _) = daily_loss_after_a_restart(false);
    assert_eq!(status, json!("canceled"));
    assert!(!summary.stopped.unwrap().contains("still open"));
}

/// A cancel the broker does not carry out within the stop's minute of looking again: the
/// positions are closed all the same, and the order is named in the stop's line and
/// journaled as an error.
#[test]
fn an_order_still_open_after_its_cancel_is_named_in_the_daily_loss_stop() {
    let (summary, id, status, journal) = daily_loss_after_a_restart(true);
    assert_eq!(status, json!("pending_cancel"));
    let stopped = summary.stopped.unwrap();
    assert!(stopped.contains(&format!("still open after their cancel: {id}")), "{stopped}");
    assert!(journal.contains(&format!("order {id} is still open after its cancel")), "{journal}");
}

/// A session the built-in calendar does not know was called off (Jul 2 here, as a day of
/// mourning would be): Alpaca's clock skips it, and so does the loop. The decision at the
/// Jul 1 close fills at the Jul 3 open, sized at that open, where the calendar's Jul 2
/// would have made the orders "late" at the Jul 3 open and stopped the loop.
#[test]
fn a_session_called_off_after_the_calendar_was_written_is_skipped_as_alpacas_clock_does() {
    use ploutos::trade::{Limits, TradeOptions};

    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    let jul2 = chrono::NaiveDate::from_ymd_opt(2024, 7, 2).unwrap();
    let jul3_open = et("2024-07-03T09:30:00-04:00");
    // A daily run from the Jul 1 bar, started at `now` (the set-up's Jul 1 evening by
    // default), Jul 2 called off, the kill switch at noon on Jul 3; every order must have
    // gone out at the Jul 3 open and filled there.
    let run = |name: &str, now: Option<&str>, calendar_missing: bool| {
        let (alpaca, mut broker) = daily_setup(false, &kill, Arc::new(AtomicI64::new(et("2024-07-03T12:00:00-04:00"))));
        {
            let mut st = alpaca.state.lock().unwrap();
            st.called_off.push(jul2);
            st.daily.retain(|b| ploutos::market::calendar::ny_date(b.0) != jul2);
            if let Some(now) = now {
                st.now = Some(et(now));
            }
            st.calendar_missing = calendar_missing;
        }
        let _ = std::fs::remove_file(&kill);
        let mut live = daily_market(&mut broker);
        let opts = TradeOptions {
            run: name.into(),
            limits: Limits { kill_switch: Some(kill.clone()), ..Limits::default() },
            ..TradeOptions::default()
        };
        let start = live.n_bars() - 1;
        let summary = trade_alternate(&mut broker, &mut live, start, &opts, &dir.path().join(format!("{name}.jsonl")));
        assert!(summary.stopped.as_deref().unwrap().contains("kill switch"), "{summary:?}");
        assert!(!summary.sent.is_empty(), "{summary:?}");
        assert!(summary.sent.iter().all(|o| o.fill_time == jul3_open), "{:?}", summary.sent);
        assert!(alpaca.orders().iter().all(|o| o["status"] == "filled"));
        (alpaca, summary)
    };

    // The Jul 1 decision's buy went out at the Jul 3 open and filled at that open.
    let (_, summary) = run("mourning", None, false);
    assert_eq!(summary.decisions, 1, "only the Jul 1 close before the switch");

    // A run started at 10:00 on Jul 2 itself, in the hours the calendar still gives that
    // session, with Alpaca's calendar unreadable: it decides the Jul 1 close at once, and
    // its orders wait for the Jul 3 open too, by the clock (by the built-in calendar, they
    // were for Jul 2's and late at Jul 3's).
    run("mourning-day", Some("2024-07-02T10:00:00-04:00"), true);

    // Started at 18:00 on Jul 2, after the hours the calendar gives that session: Alpaca's
    // calendar says there was none, so the Jul 1 close's orders are for the Jul 3 open (by
    // the built-in calendar alone, the loop would wait for a Jul 2 bar that never comes).
    let (alpaca, _) = run("mourning-evening", Some("2024-07-02T18:00:00-04:00"), false);
    let calendar_calls = alpaca.state.lock().unwrap().log.iter().filter(|l| l.contains("/v2/calendar")).count();
    assert_eq!(calendar_calls, 1, "asked once, kept");
}

/// A running daily loop whose buy of the Jul 1 close is still unfilled when the daily loss
/// trips at the Jul 2 close (a halted ticker): the stop cancels it, the last decision's
/// order, before it reads the positions.
#[test]
fn the_daily_loss_stop_cancels_the_last_decisions_unfilled_order_on_a_running_loop() {
    use ploutos::trade::{Leg, Limits, TradeOptions, client_order_id};

    let dir = tempfile::tempdir().unwrap();
    let alpaca = MockAlpaca::start();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.daily = daily_walk();
        st.now = Some(et("2024-07-01T18:00:00-04:00"));
        st.positions = json!([]);
    }
    // Nothing fills; the equity falls 11% under the previous close at noon on Jul 2.
    let state = Arc::clone(&alpaca.state);
    let mut cfg = AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, SECRET, Interval::Day);
    cfg.settle = Duration::from_secs(120);
    let mut broker = AlpacaBroker::new(cfg).with_sleep(move |d| {
        let mut s = state.lock().unwrap();
        let now = s.now.unwrap() + d.as_secs() as i64;
        s.now = Some(now);
        if now >= et("2024-07-02T12:00:00-04:00") {
            s.account["equity"] = json!("11000");
        }
    });
    let mut live = daily_market(&mut broker);
    let opts = TradeOptions {
        run: "halted".into(),
        session: Some("t2".into()),
        limits: Limits { max_daily_loss: Some(0.03), ..Limits::default() },
        ..TradeOptions::default()
    };
    let start = live.n_bars() - 1;
    let summary = trade_alternate(&mut broker, &mut live, start, &opts, &dir.path().join("journal.jsonl"));
    assert!(summary.stopped.as_deref().unwrap().contains("daily loss"), "{summary:?}");
    assert_eq!(summary.decisions, 1, "{summary:?}");
    let buy = client_order_id("halted", ".t2", et("2024-07-01T00:00:00-04:00"), "AAPL", Leg::Open);
    let orders = alpaca.orders();
    assert_eq!(orders.len(), 1, "the buy, and no flatten order for an empty account: {orders:?}");
    assert_eq!(
        (orders[0]["client_order_id"].as_str(), orders[0]["status"].as_str()),
        (Some(buy.as_str()), Some("canceled"))
    );
}

/// The daily loop's decisions, orders and ids (see the tests above).
fn check_daily_loop(alpaca: &MockAlpaca, summary: &ploutos::trade::TradeSummary, dry_run: bool) {
    use ploutos::market::calendar;
    // Decisions at the closes of Jul 1, 2, 3 (a half day), 5, 8 and 9; the kill switch
    // stops the loop at the close of the 10th.
    assert_eq!(summary.decisions, 6, "{summary:?}");
    assert!(summary.stopped.as_deref().unwrap().contains("kill switch"));
    let fills: Vec<String> = if dry_run {
        assert!(summary.sent.is_empty() && alpaca.posts() == 0, "a dry run sends nothing");
        summary.withheld.iter().map(|(o, ..)| o.client_order_id.clone()).collect()
    } else {
        // Every order reached Alpaca once, filled, and the positions followed the session
        // at every open (the loop reconciles them, or it would have stopped).
        assert!(summary.withheld.is_empty());
        assert_eq!(alpaca.posts(), summary.sent.len());
        assert!(alpaca.orders().iter().all(|o| o["status"] == "filled"));
        summary.sent.iter().map(|o| o.request.client_order_id.clone()).collect()
    };
    assert!(!fills.is_empty());
    // Ids name the decision bar: the buys decided at the Jul 1 and Jul 3 closes (the sells
    // in between wait out the holding period), those of Jul 3 sized at the Jul 5 open after
    // the holiday; no bar on Jul 4, no decision at the close of the 10th.
    let day = |d: u32| calendar::ny_midnight(chrono::NaiveDate::from_ymd_opt(2024, 7, d).unwrap());
    let has = |d: u32| fills.iter().any(|id| id.contains(&format!("-{}-", day(d))));
    assert!(has(1) && has(3) && !has(4) && !has(10), "{fills:?}");
}

/// A daily paper run whose first buy fills in part at Alpaca: at the next close the loop
/// cancels the rest, takes Alpaca's position (the session would otherwise stop on a
/// mismatch at the next open), and goes on.
#[test]
fn a_buy_filled_in_part_at_alpaca_is_cancelled_at_the_close_and_the_run_goes_on() {
    use ploutos::trade::{Entry, Limits, OrderSide, Quantity, Replayed, TradeOptions};

    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    let stop_at = Arc::new(AtomicI64::new(et("2024-07-10T12:00:00-04:00")));
    let (alpaca, mut broker) = daily_setup(false, &kill, stop_at);
    alpaca.state.lock().unwrap().fill_part = Some(0.5);
    let mut live = daily_market(&mut broker);
    let opts = TradeOptions {
        run: "paper".into(),
        limits: Limits { kill_switch: Some(kill), ..Limits::default() },
        ..TradeOptions::default()
    };
    let start = live.n_bars() - 1;
    let path = dir.path().join("journal.jsonl");
    let summary = trade_alternate(&mut broker, &mut live, start, &opts, &path);
    assert_eq!(summary.decisions, 6, "{summary:?}");
    assert!(summary.stopped.as_deref().unwrap().contains("kill switch"), "{summary:?}");

    let orders = alpaca.orders();
    let first = &orders[0];
    let asked: f64 = first["qty"].as_str().unwrap().parse().unwrap();
    let filled: f64 = first["filled_qty"].as_str().unwrap().parse().unwrap();
    assert_eq!((first["side"].as_str(), first["status"].as_str()), (Some("buy"), Some("canceled")));
    assert_eq!(filled, (asked * 0.5).floor());
    let cancels = alpaca.state.lock().unwrap().log.iter().filter(|r| r.starts_with("DELETE /v2/orders/")).count();
    assert_eq!(cancels, 1, "the rest was cancelled");
    // The later orders filled whole, and the positions checked at each open were Alpaca's.
    assert!(orders.len() > 1 && orders[1..].iter().all(|o| o["status"] == "filled"));
    let later: f64 = summary.sent[1..]
        .iter()
        .map(|o| {
            let Quantity::Shares(q) = o.request.quantity else { panic!("orders in shares") };
            if o.request.side == OrderSide::Buy { q } else { -q }
        })
        .sum();
    let held: f64 = alpaca.state.lock().unwrap().positions[0]["qty"].as_str().unwrap().parse().unwrap();
    assert!((held - (filled + later)).abs() < 1e-9, "{held} vs {filled} + {later}");
    let replayed = Replayed::read(&path).unwrap();
    let holdings: Vec<_> = replayed.accounts().filter_map(|(_, _, h)| h.map(<[_]>::to_vec)).collect();
    assert_eq!(holdings.len(), 1);
    assert_eq!(holdings[0][0].shares, filled);
    assert!(replayed.entries.iter().any(|e| matches!(e, Entry::Answer { state } if state.filled_shares == filled)));
}

/// An hourly model on Alpaca: the history comes as the training data's hours built from
/// 30-minute bars; each hour's close brings one decision (four on the July 3 half day, the
/// last one 12:30–13:00; none on July 4), its orders go out at the next hour's first
/// minute print (the next session's for the day's last hour), Alpaca fills them, and the
/// positions follow the session at every open; the kill switch stops the loop.
#[test]
fn an_hourly_paper_loop_trades_the_session_hours_on_alpacas_clock() {
    use ploutos::config::EnvironmentConfig;
    use ploutos::features::FeatureScaler;
    use ploutos::market::nyse;
    use ploutos::trade::{Entry, Journal, Limits, LiveMarket, Replayed, Session, TradeOptions, trade};

    // AAPL's 30-minute bars of every session from 2024-05-01 to 2024-07-31.
    let mut halves = Vec::new();
    let mut date = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    let mut price = 100.0f64;
    while date <= chrono::NaiveDate::from_ymd_opt(2024, 7, 31).unwrap() {
        if let Some((open, close)) = nyse::session(date) {
            for t in (open..close).step_by(1_800) {
                let step = ((halves.len() * 7919 % 101) as f64 - 50.0) / 2_000.0;
                let (o, c) = (price, price * (1.0 + step));
                halves.push((t, o, o.max(c) * 1.002, o.min(c) * 0.998, c, 1e5));
                price = c;
            }
        }
        date = date.succ_opt().unwrap();
    }
    let alpaca = MockAlpaca::start();
    let et = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.halves = halves;
        st.now = Some(et("2024-07-02T11:45:00-04:00"));
        st.positions = json!([]);
        st.fill_at_open = true;
    }
    let dir = tempfile::tempdir().unwrap();
    let kill = dir.path().join("STOP");
    let (state, k) = (Arc::clone(&alpaca.state), kill.clone());
    let stop_at = Arc::new(AtomicI64::new(et("2024-07-05T11:00:00-04:00")));
    let stop = Arc::clone(&stop_at);
    let mut cfg = AlpacaConfig::new(&alpaca.url, &alpaca.url, KEY, SECRET, Interval::Hour);
    cfg.settle = Duration::from_secs(60);
    let mut broker = AlpacaBroker::new(cfg).with_sleep(move |d| {
        let mut s = state.lock().unwrap();
        let now = s.now.unwrap() + d.as_secs() as i64;
        s.now = Some(now);
        if now >= stop.load(Ordering::SeqCst) {
            std::fs::write(&k, "").unwrap();
        }
    });

    let tickers = vec!["AAPL".to_string()];
    let scaler = FeatureScaler { mean: vec![0.0; 55], std: vec![1.0; 55], clip: 5.0, fitted_on: None };
    let mut live = LiveMarket::new(tickers.clone(), Interval::Hour, scaler.clone());
    let history = broker.bars_since(&tickers, et("2024-05-01T00:00:00-04:00")).unwrap();
    live.extend(&history).unwrap();
    // The hours that closed by 11:45: the 10:30 one is the newest; 7 a day before.
    assert_eq!(*live.times().last().unwrap(), et("2024-07-02T10:30:00-04:00"));
    assert!(live.times().iter().all(|&t| nyse::hourly_bar(t).is_some_and(|(start, _)| start == t)));
    // The first decision at the close of the hour in progress (11:30), not there yet.
    let newest = *live.times().last().unwrap();
    let first = ploutos::trade::first_decision_bar(Interval::Hour, &broker.clock().unwrap(), newest).unwrap();
    assert_eq!(first, et("2024-07-02T11:30:00-04:00"));
    let start = live.times().partition_point(|&t| t < first);
    assert_eq!(start, live.n_bars());
    let agent = Alternate(Default::default());
    let env = EnvironmentConfig { initial_cash: 10_000.0, ..EnvironmentConfig::default() };
    let mut session = Session::new(&env, &agent, start);
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::open(&path).unwrap();
    let opts = TradeOptions {
        run: "hourly".into(),
        session: Some("h0".into()),
        first_bar_time: Some(first),
        dry_run: false,
        limits: Limits { kill_switch: Some(kill.clone()), ..Limits::default() },
    };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts).unwrap();
    assert!(summary.stopped.as_deref().unwrap().contains("kill switch"), "{summary:?}");
    let decided: std::collections::BTreeSet<i64> = Replayed::read(&path)
        .unwrap()
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Decision { bar_time, .. } => Some(*bar_time),
            _ => None,
        })
        .collect();
    let hours = |day: &str, list: &[&str]| list.iter().map(|h| et(&format!("{day}T{h}:00-04:00"))).collect::<Vec<_>>();
    let mut want = hours("2024-07-02", &["11:30", "12:30", "13:30", "14:30", "15:30"]);
    want.extend(hours("2024-07-03", &["09:30", "10:30", "11:30", "12:30"]));
    want.extend(hours("2024-07-05", &["09:30"]));
    assert_eq!(decided.into_iter().collect::<Vec<_>>(), want);
    assert_eq!(summary.decisions, want.len());
    // Orders went out at the opens, each once, all filled; the positions matched the
    // session's at every open (or the loop would have stopped on a mismatch).
    assert!(!summary.sent.is_empty() && summary.withheld.is_empty());
    assert_eq!(alpaca.posts(), summary.sent.len());
    assert!(alpaca.orders().iter().all(|o| o["status"] == "filled"));
    // A decision at an hour's close fills in the next hour of the session (the same trading
    // day, as the env counts day trades); the half day's last one (12:30) at the July 5 open.
    let fills_of = |bar: i64| summary.sent.iter().filter(move |o| o.request.client_order_id.contains(&bar.to_string()));
    assert!(fills_of(want[0]).count() > 0);
    assert!(fills_of(want[0]).all(|o| o.fill_time == want[1]), "{:?}", summary.sent);
    // The half day's last decision (12:30) fills at the July 5 open.
    let after_half_day = summary.sent.iter().filter(|o| o.request.client_order_id.contains(&want[8].to_string()));
    assert!(after_half_day.clone().count() > 0, "{:?}", summary.sent);
    assert!(after_half_day.clone().all(|o| o.fill_time == et("2024-07-05T09:30:00-04:00")));

    // The run stopped at the close of Jul 5's 10:30 hour. Resumed in the minute after that
    // hour ended, before Alpaca serves its bar: the loop waits for the bar (instead of taking
    // the 09:30 decision's orders for late), decides it and trades the 11:30 hour.
    alpaca.state.lock().unwrap().now = Some(et("2024-07-05T11:30:20-04:00"));
    std::fs::remove_file(&kill).unwrap();
    stop_at.store(et("2024-07-05T13:00:00-04:00"), Ordering::SeqCst);
    let mut live = LiveMarket::new(tickers.clone(), Interval::Hour, scaler);
    live.extend(&broker.bars_since(&tickers, et("2024-05-01T00:00:00-04:00")).unwrap()).unwrap();
    assert_eq!(*live.times().last().unwrap(), et("2024-07-05T09:30:00-04:00"), "not served yet");
    let agent = Alternate(Default::default());
    let mut session = resumed(&env, &agent, start, &path);
    let again = trade(&mut broker, &mut live, &mut session, &mut Journal::open(&path).unwrap(), &opts).unwrap();
    assert!(again.stopped.as_deref().unwrap().contains("kill switch"), "{again:?}");
    let h1030 = et("2024-07-05T10:30:00-04:00").to_string();
    let decided_1030 = again.sent.iter().filter(|o| o.request.client_order_id.contains(&h1030));
    assert!(decided_1030.clone().count() > 0, "{again:?}");
    assert!(decided_1030.clone().all(|o| o.fill_time == et("2024-07-05T11:30:00-04:00")));
}

/// `ploutos trade --broker alpaca` itself, against the mock through Alpaca's own endpoint
/// variables: a new session on a daily model fetches the history, starts at the evening's
/// bar with the account's cash, journals its start, and stops at the kill switch before
/// deciding; the same command resumes the run (one start in the journal). Refused before
/// any call: a base URL of the live endpoint without `--live`, a PDT window Alpaca does
/// not count over.
#[cfg(feature = "learner")]
#[test]
fn the_trade_command_starts_and_resumes_a_session_on_alpaca() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ploutos = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ploutos"));
        cmd.args(args).current_dir(d);
        for var in ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL", "APCA_API_DATA_URL"] {
            cmd.env_remove(var);
        }
        let out = cmd.envs(env.iter().copied()).output().expect("runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    };
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.ron");
    let train = [
        "train",
        "--config",
        config,
        "--set=training.run_name=ap",
        "--set=data.interval=1d",
        "--set=data.synthetic.years=3",
        "--set=data.tickers=[\"AAPL\"]",
        "--set=training.total_timesteps=1024",
        "--set=training.n_envs=4",
        "--set=training.n_steps=128",
        "--set=training.batch_size=128",
        "--set=training.eval_freq=1024",
        "--set=training.eval_episodes=1",
        "--set=training.checkpoint_freq=1024",
        "--set=environment.episode_length=100",
    ];
    let (code, _, err) = ploutos(&train, &[]);
    assert_eq!(code, 0, "{err}");

    let alpaca = MockAlpaca::start();
    let et = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    {
        let mut st = alpaca.state.lock().unwrap();
        st.daily = daily_walk();
        st.now = Some(et("2024-07-01T18:00:00-04:00"));
        st.positions = json!([]);
    }
    std::fs::write(d.join("STOP"), "").unwrap();
    let env = [
        ("APCA_API_KEY_ID", KEY),
        ("APCA_API_SECRET_KEY", SECRET),
        ("APCA_API_BASE_URL", alpaca.url.as_str()),
        ("APCA_API_DATA_URL", alpaca.url.as_str()),
    ];
    let trade = ["trade", "--model", "models/ap/final", "--broker", "alpaca", "--run", "cli", "--kill-switch", "STOP"];
    for attempt in ["start", "resume"] {
        let (code, out, err) = ploutos(&trade, &env);
        assert_eq!(code, 3, "{attempt}: a stop exits 3: {err}");
        assert!(out.contains("first decision at the close of 2024-07-01"), "{attempt}: {out}");
        assert!(out.contains("0 decisions, 0 orders sent") && out.contains("stopped: kill switch"), "{out}");
    }
    let journal = std::fs::read_to_string(d.join("trades/cli/journal.jsonl")).unwrap();
    let starts: Vec<&str> = journal.lines().filter(|l| l.contains("\"kind\":\"start\"")).collect();
    assert_eq!(starts.len(), 1, "{journal}");
    assert!(starts[0].contains("\"broker\":\"alpaca-paper\"") && starts[0].contains("\"initial_cash\":10000.25"));
    assert!(starts[0].contains("\"session\":\""), "a new session journals its tag: {}", starts[0]);
    let stops = journal.lines().filter(|l| l.contains("\"kind\":\"error\"") && l.contains("kill switch"));
    assert_eq!(stops.count(), 2, "the journal records both stops: {journal}");
    assert!(starts[0].contains("\"model_digest\":\""), "the start records the model's digest: {}", starts[0]);
    let calls = alpaca.state.lock().unwrap().log.len();

    // Other weights under the model's path (a best/ that training rewrote since): the
    // resume is refused before any call, and journals nothing.
    let other_seed = [&train[..], &["--set=training.run_name=ap2", "--set=training.seed=7"]].concat();
    let (code, _, err) = ploutos(&other_seed, &[]);
    assert_eq!(code, 0, "{err}");
    let weights = d.join("models/ap/final/model.safetensors");
    let ours = std::fs::read(&weights).unwrap();
    std::fs::copy(d.join("models/ap2/final/model.safetensors"), &weights).unwrap();
    let (code, _, err) = ploutos(&trade, &env);
    assert!(code == 2 && err.contains("(its weights have changed since"), "{err}");
    assert_eq!(std::fs::read_to_string(d.join("trades/cli/journal.jsonl")).unwrap(), journal);
    std::fs::write(&weights, ours).unwrap();

    // Refused before any call to the mock.
    let live_url = [("APCA_API_BASE_URL", "https://api.alpaca.markets"), env[0], env[1]];
    let (code, _, err) = ploutos(&["trade", "--model", "models/ap/final", "--broker", "alpaca"], &live_url);
    assert!(code == 2 && err.contains("APCA_API_BASE_URL is https://api.alpaca.markets"), "{err}");
    let window = ["trade", "--model", "models/ap/final", "--broker", "alpaca", "--set=environment.pdt.window_days=3"];
    let (code, _, err) = ploutos(&window, &env);
    assert!(code == 2 && err.contains("environment.pdt.window_days 3"), "{err}");
    assert_eq!(alpaca.state.lock().unwrap().log.len(), calls);

    // A name Alpaca does not split, for a model that orders fractional shares (the default):
    // refused before any bar is fetched, with what to change; whole shares go on.
    alpaca.state.lock().unwrap().assets = vec![json!({"symbol": "AAPL", "status": "active", "tradable": true,
        "fractionable": false, "shortable": true, "easy_to_borrow": true})];
    let other =
        ["trade", "--model", "models/ap/final", "--broker", "alpaca", "--run", "whole", "--kill-switch", "STOP"];
    let (code, _, err) = ploutos(&other, &env);
    assert!(code == 2 && err.contains("AAPL is not fractionable"), "{err}");
    assert!(err.contains("--set environment.fractional_shares=false") && err.lines().count() == 1, "{err}");
    assert!(!d.join("trades/whole/journal.jsonl").exists(), "nothing journaled");
    let whole = [&other[..], &["--set=environment.fractional_shares=false"]].concat();
    let (code, out, err) = ploutos(&whole, &env);
    assert!(code == 3 && out.contains("stopped: kill switch"), "{err}");
    // A session started before Alpaca changed its mind resumes, warned.
    let (code, out, err) = ploutos(&trade, &env);
    assert!(code == 3 && out.contains("stopped: kill switch"), "{err}");
    assert!(err.contains("AAPL is not fractionable") && err.contains("the resumed session goes on"), "{err}");
}
