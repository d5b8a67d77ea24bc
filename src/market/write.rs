//! Writes a panel as one `<TICKER>.csv` per ticker, the plain format the loader reads back.
//!
//! Header `timestamp,open,high,low,close,volume`; timestamps are New York local time with
//! their offset (`2021-03-15T09:30:00-04:00`) for hourly bars and dates (`2021-03-15`) for
//! daily bars; numbers use Rust's `{}`, the shortest text that parses back to the same
//! `f64`, so a write → load round trip is exact. Each file is written to a temporary file in
//! the same folder and renamed, so a crash never leaves a half-written CSV that would later
//! load as a short series.

use super::{DataError, Panel, calendar};
use std::io::Write;
use std::path::Path;

/// Writes every ticker of `panel` to `<dir>/<TICKER>.csv`, creating `dir` if needed.
///
/// # Errors
/// [`DataError::Io`] naming the file that could not be created, written or renamed.
pub fn write_csv_dir(panel: &Panel, dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let stamps: Vec<String> =
        panel.timestamps().iter().map(|&ts| calendar::format_timestamp(ts, panel.interval())).collect();
    for (k, ticker) in panel.tickers().iter().enumerate() {
        let path = dir.join(format!("{ticker}.csv"));
        let tmp = dir.join(format!(".{ticker}.csv.tmp"));
        let io = |e| DataError::io(&path, e);
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        writeln!(w, "timestamp,open,high,low,close,volume").map_err(io)?;
        let (o, h, l, c, v) = (panel.open(k), panel.high(k), panel.low(k), panel.close(k), panel.volume(k));
        for (t, stamp) in stamps.iter().enumerate() {
            writeln!(w, "{stamp},{},{},{},{},{}", o[t], h[t], l[t], c[t], v[t]).map_err(io)?;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
    }
    Ok(())
}
