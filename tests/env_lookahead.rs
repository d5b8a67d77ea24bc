//! No look-ahead at the observation level: changing the market after bar T (opens, closes,
//! slippage and impact inputs, mean volumes and features of every bar > T) changes no
//! observation, action mask, reward or done flag at or before T (with the built-in masks
//! on, and with the observed costs).
//!
//! With `next_open` fills, the decision at T fills at bar T+1's open, so the step that lands
//! on T+1 legitimately differs; the observation at T must not. Trading-day ordinals are
//! left alone: the calendar is known in advance (the observation's order counters are for
//! the day the next order would fill on).

use ploutos::config::{EnvironmentConfig, FillTiming, ObservationLayout};
use ploutos::env::{EpisodeBounds, MarketColumns, MarketData};
use ploutos::{EnvOptions, TradingEnv};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstest::rstest;

/// Copies `m`, scrambling every column at bars > `cut`.
fn perturbed_after(m: &MarketData, cut: usize, seed: u64) -> MarketData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (n, d, f) = (m.n_bars(), m.n_tickers(), m.n_features());
    let mut c = MarketColumns::default();
    for t in 0..n {
        let later = t > cut;
        let scale = |x: f64, rng: &mut ChaCha8Rng| {
            if later { x * rng.random_range(0.5..1.5) } else { x }
        };
        for k in 0..d {
            c.open.push(scale(m.open_row(t)[k], &mut rng));
            c.close.push(scale(m.close_row(t)[k], &mut rng));
            c.atr_frac.push(scale(m.atr_frac_row(t)[k], &mut rng));
            c.ret_std.push(scale(m.ret_std_row(t)[k], &mut rng));
            c.mean_volume.push(scale(m.mean_volume_row(t)[k], &mut rng));
        }
        c.day.push(m.day(t));
        c.features.extend(m.feature_row(t).iter().map(|&x| if later { x + rng.random_range(-1.0f32..1.0) } else { x }));
    }
    MarketData::new(n, d, f, c).expect("same shapes")
}

/// Steps two envs, on the original and on the perturbed market, with the same actions;
/// returns the number of steps whose outputs were equal and the first bar they differed.
fn run_pair(cfg: &EnvironmentConfig, cut: usize) -> (usize, Option<u32>) {
    let market = MarketData::random_walk(600, 3, 5, 21);
    let other = perturbed_after(&market, cut, 99);
    let bounds = EpisodeBounds { first: 30, last: 599, random_start: false };
    let opts = EnvOptions {
        n_envs: 4,
        threads: 0,
        min_shard_envs: 1,
        bounds,
        trade_log: false,
        auto_reset: true,
        action_masks: true,
    };
    let mut a = TradingEnv::new(cfg, market, opts.clone()).expect("env");
    let mut b = TradingEnv::new(cfg, other, opts).expect("env");
    assert_eq!(a.reset(1).obs, b.reset(1).obs);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut same = 0;
    for _ in 0..(cut + 40 - 30) {
        let actions: Vec<u8> = (0..4 * 3).map(|_| rng.random_range(0..3u8)).collect();
        let x = a.step(&actions).expect("step").clone();
        let y = b.step(&actions).expect("step").clone();
        let bar = x.infos[0].bar;
        let equal = x.obs == y.obs
            && x.rewards == y.rewards
            && x.terminated == y.terminated
            && x.truncated == y.truncated
            && x.action_masks == y.action_masks;
        if bar as usize <= cut {
            assert!(equal, "outputs at bar {bar} ≤ {cut} depend on later bars");
            same += 1;
        } else if !equal {
            return (same, Some(bar));
        }
    }
    (same, None)
}

#[rstest]
#[case::next_open(FillTiming::NextOpen, ObservationLayout::Materialized, 45)]
#[case::next_open_late(FillTiming::NextOpen, ObservationLayout::Materialized, 230)]
#[case::close(FillTiming::Close, ObservationLayout::Materialized, 120)]
#[case::index_layout(FillTiming::NextOpen, ObservationLayout::Index, 90)]
#[case::observed_costs(FillTiming::NextOpen, ObservationLayout::Index, 150)]
#[case::observed_costs_close(FillTiming::Close, ObservationLayout::Materialized, 60)]
fn observations_ignore_later_bars(#[case] timing: FillTiming, #[case] layout: ObservationLayout, #[case] cut: usize) {
    let cfg = EnvironmentConfig {
        fill_timing: timing,
        observation_layout: layout,
        initial_cash: 30_000.0,
        // The cost columns and the masks they show are observations too.
        observe_costs: cut == 150 || cut == 60,
        ..EnvironmentConfig::default()
    };
    let (same, first_diff) = run_pair(&cfg, cut);
    assert_eq!(same, cut - 30, "every step up to the cut compared equal");
    // The perturbation is visible right after the cut: the test is not vacuous.
    assert_eq!(first_diff, Some(cut as u32 + 1), "outputs differ from bar {} on", cut + 1);
}
