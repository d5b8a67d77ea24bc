//! Price-action features of the single bar (and its predecessor): candle body, shadows, the
//! opening gap, the true range and the bar's range relative to its close.
//!
//! These are plain pandas expressions in FEATURES.md; they are computed exactly as written,
//! so a zero open or close gives `NaN` (never cleaned or clipped).

use super::volatility::true_range;
use super::window::div_or_nan;
use super::{Feature, RawFeatures, RawInput};

/// Writes the six price-action features.
pub(super) fn compute(input: &RawInput, out: &mut RawFeatures) {
    let (o, h, l, c) = (input.open, input.high, input.low, input.close);
    let [body, upper, lower, gap, tr, range] = out.cols_mut([
        Feature::BodySize,
        Feature::UpperShadow,
        Feature::LowerShadow,
        Feature::Gap,
        Feature::TrueRange,
        Feature::DailyRange,
    ]);
    for t in 0..c.len() {
        body[t] = div_or_nan(c[t] - o[t], o[t]);
        upper[t] = div_or_nan(h[t] - o[t].max(c[t]), c[t]);
        lower[t] = div_or_nan(o[t].min(c[t]) - l[t], c[t]);
        range[t] = div_or_nan(h[t] - l[t], c[t]);
        if t > 0 {
            gap[t] = div_or_nan(o[t], c[t - 1]) - 1.0;
            tr[t] = true_range(input, t);
        }
    }
}
