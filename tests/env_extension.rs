//! The core's extension points seen from a plugin: observation columns and their place in
//! the row, observation at episode starts (explicit and auto-reset), and per-env cost
//! randomization.

use ploutos::execution::CostModel;
use ploutos::prelude::*;

/// Two columns after the portfolio state: steps into the episode, and a per-env counter of
/// episode starts (state that lives across episodes).
#[derive(Clone)]
struct ClockColumns;

#[derive(Resource)]
struct Columns(std::ops::Range<usize>);

#[derive(Component, Clone, Default)]
struct Starts(u32);

impl Plugin for ClockColumns {
    fn build(&self, app: &mut App) {
        let columns = app.add_observation_columns("clock", 2);
        app.insert_resource(Columns(columns))
            .insert_on_envs(Starts::default())
            .add_episode_start_systems(count_starts)
            .add_observation_systems(write_clock);
    }
}

fn count_starts(targets: Res<Targets>, mut envs: Query<&mut Starts>) {
    targets.for_each_mut(&mut envs, |mut s| s.0 += 1);
}

fn write_clock(
    columns: Res<Columns>,
    targets: Res<Targets>,
    mut rows: ResMut<StepRows>,
    envs: Query<(&EnvId, &EpisodeClock, &Starts)>,
) {
    targets.for_each(&envs, |(id, clock, starts)| {
        let row = &mut rows.obs_row(id.index())[columns.0.clone()];
        row[0] = clock.steps as f32;
        row[1] = starts.0 as f32;
    });
}

fn env(n_envs: usize, cfg: &EnvironmentConfig, plugin: bool) -> TradingEnv {
    let market = MarketData::random_walk(400, 3, 2, 9);
    let bounds = EpisodeBounds { first: 10, last: 399, random_start: true };
    let opts = EnvOptions { n_envs, threads: 1, ..EnvOptions::training(n_envs, bounds) };
    TradingEnv::with_plugins(cfg, market, opts, |app| {
        if plugin {
            app.add_plugins(ClockColumns);
        }
    })
    .expect("env")
}

#[test]
fn plugin_columns_sit_between_the_portfolio_and_the_market() {
    let cfg = EnvironmentConfig::default();
    let (plain, with) = (env(2, &cfg, false), env(2, &cfg, true));
    assert_eq!(with.obs_dim(), plain.obs_dim() + 2);
    let blocks: Vec<(String, std::ops::Range<usize>)> = with.observation_columns().blocks().to_vec();
    let (d, market) = (3 * 3 + 4, 3 * 2);
    let want = [("portfolio", 0..d), ("clock", d..d + 2), ("market", d + 2..d + 2 + market)];
    assert_eq!(blocks, want.map(|(n, r)| (n.to_string(), r)).to_vec());
}

/// The plugin's columns change nothing else: the rest of every row, every reward and every
/// flag are those of the env without it.
#[test]
fn plugin_columns_leave_the_rest_of_the_row_alone() {
    let cfg = EnvironmentConfig { episode_length: 30, ..EnvironmentConfig::default() };
    let (mut plain, mut with) = (env(4, &cfg, false), env(4, &cfg, true));
    let (dim, d) = (plain.obs_dim(), 3 * 3 + 4);
    let strip = |obs: &[f32]| -> Vec<f32> {
        obs.chunks(dim + 2).flat_map(|r| r[..d].iter().chain(&r[d + 2..]).copied()).collect()
    };
    assert_eq!(strip(&with.reset(3).obs), plain.reset(3).obs);
    for t in 0..100u32 {
        let actions: Vec<u8> = (0..12).map(|k| ((t * 7 + k) % 3) as u8).collect();
        let a = plain.step(&actions).unwrap().clone();
        let b = with.step(&actions).unwrap();
        assert_eq!(strip(&b.obs), a.obs);
        assert_eq!((&b.rewards, &b.terminated, &b.truncated), (&a.rewards, &a.terminated, &a.truncated));
    }
}

/// After an auto-reset the row is the new episode's first (0 steps, one more start) while
/// `final_obs` keeps the finished episode's last; an explicit reset starts every env again.
#[test]
fn observation_columns_are_written_at_every_episode_start() {
    let cfg = EnvironmentConfig { episode_length: 25, bankruptcy_pct: 0.0, ..EnvironmentConfig::default() };
    let mut env = env(3, &cfg, true);
    let (dim, c) = (env.obs_dim(), 3 * 3 + 4);
    let b = env.reset(1);
    for i in 0..3 {
        assert_eq!(&b.obs[i * dim + c..i * dim + c + 2], &[0.0, 1.0]);
    }
    for step in 1..=60u32 {
        let b = env.step(&[0; 9]).unwrap();
        for i in 0..3 {
            let row = &b.obs[i * dim + c..i * dim + c + 2];
            if b.truncated[i] {
                assert_eq!(row, &[0.0, (1 + step / 25) as f32], "env {i} restarted at step {step}");
                assert_eq!(&b.final_obs[i * dim + c..i * dim + c + 2], &[25.0, (step / 25) as f32]);
            } else {
                assert_eq!(row, &[(step % 25) as f32, (1 + step / 25) as f32]);
            }
        }
    }
    let b = env.reset(2);
    for i in 0..3 {
        assert_eq!(&b.obs[i * dim + c..i * dim + c + 2], &[0.0, 4.0]);
    }
}

fn costs(env: &mut TradingEnv) -> Vec<CostModel> {
    let mut all: Vec<(usize, CostModel)> = env
        .worlds_mut()
        .flat_map(|w| w.query::<(&EnvId, &CostModel)>().iter(w).map(|(id, c)| (id.index(), *c)).collect::<Vec<_>>())
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, c)| c).collect()
}

/// Each env draws its own factor in [1 − x, 1 + x] at every episode start, from its own
/// stream; off (the default), every env has the configured costs.
#[test]
fn cost_randomization_draws_per_env_factors() {
    let base = CostModel::from_config(&EnvironmentConfig::default());
    let mut off = env(8, &EnvironmentConfig::default(), false);
    off.reset(5);
    assert!(costs(&mut off).iter().all(|c| *c == base));

    let cfg = EnvironmentConfig { cost_randomization: 0.5, episode_length: 20, ..EnvironmentConfig::default() };
    let mut on = env(8, &cfg, false);
    on.reset(5);
    let first = costs(&mut on);
    for c in &first {
        let f = c.half_spread / base.half_spread;
        assert!((0.5..=1.5).contains(&f), "factor {f}");
        assert!((c.slippage_atr_mult / base.slippage_atr_mult - f).abs() < 1e-12);
        assert!((c.impact_coef / base.impact_coef - f).abs() < 1e-12);
    }
    let distinct = first.iter().map(|c| c.half_spread.to_bits()).collect::<std::collections::HashSet<_>>();
    assert_eq!(distinct.len(), 8, "one factor per env");
    on.reset(5);
    assert_eq!(costs(&mut on), first, "same seed, same factors");
    for _ in 0..20 {
        on.step(&[0; 24]).unwrap();
    }
    assert!(costs(&mut on).iter().zip(&first).all(|(a, b)| a != b), "new factors for new episodes");
}
