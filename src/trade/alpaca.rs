//! Alpaca's REST v2 trading API and its market-data bars API as a [`Broker`]: the paper
//! endpoint unless told otherwise, keys from `APCA_API_KEY_ID` / `APCA_API_SECRET_KEY`, sent
//! only as request headers (never logged, never in an error, never in `Debug`).
//!
//! Retries: a transient failure (HTTP 429, a 5xx, a timeout, a dropped connection) is
//! retried up to [`AlpacaConfig::retries`] times, waiting `backoff × 2^i` (or the server's
//! `Retry-After` when longer). An order is never sent twice: before a retry of a submission
//! the adapter asks for the order by its client id, and returns it when the lost attempt
//! reached the broker; Alpaca refuses a second order with a client id it has seen, which
//! [`Broker::submit`] answers as [`BrokerError::Duplicate`].
//!
//! Bars: daily models read Alpaca's `1Day` bars; hourly models the training data's hours
//! (09:30, 10:30, …, 15:30 New York), which Alpaca's `1Hour` bars (on the hour) are not, so
//! they are merged from `30Min` bars ([`hours_of`]); only bars that have closed are
//! returned. Opening prices: the snapshots' daily bar, or the hour's first `1Min` bar.
//!
//! Rejections keep Alpaca's own words (`insufficient buying power`, `trade denied due to
//! pattern day trading protection`, ...) in [`BrokerError::Rejected`]. Before a session, its
//! tickers' descriptions ([`AlpacaBroker::asset`], [`asset_refusal`]) refuse a model whose
//! orders Alpaca would reject at once; the sessions come from the built-in NYSE calendar,
//! less those Alpaca's calendar lacks ([`AlpacaBroker::called_off`]).

use super::broker::{
    Account, Broker, BrokerBar, BrokerError, BrokerPosition, MarketClock, OrderRequest, OrderSide, OrderState,
    OrderStatus, Quantity, Split,
};
use crate::config::Interval;
use crate::market::calendar::{ny_date, ny_datetime};
use crate::market::nyse;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Alpaca's paper-trading endpoint (the default).
pub const PAPER_URL: &str = "https://paper-api.alpaca.markets";
/// Alpaca's live-trading endpoint (`--live`).
pub const LIVE_URL: &str = "https://api.alpaca.markets";
/// Alpaca's market-data endpoint.
pub const DATA_URL: &str = "https://data.alpaca.markets";
/// Environment variable holding the key id.
pub const KEY_ID_VAR: &str = "APCA_API_KEY_ID";
/// Environment variable holding the secret key.
pub const SECRET_VAR: &str = "APCA_API_SECRET_KEY";
/// Environment variable moving the trading endpoint (Alpaca's SDKs read it too).
pub const BASE_URL_VAR: &str = "APCA_API_BASE_URL";
/// Environment variable moving the market-data endpoint (Alpaca's SDKs read it too).
pub const DATA_URL_VAR: &str = "APCA_API_DATA_URL";

/// Where and how the adapter talks to Alpaca.
#[derive(Clone)]
pub struct AlpacaConfig {
    /// Trading API base, without `/v2` (e.g. [`PAPER_URL`]).
    pub trading_url: String,
    /// Market-data API base, without `/v2` ([`DATA_URL`]).
    pub data_url: String,
    pub key_id: String,
    pub secret_key: String,
    /// The model's bars: daily (Alpaca's `1Day` bars), or hourly, session-aligned like the
    /// training data's (09:30, 10:30, …, 15:30 New York), built from Alpaca's `30Min` bars
    /// since Alpaca's `1Hour` bars start on the hour.
    pub interval: Interval,
    /// Market-data feed (`iex` for free accounts, `sip`).
    pub feed: String,
    /// Retries of a transient failure.
    pub retries: u32,
    /// First wait before a retry, doubled at each one.
    pub backoff: Duration,
    /// Time limit of one HTTP call.
    pub timeout: Duration,
    /// Wait after a session's close before reading its bar (the daily bar is final once
    /// the closing auction has printed).
    pub settle: Duration,
}

impl std::fmt::Debug for AlpacaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys stay out of every log line and error.
        f.debug_struct("AlpacaConfig")
            .field("trading_url", &self.trading_url)
            .field("data_url", &self.data_url)
            .field("interval", &self.interval)
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

impl AlpacaConfig {
    /// The paper endpoint (or the live one), with the keys from the environment. The
    /// endpoints can be moved (a proxy, a test server) with Alpaca's own variables,
    /// [`BASE_URL_VAR`] and [`DATA_URL_VAR`]; a base URL that is Alpaca's other endpoint
    /// (the live one without `live`, the paper one with it) is refused: the mode says which
    /// account trades.
    ///
    /// # Errors
    /// [`BrokerError::Other`] naming the variable that is missing, empty or contradicts
    /// `live`.
    pub fn from_env(live: bool, interval: Interval) -> Result<Self, BrokerError> {
        let var = |name: &str| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(BrokerError::Other(format!("alpaca: environment variable {name} is not set"))),
        };
        let mode = if live { LIVE_URL } else { PAPER_URL };
        let trading = var(BASE_URL_VAR).unwrap_or_else(|_| mode.to_string());
        let other = if live { PAPER_URL } else { LIVE_URL };
        if host(&trading) == host(other) {
            return Err(BrokerError::Other(format!(
                "alpaca: {BASE_URL_VAR} is {other}, the {} endpoint, and this run trades {}: unset it or {}",
                if live { "paper" } else { "live" },
                if live { "live (--live)" } else { "on paper" },
                if live { "drop --live" } else { "add --live" }
            )));
        }
        let data = var(DATA_URL_VAR).unwrap_or_else(|_| DATA_URL.to_string());
        Ok(Self::new(&trading, &data, &var(KEY_ID_VAR)?, &var(SECRET_VAR)?, interval))
    }

    /// An adapter config with explicit endpoints and keys (tests point it at a local server).
    pub fn new(trading_url: &str, data_url: &str, key_id: &str, secret_key: &str, interval: Interval) -> Self {
        Self {
            trading_url: trading_url.trim_end_matches('/').to_string(),
            data_url: data_url.trim_end_matches('/').to_string(),
            key_id: key_id.to_string(),
            secret_key: secret_key.to_string(),
            interval,
            feed: "iex".to_string(),
            retries: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            settle: Duration::from_secs(120),
        }
    }
}

/// The Alpaca adapter (see the module docs).
pub struct AlpacaBroker {
    config: AlpacaConfig,
    agent: ureq::Agent,
    /// The `Retry-After` of the latest transient answer, in seconds.
    retry_after: std::cell::Cell<Option<u64>>,
    /// How the pacing waits ([`AlpacaBroker::with_sleep`]).
    sleep: Box<dyn FnMut(Duration) + Send>,
    /// The session was seen open since the last close the pacing waited for.
    saw_open: bool,
    /// Built-in sessions looked up in Alpaca's calendar: whether Alpaca has none that day
    /// (called off after this build).
    called_off: std::collections::BTreeMap<chrono::NaiveDate, bool>,
    /// Raised to stop the session ([`AlpacaBroker::with_interrupt`]).
    interrupt: Option<super::Interrupt>,
}

/// What one HTTP call gave.
enum Reply {
    /// A 2xx and its body (`Value::Null` when empty).
    Ok(Value),
    /// 404.
    NotFound,
    /// Any other 4xx, with Alpaca's message.
    Refused(u16, String),
}

impl AlpacaBroker {
    pub fn new(config: AlpacaConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            config,
            agent,
            retry_after: std::cell::Cell::new(None),
            sleep: Box::new(std::thread::sleep),
            saw_open: false,
            called_off: std::collections::BTreeMap::new(),
            interrupt: None,
        }
    }

    /// Cuts the pacing's waits short when `interrupt` is raised (Ctrl-C): a wait for the
    /// next open or close (hours, overnight) then ends at once, and the loop stops at its
    /// next check rather than at the next bar.
    pub fn with_interrupt(mut self, interrupt: super::Interrupt) -> Self {
        self.interrupt = Some(interrupt);
        self
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(super::Interrupt::raised)
    }

    /// Whether the exchange called off the session the built-in NYSE calendar has on `date`
    /// ([`nyse::session`]), by Alpaca's calendar (`GET /v2/calendar`, asked for three
    /// weeks at a time and kept); false on a day the built-in calendar has no session.
    /// When Alpaca's calendar cannot be read (other than for a transient failure, which
    /// is retried and then returned), the built-in one stands, with a warning.
    ///
    /// # Errors
    /// A transient failure after its retries.
    pub fn called_off(&mut self, date: chrono::NaiveDate) -> Result<bool, BrokerError> {
        if nyse::session(date).is_none() {
            return Ok(false);
        }
        if let Some(&off) = self.called_off.get(&date) {
            return Ok(off);
        }
        let end = date + chrono::Days::new(20);
        let url = self.trading(&format!("/calendar?start={date}&end={end}"));
        let read = match self.call("GET", &url)? {
            Reply::Ok(v) => parse::<Vec<AlpacaCalendarDay>>(v, "calendar").and_then(|days| {
                days.iter()
                    .map(|d| {
                        chrono::NaiveDate::parse_from_str(&d.date, "%Y-%m-%d")
                            .map_err(|e| BrokerError::Other(format!("alpaca: calendar date {:?}: {e}", d.date)))
                    })
                    .collect::<Result<std::collections::BTreeSet<_>, _>>()
            }),
            Reply::NotFound => Err(BrokerError::Other("HTTP 404".into())),
            Reply::Refused(status, msg) => Err(BrokerError::Other(format!("HTTP {status}: {msg}"))),
        };
        let sessions = match read {
            Ok(sessions) if !sessions.is_empty() => sessions,
            Ok(_) | Err(_) => {
                let why = read.err().map_or_else(|| "no session in it".to_string(), |e| e.to_string());
                tracing::warn!(
                    "alpaca's calendar from {date} cannot be read ({why}): the built-in NYSE calendar stands"
                );
                std::collections::BTreeSet::new()
            }
        };
        // Up to the last day the answer covers (Alpaca's calendar ends some years ahead).
        let last = sessions.last().copied().unwrap_or(date);
        for d in date.iter_days().take_while(|d| *d <= end) {
            if nyse::session(d).is_some() {
                self.called_off.insert(d, d <= last && !sessions.is_empty() && !sessions.contains(&d));
            }
        }
        Ok(self.called_off.get(&date).copied().unwrap_or(false))
    }

    /// What Alpaca says of `symbol` (`GET /v2/assets/{symbol}`).
    ///
    /// # Errors
    /// [`BrokerError::Other`] naming the symbol when Alpaca has no such asset; the call's.
    pub fn asset(&mut self, symbol: &str) -> Result<Asset, BrokerError> {
        match self.call("GET", &self.trading(&format!("/assets/{}", encode(symbol))))? {
            Reply::Ok(v) => parse(v, "asset"),
            Reply::NotFound => Err(BrokerError::Other(format!("alpaca has no asset {symbol}"))),
            Reply::Refused(status, msg) => {
                Err(BrokerError::Other(format!("alpaca: asset {symbol}: HTTP {status}: {msg}")))
            }
        }
    }

    /// Replaces how the pacing ([`super::Paced`]) waits: tests make time pass on their own clock.
    pub fn with_sleep(mut self, sleep: impl FnMut(Duration) + Send + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    /// Sleeps `seconds`, at least one and at most an hour at a time (the clock is asked
    /// again after each sleep, so a long wait follows the market's clock, not ours).
    /// With an interrupt, the sleep goes a second at a time and ends once it is raised (the
    /// waits for the open and the close; [`super::Paced::wait_briefly`]'s ten seconds are
    /// slept whole, so that a retry loop never spins).
    fn pause(&mut self, seconds: i64) {
        let seconds = seconds.clamp(1, 3_600) as u64;
        if self.interrupt.is_none() {
            (self.sleep)(Duration::from_secs(seconds));
            return;
        }
        for _ in 0..seconds {
            if self.interrupted() {
                return;
            }
            (self.sleep)(Duration::from_secs(1));
        }
    }

    fn daily(&self) -> bool {
        self.config.interval == Interval::Day
    }

    /// When the bar that opened at `bar_open` ends, by the NYSE calendar: its session's close
    /// (daily), its hour's end (hourly); `None` outside the regular session.
    fn bar_end(&self, bar_open: i64) -> Option<i64> {
        if self.daily() {
            nyse::session(ny_date(bar_open)).map(|(_, close)| close)
        } else {
            nyse::hourly_bar(bar_open).map(|(_, end)| end)
        }
    }

    /// Bars of `timeframe` (Alpaca's spelling) of `tickers` that opened at or after `since`,
    /// every page, in Alpaca's order.
    fn fetch_bars(&self, tickers: &[String], timeframe: &str, since: i64) -> Result<Vec<BrokerBar>, BrokerError> {
        let start = chrono::DateTime::from_timestamp(since, 0)
            .ok_or_else(|| BrokerError::Other(format!("alpaca: bad start time {since}")))?
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let symbols = tickers.iter().map(|t| encode(t)).collect::<Vec<_>>().join(",");
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/v2/stocks/bars?symbols={symbols}&timeframe={timeframe}&start={}&adjustment=raw&feed={}&limit=10000",
                self.config.data_url,
                encode(&start),
                encode(&self.config.feed)
            );
            if let Some(token) = &page {
                url.push_str(&format!("&page_token={}", encode(token)));
            }
            let answer: AlpacaBars = parse(self.get(&url)?, "bars")?;
            for (ticker, bars) in answer.bars {
                for b in bars.unwrap_or_default() {
                    out.push(BrokerBar {
                        ticker: ticker.clone(),
                        time: time(&b.t, "bar time")?,
                        open: b.o,
                        high: b.h,
                        low: b.l,
                        close: b.c,
                        volume: b.v,
                    });
                }
            }
            match answer.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page = Some(token),
                None => break,
            }
        }
        Ok(out)
    }

    /// One call, no retry: `Err` only for a transient failure or an unreadable answer.
    fn call_once(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Reply, BrokerError> {
        let what = format!("{method} {}", path_of(url));
        let headers = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
            r.header("APCA-API-KEY-ID", &self.config.key_id).header("APCA-API-SECRET-KEY", &self.config.secret_key)
        };
        let sent = match (method, body) {
            ("GET", _) => headers(self.agent.get(url)).call(),
            ("DELETE", _) => headers(self.agent.delete(url)).call(),
            (_, Some(body)) => self
                .agent
                .post(url)
                .header("APCA-API-KEY-ID", &self.config.key_id)
                .header("APCA-API-SECRET-KEY", &self.config.secret_key)
                .send_json(body),
            (_, None) => unreachable!("a POST always has a body"),
        };
        let mut response = match sent {
            Ok(r) => r,
            // Timeouts, refused or dropped connections: the call may or may not have landed.
            Err(e) => return Err(BrokerError::Transient(format!("{what}: {}", transport_error(&e)))),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| BrokerError::Transient(format!("{what}: reading the answer: {}", transport_error(&e))))?;
        if status == 429 || status >= 500 {
            self.retry_after.set(retry_after);
            return Err(BrokerError::Transient(format!("{what}: HTTP {status}")));
        }
        let reply = match status {
            200..=299 if text.trim().is_empty() => Reply::Ok(Value::Null),
            200..=299 => Reply::Ok(
                serde_json::from_str(&text)
                    .map_err(|e| BrokerError::Other(format!("{what}: unreadable answer: {e}")))?,
            ),
            404 => Reply::NotFound,
            _ => Reply::Refused(status, message(&text)),
        };
        Ok(reply)
    }

    /// Waits before retry `i` (0-based): `backoff × 2^i`, or the server's `Retry-After`
    /// (at most a minute) when longer.
    fn wait(&self, i: u32) {
        let backoff = self.config.backoff.saturating_mul(1 << i.min(16));
        let asked = Duration::from_secs(self.retry_after.take().unwrap_or(0).min(60));
        std::thread::sleep(backoff.max(asked));
    }

    /// A call that is safe to repeat (reads, cancels), retried on transient failures.
    fn call(&self, method: &str, url: &str) -> Result<Reply, BrokerError> {
        let mut i = 0;
        loop {
            match self.call_once(method, url, None) {
                Ok(reply) => return Ok(reply),
                Err(BrokerError::Transient(e)) if i < self.config.retries => {
                    tracing::warn!("{e}; retry {} of {}", i + 1, self.config.retries);
                    self.wait(i);
                    i += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A read that must answer 2xx.
    fn get(&self, url: &str) -> Result<Value, BrokerError> {
        match self.call("GET", url)? {
            Reply::Ok(v) => Ok(v),
            Reply::NotFound => Err(BrokerError::Other(format!("{url}: not found"))),
            Reply::Refused(status, msg) => {
                Err(BrokerError::Other(format!("alpaca: GET {}: HTTP {status}: {msg}", path_of(url))))
            }
        }
    }

    fn trading(&self, path: &str) -> String {
        format!("{}/v2{path}", self.config.trading_url)
    }

    /// The raw order with this client id, if Alpaca has it.
    fn order_json(&self, client_order_id: &str) -> Result<Option<AlpacaOrder>, BrokerError> {
        let url = self.trading(&format!("/orders:by_client_order_id?client_order_id={}", encode(client_order_id)));
        match self.call("GET", &url)? {
            Reply::Ok(v) => Ok(Some(parse(v, "order")?)),
            Reply::NotFound => Ok(None),
            Reply::Refused(status, msg) => Err(BrokerError::Other(format!("HTTP {status}: {msg}"))),
        }
    }
}

/// The path of `url`, without its host and query (what messages name: never the keys,
/// which travel in headers, nor a query's symbols).
fn path_of(url: &str) -> &str {
    let path = url.split_once("//").map_or(url, |(_, rest)| rest.find('/').map_or(rest, |i| &rest[i..]));
    path.split('?').next().unwrap_or(path)
}

/// The host of a URL, lower case, without scheme, credentials, port or path: what says
/// which of Alpaca's endpoints a URL is, however it is spelled.
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.split(':').next().unwrap_or("").trim_end_matches('.').to_ascii_lowercase()
}

/// A transport error in one line, without the URL's query (nothing secret is in it, but
/// it is noise).
fn transport_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".to_string(),
        ureq::Error::Io(io) => format!("connection failed ({})", io.kind()),
        other => other.to_string(),
    }
}

/// Alpaca's error message (`{"code": 40310000, "message": "..."}`), or the body itself.
fn message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

/// Percent-encodes a query value (client ids are `[A-Za-z0-9._:-]`, symbols too; the rest
/// is encoded all the same).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse<T: for<'de> Deserialize<'de>>(v: Value, what: &str) -> Result<T, BrokerError> {
    serde_json::from_value(v).map_err(|e| BrokerError::Other(format!("alpaca: unreadable {what}: {e}")))
}

/// Alpaca sends numbers as strings (`"cash": "100000.5"`); some fields are null.
fn num(s: &Option<String>, field: &str) -> Result<f64, BrokerError> {
    match s.as_deref() {
        None => Ok(0.0),
        Some(s) => s.trim().parse().map_err(|_| BrokerError::Other(format!("alpaca: {field} {s:?} is not a number"))),
    }
}

fn time(s: &str, field: &str) -> Result<i64, BrokerError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| BrokerError::Other(format!("alpaca: {field} {s:?} is not an RFC 3339 time")))
}

/// What Alpaca says of a symbol: whether the session's orders in it can go through.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Asset {
    pub symbol: String,
    /// `active` or `inactive`.
    pub status: String,
    pub tradable: bool,
    /// Orders in fractional shares are taken (else rejected: "requested asset is not
    /// fractionable").
    #[serde(default)]
    pub fractionable: bool,
    #[serde(default)]
    pub shortable: bool,
    /// Available to borrow today (a short sale of a hard-to-borrow name may be refused).
    #[serde(default)]
    pub easy_to_borrow: bool,
}

/// Why a model cannot trade `asset` at Alpaca as its env config says it trades, as one line
/// naming the ticker and what to change; `None` when it can. `fractional`: the orders are in
/// fractional shares (`environment.fractional_shares`); `shorts`: the model may sell this
/// ticker short ([`may_short`]), which Alpaca takes in whole shares only.
pub fn asset_refusal(asset: &Asset, fractional: bool, shorts: bool) -> Option<String> {
    let s = &asset.symbol;
    if asset.status != "active" || !asset.tradable {
        return Some(format!("alpaca: {s} is not tradable ({}, tradable: {})", asset.status, asset.tradable));
    }
    if fractional && !asset.fractionable {
        return Some(format!(
            "alpaca: {s} is not fractionable and the model's orders are in fractional shares: trade with --set environment.fractional_shares=false"
        ));
    }
    if shorts && fractional {
        return Some(
            "alpaca sells short in whole shares only and the model's short sales are fractional: trade with --set environment.fractional_shares=false".into(),
        );
    }
    if shorts && !asset.shortable {
        return Some(format!(
            "alpaca: {s} cannot be sold short and the model may sell it short: add it to environment.short_selling.no_short"
        ));
    }
    None
}

/// One day of `GET /v2/calendar` (its open and close are not read: the built-in calendar
/// has the half days).
#[derive(Deserialize)]
struct AlpacaCalendarDay {
    date: String,
}

/// Whether a model with env config `env` may sell `ticker` short: short selling is on, the
/// ticker is not in `short_selling.no_short`, and the actions can open a short (the seed's
/// sell when flat, or a negative target level).
pub fn may_short(env: &crate::config::EnvironmentConfig, ticker: &str) -> bool {
    let short = &env.short_selling;
    let levels = &env.target_positions;
    short.enabled
        && !short.no_short.iter().any(|t| t == ticker)
        && (!levels.enabled || levels.levels.iter().any(|&l| l < 0.0))
}

#[derive(Deserialize)]
struct AlpacaAccount {
    cash: Option<String>,
    equity: Option<String>,
    last_equity: Option<String>,
    daytrade_count: Option<u32>,
    pattern_day_trader: Option<bool>,
    trading_blocked: Option<bool>,
    account_blocked: Option<bool>,
}

#[derive(Deserialize)]
struct AlpacaPosition {
    symbol: String,
    qty: String,
    side: Option<String>,
    avg_entry_price: String,
}

#[derive(Deserialize)]
struct AlpacaOrder {
    /// Alpaca's own id (cancels take it).
    id: String,
    client_order_id: String,
    symbol: Option<String>,
    side: Option<String>,
    qty: Option<Value>,
    notional: Option<Value>,
    filled_qty: Option<Value>,
    filled_avg_price: Option<Value>,
    status: String,
}

#[derive(Deserialize)]
struct AlpacaClock {
    timestamp: String,
    is_open: bool,
    next_open: String,
    next_close: String,
}

#[derive(Deserialize)]
struct AlpacaBar {
    t: String,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
}

#[derive(Deserialize)]
struct AlpacaBars {
    #[serde(default)]
    bars: std::collections::BTreeMap<String, Option<Vec<AlpacaBar>>>,
    next_page_token: Option<String>,
}

/// `GET /v1/corporate-actions` (the splits only).
#[derive(Deserialize)]
struct AlpacaCorporateActions {
    #[serde(default)]
    corporate_actions: AlpacaSplits,
    next_page_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct AlpacaSplits {
    #[serde(default)]
    forward_splits: Vec<AlpacaSplit>,
    #[serde(default)]
    reverse_splits: Vec<AlpacaSplit>,
}

#[derive(Deserialize)]
struct AlpacaSplit {
    symbol: String,
    new_rate: Option<Value>,
    old_rate: Option<Value>,
    ex_date: String,
}

/// A number Alpaca may send as a string or as a number.
fn value_num(v: &Option<Value>) -> Option<f64> {
    match v.as_ref()? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

impl AlpacaOrder {
    fn state(&self) -> Result<OrderState, BrokerError> {
        let status = match self.status.as_str() {
            "new"
            | "accepted"
            | "pending_new"
            | "accepted_for_bidding"
            | "held"
            | "calculated"
            | "pending_review"
            | "pending_cancel"
            | "pending_replace"
            | "stopped"
            | "suspended" => OrderStatus::Accepted,
            "partially_filled" => OrderStatus::PartiallyFilled,
            "filled" => OrderStatus::Filled,
            "canceled" | "done_for_day" | "replaced" => OrderStatus::Canceled,
            "expired" => OrderStatus::Expired,
            "rejected" => OrderStatus::Rejected,
            other => return Err(BrokerError::Other(format!("alpaca: unknown order status {other:?}"))),
        };
        let side = match self.side.as_deref() {
            Some("sell") => OrderSide::Sell,
            _ => OrderSide::Buy,
        };
        let quantity = match (value_num(&self.qty), value_num(&self.notional)) {
            (_, Some(n)) => Quantity::Notional(n),
            (q, None) => Quantity::Shares(q.unwrap_or(0.0)),
        };
        Ok(OrderState {
            client_order_id: self.client_order_id.clone(),
            ticker: self.symbol.clone().unwrap_or_default(),
            side,
            quantity,
            status,
            filled_shares: value_num(&self.filled_qty).unwrap_or(0.0),
            fill_price: value_num(&self.filled_avg_price),
            reason: None,
        })
    }
}

impl Broker for AlpacaBroker {
    fn account(&mut self) -> Result<Account, BrokerError> {
        let a: AlpacaAccount = parse(self.get(&self.trading("/account"))?, "account")?;
        Ok(Account {
            cash: num(&a.cash, "cash")?,
            equity: num(&a.equity, "equity")?,
            last_equity: num(&a.last_equity, "last_equity")?,
            day_trade_count: a.daytrade_count.unwrap_or(0),
            pattern_day_trader: a.pattern_day_trader.unwrap_or(false),
            trading_blocked: a.trading_blocked.unwrap_or(false) || a.account_blocked.unwrap_or(false),
        })
    }

    fn positions(&mut self) -> Result<Vec<BrokerPosition>, BrokerError> {
        let list: Vec<AlpacaPosition> = parse(self.get(&self.trading("/positions"))?, "positions")?;
        list.into_iter()
            .map(|p| {
                let qty = num(&Some(p.qty.clone()), "qty")?.abs();
                let sign = if p.side.as_deref() == Some("short") { -1.0 } else { 1.0 };
                Ok(BrokerPosition {
                    ticker: p.symbol,
                    shares: sign * qty,
                    avg_cost: num(&Some(p.avg_entry_price), "avg_entry_price")?,
                })
            })
            .collect()
    }

    fn submit(&mut self, order: &OrderRequest) -> Result<OrderState, BrokerError> {
        let id = &order.client_order_id;
        let mut body = json!({
            "symbol": order.ticker,
            "side": match order.side { OrderSide::Buy => "buy", OrderSide::Sell => "sell" },
            "type": "market",
            // A market order sent after the close waits for the next session's open.
            "time_in_force": "day",
            "client_order_id": id,
        });
        // Alpaca takes up to 9 decimals, as strings.
        match order.quantity {
            Quantity::Shares(q) => body["qty"] = json!(format!("{q:.9}")),
            Quantity::Notional(n) => body["notional"] = json!(format!("{n:.2}")),
        }
        let url = self.trading("/orders");
        let mut i = 0;
        loop {
            if i > 0 {
                // The lost attempt may have reached Alpaca: never send the order twice.
                if let Some(sent) = self.order_json(id)? {
                    return sent.state();
                }
            }
            match self.call_once("POST", &url, Some(&body)) {
                Ok(Reply::Ok(v)) => return parse::<AlpacaOrder>(v, "order")?.state(),
                Ok(Reply::Refused(_, msg)) if msg.contains("client_order_id must be unique") => {
                    return Err(BrokerError::Duplicate(id.clone()));
                }
                Ok(Reply::Refused(status, msg)) => {
                    return Err(BrokerError::Rejected {
                        client_order_id: id.clone(),
                        reason: format!("{msg} (HTTP {status})"),
                    });
                }
                Ok(Reply::NotFound) => {
                    return Err(BrokerError::Other(format!("{url}: not found (is the base URL right?)")));
                }
                Err(BrokerError::Transient(e)) if i < self.config.retries => {
                    tracing::warn!("{e}; retry {} of {}", i + 1, self.config.retries);
                    self.wait(i);
                    i += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn cancel(&mut self, client_order_id: &str) -> Result<(), BrokerError> {
        let Some(order) = self.order_json(client_order_id)? else { return Ok(()) };
        if order.state()?.status.is_final() {
            return Ok(());
        }
        match self.call("DELETE", &self.trading(&format!("/orders/{}", encode(&order.id))))? {
            // 422: no longer cancelable (it filled meanwhile), which is what was asked.
            Reply::Ok(_) | Reply::NotFound | Reply::Refused(422, _) => Ok(()),
            Reply::Refused(status, msg) => {
                Err(BrokerError::Other(format!("cancel {client_order_id}: HTTP {status}: {msg}")))
            }
        }
    }

    fn order(&mut self, client_order_id: &str) -> Result<Option<OrderState>, BrokerError> {
        self.order_json(client_order_id)?.map(|o| o.state()).transpose()
    }

    fn bars_since(&mut self, tickers: &[String], since: i64) -> Result<Vec<BrokerBar>, BrokerError> {
        // Alpaca serves the bar in progress too: only bars that closed `settle` ago are bars
        // (a bar read sooner may still miss its last prints, and is never read again).
        let settled = self.clock()?.now - self.config.settle.as_secs() as i64;
        let mut out = if self.daily() {
            let mut bars = self.fetch_bars(tickers, "1Day", since)?;
            bars.retain(|b| nyse::session(ny_date(b.time)).is_some_and(|(_, close)| close <= settled));
            bars
        } else {
            hours_of(&self.fetch_bars(tickers, "30Min", since)?, since, settled)
        };
        out.sort_by(|a, b| (a.time, &a.ticker).cmp(&(b.time, &b.ticker)));
        Ok(out)
    }

    /// Daily bars: today's opening print from the snapshots (`dailyBar.o`), once the session
    /// is open and every ticker has one. Hourly bars: the open of each ticker's first minute
    /// bar (`1Min`) of the hour in progress, once every ticker has one.
    fn opening_prices(&mut self, tickers: &[String], bar_open: i64) -> Result<Option<Vec<f64>>, BrokerError> {
        let clock = self.clock()?;
        if !clock.is_open {
            return Ok(None);
        }
        // The bar trading now: the hour in progress, or today's session.
        let trading = if self.daily() {
            nyse::session(ny_date(clock.now)).map_or(clock.now, |(open, _)| open)
        } else {
            nyse::hourly_bar(clock.now).map_or(clock.now, |(start, _)| start)
        };
        // Daily bars are dated at midnight: the same day is the same bar.
        let same = if self.daily() { ny_date(trading) == ny_date(bar_open) } else { trading == bar_open };
        if !same {
            return Err(BrokerError::late(bar_open, trading));
        }
        if !self.daily() {
            let Some((start, end)) = nyse::hourly_bar(clock.now) else { return Ok(None) };
            let minutes = self.fetch_bars(tickers, "1Min", start)?;
            let mut out = Vec::with_capacity(tickers.len());
            for t in tickers {
                let first =
                    minutes.iter().filter(|b| &b.ticker == t && (start..end).contains(&b.time)).min_by_key(|b| b.time);
                match first {
                    Some(b) => out.push(b.open),
                    None => return Ok(None), // no trade in this hour yet
                }
            }
            return Ok(Some(out));
        }
        let today = ny_date(clock.now);
        let symbols = tickers.iter().map(|t| encode(t)).collect::<Vec<_>>().join(",");
        let url = format!(
            "{}/v2/stocks/snapshots?symbols={symbols}&feed={}",
            self.config.data_url,
            encode(&self.config.feed)
        );
        let snapshots = self.get(&url)?;
        let mut out = Vec::with_capacity(tickers.len());
        for t in tickers {
            let bar = &snapshots[t.as_str()]["dailyBar"];
            let (Some(open), Some(stamp)) = (bar["o"].as_f64(), bar["t"].as_str()) else { return Ok(None) };
            if ny_date(time(stamp, "dailyBar.t")?) != today {
                return Ok(None); // no print today yet
            }
            out.push(open);
        }
        Ok(Some(out))
    }

    /// From the market data API's corporate actions (`GET /v1/corporate-actions`, forward
    /// and reverse splits, every page): the ratio is `new_rate / old_rate`, the day Alpaca's
    /// `ex_date` (the session on which the shares re-base and the price adjusts; not
    /// `payable_date`, which can come a day earlier). Asked from a week before `from`, since
    /// Alpaca's dates may select by processing date, then kept by `ex_date`.
    fn splits(
        &mut self,
        tickers: &[String],
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<Split>, BrokerError> {
        let symbols = tickers.iter().map(|t| encode(t)).collect::<Vec<_>>().join(",");
        let start = from - chrono::Days::new(7);
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/v1/corporate-actions?symbols={symbols}&types=forward_split,reverse_split&start={start}&end={to}&limit=1000",
                self.config.data_url
            );
            if let Some(token) = &page {
                url.push_str(&format!("&page_token={}", encode(token)));
            }
            let answer: AlpacaCorporateActions = parse(self.get(&url)?, "corporate actions")?;
            let actions = answer.corporate_actions;
            for s in actions.forward_splits.iter().chain(&actions.reverse_splits) {
                let bad = |what: &str| {
                    BrokerError::Other(format!("alpaca: split of {} on {:?}: {what}", s.symbol, s.ex_date))
                };
                let ex_date =
                    chrono::NaiveDate::parse_from_str(&s.ex_date, "%Y-%m-%d").map_err(|e| bad(&e.to_string()))?;
                if !(from..=to).contains(&ex_date) {
                    continue;
                }
                let (new, old) = (value_num(&s.new_rate), value_num(&s.old_rate));
                let ratio = match (new, old) {
                    (Some(n), Some(o)) if n > 0.0 && o > 0.0 && (n / o).is_finite() => n / o,
                    _ => return Err(bad("its new_rate and old_rate are not positive numbers")),
                };
                out.push(Split { ticker: s.symbol.clone(), ex_date, ratio });
            }
            match answer.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page = Some(token),
                None => break,
            }
        }
        Ok(out)
    }

    fn clock(&mut self) -> Result<MarketClock, BrokerError> {
        let c: AlpacaClock = parse(self.get(&self.trading("/clock"))?, "clock")?;
        Ok(MarketClock {
            now: time(&c.timestamp, "timestamp")?,
            is_open: c.is_open,
            next_open: time(&c.next_open, "next_open")?,
            next_close: time(&c.next_close, "next_close")?,
        })
    }
}

/// Session-aligned hourly bars (see [`nyse::hourly_bar`]) from 30-minute bars: open of the
/// first, close of the last, highest high, lowest low, summed volume, of the bars in the
/// regular session; only hours that start at or after `since` and have closed by `until`. An
/// hour where a ticker did not trade in one half is built from the other; in neither, it
/// has no bar (a gap, which stops the loop).
pub fn hours_of(halves: &[BrokerBar], since: i64, until: i64) -> Vec<BrokerBar> {
    let mut hours: std::collections::BTreeMap<(i64, &str), BrokerBar> = std::collections::BTreeMap::new();
    let mut ordered: Vec<&BrokerBar> = halves.iter().collect();
    ordered.sort_by_key(|b| b.time);
    for b in ordered {
        let Some((start, end)) = nyse::hourly_bar(b.time) else { continue };
        if start < since || end > until {
            continue;
        }
        hours
            .entry((start, b.ticker.as_str()))
            .and_modify(|h| {
                h.high = h.high.max(b.high);
                h.low = h.low.min(b.low);
                h.close = b.close;
                h.volume += b.volume;
            })
            .or_insert_with(|| BrokerBar { time: start, ..b.clone() });
    }
    hours.into_values().collect()
}

/// Bars on Alpaca's clock. Daily: a bar opens when the session opens and closes
/// [`AlpacaConfig::settle`] after the session's close (holidays and half days are the
/// clock's). Hourly: a bar closes `settle` after its hour's end ([`nyse::hourly_bar`]: the
/// next training hour, or the session's close), and the next one has opened then unless the
/// session closed, when it opens with the next session.
impl super::run::Paced for AlpacaBroker {
    fn has_ended(&mut self, bar_open: i64) -> Result<bool, BrokerError> {
        let now = self.clock()?.now;
        Ok(self.bar_end(bar_open).is_some_and(|end| end <= now))
    }

    /// By the NYSE calendar: daily, the next session's open; hourly, the next training hour
    /// of the session, or the next session's open after its last hour. Across sessions,
    /// a session Alpaca's calendar lacks is skipped ([`AlpacaBroker::called_off`]: the
    /// exchange can call one off after this build's calendar was written, a day of
    /// mourning), and Alpaca's clock has the last word while that next session is still
    /// ahead or in its hours (the clock's next open then skips it).
    fn next_bar_open(&mut self, bar_time: i64) -> Result<i64, BrokerError> {
        let end = self
            .bar_end(bar_time)
            .ok_or_else(|| BrokerError::Other(format!("alpaca: no regular session at the bar of {bar_time}")))?;
        if let Some((start, _)) = nyse::hourly_bar(end).filter(|_| !self.daily()) {
            return Ok(start);
        }
        let (mut calendar, mut calendar_close) = nyse::next_session(end);
        while self.called_off(ny_date(calendar))? {
            tracing::warn!(
                "alpaca's calendar has no session on {}, the built-in NYSE calendar has: following Alpaca's",
                ny_date(calendar)
            );
            (calendar, calendar_close) = nyse::next_session(calendar_close);
        }
        let clock = self.clock()?;
        // Only later: a session the calendar lacks would have no bars the adapter keeps.
        // Before that session's close by the calendar, and closed by the clock: before its
        // open, or during hours the exchange called off.
        if !clock.is_open && clock.now < calendar_close && clock.next_open > calendar {
            tracing::warn!(
                "alpaca's clock opens the next session at {}, the built-in NYSE calendar at {}: following Alpaca's",
                ny_datetime(clock.next_open).format("%Y-%m-%d %H:%M %Z"),
                ny_datetime(calendar).format("%Y-%m-%d %H:%M %Z"),
            );
            return Ok(clock.next_open);
        }
        Ok(calendar)
    }

    fn wait_for_open(&mut self) -> Result<bool, BrokerError> {
        loop {
            if self.interrupted() {
                return Ok(false);
            }
            let c = self.clock()?;
            if c.is_open {
                self.saw_open = true;
                return Ok(true);
            }
            self.pause(c.next_open - c.now);
        }
    }

    fn wait_for_close(&mut self) -> Result<bool, BrokerError> {
        let settle = self.config.settle.as_secs() as i64;
        loop {
            if self.interrupted() {
                return Ok(false);
            }
            let c = self.clock()?;
            if !self.daily() {
                match nyse::hourly_bar(c.now).filter(|_| c.is_open) {
                    Some((_, end)) => {
                        self.pause(end - c.now);
                        self.pause(settle);
                        return Ok(!self.interrupted());
                    }
                    None => self.pause(c.next_open - c.now),
                }
            } else if c.is_open {
                self.saw_open = true;
                self.pause(c.next_close - c.now);
            } else if self.saw_open {
                self.saw_open = false;
                self.pause(settle);
                return Ok(!self.interrupted());
            } else {
                // Closed, and not open since the last close: the bar is the next session's.
                self.pause(c.next_open - c.now);
            }
        }
    }

    /// Ten seconds: a bar or an opening print that is late is usually there by then.
    fn wait_briefly(&mut self) -> Result<(), BrokerError> {
        (self.sleep)(Duration::from_secs(10));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    fn half(ticker: &str, time: &str, open: f64, close: f64, volume: f64) -> BrokerBar {
        let (t, o, c) = (at(time), open, close);
        BrokerBar {
            ticker: ticker.into(),
            time: t,
            open: o,
            high: o.max(c) + 1.0,
            low: o.min(c) - 1.0,
            close: c,
            volume,
        }
    }

    #[test]
    fn an_endpoint_is_known_by_its_host_however_spelled() {
        for url in
            ["https://api.alpaca.markets", "HTTPS://API.Alpaca.Markets:443/v2", "https://u:p@api.alpaca.markets."]
        {
            assert_eq!(host(url), "api.alpaca.markets", "{url}");
        }
        assert_eq!(host(PAPER_URL), "paper-api.alpaca.markets");
        assert_eq!(host("http://127.0.0.1:8080"), "127.0.0.1");
    }

    #[test]
    fn hours_merge_the_session_halves_and_keep_only_closed_ones() {
        let halves = [
            // A regular day: 09:30 from two halves; AAA missed 11:00–11:30, so its 10:30
            // hour is its 10:30–11:00 half alone; an after-hours bar is not a session bar.
            half("AAA", "2024-07-02T09:30:00-04:00", 10.0, 11.0, 100.0),
            half("AAA", "2024-07-02T10:00:00-04:00", 11.0, 12.0, 50.0),
            half("AAA", "2024-07-02T10:30:00-04:00", 12.0, 12.5, 70.0),
            half("BBB", "2024-07-02T10:00:00-04:00", 20.0, 21.0, 10.0),
            half("AAA", "2024-07-02T16:00:00-04:00", 13.0, 13.0, 5.0),
            // A half day: the 12:30 hour is the 12:30–13:00 half.
            half("AAA", "2024-07-03T12:00:00-04:00", 14.0, 15.0, 30.0),
            half("AAA", "2024-07-03T12:30:00-04:00", 15.0, 16.0, 40.0),
            half("AAA", "2024-07-03T13:00:00-04:00", 16.0, 16.0, 1.0),
        ];
        let got = |since: &str, until: &str| -> Vec<(String, i64, [f64; 5])> {
            hours_of(&halves, at(since), at(until))
                .into_iter()
                .map(|b| (b.ticker, b.time, [b.open, b.high, b.low, b.close, b.volume]))
                .collect()
        };
        let h = |s: &str| at(s);
        assert_eq!(
            got("2024-07-02T00:00:00-04:00", "2024-07-04T00:00:00-04:00"),
            vec![
                ("AAA".into(), h("2024-07-02T09:30:00-04:00"), [10.0, 13.0, 9.0, 12.0, 150.0]),
                ("BBB".into(), h("2024-07-02T09:30:00-04:00"), [20.0, 22.0, 19.0, 21.0, 10.0]),
                ("AAA".into(), h("2024-07-02T10:30:00-04:00"), [12.0, 13.5, 11.0, 12.5, 70.0]),
                ("AAA".into(), h("2024-07-03T11:30:00-04:00"), [14.0, 16.0, 13.0, 15.0, 30.0]),
                ("AAA".into(), h("2024-07-03T12:30:00-04:00"), [15.0, 17.0, 14.0, 16.0, 40.0]),
            ]
        );
        // At 11:29 the 10:30 hour has not closed; hours before `since` are not returned.
        let early = got("2024-07-02T09:30:01-04:00", "2024-07-02T11:29:00-04:00");
        assert!(early.is_empty(), "{early:?}");
        let one = got("2024-07-02T09:30:01-04:00", "2024-07-02T11:30:00-04:00");
        assert_eq!(one.iter().map(|b| b.1).collect::<Vec<_>>(), [h("2024-07-02T10:30:00-04:00")]);
    }
}
