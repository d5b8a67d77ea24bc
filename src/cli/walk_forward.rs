//! `ploutos walk-forward`: train on a rolling window, test on the next, roll forward.
//!
//! The folds come from [`ploutos::backtest::walk_forward`]. Each fold fits its own feature
//! standardization on its own training window (nothing of its test window leaks in), trains
//! a fresh agent with the config's `training` section, and replays that agent's final model
//! over its test window with the same costs and rules. The out-of-sample equity of the folds
//! is concatenated (each fold compounding from the previous fold's end) beside buy-and-hold
//! chained the same way.

use super::BadArgument;
use super::args::WalkForwardArgs;
use anyhow::Context;
use ploutos::TradingEnv;
use ploutos::backtest::report::{Entry, FoldWindow, Report};
use ploutos::backtest::walk_forward::{chain, out_of_sample_metrics};
use ploutos::backtest::{Fold, Policy, ReplayResult, WalkForward, metrics, replay_agent, replay_policy};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::market::calendar::format_timestamp;
use ploutos::market::{Split, load_panel};
use ploutos::ppo::{Policy as Agent, RunPaths, parse_device};
use std::io::Write;
use std::path::PathBuf;

pub fn run(a: WalkForwardArgs) -> anyhow::Result<()> {
    let cfg = a.common.load()?;
    let (panel, report) = load_panel(&cfg.data)?;
    eprintln!("ploutos: {report}");
    let wf = WalkForward { folds: a.folds, train_days: a.train_days, test_days: a.test_days };
    let folds = wf.folds(panel.day(), ploutos::features::MIN_BARS).map_err(|e| {
        BadArgument(format!("--folds {} --train-days {} --test-days {}: {e}", a.folds, a.train_days, a.test_days))
    })?;
    let name =
        cfg.training.run_name.clone().unwrap_or_else(|| chrono::Utc::now().format("wf-%Y%m%d-%H%M%S").to_string());
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&name));
    super::backtest::refuse_report_in(&out, a.force)?;
    super::backtest::refuse_data_folder(&out, &cfg)?;
    super::check_writable(&out, "--out")?;
    // The folds train under models/<name>/fold_N: never into another run's folder, nor over
    // an earlier walk-forward's folds, unless --force (which clears those folds first).
    let roots = ["models", "runs", "logs"].map(|root| PathBuf::from(root).join(&name));
    let is_fold = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().starts_with("fold_");
    // (Hidden files, a desktop's `.DS_Store`, are no training run.)
    let hidden = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().starts_with('.');
    let other =
        std::fs::read_dir(&roots[0]).map(|d| d.flatten().filter(|e| !is_fold(e) && !hidden(e)).count()).unwrap_or(0);
    if other > 0 {
        return Err(BadArgument(format!(
            "{} holds a training run named {name}: set another training.run_name for the walk-forward",
            roots[0].display()
        ))
        .into());
    }
    if roots[0].exists() && !a.force {
        return Err(BadArgument(format!(
            "{} holds an earlier walk-forward named {name}: set another training.run_name, or pass --force to replace its folds",
            roots[0].display()
        ))
        .into());
    }
    // --force: every fold of the earlier walk-forward goes, however many it had, once the
    // first fold's run is set up (a device that is not there, a network too big for the
    // machine: nothing lost).
    let clear_folds = || -> anyhow::Result<()> {
        // The earlier report goes with its folds (a walk-forward stopped after this one
        // writes none).
        for file in ["report.json", "equity.csv"].map(|f| out.join(f)).into_iter().filter(|f| f.exists()) {
            std::fs::remove_file(&file).with_context(|| format!("--force: removing {}", file.display()))?;
        }
        for root in &roots {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten().filter(|e| is_fold(e)) {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("--force: removing {}", entry.path().display()))?;
            }
        }
        Ok(())
    };
    let device = parse_device(&cfg.training.device).map_err(|e| BadArgument(e.to_string()))?;
    let stop = super::stop_on_ctrl_c("stopping after this iteration: the walk-forward ends without a report");
    let bpy = cfg.data.interval.bars_per_year();
    // The out-of-sample period: from the first fold's test window to the last one's.
    let first = folds.first().map_or(0, |f| f.test.start);
    let last = folds.last().map_or(0, |f| f.test.end - 1);
    let (mut runs, mut benches, mut windows) = (Vec::new(), Vec::new(), Vec::new());
    let at = |bar: usize| format_timestamp(panel.timestamps()[bar], cfg.data.interval);
    // A Ctrl-C: no report, which would cover only the folds done.
    let stopped = |when: String| super::Stopped {
        message: format!(
            "the walk-forward stopped {when} (Ctrl-C): no report; its folds so far are in {} (run it again with --force to start over)",
            roots[0].display()
        ),
        interrupted: true,
    };
    for (fold, Fold { train, test }) in folds.into_iter().enumerate() {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            // During the previous fold's test replay.
            return Err(stopped(format!("before fold_{fold}")).into());
        }
        let split = Split { train: train.clone(), validation: test.start..test.start, test: test.clone() };
        let ds = Dataset::build(panel.clone(), report.clone(), split, None);
        let fold_name = format!("fold_{fold}");
        eprintln!(
            "ploutos: {fold_name}: train {} → {} ({} bars), test {} → {} ({} bars)",
            panel.date(train.start),
            panel.date(train.end - 1),
            train.len(),
            panel.date(test.start),
            panel.date(test.end - 1),
            test.len()
        );
        // The fold's split trains on its window, as `train` trains on its training split.
        let opts = ds.env_options(&cfg.training, SplitPart::Train, cfg.training.n_envs)?;
        let env = TradingEnv::new(&cfg.environment, ds.market.clone(), opts)?;
        let paths = RunPaths {
            models: PathBuf::from("models").join(&name).join(&fold_name),
            runs: PathBuf::from("runs").join(&name).join(&fold_name),
            logs: PathBuf::from("logs").join(&name).join(&fold_name),
        };
        // The fold's own standardization (fitted on its training window) goes beside its
        // model and into its checkpoints, so that `backtest --model .../fold_N/final` reads
        // the features as the fold's agent did; the fold logs as a training run does.
        let run_name = format!("{name}/{fold_name}");
        let replace = (fold == 0).then_some(&clear_folds as &dyn Fn() -> anyhow::Result<()>);
        let begin = super::train::Begin::Fresh { replace };
        let summary = super::train::train_envs(&cfg, (env, None), &ds.scaler, &paths, &run_name, begin, &stop)?;
        if summary.interrupted {
            return Err(stopped(format!("in {fold_name}")).into());
        }
        let mut agent = Agent::load(&summary.last_checkpoint, device)?;
        agent.set_market(&ds.market)?;
        let result = replay_agent(&cfg.environment, ds.market.clone(), test.clone(), &agent, fold_name.clone(), true)?;
        let bench = replay_policy(&cfg.environment, ds.market.clone(), test.clone(), &Policy::BuyAndHold)?;
        runs.push(result);
        benches.push(bench);
        windows.push(FoldWindow {
            name: fold_name,
            train_from: at(train.start),
            train_to: at(train.end - 1),
            test_from: at(test.start),
            test_to: at(test.end - 1),
        });
    }
    // Per-fold table and the concatenated out-of-sample curve.
    let time_of = |bar: usize| format_timestamp(panel.timestamps()[bar], cfg.data.interval);
    let dated = |r: &ReplayResult, m: metrics::Metrics| Entry::new(m.with_times(r, time_of));
    let mut entries: Vec<Entry> = runs.iter().map(|r| dated(r, metrics::compute(r, bpy))).collect();
    let oos = chain("walk-forward (out of sample)", runs.iter());
    let oos_bench = chain("buy-and-hold", benches.iter());
    entries.push(dated(&oos, out_of_sample_metrics(&oos, &runs, panel.n_tickers(), bpy)));
    let report = Report {
        from: format_timestamp(panel.timestamps()[first], cfg.data.interval),
        to: format_timestamp(panel.timestamps()[last], cfg.data.interval),
        interval: cfg.data.interval.as_str().into(),
        bars_per_year: bpy,
        tickers: panel.tickers().to_vec(),
        corporate_actions: report.corporate_actions(),
        benchmark: dated(&oos_bench, metrics::compute(&oos_bench, bpy)),
        runs: entries,
        folds: windows,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    report.write_json(&out.join("report.json")).context("writing report.json")?;
    ploutos::fsutil::write_atomic_with(&out.join("equity.csv"), |w| {
        writeln!(w, "time,bar,walk_forward_equity,buy_and_hold_equity")?;
        for (row, b) in oos.equity.iter().zip(&oos_bench.equity) {
            writeln!(
                w,
                "{},{},{},{}",
                format_timestamp(panel.timestamps()[row.bar], cfg.data.interval),
                row.bar,
                row.equity,
                b.equity
            )?;
        }
        Ok(())
    })
    .context("writing equity.csv")?;
    println!("Walk-forward, {} folds, out of sample {} → {}\n", a.folds, report.from, report.to);
    print!("{}", report.table());
    eprintln!("ploutos: walk-forward report in {}", out.display());
    Ok(())
}
