//! From a config's `data` section to what the envs share: the aligned panel, its split,
//! the 55 raw features per ticker, the observation features standardized on the training
//! split, and the env's [`MarketData`].
//!
//! Features are computed once over the whole panel (each only looks backward); the
//! standardization statistics come from the training bars of every ticker pooled, so
//! nothing of the validation or test periods leaks into what the agent sees.

use crate::config::{DataConfig, TrainingConfig};
use crate::env::{EpisodeBounds, MarketColumns, MarketData};
use crate::features::{FeatureScaler, RawFeatures, RawInput, compute_table, raw::Feature, scale_free};
use crate::market::{DataError, Panel, PanelReport, Split, load_panel};
use crate::vec_env::EnvOptions;
use std::ops::Range;

/// Which split an env runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitPart {
    Train,
    Validation,
    Test,
    /// Every bar after the first `MIN_BARS` warm-up bars (replays of whole files).
    All,
}

impl std::str::FromStr for SplitPart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Self::Train),
            "validation" => Ok(Self::Validation),
            "test" => Ok(Self::Test),
            "all" => Ok(Self::All),
            other => Err(format!("unknown split {other:?}: expected train, validation, test or all")),
        }
    }
}

impl SplitPart {
    /// How messages name the split.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "training",
            Self::Validation => "validation",
            Self::Test => "test",
            Self::All => "whole",
        }
    }
}

/// Everything derived from the market data, shared by training, evaluation and backtests.
pub struct Dataset {
    pub panel: Panel,
    pub report: PanelReport,
    pub split: Split,
    /// Raw features per ticker, in `panel.tickers()` order.
    pub raw: Vec<RawFeatures>,
    /// Standardization fitted on the training split.
    pub scaler: FeatureScaler,
    /// The env's view of the whole panel.
    pub market: MarketData,
}

impl Dataset {
    /// Loads the configured data (synthetic or CSV) and derives everything.
    ///
    /// # Errors
    /// [`DataError`] for unreadable or invalid data, or a split with no training bars.
    pub fn load(cfg: &DataConfig) -> Result<Self, DataError> {
        let (panel, report) = load_panel(cfg)?;
        let split = Split::new(&panel, &cfg.split)?;
        Ok(Self::build(panel, report, split, None))
    }

    /// Derives features and market arrays for `panel`. With `scaler`, reuses saved
    /// standardization statistics (a trained model's) instead of fitting new ones.
    pub fn build(panel: Panel, report: PanelReport, split: Split, scaler: Option<FeatureScaler>) -> Self {
        let (n_bars, d) = (panel.n_bars(), panel.n_tickers());
        let day = panel.day().to_vec();
        let inputs: Vec<RawInput> = (0..d)
            .map(|k| RawInput {
                open: panel.open(k),
                high: panel.high(k),
                low: panel.low(k),
                close: panel.close(k),
                volume: panel.volume(k),
                day: &day,
            })
            .collect();
        let raw = compute_table(&inputs);
        let scale_free: Vec<_> =
            raw.iter().enumerate().map(|(k, r)| scale_free(r, panel.close(k), panel.volume(k))).collect();
        let scaler = scaler.unwrap_or_else(|| {
            let fitted = FeatureScaler::fit_many(scale_free.iter().map(|f| (f, split.train.clone())));
            let ts = panel.timestamps();
            let train = split.train.start..split.train.end.min(ts.len());
            FeatureScaler { fitted_on: (!train.is_empty()).then(|| (ts[train.start], ts[train.end - 1])), ..fitted }
        });
        let obs: Vec<_> = scale_free.iter().map(|f| scaler.transform(f)).collect();
        let n_features = crate::features::N_FEATURES;
        let mean_volume = panel.mean_volume_20(); // [n_tickers, n_bars]
        let mut c = MarketColumns { day, ..Default::default() };
        let invented = if panel.invented().is_empty() { vec![0; n_bars] } else { panel.invented().to_vec() };
        for v in [&mut c.open, &mut c.close, &mut c.atr_frac, &mut c.ret_std, &mut c.mean_volume] {
            v.reserve(n_bars * d);
        }
        c.features.reserve(n_bars * d * n_features);
        for t in 0..n_bars {
            for k in 0..d {
                let close = panel.close(k)[t];
                c.open.push(panel.open(k)[t]);
                c.close.push(close);
                c.atr_frac.push(raw[k].column(Feature::Atr14)[t] / close);
                c.ret_std.push(raw[k].column(Feature::RetStd20)[t]);
                c.mean_volume.push(mean_volume[k * n_bars + t]);
                c.features.extend_from_slice(obs[k].row(t));
            }
        }
        let volume = (0..n_bars).flat_map(|t| (0..d).map(move |k| (k, t))).map(|(k, t)| panel.volume(k)[t]).collect();
        // Bar-major (ratio, dividend) for the account, only when some ticker has an event.
        let actions = (0..d)
            .map(|k| panel.corporate_actions(k))
            .collect::<Option<Vec<_>>>()
            .map(|cols| (0..n_bars).flat_map(|t| cols.iter().map(move |(r, v)| (r[t], v[t]))).collect::<Vec<_>>());
        let market = MarketData::new(n_bars, d, n_features, c)
            .and_then(|m| m.with_invented_bars(invented))
            .and_then(|m| m.with_volume(volume))
            .and_then(|m| m.with_tickers(panel.tickers()))
            .and_then(|m| match actions {
                Some(actions) => m.with_corporate_actions(actions),
                None => Ok(m),
            })
            .expect("columns built to shape above");
        Self { panel, report, split, raw, scaler, market }
    }

    /// Bars of a split part.
    pub fn range(&self, part: SplitPart) -> Range<usize> {
        match part {
            SplitPart::Train => self.split.train.clone(),
            SplitPart::Validation => self.split.validation.clone(),
            SplitPart::Test => self.split.test.clone(),
            SplitPart::All => crate::features::MIN_BARS.min(self.panel.n_bars())..self.panel.n_bars(),
        }
    }

    /// Options of the envs `ploutos train` steps (and the Python package's `make_vec`):
    /// `n_envs` envs with random episode starts over the bars of `part`, auto-reset, on at
    /// most `training.threads` threads, with the built-in action masks when
    /// `training.action_masking`.
    ///
    /// # Errors
    /// [`DataError::Split`] when `part` holds fewer than 2 bars.
    pub fn env_options(
        &self,
        training: &TrainingConfig,
        part: SplitPart,
        n_envs: usize,
    ) -> Result<EnvOptions, DataError> {
        let bounds = Self::bounds(self.range(part), true)
            .ok_or_else(|| DataError::Split(format!("the {} split holds fewer than 2 bars", part.name())))?;
        Ok(EnvOptions {
            threads: training.threads,
            action_masks: training.action_masking,
            ..EnvOptions::training(n_envs, bounds)
        })
    }

    /// Episode bounds over `range`, or `None` when it holds fewer than 2 bars.
    pub fn bounds(range: Range<usize>, random_start: bool) -> Option<EpisodeBounds> {
        (range.end >= range.start + 2).then(|| EpisodeBounds {
            first: range.start as u32,
            last: (range.end - 1) as u32,
            random_start,
        })
    }
}
