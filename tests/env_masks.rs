//! The built-in action masks (`EnvOptions::action_masks`) against the rules they foresee.
//!
//! Two batched envs step in lockstep on the same market with the same actions, one with
//! masks (A) and one without (B). Each step sends one order per env (a random ticker, a
//! random code), so that no rule sees several orders compete for its last slot. If A masks
//! an order, B must refuse it too: the two envs then stay in the same state. A masked
//! order that B fills makes them differ, which is allowed only for a buy under
//! `next_open` (the mask sizes a buy at the decision bar's close; it fills at the next
//! open), and only rarely.
//!
//! Then an agent that sends only what the mask allows, one order at a time, is never
//! refused by a rule, for a missing position or by the mask itself.

use ploutos::config::{BuySizing, EnvironmentConfig, FillTiming};
use ploutos::env::{EpisodeBounds, MarketData};
use ploutos::{EnvOptions, TradingEnv};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstest::rstest;

const N_ENVS: usize = 48;
const N_TICKERS: usize = 4;
const STEPS: usize = 1_500;

/// Every rule binding often: a holding period, PDT under a threshold above the account, a
/// daily cap of 3, big buys against a tight position cap, whole shares; with `shorts`,
/// short selling with a maintenance margin at the initial one (the free cash runs out).
fn config(fill_timing: FillTiming, buy_sizing: BuySizing, fractional: bool, shorts: bool) -> EnvironmentConfig {
    let mut cfg = EnvironmentConfig {
        initial_cash: 5_000.0,
        fill_timing,
        buy_sizing,
        fractional_shares: fractional,
        buy_pct: 0.6,
        max_position_pct: 0.35,
        min_order_notional: 50.0,
        min_holding_bars: 3,
        max_trades_per_day: Some(3),
        episode_length: 120,
        bankruptcy_pct: 0.0,
        ..EnvironmentConfig::default()
    };
    cfg.pdt.enabled = true;
    cfg.pdt.equity_threshold = 1e9;
    cfg.pdt.max_day_trades = 1;
    cfg.short_selling.enabled = shorts;
    cfg.short_selling.maintenance_margin = 0.5;
    cfg.validate().expect("valid config");
    cfg
}

fn env(cfg: &EnvironmentConfig, action_masks: bool) -> TradingEnv {
    let market = MarketData::random_walk(2_000, N_TICKERS, 2, 11);
    let bounds = EpisodeBounds { first: 0, last: 1_998, random_start: true };
    let opts = EnvOptions { threads: 1, action_masks, ..EnvOptions::training(N_ENVS, bounds) };
    TradingEnv::new(cfg, market, opts).expect("env")
}

/// Cash and shares of every env.
fn state(env: &mut TradingEnv) -> Vec<(f64, Vec<f64>)> {
    (0..env.n_envs())
        .map(|i| {
            let (p, pos, _) = env.env_state(i).expect("env");
            (p.cash, pos.iter().map(|p| p.shares).collect())
        })
        .collect()
}

/// Whether action `code` of ticker `k` of env `i` is allowed by `masks`.
fn allowed(masks: &[bool], i: usize, k: usize, code: u8) -> bool {
    masks[(i * N_TICKERS + k) * 3 + code as usize]
}

#[rstest]
#[case::close_whole(FillTiming::Close, BuySizing::CashFraction, false, false)]
#[case::close_fractional_split(FillTiming::Close, BuySizing::EqualSplit, true, false)]
#[case::next_open_whole(FillTiming::NextOpen, BuySizing::CashFraction, false, false)]
#[case::next_open_split(FillTiming::NextOpen, BuySizing::EqualSplit, false, false)]
#[case::close_whole_shorts(FillTiming::Close, BuySizing::CashFraction, false, true)]
#[case::close_fractional_shorts(FillTiming::Close, BuySizing::CashFraction, true, true)]
fn a_masked_order_is_one_the_env_would_refuse(
    #[case] timing: FillTiming,
    #[case] sizing: BuySizing,
    #[case] fractional: bool,
    #[case] shorts: bool,
) {
    let cfg = config(timing, sizing, fractional, shorts);
    let (mut a, mut b) = (env(&cfg, true), env(&cfg, false));
    a.reset(3);
    b.reset(3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Envs whose states parted (a masked buy that B filled): not compared any more.
    let mut parted = [false; N_ENVS];
    let (mut masked, mut masked_sells, mut masked_buys_filled) = (0usize, 0usize, 0usize);
    for _ in 0..STEPS {
        let masks = a.buffers().action_masks.clone();
        let mut actions = vec![0u8; N_ENVS * N_TICKERS];
        let mut sent = vec![None; N_ENVS];
        for i in 0..N_ENVS {
            let (k, code) = (rng.random_range(0..N_TICKERS), rng.random_range(1..3u8));
            actions[i * N_TICKERS + k] = code;
            sent[i] = Some((k, code));
        }
        let before = state(&mut b);
        a.step(&actions).expect("step A");
        b.step(&actions).expect("step B");
        let (sa, sb) = (state(&mut a), state(&mut b));
        for i in 0..N_ENVS {
            if parted[i] {
                continue;
            }
            let (k, code) = sent[i].expect("one order per env");
            let is_masked = !allowed(&masks, i, k, code);
            masked += usize::from(is_masked);
            masked_sells += usize::from(is_masked && code == 2);
            if sa[i] == sb[i] {
                continue;
            }
            // States part only where A masked an order that B filled: a buy, under next_open.
            assert!(is_masked, "env {i}: an allowed order changed A and B differently");
            assert_eq!(code, 1, "env {i}: a masked sell of ticker {k} filled in B ({:?})", before[i]);
            assert_eq!(timing, FillTiming::NextOpen, "env {i}: a masked buy filled at the decision bar's close");
            masked_buys_filled += 1;
            parted[i] = true;
        }
    }
    assert!(masked_sells > 500 && masked > 1_000, "the rules bind: {masked} masked orders, {masked_sells} sells");
    assert!(
        masked_buys_filled * 50 < masked,
        "{masked_buys_filled} of {masked} masked orders were buys the next open let through"
    );
}

#[rstest]
#[case::close(FillTiming::Close, false)]
#[case::next_open(FillTiming::NextOpen, false)]
#[case::close_shorts(FillTiming::Close, true)]
#[case::next_open_shorts(FillTiming::NextOpen, true)]
fn an_agent_that_respects_the_mask_is_not_refused_by_a_rule(#[case] timing: FillTiming, #[case] shorts: bool) {
    let cfg = config(timing, BuySizing::CashFraction, false, shorts);
    let mut a = env(&cfg, true);
    a.reset(9);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut executed = 0u64;
    for _ in 0..STEPS {
        let masks = a.buffers().action_masks.clone();
        let mut actions = vec![0u8; N_ENVS * N_TICKERS];
        for i in 0..N_ENVS {
            let k = rng.random_range(0..N_TICKERS);
            let code = rng.random_range(1..3u8);
            if allowed(&masks, i, k, code) {
                actions[i * N_TICKERS + k] = code;
            }
        }
        let out = a.step(&actions).expect("step");
        executed += out.infos.iter().map(|i| u64::from(i.executed)).sum::<u64>();
    }
    let totals = a.totals();
    let names = a.refusal_names();
    let count = |name: &str| totals.refused.0[names.iter().position(|n| n == name).expect("reason")];
    let reasons =
        ["masked", "no_position", "holding_period", "pdt", "trades_per_day", "position_cap", "cash", "margin"];
    for reason in reasons {
        let n = count(reason);
        // Under next_open the position cap and the margin are judged at the next open: a
        // rare miss.
        let next_open = timing == FillTiming::NextOpen;
        let allowed_misses =
            if next_open && (reason == "position_cap" || reason == "margin") { executed / 50 } else { 0 };
        assert!(u64::from(n) <= allowed_misses, "{n} orders refused as {reason} ({executed} executed)");
    }
    assert!(executed > 5_000, "the agent trades: {executed} orders executed");
}

#[test]
fn masks_are_all_true_without_the_option_and_never_forbid_hold() {
    let cfg = config(FillTiming::NextOpen, BuySizing::CashFraction, false, false);
    let mut b = env(&cfg, false);
    assert!(b.reset(1).action_masks.iter().all(|&m| m));
    let mut a = env(&cfg, true);
    let first = a.reset(1).action_masks.clone();
    // A new episode holds nothing: every sell is masked, every buy allowed.
    for cell in first.chunks_exact(3) {
        assert_eq!(cell, [true, true, false]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..300 {
        let actions: Vec<u8> = (0..N_ENVS * N_TICKERS).map(|_| rng.random_range(0..3)).collect();
        let out = a.step(&actions).expect("step");
        assert!(out.action_masks.chunks_exact(3).all(|c| c[0]), "hold is always allowed");
    }
}

#[test]
fn masks_are_written_at_the_markets_last_bar() {
    // The last observation of a replay stands on the market's last bar, whose next_open
    // fill bar does not exist; the masks there still read the calendar of the last bar.
    let cfg = config(FillTiming::NextOpen, BuySizing::CashFraction, false, false);
    let market = MarketData::random_walk(60, N_TICKERS, 2, 11);
    let bounds = EpisodeBounds { first: 0, last: 59, random_start: false };
    let opts = EnvOptions { action_masks: true, ..EnvOptions::replay(bounds) };
    let mut env = TradingEnv::new(&cfg, market, opts).expect("env");
    env.reset(0);
    let mut steps = 0;
    loop {
        let out = env.step(&[1; N_TICKERS]).expect("step");
        steps += 1;
        if out.truncated[0] || out.terminated[0] {
            assert_eq!(out.infos[0].bar, 59);
            break;
        }
    }
    assert_eq!(steps, 59);
}
