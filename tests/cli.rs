//! The `ploutos` binary: exit codes and one-line errors for bad input.
#![cfg(feature = "cli")]

use std::process::Command;

fn ploutos(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ploutos"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn assert_bad_input(args: &[&str], needle: &str) {
    let (code, _, err) = ploutos(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    // Progress lines may come first; the error itself is the single last line.
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(err.trim_end().lines().last().is_some_and(|l| l.starts_with("ploutos: error: ")), "{err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
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
    assert_bad_input(&["features", "--input", csv.to_str().expect("utf8"), "--output", "/dev/null"], "volume");
    assert_bad_input(&["backtest", "--policy", "nonsense"], "nonsense");
    assert_bad_input(&["backtest", "--data", dir.path().to_str().expect("utf8")], ".csv");
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
