//! `ploutos`: the command-line front end. One subcommand per job; each loads and validates
//! the config, then calls into the library.
//!
//! Exit codes: 0 success, 1 internal failure, 2 bad input (config, data, arguments), with a
//! one-line message and no backtrace.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
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
