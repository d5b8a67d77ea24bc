//! `ploutos trade`: a model traded bar by bar through a broker ([`ploutos::trade`]): the
//! bars arrive one at a time, the features follow them incrementally, the env's own systems
//! decide at each close and size the orders at the next open, the limits and the journal
//! guard every order. `--broker replay` replays the bars of the data as a live feed and
//! fills with the env's models: over a backtest's period it sends the backtest's trades.

use super::BadArgument;
use super::args::TradeArgs;
use ploutos::trade::Limits;

/// The safety limits of the command line, checked.
fn limits(a: &TradeArgs) -> Result<Limits, BadArgument> {
    if let Some(x) = a.max_order_notional.filter(|x| !(x.is_finite() && *x > 0.0)) {
        return Err(BadArgument(format!("--max-order-notional {x}: expected a positive number of dollars")));
    }
    if let Some(x) = a.max_daily_loss.filter(|x| !(x.is_finite() && *x > 0.0 && *x < 1.0)) {
        return Err(BadArgument(format!("--max-daily-loss {x}: expected a fraction between 0 and 1, e.g. 0.05")));
    }
    Ok(Limits {
        max_order_notional: a.max_order_notional,
        max_daily_loss: a.max_daily_loss,
        kill_switch: a.kill_switch.clone(),
    })
}

#[cfg(not(feature = "learner"))]
pub fn run(a: TradeArgs) -> anyhow::Result<()> {
    limits(&a)?;
    Err(BadArgument("trade --model needs the `learner` feature (default build)".into()).into())
}

#[cfg(feature = "learner")]
pub fn run(a: TradeArgs) -> anyhow::Result<()> {
    use super::{backtest, train};
    use anyhow::Context;
    use ploutos::config::{DataSource, ObservationLayout};
    use ploutos::dataset::SplitPart;
    use ploutos::market::calendar::format_timestamp;
    use ploutos::trade::{Entry, Journal, LiveMarket, Quantity, ReplayBroker, Session, TradeOptions, trade};
    use std::io::Write;
    use std::path::PathBuf;

    let limits = limits(&a)?;
    if a.broker == "alpaca" {
        return Err(BadArgument(
            "--broker alpaca: the adapter is in place (orders, account, bars), the live pacing of the loop (waiting for each close and open on Alpaca's clock, reading the opening prices) is not yet: use --broker replay".into(),
        )
        .into());
    }
    let mut cfg = backtest::model_config(&a.model, &a.common.overrides)?;
    let model_tickers = cfg.data.tickers.clone();
    let mut part: SplitPart = a.split.parse().map_err(BadArgument)?;
    if let Some(dir) = &a.data {
        cfg.data.source = DataSource::Csv;
        cfg.data.csv_dir = dir.display().to_string();
        part = SplitPart::All;
    }
    let scaler = backtest::load_scaler(&a.model)?;
    let ds = train::load_dataset(&cfg, Some(scaler.clone()))?;
    if ds.panel.tickers() != model_tickers.as_slice() {
        return Err(BadArgument(format!(
            "--model {} trades {}, the data has {}",
            a.model.display(),
            model_tickers.join(" "),
            ds.panel.tickers().join(" ")
        ))
        .into());
    }
    let range = backtest::period(&ds, part, a.from.as_deref(), a.to.as_deref())?;
    if range.len() < 2 {
        return Err(BadArgument(format!("the period holds {} bars: a session needs at least 2", range.len())).into());
    }
    let device = ploutos::ppo::parse_device(&cfg.training.device).map_err(|e| BadArgument(e.to_string()))?;
    let mut policy = ploutos::ppo::Policy::load(&a.model, device).map_err(|e| BadArgument(format!("--model: {e}")))?;
    if policy.spec().n_tickers != model_tickers.len() {
        return Err(BadArgument(format!(
            "--model {}: the network trades {} tickers, the data has {}",
            a.model.display(),
            policy.spec().n_tickers,
            model_tickers.len()
        ))
        .into());
    }
    policy.use_materialized_rows().map_err(|e| BadArgument(format!("--model: {e}")))?;
    cfg.environment.observation_layout = ObservationLayout::Materialized;

    let run = a.run.clone().or_else(|| cfg.training.run_name.clone()).unwrap_or_else(|| {
        let root = ploutos::ppo::checkpoint::run_root(&a.model);
        root.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
    });
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("trades").join(&run));
    let journal_path = out.join("journal.jsonl");
    if journal_path.exists() {
        return Err(BadArgument(format!(
            "{} exists: a replay starts a new account; pick another --run or --out, or remove it",
            journal_path.display()
        ))
        .into());
    }
    let panel = &ds.panel;
    let cells = |high: bool| -> Vec<f64> {
        (0..panel.n_bars())
            .flat_map(|t| (0..panel.n_tickers()).map(move |k| if high { panel.high(k)[t] } else { panel.low(k)[t] }))
            .collect()
    };
    let mut broker = ReplayBroker::new(&cfg.environment, ds.market.clone(), panel.timestamps().to_vec(), range.start)
        .and_then(|b| b.with_high_low(cells(true), cells(false)))
        .context("replay broker")?;
    let mut live = LiveMarket::new(panel.tickers().to_vec(), cfg.data.interval, scaler);
    let mut session = Session::new(&cfg.environment, &policy, range.start);
    let mut journal =
        Journal::open(&journal_path).with_context(|| format!("cannot open {}", journal_path.display()))?;
    let first_bar_time = panel.timestamps()[range.start];
    let start = Entry::Start {
        time: first_bar_time,
        run: run.clone(),
        model: a.model.display().to_string(),
        broker: a.broker.clone(),
        dry_run: a.dry_run,
        first_bar_time,
        initial_cash: cfg.environment.initial_cash,
    };
    journal.write_synced(&start).with_context(|| format!("cannot write {}", journal_path.display()))?;
    let opts = TradeOptions { run, dry_run: a.dry_run, limits };
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts)?;

    let interval = panel.interval();
    let orders_path = out.join("orders.csv");
    let listed: Vec<(i64, &ploutos::trade::OrderRequest, &str)> = summary
        .sent
        .iter()
        .map(|o| (o.fill_time, &o.request, "sent"))
        .chain(summary.withheld.iter().map(|(r, why)| (0, r, why.as_str())))
        .collect();
    ploutos::fsutil::write_atomic_with(&orders_path, |w| {
        writeln!(w, "time,ticker,side,shares,client_order_id,status")?;
        for (time, r, status) in &listed {
            let (Quantity::Shares(shares) | Quantity::Notional(shares)) = r.quantity;
            let side = if r.side == ploutos::trade::OrderSide::Buy { "buy" } else { "sell" };
            let time = if *time == 0 { String::new() } else { format_timestamp(*time, interval) };
            let status = status.replace(',', ";");
            writeln!(w, "{time},{},{side},{shares},{},{status}", r.ticker, r.client_order_id)?;
        }
        Ok(())
    })
    .with_context(|| format!("cannot write {}", orders_path.display()))?;
    println!(
        "ploutos: traded {} bars from {} to {}: {} orders sent, {} withheld{}",
        summary.decisions,
        format_timestamp(panel.timestamps()[range.start], interval),
        format_timestamp(panel.timestamps()[range.end - 1], interval),
        summary.sent.len(),
        summary.withheld.len(),
        summary.stopped.as_deref().map(|s| format!("; stopped: {s}")).unwrap_or_default()
    );
    println!("ploutos: journal {}, orders {}", journal_path.display(), orders_path.display());
    Ok(())
}
