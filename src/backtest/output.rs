//! `equity.csv` and `trades.csv`, full precision (Rust's `{}` for f64), written atomically.
//!
//! `trades.csv`: `time,ticker,side,shares,reference_price,fill_price,spread,slippage,impact,fees,cash_after,unfilled_shares,forced`
//! — time of the fill bar; spread, slippage, impact and fees in dollars; cash right after
//! the trade; the shares of the order that the participation cap
//! (`environment.max_participation`) cancelled, 0 for a full fill; for an order the broker
//! placed itself, its reason (`margin_call`: a forced buy-in), empty for the agent's. With
//! short selling a `sell` of a ticker not held long opens or adds to a short, a `buy` of
//! a ticker held short covers it. `equity.csv`: `time,bar,equity,cash,<one value column per ticker>` — one row
//! per bar, marked at its close.

use super::ReplayResult;
use crate::env::Side;
use crate::fsutil::write_atomic_with;
use crate::market::{Panel, calendar::format_timestamp};
use std::io::{self, Write};
use std::path::Path;

/// Writes `trades.csv`.
///
/// # Errors
/// I/O errors.
pub fn write_trades(path: &Path, result: &ReplayResult, panel: &Panel) -> io::Result<()> {
    write_atomic_with(path, |w| {
        writeln!(
            w,
            "time,ticker,side,shares,reference_price,fill_price,spread,slippage,impact,fees,cash_after,unfilled_shares,forced"
        )?;
        for tr in &result.trades {
            let side = match tr.side {
                Side::Buy => "buy",
                Side::Sell => "sell",
                Side::Hold => "hold",
            };
            let forced = tr.forced.map_or("", |r| result.refusal_names[r.0 as usize].as_str());
            writeln!(
                w,
                "{},{},{side},{},{},{},{},{},{},{},{},{},{forced}",
                format_timestamp(panel.timestamps()[tr.bar as usize], panel.interval()),
                panel.tickers()[tr.ticker as usize],
                tr.shares,
                tr.reference_price,
                tr.fill_price,
                tr.spread,
                tr.slippage,
                tr.impact,
                tr.fees,
                tr.cash_after,
                tr.unfilled
            )?;
        }
        Ok(())
    })
}

/// Writes `equity.csv`.
///
/// # Errors
/// I/O errors.
pub fn write_equity(path: &Path, result: &ReplayResult, panel: &Panel) -> io::Result<()> {
    write_atomic_with(path, |w| {
        write!(w, "time,bar,equity,cash")?;
        for t in panel.tickers() {
            write!(w, ",{t}")?;
        }
        writeln!(w)?;
        for r in &result.equity {
            write!(
                w,
                "{},{},{},{}",
                format_timestamp(panel.timestamps()[r.bar], panel.interval()),
                r.bar,
                r.equity,
                r.cash
            )?;
            for v in &r.values {
                write!(w, ",{v}")?;
            }
            writeln!(w)?;
        }
        Ok(())
    })
}
