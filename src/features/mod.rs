//! The 55 raw technical features (contract: FEATURES.md) and the observation features the
//! agent sees.
//!
//! * [`raw`]: the 55 indicators exactly as FEATURES.md (and `ta` 0.11.0) define them, in
//!   `f64`, `NaN` where undefined: [`compute_raw`] for one ticker, [`compute_table`] for
//!   many in parallel.
//! * [`incremental`]: the same features bar by bar for a live feed, equal to the batch's to
//!   the bit, at a cost per bar that does not grow with the history ([`IncrementalFeatures`]).
//! * [`observation`]: scale-free transforms of the raw values, standardized with statistics
//!   fitted on the training split only ([`FeatureScaler`]), clipped, `NaN` → 0, as `f32`.

pub mod incremental;
pub mod observation;
pub mod raw;

pub use incremental::IncrementalFeatures;
pub use observation::{FeatureScaler, ObservationFeatures, ScaleFreeFeatures, observation_features, scale_free};
pub use raw::{
    Bar, FEATURE_NAMES, Feature, FeatureError, FeatureKey, N_FEATURES, RawFeatures, RawInput, compute_raw,
    compute_table,
};

/// Bars a series needs so that every feature has at least one value (`hurst_100` and
/// `variance_ratio` first appear at bar 100).
pub const MIN_BARS: usize = 101;
