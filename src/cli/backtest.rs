//! `ploutos backtest`: replays models and policies over a period and writes their outputs.

use super::BadArgument;
use super::args::BacktestArgs;
use anyhow::Context;
use chrono::NaiveDate;
use ploutos::backtest::report::{Entry, Report};
use ploutos::backtest::{Policy, ReplayResult, html, metrics, output, plots, replay_policy};
use ploutos::config::{Config, DataSource, Interval};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::market::calendar::format_timestamp;
use std::path::PathBuf;

pub fn run(a: BacktestArgs) -> anyhow::Result<()> {
    let dates = dates(a.from.as_deref(), a.to.as_deref())?;
    let mut cfg: Config = match a.model.first() {
        // A model is evaluated with the costs, rules and data it was trained with, unless
        // --set or --data say otherwise.
        Some(dir) => {
            refuse_config_with_model(&a.common)?;
            model_config(dir, &a.common.overrides)?
        }
        None => a.common.load()?,
    };
    match &a.out {
        Some(out) => {
            refuse_report_in(out, a.force)?;
            super::check_writable(out, "--out")?;
        }
        // The default folder, `reports/<names>-<time>/`, before the replays run.
        None => super::check_writable(std::path::Path::new("reports"), "report folder (--out chooses another)")?,
    }
    same_market(&a.model)?;
    let part: SplitPart = a.split.parse().map_err(BadArgument)?;
    let mut part = part;
    if let Some(dir) = &a.data {
        cfg.data.source = DataSource::Csv;
        cfg.data.csv_dir = dir.display().to_string();
        // A replay of a CSV folder covers the whole files (after the feature warm-up).
        part = SplitPart::All;
    }
    if let Some(out) = &a.out {
        refuse_data_folder(out, &cfg)?;
    }
    let scaler = match a.model.first() {
        Some(dir) => Some(load_scaler(dir)?),
        None => None,
    };
    let dataset = super::train::load_dataset(&cfg, scaler)?;
    let range = period(&dataset, part, dates)?;
    if !a.model.is_empty() {
        warn_in_sample(&dataset, part, range.clone(), cfg.data.interval);
    }
    let specs =
        if a.policy.is_empty() && a.model.is_empty() { vec!["buy-and-hold".to_string()] } else { a.policy.clone() };
    if let Some(twice) = specs.iter().enumerate().find(|(i, s)| specs[..*i].contains(s)) {
        return Err(BadArgument(format!("--policy {} is given twice", twice.1)).into());
    }
    let mut results: Vec<ReplayResult> = Vec::new();
    for dir in &a.model {
        let mut result = replay_model(dir, &cfg, &dataset, range.clone(), a.stochastic)?;
        // Two models named alike (`a/best`, `b/x/a/best`) get a column and a folder each;
        // the benchmark's name is the benchmark's.
        if result.name == BENCHMARK {
            result.name = format!("model {}", dir.display());
        } else if results.iter().any(|r| r.name == result.name) {
            result.name = dir.display().to_string();
        }
        results.push(result);
    }
    let mut benchmark = None;
    for spec in &specs {
        let t = &cfg.environment.target_positions;
        let levels = t.enabled.then_some(t.levels.as_slice());
        let policy = Policy::parse(spec, &dataset.panel, cfg.training.seed, levels)?;
        if let Policy::Actions(table) = &policy {
            let outside = table.rows_outside(range.clone());
            if outside > 0 {
                let at = |t: usize| format_timestamp(dataset.panel.timestamps()[t], cfg.data.interval);
                eprintln!(
                    "ploutos: {spec}: {outside} action row(s) outside the period replayed ({} → {}, the last bar acting on nothing) are not acted on: see --split, --from, --to",
                    at(range.start),
                    at(range.end - 1)
                );
            }
        }
        let mut result = replay_policy(&cfg.environment, dataset.market.clone(), range.clone(), &policy)
            .map_err(|e| BadArgument(format!("period: {e}")))?;
        if matches!(policy, Policy::BuyAndHold) {
            benchmark = Some(result.clone());
        } else if result.name == BENCHMARK {
            // An actions file named like the benchmark.
            result.name = format!("policy {spec}");
        }
        results.push(result);
    }
    let benchmark = match benchmark {
        Some(r) => r,
        None => replay_policy(&cfg.environment, dataset.market.clone(), range.clone(), &Policy::BuyAndHold)
            .map_err(|e| BadArgument(format!("period: {e}")))?,
    };
    let out_root = match &a.out {
        Some(out) => out.clone(),
        None => unused(PathBuf::from("reports").join(report_name(&results))),
    };
    finish(&out_root, &results, &benchmark, &dataset, range, cfg.data.interval)
}

/// Says when the bars replayed include some the model was trained on (its scaler records
/// them): on other data given with `--data`, or a period that reaches into the training
/// split, the figures would be in-sample (a backtest's, or a replayed trading session's).
/// The training split itself (`part`), asked for as such, is not warned about.
pub(super) fn warn_in_sample(ds: &Dataset, part: SplitPart, range: std::ops::Range<usize>, interval: Interval) {
    let Some((first, last)) = ds.scaler.fitted_on.filter(|_| part != SplitPart::Train) else { return };
    let ts = &ds.panel.timestamps()[range.clone()];
    let seen = ts.iter().filter(|&&t| (first..=last).contains(&t)).count();
    if seen > 0 {
        let at = |t: i64| format_timestamp(t, interval);
        eprintln!(
            "ploutos: {seen} of the {} bars replayed ({} → {}) fall within the model's training bars ({} → {}): in-sample figures, not a test",
            ts.len(),
            at(ts[0]),
            at(ts[ts.len() - 1]),
            at(first),
            at(last)
        );
    }
}

/// The benchmark's name: its column, and its folder beside the runs'.
const BENCHMARK: &str = "buy-and-hold";

/// Writes every run's CSVs (and the benchmark's, in `buy-and-hold/` unless it is a run),
/// the report and the plots, and prints the comparison table.
pub fn finish(
    out_root: &std::path::Path,
    results: &[ReplayResult],
    benchmark: &ReplayResult,
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    interval: ploutos::config::Interval,
) -> anyhow::Result<()> {
    let bpy = interval.bars_per_year();
    let time_of = |bar: usize| format_timestamp(dataset.panel.timestamps()[bar], interval);
    let dated = |r: &ReplayResult| Entry::new(metrics::compute(r, bpy).with_times(r, time_of));
    for r in results {
        let dir = if results.len() == 1 { out_root.to_path_buf() } else { out_root.join(plots::file_safe(&r.name)) };
        write_outputs(&dir, r, dataset)?;
    }
    // The benchmark's own rows, so that its column can be checked like the others'.
    if !results.iter().any(|r| r.name == BENCHMARK) {
        write_outputs(&out_root.join(BENCHMARK), benchmark, dataset)?;
    }
    let report = Report {
        from: format_timestamp(dataset.panel.timestamps()[range.start], interval),
        to: format_timestamp(dataset.panel.timestamps()[range.end - 1], interval),
        interval: interval.as_str().into(),
        bars_per_year: bpy,
        tickers: dataset.panel.tickers().to_vec(),
        corporate_actions: dataset.report.corporate_actions(),
        benchmark: dated(benchmark),
        runs: results.iter().map(dated).collect(),
        folds: Vec::new(),
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

/// The config a `--model` was trained with (saved beside it); a run folder given for one
/// of its models is named as such.
#[cfg(feature = "learner")]
fn read_model_config(dir: &std::path::Path) -> Result<Config, BadArgument> {
    ploutos::ppo::checkpoint::read_config(dir).map_err(|e| {
        let inside = ["best", "final"].into_iter().find(|m| dir.join(m).join("config.ron").is_file());
        match inside {
            Some(m) if !dir.join("config.ron").exists() => BadArgument(format!(
                "--model {} is a run folder: pass one of its models, e.g. {}",
                dir.display(),
                dir.join(m).display()
            )),
            _ => BadArgument(format!("--model: {e}")),
        }
    })
}

/// The config `--model`'s run was trained with, with `overrides` applied: the costs, rules
/// and data it is evaluated with. Overrides may change those, not what the model observes
/// or what its actions mean (refused, naming the key); the observation rows are built in
/// the layout the model reads.
#[cfg(feature = "learner")]
pub(super) fn model_config(dir: &std::path::Path, overrides: &[String]) -> anyhow::Result<Config> {
    let trained = read_model_config(dir)?;
    let mut cfg = trained.clone().with_overrides(overrides)?;
    cfg.validate().map_err(|e| e.located(None, overrides))?;
    if cfg.data.interval != trained.data.interval {
        return Err(BadArgument(format!(
            "--model {} was trained on {} bars (its features are standardized on them): drop --set data.interval",
            dir.display(),
            trained.data.interval.as_str()
        ))
        .into());
    }
    let changed = trained.environment.model_contract_difference(&cfg.environment);
    if let Some(changed) = changed {
        return Err(BadArgument(format!(
            "--model {} was trained with {changed}: a model acts only on the observations and actions it was trained with; drop that --set",
            dir.display()
        ))
        .into());
    }
    cfg.environment.observation_layout = trained.environment.observation_layout;
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

/// `--from` and `--to` as dates, checked before any data is read.
pub(super) fn dates(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>), BadArgument> {
    let date = |s: &str, flag: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| BadArgument(format!("{flag} {s:?}: expected YYYY-MM-DD")))
    };
    let from = from.map(|s| date(s, "--from")).transpose()?;
    let to = to.map(|s| date(s, "--to")).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(BadArgument(format!("--from {f} is after --to {t}")));
    }
    Ok((from, to))
}

/// The bars of `part` from `from` to `to` (inclusive dates), at least 2.
pub(super) fn period(
    ds: &Dataset,
    part: SplitPart,
    (from, to): (Option<NaiveDate>, Option<NaiveDate>),
) -> anyhow::Result<std::ops::Range<usize>> {
    let whole = ds.range(part);
    let mut range = whole.clone();
    let name = match part {
        SplitPart::All => "the data".to_string(),
        other => format!("the {} split (--split)", other.name()),
    };
    // A date outside the part is clipped to it, said once.
    if !whole.is_empty() {
        let (first, last) = (ds.panel.date(whole.start), ds.panel.date(whole.end - 1));
        if let Some(d) = from.filter(|&d| d < first) {
            eprintln!("ploutos: --from {d} is before {name}, which starts {first}: from there");
        }
        if let Some(d) = to.filter(|&d| d > last) {
            eprintln!("ploutos: --to {d} is after {name}, which ends {last}: to there");
        }
    }
    if let Some(d) = from {
        while range.start < range.end && ds.panel.date(range.start) < d {
            range.start += 1;
        }
    }
    if let Some(d) = to {
        while range.end > range.start && ds.panel.date(range.end - 1) > d {
            range.end -= 1;
        }
    }
    if range.len() < 2 {
        let span = if whole.is_empty() {
            String::new()
        } else {
            format!(" runs {} to {}", ds.panel.date(whole.start), ds.panel.date(whole.end - 1))
        };
        return Err(BadArgument(format!(
            "the selected period holds {} bars; at least 2 are needed ({name}{span}; see --from, --to)",
            range.len()
        ))
        .into());
    }
    Ok(range)
}

/// Refuses an `--out` that is the data folder: the report's CSVs would sit among the
/// market's files (and `equity.csv` could be read as a ticker's).
pub(super) fn refuse_data_folder(out: &std::path::Path, cfg: &Config) -> Result<(), BadArgument> {
    let same = cfg.data.source == DataSource::Csv
        && std::fs::canonicalize(out).is_ok_and(|o| std::fs::canonicalize(&cfg.data.csv_dir).is_ok_and(|d| o == d));
    if same {
        return Err(BadArgument(format!("--out {} is the data folder: choose another", out.display())));
    }
    Ok(())
}

fn write_outputs(dir: &std::path::Path, r: &ReplayResult, ds: &Dataset) -> anyhow::Result<()> {
    output::write_equity(&dir.join("equity.csv"), r, &ds.panel)
        .with_context(|| format!("writing {}", dir.display()))?;
    output::write_trades(&dir.join("trades.csv"), r, &ds.panel)
        .with_context(|| format!("writing {}", dir.display()))?;
    Ok(())
}

/// Refuses `--config` beside `--model`: the model's run config is the one read.
pub(super) fn refuse_config_with_model(common: &super::args::CommonArgs) -> Result<(), BadArgument> {
    match &common.config {
        Some(file) => Err(BadArgument(format!(
            "--config {} with --model: a model is replayed with the config it was trained with (saved with it); change keys with --set",
            file.display()
        ))),
        None => Ok(()),
    }
}

/// The default report folder's name: the runs' names (a policy file's stem) and the time.
fn report_name(results: &[ReplayResult]) -> String {
    let joined = results
        .iter()
        .map(|r| {
            let name = r.name.as_str();
            let path = std::path::Path::new(name);
            let stem =
                if name.ends_with(".csv") { path.file_stem().and_then(|x| x.to_str()).unwrap_or(name) } else { name };
            plots::file_safe(stem)
        })
        .collect::<Vec<_>>()
        .join("+");
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    format!("{joined}-{stamp}")
}

/// `path`, or the first of `path-2`, `path-3`, ... that does not exist: two backtests in the
/// same second never share a default folder.
fn unused(path: PathBuf) -> PathBuf {
    let mut candidate = path.clone();
    let mut i = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{i}", path.display()));
        i += 1;
    }
    candidate
}

/// Refuses an output folder that holds a report already, unless `force`.
pub(super) fn refuse_report_in(out: &std::path::Path, force: bool) -> Result<(), BadArgument> {
    if out.join("report.json").exists() && !force {
        return Err(BadArgument(format!(
            "{} holds a report already: pass --force to replace it, or choose another --out",
            out.display()
        )));
    }
    Ok(())
}

/// Refuses a second or later `--model` trained on another market than the first's (another
/// interval or other tickers), or that observes, acts or standardizes its features otherwise:
/// every model of a backtest replays the first one's market and observation rows (with the
/// `--set`s, which apply to all).
#[cfg(feature = "learner")]
fn same_market(models: &[PathBuf]) -> anyhow::Result<()> {
    let Some((first, others)) = models.split_first() else { return Ok(()) };
    let twice = others.iter().enumerate().find(|(i, p)| models[..=*i].iter().any(|q| super::same_path(q, p)));
    if let Some((_, model)) = twice {
        return Err(BadArgument(format!("--model {} is given twice", model.display())).into());
    }
    let ours = read_model_config(first)?;
    let our_scaler = if others.is_empty() { None } else { Some(load_scaler(first)?) };
    for other in others {
        let theirs = read_model_config(other)?;
        let (a, b) = (&ours.data, &theirs.data);
        if a.interval != b.interval || a.tickers != b.tickers {
            return Err(BadArgument(format!(
                "--model {} was trained on {} bars of {}, the first --model {} on {} bars of {}: backtest them apart",
                other.display(),
                b.interval.as_str(),
                b.tickers.join(" "),
                first.display(),
                a.interval.as_str(),
                a.tickers.join(" ")
            ))
            .into());
        }
        let differs = match theirs.environment.model_contract_difference(&ours.environment) {
            Some(key) => Some(format!("was trained with {key}")),
            None => {
                let scaler = load_scaler(other)?;
                (!our_scaler.as_ref().is_some_and(|s| s.standardizes_like(&scaler)))
                    .then(|| "standardizes its features otherwise (another training split)".into())
            }
        };
        if let Some(what) = differs {
            return Err(BadArgument(format!(
                "--model {} {what}, unlike the first --model {}: backtest them apart",
                other.display(),
                first.display()
            ))
            .into());
        }
    }
    Ok(())
}

#[cfg(not(feature = "learner"))]
fn same_market(_: &[PathBuf]) -> anyhow::Result<()> {
    Ok(())
}
