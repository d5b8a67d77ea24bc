//! A trailing stop-loss and take-profit written outside the crate: a rule with per-env state.
//!
//! Each env remembers, per ticker, the highest close since its position opened. At every
//! decision, a held position whose close is `stop` below that peak, or `take` above its
//! average cost, is sold whatever the agent chose. The peaks and the count of forced exits
//! are the plugin's own per-env state: `add_env_state` puts a fresh copy on every env and
//! puts it back at every episode start, on `reset` and on auto-reset alike.
//!
//! `cargo run --no-default-features --example stop_loss`

use ploutos::prelude::*;

/// Sells positions that fall `stop` below their peak close or rise `take` above their cost.
#[derive(Clone)]
pub struct StopLossPlugin {
    pub stop: f64,
    pub take: f64,
}

/// Per env: each ticker's peak close since its position opened (0 when flat), and the
/// exits forced this episode.
#[derive(Component, Clone, Debug, PartialEq)]
pub struct Stops {
    pub peak: Vec<f64>,
    pub forced: u32,
}

#[derive(Resource)]
struct StopSettings {
    stop: f64,
    take: f64,
}

impl Plugin for StopLossPlugin {
    fn build(&self, app: &mut App) {
        let n_tickers = app.world().resource::<EnvParams>().n_tickers;
        app.insert_resource(StopSettings { stop: self.stop, take: self.take })
            .add_env_state(Stops { peak: vec![0.0; n_tickers], forced: 0 })
            .add_systems(EnvStep, force_exits.in_set(StepSystems::Rules).after(BuiltInRules));
    }
}

/// Turns the agent's orders for stopped-out tickers into sells. Runs after the built-in
/// rules, so a forced exit is not refused by the holding period or the PDT rule.
fn force_exits(
    settings: Res<StopSettings>,
    market: Res<MarketData>,
    mut envs: Query<(&mut Orders, &mut Stops, &Positions, &EpisodeClock)>,
) {
    for (mut orders, mut stops, positions, clock) in &mut envs {
        let closes = market.close_row(clock.bar as usize);
        let mut exits = 0u64;
        for (k, (pos, &close)) in positions.0.iter().zip(closes).enumerate() {
            let held = pos.shares > 0.0;
            stops.peak[k] = if held { stops.peak[k].max(close) } else { 0.0 };
            let stopped = close <= stops.peak[k] * (1.0 - settings.stop);
            let taken = close >= pos.avg_cost * (1.0 + settings.take);
            exits |= u64::from(held && (stopped || taken)) << k;
        }
        orders.buy &= !exits;
        orders.sell |= exits;
        stops.forced += exits.count_ones();
    }
}

/// One ticker, 7 bars a day: flat at $100 for 5 bars, up to $120 at bar 8, then down 10%
/// from bar 12 on.
pub fn peak_then_drop_market(n_bars: usize) -> MarketData {
    let price = |t: usize| match t {
        0..5 => 100.0,
        5..12 => 100.0 + 20.0 * ((t - 4) as f64 / 4.0).min(1.0),
        _ => 108.0,
    };
    let columns = MarketColumns {
        open: (0..n_bars).map(price).collect(),
        close: (0..n_bars).map(price).collect(),
        atr_frac: vec![0.0; n_bars],
        ret_std: vec![0.0; n_bars],
        mean_volume: vec![1e6; n_bars],
        day: (0..n_bars as u32).map(|t| t / 7).collect(),
        features: vec![0.0; n_bars],
    };
    MarketData::new(n_bars, 1, 1, columns).expect("shapes")
}

/// One env that buys at the first bar and then holds; `stop` = 5%, `take` = 50%.
pub fn stop_env(market: MarketData, episode_length: usize) -> TradingEnv {
    let mut cfg = EnvironmentConfig { max_trades_per_day: None, episode_length, ..EnvironmentConfig::default() };
    cfg.pdt.enabled = false;
    let bounds = EpisodeBounds { first: 0, last: market.n_bars() as u32 - 1, random_start: false };
    let opts = EnvOptions { auto_reset: true, ..EnvOptions::replay(bounds) };
    TradingEnv::with_plugins(&cfg, market, opts, |app| {
        app.add_plugins(StopLossPlugin { stop: 0.05, take: 0.5 });
    })
    .expect("the market fits its bounds")
}

/// The env's stop state (one env).
pub fn stops(env: &mut TradingEnv) -> Stops {
    env.worlds_mut().find_map(|w| w.query::<&Stops>().iter(w).next().cloned()).expect("one env")
}

fn main() {
    let mut env = stop_env(peak_then_drop_market(30), 1_000);
    env.reset(0);
    for t in 0..20 {
        env.step(&[u8::from(t == 0)]).expect("one action");
    }
    let trades = env.take_trades(0);
    println!("trades (bar, side): {:?}", trades.iter().map(|t| (t.bar, t.side)).collect::<Vec<_>>());
    println!("stop state: {:?}", stops(&mut env));
}
