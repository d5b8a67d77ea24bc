//! Writes a small, known TensorBoard event file so `scripts/checks/read_tensorboard.py` can
//! load it with TensorBoard's own reader: `cargo run --no-default-features --example
//! write_tensorboard -- DIR [RESUMED]`. With `RESUMED`, also a run that crashed after its
//! checkpoint at step 200 and was resumed from it (a second file that starts with a restart
//! mark). The values here and the expectations there change together.

use std::path::PathBuf;
use std::process::ExitCode;

use ploutos::metrics::TensorBoardWriter;

fn run(dir: PathBuf) -> std::io::Result<()> {
    let mut tb = TensorBoardWriter::create(&dir)?;
    // One scalar per event; step 0 (left out of the protobuf) and value 0.0 included.
    for step in 0..5u64 {
        tb.scalar("train/policy_loss", 0.5 - 0.125 * step as f64, step)?;
    }
    tb.flush()?;
    // Several scalars per event, at steps that need multi-byte varints.
    for (i, step) in [2048u64, 4096, 1 << 40].into_iter().enumerate() {
        let i = i as f64;
        tb.scalars(step, &[("time/fps", 1000.0 * (i + 1.0)), ("eval/sharpe", -1.5 + i)])?;
        tb.flush()?;
    }
    println!("{}", tb.path().display());
    Ok(())
}

/// Steps 100, 200, 300 logged, a crash, then a resume from the checkpoint at 200 that logs
/// 300 and 400 again with other values: TensorBoard must show 100, 200, then the new 300, 400.
fn resumed(dir: PathBuf) -> std::io::Result<()> {
    let mut crashed = TensorBoardWriter::create(&dir)?;
    for step in [100u64, 200, 300] {
        crashed.scalar("train/loss", step as f64 / 100.0, step)?;
    }
    crashed.flush()?;
    drop(crashed);
    let mut again = TensorBoardWriter::create(&dir)?;
    again.restart_at(201)?;
    for step in [300u64, 400] {
        again.scalar("train/loss", step as f64 / 10.0, step)?;
    }
    again.flush()
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: write_tensorboard DIR");
        return ExitCode::from(2);
    };
    let written = run(PathBuf::from(dir)).and_then(|()| match std::env::args_os().nth(2) {
        Some(r) => resumed(PathBuf::from(r)),
        None => Ok(()),
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("write_tensorboard: {e}");
            ExitCode::FAILURE
        }
    }
}
