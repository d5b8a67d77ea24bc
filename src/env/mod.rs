//! The core of the trading environment, which every other part of the simulation builds
//! on: the components of one env (portfolio, positions, orders, PDT record, episode clock,
//! random stream), the step schedule and its phases ([`StepSystems`]), the shared market
//! arrays, the batched buffers, the episode clock and reset, and the extension points
//! ([`EnvAppExt`]). It imports nothing from execution, rules, reward, observation or the
//! batched env (`vec_env`), which all import it.
//!
//! A step, in the order [`EnvPlugin`] chains the phases:
//!
//! `act (actions → orders) → rules → execute → account (mark-to-market) → reward →
//! observe → episode (report, then restart finished episodes)`
//!
//! Each env is one entity; a shard (one bevy `World`) holds a slice of the batch and runs
//! this schedule on one thread (see `vec_env`).
//!
//! # Execution contract
//!
//! These are the answers the docs owe (see also the docs of the execution, rules and
//! reward plugins):
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
//! 8. **PDT equity**: the equity marked at the decision bar's close (`pdt.equity:
//!    decision_bar`, the default, as the seed's rule reads it), or with `pdt.equity:
//!    previous_close` FINRA's: the equity at the close of the last bar before the fill's
//!    trading day (the initial cash on an episode's first day); "the last 5 trading days"
//!    are the fill's day and the 4 trading days before it that have bars.
//! 9. **Impact volume**: mean volume of bars t−19..=t (t = decision bar; fewer bars at the
//!    very start of the data).
//! 10. **Fees** on the fill notional (fill price × shares), not rounded.
//! 11. **Times**: a trade is written at its fill bar's time; an equity row at the bar whose
//!     close marks it.
//! 12. **Spread, slippage, impact** are reported in dollars, against the reference price.
//! 13. **`cash after`** is the cash right after that trade.
//! 14. **Bankruptcy**: training episodes terminate below `bankruptcy_pct` × initial cash
//!     (never with 0, even at a negative equity); a replay (`ploutos backtest`) runs to the
//!     end of its period regardless.
//! 15. **Invented bars** (`data.missing_bars: forward_fill`): an order whose fill bar is an
//!     invented bar of its ticker is refused (`invented_bar`), and a margin call (answer
//!     20) does not close that ticker in that bar either (nothing traded then: it closes
//!     the next position instead, and when only such positions are left the account may
//!     stay under the maintenance margin until the next bar's call); the bar still marks
//!     equity (at the repeated close) and appears in the observation.
//! 16. **Action masks** ([`EnvParams::action_masks`]): written with every observation, for
//!     the coming decision, by each plugin for the orders it would refuse if sent alone,
//!     from the state at the decision bar only (a buy is judged at that bar's close, a day
//!     and the daily cap by the fill bar's calendar day, known in advance). A masked order
//!     that is sent anyway is refused as `masked`, before any rule, and takes no slot of the
//!     daily cap.
//! 17. **Liquidity** (`environment.max_participation` = p, off by default): an order fills
//!     at most p × the volume of its ticker's **fill** bar (rounded down to whole shares
//!     unless `fractional_shares`); what is left is cancelled, not carried to a later bar,
//!     and the trade is written with its `unfilled_shares`. A buy above the cap is quoted
//!     again for `cap × (its first fill price)` dollars (its impact is then that of the
//!     smaller order) and fills at most `cap` shares of that quote. A sell above the cap
//!     sells `cap` shares and leaves the rest open at the same average cost, opening bar,
//!     holding clock and PDT day; each sell closes a trade of the shares it sold. An order
//!     whose fill bar traded no volume is refused (`zero_volume`), one whose cap is under one
//!     whole share too (`participation`). No action mask reads the fill bar's volume (with
//!     `next_open` it is the future). Invented bars are refused as in answer 15, before
//!     the cap.
//! 18. **Account type** (`environment.account`): `margin` (default, the seed's set-up: its
//!     PDT rule binds margin accounts only; no leverage, sell proceeds can be spent in the
//!     same bar, PDT equity as in answer 8) or `cash`: no PDT rule; the proceeds of a sell
//!     (net of its fees) settle on the next trading day (T+1, the next day with bars), and a
//!     buy whose cost (fill notional + fees) exceeds the cash less the proceeds of sells
//!     filled earlier on its fill day is refused (`good_faith`, a good-faith violation)
//!     after the other buy checks. The buy is sized from the whole cash as in answers 2–4;
//!     no action mask anticipates the refusal.
//! 19. **Splits and dividends** (`data.adjust`; the loading rules are in `market::adjust`):
//!     a file's events come from its `Stock Splits` and `Dividends` columns, or from the
//!     steps of `Adj Close / Close`. Prices already split-adjusted in the file (yfinance's)
//!     are told from raw ones by the ex-date's gap and brought back to what printed first.
//!     `splits_and_dividends` (default): prices adjusted for both, forward from the file's
//!     first bar (an adjusted price depends on past events only; a file without events
//!     reads exactly as written), nothing for the account. `splits`: prices adjusted for
//!     splits, dividends paid to cash. `none`: prices as they printed; a split multiplies
//!     shares by its ratio and divides the cost basis by it (whole shares unless
//!     `fractional_shares`, the fraction paid in cash at the previous close ÷ ratio), then
//!     a dividend pays the shares held × the dividend per share. Events apply on the
//!     ex-date bar to the shares held at the close before it (the record), before the
//!     orders that fill at its open (`next_open`) and after those that filled at the
//!     previous close (`close`); the holding clocks do not move; they are not orders and
//!     are not written to `trades.csv`, and `report.json` gives their totals (`dividends`,
//!     `cash_in_lieu`) and the mode (`corporate_actions`). The payment date is not
//!     modelled: the cash is there on the ex-date. With `drop` alignment an event on a
//!     dropped bar moves to the next kept bar. A reverse split that leaves less than one
//!     whole share pays the position out in cash; a sell of it due at the ex-date's open is
//!     then refused (`no_position`).
//! 20. **Short selling and margin** (`environment.short_selling`, off by default; a margin
//!     account only). A sell of a ticker not held long opens (or adds to) a short; a buy of
//!     a ticker held short covers all of it (or what the participation cap lets through).
//!     Order within a bar: closing orders first (sells of longs, then covers, each in ticker
//!     order), then opening orders (short sales, then buys, each in ticker order). A short
//!     sale is sized like a buy: N = min(share × free cash, room), with share as in answer
//!     4 (the bar's opening orders left for `equal_split`), room = `max_position_pct` × the
//!     equity of answer 3 − the short's value, and N / reference shares (whole unless
//!     fractional) sold at the model's sell price; its proceeds less fees go to cash, and
//!     its average cost is what it received per share net of costs. **Free cash** = cash −
//!     (1 + `initial_margin`) × the shorts' value at the reference prices: the proceeds and
//!     Reg T's initial margin back the shorts and neither buys nor short sales spend them;
//!     a short sale whose collateral the free cash cannot cover is refused (`margin`). A
//!     cover is priced by the fill model's share-sized quote (`FillModel::cover`) and is
//!     never refused for cash: cash may go below zero (a margin debit). **Equity** = cash +
//!     long value − short liability at every mark, observation, reward and report. **Borrow
//!     fee**: `borrow_rate / 252` per trading day on the shorts' value at the close of the
//!     first bar of each new trading day (nothing between two bars of one day), in
//!     `report.json`'s `borrow_fees`. **Margin call**: when the equity at the decision bar's
//!     close is under `maintenance_margin` × (long value + short value) there, the broker
//!     closes whole positions at the step's reference prices, shorts then longs, each in
//!     ticker order, until the equity at those prices meets the maintenance margin of what
//!     is left (or nothing is left that can trade: a position whose fill bar is invented,
//!     answer 15, stays, and the call comes again at the next bar): forced orders, ignoring
//!     the rules and the participation cap (not a fill model that cannot fill, nor an
//!     invented bar), written in `trades.csv` with `forced = margin_call` and counted in
//!     `report.json`'s `forced_orders`; the agent's orders of
//!     those tickers in that bar are refused (`margin_call`). Tickers in `no_short` cannot be
//!     sold short (`not_shortable`). The holding period and the PDT rule treat a cover like
//!     the sell of a long: it waits `min_holding_bars` after the latest short sale, and is a
//!     day trade on that sale's day. A dividend on the ex-date is debited from a short, a
//!     split multiplies its (negative) shares. Masks: a cover is never masked for cash, a
//!     short sale is masked like a buy (free cash, room, minimum order).
//! 21. **Target positions** (`environment.target_positions`, off by default: the seed's
//!     {hold, buy, sell} stay the action space). A ticker's action is an index into
//!     `levels`: level l asks for l × `max_position_pct` × E / close shares, with E the
//!     equity and close the price at the decision bar's close (E < 0: flat), toward zero
//!     to whole shares unless `fractional_shares`. The order is that target less the
//!     shares held, decided then (the fill price is unknown); none when it is worth less
//!     than `no_trade_band` × `max_position_pct` × E at that close, so drift sends no tiny
//!     rebalance. Code [`KEEP`] (255) sends no order; any other code beyond the levels is
//!     `invalid_action` and holds. A sell of a long sells min(|order|, held) shares (a
//!     **partial exit**: the rest stays open at the same average cost, opening bar, holding
//!     clock and PDT day, as in answer 17), a buy of a short covers min(order, |held|).
//!     What is left of an order that goes **through zero** opens on the other side in the
//!     opening phase of answer 20 (closings, then short sales, then buys), and only once
//!     the closing part left the position flat (a partly filled exit cancels the rest). An
//!     opening order of q shares has a budget of min(q × reference, free cash, room)
//!     (room as in answers 3 and 20; `buy_pct` and `buy_sizing` do not apply). A buy whose
//!     budget covers q × reference is quoted for exactly q shares (`FillModel::cover`, the
//!     share-sized buy quote) and fills them if the cash pays their cost and fees;
//!     otherwise it spends the budget less its fees as in answer 2. A short sale sells q
//!     shares, or budget / reference when the budget is smaller. A split at the fill's
//!     open multiplies a waiting order by its ratio, as the position (answer 19; whole
//!     shares toward zero). Every refusal and rule
//!     applies to each part as to the seed's orders: the closing and the opening part of
//!     a flip are two trades, and the opening one can be refused (`margin`, `cash`,
//!     `position_cap`, ...) after the closing one filled; the daily cap counts a flip once
//!     when it is decided and its two trades once they fill; a flip of a `no_short` ticker
//!     into a short is refused whole (`not_shortable`, or `masked` with masks on). Masks
//!     have one flag per level (`[n_tickers × n_levels]`): a level is allowed when its order is none, a buy the
//!     buy mask allows or a sell the sell mask allows; when none is, the level with the
//!     smallest order is left allowed (sent, it is refused as `masked`: the agent holds).
//!     A flip of a `no_short` long into a short is masked (sent, `masked`); no mask sees a
//!     flip's opening part otherwise (its margin, its cash). An action file
//!     (`backtest --policy FILE`) gives levels as numbers (`-0.5`, `1`), empty or `hold`
//!     for no order; the buy-and-hold benchmark keeps the seed's actions.
//!
//! Timing: the agent acts on bar t's close; orders fill at bar t+1's open (or bar t's
//! close, optimistic); equity is marked at bar t+1's close, and the reward uses the equity
//! change from close t to close t+1.

mod accounting;
mod actions;
mod buffers;
mod components;
mod episodes;
mod extend;
mod market_data;
mod schedule;

pub use accounting::mark_to_market;
pub use actions::{
    KEEP, TargetLevels, apply_actions, apply_target_actions, decode as decode_actions, decode_targets, hold_action,
    into_short, mask_sells_without_position,
};
pub use buffers::{ActionBuffer, EnvInfo, EnvTotals, StepBuffers, StepRows};
pub use components::*;
pub use episodes::{begin_reset, end_episodes, env_rng, finish_restart, report_starts, start_episode, start_episodes};
pub(crate) use extend::add_mask_readers;
pub use extend::{ActionMasking, EnvAppExt, ObservationColumns, Targets};
pub(crate) use market_data::prefetch_ahead;
pub use market_data::{MarketColumns, MarketData, MarketDataError};
pub use schedule::{EnvReset, EnvStep, MAX_SHARD_ENVS, MIN_SHARD_ENVS, ResetSystems, StepSystems};

use crate::config::{Account, EnvironmentConfig, FillTiming, PdtConfig};
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{Schedule, ScheduleLabel, SingleThreadedExecutor};
use schedule::{ObserveStage, Pass};
use std::ops::Range;
use std::sync::Mutex;

/// Settings of the core, read by every plugin: the batch, the account's limits (which
/// execution records and rules enforce), fill timing and episodes. Each is stored here only.
#[derive(Resource, Debug, Clone)]
pub struct EnvParams {
    /// Envs of the whole batch (all shards).
    pub n_envs: usize,
    pub n_tickers: usize,
    /// Starting cash of every episode.
    pub initial_cash: f64,
    /// The Pattern-Day-Trader rule's settings (the account's record is [`PdtState`]).
    pub pdt: PdtConfig,
    /// Cap on executed orders per trading day (the account's count is
    /// [`Portfolio::trades_today`]).
    pub max_trades_per_day: Option<u32>,
    /// Which price a decision at bar t fills at.
    pub fill_timing: FillTiming,
    pub episode_length: usize,
    pub bankruptcy_pct: f64,
    /// Reset finished episodes in place (training); off, a finished env keeps its final
    /// state for inspection (replays, evaluation).
    pub auto_reset: bool,
    /// The built-in plugins export action masks for the refusals they can foresee (see
    /// [`EnvAppExt::add_action_mask_systems`]); a learner that masks its logits asks for them.
    pub action_masks: bool,
    /// The account may sell short (`short_selling.enabled`): a sell when flat opens a short
    /// and a buy when short covers it, so the rules judge exits by the position's side.
    pub short_selling: bool,
    /// Target-position actions (`target_positions.enabled`): each ticker's action is a
    /// target among these levels, decoded by [`apply_target_actions`] into sized orders
    /// ([`OrderShares`]); `None`, the seed's codes 0 hold, 1 buy, 2 sell.
    pub targets: Option<TargetLevels>,
}

impl EnvParams {
    /// Actions per ticker: 3 (hold, buy, sell), or the number of target levels.
    #[inline]
    pub fn n_actions(&self) -> usize {
        self.targets.as_ref().map_or(3, TargetLevels::len)
    }

    /// Fill bar of a decision taken at bar `t`: t + 1 (`next_open`) or t (`close`).
    #[inline]
    pub fn fill_bar(&self, t: usize) -> usize {
        match self.fill_timing {
            FillTiming::NextOpen => t + 1,
            FillTiming::Close => t,
        }
    }

    /// Trading day an order decided at bar `t` counts on: its fill bar's (the last bar's for
    /// a decision at the market's last bar, whose `next_open` fill bar does not exist: an
    /// observation and masks are still written there).
    #[inline]
    pub fn fill_day(&self, market: &MarketData, t: usize) -> u32 {
        market.day(self.fill_bar(t).min(market.n_bars() - 1))
    }

    /// Reference prices of every ticker for a decision at bar `t`: bar t+1's opens or bar
    /// t's closes.
    #[inline]
    pub fn reference_row<'m>(&self, market: &'m MarketData, t: usize) -> &'m [f64] {
        match self.fill_timing {
            FillTiming::NextOpen => market.open_row(t + 1),
            FillTiming::Close => market.close_row(t),
        }
    }
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

/// Spawns one shard's envs with the core's components, creates the [`EnvStep`] and
/// [`EnvReset`] schedules and chains their phases; the core systems (actions,
/// mark-to-market, episodes) live here.
pub struct EnvPlugin {
    pub config: EnvironmentConfig,
    /// Envs of the whole batch.
    pub n_envs: usize,
    /// Indices of the envs this world holds.
    pub envs: Range<usize>,
    pub n_tickers: usize,
    pub trade_log: bool,
    pub auto_reset: bool,
    /// See [`EnvParams::action_masks`].
    pub action_masks: bool,
}

impl Plugin for EnvPlugin {
    fn build(&self, app: &mut App) {
        let cfg = &self.config;
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
                StepSystems::Restart,
            )
                .chain(),
        )
        .configure_sets(EnvStep, StepSystems::Restart.run_if(Targets::restarting))
        .configure_sets(
            EnvStep,
            (ResetSystems::Start, ResetSystems::Hooks, ResetSystems::Observe).chain().in_set(StepSystems::Restart),
        )
        .configure_sets(EnvStep, ObserveStage::of(Pass::Step).chain().in_set(StepSystems::Observe))
        .configure_sets(EnvStep, ObserveStage::of(Pass::Start).chain().in_set(ResetSystems::Observe))
        .configure_sets(EnvReset, (ResetSystems::Start, ResetSystems::Hooks, ResetSystems::Observe).chain())
        .configure_sets(EnvReset, ObserveStage::of(Pass::Start).chain().in_set(ResetSystems::Observe))
        .insert_resource(EnvParams {
            n_envs: self.n_envs,
            n_tickers: self.n_tickers,
            initial_cash: cfg.initial_cash,
            // A cash account has no PDT rule (FINRA's rule binds margin accounts only).
            pdt: PdtConfig { enabled: cfg.pdt.enabled && cfg.account == Account::Margin, ..cfg.pdt.clone() },
            max_trades_per_day: cfg.max_trades_per_day,
            fill_timing: cfg.fill_timing,
            episode_length: cfg.episode_length,
            bankruptcy_pct: cfg.bankruptcy_pct,
            auto_reset: self.auto_reset,
            // Observed `allowed` columns are the masks: they need them computed.
            action_masks: self.action_masks || cfg.observe_costs,
            short_selling: cfg.short_selling.enabled,
            targets: TargetLevels::new(cfg),
        })
        .insert_resource(ActionBuffer {
            first_env: self.envs.start,
            n_tickers: self.n_tickers,
            codes: vec![0; self.envs.len() * self.n_tickers],
        })
        .insert_resource(ResetSeed::default())
        .init_resource::<RefusalReasons>()
        .init_resource::<Targets>()
        .init_resource::<ObservationColumns>()
        .init_resource::<ActionMasking>()
        .add_systems(
            EnvStep,
            (
                mark_to_market.in_set(StepSystems::Account),
                end_episodes.in_set(StepSystems::Episode),
                start_episodes.in_set(ResetSystems::Start),
                finish_restart.after(ResetSystems::Observe).in_set(StepSystems::Restart),
            ),
        )
        .add_systems(
            EnvReset,
            (
                begin_reset.before(ResetSystems::Start),
                start_episodes.in_set(ResetSystems::Start),
                report_starts.after(ResetSystems::Hooks).before(ResetSystems::Observe),
            ),
        );

        // Target levels decode into sized orders, the seed's codes into sides.
        if cfg.target_positions.enabled {
            app.add_systems(EnvStep, apply_target_actions.in_set(StepSystems::Act));
        } else {
            app.add_systems(EnvStep, apply_actions.in_set(StepSystems::Act));
        }
        if (self.action_masks || cfg.observe_costs) && !cfg.short_selling.enabled {
            app.add_action_mask_systems(mask_sells_without_position);
        }

        let n_tickers = self.n_tickers;
        let (initial_cash, window_days) = (cfg.initial_cash, cfg.pdt.window_days);
        let world = app.world_mut();
        world.spawn_batch(self.envs.clone().map(move |i| {
            (
                EnvId::new(i),
                Portfolio::new(initial_cash),
                Positions(vec![Position::default(); n_tickers].into_boxed_slice()),
                Orders::default(),
                ActionMask::default(),
                PdtState::new(window_days),
                EpisodeClock { start_bar: 0, bar: 0, steps: 0 },
                EnvRng(env_rng(0, i)),
                StepOutcome::default(),
                Ledger::default(),
            )
        }));
        let targets = cfg.target_positions.enabled;
        if targets || self.trade_log {
            let ids: Vec<Entity> = world.query_filtered::<Entity, With<EnvId>>().iter(world).collect();
            for e in ids {
                let mut env = world.entity_mut(e);
                if targets {
                    env.insert(OrderShares(vec![0.0; n_tickers].into_boxed_slice()));
                }
                if self.trade_log {
                    env.insert(TradeLog::default());
                }
            }
        }
    }
}
