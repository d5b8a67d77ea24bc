//! Bar validation: the checks every loaded bar passes before it reaches features or the env.
//!
//! Rejected: NaN/inf, non-positive prices, negative volume, `high < max(open, close)` or
//! `low > min(open, close)` by more than [`OHLC_TOLERANCE`] (relative), unsorted or duplicate
//! timestamps, and series shorter than [`crate::features::MIN_BARS`]. Accepted: zero volume
//! (halts, illiquid hours) and `high == low` (a single print). A high or low off by less than
//! the tolerance is float noise from the exporter (a rounded adjusted price) and is clamped
//! rather than rejected.

use super::DataError;
use std::path::Path;

/// Relative tolerance on `high ≥ max(open, close)` and `low ≤ min(open, close)`.
pub const OHLC_TOLERANCE: f64 = 1e-9;

/// One parsed CSV row, before validation.
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    /// 1-based line in the file.
    pub line: u64,
    /// Timestamp as written (for error messages).
    pub ts_text: String,
    /// Parsed timestamp, Unix seconds.
    pub ts: i64,
    /// Open, high, low, close, volume.
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Checks one row's values, clamping high/low within tolerance. Returns whether it clamped.
pub(crate) fn check_row(path: &Path, row: &mut RawRow) -> Result<bool, DataError> {
    let fields =
        [("open", row.open), ("high", row.high), ("low", row.low), ("close", row.close), ("volume", row.volume)];
    for (column, value) in fields {
        if !value.is_finite() {
            return Err(DataError::NonFinite { path: path.into(), line: row.line, column: column.into(), value });
        }
    }
    for (column, value) in &fields[..4] {
        if *value <= 0.0 {
            return Err(DataError::NonPositivePrice {
                path: path.into(),
                line: row.line,
                column: (*column).into(),
                value: *value,
            });
        }
    }
    if row.volume < 0.0 {
        return Err(DataError::NegativeVolume { path: path.into(), line: row.line, value: row.volume });
    }
    let top = row.open.max(row.close);
    let bottom = row.open.min(row.close);
    let mut clamped = false;
    let inconsistent = |detail: String| DataError::InconsistentBar {
        path: path.into(),
        line: row.line,
        detail,
        open: row.open,
        high: row.high,
        low: row.low,
        close: row.close,
    };
    if row.high < top {
        if top - row.high > OHLC_TOLERANCE * top {
            return Err(inconsistent("high < max(open, close)".into()));
        }
        clamped = true;
    }
    if row.low > bottom {
        if row.low - bottom > OHLC_TOLERANCE * bottom {
            return Err(inconsistent("low > min(open, close)".into()));
        }
        clamped = true;
    }
    row.high = row.high.max(top);
    row.low = row.low.min(bottom);
    Ok(clamped)
}

/// Checks that timestamps strictly increase.
pub(crate) fn check_order(path: &Path, rows: &[RawRow], daily: bool) -> Result<(), DataError> {
    for w in rows.windows(2) {
        let (prev, cur) = (&w[0], &w[1]);
        if cur.ts == prev.ts {
            // A time of day other than midnight on a daily bar: two bars of one date read
            // as one, an intraday file read as daily.
            let intraday = |t: &str| t.get(11..16).is_some_and(|hm| hm.contains(':') && hm != "00:00");
            let hint = if daily && (intraday(&cur.ts_text) || intraday(&prev.ts_text)) {
                "; an intraday file read as daily bars? (data.interval, or features --interval)"
            } else {
                ""
            };
            return Err(DataError::Duplicate {
                path: path.into(),
                line: cur.line,
                value: cur.ts_text.clone(),
                previous_line: prev.line,
                hint,
            });
        }
        if cur.ts < prev.ts {
            return Err(DataError::Unsorted {
                path: path.into(),
                line: cur.line,
                value: cur.ts_text.clone(),
                previous: prev.ts_text.clone(),
            });
        }
    }
    Ok(())
}

/// Checks the series is long enough for the longest feature window.
pub(crate) fn check_len(path: &Path, rows: &[RawRow], last_line: u64) -> Result<(), DataError> {
    let min = crate::features::MIN_BARS;
    if rows.len() < min {
        return Err(DataError::TooFewBars { path: path.into(), line: last_line, bars: rows.len(), min });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(o: f64, h: f64, l: f64, c: f64, v: f64) -> RawRow {
        RawRow { line: 7, ts_text: "t".into(), ts: 0, open: o, high: h, low: l, close: c, volume: v }
    }

    #[test]
    fn clamps_within_tolerance_and_rejects_beyond() {
        let p = Path::new("x.csv");
        let mut r = row(100.0, 100.0 - 1e-8, 99.0, 99.5, 0.0);
        assert!(check_row(p, &mut r).unwrap());
        assert_eq!(r.high, 100.0);
        let mut r = row(100.0, 100.0 - 1e-6, 99.0, 99.5, 0.0);
        assert!(matches!(check_row(p, &mut r), Err(DataError::InconsistentBar { line: 7, .. })));
        let mut r = row(100.0, 101.0, 100.0 + 1e-8, 100.5, 10.0);
        assert!(check_row(p, &mut r).unwrap());
        assert_eq!(r.low, 100.0);
    }

    #[test]
    fn flat_bar_and_zero_volume_are_legal() {
        let mut r = row(5.0, 5.0, 5.0, 5.0, 0.0);
        assert!(!check_row(Path::new("x.csv"), &mut r).unwrap());
    }
}
