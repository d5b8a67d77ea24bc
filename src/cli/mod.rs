//! Argument parsing (clap) and dispatch to one module per subcommand.

mod args;
mod backtest;
mod bench;
mod features;
mod generate_data;
#[cfg(feature = "learner")]
mod seeds;
#[cfg(feature = "learner")]
mod sweep;
mod trade;
mod train;
#[cfg(feature = "learner")]
mod walk_forward;

pub use args::Cli;
use args::Command;

use ploutos::config::{Config, ConfigError};
use std::path::Path;

/// Installs the Ctrl-C handler of a long command (`train`, `sweep`): the first Ctrl-C sets
/// the returned flag and prints `stopping` (what the command does now), the second ends the
/// process at once with exit code 130.
#[cfg(feature = "learner")]
fn stop_on_ctrl_c(stopping: &'static str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // `_exit`, not `process::exit`: exit handlers and static destructors would run
            // beside libtorch's threads on the main thread (a crash). Checkpoints are written
            // to a temporary folder and renamed, so none is left half-written.
            // SAFETY: `_exit` ends the process at once; it is async-signal-safe and touches no
            // Rust state.
            unsafe { libc::_exit(130) };
        }
        eprintln!("\nploutos: {stopping} (Ctrl-C again to quit now)");
    });
    stop
}

/// A session that stopped before the end of its period (`ploutos trade`): exit 130 when
/// interrupted (Ctrl-C), 3 otherwise (a safety limit, a rejection, an order that did not
/// fill).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Stopped {
    pub message: String,
    pub interrupted: bool,
}

/// A bad command-line argument (as opposed to a bad config or data file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgument(pub String);

/// Whether `a` and `b` name the same file or folder however spelled (`./m`, a symlink):
/// their canonical paths when both exist, else the paths as given.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Refuses an output folder (`flag`'s) that cannot be written, before any work is done for
/// it: one that is a file, or under a folder that cannot be written (the nearest existing
/// one is tried with a file of its own, removed at once; nothing is created).
pub fn check_writable(dir: &Path, flag: &str) -> Result<(), BadArgument> {
    let bad = |why: String| BadArgument(format!("{flag} {}: {why}", dir.display()));
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => {
                existing = Path::new(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Err(bad(format!("{} is not a folder", existing.display())));
    }
    let probe = existing.join(format!(".ploutos-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| bad(format!("cannot write in {}: {e}", existing.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// True when the error was caused by the user's input and deserves exit code 2.
pub fn is_user_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<ConfigError>()
            || e.is::<BadArgument>()
            || e.is::<ploutos::market::DataError>()
            || e.is::<ploutos::backtest::PolicyError>()
            || e.is::<ploutos::EnvError>()
            || e.is::<ploutos::sweep::SpecError>()
            || e.is::<ploutos::trade::LiveError>()
            || matches!(
                e.downcast_ref::<ploutos::trade::TradeError>(),
                Some(ploutos::trade::TradeError::Mismatch { .. })
            )
            || checkpoint_error(e)
    })
}

/// A checkpoint the user pointed at that is missing, unreadable or does not fit.
#[cfg(feature = "learner")]
fn checkpoint_error(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<ploutos::ppo::PpoError>(),
        Some(
            ploutos::ppo::PpoError::Checkpoint { .. }
                | ploutos::ppo::PpoError::NoCheckpoint { .. }
                | ploutos::ppo::PpoError::TooBig(_)
        )
    )
}

#[cfg(not(feature = "learner"))]
fn checkpoint_error(_: &(dyn std::error::Error + 'static)) -> bool {
    false
}

/// Where `--config` points when it is not given.
pub(crate) const DEFAULT_CONFIG: &str = "config/default.ron";

/// Loads `--config` (else `config/default.ron` when present, else the built-in defaults)
/// and applies `--set` overrides.
pub fn load_config(path: Option<&Path>, overrides: &[String]) -> anyhow::Result<Config> {
    let default = Path::new(DEFAULT_CONFIG);
    let cfg = match path {
        Some(path) => Config::load(path, overrides)?,
        None if default.exists() => Config::load(default, overrides)?,
        None => builtin_config(overrides)?,
    };
    // A plugin's settings are read by the plugin, which a program of the user's own adds to
    // the env; this binary has none, so a key there (a misspelt name, or a config written
    // for that program) would be ignored without a word.
    if !cfg.environment.plugins.is_empty() {
        let names: Vec<&str> = cfg.environment.plugins.keys().map(String::as_str).collect();
        eprintln!(
            "ploutos: warning: environment.plugins {}: no plugin of the ploutos binary reads them (plugins are Rust code added to a program of your own: README, Writing a plugin)",
            names.join(", ")
        );
    }
    Ok(cfg)
}

/// The built-in defaults with `--set` overrides applied, validated.
pub fn builtin_config(overrides: &[String]) -> anyhow::Result<Config> {
    let cfg = Config::default().with_overrides(overrides).map_err(|e| e.located(None, overrides))?;
    cfg.validate().map_err(|e| e.located(None, overrides))?;
    Ok(cfg)
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Backtest(a) => backtest::run(a),
        Command::Trade(a) => trade::run(a),
        Command::Features(a) => features::run(a),
        Command::GenerateData(a) => generate_data::run(a),
        Command::Bench(a) => bench::run(a),
        #[cfg(feature = "learner")]
        Command::WalkForward(a) => walk_forward::run(a),
        #[cfg(not(feature = "learner"))]
        Command::WalkForward(_) => {
            Err(BadArgument("walk-forward needs the `learner` feature (default build)".into()).into())
        }
        #[cfg(feature = "learner")]
        Command::Sweep(a) => sweep::run(a),
        #[cfg(not(feature = "learner"))]
        Command::Sweep(_) => Err(BadArgument("sweep needs the `learner` feature (default build)".into()).into()),
    }
}
