//! The built-in synthetic market: the default data source, so training needs no download.
//!
//! It reproduces the stylized facts an agent must cope with, after the seed guide's "data
//! augmentation" advice to train across bull, bear and recovery regimes:
//!
//! - **Regimes**: a daily Markov chain over bull (mean 2 years), bear (mean ~6 months, high
//!   volatility) and recovery (mean ~1 year) sets the market's drift and volatility.
//! - **Correlation**: each ticker's log-return is `beta × market + alpha + idiosyncratic`;
//!   betas and idiosyncratic volatilities follow the default tickers' character (MSTR, TSLA
//!   high beta, SPY ≈ the market). Unknown tickers get parameters drawn from the seed.
//! - **Fat tails**: innovations are Student-t with 5 degrees of freedom scaled to unit
//!   variance (excess kurtosis 6), drawn exactly as `Z / sqrt(χ²₅ / 5)` from normals;
//!   the unit tests check the draws against `statrs`'s Student-t CDF.
//! - **Volatility clustering**: GARCH(1,1) variance multipliers (α 0.06, β 0.92) on both the
//!   market and each ticker's idiosyncratic part.
//! - **Intraday shape**: hourly bars get a U-shaped volume profile and a milder U-shaped
//!   volatility profile; the first bar of each day opens with an overnight gap.
//! - **Planted trends** (off by default, `data.synthetic.trend`): each ticker gets its own
//!   drift of `±trend` a year whose sign flips at random, on average every `trend_days`
//!   days: a stationary edge that moving averages reveal with a lag, so that a short
//!   training run has something to learn beyond the regimes (`config/default.ron` uses it).
//! - **Valid OHLC**: `high`/`low` extend beyond open/close by half-normal amounts, prices
//!   stay positive (log-returns), volumes are whole shares ≥ 0.
//!
//! Calendar: `round(years × 252)` NYSE sessions from `data.synthetic.start` (weekends,
//! holidays and special closures skipped, [`super::nyse`]), so that a year of bars is a
//! calendar year, as the metrics' 252 trading days a year assume; 7 hourly bars a day at
//! 09:30..15:30 New York time with the EST/EDT offset of the date (half days too: the
//! synthetic market trades them whole), or one daily bar at midnight New York.
//!
//! Determinism: everything derives from `data.synthetic.seed` through `ChaCha8Rng` streams —
//! stream 0 for the market path, stream `k + 1` for ticker `k` — and nothing runs in
//! parallel, so the bars are the same on any machine and any thread count. Adding a ticker
//! at the end leaves the others' bars unchanged.

use super::{Panel, calendar};
use crate::config::{DataConfig, Interval};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Degrees of freedom of the Student-t innovations.
const NU: usize = 5;
/// GARCH(1,1) news coefficient.
const GARCH_ALPHA: f64 = 0.06;
/// GARCH(1,1) persistence coefficient.
const GARCH_BETA: f64 = 0.92;
/// Market volatility, annualised, before the regime multiplier.
const MARKET_VOL: f64 = 0.16;
/// Overnight gap volatility as a share of one day's volatility.
const GAP_SHARE: f64 = 0.35;
/// Hourly volatility profile (U-shaped), normalised below so its mean square is 1.
const HOURLY_VOL: [f64; 7] = [1.45, 1.0, 0.85, 0.8, 0.85, 0.95, 1.2];
/// Hourly volume profile (U-shaped: open and closing auction), normalised to mean 1.
const HOURLY_VOLUME: [f64; 7] = [1.8, 1.0, 0.8, 0.7, 0.75, 0.95, 1.6];

/// A market regime: annual log-drift, volatility multiplier and mean duration in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Regime {
    Bull,
    Bear,
    Recovery,
}

impl Regime {
    fn drift(self) -> f64 {
        match self {
            Regime::Bull => 0.18,
            Regime::Bear => -0.35,
            Regime::Recovery => 0.25,
        }
    }

    fn vol_mult(self) -> f64 {
        match self {
            Regime::Bull => 0.85,
            Regime::Bear => 1.7,
            Regime::Recovery => 1.15,
        }
    }

    /// Daily Markov transition: stays with probability `1 - 1/mean_days`.
    fn next(self, u: f64, v: f64) -> Regime {
        let (mean_days, leave_to) = match self {
            Regime::Bull => (500.0, Regime::Bear),
            Regime::Bear => (130.0, Regime::Recovery),
            Regime::Recovery => (250.0, if v < 0.8 { Regime::Bull } else { Regime::Bear }),
        };
        if u < 1.0 / mean_days { leave_to } else { self }
    }
}

/// One ticker's character.
#[derive(Debug, Clone, Copy)]
struct Profile {
    beta: f64,
    idio_vol: f64,
    alpha: f64,
    price: f64,
    daily_volume: f64,
}

/// Profiles of the default tickers (prices near their early-2015 levels).
fn preset(ticker: &str) -> Option<Profile> {
    let p = |beta, idio_vol, alpha, price, daily_volume| Profile { beta, idio_vol, alpha, price, daily_volume };
    Some(match ticker {
        "NVDA" => p(1.7, 0.35, 0.10, 20.0, 4.0e7),
        "TSLA" => p(1.9, 0.45, 0.05, 14.0, 9.0e7),
        "AMD" => p(1.8, 0.40, 0.05, 2.7, 6.0e7),
        "MSTR" => p(2.2, 0.55, 0.05, 16.0, 5.0e6),
        "MSFT" => p(1.0, 0.15, 0.04, 46.0, 3.0e7),
        "AAPL" => p(1.1, 0.17, 0.03, 27.0, 5.0e7),
        "GOOGL" => p(1.05, 0.18, 0.02, 26.0, 3.0e7),
        "META" => p(1.25, 0.25, 0.02, 78.0, 2.0e7),
        "SPY" => p(1.0, 0.03, 0.0, 205.0, 8.0e7),
        "QQQ" => p(1.15, 0.05, 0.01, 102.0, 4.0e7),
        _ => return None,
    })
}

/// Standard normals by the polar method, keeping the spare draw.
struct Gauss {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Gauss {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self { rng, spare: None }
    }

    fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let x = 2.0 * self.uniform() - 1.0;
            let y = 2.0 * self.uniform() - 1.0;
            let s = x * x + y * y;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(y * f);
                return x * f;
            }
        }
    }

    /// Student-t with [`NU`] degrees of freedom, scaled to unit variance.
    fn student(&mut self) -> f64 {
        let z = self.normal();
        let chi2: f64 = (0..NU).map(|_| self.normal().powi(2)).sum();
        let nu = NU as f64;
        z / (chi2 / nu).sqrt() * ((nu - 2.0) / nu).sqrt()
    }
}

/// GARCH(1,1) variance multiplier with unconditional mean 1.
struct Garch {
    g: f64,
}

impl Garch {
    fn new() -> Self {
        Self { g: 1.0 }
    }

    /// Current volatility multiplier.
    fn vol(&self) -> f64 {
        self.g.sqrt()
    }

    /// Feeds the standardized innovation `z` drawn at the current variance.
    fn update(&mut self, z: f64) {
        self.g = (1.0 - GARCH_ALPHA - GARCH_BETA) + GARCH_ALPHA * self.g * z * z + GARCH_BETA * self.g;
    }
}

/// The market path shared by all tickers.
struct MarketPath {
    /// Market log-return per bar (drift included). `[n_bars]`
    ret: Vec<f64>,
    /// Market overnight gap per day (0 for the first day). `[n_days]`
    gap: Vec<f64>,
    /// Regime volatility multiplier per day. `[n_days]`
    vol_mult: Vec<f64>,
}

fn market_path(seed: u64, n_days: usize, bpd: usize, vol_profile: &[f64]) -> MarketPath {
    let mut g = Gauss::new(seed, 0);
    let dt = 1.0 / (252.0 * bpd as f64);
    let day_vol = MARKET_VOL / 252f64.sqrt();
    let mut garch = Garch::new();
    let mut regime = Regime::Bull;
    let mut ret = Vec::with_capacity(n_days * bpd);
    let mut gap = Vec::with_capacity(n_days);
    let mut vol_mult = Vec::with_capacity(n_days);
    for d in 0..n_days {
        if d > 0 {
            let (u, v) = (g.uniform(), g.uniform());
            regime = regime.next(u, v);
        }
        let m = regime.vol_mult();
        vol_mult.push(m);
        let z = g.student();
        gap.push(if d == 0 { 0.0 } else { GAP_SHARE * day_vol * m * garch.vol() * z });
        for &profile in vol_profile {
            let z = g.student();
            let sigma = MARKET_VOL * dt.sqrt() * m * profile * garch.vol();
            ret.push(regime.drift() * dt + sigma * z);
            garch.update(z);
        }
    }
    MarketPath { ret, gap, vol_mult }
}

/// Stream offset of the trend signs, so that a market without trend keeps its bars.
const TREND_STREAM: u64 = 1 << 32;

/// Ticker `k`'s planted trend per day (annual log-drift): `±trend`, the sign flipping with
/// probability `1 / trend_days` each day, drawn from its own stream. All zeros without trend.
fn trend_path(seed: u64, k: usize, n_days: usize, trend: f64, trend_days: f64) -> Vec<f64> {
    if trend == 0.0 {
        return vec![0.0; n_days];
    }
    let mut g = Gauss::new(seed, TREND_STREAM + k as u64);
    let mut sign = if g.uniform() < 0.5 { 1.0 } else { -1.0 };
    (0..n_days)
        .map(|d| {
            if d > 0 && g.uniform() < 1.0 / trend_days {
                sign = -sign;
            }
            sign * trend
        })
        .collect()
}

/// Generates the synthetic market for `cfg.tickers` (see the module docs).
///
/// Uses `cfg.synthetic` (seed, years, start), `cfg.tickers` and `cfg.interval`; ignores the
/// CSV and missing-bar settings (every ticker has every bar).
pub fn synthetic_panel(cfg: &DataConfig) -> Panel {
    let interval = cfg.interval;
    let bpd = interval.bars_per_day();
    let seed = cfg.synthetic.seed;
    let n_days = ((cfg.synthetic.years * 252.0).round() as usize).max(1);
    let dates = super::nyse::sessions_from(cfg.synthetic.start, n_days);
    let n_days = dates.len();
    let timestamps = calendar::session_timestamps(&dates, interval);
    let n = timestamps.len();

    let (vol_profile, volume_profile): (Vec<f64>, Vec<f64>) = match interval {
        Interval::Day => (vec![1.0], vec![1.0]),
        Interval::Hour => {
            let rms = (HOURLY_VOL.iter().map(|v| v * v).sum::<f64>() / 7.0).sqrt();
            let mean = HOURLY_VOLUME.iter().sum::<f64>() / 7.0;
            (HOURLY_VOL.iter().map(|v| v / rms).collect(), HOURLY_VOLUME.iter().map(|v| v / mean).collect())
        }
    };
    let market = market_path(seed, n_days, bpd, &vol_profile);
    let dt = 1.0 / (252.0 * bpd as f64);
    let day_scale = 1.0 / 252f64.sqrt();

    let n_tickers = cfg.tickers.len();
    let mut cols: [Vec<f64>; 5] = std::array::from_fn(|_| Vec::with_capacity(n * n_tickers));
    for (k, ticker) in cfg.tickers.iter().enumerate() {
        let mut g = Gauss::new(seed, k as u64 + 1);
        let drawn = Profile {
            beta: 0.7 + 0.9 * g.uniform(),
            idio_vol: 0.15 + 0.25 * g.uniform(),
            alpha: 0.05 * (g.uniform() - 0.5),
            price: 20.0 + 280.0 * g.uniform(),
            daily_volume: 10f64.powf(6.0 + 1.5 * g.uniform()),
        };
        let p = preset(ticker).unwrap_or(drawn);
        let trend = trend_path(seed, k, n_days, cfg.synthetic.trend, cfg.synthetic.trend_days);
        let mut garch = Garch::new();
        let mut close = p.price;
        for (d, &day_trend) in trend.iter().enumerate() {
            let m = market.vol_mult[d];
            let gap_idio = GAP_SHARE * p.idio_vol * day_scale * m * garch.vol() * g.student();
            // The first bar opens at the starting price.
            let gap = if d == 0 { 0.0 } else { p.beta * market.gap[d] + gap_idio };
            for (slot, (&vprof, &volprof)) in vol_profile.iter().zip(&volume_profile).enumerate() {
                let t = d * bpd + slot;
                let open = if slot == 0 { close * gap.exp() } else { close };
                let z = g.student();
                let idio_sigma = p.idio_vol * dt.sqrt() * m * vprof * garch.vol();
                let r = p.beta * market.ret[t] + (p.alpha + day_trend) * dt + idio_sigma * z;
                garch.update(z);
                close = open * r.exp();
                let market_sigma = MARKET_VOL * dt.sqrt() * m * vprof;
                let sigma = (p.beta * p.beta * market_sigma * market_sigma + idio_sigma * idio_sigma).sqrt();
                let high = open.max(close) * (0.5 * sigma * g.normal().abs()).exp();
                let low = open.min(close) * (-0.5 * sigma * g.normal().abs()).exp();
                let activity = 0.6 + 0.4 * (r.abs() / sigma).min(5.0);
                let volume =
                    (p.daily_volume / bpd as f64 * volprof * m * activity * (0.25 * g.normal() - 0.03).exp()).round();
                for (c, v) in cols.iter_mut().zip([open, high, low, close, volume]) {
                    c.push(v);
                }
            }
        }
    }
    Panel::from_columns(interval, cfg.tickers.clone(), timestamps, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{ContinuousCDF, StudentsT};

    #[test]
    fn student_draws_match_statrs_cdf() {
        // Kolmogorov–Smirnov distance between our draws (rescaled back to a standard t₅)
        // and statrs's Student-t CDF.
        let mut g = Gauss::new(42, 9);
        let scale = (NU as f64 / (NU as f64 - 2.0)).sqrt();
        let mut x: Vec<f64> = (0..20_000).map(|_| g.student() * scale).collect();
        x.sort_by(f64::total_cmp);
        let t = StudentsT::new(0.0, 1.0, NU as f64).unwrap();
        let n = x.len() as f64;
        let d = x
            .iter()
            .enumerate()
            .map(|(i, &v)| (t.cdf(v) - i as f64 / n).abs().max((t.cdf(v) - (i + 1) as f64 / n).abs()))
            .fold(0.0, f64::max);
        // 1% critical value ≈ 1.63 / sqrt(n) = 0.0115.
        assert!(d < 0.0115, "KS distance {d}");
    }

    #[test]
    fn garch_multiplier_has_unit_mean() {
        let mut g = Gauss::new(1, 1);
        let mut garch = Garch::new();
        let mut sum = 0.0;
        let n = 200_000;
        for _ in 0..n {
            sum += garch.g;
            let z = g.student();
            garch.update(z);
        }
        let mean = sum / n as f64;
        assert!((mean - 1.0).abs() < 0.1, "mean variance multiplier {mean}");
    }

    #[test]
    fn regimes_all_occur_over_ten_years() {
        let m = market_path(7, 2520, 1, &[1.0]);
        for r in [Regime::Bull, Regime::Bear, Regime::Recovery] {
            assert!(m.vol_mult.contains(&r.vol_mult()), "{r:?} never occurs");
        }
    }
}
