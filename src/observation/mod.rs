//! The observation: each env's row is written after every step and at every episode start.
//!
//! The row is made of blocks ([`crate::env::ObservationColumns`]): this plugin's portfolio
//! state first, then the columns other plugins add, then this plugin's market part last.
//!
//! Portfolio state (`portfolio`), `3 × n_tickers + 4` floats:
//!
//! | index | value |
//! | --- | --- |
//! | 0 | cash / equity |
//! | 1 .. 1+d | each position's weight, shares × close / equity (negative for a short) |
//! | 1+d .. 1+2d | each position's unrealized return, close / average cost − 1, of the opposite sign for a short (0 when flat) |
//! | 1+2d .. 1+3d | bars since each position opened / 100, capped at 10 (0 when flat) |
//! | 1+3d | drawdown from the episode's peak equity |
//! | 2+3d | day trades left under the PDT rule / `max_day_trades` (1 when the rule does not bind) |
//! | 3+3d | orders left today under the daily cap / cap (1 without a cap) |
//!
//! Market part (`market`): with the `materialized` layout, the observation features of
//! every ticker at bar t (`n_tickers × n_features`, ticker-major); with the `index` layout,
//! the bar index t as a float (exact below 2^24 bars), from which the learner gathers the
//! same features from [`MarketData::feature_table`]. With the `index` layout the bar index
//! is therefore always the row's last column.

use crate::config::{EnvironmentConfig, ObservationLayout};
use crate::env::{
    ActionMask, EnvAppExt, EnvId, EnvParams, EpisodeClock, MarketData, ObservationColumns, PdtState, Portfolio,
    Position, Positions, StepRows, Targets, prefetch_ahead,
};
use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use std::ops::Range;

/// Floats of the portfolio state for `n_tickers`.
pub const fn state_dim(n_tickers: usize) -> usize {
    3 * n_tickers + 4
}

/// Floats of the market part for a layout.
pub fn market_dim(layout: ObservationLayout, n_tickers: usize, n_features: usize) -> usize {
    match layout {
        ObservationLayout::Materialized => n_tickers * n_features,
        ObservationLayout::Index => 1,
    }
}

/// Observation width of the built-in plugins alone (no plugin columns) for a layout.
pub fn obs_dim(layout: ObservationLayout, n_tickers: usize, n_features: usize) -> usize {
    state_dim(n_tickers) + market_dim(layout, n_tickers, n_features)
}

/// Where this plugin's blocks sit in the row.
#[derive(Resource, Debug, Clone)]
pub struct ObservationConfig {
    pub layout: ObservationLayout,
    /// Columns of the portfolio state.
    pub state: Range<usize>,
    /// Columns of the market part (set when the app finishes, after every plugin's columns).
    pub market: Range<usize>,
}

/// Writes the portfolio state and the market part of every observation row, and with
/// `environment.observe_costs` the `allowed` columns.
pub struct ObservationPlugin {
    pub layout: ObservationLayout,
    pub observe_allowed: bool,
}

impl ObservationPlugin {
    pub fn new(cfg: &EnvironmentConfig) -> Self {
        Self { layout: cfg.observation_layout, observe_allowed: cfg.observe_costs }
    }
}

/// Where the `allowed` observation columns sit in the row.
#[derive(Resource, Debug, Clone)]
pub struct AllowedColumns(pub Range<usize>);

impl Plugin for ObservationPlugin {
    fn build(&self, app: &mut App) {
        let n_tickers = app.world().resource::<EnvParams>().n_tickers;
        let state = app.add_observation_columns("portfolio", state_dim(n_tickers));
        app.insert_resource(ObservationConfig { layout: self.layout, state, market: 0..0 })
            .add_observation_systems(write_observations);
        if self.observe_allowed {
            let allowed = app.add_observation_columns("allowed", 2 * n_tickers);
            // After every mask system, beside the masks' export.
            app.insert_resource(AllowedColumns(allowed));
            crate::env::add_mask_readers(app, write_allowed_columns);
        }
    }

    /// The market part goes last, after the columns every other plugin added in `build`.
    fn finish(&self, app: &mut App) {
        let market = app.world().resource::<MarketData>();
        let width = market_dim(self.layout, market.n_tickers(), market.n_features());
        let columns = app.world_mut().resource_mut::<ObservationColumns>().add("market", width);
        app.world_mut().resource_mut::<ObservationConfig>().market = columns;
    }
}

/// Writes the observation row of every targeted env at its current bar.
///
/// Reads [`Portfolio`], [`Positions`], [`PdtState`], [`EpisodeClock`], [`MarketData`],
/// [`EnvParams`] (PDT and daily-cap settings, fill timing); writes the `portfolio` and
/// `market` blocks of [`StepRows::obs_row`]. Runs where observation systems run (after
/// every step, at every episode start).
pub fn write_observations(
    config: Res<ObservationConfig>,
    params: Res<EnvParams>,
    market: Res<MarketData>,
    targets: Res<Targets>,
    mut rows: ResMut<StepRows>,
    mut bars: Local<Vec<u32>>,
    envs: Query<(&EnvId, &Portfolio, &Positions, &PdtState, &EpisodeClock)>,
) {
    let ctx = ObservationContext { market: &market, config: &config, params: &params };
    if !targets.is_all() {
        // The few envs that restart in this step.
        targets.for_each(&envs, |(id, portfolio, positions, pdt, clock)| {
            write_row(rows.obs_row(id.index()), &ctx, portfolio, &positions.0, pdt, clock);
        });
        return;
    }
    // Every env, in table order: the step's hot path. Materialized rows copy a feature row
    // of a random bar per env, from memory rather than cache: ask for the rows of the envs
    // a few places ahead while copying this one.
    let prefetch = config.layout == ObservationLayout::Materialized;
    if prefetch {
        bars.clear();
        bars.extend(envs.iter().map(|(.., clock)| clock.bar));
    }
    for (n, (id, portfolio, positions, pdt, clock)) in envs.iter().enumerate() {
        if prefetch {
            prefetch_ahead(&bars, n, |bar| market.feature_row(bar));
        }
        write_row(rows.obs_row(id.index()), &ctx, portfolio, &positions.0, pdt, clock);
    }
}

/// Writes whether a buy (the first d columns) and a sell (the next d) of each ticker is
/// allowed at the coming decision, 1 or 0: the env's [`ActionMask`] once every plugin's
/// mask system has run.
///
/// Reads [`ActionMask`]; writes the `allowed` columns of [`StepRows::obs_row`]. Runs with
/// the masks' export (only with `environment.observe_costs`).
pub fn write_allowed_columns(
    columns: Res<AllowedColumns>,
    targets: Res<Targets>,
    mut rows: ResMut<StepRows>,
    envs: Query<(&EnvId, &ActionMask)>,
) {
    targets.for_each(&envs, |(id, mask)| {
        let row = &mut rows.obs_row(id.index())[columns.0.clone()];
        let d = row.len() / 2;
        for k in 0..d {
            row[k] = f32::from(u8::from(mask.allows(k, 1)));
            row[d + k] = f32::from(u8::from(mask.allows(k, 2)));
        }
    });
}

/// What the observation needs besides the env's own components.
pub struct ObservationContext<'a> {
    pub market: &'a MarketData,
    pub config: &'a ObservationConfig,
    pub params: &'a EnvParams,
}

/// Writes one env's portfolio state and market part at its current bar into `row`.
pub fn write_row(
    row: &mut [f32],
    ctx: &ObservationContext,
    portfolio: &Portfolio,
    positions: &[Position],
    pdt: &PdtState,
    clock: &EpisodeClock,
) {
    let d = positions.len();
    let t = clock.bar as usize;
    let closes = ctx.market.close_row(t);
    let equity = portfolio.equity;
    let inv_e = if equity > 0.0 { 1.0 / equity } else { 0.0 };
    let state = &mut row[ctx.config.state.clone()];
    state[0] = (portfolio.cash * inv_e) as f32;
    let (weights, rest) = state[1..].split_at_mut(d);
    let (unrealized, rest) = rest.split_at_mut(d);
    let ages = &mut rest[..d];
    for k in 0..d {
        let (pos, c) = (&positions[k], closes[k]);
        // Every term is computed and then masked: unused quotients (inf, NaN) are discarded.
        let held = pos.shares != 0.0;
        // A short gains when the price falls below what it sold at: the sign of the position.
        let ret = ((c / pos.avg_cost - 1.0) * pos.shares.signum()) as f32;
        // × 0.01 rather than / 100: a multiplication instead of a division, per ticker.
        let age = ((t as f64 - f64::from(pos.opened_bar)) * 0.01).min(10.0) as f32;
        weights[k] = (pos.shares * c * inv_e) as f32;
        // Masks rather than `if`: the compiler turns a select of two floats into a branch,
        // which random actions mispredict.
        let held_mask = u32::from(held).wrapping_neg();
        let ret_mask = held_mask & u32::from(pos.avg_cost > 0.0).wrapping_neg();
        unrealized[k] = f32::from_bits(ret.to_bits() & ret_mask);
        ages[k] = f32::from_bits(age.to_bits() & held_mask);
    }
    state[1 + 3 * d] = portfolio.drawdown() as f32;
    let params = ctx.params;
    let day = params.fill_day(ctx.market, t);
    state[2 + 3 * d] = if params.pdt.max_day_trades == 0 {
        0.0
    } else {
        let equity = portfolio.pdt_equity(&params.pdt, ctx.market.day(t), day);
        pdt.day_trades_left(equity, day, &params.pdt) as f32 / params.pdt.max_day_trades as f32
    };
    state[3 + 3 * d] = match params.max_trades_per_day {
        Some(cap) => cap.saturating_sub(portfolio.executed_on(day)) as f32 / cap as f32,
        None => 1.0,
    };
    let market = &mut row[ctx.config.market.clone()];
    match ctx.config.layout {
        ObservationLayout::Materialized => market.copy_from_slice(ctx.market.feature_row(t)),
        ObservationLayout::Index => market[0] = t as f32,
    }
}
