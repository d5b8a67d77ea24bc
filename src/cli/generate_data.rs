//! `ploutos generate-data`: the built-in synthetic market as CSV files.

use super::args::GenerateDataArgs;
use ploutos::market::{synthetic_panel, write_csv_dir};

pub fn run(a: GenerateDataArgs) -> anyhow::Result<()> {
    let cfg = a.common.load()?;
    let panel = synthetic_panel(&cfg.data);
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
