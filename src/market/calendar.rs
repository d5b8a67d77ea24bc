//! Trading calendar: New York dates, trading-day ordinals and regular-session bar times.
//!
//! A trading day is the bar's calendar date in America/New_York, not a fixed number of bars:
//! real data has half-days (13:00 closes), gaps and missing hours, so counting 7 bars per day
//! would drift. Daily bars are each their own day. The ordinal is consecutive over the dates
//! present (a weekend or holiday gap does not skip a number), which is what the PDT rule's
//! rolling 5-day window, pivot points (previous day's H/L/C) and 52-week windows count.

use crate::config::Interval;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Tz;

/// The exchange time zone of every US listing.
pub const EXCHANGE_TZ: Tz = New_York;

/// Bar open times of the US regular session (09:30–16:00) for hourly bars, as yfinance
/// labels them: 09:30, 10:30, ..., 15:30 (the last bar lasts 30 minutes).
pub const HOURLY_SESSION: [(u32, u32); 7] = [(9, 30), (10, 30), (11, 30), (12, 30), (13, 30), (14, 30), (15, 30)];

/// `ts` (Unix seconds) in New York local time.
pub fn ny_datetime(ts: i64) -> DateTime<Tz> {
    // Every i64 we store came from a valid DateTime, so the fallback is unreachable in
    // practice; the epoch keeps the function total.
    let utc = DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    utc.with_timezone(&EXCHANGE_TZ)
}

/// New York calendar date of `ts` (Unix seconds): the trading day a bar belongs to.
pub fn ny_date(ts: i64) -> NaiveDate {
    ny_datetime(ts).date_naive()
}

/// New York local date-time to Unix seconds. Takes the earlier instant when the local time
/// is ambiguous (the November fall-back hour); `None` when it does not exist (the March
/// spring-forward hour). Neither happens inside trading hours.
pub fn ny_local_to_unix(local: NaiveDateTime) -> Option<i64> {
    EXCHANGE_TZ.from_local_datetime(&local).earliest().map(|dt| dt.timestamp())
}

/// Midnight New York of `date`, the timestamp daily bars carry.
pub fn ny_midnight(date: NaiveDate) -> i64 {
    // Midnight exists every day in New York (DST switches at 02:00).
    ny_local_to_unix(date.and_time(NaiveTime::MIN))
        .unwrap_or_else(|| date.and_time(NaiveTime::MIN).and_utc().timestamp())
}

/// Trading-day ordinal per bar of sorted `timestamps`: 0 for the first bar's date, +1 each
/// time the New York date changes. For daily bars, the bar index (each bar is its own day).
pub fn trading_days(timestamps: &[i64], interval: Interval) -> Vec<u32> {
    match interval {
        Interval::Day => (0..timestamps.len() as u32).collect(),
        Interval::Hour => {
            let mut day = Vec::with_capacity(timestamps.len());
            let mut current: Option<NaiveDate> = None;
            let mut ordinal = 0u32;
            for &ts in timestamps {
                let d = ny_date(ts);
                match current {
                    Some(c) if c == d => {}
                    Some(_) => {
                        ordinal += 1;
                        current = Some(d);
                    }
                    None => current = Some(d),
                }
                day.push(ordinal);
            }
            day
        }
    }
}

/// The first `n` weekdays on or after `start` (no exchange holidays: every weekday trades).
pub fn weekdays_from(start: NaiveDate, n: usize) -> Vec<NaiveDate> {
    let mut out = Vec::with_capacity(n);
    let mut d = start;
    while out.len() < n {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            out.push(d);
        }
        match d.succ_opt() {
            Some(next) => d = next,
            None => break,
        }
    }
    out
}

/// Bar open timestamps (Unix seconds) of regular sessions on `dates`: midnight New York for
/// daily bars, [`HOURLY_SESSION`] New York local times for hourly bars (with the right EST or
/// EDT offset for each date).
pub fn session_timestamps(dates: &[NaiveDate], interval: Interval) -> Vec<i64> {
    match interval {
        Interval::Day => dates.iter().map(|&d| ny_midnight(d)).collect(),
        Interval::Hour => {
            let mut out = Vec::with_capacity(dates.len() * HOURLY_SESSION.len());
            for &d in dates {
                for &(h, m) in &HOURLY_SESSION {
                    let local = d.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN));
                    // Session hours always exist in New York.
                    out.push(ny_local_to_unix(local).unwrap_or_else(|| local.and_utc().timestamp()));
                }
            }
            out
        }
    }
}

/// A bar's timestamp as written in CSV files: the date for daily bars, ISO 8601 with the
/// New York offset for intraday bars (`2021-03-15T09:30:00-04:00`).
pub fn format_timestamp(ts: i64, interval: Interval) -> String {
    match interval {
        Interval::Day => ny_date(ts).format("%Y-%m-%d").to_string(),
        Interval::Hour => ny_datetime(ts).format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn session_uses_edt_and_est_offsets() {
        // 2021-03-12 (Friday) is EST, 2021-03-15 (Monday) EDT: DST began 2021-03-14.
        let ts = session_timestamps(&[d(2021, 3, 12), d(2021, 3, 15)], Interval::Hour);
        assert_eq!(ts.len(), 14);
        assert_eq!(ny_datetime(ts[0]).to_rfc3339(), "2021-03-12T09:30:00-05:00");
        assert_eq!(ny_datetime(ts[6]).to_rfc3339(), "2021-03-12T15:30:00-05:00");
        assert_eq!(ny_datetime(ts[7]).to_rfc3339(), "2021-03-15T09:30:00-04:00");
        // 09:30 EST = 14:30 UTC; 09:30 EDT = 13:30 UTC.
        assert_eq!(ts[0] % 86_400, 14 * 3600 + 1800);
        assert_eq!(ts[7] % 86_400, 13 * 3600 + 1800);
        assert_eq!(trading_days(&ts, Interval::Hour), [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn weekdays_skip_weekends() {
        let w = weekdays_from(d(2021, 3, 12), 3);
        assert_eq!(w, [d(2021, 3, 12), d(2021, 3, 15), d(2021, 3, 16)]);
    }

    #[test]
    fn daily_bars_are_their_own_day() {
        let ts = session_timestamps(&[d(2021, 3, 12), d(2021, 3, 15)], Interval::Day);
        assert_eq!(ny_date(ts[1]), d(2021, 3, 15));
        assert_eq!(trading_days(&ts, Interval::Day), [0, 1]);
    }

    #[test]
    fn late_utc_evening_belongs_to_the_new_york_date() {
        // 2021-03-16T01:00Z is 21:00 EDT on the 15th.
        let a = DateTime::parse_from_rfc3339("2021-03-15T19:00:00Z").unwrap().timestamp();
        let b = DateTime::parse_from_rfc3339("2021-03-16T01:00:00Z").unwrap().timestamp();
        let c = DateTime::parse_from_rfc3339("2021-03-16T13:30:00Z").unwrap().timestamp();
        assert_eq!(trading_days(&[a, b, c], Interval::Hour), [0, 0, 1]);
    }
}
