//! `ploutos trade`: a model traded bar by bar through a broker ([`ploutos::trade`]): the
//! bars arrive one at a time, the features follow them incrementally, the env's own systems
//! decide at each close and size the orders at the next open, the limits and the journal
//! guard every order. `--broker replay` replays the bars of the data as a live feed and
//! fills with the env's models: over a backtest's period it sends the backtest's trades.

use super::BadArgument;
use super::args::TradeArgs;
use ploutos::trade::Limits;

/// The safety limits of the command line, checked (the interrupt is added by `run`).
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
        interrupt: None,
    })
}

/// How a session that stopped before its end ends the command: exit 130 after Ctrl-C
/// (`opts`' interrupt raised: also when it cut a wait for the market short, which ends the
/// loop without a stop of its own), 3 after a safety limit, a rejection or an order that
/// did not fill, so that a scheduler tells a stop from a finished period (the journal and
/// `orders.csv` are complete either way).
#[cfg(feature = "learner")]
fn stopped(summary: &ploutos::trade::TradeSummary, opts: &ploutos::trade::TradeOptions) -> anyhow::Result<()> {
    // A limit that stopped the session first says what it was, whatever came after.
    let interrupted = match summary.stopped.as_deref() {
        Some(why) => why == ploutos::trade::Stop::Interrupted.to_string(),
        None => opts.limits.interrupt.as_ref().is_some_and(ploutos::trade::Interrupt::raised),
    };
    match (summary.stopped.as_deref(), interrupted) {
        (None, false) => Ok(()),
        (why, _) => Err(super::Stopped {
            message: why.map_or_else(|| ploutos::trade::Stop::Interrupted.to_string(), str::to_string),
            interrupted,
        }
        .into()),
    }
}

#[cfg(not(feature = "learner"))]
pub fn run(a: TradeArgs) -> anyhow::Result<()> {
    limits(&a)?;
    Err(BadArgument("trade --model needs the `learner` feature (default build)".into()).into())
}

/// Calendar days of bars (daily or hourly) fetched from Alpaca before the first decision:
/// the 52-week levels read 252 trading days, the other features at most 101 bars.
#[cfg(feature = "learner")]
const HISTORY_DAYS: i64 = 400;

#[cfg(feature = "learner")]
pub fn run(a: TradeArgs) -> anyhow::Result<()> {
    use super::backtest;
    use ploutos::config::ObservationLayout;

    let mut limits = limits(&a)?;
    // Ctrl-C stops the session before its next order or bar, with its journal and
    // `orders.csv` complete; a second one quits at once.
    let interrupt = super::stop_on_ctrl_c("stopping before the next order or bar");
    limits.interrupt = Some(ploutos::trade::Interrupt(interrupt));
    if a.broker == "replay" && (a.live || a.paper) {
        return Err(
            BadArgument("--live and --paper choose Alpaca's account: they go with --broker alpaca".into()).into()
        );
    }
    backtest::refuse_config_with_model(&a.common)?;
    let mut cfg = backtest::model_config(&a.model, &a.common.overrides)?;
    let scaler = backtest::load_scaler(&a.model)?;
    let device = ploutos::ppo::parse_device(&cfg.training.device).map_err(|e| BadArgument(e.to_string()))?;
    let mut policy = ploutos::ppo::Policy::load(&a.model, device).map_err(|e| BadArgument(format!("--model: {e}")))?;
    let n_tickers = cfg.data.tickers.len();
    if policy.spec().n_tickers != n_tickers {
        return Err(BadArgument(format!(
            "--model {}: the network trades {} tickers, the data has {n_tickers}",
            a.model.display(),
            policy.spec().n_tickers,
        ))
        .into());
    }
    policy.use_materialized_rows().map_err(|e| BadArgument(format!("--model: {e}")))?;
    cfg.environment.observation_layout = ObservationLayout::Materialized;
    if cfg.environment.fill_timing == ploutos::config::FillTiming::Close {
        // The env would fill each decision at the close it was taken on, where no order can
        // reach a broker any more.
        return Err(BadArgument(
            "environment.fill_timing=close fills at the decision bar's close, which no order sent after it can: trade with --set environment.fill_timing=next_open".into(),
        )
        .into());
    }
    if cfg.environment.max_participation.is_some() {
        return Err(BadArgument(
            "environment.max_participation caps orders by the fill bar's volume, which is not known when the orders go out: trade with --set environment.max_participation=None".into(),
        )
        .into());
    }
    let run = a.run.clone().or_else(|| cfg.training.run_name.clone()).unwrap_or_else(|| {
        let root = ploutos::ppo::checkpoint::run_root(&a.model);
        root.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
    });
    if !ploutos::config::is_run_name(&run) {
        let from = if a.run.is_some() { "--run" } else { "the run's name (set one with --run)" };
        return Err(BadArgument(format!("{from} {run:?} must be {}", ploutos::config::RUN_NAME_RULE)).into());
    }
    let out = a.out.clone().unwrap_or_else(|| std::path::PathBuf::from("trades").join(&run));
    super::check_writable(&out, "--out")?;
    let opts = ploutos::trade::TradeOptions { run, dry_run: a.dry_run, limits, ..Default::default() };
    if a.broker == "alpaca" {
        alpaca(&a, cfg, scaler, &policy, &out, opts)
    } else {
        replay(&a, cfg, scaler, &policy, &out, opts)
    }
}

/// `--broker replay`: the data's bars as a live feed, over the period a backtest would run.
#[cfg(feature = "learner")]
fn replay(
    a: &TradeArgs,
    mut cfg: ploutos::config::Config,
    scaler: ploutos::features::FeatureScaler,
    policy: &ploutos::ppo::Policy,
    out: &std::path::Path,
    opts: ploutos::trade::TradeOptions,
) -> anyhow::Result<()> {
    use super::{backtest, train};
    use anyhow::Context;
    use ploutos::config::DataSource;
    use ploutos::dataset::SplitPart;
    use ploutos::market::calendar::format_timestamp;
    use ploutos::trade::{Entry, Journal, LiveMarket, ReplayBroker, Session, trade};

    let dates = backtest::dates(a.from.as_deref(), a.to.as_deref())?;
    let model_tickers = cfg.data.tickers.clone();
    let mut part: SplitPart = a.split.parse().map_err(BadArgument)?;
    if let Some(dir) = &a.data {
        cfg.data.source = DataSource::Csv;
        cfg.data.csv_dir = dir.display().to_string();
        part = SplitPart::All;
    }
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
    if ds.market.has_invented_bars() || ds.market.has_corporate_actions() {
        return Err(BadArgument(
            "the data has forward-filled bars or splits and dividends for the account, which a live feed does not carry: replay it with data.missing_bars: drop and prices adjusted (data.adjust: splits_and_dividends)".into(),
        )
        .into());
    }
    let range = backtest::period(&ds, part, dates)?;
    backtest::warn_in_sample(&ds, part, range.clone(), cfg.data.interval);
    if range.len() < 2 {
        return Err(BadArgument(format!("the period holds {} bars: a session needs at least 2", range.len())).into());
    }
    let journal_path = out.join("journal.jsonl");
    if journal_path.exists() {
        return Err(BadArgument(format!(
            "{} exists: a replay starts a new account and is not resumed (an Alpaca session is); pick another --run or --out, or remove it",
            journal_path.display()
        ))
        .into());
    }
    let panel = &ds.panel;
    let mut broker = ReplayBroker::new(&cfg.environment, ds.market.clone(), panel.timestamps().to_vec(), range.start)
        .map(|b| b.ending_at(range.end))
        .and_then(|b| b.with_high_low(panel))
        .context("replay broker")?;
    let mut live = LiveMarket::new(panel.tickers().to_vec(), cfg.data.interval, scaler);
    let mut session = Session::new(&cfg.environment, policy, range.start);
    let mut journal =
        Journal::open(&journal_path).with_context(|| format!("cannot open {}", journal_path.display()))?;
    let first_bar_time = panel.timestamps()[range.start];
    let start = Entry::Start {
        time: first_bar_time,
        run: opts.run.clone(),
        model: a.model.display().to_string(),
        broker: a.broker.clone(),
        dry_run: a.dry_run,
        first_bar_time,
        initial_cash: cfg.environment.initial_cash,
        history_since: None,
        session: None,
        model_digest: None,
    };
    journal.write_synced(&start).with_context(|| format!("cannot write {}", journal_path.display()))?;
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts)?;
    let interval = panel.interval();
    write_orders(&out.join("orders.csv"), &summary, interval)?;
    // The last bar decided on: the period's last, or where a limit stopped the session.
    let last = (range.start + summary.decisions.saturating_sub(1)).min(range.end - 1);
    println!(
        "ploutos: traded {} bar{} from {} to {}: {} orders sent, {} withheld{}",
        summary.decisions,
        if summary.decisions == 1 { "" } else { "s" },
        format_timestamp(panel.timestamps()[range.start], interval),
        format_timestamp(panel.timestamps()[last], interval),
        summary.sent.len(),
        summary.withheld.len(),
        summary.stopped.as_deref().map(|s| format!("; stopped: {s}")).unwrap_or_default()
    );
    println!("ploutos: journal {}, orders {}", journal_path.display(), out.join("orders.csv").display());
    stopped(&summary, &opts)
}

/// Where a journal's session resumes (its start entry's).
#[cfg(feature = "learner")]
#[derive(Debug, PartialEq)]
struct Resume {
    first_bar_time: i64,
    initial_cash: f64,
    history_since: Option<i64>,
    /// The tag its client order ids carry (`None` in a journal from before tags).
    session: Option<String>,
}

/// SHA-256 (hex) of the files a model decides with: its weights and, where it has one, its
/// observation normalization.
#[cfg(feature = "learner")]
fn model_digest(model: &std::path::Path) -> anyhow::Result<String> {
    use ploutos::ppo::checkpoint::{MODEL_FILE, NORMALIZER_FILE};
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for name in [MODEL_FILE, NORMALIZER_FILE] {
        let file = model.join(name);
        match std::fs::read(&file) {
            Ok(bytes) => hash.update(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == NORMALIZER_FILE => {}
            Err(e) => return Err(BadArgument(format!("--model: {}: {e}", file.display())).into()),
        }
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// The session `replayed` (read from `path`) holds, to resume: `None` for a journal without
/// one (a new session starts). A session of another run, endpoint or kind (dry or not) is
/// refused: its orders are not this one's; so is one another model decided: other weights
/// (`this_model`'s path and [`model_digest`]), wherever they are (a model moved keeps
/// its session; a journal from before digests compares paths).
#[cfg(feature = "learner")]
fn resume_point(
    replayed: &ploutos::trade::Replayed,
    path: &std::path::Path,
    this_run: &str,
    endpoint: &str,
    this_dry_run: bool,
    (this_model, this_digest): (&std::path::Path, &str),
) -> Result<Option<Resume>, BadArgument> {
    use ploutos::trade::Entry;
    let same_model = |model: &str, digest: &Option<String>| match digest {
        Some(d) => d == this_digest,
        None => super::same_path(std::path::Path::new(model), this_model),
    };
    match replayed.entries.iter().find(|e| matches!(e, Entry::Start { .. })) {
        Some(Entry::Start { run, broker, dry_run, model, model_digest, .. })
            if run == this_run
                && broker == endpoint
                && *dry_run == this_dry_run
                && !same_model(model, model_digest) =>
        {
            let changed = if model_digest.is_some() && super::same_path(std::path::Path::new(model), this_model) {
                " (its weights have changed since: a best/ that training rewrote?)"
            } else {
                ""
            };
            Err(BadArgument(format!(
                "{} holds the session of run {run} traded with --model {model}: this one is --model {}{changed}; pick another --run or --out",
                path.display(),
                this_model.display()
            )))
        }
        Some(Entry::Start { run, broker, dry_run, first_bar_time, initial_cash, history_since, session, .. })
            if run == this_run && broker == endpoint && *dry_run == this_dry_run =>
        {
            Ok(Some(Resume {
                first_bar_time: *first_bar_time,
                initial_cash: *initial_cash,
                history_since: *history_since,
                session: session.clone(),
            }))
        }
        Some(Entry::Start { run, broker, dry_run, .. }) => Err(BadArgument(format!(
            "{} holds the session of run {run} on {broker}{}: this one is {this_run} on {endpoint}{}; pick another --run or --out",
            path.display(),
            if *dry_run { " (dry run)" } else { "" },
            if this_dry_run { " (dry run)" } else { "" },
        ))),
        _ => Ok(None),
    }
}

/// `--broker alpaca`: daily or session-aligned hourly bars on Alpaca's clock, until stopped
/// (Ctrl-C, the kill switch, the daily loss). A journal of the same run resumes its
/// session: the decisions since its first bar are re-derived from the bars and the accounts
/// they were decided on, the orders already sent are found at Alpaca.
#[cfg(feature = "learner")]
fn alpaca(
    a: &TradeArgs,
    mut cfg: ploutos::config::Config,
    scaler: ploutos::features::FeatureScaler,
    policy: &ploutos::ppo::Policy,
    out: &std::path::Path,
    mut opts: ploutos::trade::TradeOptions,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use ploutos::config::Interval;
    use ploutos::market::calendar;
    use ploutos::trade::alpaca::{AlpacaBroker, AlpacaConfig};
    use ploutos::trade::{Broker, Entry, Journal, LiveMarket, Replayed, Session, trade};

    let interval = cfg.data.interval;
    let pdt = &cfg.environment.pdt;
    let margin = cfg.environment.account == ploutos::config::Account::Margin;
    if pdt.enabled && margin && pdt.window_days != 5 {
        return Err(BadArgument(format!(
            "environment.pdt.window_days {}: Alpaca counts day trades over FINRA's 5 trading days, and the session reads its count; trade with --set environment.pdt.window_days=5",
            pdt.window_days
        ))
        .into());
    }
    let config = AlpacaConfig::from_env(a.live, interval).map_err(|e| BadArgument(e.to_string()))?;
    // A session runs for days: one line per bar, and the adapter's retries, on stderr. The
    // HTTP client's own logs stay off whatever RUST_LOG says: at trace level they dump the
    // request headers, the secret key among them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info".into())
        .add_directive("ureq=off".parse().expect("a valid directive"))
        .add_directive("ureq_proto=off".parse().expect("a valid directive"));
    // Colors only on a terminal: a session's log is often a file that runs for days.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .try_init();
    let mut broker = AlpacaBroker::new(config);
    if let Some(interrupt) = &opts.limits.interrupt {
        broker = broker.with_interrupt(interrupt.clone());
    }
    let tickers = cfg.data.tickers.clone();
    let journal_path = out.join("journal.jsonl");
    let replayed = Replayed::read(&journal_path).map_err(|e| BadArgument(e.to_string()))?;
    let endpoint = if a.live { "alpaca-live" } else { "alpaca-paper" };
    let digest = model_digest(&a.model)?;
    let resume = resume_point(&replayed, &journal_path, &opts.run, endpoint, a.dry_run, (&a.model, &digest))?;
    if let Some(r) = &resume {
        // The session's orders keep the ids they were sent with.
        opts.session.clone_from(&r.session);
    }
    let clock = broker.clock()?;
    let account = broker.account()?;
    if account.trading_blocked {
        return Err(BadArgument("alpaca: trading is blocked on this account".into()).into());
    }
    // Orders Alpaca would reject at the first bar (a fractional order of a name it does not
    // split, a fractional or impossible short sale): a new session is refused, with what to
    // change; a resumed one (which may hold positions to manage) is warned, since Alpaca
    // can change its mind about a name after the session started.
    let fractional = cfg.environment.fractional_shares;
    for ticker in &tickers {
        let asset = broker.asset(ticker).map_err(|e| match e {
            ploutos::trade::BrokerError::Transient(_) => anyhow::Error::from(e),
            e => BadArgument(e.to_string()).into(),
        })?;
        let shorts = ploutos::trade::alpaca::may_short(&cfg.environment, ticker);
        if let Some(why) = ploutos::trade::alpaca::asset_refusal(&asset, fractional, shorts) {
            if resume.is_none() {
                return Err(BadArgument(why).into());
            }
            tracing::warn!("{why}; the resumed session goes on, and such an order would be rejected");
        }
        if shorts && !asset.easy_to_borrow {
            tracing::warn!("alpaca: {ticker} is hard to borrow today: a short sale of it may be refused");
        }
    }
    let since = match &resume {
        Some(Resume { history_since: Some(since), .. }) => *since,
        Some(r) => r.first_bar_time - HISTORY_DAYS * 86_400,
        None => clock.now - HISTORY_DAYS * 86_400,
    };
    let mut live = LiveMarket::new(tickers.clone(), interval, scaler);
    let history = broker.bars_since(&tickers, since)?;
    ploutos::trade::extend_live(&mut broker, &mut live, &history)?;
    if live.n_bars() < ploutos::features::MIN_BARS {
        return Err(BadArgument(format!(
            "alpaca has {} {} bars of {} since {}: the features need {}",
            live.n_bars(),
            if interval == Interval::Day { "daily" } else { "hourly" },
            tickers.join(" "),
            calendar::format_timestamp(since, Interval::Day),
            ploutos::features::MIN_BARS
        ))
        .into());
    }
    let (first_bar_time, initial_cash) = match &resume {
        Some(r) => (r.first_bar_time, r.initial_cash),
        None => {
            if let Some(p) = broker.positions()?.iter().find(|p| tickers.contains(&p.ticker)) {
                return Err(BadArgument(format!(
                    "the account holds {} shares of {}: a new session starts flat in its tickers (close them, or resume the run that holds them)",
                    p.shares, p.ticker
                ))
                .into());
            }
            // The first decision is at the next close the session can act on.
            let newest = live.times().last().copied().unwrap_or_default();
            // The sessions of the last ten days Alpaca's calendar lacks (called off after
            // this build): their bars never come.
            let today = calendar::ny_date(clock.now);
            let mut off = std::collections::BTreeSet::new();
            for date in (today - chrono::Days::new(10)).iter_days().take_while(|d| *d <= today) {
                if broker.called_off(date)? {
                    off.insert(date);
                }
            }
            let first = ploutos::trade::first_decision_bar_skipping(interval, &clock, newest, |d| off.contains(&d));
            let Some(first) = first else {
                return Err(BadArgument(
                    "alpaca does not serve the bar of today's session yet: start again in a few minutes".into(),
                )
                .into());
            };
            // The session's money is the account's cash (what its buys can spend).
            if account.cash.is_nan() || account.cash <= 0.0 {
                return Err(BadArgument(format!(
                    "the account's cash is {}: a new session needs cash to trade with",
                    account.cash
                ))
                .into());
            }
            (first, account.cash)
        }
    };
    cfg.environment.initial_cash = initial_cash;
    opts.first_bar_time = Some(first_bar_time);
    let start = live.times().partition_point(|&t| t < first_bar_time);
    let mut session = Session::new(&cfg.environment, policy, start);
    // A resumed session decides its earlier bars again on the accounts they were decided on.
    session.restore(&replayed);
    let mut journal =
        Journal::open(&journal_path).with_context(|| format!("cannot open {}", journal_path.display()))?;
    if resume.is_none() {
        // A new session's orders carry a tag of their own (see `TradeOptions::session`).
        opts.session = Some(ploutos::trade::session_tag());
        let entry = Entry::Start {
            time: clock.now,
            run: opts.run.clone(),
            model: a.model.display().to_string(),
            broker: endpoint.to_string(),
            dry_run: a.dry_run,
            first_bar_time,
            initial_cash,
            history_since: Some(since),
            session: opts.session.clone(),
            model_digest: Some(digest.clone()),
        };
        journal.write_synced(&entry).with_context(|| format!("cannot write {}", journal_path.display()))?;
    }
    println!(
        "ploutos: trading {} on alpaca ({}), first decision at the close of {}; journal {}",
        tickers.join(" "),
        if a.live { "live" } else { "paper" },
        calendar::format_timestamp(first_bar_time, interval),
        journal_path.display()
    );
    let summary = trade(&mut broker, &mut live, &mut session, &mut journal, &opts)?;
    write_orders(&out.join("orders.csv"), &summary, interval)?;
    println!(
        "ploutos: {} decisions, {} orders sent, {} withheld{}",
        summary.decisions,
        summary.sent.len(),
        summary.withheld.len(),
        summary.stopped.as_deref().map(|s| format!("; stopped: {s}")).unwrap_or_default()
    );
    stopped(&summary, &opts)
}

/// `orders.csv`: every order sent, then every order withheld (with why), atomically.
#[cfg(feature = "learner")]
fn write_orders(
    path: &std::path::Path,
    summary: &ploutos::trade::TradeSummary,
    interval: ploutos::config::Interval,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use ploutos::market::calendar::format_timestamp;
    use ploutos::trade::{OrderSide, Quantity};
    use std::io::Write;

    let listed = summary
        .sent
        .iter()
        .map(|o| (Some(o.fill_time), &o.request, "sent"))
        .chain(summary.withheld.iter().map(|(r, why, time)| (Some(*time), r, why.as_str())));
    ploutos::fsutil::write_atomic_with(path, |w| {
        writeln!(w, "time,ticker,side,shares,client_order_id,status")?;
        for (time, r, status) in listed {
            let (Quantity::Shares(shares) | Quantity::Notional(shares)) = r.quantity;
            let side = if r.side == OrderSide::Buy { "buy" } else { "sell" };
            let time = time.filter(|&t| t != i64::MAX).map(|t| format_timestamp(t, interval)).unwrap_or_default();
            writeln!(w, "{time},{},{side},{shares},{},{}", r.ticker, r.client_order_id, status.replace(',', ";"))?;
        }
        Ok(())
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(all(test, feature = "learner"))]
mod tests {
    use super::*;
    use ploutos::trade::{Entry, Journal, Replayed};

    /// A resume takes its journal's session, the tag of its order ids included (a journal
    /// from before tags: none); another run, endpoint, kind or model is refused.
    /// The digest covers the weights and the normalization, each byte of them; a model
    /// without a normalization file has one, a model without weights is refused.
    #[test]
    fn the_model_digest_follows_the_weights() {
        use ploutos::ppo::checkpoint::{MODEL_FILE, NORMALIZER_FILE};
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path();
        assert!(model_digest(m).unwrap_err().to_string().contains(MODEL_FILE));
        std::fs::write(m.join(MODEL_FILE), b"weights").unwrap();
        let bare = model_digest(m).unwrap();
        assert_eq!(bare.len(), 64);
        std::fs::write(m.join(NORMALIZER_FILE), b"stats").unwrap();
        let normalized = model_digest(m).unwrap();
        assert_ne!(normalized, bare);
        std::fs::write(m.join(MODEL_FILE), b"weightz").unwrap();
        assert_ne!(model_digest(m).unwrap(), normalized);
        std::fs::write(m.join(MODEL_FILE), b"weights").unwrap();
        assert_eq!(model_digest(m).unwrap(), normalized, "the same bytes, the same digest");
    }

    #[test]
    fn a_resume_takes_the_journals_session_and_its_tag() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, session: Option<&str>| {
            let path = dir.path().join(name);
            let start = Entry::Start {
                time: 1,
                run: "r".into(),
                model: "m".into(),
                broker: "alpaca-paper".into(),
                dry_run: false,
                first_bar_time: 100,
                initial_cash: 5.0,
                history_since: Some(7),
                session: session.map(Into::into),
                model_digest: session.map(|_| "d1".into()),
            };
            Journal::open(&path).unwrap().write_synced(&start).unwrap();
            (Replayed::read(&path).unwrap(), path)
        };
        let m = (std::path::Path::new("m"), "d1");
        let empty = dir.path().join("none.jsonl");
        assert_eq!(
            resume_point(&Replayed::read(&empty).unwrap(), &empty, "r", "alpaca-paper", false, m).unwrap(),
            None
        );
        let (tagged, path) = read("tagged.jsonl", Some("k3x9a2"));
        let want =
            Resume { first_bar_time: 100, initial_cash: 5.0, history_since: Some(7), session: Some("k3x9a2".into()) };
        assert_eq!(resume_point(&tagged, &path, "r", "alpaca-paper", false, m).unwrap(), Some(want));
        let (old, path) = read("old.jsonl", None);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("session"));
        assert_eq!(resume_point(&old, &path, "r", "alpaca-paper", false, m).unwrap().unwrap().session, None);
        for (run, endpoint, dry_run) in
            [("s", "alpaca-paper", false), ("r", "alpaca-live", false), ("r", "alpaca-paper", true)]
        {
            let err = resume_point(&tagged, &path, run, endpoint, dry_run, m).unwrap_err().to_string();
            assert!(err.contains("holds the session of run r on alpaca-paper"), "{err}");
        }
        // A journal with the model's digest compares weights: the same ones moved resume,
        // other ones under the same path (a best/ rewritten since) are refused; one from
        // before digests compares paths.
        let moved = (std::path::Path::new("other"), "d1");
        assert!(resume_point(&tagged, &path, "r", "alpaca-paper", false, moved).unwrap().is_some());
        let rewritten = (std::path::Path::new("m"), "d2");
        let err = resume_point(&tagged, &path, "r", "alpaca-paper", false, rewritten).unwrap_err().to_string();
        assert!(err.contains("traded with --model m: this one is --model m (its weights have changed since"), "{err}");
        let other = (std::path::Path::new("other"), "d2");
        let err = resume_point(&tagged, &path, "r", "alpaca-paper", false, other).unwrap_err().to_string();
        assert!(err.contains("traded with --model m: this one is --model other;"), "{err}");
        let (old, path) = read("old2.jsonl", None);
        let err = resume_point(&old, &path, "r", "alpaca-paper", false, moved).unwrap_err().to_string();
        assert!(err.contains("traded with --model m: this one is --model other;"), "{err}");
        assert!(resume_point(&old, &path, "r", "alpaca-paper", false, rewritten).unwrap().is_some());
    }
}
