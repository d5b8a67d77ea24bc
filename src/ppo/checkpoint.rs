//! Checkpoint directories: `models/<run>/checkpoints/step_<N>/`, `best/` and `final/`.
//!
//! Each holds
//!
//! - `model.safetensors`: the `VarStore` (`actor.*`, `critic.*`);
//! - `optimizer.safetensors`: Adam's moments `m.<var>`, `v.<var>` and its `step` count;
//! - `normalizer.safetensors`: observation `obs.{mean,var,count}` (f64) and reward
//!   `ret.{mean,var,count}`;
//! - `config.ron`: the run's [`Config::to_ron`](crate::config::Config::to_ron);
//! - `state.ron`: [`CheckpointState`] (timesteps, iteration, seed, RNG position, best
//!   metric, network shape).
//!
//! A directory is written as `<dir>.tmp-<pid>` and renamed into place, so a reader (or a
//! resume after a crash) never sees half a checkpoint.

use super::PpoError;
use crate::config::{Activation, ObservationLayout};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the layout above; bumped when a file changes meaning.
pub const FORMAT: u32 = 1;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const NORMALIZER_FILE: &str = "normalizer.safetensors";
pub const CONFIG_FILE: &str = "config.ron";
pub const STATE_FILE: &str = "state.ron";
/// The training split's feature standardization, copied into every checkpoint so that each
/// one backtests and resumes on its own.
pub const SCALER_FILE: &str = "feature_scaler.ron";

/// The network's shape and the observation it reads: enough to rebuild the model without
/// the env that trained it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Width of the env's observation rows.
    pub obs_dim: usize,
    /// Width of the network input: `obs_dim` (materialized) or state + d × F (index).
    pub input_dim: usize,
    pub n_tickers: usize,
    /// Observation features per ticker.
    pub n_features: usize,
    pub layout: ObservationLayout,
    /// Hidden widths of each of the policy and value MLPs.
    pub net_arch: Vec<usize>,
    pub activation: Activation,
    /// Actions per ticker: 3 for the seed's {hold, buy, sell}, the number of levels with
    /// target-position actions (3 in checkpoints written before those existed).
    #[serde(default = "seed_actions")]
    pub n_actions: usize,
}

fn seed_actions() -> usize {
    3
}

/// `state.ron`: where the run stood when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: u32,
    /// Env steps so far, summed over envs.
    pub timesteps: u64,
    /// Iterations (rollout + update) so far.
    pub iteration: u64,
    /// Master seed of the run.
    pub seed: u64,
    /// Word position of the learner's ChaCha8 stream (action sampling, minibatch shuffles).
    pub rng_word_pos: u64,
    /// Best validation metric so far and its name.
    pub best_metric: Option<f64>,
    pub best_metric_name: String,
    /// Observations were normalized with the saved statistics.
    pub normalize_obs: bool,
    /// Clip of normalized observations.
    pub obs_clip: f64,
    pub model: ModelSpec,
    /// The policy was trained with invalid-action masking: it acts on masked logits, with
    /// masks its env recomputes (false in checkpoints written before masking existed).
    #[serde(default)]
    pub action_masking: bool,
}

impl ModelSpec {
    /// What differs from `other`, field by field, as `name saved vs here` (empty when
    /// nothing does).
    pub fn differences(&self, here: &ModelSpec) -> String {
        let mut out = Vec::new();
        let mut field = |name: &str, saved: String, now: String| {
            if saved != now {
                out.push(format!("{name} {saved} in the checkpoint, {now} here"));
            }
        };
        field("net_arch", format!("{:?}", self.net_arch), format!("{:?}", here.net_arch));
        field("activation", format!("{:?}", self.activation), format!("{:?}", here.activation));
        field("observation_layout", format!("{:?}", self.layout), format!("{:?}", here.layout));
        field("tickers", self.n_tickers.to_string(), here.n_tickers.to_string());
        field("features per ticker", self.n_features.to_string(), here.n_features.to_string());
        field("observation width", self.obs_dim.to_string(), here.obs_dim.to_string());
        field("network input width", self.input_dim.to_string(), here.input_dim.to_string());
        field("actions per ticker", self.n_actions.to_string(), here.n_actions.to_string());
        out.join("; ")
    }
}

/// The error for a checkpoint file that exists but cannot be read (truncated, not a
/// safetensors file): the file, and the first line of libtorch's message (the rest is a
/// C++ stack trace).
pub fn unreadable(path: &Path, e: &tch::TchError) -> PpoError {
    if !path.exists() {
        // A file the checkpoint should have (copied without it, or deleted).
        return PpoError::Checkpoint { path: path.to_path_buf(), message: "is missing".into() };
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    PpoError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot be read (truncated, or not a checkpoint file): {first}"),
    }
}

/// The error for a checkpoint file that cannot be written: the operating system's error
/// with the file's path (a full disk reads "No space left on device"), which libtorch and
/// safetensors report only in their debug form (`IoError(Os { code: 28, .. })`).
pub fn unwritable(path: &Path, e: &tch::TchError) -> PpoError {
    let text = e.to_string();
    let code = text.split("Os { code: ").nth(1).and_then(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<i32>().ok()
    });
    match code {
        Some(code) => PpoError::File { path: path.to_path_buf(), source: std::io::Error::from_raw_os_error(code) },
        None => PpoError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("cannot be written: {}", text.lines().next().unwrap_or("").trim()),
        },
    }
}

/// The run folder (`models/<run>`) a model or checkpoint folder belongs to:
/// `models/<run>/final`, `models/<run>/best` and `models/<run>/checkpoints/step_N` all
/// give `models/<run>`; a folder that is not itself a checkpoint is taken as the run folder.
pub fn run_root(dir: &Path) -> PathBuf {
    if !dir.join(STATE_FILE).is_file() {
        return dir.to_path_buf();
    }
    let Some(parent) = dir.parent() else { return dir.to_path_buf() };
    if parent.file_name().is_some_and(|n| n == "checkpoints") {
        parent.parent().map_or(parent.to_path_buf(), Path::to_path_buf)
    } else {
        parent.to_path_buf()
    }
}

/// `models/<run>/checkpoints/step_<N>`.
pub fn step_dir(models: &Path, timesteps: u64) -> PathBuf {
    models.join("checkpoints").join(format!("step_{timesteps}"))
}

/// `models/<run>/best`.
pub fn best_dir(models: &Path) -> PathBuf {
    models.join("best")
}

/// `models/<run>/final`.
pub fn final_dir(models: &Path) -> PathBuf {
    models.join("final")
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> PpoError + '_ {
    move |source| PpoError::File { path: path.to_path_buf(), source }
}

/// Writes a checkpoint directory atomically: `fill` writes into `<dir>.tmp-<pid>`, which
/// then replaces `dir` by rename (an existing `dir` is moved aside first and removed
/// after, since a rename cannot replace a non-empty directory).
///
/// # Errors
/// [`PpoError::File`] for any file-system failure, or whatever `fill` returns; the
/// temporary directory is removed on failure.
pub fn write_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<(), PpoError>) -> Result<(), PpoError> {
    let name = dir
        .file_name()
        .ok_or_else(|| PpoError::Checkpoint { path: dir.to_path_buf(), message: "has no directory name".into() })?
        .to_string_lossy()
        .into_owned();
    let parent = dir.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent).map_err(file_err(parent))?;
    let pid = std::process::id();
    let tmp = parent.join(format!("{name}.tmp-{pid}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(file_err(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(file_err(&tmp))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!("{name}.old-{pid}"));
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(file_err(&old))?;
        }
        std::fs::rename(dir, &old).map_err(file_err(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(file_err(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(file_err(&old))?;
    }
    // What a process killed in the middle of an earlier write left (`best.old-<pid>`,
    // `step_N.tmp-<pid>`): `dir` now holds a complete checkpoint, so they go.
    if let Ok(entries) = std::fs::read_dir(parent) {
        let (stale_old, stale_tmp) = (format!("{name}.old-"), format!("{name}.tmp-"));
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if file.starts_with(&stale_old) || file.starts_with(&stale_tmp) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Writes `state.ron`.
///
/// # Errors
/// [`PpoError::File`] when the file cannot be written.
pub fn write_state(dir: &Path, state: &CheckpointState) -> Result<(), PpoError> {
    let text = ron::ser::to_string_pretty(state, ron::ser::PrettyConfig::new().struct_names(false))
        .map_err(|e| PpoError::Checkpoint { path: dir.to_path_buf(), message: e.to_string() })?;
    let path = dir.join(STATE_FILE);
    std::fs::write(&path, text).map_err(file_err(&path))
}

/// Reads `state.ron` of a checkpoint directory.
///
/// # Errors
/// [`PpoError::File`] when missing, [`PpoError::Checkpoint`] when unreadable or of another
/// format version.
pub fn read_state(dir: &Path) -> Result<CheckpointState, PpoError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(file_err(&path))?;
    let state: CheckpointState =
        ron::from_str(&text).map_err(|e| PpoError::Checkpoint { path: path.clone(), message: e.to_string() })?;
    if state.format != FORMAT {
        return Err(PpoError::Checkpoint {
            path,
            message: format!("format {} is not the supported {FORMAT}", state.format),
        });
    }
    Ok(state)
}

/// Reads `config.ron` of a checkpoint directory (not re-validated: it was valid when saved).
///
/// # Errors
/// [`PpoError::File`] when missing, [`PpoError::Checkpoint`] when it does not parse.
pub fn read_config(dir: &Path) -> Result<crate::config::Config, PpoError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(file_err(&path))?;
    crate::config::Config::from_ron_str(&text, &path.display().to_string())
        .map_err(|e| PpoError::Checkpoint { path, message: e.to_string() })
}

/// The checkpoint to resume from: `dir` itself when it holds a `state.ron`, else the one
/// with the most timesteps among `dir/checkpoints/step_*/` and `dir/final/` (`best/` is a
/// model to keep, not a place to continue from).
///
/// # Errors
/// [`PpoError::NoCheckpoint`] when there is none, [`PpoError::Checkpoint`] when one of them
/// cannot be read.
pub fn latest(dir: &Path) -> Result<PathBuf, PpoError> {
    if dir.join(STATE_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("checkpoints")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("step_") && !name.contains(".tmp-") && !name.contains(".old-") {
                candidates.push(e.path());
            }
        }
    }
    candidates.push(final_dir(dir));
    let mut best: Option<(u64, PathBuf)> = None;
    for c in candidates {
        if !c.join(STATE_FILE).is_file() {
            continue;
        }
        let ts = read_state(&c)?.timesteps;
        if best.as_ref().is_none_or(|(b, _)| ts > *b) {
            best = Some((ts, c));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| PpoError::NoCheckpoint { path: dir.to_path_buf() })
}

/// Removes all but the newest `keep` scheduled checkpoints (`checkpoints/step_<N>/`, by
/// N); `keep` = 0 keeps them all. `best/` and `final/` are never touched. A checkpoint
/// that cannot be removed is reported and kept: losing disk space must not stop a run.
pub fn prune(models: &Path, keep: usize) {
    if keep == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(models.join("checkpoints")) else { return };
    let mut steps: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("step_")?.parse::<u64>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    steps.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
    for (_, dir) in steps.into_iter().skip(keep) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("could not remove old checkpoint {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_plainly() {
        // As the safetensors error prints it.
        let e = tch::TchError::Torch(
            "safetensors error m/model.safetensors: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })".into(),
        );
        let msg = unwritable(Path::new("m/model.safetensors"), &e).to_string();
        assert_eq!(msg, "m/model.safetensors: No space left on device (os error 28)");
        let other = unwritable(Path::new("x"), &tch::TchError::Torch("bad\nstack".into())).to_string();
        assert_eq!(other, "checkpoint x: cannot be written: Internal torch error: bad");
    }

    #[test]
    fn prune_keeps_the_newest_scheduled_checkpoints_only() {
        let root = tempfile::tempdir().unwrap();
        for n in [100u64, 2000, 300, 40] {
            std::fs::create_dir_all(step_dir(root.path(), n)).unwrap();
        }
        std::fs::create_dir_all(final_dir(root.path())).unwrap();
        prune(root.path(), 2);
        let mut left: Vec<_> = std::fs::read_dir(root.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["step_2000", "step_300"]);
        assert!(final_dir(root.path()).is_dir());
        prune(root.path(), 0);
        assert_eq!(std::fs::read_dir(root.path().join("checkpoints")).unwrap().count(), 2);
    }

    /// A model spec written before target positions (no `n_actions`) reads as the seed's
    /// three actions, and a different count is named when specs are compared.
    #[test]
    fn specs_without_n_actions_read_as_three() {
        let spec = ModelSpec {
            obs_dim: 10,
            input_dim: 10,
            n_tickers: 2,
            n_features: 3,
            layout: crate::config::ObservationLayout::Materialized,
            net_arch: vec![8],
            activation: crate::config::Activation::Tanh,
            n_actions: 5,
        };
        let text = ron::ser::to_string(&spec).unwrap();
        let old = text.replace(",n_actions:5", "");
        assert_ne!(old, text, "{text}");
        let read: ModelSpec = ron::from_str(&old).unwrap();
        assert_eq!(read, ModelSpec { n_actions: 3, ..spec.clone() });
        assert_eq!(read.differences(&spec), "actions per ticker 3 in the checkpoint, 5 here");
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("final");
        write_atomic(&dir, |d| Ok(std::fs::write(d.join("a"), "1")?)).unwrap();
        write_atomic(&dir, |d| Ok(std::fs::write(d.join("b"), "2")?)).unwrap();
        assert!(!dir.join("a").exists() && dir.join("b").exists());
        let failed = write_atomic(&dir, |_| Err(PpoError::Setup("no".into())));
        assert!(failed.is_err());
        assert!(dir.join("b").exists());
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // What a process killed mid-write left goes with the next write; another folder's stays.
        for stale in ["final.old-4242", "final.tmp-4243", "best.old-4242"] {
            std::fs::create_dir(root.path().join(stale)).unwrap();
        }
        write_atomic(&dir, |d| Ok(std::fs::write(d.join("c"), "3")?)).unwrap();
        let mut names: Vec<_> =
            std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["best.old-4242", "final"]);
    }
}
