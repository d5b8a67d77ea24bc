//! Features that follow a live feed: one bar in, that bar's features out, equal to the bit
//! to what the batch computation gives for the same bar over the whole history.
//!
//! A trader cannot recompute ten years of features at every bar, and must not compute them
//! with other code than training did (the classic training/serving mismatch). So
//! [`IncrementalFeatures`] keeps two things: the last bars (a tail of at most
//! `2 × TAIL_BARS`), and the state that the stateful indicators carry from bar 0 up to the
//! tail's first bar (EMAs, Wilder sums, running sums, day levels: `raw::Carry`). The features
//! of the newest bar are the batch code run over the tail, resumed from that state: the
//! windowed features only read the tail's last 101 bars, each window evaluated oldest bar
//! first as in the batch, and the stateful ones continue exactly where the history left off.
//! When the tail reaches `2 × TAIL_BARS`, its oldest bars are pushed into the state and
//! dropped, so a bar costs `O(TAIL_BARS)` whatever the history's length.

use super::observation::{FeatureScaler, scale_free};
use super::raw::{Bar, Carry, FeatureError, N_FEATURES, RawFeatures, RawInput, compute_from};

/// Bars kept after a trim: at least the longest window any feature reads (101 bars, the
/// 100 log returns of `hurst_100` and `variance_ratio`) and the scale-free step's (21 bars:
/// 20-bar changes of OBV and VPT), with room to spare.
const TAIL_BARS: usize = 128;

/// One ticker's features, bar by bar (see the module docs).
#[derive(Debug, Clone)]
pub struct IncrementalFeatures {
    /// The state after every bar before the tail.
    carry: Carry,
    /// Bars pushed before the tail.
    dropped: usize,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    day: Vec<u32>,
}

impl Default for IncrementalFeatures {
    fn default() -> Self {
        Self::new()
    }
}

impl IncrementalFeatures {
    /// No bars yet.
    pub fn new() -> Self {
        Self {
            carry: Carry::start(),
            dropped: 0,
            open: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            close: Vec::new(),
            volume: Vec::new(),
            day: Vec::new(),
        }
    }

    /// Bars pushed so far.
    pub fn n_bars(&self) -> usize {
        self.dropped + self.close.len()
    }

    /// Appends the next bar.
    ///
    /// # Errors
    ///
    /// [`FeatureError::DayDecreasing`] (nothing appended) if its day ordinal is smaller than
    /// the previous bar's.
    pub fn push(&mut self, bar: Bar) -> Result<(), FeatureError> {
        if self.day.last().is_some_and(|&d| bar.day < d) {
            return Err(FeatureError::DayDecreasing { bar: self.n_bars() });
        }
        self.open.push(bar.open);
        self.high.push(bar.high);
        self.low.push(bar.low);
        self.close.push(bar.close);
        self.volume.push(bar.volume);
        self.day.push(bar.day);
        if self.close.len() >= 2 * TAIL_BARS {
            self.trim();
        }
        Ok(())
    }

    /// Appends every bar of `input`, oldest first (a history to start from).
    ///
    /// # Errors
    ///
    /// As [`IncrementalFeatures::push`]; the bars before the faulty one stay appended.
    pub fn extend(&mut self, input: &RawInput) -> Result<(), FeatureError> {
        input.validate()?;
        (0..input.len()).try_for_each(|t| self.push(input.bar(t)))
    }

    /// The raw features of the newest bar, or `None` before the first.
    pub fn last_raw(&self) -> Option<[f64; N_FEATURES]> {
        let n = self.close.len();
        (n > 0).then(|| self.tail_raw().row(n - 1))
    }

    /// The observation features of the newest bar (scale-free, then standardized with the
    /// model's `scaler`, clipped, `NaN` → 0), or `None` before the first: the row the
    /// batch pipeline gives this bar.
    pub fn last_observation(&self, scaler: &FeatureScaler) -> Option<[f32; N_FEATURES]> {
        self.last_rows(scaler).map(|(_, observation)| observation)
    }

    /// The newest bar's raw features and observation row together (one computation), or
    /// `None` before the first bar.
    pub fn last_rows(&self, scaler: &FeatureScaler) -> Option<([f64; N_FEATURES], [f32; N_FEATURES])> {
        let n = self.close.len();
        if n == 0 {
            return None;
        }
        let raw = self.tail_raw();
        let scale_free = scale_free(&raw, &self.close, &self.volume);
        Some((raw.row(n - 1), scaler.transform_row(&scale_free.row(n - 1))))
    }

    /// The tail's bars as the feature code takes them.
    fn tail(&self) -> RawInput<'_> {
        RawInput {
            open: &self.open,
            high: &self.high,
            low: &self.low,
            close: &self.close,
            volume: &self.volume,
            day: &self.day,
        }
    }

    /// The batch computation over the tail, resumed from the state before it.
    fn tail_raw(&self) -> RawFeatures {
        compute_from(&self.tail(), &self.carry)
    }

    /// Pushes all but the last `TAIL_BARS` bars into the state and drops them.
    fn trim(&mut self) {
        let cut = self.close.len() - TAIL_BARS;
        let mut carry = self.carry.clone();
        let tail = self.tail();
        (0..cut).for_each(|t| carry.push(&tail.bar(t)));
        self.carry = carry;
        for column in [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume] {
            column.drain(..cut);
        }
        self.day.drain(..cut);
        self.dropped += cut;
    }
}
