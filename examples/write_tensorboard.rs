//! Writes a small, known TensorBoard event file so `scripts/checks/read_tensorboard.py` can
//! load it with TensorBoard's own reader: `cargo run --no-default-features --example
//! write_tensorboard -- DIR`. The values here and the expectations there change together.

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

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: write_tensorboard DIR");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("write_tensorboard: {e}");
            ExitCode::FAILURE
        }
    }
}
