//! The 55 raw technical features (contract: FEATURES.md) and the observation features the
//! agent sees.

/// Bars a series needs so that every feature has at least one value (`hurst_100` and
/// `variance_ratio` first appear at bar 100).
pub const MIN_BARS: usize = 101;
