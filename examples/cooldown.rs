//! A cooldown written outside the crate, exported as an action mask: after a losing sell
//! of a ticker, no new buy of it for `bars` bars.
//!
//! A sell is losing when its reference price (the price it fills at before costs) is below
//! the position's average cost (which includes the buy's costs). The plugin notes each
//! sold position's cost before execution, and after the step it marks the tickers sold at
//! a loss; its mask system then forbids buying them until the cooldown ends. The learner
//! reads the mask from `StepBuffers::action_masks` (and can mask its logits), and the env
//! refuses a masked buy as `masked` if the agent sends it anyway.
//!
//! `cargo run --no-default-features --example cooldown`

use ploutos::prelude::*;

/// No buy of a ticker for `bars` bars after a losing sell of it.
#[derive(Clone)]
pub struct CooldownPlugin {
    pub bars: u32,
}

/// Per env and ticker: the cost of the position being sold this step, and the first bar
/// at which a buy is allowed again.
#[derive(Component, Clone, Debug, PartialEq)]
pub struct Cooldown {
    pub sold_cost: Vec<f64>,
    pub until: Vec<u32>,
}

#[derive(Resource)]
struct CooldownBars(u32);

impl Plugin for CooldownPlugin {
    fn build(&self, app: &mut App) {
        let n = app.world().resource::<EnvParams>().n_tickers;
        app.insert_resource(CooldownBars(self.bars))
            .add_env_state(Cooldown { sold_cost: vec![0.0; n], until: vec![0; n] })
            .add_systems(EnvStep, note_costs.in_set(StepSystems::Rules).after(BuiltInRules))
            .add_systems(EnvStep, start_cooldowns.in_set(StepSystems::Account).before(mark_to_market))
            .add_action_mask_systems(mask_cooling_buys);
    }
}

/// Notes the average cost of every position about to be sold (after every rule).
fn note_costs(mut envs: Query<(&Orders, &Positions, &mut Cooldown)>) {
    for (orders, positions, mut cd) in &mut envs {
        for k in bits(orders.sell) {
            cd.sold_cost[k] = positions.0[k].avg_cost;
        }
    }
}

/// After execution (whose refusals clear their bits, so `orders.sell` is what sold):
/// starts a cooldown for each ticker sold below its cost. Runs before mark-to-market moves
/// the clock, so `clock.bar` is still the decision bar.
fn start_cooldowns(
    bars: Res<CooldownBars>,
    params: Res<EnvParams>,
    market: Res<MarketData>,
    mut envs: Query<(&Orders, &EpisodeClock, &mut Cooldown)>,
) {
    for (orders, clock, mut cd) in &mut envs {
        let t = clock.bar as usize;
        let prices = params.reference_row(&market, t);
        for k in bits(orders.sell) {
            if prices[k] < cd.sold_cost[k] {
                cd.until[k] = (params.fill_bar(t) as u32).saturating_add(bars.0);
            }
        }
    }
}

/// Forbids buying tickers whose cooldown runs past the coming decision's fill bar.
fn mask_cooling_buys(
    params: Res<EnvParams>,
    targets: Res<Targets>,
    mut envs: Query<(&EpisodeClock, &Cooldown, &mut ActionMask)>,
) {
    targets.for_each_mut(&mut envs, |(clock, cd, mut mask)| {
        let fill = params.fill_bar(clock.bar as usize) as u32;
        let cooling = cd.until.iter().enumerate().fold(0u64, |m, (k, &u)| m | u64::from(fill < u) << k);
        mask.forbid_buy(cooling);
    });
}

/// Two tickers, 7 bars a day: ticker 0 falls 1% a bar, ticker 1 rises 1% a bar.
pub fn falling_and_rising(n_bars: usize) -> MarketData {
    let mut c = MarketColumns {
        atr_frac: vec![0.0; 2 * n_bars],
        ret_std: vec![0.0; 2 * n_bars],
        mean_volume: vec![1e6; 2 * n_bars],
        day: (0..n_bars as u32).map(|t| t / 7).collect(),
        features: vec![0.0; 2 * n_bars],
        ..MarketColumns::default()
    };
    for t in 0..n_bars {
        for p in [100.0 * 0.99f64.powi(t as i32), 100.0 * 1.01f64.powi(t as i32)] {
            c.open.push(p);
            c.close.push(p);
        }
    }
    MarketData::new(n_bars, 2, 1, c).expect("shapes")
}

/// One env with a cooldown of `bars` bars and no other rule in the way.
pub fn cooldown_env(market: MarketData, bars: u32) -> TradingEnv {
    let mut cfg = EnvironmentConfig { max_trades_per_day: None, min_holding_bars: 0, ..EnvironmentConfig::default() };
    cfg.pdt.enabled = false;
    let bounds = EpisodeBounds { first: 0, last: market.n_bars() as u32 - 1, random_start: false };
    TradingEnv::with_plugins(&cfg, market, EnvOptions::replay(bounds), |app| {
        app.add_plugins(CooldownPlugin { bars });
    })
    .expect("the market fits its bounds")
}

fn main() {
    let mut env = cooldown_env(falling_and_rising(40), 5);
    env.reset(0);
    // Buy both, sell both (ticker 0 at a loss), then try to buy both every bar.
    for (t, actions) in [[1, 1], [0, 0], [2, 2]].into_iter().chain(std::iter::repeat_n([1, 1], 8)).enumerate() {
        let masks = &env.step(&actions).expect("two actions").action_masks;
        println!("after step {t}: buy allowed = [{}, {}]", masks[1], masks[4]);
    }
}
