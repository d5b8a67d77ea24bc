//! Ploutos' NYSE calendar against `pandas_market_calendars` (5.5.0), day by day over
//! 2000–2030: the same sessions, the same opens and closes (half days at 13:00, a few special hours). The fixture is written
//! by `scripts/nyse-reference.py`.

use chrono::{Datelike, Days, NaiveDate, NaiveTime};
use ploutos::market::calendar;
use ploutos::market::nyse::{self, Day};
use std::collections::BTreeMap;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/market/nyse_sessions.csv");

fn reference() -> BTreeMap<NaiveDate, (NaiveTime, NaiveTime)> {
    std::fs::read_to_string(FIXTURE)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").unwrap();
            (f[0].parse().unwrap(), (time(f[1]), time(f[2])))
        })
        .collect()
}

#[test]
fn every_day_of_2000_to_2030_matches_pandas_market_calendars() {
    let reference = reference();
    let (first, last) = (NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2030, 12, 31).unwrap());
    let mut mismatches = Vec::new();
    let mut date = first;
    while date <= last {
        let want = reference.get(&date).copied();
        let got = match nyse::day(date) {
            Day::Open { open, close } => Some((open, close)),
            Day::Closed(_) => None,
        };
        if got != want {
            mismatches.push(format!("{date} ({}): ours {got:?}, reference {want:?}", date.weekday()));
        }
        date = date.checked_add_days(Days::new(1)).unwrap();
    }
    assert!(mismatches.is_empty(), "{} days differ:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn sessions_as_instants() {
    // 2024-11-29, the day after Thanksgiving: 09:30 to 13:00 EST (UTC−5).
    let day = NaiveDate::from_ymd_opt(2024, 11, 29).unwrap();
    let (open, close) = nyse::session(day).unwrap();
    assert_eq!((open, close), (1_732_890_600, 1_732_903_200));
    assert!(nyse::is_open_at(open) && !nyse::is_open_at(close) && !nyse::is_open_at(open - 1));
    // On Thanksgiving itself the next session is the half day.
    let thanksgiving_noon = calendar::ny_local_to_unix(
        NaiveDate::from_ymd_opt(2024, 11, 28).unwrap().and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()),
    )
    .unwrap();
    assert!(!nyse::is_open_at(thanksgiving_noon));
    assert_eq!(nyse::next_session(thanksgiving_noon), (open, close));
    assert_eq!(nyse::next_session(open + 60), (open, close), "an open session is the next one");
    // After the close, the next is Monday's (summer time ends in between: EDT is gone).
    let (monday, _) = nyse::next_session(close);
    assert_eq!(calendar::ny_datetime(monday).to_rfc3339(), "2024-12-02T09:30:00-05:00");
    assert_eq!(
        nyse::day(NaiveDate::from_ymd_opt(2025, 1, 9).unwrap()),
        Day::Closed("National Day of Mourning for Jimmy Carter")
    );
}
