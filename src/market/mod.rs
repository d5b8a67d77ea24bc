//! Market data: bar series, CSV loading and validation, trading calendar, aligned
//! multi-ticker panels, chronological splits and the built-in synthetic market.
