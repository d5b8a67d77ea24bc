//! Backtest metrics against hand-computed values and against empyrical.
//!
//! Hand-made equity curves and trade lists have Sharpe, Sortino, CAGR, Calmar, max
//! drawdown and its duration, win rate, profit factor and average duration worked out in
//! the comments. The golden series under `tests/fixtures/metrics/` come from empyrical
//! (`scripts/gen_metric_goldens.py`, empyrical-reloaded 0.7.1) and must match
//! [`return_stats`] to 1e-9 relative.

use ploutos::backtest::metrics::{closed_trades, compute, drawdown, return_stats};
use ploutos::backtest::{EquityRow, ReplayResult};
use ploutos::env::{Side, TradeRecord};
use std::path::Path;

/// `a` equals `b` to `rel` relative (absolute near zero).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[track_caller]
fn assert_close(what: &str, a: f64, b: f64, rel: f64) {
    assert!(close(a, b, rel), "{what}: got {a:.17e}, want {b:.17e} (rel err {:.3e})", ((a - b) / b).abs());
}

/// An equity curve from simple returns, starting at 100.
fn curve(returns: &[f64]) -> Vec<f64> {
    let mut e = vec![100.0];
    for r in returns {
        let last = *e.last().expect("starts non-empty");
        e.push(last * (1.0 + r));
    }
    e
}

fn result(equity: &[f64], values: &[Vec<f64>], trades: Vec<TradeRecord>) -> ReplayResult {
    ReplayResult {
        name: "hand".into(),
        initial_cash: equity[0],
        equity: equity
            .iter()
            .zip(values)
            .enumerate()
            .map(|(bar, (&e, v))| EquityRow { bar, equity: e, cash: e - v.iter().sum::<f64>(), values: v.clone() })
            .collect(),
        trades,
        totals: Default::default(),
        refusal_names: vec![],
    }
}

fn trade(bar: u32, ticker: u16, side: Side, shares: f64, price: f64, fees: f64) -> TradeRecord {
    TradeRecord {
        bar,
        ticker,
        side,
        shares,
        reference_price: price,
        fill_price: price,
        spread: 0.0,
        slippage: 0.0,
        impact: 0.0,
        fees,
        cash_after: 0.0,
        unfilled: 0.0,
        forced: None,
    }
}

#[test]
fn sharpe_and_sortino_of_alternating_returns() {
    // r = +2%, −1%, +2%, −1%: mean 0.005; deviations ±0.015, so
    // std(ddof 1) = √(4 · 0.015² / 3) = √0.0003; per-bar Sharpe 0.005 / √0.0003 = 1/(2√3),
    // × √252 = √21. Downside deviation √((0.01² + 0.01²) / 4) = √0.00005, so
    // Sortino = 0.005 · 252 / (√0.00005 · √252) = √0.5 · √252 = √126.
    let s = return_stats(&curve(&[0.02, -0.01, 0.02, -0.01]), 252.0);
    assert_close("sharpe", s.sharpe, 21f64.sqrt(), 1e-12);
    assert_close("sortino", s.sortino, 126f64.sqrt(), 1e-12);
    assert_close("annual volatility", s.annual_volatility, (0.0003f64 * 252.0).sqrt(), 1e-12);
}

#[test]
fn cagr_calmar_and_total_return() {
    // 100 → 121 over 4 returns at 2 bars a year: two years, so CAGR = √1.21 − 1 = 10%.
    // The only drawdown is 110 → 99, 10%, so Calmar = 0.10 / 0.10 = 1.
    let s = return_stats(&[100.0, 110.0, 99.0, 110.0, 121.0], 2.0);
    assert_close("total return", s.total_return, 0.21, 1e-12);
    assert_close("cagr", s.cagr, 0.1, 1e-12);
    assert_close("max drawdown", s.max_drawdown, 0.1, 1e-12);
    assert_close("calmar", s.calmar, 1.0, 1e-12);
    // Only the bar at 99 is below the peak: back at 110 the drawdown is over.
    assert_eq!(s.max_drawdown_bars, 1, "{s:?}");
}

#[test]
fn deepest_and_longest_drawdowns_are_different_episodes() {
    // Peak 120, then 90, 100, 110, 119 (4 bars below it) until 125; then 80, 81 to the
    // end (2 bars). Depths 1 − 90/120 = 25% and 1 − 80/125 = 36%.
    let (dd, bars) = drawdown(&[100.0, 120.0, 90.0, 100.0, 110.0, 119.0, 125.0, 80.0, 81.0]);
    assert_close("max drawdown", dd, 0.36, 1e-12);
    assert_eq!(bars, 4);
    // Returning exactly to the peak ends a drawdown.
    let (dd, bars) = drawdown(&[100.0, 90.0, 100.0, 90.0, 100.0]);
    assert_close("max drawdown", dd, 0.1, 1e-12);
    assert_eq!(bars, 1);
    // A curve that never falls has none.
    assert_eq!(drawdown(&[1.0, 1.0, 2.0, 3.0]), (0.0, 0));
    // A drawdown still open at the end counts to the end.
    assert_eq!(drawdown(&[100.0, 99.0, 98.0, 97.0]).1, 3);
}

#[test]
fn cagr_needs_positive_final_equity_and_ratios_need_dispersion() {
    // Bankrupt: no CAGR (and so no Calmar).
    let s = return_stats(&[100.0, 50.0, 0.0], 252.0);
    assert!(s.cagr.is_nan() && s.calmar.is_nan(), "{s:?}");
    assert_close("max drawdown", s.max_drawdown, 1.0, 1e-12);
    // Flat: Sortino and Calmar undefined (NaN, shown as "-"), Sharpe 0 by definition (as
    // the learner's evaluation scores a flat episode; empyrical says NaN), drawdown zero.
    let s = return_stats(&[100.0; 10], 252.0);
    assert!(s.sharpe == 0.0 && s.sortino.is_nan() && s.calmar.is_nan(), "{s:?}");
    assert_eq!((s.max_drawdown, s.max_drawdown_bars, s.total_return, s.cagr), (0.0, 0, 0.0, 0.0));
    // Never down: no downside deviation, so Sortino is NaN (empyrical says +inf).
    let s = return_stats(&curve(&[0.01, 0.02, 0.0, 0.01]), 252.0);
    assert!(s.sortino.is_nan() && s.sharpe > 0.0, "{s:?}");
}

/// Three round trips on two tickers, an add-on buy, and a position left open.
fn trades() -> Vec<TradeRecord> {
    vec![
        // ticker 0: buy 10 @ 10 + fee 1 (101), add 10 @ 12 + fee 1 (121), sell 20 @ 13
        // − fee 2 (258): P&L 258 − 222 = +36, bars 1 → 7 = 6.
        trade(1, 0, Side::Buy, 10.0, 10.0, 1.0),
        // ticker 1: buy 5 @ 20 (100), sell 5 @ 18 − fee 0.5 (89.5): P&L −10.5, bars 2 → 4.
        trade(2, 1, Side::Buy, 5.0, 20.0, 0.0),
        trade(3, 0, Side::Buy, 10.0, 12.0, 1.0),
        trade(4, 1, Side::Sell, 5.0, 18.0, 0.5),
        // ticker 1: buy 5 @ 18 (90), sell 5 @ 19 (95): P&L +5, bars 5 → 9.
        trade(5, 1, Side::Buy, 5.0, 18.0, 0.0),
        trade(7, 0, Side::Sell, 20.0, 13.0, 2.0),
        // ticker 0: opened at bar 8, still open at the end: not a closed trade.
        trade(8, 0, Side::Buy, 1.0, 13.0, 0.1),
        trade(9, 1, Side::Sell, 5.0, 19.0, 0.0),
    ]
}

#[test]
fn round_trips_pnl_and_durations() {
    let closed = closed_trades(&trades(), 2);
    let got: Vec<(u16, u32, u32)> = closed.iter().map(|t| (t.ticker, t.open_bar, t.close_bar)).collect();
    assert_eq!(got, vec![(1, 2, 4), (0, 1, 7), (1, 5, 9)]);
    for (t, want) in closed.iter().zip([-10.5, 36.0, 5.0]) {
        assert_close("pnl", t.pnl, want, 1e-12);
    }
}

#[test]
fn trade_metrics_of_a_replay() {
    // Eleven bars; half the equity in ticker 0 on even bars, nothing on odd bars, so
    // exposure = 6 · 0.5 / 11.
    let equity: Vec<f64> = (0..11).map(|i| 1000.0 + 10.0 * f64::from(i)).collect();
    let values: Vec<Vec<f64>> =
        equity.iter().enumerate().map(|(i, e)| if i % 2 == 0 { vec![e / 2.0, 0.0] } else { vec![0.0, 0.0] }).collect();
    let m = compute(&result(&equity, &values, trades()), 252.0);
    // Winners +36 and +5, loser −10.5: win rate 2/3, profit factor 41 / 10.5,
    // average duration (6 + 2 + 4) / 3 = 4 bars.
    assert_eq!((m.trades, m.closed_trades, m.bars), (8, 3, 11));
    assert_close("win rate", m.win_rate, 2.0 / 3.0, 1e-12);
    assert_close("profit factor", m.profit_factor, 41.0 / 10.5, 1e-12);
    assert_close("avg trade bars", m.avg_trade_bars, 4.0, 1e-12);
    assert_close("fees", m.fees, 4.6, 1e-12);
    assert_close("exposure", m.exposure, 3.0 / 11.0, 1e-12);
    // Notional 100 + 100 + 120 + 90 + 90 + 260 + 13 + 95 = 868 over mean equity 1050.
    assert_close("turnover", m.turnover, 868.0 / 1050.0, 1e-12);
    assert_close("total return", m.total_return, 0.1, 1e-12);
    let s = return_stats(&equity, 252.0);
    assert_eq!((m.sharpe, m.cagr, m.max_drawdown), (s.sharpe, s.cagr, s.max_drawdown));
    assert!(m.sortino.is_nan(), "a curve that never falls has no Sortino");
}

#[test]
fn no_losers_no_profit_factor_no_closed_trades_no_win_rate() {
    let equity = [100.0, 101.0, 102.0];
    let values = vec![vec![0.0]; 3];
    let winners = vec![trade(0, 0, Side::Buy, 1.0, 10.0, 0.0), trade(1, 0, Side::Sell, 1.0, 11.0, 0.0)];
    let m = compute(&result(&equity, &values, winners), 252.0);
    assert_eq!((m.win_rate, m.avg_trade_bars), (1.0, 1.0));
    assert!(m.profit_factor.is_nan());
    let m = compute(&result(&equity, &values, vec![]), 252.0);
    assert!(m.win_rate.is_nan() && m.profit_factor.is_nan() && m.avg_trade_bars.is_nan());
    // A break-even trade is not a win.
    let even = vec![trade(0, 0, Side::Buy, 1.0, 10.0, 0.0), trade(2, 0, Side::Sell, 1.0, 10.0, 0.0)];
    assert_eq!(compute(&result(&equity, &values, even), 252.0).win_rate, 0.0);
}

#[test]
fn return_stats_match_empyrical_goldens() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
    let text = std::fs::read_to_string(dir.join("goldens.json")).expect("goldens.json (scripts/gen_metric_goldens.py)");
    let goldens: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).expect("goldens.json parses");
    assert_eq!(goldens.len(), 3);
    let mut intervals = Vec::new();
    for (name, g) in &goldens {
        let csv = std::fs::read_to_string(dir.join(format!("{name}.csv"))).expect("series csv");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("equity"));
        let equity: Vec<f64> = lines.map(|l| l.parse().expect("a float")).collect();
        let get = |k: &str| g[k].as_f64().unwrap_or_else(|| panic!("{name}.{k}"));
        let bars_per_year = get("bars_per_year");
        intervals.push(bars_per_year);
        assert_eq!(equity.len() as f64 - 1.0, get("returns"), "{name}");
        let s = return_stats(&equity, bars_per_year);
        for (key, ours) in [
            ("total_return", s.total_return),
            ("sharpe", s.sharpe),
            ("sortino", s.sortino),
            ("cagr", s.cagr),
            ("annual_volatility", s.annual_volatility),
            ("max_drawdown", s.max_drawdown),
            ("calmar", s.calmar),
        ] {
            assert_close(&format!("{name} {key}"), ours, get(key), 1e-9);
        }
    }
    intervals.sort_by(f64::total_cmp);
    assert_eq!(intervals, vec![252.0, 252.0, 252.0 * 7.0], "daily and hourly annualization");
}
