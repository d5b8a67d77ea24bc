//! `ploutos sweep SPEC.ron`: expands the spec into trials, runs each as `ploutos train
//! --config <trial>/config.ron --out <trial>` on a backend (this machine, or a Ray
//! cluster), stops poor trials early (ASHA) from the evaluations they write to their
//! `metrics.csv`, and writes the leaderboard.
//!
//! Layout of `sweeps/<name>/`: `spec.ron` and `base.ron` (the spec and its resolved base
//! config, to recognise a resume), `trials/<id>/` (`config.ron`, `model/`, `runs/`,
//! `logs/`, `stderr.log`, `result.json`, `status.json`), `leaderboard.{csv,json,html}`.
//! A trial is finished when its `status.json` says so (done, stopped early, failed); only
//! the sweep writes that file, after the trial's process ended, so a trial cut off by a
//! Ctrl-C or a crash has none and runs again when the same command is run again.

mod local;
mod ray;

use super::BadArgument;
use super::args::SweepArgs;
use anyhow::Context;
use ploutos::config::Config;
use ploutos::sweep::{
    Asha, Decision, Leaderboard, MetricTail, SweepSpec, Trial, TrialOutcome, TrialResult, TrialStatus, eval_column,
    read_curve, trial_config,
};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Makes the child `cmd` starts die with the sweep (Linux: `PR_SET_PDEATHSIG`, SIGKILL), so
/// that a sweep killed outright (SIGKILL, an OOM kill) leaves no trial training on: its
/// next run would remove the trial's folder under it. A sweep that ends normally has
/// stopped its trials itself. (On Ray, the driver dies with the sweep, Ray ends the dead
/// driver's workers, and each trial dies with its worker: `ray_driver.py`.)
fn die_with_sweep(cmd: &mut std::process::Command) -> &mut std::process::Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let sweep = std::process::id();
        // SAFETY: runs in the forked child before exec, calling only the async-signal-safe
        // `prctl` and `getppid`, and allocating nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The sweep died before the signal was set: no trial of its own.
                if u32::try_from(libc::getppid()).ok() != Some(sweep) {
                    return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
                }
                Ok(())
            });
        }
    }
    cmd
}

/// A trial ready to run: its id, its folder here, and its config as a RON document.
pub struct Launch {
    pub id: String,
    pub dir: PathBuf,
    pub config: String,
    /// CPU threads (its `training.threads`) and GPUs it asks for.
    pub cpus: usize,
    pub gpus: f64,
}

/// What a backend reports.
pub enum Event {
    /// The next bytes of a trial's `runs/metrics.csv`.
    Metrics { id: String, text: String },
    /// A trial's process ended; its outputs are in its folder here. `error` is set when
    /// the backend itself failed to run it.
    Exited { id: String, code: i32, error: Option<String> },
}

/// Where trials run.
pub trait Backend {
    /// Trials it runs at once (further trials wait in the sweep's queue).
    fn capacity(&self) -> usize;
    fn start(&mut self, launch: Launch) -> anyhow::Result<()>;
    /// Events since the last call.
    fn poll(&mut self) -> anyhow::Result<Vec<Event>>;
    /// Asks a trial to stop: it saves its model and writes its result, then exits.
    fn stop(&mut self, id: &str);
    /// Asks every running trial to stop (the sweep was interrupted).
    fn stop_all(&mut self);
}

/// Reads a spec file and its base config, checked.
fn load_spec(path: &Path) -> anyhow::Result<(SweepSpec, String, Config)> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| BadArgument(format!("cannot read sweep spec {shown}: {e}")))?;
    let spec = SweepSpec::from_ron_str(&text, &shown)?;
    let base = super::load_config(spec.base.as_deref(), &[]).with_context(|| format!("{shown}: base config"))?;
    spec.check(&base, &shown)?;
    Ok((spec, text, base))
}

/// A JSON file of a trial's folder (`status.json`, `result.json`), `None` when absent or
/// unreadable.
fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> Option<T> {
    serde_json::from_slice(&std::fs::read(dir.join(file)).ok()?).ok()
}

fn read_status(dir: &Path) -> Option<TrialStatus> {
    read_json(dir, TrialStatus::FILE)
}

fn read_result(dir: &Path) -> Option<TrialResult> {
    read_json(dir, TrialResult::FILE)
}

/// A trial's evaluations of `column`, from its `runs/metrics.csv` (none when absent).
fn read_trial_curve(dir: &Path, column: &str) -> Vec<(u64, f64)> {
    read_curve(&std::fs::read_to_string(dir.join("runs/metrics.csv")).unwrap_or_default(), column)
}

/// The last non-empty line of a text file (a trial's stderr, the Ray driver's log), if any.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(String::from)
}

/// What every trial would refuse as it starts, checked once before `--force` clears an
/// earlier sweep: its device, and its data (each distinct `data` section read once, and
/// split).
fn preflight(base: &Config, trials: &[ploutos::sweep::Trial]) -> anyhow::Result<()> {
    let (mut devices, mut data) = (Vec::new(), Vec::new());
    for t in trials {
        let cfg = ploutos::sweep::trial_config(base, &t.overrides)?;
        if !devices.contains(&cfg.training.device) {
            ploutos::ppo::parse_device(&cfg.training.device)
                .map_err(|e| BadArgument(format!("trial {}: {e}", t.id)))?;
            devices.push(cfg.training.device.clone());
        }
        if !data.contains(&cfg.data) {
            let (panel, _) = ploutos::market::load_panel(&cfg.data).with_context(|| format!("trial {}", t.id))?;
            ploutos::market::Split::new(&panel, &cfg.data.split).with_context(|| format!("trial {}", t.id))?;
            data.push(cfg.data);
        }
    }
    Ok(())
}

/// Prepares the output folder: a new one, the same sweep resumed, or (`--force`) a fresh
/// start; refuses a different spec over an earlier sweep's outputs.
fn prepare_dir(dir: &Path, spec_text: &str, base: &Config, force: bool) -> anyhow::Result<bool> {
    let (spec_file, base_file) = (dir.join("spec.ron"), dir.join("base.ron"));
    let base_text = base.to_ron();
    if dir.exists() && force {
        std::fs::remove_dir_all(dir).with_context(|| format!("--force: removing {}", dir.display()))?;
    }
    let resumed = match (std::fs::read_to_string(&spec_file), std::fs::read_to_string(&base_file)) {
        (Ok(s), Ok(b)) if s == spec_text && b == base_text => true,
        (Ok(_), Ok(_)) => {
            return Err(BadArgument(format!(
                "{} holds a sweep of another spec or base config; pass --force to start over, --out for another folder, or set `name` in the spec",
                dir.display()
            ))
            .into());
        }
        _ if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) => {
            return Err(BadArgument(format!(
                "{} is not empty and holds no sweep; pass --force to replace it or --out for another folder",
                dir.display()
            ))
            .into());
        }
        _ => false,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    ploutos::fsutil::write_atomic(&spec_file, spec_text.as_bytes())?;
    ploutos::fsutil::write_atomic(&base_file, base_text.as_bytes())?;
    Ok(resumed)
}

pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    let stop = super::stop_on_ctrl_c("stopping the sweep: running trials save their models");
    let (spec, text, base) = load_spec(&a.spec)?;
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| a.spec.file_stem().map_or_else(|| "sweep".into(), |s| s.to_string_lossy().into_owned()));
    if !ploutos::config::is_run_name(&name) {
        // The trials' run names start with it, and it names the sweep's folder.
        let from = if spec.name.is_some() { "the spec's `name`" } else { "the spec file's name (set `name` in it)" };
        return Err(BadArgument(format!(
            "{}: {from} {name:?} must be {}",
            a.spec.display(),
            ploutos::config::RUN_NAME_RULE
        ))
        .into());
    }
    let dir = a.out.clone().unwrap_or_else(|| PathBuf::from("sweeps").join(&name));
    let trials = spec.trials(base.training.seed);
    if a.list {
        for t in &trials {
            println!("{}", t.id);
        }
        return Ok(());
    }
    let only = match &a.only {
        Some(key) => Some(
            key.parse::<usize>()
                .ok()
                .and_then(|i| trials.get(i))
                .or_else(|| trials.iter().find(|t| t.id == *key))
                .map(|t| t.id.clone())
                .ok_or_else(|| {
                    BadArgument(format!(
                        "--only {key}: no such trial (indices 0..{}, or an id of --list)",
                        trials.len()
                    ))
                })?,
        ),
        None => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Threads of a trial, and trials at once here (Ray places trials by their CPUs itself).
    let (threads, parallel) = match (spec.trial_threads, a.parallel.map(|p| p as usize)) {
        (0, _) if only.is_some() => (cores, 1),
        (0, None) => (1, cores),
        (0, Some(p)) => ((cores / p).max(1), p),
        (t, None) => (t, (cores / t).max(1)),
        (t, Some(p)) => (t, p),
    };
    if a.backend != "ray" && a.address.is_some() {
        return Err(BadArgument("--address is the Ray cluster's: it needs --backend ray".into()).into());
    }
    super::check_writable(&dir, if a.out.is_some() { "--out" } else { "sweep folder (--out chooses another)" })?;
    if a.force && dir.exists() && a.backend != "ray" {
        // An earlier sweep is replaced only by one whose every trial can start (without
        // --force, a trial that cannot is listed as failed beside the others). A Ray
        // cluster's machines have their own devices and data.
        preflight(&base, &trials)?;
    }
    let resumed = prepare_dir(&dir, &text, &base, a.force)?;
    let backend: Box<dyn Backend> = match a.backend.as_str() {
        "ray" => {
            let address = a.address.clone().ok_or_else(|| BadArgument("--backend ray needs --address".into()))?;
            let python = a.python.clone().unwrap_or_else(|| {
                let venv = PathBuf::from(".venv/bin/python");
                if venv.is_file() { venv } else { PathBuf::from("python3") }
            });
            let binary = match &a.ray_binary {
                Some(b) => b.clone(),
                None => std::env::current_exe().context("locating the ploutos binary")?,
            };
            let backend = ray::RayBackend::connect(&python, &address, &binary, &dir).inspect_err(|_| {
                // Nothing left behind by a sweep that never started.
                if !resumed {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            })?;
            eprintln!(
                "ploutos: sweep {name} on the Ray cluster at {address} ({} CPU(s)), {threads} CPU(s) and {} GPU(s) per trial",
                backend.cluster_cpus(),
                spec.trial_gpus
            );
            Box::new(backend)
        }
        _ => {
            eprintln!(
                "ploutos: sweep {name}: {parallel} trial(s) at once on {cores} core(s), {threads} thread(s) each"
            );
            Box::new(local::LocalBackend::new(parallel))
        }
    };
    let plan = Plan { spec: &spec, name: &name, dir: &dir, base: &base, threads, retry_failed: a.retry_failed, only };
    sweep(&plan, resumed, backend, &stop)
}

/// What to run and where to write it.
struct Plan<'a> {
    spec: &'a SweepSpec,
    name: &'a str,
    dir: &'a Path,
    base: &'a Config,
    /// CPU threads of each trial.
    threads: usize,
    retry_failed: bool,
    /// `--only`: the one trial to run (no leaderboard).
    only: Option<String>,
}

/// Runs the trials not finished yet, then writes the leaderboard.
fn sweep(plan: &Plan, resumed: bool, mut backend: Box<dyn Backend>, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let Plan { spec, name, dir, base, threads, retry_failed, ref only } = *plan;
    let trials = spec.trials(base.training.seed);
    let column = eval_column(spec.metric);
    let trial_dir = |t: &Trial| dir.join("trials").join(&t.id);
    let finished = |t: &Trial| match read_status(&trial_dir(t)) {
        Some(TrialStatus::Failed { .. }) => !retry_failed,
        Some(_) => true,
        None => false,
    };
    // ASHA's rungs go up to the longest trial; finished trials' evaluations are replayed
    // into it first, so that a resumed sweep judges new results against them.
    let mut configs = BTreeMap::new();
    for t in &trials {
        let mut cfg = trial_config(base, &t.overrides).map_err(|e| BadArgument(format!("trial {}: {e}", t.id)))?;
        cfg.training.threads = threads;
        cfg.training.run_name = Some(format!("{name}.{}", t.id));
        configs.insert(t.id.clone(), cfg);
    }
    let max_t = configs.values().map(|c| c.training.total_timesteps).max().unwrap_or(1);
    let mut asha = spec.asha.as_ref().map(|s| Asha::new(s.grace_timesteps, s.reduction_factor, max_t));
    let mut queue: VecDeque<&Trial> = VecDeque::new();
    let mut n_finished = 0;
    for t in &trials {
        if finished(t) {
            n_finished += 1;
            if let Some(asha) = asha.as_mut() {
                for (step, v) in read_trial_curve(&trial_dir(t), column) {
                    asha.on_result(&t.id, step, v);
                }
            }
        } else if only.as_ref().is_none_or(|id| *id == t.id) {
            queue.push_back(t);
        }
    }
    if resumed {
        eprintln!(
            "ploutos: resuming sweep {name} in {}: {n_finished} of {} trials finished",
            dir.display(),
            trials.len()
        );
    }
    if let Some(id) = only
        && queue.is_empty()
    {
        eprintln!("ploutos: trial {id} has finished already");
    }
    if let Some(a) = &asha {
        eprintln!("ploutos: ASHA rungs at {:?} timesteps on {column}", a.rungs());
    }
    let total = queue.len();
    let mut running: BTreeMap<String, &Trial> = BTreeMap::new();
    let mut tails: BTreeMap<String, MetricTail> = BTreeMap::new();
    // Trials ASHA stopped: the timesteps and metric of the evaluation it judged.
    let mut stopped: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut interrupted = false;
    let mut done = 0;
    loop {
        if stop.load(Ordering::SeqCst) && !interrupted {
            interrupted = true;
            queue.clear();
            backend.stop_all();
        }
        while running.len() < backend.capacity() && !interrupted {
            let Some(t) = queue.pop_front() else { break };
            let tdir = trial_dir(t);
            if tdir.exists() {
                // What an interrupted or failed run left: it starts over.
                std::fs::remove_dir_all(&tdir).with_context(|| format!("removing {}", tdir.display()))?;
            }
            std::fs::create_dir_all(&tdir).with_context(|| format!("creating {}", tdir.display()))?;
            let config = configs[&t.id].to_ron();
            ploutos::fsutil::write_atomic(&tdir.join("config.ron"), config.as_bytes())?;
            backend.start(Launch { id: t.id.clone(), dir: tdir, config, cpus: threads, gpus: spec.trial_gpus })?;
            running.insert(t.id.clone(), t);
            tails.insert(t.id.clone(), MetricTail::new(column));
        }
        if running.is_empty() {
            break;
        }
        for event in backend.poll()? {
            match event {
                Event::Metrics { id, text } => {
                    let (Some(tail), Some(asha)) = (tails.get_mut(&id), asha.as_mut()) else { continue };
                    for (step, v) in tail.push(&text) {
                        if asha.on_result(&id, step, v) == Decision::Stop && !stopped.contains_key(&id) {
                            eprintln!("ploutos: ASHA stops {id} at {step} timesteps ({column} {v:.3})");
                            stopped.insert(id.clone(), (step, v));
                            backend.stop(&id);
                        }
                    }
                }
                Event::Exited { id, code, error } => {
                    let Some(t) = running.remove(&id) else { continue };
                    tails.remove(&id);
                    let tdir = trial_dir(t);
                    let result = read_result(&tdir);
                    let status = match (error, code, stopped.get(&id), &result) {
                        (Some(e), _, _, _) => Some(TrialStatus::Failed { error: e }),
                        // (A stop that came after its last iteration changed nothing: done.)
                        (None, 0, Some(&(timesteps, metric)), Some(r)) if r.interrupted => {
                            Some(TrialStatus::Stopped { timesteps, metric })
                        }
                        // Stopped from outside (the sweep's Ctrl-C): not finished, runs again.
                        (None, 0, None, Some(r)) if r.interrupted => None,
                        (None, 0, _, Some(_)) => Some(TrialStatus::Done),
                        (None, 0, _, None) => Some(TrialStatus::Failed { error: "it wrote no result.json".into() }),
                        (None, _, _, _) if interrupted => None,
                        (None, code, _, _) => Some(TrialStatus::Failed {
                            error: format!(
                                "exit code {code}: {}",
                                last_line(&tdir.join("stderr.log"))
                                    .unwrap_or_else(|| "it wrote nothing on stderr".into())
                            ),
                        }),
                    };
                    if let Some(s) = &status {
                        done += 1;
                        let what = match s {
                            TrialStatus::Done => "done".to_string(),
                            TrialStatus::Stopped { .. } => "stopped early".to_string(),
                            TrialStatus::Failed { error } => format!("FAILED: {error}"),
                        };
                        eprintln!("ploutos: [{done}/{total}] {id}: {what}");
                        ploutos::fsutil::write_atomic(&tdir.join(TrialStatus::FILE), &serde_json::to_vec_pretty(s)?)?;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    if let Some(id) = only {
        if interrupted {
            anyhow::bail!("the trial was interrupted: run the same command again to run it again");
        }
        if let Some(TrialStatus::Failed { error }) = read_status(&dir.join("trials").join(id)) {
            // A job array marks the task failed.
            anyhow::bail!("trial {id} failed: {error} (--retry-failed runs it again)");
        }
        eprintln!(
            "ploutos: run `ploutos sweep` on this spec without --only, once every trial has run, for the leaderboard"
        );
        return Ok(());
    }
    let outcomes: Vec<TrialOutcome> = trials
        .iter()
        .map(|t| {
            let tdir = trial_dir(t);
            let status = read_status(&tdir);
            // An unfinished trial (interrupted with the sweep) may have left a result.json
            // of its cut-short run: it is not ranked until the trial runs again.
            let result = status.as_ref().and_then(|_| read_result(&tdir));
            TrialOutcome { trial: t.clone(), status, result, curve: read_trial_curve(&tdir, column) }
        })
        .collect();
    let board = Leaderboard::build(name, spec, &spec.points(), &outcomes);
    board.write(dir, &outcomes).with_context(|| format!("writing the leaderboard in {}", dir.display()))?;
    print!("{}", board.table());
    for t in board.trials.iter().filter(|t| t.status == "failed") {
        println!("failed: {} — {}", t.id, t.detail);
    }
    eprintln!("ploutos: leaderboard in {}", dir.join("leaderboard.html").display());
    if interrupted {
        anyhow::bail!(
            "the sweep was interrupted; {} trial(s) did not finish: run the same command again to resume",
            outcomes.iter().filter(|o| o.status.is_none()).count()
        );
    }
    let failed = board.trials.iter().filter(|t| t.status == "failed").count();
    if failed > 0 {
        // The leaderboard stands for the others; the exit status says not every trial ran.
        anyhow::bail!(
            "{failed} of {} trial(s) failed (above): fix the cause, then --retry-failed runs them again",
            outcomes.len()
        );
    }
    Ok(())
}
