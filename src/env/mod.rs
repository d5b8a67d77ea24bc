//! The trading environment: a headless bevy `App` in which every parallel env is an entity
//! (portfolio, positions, execution-cost model, PDT state, episode clock, random stream)
//! advanced by systems in a fixed order ([`StepSystems`]):
//!
//! `apply actions → market rules → execution → mark-to-market → reward → observation →
//! episode end/reset`
//!
//! [`TradingEnv`] is the batched interface the learner, the backtester and `ploutos bench`
//! drive: `reset(seed)` and `step(actions)` write into preallocated contiguous buffers
//! ([`StepBuffers`]); nothing is allocated per step.
//!
//! # Shards
//!
//! The batch is split into shards of consecutive env indices: as many threads as give
//! each at least [`EnvOptions::min_shard_envs`] envs, and each thread's envs cut into
//! shards of at most [`MAX_SHARD_ENVS`]. Each shard is a bevy `World` with the same
//! plugins, holding its envs' entities and sharing the market arrays; a step runs the whole
//! [`EnvStep`] schedule of a thread's shards one after another on that thread (always the
//! same thread, so a shard's components stay in that core's cache), and systems iterate
//! their shard's envs serially. A step thus costs one fork-join, not one per system: on small machines waking
//! a thread pool costs about as much as a system's work on a few thousand envs. Every env
//! draws from its own random stream, so results do not depend on the number of shards.
//!
//! # Execution contract
//!
//! These are the answers the docs owe (see also [`crate::execution`], [`crate::rules`],
//! [`crate::reward`]):
//!
//! 1. **Order within a bar**: sells first, in ticker order (the config's `data.tickers`
//!    order), then buys in ticker order.
//! 2. **Cash for `buy_pct`**: the cash left after the previous fills of the same bar.
//! 3. **Position cap**: `max_position_pct` × the equity right after the bar's sells,
//!    marked at the reference prices; the position is valued at its reference price.
//! 4. **Buy sizing**: notional N = min(buy_pct × cash, room) (with `buy_sizing:
//!    equal_split`, cash / buys left in the bar instead of buy_pct × cash); impact from the
//!    shares N buys at the pre-impact price; shares = N / fill price, so a buy spends
//!    exactly N.
//! 5. **Whole shares** (`fractional_shares: false`): floor(N / fill price); it then spends
//!    shares × fill price.
//! 6. **Add-on buys** keep the position's opening bar (trade duration) but restart its
//!    holding clock and its PDT day (the latest buy counts).
//! 7. **Trading day** = the bar's calendar date in New York (daily bars: each bar), as a
//!    day ordinal from the market data. An order counts on the day of its **fill** bar.
//! 8. **PDT equity**: the equity marked at the decision bar's close; "the last 5 trading
//!    days" are the fill's day and the 4 trading days before it that have bars.
//! 9. **Impact volume**: mean volume of bars t−19..=t (t = decision bar; fewer bars at the
//!    very start of the data).
//! 10. **Fees** on the fill notional (fill price × shares), not rounded.
//! 11. **Times**: a trade is written at its fill bar's time; an equity row at the bar whose
//!     close marks it.
//! 12. **Spread, slippage, impact** are reported in dollars, against the reference price.
//! 13. **`cash after`** is the cash right after that trade.
//! 14. **Bankruptcy**: training episodes terminate below `bankruptcy_pct` × initial cash; a
//!     replay (`ploutos backtest`) runs to the end of its period regardless.
//!
//! Timing: the agent acts on bar t's close; orders fill at bar t+1's open (or bar t's
//! close, optimistic); equity is marked at bar t+1's close, and the reward uses the equity
//! change from close t to close t+1.

mod accounting;
mod actions;
mod buffers;
mod components;
mod market_data;
pub mod observation;
mod schedule;
mod systems;

pub use accounting::mark_to_market;
pub use actions::{apply_actions, decode as decode_actions};
pub use buffers::{ActionBuffer, EnvInfo, EnvTotals, StepBuffers, StepRows};
pub use components::*;
pub use market_data::{MarketColumns, MarketData, MarketDataError};
pub use schedule::{EnvReset, EnvStep, MAX_SHARD_ENVS, MIN_SHARD_ENVS, StepSystems};
pub use systems::{end_episodes, env_rng, reset_envs, start_episode, write_observations};

use crate::config::{EnvironmentConfig, FillTiming, ObservationLayout, PdtConfig};
use crate::execution::{ExecutionConfig, ExecutionPlugin};
use crate::reward::{RewardPlugin, RewardSettings};
use crate::rules::{RulesConfig, RulesPlugin};
use bevy_app::{App, Plugin, PluginGroup, PluginGroupBuilder};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{Schedule, ScheduleLabel, SingleThreadedExecutor};
use std::ops::Range;
use std::sync::Mutex;

/// Settings of the core env systems (observation, episodes).
#[derive(Resource, Debug, Clone)]
pub struct EnvParams {
    /// Envs of the whole batch (all shards).
    pub n_envs: usize,
    pub n_tickers: usize,
    pub obs_dim: usize,
    pub layout: ObservationLayout,
    pub pdt: PdtConfig,
    pub max_trades_per_day: Option<u32>,
    /// 1 when orders fill at the next bar, 0 at the same bar's close.
    pub fill_offset: usize,
    pub episode_length: usize,
    pub bankruptcy_pct: f64,
    /// Reset finished episodes in place (training); off, a finished env keeps its final
    /// state for inspection (replays, evaluation).
    pub auto_reset: bool,
}

/// Bars episodes may use: decisions at `first..last`, the last mark at `last`.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeBounds {
    pub first: u32,
    pub last: u32,
    /// Episodes start at a random bar (training) or always at `first` (backtests).
    pub random_start: bool,
}

/// The seed of the next [`EnvReset`].
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct ResetSeed(pub u64);

/// Bad arguments to [`TradingEnv::new`].
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("episode bounds {first}..={last} do not fit in {n_bars} bars (need first < last < n_bars)")]
    Bounds { first: u32, last: u32, n_bars: usize },
    #[error("n_envs must be at least 1")]
    NoEnvs,
    #[error("actions: expected {expected} codes (n_envs × n_tickers), got {got}")]
    Actions { expected: usize, got: usize },
    #[error("{0} tickers: an env trades at most {MAX_TICKERS}")]
    TooManyTickers(usize),
    #[error("an episode has ended and auto-reset is off: call reset before stepping again")]
    Finished,
    #[error("could not start the env's threads: {0}")]
    Threads(String),
}

/// Shares the market arrays with every env.
pub struct MarketDataPlugin {
    market: Mutex<Option<MarketData>>,
    bounds: EpisodeBounds,
}

impl MarketDataPlugin {
    pub fn new(market: MarketData, bounds: EpisodeBounds) -> Self {
        Self { market: Mutex::new(Some(market)), bounds }
    }
}

impl Plugin for MarketDataPlugin {
    fn build(&self, app: &mut App) {
        let market = self.market.lock().expect("market mutex").take().expect("MarketDataPlugin is built once");
        app.insert_resource(market).insert_resource(self.bounds);
    }
}

/// Spawns one shard's envs and wires the step order; the core systems (actions,
/// mark-to-market, observation, episodes) live here.
pub struct EnvPlugin {
    pub config: EnvironmentConfig,
    /// Envs of the whole batch.
    pub n_envs: usize,
    /// Indices of the envs this world holds.
    pub envs: Range<usize>,
    pub n_tickers: usize,
    pub n_features: usize,
    pub trade_log: bool,
    pub auto_reset: bool,
}

impl Plugin for EnvPlugin {
    fn build(&self, app: &mut App) {
        let cfg = &self.config;
        let obs_dim = observation::obs_dim(cfg.observation_layout, self.n_tickers, self.n_features);
        for label in [EnvStep.intern(), EnvReset.intern()] {
            let mut schedule = Schedule::new(label);
            // The phases are chained and a shard is stepped by one thread: a multi-threaded
            // executor would only add overhead.
            schedule.set_executor(SingleThreadedExecutor::new());
            app.add_schedule(schedule);
        }
        app.configure_sets(
            EnvStep,
            (
                StepSystems::Act,
                StepSystems::Rules,
                StepSystems::Execute,
                StepSystems::Account,
                StepSystems::Reward,
                StepSystems::Observe,
                StepSystems::Episode,
            )
                .chain(),
        )
        .insert_resource(EnvParams {
            n_envs: self.n_envs,
            n_tickers: self.n_tickers,
            obs_dim,
            layout: cfg.observation_layout,
            pdt: cfg.pdt.clone(),
            max_trades_per_day: cfg.max_trades_per_day,
            fill_offset: match cfg.fill_timing {
                FillTiming::NextOpen => 1,
                FillTiming::Close => 0,
            },
            episode_length: cfg.episode_length,
            bankruptcy_pct: cfg.bankruptcy_pct,
            auto_reset: self.auto_reset,
        })
        .insert_resource(ActionBuffer {
            first_env: self.envs.start,
            n_tickers: self.n_tickers,
            codes: vec![0; self.envs.len() * self.n_tickers],
        })
        .insert_resource(ResetSeed::default())
        .init_resource::<RefusalReasons>()
        .add_systems(
            EnvStep,
            (
                apply_actions.in_set(StepSystems::Act),
                mark_to_market.in_set(StepSystems::Account),
                write_observations.in_set(StepSystems::Observe),
                end_episodes.in_set(StepSystems::Episode),
            ),
        )
        .add_systems(EnvReset, reset_envs);

        let n_tickers = self.n_tickers;
        let world = app.world_mut();
        world.spawn_batch(self.envs.clone().map(move |i| {
            (
                EnvId::new(i),
                Portfolio::new(cfg),
                Positions(vec![Position::default(); n_tickers].into_boxed_slice()),
                Orders::default(),
                CostModel::from_config(cfg),
                PdtState::new(cfg.pdt.window_days),
                EpisodeClock { start_bar: 0, bar: 0, steps: 0 },
                EnvRng(env_rng(0, i)),
                StepOutcome::default(),
                Ledger::default(),
            )
        }));
        if self.trade_log {
            let ids: Vec<Entity> = world.query_filtered::<Entity, With<EnvId>>().iter(world).collect();
            for e in ids {
                world.entity_mut(e).insert(TradeLog::default());
            }
        }
    }
}

/// Everything one shard needs: core ([`EnvPlugin`], whose settings it takes), execution,
/// rules, reward.
pub struct PloutosPlugins(pub EnvPlugin);

impl PluginGroup for PloutosPlugins {
    fn build(self) -> PluginGroupBuilder {
        let cfg = self.0.config.clone();
        PluginGroupBuilder::start::<Self>()
            .add(self.0)
            .add(RulesPlugin { config: RulesConfig::new(&cfg) })
            .add(ExecutionPlugin { config: ExecutionConfig::new(&cfg) })
            .add(RewardPlugin { settings: RewardSettings { reward: cfg.reward.clone(), scaling: cfg.reward_scaling } })
    }
}

/// How to build a [`TradingEnv`].
#[derive(Debug, Clone)]
pub struct EnvOptions {
    pub n_envs: usize,
    /// Most threads stepping the envs; 0 = all cores.
    pub threads: usize,
    /// Fewest envs per thread ([`MIN_SHARD_ENVS`] by default): smaller batches use fewer
    /// threads. 1 splits any batch over every thread (tests of thread independence).
    pub min_shard_envs: usize,
    pub bounds: EpisodeBounds,
    /// Keep a [`TradeLog`] per env (replays and backtests).
    pub trade_log: bool,
    /// Reset finished episodes in place (see [`EnvParams::auto_reset`]).
    pub auto_reset: bool,
}

impl EnvOptions {
    /// Training defaults: `n_envs` envs on all cores, random starts, auto-reset, no log.
    pub fn training(n_envs: usize, bounds: EpisodeBounds) -> Self {
        Self { n_envs, threads: 0, min_shard_envs: MIN_SHARD_ENVS, bounds, trade_log: false, auto_reset: true }
    }

    /// Replay defaults: one env from `bounds.first`, on the calling thread, with a trade
    /// log and no auto-reset.
    pub fn replay(bounds: EpisodeBounds) -> Self {
        Self { n_envs: 1, threads: 1, min_shard_envs: MIN_SHARD_ENVS, bounds, trade_log: true, auto_reset: false }
    }
}

/// The envs of one shard: a bevy world and the env indices it holds.
struct Shard {
    world: Mutex<World>,
    envs: Range<usize>,
}

/// The batched env: `n_envs` independent trading accounts over one shared market.
pub struct TradingEnv {
    shards: Vec<Shard>,
    /// Runs shards i, i + T, i + 2T… on thread i of T; `None` with one thread (the shards
    /// then run on the caller's thread).
    pool: Option<rayon::ThreadPool>,
    /// Written by the shards through their [`StepRows`]; its vectors are never resized.
    buffers: StepBuffers,
    market: MarketData,
    refusal_names: Vec<String>,
    auto_reset: bool,
    n_envs: usize,
    n_tickers: usize,
    obs_dim: usize,
}

impl TradingEnv {
    /// Builds the env with the built-in plugins.
    ///
    /// # Errors
    /// [`EnvError`] for empty batches or bounds outside the market.
    pub fn new(cfg: &EnvironmentConfig, market: MarketData, opts: EnvOptions) -> Result<Self, EnvError> {
        Self::with_plugins(cfg, market, opts, |_| {})
    }

    /// Builds the env, then lets `extend` add plugins (custom market rules, fees...) to
    /// every shard's app.
    ///
    /// # Errors
    /// [`EnvError`] for empty batches or bounds outside the market.
    pub fn with_plugins(
        cfg: &EnvironmentConfig,
        market: MarketData,
        opts: EnvOptions,
        extend: impl Fn(&mut App),
    ) -> Result<Self, EnvError> {
        let b = opts.bounds;
        if !(b.first < b.last && (b.last as usize) < market.n_bars()) {
            return Err(EnvError::Bounds { first: b.first, last: b.last, n_bars: market.n_bars() });
        }
        if opts.n_envs == 0 {
            return Err(EnvError::NoEnvs);
        }
        if market.n_tickers() > MAX_TICKERS {
            return Err(EnvError::TooManyTickers(market.n_tickers()));
        }
        let threads =
            if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
        let n_threads = (opts.n_envs / opts.min_shard_envs.max(1)).clamp(1, threads);
        let n_shards = n_threads * opts.n_envs.div_ceil(n_threads).div_ceil(MAX_SHARD_ENVS).max(1);
        let (n_tickers, n_features) = (market.n_tickers(), market.n_features());
        let obs_dim = observation::obs_dim(cfg.observation_layout, n_tickers, n_features);
        let mut buffers = StepBuffers::new(opts.n_envs, obs_dim);
        let mut shards = Vec::with_capacity(n_shards);
        for s in 0..n_shards {
            let envs = opts.n_envs * s / n_shards..opts.n_envs * (s + 1) / n_shards;
            let mut app = App::empty();
            app.add_plugins(MarketDataPlugin::new(market.clone(), b)).add_plugins(PloutosPlugins(EnvPlugin {
                config: cfg.clone(),
                n_envs: opts.n_envs,
                envs: envs.clone(),
                n_tickers,
                n_features,
                trade_log: opts.trade_log,
                auto_reset: opts.auto_reset,
            }));
            extend(&mut app);
            app.finish();
            app.cleanup();
            // SAFETY: `buffers` moves into the returned env with the shards and is never
            // resized (moving a Vec does not move its heap buffer); shard ranges are
            // disjoint, and the env reads `buffers` only between runs of the shards.
            let rows = unsafe { StepRows::new(&mut buffers, obs_dim, envs.clone()) };
            app.world_mut().insert_resource(rows);
            shards.push(Shard { world: Mutex::new(std::mem::take(app.world_mut())), envs });
        }
        let pool = if n_threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n_threads)
                .thread_name(|i| format!("ploutos-env-{i}"))
                .build()
                .map_err(|e| EnvError::Threads(e.to_string()))?;
            Some(pool)
        } else {
            None
        };
        let refusal_names =
            shards[0].world.get_mut().expect("shard world").resource::<RefusalReasons>().names().to_vec();
        Ok(Self {
            shards,
            pool,
            buffers,
            market,
            refusal_names,
            auto_reset: opts.auto_reset,
            n_envs: opts.n_envs,
            n_tickers,
            obs_dim,
        })
    }

    /// Runs `label` on every shard, each always on the same thread of the pool.
    fn run(&mut self, label: impl ScheduleLabel + Clone) {
        match &self.pool {
            None => {
                for shard in &mut self.shards {
                    shard.world.get_mut().expect("shard world").run_schedule(label.clone());
                }
            }
            Some(pool) => {
                let shards = &self.shards;
                // `broadcast` runs the closure once on each thread, thread i getting index i:
                // a shard always runs on the same thread. The lock is never contended.
                pool.broadcast(|ctx| {
                    for shard in shards.iter().skip(ctx.index()).step_by(ctx.num_threads()) {
                        shard.world.lock().expect("shard world").run_schedule(label.clone());
                    }
                });
            }
        }
    }

    /// Starts a new episode in every env; env i draws from stream (seed, i).
    pub fn reset(&mut self, seed: u64) -> &StepBuffers {
        for world in self.worlds_mut() {
            world.resource_mut::<ResetSeed>().0 = seed;
        }
        self.run(EnvReset);
        &self.buffers
    }

    /// Advances every env by one bar.
    ///
    /// # Errors
    /// [`EnvError::Actions`] when `actions` is not `n_envs × n_tickers` long.
    pub fn step(&mut self, actions: &[u8]) -> Result<&StepBuffers, EnvError> {
        let expected = self.n_envs * self.n_tickers;
        if actions.len() != expected {
            return Err(EnvError::Actions { expected, got: actions.len() });
        }
        if !self.auto_reset && self.buffers.terminated.iter().chain(&self.buffers.truncated).any(|&d| d) {
            return Err(EnvError::Finished);
        }
        let n = self.n_tickers;
        for shard in &mut self.shards {
            let world = shard.world.get_mut().expect("shard world");
            world
                .resource_mut::<ActionBuffer>()
                .codes
                .copy_from_slice(&actions[shard.envs.start * n..shard.envs.end * n]);
        }
        self.run(EnvStep);
        Ok(&self.buffers)
    }

    /// Outputs of the last step or reset.
    pub fn buffers(&self) -> &StepBuffers {
        &self.buffers
    }

    pub fn n_envs(&self) -> usize {
        self.n_envs
    }

    pub fn n_tickers(&self) -> usize {
        self.n_tickers
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Whether finished episodes reset in place.
    pub fn auto_reset(&self) -> bool {
        self.auto_reset
    }

    /// Threads stepping the envs.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, rayon::ThreadPool::current_num_threads)
    }

    /// The shared market.
    pub fn market(&self) -> &MarketData {
        &self.market
    }

    /// The bevy worlds of the shards, in env order, for tests and tools that inspect or
    /// edit env state.
    pub fn worlds_mut(&mut self) -> impl Iterator<Item = &mut World> {
        self.shards.iter_mut().map(|s| s.world.get_mut().expect("shard world"))
    }

    /// Refusal reason names, indexed by code.
    pub fn refusal_names(&self) -> Vec<String> {
        self.refusal_names.clone()
    }

    /// Lifetime totals over all envs.
    pub fn totals(&mut self) -> EnvTotals {
        let mut t = EnvTotals::default();
        for world in self.worlds_mut() {
            for l in world.query::<&Ledger>().iter(world) {
                t.merge(l);
            }
        }
        t
    }

    /// The world holding env `index`.
    fn world_of(&mut self, index: usize) -> Option<&mut World> {
        let shard = self.shards.iter_mut().find(|s| s.envs.contains(&index))?;
        Some(shard.world.get_mut().expect("shard world"))
    }

    /// State of env `index`: its portfolio and positions.
    pub fn env_state(&mut self, index: usize) -> Option<(Portfolio, Vec<Position>, EpisodeClock)> {
        let world = self.world_of(index)?;
        world
            .query::<(&EnvId, &Portfolio, &Positions, &EpisodeClock)>()
            .iter(world)
            .find(|(id, ..)| id.index() == index)
            .map(|(_, p, pos, c)| (p.clone(), pos.0.to_vec(), *c))
    }

    /// Takes the trade log of env `index` (empty without `trade_log`).
    pub fn take_trades(&mut self, index: usize) -> Vec<TradeRecord> {
        let Some(world) = self.world_of(index) else { return Vec::new() };
        world
            .query::<(&EnvId, &mut TradeLog)>()
            .iter_mut(world)
            .find(|(id, _)| id.index() == index)
            .map(|(_, mut log)| std::mem::take(&mut log.0))
            .unwrap_or_default()
    }
}
