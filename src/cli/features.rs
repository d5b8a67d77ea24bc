//! `ploutos features`: the 55 raw features of one CSV file.

use super::BadArgument;
use super::args::FeaturesArgs;
use anyhow::Context;
use ploutos::config::Interval;
use ploutos::features::{FEATURE_NAMES, RawInput, compute_raw};
use ploutos::fsutil::write_atomic_with;
use ploutos::market::{calendar::format_timestamp, infer_interval, load_csv_file};
use std::io::Write;
use std::path::Path;

pub fn run(a: FeaturesArgs) -> anyhow::Result<()> {
    // Loaded for its validation only: a file's interval is read from the file itself.
    a.common.load()?;
    refuse_overwriting_input(&a.input, &a.output)?;
    if let Some(parent) = a.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        super::check_writable(parent, "--output's folder")?;
    }
    if a.output.is_dir() {
        return Err(
            BadArgument(format!("--output {} is a folder: name the CSV file to write", a.output.display())).into()
        );
    }
    if a.output.exists() && !a.force {
        return Err(BadArgument(format!(
            "--output {} exists: pass --force to replace it, or choose another file",
            a.output.display()
        ))
        .into());
    }
    let interval: Interval = match &a.interval {
        Some(s) => s.parse().map_err(|e: String| BadArgument(format!("--interval: {e}")))?,
        None => {
            let inferred = infer_interval(&a.input)?;
            eprintln!(
                "ploutos: {}: inferred --interval {} ({}); pass --interval to choose",
                a.input.display(),
                inferred.interval.as_str(),
                inferred.evidence
            );
            inferred.interval
        }
    };
    let series = load_csv_file(&a.input, interval)?;
    let input = RawInput {
        open: &series.open,
        high: &series.high,
        low: &series.low,
        close: &series.close,
        volume: &series.volume,
        day: &series.day,
    };
    let raw = compute_raw(&input);
    write_atomic_with(&a.output, |w| {
        write!(w, "timestamp")?;
        for name in FEATURE_NAMES {
            write!(w, ",{name}")?;
        }
        writeln!(w)?;
        for t in 0..raw.n_bars() {
            write!(w, "{}", format_timestamp(series.timestamps[t], interval))?;
            for f in 0..FEATURE_NAMES.len() {
                let v = raw.get(t, f);
                if v.is_finite() {
                    write!(w, ",{v}")?;
                } else {
                    write!(w, ",")?;
                }
            }
            writeln!(w)?;
        }
        Ok(())
    })
    .with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!("ploutos: wrote {} bars × {} features to {}", raw.n_bars(), FEATURE_NAMES.len(), a.output.display());
    Ok(())
}

/// Refuses an `--output` that is the `--input` file, however spelled (`./a.csv`, a
/// symlink): the features would replace the bars they were computed from.
fn refuse_overwriting_input(input: &Path, output: &Path) -> Result<(), BadArgument> {
    // A path that does not exist (yet) cannot be the other; loading reports a missing input.
    let (Ok(i), Ok(o)) = (input.canonicalize(), output.canonicalize()) else { return Ok(()) };
    if i == o {
        return Err(BadArgument(format!(
            "--output {} is the --input file {}: writing the features would replace its bars; choose another --output",
            output.display(),
            input.display()
        )));
    }
    Ok(())
}
