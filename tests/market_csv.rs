//! CSV loading: every validation error names its file and line; the header and timestamp
//! flavours users actually have (yfinance, Alpaca, plain) load to the same bars.

use chrono::{NaiveDate, Timelike};
use ploutos::config::Interval;
use ploutos::features::MIN_BARS;
use ploutos::market::{DataError, calendar, load_csv_file};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/market");

/// `n` valid hourly rows (plain format, New York offsets) starting 2021-03-08 09:30.
fn hourly_rows(n: usize) -> Vec<String> {
    let dates = calendar::weekdays_from(NaiveDate::from_ymd_opt(2021, 3, 8).unwrap(), n.div_ceil(7));
    let ts = calendar::session_timestamps(&dates, Interval::Hour);
    ts.iter()
        .take(n)
        .enumerate()
        .map(|(i, &t)| {
            let p = 100.0 + i as f64 * 0.1;
            let stamp = calendar::ny_datetime(t).format("%Y-%m-%dT%H:%M:%S%:z");
            format!("{stamp},{p},{},{},{},{}", p + 1.0, p - 1.0, p + 0.05, 1000 + i)
        })
        .collect()
}

/// Writes `header` and `rows` to `<dir>/<name>` and returns the path.
fn write(dir: &Path, name: &str, header: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut text = format!("{header}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

const PLAIN: &str = "timestamp,open,high,low,close,volume";

/// Loads a plain hourly file whose row at file line `line` is replaced by `row`.
fn load_with(line: usize, row: &str) -> (Result<ploutos::market::BarSeries, DataError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = hourly_rows(150);
    rows[line - 2] = row.to_string();
    let path = write(dir.path(), "BAD.csv", PLAIN, &rows);
    (load_csv_file(&path, Interval::Hour), dir)
}

/// Asserts a one-line message naming `BAD.csv` and `:line:`, containing `needle`.
fn assert_message(err: &DataError, line: u64, needle: &str) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.contains(&format!("BAD.csv:{line}:")), "names file and line {line}: {msg}");
    assert!(msg.contains(needle), "{needle:?} in {msg}");
}

#[test]
fn plain_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "NVDA.csv", PLAIN, &hourly_rows(150));
    let s = load_csv_file(&path, Interval::Hour).unwrap();
    assert_eq!(s.ticker, "NVDA");
    assert_eq!(s.len(), 150);
    assert_eq!(s.open[0], 100.0);
    assert_eq!(s.volume[149], 1149.0);
    // 150 bars = 21 full days + 3 bars.
    assert_eq!(*s.day.last().unwrap(), 21);
}

#[test]
fn missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = hourly_rows(150).iter().map(|r| r.rsplit_once(',').unwrap().0.to_string()).collect();
    let path = write(dir.path(), "BAD.csv", "timestamp,open,high,low,close", &rows);
    let err = load_csv_file(&path, Interval::Hour).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { line: 1, .. }), "{err:?}");
    assert_message(&err, 1, "missing column \"volume\"");

    let path = write(dir.path(), "BAD.csv", "when,open,high,low,close,volume", &hourly_rows(150));
    let err = load_csv_file(&path, Interval::Hour).unwrap_err();
    assert_message(&err, 1, "missing column \"timestamp");
}

/// A field in two columns is refused, naming both, rather than read from the first.
#[test]
fn a_field_in_two_columns() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = hourly_rows(150).iter().map(|r| format!("{r},1.0")).collect();
    for (header, both) in [
        ("timestamp,open,high,low,close,volume,close", "\"close\" (close and close)"),
        ("timestamp,open,high,low,close,volume,V", "\"volume\" (volume and V)"),
        ("timestamp,open,high,low,close,volume,adj close", ""),
    ] {
        let path = write(dir.path(), "BAD.csv", header, &rows);
        match load_csv_file(&path, Interval::Hour) {
            Err(err) if !both.is_empty() => assert_message(&err, 1, &format!("two columns for {both}")),
            Ok(_) if both.is_empty() => {}
            other => panic!("{header}: {other:?}"),
        }
    }
    let rows: Vec<String> = hourly_rows(150).iter().map(|r| format!("{r},{},{}", 1.0, 1.0)).collect();
    let path = write(dir.path(), "BAD.csv", "timestamp,open,high,low,close,volume,Adj Close,adj_close", &rows);
    assert_message(&load_csv_file(&path, Interval::Hour).unwrap_err(), 1, "two columns for \"adj close\"");
}

#[test]
fn unparsable_number() {
    let (r, _d) = load_with(5, "2021-03-08T12:30:00-05:00,abc,101,99,100,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 5, .. }), "{err:?}");
    assert_message(&err, 5, "\"abc\"");
    let (r, _d) = load_with(5, "2021-03-08T12:30:00-05:00,100,101,99,100,");
    assert_message(&r.unwrap_err(), 5, "column volume");
}

#[test]
fn unparsable_time() {
    let (r, _d) = load_with(4, "08/03/2021 11:30,100,101,99,100,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 4, .. }), "{err:?}");
    assert_message(&err, 4, "column timestamp");
    // A date alone is not an hourly bar.
    let (r, _d) = load_with(4, "2021-03-08,100,101,99,100,5");
    assert_message(&r.unwrap_err(), 4, "hourly");
}

#[test]
fn nan_and_inf() {
    let (r, _d) = load_with(6, "2021-03-08T13:30:00-05:00,100,NaN,99,100,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::NonFinite { line: 6, .. }), "{err:?}");
    assert_message(&err, 6, "not a finite number");
    let (r, _d) = load_with(6, "2021-03-08T13:30:00-05:00,100,101,99,100,inf");
    assert_message(&r.unwrap_err(), 6, "column volume");
}

#[test]
fn non_positive_price() {
    let (r, _d) = load_with(3, "2021-03-08T10:30:00-05:00,100,101,99,0,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::NonPositivePrice { line: 3, .. }), "{err:?}");
    assert_message(&err, 3, "close: price 0");
    let (r, _d) = load_with(3, "2021-03-08T10:30:00-05:00,100,101,-1,100,5");
    assert_message(&r.unwrap_err(), 3, "low: price -1");
}

#[test]
fn negative_volume() {
    let (r, _d) = load_with(9, "2021-03-09T09:30:00-05:00,100,101,99,100,-3");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::NegativeVolume { line: 9, .. }), "{err:?}");
    assert_message(&err, 9, "volume -3");
}

#[test]
fn high_below_body_and_low_above_body() {
    let (r, _d) = load_with(7, "2021-03-08T14:30:00-05:00,100,100.5,99,101,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::InconsistentBar { line: 7, .. }), "{err:?}");
    assert_message(&err, 7, "high < max(open, close)");
    let (r, _d) = load_with(7, "2021-03-08T14:30:00-05:00,100,102,100.5,101,5");
    assert_message(&r.unwrap_err(), 7, "low > min(open, close)");
}

#[test]
fn high_low_within_tolerance_are_clamped() {
    let (r, _d) = load_with(7, "2021-03-08T14:30:00-05:00,100,100.9999999999,99.00000000001,101,5");
    let s = r.unwrap();
    assert_eq!(s.high[5], 101.0);
    assert_eq!(s.low[5], 100.0_f64.min(101.0).min(99.00000000001));
    let (r, _d) = load_with(7, "2021-03-08T14:30:00-05:00,100,101,100.00000000001,100.5,5");
    assert_eq!(r.unwrap().low[5], 100.0);
}

#[test]
fn zero_volume_and_flat_bar_are_legal() {
    let (r, _d) = load_with(7, "2021-03-08T14:30:00-05:00,100,100,100,100,0");
    let s = r.unwrap();
    assert_eq!((s.open[5], s.high[5], s.low[5], s.close[5], s.volume[5]), (100.0, 100.0, 100.0, 100.0, 0.0));
}

#[test]
fn unsorted_and_duplicate_timestamps() {
    // Line 4 holds 11:30; line 5 goes back to 10:30.
    let (r, _d) = load_with(5, "2021-03-08T10:30:00-05:00,100,101,99,100,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::Unsorted { line: 5, .. }), "{err:?}");
    assert_message(&err, 5, "earlier than the previous row");
    // Same instant written in UTC: 11:30 EST = 16:30Z.
    let (r, _d) = load_with(5, "2021-03-08T16:30:00Z,100,101,99,100,5");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::Duplicate { line: 5, previous_line: 4, .. }), "{err:?}");
    assert_message(&err, 5, "duplicate timestamp");
}

#[test]
fn too_few_bars() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "BAD.csv", PLAIN, &hourly_rows(MIN_BARS - 1));
    let err = load_csv_file(&path, Interval::Hour).unwrap_err();
    assert!(
        matches!(err, DataError::TooFewBars { bars, min, .. } if bars == MIN_BARS - 1 && min == MIN_BARS),
        "{err:?}"
    );
    assert_message(&err, MIN_BARS as u64, "need at least");
    let path = write(dir.path(), "OK.csv", PLAIN, &hourly_rows(MIN_BARS));
    assert_eq!(load_csv_file(&path, Interval::Hour).unwrap().len(), MIN_BARS);
}

#[test]
fn ragged_row_and_missing_file() {
    let (r, _d) = load_with(8, "2021-03-08T15:30:00-05:00,100,101,99");
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::Csv { line: 8, .. }), "{err:?}");
    assert_message(&err, 8, "fields");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "BAD.csv", PLAIN, &hourly_rows(150));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(10).unwrap().0 + 1;
    bytes.insert(at, 0xff);
    std::fs::write(&path, bytes).unwrap();
    let err = load_csv_file(&path, Interval::Hour).unwrap_err();
    assert!(matches!(err, DataError::Csv { line: 12, .. }), "{err:?}");
    assert_message(&err, 12, "invalid UTF-8");
    let err = load_csv_file(Path::new("/nonexistent/NOPE.csv"), Interval::Hour).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/NOPE.csv"));
}

#[test]
fn header_case_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let plain = load_csv_file(&write(dir.path(), "A.csv", PLAIN, &hourly_rows(120)), Interval::Hour).unwrap();
    let upper = load_csv_file(
        &write(dir.path(), "A.csv", "TIMESTAMP,Open,HIGH,low,Close,VoLuMe", &hourly_rows(120)),
        Interval::Hour,
    )
    .unwrap();
    let short = load_csv_file(&write(dir.path(), "A.csv", "t,o,h,l,c,v", &hourly_rows(120)), Interval::Hour).unwrap();
    assert_eq!(plain, upper);
    assert_eq!(plain, short);
    // Columns in another order, extra columns, CRLF and a BOM.
    let rows: Vec<String> = hourly_rows(120)
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            format!("X,{},{},{},{},{},{},7\r", f[5], f[4], f[3], f[2], f[1], f[0])
        })
        .collect();
    let shuffled = load_csv_file(
        &write(dir.path(), "A.csv", "\u{feff}symbol,Volume,Close,Low,High,Open,Date,n\r", &rows),
        Interval::Hour,
    )
    .unwrap();
    assert_eq!(plain, shuffled);
}

#[test]
fn yfinance_hourly_and_alpaca_hourly_agree_across_dst() {
    let yf = load_csv_file(&Path::new(FIXTURES).join("yfinance_1h_NVDA.csv"), Interval::Hour).unwrap();
    let mut alpaca = load_csv_file(&Path::new(FIXTURES).join("alpaca_1h_NVDA.csv"), Interval::Hour).unwrap();
    alpaca.ticker = yf.ticker.clone();
    assert!(yf == alpaca, "yfinance and Alpaca exports of the same bars differ");
    assert_eq!(yf.len(), 140);
    // 20 trading days of 7 bars; every day opens at 09:30 New York, before and after the
    // 2024-03-10 switch to EDT.
    assert_eq!(*yf.day.last().unwrap(), 19);
    for (i, &t) in yf.timestamps.iter().enumerate() {
        assert_eq!(yf.day[i] as usize, i / 7);
        let ny = calendar::ny_datetime(t);
        if i % 7 == 0 {
            assert_eq!((ny.hour(), ny.minute()), (9, 30), "bar {i}: {ny}");
        }
    }
    let before = calendar::ny_datetime(yf.timestamps[0]);
    let after = calendar::ny_datetime(*yf.timestamps.last().unwrap());
    assert_eq!(before.to_rfc3339(), "2024-02-26T09:30:00-05:00");
    assert_eq!(after.to_rfc3339(), "2024-03-22T15:30:00-04:00");
    // 09:30 EDT is 13:30 UTC.
    assert_eq!(yf.timestamps[7 * 15] % 86_400, 13 * 3600 + 1800);
}

#[test]
fn yfinance_daily_single_and_multi_index_headers_agree() {
    let single = load_csv_file(&Path::new(FIXTURES).join("yfinance_1d_SPY.csv"), Interval::Day).unwrap();
    let multi = load_csv_file(&Path::new(FIXTURES).join("yfinance_1d_multiindex_SPY.csv"), Interval::Day).unwrap();
    assert_eq!(single.len(), 130);
    assert_eq!(single.timestamps, multi.timestamps);
    assert_eq!(single.close, multi.close);
    assert_eq!(single.open, multi.open);
    assert_eq!(single.volume, multi.volume);
    // Close, not Adj Close.
    assert_eq!(single.close[0], 49.4199);
    assert_eq!(single.day, (0..130).collect::<Vec<u32>>());
    assert_eq!(calendar::ny_date(single.timestamps[0]), NaiveDate::from_ymd_opt(2023, 1, 3).unwrap());
}

#[test]
fn naive_times_are_new_york_and_offsets_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let rows = hourly_rows(120);
    let plain = load_csv_file(&write(dir.path(), "A.csv", PLAIN, &rows), Interval::Hour).unwrap();
    let to_form = |f: &dyn Fn(i64) -> String| -> Vec<String> {
        rows.iter().zip(&plain.timestamps).map(|(r, &t)| format!("{},{}", f(t), r.split_once(',').unwrap().1)).collect()
    };
    let naive = to_form(&|t| calendar::ny_datetime(t).format("%Y-%m-%d %H:%M:%S").to_string());
    let utc = to_form(&|t| chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let paris = to_form(&|t| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
            .format("%Y-%m-%d %H:%M:%S%:z")
            .to_string()
    });
    for (name, form) in [("naive", naive), ("utc", utc), ("+01:00", paris)] {
        let s = load_csv_file(&write(dir.path(), "A.csv", PLAIN, &form), Interval::Hour).unwrap();
        assert_eq!(s, plain, "{name}");
    }
}

#[test]
fn hourly_day_grouping_follows_new_york_dates_over_dst_fall_back() {
    // 2021-11-05 (EDT) and 2021-11-08 (EST): the session moves from 13:30Z–19:30Z to
    // 14:30Z–20:30Z, and each day's bars still group under their New York date.
    let dir = tempfile::tempdir().unwrap();
    let dates = calendar::weekdays_from(NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(), 30);
    let ts = calendar::session_timestamps(&dates, Interval::Hour);
    let rows: Vec<String> = ts
        .iter()
        .map(|&t| {
            format!("{},10,11,9,10.5,100", chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ"))
        })
        .collect();
    let s = load_csv_file(&write(dir.path(), "A.csv", PLAIN, &rows), Interval::Hour).unwrap();
    assert_eq!(s.day, (0..210).map(|i| i / 7).collect::<Vec<u32>>());
    let nov5 = dates.iter().position(|d| *d == NaiveDate::from_ymd_opt(2021, 11, 5).unwrap()).unwrap();
    assert_eq!(calendar::ny_datetime(s.timestamps[nov5 * 7 + 6]).to_rfc3339(), "2021-11-05T15:30:00-04:00");
    assert_eq!(calendar::ny_datetime(s.timestamps[nov5 * 7 + 7]).to_rfc3339(), "2021-11-08T09:30:00-05:00");
}
