//! `ploutos`: the command-line front end. One subcommand per job; each loads and validates
//! the config, then calls into the library.
//!
//! Exit codes: 0 success, 1 internal failure, 2 bad input (config, data, arguments), with a
//! one-line message and no backtrace; `trade` stopped before its period's end: 3 (a safety
//! limit), 130 (Ctrl-C).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(all(feature = "learner", unix))]
    brief_openmp_spin();
    let args = match cli::Cli::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(stop) = err.downcast_ref::<cli::Stopped>() {
                eprintln!("ploutos: stopped: {}", stop.message);
                return ExitCode::from(if stop.interrupted { 130 } else { 3 });
            }
            let code = if cli::is_user_error(&err) { 2 } else { 1 };
            eprintln!("ploutos: error: {}", one_line(&err));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes on one line, `context: cause: cause`, each cause once: error
/// types that embed their source's message (`#[error("{0}")]` over a `#[from]`) would
/// otherwise print it twice.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Runs the process with libtorch's OpenMP threads spinning briefly, unless the user chose.
///
/// libtorch's OpenMP threads (GNU libgomp) spin for 300,000 rounds after each parallel
/// region by default, waiting for the next one. Alone on a machine that costs nothing, but
/// beside other busy processes (several trainings, a sweep) the spinning threads take the
/// cores that the env's threads and the other processes need: `ploutos bench --train
/// --contention 2` ran 5.6× slower than alone on 2 cores. A spin of 10,000 rounds keeps the
/// speed alone (the threads still catch back-to-back regions) and halves the loss beside
/// busy processes; passive waiting (no spin) loses a third of the speed alone. libgomp
/// reads its settings once, when it is loaded, before `main`; so the process re-executes
/// itself once with `GOMP_SPINCOUNT` set. Set `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY`
/// yourself to choose otherwise.
#[cfg(all(feature = "learner", unix))]
fn brief_openmp_spin() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GOMP_SPINCOUNT").is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    // `exec` returns only when it fails; the run then goes on with libgomp's default.
    let _ = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GOMP_SPINCOUNT", "10000").exec();
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// An error type that prints its source's message as its own, as `#[error("{0}")]`
    /// over a `#[from]` does.
    #[derive(Debug)]
    struct Wraps(std::io::Error);

    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let err = anyhow::Error::new(Wraps(io)).context("writing models/run/final");
        assert_eq!(one_line(&err), "writing models/run/final: Permission denied (os error 13)");
        let plain = anyhow::anyhow!("n_envs must be at least 1").context("building the env");
        assert_eq!(one_line(&plain), "building the env: n_envs must be at least 1");
    }
}
