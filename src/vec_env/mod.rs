//! The batched env: `n_envs` independent trading accounts over one shared market, built
//! from the plugin group [`PloutosPlugins`] and any plugins of the user's.
//!
//! [`TradingEnv`] is the interface the learner, the backtester and `ploutos bench` drive:
//! `reset(seed)` and `step(actions)` write into preallocated contiguous buffers
//! ([`StepBuffers`]); nothing is allocated per step.
//!
//! # Shards
//!
//! The batch is split into shards of consecutive env indices: as many threads as give
//! each at least [`EnvOptions::min_shard_envs`] envs, and each thread's envs cut into
//! shards of at most [`MAX_SHARD_ENVS`]. Each shard is a bevy `World` with the same
//! plugins (each plugin's `build` runs once per shard), holding its envs' entities and
//! sharing the market arrays; a step runs the whole [`EnvStep`] schedule of a thread's
//! shards one after another on that thread (always the same thread, so a shard's
//! components stay in that core's cache), and systems iterate their shard's envs serially.
//! A step thus costs one fork-join, not one per system: on small machines waking a thread
//! pool costs about as much as a system's work on a few thousand envs. Every env draws from
//! its own random stream, so results do not depend on the number of shards.

use crate::config::EnvironmentConfig;
use crate::corporate_actions::CorporateActionsPlugin;
use crate::env::{
    ActionBuffer, EnvId, EnvParams, EnvPlugin, EnvReset, EnvStep, EnvTotals, EpisodeBounds, EpisodeClock, Ledger,
    MAX_SHARD_ENVS, MAX_TICKERS, MIN_SHARD_ENVS, MarketData, MarketDataPlugin, ObservationColumns, Portfolio, Position,
    Positions, Refusal, RefusalReasons, ResetSeed, StepBuffers, StepRows, TradeLog, TradeRecord,
};
use crate::execution::ExecutionPlugin;
use crate::observation::ObservationPlugin;
use crate::reward::RewardPlugin;
use crate::rules::RulesPlugin;
use crate::short_selling::ShortSellingPlugin;
use bevy_app::{App, PluginGroup, PluginGroupBuilder};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;
use std::ops::Range;
use std::sync::Mutex;

/// Bad arguments to [`TradingEnv::new`], or plugins that do not fit together.
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
    #[error("the plugins register {} refusal reasons, at most {} fit: {}", .0.len(), Refusal::MAX, .0.join(", "))]
    TooManyRefusals(Vec<String>),
    #[error(
        "environment.max_participation caps fills by each bar's volume, but this market has no volume column (MarketData::with_volume)"
    )]
    NoVolume,
    #[error(
        "environment.short_selling.no_short names `{0}`, which is not a ticker of this market (MarketData::with_tickers)"
    )]
    UnknownTicker(String),
}

/// Everything one shard needs, in build order: the core ([`EnvPlugin`], whose settings it
/// takes), the observation, the market rules, execution, the reward, the corporate
/// actions (which add nothing on a market without any) and short selling (nothing unless
/// `short_selling.enabled`). Replace one with
/// `PluginGroupBuilder::set`, or add plugins after it.
pub struct PloutosPlugins(pub EnvPlugin);

impl PluginGroup for PloutosPlugins {
    fn build(self) -> PluginGroupBuilder {
        let cfg = self.0.config.clone();
        PluginGroupBuilder::start::<Self>()
            .add(self.0)
            .add(ObservationPlugin::new(&cfg))
            .add(RulesPlugin::new(&cfg))
            .add(ExecutionPlugin::new(&cfg))
            .add(RewardPlugin::new(&cfg))
            .add(CorporateActionsPlugin)
            .add(ShortSellingPlugin::new(&cfg))
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
    /// Reset finished episodes in place (see [`crate::env::EnvParams::auto_reset`]).
    pub auto_reset: bool,
    /// Built-in action masks in [`StepBuffers::action_masks`] (see
    /// [`crate::env::EnvParams::action_masks`]); off, they stay all true unless a plugin of the user's
    /// masks actions.
    pub action_masks: bool,
}

impl EnvOptions {
    /// Training defaults: `n_envs` envs on all cores, random starts, auto-reset, no log.
    pub fn training(n_envs: usize, bounds: EpisodeBounds) -> Self {
        Self {
            n_envs,
            threads: 0,
            min_shard_envs: MIN_SHARD_ENVS,
            bounds,
            trade_log: false,
            auto_reset: true,
            action_masks: false,
        }
    }

    /// Replay defaults: one env from `bounds.first`, on the calling thread, with a trade
    /// log and no auto-reset.
    pub fn replay(bounds: EpisodeBounds) -> Self {
        Self {
            n_envs: 1,
            threads: 1,
            min_shard_envs: MIN_SHARD_ENVS,
            bounds,
            trade_log: true,
            auto_reset: false,
            action_masks: false,
        }
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
    columns: ObservationColumns,
    auto_reset: bool,
    n_envs: usize,
    n_tickers: usize,
    /// Actions per ticker (the masks' last dimension).
    n_actions: usize,
    hold_code: u8,
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
        if cfg.max_participation.is_some() && !market.has_volume() {
            return Err(EnvError::NoVolume);
        }
        let s = &cfg.short_selling;
        if let Some(t) = s.no_short.iter().find(|t| s.enabled && !market.tickers().contains(t)) {
            return Err(EnvError::UnknownTicker(t.clone()));
        }
        let threads =
            if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
        let n_threads = (opts.n_envs / opts.min_shard_envs.max(1)).clamp(1, threads);
        let n_shards = n_threads * opts.n_envs.div_ceil(n_threads).div_ceil(MAX_SHARD_ENVS).max(1);
        let n_tickers = market.n_tickers();
        let mut worlds = Vec::with_capacity(n_shards);
        for s in 0..n_shards {
            let envs = opts.n_envs * s / n_shards..opts.n_envs * (s + 1) / n_shards;
            let mut app = App::empty();
            app.add_plugins(MarketDataPlugin::new(market.clone(), b)).add_plugins(PloutosPlugins(EnvPlugin {
                config: cfg.clone(),
                n_envs: opts.n_envs,
                envs: envs.clone(),
                n_tickers,
                trade_log: opts.trade_log,
                auto_reset: opts.auto_reset,
                action_masks: opts.action_masks,
            }));
            extend(&mut app);
            app.finish();
            app.cleanup();
            worlds.push((std::mem::take(app.world_mut()), envs));
        }
        // Every shard has the same plugins: the first one's registries stand for all.
        let first = &worlds[0].0;
        let refusal_names = first.resource::<RefusalReasons>().names().to_vec();
        if refusal_names.len() > Refusal::MAX {
            return Err(EnvError::TooManyRefusals(refusal_names));
        }
        let columns = first.resource::<ObservationColumns>().clone();
        let obs_dim = columns.width();
        let n_actions = first.resource::<EnvParams>().n_actions();
        let hold_code = crate::env::hold_action(cfg);
        let mut buffers = StepBuffers::new(opts.n_envs, obs_dim, n_tickers, n_actions);
        let mut shards = Vec::with_capacity(n_shards);
        for (mut world, envs) in worlds {
            // SAFETY: `buffers` moves into the returned env with the shards and is never
            // resized (moving a Vec does not move its heap buffer); shard ranges are
            // disjoint, and the env reads `buffers` only between runs of the shards.
            let rows = unsafe { StepRows::new(&mut buffers, obs_dim, n_tickers * n_actions, envs.clone()) };
            world.insert_resource(rows);
            shards.push(Shard { world: Mutex::new(world), envs });
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
        Ok(Self {
            shards,
            pool,
            buffers,
            market,
            refusal_names,
            columns,
            auto_reset: opts.auto_reset,
            n_envs: opts.n_envs,
            n_tickers,
            n_actions,
            hold_code,
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

    /// Actions per ticker: 3 (hold, buy, sell) or the target levels
    /// (`environment.target_positions`).
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// The code that sends no order and is no refusal: 0 (hold) with the seed's actions,
    /// [`crate::env::KEEP`] with target positions.
    pub fn hold_code(&self) -> u8 {
        self.hold_code
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The observation row's blocks of columns (the portfolio state, plugins' columns, the
    /// market part), left to right.
    pub fn observation_columns(&self) -> &ObservationColumns {
        &self.columns
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

    /// A copy of env `index`'s component `C`: a plugin's per-env state
    /// ([`crate::env::EnvAppExt::add_env_state`]) or any core component; `None` when the env
    /// or the component is not there.
    pub fn env_component<C: Component + Clone>(&mut self, index: usize) -> Option<C> {
        let world = self.world_of(index)?;
        world.query::<(&EnvId, &C)>().iter(world).find(|(id, _)| id.index() == index).map(|(_, c)| c.clone())
    }

    /// Lifetime count of orders refused for the reason `name` (built in, or registered by a
    /// plugin), over all envs; `None` for a name no one registered.
    pub fn refused(&mut self, name: &str) -> Option<u64> {
        let code = self.refusal_names.iter().position(|n| n == name)?;
        Some(u64::from(self.totals().refused.0[code]))
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
