//! `ploutos train`: loads the data, builds the training and validation envs, trains.

use super::args::{BenchArgs, TrainArgs};
use anyhow::Context;
use ploutos::config::Config;
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::market::{Split, load_panel};
use ploutos::{EnvOptions, TradingEnv};

/// The training env (random starts on the training split) and, when the validation split
/// is long enough, an evaluation env: `training.eval_episodes` envs whose episodes start
/// at bars of the validation split drawn from a fixed seed (the same at every evaluation)
/// and run `episode_length` bars or to the split's end, without bankruptcy.
pub fn build_envs(cfg: &Config, ds: &Dataset) -> anyhow::Result<(TradingEnv, Option<TradingEnv>)> {
    // Episodes longer than a split are cut at its end and all start at its first bar.
    let length = cfg.environment.episode_length;
    for part in [SplitPart::Train, SplitPart::Validation] {
        let bars = ds.range(part).len();
        if bars >= 2 && length + 1 >= bars {
            eprintln!(
                "ploutos: warning: environment.episode_length {length} is not shorter than the {} split ({bars} bars): its episodes all start at its first bar and end at its last",
                part.name()
            );
        }
    }
    let opts = ds.env_options(&cfg.training, SplitPart::Train, cfg.training.n_envs)?;
    let train_env = TradingEnv::new(&cfg.environment, ds.market.clone(), opts).context("building the training envs")?;
    let eval_env = match Dataset::bounds(ds.range(SplitPart::Validation), true) {
        Some(bounds) => {
            let mut env_cfg = cfg.environment.clone();
            env_cfg.bankruptcy_pct = 0.0;
            let mut opts = EnvOptions::training(cfg.training.eval_episodes, bounds);
            opts.threads = cfg.training.threads;
            opts.action_masks = cfg.training.action_masking;
            Some(TradingEnv::new(&env_cfg, ds.market.clone(), opts).context("building the evaluation env")?)
        }
        None => {
            eprintln!(
                "ploutos: warning: the validation split holds {} bars, too few for an episode: no evaluation, so no best model (see data.split)",
                ds.range(SplitPart::Validation).len()
            );
            None
        }
    };
    Ok((train_env, eval_env))
}

/// Loads the configured data and derives features, standardized with `scaler` (a trained
/// model's) or with statistics fitted on the training split.
pub fn load_dataset(cfg: &Config, scaler: Option<ploutos::features::FeatureScaler>) -> anyhow::Result<Dataset> {
    let (panel, report) = load_panel(&cfg.data)?;
    eprintln!("ploutos: {report}");
    let split = Split::new(&panel, &cfg.data.split)?;
    eprintln!(
        "ploutos: split train {} bars, validation {} bars, test {} bars",
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );
    Ok(Dataset::build(panel, report, split, scaler))
}

#[cfg(not(feature = "learner"))]
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let cfg = a.common.load()?;
    let ds = load_dataset(&cfg, None)?;
    let (train_env, _) = build_envs(&cfg, &ds)?;
    eprintln!("ploutos: built {} envs × {} tickers", train_env.n_envs(), train_env.n_tickers());
    anyhow::bail!("this binary was built without the `learner` feature; rebuild with default features to train")
}

#[cfg(not(feature = "learner"))]
pub fn bench(_cfg: &Config, _a: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this binary was built without the `learner` feature; rebuild with default features for bench --train"
    )
}

#[cfg(feature = "learner")]
pub(crate) use with_learner::{Begin, clear_or_refuse, init_log, refuse_overwrite, run_paths, train_envs, train_one};
#[cfg(feature = "learner")]
pub use with_learner::{bench, run};

#[cfg(feature = "learner")]
mod with_learner {
    use super::*;
    use crate::cli::BadArgument;
    use indicatif::{ProgressBar, ProgressStyle};
    use ploutos::metrics::{LEARNER_TAGS, RunLogger};
    use ploutos::ppo::{EvalStats, IterationStats, PpoError, RunPaths, TrainHooks, Trainer, checkpoint};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Progress bar, metrics writers, log lines and the Ctrl-C flag.
    struct Hooks {
        bar: ProgressBar,
        logger: RunLogger,
        stop: Arc<AtomicBool>,
        last_reward: Option<f64>,
        /// When the last plain progress line was printed (no terminal).
        last_line: Option<std::time::Instant>,
    }

    /// Seconds between plain progress lines when there is no terminal for the bar.
    const LINE_EVERY_SECS: f64 = 2.0;

    impl Hooks {
        /// A line above the bar, or on stderr when there is no terminal to draw it on.
        fn say(&self, line: String) {
            if self.bar.is_hidden() {
                eprintln!("{line}");
            } else {
                self.bar.println(line);
            }
        }
    }

    impl TrainHooks for Hooks {
        fn on_iteration(&mut self, s: &IterationStats) {
            if s.ep_reward_mean.is_some() {
                self.last_reward = s.ep_reward_mean;
            }
            self.bar.set_position(s.timesteps);
            let msg = format!(
                "fps {:.0} | ep reward {} | equity {:.0} | entropy {:.2}",
                s.fps,
                self.last_reward.map_or("-".into(), |r| format!("{r:.2}")),
                s.equity_mean,
                s.entropy
            );
            if self.bar.is_hidden() {
                // No terminal (CI, `| tee`): a plain line every couple of seconds and at the
                // end instead of a bar, with the ETA the bar would show.
                let total = self.bar.length().unwrap_or(0);
                let due = self.last_line.is_none_or(|t| t.elapsed().as_secs_f64() >= LINE_EVERY_SECS);
                if due || s.timesteps >= total {
                    let eta = if s.fps > 0.0 { total.saturating_sub(s.timesteps) as f64 / s.fps } else { 0.0 };
                    eprintln!("ploutos: {:>9}/{total} steps, ETA {:.0} s | {msg}", s.timesteps, eta.ceil());
                    self.last_line = Some(std::time::Instant::now());
                }
            }
            self.bar.set_message(msg);
            let mut scalars = vec![
                ("train/policy_loss", s.policy_loss),
                ("train/value_loss", s.value_loss),
                ("train/entropy", s.entropy),
                ("train/approx_kl", s.approx_kl),
                ("train/clip_fraction", s.clip_fraction),
                ("train/explained_variance", s.explained_variance),
                ("train/learning_rate", s.learning_rate),
                ("time/fps", s.fps),
                ("rollout/equity", s.equity_mean),
                ("rollout/total_trades", s.total_trades as f64),
                ("rollout/masked_actions", s.masked_share),
            ];
            if let Some(r) = s.ep_reward_mean {
                scalars.push(("rollout/ep_reward_mean", r));
            }
            if let Some(r) = s.total_return_mean {
                scalars.push(("rollout/total_return", r));
            }
            if let Err(e) = self.logger.log(s.timesteps, &scalars) {
                tracing::warn!("metrics: {e}");
            }
            tracing::info!(
                timesteps = s.timesteps,
                iteration = s.iteration,
                fps = s.fps,
                policy_loss = s.policy_loss,
                value_loss = s.value_loss,
                entropy = s.entropy,
                approx_kl = s.approx_kl,
                ep_reward_mean = s.ep_reward_mean,
                "iteration"
            );
        }

        fn on_eval(&mut self, e: &EvalStats) {
            let scalars = [
                ("eval/mean_reward", e.mean_reward),
                ("eval/sharpe", e.sharpe),
                ("eval/total_return", e.total_return),
                ("eval/max_drawdown", e.max_drawdown),
                ("eval/buy_and_hold_sharpe", e.buy_and_hold_sharpe),
                ("eval/buy_and_hold_return", e.buy_and_hold_return),
                ("eval/random_sharpe", e.random_sharpe),
                ("eval/random_return", e.random_return),
            ];
            if let Err(err) = self.logger.log(e.timesteps, &scalars) {
                tracing::warn!("metrics: {err}");
            }
            self.say(format!(
                "eval @ {:>9} steps: reward {:>9.3}  return {:>7.2}%  sharpe {:>6.2}{}  (buy-and-hold {:.2}%, sharpe {:.2}; random {:.2}%, sharpe {:.2})",
                e.timesteps,
                e.mean_reward,
                100.0 * e.total_return,
                e.sharpe,
                if e.is_best { "  (new best)" } else { "" },
                100.0 * e.buy_and_hold_return,
                e.buy_and_hold_sharpe,
                100.0 * e.random_return,
                e.random_sharpe
            ));
            tracing::info!(
                timesteps = e.timesteps,
                reward = e.mean_reward,
                total_return = e.total_return,
                sharpe = e.sharpe,
                best = e.is_best,
                "evaluation"
            );
        }

        fn should_stop(&self) -> bool {
            self.stop.load(Ordering::SeqCst)
        }
    }

    /// Where log lines go now: the process has one subscriber (set at the first
    /// [`hold_log`] or [`init_log`]), and each run of a process that trains several (seeds,
    /// walk-forward folds) points it at its own `train.log`; a run being set up, which may
    /// write nothing yet, holds its lines in memory until its file is named.
    enum LogSink {
        Held(Vec<u8>),
        File(std::fs::File),
    }

    static LOG: std::sync::Mutex<LogSink> = std::sync::Mutex::new(LogSink::Held(Vec::new()));

    /// The sink, locked (a panic elsewhere while it was held leaves it usable).
    fn log_sink() -> std::sync::MutexGuard<'static, LogSink> {
        LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The subscriber's writer for one event: the sink, locked for the whole event, so
    /// that lines of several threads do not interleave.
    struct LogWriter(std::sync::MutexGuard<'static, LogSink>);

    impl std::io::Write for LogWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match &mut *self.0 {
                LogSink::Held(lines) => {
                    lines.extend_from_slice(buf);
                    Ok(buf.len())
                }
                LogSink::File(file) => file.write(buf),
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            match &mut *self.0 {
                LogSink::Held(_) => Ok(()),
                LogSink::File(file) => file.flush(),
            }
        }
    }

    fn install_subscriber() {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter(log_sink()))
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            .try_init();
    }

    /// Holds the log lines that follow until [`init_log`] names their file: a run's
    /// set-up (which logs a resume, a checkpoint's missing statistics) comes before it may
    /// write anything.
    pub(crate) fn hold_log() {
        *log_sink() = LogSink::Held(Vec::new());
        install_subscriber();
    }

    /// Sends the log lines that follow, and those held, to `dir/train.log` (appended to).
    pub(crate) fn init_log(dir: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("train.log");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut sink = log_sink();
        if let LogSink::Held(lines) = &*sink {
            file.write_all(lines).with_context(|| format!("writing {}", path.display()))?;
        }
        *sink = LogSink::File(file);
        drop(sink);
        install_subscriber();
        Ok(())
    }

    /// Refuses to start a new run over the outputs of an earlier run of the same name.
    pub(crate) fn refuse_overwrite(paths: &RunPaths, run_name: &str) -> Result<(), BadArgument> {
        let used = [&paths.models, &paths.runs, &paths.logs]
            .into_iter()
            .find(|p| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()));
        let Some(p) = used else { return Ok(()) };
        match checkpoint::latest(&paths.models) {
            // A run that stopped before its first checkpoint has nothing to resume from.
            Err(PpoError::NoCheckpoint { .. }) => Err(BadArgument(format!(
                "{} holds the outputs of run {run_name:?}, which has no checkpoint to resume from: pass --force to replace it, or choose another training.run_name",
                p.display()
            ))),
            Err(e) => Err(BadArgument(format!(
                "{} holds run {run_name:?}, whose checkpoint cannot be read ({e}): pass --force to replace it, or choose another training.run_name",
                p.display()
            ))),
            Ok(_) => Err(BadArgument(format!(
                "{} already holds run {run_name:?}: continue it with --resume {}, choose another training.run_name, or pass --force to replace it",
                p.display(),
                paths.models.display()
            ))),
        }
    }

    /// Removes the outputs of an earlier run (`--force`) or refuses to start over them.
    pub(crate) fn clear_or_refuse(paths: &RunPaths, run_name: &str, force: bool) -> anyhow::Result<()> {
        if force {
            for dir in [&paths.models, &paths.runs, &paths.logs] {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).with_context(|| format!("--force: removing {}", dir.display()))?;
                }
            }
            Ok(())
        } else {
            Ok(refuse_overwrite(paths, run_name)?)
        }
    }

    /// The outputs of run `run_name`.
    pub(crate) fn run_paths(run_name: &str) -> RunPaths {
        RunPaths {
            models: PathBuf::from("models").join(run_name),
            runs: PathBuf::from("runs").join(run_name),
            logs: PathBuf::from("logs").join(run_name),
        }
    }

    pub fn run(a: TrainArgs) -> anyhow::Result<()> {
        // Installed first, so that a Ctrl-C during set-up also ends in a saved checkpoint
        // (training stops after its first iteration) rather than in the default kill.
        let stop = crate::cli::stop_on_ctrl_c("stopping after this iteration and saving a checkpoint");
        let cfg = match &a.resume {
            // A resumed run continues with the config it was started with; --set still applies.
            Some(dir) => {
                if let Some(file) = &a.common.config {
                    return Err(BadArgument(format!(
                        "--config {} with --resume: a run resumes with the config it started with (saved with its checkpoints); change keys with --set",
                        file.display()
                    ))
                    .into());
                }
                let ckpt = checkpoint::latest(dir).map_err(|e| BadArgument(format!("--resume: {e}")))?;
                // `best/` is a model to keep: continuing from it would write the run's later
                // checkpoints and `final/` over again from an earlier step.
                if ckpt.file_name().is_some_and(|n| n == "best") {
                    let root = checkpoint::run_root(&ckpt);
                    return Err(BadArgument(format!(
                        "--resume {}: best/ is a model to keep, not a place to continue from; resume the run with --resume {}",
                        dir.display(),
                        root.display()
                    ))
                    .into());
                }
                let saved = checkpoint::read_config(&ckpt).map_err(|e| BadArgument(format!("--resume: {e}")))?;
                let cfg = saved.with_overrides(&a.common.overrides)?;
                cfg.validate()?;
                cfg
            }
            None => {
                if a.common.config.is_none() && !Path::new(crate::cli::DEFAULT_CONFIG).exists() {
                    eprintln!(
                        "ploutos: no --config and no {} in this folder: training the built-in defaults (see README, Configuration)",
                        crate::cli::DEFAULT_CONFIG
                    );
                }
                a.common.load()?
            }
        };
        // Resuming from any checkpoint folder (`final/`, `checkpoints/step_N/`) continues the
        // run in its run folder, never in a folder nested inside the checkpoint.
        let resume_root = a.resume.as_deref().map(checkpoint::run_root);
        let run_name = match (&resume_root, &cfg.training.run_name) {
            (Some(dir), _) => {
                dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "resumed".into())
            }
            (None, Some(name)) => name.clone(),
            (None, None) => chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string(),
        };
        // Everything that can be checked is checked before anything is written.
        ploutos::ppo::device::parse_device(&cfg.training.device).map_err(|e| BadArgument(e.to_string()))?;
        let rollout = cfg.training.n_envs as u64 * cfg.training.n_steps as u64;
        if cfg.training.total_timesteps < rollout && a.resume.is_none() {
            eprintln!(
                "ploutos: warning: training.total_timesteps {} is less than one rollout (training.n_envs × training.n_steps = {rollout}): one rollout is trained",
                cfg.training.total_timesteps
            );
        }
        // Every folder a run writes, before the data is read or a log is written.
        let writable = |p: &RunPaths| -> Result<(), BadArgument> {
            [&p.models, &p.runs, &p.logs].into_iter().try_for_each(|d| crate::cli::check_writable(d, "output folder"))
        };
        if let Some(n) = a.seeds {
            writable(&run_paths(&run_name))?;
            return super::super::seeds::run(&cfg, &run_name, n, a.force, &stop);
        }
        let mut paths = match &a.out {
            Some(dir) => {
                crate::cli::check_writable(dir, "--out")?;
                RunPaths { models: dir.join("model"), runs: dir.join("runs"), logs: dir.join("logs") }
            }
            None => run_paths(&run_name),
        };
        if let Some(root) = resume_root {
            paths.models = root;
        }
        writable(&paths)?;
        if a.resume.is_none() && !a.force {
            refuse_overwrite(&paths, &run_name)?;
        }
        let ds = load_dataset(&cfg, None)?;
        // --force clears the earlier run only once this one is set up (data read, envs
        // and network built): bad data or a run too big for the machine loses nothing.
        let replace = || {
            clear_or_refuse(&paths, &run_name, true)?;
            // `--out DIR`: the earlier run's result goes with its model.
            match a.out.as_ref().map(|dir| dir.join("result.json")).filter(|f| f.exists()) {
                Some(result) => {
                    std::fs::remove_file(&result).with_context(|| format!("--force: removing {}", result.display()))
                }
                None => Ok(()),
            }
        };
        let begin = match &a.resume {
            Some(dir) => Begin::Resume(dir),
            None => Begin::Fresh { replace: a.force.then_some(&replace as &dyn Fn() -> anyhow::Result<()>) },
        };
        let summary = train_one(&cfg, &ds, &paths, &run_name, begin, &stop)?;
        if let Some(dir) = &a.out {
            write_result(&cfg, &ds, &paths, &summary, &run_name, dir)?;
        }
        Ok(())
    }

    /// `--out DIR`: the model replayed on the held-out splits, into `DIR/result.json`.
    fn write_result(
        cfg: &Config,
        ds: &Dataset,
        paths: &RunPaths,
        summary: &ploutos::ppo::TrainSummary,
        run_name: &str,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let held_out = super::super::seeds::HeldOut::new(cfg, ds)?;
        let result = ploutos::sweep::TrialResult {
            timesteps: summary.timesteps,
            seconds: summary.seconds,
            interrupted: summary.interrupted,
            splits: held_out.evaluate(cfg, ds, paths, summary, run_name)?,
        };
        let path = dir.join(ploutos::sweep::TrialResult::FILE);
        ploutos::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Saves the feature standardization a run trains with into its models folder, which
    /// every checkpoint then copies, so that a model reads the features as it was trained.
    pub(crate) fn save_scaler(models: &Path, scaler: &ploutos::features::FeatureScaler) -> anyhow::Result<()> {
        std::fs::create_dir_all(models).with_context(|| format!("creating {}", models.display()))?;
        let path = models.join(checkpoint::SCALER_FILE);
        let text = ron::ser::to_string_pretty(scaler, Default::default()).context("serializing the feature scaler")?;
        ploutos::fsutil::write_atomic(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
    }

    /// Trains one run on `ds` into `paths` (from scratch, or resumed from `resume`), with
    /// its progress bar, TensorBoard logs and log file.
    pub(crate) fn train_one(
        cfg: &Config,
        ds: &Dataset,
        paths: &RunPaths,
        run_name: &str,
        begin: Begin<'_>,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<ploutos::ppo::TrainSummary> {
        let (train_env, eval_env) = build_envs(cfg, ds)?;
        train_envs(cfg, (train_env, eval_env), &ds.scaler, paths, run_name, begin, stop)
    }

    /// How a run starts.
    #[derive(Clone, Copy)]
    pub(crate) enum Begin<'a> {
        /// A new run; `replace` (`--force`) clears the outputs of an earlier run of the
        /// name once this one is set up, and not before.
        Fresh { replace: Option<&'a dyn Fn() -> anyhow::Result<()>> },
        /// From the latest checkpoint under this folder.
        Resume(&'a Path),
    }

    /// [`train_one`] on envs built by the caller (a walk-forward fold's, which has no
    /// validation bars): the run's progress bar, TensorBoard logs, `train.log` and scaler.
    pub(crate) fn train_envs(
        cfg: &Config,
        (train_env, eval_env): (TradingEnv, Option<TradingEnv>),
        scaler: &ploutos::features::FeatureScaler,
        paths: &RunPaths,
        run_name: &str,
        begin: Begin<'_>,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<ploutos::ppo::TrainSummary> {
        let (n_envs, n_tickers, obs_dim) = (train_env.n_envs(), train_env.n_tickers(), train_env.obs_dim());
        // The trainer is set up before anything is written or cleared: a run that cannot
        // start (no such device, a network too big for the machine) leaves an earlier run
        // it was to replace as it was.
        hold_log();
        let mut trainer = match begin {
            Begin::Resume(dir) => Trainer::resume(dir, cfg, train_env, eval_env, paths.clone())?,
            Begin::Fresh { replace } => {
                let trainer = Trainer::new(cfg, train_env, eval_env, paths.clone())?;
                if let Some(clear) = replace {
                    // Ctrl-C during the set-up: the earlier run stays.
                    if stop.load(Ordering::SeqCst) {
                        return Err(crate::cli::Stopped {
                            message: format!("stopped before run {run_name} started: the earlier run is kept"),
                            interrupted: true,
                        }
                        .into());
                    }
                    clear()?;
                }
                trainer
            }
        };
        init_log(&paths.logs)?;
        tracing::info!(run = %run_name, config = %cfg.to_ron(), "starting");
        save_scaler(&paths.models, scaler)?;
        eprintln!(
            "ploutos: run {run_name}: {n_envs} envs × {n_tickers} tickers, observation {obs_dim} floats, {} timesteps, device {}",
            cfg.training.total_timesteps, cfg.training.device
        );
        let bar = ProgressBar::new(cfg.training.total_timesteps);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, ETA {eta} | {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_position(trainer.timesteps());
        let logger = match begin {
            Begin::Resume(_) => RunLogger::resume(&paths.runs, &LEARNER_TAGS, trainer.timesteps()),
            Begin::Fresh { .. } => RunLogger::create(&paths.runs, &LEARNER_TAGS),
        }
        .with_context(|| format!("creating {}", paths.runs.display()))?;
        let mut hooks = Hooks { bar, logger, stop: stop.clone(), last_reward: None, last_line: None };
        let summary = trainer.train(&mut hooks)?;
        hooks.bar.finish();
        let _ = hooks.logger.flush();
        eprintln!(
            "ploutos: {} after {} timesteps in {:.0} s; model in {}{}",
            if summary.interrupted { "stopped" } else { "done" },
            summary.timesteps,
            summary.seconds,
            summary.last_checkpoint.display(),
            summary
                .best_metric
                .map_or(String::new(), |m| format!(", best validation {:?} {m:.3}", cfg.training.best_metric))
        );
        eprintln!("ploutos: TensorBoard: tensorboard --logdir {}", paths.runs.display());
        Ok(summary)
    }

    /// Median, smallest and largest of some values.
    fn spread(v: &[f64]) -> (f64, f64, f64) {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (ploutos::bench::median(v.to_vec()), lo, hi)
    }

    /// `repeat` interleaved pairs of training benchmarks, `first` then `second` each time, so
    /// that both see the same load on a shared machine.
    fn interleaved(
        repeat: u32,
        mut first: impl FnMut() -> anyhow::Result<ploutos::ppo::TrainBench>,
        mut second: impl FnMut() -> anyhow::Result<ploutos::ppo::TrainBench>,
    ) -> anyhow::Result<(Vec<ploutos::ppo::TrainBench>, Vec<ploutos::ppo::TrainBench>)> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            a.push(first()?);
            b.push(second()?);
        }
        Ok((a, b))
    }

    /// `bench --train --contention N`: interleaved pairs of runs, alone and beside N busy
    /// processes; the medians and the median of the pairs' slowdowns.
    fn contention(cfg: &Config, a: &BenchArgs, shape: &ploutos::ppo::TrainShape) -> anyhow::Result<()> {
        let ploutos::ppo::TrainShape { net, n_envs, n_steps, batch, epochs } = shape;
        let run = || Ok(ploutos::ppo::bench_train(cfg, shape, 3)?);
        let beside_busy = || {
            let _busy = super::super::bench::BusyProcesses::start(a.contention)?;
            run()
        };
        let (alone, shared) = interleaved(a.repeat, run, beside_busy)?;
        let alone: Vec<f64> = alone.iter().map(|r| r.timesteps_per_sec).collect();
        let shared: Vec<f64> = shared.iter().map(|r| r.timesteps_per_sec).collect();
        let slowdowns: Vec<f64> = alone.iter().zip(&shared).map(|(x, y)| x / y).collect();
        let (slowdown, lo, hi) = spread(&slowdowns);
        let (m_alone, m_shared) = (spread(&alone).0, spread(&shared).0);
        if a.json {
            let v = serde_json::json!({
                "contention": a.contention,
                "runs": a.repeat,
                "timesteps_per_sec_alone": m_alone,
                "timesteps_per_sec_shared": m_shared,
                "slowdown": slowdown,
                "alone_runs": alone,
                "shared_runs": shared,
            });
            println!("{v}");
        } else {
            println!(
                "ploutos PPO alone: {m_alone:.0} timesteps/s; beside {} busy process(es): {m_shared:.0} timesteps/s; slowdown {slowdown:.2}x (median of {} interleaved pairs, {lo:.2}–{hi:.2}x; net {net:?}, {n_envs} envs × {n_steps} steps, batch {batch}, {epochs} epochs)",
                a.contention, a.repeat,
            );
        }
        Ok(())
    }

    /// `bench --train --masking-cost`: interleaved pairs of runs without and with action
    /// masking; the medians and the median of the pairs' costs.
    fn masking_cost(cfg: &Config, a: &BenchArgs, shape: &ploutos::ppo::TrainShape) -> anyhow::Result<()> {
        let ploutos::ppo::TrainShape { net, n_envs, n_steps, batch, epochs } = shape;
        let (mut off, mut on) = (cfg.clone(), cfg.clone());
        off.training.action_masking = false;
        on.training.action_masking = true;
        let (plain_runs, masked_runs) = interleaved(
            a.repeat,
            || Ok(ploutos::ppo::bench_train(&off, shape, 3)?),
            || Ok(ploutos::ppo::bench_train(&on, shape, 3)?),
        )?;
        let plain: Vec<f64> = plain_runs.iter().map(|r| r.timesteps_per_sec).collect();
        let masked: Vec<f64> = masked_runs.iter().map(|r| r.timesteps_per_sec).collect();
        // Median seconds of rollout and of update: where masking costs.
        let med = |runs: &[ploutos::ppo::TrainBench]| {
            let (rollout, update): (Vec<f64>, Vec<f64>) = runs.iter().map(|r| (r.rollout_secs, r.update_secs)).unzip();
            (spread(&rollout).0, spread(&update).0)
        };
        let ((rp, up), (rm, um)) = (med(&plain_runs), med(&masked_runs));
        let costs: Vec<f64> = plain.iter().zip(&masked).map(|(p, m)| 1.0 - m / p).collect();
        let (cost, lo, hi) = spread(&costs);
        let (m_plain, m_masked) = (spread(&plain).0, spread(&masked).0);
        if a.json {
            let v = serde_json::json!({
                "runs": a.repeat,
                "timesteps_per_sec_unmasked": m_plain,
                "timesteps_per_sec_masked": m_masked,
                "masking_cost": cost,
                "rollout_secs_unmasked": rp,
                "rollout_secs_masked": rm,
                "update_secs_unmasked": up,
                "update_secs_masked": um,
                "unmasked_runs": plain,
                "masked_runs": masked,
            });
            println!("{v}");
        } else {
            println!(
                "ploutos PPO without masks: {m_plain:.0} timesteps/s; with masks: {m_masked:.0} timesteps/s; masking costs {:.1}% (median of {} interleaved pairs, {:.1}% to {:.1}%; rollout {rp:.3} → {rm:.3} s, update {up:.3} → {um:.3} s; net {net:?}, {n_envs} envs × {n_steps} steps, batch {batch}, {epochs} epochs)",
                100.0 * cost,
                a.repeat,
                100.0 * lo,
                100.0 * hi,
            );
        }
        Ok(())
    }

    pub fn bench(cfg: &Config, a: &BenchArgs) -> anyhow::Result<()> {
        let net = match &a.net {
            Some(s) => super::super::bench::parse_net(s)?,
            None => vec![64, 64],
        };
        let n_envs = a.envs.first().copied().unwrap_or(16);
        let n_steps = a.n_steps.unwrap_or(256);
        let batch = a.batch.unwrap_or(1024);
        let epochs = a.epochs.unwrap_or(10);
        if batch > n_envs * n_steps {
            return Err(
                BadArgument(format!("--batch {batch} exceeds the rollout of {} steps", n_envs * n_steps)).into()
            );
        }
        let shape = ploutos::ppo::TrainShape { net: net.clone(), n_envs, n_steps, batch, epochs };
        if a.contention > 0 {
            return contention(cfg, a, &shape);
        }
        if a.masking_cost {
            return masking_cost(cfg, a, &shape);
        }
        // Interleaved runs: a burst of load on the shared machine hits one pair, not one side.
        let (mut runs, mut sb3_rates) = (Vec::new(), Vec::new());
        for _ in 0..a.repeat {
            runs.push(ploutos::ppo::bench_train(cfg, &shape, 3)?);
            let sb3 = super::super::bench::sb3_baseline(a.baseline.as_deref(), &shape);
            sb3_rates.extend(sb3.as_ref().and_then(|v| v["timesteps_per_sec"].as_f64()));
        }
        let rates: Vec<f64> = runs.iter().map(|r| r.timesteps_per_sec).collect();
        let mid = ploutos::bench::median(rates.clone());
        let ours = runs
            .into_iter()
            .min_by(|x, y| (x.timesteps_per_sec - mid).abs().total_cmp(&(y.timesteps_per_sec - mid).abs()))
            .expect("at least one run");
        let sb3_rate = (!sb3_rates.is_empty()).then(|| ploutos::bench::median(sb3_rates.clone()));
        let ratios: Vec<f64> = rates.iter().zip(&sb3_rates).map(|(o, s)| o / s).collect();
        let profile =
            if a.profile { Some(ploutos::ppo::profile_train(cfg, &shape, PROFILED_ITERATIONS)?) } else { None };
        if a.json {
            let mut v = serde_json::to_value(&ours).unwrap_or_default();
            v["timesteps_per_sec"] = mid.into();
            v["runs"] = a.repeat.into();
            v["timesteps_per_sec_runs"] = rates.clone().into();
            v["sb3_timesteps_per_sec"] = sb3_rate.map_or(serde_json::Value::Null, Into::into);
            v["sb3_timesteps_per_sec_runs"] = sb3_rates.clone().into();
            v["ratio_vs_sb3"] = sb3_rate.map_or(serde_json::Value::Null, |r| (mid / r).into());
            if let Some(p) = &profile {
                v["profile"] = serde_json::to_value(p).unwrap_or_default();
                v["profile_iterations"] = PROFILED_ITERATIONS.into();
            }
            println!("{v}");
        } else {
            let span = |v: &[f64]| {
                let (_, lo, hi) = spread(v);
                format!("{lo:.0}–{hi:.0}")
            };
            println!(
                "ploutos PPO: {:.0} timesteps/s, median of {} runs ({}) (net {:?}, {} params, {} envs × {} steps, batch {}, {} epochs, device {}, {}; median run: rollout {:.2} s, update {:.2} s)",
                mid,
                a.repeat,
                span(&rates),
                net,
                ours.params,
                n_envs,
                n_steps,
                batch,
                epochs,
                ours.device,
                ours.precision,
                ours.rollout_secs,
                ours.update_secs
            );
            match sb3_rate {
                Some(r) => println!(
                    "SB3 PPO:     {r:.0} timesteps/s, median of {} runs ({})  → ratio {:.1}x (pairwise {})",
                    sb3_rates.len(),
                    span(&sb3_rates),
                    mid / r,
                    ratios.iter().map(|x| format!("{x:.1}x")).collect::<Vec<_>>().join(", ")
                ),
                None => println!(
                    "SB3 PPO:     not run (shared/bench/sb3_ppo.py or a Python with stable_baselines3 not found)"
                ),
            }
            if let Some(p) = &profile {
                print_profile(p);
            }
        }
        Ok(())
    }

    /// Iterations `bench --train --profile` profiles (after the timed runs).
    const PROFILED_ITERATIONS: usize = 2;

    /// The profile as a table: seconds per iteration, share, and time per call.
    fn print_profile(phases: &[ploutos::ppo::profile::PhaseTime]) {
        let total: f64 = phases.iter().map(|p| p.secs).sum();
        let per_iter = PROFILED_ITERATIONS as f64;
        println!(
            "profile ({PROFILED_ITERATIONS} iterations, each phase waiting for the device: {:.3} s per iteration):",
            total / per_iter
        );
        for p in phases {
            println!(
                "  {:<50} {:>8.3} s/iter {:>5.1}% {:>10.1} µs/call ({} calls/iter)",
                p.phase,
                p.secs / per_iter,
                100.0 * p.secs / total.max(1e-12),
                1e6 * p.secs / p.count.max(1) as f64,
                p.count / PROFILED_ITERATIONS as u64
            );
        }
    }
}
