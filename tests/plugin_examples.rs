//! The plugin examples of `examples/`, each written with `ploutos::prelude` only, built into
//! an env with `TradingEnv::with_plugins` and checked for what its docs promise.

#[allow(dead_code, reason = "each example's main is not called here")]
#[path = "../examples/stop_loss.rs"]
mod stop_loss;

#[allow(dead_code, reason = "each example's main is not called here")]
#[path = "../examples/tiered_commission.rs"]
mod tiered_commission;

#[allow(dead_code, reason = "each example's main is not called here")]
#[path = "../examples/cooldown.rs"]
mod cooldown;

#[allow(dead_code, reason = "each example's main is not called here")]
#[path = "../examples/custom_reward.rs"]
mod custom_reward;

use ploutos::prelude::*;

mod stops {
    use super::stop_loss::{Stops, peak_then_drop_market, stop_env, stops};
    use ploutos::prelude::*;

    fn fresh() -> Stops {
        Stops { peak: vec![0.0], forced: 0 }
    }

    /// Buys at the first bar, then holds: the 10% drop from the $120 peak at bar 12 sells.
    #[test]
    fn trailing_stop_sells_a_held_position() {
        let mut env = stop_env(peak_then_drop_market(30), 1_000);
        env.reset(0);
        for t in 0..20 {
            env.step(&[u8::from(t == 0)]).unwrap();
        }
        let trades: Vec<(u32, Side)> = env.take_trades(0).iter().map(|t| (t.bar, t.side)).collect();
        assert_eq!(trades, vec![(1, Side::Buy), (13, Side::Sell)]);
        assert_eq!(stops(&mut env).forced, 1);
    }

    #[test]
    fn explicit_reset_puts_the_state_back() {
        let mut env = stop_env(peak_then_drop_market(30), 1_000);
        env.reset(0);
        for t in 0..10 {
            env.step(&[u8::from(t == 0)]).unwrap();
        }
        assert_eq!(stops(&mut env).peak, vec![120.0], "the peak close while held");
        env.reset(1);
        assert_eq!(stops(&mut env), fresh());
    }

    /// 15-bar episodes: the exit forced at bar 12 is counted until the episode ends, and
    /// the auto-reset that starts the next one clears it.
    #[test]
    fn auto_reset_puts_the_state_back() {
        let mut env = stop_env(peak_then_drop_market(30), 15);
        env.reset(0);
        for t in 0..14 {
            env.step(&[u8::from(t == 0)]).unwrap();
        }
        assert_eq!(stops(&mut env).forced, 1);
        let buffers = env.step(&[0]).unwrap();
        assert!(buffers.truncated[0], "the 15th step ends the episode");
        assert_eq!(stops(&mut env), fresh());
    }
}

mod commission {
    use super::tiered_commission::{PerShareCommission, config, env_with_commission};
    use ploutos::prelude::*;

    const IBKR: &str = "(per_share: 0.0035, min_per_order: 0.35, max_pct: 0.01)";

    /// Every fill pays the schedule's commission, and sells the regulatory fees on top.
    #[test]
    fn fills_pay_the_configured_commission() {
        let cfg = config(IBKR).unwrap();
        let c = PerShareCommission::from_config(&cfg).unwrap().unwrap();
        let regulatory = UsEquityFees::new(&cfg.fees);
        let bounds = EpisodeBounds { first: 0, last: 199, random_start: false };
        let mut env =
            env_with_commission(&cfg, MarketData::random_walk(200, 2, 1, 7), EnvOptions::replay(bounds)).unwrap();
        env.reset(0);
        for t in 0..60u8 {
            env.step(&[1 + t % 2, 2 - t % 2]).unwrap();
        }
        let trades = env.take_trades(0);
        assert!(trades.iter().filter(|t| t.side == Side::Sell).count() >= 5);
        let mut floored = 0;
        for t in &trades {
            let notional = t.shares * t.fill_price;
            let regulatory = match t.side {
                Side::Sell => regulatory.sell_fees(t.shares, notional),
                _ => regulatory.buy_fees(t.shares, notional),
            };
            let want = (0.0035 * t.shares).max(0.35).min(0.01 * notional) + regulatory;
            assert!((t.fees - want).abs() < 1e-9, "{t:?}: fees {} want {want}", t.fees);
            assert!((c.commission(t.shares, notional) + regulatory - want).abs() < 1e-12);
            floored += usize::from(0.0035 * t.shares < 0.35);
        }
        assert!(floored > 0, "small orders pay the minimum");
    }

    #[test]
    fn no_entry_means_the_built_in_fees() {
        assert_eq!(PerShareCommission::from_config(&EnvironmentConfig::default()).unwrap(), None);
    }

    #[test]
    fn bad_entries_name_the_key() {
        let wrong_shape = config("(per_share: 0.0035)").and_then(|c| PerShareCommission::from_config(&c).map(|_| ()));
        assert!(wrong_shape.unwrap_err().contains("environment.plugins.per_share_commission"));
        let negative = config("(per_share: -1.0, min_per_order: 0.35, max_pct: 0.01)")
            .and_then(|c| PerShareCommission::from_config(&c).map(|_| ()));
        assert!(negative.unwrap_err().contains("environment.plugins.per_share_commission"));
    }
}

mod cooldowns {
    use super::cooldown::{Cooldown, cooldown_env, falling_and_rising};
    use ploutos::prelude::*;

    fn masked(env: &mut TradingEnv) -> u64 {
        assert_eq!(env.refused("no such reason"), None);
        env.refused("masked").unwrap()
    }

    /// Buy both, hold, sell both (ticker 0 at a loss, fill bar 3): no buy of ticker 0 may
    /// fill before bar 8; ticker 1 is never held back.
    #[test]
    fn a_losing_sell_masks_buys_for_the_cooldown() {
        let mut env = cooldown_env(falling_and_rising(40), 5);
        env.reset(0);
        assert!(env.buffers().action_masks.iter().all(|&m| m));
        env.step(&[1, 1]).unwrap();
        env.step(&[0, 0]).unwrap();
        let masks = env.step(&[2, 2]).unwrap().action_masks.clone();
        assert_eq!(masks, vec![true, false, true, true, true, true], "[hold, buy, sell] of each ticker");
        let mut buy_allowed = vec![];
        for _ in 0..6 {
            buy_allowed.push(env.step(&[1, 1]).unwrap().action_masks[1]);
        }
        // Decisions at bars 3..=6 fill at 4..=7 and are refused; the mask lifts after the
        // decision at bar 6 (the next fill is bar 8).
        assert_eq!(buy_allowed, vec![false, false, false, true, true, true]);
        assert_eq!(masked(&mut env), 4);
        let buys0: Vec<u32> =
            env.take_trades(0).iter().filter(|t| t.ticker == 0 && t.side == Side::Buy).map(|t| t.bar).collect();
        // The first buy, then the two decisions after the cooldown (an add-on at bar 9).
        assert_eq!(buys0, vec![1, 8, 9]);
    }

    #[test]
    fn reset_ends_every_cooldown() {
        let mut env = cooldown_env(falling_and_rising(40), 5);
        env.reset(0);
        for actions in [[1, 1], [0, 0], [2, 2]] {
            env.step(&actions).unwrap();
        }
        assert!(!env.buffers().action_masks[1]);
        assert!(env.reset(0).action_masks.iter().all(|&m| m));
        let state = env.env_component::<Cooldown>(0).unwrap();
        assert_eq!(state.until, vec![0, 0]);
        assert!(env.env_component::<Cooldown>(1).is_none(), "one env");
    }
}

mod turnover {
    use super::custom_reward::{env, run};

    /// Same actions, same fills: the penalized reward is the plain one minus the term.
    #[test]
    fn the_term_is_added_to_the_configured_reward() {
        let plain = run(&mut env(None), 80);
        let penalized = run(&mut env(Some(0.5)), 80);
        let mut traded_steps = 0;
        for ((r0, e0, v0), (r1, e1, v1)) in plain.iter().zip(&penalized) {
            assert_eq!((e0, v0), (e1, v1), "the term changes rewards, not trading");
            let want = r0 - 0.5 * v0 / e0;
            assert!((r1 - want).abs() <= 1e-5 * want.abs().max(1.0), "reward {r1}, want {want}");
            traded_steps += usize::from(*v0 > 0.0);
        }
        assert!(traded_steps > 20);
    }
}

/// More refusal reasons than fit is an error when the env is built, not a panic later.
#[test]
fn too_many_refusal_reasons_fail_the_build() {
    let market = MarketData::random_walk(50, 1, 1, 3);
    let bounds = EpisodeBounds { first: 0, last: 49, random_start: false };
    let result = TradingEnv::with_plugins(&EnvironmentConfig::default(), market, EnvOptions::replay(bounds), |app| {
        for i in 0..Refusal::MAX {
            app.register_refusal(&format!("rule_{i}"));
        }
    });
    let err = result.err().expect("refused").to_string();
    assert!(err.contains("refusal reasons") && err.contains("rule_0"), "{err}");
}
