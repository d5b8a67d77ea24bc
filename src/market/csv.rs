//! CSV loader for one file per ticker, accepting the headers users actually have.
//!
//! Headers are matched case-insensitively, extra columns ignored:
//!
//! | field     | accepted names                                   |
//! |-----------|--------------------------------------------------|
//! | time      | `timestamp`, `datetime`, `date`, `time`, `t`     |
//! | open      | `open`, `o`                                      |
//! | high      | `high`, `h`                                      |
//! | low       | `low`, `l`                                       |
//! | close     | `close`, `c`                                     |
//! | volume    | `volume`, `v`                                    |
//!
//! Optional corporate-action columns, read when present ([`super::adjust`] decides what
//! they do under `data.adjust`): `adj close` (`adj_close`, `adjclose`), `dividends`
//! (`dividend`), `stock splits` (`stock_splits`, `splits`, `split`; the ratio of new shares
//! to old, 4 for a 4:1 split, 0 or empty for none).
//!
//! This covers yfinance exports (`Date`/`Datetime`, `Open`, `High`, `Low`, `Close`,
//! `Adj Close`, `Volume`, and `Dividends`, `Stock Splits` with `actions=True`),
//! yfinance's three-row multi-index export (`Price,Close,...` / `Ticker,NVDA,...` /
//! `Date,,,...`), Alpaca bar exports (`symbol,timestamp,open,high,low,close,volume,
//! trade_count,vwap` or raw `t,o,h,l,c,v,n,vw`) and the plain
//! `timestamp,open,high,low,close,volume` that [`super::write_csv_dir`] writes.
//!
//! Timestamps: `2021-03-15`, `2021-03-15 09:30`, `2021-03-15T09:30:00`, with optional
//! fractional seconds and an optional offset (`Z`, `+00:00`, `-0400`, `-04`, ` UTC`). Without
//! an offset a time is New York exchange time. Hourly files keep the exact instant. Daily
//! files keep the date as written (whatever the time or offset after it) and store it as
//! midnight New York, because a daily bar *is* a date: `2021-03-15T00:00:00Z` means the 15th,
//! though it is the evening of the 14th in New York.
//!
//! [`infer_interval`] tells daily from hourly files by the text of their timestamps alone,
//! for commands that read one file without a config saying which it is.

use super::validate::{self, RawRow};
use super::{BarSeries, DataError, calendar};
use crate::config::Interval;
use ::csv::{ReaderBuilder, StringRecord, Trim};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use std::path::Path;

const TIME_NAMES: &[&str] = &["timestamp", "datetime", "date", "time", "t"];
const FIELDS: [(&str, &[&str]); 5] = [
    ("open", &["open", "o"]),
    ("high", &["high", "h"]),
    ("low", &["low", "l"]),
    ("close", &["close", "c"]),
    ("volume", &["volume", "v"]),
];
/// Optional columns: adjusted close, dividend per share, split ratio.
const ACTION_FIELDS: [&[&str]; 3] = [
    &["adj close", "adj_close", "adjclose"],
    &["dividends", "dividend"],
    &["stock splits", "stock_splits", "splits", "split"],
];

/// The corporate-action columns of a file, one value per bar when the column is present.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawActions {
    /// `Adj Close`.
    pub adj_close: Option<Vec<f64>>,
    /// Cash dividend per share, on its ex-date (0 = none).
    pub dividends: Option<Vec<f64>>,
    /// Split ratio, new shares per old share, on its ex-date (0 or 1 = none).
    pub splits: Option<Vec<f64>>,
    /// Each bar's 1-based line in the file.
    pub lines: Vec<u64>,
}

/// Loads and validates one ticker's CSV file; the ticker is the file stem.
///
/// # Errors
/// [`DataError`] naming the file and line: unreadable file, a folder, malformed CSV, missing column,
/// unparsable number or time, NaN/inf, non-positive price, negative volume, inconsistent
/// high/low, unsorted or duplicate timestamps, fewer than [`crate::features::MIN_BARS`] bars.
pub fn load_csv_file(path: &Path, interval: Interval) -> Result<BarSeries, DataError> {
    read_csv_file(path, interval).map(|(series, _, _)| series)
}

/// [`load_csv_file`], also returning the corporate-action columns and how many bars had
/// high/low clamped within tolerance.
pub(crate) fn read_csv_file(path: &Path, interval: Interval) -> Result<(BarSeries, RawActions, usize), DataError> {
    let mut rows: Vec<RawRow> = Vec::new();
    let mut clamped = 0usize;
    let mut action_values: [Vec<f64>; 3] = Default::default();
    let mut action_present = [false; 3];
    let last_line = read_records(path, |layout, line, record| {
        let time_col = layout.time_col;
        let ts_text = record.get(time_col).unwrap_or("").to_string();
        let ts = parse_timestamp(&ts_text, interval).map_err(|expected| DataError::Parse {
            path: path.into(),
            line,
            column: layout.header.get(time_col).unwrap_or("timestamp").to_string(),
            value: ts_text.clone(),
            expected: expected.into(),
        })?;
        let mut values = [0.0f64; 5];
        for (v, &c) in values.iter_mut().zip(&layout.cols) {
            let text = record.get(c).unwrap_or("");
            *v = text.parse::<f64>().map_err(|_| DataError::Parse {
                path: path.into(),
                line,
                column: layout.header.get(c).unwrap_or("").to_string(),
                value: text.to_string(),
                expected: "a number".into(),
            })?;
        }
        for ((col, out), present) in layout.actions.iter().zip(&mut action_values).zip(&mut action_present) {
            let Some(c) = *col else { continue };
            *present = true;
            let text = record.get(c).unwrap_or("");
            // An empty cell is no event (some exporters leave them blank).
            let value = if text.is_empty() { 0.0 } else { text.parse::<f64>().unwrap_or(f64::NAN) };
            if !value.is_finite() || value < 0.0 {
                return Err(DataError::Parse {
                    path: path.into(),
                    line,
                    column: layout.header.get(c).unwrap_or("").to_string(),
                    value: text.to_string(),
                    expected: "a finite number ≥ 0".into(),
                });
            }
            out.push(value);
        }
        let [open, high, low, close, volume] = values;
        let mut row = RawRow { line, ts_text, ts, open, high, low, close, volume };
        if validate::check_row(path, &mut row)? {
            clamped += 1;
        }
        rows.push(row);
        Ok(())
    })?;
    validate::check_order(path, &rows, interval == Interval::Day)?;
    validate::check_len(path, &rows, last_line)?;

    let ticker = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let timestamps: Vec<i64> = rows.iter().map(|r| r.ts).collect();
    let day = calendar::trading_days(&timestamps, interval);
    let series = BarSeries {
        ticker,
        timestamps,
        day,
        open: rows.iter().map(|r| r.open).collect(),
        high: rows.iter().map(|r| r.high).collect(),
        low: rows.iter().map(|r| r.low).collect(),
        close: rows.iter().map(|r| r.close).collect(),
        volume: rows.iter().map(|r| r.volume).collect(),
    };
    let [adj_close, dividends, splits] = action_values;
    let keep = |present: bool, v: Vec<f64>| present.then_some(v);
    let actions = RawActions {
        adj_close: keep(action_present[0], adj_close),
        dividends: keep(action_present[1], dividends),
        splits: keep(action_present[2], splits),
        lines: rows.iter().map(|r| r.line).collect(),
    };
    Ok((series, actions, clamped))
}

/// The interval a bars file's timestamps imply, and why ([`infer_interval`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredInterval {
    /// `1d` when no row has a time of day other than midnight, else `1h`.
    pub interval: Interval,
    /// What decided it.
    pub evidence: IntervalEvidence,
}

/// What the timestamps of a bars file showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntervalEvidence {
    /// Every timestamp is a date without a time.
    DatesOnly,
    /// Every timestamp that has a time has midnight (yfinance writes daily bars so).
    AllMidnight,
    /// A time of day other than midnight, at this line.
    TimeOfDay {
        /// 1-based line of the first such row.
        line: u64,
        /// Its timestamp, as written.
        value: String,
    },
}

impl std::fmt::Display for IntervalEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DatesOnly => write!(f, "the timestamps are dates"),
            Self::AllMidnight => write!(f, "every timestamp is at midnight"),
            Self::TimeOfDay { line, value } => write!(f, "line {line} has a time of day, {value:?}"),
        }
    }
}

/// Infers a bars file's interval from how its timestamps are written: dates only, or every
/// time at midnight (as written, whatever the offset), is daily; any other time of day is
/// hourly.
///
/// Only the text is looked at; [`load_csv_file`] with the result then parses and validates.
///
/// # Errors
/// [`DataError`] naming the file: unreadable file, a folder, malformed CSV, missing column,
/// no data row.
pub fn infer_interval(path: &Path) -> Result<InferredInterval, DataError> {
    let mut dates_only = true;
    let mut time_of_day = None;
    let mut rows = 0usize;
    let last_line = read_records(path, |layout, line, record| {
        rows += 1;
        let text = record.get(layout.time_col).unwrap_or("").trim();
        if text.len() > 10 {
            dates_only = false;
            if time_of_day.is_none() && !is_midnight(text) {
                time_of_day = Some(IntervalEvidence::TimeOfDay { line, value: text.to_string() });
            }
        }
        Ok(())
    })?;
    if rows == 0 {
        // As loading would say: nothing to infer from.
        let min = crate::features::MIN_BARS;
        return Err(DataError::TooFewBars { path: path.into(), line: last_line, bars: 0, min });
    }
    Ok(match time_of_day {
        Some(evidence) => InferredInterval { interval: Interval::Hour, evidence },
        None if dates_only => InferredInterval { interval: Interval::Day, evidence: IntervalEvidence::DatesOnly },
        None => InferredInterval { interval: Interval::Day, evidence: IntervalEvidence::AllMidnight },
    })
}

/// Whether a date-time as written has the time `00:00[:00[.000…]]`, any offset after it.
fn is_midnight(text: &str) -> bool {
    let Some(rest) = text.get(11..) else { return false };
    let Some(mut tail) = rest.strip_prefix("00:00") else { return false };
    if let Some(t) = tail.strip_prefix(":00") {
        tail = t;
        if let Some(t) = tail.strip_prefix('.') {
            tail = t.trim_start_matches('0');
        }
    }
    tail.is_empty() || tail.starts_with(['+', '-', 'Z', 'z', ' '])
}

/// Where a bars file's fields are, from its header.
struct Layout {
    /// The header row as written.
    header: StringRecord,
    /// Column of the timestamp.
    time_col: usize,
    /// Columns of open, high, low, close, volume.
    cols: [usize; 5],
    /// Columns of adjusted close, dividends, splits, when present.
    actions: [Option<usize>; 3],
}

/// Reads `path`'s header, then calls `row` with every data row and its 1-based line;
/// yfinance's extra header rows are skipped and rows with another field count than the
/// header rejected. Returns the last line read (0 for an empty file, which is an error only
/// for the caller that needs bars).
fn read_records(
    path: &Path,
    mut row: impl FnMut(&Layout, u64, &StringRecord) -> Result<(), DataError>,
) -> Result<u64, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    // Opening a folder succeeds on Unix; reading it would fail with a bare "Is a directory".
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(DataError::NotAFile { path: path.into() });
    }
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let csv_err = |e: ::csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        let message = match e.kind() {
            ::csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
            _ => e.to_string(),
        };
        match e.into_kind() {
            ::csv::ErrorKind::Io(io) => DataError::io(path, io),
            _ => DataError::Csv { path: path.into(), line, message },
        }
    };

    let mut records = reader.records();
    let header = match records.next() {
        Some(r) => r.map_err(csv_err)?,
        None => return Ok(0),
    };
    let header_line = header.position().map_or(1, |p| p.line());
    let names: Vec<String> =
        header.iter().map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase()).collect();
    let found = header.iter().collect::<Vec<_>>().join(",");
    let find = |aliases: &[&str]| aliases.iter().find_map(|a| names.iter().position(|n| n == a));

    // yfinance multi-index export: the first header row starts with "Price" and the time
    // column is the first one, named on a later "Date" row.
    let multi_index = names.first().is_some_and(|n| n == "price");
    let time_col = match find(TIME_NAMES) {
        Some(c) => c,
        None if multi_index => 0,
        None => {
            return Err(DataError::MissingColumn {
                path: path.into(),
                line: header_line,
                column: "timestamp (or date, datetime)".into(),
                found,
            });
        }
    };
    let mut cols = [0usize; 5];
    for (slot, (name, aliases)) in cols.iter_mut().zip(FIELDS) {
        *slot = find(aliases).ok_or_else(|| DataError::MissingColumn {
            path: path.into(),
            line: header_line,
            column: name.into(),
            found: found.clone(),
        })?;
    }
    let actions = ACTION_FIELDS.map(find);
    // A field in two columns (`close` twice, `volume` and `v`) is refused, not read from
    // whichever comes first.
    let fields = FIELDS.iter().map(|(name, aliases)| (*name, *aliases));
    for (name, aliases) in fields.chain(ACTION_FIELDS.iter().map(|a| (a[0], *a))) {
        let mut at = names.iter().enumerate().filter(|(_, n)| aliases.contains(&n.as_str())).map(|(i, _)| i);
        if let (Some(a), Some(b)) = (at.next(), at.next()) {
            return Err(DataError::DuplicateColumn {
                path: path.into(),
                line: header_line,
                column: name.into(),
                first: header.get(a).unwrap_or("").into(),
                second: header.get(b).unwrap_or("").into(),
            });
        }
    }
    let layout = Layout { header, time_col, cols, actions };

    let mut last_line = header_line;
    let mut data_rows = 0usize;
    let mut record = StringRecord::new();
    for (i, result) in records.enumerate() {
        record.clone_from(&result.map_err(csv_err)?);
        let line = record.position().map_or(header_line + 1 + i as u64, |p| p.line());
        last_line = line;
        if multi_index && data_rows == 0 {
            let first = record.get(0).unwrap_or("").to_ascii_lowercase();
            if first == "ticker"
                || ((first == "date" || first == "datetime") && record.iter().skip(1).all(str::is_empty))
            {
                continue;
            }
        }
        if record.len() != names.len() {
            return Err(DataError::Csv {
                path: path.into(),
                line,
                message: format!("row has {} fields, header has {}", record.len(), names.len()),
            });
        }
        row(&layout, line, &record)?;
        data_rows += 1;
    }
    Ok(last_line)
}

/// Parses a CSV timestamp to Unix seconds (see the module docs for accepted forms).
///
/// # Errors
/// A short description of what was expected.
pub fn parse_timestamp(text: &str, interval: Interval) -> Result<i64, &'static str> {
    let s = text.trim();
    match interval {
        Interval::Day => {
            // Daily bars are dates: keep the date as written, whatever follows it.
            let date_part = s.get(..10).ok_or("a date (YYYY-MM-DD)")?;
            let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| "a date (YYYY-MM-DD)")?;
            if s.len() > 10 {
                parse_instant(s).ok_or("a date or date-time (YYYY-MM-DD[ HH:MM[:SS][±HH:MM]])")?;
            }
            Ok(calendar::ny_midnight(date))
        }
        Interval::Hour => {
            if s.len() <= 10 {
                return Err("a date-time (an hourly file needs a time of day, not only a date)");
            }
            parse_instant(s).ok_or("a date-time (YYYY-MM-DD HH:MM[:SS][±HH:MM|Z])")
        }
    }
}

/// Parses a date-time with optional offset; no offset means New York local time.
fn parse_instant(s: &str) -> Option<i64> {
    let mut norm = s.to_string();
    if norm.len() > 10 && norm.as_bytes()[10] == b' ' {
        norm.replace_range(10..11, "T");
    }
    if let Some(stripped) =
        norm.strip_suffix(" UTC").or_else(|| norm.strip_suffix('Z')).or_else(|| norm.strip_suffix('z'))
    {
        norm = format!("{}+00:00", stripped.trim_end());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(&norm, fmt) {
            return Some(dt.timestamp());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(&norm, fmt) {
            return calendar::ny_local_to_unix(local);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn hourly_timestamp_forms() {
        let want = utc("2021-03-15T13:30:00Z");
        for s in [
            "2021-03-15 09:30:00-04:00",
            "2021-03-15T09:30:00-04:00",
            "2021-03-15T09:30:00-0400",
            "2021-03-15T09:30:00-04",
            "2021-03-15T13:30:00Z",
            "2021-03-15 13:30:00+00:00",
            "2021-03-15 13:30:00 UTC",
            "2021-03-15T13:30:00.000000Z",
            "2021-03-15 09:30:00",
            "2021-03-15 09:30",
            "2021-03-15T09:30",
        ] {
            assert_eq!(parse_timestamp(s, Interval::Hour), Ok(want), "{s}");
        }
        assert!(parse_timestamp("2021-03-15", Interval::Hour).is_err());
        assert!(parse_timestamp("15/03/2021 09:30", Interval::Hour).is_err());
        assert!(parse_timestamp("2021-03-15 25:30", Interval::Hour).is_err());
    }

    #[test]
    fn midnight_is_recognized_as_written_whatever_the_offset() {
        for s in [
            "2021-03-15 00:00",
            "2021-03-15T00:00:00",
            "2021-03-15 00:00:00-04:00",
            "2021-03-15T00:00:00Z",
            "2021-03-15T00:00:00.000000+00:00",
            "2021-03-15 00:00:00 UTC",
        ] {
            assert!(is_midnight(s), "{s}");
        }
        for s in ["2021-03-15", "2021-03-15 09:30", "2021-03-15T00:00:01", "2021-03-15 00:00:00.5", "2021-03-15 00:001"]
        {
            assert!(!is_midnight(s), "{s}");
        }
    }

    fn infer(body: &str) -> InferredInterval {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("X.csv");
        std::fs::write(&path, format!("timestamp,open,high,low,close,volume\n{body}")).unwrap();
        infer_interval(&path).unwrap()
    }

    #[test]
    fn infers_daily_from_dates_or_midnights_and_hourly_from_any_other_time() {
        let day = infer("2021-03-15,1,1,1,1,1\n2021-03-16,1,1,1,1,1\n");
        assert_eq!(day, InferredInterval { interval: Interval::Day, evidence: IntervalEvidence::DatesOnly });
        let midnight = infer("2021-03-15 00:00:00-04:00,1,1,1,1,1\n2021-03-16,1,1,1,1,1\n");
        assert_eq!(midnight, InferredInterval { interval: Interval::Day, evidence: IntervalEvidence::AllMidnight });
        let hour = infer("2021-03-15 00:00:00-04:00,1,1,1,1,1\n2021-03-15 09:30:00-04:00,1,1,1,1,1\n");
        assert_eq!(hour.interval, Interval::Hour);
        assert_eq!(hour.evidence.to_string(), "line 3 has a time of day, \"2021-03-15 09:30:00-04:00\"");
    }

    #[test]
    fn daily_keeps_the_written_date() {
        let want = calendar::ny_midnight(NaiveDate::from_ymd_opt(2021, 3, 15).unwrap());
        for s in ["2021-03-15", "2021-03-15 00:00:00-04:00", "2021-03-15T00:00:00Z", "2021-03-15 00:00:00+00:00"] {
            assert_eq!(parse_timestamp(s, Interval::Day), Ok(want), "{s}");
        }
        assert!(parse_timestamp("2021-13-15", Interval::Day).is_err());
        assert!(parse_timestamp("2021-03-15 garbage", Interval::Day).is_err());
    }
}
