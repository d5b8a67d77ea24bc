//! Execution: orders that survived the market rules fill at the reference price with
//! spread, slippage and impact, fees are charged, cash and positions change.
//!
//! Within one env and one bar: **sells first, in ticker order, then buys, in ticker
//! order**. Each buy spends `buy_pct` of the cash left after the fills before it
//! (`buy_sizing: equal_split`: that cash divided by the buys left in the bar). The
//! position cap uses the equity right after the bar's sells, marked at the reference
//! prices: `room_k = max_position_pct × E_ref − shares_k × ref_k`, and a buy spends
//! `min(buy_pct × cash, room_k)`. Buys under `min_order_notional` (or rounding to zero
//! whole shares) are refused as `too_small`, with no cash as `cash`, with no room as
//! `position_cap`, on a ticker with zero mean volume as `no_liquidity`. With
//! `environment.max_participation` an order fills at most that share of its fill bar's
//! volume, the rest cancelled (a partial fill; execution contract answer 17 in
//! [`crate::env`]). With short selling (`environment.short_selling`, answer 20) a sell when
//! not long opens a short sized like a buy, a buy when short covers it, closing orders fill
//! before opening ones, cash that backs the shorts is not spent, and a margin call closes
//! positions by forced orders before the agent's.
//!
//! Reference price: bar t+1's open (`next_open`) or bar t's close (`close`). The fill bar
//! is t+1 or t respectively; its trading day is the day an order counts on (daily cap,
//! PDT) and its time is written to `trades.csv`.
//!
//! Prices come from the [`Fills`] resource (a [`FillModel`]), fees from the [`Fees`]
//! resource (a [`FeeModel`]), both swappable by a plugin; the per-env cost parameters
//! ([`CostModel`]) are this plugin's per-env state, optionally randomized at every
//! episode start (`environment.cost_randomization`).

pub mod fees;
pub mod fill;

pub use fees::{FeeModel, Fees, Taf, UsEquityFees};
pub use fill::{CostModel, FillInput, FillModel, FillQuote, Fills, SpreadSlippageImpact};

use crate::config::{BuySizing, EnvironmentConfig};
use crate::env::{
    ActionMask, EnvAppExt, EnvId, EnvParams, EnvRng, EpisodeClock, Ledger, MarketData, OrderShares, Orders, PdtState,
    Portfolio, Position, Positions, Refusal, Side, StepRows, StepSystems, Targets, TradeLog, TradeRecord, bits,
    gross_value, long_short,
};
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rand::Rng;

/// Order sizing settings shared by all envs.
#[derive(Resource, Debug, Clone)]
pub struct ExecutionConfig {
    pub buy_pct: f64,
    pub buy_sizing: BuySizing,
    pub max_position_pct: f64,
    pub fractional_shares: bool,
    pub min_order_notional: f64,
    /// `environment.max_participation`: the most shares an order fills, as a fraction of
    /// its fill bar's volume.
    pub max_participation: Option<f64>,
    /// A cash account (`environment.account: cash`): sell proceeds settle T+1.
    pub cash_account: bool,
    /// Short selling's margin requirements (`environment.short_selling`, when enabled).
    pub margin: Option<Margin>,
}

/// Reg T margin requirements of an account that sells short, as fractions of market value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin {
    /// Equity beyond the longs (paid in full) must cover this share of the shorts' value
    /// when one opens.
    pub initial: f64,
    /// Equity must stay at or above this share of the long plus the short value, or a
    /// forced buy-in follows.
    pub maintenance: f64,
}

impl Margin {
    /// Whether the account meets the maintenance margin with its positions valued at
    /// `prices`.
    #[inline]
    pub fn met(&self, cash: f64, positions: &[Position], prices: &[f64]) -> bool {
        let mut net = 0.0;
        for (p, &price) in positions.iter().zip(prices) {
            net += p.shares * price;
        }
        cash + net >= self.maintenance * gross_value(positions, prices)
    }
}

impl ExecutionConfig {
    pub fn new(cfg: &EnvironmentConfig) -> Self {
        Self {
            buy_pct: cfg.buy_pct,
            buy_sizing: cfg.buy_sizing,
            max_position_pct: cfg.max_position_pct,
            fractional_shares: cfg.fractional_shares,
            min_order_notional: cfg.min_order_notional,
            max_participation: cfg.max_participation,
            cash_account: cfg.account == crate::config::Account::Cash,
            margin: cfg.short_selling.enabled.then_some(Margin {
                initial: cfg.short_selling.initial_margin,
                maintenance: cfg.short_selling.maintenance_margin,
            }),
        }
    }
}

impl ExecutionConfig {
    /// Share of the cash the next opening order (buy or short sale) may spend, with `left`
    /// opening orders left in the bar, this one included (counted down).
    #[inline]
    fn opening_share(&self, left: &mut u32) -> f64 {
        let share = match self.buy_sizing {
            BuySizing::CashFraction => self.buy_pct,
            BuySizing::EqualSplit => 1.0 / f64::from(*left),
        };
        *left -= 1;
        share
    }

    /// Share of the cash one buy may spend when it is the bar's only buy.
    pub fn lone_buy_share(&self) -> f64 {
        match self.buy_sizing {
            BuySizing::CashFraction => self.buy_pct,
            BuySizing::EqualSplit => 1.0,
        }
    }

    /// A lone buy of a position of `shares` at `price`, judged at the decision bar's close
    /// (what the masks and the cost columns size): its room under the position cap and its
    /// notional, `min(lone_buy_share × cash, room)`.
    pub fn lone_buy(&self, portfolio: &Portfolio, shares: f64, price: f64) -> (f64, f64) {
        let room = self.max_position_pct * portfolio.equity - shares * price;
        (room, (self.lone_buy_share() * portfolio.cash).min(room))
    }
}

/// The configured cost parameters, and how far each env's may stray from them.
#[derive(Resource, Debug, Clone, Copy)]
pub struct CostRandomization {
    pub base: CostModel,
    /// Each episode's factor is uniform in [1 − spread, 1 + spread].
    pub spread: f64,
}

/// Turns pending orders into fills and charges costs.
pub struct ExecutionPlugin {
    pub config: ExecutionConfig,
    pub costs: CostModel,
    pub fees: Fees,
    pub cost_randomization: f64,
    /// Adds the `costs` observation columns (`environment.observe_costs`).
    pub observe_costs: bool,
}

impl ExecutionPlugin {
    /// The built-in fill and fee models with the config's parameters.
    pub fn new(cfg: &EnvironmentConfig) -> Self {
        Self {
            config: ExecutionConfig::new(cfg),
            costs: CostModel::from_config(cfg),
            fees: Fees::UsEquity(UsEquityFees::new(&cfg.fees)),
            cost_randomization: cfg.cost_randomization,
            observe_costs: cfg.observe_costs,
        }
    }
}

impl Plugin for ExecutionPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.config.clone())
            .insert_resource(self.fees.clone())
            .insert_resource(Fills::SpreadSlippageImpact(SpreadSlippageImpact))
            .insert_on_envs(self.costs)
            .add_systems(crate::env::EnvStep, fill_orders.in_set(StepSystems::Execute));
        if app.world().resource::<EnvParams>().action_masks {
            app.add_action_mask_systems(mask_unfillable_orders);
        }
        if self.observe_costs {
            let n_tickers = app.world().resource::<EnvParams>().n_tickers;
            let columns = app.add_observation_columns("costs", 2 * n_tickers);
            app.insert_resource(CostColumns(columns)).add_observation_systems(write_cost_columns);
        }
        if self.cost_randomization > 0.0 {
            app.insert_resource(CostRandomization { base: self.costs, spread: self.cost_randomization })
                .add_episode_start_systems(randomize_costs);
        }
    }
}

/// The fees a sale of a long pays out of `fees`, with `cash` before it: no leverage on
/// longs, so fees beyond what the account holds after the sale (a commission on a worthless
/// sale) are waived rather than driving cash below zero; never below zero themselves (cash
/// below zero, a margin debit after a cover, is not a credit). The replay broker waives
/// them the same way.
#[inline]
pub fn long_sale_fees(fees: f64, cash: f64, notional: f64) -> f64 {
    fees.min((cash + notional).max(0.0))
}

/// Draws each starting env's cost parameters for its new episode.
///
/// Reads [`CostRandomization`], [`Targets`]; writes [`CostModel`], [`EnvRng`] (one draw).
/// Runs at every episode start (only with `environment.cost_randomization` > 0, so that
/// the default draws nothing from the envs' streams).
pub fn randomize_costs(
    randomization: Res<CostRandomization>,
    targets: Res<Targets>,
    mut envs: Query<(&mut CostModel, &mut EnvRng)>,
) {
    let (base, x) = (randomization.base, randomization.spread);
    targets.for_each_mut(&mut envs, |(mut cost, mut rng)| {
        *cost = base.scaled(rng.0.random_range(1.0 - x..=1.0 + x));
    });
}

/// Masks the buys that execution would refuse (no cash, no room under the position cap, too
/// small an order) and every order of a ticker the fill model cannot fill, as far as the
/// decision bar tells: the buy is sized as if it were the bar's only one, at the bar's close
/// (the fill price is the next open with `next_open`, unknown then), against the equity
/// marked at that close. So a buy that the next open would just let through can be masked,
/// and one that costs or whole shares round to nothing can pass and be refused. With short
/// selling, buys and short sales are sized from the free cash (answer 20), a cover is never
/// masked for cash, and no mask anticipates a margin call.
///
/// Reads [`Positions`], [`Portfolio`], [`CostModel`], [`EpisodeClock`], [`MarketData`],
/// [`ExecutionConfig`], [`Fills`]; writes [`ActionMask`]. An action-mask system (only with
/// [`EnvParams::action_masks`]).
#[allow(clippy::type_complexity, reason = "one query over what sizing reads")]
pub fn mask_unfillable_orders(
    market: Res<MarketData>,
    config: Res<ExecutionConfig>,
    fills: Res<Fills>,
    targets: Res<Targets>,
    mut envs: Query<(&Positions, &Portfolio, &CostModel, &EpisodeClock, &mut ActionMask)>,
) {
    targets.for_each_mut(&mut envs, |(positions, portfolio, cost, clock, mut mask)| {
        let t = clock.bar as usize;
        let closes = market.close_row(t);
        let (mut no_buy, mut no_fill) = (0u64, 0u64);
        for (k, (pos, &price)) in positions.0.iter().zip(closes).enumerate() {
            let input = FillInput::at(&market, t, k, price);
            let (room, notional) = config.lone_buy(portfolio, pos.shares, price);
            let whole = !config.fractional_shares && fills.no_whole_share(cost, &input, notional);
            let refused = portfolio.cash <= 0.0 || room <= 0.0 || notional < config.min_order_notional || whole;
            no_buy |= u64::from(refused) << k;
            no_fill |= u64::from(!fills.can_fill(cost, &input)) << k;
        }
        let Some(margin) = config.margin else {
            mask.forbid_buy(no_buy | no_fill);
            mask.forbid_sell(no_fill);
            return;
        };
        // With shorts: a cover is never refused for cash; buys and short sales spend the
        // cash that does not back the shorts.
        let (long, short) = long_short(&positions.0);
        let shorts: f64 = positions.0.iter().zip(closes).map(|(p, c)| (-p.shares).max(0.0) * c).sum();
        let free = portfolio.cash - (1.0 + margin.initial) * shorts;
        let (mut no_long, mut no_short) = (0u64, 0u64);
        for (k, (pos, &price)) in positions.0.iter().zip(closes).enumerate() {
            let input = FillInput::at(&market, t, k, price);
            let room = config.max_position_pct * portfolio.equity - pos.shares.abs() * price;
            let notional = (config.lone_buy_share() * free).min(room);
            let refused = free <= 0.0 || room <= 0.0 || notional < config.min_order_notional;
            // Whole shares: a buy pays at least the half-spread above the price, a short
            // sale sells N / reference shares.
            let whole = !config.fractional_shares;
            no_long |= u64::from(refused || whole && fills.no_whole_share(cost, &input, notional)) << k;
            no_short |= u64::from(refused || whole && notional < price) << k;
        }
        mask.forbid_buy(((no_buy | no_long) & !short) | no_fill);
        mask.forbid_sell((no_short & !long) | no_fill);
    });
}

/// Where the `costs` observation columns sit in the row.
#[derive(Resource, Debug, Clone)]
pub struct CostColumns(pub std::ops::Range<usize>);

/// Writes what a buy and a sell of each ticker would cost now, in percent of the traded
/// notional: half-spread + slippage + impact + fees, quoted by the env's own fill and fee
/// models at the decision bar's close. The buy is sized as the action masks size it (the
/// budget `buy_pct` × cash, within the position cap; `buy_pct` × equity when that leaves
/// nothing), the sell is the whole position (a buy's shares when flat). Columns: the d
/// buys, then the d sells.
///
/// Reads [`Positions`], [`Portfolio`], [`CostModel`], [`EpisodeClock`], [`MarketData`],
/// [`ExecutionConfig`], [`Fills`], [`Fees`]; writes the `costs` columns of
/// [`StepRows::obs_row`]. An observation system (only with `environment.observe_costs`).
#[allow(clippy::too_many_arguments, reason = "a system's parameters")]
pub fn write_cost_columns(
    columns: Res<CostColumns>,
    market: Res<MarketData>,
    config: Res<ExecutionConfig>,
    fills: Res<Fills>,
    fees: Res<Fees>,
    targets: Res<Targets>,
    mut rows: ResMut<StepRows>,
    envs: Query<(&EnvId, &Positions, &Portfolio, &CostModel, &EpisodeClock)>,
) {
    targets.for_each(&envs, |(id, positions, portfolio, cost, clock)| {
        let t = clock.bar as usize;
        let closes = market.close_row(t);
        let row = &mut rows.obs_row(id.index())[columns.0.clone()];
        let d = positions.0.len();
        for (k, (pos, &price)) in positions.0.iter().zip(closes).enumerate() {
            let input = FillInput::at(&market, t, k, price);
            if !fills.can_fill(cost, &input) || price <= 0.0 {
                row[k] = 0.0;
                row[d + k] = 0.0;
                continue;
            }
            let (_, mut notional) = config.lone_buy(portfolio, pos.shares, price);
            if notional <= 0.0 {
                notional = config.buy_pct * portfolio.equity.max(0.0);
            }
            let (buy_shares, buy) = fills.buy(cost, &input, notional.max(price), true);
            let buy_notional = buy_shares * buy.buy_price();
            let buy_cost =
                buy.half_spread + buy.slippage + buy.impact + fees.buy_fees(buy_shares, buy_notional) / buy_notional;
            let sell_shares = if pos.shares > 0.0 { pos.shares } else { buy_shares };
            let sell = fills.sell(cost, &input, sell_shares);
            let sell_notional = sell_shares * sell.sell_price();
            let sell_cost = sell.half_spread
                + sell.slippage
                + sell.impact
                + fees.sell_fees(sell_shares, sell_notional) / sell_notional;
            row[k] = (100.0 * buy_cost) as f32;
            row[d + k] = (100.0 * sell_cost) as f32;
        }
    });
}

/// Fills every env's live orders.
///
/// Reads [`Orders`], [`CostModel`], [`EpisodeClock`], [`MarketData`], [`Fills`], [`Fees`];
/// writes [`Portfolio`] cash and counters, [`Positions`], [`Ledger`], [`PdtState`], and
/// [`OrderShares`] and [`TradeLog`] when present. Runs in [`StepSystems::Execute`]. Keeps cash ≥ 0 and shares
/// ≥ 0.
#[allow(clippy::type_complexity, reason = "one query over what a fill changes")]
#[allow(clippy::too_many_arguments, reason = "a system's parameters")]
pub fn fill_orders(
    market: Res<MarketData>,
    params: Res<EnvParams>,
    config: Res<ExecutionConfig>,
    fills: Res<Fills>,
    fees: Res<Fees>,
    mut envs: Query<(
        &mut Orders,
        &mut Positions,
        &mut Portfolio,
        &mut Ledger,
        &mut PdtState,
        &CostModel,
        &EpisodeClock,
        Option<&mut OrderShares>,
        Option<&mut TradeLog>,
    )>,
) {
    let models = Models { market: &market, params: &params, config: &config, fills: &fills, fees: &fees };
    envs.iter_mut().for_each(
        |(mut orders, mut positions, mut portfolio, mut ledger, mut pdt, cost, clock, sizes, log)| {
            execute(
                &mut orders,
                &mut positions.0,
                &mut portfolio,
                &mut ledger,
                &mut pdt,
                cost,
                &models,
                clock.bar as usize,
                sizes.map(|s| &mut *s.into_inner().0),
                log.map(|l| &mut l.into_inner().0),
            );
        },
    );
}

/// What execution reads besides the env's own components.
pub struct Models<'a> {
    pub market: &'a MarketData,
    pub params: &'a EnvParams,
    pub config: &'a ExecutionConfig,
    pub fills: &'a Fills,
    pub fees: &'a Fees,
}

/// Executes one env's orders for a decision at bar `t` (see the module docs for the
/// order and sizing rules). `sizes`: the orders' signed sizes in shares with
/// target-position actions (answer 21), consumed as they fill; `None`, the seed's sizing.
#[allow(clippy::too_many_arguments, reason = "the env's components, passed apart to borrow them apart")]
pub fn execute(
    orders: &mut Orders,
    positions: &mut [Position],
    portfolio: &mut Portfolio,
    ledger: &mut Ledger,
    pdt: &mut PdtState,
    cost: &CostModel,
    models: &Models,
    t: usize,
    mut sizes: Option<&mut [f64]>,
    log: Option<&mut Vec<TradeRecord>>,
) {
    let Models { market, params, config, .. } = *models;
    let fill_bar = params.fill_bar(t);
    let day = market.day(fill_bar);
    if portfolio.trade_day != day {
        portfolio.trade_day = day;
        portfolio.trades_today = 0;
        // A new trading day: yesterday's sell proceeds have settled.
        portfolio.unsettled = 0.0;
    }
    portfolio.executed_this_step = 0;
    portfolio.traded_this_step = 0.0;
    let refs = params.reference_row(market, t);
    let mut x = Fill { models, cost, t, fill_bar, day, refs, portfolio, ledger, log };

    // Long only, every sell closes a long (sells without one were refused when decoded).
    let (long, short) = if config.margin.is_some() { long_short(positions) } else { (u64::MAX, 0) };
    let mut day_trades = 0;
    if let Some(margin) = config.margin {
        day_trades += x.margin_call(orders, positions, margin, long, short);
    }
    // Closing orders first, in ticker order: sells of longs, then buys that cover shorts.
    // A sized order closes at most the position, the rest of it opens on the other side.
    for k in bits(orders.sell & long) {
        let want = sizes.as_deref().map(|s| -s[k]);
        let before = positions[k].shares;
        day_trades += x.sell_long(orders, &mut positions[k], k, want, None);
        if let Some(s) = sizes.as_deref_mut() {
            s[k] += before - positions[k].shares;
        }
    }
    for k in bits(orders.buy & short) {
        let want = sizes.as_deref().map(|s| s[k]);
        let before = positions[k].shares;
        day_trades += x.cover(orders, &mut positions[k], k, want, None);
        if let Some(s) = sizes.as_deref_mut() {
            s[k] += before - positions[k].shares;
        }
    }
    pdt.record(day, day_trades);

    // Then opening orders, each from the cash the previous fills left: short sales, then
    // buys, in ticker order. A sized order opens what its closing part left, once the
    // position it closed is flat (a partly filled exit cancels the rest).
    let (opens, buys) = match sizes.as_deref() {
        None => (orders.sell & !long, orders.buy & !short),
        Some(s) => {
            let (long, short) = if config.margin.is_some() { long_short(positions) } else { (u64::MAX, 0) };
            let rest = s.iter().enumerate().fold(0u64, |m, (k, &q)| m | u64::from(q != 0.0) << k);
            (orders.sell & !long & rest, orders.buy & !short & rest)
        }
    };
    if opens | buys == 0 {
        return;
    }
    let equity_ref: f64 = x.portfolio.cash + positions.iter().zip(refs).map(|(p, r)| p.shares * r).sum::<f64>();
    // Cash that backs the shorts (their proceeds and their initial margin) is not spent.
    let mut locked = match config.margin {
        Some(m) => (1.0 + m.initial) * positions.iter().zip(refs).map(|(p, r)| (-p.shares).max(0.0) * r).sum::<f64>(),
        None => 0.0,
    };
    let mut left = (opens | buys).count_ones();
    let mut size = |k: usize| match sizes.as_deref() {
        Some(s) => Size::Shares(s[k].abs()),
        None => Size::CashShare(config.opening_share(&mut left)),
    };
    for k in bits(opens) {
        let size = size(k);
        x.open_short(orders, &mut positions[k], k, size, equity_ref, &mut locked);
    }
    for k in bits(buys) {
        let size = size(k);
        x.buy(orders, &mut positions[k], k, size, equity_ref, locked);
    }
}

/// How much an opening order (a buy or a short sale) asks for.
#[derive(Debug, Clone, Copy)]
enum Size {
    /// This share of the free cash (the seed's actions: `buy_pct` or an equal split).
    CashShare(f64),
    /// These shares (target-position actions), or what the free cash buys when it does not
    /// buy them all.
    Shares(f64),
}

/// One env's fills of one bar: what every order reads and writes.
struct Fill<'a, 'm> {
    models: &'a Models<'m>,
    cost: &'a CostModel,
    /// Decision bar.
    t: usize,
    fill_bar: usize,
    /// Trading day of the fill bar.
    day: u32,
    /// Reference prices of every ticker.
    refs: &'a [f64],
    portfolio: &'a mut Portfolio,
    ledger: &'a mut Ledger,
    log: Option<&'a mut Vec<TradeRecord>>,
}

impl Fill<'_, '_> {
    /// The fill model's inputs for ticker `k`.
    #[inline]
    fn input(&self, k: usize) -> FillInput {
        FillInput::at(self.models.market, self.t, k, self.refs[k])
    }

    /// Counts an executed order.
    #[inline]
    fn executed(&mut self, notional: f64) {
        self.portfolio.trades_today += 1;
        self.portfolio.executed_this_step += 1;
        self.portfolio.traded_this_step += notional;
    }

    /// Records a closing trade of `shares` of `pos` (long or short) with realized `pnl`, and
    /// takes them off the position.
    #[inline]
    fn closed(&mut self, pos: &mut Position, shares: f64, pnl: f64) {
        // Every exit closes a trade of the shares it sold (won or lost on them); a partial
        // exit leaves the rest open, at the same average cost and opening bar.
        self.ledger.closed_trades += 1;
        self.ledger.winning_trades += u64::from(pnl > 0.0);
        self.ledger.trade_bars += (self.fill_bar as u64).saturating_sub(u64::from(pos.opened_bar));
        let rest = pos.shares.abs() - shares;
        if rest > 0.0 {
            pos.shares = rest.copysign(pos.shares);
        } else {
            *pos = Position::default();
        }
    }

    /// An exit of ticker `k` from a position of `held` shares: its fill inputs, the shares
    /// it fills (all, or `want` of them with a sized order, or what the participation cap
    /// lets through; a forced order, named by `forced`, ignores the cap) and the rest of the
    /// order; or `None` once refused (a ticker the fill model cannot fill, a fill bar the
    /// cap does not let trade).
    #[inline]
    fn exit(
        &self,
        orders: &mut Orders,
        k: usize,
        held: f64,
        want: Option<f64>,
        forced: Option<Refusal>,
    ) -> Option<(FillInput, f64, f64)> {
        let input = self.input(k);
        let refusal = if self.models.fills.can_fill(self.cost, &input) {
            let held = want.map_or(held, |w| w.min(held));
            if forced.is_some() {
                return Some((input, held, 0.0));
            }
            match participation_cap(self.models.market, self.models.config, self.fill_bar, k) {
                None => return Some((input, held, 0.0)),
                Some(Ok(cap)) if cap < held => return Some((input, cap, held - cap)),
                Some(Ok(_)) => return Some((input, held, 0.0)),
                Some(Err(refusal)) => refusal,
            }
        } else {
            Refusal::NO_LIQUIDITY
        };
        orders.refuse(1 << k, refusal);
        None
    }

    #[allow(clippy::too_many_arguments, reason = "the fields of one trade record")]
    #[inline]
    fn log(
        &mut self,
        k: usize,
        side: Side,
        shares: f64,
        quote: &FillQuote,
        price: f64,
        fees: f64,
        unfilled: f64,
        forced: Option<Refusal>,
    ) {
        let cash = self.portfolio.cash;
        if let Some(log) = self.log.as_deref_mut() {
            let mut record = trade_record(self.fill_bar, k, side, shares, quote, price, fees, cash, unfilled);
            record.forced = forced;
            log.push(record);
        }
    }

    /// Sells the long position of ticker `k` (all of it, or `want` shares of it, or what
    /// the participation cap lets through); returns 1 for a day trade. `forced` names a
    /// forced order's reason.
    #[inline]
    fn sell_long(
        &mut self,
        orders: &mut Orders,
        pos: &mut Position,
        k: usize,
        want: Option<f64>,
        forced: Option<Refusal>,
    ) -> u32 {
        let Models { config, fills, fees, .. } = *self.models;
        let Some((input, shares, unfilled)) = self.exit(orders, k, pos.shares, want, forced) else { return 0 };
        let quote = fills.sell(self.cost, &input, shares);
        let price = quote.sell_price();
        let notional = shares * price;
        let portfolio = &mut *self.portfolio;
        let fees = long_sale_fees(fees.sell_fees(shares, notional), portfolio.cash, notional);
        portfolio.cash += notional - fees;
        if config.cash_account {
            portfolio.unsettled += notional - fees;
        }
        let pnl = (price - pos.avg_cost) * shares - fees;
        // Counted, and recorded once after the sells: whether a sell is a day trade is
        // a coin toss with random actions, a branch here mispredicts.
        let day_trade = u32::from(pos.last_buy_day == self.day);
        self.ledger.sells += 1;
        self.ledger.turnover += notional;
        record_costs(self.ledger, &quote, shares, fees);
        self.log(k, Side::Sell, shares, &quote, price, fees, unfilled, forced);
        self.closed(pos, shares, pnl);
        self.executed(notional);
        day_trade
    }

    /// Buys back the short position of ticker `k` (all of it, or `want` shares of it, or
    /// what the participation cap lets through); returns 1 for a day trade. A cover is
    /// never refused for cash: it is paid from the short's proceeds and the account's
    /// equity, cash may go below zero (a margin debit).
    #[inline]
    fn cover(
        &mut self,
        orders: &mut Orders,
        pos: &mut Position,
        k: usize,
        want: Option<f64>,
        forced: Option<Refusal>,
    ) -> u32 {
        let Models { fills, fees, .. } = *self.models;
        let Some((input, shares, unfilled)) = self.exit(orders, k, -pos.shares, want, forced) else { return 0 };
        let quote = fills.cover(self.cost, &input, shares);
        let price = quote.buy_price();
        let notional = shares * price;
        let fees = fees.buy_fees(shares, notional);
        self.portfolio.cash -= notional + fees;
        let pnl = (pos.avg_cost - price) * shares - fees;
        let day_trade = u32::from(pos.last_buy_day == self.day);
        self.ledger.buys += 1;
        self.ledger.turnover += notional;
        record_costs(self.ledger, &quote, shares, fees);
        self.log(k, Side::Buy, shares, &quote, price, fees, unfilled, forced);
        self.closed(pos, shares, pnl);
        self.executed(notional);
        day_trade
    }

    /// The checks every opening order passes before it is quoted, in this order: some
    /// `free` cash (else `no_cash`), room under the position cap beside the `held` shares
    /// (either side), a budget `min(asked, free, room)` not under `min_order_notional`, a
    /// ticker the fill model can fill, a fill bar the participation cap lets trade. Returns
    /// the budget, the fill model's inputs and the cap (`None`: off), or `None` when the
    /// order was refused.
    #[inline]
    #[allow(clippy::too_many_arguments, reason = "what an opening order is judged on")]
    fn opening(
        &self,
        orders: &mut Orders,
        k: usize,
        held: f64,
        size: Size,
        equity_ref: f64,
        free: f64,
        no_cash: Refusal,
    ) -> Option<(f64, FillInput, Option<f64>)> {
        let Models { market, config, fills, .. } = *self.models;
        let reference = self.refs[k];
        let room = config.max_position_pct * equity_ref - held * reference;
        let refusal = if free <= 0.0 {
            no_cash
        } else if room <= 0.0 {
            Refusal::POSITION_CAP
        } else {
            let asked = match size {
                Size::CashShare(share) => share * free,
                Size::Shares(q) => (q * reference).min(free),
            };
            let notional = asked.min(room);
            let input = self.input(k);
            if notional < config.min_order_notional {
                Refusal::TOO_SMALL
            } else if !fills.can_fill(self.cost, &input) {
                Refusal::NO_LIQUIDITY
            } else {
                match participation_cap(market, config, self.fill_bar, k) {
                    Some(Err(refusal)) => refusal,
                    cap => return Some((notional, input, cap.and_then(Result::ok))),
                }
            }
        };
        orders.refuse(1 << k, refusal);
        None
    }

    /// Buys ticker `k` for `size` from the cash not `locked` behind shorts.
    #[inline]
    fn buy(&mut self, orders: &mut Orders, pos: &mut Position, k: usize, size: Size, equity_ref: f64, locked: f64) {
        let Models { config, fills, fees, .. } = *self.models;
        let cash = self.portfolio.cash - locked;
        let Some((mut notional, input, cap)) =
            self.opening(orders, k, pos.shares, size, equity_ref, cash, Refusal::CASH)
        else {
            return;
        };
        // A sized order the budget covers buys its shares at their quote if the cash pays
        // for them and their fees; otherwise it spends the budget less the fees.
        let exact = match size {
            Size::Shares(q) if q * self.refs[k] <= notional => {
                let quote = fills.cover(self.cost, &input, q);
                let spent = q * quote.buy_price();
                if spent + fees.buy_fees(q, spent) <= cash {
                    Some((q, quote, spent))
                } else {
                    notional -= fees.buy_fees(q, notional);
                    None
                }
            }
            Size::Shares(q) => {
                notional -= fees.buy_fees(q, notional);
                None
            }
            Size::CashShare(_) => None,
        };
        let (mut shares, mut quote, mut spent) = exact.unwrap_or_else(|| {
            let (shares, quote) = fills.buy(self.cost, &input, notional, config.fractional_shares);
            // The shares at their price. A fractional buy of the whole budget (the built-in
            // model's: `notional / price` shares) is charged the budget itself, so that
            // rounding never leaves cash a hair below zero; a model that buys other shares
            // (round lots, more than the budget) pays for what it bought.
            let cost = shares * quote.buy_price();
            let whole_budget = config.fractional_shares && (cost - notional).abs() <= 1e-9 * notional;
            (shares, quote, if whole_budget { notional } else { cost })
        });
        let mut unfilled = 0.0;
        if let Some(cap) = cap.filter(|&c| shares > c) {
            // Re-quoted for the capped size (its impact is smaller), at most `cap` shares.
            let (q, requote) = if exact.is_some() {
                (cap, fills.cover(self.cost, &input, cap))
            } else {
                fills.buy(self.cost, &input, cap * quote.buy_price(), config.fractional_shares)
            };
            unfilled = shares - q.min(cap);
            (shares, quote) = (q.min(cap), requote);
            spent = shares * quote.buy_price();
        }
        if !(shares.is_finite() && spent.is_finite()) {
            // A fill model of one's own that prices nothing: no fill, rather than NaN cash.
            orders.refuse(1 << k, Refusal::NO_LIQUIDITY);
            return;
        }
        if shares <= 0.0 {
            orders.refuse(1 << k, Refusal::TOO_SMALL);
            return;
        }
        let price = quote.buy_price();
        let fees = fees.buy_fees(shares, spent);
        if spent + fees > cash {
            orders.refuse(1 << k, Refusal::CASH);
            return;
        }
        if spent + fees > cash - self.portfolio.unsettled {
            orders.refuse(1 << k, Refusal::GOOD_FAITH);
            return;
        }
        self.portfolio.cash = (cash - spent - fees).max(0.0) + locked;
        if pos.shares <= 0.0 {
            pos.opened_bar = self.fill_bar as u32;
            pos.avg_cost = 0.0;
        }
        pos.avg_cost = (pos.avg_cost * pos.shares + spent + fees) / (pos.shares + shares);
        pos.shares += shares;
        pos.last_buy_bar = self.fill_bar as u32;
        pos.last_buy_day = self.day;
        self.ledger.buys += 1;
        self.ledger.turnover += spent;
        record_costs(self.ledger, &quote, shares, fees);
        self.log(k, Side::Buy, shares, &quote, price, fees, unfilled, None);
        self.executed(spent);
    }

    /// Sells ticker `k` short for `size` from the cash not `locked` behind shorts (a
    /// share of it: the notional a buy would get, `N / reference` shares), if the equity
    /// beyond the longs still covers the initial margin of every short after it; adds the
    /// new short's collateral to `locked`.
    #[inline]
    fn open_short(
        &mut self,
        orders: &mut Orders,
        pos: &mut Position,
        k: usize,
        size: Size,
        equity_ref: f64,
        locked: &mut f64,
    ) {
        let Models { config, fills, fees, .. } = *self.models;
        let Some(margin) = config.margin else { return };
        let reference = self.refs[k];
        let free = self.portfolio.cash - *locked;
        let Some((notional, input, cap)) =
            self.opening(orders, k, -pos.shares, size, equity_ref, free, Refusal::MARGIN)
        else {
            return;
        };
        let raw = match size {
            Size::Shares(q) if q * reference <= notional => q,
            _ => notional / reference,
        };
        let mut shares = if config.fractional_shares { raw } else { raw.floor() };
        let mut unfilled = 0.0;
        if let Some(cap) = cap.filter(|&c| c < shares) {
            (shares, unfilled) = (cap, shares - cap);
        }
        if shares <= 0.0 {
            orders.refuse(1 << k, Refusal::TOO_SMALL);
            return;
        }
        let quote = fills.sell(self.cost, &input, shares);
        let price = quote.sell_price();
        let proceeds = shares * price;
        let fees = fees.sell_fees(shares, proceeds);
        let collateral = (1.0 + margin.initial) * shares * reference;
        if self.portfolio.cash + proceeds - fees - (*locked + collateral) < 0.0 {
            orders.refuse(1 << k, Refusal::MARGIN);
            return;
        }
        self.portfolio.cash += proceeds - fees;
        *locked += collateral;
        let held = -pos.shares;
        if held <= 0.0 {
            pos.opened_bar = self.fill_bar as u32;
            pos.avg_cost = 0.0;
        }
        pos.avg_cost = (pos.avg_cost * held + proceeds - fees) / (held + shares);
        pos.shares -= shares;
        pos.last_buy_bar = self.fill_bar as u32;
        pos.last_buy_day = self.day;
        self.ledger.sells += 1;
        self.ledger.turnover += proceeds;
        record_costs(self.ledger, &quote, shares, fees);
        self.log(k, Side::Sell, shares, &quote, price, fees, unfilled, None);
        self.executed(proceeds);
    }

    /// A margin call: when the equity marked at the decision bar's close is under the
    /// maintenance margin of the positions' value there, the broker closes whole
    /// positions at this bar's reference prices — shorts first, then longs, each in ticker
    /// order, skipping tickers whose fill bar is invented — until the equity at those
    /// prices is at or above the maintenance margin of what is left (or nothing is left
    /// but positions on an invented bar: the next bar's call tries them again).
    /// The agent's orders of the closed tickers are refused as `margin_call`. Returns the
    /// day trades made.
    fn margin_call(
        &mut self,
        orders: &mut Orders,
        positions: &mut [Position],
        margin: Margin,
        long: u64,
        short: u64,
    ) -> u32 {
        if short == 0 && self.portfolio.cash >= 0.0 {
            // Longs are paid in full: the equity covers all of their value.
            return 0;
        }
        // Cash and positions as marked at the decision bar's close: the mark's sums answer.
        let met = match self.portfolio.marked_gross {
            Some(gross) => self.portfolio.equity >= margin.maintenance * gross,
            None => margin.met(self.portfolio.cash, positions, self.models.market.close_row(self.t)),
        };
        // Every test with shorts checks that the mark's sums answer as the closes do.
        debug_assert_eq!(met, margin.met(self.portfolio.cash, positions, self.models.market.close_row(self.t)));
        if met {
            return 0;
        }
        let (mut day_trades, mut closed) = (0, 0u64);
        let refs = self.refs;
        // Nothing traded on an invented bar: the broker cannot close those tickers now.
        let invented = self.models.market.invented(self.fill_bar);
        for k in bits(short & !invented).chain(bits(long & !invented)) {
            if margin.met(self.portfolio.cash, positions, refs) {
                break;
            }
            let pos = &mut positions[k];
            let before = pos.shares;
            // A forced order is not refused by the rules, only by a fill model that cannot
            // fill it (then the position stays, and the next one is closed).
            let mut none = Orders::default();
            day_trades += if before < 0.0 {
                self.cover(&mut none, pos, k, None, Some(Refusal::MARGIN_CALL))
            } else {
                self.sell_long(&mut none, pos, k, None, Some(Refusal::MARGIN_CALL))
            };
            if pos.shares != before {
                closed |= 1 << k;
                self.ledger.forced_orders += 1;
            }
        }
        orders.refuse(closed, Refusal::MARGIN_CALL);
        day_trades
    }
}

#[inline]
fn record_costs(ledger: &mut Ledger, quote: &FillQuote, shares: f64, fees: f64) {
    let base = shares * quote.reference;
    ledger.costs.spread += base * quote.half_spread;
    ledger.costs.slippage += base * quote.slippage;
    ledger.costs.impact += base * quote.impact;
    ledger.costs.fees += fees;
}

#[allow(clippy::too_many_arguments, reason = "the fields of one trade record")]
fn trade_record(
    bar: usize,
    k: usize,
    side: Side,
    shares: f64,
    quote: &FillQuote,
    price: f64,
    fees: f64,
    cash_after: f64,
    unfilled: f64,
) -> TradeRecord {
    let base = shares * quote.reference;
    TradeRecord {
        bar: bar as u32,
        ticker: k as u16,
        side,
        shares,
        reference_price: quote.reference,
        fill_price: price,
        spread: base * quote.half_spread,
        slippage: base * quote.slippage,
        impact: base * quote.impact,
        fees,
        cash_after,
        unfilled,
        forced: None,
    }
}

/// The most shares ticker `k`'s order may fill at `fill_bar` (`max_participation` × the
/// bar's volume, whole shares unless fractional): `None` when the cap is off, an error
/// when the bar traded nothing (`zero_volume`) or the cap is under one whole share
/// (`participation`).
#[inline]
fn participation_cap(
    market: &MarketData,
    config: &ExecutionConfig,
    fill_bar: usize,
    k: usize,
) -> Option<Result<f64, Refusal>> {
    let p = config.max_participation?;
    let volume = market.volume(fill_bar, k)?;
    if volume <= 0.0 {
        return Some(Err(Refusal::ZERO_VOLUME));
    }
    let cap = if config.fractional_shares { p * volume } else { (p * volume).floor() };
    Some(if cap > 0.0 { Ok(cap) } else { Err(Refusal::PARTICIPATION) })
}
