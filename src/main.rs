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
            // `{:#}` prints the whole context chain on one line.
            let line = format!("{err:#}").replace('\n', " ");
            eprintln!("ploutos: error: {line}");
            ExitCode::from(code)
        }
    }
}
