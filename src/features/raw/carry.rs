//! What the stateful indicators carry from one bar to the next, so that features can follow
//! a live feed bar by bar without recomputing the history (`ploutos trade`).
//!
//! Most features read a bounded window of bars (at most the last 101: `hurst_100` and
//! `variance_ratio`), and each window is evaluated on its own, oldest bar first (see
//! `window.rs`): their value at bar `t` is the same, to the bit, whether the series starts at
//! bar 0 or anywhere at least a window before `t`. The others depend on every bar since the
//! start: the EWM family (EMAs, MACD, RSI, TSI, force index), Wilder's ATR and ADX sums, the
//! OBV and VPT running sums, the day levels (pivots, 52-week high and low) and the running
//! sum of log returns whose differences give the long windows' means. A [`Carry`] holds the
//! state of each of those after the bars pushed so far; `compute_from(tail, carry)` resumes
//! them at the tail's first bar. The batch computation is the same code started from
//! [`Carry::start`], so the two cannot drift apart.

use super::Bar;
use super::ema::{Ewm, alpha_from_span};
use super::levels::{DAYS_52W, Pivots, TrailingExtreme};
use super::momentum::{Rsi, Tsi};
use super::trend::{Adx, Macd};
use super::volatility::Atr;
use super::volume::{Force, Obv, Vpt};

/// The state of every indicator that depends on all past bars, after the bars pushed so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Carry {
    /// The last bar pushed (the predecessor of the next one).
    pub(super) prev: Option<Bar>,
    pub(super) ema10: Ewm,
    pub(super) ema20: Ewm,
    pub(super) macd: Macd,
    pub(super) adx: Adx,
    pub(super) rsi7: Rsi,
    pub(super) rsi14: Rsi,
    pub(super) tsi: Tsi,
    pub(super) atr: Atr,
    pub(super) obv: Obv,
    pub(super) force: Force,
    pub(super) vpt: Vpt,
    pub(super) pivots: Pivots,
    pub(super) high_52w: TrailingExtreme,
    pub(super) low_52w: TrailingExtreme,
    /// Sum of the log returns `ln(c_k / c_{k-1})` of the bars pushed, in bar order: the
    /// prefix sum that the long windows' means are differences of.
    pub(super) log_prefix: f64,
}

impl Carry {
    /// The state before bar 0.
    pub(crate) fn start() -> Self {
        Self {
            prev: None,
            ema10: Ewm::new(alpha_from_span(10.0), 10),
            ema20: Ewm::new(alpha_from_span(20.0), 20),
            macd: Macd::new(),
            adx: Adx::new(14),
            rsi7: Rsi::new(7),
            rsi14: Rsi::new(14),
            tsi: Tsi::new(),
            atr: Atr::new(14),
            obv: Obv::default(),
            force: Force::new(),
            vpt: Vpt::default(),
            pivots: Pivots::new(),
            high_52w: TrailingExtreme::new(DAYS_52W, true),
            low_52w: TrailingExtreme::new(DAYS_52W, false),
            log_prefix: 0.0,
        }
    }

    /// Advances every state over `bar`, exactly as the batch computation steps over it.
    pub(crate) fn push(&mut self, bar: &Bar) {
        let prev = self.prev.as_ref();
        self.ema10.push(bar.close);
        self.ema20.push(bar.close);
        self.macd.push(bar.close);
        self.adx.push(prev, bar);
        self.rsi7.push(prev, bar);
        self.rsi14.push(prev, bar);
        self.tsi.push(prev, bar);
        self.atr.push(prev, bar);
        self.obv.push(prev, bar);
        self.force.push(prev, bar);
        self.vpt.push(prev, bar);
        self.pivots.push(prev, bar);
        self.high_52w.push(bar.high, bar.day);
        self.low_52w.push(bar.low, bar.day);
        if let Some(p) = prev {
            self.log_prefix += (bar.close / p.close).ln();
        }
        self.prev = Some(*bar);
    }

    /// The prefix sum of log returns up to and including `first`, the bar that follows the
    /// ones pushed: where the long windows' prefix sums of a tail starting at `first` begin.
    pub(super) fn log_prefix_through(&self, first: &Bar) -> f64 {
        self.prev.map_or(0.0, |p| self.log_prefix + (first.close / p.close).ln())
    }
}
