//! Observation rows: the portfolio state, then the market part.
//!
//! State, `3 × n_tickers + 4` floats:
//!
//! | index | value |
//! | --- | --- |
//! | 0 | cash / equity |
//! | 1 .. 1+d | each position's weight, shares × close / equity |
//! | 1+d .. 1+2d | each position's unrealized return, close / average cost − 1 (0 when flat) |
//! | 1+2d .. 1+3d | bars since each position opened / 100, capped at 10 (0 when flat) |
//! | 1+3d | drawdown from the episode's peak equity |
//! | 2+3d | day trades left under the PDT rule / `max_day_trades` (1 when the rule does not bind) |
//! | 3+3d | orders left today under the daily cap / cap (1 without a cap) |
//!
//! Then, with the `materialized` layout, the observation features of every ticker at bar t
//! (`n_tickers × n_features`, ticker-major); with the `index` layout, the bar index t as a
//! float (exact below 2^24 bars), from which the learner gathers the same features from
//! [`crate::env::MarketData::feature_table`].

use crate::config::{ObservationLayout, PdtConfig};
use crate::env::{EpisodeClock, MarketData, PdtState, Portfolio, Position};

/// Floats of the portfolio state for `n_tickers`.
pub const fn state_dim(n_tickers: usize) -> usize {
    3 * n_tickers + 4
}

/// Observation width for a layout.
pub fn obs_dim(layout: ObservationLayout, n_tickers: usize, n_features: usize) -> usize {
    state_dim(n_tickers)
        + match layout {
            ObservationLayout::Materialized => n_tickers * n_features,
            ObservationLayout::Index => 1,
        }
}

/// What the observation needs besides the env's own components.
pub struct ObservationContext<'a> {
    pub market: &'a MarketData,
    pub layout: ObservationLayout,
    pub pdt: &'a PdtConfig,
    pub max_trades_per_day: Option<u32>,
    /// Fill bar of a decision at t, for the trading day the next order would count on.
    pub fill_offset: usize,
}

/// Writes one env's observation at its current bar into `row`.
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
    row[0] = (portfolio.cash * inv_e) as f32;
    let (weights, rest) = row[1..].split_at_mut(d);
    let (unrealized, rest) = rest.split_at_mut(d);
    let ages = &mut rest[..d];
    for k in 0..d {
        let (pos, c) = (&positions[k], closes[k]);
        // Every term is computed and then masked: unused quotients (inf, NaN) are discarded.
        let held = pos.shares > 0.0;
        let ret = (c / pos.avg_cost - 1.0) as f32;
        // × 0.01 rather than / 100: a multiplication instead of a division, per ticker.
        let age = ((t as f64 - f64::from(pos.opened_bar)) * 0.01).min(10.0) as f32;
        weights[k] = (pos.shares * c * inv_e) as f32;
        // Masks rather than `if`: the compiler turns a select of two floats into a branch,
        // which random actions mispredict (it was the row's hottest spot).
        let held_mask = u32::from(held).wrapping_neg();
        let ret_mask = held_mask & u32::from(pos.avg_cost > 0.0).wrapping_neg();
        unrealized[k] = f32::from_bits(ret.to_bits() & ret_mask);
        ages[k] = f32::from_bits(age.to_bits() & held_mask);
    }
    row[1 + 3 * d] = portfolio.drawdown() as f32;
    let day = ctx.market.day((t + ctx.fill_offset).min(ctx.market.n_bars() - 1));
    row[2 + 3 * d] = if ctx.pdt.max_day_trades == 0 {
        0.0
    } else {
        crate::rules::pdt::day_trades_left(pdt, equity, day, ctx.pdt) as f32 / ctx.pdt.max_day_trades as f32
    };
    row[3 + 3 * d] = match ctx.max_trades_per_day {
        Some(cap) => cap.saturating_sub(portfolio.executed_on(day)) as f32 / cap as f32,
        None => 1.0,
    };
    let s = state_dim(d);
    match ctx.layout {
        ObservationLayout::Materialized => row[s..].copy_from_slice(ctx.market.feature_row(t)),
        ObservationLayout::Index => row[s] = t as f32,
    }
}
