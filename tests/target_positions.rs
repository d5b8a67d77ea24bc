//! Target-position actions (`environment.target_positions`, execution contract answer 21):
//! a partial exit, a flip from long to short and back, the no-trade band, by hand; the
//! masks per level (flips of a `no_short` ticker into a short among them); the codes that hold; and properties over random markets: an order never
//! overshoots its target nor goes the wrong way, nothing is sent inside the band, and cash +
//! long value − short liability = equity at every bar.

use ploutos::config::EnvironmentConfig;
use ploutos::env::{EpisodeBounds, KEEP, Refusal, Side};
use ploutos::{EnvOptions, TradingEnv};
use proptest::prelude::*;

mod hand;

const LEVELS: [f64; 5] = [-1.0, -0.5, 0.0, 0.5, 1.0];

/// Cost free (see `hand`), whole shares, shorts on, the five levels, band 10%.
fn config(adjust: impl FnOnce(&mut EnvironmentConfig)) -> EnvironmentConfig {
    hand::cost_free(|c| {
        c.fractional_shares = false;
        c.short_selling.enabled = true;
        c.short_selling.borrow_rate = 0.0;
        c.pdt.enabled = false;
        c.bankruptcy_pct = 0.0;
        c.target_positions.enabled = true;
        c.target_positions.levels = LEVELS.to_vec();
        c.target_positions.no_trade_band = 0.1;
        adjust(c);
    })
}

/// $10,000, max_position_pct 1, fills at the next bar's open (= its close here):
///
/// | bar | close | action | equity | target | order | fill (next bar) | cash after |
/// |-----|-------|--------|--------|--------|-------|-----------------|------------|
/// | 0 | 100 | 1 | 10,000 | 100 | +100 | buy 100 @ 100 | 0 |
/// | 1 | 100 | ½ | 10,000 | 50 | −50 | sell 50 @ 100 (a partial exit) | 5,000 |
/// | 2 | 100 | ½ | 10,000 | 50 | none | | 5,000 |
/// | 3 | 120 | −½ | 11,000 | −45 (−45.8 toward 0) | −95 | sell 50, then short 45 @ 120 | 16,400 |
/// | 4 | 120 | −½ | 11,000 | −45 | none | | 16,400 |
/// | 5 | 125 | −½ | 10,775 | −43 | +2 ($250 < band $1,077.50): none | | 16,400 |
/// | 6 | 125 | 1 | 10,775 | 86 | +131 | cover 45, then buy 86 @ 125 | 25 |
#[test]
fn partial_exit_flips_and_band_by_hand() {
    let cfg = config(|_| {});
    let prices = vec![100.0, 100.0, 100.0, 120.0, 120.0, 125.0, 125.0, 125.0];
    let mut env = hand::replay(&cfg, hand::one_ticker(prices, (0..8).collect()));
    assert_eq!(env.n_actions(), 5);
    let mut cash = Vec::new();
    for a in [4u8, 3, 3, 1, 1, 1, 4] {
        let b = env.step(&[a]).expect("step");
        cash.push(b.infos[0].cash);
    }
    let want = [0.0, 5_000.0, 5_000.0, 16_400.0, 16_400.0, 16_400.0, 25.0];
    for (got, want) in cash.iter().zip(want) {
        hand::near(*got, want);
    }
    let trades = env.take_trades(0);
    let got: Vec<_> = trades.iter().map(|t| (t.bar, t.side, t.shares, t.fill_price)).collect();
    assert_eq!(
        got,
        vec![
            (1, Side::Buy, 100.0, 100.0),
            (2, Side::Sell, 50.0, 100.0),
            (4, Side::Sell, 50.0, 120.0),
            (4, Side::Sell, 45.0, 120.0),
            (7, Side::Buy, 45.0, 125.0),
            (7, Side::Buy, 86.0, 125.0),
        ]
    );
    let totals = env.totals();
    // Closed: 50 sold at cost, 50 sold with a $1,000 gain, 45 covered at a $225 loss.
    assert_eq!((totals.closed_trades, totals.winning_trades), (3, 1));
    assert_eq!(totals.refused.0.iter().sum::<u32>(), 0);
    hand::near(ploutos::backtest::metrics::closed_trades(&trades, 1).iter().map(|c| c.pnl).sum(), 775.0);
}

/// A flip whose opening half the margin refuses (fractional shares, a $1 commission per
/// order, initial margin 100%): level 1 buys 99.99 shares (the $10,000 less the
/// commission); level −1 then sells them ($9,998 of cash after the commission) and asks for
/// a short of the rest, 99.99 shares, which the cash cuts to $9,998: its proceeds less the
/// commission ($19,995 of cash) do not cover twice its value ($19,996), so the short sale
/// is refused as `margin`, its own order, and the account stays flat with $9,998.
#[test]
fn a_flip_can_close_and_be_refused_the_rest() {
    let cfg = config(|c| {
        c.fractional_shares = true;
        c.fees.commission_per_order = 1.0;
        c.short_selling.initial_margin = 1.0;
        c.target_positions.levels = vec![-1.0, 0.0, 1.0];
    });
    let mut env = hand::replay(&cfg, hand::one_ticker(vec![100.0; 5], (0..5).collect()));
    let b = env.step(&[2]).expect("step");
    hand::near(b.infos[0].equity, 9_999.0);
    let b = env.step(&[0]).expect("step");
    hand::near(b.infos[0].cash, 9_998.0);
    hand::near(b.infos[0].equity, 9_998.0);
    let trades = env.take_trades(0);
    let got: Vec<_> = trades.iter().map(|t| (t.side, t.shares)).collect();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[1].0), (Side::Buy, Side::Sell));
    hand::near(got[0].1, 99.99);
    hand::near(got[1].1, 99.99);
    let refused = env.totals().refused;
    assert_eq!((refused.0[Refusal::MARGIN.0 as usize], refused.0.iter().sum::<u32>()), (1, 1));
}

/// A 2:1 split between the decision and the fill: the order, decided in the old shares, is
/// doubled with the position. Bought 100 at $100; at bar 1's close level ½ orders −50;
/// bar 2 opens split at $50 with 200 shares, and the order sells 100 of them: $5,000 of
/// cash and 100 shares left (the 50 asked for, in new shares).
#[test]
fn a_split_before_the_fill_scales_the_order() {
    let cfg = config(|c| {
        c.short_selling.enabled = false;
        c.target_positions.levels = vec![0.0, 0.5, 1.0];
    });
    let market = hand::one_ticker(vec![100.0, 100.0, 50.0, 50.0], (0..4).collect())
        .with_corporate_actions(vec![(1.0, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 0.0)])
        .expect("shapes");
    let mut env = hand::replay(&cfg, market);
    env.step(&[2]).expect("step");
    let b = env.step(&[1]).expect("step");
    hand::near(b.infos[0].cash, 5_000.0);
    hand::near(b.infos[0].equity, 10_000.0);
    let last = env.take_trades(0).pop().unwrap();
    assert_eq!((last.bar, last.side, last.shares, last.fill_price), (2, Side::Sell, 100.0, 50.0));
}

/// Codes beyond the levels are `invalid_action` and hold; [`KEEP`] holds without a refusal.
#[test]
fn keep_and_invalid_codes_hold() {
    let cfg = config(|_| {});
    let mut env = hand::replay(&cfg, hand::one_ticker(vec![100.0; 4], (0..4).collect()));
    env.step(&[KEEP]).expect("step");
    env.step(&[5]).expect("step");
    let totals = env.totals();
    assert_eq!(totals.refused.0[Refusal::INVALID_ACTION.0 as usize], 1);
    assert_eq!(totals.refused.0.iter().sum::<u32>(), 1);
    assert!(env.take_trades(0).is_empty());
}

/// The masks have one flag per level: after a buy, the holding period forbids sells, so the
/// levels under the position are masked while the one it sits on stays allowed; two bars
/// later all are allowed. Without shorts the levels are non-negative.
#[test]
fn masks_have_one_flag_per_level() {
    let cfg = config(|c| {
        c.short_selling.enabled = false;
        c.target_positions.levels = vec![0.0, 0.5, 1.0];
        c.min_holding_bars = 2;
    });
    let market = hand::one_ticker(vec![100.0; 6], (0..6).collect());
    let bounds = EpisodeBounds { first: 0, last: 5, random_start: false };
    let opts = EnvOptions { action_masks: true, ..EnvOptions::replay(bounds) };
    let mut env = TradingEnv::new(&cfg, market, opts).expect("env");
    let b = env.reset(0);
    assert_eq!(b.action_masks, vec![true, true, true]);
    let b = env.step(&[2]).expect("step");
    assert_eq!(b.action_masks, vec![false, false, true], "young position: no sells");
    // A masked level sent anyway is refused as `masked`.
    env.step(&[0]).expect("step");
    assert_eq!(env.totals().refused.0[Refusal::MASKED.0 as usize], 1);
    let b = env.step(&[2]).expect("step");
    assert_eq!(b.action_masks, vec![true, true, true]);
}

/// A `no_short` ticker: from flat, the short levels are masked; held long, the levels that
/// would flip the long into a short are masked while the exits to flat or to half stay
/// allowed. A flip sent anyway is refused as `masked` (not filled in part), and without
/// masks as `not_shortable`.
#[test]
fn flips_of_a_no_short_ticker_into_a_short_are_masked() {
    let run = |action_masks: bool| {
        let cfg = config(|c| c.short_selling.no_short = vec!["A".into()]);
        let market = hand::one_ticker(vec![100.0; 6], (0..6).collect()).with_tickers(&["A".into()]).expect("one name");
        let bounds = EpisodeBounds { first: 0, last: 5, random_start: false };
        let mut env =
            TradingEnv::new(&cfg, market, EnvOptions { action_masks, ..EnvOptions::replay(bounds) }).expect("env");
        let b = env.reset(0);
        if action_masks {
            assert_eq!(b.action_masks, vec![false, false, true, true, true], "flat: no short levels");
        }
        let b = env.step(&[4]).expect("step");
        if action_masks {
            assert_eq!(b.action_masks, vec![false, false, true, true, true], "long 100: no flips into a short");
        }
        env.step(&[0]).expect("step");
        let trades = env.take_trades(0);
        assert_eq!(trades.len(), 1, "only the first buy fills: {trades:?}");
        let refused = env.totals().refused.0;
        (refused[Refusal::MASKED.0 as usize], refused[Refusal::NOT_SHORTABLE.0 as usize])
    };
    assert_eq!(run(true), (1, 0));
    assert_eq!(run(false), (0, 1));
}

/// A target-level cell that is not a level is refused by the config's validation, as are
/// negative levels without shorts.
#[test]
fn bad_levels_are_refused() {
    let mut cfg = EnvironmentConfig::default();
    cfg.target_positions.enabled = true;
    cfg.target_positions.levels = vec![-0.5, 0.0, 0.5];
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("environment.target_positions.levels") && msg.contains("short_selling"), "{msg}");
    cfg.target_positions.levels = vec![0.0, 0.5, 0.5];
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("differ"), "{msg}");
    cfg.target_positions.levels = vec![0.0, 1.5];
    assert!(cfg.validate().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random volatile markets and random levels (and now and then [`KEEP`]), the seed's
    /// costs and rules, shorts on: with the equity and close of its decision bar, each
    /// ticker's target is `level × max_position_pct × equity / close`; no trade when the
    /// difference is inside the band; otherwise the position after the fills lies between
    /// the one held and the target (an order never overshoots nor goes the wrong way,
    /// whatever cash, margin, participation or rule cuts it), unless a margin call closed
    /// it; and cash + Σ signed shares × close = equity at every bar.
    #[test]
    fn orders_move_toward_their_targets_and_equity_adds_up(
        returns in proptest::collection::vec(-0.06f64..0.06, 3 * 100),
        gaps in proptest::collection::vec(-0.02f64..0.02, 3 * 100),
        codes in proptest::collection::vec(0u8..6, 3 * 99),
        band in 0.0f64..0.3,
        whole in any::<bool>(),
        volume in proptest::collection::vec(0.0f64..2e4, 3 * 100),
        participation in any::<bool>(),
    ) {
        let m = hand::volatile_market(3, &returns, &gaps).with_volume(volume).expect("shape");
        let closes: Vec<Vec<f64>> = (0..100).map(|t| m.close_row(t).to_vec()).collect();
        let mut cfg = EnvironmentConfig { max_position_pct: 0.5, fractional_shares: !whole, ..EnvironmentConfig::default() };
        cfg.short_selling.enabled = true;
        cfg.short_selling.borrow_rate = 0.05;
        cfg.target_positions.enabled = true;
        cfg.target_positions.levels = LEVELS.to_vec();
        cfg.target_positions.no_trade_band = band;
        cfg.max_participation = participation.then_some(0.02);
        cfg.bankruptcy_pct = 0.0;
        cfg.validate().expect("valid");
        let mpp = cfg.max_position_pct;
        let mut env = hand::replay(&cfg, m);
        let (mut shares, mut equity, mut n_trades) = ([0.0f64; 3], cfg.initial_cash, 0);
        for (t, row) in codes.chunks(3).enumerate() {
            let actions: Vec<u8> = row.iter().map(|&c| if c == 5 { KEEP } else { c }).collect();
            let b = env.step(&actions).expect("step").infos[0];
            let trades = env.take_trades(0);
            let held = shares;
            n_trades += trades.len();
            for tr in &trades {
                shares[tr.ticker as usize] += if tr.side == Side::Buy { tr.shares } else { -tr.shares };
            }
            for k in 0..3 {
                if trades.iter().any(|tr| tr.ticker as usize == k && tr.forced.is_some()) {
                    continue;
                }
                let traded = trades.iter().any(|tr| tr.ticker as usize == k);
                if actions[k] == KEEP {
                    prop_assert!(!traded, "bar {t}: KEEP traded ticker {k}");
                    continue;
                }
                let close = closes[t][k];
                let raw = LEVELS[actions[k] as usize] * mpp * equity.max(0.0) / close;
                let target = if whole { raw.trunc() } else { raw };
                let delta = target - held[k];
                if (delta * close).abs() < band * mpp * equity.max(0.0) {
                    prop_assert!(!traded, "bar {t}: ticker {k} traded inside the band");
                    continue;
                }
                let (lo, hi) = (held[k].min(target), held[k].max(target));
                let tol = 1e-9 * (held[k].abs() + target.abs()).max(1.0);
                prop_assert!(shares[k] >= lo - tol && shares[k] <= hi + tol,
                    "bar {t}: ticker {k} from {} toward {target} ended at {}", held[k], shares[k]);
            }
            let marked = b.cash + shares.iter().zip(&closes[t + 1]).map(|(q, c)| q * c).sum::<f64>();
            prop_assert!((marked - b.equity).abs() <= 1e-9 * b.equity.abs().max(1.0),
                "bar {}: cash + positions {marked} vs equity {}", t + 1, b.equity);
            equity = b.equity;
        }
        prop_assert!(n_trades > 10, "only {n_trades} trades");
    }
}
