//! `ploutos backtest`: replays models and policies over a period and writes their outputs.

use super::BadArgument;
use super::args::BacktestArgs;
use anyhow::Context;
use ploutos::backtest::report::{Entry, Report};
use ploutos::backtest::{Policy, ReplayResult, html, metrics, output, plots, replay_policy};
use ploutos::config::{Config, DataSource};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::market::calendar::format_timestamp;
use std::path::PathBuf;

pub fn run(a: BacktestArgs) -> anyhow::Result<()> {
    let mut cfg: Config = match a.model.first() {
        // A model is evaluated with the costs, rules and data it was trained with, unless
        // --set or --data say otherwise.
        Some(dir) => model_config(dir, &a.common.overrides)?,
        None => a.common.load()?,
    };
    let part: SplitPart = a.split.parse().map_err(BadArgument)?;
    let mut part = part;
    if let Some(dir) = &a.data {
        cfg.data.source = DataSource::Csv;
        cfg.data.csv_dir = dir.display().to_string();
        // A replay of a CSV folder covers the whole files (after the feature warm-up).
        part = SplitPart::All;
    }
    let scaler = match a.model.first() {
        Some(dir) => Some(load_scaler(dir)?),
        None => None,
    };
    let dataset = super::train::load_dataset(&cfg, scaler)?;
    let range = period(&dataset, part, a.from.as_deref(), a.to.as_deref())?;
    let specs =
        if a.policy.is_empty() && a.model.is_empty() { vec!["buy-and-hold".to_string()] } else { a.policy.clone() };
    let mut results = Vec::new();
    for dir in &a.model {
        results.push(replay_model(dir, &cfg, &dataset, range.clone(), a.stochastic)?);
    }
    for spec in &specs {
        let t = &cfg.environment.target_positions;
        let levels = t.enabled.then_some(t.levels.as_slice());
        let policy = Policy::parse(spec, &dataset.panel, cfg.training.seed, levels)?;
        let result = replay_policy(&cfg.environment, dataset.market.clone(), range.clone(), &policy)
            .map_err(|e| BadArgument(format!("period: {e}")))?;
        results.push(result);
    }
    let benchmark = match results.iter().find(|r| r.name == "buy-and-hold") {
        Some(r) => r.clone(),
        None => replay_policy(&cfg.environment, dataset.market.clone(), range.clone(), &Policy::BuyAndHold)
            .map_err(|e| BadArgument(format!("period: {e}")))?,
    };
    let out_root = a.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(report_name(&specs)));
    finish(&out_root, &results, &benchmark, &dataset, range, cfg.data.interval)
}

/// Writes every run's CSVs, the report and the plots, and prints the comparison table.
pub fn finish(
    out_root: &std::path::Path,
    results: &[ReplayResult],
    benchmark: &ReplayResult,
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    interval: ploutos::config::Interval,
) -> anyhow::Result<()> {
    let bpy = interval.bars_per_year();
    for r in results {
        let dir = if results.len() == 1 { out_root.to_path_buf() } else { out_root.join(sanitize(&r.name)) };
        write_outputs(&dir, r, dataset)?;
    }
    let report = Report {
        from: format_timestamp(dataset.panel.timestamps()[range.start], interval),
        to: format_timestamp(dataset.panel.timestamps()[range.end - 1], interval),
        interval: interval.as_str().into(),
        bars_per_year: bpy,
        tickers: dataset.panel.tickers().to_vec(),
        corporate_actions: dataset.report.corporate_actions(),
        benchmark: Entry::new(metrics::compute(benchmark, bpy)),
        runs: results.iter().map(|r| Entry::new(metrics::compute(r, bpy))).collect(),
    };
    report.write_json(&out_root.join("report.json")).with_context(|| format!("writing {}", out_root.display()))?;
    let plots = plots::write_plots(out_root, results, benchmark, &dataset.panel)
        .with_context(|| format!("writing plots in {}", out_root.display()))?;
    html::write_html(out_root, &report, &plots)
        .with_context(|| format!("writing {}", out_root.join("report.html").display()))?;
    println!("Backtest {} → {} ({} bars)\n", report.from, report.to, range.len());
    print!("{}", report.table());
    eprintln!("ploutos: report in {}", out_root.display());
    Ok(())
}

/// The feature standardization the model was trained with: the checkpoint's own copy, else
/// its run folder's (runs saved before checkpoints carried one).
pub(super) fn load_scaler(model: &std::path::Path) -> anyhow::Result<ploutos::features::FeatureScaler> {
    let own = model.join("feature_scaler.ron");
    let path = if own.is_file() { own } else { run_folder(model).join("feature_scaler.ron") };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BadArgument(format!("--model {}: cannot read {}: {e}", model.display(), path.display())))?;
    Ok(ron::from_str(&text).map_err(|e| BadArgument(format!("{}: {e}", path.display())))?)
}

#[cfg(feature = "learner")]
fn run_folder(model: &std::path::Path) -> PathBuf {
    ploutos::ppo::checkpoint::run_root(model)
}

#[cfg(not(feature = "learner"))]
fn run_folder(model: &std::path::Path) -> PathBuf {
    model.parent().map_or(model.to_path_buf(), |p| p.to_path_buf())
}

#[cfg(feature = "learner")]
pub(super) fn model_config(dir: &std::path::Path, overrides: &[String]) -> anyhow::Result<Config> {
    let cfg = ploutos::ppo::checkpoint::read_config(dir).map_err(|e| BadArgument(format!("--model: {e}")))?;
    let cfg = cfg.with_overrides(overrides)?;
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(feature = "learner")]
fn replay_model(
    dir: &std::path::Path,
    cfg: &Config,
    ds: &Dataset,
    range: std::ops::Range<usize>,
    stochastic: bool,
) -> anyhow::Result<ReplayResult> {
    let device = ploutos::ppo::parse_device(&cfg.training.device).map_err(|e| BadArgument(e.to_string()))?;
    let mut policy = ploutos::ppo::Policy::load(dir, device).map_err(|e| BadArgument(format!("--model: {e}")))?;
    policy.set_market(&ds.market).map_err(|e| BadArgument(format!("--model {}: {e}", dir.display())))?;
    let name = dir
        .components()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    Ok(ploutos::backtest::replay_agent(&cfg.environment, ds.market.clone(), range, &policy, name, !stochastic)?)
}

#[cfg(not(feature = "learner"))]
pub(super) fn model_config(_dir: &std::path::Path, _overrides: &[String]) -> anyhow::Result<Config> {
    Err(BadArgument("--model needs the `learner` feature (default build)".into()).into())
}

#[cfg(not(feature = "learner"))]
fn replay_model(
    _: &std::path::Path,
    _: &Config,
    _: &Dataset,
    _: std::ops::Range<usize>,
    _: bool,
) -> anyhow::Result<ReplayResult> {
    Err(BadArgument("--model needs the `learner` feature (default build)".into()).into())
}

/// Bars of `part`, narrowed by `--from`/`--to` dates (inclusive).
pub(super) fn period(
    ds: &Dataset,
    part: SplitPart,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<std::ops::Range<usize>> {
    let mut range = ds.range(part);
    let date = |s: &str, flag: &str| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| BadArgument(format!("{flag} {s:?}: expected YYYY-MM-DD")))
    };
    if let Some(f) = from {
        let d = date(f, "--from")?;
        while range.start < range.end && ds.panel.date(range.start) < d {
            range.start += 1;
        }
    }
    if let Some(t) = to {
        let d = date(t, "--to")?;
        while range.end > range.start && ds.panel.date(range.end - 1) > d {
            range.end -= 1;
        }
    }
    if range.len() < 2 {
        return Err(BadArgument(format!(
            "the selected period holds {} bars; a backtest needs at least 2",
            range.len()
        ))
        .into());
    }
    Ok(range)
}

fn write_outputs(dir: &std::path::Path, r: &ReplayResult, ds: &Dataset) -> anyhow::Result<()> {
    output::write_equity(&dir.join("equity.csv"), r, &ds.panel)
        .with_context(|| format!("writing {}", dir.display()))?;
    output::write_trades(&dir.join("trades.csv"), r, &ds.panel)
        .with_context(|| format!("writing {}", dir.display()))?;
    Ok(())
}

fn report_name(specs: &[String]) -> String {
    let joined = specs
        .iter()
        .map(|s| sanitize(std::path::Path::new(s).file_stem().map_or(s.as_str(), |x| x.to_str().unwrap_or(s))))
        .collect::<Vec<_>>()
        .join("+");
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    format!("{joined}-{stamp}")
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}
