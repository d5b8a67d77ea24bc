//! The user-side circuit breaker of `examples/custom_market_rule.rs`, built into an env with
//! `TradingEnv::with_plugins`: buys are refused on a crash day from the close that trips it
//! to the day's end, and never on a normal day.

#[allow(dead_code, reason = "the example's main is not called here")]
#[path = "../examples/custom_market_rule.rs"]
mod example;

use example::{breaker_refusals, crash_market};

#[test]
fn breaker_refuses_buys_for_the_rest_of_a_crash_day() {
    let refused = breaker_refusals(crash_market(true));
    // The index closes 7.5% down at bar 9 (day 1 = bars 7..=13). Decisions at bars 9..=12
    // fill on day 1 and are refused (2 tickers each); the decision at 13 fills on day 2.
    let want: Vec<u32> = (0..20).map(|t| if (9..=12).contains(&t) { 2 } else { 0 }).collect();
    assert_eq!(refused, want);
}

#[test]
fn breaker_stays_quiet_on_normal_days() {
    assert!(breaker_refusals(crash_market(false)).iter().all(|&n| n == 0));
}
