//! Run monitoring: scalars per iteration, written to a TensorBoard event file and to
//! `metrics.csv` in the run directory.
//!
//! A run directory `runs/<run>/` holds
//!
//! ```text
//! runs/<run>/events.out.tfevents.<unix_secs>.<hostname>.<pid>.<n>   TensorBoard event file
//! runs/<run>/metrics.csv                                            step + one column per tag
//! ```
//!
//! Both are plain local files: writing them needs no network and no Python.
//!
//! # Viewing
//!
//! - TensorBoard (`pip install tensorboard`): `tensorboard --logdir runs/`, then open
//!   <http://localhost:6006>. Each run directory shows up as one run; the page refreshes
//!   as the learner flushes each iteration.
//! - Weights & Biases, after the fact and from any machine with network access:
//!   `wandb sync --sync-tensorboard runs/<run>` uploads the event file as a W&B run.
//! - Anything else: `metrics.csv`, e.g. `pandas.read_csv("runs/<run>/metrics.csv")`.
//!
//! # Tags
//!
//! Tags are free-form `section/name` strings; [`LEARNER_TAGS`] lists the ones the PPO
//! learner logs, in the order it uses for the CSV columns.

mod csv;
mod tensorboard;

use std::io;
use std::path::{Path, PathBuf};

pub use self::csv::MetricsCsv;
pub use self::tensorboard::TensorBoardWriter;

/// The tags the PPO learner logs each iteration (`eval/*` only on evaluation iterations).
pub const LEARNER_TAGS: [&str; 21] = [
    "train/policy_loss",
    "train/value_loss",
    "train/entropy",
    "train/approx_kl",
    "train/clip_fraction",
    "train/explained_variance",
    "train/learning_rate",
    "time/fps",
    "rollout/ep_reward_mean",
    "rollout/equity",
    "rollout/total_return",
    "rollout/total_trades",
    "rollout/masked_actions",
    "eval/mean_reward",
    "eval/sharpe",
    "eval/total_return",
    "eval/max_drawdown",
    "eval/buy_and_hold_sharpe",
    "eval/buy_and_hold_return",
    "eval/random_sharpe",
    "eval/random_return",
];

/// Writes each iteration's scalars to both a TensorBoard event file and `metrics.csv`.
#[derive(Debug)]
pub struct RunLogger {
    tb: TensorBoardWriter,
    csv: MetricsCsv,
    dir: PathBuf,
}

impl RunLogger {
    /// Creates `dir` (usually `runs/<run>`) with a new event file, and opens
    /// `dir/metrics.csv` with `columns` after `step` (see [`MetricsCsv::create`]).
    ///
    /// # Errors
    ///
    /// Any error of [`TensorBoardWriter::create`] or [`MetricsCsv::create`].
    pub fn create(dir: &Path, columns: &[&str]) -> io::Result<Self> {
        let csv = MetricsCsv::create(dir, columns)?;
        let tb = TensorBoardWriter::create(dir)?;
        Ok(Self { tb, csv, dir: dir.to_path_buf() })
    }

    /// Reopens the writers of a run resumed from its checkpoint at `step`: the rows of
    /// `metrics.csv` past `step` are removed (a crash after the checkpoint had logged them,
    /// the resumed run logs them again), and the new event file starts with a restart mark
    /// at `step + 1` so that TensorBoard drops the earlier files' points from there on.
    ///
    /// # Errors
    ///
    /// Any error of [`RunLogger::create`], or of rewriting `metrics.csv`.
    pub fn resume(dir: &Path, columns: &[&str], step: u64) -> io::Result<Self> {
        MetricsCsv::truncate_after(dir, step)?;
        let mut logger = Self::create(dir, columns)?;
        logger.tb.restart_at(step + 1)?;
        Ok(logger)
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Logs `scalars` at `step`: all of them to TensorBoard as one event, the ones that are
    /// CSV columns as one row; then flushes both, so viewers see the iteration at once.
    ///
    /// # Errors
    ///
    /// Any I/O error writing or flushing either file.
    pub fn log(&mut self, step: u64, scalars: &[(&str, f64)]) -> io::Result<()> {
        self.tb.scalars(step, scalars)?;
        self.tb.flush()?;
        self.csv.append(step, scalars)
    }

    /// Flushes the event file (CSV rows are flushed as they are written).
    ///
    /// # Errors
    ///
    /// Any I/O error from the flush.
    pub fn flush(&mut self) -> io::Result<()> {
        self.tb.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn logs_to_both_sinks() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("r1");
        let mut logger = RunLogger::create(&run, &LEARNER_TAGS).unwrap();
        assert_eq!(logger.dir(), run);
        logger.log(0, &[("train/policy_loss", 0.5), ("time/fps", 100.0)]).unwrap();
        logger.log(2048, &[("eval/sharpe", 1.25), ("custom/extra", 7.0)]).unwrap();

        let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], format!("step,{}", LEARNER_TAGS.join(",")));
        let row = |step: u64, cells: &[(&str, &str)]| {
            let values = LEARNER_TAGS.map(|t| cells.iter().find(|(n, _)| *n == t).map_or("", |(_, v)| *v));
            format!("{step},{}", values.join(","))
        };
        assert_eq!(lines[1], row(0, &[("train/policy_loss", "0.5"), ("time/fps", "100")]));
        assert_eq!(lines[2], row(2048, &[("eval/sharpe", "1.25")]));
        assert_eq!(lines[1], "0,0.5,,,,,,,100,,,,,,,,,,,,,", "the row's layout, written out once");

        let events: Vec<_> = fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("events.out.tfevents."))
            .collect();
        assert_eq!(events.len(), 1);
        // Without a flush of our own, the event file already holds all three records, the
        // extra tag included.
        let bytes = fs::read(run.join(&events[0])).unwrap();
        assert!(bytes.windows(12).any(|w| w == b"custom/extra"));
        assert!(bytes.windows(11).any(|w| w == b"eval/sharpe"));
    }
}
