//! `ploutos bench`: env-steps per second (or PPO training throughput with `--train`),
//! beside the NumPy / Stable-Baselines3 baselines of `shared/bench/` run in the same
//! invocation when they are found.

use super::BadArgument;
use super::args::BenchArgs;
use ploutos::bench::{
    EnvBench, EnvRun, bench_market, bench_market_with_actions, measure_copy_bandwidth, measure_env,
    measure_write_bandwidth,
};
use ploutos::config::ObservationLayout;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    // The baselines replicate the seed's account and rules (the built-in defaults), not the
    // quick run's `config/default.ron`: only an explicit --config replaces them.
    let cfg = match &a.common.config {
        Some(_) => a.common.load()?,
        None => super::builtin_config(&a.common.overrides)?,
    };
    check_args(&a, &cfg)?;
    // A folder without the baselines' scripts runs none (said in the output); one that is
    // not there is a typo.
    if let Some(dir) = a.baseline.as_deref().filter(|d| !d.is_dir()) {
        return Err(BadArgument(format!("--baseline {}: no such folder", dir.display())).into());
    }
    if a.train {
        return super::train::bench(&cfg, &a);
    }
    // Killed when `run` returns, whatever happens.
    let _busy = BusyProcesses::start(a.contention)?;
    let envs = if a.envs.is_empty() { vec![1, 64, 1024, 4096, 16384] } else { a.envs.clone() };
    let layouts = match a.layout.as_deref() {
        None => vec![ObservationLayout::Index, ObservationLayout::Materialized],
        Some("index") => vec![ObservationLayout::Index],
        Some("materialized") => vec![ObservationLayout::Materialized],
        Some(other) => return Err(BadArgument(format!("--layout {other:?}: expected index or materialized")).into()),
    };
    if a.realism_cost {
        return realism_cost(&cfg, &a, &layouts);
    }
    let baseline = baseline_dir(a.baseline.as_deref());
    if baseline.is_some() && python_with("numpy").is_none() && !a.json {
        println!(
            "(NumPy baseline not run: no Python with numpy: $VIRTUAL_ENV/bin/python, .venv/bin/python in this folder, or python3)"
        );
    }
    let bandwidth = Bandwidth {
        fill: measure_write_bandwidth(cfg.training.threads),
        copy: measure_copy_bandwidth(cfg.training.threads),
    };
    if !a.json {
        println!(
            "memory bandwidth, all threads: {:.1} GB/s written by a 256 MiB fill, {:.1} GB/s written by a 128 MiB copy",
            bandwidth.fill / 1e9,
            bandwidth.copy / 1e9
        );
        println!(
            "{:<10} {:>6} {:>13} {:>8} {:>16} {:>16} {:>8} {:>9} {:>9}",
            "system",
            "envs",
            "layout",
            "obs_dim",
            "env-steps/s",
            "numpy env-steps/s",
            "ratio",
            "% fill bw",
            "% copy bw"
        );
    }
    for &layout in &layouts {
        for &n in &envs {
            let mut env_cfg = cfg.environment.clone();
            env_cfg.observation_layout = layout;
            let market = if a.corporate_actions { bench_market_with_actions(10) } else { bench_market(10) };
            let ours = measure_env(&env_cfg, market, n, cfg.training.threads, a.seconds)?;
            let numpy = baseline.as_deref().and_then(|d| numpy_baseline(d, n, layout, a.seconds));
            report(&ours, numpy.as_ref(), &bandwidth, a.json);
        }
    }
    if baseline.is_none() && !a.json {
        let looked = a.baseline.as_ref().map_or("../shared/bench or shared/bench".into(), |p| p.display().to_string());
        println!("(NumPy baseline not run: no numpy_env.py in {looked}; see --baseline)");
    }
    Ok(())
}

/// `--realism-cost`: per layout and env count, the configured env and the same env with
/// every realism switch on, both built once and timed in alternation, in runs of
/// [`REALISM_RUN_SECONDS`] each (each env first in every other pair), `--repeat` ×
/// `--seconds` seconds per env in all (at least one pair). Prints the
/// medians of each env's runs and the median of the pairs' ratios: on a shared machine the
/// load changes from one second to the next, and two runs a quarter of a second apart see
/// nearly the same, so each pair's ratio is the steady estimate (pairs of whole
/// `--seconds` runs, as this measured first, moved the median ratio by ±0.05 between
/// invocations of one build).
fn realism_cost(cfg: &ploutos::config::Config, a: &BenchArgs, layouts: &[ObservationLayout]) -> anyhow::Result<()> {
    let envs = if a.envs.is_empty() { vec![4096] } else { a.envs.clone() };
    let pairs = ((a.repeat as f64 * a.seconds / REALISM_RUN_SECONDS).round() as usize).max(1);
    if !a.json {
        println!(
            "{:>6} {:>13} {:>20} {:>20} {:>8}   (medians of {pairs} alternated runs of {REALISM_RUN_SECONDS} s each; ratio: median of the pairs' ratios)",
            "envs", "layout", "default env-steps/s", "realism env-steps/s", "ratio"
        );
    }
    for &layout in layouts {
        for &n in &envs {
            let mut base = cfg.environment.clone();
            base.observation_layout = layout;
            let mut on = base.clone();
            ploutos::bench::all_realism_on(&mut on);
            let mut plain_env = EnvRun::new(&base, bench_market(10), n, cfg.training.threads)?;
            let mut real_env = EnvRun::new(&on, bench_market_with_actions(10), n, cfg.training.threads)?;
            let (mut plain, mut real) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
            for i in 0..pairs {
                // Each env first in every other pair: a load that drifts one way within
                // the invocation weighs on both alike.
                if i % 2 == 0 {
                    plain.push(plain_env.rate_for(REALISM_RUN_SECONDS));
                    real.push(real_env.rate_for(REALISM_RUN_SECONDS));
                } else {
                    real.push(real_env.rate_for(REALISM_RUN_SECONDS));
                    plain.push(plain_env.rate_for(REALISM_RUN_SECONDS));
                }
            }
            let (p, r) = (ploutos::bench::median(plain.clone()), ploutos::bench::median(real.clone()));
            let ratios: Vec<f64> = real.iter().zip(&plain).map(|(r, p)| r / p).collect();
            let ratio = ploutos::bench::median(ratios.clone());
            // The middle half of the pairs' ratios: how far one pair strays.
            let (q1, q3) = quartiles(&ratios);
            if a.json {
                let v = serde_json::json!({
                    "envs": n, "layout": ploutos::bench::layout_name(layout), "default": p, "realism": r,
                    "ratio": ratio, "ratio_q1": q1, "ratio_q3": q3, "run_seconds": REALISM_RUN_SECONDS,
                    "default_runs": plain, "realism_runs": real, "ratios": ratios,
                });
                println!("{v}");
            } else {
                println!(
                    "{n:>6} {:>13} {p:>20.0} {r:>20.0} {ratio:>8.2}   (pairs' ratios, middle half: {q1:.2}–{q3:.2})",
                    ploutos::bench::layout_name(layout)
                );
            }
        }
    }
    Ok(())
}

/// Seconds of one timed run in `--realism-cost`'s alternation.
const REALISM_RUN_SECONDS: f64 = 0.25;

/// First and third quartiles of `v`.
fn quartiles(v: &[f64]) -> (f64, f64) {
    use statrs::statistics::{Data, OrderStatistics};
    let mut data = Data::new(v.to_vec());
    (data.lower_quartile(), data.upper_quartile())
}

/// Busy loops in processes of their own, beside a measurement; killed on drop.
pub(super) struct BusyProcesses(Vec<std::process::Child>);

impl BusyProcesses {
    pub(super) fn start(n: u32) -> anyhow::Result<Self> {
        let mut children = Self(Vec::new());
        for _ in 0..n {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| anyhow::anyhow!("--contention: cannot start a busy process with sh: {e}"))?;
            children.0.push(child);
        }
        Ok(children)
    }
}

impl Drop for BusyProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Most seconds one configuration may be measured for.
const MAX_SECONDS: f64 = 3600.0;

/// Checks the arguments before anything runs: each numeric flag passes the validation of
/// the config key it stands for (`--envs` → `training.n_envs`, `--n-steps` →
/// `training.n_steps`, `--batch` → `training.batch_size`, `--epochs` →
/// `training.n_epochs`, `--net` → `training.net_arch`), and `--seconds` is a finite,
/// positive duration.
fn check_args(a: &BenchArgs, cfg: &ploutos::config::Config) -> Result<(), BadArgument> {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= MAX_SECONDS) {
        return Err(BadArgument(format!("--seconds {}: must be in (0, {MAX_SECONDS}]", a.seconds)));
    }
    let flag = |flag: &str, value: String, e: ploutos::config::ConfigError| match e {
        ploutos::config::ConfigError::OutOfRange { key, allowed, .. } => {
            BadArgument(format!("{flag} {value}: {key} {allowed}"))
        }
        other => BadArgument(format!("{flag} {value}: {other}")),
    };
    let check = |name: &str, value: Option<usize>, set: fn(&mut ploutos::config::TrainingConfig, usize)| {
        value.map_or(Ok(()), |v| {
            let mut t = cfg.training.clone();
            set(&mut t, v);
            t.validate().map_err(|e| flag(name, v.to_string(), e))
        })
    };
    for &n in &a.envs {
        check("--envs", Some(n), |t, v| t.n_envs = v)?;
    }
    check("--n-steps", a.n_steps, |t, v| t.n_steps = v)?;
    check("--batch", a.batch, |t, v| t.batch_size = v)?;
    check("--epochs", a.epochs, |t, v| t.n_epochs = v)?;
    if let Some(net) = &a.net {
        let mut t = cfg.training.clone();
        t.net_arch = parse_net(net)?;
        t.validate().map_err(|e| flag("--net", net.clone(), e))?;
    }
    Ok(())
}

/// `--net 64,64` as hidden widths.
pub(super) fn parse_net(net: &str) -> Result<Vec<usize>, BadArgument> {
    net.split(',')
        .map(|w| w.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| BadArgument(format!("--net {net:?}: expected widths like 64,64")))
}

/// What the machine's memory allows, in bytes written per second.
struct Bandwidth {
    fill: f64,
    copy: f64,
}

fn report(ours: &EnvBench, numpy: Option<&serde_json::Value>, bandwidth: &Bandwidth, json: bool) {
    let numpy_rate = numpy.and_then(|v| v["env_steps_per_sec"].as_f64());
    let ratio = numpy_rate.map(|r| ours.env_steps_per_sec / r);
    if json {
        let mut v = serde_json::to_value(ours).unwrap_or_default();
        v["numpy_env_steps_per_sec"] = numpy_rate.map_or(serde_json::Value::Null, Into::into);
        v["ratio_vs_numpy"] = ratio.map_or(serde_json::Value::Null, Into::into);
        v["write_bandwidth_bytes_per_sec"] = bandwidth.fill.into();
        v["bandwidth_fraction"] = (ours.obs_bytes_per_sec / bandwidth.fill).into();
        v["copy_bandwidth_bytes_per_sec"] = bandwidth.copy.into();
        v["copy_bandwidth_fraction"] = (ours.obs_bytes_per_sec / bandwidth.copy).into();
        println!("{v}");
    } else {
        println!(
            "{:<10} {:>6} {:>13} {:>8} {:>16.0} {:>16} {:>8} {:>8.1}% {:>8.1}%",
            ours.system,
            ours.n_envs,
            ours.layout,
            ours.obs_dim,
            ours.env_steps_per_sec,
            numpy_rate.map_or("-".into(), |r| format!("{r:.0}")),
            ratio.map_or("-".into(), |r| format!("{r:.1}x")),
            100.0 * ours.obs_bytes_per_sec / bandwidth.fill,
            100.0 * ours.obs_bytes_per_sec / bandwidth.copy
        );
    }
}

/// The folder holding `numpy_env.py`: `--baseline`, else `../shared/bench` or `shared/bench`.
fn baseline_dir(arg: Option<&Path>) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match arg {
        Some(p) => vec![p.to_path_buf()],
        None => vec![PathBuf::from("../shared/bench"), PathBuf::from("shared/bench")],
    };
    candidates.into_iter().find(|d| d.join("numpy_env.py").exists())
}

/// A Python that has `module`: the active virtual environment's, the project's `.venv`
/// (in the working folder), else `python3`.
pub fn python_with(module: &str) -> Option<String> {
    let active = std::env::var("VIRTUAL_ENV").ok().map(|v| format!("{v}/bin/python"));
    active.into_iter().chain([".venv/bin/python", "python3"].map(String::from)).find(|py| {
        Command::new(py).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
    })
}

fn numpy_baseline(dir: &Path, n: usize, layout: ObservationLayout, seconds: f64) -> Option<serde_json::Value> {
    let py = python_with("numpy")?;
    let out = Command::new(py)
        .arg(dir.join("numpy_env.py"))
        .args([
            "--envs",
            &n.to_string(),
            "--layout",
            ploutos::bench::layout_name(layout),
            "--seconds",
            &seconds.to_string(),
            "--json",
        ])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

#[cfg(feature = "learner")]
/// Runs `sb3_ppo.py` with the same sizes, when a Python with stable-baselines3 is found.
pub fn sb3_baseline(dir: Option<&Path>, shape: &ploutos::ppo::TrainShape) -> Option<serde_json::Value> {
    let ploutos::ppo::TrainShape { net, n_envs, n_steps, batch, epochs } = shape;
    let dir = baseline_dir(dir)?;
    let py = python_with("stable_baselines3")?;
    let net: Vec<String> = net.iter().map(ToString::to_string).collect();
    let out = Command::new(py)
        .arg(dir.join("sb3_ppo.py"))
        .args(["--net", &net.join(","), "--envs", &n_envs.to_string(), "--n-steps", &n_steps.to_string()])
        .args(["--batch", &batch.to_string(), "--epochs", &epochs.to_string(), "--json"])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}
