//! Owned OHLCV bars for the feature tests and the features bench (which includes this file
//! with `#[path]`): one definition of the bars, of their [`RawInput`] view and of the
//! random walk they are drawn from.

#![allow(dead_code, reason = "each test uses its own part")]

use ploutos::features::{RawFeatures, RawInput, compute_raw};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One ticker's bars, column by column.
#[derive(Debug, Clone, Default)]
pub struct Bars {
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    /// Trading-day ordinal of each bar.
    pub day: Vec<u32>,
}

impl Bars {
    /// A random walk of `n` bars, `bars_per_day` to a day, from `seed`: opens within 0.5%
    /// of the last close, closes within 2% of the open, wicks up to 1%, and one bar in 20
    /// without volume (an edge case every feature must take).
    pub fn random_walk(n: usize, bars_per_day: u32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut b = Bars::default();
        let mut price = 100.0;
        for t in 0..n {
            let o: f64 = price * (1.0 + rng.random_range(-0.005..0.005));
            let c: f64 = o * (1.0 + rng.random_range(-0.02..0.02));
            let h = o.max(c) * (1.0 + rng.random_range(0.0..0.01));
            let l = o.min(c) * (1.0 - rng.random_range(0.0..0.01));
            let v = if rng.random_range(0..20) == 0 { 0.0 } else { rng.random_range(1e4..1e6f64).round() };
            b.open.push(o);
            b.high.push(h);
            b.low.push(l);
            b.close.push(c);
            b.volume.push(v);
            b.day.push(t as u32 / bars_per_day);
            price = c;
        }
        b
    }

    /// Bars with these closes: open = close, high/low ±0.1%, volume 1,000.
    pub fn from_closes(close: Vec<f64>, day: Vec<u32>) -> Self {
        let n = close.len();
        Bars {
            open: close.clone(),
            high: close.iter().map(|c| c * 1.001).collect(),
            low: close.iter().map(|c| c * 0.999).collect(),
            close,
            volume: vec![1000.0; n],
            day,
        }
    }

    /// The bars as the feature code takes them.
    pub fn input(&self) -> RawInput<'_> {
        RawInput::new(&self.open, &self.high, &self.low, &self.close, &self.volume, &self.day).expect("valid bars")
    }

    /// The 55 raw features of these bars.
    pub fn raw(&self) -> RawFeatures {
        compute_raw(&self.input())
    }
}
