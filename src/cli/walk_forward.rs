//! `ploutos walk-forward`: train on a rolling window, test on the next, roll forward.
//!
//! Fold i trains on `train_days` trading days and tests on the following `test_days`;
//! the next fold starts `test_days` later, so the test windows tile the end of the data
//! without overlap. Each fold fits its own feature standardization on its own training
//! window (nothing of its test window leaks in), trains a fresh agent with the config's
//! `training` section, and replays that agent's final model over its test window with
//! the same costs and rules. The out-of-sample equity of the folds is concatenated (each
//! fold compounding from the previous fold's end) beside buy-and-hold chained the same way.

use super::BadArgument;
use super::args::WalkForwardArgs;
use anyhow::Context;
use ploutos::backtest::report::{Entry, Report};
use ploutos::backtest::{EquityRow, Policy, ReplayResult, metrics, replay_agent, replay_policy};
use ploutos::dataset::Dataset;
use ploutos::env::{EnvOptions, TradingEnv};
use ploutos::market::calendar::format_timestamp;
use ploutos::market::{Split, load_panel};
use ploutos::ppo::{NoHooks, Policy as Agent, RunPaths, Trainer, parse_device};
use std::io::Write;
use std::path::PathBuf;

pub fn run(a: WalkForwardArgs) -> anyhow::Result<()> {
    let cfg = a.common.load()?;
    let (panel, report) = load_panel(&cfg.data)?;
    eprintln!("ploutos: {report}");
    let n_days = panel.n_days();
    let day = panel.day().to_vec();
    if a.folds == 0 || a.train_days < 2 || a.test_days < 1 {
        return Err(BadArgument("--folds and --test-days must be at least 1, --train-days at least 2".into()).into());
    }
    let needed = a.train_days + a.folds * a.test_days;
    if needed > n_days {
        return Err(BadArgument(format!(
            "--folds {} --train-days {} --test-days {} needs {needed} trading days; the data has {n_days}",
            a.folds, a.train_days, a.test_days
        ))
        .into());
    }
    let first_bar_of = |d: usize| day.partition_point(|&x| (x as usize) < d);
    let name =
        cfg.training.run_name.clone().unwrap_or_else(|| chrono::Utc::now().format("wf-%Y%m%d-%H%M%S").to_string());
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&name));
    let bpy = cfg.data.interval.bars_per_year();
    let device = parse_device(&cfg.training.device)?;
    let start_day = n_days - needed;
    let (mut runs, mut benches) = (Vec::new(), Vec::new());
    for fold in 0..a.folds {
        let s = start_day + fold * a.test_days;
        let train = first_bar_of(s).max(ploutos::features::MIN_BARS)..first_bar_of(s + a.train_days);
        let test = first_bar_of(s + a.train_days)..first_bar_of(s + a.train_days + a.test_days);
        if train.len() < 2 || test.len() < 2 {
            return Err(BadArgument(format!("fold {fold}: the training or test window holds fewer than 2 bars")).into());
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
        let bounds = Dataset::bounds(train.clone(), true).context("training window")?;
        let mut opts = EnvOptions::training(cfg.training.n_envs, bounds);
        opts.threads = cfg.training.threads;
        let env = TradingEnv::new(&cfg.environment, ds.market.clone(), opts)?;
        let paths = RunPaths {
            models: PathBuf::from("models").join(&name).join(&fold_name),
            runs: PathBuf::from("runs").join(&name).join(&fold_name),
            logs: PathBuf::from("logs").join(&name).join(&fold_name),
        };
        let summary = Trainer::new(&cfg, env, None, paths)?.train(&mut NoHooks)?;
        eprintln!("ploutos: {fold_name}: trained {} timesteps in {:.0} s", summary.timesteps, summary.seconds);
        let mut agent = Agent::load(&summary.last_checkpoint, device)?;
        agent.set_market(&ds.market)?;
        let result = replay_agent(&cfg.environment, ds.market.clone(), test.clone(), &agent, fold_name.clone(), true)?;
        let bench = replay_policy(&cfg.environment, ds.market.clone(), test.clone(), &Policy::BuyAndHold)?;
        runs.push((test, result));
        benches.push(bench);
    }
    // Per-fold table and the concatenated out-of-sample curve.
    let entries: Vec<Entry> = runs.iter().map(|(_, r)| Entry::new(metrics::compute(r, bpy))).collect();
    let oos = chain("walk-forward (out of sample)", runs.iter().map(|(_, r)| r));
    let oos_bench = chain("buy-and-hold", benches.iter());
    let first = runs.first().map_or(0, |(r, _)| r.start);
    let last = runs.last().map_or(0, |(r, _)| r.end - 1);
    // Trade statistics of the whole out-of-sample period come from each fold's own closed
    // trades: positions do not carry from one fold's agent to the next.
    let closed: Vec<_> = runs.iter().flat_map(|(_, r)| metrics::closed_trades(&r.trades, panel.n_tickers())).collect();
    let stats = metrics::TradeStats::of(&closed);
    let mut oos_metrics = metrics::compute(&oos, bpy);
    oos_metrics.closed_trades = closed.len();
    oos_metrics.win_rate = stats.win_rate;
    oos_metrics.profit_factor = stats.profit_factor;
    oos_metrics.avg_trade_bars = stats.avg_trade_bars;
    let mut all = entries;
    all.push(Entry::new(oos_metrics));
    let report = Report {
        from: format_timestamp(panel.timestamps()[first], cfg.data.interval),
        to: format_timestamp(panel.timestamps()[last], cfg.data.interval),
        interval: cfg.data.interval.as_str().into(),
        bars_per_year: bpy,
        tickers: panel.tickers().to_vec(),
        benchmark: Entry::new(metrics::compute(&oos_bench, bpy)),
        runs: all,
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

/// Concatenates replays over consecutive windows into one curve: each window's equity is
/// rescaled to start where the previous one ended (the first bar of a window repeats the
/// previous window's last bar, so it is skipped). Trades and costs are summed.
fn chain<'a>(name: &str, parts: impl Iterator<Item = &'a ReplayResult>) -> ReplayResult {
    let mut out: Option<ReplayResult> = None;
    for p in parts {
        match &mut out {
            None => {
                let mut first = p.clone();
                first.name = name.to_string();
                out = Some(first);
            }
            Some(acc) => {
                let scale = acc.equity.last().map_or(1.0, |e| e.equity) / p.initial_cash;
                acc.equity.extend(p.equity.iter().skip(1).map(|e| EquityRow {
                    bar: e.bar,
                    equity: e.equity * scale,
                    cash: e.cash * scale,
                    values: e.values.iter().map(|v| v * scale).collect(),
                }));
                acc.trades.extend(p.trades.iter().copied());
                acc.totals.merge(&p.totals);
            }
        }
    }
    out.unwrap_or_else(|| ReplayResult {
        name: name.to_string(),
        initial_cash: 0.0,
        equity: Vec::new(),
        trades: Vec::new(),
        totals: Default::default(),
        refusal_names: Vec::new(),
    })
}
