//! The `ploutos` binary: exit codes and one-line errors for bad input.
#![cfg(feature = "cli")]

use std::process::Command;

/// `ploutos ARGS` run in the repository: (exit code, stdout, stderr).
fn ploutos(args: &[&str]) -> (i32, String, String) {
    ploutos_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn assert_bad_input(args: &[&str], needle: &str) {
    assert_bad_input_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args, needle);
}

#[test]
fn help_works_for_every_subcommand() {
    for sub in ["train", "backtest", "features", "generate-data", "bench"] {
        let (code, out, _) = ploutos(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("--config") && out.contains("--set"), "{sub}: {out}");
    }
}

#[test]
fn bad_configs_exit_2_with_one_line() {
    assert_bad_input(&["train", "--config", "missing.ron"], "missing.ron");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.ron");
    std::fs::write(&bad, "(training: (gama: 0.9))").expect("write");
    assert_bad_input(&["train", "--config", bad.to_str().expect("utf8")], "gama");
    assert_bad_input(&["train", "--set", "training.gamma=2"], "training.gamma");
    assert_bad_input(&["backtest", "--set", "environment.buy_pct=3"], "environment.buy_pct");
}

#[test]
fn bad_data_and_arguments_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("X.csv");
    std::fs::write(&csv, "timestamp,open,high,low,close\n2021-01-04,1,1,1,1\n").expect("write");
    let out = dir.path().join("out.csv");
    assert_bad_input(
        &["features", "--input", csv.to_str().expect("utf8"), "--output", out.to_str().unwrap()],
        "volume",
    );
    assert_bad_input(&["backtest", "--policy", "nonsense"], "nonsense");
    assert_bad_input(&["generate-data", "--out", csv.to_str().unwrap()], "X.csv is not a folder");
    // An output that cannot be written is refused before the work.
    assert_bad_input(&["backtest", "--out", "/dev/null"], "--out /dev/null: /dev/null is not a folder");
    assert_bad_input(&["backtest", "--out", "/dev/null/report"], "/dev/null is not a folder");
    // The default reports folder too (here a file named `reports`).
    std::fs::write(dir.path().join("reports"), "").unwrap();
    assert_bad_input_in(
        dir.path(),
        &["backtest", "--policy", "flat"],
        "report folder (--out chooses another) reports: reports is not a folder",
    );
    assert_bad_input(&["backtest", "--data", dir.path().to_str().expect("utf8")], ".csv");
    assert_bad_input(&["backtest", "--data", "/nonexistent/data"], "/nonexistent/data: no such folder");
    assert_bad_input(&["backtest", "--data", csv.to_str().unwrap()], "X.csv: not a folder");
    // --split chooses among the config's data: with --data, whose files are replayed whole,
    // it is refused, not ignored.
    assert_bad_input(&["backtest", "--data", "d", "--split", "validation"], "cannot be used with");
    assert_bad_input(&["trade", "--model", "m", "--data", "d", "--split", "validation"], "cannot be used with");
    // A plugin's settings in the config: no plugin of this binary reads them, said.
    let plugins = r#"--set=environment.plugins={"foo":{"x":1}}"#;
    let generate =
        ["generate-data", "--out", "gen", "--set=data.synthetic.years=1", "--set=data.tickers=[\"AAA\"]", plugins];
    let (code, _, err) = ploutos_in(dir.path(), &generate);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: environment.plugins foo: no plugin of the ploutos binary reads them"), "{err}");
    let (code, _, _) = ploutos(&["no-such-command"]);
    assert_eq!(code, 2);
}

#[cfg(feature = "learner")]
#[test]
fn bad_walk_forward_and_resume_arguments_exit_2() {
    assert_bad_input(&["walk-forward", "--folds", "0"], "--folds");
    assert_bad_input(&["walk-forward", "--folds", "100", "--train-days", "504", "--test-days", "126"], "trading days");
    assert_bad_input(&["train", "--resume", "/nonexistent/run"], "--resume");
    assert_bad_input(&["bench", "--layout", "sideways"], "--layout");
    // The folds would train into another run's folder, or over an earlier report.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models/taken/fold_0")).unwrap();
    let named = ["walk-forward", "--set", "training.run_name=taken"];
    assert_bad_input_in(dir.path(), &named, "models/taken holds an earlier walk-forward named taken");
    std::fs::create_dir_all(dir.path().join("models/taken/final")).unwrap();
    let forced = ["walk-forward", "--set", "training.run_name=taken", "--force"];
    assert_bad_input_in(dir.path(), &forced, "models/taken holds a training run named taken");
    assert!(dir.path().join("models/taken/final").is_dir(), "--force never removes a training run");
    std::fs::create_dir_all(dir.path().join("r")).unwrap();
    std::fs::write(dir.path().join("r/report.json"), "{}").unwrap();
    assert_bad_input_in(dir.path(), &["walk-forward", "--out", "r"], "r holds a report already: pass --force");
    // A run that died before its first checkpoint: nothing to resume, so --resume is not
    // what the refusal suggests.
    std::fs::create_dir_all(dir.path().join("models/early")).unwrap();
    std::fs::write(dir.path().join("models/early/feature_scaler.ron"), "()").unwrap();
    let early = ["train", "--set", "training.run_name=early"];
    assert_bad_input_in(dir.path(), &early, "which has no checkpoint to resume from: pass --force to replace it");
    // One whose checkpoint cannot be read is said so, not taken for one without any.
    std::fs::create_dir_all(dir.path().join("models/early/final")).unwrap();
    std::fs::write(dir.path().join("models/early/final/state.ron"), "(timesteps: ").unwrap();
    assert_bad_input_in(
        dir.path(),
        &early,
        "whose checkpoint cannot be read (checkpoint models/early/final/state.ron: ",
    );
    // best/ is a model to keep, not a place to continue from.
    std::fs::create_dir_all(dir.path().join("models/done/best")).unwrap();
    std::fs::write(dir.path().join("models/done/best/state.ron"), "()").unwrap();
    assert_bad_input_in(
        dir.path(),
        &["train", "--resume", "models/done/best"],
        "best/ is a model to keep, not a place to continue from; resume the run with --resume models/done",
    );
    // An output folder that cannot be written: refused before a log is written.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::write(blocked.path().join("models"), "a file").unwrap();
    assert_bad_input_in(
        blocked.path(),
        &["train", "--set", "training.run_name=x"],
        "output folder models/x: models is not a folder",
    );
    assert!(!blocked.path().join("logs").exists(), "nothing written");
    // Seeds past the largest one would wrap to 0.
    let wrap = ["train", "--seeds", "2", "--set", "training.seed=18446744073709551615"];
    assert_bad_input_in(dir.path(), &wrap, "would wrap past the largest seed");
    // --config is not read with --resume: refused rather than ignored.
    assert_bad_input_in(
        dir.path(),
        &["train", "--resume", "models/early", "-c", "x.ron"],
        "--config x.ron with --resume",
    );
}

#[cfg(feature = "learner")]
#[test]
fn bench_train_json_reports_the_median_of_its_runs() {
    let none = tempfile::tempdir().expect("tempdir");
    let args = [
        "bench",
        "--train",
        "--net",
        "8,8",
        "--envs",
        "2",
        "--n-steps",
        "16",
        "--batch",
        "16",
        "--epochs",
        "1",
        "--repeat",
        "3",
        "--json",
    ];
    let (code, out, err) = ploutos(&[&args[..], &["--baseline", none.path().to_str().expect("utf8")]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let runs: Vec<f64> =
        v["timesteps_per_sec_runs"].as_array().expect("runs").iter().map(|x| x.as_f64().expect("number")).collect();
    assert_eq!((v["runs"].as_u64(), runs.len()), (Some(3), 3));
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(v["timesteps_per_sec"].as_f64(), Some(sorted[1]));
    assert!(v["params"].as_u64().is_some_and(|p| p > 0) && v["device"].is_string());
    // No baseline folder: no SB3 figure, and no ratio made up.
    assert!(v["sb3_timesteps_per_sec"].is_null() && v["ratio_vs_sb3"].is_null());
}

/// `bench --realism-cost` times both envs in alternation: as many runs of each as
/// `--repeat` × `--seconds` holds quarter-seconds, the ratio being the median of the pairs'.
#[test]
fn bench_realism_cost_json_pairs_its_runs() {
    let args =
        ["bench", "--realism-cost", "--envs", "8", "--layout", "index", "--repeat", "2", "--seconds", "0.5", "--json"];
    let (code, out, err) = ploutos(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let runs = |key: &str| -> Vec<f64> {
        v[key].as_array().expect("runs").iter().map(|x| x.as_f64().expect("number")).collect()
    };
    let (plain, real) = (runs("default_runs"), runs("realism_runs"));
    assert_eq!((plain.len(), real.len()), (4, 4));
    let mut ratios: Vec<f64> = real.iter().zip(&plain).map(|(r, p)| r / p).collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = v["ratio"].as_f64().expect("ratio");
    assert!((ratio - (ratios[1] + ratios[2]) / 2.0).abs() < 1e-12, "{ratio} vs {ratios:?}");
    assert!(v["ratio_q1"].as_f64() <= Some(ratio) && Some(ratio) <= v["ratio_q3"].as_f64());
}

/// `bench`'s numbers pass the validation of the config keys they stand for, before
/// anything runs: no panic, no libtorch trace, no endless or empty measurement.
#[test]
fn bad_bench_arguments_exit_2() {
    assert_bad_input(&["bench", "--envs", "0", "--seconds", "0.1"], "--envs 0: training.n_envs");
    assert_bad_input(&["bench", "--seconds", "inf"], "--seconds inf");
    assert_bad_input(&["bench", "--seconds=-1"], "--seconds -1");
    assert_bad_input(&["bench", "--seconds", "0"], "--seconds 0");
    assert_bad_input(&["bench", "--train", "--batch", "0"], "--batch 0: training.batch_size");
    assert_bad_input(&["bench", "--train", "--epochs", "0"], "--epochs 0: training.n_epochs");
    assert_bad_input(&["bench", "--train", "--n-steps", "0"], "--n-steps 0: training.n_steps");
    assert_bad_input(&["bench", "--train", "--net", "0"], "--net 0: training.net_arch");
    assert_bad_input(&["bench", "--train", "--net", "64,x"], "--net");
}

/// `ploutos ARGS` run in `dir`: (exit code, stdout, stderr).
fn ploutos_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    // Without Alpaca keys, whatever the caller's environment: no test reaches the network.
    let out = Command::new(env!("CARGO_BIN_EXE_ploutos"))
        .args(args)
        .current_dir(dir)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env_remove("APCA_API_BASE_URL")
        .env_remove("APCA_API_DATA_URL")
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A training run of about a second: the quick run's config on 3 years of 2 tickers.
#[cfg(feature = "learner")]
fn tiny_train(run: &str, timesteps: u64) -> Vec<String> {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.ron");
    [
        "train",
        "--config",
        config,
        &format!("--set=training.run_name={run}"),
        "--set=data.synthetic.years=3",
        "--set=data.tickers=[\"AAA\",\"BBB\"]",
        &format!("--set=training.total_timesteps={timesteps}"),
        "--set=training.n_envs=4",
        "--set=training.n_steps=128",
        "--set=training.batch_size=128",
        "--set=training.eval_freq=2048",
        "--set=training.eval_episodes=2",
        "--set=training.checkpoint_freq=2048",
        "--set=environment.episode_length=100",
    ]
    .map(String::from)
    .to_vec()
}

/// `walk-forward` named `wf` on daily bars: two folds of a year's training and 60 days'
/// test, each fold training as [`tiny_train`] with `timesteps`.
#[cfg(feature = "learner")]
fn tiny_walk_forward(timesteps: u64) -> Vec<String> {
    let mut a: Vec<String> = tiny_train("wf", timesteps).into_iter().skip(1).collect();
    a.retain(|s| !s.contains("run_name"));
    let mut wf = vec!["walk-forward".to_string(), "--set=training.run_name=wf".into(), "--set=data.interval=1d".into()];
    wf.extend(a);
    wf.extend(["--folds", "2", "--train-days", "252", "--test-days", "60"].map(String::from));
    wf
}

#[cfg(feature = "learner")]
fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A device that is not there is refused before anything is written.
#[cfg(feature = "learner")]
#[test]
fn a_missing_device_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = tiny_train("dev", 4096);
    a.push("--set=training.device=cuda:7".into());
    let (code, _, err) = ploutos_in(dir.path(), &args(&a));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cuda:7") && !err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

/// A second run of the same name is refused, and the first run's model is left as it was;
/// `--force` replaces it.
#[cfg(feature = "learner")]
#[test]
fn a_run_never_overwrites_another_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_train("same", 2048);
    let (code, _, err) = ploutos_in(dir.path(), &args(&a));
    assert_eq!(code, 0, "{err}");
    let model = dir.path().join("models/same/final/model.safetensors");
    let before = std::fs::read(&model).unwrap();
    let (code, _, err) = ploutos_in(dir.path(), &args(&a));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already holds run") && err.contains("--resume") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), before, "the first run's model is intact");
    let mut forced = a.clone();
    forced.push("--force".into());
    // --force with data that cannot be trained on, or a network over the machine's memory,
    // fails before it replaces anything: the first run stays whole.
    let huge = "--set=training.net_arch=[65536,65536,65536,65536,65536,65536,65536,65536]";
    for bad in [&["--set=data.split.train_end=1990-01-01"][..], &[huge, "--set=training.device=cpu"]] {
        let (code, _, err) = ploutos_in(dir.path(), &[&args(&forced)[..], bad].concat());
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert_eq!(std::fs::read(&model).unwrap(), before, "{bad:?}: the first run's model is intact");
        for root in ["runs", "logs"] {
            assert!(std::fs::read_dir(dir.path().join(root).join("same")).unwrap().next().is_some(), "{bad:?}: {root}");
        }
    }
    let (code, _, err) = ploutos_in(dir.path(), &args(&forced));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("episode_length"), "{err}");
    // Episodes as long as a split: said for each split, not silently cut.
    let mut long = tiny_train("long", 512);
    long.push("--set=environment.episode_length=100000000".into());
    let (code, _, err) = ploutos_in(dir.path(), &args(&long));
    assert_eq!(code, 0, "{err}");
    for split in ["training", "validation"] {
        let said = format!("environment.episode_length 100000000 is not shorter than the {split} split");
        assert!(err.contains(&said), "{said}: {err}");
    }
}

/// A network or a rollout over the machine's memory is refused in one line before the
/// first allocation, and the run leaves nothing that would block its name.
#[cfg(feature = "learner")]
#[test]
fn a_run_over_the_machines_memory_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = tiny_train("huge", 4096);
    // Far over any machine's memory (16 bytes × 2 × 7 × 65536² ≈ 7 TiB); the check is the
    // CPU's (a GPU's memory is its own).
    a.push("--set=training.net_arch=[65536,65536,65536,65536,65536,65536,65536,65536]".into());
    a.push("--set=training.device=cpu".into());
    assert_bad_input_in(dir.path(), &args(&a), "needs at least");
    for root in ["models", "runs", "logs"] {
        assert!(!dir.path().join(root).join("huge").exists(), "{root}/huge");
    }
}

/// Ctrl-C twice, 50 ms apart, during training: the process ends at once with 130 (or 0
/// when the first one's checkpoint was already saved), never with a crash or a libtorch
/// trace, and every checkpoint folder it leaves is whole. Twenty times in a row.
#[cfg(feature = "learner")]
#[test]
fn a_second_ctrl_c_exits_at_once_without_a_crash() {
    use std::io::{BufRead, BufReader, Read};
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let a = tiny_train("sig", 50_000_000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ploutos"))
            .args(args(&a))
            .current_dir(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        // The run line comes just before training starts.
        while !seen.contains("ploutos: run ") {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "round {round}: {seen}");
            seen.push_str(&line);
        }
        std::thread::sleep(std::time::Duration::from_millis(300 + 20 * round));
        let pid = child.id() as i32;
        // SAFETY: kill(2) on the child's pid, which this test owns and has not reaped.
        unsafe { libc::kill(pid, libc::SIGINT) };
        std::thread::sleep(std::time::Duration::from_millis(50));
        // SAFETY: as above; the child may have exited, and then the signal goes nowhere
        // (it is not reaped before `wait`, so the pid is not reused).
        unsafe { libc::kill(pid, libc::SIGINT) };
        stderr.read_to_string(&mut seen).unwrap();
        let status = child.wait().unwrap();
        assert!(matches!(status.code(), Some(130) | Some(0)), "round {round}: {status:?}\n{seen}");
        for bad in ["Segmentation", "panicked", "terminate called", "Exception raised", "backtrace"] {
            assert!(!seen.contains(bad), "round {round}: {seen}");
        }
        if let Ok(steps) = std::fs::read_dir(dir.path().join("models/sig/checkpoints")) {
            for step in steps {
                let step = step.unwrap().path();
                // A checkpoint being written when the second Ctrl-C ended the process stays
                // in its `<dir>.tmp-<pid>` folder, which no reader lists (the atomic write
                // of `checkpoint::write_atomic`); every folder a reader sees must be whole.
                let name = step.file_name().unwrap().to_string_lossy().into_owned();
                if name.contains(".tmp-") || name.contains(".old-") {
                    continue;
                }
                for file in ["model.safetensors", "state.ron", "config.ron"] {
                    assert!(step.join(file).exists(), "round {round}: {} lacks {file}", step.display());
                }
            }
        }
    }
}

/// Every checkpoint folder backtests on its own, and resuming from one continues the run in
/// its run folder; broken or mismatched checkpoints exit 2 naming the file or the field.
#[cfg(feature = "learner")]
#[test]
fn checkpoints_backtest_resume_and_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = tiny_train("ck", 4096);
    let (code, _, err) = ploutos_in(d, &args(&a));
    assert_eq!(code, 0, "{err}");
    let step = "models/ck/checkpoints/step_2048";
    assert!(d.join(step).join("feature_scaler.ron").is_file(), "checkpoints carry their scaler");
    let (code, _, err) = ploutos_in(
        d,
        &[
            "backtest",
            "--model",
            step,
            "--out",
            "reports/ck",
            "--set=data.synthetic.years=3",
            "--set=data.tickers=[\"AAA\",\"BBB\"]",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("in-sample"), "the test split is out of sample: {err}");
    // The whole data, or the same market written out and read back as CSV files, reaches
    // into the bars the model was trained on: said, with how many.
    let (code, _, err) = ploutos_in(
        d,
        &["generate-data", "--out", "data", "--set=data.synthetic.years=3", "--set=data.tickers=[\"AAA\",\"BBB\"]"],
    );
    assert_eq!(code, 0, "{err}");
    for how in [["--split", "all"], ["--data", "data"]] {
        let mut backtest = vec!["backtest", "--model", step, "--set=data.synthetic.years=3"];
        backtest.extend(["--set=data.tickers=[\"AAA\",\"BBB\"]", how[0], how[1], "--out"]);
        backtest.push(if how[0] == "--data" { "reports/csv" } else { "reports/all" });
        let (code, _, err) = ploutos_in(d, &backtest);
        assert_eq!(code, 0, "{err}");
        let said = err.lines().find(|l| l.contains("in-sample")).unwrap_or_else(|| panic!("{how:?}: {err}"));
        assert!(said.contains("fall within the model's training bars"), "{said}");
        // About 70% of the bars after the warm-up are the default split's training bars.
        let (seen, of) = said.split_once(" of the ").unwrap();
        let seen: f64 = seen.rsplit(' ').next().unwrap().parse().unwrap();
        let of: f64 = of.split(' ').next().unwrap().parse().unwrap();
        assert!(seen / of > 0.5 && seen < of, "{said}");
    }

    // Resume from final/: the continued run writes into models/ck, not models/ck/final/.
    let more = ["train", "--resume", "models/ck/final", "--set=training.total_timesteps=6144"];
    let (code, _, err) = ploutos_in(d, &more);
    assert_eq!(code, 0, "{err}");
    // The resume's own set-up lines reach the run's log.
    let log = std::fs::read_to_string(d.join("logs/ck/train.log")).unwrap();
    assert!(log.contains("resumed: weights, Adam moments"), "{log}");
    assert!(!d.join("models/ck/final/final").exists() && !d.join("models/ck/final/checkpoints").exists());
    assert!(d.join("models/ck/checkpoints/step_6144").is_dir(), "{err}");

    // A network that does not fit, a truncated model file, a model on another market.
    let (code, _, err) = ploutos_in(d, &["train", "--resume", "models/ck", "--set=training.net_arch=[32,32]"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("net_arch [64, 64] in the checkpoint, [32, 32] here") && !err.contains("ModelSpec"), "{err}");
    let model = d.join("models/ck/final/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = ploutos_in(d, &["train", "--resume", "models/ck/final"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model.safetensors") && err.contains("cannot be read"), "{err}");
    assert_eq!(err.matches("cannot be read").count(), 1, "one cause, once: {err}");
    assert!(!err.contains("Exception raised") && err.lines().count() <= 6, "{err}");
    // A file the checkpoint lacks is named as missing.
    std::fs::remove_file(&model).unwrap();
    let (code, _, err) = ploutos_in(d, &["train", "--resume", "models/ck/final"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model.safetensors: is missing") && !err.contains("Os {"), "{err}");
    let (code, _, err) = ploutos_in(
        d,
        &["backtest", "--model", step, "--set=data.synthetic.years=3", "--set=data.tickers=[\"AAA\",\"BBB\",\"CCC\"]"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("3 tickers") && err.contains("expects 2"), "{err}");
}

/// `ploutos_in` for commands that must fail with exit 2 and one line naming `needle`.
fn assert_bad_input_in(dir: &std::path::Path, args: &[&str], needle: &str) {
    let (code, _, err) = ploutos_in(dir, args);
    assert_eq!(code, 2, "{args:?}: {err}");
    // Progress lines may come first; the error itself is the single last line.
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(err.trim_end().lines().last().is_some_and(|l| l.starts_with("ploutos: error: ")), "{err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Without `--interval`, `features` reads the interval from the timestamps and says which;
/// an explicit `--interval` still wins.
#[test]
fn features_infers_the_interval_from_the_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{FIXTURES}/features/daily_bars.csv"), dir.path().join("daily.csv")).unwrap();
    std::fs::copy(format!("{FIXTURES}/features/hourly_bars.csv"), dir.path().join("hourly.csv")).unwrap();
    std::fs::copy(format!("{FIXTURES}/market/yfinance_1d_SPY.csv"), dir.path().join("SPY.csv")).unwrap();
    for (input, line) in [
        (
            "daily.csv",
            "ploutos: daily.csv: inferred --interval 1d (the timestamps are dates); pass --interval to choose",
        ),
        ("SPY.csv", "ploutos: SPY.csv: inferred --interval 1d (the timestamps are dates); pass --interval to choose"),
        (
            "hourly.csv",
            "ploutos: hourly.csv: inferred --interval 1h (line 2 has a time of day, \"2021-01-04T09:30:00-05:00\"); pass --interval to choose",
        ),
    ] {
        let (code, _, err) = ploutos_in(dir.path(), &["features", "--input", input, "--output", "out.csv", "--force"]);
        assert_eq!(code, 0, "{input}: {err}");
        assert_eq!(err.lines().next(), Some(line), "{err}");
    }
    let (code, _, err) = ploutos_in(
        dir.path(),
        &["features", "--input", "daily.csv", "--output", "out.csv", "--interval", "1d", "--force"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("inferred"), "{err}");
    assert_bad_input_in(
        dir.path(),
        &["features", "--input", "daily.csv", "--output", "out.csv", "--interval", "1h", "--force"],
        "daily.csv:2: column timestamp",
    );
    assert_bad_input_in(
        dir.path(),
        &["features", "--input", "hourly.csv", "--output", "out.csv", "--interval", "1d", "--force"],
        "an intraday file read as daily bars?",
    );
}

/// `features --output` never replaces the `--input` bars, however the path is spelled (not
/// even with `--force`), nor another file unless `--force`.
#[test]
fn features_refuses_to_write_over_its_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let input = dir.path().join("data/daily.csv");
    std::fs::copy(format!("{FIXTURES}/features/daily_bars.csv"), &input).unwrap();
    std::os::unix::fs::symlink(&input, dir.path().join("link.csv")).unwrap();
    let before = std::fs::read(&input).unwrap();
    for output in ["data/daily.csv", "./data/../data/daily.csv", "link.csv"] {
        assert_bad_input_in(
            dir.path(),
            &["features", "--input", "data/daily.csv", "--output", output, "--force"],
            &format!(
                "--output {output} is the --input file data/daily.csv: writing the features would replace its bars; choose another --output"
            ),
        );
    }
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input is intact");
    // Another ticker's bars: kept unless --force; a folder: named.
    std::fs::write(dir.path().join("data/other.csv"), "kept").unwrap();
    let args = ["features", "--input", "data/daily.csv", "--output", "data/other.csv"];
    assert_bad_input_in(dir.path(), &args, "--output data/other.csv exists: pass --force to replace it");
    assert_eq!(std::fs::read_to_string(dir.path().join("data/other.csv")).unwrap(), "kept");
    let (code, _, err) = ploutos_in(dir.path(), &[&args[..], &["--force"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(dir.path().join("data/other.csv")).unwrap().starts_with("timestamp,"));
    let args = ["features", "--input", "data/daily.csv", "--output", "data"];
    assert_bad_input_in(dir.path(), &args, "--output data is a folder");
}

/// Writes one year of synthetic daily bars of `tickers` (a RON list) into `dir/data`, with
/// `extra` arguments.
fn daily_data(dir: &std::path::Path, tickers: &str, extra: &[&str]) {
    let tickers = format!("--set=data.tickers={tickers}");
    let args = [
        &["generate-data", "--out", "data", &tickers, "--set=data.interval=1d", "--set=data.synthetic.years=1"],
        extra,
    ]
    .concat();
    let (code, _, err) = ploutos_in(dir, &args);
    assert_eq!(code, 0, "{err}");
}

/// `generate-data` never replaces CSV files already in its folder unless `--force`.
#[test]
fn generate_data_refuses_to_replace_existing_files_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "generate-data",
        "--out",
        "data",
        "--set=data.tickers=[\"AAA\",\"BBB\",\"CCC\"]",
        "--set=data.synthetic.years=1",
    ];
    let (code, _, err) = ploutos_in(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    // A user's own file of the same name.
    std::fs::write(dir.path().join("data/BBB.csv"), "mine").unwrap();
    std::fs::write(dir.path().join("data/CCC.csv"), "mine too").unwrap();
    assert_bad_input_in(
        dir.path(),
        &args,
        "--out data already holds AAA.csv, BBB.csv, CCC.csv; pass --force to replace them, or choose another --out",
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("data/BBB.csv")).unwrap(), "mine");
    let (code, _, err) = ploutos_in(dir.path(), &[&args[..], &["--force"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(dir.path().join("data/BBB.csv")).unwrap().starts_with("timestamp,"));
}

/// A ticker file that is a folder is named as one; tickers with no date in common are
/// named with their ranges.
#[test]
fn data_folders_name_a_folder_ticker_and_tickers_without_shared_dates() {
    let dir = tempfile::tempdir().unwrap();
    daily_data(dir.path(), "[\"AAA\"]", &["--set=data.synthetic.start=2020-01-02"]);
    daily_data(dir.path(), "[\"BBB\"]", &["--set=data.synthetic.start=2022-01-03"]);
    std::fs::create_dir(dir.path().join("data/CCC.csv")).unwrap();
    let backtest = |tickers: &str| {
        [
            "backtest".to_string(),
            "--data".into(),
            "data".into(),
            format!("--set=data.tickers={tickers}"),
            "--set=data.interval=1d".into(),
            "--out".into(),
            "report".into(),
        ]
    };
    let a = backtest("[\"AAA\",\"CCC\"]");
    assert_bad_input_in(
        dir.path(),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        "data/CCC.csv: is a folder, not a CSV file",
    );
    let a = backtest("[\"AAA\",\"BBB\"]");
    assert_bad_input_in(
        dir.path(),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        "data: the tickers share no dates: AAA 2020-01-02 to 2020-12-30, BBB 2022-01-03 to 2023-01-03",
    );
}

/// Action rows dated in the features' warm-up are counted and named, not dropped in silence.
#[test]
fn backtest_policy_says_how_many_actions_fall_in_the_warm_up() {
    let dir = tempfile::tempdir().unwrap();
    daily_data(dir.path(), "[\"AAA\"]", &[]);
    let bars = std::fs::read_to_string(dir.path().join("data/AAA.csv")).unwrap();
    let dates: Vec<&str> = bars.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let warm_up = ploutos::features::MIN_BARS;
    let rows = [0, 3, warm_up - 1, warm_up, warm_up + 5].map(|t| format!("{},buy\n", dates[t])).concat();
    std::fs::write(dir.path().join("signals.csv"), format!("timestamp,AAA\n{rows}")).unwrap();
    let (code, _, err) = ploutos_in(
        dir.path(),
        &[
            "backtest",
            "--policy",
            "signals.csv",
            "--data",
            "data",
            "--set=data.tickers=[\"AAA\"]",
            "--set=data.interval=1d",
            "--out",
            "report",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let want = format!(
        "ploutos: signals.csv: ignoring 3 action rows dated {} to {}: the first {warm_up} bars of the data are the features' warm-up, where no replay acts (the first bar a replay can act on is {})",
        dates[0],
        dates[warm_up - 1],
        dates[warm_up]
    );
    assert!(err.lines().any(|l| l == want), "{err}");
}

/// `make train` runs the binary through cargo, which knows where it built it: a
/// `CARGO_TARGET_DIR` elsewhere does not break it (no hard-coded `./target/release/`).
#[test]
fn make_train_finds_the_binary_wherever_cargo_builds() {
    let out = Command::new("make")
        .args(["-n", "train", "CARGO_TARGET_DIR=/elsewhere"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("make runs");
    let plan = String::from_utf8_lossy(&out.stdout);
    let train = plan.lines().find(|l| l.contains(" train --config")).unwrap_or_else(|| panic!("{plan}"));
    assert!(train.contains("cargo run --release") && !train.contains("target/"), "{train}");
}

/// `walk-forward`: each fold trains on its window and is tested on the next one; the
/// report names the folds' windows, the chained out-of-sample curve is the folds' own
/// (the last bar of a fold's window starts the next one flat), and a fold's model carries
/// its own feature standardization, so that it backtests on its own.
#[cfg(feature = "learner")]
#[test]
fn walk_forward_folds_are_recorded_and_backtest_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wf = tiny_walk_forward(1024);
    let (code, _, err) = ploutos_in(d, &args(&wf));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("reports/wf/report.json")).unwrap()).unwrap();
    let folds = report["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 2, "{report}");
    // Each fold trains right before its test window; the second's test follows the first's.
    for f in folds {
        assert!(f["train_to"].as_str().unwrap() < f["test_from"].as_str().unwrap(), "{f}");
    }
    assert!(folds[0]["test_to"].as_str().unwrap() < folds[1]["test_from"].as_str().unwrap());
    let runs = report["runs"].as_array().unwrap();
    let fold_return = |i: usize| runs[i]["metrics"]["total_return"].as_f64().unwrap();
    let chained = runs[2]["metrics"]["total_return"].as_f64().unwrap();
    assert!(((1.0 + fold_return(0)) * (1.0 + fold_return(1)) - 1.0 - chained).abs() < 1e-9, "{report}");
    for fold in ["fold_0", "fold_1"] {
        assert!(d.join("models/wf").join(fold).join("final/feature_scaler.ron").is_file(), "{fold}");
        // Each fold logs as a training run: its TensorBoard events, and its own train.log.
        let events = std::fs::read_dir(d.join("runs/wf").join(fold)).unwrap().flatten();
        assert!(
            events.into_iter().any(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents")),
            "{fold}"
        );
        let log = std::fs::read_to_string(d.join("logs/wf").join(fold).join("train.log")).unwrap();
        assert!(log.contains(&format!("run=wf/{fold}")), "{fold}: {log}");
        let other = if fold == "fold_0" { "fold_1" } else { "fold_0" };
        assert!(!log.contains(&format!("run=wf/{other}")), "{fold}: {log}");
    }
    let (code, _, err) =
        ploutos_in(d, &["backtest", "--model", "models/wf/fold_0/final", "--split", "all", "--out", "f0"]);
    assert_eq!(code, 0, "{err}");
    // A fold's scaler records the fold's own training window.
    let window = format!(
        "training bars ({} → {})",
        folds[0]["train_from"].as_str().unwrap(),
        folds[0]["train_to"].as_str().unwrap()
    );
    assert!(err.contains(&window) && err.contains("in-sample"), "{window}: {err}");
    // --force with a network over the machine's memory fails before it clears any fold.
    let huge = "--set=training.net_arch=[65536,65536,65536,65536,65536,65536,65536,65536]";
    let forced = [&args(&wf)[..], &["--force", huge, "--set=training.device=cpu"]].concat();
    let (code, _, err) = ploutos_in(d, &forced);
    assert_eq!(code, 2, "{err}");
    for fold in ["fold_0", "fold_1"] {
        assert!(d.join("models/wf").join(fold).join("final/model.safetensors").is_file(), "{fold}: {err}");
    }
}

/// Ctrl-C during a fold stops the walk-forward after that iteration, with exit 130, the
/// fold's checkpoint saved and no report (which would cover only the folds done).
#[cfg(feature = "learner")]
#[test]
fn ctrl_c_stops_a_walk_forward_without_a_report() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wf = tiny_walk_forward(50_000_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ploutos"))
        .args(args(&wf))
        .current_dir(d)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("ploutos: run wf/fold_0") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: kill(2) on the child's pid, which this test owns and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("the walk-forward stopped in fold_0 (Ctrl-C): no report"), "{seen}");
    assert!(!seen.contains("fold_1") && !d.join("reports/wf").exists(), "{seen}");
    assert!(std::fs::read_dir(d.join("models/wf/fold_0/checkpoints")).unwrap().next().is_some(), "{seen}");
}

/// A run resumed from an earlier checkpoint logs the steps after it once: `metrics.csv`
/// drops the rows the first run had logged past it (a crash after a checkpoint leaves the
/// same), so its steps are the uninterrupted run's; each evaluation row has its drawdown.
#[cfg(feature = "learner")]
#[test]
fn a_resumed_run_logs_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, err) = ploutos_in(d, &args(&tiny_train("rs", 4096)));
    assert_eq!(code, 0, "{err}");
    let rows = || -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(d.join("runs/rs/metrics.csv")).unwrap();
        text.lines().map(|l| l.split(',').map(String::from).collect()).collect()
    };
    let first = rows();
    let column = |name: &str| first[0].iter().position(|c| c == name).unwrap();
    let (sharpe, drawdown) = (column("eval/sharpe"), column("eval/max_drawdown"));
    let evals: Vec<&Vec<String>> = first[1..].iter().filter(|r| !r[sharpe].is_empty()).collect();
    assert!(!evals.is_empty(), "evaluations ran");
    for r in &evals {
        let dd: f64 = r[drawdown].parse().unwrap_or_else(|_| panic!("eval row without its drawdown: {r:?}"));
        assert!((0.0..1.0).contains(&dd), "{dd}");
    }
    assert!(d.join("models/rs/checkpoints/step_2048/state.ron").is_file());
    let (code, _, err) = ploutos_in(d, &["train", "--resume", "models/rs/checkpoints/step_2048"]);
    assert_eq!(code, 0, "{err}");
    let again = rows();
    let steps = |rows: &[Vec<String>]| rows[1..].iter().map(|r| r[0].parse::<u64>().unwrap()).collect::<Vec<_>>();
    // An iteration's row, then at an evaluation step its evaluation's row at the same step.
    assert!(steps(&again).windows(2).all(|w| w[0] <= w[1]), "{:?}", steps(&again));
    assert_eq!(steps(&again), steps(&first));
}

/// `train --seeds N`: N runs side by side, each replayed on the held-out splits beside the
/// two baselines; the summary says how many beat buy-and-hold.
#[cfg(feature = "learner")]
#[test]
fn train_seeds_summarizes_every_seed_beside_the_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut a = tiny_train("sw", 1024);
    a.push("--seeds".into());
    a.push("2".into());
    let (code, out, err) = ploutos_in(d, &args(&a));
    assert_eq!(code, 0, "{err}");
    for s in ["seed_42", "seed_43"] {
        assert!(d.join("models/sw").join(s).join("final/model.safetensors").is_file(), "{s}: {err}");
        // Each seed's log lines in its own train.log.
        let log = std::fs::read_to_string(d.join("logs/sw").join(s).join("train.log")).unwrap();
        assert!(
            log.contains(&format!("run=sw/{s}")) && log.lines().all(|l| !l.contains("run=sw/seed_") || l.contains(s)),
            "{s}: {log}"
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("models/sw/seeds.json")).unwrap()).unwrap();
    let summary = v["summary"].as_array().unwrap();
    assert_eq!(summary.iter().map(|s| s["split"].as_str().unwrap()).collect::<Vec<_>>(), ["validation", "test"]);
    for s in summary {
        assert_eq!(s["seeds"], 2);
        assert!(s["buy_and_hold_sharpe"].as_f64().unwrap().is_finite());
        assert!(s["sharpe"]["min"].as_f64().unwrap() <= s["sharpe"]["max"].as_f64().unwrap());
        assert!(s["beat_buy_and_hold"].as_u64().unwrap() <= 2);
    }
    assert_eq!(v["seeds"].as_array().unwrap().len(), 4, "2 seeds × 2 splits");
    let csv = std::fs::read_to_string(d.join("models/sw/seeds.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(out.contains("test (2 seeds): sharpe"), "{out}");
    // Run again, with a third seed: the finished seeds are evaluated again, not trained
    // (their models untouched), the new one trains; the summary covers the three.
    let model = d.join("models/sw/seed_42/final/model.safetensors");
    let before = std::fs::metadata(&model).and_then(|m| m.modified()).unwrap();
    let three: Vec<String> = a.iter().map(|s| if s == "2" { "3".to_string() } else { s.clone() }).collect();
    let (code, _, err) = ploutos_in(d, &args(&three));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("seed 42 finished in an earlier run") && err.contains("seed 43 finished"), "{err}");
    assert_eq!(std::fs::metadata(&model).and_then(|m| m.modified()).unwrap(), before, "seed 42 not trained again");
    assert!(d.join("models/sw/seed_44/final/model.safetensors").is_file(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("models/sw/seeds.json")).unwrap()).unwrap();
    assert_eq!(v["summary"][0]["seeds"], 3, "{v}");
    // Another config over the same folders is refused before anything trains.
    let other = [&args(&a)[..], &["--set", "training.learning_rate=0.0001"]].concat();
    let (code, _, err) = ploutos_in(d, &other);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("models/sw/seed_42 holds run \"sw/seed_42\" of another config"), "{err}");
    // --force with data that cannot be trained on fails before it clears any seed.
    let forced = [&args(&three)[..], &["--force", "--set=data.split.train_end=1990-01-01"]].concat();
    let (code, _, err) = ploutos_in(d, &forced);
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::metadata(&model).and_then(|m| m.modified()).unwrap(), before, "{err}");
    assert!(d.join("models/sw/seed_44/final/model.safetensors").is_file(), "{err}");
    // Bad counts and a resume exit 2, with one error line naming --seeds.
    for bad in [&["--seeds", "0"][..], &["--seeds", "2", "--resume", "models/sw/seed_42"][..]] {
        let mut b = tiny_train("sw2", 1024);
        b.extend(bad.iter().map(|s| s.to_string()));
        let (code, _, err) = ploutos_in(d, &args(&b));
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.starts_with("ploutos: error:") && err.contains("--seeds"), "{bad:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{bad:?}: {err}");
    }
}

/// `backtest --policy` costs a strategy's signals with the participation cap: partial fills
/// carry their unfilled shares in `trades.csv`, refusals their names in `report.json`.
#[test]
fn backtest_policy_replays_the_participation_cap() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], out: &str| {
        let mut a = vec![
            "backtest",
            "--policy",
            "random",
            "--split",
            "all",
            "--set=data.tickers=[\"AAA\",\"BBB\"]",
            "--set=data.synthetic.years=2",
            "--set=data.interval=1d",
            "--set=environment.initial_cash=10000000",
            "--out",
            out,
        ];
        a.extend_from_slice(extra);
        let (code, _, err) = ploutos_in(dir.path(), &a);
        assert_eq!(code, 0, "{err}");
        std::fs::read_to_string(dir.path().join(out).join("trades.csv")).unwrap()
    };
    let capped = run(&["--set=environment.max_participation=0.001"], "capped");
    let header: Vec<&str> = capped.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|&h| h == "unfilled_shares").unwrap();
    let unfilled: Vec<f64> =
        capped.lines().skip(1).map(|l| l.split(',').nth(column).unwrap().parse().unwrap()).collect();
    assert!(unfilled.iter().any(|&u| u > 0.0), "a $2M buy in a 0.1% cap is partial");
    let full = run(&[], "full");
    assert!(full.lines().skip(1).all(|l| l.ends_with(",0,")), "no cap: every fill is full, none forced");
}

/// A report locates each run's deepest drawdown (checked here against its own `equity.csv`),
/// writes the benchmark's rows beside the runs', shows buy-and-hold once, and defines its
/// metrics on the page.
#[test]
fn backtest_reports_locate_the_drawdown_and_write_the_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let run = |policies: &[&str], out: &str| {
        let mut a =
            vec!["backtest", "--split", "all", "--set=data.tickers=[\"AAA\",\"BBB\"]", "--set=data.interval=1d"];
        for p in policies {
            a.extend(["--policy", p]);
        }
        a.extend(["--out", out]);
        let (code, table, err) = ploutos_in(dir.path(), &a);
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(out).join("report.json")).unwrap()).unwrap();
        (table, report)
    };
    let (table, report) = run(&["random"], "one");
    for (metrics, folder) in
        [(&report["runs"][0]["metrics"], "one"), (&report["benchmark"]["metrics"], "one/buy-and-hold")]
    {
        let csv = std::fs::read_to_string(dir.path().join(folder).join("equity.csv")).unwrap();
        let rows: Vec<(String, f64)> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                (cells[0].to_string(), cells[2].parse().unwrap())
            })
            .collect();
        let at = |key: &str| rows.iter().position(|(t, _)| Some(t.as_str()) == metrics[key].as_str());
        let (peak, trough) = (at("max_drawdown_peak").unwrap(), at("max_drawdown_trough").unwrap());
        let running_peak = rows[..=trough].iter().map(|r| r.1).fold(f64::MIN, f64::max);
        assert_eq!(rows[peak].1, running_peak, "{folder}: the peak is the running peak before the trough");
        let deepest = rows
            .iter()
            .scan(f64::MIN, |p, r| {
                *p = p.max(r.1);
                Some(1.0 - r.1 / *p)
            })
            .fold(0.0, f64::max);
        assert!((1.0 - rows[trough].1 / rows[peak].1 - deepest).abs() < 1e-12, "{folder}: the deepest fall");
        assert!((deepest - metrics["max_drawdown"].as_f64().unwrap()).abs() < 1e-12);
        let recovered = rows[trough..].iter().position(|r| r.1 >= rows[peak].1).map(|i| rows[trough + i].0.clone());
        assert_eq!(metrics["max_drawdown_recovery"].as_str().map(String::from), recovered, "{folder}");
    }
    assert!(std::fs::read_to_string(dir.path().join("one/buy-and-hold/trades.csv")).unwrap().contains(",buy,"));
    let header = table.lines().find(|l| l.starts_with("| metric")).unwrap();
    assert!(table.contains("| max drawdown to (trough)") && table.contains("| longest drawdown (bars)"), "{table}");
    // Asked for by name, buy-and-hold is the benchmark: one column, its rows at its own folder.
    assert_eq!(header.matches("buy-and-hold").count(), 1, "{header}");
    let (table, _) = run(&["random", "buy-and-hold"], "two");
    let header = table.lines().find(|l| l.starts_with("| metric")).unwrap();
    assert_eq!(header.matches("buy-and-hold").count(), 1, "{header}");
    assert!(dir.path().join("two/buy-and-hold/equity.csv").is_file());
    assert_bad_input_in(
        dir.path(),
        &["backtest", "--policy", "flat", "--policy", "flat"],
        "--policy flat is given twice",
    );
    // Dates outside the split are clipped to it, said on stderr.
    let (code, _, err) = ploutos_in(
        dir.path(),
        &["backtest", "--policy", "flat", "--from", "2001-01-01", "--set=data.interval=1d", "--out", "clip"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--from 2001-01-01 is before the test split (--split), which starts"), "{err}");
    let page = std::fs::read_to_string(dir.path().join("two/report.html")).unwrap();
    assert!(page.contains("<summary>Definitions</summary>") && page.contains("P = 252 bars a year"), "definitions");
    // Dates are read before the data; the data folder is no place for a report.
    assert_bad_input_in(
        dir.path(),
        &["backtest", "--from", "2033-01-01", "--to", "2032-01-01"],
        "--from 2033-01-01 is after --to 2032-01-01",
    );
    assert_bad_input_in(
        dir.path(),
        &["backtest", "--from", "2033-13-01", "--data", "/nonexistent"],
        "--from \"2033-13-01\": expected YYYY-MM-DD",
    );
    daily_data(dir.path(), "[\"AAA\"]", &[]);
    assert_bad_input_in(
        dir.path(),
        &["backtest", "--data", "data", "--set=data.tickers=[\"AAA\"]", "--set=data.interval=1d", "--out", "data"],
        "--out data is the data folder",
    );
}

#[test]
fn backtest_policy_replays_splits_and_dividends() {
    // One ticker, 160 daily bars: a 2:1 split at bar 130 (the price halves at the open) and a
    // dividend of $0.40 at bar 140.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let dates = ploutos::market::calendar::weekdays_from(chrono::NaiveDate::from_ymd_opt(2021, 1, 4).unwrap(), 160);
    let mut text = String::from("Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n");
    for (i, d) in dates.iter().enumerate() {
        let p = (40.0 + (i as f64 * 0.2).sin()) / if i >= 130 { 2.0 } else { 1.0 };
        let (div, split) = (if i == 140 { 0.4 } else { 0.0 }, if i == 130 { 2.0 } else { 0.0 });
        text.push_str(&format!("{d},{p},{},{},{p},100000,{div},{split}\n", p * 1.01, p * 0.99));
    }
    std::fs::write(data.join("ONE.csv"), text).unwrap();
    let run = |adjust: &str| {
        let out = format!("out-{adjust}");
        let (code, _, err) = ploutos_in(
            dir.path(),
            &[
                "backtest",
                "--policy",
                "buy-and-hold",
                "--split",
                "all",
                "--set=data.source=csv",
                "--set=data.csv_dir=data",
                "--set=data.tickers=[\"ONE\"]",
                "--set=data.interval=1d",
                "--set=data.split.train_fraction=0.8",
                "--set=data.split.validation_fraction=0.1",
                &format!("--set=data.adjust={adjust}"),
                "--out",
                &out,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(out).join("report.json")).unwrap()).unwrap();
        let mode = report["corporate_actions"].as_str().unwrap().to_string();
        (mode, report["runs"][0]["metrics"]["dividends"].as_f64().unwrap())
    };
    let (mode, dividends) = run("none");
    assert!(
        mode.starts_with("corporate actions (none") && mode.contains("1 split") && mode.contains("1 dividend"),
        "{mode}"
    );
    assert!(dividends > 0.0, "the shares held at bar 139's close receive $0.40 each");
    let (mode, dividends) = run("splits_and_dividends");
    assert!(mode.starts_with("corporate actions (splits_and_dividends"), "{mode}");
    assert_eq!(dividends, 0.0, "in the prices, not in cash");
}

/// `backtest --policy FILE` costs a short-selling strategy (answer 20): a short at $40 covered
/// at $30 gains, a borrow fee is paid, and a second short caught by a jump to $60 is bought
/// in by a margin call, written as forced in `trades.csv` and counted in `report.json`.
#[test]
fn backtest_policy_replays_shorts_and_a_margin_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let dates = ploutos::market::calendar::weekdays_from(chrono::NaiveDate::from_ymd_opt(2021, 1, 4).unwrap(), 180);
    // After the features' warm-up (101 bars): down from $40 to $30, flat, then a jump to $60.
    let price = |i: usize| match i {
        0..110 => 40.0 + 0.1 * (i as f64 * 0.3).sin(),
        110..130 => 40.0 - 0.5 * (i - 110) as f64,
        130..160 => 30.0,
        _ => 60.0,
    };
    let mut text = String::from("Date,Open,High,Low,Close,Volume\n");
    for (i, d) in dates.iter().enumerate() {
        let p = price(i);
        text.push_str(&format!("{d},{p},{},{},{p},1000000\n", p * 1.01, p * 0.99));
    }
    std::fs::write(data.join("ONE.csv"), text).unwrap();
    let signals = [(110, "sell"), (135, "buy"), (145, "sell")].map(|(i, a)| format!("{},{a}\n", dates[i])).concat();
    std::fs::write(dir.path().join("signals.csv"), format!("timestamp,ONE\n{signals}")).unwrap();
    let (code, _, err) = ploutos_in(
        dir.path(),
        &[
            "backtest",
            "--policy",
            "signals.csv",
            "--split",
            "all",
            "--set=data.source=csv",
            "--set=data.csv_dir=data",
            "--set=data.tickers=[\"ONE\"]",
            "--set=data.interval=1d",
            "--set=environment.short_selling.enabled=true",
            "--set=environment.short_selling.maintenance_margin=0.5",
            "--set=environment.buy_pct=1.0",
            "--set=environment.max_position_pct=1.0",
            "--out",
            "out",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let trades = std::fs::read_to_string(dir.path().join("out/trades.csv")).unwrap();
    let rows: Vec<Vec<&str>> = trades.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let sides: Vec<(&str, &str)> = rows.iter().map(|r| (r[2], *r.last().unwrap())).collect();
    assert_eq!(sides, vec![("sell", ""), ("buy", ""), ("sell", ""), ("buy", "margin_call")], "{trades}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap()).unwrap();
    let m = &report["runs"][0]["metrics"];
    assert_eq!(m["forced_orders"].as_u64(), Some(1), "{m}");
    assert!(m["borrow_fees"].as_f64().unwrap() > 0.0, "{m}");
    assert_eq!(m["closed_trades"].as_u64(), Some(2), "{m}");
    assert!(m["win_rate"].as_f64().unwrap() == 0.5, "the first short won, the bought-in one lost: {m}");
}

/// `backtest --policy FILE` with target positions (answer 21): cells are levels. Long the
/// whole cap at $40, then −½ (the long is sold and a short opened in the same bar, two
/// trades), then 0 (the short covered); a cell that is not a level stops with its line.
#[test]
fn backtest_policy_replays_target_positions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let dates = ploutos::market::calendar::weekdays_from(chrono::NaiveDate::from_ymd_opt(2021, 1, 4).unwrap(), 160);
    let mut text = String::from("Date,Open,High,Low,Close,Volume\n");
    for (i, d) in dates.iter().enumerate() {
        let p = 40.0 + 0.1 * (i as f64 * 0.3).sin();
        text.push_str(&format!("{d},{p},{},{},{p},1000000\n", p * 1.01, p * 0.99));
    }
    std::fs::write(data.join("ONE.csv"), text).unwrap();
    let run = |signals: &[(usize, &str)]| {
        let rows = signals.iter().map(|(i, a)| format!("{},{a}\n", dates[*i])).collect::<String>();
        std::fs::write(dir.path().join("signals.csv"), format!("timestamp,ONE\n{rows}")).unwrap();
        ploutos_in(
            dir.path(),
            &[
                "backtest",
                "--policy",
                "signals.csv",
                "--split",
                "all",
                "--set=data.source=csv",
                "--set=data.csv_dir=data",
                "--set=data.tickers=[\"ONE\"]",
                "--set=data.interval=1d",
                "--set=environment.short_selling.enabled=true",
                "--set=environment.target_positions.enabled=true",
                "--set=environment.target_positions.levels=[-1.0,-0.5,0.0,0.5,1.0]",
                "--out",
                "out",
                "--force",
            ],
        )
    };
    let (code, _, err) = run(&[(110, "1"), (115, ""), (120, "-0.5"), (125, "hold"), (130, "0")]);
    assert_eq!(code, 0, "{err}");
    let trades = std::fs::read_to_string(dir.path().join("out/trades.csv")).unwrap();
    let rows: Vec<Vec<&str>> = trades.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[2])).collect();
    let day = |i: usize| dates[i].to_string();
    let want = [(111, "buy"), (121, "sell"), (121, "sell"), (131, "buy")];
    assert_eq!(got.len(), want.len(), "{trades}");
    for ((time, side), (i, s)) in got.iter().zip(want) {
        assert!(time.starts_with(&day(i)) && *side == s, "{trades}");
    }
    // The long (30% of $10,000 at ~$40) is sold whole; the short is half that size.
    let shares: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    assert!((shares[0] - shares[1]).abs() < 1e-9 && (shares[2] / shares[0] - 0.5).abs() < 0.01, "{trades}");
    assert!((shares[3] - shares[2]).abs() < 1e-9, "{trades}");

    let (code, _, err) = run(&[(110, "1"), (120, "0.3")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "signals.csv:3: column \"ONE\": \"0.3\" is not a target level (-1, -0.5, 0, 0.5, 1), hold or empty"
        ),
        "{err}"
    );
}

/// `trade --broker replay` over a model's test period sends the orders `backtest --model`
/// fills over the same period (time, ticker, side, shares), and refuses bad input with one
/// line: a model for other tickers, a journal that exists, a limit out of range, alpaca
/// without its keys.
#[cfg(feature = "learner")]
#[test]
fn trade_replay_sends_the_backtests_orders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, err) = ploutos_in(d, &args(&tiny_train("tr", 4096)));
    assert_eq!(code, 0, "{err}");
    let model = "models/tr/final";
    let (code, _, err) = ploutos_in(d, &["backtest", "--model", model, "--out", "reports/tr"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = ploutos_in(d, &["trade", "--model", model, "--out", "trades/tr"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("orders sent"), "{out}");
    let rows = |path: &str, cols: usize| -> Vec<String> {
        std::fs::read_to_string(d.join(path))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(cols).collect::<Vec<_>>().join(","))
            .collect()
    };
    let backtest = rows("reports/tr/trades.csv", 4);
    assert!(!backtest.is_empty(), "the model trades in its test period");
    assert_eq!(rows("trades/tr/orders.csv", 4), backtest);
    assert!(std::fs::read_to_string(d.join("trades/tr/journal.jsonl")).unwrap().contains("\"kind\":\"bar_done\""));
    // A period that ends before the data does (the validation split, which the test split
    // follows) ends the trade there too.
    let (code, _, err) =
        ploutos_in(d, &["backtest", "--model", model, "--split", "validation", "--out", "reports/val"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = ploutos_in(d, &["trade", "--model", model, "--split", "validation", "--out", "trades/val"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows("trades/val/orders.csv", 4), rows("reports/val/trades.csv", 4), "{out}");
    assert!(!err.contains("in-sample"), "{err}");
    // A session over bars the model was trained on (the data's first weeks) says so.
    let early = ["--split", "all", "--to", "2015-02-27", "--out", "trades/early"];
    let (code, _, err) = ploutos_in(d, &[&["trade", "--model", model][..], &early].concat());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fall within the model's training bars"), "{err}");

    // The report is not replaced without --force; two models named alike get two folders;
    // the default folder is named after the runs and never reused.
    assert_bad_input_in(d, &["backtest", "--model", model, "--out", "reports/tr"], "holds a report already");
    let (code, _, err) = ploutos_in(d, &["backtest", "--model", model, "--out", "reports/tr", "--force"]);
    assert_eq!(code, 0, "{err}");
    std::fs::create_dir_all(d.join("other/tr")).unwrap();
    copy_dir(&d.join(model), &d.join("other/tr/final"));
    let (code, out, err) = ploutos_in(d, &["backtest", "--model", model, "--model", "other/tr/final", "--out", "two"]);
    assert_eq!(code, 0, "{err}");
    assert!(d.join("two/tr_final/trades.csv").is_file() && d.join("two/other_tr_final/trades.csv").is_file(), "{out}");
    let folders = |d: &std::path::Path| {
        let (code, _, err) = ploutos_in(d, &["backtest", "--model", model]);
        assert_eq!(code, 0, "{err}");
        err.lines().find_map(|l| l.strip_prefix("ploutos: report in ")).unwrap().to_string()
    };
    // A model of another market (here its config says daily bars, the first one's hourly)
    // is not replayed on the first one's.
    copy_dir(&d.join(model), &d.join("daily/tr/final"));
    let config = d.join("daily/tr/final/config.ron");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("interval: \"1h\""), "{text}");
    std::fs::write(&config, text.replace("interval: \"1h\"", "interval: \"1d\"")).unwrap();
    assert_bad_input_in(d, &["backtest", "--model", model, "--model", "daily/tr/final"], "was trained on 1d bars");
    // Nor one that observes otherwise (its observations would be built as the first one's).
    copy_dir(&d.join(model), &d.join("costs/tr/final"));
    let config = d.join("costs/tr/final/config.ron");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("observe_costs: false"), "{text}");
    std::fs::write(&config, text.replace("observe_costs: false", "observe_costs: true")).unwrap();
    assert_bad_input_in(
        d,
        &["backtest", "--model", model, "--model", "costs/tr/final"],
        "costs/tr/final was trained with environment.observe_costs = true (what it observes), unlike the first --model models/tr/final",
    );
    // Both on other tickers by --set: the same market for both.
    let (code, _, err) = ploutos_in(
        d,
        &["backtest", "--model", model, "--model", "other/tr/final", "--set", "data.tickers=[\"CCC\",\"DDD\"]"],
    );
    assert_eq!(code, 0, "{err}");
    let (first, second) = (folders(d), folders(d));
    assert!(first.starts_with("reports/tr_final-") && first != second, "{first} {second}");
    // What the model observes and what its actions mean are its own.
    assert_bad_input_in(
        d,
        &["backtest", "--model", model, "--set", "environment.observe_costs=true"],
        "was trained with environment.observe_costs = false",
    );
    assert_bad_input_in(
        d,
        &["trade", "--model", model, "--run", "x", "--set", "environment.target_positions.enabled=true"],
        "was trained with environment.target_positions.enabled = false (its actions mean hold, buy and sell)",
    );
    assert!(!d.join("trades/x").exists(), "refused before the journal");
    // A model in a folder named like the benchmark keeps its own column.
    copy_dir(&d.join(model), &d.join("buy-and-hold"));
    let (code, table, err) = ploutos_in(d, &["backtest", "--model", "buy-and-hold", "--out", "named"]);
    assert_eq!(code, 0, "{err}");
    let header = table.lines().find(|l| l.starts_with("| metric")).unwrap();
    let cells: Vec<&str> = header.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["metric", "model buy-and-hold", "buy-and-hold"], "{header}");
    // A run folder, a model given twice, another bar length, a bad --set: each named.
    assert_bad_input_in(
        d,
        &["backtest", "--model", "models/tr"],
        "--model models/tr is a run folder: pass one of its models, e.g. models/tr/",
    );
    assert_bad_input_in(
        d,
        &["backtest", "--model", model, "--model", "./models/tr/final"],
        "--model ./models/tr/final is given twice",
    );
    assert_bad_input_in(d, &["backtest", "--model", model, "--set", "data.interval=1d"], "was trained on 1h bars");
    let (code, _, err) = ploutos_in(d, &["backtest", "--model", model, "--set", "training.gamma=2"]);
    assert!(code == 2 && err.contains("ploutos: error: --set training.gamma=2: "), "{err}");
    // Nor what each target level is, the number of levels kept.
    let levels = |l: &str| format!("environment.target_positions.levels={l}");
    copy_dir(&d.join(model), &d.join("levels/tr/final"));
    let config = d.join("levels/tr/final/config.ron");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut trained = ploutos::config::Config::from_ron_str(&text, "config.ron").unwrap();
    assert_eq!(trained.environment.target_positions.levels, [0.0, 0.5, 1.0]);
    trained.environment.target_positions.enabled = true;
    std::fs::write(&config, trained.to_ron()).unwrap();
    assert_bad_input_in(
        d,
        &["backtest", "--model", "levels/tr/final", "--set", &levels("[0.0,0.25,0.5]")],
        "environment.target_positions.levels = [0.0, 0.5, 1.0] (the target of each action)",
    );
    let (code, _, err) =
        ploutos_in(d, &["backtest", "--model", model, "--set", "environment.observation_layout=index", "--out", "i"]);
    assert_eq!(code, 0, "the layout is the model's: {err}");

    assert_bad_input_in(d, &["trade", "--model", model, "--out", "trades/tr"], "journal.jsonl exists");
    assert_bad_input_in(d, &["trade", "--model", model, "--max-daily-loss", "2"], "--max-daily-loss 2");
    assert_bad_input_in(d, &["trade", "--model", model, "--max-daily-loss", "-0.1"], "--max-daily-loss -0.1: expected");
    // A session a limit stops exits 3 (not 0: a scheduler tells it from a finished period),
    // its journal and orders.csv written.
    std::fs::write(d.join("STOP"), "").unwrap();
    let (code, _, err) = ploutos_in(d, &["trade", "--model", model, "--run", "k", "--kill-switch", "STOP"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.trim_end().ends_with("ploutos: stopped: kill switch STOP exists: stopping"), "{err}");
    assert!(d.join("trades/k/orders.csv").is_file() && d.join("trades/k/journal.jsonl").is_file());
    assert_bad_input_in(d, &["trade", "--model", model, "--run", "k"], "is not resumed (an Alpaca session is)");
    assert_bad_input_in(d, &["trade", "--model", model, "--broker", "alpaca"], "APCA_API_KEY_ID is not set");
    assert_bad_input_in(d, &["trade", "--model", model, "--broker", "alpaca", "--paper"], "APCA_API_KEY_ID is not set");
    assert_bad_input_in(d, &["trade", "--model", model, "--paper", "--live"], "'--paper' cannot be used with '--live'");
    assert_bad_input_in(
        d,
        &["trade", "--model", model, "--set", "environment.fill_timing=close"],
        "environment.fill_timing=close fills at the decision bar's close",
    );
    // The run's name names its folder and its order ids: no path out of `trades/`.
    assert_bad_input_in(d, &["trade", "--model", model, "--run", "../x", "--dry-run"], "--run \"../x\" must be");
    assert!(!d.join("x").exists());
    assert_bad_input_in(
        d,
        &["trade", "--model", model, "--out", "trades/x", "--set=data.tickers=[\"AAA\",\"BBB\",\"CCC\"]"],
        "the network trades 2 tickers",
    );
}

/// Copies a folder's files (one level of subfolders and more) to `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
