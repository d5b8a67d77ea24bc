//! `ploutos train --seeds N`: N runs of one config that differ only by their seed, then
//! each run's best model replayed on the validation and test splits beside equal-weight
//! buy-and-hold and the random policy on the same bars. No result rests on one seed.
//!
//! Runs go to `models/<run>/seed_<S>` (and `runs/`, `logs/` alike), one after another (each
//! uses every core). The summary, `models/<run>/seeds.json` and `seeds.csv`, gives per split
//! the median and range over seeds of the model's Sharpe ratio, total return, maximum
//! drawdown and turnover (notional traded per year / mean equity), how many seeds beat
//! buy-and-hold's Sharpe ratio, and the random policy's median over the same seeds.
//!
//! The same command run again continues: a seed that finished (its run folder holds a
//! checkpoint at `total_timesteps` of the same config) is evaluated again, not trained; one
//! that was stopped resumes from its latest checkpoint; `--force` starts every seed over.

use super::BadArgument;
use super::train::{Begin, clear_or_refuse, init_log, load_dataset, refuse_overwrite, run_paths, train_one};
use anyhow::Context;
use ploutos::backtest::{Policy as BuiltIn, metrics, replay_agent, replay_policy};
use ploutos::bench::median;
use ploutos::config::Config;
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::ppo::{Policy, RunPaths, TrainSummary, checkpoint};
use ploutos::sweep::SplitOutcome;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a seed's run begins.
#[derive(Debug, Clone)]
enum Start {
    /// Nothing there yet (or `--force`): trained from scratch.
    Fresh,
    /// Stopped at this checkpoint: resumed from it.
    Resume(std::path::PathBuf),
    /// Finished: evaluated from its checkpoint.
    Done(TrainSummary),
}

/// Where seed run `name` stands in `paths`, for `cfg` (its seed's config): a checkpoint of
/// the same config resumes (or, at `total_timesteps`, is done); anything else there is
/// refused as a new run's outputs are ([`refuse_overwrite`]: `--force` replaces them).
fn start_of(name: &str, paths: &RunPaths, cfg: &Config) -> Result<Start, BadArgument> {
    let ckpt = match checkpoint::latest(&paths.models) {
        Ok(ckpt) => ckpt,
        Err(ploutos::ppo::PpoError::NoCheckpoint { .. }) => {
            refuse_overwrite(paths, name)?;
            return Ok(Start::Fresh);
        }
        Err(e) => {
            return Err(BadArgument(format!("{e} (seed run {name:?}): pass --force to start every seed over")));
        }
    };
    let same = checkpoint::read_config(&ckpt).is_ok_and(|saved| saved.to_ron() == cfg.to_ron());
    let state = checkpoint::read_state(&ckpt).ok().filter(|_| same).ok_or_else(|| {
        BadArgument(format!(
            "{} holds run {name:?} of another config: pass --force to replace it, or choose another training.run_name",
            paths.models.display()
        ))
    })?;
    if state.timesteps < cfg.training.total_timesteps {
        return Ok(Start::Resume(ckpt));
    }
    Ok(Start::Done(TrainSummary {
        timesteps: state.timesteps,
        iterations: state.iteration,
        seconds: 0.0,
        interrupted: false,
        last_checkpoint: ckpt,
        best_metric: state.best_metric,
    }))
}

/// Median and range over seeds.
#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(v: impl Iterator<Item = f64>) -> Self {
        let v: Vec<f64> = v.collect();
        Self {
            median: median(v.clone()),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One split over all seeds.
#[derive(Debug, Clone, Serialize)]
struct SplitSummary {
    split: &'static str,
    seeds: usize,
    sharpe: Spread,
    total_return: Spread,
    max_drawdown: Spread,
    turnover_per_year: Spread,
    /// Seeds whose Sharpe ratio is above buy-and-hold's.
    beat_buy_and_hold: usize,
    buy_and_hold_sharpe: f64,
    buy_and_hold_return: f64,
    random_sharpe: Spread,
    random_return: Spread,
}

/// The validation and test splits (those of two bars or more) and equal-weight
/// buy-and-hold on each: what every trained model is compared with.
pub(crate) struct HeldOut {
    splits: Vec<(&'static str, std::ops::Range<usize>)>,
    buy_and_hold: Vec<metrics::Metrics>,
}

impl HeldOut {
    pub(crate) fn new(cfg: &Config, ds: &Dataset) -> anyhow::Result<Self> {
        let bpy = cfg.data.interval.bars_per_year();
        let splits: Vec<(&'static str, std::ops::Range<usize>)> =
            [("validation", SplitPart::Validation), ("test", SplitPart::Test)]
                .into_iter()
                .map(|(name, part)| (name, ds.range(part)))
                .filter(|(_, r)| r.len() >= 2)
                .collect();
        let mut buy_and_hold = Vec::new();
        for (split, range) in &splits {
            let r = replay_policy(&cfg.environment, ds.market.clone(), range.clone(), &BuiltIn::BuyAndHold)
                .map_err(|e| BadArgument(format!("{split} split: {e}")))?;
            buy_and_hold.push(metrics::compute(&r, bpy));
        }
        Ok(Self { splits, buy_and_hold })
    }

    /// Replays the run's best model (its last checkpoint when no evaluation ran) on each
    /// split, beside the random policy seeded with the run's seed.
    pub(crate) fn evaluate(
        &self,
        cfg: &Config,
        ds: &Dataset,
        paths: &RunPaths,
        summary: &TrainSummary,
        name: &str,
    ) -> anyhow::Result<Vec<SplitOutcome>> {
        let device = ploutos::ppo::parse_device(&cfg.training.device).map_err(|e| BadArgument(e.to_string()))?;
        let bpy = cfg.data.interval.bars_per_year();
        let seed = cfg.training.seed;
        let best = checkpoint::best_dir(&paths.models);
        let dir = if best.join(checkpoint::MODEL_FILE).is_file() { best } else { summary.last_checkpoint.clone() };
        let mut policy = Policy::load(&dir, device).with_context(|| format!("loading {}", dir.display()))?;
        policy.set_market(&ds.market)?;
        let label = format!("{name}/{}", dir.file_name().map_or(String::new(), |f| f.to_string_lossy().into()));
        let mut out = Vec::new();
        for ((split, range), bh) in self.splits.iter().zip(&self.buy_and_hold) {
            let m = metrics::compute(
                &replay_agent(&cfg.environment, ds.market.clone(), range.clone(), &policy, label.clone(), true)?,
                bpy,
            );
            let random = metrics::compute(
                &replay_policy(&cfg.environment, ds.market.clone(), range.clone(), &BuiltIn::Random { seed })?,
                bpy,
            );
            out.push(SplitOutcome {
                seed,
                split: (*split).to_string(),
                model: label.clone(),
                sharpe: m.sharpe,
                total_return: m.total_return,
                max_drawdown: m.max_drawdown,
                turnover_per_year: m.turnover * bpy / m.bars.max(1) as f64,
                trades: m.trades,
                buy_and_hold_sharpe: bh.sharpe,
                buy_and_hold_return: bh.total_return,
                random_sharpe: random.sharpe,
                random_return: random.total_return,
            });
        }
        Ok(out)
    }
}

/// Trains seeds `training.seed .. + n` of `cfg` and reports them (see the module docs).
pub fn run(cfg: &Config, run_name: &str, n: u32, force: bool, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    if cfg.training.seed.checked_add(u64::from(n).saturating_sub(1)).is_none() {
        return Err(super::BadArgument(format!(
            "--seeds {n} from training.seed {} would wrap past the largest seed: start from a smaller seed",
            cfg.training.seed
        ))
        .into());
    }
    let seeds: Vec<u64> = (0..u64::from(n)).map(|i| cfg.training.seed + i).collect();
    let runs: Vec<(String, RunPaths)> = seeds
        .iter()
        .map(|s| {
            let name = format!("{run_name}/seed_{s}");
            let paths = run_paths(&name);
            (name, paths)
        })
        .collect();
    let configs: Vec<Config> = seeds
        .iter()
        .map(|&seed| {
            let mut c = cfg.clone();
            c.training.seed = seed;
            c.training.run_name = Some(format!("{run_name}.seed_{seed}"));
            c
        })
        .collect();
    // --force clears the seeds' earlier outputs when the first seed's run is set up (see
    // `Begin::Fresh`), so that bad data or a run too big for the machine loses nothing.
    let starts = if force {
        vec![Start::Fresh; runs.len()]
    } else {
        runs.iter().zip(&configs).map(|((name, paths), c)| start_of(name, paths, c)).collect::<Result<_, _>>()?
    };
    let root = run_paths(run_name);
    init_log(&root.logs)?;
    let ds = load_dataset(cfg, None)?;
    let held_out = HeldOut::new(cfg, &ds)?;
    let mut results = Vec::new();
    for (((&seed, (name, paths)), c), start) in seeds.iter().zip(&runs).zip(&configs).zip(starts) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let summary = match start {
            Start::Done(summary) => {
                eprintln!("ploutos: seed {seed} finished in an earlier run: evaluated again, not trained");
                summary
            }
            Start::Resume(ckpt) => train_one(c, &ds, paths, name, Begin::Resume(&ckpt), stop)?,
            Start::Fresh => {
                // Every seed's earlier outputs go with the first seed's set-up, so that a
                // --force run stopped after it continues without --force.
                let replace = || runs.iter().try_for_each(|(name, paths)| clear_or_refuse(paths, name, true));
                let first = force && seed == seeds[0];
                let begin = Begin::Fresh { replace: first.then_some(&replace as &dyn Fn() -> anyhow::Result<()>) };
                train_one(c, &ds, paths, name, begin, stop)?
            }
        };
        if summary.interrupted {
            // Without a run name of its own the run is named after its start time: the same
            // command would start another.
            let again = match cfg.training.run_name {
                Some(_) => "the same command continues".to_string(),
                None => format!("the same command with --set training.run_name={run_name} continues"),
            };
            eprintln!("ploutos: seed {seed} was stopped; the summary covers the seeds that finished ({again})");
            break;
        }
        results.extend(held_out.evaluate(c, &ds, paths, &summary, name)?);
    }
    if results.is_empty() {
        eprintln!("ploutos: no seed finished; nothing to summarize");
        return Ok(());
    }

    let summaries: Vec<SplitSummary> = held_out
        .splits
        .iter()
        .zip(&held_out.buy_and_hold)
        .map(|((split, _), bh)| {
            let rows: Vec<&SplitOutcome> = results.iter().filter(|r| r.split == *split).collect();
            SplitSummary {
                split,
                seeds: rows.len(),
                sharpe: Spread::of(rows.iter().map(|r| r.sharpe)),
                total_return: Spread::of(rows.iter().map(|r| r.total_return)),
                max_drawdown: Spread::of(rows.iter().map(|r| r.max_drawdown)),
                turnover_per_year: Spread::of(rows.iter().map(|r| r.turnover_per_year)),
                beat_buy_and_hold: rows.iter().filter(|r| r.sharpe > bh.sharpe).count(),
                buy_and_hold_sharpe: bh.sharpe,
                buy_and_hold_return: bh.total_return,
                random_sharpe: Spread::of(rows.iter().map(|r| r.random_sharpe)),
                random_return: Spread::of(rows.iter().map(|r| r.random_return)),
            }
        })
        .collect();
    write_outputs(&root.models, &results, &summaries)?;
    print_table(&summaries);
    eprintln!("ploutos: per-seed results in {}", root.models.join("seeds.csv").display());
    Ok(())
}

fn write_outputs(dir: &std::path::Path, results: &[SplitOutcome], summaries: &[SplitSummary]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "summary": summaries, "seeds": results }))?;
    let path = dir.join("seeds.json");
    ploutos::fsutil::write_atomic(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in results {
        w.serialize(r)?;
    }
    let path = dir.join("seeds.csv");
    ploutos::fsutil::write_atomic(&path, &w.into_inner()?).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn print_table(summaries: &[SplitSummary]) {
    let pct = |x: f64| format!("{:+.1}%", 100.0 * x);
    for s in summaries {
        println!(
            "{} ({} seeds): sharpe {:.2} [{:.2}, {:.2}], return {} [{}, {}], max drawdown {} [{}, {}], turnover {:.1}x/year [{:.1}, {:.1}]; beats buy-and-hold's sharpe in {}/{} | buy-and-hold sharpe {:.2}, return {} | random sharpe {:.2}, return {}",
            s.split,
            s.seeds,
            s.sharpe.median,
            s.sharpe.min,
            s.sharpe.max,
            pct(s.total_return.median),
            pct(s.total_return.min),
            pct(s.total_return.max),
            pct(s.max_drawdown.median),
            pct(s.max_drawdown.min),
            pct(s.max_drawdown.max),
            s.turnover_per_year.median,
            s.turnover_per_year.min,
            s.turnover_per_year.max,
            s.beat_buy_and_hold,
            s.seeds,
            s.buy_and_hold_sharpe,
            pct(s.buy_and_hold_return),
            s.random_sharpe.median,
            pct(s.random_return.median),
        );
    }
}
