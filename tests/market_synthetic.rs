//! The synthetic market: deterministic from its seed, valid OHLC on the right calendar,
//! with the stylized facts of real returns (fat tails, correlation, volatility clustering),
//! and an exact CSV round trip.

use chrono::{Datelike, Timelike, Weekday};
use ploutos::config::{DataConfig, DataSource, Interval, SyntheticConfig};
use ploutos::market::{Panel, load_panel, synthetic_panel, write_csv_dir};

fn cfg(seed: u64, years: f64) -> DataConfig {
    DataConfig { synthetic: SyntheticConfig { seed, years, ..Default::default() }, ..DataConfig::default() }
}

fn log_returns(close: &[f64]) -> Vec<f64> {
    close.windows(2).map(|w| (w[1] / w[0]).ln()).collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn kurtosis(x: &[f64]) -> f64 {
    let m = mean(x);
    let v = x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / x.len() as f64;
    x.iter().map(|a| (a - m).powi(4)).sum::<f64>() / x.len() as f64 / (v * v)
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn autocorrelation(x: &[f64], lag: usize) -> f64 {
    correlation(&x[..x.len() - lag], &x[lag..])
}

#[test]
fn default_market_is_ten_tickers_of_ten_years_hourly() {
    let start = std::time::Instant::now();
    let p = synthetic_panel(&DataConfig::default());
    eprintln!("generated {} × {} bars in {:?}", p.n_tickers(), p.n_bars(), start.elapsed());
    assert_eq!(p.n_tickers(), 10);
    assert_eq!(p.tickers()[0], "NVDA");
    assert_eq!(p.n_bars(), 2520 * 7);
    assert_eq!(p.n_days(), 2520);
    assert_eq!(p.interval(), Interval::Hour);
    // Same seed, same bars.
    assert!(p == synthetic_panel(&DataConfig::default()), "same seed must give the same market");
}

#[test]
fn different_seeds_differ_and_tickers_are_independent_streams() {
    let a = synthetic_panel(&cfg(1, 1.0));
    let b = synthetic_panel(&cfg(2, 1.0));
    assert_eq!(a.timestamps(), b.timestamps());
    assert_ne!(a.close(0), b.close(0));
    // Adding a ticker at the end leaves the others' bars unchanged.
    let mut more = cfg(1, 1.0);
    more.tickers.push("XYZ".into());
    let c = synthetic_panel(&more);
    for k in 0..a.n_tickers() {
        assert_eq!(a.close(k), c.close(k));
    }
    assert!(c.close(10).iter().all(|p| p.is_finite() && *p > 0.0));
}

#[test]
fn bars_are_valid_ohlc_on_weekday_sessions() {
    let p = synthetic_panel(&cfg(7, 3.0));
    for k in 0..p.n_tickers() {
        for t in 0..p.n_bars() {
            let b = p.bar(k, t);
            assert!(b.open > 0.0 && b.close > 0.0 && b.low > 0.0, "{k} {t} {b:?}");
            assert!(b.high >= b.open.max(b.close) && b.low <= b.open.min(b.close), "{k} {t} {b:?}");
            assert!(b.volume >= 0.0 && b.volume.fract() == 0.0, "{k} {t} {b:?}");
            assert!([b.open, b.high, b.low, b.close, b.volume].iter().all(|v| v.is_finite()));
        }
    }
    for t in 0..p.n_bars() {
        let ny = p.datetime(t);
        assert!(!matches!(ny.weekday(), Weekday::Sat | Weekday::Sun));
        assert_eq!(ny.minute(), 30);
        assert_eq!(ny.hour() as usize, 9 + t % 7, "bar {t} at {ny}");
        assert_eq!(p.day()[t] as usize, t / 7);
    }
    // New York offsets: EST in January, EDT in July.
    assert_eq!(p.datetime(0).to_rfc3339(), "2015-01-02T09:30:00-05:00");
    let july = (0..p.n_bars()).find(|&t| p.date(t).month() == 7).unwrap();
    assert!(p.datetime(july).to_rfc3339().ends_with("-04:00"));
}

#[test]
fn overnight_gaps_and_u_shaped_volume() {
    let p = synthetic_panel(&cfg(7, 10.0));
    let k = p.ticker_index("AAPL").unwrap();
    let (open, close, volume) = (p.open(k), p.close(k), p.volume(k));
    let gaps = (7..p.n_bars()).step_by(7).filter(|&t| open[t] != close[t - 1]).count();
    assert_eq!(gaps, p.n_days() - 1, "every day after the first opens with a gap");
    // Intraday bars open at the previous close.
    assert!((1..p.n_bars()).filter(|t| t % 7 != 0).all(|t| open[t] == close[t - 1]));
    let slot_mean = |s: usize| mean(&volume.iter().skip(s).step_by(7).copied().collect::<Vec<_>>());
    let slots: Vec<f64> = (0..7).map(slot_mean).collect();
    assert!(slots[0] > slots[3] * 1.5 && slots[6] > slots[3] * 1.5, "U-shaped volume: {slots:?}");
}

#[test]
fn stylized_facts() {
    let p = synthetic_panel(&DataConfig::default());
    let returns: Vec<Vec<f64>> = (0..p.n_tickers()).map(|k| log_returns(p.close(k))).collect();
    for (k, r) in returns.iter().enumerate() {
        let kurt = kurtosis(r);
        assert!(kurt > 3.0, "{}: kurtosis {kurt}", p.tickers()[k]);
        let abs: Vec<f64> = r.iter().map(|x| x.abs()).collect();
        // Lag 7: one day apart, same session slot, so the intraday profile cancels out.
        let ac = autocorrelation(&abs, 7);
        let c0 = correlation(r, &returns[8]);
        eprintln!("{}: kurtosis {kurt:.1}, acf(|r|, 7) {ac:.3}, corr with SPY {c0:.2}", p.tickers()[k]);
        assert!(ac > 0.05, "{}: autocorrelation of |r| at one day {ac}", p.tickers()[k]);
    }
    for a in 0..returns.len() {
        for b in a + 1..returns.len() {
            let c = correlation(&returns[a], &returns[b]);
            assert!(c > 0.2, "{} vs {}: correlation {c}", p.tickers()[a], p.tickers()[b]);
        }
    }
}

fn round_trip(c: DataConfig) {
    let p = synthetic_panel(&c);
    let dir = tempfile::tempdir().unwrap();
    write_csv_dir(&p, dir.path()).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), c.tickers.len(), "no temporary file left: {names:?}");
    let csv = DataConfig { source: DataSource::Csv, csv_dir: dir.path().display().to_string(), ..c };
    let (q, report) = load_panel(&csv).unwrap();
    assert!(p == q, "write → load must give identical bars");
    assert_eq!(report.affected_bars(), 0);
}

#[test]
fn csv_round_trip_is_exact_hourly() {
    round_trip(DataConfig { tickers: vec!["NVDA".into(), "SPY".into(), "NEW".into()], ..cfg(3, 2.0) });
}

#[test]
fn csv_round_trip_is_exact_daily() {
    round_trip(DataConfig { tickers: vec!["TSLA".into(), "QQQ".into()], interval: Interval::Day, ..cfg(4, 3.0) });
}

#[test]
fn written_csv_format() {
    let p: Panel = synthetic_panel(&DataConfig { tickers: vec!["SPY".into()], ..cfg(5, 1.0) });
    let dir = tempfile::tempdir().unwrap();
    write_csv_dir(&p, dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("SPY.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,open,high,low,close,volume"));
    assert!(lines.next().unwrap().starts_with("2015-01-02T09:30:00-05:00,205,"));
    assert!(text.contains("\n2015-07-01T15:30:00-04:00,"));
}

#[test]
fn planted_trend_adds_a_persistent_drift_and_nothing_else() {
    let plain = synthetic_panel(&cfg(7, 10.0));
    let mut c = cfg(7, 10.0);
    c.synthetic.trend = 0.6;
    c.synthetic.trend_days = 20.0;
    let trended = synthetic_panel(&c);
    let dt = 1.0 / (252.0 * 7.0);
    for k in 0..plain.n_tickers() {
        // Every bar's log-return moves by exactly ±trend·dt, with one sign per day.
        let (a, b) = (log_returns(plain.close(k)), log_returns(trended.close(k)));
        let drift: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (y - x) / (0.6 * dt)).collect();
        let mut signs = vec![];
        for (t, d) in drift.iter().enumerate() {
            // Bar t+1's return; a day's first bar's log-return also holds the unchanged gap.
            assert!((d.abs() - 1.0).abs() < 1e-6, "ticker {k} bar {}: drift {d}", t + 1);
            let day = plain.day()[t + 1] as usize;
            if signs.len() <= day {
                signs.resize(day + 1, 0.0);
                signs[day] = d.signum();
            }
            assert_eq!(signs[day], d.signum(), "ticker {k}: one trend sign per day");
        }
        // Flips every 20 days on average: ~126 flips in 2,520 days (binomial sd ≈ 11).
        let flips = signs[1..].windows(2).filter(|w| w[0] != w[1]).count();
        assert!((80..175).contains(&flips), "ticker {k}: {flips} sign flips");
        // Volume reacts to the return's size, but opens keep their (unchanged) gaps.
        let gaps = |p: &Panel| {
            (1..p.n_bars())
                .filter(|&t| p.day()[t] != p.day()[t - 1])
                .map(|t| (p.open(k)[t] / p.close(k)[t - 1]).ln())
                .collect::<Vec<_>>()
        };
        for (x, y) in gaps(&plain).iter().zip(gaps(&trended)) {
            assert!((x - y).abs() < 1e-12);
        }
    }
}
