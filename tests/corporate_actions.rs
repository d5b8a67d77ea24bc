//! Corporate actions (`data.adjust`): a split and dividends applied to an account by hand,
//! what each mode does to a file's prices (raw files and yfinance's split-adjusted ones,
//! dividends from a column or from `Adj Close`), the default's bit-identical reading of a
//! file without events, and for random splits and dividends: buy-and-hold through them is
//! continuous and the same under every mode.

use hand::near;
use ploutos::TradingEnv;
use ploutos::backtest::{Policy, replay_policy};
use ploutos::config::{Adjust, DataConfig, DataSource, EnvironmentConfig, FillTiming, Interval};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::env::{MarketData, Side};
use ploutos::market::{load_csv_file, load_panel};
use proptest::prelude::*;
use std::path::Path;

mod hand;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/market");

/// One ticker, daily bars 0..=6, opens = closes (no cost model), with events for the
/// account on bars 3 (4:1 split), 4 (dividend $1) and 5 (1:3 reverse split).
///
/// | bar | price | event | account after the bar |
/// | --- | --- | --- | --- |
/// | 0 | 100 | buy decided | |
/// | 1 | 100 | | buy fills 50 at 100: cash 5,000 |
/// | 2 | 100 | | |
/// | 3 | 25 | split 4:1 | 200 shares, avg cost 25, equity 10,000 |
/// | 4 | 24 | dividend 1 | cash 5,200, equity 5,200 + 4,800 |
/// | 5 | 72 | split 1:3 | 66 shares (66.67), 0.67 × 72 = 48 in cash |
/// | 6 | 72 | | |
fn market() -> MarketData {
    let market = hand::one_ticker(vec![100.0, 100.0, 100.0, 25.0, 24.0, 72.0, 72.0], (0..7).collect());
    let mut actions = vec![(1.0, 0.0); 7];
    actions[3] = (4.0, 0.0);
    actions[4] = (1.0, 1.0);
    actions[5] = (1.0 / 3.0, 0.0);
    market.with_corporate_actions(actions).expect("shapes")
}

fn env_config() -> EnvironmentConfig {
    hand::cost_free(|c| {
        c.buy_pct = 0.5;
        c.fractional_shares = false;
        c.pdt.enabled = false;
    })
}

fn env(cfg: &EnvironmentConfig) -> TradingEnv {
    hand::replay(cfg, market())
}

/// Paper trading: a sale at the split's open that the broker fills in part. The session
/// puts the broker's shares (100 of the 200 new ones) in place of the env's; the rest of the
/// position keeps its history (bought at bar 1, a quarter of the cost), which it can only
/// if the positions before the fills are taken after the split, in the new shares.
#[test]
fn a_sale_filled_in_part_at_the_splits_open_keeps_the_positions_history() {
    use ploutos::trade::{BrokerAccountPlugin, Holding};
    let mut holdings = vec![None; 7];
    holdings[3] = Some(std::sync::Arc::from([Holding { shares: 100.0, avg_cost: 25.0 }]));
    let plugin = || BrokerAccountPlugin { by_bar: vec![None; 7].into(), holdings: holdings.clone().into() };
    let cfg = env_config();
    let bounds = ploutos::env::EpisodeBounds { first: 0, last: 6, random_start: false };
    let mut env = TradingEnv::with_plugins(&cfg, market(), ploutos::EnvOptions::replay(bounds), |app| {
        app.add_plugins(plugin());
    })
    .expect("env");
    env.reset(0);
    for action in [1, 0, 2] {
        env.step(&[action]).expect("step");
    }
    let (_, pos, _) = env.env_state(0).expect("env");
    assert_eq!(pos[0].shares, 100.0, "the broker's shares");
    near(pos[0].avg_cost, 25.0);
    assert_eq!((pos[0].opened_bar, pos[0].last_buy_bar), (1, 1), "the buy's holding clock");
}

#[test]
fn splits_and_a_dividend_on_the_account_by_hand() {
    let mut env = env(&env_config());
    let b = env.step(&[1]).expect("step");
    near(b.infos[0].cash, 5_000.0);
    env.step(&[0]).expect("step");
    // Bar 3: 50 shares become 200 at a quarter of the cost; equity does not jump.
    let b = env.step(&[0]).expect("step");
    near(b.infos[0].equity, 10_000.0);
    let (_, pos, _) = env.env_state(0).expect("env");
    assert_eq!(pos[0].shares, 200.0);
    near(pos[0].avg_cost, 25.0);
    assert_eq!(pos[0].opened_bar, 1, "the holding clock is the buy's");
    // Bar 4: $1 on each of 200 shares; the price fell by it.
    let b = env.step(&[0]).expect("step");
    near(b.infos[0].cash, 5_200.0);
    near(b.infos[0].equity, 10_000.0);
    // Bar 5: 200 / 3 = 66.67 shares: 66 kept, 2/3 paid at 24 × 3 = 72.
    let b = env.step(&[0]).expect("step");
    near(b.infos[0].cash, 5_248.0);
    near(b.infos[0].equity, 5_248.0 + 66.0 * 72.0);
    let (_, pos, _) = env.env_state(0).expect("env");
    assert_eq!(pos[0].shares, 66.0);
    near(pos[0].avg_cost, 75.0);
    let totals = env.totals();
    near(totals.dividends, 200.0);
    near(totals.cash_in_lieu, 48.0);
    // No order was written for the events.
    let trades = env.take_trades(0);
    assert_eq!(trades.len(), 1);
    assert_eq!((trades[0].side, trades[0].shares), (Side::Buy, 50.0));
}

#[test]
fn a_sell_filling_on_the_ex_date_still_gets_the_split_and_the_dividend() {
    // Sell decided at bar 3, fills at bar 4's open: the dividend of bar 4 is paid first
    // (the shares were held at the record close), then the 200 shares sell at 24.
    let mut env = env(&env_config());
    env.step(&[1]).expect("step");
    env.step(&[0]).expect("step");
    env.step(&[0]).expect("step");
    let b = env.step(&[2]).expect("step");
    near(b.infos[0].cash, 5_000.0 + 200.0 + 200.0 * 24.0);
    let trades = env.take_trades(0);
    assert_eq!((trades[1].side, trades[1].shares, trades[1].bar), (Side::Sell, 200.0, 4));
}

#[test]
fn close_fills_buy_before_the_ex_date() {
    // With fills at the decision bar's close, a buy decided at bar 2 fills at 100 on bar 2,
    // before the split of bar 3 multiplies it.
    let cfg = EnvironmentConfig { fill_timing: FillTiming::Close, ..env_config() };
    let mut env = env(&cfg);
    env.step(&[0]).expect("step");
    env.step(&[0]).expect("step");
    let b = env.step(&[1]).expect("step");
    near(b.infos[0].equity, 10_000.0);
    let (_, pos, _) = env.env_state(0).expect("env");
    assert_eq!(pos[0].shares, 200.0);
}

#[test]
fn fractional_shares_keep_the_fraction() {
    let cfg = EnvironmentConfig { fractional_shares: true, ..env_config() };
    let mut env = env(&cfg);
    for action in [1, 0, 0, 0, 0] {
        env.step(&[action]).expect("step");
    }
    let (_, pos, _) = env.env_state(0).expect("env");
    near(pos[0].shares, 200.0 / 3.0);
    assert_eq!(env.totals().cash_in_lieu, 0.0);
}

/// A broker that pays fractional shares rather than cash in lieu (Alpaca, which `ploutos
/// trade` follows): whole-share buys, yet the split keeps the fraction.
#[test]
fn fractional_splits_keep_the_fraction_of_whole_share_positions() {
    let mut env = hand::replay(&env_config(), market().with_fractional_splits());
    for action in [1, 0, 0, 0, 0] {
        env.step(&[action]).expect("step");
    }
    let (_, pos, _) = env.env_state(0).expect("env");
    near(pos[0].shares, 200.0 / 3.0);
    assert_eq!(env.totals().cash_in_lieu, 0.0);
}

/// One ticker's daily file: `rows` are (open, high, low, close, volume, extra columns).
fn write_file(dir: &Path, name: &str, header_extra: &str, rows: &[(f64, f64, f64, f64, f64, String)]) {
    let dates =
        ploutos::market::calendar::weekdays_from(chrono::NaiveDate::from_ymd_opt(2020, 1, 2).unwrap(), rows.len());
    let mut text = format!("Date,Open,High,Low,Close,Volume{header_extra}\n");
    for (d, (o, h, l, c, v, extra)) in dates.iter().zip(rows) {
        text.push_str(&format!("{d},{o},{h},{l},{c},{v}{extra}\n"));
    }
    std::fs::write(dir.join(format!("{name}.csv")), text).unwrap();
}

fn data_config(dir: &Path, ticker: &str, adjust: Adjust) -> DataConfig {
    DataConfig {
        tickers: vec![ticker.into()],
        source: DataSource::Csv,
        csv_dir: dir.display().to_string(),
        interval: Interval::Day,
        adjust,
        split: ploutos::config::SplitConfig { train_fraction: 0.8, validation_fraction: 0.1, ..Default::default() },
        ..DataConfig::default()
    }
}

/// The economic path of [`raw_rows`]: a gentle drift, a 4:1 split at bar `S`, a dividend of
/// `D` (post-split dollars) at bar `X`.
const N: usize = 140;
const S: usize = 115;
const X: usize = 125;
const D: f64 = 0.5;

/// Closes as they printed.
fn raw_closes() -> Vec<f64> {
    let mut close = Vec::with_capacity(N);
    let mut p = 100.0;
    for i in 0..N {
        p *= 1.0 + 0.002 * ((i % 7) as f64 - 3.0);
        if i == S {
            p /= 4.0;
        }
        if i == X {
            p -= D;
        }
        close.push(p);
    }
    close
}

/// Bars from closes: open at the close (so a split's gap is at the open, as it prints),
/// high/low 1% around.
fn bars(
    close: &[f64],
    volume: impl Fn(usize) -> f64,
    extra: impl Fn(usize) -> String,
) -> Vec<(f64, f64, f64, f64, f64, String)> {
    (0..close.len()).map(|i| (close[i], close[i] * 1.01, close[i] * 0.99, close[i], volume(i), extra(i))).collect()
}

fn split_col(i: usize) -> f64 {
    if i == S { 4.0 } else { 0.0 }
}

fn dividend_col(i: usize) -> f64 {
    if i == X { D } else { 0.0 }
}

/// The same economic path as yfinance writes it: prices, volumes before the split divided
/// by its ratio (the gap is gone).
fn yfinance_closes() -> Vec<f64> {
    raw_closes().iter().enumerate().map(|(i, c)| if i < S { c / 4.0 } else { *c }).collect()
}

fn volume_raw(i: usize) -> f64 {
    if i < S { 1_000.0 } else { 4_000.0 }
}

#[track_caller]
fn all_near(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-9 * w.abs(), "bar {i}: {g} vs {w}");
    }
}

#[test]
fn each_mode_on_a_raw_file_and_on_a_split_adjusted_one() {
    let dir = tempfile::tempdir().unwrap();
    let extra = |i: usize| format!(",{},{}", dividend_col(i), split_col(i));
    let raw = raw_closes();
    write_file(dir.path(), "RAW", ",Dividends,Stock Splits", &bars(&raw, volume_raw, extra));
    let yf = yfinance_closes();
    write_file(dir.path(), "YF", ",Dividends,Stock Splits", &bars(&yf, |_| 4_000.0, extra));

    for ticker in ["RAW", "YF"] {
        // none: the prices that printed; the split and the dividend go to the account.
        let (p, report) = load_panel(&data_config(dir.path(), ticker, Adjust::None)).unwrap();
        all_near(p.close(0), &raw);
        all_near(p.volume(0), &(0..N).map(volume_raw).collect::<Vec<_>>());
        let (ratio, dividend) = p.corporate_actions(0).expect("events");
        assert_eq!((ratio[S], dividend[X]), (4.0, D));
        assert_eq!(ratio.iter().filter(|&&r| r != 1.0).count() + dividend.iter().filter(|&&d| d != 0.0).count(), 2);
        let counts = report.tickers[0].actions;
        assert_eq!((counts.splits, counts.splits_in_prices, counts.dividends), (1, usize::from(ticker == "RAW"), 1));
        assert!(report.to_string().contains("corporate actions (none"), "{report}");

        // splits: forward-adjusted from the first bar; the dividend in adjusted shares.
        let (p, _) = load_panel(&data_config(dir.path(), ticker, Adjust::Splits)).unwrap();
        let split_adjusted: Vec<f64> = raw.iter().enumerate().map(|(i, c)| if i < S { *c } else { c * 4.0 }).collect();
        all_near(p.close(0), &split_adjusted);
        all_near(p.volume(0), &[1_000.0; N]);
        let (ratio, dividend) = p.corporate_actions(0).expect("events");
        assert!(ratio.iter().all(|&r| r == 1.0));
        assert_eq!(dividend[X], 4.0 * D);

        // splits_and_dividends: a total-return series, nothing for the account.
        let (p, _) = load_panel(&data_config(dir.path(), ticker, Adjust::SplitsAndDividends)).unwrap();
        let g = split_adjusted[X - 1] / (split_adjusted[X - 1] - 4.0 * D);
        let total: Vec<f64> = split_adjusted.iter().enumerate().map(|(i, c)| if i < X { *c } else { c * g }).collect();
        all_near(p.close(0), &total);
        assert!(p.corporate_actions(0).is_none());
    }
}

#[test]
fn dividends_are_read_from_adj_close_without_a_dividends_column() {
    // No split; a back-adjusted Adj Close as yfinance writes it: the bars before the
    // ex-date scaled by 1 − D / previous close, rounded to 4 decimals.
    let close: Vec<f64> = (0..N).map(|i| 50.0 + 0.01 * i as f64 - if i >= X { D } else { 0.0 }).collect();
    let f = 1.0 - D / close[X - 1];
    let dir = tempfile::tempdir().unwrap();
    let adj = |i: usize| format!(",{:.4}", if i < X { close[i] * f } else { close[i] });
    write_file(dir.path(), "ADJ", ",Adj Close", &bars(&close, |_| 1_000.0, adj));
    let (p, report) = load_panel(&data_config(dir.path(), "ADJ", Adjust::None)).unwrap();
    all_near(p.close(0), &close);
    let (_, dividend) = p.corporate_actions(0).expect("events");
    assert!((dividend[X] - D).abs() < 1e-3, "{}", dividend[X]);
    assert_eq!(dividend.iter().filter(|&&d| d > 0.0).count(), 1, "rounding is not a dividend");
    assert!(report.corporate_actions().contains("read from Adj Close"), "{}", report.corporate_actions());
}

/// A raw file whose Adj Close is adjusted for a 2:1 split no column records: a 50% step
/// of Adj Close / Close is no dividend the account would be paid; refused, naming the bar,
/// where it would be paid. Under the default it only adjusts prices: the 2:1 gap goes.
#[test]
fn a_split_only_adj_close_records_is_refused_not_paid_as_a_dividend() {
    let close: Vec<f64> = (0..N).map(|i| if i >= X { 25.0 } else { 50.0 }).collect();
    let dir = tempfile::tempdir().unwrap();
    let adj = |i: usize| format!(",{}", if i < X { close[i] / 2.0 } else { close[i] });
    write_file(dir.path(), "SPL", ",Adj Close", &bars(&close, |_| 1_000.0, adj));
    for adjust in [Adjust::None, Adjust::Splits] {
        let err = load_panel(&data_config(dir.path(), "SPL", adjust)).unwrap_err().to_string();
        assert!(err.contains(&format!("SPL.csv:{}", X + 2)) && err.contains("a split Adj Close adjusts for?"), "{err}");
    }
    let (p, _) = load_panel(&data_config(dir.path(), "SPL", Adjust::SplitsAndDividends)).unwrap();
    let (before, after) = (p.close(0)[X - 1], p.open(0)[X]);
    assert!((after / before - 1.0).abs() < 1e-9, "continuous: {before} then {after}");
}

/// A raw file whose Adj Close is adjusted for a 1:2 reverse split no column records: Adj
/// Close / Close halves, which no dividend does; refused under every mode (it was ignored,
/// the prices keeping the unrecorded doubling).
#[test]
fn a_falling_adj_close_ratio_is_refused() {
    let close: Vec<f64> = (0..N).map(|i| if i >= X { 100.0 } else { 50.0 }).collect();
    let dir = tempfile::tempdir().unwrap();
    let adj = |i: usize| format!(",{}", if i < X { close[i] * 2.0 } else { close[i] });
    write_file(dir.path(), "REV", ",Adj Close", &bars(&close, |_| 1_000.0, adj));
    for adjust in [Adjust::None, Adjust::Splits, Adjust::SplitsAndDividends] {
        let err = load_panel(&data_config(dir.path(), "REV", adjust)).unwrap_err().to_string();
        assert!(err.contains(&format!("REV.csv:{}", X + 2)) && err.contains("falls by ×0.5000"), "{adjust:?}: {err}");
    }
}

/// A 2:1 gap no column records is said (not refused: a real crash can gap too); recorded,
/// under every mode, it is not.
#[test]
fn an_unrecorded_split_is_said() {
    let close: Vec<f64> = (0..N).map(|i| if i >= X { 25.0 } else { 50.0 }).collect();
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "GAP", "", &bars(&close, |_| 1_000.0, |_| String::new()));
    let (_, report) = load_panel(&data_config(dir.path(), "GAP", Adjust::SplitsAndDividends)).unwrap();
    assert_eq!(report.suspect_gaps.len(), 1, "{:?}", report.suspect_gaps);
    assert!(report.suspect_gaps[0].starts_with("GAP ") && report.suspect_gaps[0].ends_with("×0.50"));
    let line = report.to_string();
    assert!(
        line.contains("warning: 1 open at ×0.6 or less, or ×1.67 or more, of the previous close with no split"),
        "{line}"
    );
    let split = |i: usize| format!(",{}", if i == X { 2.0 } else { 0.0 });
    write_file(dir.path(), "REC", ",Stock Splits", &bars(&close, |_| 1_000.0, split));
    for adjust in [Adjust::SplitsAndDividends, Adjust::Splits, Adjust::None] {
        let (_, report) = load_panel(&data_config(dir.path(), "REC", adjust)).unwrap();
        assert!(report.suspect_gaps.is_empty(), "{adjust:?}: {:?}", report.suspect_gaps);
    }
}

#[test]
fn the_default_reads_a_file_without_events_bit_for_bit() {
    // yfinance_1d_SPY.csv has an Adj Close at a constant ratio to Close: no event.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{FIXTURES}/yfinance_1d_SPY.csv"), dir.path().join("SPY.csv")).unwrap();
    let file = load_csv_file(&dir.path().join("SPY.csv"), Interval::Day).unwrap();
    for adjust in [Adjust::SplitsAndDividends, Adjust::Splits, Adjust::None] {
        let (p, report) = load_panel(&data_config(dir.path(), "SPY", adjust)).unwrap();
        assert_eq!(p.close(0), &file.close[..]);
        assert_eq!(p.open(0), &file.open[..]);
        assert_eq!(p.volume(0), &file.volume[..]);
        assert!(p.corporate_actions(0).is_none());
        assert!(!report.to_string().contains("corporate actions"), "{report}");
    }
    assert_eq!(DataConfig::default().adjust, Adjust::SplitsAndDividends);
}

#[test]
fn a_dividend_above_the_price_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let close = vec![10.0; N];
    let extra = |i: usize| format!(",{}", if i == 120 { 12.0 } else { 0.0 });
    write_file(dir.path(), "BAD", ",Dividends", &bars(&close, |_| 1.0, extra));
    let err = load_panel(&data_config(dir.path(), "BAD", Adjust::None)).unwrap_err().to_string();
    assert!(err.contains("BAD.csv:122:") && err.contains("Dividends"), "{err}");
    // A negative split ratio is not a number of shares.
    let extra = |i: usize| format!(",{}", if i == 120 { "-2" } else { "0" });
    write_file(dir.path(), "NEG", ",Stock Splits", &bars(&close, |_| 1.0, extra));
    let err = load_panel(&data_config(dir.path(), "NEG", Adjust::None)).unwrap_err().to_string();
    assert!(err.contains("NEG.csv:122:") && err.contains("Stock Splits"), "{err}");
}

/// A ticker whose economic value never moves: flat at `price`, a split of `ratio` at bar
/// `split` and a dividend of `yield_` × the price at bar `ex`.
#[derive(Debug, Clone, Copy)]
struct Flat {
    price: f64,
    ratio: f64,
    split: usize,
    ex: usize,
    yield_: f64,
    fractional: bool,
}

/// Buy-and-hold of `case` under `adjust`: each bar's equity.
fn buy_and_hold(dir: &Path, adjust: Adjust, case: Flat) -> Vec<f64> {
    let Flat { price, ratio, split, ex, yield_, fractional } = case;
    let (mut p, mut close, mut dividends) = (price, Vec::with_capacity(N), Vec::with_capacity(N));
    for i in 0..N {
        if i == split {
            p /= ratio;
        }
        let d = if i == ex { yield_ * p } else { 0.0 };
        p -= d;
        dividends.push(d);
        close.push(p);
    }
    let extra = |i: usize| format!(",{},{}", dividends[i], if i == split { ratio } else { 0.0 });
    write_file(dir, "ONE", ",Dividends,Stock Splits", &bars(&close, |_| 1e6, extra));
    let ds = Dataset::load(&data_config(dir, "ONE", adjust)).expect("data");
    let cfg = EnvironmentConfig { fractional_shares: fractional, ..env_config() };
    let r = replay_policy(&cfg, ds.market.clone(), ds.range(SplitPart::All), &Policy::BuyAndHold).expect("replay");
    for row in &r.equity {
        let sum = row.cash + row.values.iter().sum::<f64>();
        assert!((sum - row.equity).abs() <= 1e-9 * row.equity, "cash + positions = equity at bar {}", row.bar);
    }
    r.equity.iter().map(|row| row.equity).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Through any split and dividend, a buy-and-hold of a ticker whose value does not move
    /// keeps its equity under every mode, and every mode gives the same curve.
    #[test]
    fn buy_and_hold_through_a_split_is_continuous_under_every_mode(
        price in 5.0f64..500.0,
        ratio in prop::sample::select(vec![2.0, 3.0, 4.0, 7.0, 10.0, 0.5, 0.25, 0.1]),
        split in 103usize..N,
        ex in 103usize..N,
        yield_ in 0.0f64..0.05,
        fractional in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let curves: Vec<Vec<f64>> = [Adjust::SplitsAndDividends, Adjust::Splits, Adjust::None]
            .into_iter()
            .map(|a| buy_and_hold(dir.path(), a, Flat { price, ratio, split, ex, yield_, fractional }))
            .collect();
        // After the first fill (bar 0 of the replay marks the cash before it).
        let first = curves[0][1];
        for (mode, curve) in curves.iter().enumerate() {
            for (i, e) in curve.iter().enumerate().skip(1) {
                prop_assert!((e - first).abs() <= 1e-9 * first, "mode {mode}, row {i}: {e} vs {first}");
            }
        }
    }
}

#[test]
fn adjusting_forward_does_not_look_ahead() {
    // Two files equal up to bar 129; one has a 2:1 split at 130 and a dividend at 135. Under
    // every mode the bars before 130 read the same: an adjusted price depends on past events
    // only.
    let dir = tempfile::tempdir().unwrap();
    let close: Vec<f64> = (0..N).map(|i| 40.0 + (i as f64 * 0.3).sin()).collect();
    write_file(dir.path(), "A", ",Dividends,Stock Splits", &bars(&close, |_| 1e5, |_| ",0,0".into()));
    let later: Vec<f64> = close.iter().enumerate().map(|(i, c)| if i >= 130 { c / 2.0 } else { *c }).collect();
    let events = |i: usize| format!(",{},{}", if i == 135 { 0.3 } else { 0.0 }, if i == 130 { 2.0 } else { 0.0 });
    write_file(dir.path(), "B", ",Dividends,Stock Splits", &bars(&later, |_| 1e5, events));
    for adjust in [Adjust::SplitsAndDividends, Adjust::Splits, Adjust::None] {
        let a = Dataset::load(&data_config(dir.path(), "A", adjust)).expect("A");
        let b = Dataset::load(&data_config(dir.path(), "B", adjust)).expect("B");
        assert_eq!(&a.panel.close(0)[..130], &b.panel.close(0)[..130]);
        let row = a.market.n_features();
        assert_eq!(&a.market.feature_table()[..130 * row], &b.market.feature_table()[..130 * row]);
    }
}

/// Live (the broker keeps a split's fractions) with whole-share trading: an exit decided
/// before a split that leaves a fraction closes exactly what the split left, not the whole
/// shares of the old order × ratio (which would strand the fraction).
#[test]
fn an_exit_at_a_fractional_split_closes_the_fraction_too() {
    let mut cfg = env_config();
    cfg.target_positions.enabled = true;
    cfg.target_positions.levels = vec![0.0, 1.0];
    let mut env = hand::replay(&cfg, market().with_fractional_splits());
    // Full at bar 0's close, then no orders (255), then flat at bar 4's close: it fills at
    // bar 5's open, after its 1-for-3 split.
    for action in [1, 255, 255, 255, 0] {
        env.step(&[action]).expect("step");
    }
    let (_, pos, _) = env.env_state(0).expect("env");
    assert_eq!(pos[0].shares, 0.0, "the fraction is closed with the rest");
}
