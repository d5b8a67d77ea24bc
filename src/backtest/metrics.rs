//! Performance metrics of a replay, each defined here with its formula.
//!
//! Step returns `r_i = E_i / E_{i−1} − 1` over the equity rows (one per bar); `P` = bars per
//! year = 252 × bars per trading day (7 for hourly bars); `n` = number of returns.
//!
//! | metric | formula |
//! | --- | --- |
//! | `total_return` | `E_last / E_0 − 1` |
//! | `cagr` | `(E_last / E_0)^(P / n) − 1` |
//! | `annual_volatility` | `std(r, ddof = 1) · √P` |
//! | `sharpe` | `mean(r) / std(r, ddof = 1) · √P` (risk-free rate 0; 0 when undefined, see [`sharpe`]) |
//! | `sortino` | `mean(r) · P / (√mean(min(r, 0)²) · √P)` |
//! | `max_drawdown` | `max_i (1 − E_i / max_{j≤i} E_j)` (a positive fraction) |
//! | `max_drawdown_peak`, `_trough`, `_recovery` | times of the deepest drawdown's peak, of its lowest bar and of the first bar back at the peak (`null`: not by the end) |
//! | `max_drawdown_bars` | longest run of bars below a previous peak (to recovery or the end), whichever drawdown it is |
//! | `calmar` | `cagr / max_drawdown` |
//! | `win_rate` | closed trades with positive P&L / closed trades |
//! | `profit_factor` | Σ P&L of winners / |Σ P&L of losers| |
//! | `avg_trade_bars` | mean of (sell fill bar − opening buy fill bar) over closed trades |
//! | `turnover` | Σ traded notional / mean equity |
//! | `exposure` | mean over bars of (gross positions value, longs and shorts, / equity) |
//!
//! A closed trade runs from the buy that opens a position to the sell that closes it
//! (add-on buys join it); its P&L is the sell's proceeds net of fees minus everything the
//! buys cost, fees included. These are the conventions of `empyrical` (Sharpe, Sortino,
//! CAGR, Calmar with `annualization = P`), against which the tests check them, with one
//! exception: a Sharpe ratio that is undefined is 0 here, where empyrical gives NaN or ±∞.
//!
//! [`sharpe`] is also the learner's: the evaluation that picks the best model scores
//! episodes with it, so a report and a training run agree on a model's Sharpe.

use super::ReplayResult;
use crate::env::Side;
use serde::{Deserialize, Serialize};

/// All metrics of one replay, with stable keys (they are `report.json`'s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    pub name: String,
    pub bars: usize,
    pub initial_equity: f64,
    pub final_equity: f64,
    pub total_return: f64,
    pub cagr: f64,
    pub annual_volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub calmar: f64,
    pub max_drawdown: f64,
    pub max_drawdown_bars: usize,
    pub win_rate: f64,
    pub profit_factor: f64,
    pub avg_trade_bars: f64,
    pub closed_trades: usize,
    pub trades: usize,
    pub turnover: f64,
    pub exposure: f64,
    pub fees: f64,
    pub spread: f64,
    pub slippage: f64,
    pub impact: f64,
    /// Dividends credited to cash (`data.adjust: splits | none`), with cash paid in lieu
    /// of fractional shares after splits.
    #[serde(default)]
    pub dividends: f64,
    #[serde(default)]
    pub cash_in_lieu: f64,
    /// Borrow fees paid on shorts (`short_selling.borrow_rate`).
    #[serde(default)]
    pub borrow_fees: f64,
    /// Orders the broker placed itself: forced buy-ins of margin calls.
    #[serde(default)]
    pub forced_orders: u64,
    /// Refused orders per reason name.
    pub refused: Vec<(String, u32)>,
    /// When the deepest drawdown began (its peak's bar), bottomed, and recovered (the first
    /// bar back at the peak, `None` when not by the end), as bar times; all `None` without
    /// a drawdown, or until [`Metrics::with_times`] names the bars.
    #[serde(default)]
    pub max_drawdown_peak: Option<String>,
    #[serde(default)]
    pub max_drawdown_trough: Option<String>,
    #[serde(default)]
    pub max_drawdown_recovery: Option<String>,
}

/// Where the deepest drawdown of an equity curve lies, as indices into the curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawdownSpan {
    /// The last row at the running peak before the trough.
    pub peak: usize,
    /// The lowest row relative to that peak.
    pub trough: usize,
    /// The first row after the trough back at the peak, if any.
    pub recovery: Option<usize>,
}

/// The deepest drawdown's span (the first one when two are as deep); `None` when the curve
/// never falls below a previous peak.
pub fn max_drawdown_span(equity: &[f64]) -> Option<DrawdownSpan> {
    let (mut peak, mut peak_at, mut deepest) = (f64::MIN, 0usize, None::<(f64, usize, usize)>);
    for (i, &e) in equity.iter().enumerate() {
        if !e.is_finite() {
            continue;
        }
        if e >= peak {
            (peak, peak_at) = (e, i);
        } else if deepest.is_none_or(|(dd, ..)| 1.0 - e / peak > dd) {
            deepest = Some((1.0 - e / peak, peak_at, i));
        }
    }
    let (_, peak, trough) = deepest?;
    let recovery = (trough + 1..equity.len()).find(|&i| equity[i] >= equity[peak]);
    Some(DrawdownSpan { peak, trough, recovery })
}

impl Metrics {
    /// Names the deepest drawdown's bars with `time_of` (of a bar index of the market, as
    /// [`super::EquityRow::bar`]), for the replay these metrics were computed from.
    pub fn with_times(mut self, result: &ReplayResult, time_of: impl Fn(usize) -> String) -> Self {
        let equity: Vec<f64> = result.equity.iter().map(|r| r.equity).collect();
        if let Some(span) = max_drawdown_span(&equity) {
            let at = |i: usize| time_of(result.equity[i].bar);
            self.max_drawdown_peak = Some(at(span.peak));
            self.max_drawdown_trough = Some(at(span.trough));
            self.max_drawdown_recovery = span.recovery.map(at);
        }
        self
    }
}

/// Statistics of a return series (the pieces shared by every metric).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReturnStats {
    pub total_return: f64,
    pub cagr: f64,
    pub annual_volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub max_drawdown: f64,
    pub max_drawdown_bars: usize,
    pub calmar: f64,
}

/// Return statistics of an equity curve with `bars_per_year` bars a year.
pub fn return_stats(equity: &[f64], bars_per_year: f64) -> ReturnStats {
    let rets: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let n = rets.len();
    let first = equity.first().copied().unwrap_or(1.0);
    let last = equity.last().copied().unwrap_or(first);
    let total_return = last / first - 1.0;
    let cagr = if n > 0 && last > 0.0 { (last / first).powf(bars_per_year / n as f64) - 1.0 } else { f64::NAN };
    let mean = if n > 0 { rets.iter().sum::<f64>() / n as f64 } else { f64::NAN };
    let std =
        if n > 1 { (rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { f64::NAN };
    let downside =
        if n > 0 { (rets.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n as f64).sqrt() } else { f64::NAN };
    let (max_drawdown, max_drawdown_bars) = drawdown(equity);
    ReturnStats {
        total_return,
        cagr,
        annual_volatility: std * bars_per_year.sqrt(),
        sharpe: sharpe(&rets, bars_per_year),
        sortino: ratio(mean * bars_per_year, downside * bars_per_year.sqrt()),
        max_drawdown,
        max_drawdown_bars,
        calmar: ratio(cagr, max_drawdown),
    }
}

/// Annualized Sharpe ratio of step returns: `mean(r) / std(r, ddof = 1) · √bars_per_year`,
/// risk-free rate 0.
///
/// 0 when the ratio is undefined: fewer than two returns, or a sample variance that is zero
/// or not finite. The commonest such series is an account that never trades (every return
/// exactly 0), for which 0 is the honest score; a report prints it as a number rather than
/// NaN, and the learner's evaluation, which averages it over episodes and keeps the best
/// model by it, never sees a NaN from one flat episode. The result is finite whenever
/// `bars_per_year` is.
pub fn sharpe(returns: &[f64], bars_per_year: f64) -> f64 {
    let n = returns.len();
    if n < 2 {
        return 0.0;
    }
    let mean = returns.iter().sum::<f64>() / n as f64;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    if var <= 0.0 || !var.is_finite() {
        return 0.0;
    }
    mean / var.sqrt() * bars_per_year.sqrt()
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && b.is_finite() { a / b } else { f64::NAN }
}

/// Maximum drawdown (fraction) and the longest stretch of bars spent below a peak.
pub fn drawdown(equity: &[f64]) -> (f64, usize) {
    let (mut peak, mut max_dd, mut since_peak, mut longest) = (f64::MIN, 0.0f64, 0usize, 0usize);
    for &e in equity {
        if e >= peak {
            peak = e;
            since_peak = 0;
        } else {
            since_peak += 1;
            longest = longest.max(since_peak);
            max_dd = max_dd.max(1.0 - e / peak);
        }
    }
    (max_dd, longest)
}

/// A closed round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedTrade {
    pub ticker: u16,
    pub open_bar: u32,
    pub close_bar: u32,
    pub pnl: f64,
}

/// Round trips from a replay's trade list: an order against the position's side (a sell
/// of a long, a buy of a short) closes a trade of the shares it fills, with its share of
/// the position's cash flows; the rest stays open.
pub fn closed_trades(trades: &[crate::env::TradeRecord], n_tickers: usize) -> Vec<ClosedTrade> {
    // (signed shares, cash flows so far, opening bar) per open position
    let mut open: Vec<Option<(f64, f64, u32)>> = vec![None; n_tickers];
    let mut out = Vec::new();
    for tr in trades {
        let k = tr.ticker as usize;
        let (shares, cash) = match tr.side {
            Side::Buy => (tr.shares, -(tr.shares * tr.fill_price) - tr.fees),
            Side::Sell => (-tr.shares, tr.shares * tr.fill_price - tr.fees),
            Side::Hold => continue,
        };
        match open[k] {
            Some((q, flows, bar)) if q * shares < 0.0 => {
                let part = (shares.abs() / q.abs()).min(1.0);
                let pnl = cash + flows * part;
                out.push(ClosedTrade { ticker: tr.ticker, open_bar: bar, close_bar: tr.bar, pnl });
                let left = q + shares;
                open[k] = (part < 1.0 && left.abs() > 1e-9 * q.abs()).then_some((left, flows * (1.0 - part), bar));
            }
            Some((q, flows, bar)) => open[k] = Some((q + shares, flows + cash, bar)),
            None => open[k] = Some((shares, cash, tr.bar)),
        }
    }
    out
}

/// Win rate, profit factor and mean duration of closed trades (NaN when undefined).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeStats {
    pub win_rate: f64,
    pub profit_factor: f64,
    pub avg_trade_bars: f64,
}

impl TradeStats {
    pub fn of(closed: &[ClosedTrade]) -> Self {
        let wins: f64 = closed.iter().filter(|t| t.pnl > 0.0).map(|t| t.pnl).sum();
        let n_wins = closed.iter().filter(|t| t.pnl > 0.0).count();
        let losses: f64 = closed.iter().filter(|t| t.pnl <= 0.0).map(|t| t.pnl).sum();
        let n = closed.len();
        Self {
            win_rate: if n == 0 { f64::NAN } else { n_wins as f64 / n as f64 },
            profit_factor: if losses < 0.0 { wins / -losses } else { f64::NAN },
            avg_trade_bars: if n == 0 {
                f64::NAN
            } else {
                closed.iter().map(|t| f64::from(t.close_bar - t.open_bar)).sum::<f64>() / n as f64
            },
        }
    }
}

/// All metrics of a replay.
pub fn compute(result: &ReplayResult, bars_per_year: f64) -> Metrics {
    let equity: Vec<f64> = result.equity.iter().map(|r| r.equity).collect();
    let s = return_stats(&equity, bars_per_year);
    let n_tickers = result.equity.first().map_or(0, |r| r.values.len());
    let closed = closed_trades(&result.trades, n_tickers);
    let stats = TradeStats::of(&closed);
    let mean_equity = equity.iter().sum::<f64>() / equity.len().max(1) as f64;
    let notional = result.trades.iter().map(|t| t.shares * t.fill_price).fold(0.0, |a, b| a + b);
    let exposure = result
        .equity
        .iter()
        .map(|r| if r.equity > 0.0 { r.values.iter().map(|v| v.abs()).sum::<f64>() / r.equity } else { 0.0 })
        .sum::<f64>()
        / result.equity.len().max(1) as f64;
    let sum = |f: fn(&crate::env::TradeRecord) -> f64| result.trades.iter().map(f).fold(0.0, |a, b| a + b);
    Metrics {
        name: result.name.clone(),
        bars: equity.len(),
        initial_equity: equity.first().copied().unwrap_or(result.initial_cash),
        final_equity: equity.last().copied().unwrap_or(result.initial_cash),
        total_return: s.total_return,
        cagr: s.cagr,
        annual_volatility: s.annual_volatility,
        sharpe: s.sharpe,
        sortino: s.sortino,
        calmar: s.calmar,
        max_drawdown: s.max_drawdown,
        max_drawdown_bars: s.max_drawdown_bars,
        win_rate: stats.win_rate,
        profit_factor: stats.profit_factor,
        avg_trade_bars: stats.avg_trade_bars,
        closed_trades: closed.len(),
        trades: result.trades.len(),
        turnover: if mean_equity > 0.0 { notional / mean_equity } else { f64::NAN },
        exposure,
        fees: sum(|t| t.fees),
        spread: sum(|t| t.spread),
        slippage: sum(|t| t.slippage),
        impact: sum(|t| t.impact),
        dividends: result.totals.dividends,
        cash_in_lieu: result.totals.cash_in_lieu,
        borrow_fees: result.totals.borrow_fees,
        forced_orders: result.totals.forced_orders,
        refused: result
            .refusal_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), result.totals.refused.0[i]))
            .filter(|(_, n)| *n > 0)
            .collect(),
        max_drawdown_peak: None,
        max_drawdown_trough: None,
        max_drawdown_recovery: None,
    }
}

/// One line of the seed's expected-results checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub criterion: String,
    pub value: f64,
    pub met: bool,
    /// Whether `value` is a fraction that reads as a percentage (drawdown, win rate, return).
    #[serde(default)]
    pub percent: bool,
}

impl Check {
    /// The value as the table shows it: a percentage with two decimals, or a number with
    /// two; `n/a` when undefined.
    pub fn shown(&self) -> String {
        match (self.value.is_finite(), self.percent) {
            (false, _) => "n/a".into(),
            (true, true) => format!("{:.2}%", 100.0 * self.value),
            (true, false) => format!("{:.2}", self.value),
        }
    }
}

/// The seed's expected results: Sharpe > 1.5, max drawdown < 20%, win rate 55–65%,
/// average trade duration 5–10 bars, annualized return 30–50%. Every line is reported,
/// met or not.
pub fn seed_checklist(m: &Metrics) -> Vec<Check> {
    let c = |criterion: &str, value: f64, met: bool, percent: bool| Check {
        criterion: criterion.into(),
        value,
        met: met && value.is_finite(),
        percent,
    };
    vec![
        c("Sharpe ratio > 1.5", m.sharpe, m.sharpe > 1.5, false),
        c("max drawdown < 20%", m.max_drawdown, m.max_drawdown < 0.20, true),
        c("win rate 55–65%", m.win_rate, (0.55..=0.65).contains(&m.win_rate), true),
        c("average trade duration 5–10 bars", m.avg_trade_bars, (5.0..=10.0).contains(&m.avg_trade_bars), false),
        c("annualized return 30–50%", m.cagr, (0.30..=0.50).contains(&m.cagr), true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::no_returns(&[], 0.0)]
    #[case::one_return(&[0.01], 0.0)]
    #[case::flat_account(&[0.0, 0.0, 0.0], 0.0)]
    #[case::constant_gain(&[0.01, 0.01, 0.01], 0.0)]
    #[case::not_finite(&[0.01, f64::NAN, 0.02], 0.0)]
    #[case::infinite(&[0.01, f64::INFINITY], 0.0)]
    // mean 0.02, sample std √0.0002 = 0.02/√2: Sharpe √2 a bar.
    #[case::two_returns(&[0.01, 0.03], std::f64::consts::SQRT_2)]
    #[case::losing(&[-0.01, -0.03], -std::f64::consts::SQRT_2)]
    fn sharpe_per_bar(#[case] returns: &[f64], #[case] want: f64) {
        let got = sharpe(returns, 1.0);
        assert!((got - want).abs() < 1e-12, "sharpe({returns:?}) = {got}, want {want}");
    }

    #[test]
    fn sharpe_annualizes_by_the_root_of_bars_per_year() {
        let r = [0.01, 0.02, 0.0, 0.015];
        assert!((sharpe(&r, 252.0) - sharpe(&r, 1.0) * 252f64.sqrt()).abs() < 1e-12);
        assert!(sharpe(&r, 252.0) > 0.0);
    }

    #[test]
    fn the_deepest_drawdown_is_located() {
        // A 10% dip recovered, then a 20% one from a higher peak, not recovered; the longest
        // stretch under water is the first (4 bars), not the deepest.
        let equity = [100.0, 90.0, 95.0, 99.0, 99.0, 100.0, 110.0, 88.0, 100.0];
        let span = max_drawdown_span(&equity).unwrap();
        assert_eq!(span, DrawdownSpan { peak: 6, trough: 7, recovery: None });
        let (dd, longest) = drawdown(&equity);
        assert!((dd - 0.2).abs() < 1e-12 && longest == 4, "{dd} {longest}");
        let recovered = [100.0, 80.0, 90.0, 100.0, 95.0];
        assert_eq!(max_drawdown_span(&recovered), Some(DrawdownSpan { peak: 0, trough: 1, recovery: Some(3) }));
        // As deep twice: the first; never below a peak: none.
        assert_eq!(max_drawdown_span(&[100.0, 90.0, 100.0, 90.0]).map(|s| s.trough), Some(1));
        assert_eq!(max_drawdown_span(&[100.0, 100.0, 101.0]), None);
    }

    #[test]
    fn return_stats_use_the_same_sharpe() {
        // A flat curve: Sharpe 0 (not NaN), Sortino and Calmar still undefined.
        let s = return_stats(&[100.0; 10], 252.0);
        assert_eq!(s.sharpe, 0.0);
        assert!(s.sortino.is_nan() && s.calmar.is_nan());
        // One bar: no return at all.
        assert_eq!(return_stats(&[100.0], 252.0).sharpe, 0.0);
        let equity = [100.0, 101.0, 100.0, 102.0];
        let rets: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        assert_eq!(return_stats(&equity, 252.0).sharpe, sharpe(&rets, 252.0));
    }
}
