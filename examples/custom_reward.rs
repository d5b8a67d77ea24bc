//! A reward term written outside the crate: a turnover penalty added to the configured
//! reward.
//!
//! Every step, the term subtracts `weight` × (dollars traded this step / equity before the
//! step), so an agent pays in reward for churning its account, on top of what costs
//! already take from its equity. The dollars traded come from the env's lifetime
//! [`Ledger`]: the plugin keeps the total it last saw as per-env state.
//!
//! `cargo run --no-default-features --example custom_reward`

use ploutos::prelude::*;

/// Adds −`weight` × turnover / equity to every step's reward.
#[derive(Clone)]
pub struct TurnoverPenaltyPlugin {
    pub weight: f64,
}

/// The ledger's turnover at the end of the env's previous step.
#[derive(Component, Clone, Debug, Default)]
pub struct TurnoverSeen(pub f64);

#[derive(Resource)]
struct PenaltyWeight(f64);

impl Plugin for TurnoverPenaltyPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(PenaltyWeight(self.weight))
            .insert_on_envs(TurnoverSeen::default())
            .add_reward_systems(penalize_turnover);
    }
}

/// Adds the term to [`StepOutcome::reward`], after mark-to-market (which zeroes it).
fn penalize_turnover(
    weight: Res<PenaltyWeight>,
    mut envs: Query<(&Ledger, &Portfolio, &mut TurnoverSeen, &mut StepOutcome)>,
) {
    for (ledger, portfolio, mut seen, mut outcome) in &mut envs {
        let traded = ledger.turnover - seen.0;
        seen.0 = ledger.turnover;
        if portfolio.prev_equity > 0.0 {
            outcome.reward -= weight.0 * traded / portfolio.prev_equity;
        }
    }
}

/// One env on a random-walk market, with the penalty when `weight` is given.
pub fn env(weight: Option<f64>) -> TradingEnv {
    let market = MarketData::random_walk(300, 3, 1, 11);
    let cfg = EnvironmentConfig { max_trades_per_day: None, ..EnvironmentConfig::default() };
    let bounds = EpisodeBounds { first: 0, last: 299, random_start: false };
    TradingEnv::with_plugins(&cfg, market, EnvOptions::replay(bounds), |app| {
        if let Some(weight) = weight {
            app.add_plugins(TurnoverPenaltyPlugin { weight });
        }
    })
    .expect("the market fits its bounds")
}

/// Steps `env` with a fixed pattern of actions; returns each step's (reward, equity
/// before the step, dollars traded in the step).
pub fn run(env: &mut TradingEnv, steps: usize) -> Vec<(f64, f64, f64)> {
    env.reset(0);
    let mut out = vec![];
    let mut turnover = env.totals().turnover;
    for t in 0..steps {
        let before = env.env_state(0).expect("env 0").0.equity;
        let actions: Vec<u8> = (0..3).map(|k| ((t + k) % 3) as u8).collect();
        let reward = f64::from(env.step(&actions).expect("three actions").rewards[0]);
        let now = env.totals().turnover;
        out.push((reward, before, now - turnover));
        turnover = now;
    }
    out
}

fn main() {
    let (plain, penalized) = (run(&mut env(None), 50), run(&mut env(Some(0.5)), 50));
    let sum = |v: &[(f64, f64, f64)]| v.iter().map(|r| r.0).sum::<f64>();
    println!("reward over 50 steps: {:.3} without the penalty, {:.3} with it", sum(&plain), sum(&penalized));
}
