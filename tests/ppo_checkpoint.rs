//! Checkpoints: a saved model loads into a [`Policy`] that acts exactly as the trainer did,
//! evaluation keeps `best/`, and a run stopped at a scheduled checkpoint and resumed ends
//! bit-identical to the uninterrupted run (weights, Adam moments, normalizers), for both
//! observation layouts.
#![cfg(feature = "learner")]

use ploutos::config::{Config, LrSchedule, ObservationLayout};
use ploutos::env::{EpisodeBounds, MarketData};
use ploutos::ppo::checkpoint::{self, MODEL_FILE, NORMALIZER_FILE, OPTIMIZER_FILE};
use ploutos::ppo::{EvalStats, IterationStats, Policy, RunPaths, TrainHooks, Trainer};
use ploutos::{EnvOptions, TradingEnv};
use std::path::Path;
use tch::{Device, Tensor};

const N_ENVS: usize = 4;
const N_STEPS: usize = 16;
const PER_ITER: u64 = (N_ENVS * N_STEPS) as u64;

fn config(layout: ObservationLayout) -> Config {
    let mut c = Config::default();
    let t = &mut c.training;
    t.n_envs = N_ENVS;
    t.n_steps = N_STEPS;
    t.batch_size = 24; // not a divisor of 64: exercises the short last minibatch
    t.n_epochs = 2;
    t.net_arch = vec![16, 16];
    t.learning_rate = 1e-3;
    t.lr_schedule = LrSchedule::Linear;
    t.normalize_reward = true;
    t.clip_range_vf = Some(0.5);
    t.device = "cpu".into();
    t.threads = 1;
    t.seed = 7;
    t.eval_freq = 0;
    t.checkpoint_freq = 0;
    c.environment.episode_length = 20; // truncations inside every rollout
    c.environment.observation_layout = layout;
    c.validate().unwrap();
    c
}

fn env(c: &Config, first: u32, last: u32, n_envs: usize) -> TradingEnv {
    let market = MarketData::random_walk(400, 2, 3, 11);
    let bounds = EpisodeBounds { first, last, random_start: true };
    let opts =
        EnvOptions { threads: 1, action_masks: c.training.action_masking, ..EnvOptions::training(n_envs, bounds) };
    TradingEnv::new(&c.environment, market, opts).unwrap()
}

fn paths(root: &Path) -> RunPaths {
    RunPaths { models: root.join("models"), runs: root.join("runs"), logs: root.join("logs") }
}

/// Counts iterations and evaluations; asks to stop after `stop_after` iterations.
#[derive(Default)]
struct Hooks {
    iterations: Vec<IterationStats>,
    evals: Vec<EvalStats>,
    stop_after: Option<usize>,
}

impl TrainHooks for Hooks {
    fn on_iteration(&mut self, s: &IterationStats) {
        self.iterations.push(s.clone());
    }
    fn on_eval(&mut self, e: &EvalStats) {
        self.evals.push(e.clone());
    }
    fn should_stop(&self) -> bool {
        self.stop_after.is_some_and(|n| self.iterations.len() >= n)
    }
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn assert_same_tensors(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(ta.len(), tb.len(), "{a:?} vs {b:?}");
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(xa.equal(xb), "{na} differs between {a:?} and {b:?}");
    }
}

#[test]
fn saved_policy_acts_like_the_trainer_and_eval_keeps_best() {
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    let mut c = config(ObservationLayout::Materialized);
    c.training.total_timesteps = 2 * PER_ITER;
    c.training.eval_freq = PER_ITER;
    // Evaluation on an env without auto-reset, as a validation replay builds it.
    let bounds = EpisodeBounds { first: 250, last: 399, random_start: true };
    let opts = EnvOptions { threads: 1, auto_reset: false, ..EnvOptions::training(3, bounds) };
    let eval_env = TradingEnv::new(&c.environment, MarketData::random_walk(400, 2, 3, 11), opts).unwrap();
    let mut trainer = Trainer::new(&c, env(&c, 0, 250, N_ENVS), Some(eval_env), paths(root.path())).unwrap();
    let mut hooks = Hooks::default();
    let summary = trainer.train(&mut hooks).unwrap();
    assert!(!summary.interrupted);
    assert_eq!(summary.timesteps, 2 * PER_ITER);
    assert_eq!(hooks.iterations.len(), 2);
    assert_eq!(hooks.evals.len(), 2);
    assert!(hooks.evals[0].is_best && hooks.evals[0].episodes == 3);
    let it = &hooks.iterations[1];
    assert!(it.policy_loss.is_finite() && it.value_loss.is_finite() && it.entropy > 0.0);
    assert!(it.episodes > 0 && it.total_return_mean.is_some());
    assert!((it.learning_rate - 5e-4).abs() < 1e-12, "linear schedule: {}", it.learning_rate);

    let final_dir = checkpoint::final_dir(&root.path().join("models"));
    for f in [MODEL_FILE, OPTIMIZER_FILE, NORMALIZER_FILE, "config.ron", "state.ron"] {
        assert!(final_dir.join(f).is_file(), "missing {f}");
    }
    assert!(checkpoint::best_dir(&root.path().join("models")).join(MODEL_FILE).is_file());
    let saved = checkpoint::read_config(&final_dir).unwrap();
    assert_eq!(saved, c);

    let policy = Policy::load(&final_dir, Device::Cpu).unwrap();
    let mut probe = env(&c, 0, 399, 8);
    let first = probe.reset(3);
    let (mut obs, mut masks) = (first.obs.clone(), first.action_masks.clone());
    assert!(policy.action_masking(), "trained with masks, acts with them");
    for _ in 0..5 {
        let (want, want_values) = trainer.greedy(&obs, Some(&masks), 8).unwrap();
        assert_eq!(policy.try_act_masked(&obs, Some(&masks), 8, true).unwrap(), want);
        assert_eq!(policy.values(&obs, 8).unwrap(), want_values);
        let out = probe.step(&want).unwrap();
        assert_eq!(out.infos.iter().map(|i| i.refused).sum::<u32>(), 0, "a masked policy sends no refused order");
        (obs, masks) = (out.obs.clone(), out.action_masks.clone());
    }
    let stochastic = policy.act(&obs, 8, false);
    assert_eq!(stochastic.len(), 8 * 2);
    assert!(stochastic.iter().all(|&a| a < 3));
    assert!(policy.try_act(&obs[1..], 8, true).is_err());
}

/// Train 2 iterations (a scheduled checkpoint, then a stop) + resume 1 iteration ==
/// train 3 iterations uninterrupted, bit for bit.
fn resume_matches_uninterrupted(layout: ObservationLayout) {
    tch::set_num_threads(1);
    let mut c = config(layout);
    c.training.total_timesteps = 3 * PER_ITER;
    c.training.checkpoint_freq = 2 * PER_ITER;

    let full = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(&c, env(&c, 0, 399, N_ENVS), None, paths(full.path())).unwrap();
    t.train(&mut Hooks::default()).unwrap();

    let split = tempfile::tempdir().unwrap();
    let mut first = Trainer::new(&c, env(&c, 0, 399, N_ENVS), None, paths(split.path())).unwrap();
    let mut hooks = Hooks { stop_after: Some(2), ..Default::default() };
    let s = first.train(&mut hooks).unwrap();
    assert!(s.interrupted && s.timesteps == 2 * PER_ITER);
    assert_eq!(s.last_checkpoint, checkpoint::step_dir(&split.path().join("models"), 2 * PER_ITER));
    drop(first);

    let mut second =
        Trainer::resume(&split.path().join("models"), &c, env(&c, 0, 399, N_ENVS), None, paths(split.path())).unwrap();
    assert_eq!((second.timesteps(), second.iteration()), (2 * PER_ITER, 2));
    let mut hooks = Hooks::default();
    let s = second.train(&mut hooks).unwrap();
    assert_eq!((s.timesteps, s.iterations, hooks.iterations.len()), (3 * PER_ITER, 3, 1));

    let a = checkpoint::final_dir(&full.path().join("models"));
    let b = checkpoint::final_dir(&split.path().join("models"));
    for f in [MODEL_FILE, OPTIMIZER_FILE, NORMALIZER_FILE] {
        assert_same_tensors(&a.join(f), &b.join(f));
    }
    assert_eq!(checkpoint::read_state(&a).unwrap(), checkpoint::read_state(&b).unwrap());
}

#[test]
fn resume_matches_uninterrupted_materialized() {
    resume_matches_uninterrupted(ObservationLayout::Materialized);
}

#[test]
fn resume_matches_uninterrupted_index_layout() {
    resume_matches_uninterrupted(ObservationLayout::Index);
}

/// Target positions (five levels with shorts, masks on): the policy head has one
/// categorical over the levels per ticker, the saved policy acts as the trainer does with
/// masks of one flag per level, and the checkpoint does not resume with the seed's actions.
#[test]
fn target_positions_train_save_and_act() {
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    let mut c = config(ObservationLayout::Materialized);
    c.training.total_timesteps = 2 * PER_ITER;
    c.environment.short_selling.enabled = true;
    c.environment.target_positions.enabled = true;
    c.environment.target_positions.levels = vec![-1.0, -0.5, 0.0, 0.5, 1.0];
    c.validate().unwrap();
    let mut trainer = Trainer::new(&c, env(&c, 0, 399, N_ENVS), None, paths(root.path())).unwrap();
    let summary = trainer.train(&mut Hooks::default()).unwrap();
    assert_eq!(summary.timesteps, 2 * PER_ITER);
    let final_dir = checkpoint::final_dir(&root.path().join("models"));
    assert_eq!(checkpoint::read_state(&final_dir).unwrap().model.n_actions, 5);
    let policy = Policy::load(&final_dir, Device::Cpu).unwrap();
    let mut probe = env(&c, 0, 399, 8);
    let first = probe.reset(3);
    let (mut obs, mut masks) = (first.obs.clone(), first.action_masks.clone());
    assert_eq!(masks.len(), 8 * 2 * 5);
    let mut seen = [false; 5];
    for _ in 0..20 {
        let (want, _) = trainer.greedy(&obs, Some(&masks), 8).unwrap();
        assert_eq!(policy.try_act_masked(&obs, Some(&masks), 8, true).unwrap(), want);
        for a in policy.act(&obs, 8, false) {
            seen[usize::from(a)] = true;
        }
        let out = probe.step(&want).unwrap();
        (obs, masks) = (out.obs.clone(), out.action_masks.clone());
    }
    assert!(seen.iter().all(|&s| s), "a near-uniform policy samples every level: {seen:?}");
    assert!(policy.try_act_masked(&obs, Some(&masks[..8 * 2 * 3]), 8, true).is_err());
    c.environment.target_positions.enabled = false;
    let err = Trainer::resume(&root.path().join("models"), &c, env(&c, 0, 399, N_ENVS), None, paths(root.path()))
        .unwrap_err();
    assert!(err.to_string().contains("actions per ticker 5 in the checkpoint, 3 here"), "{err}");
}

#[test]
fn resume_rejects_another_network() {
    let root = tempfile::tempdir().unwrap();
    let mut c = config(ObservationLayout::Materialized);
    c.training.total_timesteps = PER_ITER;
    Trainer::new(&c, env(&c, 0, 399, N_ENVS), None, paths(root.path())).unwrap().train(&mut Hooks::default()).unwrap();
    c.training.net_arch = vec![8];
    let err = Trainer::resume(&root.path().join("models"), &c, env(&c, 0, 399, N_ENVS), None, paths(root.path()))
        .unwrap_err();
    assert!(err.to_string().contains("net_arch [16, 16] in the checkpoint, [8] here"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(Trainer::resume(empty.path(), &c, env(&c, 0, 399, N_ENVS), None, paths(root.path())).is_err());
}
