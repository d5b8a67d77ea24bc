//! Client order ids derived from what an order is, not from when it was sent: (run,
//! session tag, bar, ticker, leg). A restart that decides the same bar again derives the
//! same id, and the broker refuses it as a duplicate, so no order is ever doubled.

/// The two orders one decision can make on one ticker: a target position that goes through
/// zero closes the position (`Close`) and opens the other side (`Open`); every other order
/// is one leg (`Close` for an exit, `Open` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Close,
    Open,
}

/// The most characters a client order id may have (Alpaca's limit).
pub const MAX_ID_LEN: usize = 128;

/// `pl-<run><kept>-<bar time>-<ticker>-<c|o>`: the run name, `kept` and the ticker with
/// anything but ASCII letters, digits, `.`, `-` and `_` replaced by `_`; only the run is cut
/// so that the id fits [`MAX_ID_LEN`], so `kept` (the session's tag and the order's purpose,
/// e.g. `.k3x9a2-flatten`: what tells sessions and purposes apart) always stays whole;
/// `bar_time` is the decision bar's open, Unix seconds.
pub fn client_order_id(run: &str, kept: &str, bar_time: i64, ticker: &str, leg: Leg) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).collect()
    };
    let tail = format!("{}-{bar_time}-{}-{}", clean(kept), clean(ticker), if leg == Leg::Close { 'c' } else { 'o' });
    let room = MAX_ID_LEN.saturating_sub(3 + tail.len());
    let run: String = clean(run).chars().take(room).collect();
    format!("pl-{run}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_fit() {
        let id = |run: &str, kept: &str, bar: i64, ticker: &str, leg: Leg| client_order_id(run, kept, bar, ticker, leg);
        let a = id("ppo 2026-12-04", "", 1_733_300_000, "BRK.B", Leg::Open);
        assert_eq!(a, "pl-ppo_2026-12-04-1733300000-BRK.B-o");
        assert_ne!(a, id("ppo 2026-12-04", "", 1_733_300_000, "BRK-B", Leg::Open));
        assert_eq!(a, id("ppo 2026-12-04", "", 1_733_300_000, "BRK.B", Leg::Open));
        assert_ne!(a, id("ppo 2026-12-04", "", 1_733_300_000, "BRK.B", Leg::Close));
        assert_ne!(a, id("ppo 2026-12-04", "", 1_733_303_600, "BRK.B", Leg::Open));
        assert_ne!(a, id("ppo 2026-12-04", "", 1_733_300_000, "BRK.A", Leg::Open));
        assert_eq!(id("r", ".k3x9a2", 7, "T", Leg::Open), "pl-r.k3x9a2-7-T-o");
        let long = id(&"r".repeat(500), "", i64::MAX, "TICKER", Leg::Close);
        assert_eq!(long.len(), MAX_ID_LEN);
        assert!(long.ends_with(&format!("-{}-TICKER-c", i64::MAX)));
        assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
        // A long run name is cut, never the session's tag or the purpose after it.
        for kept in [".k3x9a2", ".k3x9a2-flatten"] {
            let tagged = id(&"r".repeat(500), kept, i64::MAX, "TICKER", Leg::Close);
            assert_eq!(tagged.len(), MAX_ID_LEN);
            assert!(tagged.ends_with(&format!("r{kept}-{}-TICKER-c", i64::MAX)), "{tagged}");
        }
    }
}
