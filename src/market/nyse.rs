//! The NYSE's regular session: on which dates it opens and when it closes, so that live
//! trading (`ploutos trade`) acts only while the market is open.
//!
//! The regular session runs 09:30–16:00 New York time; on half days it closes at 13:00.
//! Closed: weekends, the ten holidays of the exchange's schedule, and the special closures
//! since 2000 ([`SPECIAL_CLOSURES`]); a few sessions had other hours ([`SPECIAL_HOURS`]).
//! Holidays follow the exchange's rules:
//!
//! - New Year's Day (Jan 1; a Sunday moves to Monday, a Saturday is not made up on Friday),
//!   Martin Luther King Jr. Day (third Monday of January), Washington's Birthday (third
//!   Monday of February), Good Friday (two days before Western Easter), Memorial Day (last
//!   Monday of May), Juneteenth (Jun 19, from 2022), Independence Day (Jul 4), Labor Day
//!   (first Monday of September), Thanksgiving (fourth Thursday of November), Christmas
//!   (Dec 25); Juneteenth, Independence Day and Christmas falling on a Saturday are observed
//!   the Friday before, on a Sunday the Monday after.
//! - Half days (13:00 close): the day before Independence Day when it is a Monday to
//!   Thursday, the day after Thanksgiving, and Christmas Eve when it is a Monday to
//!   Thursday.
//!
//! Written by hand rather than taken from a crate: the Rust crates found cover holidays of a
//! few years only (`nyse-holiday-cal`: 2020–2028, no half days, no special closures). The
//! rules are checked day by day against `pandas_market_calendars` for 2000–2030
//! (`tests/nyse_calendar.rs`, fixture written by `scripts/nyse-reference.py`).

use super::calendar::ny_local_to_unix;
use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};

/// Dates the exchange closed outside its holiday schedule, since 2000, with the reason.
pub const SPECIAL_CLOSURES: [(i32, u32, u32, &str); 10] = [
    (2001, 9, 11, "September 11 attacks"),
    (2001, 9, 12, "September 11 attacks"),
    (2001, 9, 13, "September 11 attacks"),
    (2001, 9, 14, "September 11 attacks"),
    (2004, 6, 11, "National Day of Mourning for Ronald Reagan"),
    (2007, 1, 2, "National Day of Mourning for Gerald Ford"),
    (2012, 10, 29, "Hurricane Sandy"),
    (2012, 10, 30, "Hurricane Sandy"),
    (2018, 12, 5, "National Day of Mourning for George H. W. Bush"),
    (2025, 1, 9, "National Day of Mourning for Jimmy Carter"),
];

/// A date (year, month, day) and its session's open and close (hour, minute).
pub type SpecialHours = (i32, u32, u32, (u32, u32), (u32, u32));

/// Sessions since 2000 whose hours the rules do not give (moments of silence, the first
/// anniversary of September 11, a systems problem, half days moved by the exchange), with
/// their open and close.
pub const SPECIAL_HOURS: [SpecialHours; 10] = [
    (2001, 9, 17, (9, 33), (16, 0)),
    (2001, 10, 8, (9, 31), (16, 0)),
    (2002, 7, 3, (9, 30), (16, 0)),
    (2002, 7, 5, (9, 30), (13, 0)),
    (2002, 9, 11, (12, 0), (16, 0)),
    (2003, 12, 26, (9, 30), (13, 0)),
    (2003, 3, 20, (9, 32), (16, 0)),
    (2004, 6, 7, (9, 32), (16, 0)),
    (2005, 6, 1, (9, 30), (15, 56)),
    (2006, 12, 27, (9, 32), (16, 0)),
];

/// The regular session's open.
pub const OPEN: NaiveTime = NaiveTime::from_hms_opt(9, 30, 0).expect("valid time");
/// The regular session's close.
pub const CLOSE: NaiveTime = NaiveTime::from_hms_opt(16, 0, 0).expect("valid time");
/// The close of a half day.
pub const HALF_DAY_CLOSE: NaiveTime = NaiveTime::from_hms_opt(13, 0, 0).expect("valid time");

/// What the exchange does on a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// Open from `open` to `close`, New York time.
    Open {
        /// 09:30 (later on a few days of [`SPECIAL_HOURS`]).
        open: NaiveTime,
        /// 16:00, or 13:00 on a half day.
        close: NaiveTime,
    },
    /// Closed, and why (`weekend`, a holiday's name, a special closure's reason).
    Closed(&'static str),
}

impl Day {
    /// Whether the exchange opens.
    pub fn is_open(self) -> bool {
        matches!(self, Day::Open { .. })
    }
}

/// What the exchange does on `date` (see the module docs for the rules).
pub fn day(date: NaiveDate) -> Day {
    if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        return Day::Closed("weekend");
    }
    if let Some(name) = holiday(date) {
        return Day::Closed(name);
    }
    let ymd = (date.year(), date.month(), date.day());
    if let Some(&(.., why)) = SPECIAL_CLOSURES.iter().find(|&&(y, m, d, _)| (y, m, d) == ymd) {
        return Day::Closed(why);
    }
    if let Some(&(.., (oh, om), (ch, cm))) = SPECIAL_HOURS.iter().find(|&&(y, m, d, ..)| (y, m, d) == ymd) {
        let time = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("valid time");
        return Day::Open { open: time(oh, om), close: time(ch, cm) };
    }
    Day::Open { open: OPEN, close: if is_half_day(date) { HALF_DAY_CLOSE } else { CLOSE } }
}

/// The session of `date` as instants (Unix seconds): `Some((open, close))`, or `None` when
/// the exchange is closed.
pub fn session(date: NaiveDate) -> Option<(i64, i64)> {
    match day(date) {
        Day::Open { open, close } => {
            let at = |t: NaiveTime| ny_local_to_unix(date.and_time(t)).expect("09:30 to 16:00 exist every day");
            Some((at(open), at(close)))
        }
        Day::Closed(_) => None,
    }
}

/// The first `n` dates on or after `start` on which the exchange opens (half days included).
pub fn sessions_from(start: NaiveDate, n: usize) -> Vec<NaiveDate> {
    start.iter_days().filter(|&d| day(d).is_open()).take(n).collect()
}

/// Whether the regular session is open at `ts` (Unix seconds): from its open, inclusive,
/// to its close, exclusive.
pub fn is_open_at(ts: i64) -> bool {
    session(super::calendar::ny_date(ts)).is_some_and(|(open, close)| (open..close).contains(&ts))
}

/// The session-aligned hourly bar that `ts` falls in, `(start, end)` in Unix seconds: bars
/// start at the training data's hours ([`super::calendar::HOURLY_SESSION`]: 09:30, 10:30,
/// …, 15:30 New York) and end at the next one or at the session's close (the last bar of a
/// day is 30 minutes, of a half day too: 12:30–13:00). `None` outside the regular session.
pub fn hourly_bar(ts: i64) -> Option<(i64, i64)> {
    let date = super::calendar::ny_date(ts);
    let (open, close) = session(date).filter(|&(open, close)| (open..close).contains(&ts))?;
    let starts = super::calendar::session_timestamps(&[date], crate::config::Interval::Hour);
    // A session that opens late (a few of `SPECIAL_HOURS`) starts its first bar at its open.
    let i = starts.partition_point(|&s| s <= ts);
    let start = if i == 0 { open } else { starts[i - 1].max(open) };
    let end = starts.get(i).map_or(close, |&next| next.min(close));
    Some((start, end))
}

/// The next session that has not closed at `ts`: the current one while open, else the next
/// one to open. `(open, close)` in Unix seconds.
pub fn next_session(ts: i64) -> (i64, i64) {
    let mut date = super::calendar::ny_date(ts);
    loop {
        if let Some((open, close)) = session(date)
            && ts < close
        {
            return (open, close);
        }
        date = date.checked_add_days(Days::new(1)).expect("dates far from chrono's limits");
    }
}

/// The holiday `date` is, if any (a weekday; weekends are not asked).
fn holiday(date: NaiveDate) -> Option<&'static str> {
    let y = date.year();
    let observed = |month: u32, day: u32| observed(NaiveDate::from_ymd_opt(y, month, day).expect("valid date"));
    let named = [
        // A Saturday New Year's Day is not made up on the Friday before (Dec 31 trades).
        (
            NaiveDate::from_ymd_opt(y, 1, 1).filter(|d| d.weekday() != Weekday::Sat).map(observed_sunday),
            "New Year's Day",
        ),
        (nth_weekday(y, 1, Weekday::Mon, 3), "Martin Luther King Jr. Day"),
        (nth_weekday(y, 2, Weekday::Mon, 3), "Washington's Birthday"),
        (easter(y).checked_sub_days(Days::new(2)), "Good Friday"),
        (last_weekday(y, 5, Weekday::Mon), "Memorial Day"),
        ((y >= 2022).then(|| observed(6, 19)), "Juneteenth"),
        (Some(observed(7, 4)), "Independence Day"),
        (nth_weekday(y, 9, Weekday::Mon, 1), "Labor Day"),
        (nth_weekday(y, 11, Weekday::Thu, 4), "Thanksgiving Day"),
        (Some(observed(12, 25)), "Christmas Day"),
    ];
    named.iter().find(|(when, _)| *when == Some(date)).map(|&(_, name)| name)
}

/// Whether open `date` closes at 13:00.
fn is_half_day(date: NaiveDate) -> bool {
    let (y, m, d) = (date.year(), date.month(), date.day());
    let weekday = date.weekday();
    let mon_to_thu = matches!(weekday, Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu);
    (m == 7 && d == 3 && mon_to_thu)
        || (m == 12 && d == 24 && mon_to_thu)
        || nth_weekday(y, 11, Weekday::Thu, 4).and_then(|t| t.checked_add_days(Days::new(1))) == Some(date)
}

/// A fixed-date holiday moved off the weekend: Saturday to Friday, Sunday to Monday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().expect("not the first date"),
        Weekday::Sun => observed_sunday(date),
        _ => date,
    }
}

/// A Sunday moved to Monday.
fn observed_sunday(date: NaiveDate) -> NaiveDate {
    if date.weekday() == Weekday::Sun { date.succ_opt().expect("not the last date") } else { date }
}

/// The `n`th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// The last `weekday` of a month.
fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    (1..=5).rev().find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, weekday, n))
}

/// Western (Gregorian) Easter Sunday: the anonymous Gregorian algorithm (Meeus/Jones/Butcher).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is a valid date")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn hourly_bars_start_on_the_training_hours_and_end_at_the_close() {
        let at = |y, m, d, h, min| ny_local_to_unix(date(y, m, d).and_hms_opt(h, min, 0).unwrap()).unwrap();
        // A regular day (EDT): 10:45 is in the 10:30 bar; 15:59 in the 30-minute last one.
        assert_eq!(hourly_bar(at(2024, 7, 2, 10, 45)), Some((at(2024, 7, 2, 10, 30), at(2024, 7, 2, 11, 30))));
        assert_eq!(hourly_bar(at(2024, 7, 2, 9, 30)), Some((at(2024, 7, 2, 9, 30), at(2024, 7, 2, 10, 30))));
        assert_eq!(hourly_bar(at(2024, 7, 2, 15, 59)), Some((at(2024, 7, 2, 15, 30), at(2024, 7, 2, 16, 0))));
        assert_eq!(hourly_bar(at(2024, 7, 2, 16, 0)), None);
        assert_eq!(hourly_bar(at(2024, 7, 2, 9, 29)), None);
        // A half day: the 12:30 bar ends at 13:00, nothing after.
        assert_eq!(hourly_bar(at(2024, 7, 3, 12, 40)), Some((at(2024, 7, 3, 12, 30), at(2024, 7, 3, 13, 0))));
        assert_eq!(hourly_bar(at(2024, 7, 3, 13, 30)), None);
        // A holiday and a winter day (EST).
        assert_eq!(hourly_bar(at(2024, 7, 4, 11, 0)), None);
        assert_eq!(hourly_bar(at(2024, 1, 3, 14, 0)), Some((at(2024, 1, 3, 13, 30), at(2024, 1, 3, 14, 30))));
        // A late open (12:00 on 2002-09-11): the first bar starts at the open.
        assert_eq!(hourly_bar(at(2002, 9, 11, 12, 10)), Some((at(2002, 9, 11, 12, 0), at(2002, 9, 11, 12, 30))));
    }

    #[test]
    fn easter_sundays() {
        for (y, m, d) in [(2000, 4, 23), (2008, 3, 23), (2011, 4, 24), (2019, 4, 21), (2024, 3, 31), (2025, 4, 20)] {
            assert_eq!(easter(y), date(y, m, d), "{y}");
        }
    }

    #[test]
    fn the_2025_schedule() {
        let closed = [(1, 1), (1, 9), (1, 20), (2, 17), (4, 18), (5, 26), (6, 19), (7, 4), (9, 1), (11, 27), (12, 25)];
        for (m, d) in closed {
            assert!(!day(date(2025, m, d)).is_open(), "2025-{m}-{d}");
        }
        for (m, d) in [(7, 3), (11, 28), (12, 24)] {
            assert_eq!(day(date(2025, m, d)), Day::Open { open: OPEN, close: HALF_DAY_CLOSE }, "2025-{m}-{d}");
        }
        assert_eq!(day(date(2025, 12, 26)), Day::Open { open: OPEN, close: CLOSE });
    }
}
