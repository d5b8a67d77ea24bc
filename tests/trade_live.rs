//! The live market (`ploutos::trade::LiveMarket`): bars pushed one timestamp at a time make
//! the market rows a backtest builds from the whole file, to the bit (features, cost
//! inputs, days, volumes), on daily and hourly calendars; a bad feed is refused with the
//! ticker and time, and nothing of it is kept.

use ploutos::config::{DataConfig, Interval, SyntheticConfig};
use ploutos::dataset::Dataset;
use ploutos::trade::{BrokerBar, LiveError, LiveMarket};

fn dataset(interval: Interval) -> Dataset {
    let data = DataConfig {
        tickers: vec!["AAA".into(), "BBB".into()],
        interval,
        synthetic: SyntheticConfig { years: 1.5, ..SyntheticConfig::default() },
        ..DataConfig::default()
    };
    Dataset::load(&data).expect("synthetic data")
}

/// The panel's bars at `t`, as a broker gives them (tickers in reverse order: any order).
fn bars(ds: &Dataset, t: usize) -> Vec<BrokerBar> {
    let p = &ds.panel;
    (0..p.n_tickers())
        .rev()
        .map(|k| BrokerBar {
            ticker: p.tickers()[k].clone(),
            time: p.timestamps()[t],
            open: p.open(k)[t],
            high: p.high(k)[t],
            low: p.low(k)[t],
            close: p.close(k)[t],
            volume: p.volume(k)[t],
        })
        .collect()
}

#[test]
fn rows_equal_the_backtests_to_the_bit() {
    for interval in [Interval::Day, Interval::Hour] {
        let ds = dataset(interval);
        let n = (ds.panel.n_bars() - 1).min(600);
        let mut live = LiveMarket::new(ds.panel.tickers().to_vec(), interval, ds.scaler.clone());
        for t in 0..n {
            let b = bars(&ds, t);
            live.push(&b.iter().collect::<Vec<_>>()).expect("a valid bar");
        }
        let next = ds.panel.timestamps()[n];
        let got = live.market_with_next(next, Some(ds.market.open_row(n)));
        let want = &ds.market;
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for t in 0..n {
            assert_eq!(got.day(t), want.day(t), "{interval:?} bar {t}");
            assert_eq!(bits(got.open_row(t)), bits(want.open_row(t)));
            assert_eq!(bits(got.close_row(t)), bits(want.close_row(t)));
            assert_eq!(bits(got.atr_frac_row(t)), bits(want.atr_frac_row(t)), "{interval:?} atr bar {t}");
            assert_eq!(bits(got.ret_std_row(t)), bits(want.ret_std_row(t)), "{interval:?} ret_std bar {t}");
            assert_eq!(bits(got.mean_volume_row(t)), bits(want.mean_volume_row(t)), "{interval:?} volume bar {t}");
            let (g, w) = (got.feature_row(t), want.feature_row(t));
            assert!(g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()), "{interval:?} features bar {t}");
            for k in 0..2 {
                assert_eq!(got.volume(t, k), want.volume(t, k));
            }
        }
        // The next bar: its open and its day, as the data has them.
        assert_eq!(got.open_row(n), want.open_row(n));
        assert_eq!(got.day(n), want.day(n), "{interval:?}: the next bar's trading day");
    }
}

#[test]
fn a_bad_feed_is_refused_and_nothing_of_it_kept() {
    let ds = dataset(Interval::Day);
    let mut live = LiveMarket::new(ds.panel.tickers().to_vec(), Interval::Day, ds.scaler.clone());
    let b0 = bars(&ds, 0);
    live.push(&b0.iter().collect::<Vec<_>>()).unwrap();
    let b1 = bars(&ds, 1);
    let time = b1[0].time;

    let err = live.push(&[&b1[0]]).unwrap_err();
    assert_eq!(err, LiveError::Gap { ticker: "AAA".into(), time });
    assert_eq!(
        err.to_string(),
        format!("no bar for AAA at {time} (a gap in the feed): nothing is decided on incomplete bars")
    );
    let mut other = b1[0].clone();
    other.ticker = "ZZZ".into();
    assert_eq!(live.push(&[&b1[1], &other]).unwrap_err(), LiveError::UnknownTicker("ZZZ".into()));
    assert!(matches!(live.push(&[&b1[0], &b1[0]]).unwrap_err(), LiveError::Duplicate { .. }));
    let mut bad = b1[1].clone();
    bad.close = f64::NAN;
    assert!(matches!(live.push(&[&b1[0], &bad]).unwrap_err(), LiveError::Invalid { .. }));
    assert!(matches!(live.push(&b0.iter().collect::<Vec<_>>()).unwrap_err(), LiveError::OutOfOrder { .. }));
    assert_eq!(live.n_bars(), 1, "nothing of a refused bar is kept");

    // extend() takes what is new, in time order, and skips what it has.
    let mut feed = bars(&ds, 2);
    feed.extend(b0.clone());
    feed.extend(b1.clone());
    assert_eq!(live.extend(&feed), Ok(2));
    assert_eq!(live.times(), &ds.panel.timestamps()[..3]);
}

/// A split read from the broker: with the bars as they printed (÷ 4 from the ex-date, volumes
/// × 4), the features and cost inputs are the adjusted market's to the bit, the ex-date bar
/// carries the split for the account, and the mean volumes that size orders in the new
/// shares (from the decision bar before the ex-date on) are in the new shares. A split of a
/// day already read is refused; one at the first bar is before anything was held.
#[test]
fn a_split_leaves_the_features_as_adjusted_and_carries_it_to_the_account() {
    use ploutos::trade::Split;
    let ds = dataset(Interval::Day);
    let (n, ex, ratio) = (300, 200, 4.0);
    let times = ds.panel.timestamps();
    let ex_date = ploutos::market::calendar::ny_date(times[ex]);
    let split = |ratio: f64| Split { ticker: "BBB".into(), ex_date, ratio };
    let printed = |t: usize| {
        let mut b = bars(&ds, t);
        for bar in b.iter_mut().filter(|b| b.ticker == "BBB" && t >= ex) {
            (bar.open, bar.high, bar.low, bar.close, bar.volume) =
                (bar.open / ratio, bar.high / ratio, bar.low / ratio, bar.close / ratio, bar.volume * ratio);
        }
        b
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut live = LiveMarket::new(ds.panel.tickers().to_vec(), Interval::Day, ds.scaler.clone());
    live.add_splits(&[split(ratio), Split { ticker: "ZZZ".into(), ex_date, ratio: 2.0 }]).unwrap();
    for t in 0..n {
        if t == ex {
            // The provisional ex-date bar already carries the split, and its decision bar's
            // mean volume is in the new shares.
            let before = live.market_with_next(times[ex], None);
            assert_eq!(before.corporate_action(ex, 1), (ratio, 0.0));
            assert_eq!(before.mean_volume_row(ex - 1)[1], ds.market.mean_volume_row(ex - 1)[1] * ratio);
        }
        live.push(&printed(t).iter().collect::<Vec<_>>()).expect("a valid bar");
    }
    let got = live.market_with_next(times[n], None);
    let want = &ds.market;
    for t in 0..n {
        let (g, w) = (got.feature_row(t), want.feature_row(t));
        assert!(g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()), "features bar {t}");
        assert_eq!(bits(got.atr_frac_row(t)), bits(want.atr_frac_row(t)), "atr bar {t}");
        assert_eq!(bits(got.ret_std_row(t)), bits(want.ret_std_row(t)), "ret_std bar {t}");
        let new_shares = if t + 1 >= ex { ratio } else { 1.0 };
        assert_eq!(got.mean_volume_row(t), [want.mean_volume_row(t)[0], want.mean_volume_row(t)[1] * new_shares]);
        assert_eq!(got.close_row(t)[1], printed(t)[0].close, "the prices that printed");
        let action = if t == ex { (ratio, 0.0) } else { (1.0, 0.0) };
        assert_eq!((got.corporate_action(t, 0), got.corporate_action(t, 1)), ((1.0, 0.0), action), "bar {t}");
    }
    // Known already: skipped. Late: refused, naming it. At the first bar: skipped.
    live.add_splits(&[split(ratio)]).unwrap();
    let err = live.add_splits(&[split(2.0)]).unwrap_err();
    assert!(err.to_string().contains("a split of BBB on") && err.to_string().contains("after its bars"), "{err}");
    let first = ploutos::market::calendar::ny_date(times[0]);
    live.add_splits(&[Split { ticker: "AAA".into(), ex_date: first, ratio: 2.0 }]).unwrap();
    assert!(live.add_splits(&[Split { ratio: f64::NAN, ..split(ratio) }]).is_err());
    assert_eq!(live.splits_through(times[n]), [(ex, 1, ratio)]);
}
