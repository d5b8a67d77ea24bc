//! The command line, as clap derive structs.

use clap::{Args, Parser, Subcommand};
use ploutos::config::Config;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Realistic, massively parallel stock-trading simulations and a PPO learner.
#[derive(Debug, Parser)]
#[command(name = "ploutos", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `std::env::args`. On `--help`/`--version` prints clap's text and returns
    /// exit code 0; on bad arguments prints one `ploutos: error:` line, as every other
    /// user mistake gets (clap's usage block is what `--help` is for), and returns 2.
    pub fn parse_args() -> Result<Self, ExitCode> {
        Self::try_parse().map_err(|e| {
            // `ploutos` alone gets the command list, as `--help`.
            let listing = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            if e.use_stderr() && !listing {
                // A closed stderr is no reason to panic.
                let _ = writeln!(std::io::stderr(), "ploutos: error: {}", usage_error_line(&e.render().to_string()));
            } else {
                let _ = e.print();
            }
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        })
    }
}

/// Clap's rendered usage error as one line: the message with its details and tips, without
/// the usage block, and clap's closing "For more information, try '--help'" in brackets.
fn usage_error_line(rendered: &str) -> String {
    let mut line = String::new();
    let mut usage = false;
    for text in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(more) = text.strip_prefix("For more information, ") {
            return format!("{line} ({})", more.trim_end_matches('.'));
        }
        usage |= text.starts_with("Usage:");
        if usage {
            continue;
        }
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(text.strip_prefix("error: ").unwrap_or(text));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(args: &[&str]) -> String {
        let e = Cli::try_parse_from(args).expect_err("a usage error");
        usage_error_line(&e.render().to_string())
    }

    #[test]
    fn usage_errors_are_one_line_with_their_details() {
        let conflict = error_of(&["ploutos", "trade", "--live", "--paper", "--model", "m", "--broker", "alpaca"]);
        assert!(conflict.starts_with("the argument '--live' cannot be used with '--paper'"), "{conflict}");
        let unknown = error_of(&["ploutos", "train", "--confi", "x.ron"]);
        assert_eq!(
            unknown,
            "unexpected argument '--confi' found; tip: a similar argument exists: '--config' (try '--help')"
        );
        let missing = error_of(&["ploutos", "features"]);
        assert!(missing.starts_with("the following required arguments were not provided: --"), "{missing}");
        for line in [conflict, unknown, missing] {
            assert!(!line.contains('\n') && !line.contains("Usage") && line.ends_with("(try '--help')"), "{line}");
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a PPO agent on the configured market (default: the built-in synthetic one).
    Train(TrainArgs),
    /// Run a model or a built-in/replayed policy over a period and write a report.
    Backtest(BacktestArgs),
    /// Trade a model bar by bar through a broker: decide at each close, send the orders at
    /// the next open, with safety limits and a journal (`--broker replay`: over CSV bars).
    Trade(TradeArgs),
    /// Compute the 55 raw features of one CSV file of bars.
    Features(FeaturesArgs),
    /// Write the built-in synthetic market as one CSV file per ticker.
    GenerateData(GenerateDataArgs),
    /// Measure env-steps per second (or training throughput with --train).
    ///
    /// Without --config it runs the built-in defaults (the seed's account and rules, which
    /// the Python baselines replicate), not config/default.ron.
    Bench(BenchArgs),
    /// Train on a rolling window, test on the next, roll forward; report out-of-sample.
    WalkForward(WalkForwardArgs),
    /// Run a sweep of seeds, hyper-parameters and folds (SPEC.ron), on this machine or on a
    /// Ray cluster, with early stopping (ASHA) and a leaderboard.
    Sweep(SweepArgs),
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep spec (RON): base config, keys to vary, seeds, folds, metric, ASHA.
    #[arg(value_name = "SPEC.ron")]
    pub spec: PathBuf,
    /// Where trials run: `local` (this machine) or `ray` (a Ray cluster, see --address).
    #[arg(long, default_value = "local", value_parser = ["local", "ray"])]
    pub backend: String,
    /// Ray: the cluster's address, e.g. `127.0.0.1:6379` (as `ray start --head` prints),
    /// or `auto` for the cluster this machine is a node of.
    #[arg(long, value_name = "ADDR", required_if_eq("backend", "ray"))]
    pub address: Option<String>,
    /// Local: trials at once [default: the cores ÷ the spec's trial_threads, else one per
    /// core]. The cores are split between them (`training.threads`), so that they do not
    /// oversubscribe the machine.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub parallel: Option<u32>,
    /// Output folder [default: `sweeps/<name>`]. Run the same command again to resume an
    /// interrupted sweep: finished trials are not rerun.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Start over: remove the output folder of an earlier sweep of the same name.
    #[arg(long)]
    pub force: bool,
    /// When resuming, also rerun the trials that failed.
    #[arg(long)]
    pub retry_failed: bool,
    /// Print the trials' ids, one per line in expansion order, and exit (e.g. to size a
    /// Slurm job array).
    #[arg(long, conflicts_with_all = ["only", "force"])]
    pub list: bool,
    /// Run this one trial only (its index in `--list`'s order, e.g. `$SLURM_ARRAY_TASK_ID`,
    /// or its id) with every core unless the spec's trial_threads says otherwise; run the
    /// sweep once more without --only afterwards for the leaderboard.
    #[arg(long, value_name = "INDEX|ID", conflicts_with_all = ["backend", "force"])]
    pub only: Option<String>,
    /// Ray: the Python that runs the driver (with `ray` installed) [default: .venv/bin/python
    /// when present, else python3].
    #[arg(long, value_name = "FILE")]
    pub python: Option<PathBuf>,
    /// Ray: the path of the `ploutos` binary on the cluster's nodes [default: this binary's
    /// path, for a cluster on this machine or a shared filesystem].
    #[arg(long, value_name = "FILE")]
    pub ray_binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WalkForwardArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of folds (test windows).
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    pub folds: usize,
    /// Trading days in each training window.
    #[arg(long, default_value_t = 504, allow_negative_numbers = true)]
    pub train_days: usize,
    /// Trading days in each test window (also the step between folds).
    #[arg(long, default_value_t = 126, allow_negative_numbers = true)]
    pub test_days: usize,
    /// Output folder (default: `reports/<run>`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the report in `--out` and the folds' folders (`fold_N` under
    /// `models/<run>`, `runs/<run>`, `logs/<run>`) of an earlier walk-forward of this run
    /// name instead of refusing.
    #[arg(long)]
    pub force: bool,
}

/// Options every subcommand shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// RON config file; keys it omits take their documented defaults
    /// [default: config/default.ron when present, else the built-in defaults].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config key, e.g. `--set training.gamma=0.99` or
    /// `--set training.net_arch=[64,64]`; repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl CommonArgs {
    /// Loads and validates the config with the overrides applied.
    pub fn load(&self) -> anyhow::Result<Config> {
        super::load_config(self.config.as_deref(), &self.overrides)
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Continue the run in this model folder (`models/<run>`) from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Replace the outputs of an earlier run of the same name (`models/`, `runs/`, `logs/`)
    /// instead of refusing to start.
    #[arg(long)]
    pub force: bool,
    /// Train N runs with seeds training.seed, +1, …, +N−1 (in `models/<run>/seed_<S>`), then
    /// report the median and range of their validation and test metrics beside equal-weight
    /// buy-and-hold and the random policy (`models/<run>/seeds.json`, `seeds.csv`).
    #[arg(long, value_name = "N", conflicts_with = "resume", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub seeds: Option<u32>,
    /// Write this run into DIR (`DIR/model`, `DIR/runs`, `DIR/logs`) instead of
    /// `models/<run>`, `runs/<run>`, `logs/<run>`, and when it ends replay its model on the
    /// validation and test splits beside the baselines into `DIR/result.json` (what a sweep
    /// runs for each trial).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["resume", "seeds"])]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Model folder(s) to evaluate (`models/<run>/best`); repeatable.
    #[arg(long, value_name = "DIR")]
    pub model: Vec<PathBuf>,
    /// Built-in policy (`buy-and-hold`, `flat`, `random`) or a CSV of per-bar actions;
    /// repeatable.
    #[arg(long, value_name = "POLICY")]
    pub policy: Vec<String>,
    /// Folder of `<TICKER>.csv` files instead of the config's data source; a replay covers
    /// the whole files.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which split to run on when no --data is given: train, validation, test or all
    /// (with --data, whose files are replayed whole, --from and --to choose the period).
    #[arg(long, default_value = "test", conflicts_with = "data")]
    pub split: String,
    /// First date (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last date (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Sample actions from the policy instead of taking the most likely one.
    #[arg(long)]
    pub stochastic: bool,
    /// Output folder (default: `reports/<name>-<time>`, never an existing one).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the report already in `--out` instead of refusing.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TradeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Model folder to trade (`models/<run>/best`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Broker: `replay` (bars of the data, filled by the env's own models, the account of
    /// record for tests) or `alpaca` (keys from APCA_API_KEY_ID and APCA_API_SECRET_KEY).
    #[arg(long, default_value = "replay", value_parser = ["replay", "alpaca"])]
    pub broker: String,
    /// Alpaca: trade the paper account (the default; the flag says it explicitly).
    #[arg(long, conflicts_with = "live")]
    pub paper: bool,
    /// Alpaca: trade the live account instead of the paper one.
    #[arg(long)]
    pub live: bool,
    /// Folder of `<TICKER>.csv` files to replay instead of the model's data source.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which split to replay when no --data is given: train, validation, test or all
    /// (with --data, whose files are replayed whole, --from and --to choose the period).
    #[arg(long, default_value = "test", conflicts_with = "data")]
    pub split: String,
    /// First date (inclusive) of the replayed period, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last date (inclusive) of the replayed period, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Decide and journal every order, send none.
    #[arg(long)]
    pub dry_run: bool,
    /// The run's name, part of every client order id [default: the model's run name].
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
    /// Output folder: `journal.jsonl`, `orders.csv` [default: `trades/<run>`].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Withhold any order worth more than this many dollars, and stop after its bar.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub max_order_notional: Option<f64>,
    /// Flatten and stop when equity falls this fraction under the previous close (0.05 = 5%).
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub max_daily_loss: Option<f64>,
    /// Stop before sending anything more as soon as this file exists.
    #[arg(long, value_name = "FILE")]
    pub kill_switch: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Input CSV of bars (`timestamp,open,high,low,close,volume`, yfinance or Alpaca headers).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Output CSV: `timestamp` plus the 55 raw features, one row per input bar.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Bar interval: `1d` or `1h` [default: inferred from the timestamps: dates, or times
    /// all at midnight, are `1d`; any other time of day is `1h`].
    #[arg(long, value_name = "1d|1h")]
    pub interval: Option<String>,
    /// Replace an `--output` file that exists instead of refusing (never the `--input`).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct GenerateDataArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output folder; one `<TICKER>.csv` per ticker.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace `<TICKER>.csv` files already in the output folder instead of refusing.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of parallel envs; repeatable (default: 1 64 1024 4096 16384).
    #[arg(long, value_name = "N")]
    pub envs: Vec<usize>,
    /// Observation layout: `materialized` or `index` (default: both).
    #[arg(long, value_name = "LAYOUT")]
    pub layout: Option<String>,
    /// Seconds measured per configuration (with --realism-cost: per env and repeat).
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Put splits and dividends on the bench market for the account (a dividend per ticker
    /// every quarter, a 2:1 split every two years), to measure what applying them costs.
    #[arg(long, conflicts_with = "train")]
    pub corporate_actions: bool,
    /// What the market realism costs: the configured env and the same env with every realism
    /// switch on (short selling and margin, target positions, a participation cap, FINRA's
    /// PDT equity, splits and dividends on the account), timed in alternation in runs of a
    /// quarter of a second, `--repeat` × `--seconds` seconds each; medians, and the median of
    /// the pairs' ratios (default: 4,096 envs).
    #[arg(long, conflicts_with_all = ["train", "corporate_actions"])]
    pub realism_cost: bool,
    /// Folder of the Python baselines (`numpy_env.py`, `sb3_ppo.py`)
    /// [default: ../shared/bench or shared/bench when present].
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// Measure PPO training throughput (rollout + update) instead of the bare env.
    #[arg(long)]
    pub train: bool,
    /// Hidden layers for --train, e.g. `64,64`.
    #[arg(long, value_name = "W,W,...", requires = "train")]
    pub net: Option<String>,
    /// Steps per env per rollout for --train.
    #[arg(long, requires = "train")]
    pub n_steps: Option<usize>,
    /// Minibatch size for --train.
    #[arg(long, requires = "train")]
    pub batch: Option<usize>,
    /// Epochs per update for --train.
    #[arg(long, requires = "train")]
    pub epochs: Option<usize>,
    /// Busy processes (one busy loop each) running beside the measurement, to see how
    /// throughput holds up on a shared machine (e.g. one per core).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub contention: u32,
    /// Runs of --train, each Ploutos then SB3 (interleaved, so that both see the same
    /// load); medians are reported. With --realism-cost: multiplies --seconds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// With --train: what action masking costs, from interleaved pairs of runs without and
    /// with `training.action_masking` (instead of the SB3 comparison).
    #[arg(long, requires = "train", conflicts_with = "contention")]
    pub masking_cost: bool,
    /// With --train: also profile two more iterations, phase by phase (rollout inference,
    /// env step, observations; the update's gathers, forward, backward, optimizer), each
    /// phase waiting for the device so that its kernels are charged to it.
    #[arg(long, requires = "train", conflicts_with_all = ["contention", "masking_cost"])]
    pub profile: bool,
}
