//! Panel alignment (missing-bar policies and their counts), `load_panel` from a CSV folder,
//! and chronological splits by fractions and by dates.

use chrono::NaiveDate;
use ploutos::config::{DataConfig, DataSource, Interval, MissingBarPolicy, SplitConfig};
use ploutos::features::MIN_BARS;
use ploutos::market::{Bar, BarSeries, DataError, Panel, Split, calendar, load_panel, synthetic_panel};
use std::path::Path;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Daily series on `dates`, prices from `base`.
fn daily(ticker: &str, dates: &[NaiveDate], base: f64) -> BarSeries {
    let ts = calendar::session_timestamps(dates, Interval::Day);
    let bars: Vec<Bar> = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let p = base + i as f64;
            Bar { timestamp: t, open: p, high: p + 2.0, low: p - 1.0, close: p + 1.0, volume: 100.0 + i as f64 }
        })
        .collect();
    BarSeries::from_bars(ticker, Interval::Day, &bars)
}

/// A: 130 weekdays. B: A's dates without indices 50, 51, 52. C: A's dates from index 2.
fn three_series() -> (Vec<NaiveDate>, [BarSeries; 3]) {
    let all = calendar::weekdays_from(date(2022, 1, 3), 130);
    let b_dates: Vec<NaiveDate> =
        all.iter().enumerate().filter(|(i, _)| !(50..53).contains(i)).map(|(_, d)| *d).collect();
    (all.clone(), [daily("A", &all, 10.0), daily("B", &b_dates, 20.0), daily("C", &all[2..], 30.0)])
}

#[test]
fn drop_keeps_common_timestamps_and_counts() {
    let (all, s) = three_series();
    let (p, r) = Panel::align(&s, Interval::Day, MissingBarPolicy::Drop);
    assert_eq!(p.n_bars(), 125);
    assert_eq!(r.union_timestamps, 130);
    assert_eq!(r.dropped_timestamps, 5);
    let dropped: Vec<usize> = r.tickers.iter().map(|t| t.bars_dropped).collect();
    assert_eq!(dropped, [5, 2, 3]);
    assert!(r.tickers.iter().all(|t| t.bars_filled == 0));
    assert_eq!(r.affected_bars(), 10);
    assert_eq!(p.date(0), all[2]);
    assert!(!(0..p.n_bars()).any(|t| p.date(t) == all[50]));
    // A's bar on all[53] sits at panel index 53 - 2 - 3.
    assert_eq!(p.bar(0, 48), s[0].bar(53));
    assert_eq!(p.day(), &(0..125).collect::<Vec<u32>>()[..]);
    let line = r.to_string();
    assert!(line.contains("5 timestamps dropped") && line.contains("10 bars dropped"), "{line}");
}

#[test]
fn forward_fill_repeats_the_previous_close_with_zero_volume() {
    let (all, s) = three_series();
    let (p, r) = Panel::align(&s, Interval::Day, MissingBarPolicy::ForwardFill);
    // Union from C's first bar (index 2) on.
    assert_eq!(p.n_bars(), 128);
    assert_eq!(r.dropped_timestamps, 2);
    let filled: Vec<usize> = r.tickers.iter().map(|t| t.bars_filled).collect();
    let dropped: Vec<usize> = r.tickers.iter().map(|t| t.bars_dropped).collect();
    assert_eq!(filled, [0, 3, 0]);
    assert_eq!(dropped, [2, 2, 0]);
    assert_eq!(r.affected_bars(), 7);
    // B's bars at all[50..53] (panel 48..51) repeat its close on all[49] (its index 49).
    let prev = s[1].close[49];
    for t in 48..51 {
        assert_eq!(p.date(t), all[t + 2]);
        let b = p.bar(1, t);
        assert_eq!((b.open, b.high, b.low, b.close, b.volume), (prev, prev, prev, prev, 0.0));
    }
    assert_eq!(p.bar(1, 51), s[1].bar(50));
    // Exactly those bars are marked invented, for B (bit 1) only.
    let invented: Vec<usize> = (0..p.n_bars()).filter(|&t| p.invented()[t] != 0).collect();
    assert_eq!(invented, [48, 49, 50]);
    assert!(invented.iter().all(|&t| p.invented()[t] == 0b10));
    let (dropped, _) = Panel::align(&s, Interval::Day, MissingBarPolicy::Drop);
    assert!(dropped.invented().is_empty(), "nothing is invented when bars are dropped");
}

#[test]
fn load_panel_reads_one_csv_per_ticker_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = three_series();
    let (full, _) = Panel::align(&s, Interval::Day, MissingBarPolicy::ForwardFill);
    // Write each series on its own timeline: write_csv_dir writes a panel, so write one
    // single-ticker panel per series.
    for series in &s {
        let (one, _) = Panel::align(std::slice::from_ref(series), Interval::Day, MissingBarPolicy::Drop);
        ploutos::market::write_csv_dir(&one, dir.path()).unwrap();
    }
    let cfg = DataConfig {
        tickers: vec!["A".into(), "B".into(), "C".into()],
        source: DataSource::Csv,
        csv_dir: dir.path().display().to_string(),
        interval: Interval::Day,
        missing_bars: MissingBarPolicy::ForwardFill,
        ..DataConfig::default()
    };
    let (p, r) = load_panel(&cfg).unwrap();
    assert_eq!(p, full);
    assert_eq!(r.tickers.iter().map(|t| t.bars_filled).sum::<usize>(), 3);
    assert_eq!(r.source, dir.path().display().to_string());

    let missing = DataConfig { tickers: vec!["A".into(), "ZZZ".into()], ..cfg.clone() };
    let err = load_panel(&missing).unwrap_err();
    assert!(matches!(&err, DataError::MissingFile { ticker, .. } if ticker == "ZZZ"), "{err:?}");
    assert!(err.to_string().contains(&Path::new(&cfg.csv_dir).join("ZZZ.csv").display().to_string()), "{err}");
}

#[test]
fn load_panel_rejects_a_panel_shorter_than_the_feature_window() {
    let dir = tempfile::tempdir().unwrap();
    let a = calendar::weekdays_from(date(2022, 1, 3), 120);
    // B trades only the second half: after `drop`, 60 common bars remain.
    for series in [daily("A", &a, 10.0), daily("B", &calendar::weekdays_from(a[60], 120), 20.0)] {
        let (one, _) = Panel::align(std::slice::from_ref(&series), Interval::Day, MissingBarPolicy::Drop);
        ploutos::market::write_csv_dir(&one, dir.path()).unwrap();
    }
    let cfg = DataConfig {
        tickers: vec!["A".into(), "B".into()],
        source: DataSource::Csv,
        csv_dir: dir.path().display().to_string(),
        interval: Interval::Day,
        ..DataConfig::default()
    };
    let err = load_panel(&cfg).unwrap_err();
    assert!(matches!(err, DataError::PanelTooShort { bars: 60, .. }), "{err:?}");
    let synthetic = DataConfig {
        synthetic: ploutos::config::SyntheticConfig { years: 0.01, ..Default::default() },
        ..DataConfig::default()
    };
    assert!(matches!(load_panel(&synthetic), Err(DataError::PanelTooShort { .. })));
}

fn hourly_year() -> Panel {
    let cfg = DataConfig {
        tickers: vec!["SPY".into(), "QQQ".into()],
        synthetic: ploutos::config::SyntheticConfig { years: 1.0, ..Default::default() },
        ..DataConfig::default()
    };
    synthetic_panel(&cfg)
}

#[test]
fn split_by_fractions_cuts_at_day_boundaries() {
    let p = hourly_year();
    let n = p.n_bars();
    assert_eq!(n, 252 * 7);
    let s = Split::new(&p, &SplitConfig::default()).unwrap();
    assert_eq!(s.train.start, MIN_BARS);
    assert_eq!(s.train.end, s.validation.start);
    assert_eq!(s.validation.end, s.test.start);
    assert_eq!(s.test.end, n);
    for cut in [s.train.end, s.validation.end] {
        assert_eq!(cut % 7, 0, "cut {cut} inside a day");
        assert_ne!(p.day()[cut - 1], p.day()[cut]);
    }
    // 0.7 × 1764 = 1234.8 → 1235 → next day start 1239; +0.15 × 1764 = 265 → 1504 → 1505.
    assert_eq!(s.train.end, 1239);
    assert_eq!(s.validation.end, 1505);

    let all_train = SplitConfig { train_fraction: 1.0, validation_fraction: 0.0, ..SplitConfig::default() };
    let s = Split::new(&p, &all_train).unwrap();
    assert_eq!((s.train.end, s.validation.len(), s.test.len()), (n, 0, 0));
}

#[test]
fn split_by_dates_is_inclusive() {
    let p = hourly_year();
    let cfg = SplitConfig {
        train_end: Some(date(2015, 9, 30)),
        validation_end: Some(date(2015, 11, 30)),
        ..SplitConfig::default()
    };
    let s = Split::new(&p, &cfg).unwrap();
    assert_eq!(p.date(s.train.end - 1), date(2015, 9, 30));
    assert_eq!(p.date(s.train.end), date(2015, 10, 1));
    assert_eq!(p.date(s.validation.end - 1), date(2015, 11, 30));
    assert_eq!(p.date(s.validation.end), date(2015, 12, 1));
    assert_eq!(s.test.end, p.n_bars());
    // A train_end on a weekend ends with the Friday before.
    let weekend = SplitConfig { train_end: Some(date(2015, 10, 3)), ..SplitConfig::default() };
    let s = Split::new(&p, &weekend).unwrap();
    assert_eq!(p.date(s.train.end - 1), date(2015, 10, 2));
    // Dates win over fractions; the validation fraction counts from the training cut.
    // round(0.15 × 1764) = 265 bars, rounded up to whole days: 266.
    assert_eq!(s.validation.len(), 266);
    // A date past the data leaves later splits empty.
    let late = SplitConfig { train_end: Some(date(2030, 1, 1)), ..SplitConfig::default() };
    let s = Split::new(&p, &late).unwrap();
    assert_eq!((s.train.end, s.validation.len(), s.test.len()), (p.n_bars(), 0, 0));
}

#[test]
fn split_rejects_an_empty_training_split() {
    let p = hourly_year();
    let cfg = SplitConfig { train_end: Some(date(2015, 1, 5)), ..SplitConfig::default() };
    let err = Split::new(&p, &cfg).unwrap_err();
    assert!(matches!(err, DataError::Split(_)));
    assert!(err.to_string().starts_with("data.split:"), "{err}");
}

/// A CSV folder config over `tickers`, daily bars, `policy`.
fn csv_cfg(dir: &Path, tickers: &[&str], policy: MissingBarPolicy) -> DataConfig {
    DataConfig {
        tickers: tickers.iter().map(|t| t.to_string()).collect(),
        source: DataSource::Csv,
        csv_dir: dir.display().to_string(),
        interval: Interval::Day,
        missing_bars: policy,
        ..DataConfig::default()
    }
}

#[test]
fn a_folder_in_place_of_a_ticker_file_is_named_as_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _) = Panel::align(
        &[daily("A", &calendar::weekdays_from(date(2022, 1, 3), 120), 10.0)],
        Interval::Day,
        MissingBarPolicy::Drop,
    );
    ploutos::market::write_csv_dir(&one, dir.path()).unwrap();
    std::fs::create_dir(dir.path().join("B.csv")).unwrap();
    let err = load_panel(&csv_cfg(dir.path(), &["A", "B"], MissingBarPolicy::Drop)).unwrap_err();
    let shown = dir.path().join("B.csv").display().to_string();
    assert!(matches!(&err, DataError::NotAFile { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{shown}: is a folder, not a CSV file"));
    // The single-file loader says the same.
    let err = ploutos::market::load_csv_file(&dir.path().join("B.csv"), Interval::Day).unwrap_err();
    assert_eq!(err.to_string(), format!("{shown}: is a folder, not a CSV file"));
}

#[test]
fn tickers_sharing_no_dates_are_named_with_their_ranges_under_both_policies() {
    let dir = tempfile::tempdir().unwrap();
    let a = calendar::weekdays_from(date(2020, 1, 6), 120);
    let b = calendar::weekdays_from(date(2022, 1, 3), 120);
    for series in [daily("A", &a, 10.0), daily("B", &b, 20.0)] {
        let (one, _) = Panel::align(std::slice::from_ref(&series), Interval::Day, MissingBarPolicy::Drop);
        ploutos::market::write_csv_dir(&one, dir.path()).unwrap();
    }
    let want = format!(
        "{}: the tickers share no dates: A 2020-01-06 to {}, B 2022-01-03 to {}",
        dir.path().display(),
        a[119],
        b[119]
    );
    for policy in [MissingBarPolicy::Drop, MissingBarPolicy::ForwardFill] {
        let err = load_panel(&csv_cfg(dir.path(), &["A", "B"], policy)).unwrap_err();
        assert!(matches!(err, DataError::NoSharedDates { .. }), "{policy:?}: {err:?}");
        assert_eq!(err.to_string(), want, "{policy:?}");
    }
}
