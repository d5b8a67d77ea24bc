//! `report.json` and the comparison table: every run beside equal-weight buy-and-hold over
//! the same bars, with the seed's checklist.

use super::metrics::{Check, Metrics, seed_checklist};
use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How one table row formats a run's metrics.
type Cell = Box<dyn Fn(&Metrics) -> String>;

/// One evaluated model or policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub metrics: Metrics,
    pub checklist: Vec<Check>,
}

/// The machine-readable report (`report.json`; keys are stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub interval: String,
    pub bars_per_year: f64,
    pub tickers: Vec<String>,
    /// What `data.adjust` did with splits and dividends, and how many the data held.
    #[serde(default)]
    pub corporate_actions: String,
    /// Equal-weight buy-and-hold over the same bars.
    pub benchmark: Entry,
    pub runs: Vec<Entry>,
    /// A walk-forward's folds: each one's training and test windows (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folds: Vec<FoldWindow>,
}

/// One walk-forward fold's windows, as the bars' times (first and last bar of each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldWindow {
    pub name: String,
    pub train_from: String,
    pub train_to: String,
    pub test_from: String,
    pub test_to: String,
}

impl Entry {
    pub fn new(metrics: Metrics) -> Self {
        let checklist = seed_checklist(&metrics);
        Self { metrics, checklist }
    }
}

impl Report {
    /// Writes `report.json` atomically.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, json.as_bytes())
    }

    /// The runs shown beside the benchmark: all but one that is the benchmark itself
    /// (`--policy buy-and-hold`), which would repeat its column.
    pub fn shown_runs(&self) -> impl Iterator<Item = &Entry> {
        self.runs.iter().filter(|e| e.metrics.name != self.benchmark.metrics.name)
    }

    /// The comparison table, one column per run and buy-and-hold last.
    pub fn table(&self) -> String {
        let cols: Vec<&Metrics> = self.shown_runs().map(|e| &e.metrics).chain([&self.benchmark.metrics]).collect();
        let pct = |v: f64| if v.is_finite() { format!("{:.2}%", 100.0 * v) } else { "-".into() };
        let num = |v: f64| if v.is_finite() { format!("{v:.2}") } else { "-".into() };
        let money = |v: f64| format!("{v:.2}");
        let rows: Vec<(&str, Cell)> = vec![
            ("total return", Box::new(move |m| pct(m.total_return))),
            ("annualized return (CAGR)", Box::new(move |m| pct(m.cagr))),
            ("annualized volatility", Box::new(move |m| pct(m.annual_volatility))),
            ("Sharpe", Box::new(move |m| num(m.sharpe))),
            ("Sortino", Box::new(move |m| num(m.sortino))),
            ("Calmar", Box::new(move |m| num(m.calmar))),
            ("max drawdown", Box::new(move |m| pct(m.max_drawdown))),
            ("max drawdown from (peak)", Box::new(|m| m.max_drawdown_peak.clone().unwrap_or_else(|| "-".into()))),
            ("max drawdown to (trough)", Box::new(|m| m.max_drawdown_trough.clone().unwrap_or_else(|| "-".into()))),
            (
                "max drawdown recovered",
                Box::new(|m| match (&m.max_drawdown_trough, &m.max_drawdown_recovery) {
                    (_, Some(at)) => at.clone(),
                    (Some(_), None) => "not by the end".into(),
                    (None, None) => "-".into(),
                }),
            ),
            ("longest drawdown (bars)", Box::new(|m| m.max_drawdown_bars.to_string())),
            ("win rate", Box::new(move |m| pct(m.win_rate))),
            ("profit factor", Box::new(move |m| num(m.profit_factor))),
            ("avg trade duration (bars)", Box::new(move |m| num(m.avg_trade_bars))),
            ("trades (fills)", Box::new(|m| m.trades.to_string())),
            ("closed trades", Box::new(|m| m.closed_trades.to_string())),
            ("turnover (× mean equity)", Box::new(move |m| num(m.turnover))),
            ("exposure", Box::new(move |m| pct(m.exposure))),
            ("fees paid ($)", Box::new(move |m| money(m.fees))),
            ("spread paid ($)", Box::new(move |m| money(m.spread))),
            ("slippage paid ($)", Box::new(move |m| money(m.slippage))),
            ("impact paid ($)", Box::new(move |m| money(m.impact))),
            ("dividends received ($)", Box::new(move |m| money(m.dividends))),
            ("borrow fees paid ($)", Box::new(move |m| money(m.borrow_fees))),
            ("forced orders (margin calls)", Box::new(|m| m.forced_orders.to_string())),
            ("orders refused", Box::new(|m| m.refused.iter().map(|(_, n)| n).sum::<u32>().to_string())),
        ];
        let mut header = vec!["metric".to_string()];
        header.extend(self.shown_runs().map(|e| e.metrics.name.clone()));
        header.push("buy-and-hold".into());
        let mut lines = vec![header];
        for (label, f) in &rows {
            let mut line = vec![label.to_string()];
            line.extend(cols.iter().map(|m| f(m)));
            lines.push(line);
        }
        let widths: Vec<usize> =
            (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l.iter().enumerate().map(|(c, s)| format!("{s:<w$}", w = widths[c])).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
            if i == 0 {
                out.push_str(&format!(
                    "|{}|\n",
                    widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")
                ));
            }
        }
        for m in &cols {
            if !m.refused.is_empty() {
                let reasons: Vec<String> = m.refused.iter().map(|(r, n)| format!("{r} {n}")).collect();
                out.push_str(&format!("\nOrders refused, {}: {}\n", m.name, reasons.join(", ")));
            }
        }
        for e in &self.runs {
            out.push_str(&format!("\nSeed checklist, {}:\n", e.metrics.name));
            for c in &e.checklist {
                let v = c.shown();
                out.push_str(&format!("  [{}] {} (value {v})\n", if c.met { "met" } else { "NOT met" }, c.criterion));
            }
        }
        out
    }
}
