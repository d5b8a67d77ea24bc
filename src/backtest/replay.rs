//! Replays: one env over a period, driven by a policy, recording every bar and trade.
//!
//! A replay runs the same systems as training (costs, fees, rules) on one env that starts
//! at the period's first bar and runs to its last bar: no random start, no episode length,
//! and no bankruptcy stop (contract answer 14). Equity rows: one at the first bar (the
//! initial cash, before any decision), then one per bar marked at its close.

use super::policy::{Policy, random_actions, random_stream};
use crate::config::{BuySizing, EnvironmentConfig};
use crate::env::{EnvTotals, MarketData, TradeRecord, hold_action};
use crate::vec_env::{EnvError, EnvOptions, TradingEnv};
use std::ops::Range;

/// One bar of a replay's equity curve.
#[derive(Debug, Clone, PartialEq)]
pub struct EquityRow {
    /// Bar whose close marks the row.
    pub bar: usize,
    pub equity: f64,
    pub cash: f64,
    /// Value of each position at the bar's close, by ticker.
    pub values: Vec<f64>,
}

/// Everything a replay produced.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    pub name: String,
    pub initial_cash: f64,
    pub equity: Vec<EquityRow>,
    pub trades: Vec<TradeRecord>,
    pub totals: EnvTotals,
    pub refusal_names: Vec<String>,
}

/// Decides the actions of bar `t` from the observation row.
pub trait Actor {
    fn act(&mut self, t: usize, obs: &[f32], actions: &mut [u8]);
}

impl<F: FnMut(usize, &[f32], &mut [u8])> Actor for F {
    fn act(&mut self, t: usize, obs: &[f32], actions: &mut [u8]) {
        self(t, obs, actions)
    }
}

/// The env config a policy replays with: as given, except that buy-and-hold invests all
/// cash in equal parts at its first bar with the caps lifted (it is a benchmark, not an
/// agent), and no replay stops at bankruptcy.
pub fn replay_config(cfg: &EnvironmentConfig, policy: Option<&Policy>, bars: usize) -> EnvironmentConfig {
    let mut c = cfg.clone();
    c.episode_length = bars.max(1);
    c.bankruptcy_pct = 0.0;
    if matches!(policy, Some(Policy::BuyAndHold)) {
        // The benchmark buys with the seed's actions whatever the agent's action space.
        c.target_positions.enabled = false;
        c.buy_sizing = BuySizing::EqualSplit;
        c.max_position_pct = 1.0;
        c.max_trades_per_day = None;
    }
    c
}

/// Replays `policy` over bars `range` of `market`.
///
/// # Errors
/// [`EnvError`] when the range holds fewer than 2 bars.
pub fn replay_policy(
    cfg: &EnvironmentConfig,
    market: MarketData,
    range: Range<usize>,
    policy: &Policy,
) -> Result<ReplayResult, EnvError> {
    let cfg = replay_config(cfg, Some(policy), range.len());
    let first = range.start;
    let mut rng = match policy {
        Policy::Random { seed } => Some(random_stream(*seed)),
        _ => None,
    };
    let n_actions = cfg.n_actions();
    let hold = hold_action(&cfg);
    let actor = |t: usize, _obs: &[f32], out: &mut [u8]| match policy {
        Policy::BuyAndHold => out.fill(if t == first { 1 } else { 0 }),
        Policy::Flat => out.fill(hold),
        Policy::Random { .. } => random_actions(rng.as_mut().expect("random policy has a stream"), n_actions, out),
        Policy::Actions(table) => out.copy_from_slice(table.row(t)),
    };
    replay(&cfg, market, range, policy.name(), actor)
}

/// Replays any actor over bars `range` (`cfg` as from [`replay_config`]).
///
/// # Errors
/// [`EnvError`] when the range holds fewer than 2 bars.
pub fn replay(
    cfg: &EnvironmentConfig,
    market: MarketData,
    range: Range<usize>,
    name: String,
    mut actor: impl Actor,
) -> Result<ReplayResult, EnvError> {
    let masked_actor = |t: usize, obs: &[f32], _masks: &[bool], out: &mut [u8]| actor.act(t, obs, out);
    replay_masked(cfg, market, range, name, false, masked_actor)
}

/// [`replay`] of an actor that also reads the env's action masks (`[n_tickers × n_actions]`, true
/// = allowed): with `action_masks` the env computes the built-in ones
/// ([`EnvOptions::action_masks`]); without, they are all true.
///
/// # Errors
/// [`EnvError`] when the range holds fewer than 2 bars.
pub fn replay_masked(
    cfg: &EnvironmentConfig,
    market: MarketData,
    range: Range<usize>,
    name: String,
    action_masks: bool,
    actor: impl FnMut(usize, &[f32], &[bool], &mut [u8]),
) -> Result<ReplayResult, EnvError> {
    replay_extended(cfg, market, range, name, action_masks, |_| {}, actor)
}

/// [`replay_masked`] of an env that `extend` adds plugins to (as
/// [`TradingEnv::with_plugins`]): `ploutos trade` replays its session with the broker's
/// account this way.
///
/// # Errors
/// [`EnvError`] when the range holds fewer than 2 bars.
pub fn replay_extended(
    cfg: &EnvironmentConfig,
    market: MarketData,
    range: Range<usize>,
    name: String,
    action_masks: bool,
    extend: impl Fn(&mut bevy_app::App),
    mut actor: impl FnMut(usize, &[f32], &[bool], &mut [u8]),
) -> Result<ReplayResult, EnvError> {
    let n_bars = market.n_bars();
    let bounds = crate::dataset::Dataset::bounds(range.clone(), false)
        .filter(|_| range.end <= n_bars)
        .ok_or(EnvError::Bounds { first: range.start as u32, last: range.end.saturating_sub(1) as u32, n_bars })?;
    let opts = EnvOptions { action_masks, ..EnvOptions::replay(bounds) };
    let mut env = TradingEnv::with_plugins(cfg, market, opts, extend)?;
    let d = env.n_tickers();
    let mut actions = vec![0u8; d];
    let first = env.reset(0);
    let (mut obs, mut masks) = (first.obs.clone(), first.action_masks.clone());
    let mut equity = vec![row(&mut env, range.start)];
    let mut t = range.start;
    loop {
        actor(t, &obs, &masks, &mut actions);
        let out = env.step(&actions)?;
        let done = out.terminated[0] || out.truncated[0];
        obs.copy_from_slice(&out.obs);
        masks.copy_from_slice(&out.action_masks);
        t += 1;
        equity.push(row(&mut env, t));
        if done || t + 1 >= range.end {
            break;
        }
    }
    let trades = env.take_trades(0);
    Ok(ReplayResult {
        name,
        initial_cash: cfg.initial_cash,
        equity,
        trades,
        totals: env.totals(),
        refusal_names: env.refusal_names(),
    })
}

fn row(env: &mut TradingEnv, bar: usize) -> EquityRow {
    let closes = env.market().close_row(bar).to_vec();
    let (portfolio, positions, _) = env.env_state(0).expect("a replay env exists");
    EquityRow {
        bar,
        equity: portfolio.equity,
        cash: portfolio.cash,
        values: positions.iter().zip(&closes).map(|(p, c)| p.shares * c).collect(),
    }
}
