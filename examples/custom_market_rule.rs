//! A market rule written outside the crate: a circuit breaker that refuses every buy for
//! the rest of the trading day once the equal-weight index has fallen 7% from the day's
//! first open.
//!
//! It shows the whole recipe for a new rule: register a refusal reason, add one system to
//! `StepSystems::Rules` after the built-in rules, and narrow each env's `Orders` with
//! `Orders::refuse`. Refusals are then counted by reason like the built-in ones.
//!
//! `cargo run --no-default-features --example custom_market_rule`

use ploutos::prelude::*;

/// Halts buying for the rest of the day once the equal-weight index is `drop` below the
/// day's first open.
pub struct CircuitBreakerPlugin {
    pub drop: f64,
}

/// Bars at whose close the breaker is tripped (by that close or an earlier one of the same
/// day), and the reason its refusals count under.
#[derive(Resource)]
struct CircuitBreaker {
    tripped: Vec<bool>,
    reason: Refusal,
}

impl Plugin for CircuitBreakerPlugin {
    fn build(&self, app: &mut App) {
        let reason = app.register_refusal("circuit_breaker");
        let tripped = tripped_bars(app.world().resource::<MarketData>(), self.drop);
        app.insert_resource(CircuitBreaker { tripped, reason })
            .add_systems(EnvStep, halt_buys.in_set(StepSystems::Rules).after(BuiltInRules));
    }
}

/// For every bar: has the equal-weight index (the mean of close / the day's first open)
/// closed `drop` or more below 1 at this bar or earlier the same day? Uses no later bar.
fn tripped_bars(market: &MarketData, drop: f64) -> Vec<bool> {
    let mut tripped = Vec::with_capacity(market.n_bars());
    let mut day_open: Vec<f64> = vec![];
    for t in 0..market.n_bars() {
        let new_day = t == 0 || market.day(t) != market.day(t - 1);
        if new_day {
            day_open = market.open_row(t).to_vec();
        }
        let closes = market.close_row(t);
        let index = closes.iter().zip(&day_open).map(|(c, o)| c / o).sum::<f64>() / closes.len() as f64;
        let before = !new_day && tripped[t - 1];
        tripped.push(before || index <= 1.0 - drop);
    }
    tripped
}

/// Refuses the buys of envs whose decision bar has tripped the breaker, when the order
/// would fill on that same trading day (a next-open fill on the next day is a new day).
fn halt_buys(
    breaker: Res<CircuitBreaker>,
    market: Res<MarketData>,
    params: Res<EnvParams>,
    mut envs: Query<(&mut Orders, &EpisodeClock)>,
) {
    for (mut orders, clock) in &mut envs {
        let t = clock.bar as usize;
        if breaker.tripped[t] && market.day(params.fill_bar(t)) == market.day(t) {
            let buys = orders.buy;
            orders.refuse(buys, breaker.reason);
        }
    }
}

/// Two tickers, 7 bars a day for 3 days; on day 1 ticker 0 falls 10% and ticker 1 5% by
/// the day's third close (the index −7.5%).
pub fn crash_market(crash: bool) -> MarketData {
    let (n_bars, n) = (21, 2);
    let mut c = MarketColumns {
        atr_frac: vec![0.005; n_bars * n],
        ret_std: vec![0.004; n_bars * n],
        mean_volume: vec![1e6; n_bars * n],
        day: (0..n_bars as u32).map(|t| t / 7).collect(),
        features: vec![0.0; n_bars * n],
        ..MarketColumns::default()
    };
    for t in 0..n_bars {
        let fall = if crash && (9..14).contains(&t) { [0.90, 0.95] } else { [1.0, 1.0] };
        for f in fall {
            c.open.push(100.0 * f);
            c.close.push(100.0 * f);
        }
    }
    MarketData::new(n_bars, n, 1, c).expect("shapes")
}

/// Builds an env with the breaker on `market` and buys both tickers every bar; returns the
/// buys refused by the breaker at each decision bar.
pub fn breaker_refusals(market: MarketData) -> Vec<u32> {
    let mut cfg = EnvironmentConfig {
        buy_pct: 0.02,
        max_position_pct: 1.0,
        max_trades_per_day: None,
        ..EnvironmentConfig::default()
    };
    cfg.pdt.enabled = false;
    let bounds = EpisodeBounds { first: 0, last: market.n_bars() as u32 - 1, random_start: false };
    // One env on the calling thread (a replay's set-up) that resets itself at the end.
    let opts = EnvOptions { trade_log: false, auto_reset: true, ..EnvOptions::replay(bounds) };
    let mut env = TradingEnv::with_plugins(&cfg, market, opts, |app| {
        app.add_plugins(CircuitBreakerPlugin { drop: 0.07 });
    })
    .expect("the market fits its bounds");
    let code = env.refusal_names().iter().position(|n| n == "circuit_breaker").expect("registered");
    env.reset(0);
    let mut per_bar = vec![];
    for _ in 0..bounds.last {
        env.step(&[1, 1]).expect("two actions");
        per_bar.push(
            env.worlds_mut()
                .map(|world| world.query::<&Orders>().iter(world).map(|o| o.refused.0[code]).sum::<u32>())
                .sum(),
        );
    }
    per_bar
}

fn main() {
    for crash in [false, true] {
        let refused = breaker_refusals(crash_market(crash));
        println!("crash day: {crash:5}  buys refused by the circuit breaker per bar: {refused:?}");
    }
}
