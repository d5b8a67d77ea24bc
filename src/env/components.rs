//! Components of one trading environment.
//!
//! Layout: **one entity per env**, every component in bevy's default table storage. An
//! env's positions are always processed together and in ticker order (sells before buys,
//! cash flowing from one fill to the next), so they live contiguously in one [`Positions`]
//! component instead of one entity per ticker: a step touches one cache-friendly row per
//! env, and the batch splits into shards of whole envs — the natural unit of independent
//! work — one per thread (see [`crate::env`]). Nothing is spawned or despawned while stepping (episodes reset in place), so
//! archetypes never move and no command buffers are needed. Share counts are signed `f64`
//! so short selling can come later as a rule, not a rewrite.

pub use crate::config::MAX_TICKERS;
use crate::config::{PdtConfig, PdtEquity};
use bevy_ecs::prelude::*;
use rand_chacha::ChaCha8Rng;

/// The env's index in the batch: its row in every batched buffer. Immutable, so two
/// entities can never write the same row.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
#[component(immutable)]
pub struct EnvId(u32);

impl EnvId {
    pub(crate) fn new(index: usize) -> Self {
        Self(u32::try_from(index).expect("fewer than 2^32 envs"))
    }

    /// Row of this env in the batched buffers.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An order side the agent asked for, per ticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    #[default]
    Hold,
    Buy,
    Sell,
}

/// Why an order was not executed: an index into [`RefusalReasons`]. Built-in reasons
/// first; plugins register theirs with [`crate::env::EnvAppExt::register_refusal`] and get
/// the next free index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub u8);

impl Refusal {
    /// Action code outside {0, 1, 2}; treated as hold.
    pub const INVALID_ACTION: Refusal = Refusal(0);
    /// Sell with no position.
    pub const NO_POSITION: Refusal = Refusal(1);
    /// Sell of a position younger than `min_holding_bars`.
    pub const HOLDING_PERIOD: Refusal = Refusal(2);
    /// Sell that would exceed the Pattern-Day-Trader limit.
    pub const PDT: Refusal = Refusal(3);
    /// Order over the per-day cap on executed orders.
    pub const TRADES_PER_DAY: Refusal = Refusal(4);
    /// Buy with no cash left.
    pub const CASH: Refusal = Refusal(5);
    /// Buy of a ticker whose position already reaches `max_position_pct` of equity.
    pub const POSITION_CAP: Refusal = Refusal(6);
    /// Buy below the minimum order (`min_order_notional`, or zero whole shares).
    pub const TOO_SMALL: Refusal = Refusal(7);
    /// Order on a bar where the ticker traded no volume over the last 20 bars.
    pub const NO_LIQUIDITY: Refusal = Refusal(8);
    /// Order for an action that the env's action mask did not allow (see [`ActionMask`]).
    pub const MASKED: Refusal = Refusal(9);
    /// Order that would fill on an invented (forward-filled) bar of its ticker, when
    /// nothing traded.
    pub const INVENTED_BAR: Refusal = Refusal(10);
    /// Order whose fill bar traded no volume of its ticker, with the participation cap on
    /// (`environment.max_participation`).
    pub const ZERO_VOLUME: Refusal = Refusal(11);
    /// Order of which the participation cap leaves no share to fill (less than one whole
    /// share with `fractional_shares: false`).
    pub const PARTICIPATION: Refusal = Refusal(12);
    /// Buy in a cash account that would spend sell proceeds not settled yet (T+1): a
    /// good-faith violation.
    pub const GOOD_FAITH: Refusal = Refusal(13);
    /// Short sale that the account's equity beyond its long positions cannot cover at the
    /// initial margin (`short_selling.initial_margin`).
    pub const MARGIN: Refusal = Refusal(14);
    /// Short sale of a ticker on the `short_selling.no_short` list.
    pub const NOT_SHORTABLE: Refusal = Refusal(15);
    /// Order of a ticker whose position a forced buy-in (margin call) closed in the same bar.
    pub const MARGIN_CALL: Refusal = Refusal(16);
    /// Capacity of [`RefusalCounts`]: built-in and registered reasons together. An env
    /// whose plugins register more is refused when it is built
    /// (`EnvError::TooManyRefusals`), never while it runs.
    pub const MAX: usize = 32;
    /// Names of the built-in reasons, in index order.
    pub const BUILT_IN: [&'static str; 17] = [
        "invalid_action",
        "no_position",
        "holding_period",
        "pdt",
        "trades_per_day",
        "cash",
        "position_cap",
        "too_small",
        "no_liquidity",
        "masked",
        "invented_bar",
        "zero_volume",
        "participation",
        "good_faith",
        "margin",
        "not_shortable",
        "margin_call",
    ];
}

/// Names of all refusal reasons, built-in and registered by plugins.
#[derive(Resource, Debug, Clone)]
pub struct RefusalReasons {
    names: Vec<String>,
}

impl Default for RefusalReasons {
    fn default() -> Self {
        Self { names: Refusal::BUILT_IN.iter().map(|s| s.to_string()).collect() }
    }
}

impl RefusalReasons {
    /// Registers a reason (idempotent by name) and returns its code. Registering more than
    /// [`Refusal::MAX`] reasons is not an error here (plugins build without a way to fail);
    /// the env refuses to be built with them.
    pub fn register(&mut self, name: &str) -> Refusal {
        let i = self.names.iter().position(|n| n == name).unwrap_or_else(|| {
            self.names.push(name.to_string());
            self.names.len() - 1
        });
        Refusal(u8::try_from(i).unwrap_or(u8::MAX))
    }

    /// All names, indexed by code.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Count of refused orders per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusalCounts(pub [u32; Refusal::MAX]);

impl RefusalCounts {
    #[inline]
    pub fn add(&mut self, r: Refusal) {
        self.0[r.0 as usize] += 1;
    }

    /// Total over all reasons.
    #[inline]
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// Adds another set of counts (every env, every step: inlined and vectorized).
    #[inline]
    pub fn merge(&mut self, other: &RefusalCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

/// This step's orders as bit masks over tickers (bit k = ticker k, so at most
/// [`MAX_TICKERS`] tickers). Written by `apply_actions`, narrowed by rules, consumed by
/// execution. Masks keep the rules branch-light: random actions make per-ticker branches
/// unpredictable, and a rule only visits the bits that are set.
#[derive(Component, Debug, Clone, Default)]
pub struct Orders {
    /// Live buy orders. After [`crate::env::StepSystems::Execute`], a bit still set is a
    /// buy that filled (in part too), as seen by a system in `StepSystems::Account` before
    /// [`crate::env::mark_to_market`]: every refusal, by a rule or by execution, clears its
    /// bit. Not the exact list of fills: an order that crosses zero (a cover, then a long)
    /// whose second part is refused is cleared although its first part filled, and the
    /// broker's own orders (margin calls) never had a bit; the trade log is exact.
    pub buy: u64,
    /// Live sell orders; after execution, as `buy`.
    pub sell: u64,
    /// Refusals of this step, by reason.
    pub refused: RefusalCounts,
    /// Refusals of this step, all reasons: `refused.total()`, kept as orders are refused so
    /// that the per-step report does not sum every reason.
    pub n_refused: u32,
    /// Tickers held long when the orders were decoded (the decision's positions): what
    /// tells an exit from an opening order for the rules, which then need not read the
    /// positions again. Execution, after splits and margin calls, reads the positions.
    pub long: u64,
    /// Tickers held short when the orders were decoded.
    pub short: u64,
}

impl Orders {
    /// Refuses the live orders in `mask` for `reason`.
    #[inline]
    pub fn refuse(&mut self, mask: u64, reason: Refusal) {
        // No `if hit != 0`: with random actions that branch is unpredictable.
        let hit = (self.buy | self.sell) & mask;
        self.buy &= !hit;
        self.sell &= !hit;
        self.refused.0[reason.0 as usize] += hit.count_ones();
        self.n_refused += hit.count_ones();
    }

    /// Live order side of ticker `k`.
    #[inline]
    pub fn side(&self, k: usize) -> Side {
        if self.buy >> k & 1 == 1 {
            Side::Buy
        } else if self.sell >> k & 1 == 1 {
            Side::Sell
        } else {
            Side::Hold
        }
    }
}

/// The sizes of this step's orders in signed shares (bit k of [`Orders`] live: ticker k's
/// order buys `0[k] > 0` or sells `-0[k]`), with target-position actions only
/// ([`crate::env::EnvParams::targets`]); the seed's actions size orders in execution.
#[derive(Component, Debug, Clone, Default)]
pub struct OrderShares(pub Box<[f64]>);

/// Actions the env does not allow for its coming decision, as bit masks over tickers
/// (bit k = ticker k). Plugins narrow it in their action-mask systems
/// ([`crate::env::EnvAppExt::add_action_mask_systems`]) after the observation; the env
/// writes it into [`crate::env::StepBuffers::action_masks`] for the learner, and at the next
/// step refuses any order the mask forbade as [`Refusal::MASKED`], so a masked order is
/// never sent. Cleared after that step's actions and at every episode start.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionMask {
    /// Tickers that may not be bought.
    pub no_buy: u64,
    /// Tickers that may not be sold.
    pub no_sell: u64,
    /// Tickers whose order may not end short: with target positions, a level whose sell
    /// goes through zero into a short (a flip) is forbidden, although the sell itself (of
    /// the long) is allowed. Short sales from flat are forbidden by `no_sell`.
    pub no_short: u64,
}

impl ActionMask {
    /// Forbids buying the tickers in `mask`.
    #[inline]
    pub fn forbid_buy(&mut self, mask: u64) {
        self.no_buy |= mask;
    }

    /// Forbids selling the tickers in `mask`.
    #[inline]
    pub fn forbid_sell(&mut self, mask: u64) {
        self.no_sell |= mask;
    }

    /// Forbids the orders that would leave the tickers in `mask` short (see
    /// [`ActionMask::no_short`]).
    #[inline]
    pub fn forbid_short(&mut self, mask: u64) {
        self.no_short |= mask;
    }

    /// Forbids the exits of the tickers in `mask`: selling a long, buying back a short.
    #[inline]
    pub fn forbid_exits(&mut self, mask: u64, positions: &[Position]) {
        let (long, short) = long_short(positions);
        self.forbid_sell(mask & long);
        self.forbid_buy(mask & short);
    }

    /// Whether action `code` (0 hold, 1 buy, 2 sell) of ticker `k` is allowed; hold always is.
    #[inline]
    pub fn allows(&self, k: usize, code: u8) -> bool {
        match code {
            1 => self.no_buy >> k & 1 == 0,
            2 => self.no_sell >> k & 1 == 0,
            _ => true,
        }
    }
}

/// Iterates the indices of the set bits of a mask, lowest first.
#[inline]
pub fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            None
        } else {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            Some(k)
        }
    })
}

/// One ticker's holding.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Position {
    /// Signed share count: negative for a short (`short_selling.enabled`).
    pub shares: f64,
    /// Average fill price, costs included: paid per share for a long, received (net of
    /// costs) per share for a short; 0 when flat.
    pub avg_cost: f64,
    /// Fill bar of the order that opened the position (trade duration).
    pub opened_bar: u32,
    /// Fill bar of the latest order that opened or added to the position: a buy, or a short
    /// sale (minimum holding period).
    pub last_buy_bar: u32,
    /// Trading day of that order (Pattern-Day-Trader rule).
    pub last_buy_day: u32,
}

/// The tickers held long and those held short, as bit masks.
#[inline]
pub fn long_short(positions: &[Position]) -> (u64, u64) {
    let (mut long, mut short) = (0u64, 0u64);
    for (k, p) in positions.iter().enumerate() {
        long |= u64::from(p.shares > 0.0) << k;
        short |= u64::from(p.shares < 0.0) << k;
    }
    (long, short)
}

/// Long plus short value of `positions` at `prices`, summed term by term in ticker order
/// (the margin check and the mark that stands in for it must agree to the bit).
#[inline]
pub fn gross_value(positions: &[Position], prices: &[f64]) -> f64 {
    let mut gross = 0.0;
    for (p, &price) in positions.iter().zip(prices) {
        gross += p.shares.abs() * price;
    }
    gross
}

/// The exits among an env's live orders, as a bit mask: sells of longs and buys of
/// shorts held when the orders were decoded (what the holding period and the PDT rule
/// judge).
#[inline]
pub fn exits(orders: &Orders) -> u64 {
    (orders.sell & orders.long) | (orders.buy & orders.short)
}

/// All positions of an env, indexed by ticker.
#[derive(Component, Debug, Clone)]
pub struct Positions(pub Box<[Position]>);

/// Money, and the statistics of the current episode.
#[derive(Component, Debug, Clone)]
pub struct Portfolio {
    pub cash: f64,
    /// Equity marked at the current bar's close.
    pub equity: f64,
    /// Equity at the previous step's mark.
    pub prev_equity: f64,
    /// Highest equity of the episode.
    pub peak_equity: f64,
    pub initial_cash: f64,
    /// Executed orders on trading day `trade_day`.
    pub trades_today: u32,
    pub trade_day: u32,
    /// Orders executed this step.
    pub executed_this_step: u32,
    /// Notional of the orders executed this step (fill price × shares, buys and sells).
    pub traded_this_step: f64,
    /// Sum of rewards this episode.
    pub episode_reward: f64,
    /// Equity at the close of the last bar of the trading day before the current bar's
    /// (the initial cash on an episode's first day): the PDT rule's equity with
    /// `pdt.equity: previous_close`.
    pub prior_close_equity: f64,
    /// Cash account: proceeds of today's sells (trading day `trade_day`), part of `cash`
    /// but not settled until the next trading day (T+1). Always 0 in a margin account.
    pub unsettled: f64,
    /// With short selling: the long plus the short value at the current mark, while cash
    /// and positions are still as marked (`None` once a split or a dividend changed them,
    /// or without short selling). The margin check at the decision bar reads it rather than
    /// the closes again: the same sums in the same order, so the same answer.
    pub marked_gross: Option<f64>,
}

impl Portfolio {
    /// A fresh account holding `initial_cash`.
    pub fn new(initial_cash: f64) -> Self {
        Self {
            cash: initial_cash,
            equity: initial_cash,
            prev_equity: initial_cash,
            peak_equity: initial_cash,
            initial_cash,
            trades_today: 0,
            trade_day: u32::MAX,
            executed_this_step: 0,
            traded_this_step: 0.0,
            episode_reward: 0.0,
            prior_close_equity: initial_cash,
            unsettled: 0.0,
            marked_gross: None,
        }
    }

    /// The equity the PDT rule compares with its threshold, for an order decided at a bar of
    /// trading day `decision_day` that fills on `fill_day` (see [`PdtEquity`]).
    #[inline]
    pub fn pdt_equity(&self, cfg: &PdtConfig, decision_day: u32, fill_day: u32) -> f64 {
        match cfg.equity {
            PdtEquity::DecisionBar => self.equity,
            // Filling on the decision's day: the close before that day; on a later day, the
            // decision bar's close is the last close before it.
            PdtEquity::PreviousClose if fill_day == decision_day => self.prior_close_equity,
            PdtEquity::PreviousClose => self.equity,
        }
    }

    /// Back to the initial state.
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.initial_cash);
    }

    /// Orders already executed on trading day `day`.
    #[inline]
    pub fn executed_on(&self, day: u32) -> u32 {
        if self.trade_day == day { self.trades_today } else { 0 }
    }

    /// Drawdown from the episode's peak, as a fraction.
    #[inline]
    pub fn drawdown(&self) -> f64 {
        if self.peak_equity > 0.0 { (self.peak_equity - self.equity) / self.peak_equity } else { 0.0 }
    }
}

/// Costs paid, in dollars.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CostTotals {
    /// SEC fee + FINRA TAF + commissions.
    pub fees: f64,
    /// Half-spread paid on every fill.
    pub spread: f64,
    /// ATR-based slippage.
    pub slippage: f64,
    /// Square-root market impact.
    pub impact: f64,
}

impl CostTotals {
    /// Sum of all costs.
    pub fn total(&self) -> f64 {
        self.fees + self.spread + self.slippage + self.impact
    }

    pub fn merge(&mut self, o: &CostTotals) {
        self.fees += o.fees;
        self.spread += o.spread;
        self.slippage += o.slippage;
        self.impact += o.impact;
    }
}

/// Lifetime totals of an env, across episodes (never reset): costs, refusals, trades.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub costs: CostTotals,
    pub refused: RefusalCounts,
    pub buys: u64,
    pub sells: u64,
    /// Closed round trips, and those with a positive realized P&L after costs.
    pub closed_trades: u64,
    pub winning_trades: u64,
    /// Sum of closed trades' durations in bars.
    pub trade_bars: u64,
    /// Notional traded (fill price × shares), buys and sells.
    pub turnover: f64,
    pub episodes: u64,
    /// Dividends credited to cash, and cash paid in lieu of fractional shares after a split
    /// (`data.adjust: splits | none`).
    pub dividends: f64,
    pub cash_in_lieu: f64,
    /// Borrow fees paid on shorts (`short_selling.borrow_rate`).
    pub borrow_fees: f64,
    /// Orders placed by forced buy-ins (margin calls).
    pub forced_orders: u64,
}

impl Ledger {
    /// Adds another ledger (totals over envs).
    pub fn merge(&mut self, l: &Ledger) {
        self.costs.merge(&l.costs);
        self.refused.merge(&l.refused);
        self.buys += l.buys;
        self.sells += l.sells;
        self.closed_trades += l.closed_trades;
        self.winning_trades += l.winning_trades;
        self.trade_bars += l.trade_bars;
        self.turnover += l.turnover;
        self.episodes += l.episodes;
        self.dividends += l.dividends;
        self.cash_in_lieu += l.cash_in_lieu;
        self.borrow_fees += l.borrow_fees;
        self.forced_orders += l.forced_orders;
    }
}

/// Day trades of the last trading days, one slot per distinct day (ring buffer): the
/// account's record that execution writes and the Pattern-Day-Trader rule and the
/// observation read.
#[derive(Component, Debug, Clone)]
pub struct PdtState {
    /// (trading day, day trades that day).
    days: Box<[(u32, u32)]>,
    next: usize,
}

impl PdtState {
    pub fn new(window_days: u32) -> Self {
        Self { days: vec![(u32::MAX, 0); window_days.max(1) as usize].into_boxed_slice(), next: 0 }
    }

    pub fn reset(&mut self) {
        self.days.fill((u32::MAX, 0));
        self.next = 0;
    }

    /// Day trades on trading days `day - window + 1 ..= day`.
    #[inline]
    pub fn in_window(&self, day: u32, window: u32) -> u32 {
        // Without branches (it runs for every env at every step, in the observation):
        // `day − d` wraps to a huge number for days after `day`.
        self.days.iter().map(|&(d, n)| n * u32::from((d != u32::MAX) & (day.wrapping_sub(d) < window))).sum()
    }

    /// Day trades the account may still make on trading day `day` under `cfg` (all of
    /// them when the rule is off or equity is at or above the threshold).
    #[inline]
    pub fn day_trades_left(&self, equity: f64, day: u32, cfg: &PdtConfig) -> u32 {
        if !cfg.enabled || equity >= cfg.equity_threshold {
            return cfg.max_day_trades;
        }
        cfg.max_day_trades.saturating_sub(self.in_window(day, cfg.window_days))
    }

    /// Records `n` day trades on `day` (nothing when `n` is 0).
    #[inline]
    pub fn record(&mut self, day: u32, n: u32) {
        if n == 0 {
            return;
        }
        let last = (self.next + self.days.len() - 1) % self.days.len();
        if self.days[last].0 == day {
            self.days[last].1 += n;
        } else {
            self.days[self.next] = (day, n);
            self.next = (self.next + 1) % self.days.len();
        }
    }

    /// Makes the count in the window ending on `day` equal `count`, a broker's: day trades
    /// it has and the record lacks (made outside the env) are recorded on `day`, the newest
    /// day they can be from, so they leave the window no sooner than the broker's; day
    /// trades the record has and the broker does not are removed from the oldest days of
    /// the window first (the broker's window has moved past them).
    pub fn set_in_window(&mut self, day: u32, window: u32, count: u32) {
        let have = self.in_window(day, window);
        if count >= have {
            self.record(day, count - have);
            return;
        }
        let mut excess = have - count;
        // Slots in the window, oldest day first.
        let mut slots: Vec<usize> = (0..self.days.len())
            .filter(|&i| {
                let (d, n) = self.days[i];
                d != u32::MAX && n > 0 && day.wrapping_sub(d) < window
            })
            .collect();
        slots.sort_by_key(|&i| self.days[i].0);
        for i in slots {
            let taken = self.days[i].1.min(excess);
            self.days[i].1 -= taken;
            excess -= taken;
            if excess == 0 {
                break;
            }
        }
    }
}

/// Where an env is in its episode.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeClock {
    /// First bar of the episode.
    pub start_bar: u32,
    /// Current bar t: the agent acts on its close.
    pub bar: u32,
    /// Steps taken this episode.
    pub steps: u32,
}

/// The env's own random stream, derived from (seed, env index): envs never share one, so
/// results do not depend on thread count or scheduling.
#[derive(Component, Debug, Clone)]
pub struct EnvRng(pub ChaCha8Rng);

/// What this step produced for this env.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default)]
pub struct StepOutcome {
    /// (E_t − E_{t−1}) / E_{t−1}, written by mark-to-market.
    pub step_return: f64,
    /// The step's reward: zeroed by mark-to-market, then every system in
    /// [`crate::env::StepSystems::Reward`] adds its term.
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
}

/// A trade as written to `trades.csv` by replays (only envs with a [`TradeLog`] record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRecord {
    /// Fill bar.
    pub bar: u32,
    pub ticker: u16,
    pub side: Side,
    pub shares: f64,
    pub reference_price: f64,
    pub fill_price: f64,
    /// Dollars paid to the half-spread, slippage and impact, and in fees.
    pub spread: f64,
    pub slippage: f64,
    pub impact: f64,
    pub fees: f64,
    /// Cash right after this trade.
    pub cash_after: f64,
    /// Shares of the order that the participation cap left unfilled (cancelled): 0 for a
    /// full fill.
    pub unfilled: f64,
    /// Why the broker placed this order itself, when the agent did not: a forced buy-in's
    /// [`Refusal::MARGIN_CALL`] (written by name in `trades.csv`).
    pub forced: Option<Refusal>,
}

/// Optional per-env trade log (replays and backtests).
#[derive(Component, Debug, Clone, Default)]
pub struct TradeLog(pub Vec<TradeRecord>);
