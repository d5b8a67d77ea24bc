//! Actions from the learner become orders.

use crate::config::EnvironmentConfig;
use crate::env::{
    ActionBuffer, ActionMask, ActionMasking, EnvId, EnvParams, EpisodeClock, MarketData, OrderShares, Orders,
    Portfolio, Position, Positions, Refusal, Targets, long_short, prefetch_ahead,
};
use bevy_ecs::prelude::*;

/// With target-position actions, the code that sends no order without counting as
/// `invalid_action` (each level is a target, and any of them may trade): what a replay
/// sends where an action file has no cell. The seed's actions hold with 0 and count every
/// code above 2 as invalid, this one included.
pub const KEEP: u8 = u8::MAX;

/// The action that leaves a ticker as it is under `cfg`: [`KEEP`] with target positions,
/// else the seed's hold (0). What a flat policy sends, and what an env sends for a ticker
/// no agent acts on.
pub fn hold_action(cfg: &EnvironmentConfig) -> u8 {
    if cfg.target_positions.enabled { KEEP } else { 0 }
}

/// Decodes each env's row of the [`ActionBuffer`] into [`Orders`], refuses the orders its
/// [`ActionMask`] forbade, and clears the mask for the next observation.
///
/// Reads [`ActionBuffer`], [`Positions`], [`ActionMasking`]; writes [`Orders`], and
/// [`ActionMask`] when some plugin masks actions. Runs in
/// [`crate::env::StepSystems::Act`]. Codes: 0 hold, 1 buy, 2 sell; any other code is
/// counted as `invalid_action` and held; a sell with no position is counted as
/// `no_position` (unless the account sells short), a masked order as `masked`.
#[allow(clippy::type_complexity, reason = "the two queries of a ParamSet")]
pub fn apply_actions(
    actions: Res<ActionBuffer>,
    params: Res<EnvParams>,
    masking: Res<ActionMasking>,
    mut envs: ParamSet<(
        Query<(&EnvId, &mut Orders, &Positions)>,
        Query<(&EnvId, &mut Orders, &Positions, &mut ActionMask)>,
    )>,
) {
    let short = params.short_selling;
    // Without a masking plugin no mask is ever set: the step does not touch the masks.
    if !masking.enabled {
        envs.p0().iter_mut().for_each(|(id, mut orders, positions)| {
            decode(&mut orders, actions.row(id.index()), &positions.0, short);
        });
        return;
    }
    envs.p1().iter_mut().for_each(|(id, mut orders, positions, mut mask)| {
        decode(&mut orders, actions.row(id.index()), &positions.0, short);
        refuse_masked(&mut orders, &mut mask);
    });
}

/// Refuses the decoded orders the env's mask forbade (as `masked`), and clears the mask for
/// the next observation.
#[inline]
fn refuse_masked(orders: &mut Orders, mask: &mut ActionMask) {
    // (A flip into a short that `no_short` forbids is refused by `apply_target_actions`,
    // which knows the orders' sizes.)
    // A ticker has one action, so one mask over both sides refuses exactly the masked ones.
    let forbidden = (orders.buy & mask.no_buy) | (orders.sell & mask.no_sell);
    orders.refuse(forbidden, Refusal::MASKED);
    *mask = ActionMask::default();
}

/// Decodes one env's actions; with `short_selling` a sell with no position is an order
/// (to open a short).
pub fn decode(orders: &mut Orders, row: &[u8], positions: &[Position], short_selling: bool) {
    let (mut buy, mut sell, mut invalid) = (0u64, 0u64, 0u32);
    for (k, &a) in row.iter().take(positions.len()).enumerate() {
        buy |= u64::from(a == 1) << k;
        sell |= u64::from(a == 2) << k;
        invalid += u32::from(a > 2);
    }
    let (held, short) = long_short(positions);
    orders.refused = Default::default();
    orders.refused.0[Refusal::INVALID_ACTION.0 as usize] = invalid;
    orders.n_refused = invalid;
    orders.buy = buy;
    orders.sell = sell;
    orders.long = held;
    orders.short = short;
    if !short_selling {
        orders.refuse(sell & !held, Refusal::NO_POSITION);
    }
}

/// Masks the sells of tickers the env does not hold (refused as `no_position` if sent).
///
/// Reads [`Positions`]; writes [`ActionMask`]. The core's action-mask system (only with
/// [`crate::env::EnvParams::action_masks`]).
pub fn mask_sells_without_position(targets: Res<Targets>, mut envs: Query<(&Positions, &mut ActionMask)>) {
    targets.for_each_mut(&mut envs, |(positions, mut mask)| {
        let (held, _) = long_short(&positions.0);
        mask.forbid_sell(!held);
    });
}

/// Target-position actions (`environment.target_positions`, execution contract answer 21):
/// action `a` of a ticker asks for a position worth `weights[a]` × equity, and the order is
/// the difference from the position held.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLevels {
    /// Target value of each action as a fraction of equity: level × `max_position_pct`
    /// (negative: a short).
    pub weights: Box<[f64]>,
    /// No order when the difference is worth less than this fraction of equity
    /// (`no_trade_band` × `max_position_pct`).
    pub band: f64,
    /// Targets are whole shares, rounded toward zero (`fractional_shares: false`).
    pub whole_shares: bool,
}

impl TargetLevels {
    /// The configured levels, when target-position actions are on.
    pub fn new(cfg: &EnvironmentConfig) -> Option<Self> {
        let t = &cfg.target_positions;
        t.enabled.then(|| Self {
            weights: t.levels.iter().map(|l| l * cfg.max_position_pct).collect(),
            band: t.no_trade_band * cfg.max_position_pct,
            whole_shares: !cfg.fractional_shares,
        })
    }

    /// Actions per ticker.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether there are no levels (never, once the config is validated).
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The signed shares action `a` orders for a ticker `held` shares of which are held, at
    /// the decision bar's `close` and `equity`: the target `weights[a] × equity / close`
    /// less `held`, or 0 when that is worth less than the band. A negative equity targets
    /// flat for every action (no position is worth a share of it).
    #[inline]
    pub fn order(&self, a: usize, held: f64, equity: f64, close: f64) -> f64 {
        self.order_with(self.weights[a], held, equity, close)
    }

    /// [`Self::order`] of the level whose weight is `weight`.
    #[inline]
    fn order_with(&self, weight: f64, held: f64, equity: f64, close: f64) -> f64 {
        let equity = equity.max(0.0);
        let target = if close > 0.0 { weight * equity / close } else { 0.0 };
        // Toward zero through an integer: `f64::trunc` is a libm call on baseline x86-64,
        // which the compiler makes on every call, whole shares or not (it is speculated).
        let target = if self.whole_shares { target as i64 as f64 } else { target };
        let delta = target - held;
        if (delta * close).abs() < self.band * equity { 0.0 } else { delta }
    }

    /// Writes one env's mask row for the learner (`[n_tickers × len]`, true = allowed): a
    /// level is allowed when its order is none, or a buy the mask allows, or a sell it
    /// allows that does not end short where the mask forbids a short
    /// ([`ActionMask::no_short`]). When every level of a ticker is forbidden (its position
    /// sits outside the band of every level, and it can neither buy nor sell), the level
    /// with the smallest order is left allowed, so that the policy has something to pick:
    /// its order is refused as `masked`, and the agent holds.
    pub fn mask_row(&self, cells: &mut [bool], mask: &ActionMask, positions: &[Position], equity: f64, closes: &[f64]) {
        for (k, cell) in cells.chunks_exact_mut(self.len()).enumerate() {
            let (held, close) = (positions[k].shares, closes[k]);
            let (mut any, mut smallest, mut nearest) = (false, f64::INFINITY, 0);
            let no_short = mask.no_short >> k & 1 != 0;
            for (a, allowed) in cell.iter_mut().enumerate() {
                let d = self.order(a, held, equity, close);
                let sell = mask.allows(k, 2) && !(no_short && held + d < 0.0);
                *allowed = (d == 0.0) || (d > 0.0 && mask.allows(k, 1)) || (d < 0.0 && sell);
                any |= *allowed;
                if d.abs() < smallest {
                    (smallest, nearest) = (d.abs(), a);
                }
            }
            if !any {
                cell[nearest] = true;
            }
        }
    }
}

/// [`apply_actions`] with target-position actions: decodes each env's row into [`Orders`]
/// and their sizes ([`OrderShares`]), with the positions, equity and closes of the decision
/// bar, then refuses what the mask forbade, as `apply_actions` does.
///
/// Replaces `apply_actions` in [`crate::env::StepSystems::Act`] when
/// [`EnvParams::targets`] is set.
#[allow(clippy::type_complexity, reason = "one query over what decoding reads")]
pub fn apply_target_actions(
    actions: Res<ActionBuffer>,
    params: Res<EnvParams>,
    market: Res<MarketData>,
    masking: Res<ActionMasking>,
    mut bars: Local<Vec<u32>>,
    mut envs: Query<(&EnvId, &mut Orders, &mut OrderShares, &Positions, &Portfolio, &EpisodeClock, &mut ActionMask)>,
) {
    let Some(levels) = &params.targets else { return };
    // Each env reads the closes of its own (random) bar, from memory rather than cache:
    // ask for the rows of the envs a few places ahead while decoding this one.
    bars.clear();
    bars.extend(envs.iter().map(|(.., clock, _)| clock.bar));
    for (n, (id, mut orders, mut shares, positions, portfolio, clock, mut mask)) in envs.iter_mut().enumerate() {
        prefetch_ahead(&bars, n, |bar| market.close_row(bar));
        let closes = market.close_row(clock.bar as usize);
        decode_targets(
            &mut orders,
            &mut shares.0,
            actions.row(id.index()),
            &positions.0,
            portfolio.equity,
            closes,
            levels,
        );
        if masking.enabled {
            if mask.no_short != 0 {
                let flips = orders.sell & mask.no_short & into_short(&positions.0, &shares.0);
                orders.refuse(flips, Refusal::MASKED);
            }
            refuse_masked(&mut orders, &mut mask);
        }
    }
}

/// The tickers whose order of `sizes` signed shares leaves them short: short sales, adds
/// to a short, and sells of a long that go through zero.
#[inline]
pub fn into_short(positions: &[Position], sizes: &[f64]) -> u64 {
    positions.iter().zip(sizes).enumerate().fold(0u64, |m, (k, (p, q))| m | u64::from(p.shares + q < 0.0) << k)
}

/// Decodes one env's target-position actions into orders and their signed sizes in shares
/// (`shares[k]`, meaningful where an order is live): [`KEEP`] holds, any other code beyond
/// the levels is counted as `invalid_action` and held.
pub fn decode_targets(
    orders: &mut Orders,
    shares: &mut [f64],
    row: &[u8],
    positions: &[Position],
    equity: f64,
    closes: &[f64],
    levels: &TargetLevels,
) {
    let (mut buy, mut sell, mut invalid) = (0u64, 0u64, 0u32);
    let n = row.len().min(positions.len()).min(shares.len()).min(closes.len());
    for k in 0..n {
        let a = usize::from(row[k]);
        // `TargetLevels::order`, unrolled here without its per-call checks: the hot loop
        // of every step with target positions.
        let d = match levels.weights.get(a) {
            Some(&w) => levels.order_with(w, positions[k].shares, equity, closes[k]),
            None => {
                invalid += u32::from(a != usize::from(KEEP));
                0.0
            }
        };
        shares[k] = d;
        buy |= u64::from(d > 0.0) << k;
        sell |= u64::from(d < 0.0) << k;
    }
    orders.refused = Default::default();
    orders.refused.0[Refusal::INVALID_ACTION.0 as usize] = invalid;
    orders.n_refused = invalid;
    orders.buy = buy;
    orders.sell = sell;
    (orders.long, orders.short) = long_short(positions);
}
