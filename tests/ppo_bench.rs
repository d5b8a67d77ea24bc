//! `bench_train` smoke test, plus two `#[ignore]`d checks for a release build on a real
//! machine:
//!
//! - `bench_report` prints one JSON line per configuration (`PPO_BENCH_SET=cpu` for the
//!   CPU sizes, `gpu` for the seed's GPU config and a wide-batch one);
//! - `cuda_run_matches_cpu_policy` trains a few iterations on CUDA (index layout, with
//!   evaluation), then loads the checkpoint on CUDA and on the CPU and checks that both
//!   act alike.
//!
//! `cargo test --release --test ppo_bench -- --ignored --nocapture`
#![cfg(feature = "learner")]

use ploutos::config::{Config, ObservationLayout};
use ploutos::env::{EpisodeBounds, MarketData};
use ploutos::ppo::{NoHooks, Policy, RunPaths, TrainShape, Trainer, bench_train, profile_train};
use ploutos::{EnvOptions, TradingEnv};
use tch::{Cuda, Device};

/// The default config on one CPU thread.
fn cpu_config() -> Config {
    let mut c = Config::default();
    c.training.device = "cpu".into();
    c.training.threads = 1;
    c
}

fn shape(net: &[usize], n_envs: usize, n_steps: usize, batch: usize, epochs: usize) -> TrainShape {
    TrainShape { net: net.to_vec(), n_envs, n_steps, batch, epochs }
}

#[test]
fn bench_train_smoke() {
    let c = cpu_config();
    let b = bench_train(&c, &shape(&[8], 2, 8, 8, 1), 1).unwrap();
    assert_eq!(b.obs_dim, 3 * 10 + 4 + 550);
    assert_eq!(b.device, "cpu");
    // Two 584→8→… MLPs: (584·8 + 8) + (8·30 + 30) + (584·8 + 8) + (8 + 1).
    assert_eq!(b.params, 584 * 8 + 8 + 8 * 30 + 30 + 584 * 8 + 8 + 8 + 1);
    assert!(b.timesteps_per_sec > 0.0);
    assert!(bench_train(&c, &shape(&[8], 2, 8, 64, 1), 1).is_err(), "batch larger than the rollout");
}

#[test]
fn profile_charges_every_step_and_minibatch_to_a_phase() {
    let c = cpu_config();
    // 2 iterations of 8 steps; minibatches of 8 over 2 × 8 rows, 2 epochs: 4 per update.
    let phases = profile_train(&c, &shape(&[8], 2, 8, 8, 2), 2).unwrap();
    let count = |name: &str| phases.iter().find(|p| p.phase == name).map_or(0, |p| p.count);
    assert_eq!(count("rollout: env step"), 2 * 8);
    assert_eq!(count("rollout: inference (device round trip)"), 2 * 8);
    assert_eq!(count("update: backward"), 2 * 4);
    assert_eq!(count("update: statistics readback"), 2);
    assert!(phases.iter().all(|p| p.secs >= 0.0 && p.count > 0));
}

#[test]
#[ignore = "measurement: run in release"]
fn bench_report() {
    let set = std::env::var("PPO_BENCH_SET").unwrap_or_else(|_| "cpu".into());
    let mut c = Config::default();
    c.training.device = std::env::var("PPO_BENCH_DEVICE").unwrap_or_else(|_| "auto".into());
    c.training.threads = 0;
    // (net, n_envs, n_steps, batch, epochs, timed iterations)
    let runs: Vec<(Vec<usize>, usize, usize, usize, usize, usize)> = match set.as_str() {
        "gpu" => vec![
            (vec![1024, 512, 256], 16, 4096, 8192, 20, 2), // the seed's config
            (vec![1024, 512, 256], 1024, 128, 8192, 4, 2),
            (vec![64, 64], 1024, 128, 8192, 4, 2),
        ],
        _ => vec![(vec![64, 64], 16, 256, 1024, 4, 3), (vec![64, 64], 64, 128, 1024, 4, 3)],
    };
    for (net, n_envs, n_steps, batch, epochs, iters) in runs {
        let b = bench_train(&c, &shape(&net, n_envs, n_steps, batch, epochs), iters).unwrap();
        println!("{}", serde_json::to_string(&b).unwrap());
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn cuda_run_matches_cpu_policy() {
    if !Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let mut c = Config::default();
    let t = &mut c.training;
    t.device = "cuda".into();
    t.n_envs = 64;
    t.n_steps = 32;
    t.batch_size = 512;
    t.n_epochs = 2;
    t.net_arch = vec![64, 64];
    t.total_timesteps = 4 * 64 * 32;
    t.eval_freq = 2 * 64 * 32;
    t.normalize_reward = true;
    c.environment.episode_length = 50;
    c.environment.observation_layout = ObservationLayout::Index;
    let market = || MarketData::random_walk(2000, 4, 55, 3);
    let bounds = |first, last| EpisodeBounds { first, last, random_start: true };
    let train_env = TradingEnv::new(&c.environment, market(), EnvOptions::training(64, bounds(0, 1500))).unwrap();
    let eval_env = TradingEnv::new(&c.environment, market(), EnvOptions::training(8, bounds(1500, 1999))).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out =
        RunPaths { models: root.path().join("models"), runs: root.path().join("runs"), logs: root.path().join("logs") };
    let s = Trainer::new(&c, train_env, Some(eval_env), out).unwrap().train(&mut NoHooks).unwrap();
    assert!(s.best_metric.is_some());

    let mut gpu = Policy::load(&s.last_checkpoint, Device::Cuda(0)).unwrap();
    let mut cpu = Policy::load(&s.last_checkpoint, Device::Cpu).unwrap();
    let mut probe = TradingEnv::new(&c.environment, market(), EnvOptions::training(256, bounds(0, 1999))).unwrap();
    gpu.set_market(probe.market()).unwrap();
    cpu.set_market(probe.market()).unwrap();
    let obs = probe.reset(5).obs.clone();
    let (a_gpu, a_cpu) = (gpu.act(&obs, 256, true), cpu.act(&obs, 256, true));
    let agree = a_gpu.iter().zip(&a_cpu).filter(|(a, b)| a == b).count() as f64 / a_gpu.len() as f64;
    let (v_gpu, v_cpu) = (gpu.values(&obs, 256).unwrap(), cpu.values(&obs, 256).unwrap());
    let max_dv = v_gpu.iter().zip(&v_cpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!(
        "cuda run: {} steps in {:.1}s, best {:?}; CUDA vs CPU policy: {:.4} actions agree, max |Δvalue| {max_dv:.2e}",
        s.timesteps, s.seconds, s.best_metric, agree
    );
    assert!(agree > 0.99 && max_dv < 1e-3);
}
