//! `report.html`: one self-contained page with the comparison table, the seed checklist
//! and the SVG plots inlined.
//!
//! The page loads nothing: no scripts, no stylesheets or fonts from the network, no
//! image files beside it. Its table is [`Report::table`]'s, cell for cell, so the page
//! and the terminal never disagree.

use super::report::Report;
use crate::fsutil::write_atomic;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 2em auto; max-width: 1240px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
td.bench, th.bench { background: #f3f3f8; }
ul.checks { list-style: none; padding-left: 0; }
ul.checks li { margin: 0.25em 0; }
.met, .not-met { display: inline-block; min-width: 5.5em; text-align: center; border-radius: 3px; padding: 0.05em 0.4em; margin-right: 0.6em; font-weight: bold; font-size: 0.85em; }
.met { background: #d9f2df; color: #1a7a35; }
.not-met { background: #fbdcdb; color: #b0261e; }
figure { margin: 1em 0 2em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
details { margin-top: 1em; }
summary { cursor: pointer; color: #444; }
td.def { text-align: left; }
";

/// What each row of the comparison table means (the formulas of
/// [`crate::backtest::metrics`]), shown under the table so that a reader of the page alone
/// can check it.
const DEFINITIONS: [(&str, &str); 18] = [
    ("total return", "E_last / E_0 − 1"),
    ("annualized return (CAGR)", "(E_last / E_0)^(P / n) − 1"),
    ("annualized volatility", "std(r, ddof 1) · √P"),
    ("Sharpe", "mean(r) / std(r, ddof 1) · √P, risk-free rate 0; 0 when undefined (returns that never vary)"),
    ("Sortino", "mean(r) · P / (√mean(min(r, 0)²) · √P), target return 0"),
    ("Calmar", "CAGR / max drawdown"),
    (
        "max drawdown",
        "the deepest fall below a previous peak, 1 − E_t / max(E_0..E_t); from its peak to its lowest bar, recovered at the first bar back at the peak",
    ),
    (
        "longest drawdown (bars)",
        "the longest run of bars below a previous peak (to recovery or the end), whichever drawdown it is",
    ),
    (
        "win rate, profit factor, avg trade duration",
        "over closed trades: from the fill that opens a position to the one that closes it (add-ons join it); P&L net of all costs; profit factor = Σ wins / |Σ losses|",
    ),
    ("trades (fills)", "every fill, opening, adding, reducing or closing"),
    ("closed trades", "round trips closed by the end (a position still open is none)"),
    ("turnover (× mean equity)", "Σ traded notional over the whole period / mean equity (not per year)"),
    ("exposure", "mean over bars of gross position value (longs and shorts) / equity"),
    (
        "fees, spread, slippage, impact paid ($)",
        "broker and regulatory fees, half spreads, slippage and market impact, summed over fills",
    ),
    (
        "dividends received ($)",
        "cash dividends credited on the ex-date to the shares held (data.adjust: splits or none)",
    ),
    ("borrow fees paid ($)", "short positions' borrow rate / 252 per trading day held, charged at each close"),
    ("forced orders (margin calls)", "buy-ins the broker placed itself when a short breached maintenance margin"),
    ("orders refused", "orders a rule or execution refused, by reason below the table"),
];

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The comparison table's cells, header row first, read from [`Report::table`]'s
/// Markdown table (its first block of `|` lines, without the separator).
fn table_cells(report: &Report) -> Vec<Vec<String>> {
    report
        .table()
        .lines()
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("|-"))
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

/// The page, as a string (see [`write_html`]); `svgs` are `(title, svg document)`.
pub fn render_html(report: &Report, svgs: &[(String, String)]) -> String {
    let mut h = String::new();
    let title = format!("Ploutos backtest {} → {}", report.from, report.to);
    // `write!` into a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        h,
        "<p class=\"meta\">Interval {} ({} bars a year) · tickers {} · benchmark: equal-weight buy-and-hold over the same bars{}</p>",
        escape(&report.interval),
        report.bars_per_year,
        escape(&report.tickers.join(", ")),
        if report.corporate_actions.is_empty() {
            String::new()
        } else {
            format!(" · {}", escape(&report.corporate_actions))
        }
    );

    h.push_str("<h2>Comparison</h2>\n<table>\n");
    let cells = table_cells(report);
    let last = cells.first().map_or(0, Vec::len).saturating_sub(1);
    for (i, row) in cells.iter().enumerate() {
        if i == 0 {
            h.push_str("<thead><tr>");
        } else if i == 1 {
            h.push_str("<tbody>\n<tr>");
        } else {
            h.push_str("<tr>");
        }
        let tag = if i == 0 { "th" } else { "td" };
        for (c, cell) in row.iter().enumerate() {
            let class = if c == last && c > 0 { " class=\"bench\"" } else { "" };
            let _ = write!(h, "<{tag}{class}>{}</{tag}>", escape(cell));
        }
        h.push_str(if i == 0 { "</tr></thead>\n" } else { "</tr>\n" });
    }
    if cells.len() > 1 {
        h.push_str("</tbody>\n");
    }
    h.push_str("</table>\n");

    for m in report.shown_runs().map(|e| &e.metrics).chain([&report.benchmark.metrics]) {
        if !m.refused.is_empty() {
            let reasons: Vec<String> = m.refused.iter().map(|(r, n)| format!("{} {n}", escape(r))).collect();
            let _ = writeln!(h, "<p>Orders refused, {}: {}</p>", escape(&m.name), reasons.join(", "));
        }
    }

    let _ = writeln!(
        h,
        "<details open>\n<summary>Definitions</summary>\n<p>r = E_t / E_(t−1) − 1, the returns of the equity E marked at each bar's close; n = number of returns; P = {} bars a year.</p>\n<table>",
        report.bars_per_year
    );
    for (metric, definition) in DEFINITIONS {
        let _ = writeln!(h, "<tr><td>{}</td><td class=\"def\">{}</td></tr>", escape(metric), escape(definition));
    }
    h.push_str("</table>\n</details>\n");

    h.push_str("<h2>Seed checklist</h2>\n");
    for e in &report.runs {
        let met = e.checklist.iter().filter(|c| c.met).count();
        let _ = writeln!(
            h,
            "<h3>{} — {met} of {} met</h3>\n<ul class=\"checks\">",
            escape(&e.metrics.name),
            e.checklist.len()
        );
        for c in &e.checklist {
            let (class, word) = if c.met { ("met", "met") } else { ("not-met", "not met") };
            let value = c.shown();
            let _ =
                writeln!(h, "<li><span class=\"{class}\">{word}</span>{} (value {value})</li>", escape(&c.criterion));
        }
        h.push_str("</ul>\n");
    }

    if !svgs.is_empty() {
        h.push_str("<h2>Plots</h2>\n");
    }
    for (name, svg) in svgs {
        let _ = writeln!(h, "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>", strip_prolog(svg), escape(name));
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// An SVG document without its XML declaration or doctype, ready to inline.
fn strip_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..]).trim_end()
}

/// Writes `report.html` into `dir` (atomically): the comparison table, the seed
/// checklist marked met / not met, and every `.svg` of `plots` inlined, in order (other
/// files, such as the PNGs, are skipped).
///
/// # Errors
/// I/O errors reading a plot or writing the page.
pub fn write_html(dir: &Path, report: &Report, plots: &[PathBuf]) -> io::Result<()> {
    let mut svgs = Vec::new();
    for p in plots.iter().filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))) {
        let name = p.file_stem().map(|s| s.to_string_lossy().replace('_', " ")).unwrap_or_default();
        svgs.push((name, std::fs::read_to_string(p)?));
    }
    write_atomic(&dir.join("report.html"), render_html(report, &svgs).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::metrics::Metrics;
    use crate::backtest::report::Entry;

    fn report() -> Report {
        let m =
            |name: &str, sharpe: f64| Metrics { name: name.into(), sharpe, max_drawdown: 0.1, ..Default::default() };
        Report {
            from: "2024-01-02".into(),
            to: "2024-06-28".into(),
            interval: "1d".into(),
            bars_per_year: 252.0,
            tickers: vec!["AAPL".into(), "<MSFT>".into()],
            corporate_actions: String::new(),
            benchmark: Entry::new(m("buy-and-hold", 0.5)),
            runs: vec![Entry::new(m("a&b", 2.0))],
            folds: Vec::new(),
        }
    }

    #[test]
    fn table_has_the_rows_of_the_text_table() {
        let r = report();
        let cells = table_cells(&r);
        assert_eq!(cells[0], vec!["metric", "a&b", "buy-and-hold"]);
        let text_rows = r.table().lines().take_while(|l| l.starts_with('|')).count() - 1;
        assert_eq!(cells.len(), text_rows);
        assert!(cells.iter().any(|row| row[0] == "Sharpe" && row[1] == "2.00" && row[2] == "0.50"), "{cells:?}");
    }

    #[test]
    fn page_escapes_marks_checks_and_inlines_svgs() {
        let svg = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>\n".to_string();
        let page = render_html(&report(), &[("equity".into(), svg)]);
        assert!(page.contains("&lt;MSFT&gt;") && page.contains("a&amp;b"));
        assert!(!page.contains("<?xml"));
        assert!(page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>"));
        assert!(page.contains("class=\"met\">met</span>Sharpe ratio &gt; 1.5"));
        assert!(page.contains("class=\"not-met\">not met</span>win rate"));
        assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
    }
}
