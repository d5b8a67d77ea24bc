//! `ploutos generate-data`: the built-in synthetic market as CSV files.
//!
//! A folder may hold a user's own data under the same names (`SPY.csv`), so files already
//! there are replaced only with `--force`.

use super::BadArgument;
use super::args::GenerateDataArgs;
use ploutos::market::{synthetic_panel, write_csv_dir};

pub fn run(a: GenerateDataArgs) -> anyhow::Result<()> {
    let cfg = a.common.load()?;
    super::check_writable(&a.out, "--out")?;
    let panel = synthetic_panel(&cfg.data);
    if !a.force {
        let existing: Vec<String> = panel
            .tickers()
            .iter()
            .map(|t| format!("{t}.csv"))
            .filter(|name| a.out.join(name).symlink_metadata().is_ok())
            .collect();
        if !existing.is_empty() {
            return Err(BadArgument(format!(
                "--out {} already holds {}; pass --force to replace {}, or choose another --out",
                a.out.display(),
                existing.join(", "),
                if existing.len() == 1 { "it" } else { "them" }
            ))
            .into());
        }
    }
    write_csv_dir(&panel, &a.out)?;
    eprintln!(
        "ploutos: wrote {} tickers × {} {} bars to {}",
        panel.n_tickers(),
        panel.n_bars(),
        cfg.data.interval.as_str(),
        a.out.display()
    );
    Ok(())
}
