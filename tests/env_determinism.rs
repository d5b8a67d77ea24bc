//! Determinism: the same seed gives the same trajectory (observations, rewards, done
//! flags, infos), a different seed a different one, and the thread count of bevy's compute
//! pool changes nothing.
//!
//! The compute pool is process-wide and fixed by the first env a process builds, so each
//! thread count runs in its own process: the test re-executes this test binary on the
//! ignored `print_trajectory_hash` with `PLOUTOS_TEST_THREADS` set, and compares the hashes
//! the children print.

use ploutos::config::EnvironmentConfig;
use ploutos::env::{EnvOptions, EpisodeBounds, MarketData, TradingEnv};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::process::Command;

/// FNV-1a over the bytes of a trajectory: stable across processes and builds.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Hash of 600 steps of 64 envs (random starts, short episodes so that auto-resets draw
/// from the env streams) under random actions.
fn trajectory_hash(seed: u64, threads: usize) -> u64 {
    // Small batches step serially by default; force parallel iteration so that the
    // thread count really matters.
    ploutos::env::set_parallel_min_envs(1);
    let cfg = EnvironmentConfig {
        episode_length: 120,
        initial_cash: 8_000.0,
        ..EnvironmentConfig::default()
    };
    let market = MarketData::random_walk(1_000, 3, 4, 5);
    let bounds = EpisodeBounds {
        first: 20,
        last: 999,
        random_start: true,
    };
    let mut env = TradingEnv::new(
        &cfg,
        market,
        EnvOptions {
            n_envs: 64,
            threads,
            bounds,
            trade_log: false,
            auto_reset: true,
        },
    )
    .expect("env");
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    let b = env.reset(seed);
    for x in &b.obs {
        h.bytes(&x.to_le_bytes());
    }
    let dim = env.obs_dim();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    for _ in 0..600 {
        let actions: Vec<u8> = (0..64 * 3).map(|_| rng.random_range(0..3u8)).collect();
        let b = env.step(&actions).expect("step");
        for x in b.obs.iter().chain(&b.rewards) {
            h.bytes(&x.to_le_bytes());
        }
        for (i, info) in b.infos.iter().enumerate() {
            h.bytes(&[u8::from(b.terminated[i]), u8::from(b.truncated[i])]);
            h.bytes(&info.equity.to_le_bytes());
            h.bytes(&info.bar.to_le_bytes());
            if b.terminated[i] || b.truncated[i] {
                for x in &b.final_obs[i * dim..(i + 1) * dim] {
                    h.bytes(&x.to_le_bytes());
                }
            }
        }
    }
    let t = env.totals();
    assert!(t.episodes > 64, "auto-resets happened: {}", t.episodes);
    h.bytes(&t.costs.total().to_le_bytes());
    h.0
}

/// Prints the hash of the thread count in `PLOUTOS_TEST_THREADS`; run by the test below.
#[test]
#[ignore = "run in a child process by `thread_count_changes_nothing`"]
fn print_trajectory_hash() {
    let threads: usize = std::env::var("PLOUTOS_TEST_THREADS")
        .expect("PLOUTOS_TEST_THREADS")
        .parse()
        .expect("a number");
    let hash = trajectory_hash(3, threads);
    let pool = bevy_tasks::ComputeTaskPool::get().thread_num();
    println!("TRAJECTORY_HASH={hash:016x} POOL_THREADS={pool}");
}

/// `<hash> POOL_THREADS=<n>` as printed by the child.
fn hash_in_child(threads: usize) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "print_trajectory_hash",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("PLOUTOS_TEST_THREADS", threads.to_string())
        .output()
        .expect("child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child with {threads} threads failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| {
            l.split_once("TRAJECTORY_HASH=")
                .map(|(_, h)| h.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no hash in the child's output:\n{stdout}"))
}

#[test]
fn thread_count_changes_nothing() {
    let one = hash_in_child(1);
    let two = hash_in_child(2);
    assert!(
        one.ends_with("POOL_THREADS=1") && two.ends_with("POOL_THREADS=2"),
        "pools: {one} / {two}"
    );
    assert_eq!(one[..16], two[..16], "1 and 2 worker threads");
    // And this process, whatever its pool.
    assert_eq!(format!("{:016x}", trajectory_hash(3, 0)), one[..16]);
}

#[test]
fn same_seed_same_trajectory_other_seed_another() {
    let a = trajectory_hash(11, 0);
    assert_eq!(a, trajectory_hash(11, 0));
    assert_ne!(a, trajectory_hash(12, 0));
}
