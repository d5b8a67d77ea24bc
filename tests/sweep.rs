//! `ploutos sweep`: tiny sweeps run for real, on this machine and on a real Ray head node
//! started for the test, with early stopping, failures, resume and the leaderboard.
#![cfg(feature = "learner")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ploutos_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ploutos")).args(args).current_dir(dir).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A spec of tiny trainings (a second or two each): the quick config on 3 years of 2
/// tickers, 8,192 timesteps, an evaluation every 2,048.
fn spec(body: &str) -> String {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.ron");
    format!(
        r#"(
    base: "{base}",
    set: [
        "data.synthetic.years=3",
        "data.tickers=[\"AAA\",\"BBB\"]",
        "training.total_timesteps=8192",
        "training.n_envs=4",
        "training.n_steps=128",
        "training.batch_size=128",
        "training.eval_freq=2048",
        "training.eval_episodes=2",
        "training.checkpoint_freq=4096",
        "environment.episode_length=100",
    ],
    {body}
)"#
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks the leaderboard of a finished sweep of `trials` trials and returns its JSON.
fn check_leaderboard(sweep: &Path, trials: usize) -> serde_json::Value {
    for f in ["leaderboard.csv", "leaderboard.json", "leaderboard.html"] {
        assert!(sweep.join(f).is_file(), "{f}");
    }
    let v = json(&sweep.join("leaderboard.json"));
    assert_eq!(v["trials"].as_array().unwrap().len(), trials, "{v}");
    let rows = v["rows"].as_array().unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["rank"], i + 1);
        assert_eq!(
            r["trials"].as_u64().unwrap(),
            r["done"].as_u64().unwrap() + r["stopped"].as_u64().unwrap() + r["failed"].as_u64().unwrap(),
            "{r}"
        );
    }
    // Ranked by the metric's median, best first (points without a result last).
    let medians: Vec<f64> = rows.iter().map(|r| r["metric_median"].as_f64().unwrap_or(f64::NEG_INFINITY)).collect();
    assert!(medians.windows(2).all(|w| w[0] >= w[1]), "{medians:?}");
    let csv = std::fs::read_to_string(sweep.join("leaderboard.csv")).unwrap();
    assert_eq!(csv.lines().count(), rows.len() + 1, "{csv}");
    assert!(csv.starts_with("rank,point,config,"), "{csv}");
    let html = std::fs::read_to_string(sweep.join("leaderboard.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("<table>"), "the page has its plot and table");
    v
}

#[test]
fn local_sweep_stops_poor_trials_lists_failures_and_resumes_without_rerunning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 2 devices × 2 learning rates × 2 seeds = 8 trials; the 4 on a CUDA device that is not
    // there fail (listed, not dropped).
    std::fs::write(
        d.join("lr.ron"),
        spec(
            r#"grid: {"training.device": ["cpu", "cuda:7"], "training.learning_rate": [1e-4, 1e-3]},
    seeds: 2,
    asha: Some((grace_timesteps: 2048, reduction_factor: 2)),"#,
        ),
    )
    .unwrap();
    let (code, out, err) = ploutos_in(d, &["sweep", "lr.ron", "--parallel", "2"]);
    // The leaderboard is written; the exit status says that not every trial ran.
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("4 of 8 trial(s) failed"), "{err}");
    let sweep = d.join("sweeps/lr");
    let v = check_leaderboard(&sweep, 8);
    let trials = v["trials"].as_array().unwrap();
    let status = |t: &serde_json::Value| t["status"].as_str().unwrap().to_string();
    let failed: Vec<&serde_json::Value> = trials.iter().filter(|t| status(t) == "failed").collect();
    assert_eq!(failed.len(), 4, "{v}");
    for t in &failed {
        assert!(t["detail"].as_str().unwrap().contains("cuda"), "{t}");
        assert!(out.contains(&format!("failed: {}", t["id"].as_str().unwrap())), "{out}");
    }
    // Trials on the CPU ran to the end or were stopped by ASHA at a rung before it.
    for t in trials.iter().filter(|t| status(t) != "failed") {
        let id = t["id"].as_str().unwrap();
        let result = json(&sweep.join("trials").join(id).join("result.json"));
        let splits: Vec<&str> =
            result["splits"].as_array().unwrap().iter().map(|s| s["split"].as_str().unwrap()).collect();
        assert_eq!(splits, ["validation", "test"], "{id}");
        match status(t).as_str() {
            "done" => assert_eq!(result["timesteps"], 8192, "{id}"),
            "stopped" => {
                let st = json(&sweep.join("trials").join(id).join("status.json"));
                assert!(st["timesteps"].as_u64().unwrap() < 8192 && result["interrupted"] == true, "{id}: {st}");
                assert!(err.contains(&format!("ASHA stops {id}")), "{err}");
            }
            s => panic!("{id}: {s}"),
        }
    }
    assert!(err.contains("ASHA rungs at [2048, 4096, 8192]"), "{err}");
    // The best point's row is a CPU point with test metrics beside buy-and-hold.
    let best = &v["rows"][0];
    assert!(best["config"].as_str().unwrap().contains("training.device=cpu"), "{best}");
    assert!(best["test_buy_and_hold_sharpe"].as_f64().unwrap().is_finite(), "{best}");

    // The same command again: nothing reruns.
    let first = sweep.join("trials/p000-s42/result.json");
    let before = mtime(&first);
    let (code, _, err) = ploutos_in(d, &["sweep", "lr.ron"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("8 of 8 trials finished"), "{err}");
    assert_eq!(mtime(&first), before);
    // --retry-failed reruns the failed ones only.
    let (code, _, err) = ploutos_in(d, &["sweep", "lr.ron", "--retry-failed"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("4 of 8 trials finished") && err.contains("[4/4]"), "{err}");
    // One failed trial alone (a job array's task): its failure is the exit status.
    let failed_id = failed[0]["id"].as_str().unwrap();
    let (code, _, err) = ploutos_in(d, &["sweep", "lr.ron", "--only", failed_id, "--retry-failed"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("trial {failed_id} failed")), "{err}");
    assert_eq!(mtime(&first), before);
    // --force replaces the sweep only with one whose every trial can start: a device that
    // is not there, or data without a training split, leave it as it was.
    for bad in [r#"grid: {"training.device": ["cuda:7"]},"#, r#"grid: {"data.split.train_end": ["1990-01-01"]},"#] {
        std::fs::write(d.join("bad.ron"), spec(&format!("name: \"lr\", {bad}"))).unwrap();
        let (code, _, err) = ploutos_in(d, &["sweep", "bad.ron", "--force"]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert_eq!(mtime(&first), before, "{bad}: {err}");
    }
    // Another spec over this sweep's folder is refused; --force starts over.
    std::fs::write(d.join("lr.ron"), spec("seeds: 1,")).unwrap();
    let (code, _, err) = ploutos_in(d, &["sweep", "lr.ron"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds a sweep of another spec"), "{err}");
    // --address is a Ray cluster's.
    let (code, _, err) = ploutos_in(d, &["sweep", "lr.ron", "--address", "127.0.0.1:6379"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--address is the Ray cluster's: it needs --backend ray"), "{err}");
    // A name that is no folder name (the trials' run names start with it) is refused.
    std::fs::write(d.join("evil.ron"), spec(r#"name: "../evil", seeds: 1,"#)).unwrap();
    let (code, _, err) = ploutos_in(d, &["sweep", "evil.ron"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the spec's `name` \"../evil\" must be"), "{err}");
    assert!(!d.join("evil").exists() && !d.join("sweeps").join("evil").exists());
}

#[test]
fn an_interrupted_sweep_resumes_without_rerunning_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.ron"), spec(r#"name: "cut", seeds: 3,"#)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ploutos"))
        .args(["sweep", "s.ron", "--parallel", "1"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let trials = d.join("sweeps/cut/trials");
    let first = trials.join("p000-s42/status.json");
    // The second trial has logged an iteration: interrupted, it saves its model and writes
    // the result of its cut-short run.
    let second = trials.join("p000-s43/runs/metrics.csv");
    let logged = |p: &Path| std::fs::read_to_string(p).is_ok_and(|t| t.lines().count() >= 2);
    let t0 = Instant::now();
    while !(first.is_file() && logged(&second)) {
        assert!(t0.elapsed() < Duration::from_secs(300), "the first trial never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted") && err.contains("run the same command again"), "{err}");
    assert!(!trials.join("p000-s43/status.json").exists(), "an interrupted trial is not finished");
    assert!(trials.join("p000-s43/result.json").is_file(), "its cut-short run's result");
    // Its cut-short run is not ranked: the board holds the finished trial's result only.
    let board = json(&d.join("sweeps/cut/leaderboard.json"));
    assert_eq!(board["rows"][0]["done"], 1, "{board}");
    assert_eq!(board["rows"][0]["metric_median"], board["trials"][0]["metric"], "{board}");
    let before = mtime(&trials.join("p000-s42/result.json"));
    let (code, _, err) = ploutos_in(d, &["sweep", "s.ron", "--parallel", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 of 3 trials finished"), "{err}");
    assert_eq!(mtime(&trials.join("p000-s42/result.json")), before, "the finished trial did not run again");
    let v = check_leaderboard(&d.join("sweeps/cut"), 3);
    assert!(v["trials"].as_array().unwrap().iter().all(|t| t["status"] == "done"), "{v}");
    assert_eq!(v["rows"][0]["done"], 3);
}

/// The processes whose parent is `pid`, with their state letter (`/proc/<pid>/stat`).
fn children_of(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // `pid (comm) state ppid ...`: the command may hold spaces, the fields after it not.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push((child, fields[0].chars().next().unwrap_or('?')));
        }
    }
    out
}

/// A sweep killed outright (SIGKILL: no chance to stop its trials) takes its running trial
/// with it, so that running the sweep again does not remove a folder a trial still writes.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_sweep_takes_its_trials_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = spec(r#"name: "killed", seeds: 1,"#).replace("total_timesteps=8192", "total_timesteps=100000000");
    std::fs::write(d.join("s.ron"), long).unwrap();
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_ploutos"))
        .args(["sweep", "s.ron", "--parallel", "1"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let trial = loop {
        if let Some(&(pid, _)) = children_of(sweep.id()).first() {
            break pid;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the trial never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    sweep.kill().unwrap();
    sweep.wait().unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rfind(')').map(|i| !s[i + 2..].starts_with('Z')))
            .unwrap_or(false)
    };
    let t0 = Instant::now();
    while alive(trial) {
        assert!(t0.elapsed() < Duration::from_secs(10), "trial {trial} outlived its sweep");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_specs_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (r#"grid: {"training.learnin_rate": [1e-4]},"#, "unknown config key `training.learnin_rate`"),
        (r#"grid: {"training.gamma": []},"#, "empty range"),
        (r#"random: Some((trials: 0, keys: {"training.gamma": Uniform(0.9, 0.99)})),"#, "budget"),
        (r#"random: Some((trials: 3, keys: {"training.gamma": LogUniform(0.99, 0.9)})),"#, "LogUniform"),
        ("seeds: 0,", "seeds must be at least 1"),
        ("grdi: {},", "grdi"),
    ];
    for (body, needle) in cases {
        std::fs::write(d.join("bad.ron"), spec(body)).unwrap();
        let (code, _, err) = ploutos_in(d, &["sweep", "bad.ron"]);
        assert_eq!(code, 2, "{body}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{body}: {err}");
        assert!(err.contains("bad.ron") && err.contains(needle), "{body}: {err}");
    }
    // An --out that is a file is refused before any trial runs.
    std::fs::write(d.join("ok.ron"), spec("seeds: 1,")).unwrap();
    std::fs::write(d.join("file"), "").unwrap();
    let (code, _, err) = ploutos_in(d, &["sweep", "ok.ron", "--out", "file"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--out file: file is not a folder"), "{err}");
    let (code, _, err) = ploutos_in(d, &["sweep", "missing.ron"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.ron"), "{err}");
    assert!(!d.join("sweeps").exists(), "nothing written for a bad spec");
}

/// Stops the Ray head node whatever the test's outcome.
struct RayHead {
    ray: PathBuf,
    temp: PathBuf,
}

impl Drop for RayHead {
    fn drop(&mut self) {
        let _ = Command::new(&self.ray).args(["stop", "--force"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_sweep_runs_on_a_real_ray_head_node() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin");
    let ray = venv.join("ray");
    assert!(ray.is_file(), "{} is missing: `make setup` installs ray into .venv", ray.display());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Ray's sockets live in its temp folder: a short path (Unix sockets allow ~100 bytes).
    let temp = PathBuf::from(format!("/tmp/ploutos-ray-{}", std::process::id()));
    let port = free_port();
    let head = RayHead { ray: ray.clone(), temp: temp.clone() };
    let out = Command::new(&head.ray)
        .args(["start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--node-ip-address", "127.0.0.1"])
        .arg(format!("--port={port}"))
        .args(["--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000"])
        .arg(format!("--temp-dir={}", temp.display()))
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "ray start: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(
        d.join("ray.ron"),
        spec(r#"grid: {"training.learning_rate": [1e-4, 1e-3]}, seeds: 2, asha: Some((grace_timesteps: 4096, reduction_factor: 2)),"#),
    )
    .unwrap();
    let python = venv.join("python");
    let address = format!("127.0.0.1:{port}");
    let (code, out, err) = ploutos_in(
        d,
        &["sweep", "ray.ron", "--backend", "ray", "--address", &address, "--python", python.to_str().unwrap()],
    );
    let log = std::fs::read_to_string(d.join("sweeps/ray/ray-driver.log")).unwrap_or_default();
    assert_eq!(code, 0, "{err}\n{out}\ndriver log:\n{log}");
    assert!(err.contains("on the Ray cluster at") && err.contains("2 CPU(s)"), "{err}");
    let v = check_leaderboard(&d.join("sweeps/ray"), 4);
    for t in v["trials"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        assert!(matches!(t["status"].as_str(), Some("done" | "stopped")), "{t}\n{err}");
        // The trial's outputs came back from the Ray task.
        let trial = d.join("sweeps/ray/trials").join(id);
        assert!(trial.join("runs/metrics.csv").is_file() && trial.join("result.json").is_file(), "{id}");
        assert!(
            trial.join("model/best/model.safetensors").is_file()
                || trial.join("model/final/model.safetensors").is_file(),
            "{id}"
        );
    }
    // A cluster that is not there: one line, exit 2.
    let (code, _, err) = ploutos_in(
        d,
        &[
            "sweep",
            "ray.ron",
            "--out",
            "elsewhere",
            "--backend",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--python",
            python.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot connect to the Ray cluster at 127.0.0.1:1"), "{err}");
    assert!(!d.join("elsewhere").exists(), "nothing left behind");
    drop(head);
}

/// A Slurm job array: `--list` sizes it, each task runs `--only $SLURM_ARRAY_TASK_ID`, and
/// one last run without --only finds every trial finished and writes the leaderboard.
#[test]
fn job_array_tasks_run_one_trial_each_then_the_leaderboard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.ron"), spec("seeds: 2,")).unwrap();
    let (code, out, err) = ploutos_in(d, &["sweep", "a.ron", "--list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["p000-s42", "p000-s43"]);
    for task in ["0", "p000-s43"] {
        let (code, _, err) = ploutos_in(d, &["sweep", "a.ron", "--only", task]);
        assert_eq!(code, 0, "{task}: {err}");
        assert!(err.contains("without --only"), "{err}");
    }
    assert!(!d.join("sweeps/a/leaderboard.json").exists());
    let (code, _, err) = ploutos_in(d, &["sweep", "a.ron", "--only", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("trial p000-s43 has finished already"), "{err}");
    let (code, _, err) = ploutos_in(d, &["sweep", "a.ron", "--only", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--only 2: no such trial"), "{err}");
    let (code, _, err) = ploutos_in(d, &["sweep", "a.ron"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 of 2 trials finished"), "{err}");
    let v = check_leaderboard(&d.join("sweeps/a"), 2);
    assert_eq!(v["rows"][0]["done"], 2, "{v}");
}
