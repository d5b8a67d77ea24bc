//! A plain single-env reference of one step, written from the env's docs (the execution
//! contract in `ploutos::env`, answers 1–15 and 17–21, and the docs of `execution`, `execution::fill`,
//! `execution::fees`, `rules::*`, `reward` and `env::observation`), driven side by side with
//! the batched ECS [`TradingEnv`] on random actions.
//!
//! The reference shares nothing with the crate but its config structs, the [`MarketData`]
//! accessors and the refusal names. Step for step and env for env it must produce the same
//! trades (every field of the trade log), refusals by reason, portfolio and positions,
//! rewards, done flags, infos and observations.
//!
//! Auto-reset: the reference owns its episode-start stream, derived as the docs say (env i
//! draws from ChaCha8 seeded with the reset seed, stream i; starts uniform in
//! `[first, max(first, last − episode_length)]`, the same stream continuing through
//! auto-resets). On a done step it compares its finished episode's last observation with
//! `final_obs`, then starts its next episode from its own stream and compares the new
//! observation with `obs`.

use ploutos::config::{
    Account, BuySizing, EnvironmentConfig, FillTiming, ObservationLayout, PdtConfig, PdtEquity, RewardMode, TafModel,
};
use ploutos::env::{EnvId, EpisodeBounds, MarketData, Orders, Side, TradeRecord};
use ploutos::{EnvOptions, TradingEnv};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstest::rstest;

// ---------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RefPosition {
    shares: f64,
    avg_cost: f64,
    opened_bar: u32,
    last_buy_bar: u32,
    last_buy_day: u32,
}

/// One env, one account, written from the docs.
struct RefEnv<'m> {
    cfg: EnvironmentConfig,
    m: &'m MarketData,
    bounds: EpisodeBounds,
    rng: ChaCha8Rng,
    names: Vec<String>,
    // Account.
    cash: f64,
    pos: Vec<RefPosition>,
    equity: f64,
    peak: f64,
    /// Every step return of the episode (the Sharpe term uses the last `sharpe_window`).
    returns: Vec<f64>,
    dsr_a: f64,
    dsr_b: f64,
    episode_reward: f64,
    /// (trading day, orders executed that day).
    executed_day: Option<(u32, u32)>,
    /// The trading day of every day trade of the episode.
    day_trades: Vec<u32>,
    /// Cash account: proceeds (net of fees) of the sells filled on trading day `.0`, not
    /// settled before the next trading day (answer 18).
    unsettled: (u32, f64),
    /// Every bar of the episode marked so far, with its equity (the start bar with the
    /// initial cash): where `pdt.equity: previous_close` looks (answer 8).
    marks: Vec<(u32, f64)>,
    // Clock.
    bar: u32,
    steps: u32,
}

/// What the reference says one step produced.
struct RefStep {
    trades: Vec<TradeRecord>,
    refused: Vec<u32>,
    executed: u32,
    reward: f64,
    step_return: f64,
    equity: f64,
    cash: f64,
    bar: u32,
    episode_reward: f64,
    episode_steps: u32,
    terminated: bool,
    truncated: bool,
    /// Last observation of the finished episode, when done.
    final_obs: Option<Vec<f32>>,
}

impl<'m> RefEnv<'m> {
    fn new(
        cfg: &EnvironmentConfig,
        m: &'m MarketData,
        bounds: EpisodeBounds,
        seed: u64,
        index: usize,
        names: Vec<String>,
    ) -> Self {
        // "env i draws from stream (seed, i)".
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index as u64);
        let mut env = Self {
            cfg: cfg.clone(),
            m,
            bounds,
            rng,
            names,
            cash: 0.0,
            pos: vec![],
            equity: 0.0,
            peak: 0.0,
            returns: vec![],
            dsr_a: 0.0,
            dsr_b: 0.0,
            episode_reward: 0.0,
            executed_day: None,
            day_trades: vec![],
            unsettled: (0, 0.0),
            marks: vec![],
            bar: 0,
            steps: 0,
        };
        env.start_episode();
        env
    }

    fn start_episode(&mut self) {
        let b = self.bounds;
        let latest = b.last.saturating_sub(self.cfg.episode_length as u32).max(b.first);
        self.bar = if b.random_start && latest > b.first { self.rng.random_range(b.first..=latest) } else { b.first };
        self.steps = 0;
        self.cash = self.cfg.initial_cash;
        self.pos = vec![RefPosition::default(); self.m.n_tickers()];
        self.equity = self.cfg.initial_cash;
        self.peak = self.cfg.initial_cash;
        self.returns.clear();
        self.dsr_a = 0.0;
        self.dsr_b = 0.0;
        self.episode_reward = 0.0;
        self.executed_day = None;
        self.day_trades.clear();
        self.unsettled = (0, 0.0);
        self.marks = vec![(self.bar, self.cfg.initial_cash)];
    }

    /// Whether the PDT rule applies: on, and a margin account (answer 18).
    fn pdt_on(&self) -> bool {
        self.cfg.pdt.enabled && self.cfg.account == Account::Margin
    }

    /// The equity the PDT rule reads for an order filling on trading day `day` (answer 8):
    /// the decision bar's, or the last close before `day` (the initial cash when the
    /// episode has none).
    fn pdt_equity(&self, day: u32) -> f64 {
        match self.cfg.pdt.equity {
            PdtEquity::DecisionBar => self.equity,
            PdtEquity::PreviousClose => self
                .marks
                .iter()
                .rev()
                .find(|&&(bar, _)| self.m.day(bar as usize) < day)
                .map_or(self.cfg.initial_cash, |&(_, e)| e),
        }
    }

    /// The most shares an order filling at `bar` may fill (answer 17): `None` without a cap,
    /// else the cap or the refusal's name.
    fn participation_cap(&self, bar: usize, k: usize) -> Option<Result<f64, &'static str>> {
        let p = self.cfg.max_participation?;
        let volume = self.m.volume(bar, k).expect("the market has volumes");
        if volume <= 0.0 {
            return Some(Err("zero_volume"));
        }
        let cap = if self.cfg.fractional_shares { p * volume } else { (p * volume).floor() };
        Some(if cap > 0.0 { Ok(cap) } else { Err("participation") })
    }

    fn reason(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("built-in reason")
    }

    fn executed_on(&self, day: u32) -> u32 {
        match self.executed_day {
            Some((d, n)) if d == day => n,
            _ => 0,
        }
    }

    /// Day trades on the trading days `day − window + 1 ..= day` (ordinals count only days
    /// with bars, so this is "the fill's day and the 4 trading days before it").
    fn day_trades_in_window(&self, day: u32) -> u32 {
        let w = self.cfg.pdt.window_days;
        self.day_trades.iter().filter(|&&d| d <= day && day - d < w).count() as u32
    }

    fn next_open(&self) -> bool {
        self.cfg.fill_timing == FillTiming::NextOpen
    }

    /// Applies the splits and dividends of `bar` to the positions held (answer 19): shares ×
    /// ratio (whole shares unless fractional, the rest paid at the previous close ÷ ratio),
    /// cost basis ÷ ratio, then dividend × shares to cash. Returns the tickers whose position
    /// a reverse split paid out whole (shorts too, answer 20: their shares are negative).
    fn corporate_actions(&mut self, bar: usize) -> Vec<usize> {
        let mut gone = vec![];
        for k in 0..self.pos.len() {
            let (ratio, dividend) = self.m.corporate_action(bar, k);
            let p = &mut self.pos[k];
            if p.shares == 0.0 {
                continue;
            }
            if ratio != 1.0 {
                let shares = p.shares * ratio;
                let kept = if self.cfg.fractional_shares { shares } else { ((shares * 1e9).round() / 1e9).trunc() };
                self.cash += (shares - kept) * self.m.close_row(bar - 1)[k] / ratio;
                if kept == 0.0 {
                    *p = RefPosition::default();
                    gone.push(k);
                    continue;
                }
                p.shares = kept;
                p.avg_cost /= ratio;
            }
            self.cash += p.shares * dividend;
        }
        gone
    }

    fn sell_fees(&self, shares: f64, notional: f64) -> f64 {
        let f = &self.cfg.fees;
        let taf = match f.taf_model {
            TafModel::Notional => f.taf_rate * notional,
            TafModel::PerShare => (f.taf_per_share * shares).min(f.taf_max_per_trade),
        };
        f.sec_fee_rate * notional + taf + f.commission_per_order
    }

    fn step(&mut self, actions: &[u8]) -> RefStep {
        let cfg = self.cfg.clone();
        let m = self.m;
        let t = self.bar as usize;
        // Orders fill at t+1's open (or t's close); they count on the fill bar's day.
        let fill_bar = if self.next_open() { t + 1 } else { t };
        let day = m.day(fill_bar);
        let refs: Vec<f64> = if self.next_open() { m.open_row(t + 1).to_vec() } else { m.close_row(t).to_vec() };
        let mut refused = vec![0u32; self.names.len()];
        // A new trading day: the previous days' sell proceeds have settled.
        if self.unsettled.0 != day {
            self.unsettled = (day, 0.0);
        }

        // Actions: 0 hold, 1 buy, 2 sell, anything else invalid (held); sell while flat. With
        // short selling (answer 20) a sell when not long opens a short, a buy when short
        // covers it.
        let shorting = cfg.short_selling.enabled;
        let mut sells = vec![];
        let mut covers = vec![];
        let mut opens = vec![];
        let mut buys = vec![];
        // Target positions (answer 21): the most shares an exit closes, and what an order
        // opens (after its exit, when it goes through zero).
        let n = actions.len();
        let (mut want, mut rest) = (vec![f64::INFINITY; n], vec![0.0; n]);
        // The signed order of each ticker, in shares (0: none).
        let mut order = vec![0.0; n];
        let targets = &cfg.target_positions;
        for (k, &a) in actions.iter().enumerate() {
            if targets.enabled {
                let a = usize::from(a);
                if a == 255 {
                    continue;
                }
                if a >= targets.levels.len() {
                    refused[self.reason("invalid_action")] += 1;
                    continue;
                }
                let (e, c, held) = (self.equity.max(0.0), m.close_row(t)[k], self.pos[k].shares);
                let raw = if c > 0.0 { targets.levels[a] * cfg.max_position_pct * e / c } else { 0.0 };
                let d = if cfg.fractional_shares { raw } else { raw.trunc() } - held;
                if d == 0.0 || (d * c).abs() < targets.no_trade_band * cfg.max_position_pct * e {
                    continue;
                }
                order[k] = d;
                match (d > 0.0, held) {
                    (false, h) if h > 0.0 => (want[k], rest[k], _) = (-d, (-d - h).max(0.0), sells.push(k)),
                    (true, h) if h < 0.0 => (want[k], rest[k], _) = (d, (d + h).max(0.0), covers.push(k)),
                    (false, _) => (rest[k], _) = (-d, opens.push(k)),
                    (true, _) => (rest[k], _) = (d, buys.push(k)),
                }
                continue;
            }
            match a {
                0 => {}
                1 if self.pos[k].shares < 0.0 => covers.push(k),
                1 => buys.push(k),
                2 if self.pos[k].shares > 0.0 => sells.push(k),
                2 if shorting => opens.push(k),
                2 => refused[self.reason("no_position")] += 1,
                _ => refused[self.reason("invalid_action")] += 1,
            }
        }

        // The `no_short` list, before the built-in rules.
        let tickers = m.tickers();
        opens.retain(|&k| {
            let listed = cfg.short_selling.no_short.contains(&tickers[k]);
            if listed {
                refused[self.names.iter().position(|n| n == "not_shortable").unwrap()] += 1;
            }
            !listed
        });
        // A flip into a short is refused whole.
        sells.retain(|&k| {
            let listed = rest[k] > 0.0 && cfg.short_selling.no_short.contains(&tickers[k]);
            if listed {
                refused[self.names.iter().position(|n| n == "not_shortable").unwrap()] += 1;
            }
            !listed
        });

        // Rule 0: no fill on an invented bar of the ticker (answer 15), the whole order.
        let invented = m.invented(fill_bar);
        for list in [&mut sells, &mut covers, &mut opens, &mut buys] {
            list.retain(|&k| {
                let hit = invented >> k & 1 == 1;
                if hit {
                    refused[self.names.iter().position(|n| n == "invented_bar").unwrap()] += 1;
                }
                !hit
            });
        }

        // Rule 1: minimum holding period, age = fill bar − fill bar of the latest buy (or
        // short sale, for a cover).
        for exits in [&mut sells, &mut covers] {
            exits.retain(|&k| {
                let young = (fill_bar as u32).saturating_sub(self.pos[k].last_buy_bar) < cfg.min_holding_bars;
                if young {
                    refused[self.names.iter().position(|n| n == "holding_period").unwrap()] += 1;
                }
                !young
            });
        }

        // Rule 2: PDT, on the equity of answer 8, margin accounts only; exits (sells of
        // longs, covers of shorts) in ticker order.
        if self.pdt_on() && self.pdt_equity(day) < cfg.pdt.equity_threshold {
            let mut count = self.day_trades_in_window(day);
            let pdt = self.reason("pdt");
            let mut exits: Vec<usize> = sells.iter().chain(&covers).copied().collect();
            exits.sort();
            let mut out = vec![];
            for k in exits {
                if self.pos[k].last_buy_day != day {
                    continue;
                }
                if count + 1 > cfg.pdt.max_day_trades {
                    refused[pdt] += 1;
                    out.push(k);
                } else {
                    count += 1;
                }
            }
            sells.retain(|k| !out.contains(k));
            covers.retain(|k| !out.contains(k));
        }

        // Rule 3: orders per day, admitted in execution order.
        if let Some(cap) = cfg.max_trades_per_day {
            let mut left = cap.saturating_sub(self.executed_on(day));
            let r = self.reason("trades_per_day");
            for list in [&mut sells, &mut covers, &mut opens, &mut buys] {
                list.retain(|_| {
                    if left > 0 {
                        left -= 1;
                        true
                    } else {
                        refused[r] += 1;
                        false
                    }
                });
            }
        }

        // Splits and dividends of bar t+1 (answer 19): before fills at its open.
        if self.next_open() {
            let gone = self.corporate_actions(t + 1);
            // A sized order waiting for a split's open is multiplied by its ratio, whole
            // shares toward zero (answer 21), and split again into its exit and opening parts
            // against the split position.
            for k in (0..n).filter(|&k| order[k] != 0.0) {
                let ratio = m.corporate_action(t + 1, k).0;
                if ratio == 1.0 {
                    continue;
                }
                let q = order[k] * ratio;
                let d = if cfg.fractional_shares { q } else { ((q * 1e9).round() / 1e9).trunc() };
                let held = self.pos[k].shares;
                (want[k], rest[k]) = if sells.contains(&k) {
                    (-d, (-d - held).max(0.0))
                } else if covers.contains(&k) {
                    (d, (d + held).max(0.0))
                } else {
                    (f64::INFINITY, d.abs())
                };
            }
            // A paid-out position's exit has nothing left to close.
            for k in gone {
                for exits in [&mut sells, &mut covers] {
                    if let Some(i) = exits.iter().position(|&s| s == k) {
                        exits.remove(i);
                        refused[self.reason("no_position")] += 1;
                    }
                }
            }
        }

        // Execution: sells first, in ticker order, then buys.
        let h = cfg.spread_bps / 2.0 / 1e4;
        let atr = m.atr_frac_row(t);
        let vol = m.ret_std_row(t);
        let mean_volume = m.mean_volume_row(t);
        let impact_of = |k: usize, shares: f64| {
            if cfg.impact_coef == 0.0 || shares <= 0.0 {
                0.0
            } else {
                cfg.impact_coef * vol[k] * (shares / mean_volume[k]).sqrt()
            }
        };
        let mut trades = vec![];
        let mut executed = 0u32;

        // A margin call (answer 20): the equity at the decision bar's close under the
        // maintenance margin closes whole positions at the reference prices, shorts then
        // longs in ticker order, until it is met; the agent's orders of those are refused.
        if shorting {
            let mm = cfg.short_selling.maintenance_margin;
            let met = |cash: f64, pos: &[RefPosition], prices: &[f64]| {
                let net: f64 = pos.iter().zip(prices).map(|(p, x)| p.shares * x).sum();
                let gross: f64 = pos.iter().zip(prices).map(|(p, x)| p.shares.abs() * x).sum();
                cash + net >= mm * gross
            };
            if !met(self.cash, &self.pos, m.close_row(t)) {
                let order: Vec<usize> = (0..self.pos.len())
                    .filter(|&k| self.pos[k].shares < 0.0)
                    .chain((0..self.pos.len()).filter(|&k| self.pos[k].shares > 0.0))
                    .collect();
                let mut closed = vec![];
                for k in order {
                    if met(self.cash, &self.pos, &refs) {
                        break;
                    }
                    // Nothing traded on an invented bar: that position stays (answer 15).
                    if invented >> k & 1 == 1 {
                        continue;
                    }
                    if mean_volume[k] <= 0.0 && cfg.impact_coef > 0.0 {
                        continue;
                    }
                    let (r, s) = (refs[k], cfg.slippage_atr_mult * atr[k]);
                    let q = self.pos[k].shares.abs();
                    let i = impact_of(k, q);
                    let (side, fill, fees) = if self.pos[k].shares < 0.0 {
                        let fill = r * (1.0 + h + s + i);
                        let fees = cfg.fees.commission_per_order;
                        self.cash -= q * fill + fees;
                        (Side::Buy, fill, fees)
                    } else {
                        let fill = (r * (1.0 - h - s - i)).max(0.0);
                        let fees = self.sell_fees(q, q * fill).min((self.cash + q * fill).max(0.0));
                        self.cash += q * fill - fees;
                        (Side::Sell, fill, fees)
                    };
                    if self.pos[k].last_buy_day == day {
                        self.day_trades.push(day);
                    }
                    trades.push(TradeRecord {
                        bar: fill_bar as u32,
                        ticker: k as u16,
                        side,
                        shares: q,
                        reference_price: r,
                        fill_price: fill,
                        spread: q * r * h,
                        slippage: q * r * s,
                        impact: q * r * i,
                        fees,
                        cash_after: self.cash,
                        unfilled: 0.0,
                        forced: Some(ploutos::env::Refusal::MARGIN_CALL),
                    });
                    self.pos[k] = RefPosition::default();
                    executed += 1;
                    closed.push(k);
                }
                let call = self.reason("margin_call");
                for list in [&mut sells, &mut covers, &mut opens, &mut buys] {
                    list.retain(|k| {
                        let hit = closed.contains(k);
                        refused[call] += u32::from(hit);
                        !hit
                    });
                }
            }
        }

        let (mut flips_short, mut flips_long) = (vec![], vec![]);
        for &k in &sells {
            if mean_volume[k] <= 0.0 && cfg.impact_coef > 0.0 {
                refused[self.reason("no_liquidity")] += 1;
                continue;
            }
            let (held, w) = (self.pos[k].shares, self.pos[k].shares.min(want[k]));
            let q = match self.participation_cap(fill_bar, k) {
                None => w,
                Some(Ok(cap)) => w.min(cap),
                Some(Err(name)) => {
                    refused[self.reason(name)] += 1;
                    continue;
                }
            };
            let r = refs[k];
            let s = cfg.slippage_atr_mult * atr[k];
            let i = impact_of(k, q);
            let fill = (r * (1.0 - h - s - i)).max(0.0);
            let notional = q * fill;
            // Fees beyond what the account holds are waived (cash never goes below zero by a sell).
            let fees = self.sell_fees(q, notional).min((self.cash + notional).max(0.0));
            self.cash += notional - fees;
            if cfg.account == Account::Cash {
                self.unsettled.1 += notional - fees;
            }
            if self.pos[k].last_buy_day == day {
                self.day_trades.push(day);
            }
            trades.push(TradeRecord {
                bar: fill_bar as u32,
                ticker: k as u16,
                side: Side::Sell,
                shares: q,
                reference_price: r,
                fill_price: fill,
                spread: q * r * h,
                slippage: q * r * s,
                impact: q * r * i,
                fees,
                cash_after: self.cash,
                unfilled: w - q,
                forced: None,
            });
            // What the cap (or a partial exit) left stays open as it was.
            if held > q {
                self.pos[k].shares = held - q;
            } else {
                self.pos[k] = RefPosition::default();
                if rest[k] > 0.0 {
                    flips_short.push(k);
                }
            }
            executed += 1;
        }
        // Covers, in ticker order: all of the short (or what the cap lets through), at the
        // buy side of a share-sized quote, never refused for cash.
        for &k in &covers {
            if mean_volume[k] <= 0.0 && cfg.impact_coef > 0.0 {
                refused[self.reason("no_liquidity")] += 1;
                continue;
            }
            let held = -self.pos[k].shares;
            let w = held.min(want[k]);
            let q = match self.participation_cap(fill_bar, k) {
                None => w,
                Some(Ok(cap)) => w.min(cap),
                Some(Err(name)) => {
                    refused[self.reason(name)] += 1;
                    continue;
                }
            };
            let (r, s) = (refs[k], cfg.slippage_atr_mult * atr[k]);
            let i = impact_of(k, q);
            let fill = r * (1.0 + h + s + i);
            let fees = cfg.fees.commission_per_order;
            self.cash -= q * fill + fees;
            if self.pos[k].last_buy_day == day {
                self.day_trades.push(day);
            }
            trades.push(TradeRecord {
                bar: fill_bar as u32,
                ticker: k as u16,
                side: Side::Buy,
                shares: q,
                reference_price: r,
                fill_price: fill,
                spread: q * r * h,
                slippage: q * r * s,
                impact: q * r * i,
                fees,
                cash_after: self.cash,
                unfilled: w - q,
                forced: None,
            });
            if held > q {
                self.pos[k].shares = -(held - q);
            } else {
                self.pos[k] = RefPosition::default();
                if rest[k] > 0.0 {
                    flips_long.push(k);
                }
            }
            executed += 1;
        }
        // What flips open comes with the other opening orders, in ticker order.
        opens.extend(flips_short);
        opens.sort_unstable();
        buys.extend(flips_long);
        buys.sort_unstable();
        // The cap's equity: right after the closing orders, marked at the reference prices.
        let equity_ref = self.cash + self.pos.iter().zip(&refs).map(|(p, r)| p.shares * r).sum::<f64>();
        // Cash backing the shorts: their value and its initial margin (answer 20).
        let im = cfg.short_selling.initial_margin;
        let mut locked = if shorting {
            (1.0 + im) * self.pos.iter().zip(&refs).map(|(p, r)| (-p.shares).max(0.0) * r).sum::<f64>()
        } else {
            0.0
        };
        // `cash_fraction`: buy_pct of the free cash left; `equal_split`: that cash over the
        // bar's opening orders still to come (this one included).
        let n_opening = opens.len() + buys.len();
        let share_of = |j: usize| match cfg.buy_sizing {
            BuySizing::CashFraction => cfg.buy_pct,
            BuySizing::EqualSplit => 1.0 / (n_opening - j) as f64,
        };
        for (j, &k) in opens.iter().enumerate() {
            let share = share_of(j);
            let r = refs[k];
            let free = self.cash - locked;
            if free <= 0.0 {
                refused[self.reason("margin")] += 1;
                continue;
            }
            let room = cfg.max_position_pct * equity_ref + self.pos[k].shares * r;
            if room <= 0.0 {
                refused[self.reason("position_cap")] += 1;
                continue;
            }
            // Target positions: the order's shares, within the free cash and the room.
            let asked = if targets.enabled { (rest[k] * r).min(free) } else { share * free };
            let notional = asked.min(room);
            if notional < cfg.min_order_notional {
                refused[self.reason("too_small")] += 1;
                continue;
            }
            if mean_volume[k] <= 0.0 && cfg.impact_coef > 0.0 {
                refused[self.reason("no_liquidity")] += 1;
                continue;
            }
            let raw = if targets.enabled && rest[k] * r <= notional { rest[k] } else { notional / r };
            let want = if cfg.fractional_shares { raw } else { raw.floor() };
            let (q, unfilled) = match self.participation_cap(fill_bar, k) {
                Some(Err(name)) => {
                    refused[self.reason(name)] += 1;
                    continue;
                }
                Some(Ok(cap)) if cap < want => (cap, want - cap),
                _ => (want, 0.0),
            };
            if q <= 0.0 {
                refused[self.reason("too_small")] += 1;
                continue;
            }
            let s = cfg.slippage_atr_mult * atr[k];
            let i = impact_of(k, q);
            let fill = (r * (1.0 - h - s - i)).max(0.0);
            let proceeds = q * fill;
            let fees = self.sell_fees(q, proceeds);
            let collateral = (1.0 + im) * q * r;
            if self.cash + proceeds - fees - (locked + collateral) < 0.0 {
                refused[self.reason("margin")] += 1;
                continue;
            }
            self.cash += proceeds - fees;
            locked += collateral;
            let p = &mut self.pos[k];
            let held = -p.shares;
            if held <= 0.0 {
                *p = RefPosition { opened_bar: fill_bar as u32, ..RefPosition::default() };
            }
            p.avg_cost = (p.avg_cost * held + proceeds - fees) / (held + q);
            p.shares -= q;
            p.last_buy_bar = fill_bar as u32;
            p.last_buy_day = day;
            trades.push(TradeRecord {
                bar: fill_bar as u32,
                ticker: k as u16,
                side: Side::Sell,
                shares: q,
                reference_price: r,
                fill_price: fill,
                spread: q * r * h,
                slippage: q * r * s,
                impact: q * r * i,
                fees,
                cash_after: self.cash,
                unfilled,
                forced: None,
            });
            executed += 1;
        }
        for (j, &k) in buys.iter().enumerate() {
            let share = share_of(opens.len() + j);
            let r = refs[k];
            let room = cfg.max_position_pct * equity_ref - self.pos[k].shares * r;
            // The cash that does not back shorts (all of it, long only).
            let free = self.cash - locked;
            if free <= 0.0 {
                refused[self.reason("cash")] += 1;
                continue;
            }
            if room <= 0.0 {
                refused[self.reason("position_cap")] += 1;
                continue;
            }
            let asked = if targets.enabled { (rest[k] * r).min(free) } else { share * free };
            let mut notional = asked.min(room);
            if notional < cfg.min_order_notional {
                refused[self.reason("too_small")] += 1;
                continue;
            }
            if mean_volume[k] <= 0.0 && cfg.impact_coef > 0.0 {
                refused[self.reason("no_liquidity")] += 1;
                continue;
            }
            let cap = match self.participation_cap(fill_bar, k) {
                Some(Err(name)) => {
                    refused[self.reason(name)] += 1;
                    continue;
                }
                cap => cap.and_then(Result::ok),
            };
            let s = cfg.slippage_atr_mult * atr[k];
            // Impact from the shares N buys at the pre-impact price.
            let quote = |notional: f64| {
                let q0 = notional / (r * (1.0 + h + s));
                let i = impact_of(k, q0);
                let fill = r * (1.0 + h + s + i);
                let q = if cfg.fractional_shares { notional / fill } else { (notional / fill).floor() };
                (q, fill, i)
            };
            // A sized buy the budget covers: exactly its shares, at their quote, if the cash
            // pays them and the commission; else the budget less the commission.
            let by_shares = |q: f64| {
                let i = impact_of(k, q);
                let fill = r * (1.0 + h + s + i);
                (q, fill, i)
            };
            let commission = cfg.fees.commission_per_order;
            let mut exact = None;
            if targets.enabled {
                let q = rest[k];
                if q * r <= notional && q * by_shares(q).1 + commission <= free {
                    exact = Some(by_shares(q));
                } else {
                    notional -= commission;
                }
            }
            let (mut q, mut fill, mut i) = exact.unwrap_or_else(|| quote(notional));
            let mut spent = if exact.is_none() && cfg.fractional_shares { notional } else { q * fill };
            let mut unfilled = 0.0;
            if let Some(cap) = cap.filter(|&c| q > c) {
                // Answer 17: quoted again for cap × the first fill price, at most cap shares.
                let (q2, fill2, i2) = if exact.is_some() { by_shares(cap) } else { quote(cap * fill) };
                unfilled = q - q2.min(cap);
                (q, fill, i) = (q2.min(cap), fill2, i2);
                spent = q * fill;
            }
            if q <= 0.0 {
                refused[self.reason("too_small")] += 1;
                continue;
            }
            let fees = cfg.fees.commission_per_order;
            if spent + fees > free {
                refused[self.reason("cash")] += 1;
                continue;
            }
            if spent + fees > free - self.unsettled.1 {
                refused[self.reason("good_faith")] += 1;
                continue;
            }
            self.cash = (free - spent - fees).max(0.0) + locked;
            let p = &mut self.pos[k];
            if p.shares <= 0.0 {
                *p = RefPosition { opened_bar: fill_bar as u32, ..RefPosition::default() };
            }
            p.avg_cost = (p.avg_cost * p.shares + spent + fees) / (p.shares + q);
            p.shares += q;
            p.last_buy_bar = fill_bar as u32;
            p.last_buy_day = day;
            trades.push(TradeRecord {
                bar: fill_bar as u32,
                ticker: k as u16,
                side: Side::Buy,
                shares: q,
                reference_price: r,
                fill_price: fill,
                spread: q * r * h,
                slippage: q * r * s,
                impact: q * r * i,
                fees,
                cash_after: self.cash,
                unfilled,
                forced: None,
            });
            executed += 1;
        }
        let before = self.executed_on(day);
        self.executed_day = Some((day, before + executed));
        // Fills at bar t's close came before the splits and dividends of bar t+1.
        if !self.next_open() {
            self.corporate_actions(t + 1);
        }

        // Borrow fee (answer 20): rate / 252 per trading day crossed, on the shorts' value
        // at the coming mark.
        let days = m.day(t + 1) - m.day(t);
        if shorting && cfg.short_selling.borrow_rate > 0.0 && days > 0 {
            let value: f64 = self.pos.iter().zip(m.close_row(t + 1)).map(|(p, c)| (-p.shares).max(0.0) * c).sum();
            if value > 0.0 {
                self.cash -= cfg.short_selling.borrow_rate / 252.0 * f64::from(days) * value;
            }
        }

        // Mark at bar t+1's close; the clock moves on.
        self.bar += 1;
        self.steps += 1;
        let prev = self.equity;
        self.equity =
            self.cash + self.pos.iter().zip(m.close_row(self.bar as usize)).map(|(p, c)| p.shares * c).sum::<f64>();
        self.marks.push((self.bar, self.equity));
        self.peak = self.peak.max(self.equity);
        let ret = if prev > 0.0 { (self.equity - prev) / prev } else { 0.0 };
        self.returns.push(ret);

        let reward = self.reward(prev, ret, executed);
        self.episode_reward += reward;

        let terminated = cfg.bankruptcy_pct > 0.0 && self.equity < cfg.bankruptcy_pct * cfg.initial_cash;
        let truncated = !terminated && (self.steps as usize >= cfg.episode_length || self.bar >= self.bounds.last);
        let out = RefStep {
            trades,
            refused,
            executed,
            reward,
            step_return: ret,
            equity: self.equity,
            cash: self.cash,
            bar: self.bar,
            episode_reward: self.episode_reward,
            episode_steps: self.steps,
            terminated,
            truncated,
            final_obs: (terminated || truncated).then(|| self.obs()),
        };
        if terminated || truncated {
            self.start_episode();
        }
        out
    }

    fn reward(&mut self, prev: f64, ret: f64, executed: u32) -> f64 {
        let c = self.cfg.reward.clone();
        let r = match c.mode {
            RewardMode::Seed => {
                let mut r = c.return_weight * ret;
                let dd = if self.peak > 0.0 { (self.peak - self.equity) / self.peak } else { 0.0 };
                if dd > c.drawdown_threshold {
                    r -= c.drawdown_weight * dd;
                }
                let w = &self.returns[self.returns.len().saturating_sub(c.sharpe_window)..];
                if w.len() >= 2 {
                    let mean = w.iter().sum::<f64>() / w.len() as f64;
                    let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / w.len() as f64;
                    let sharpe = if var > 0.0 { mean / var.sqrt() } else { 0.0 };
                    if sharpe < 0.0 {
                        r += c.sharpe_weight * sharpe;
                    }
                }
                if executed > c.overtrade_threshold {
                    r -= c.overtrade_weight * f64::from(executed);
                }
                if ret > c.bonus_threshold {
                    r += c.bonus;
                }
                r
            }
            RewardMode::LogReturn => {
                if prev > 0.0 && self.equity > 0.0 {
                    c.return_weight * (self.equity / prev).ln()
                } else {
                    0.0
                }
            }
            RewardMode::DifferentialSharpe => {
                // Warm-up: the first ⌈1/η⌉ returns set A and B to their plain means and
                // pay nothing; then EMAs at rate η, the variance floored at (1 bp)².
                let (a, b) = (self.dsr_a, self.dsr_b);
                let n = self.returns.len() as f64;
                if n <= (1.0 / c.dsr_eta).ceil() {
                    self.dsr_a = a + (ret - a) / n;
                    self.dsr_b = b + (ret * ret - b) / n;
                    0.0
                } else {
                    let var = (b - a * a).max(1e-8);
                    self.dsr_a = a + c.dsr_eta * (ret - a);
                    self.dsr_b = b + c.dsr_eta * (ret * ret - b);
                    (b * (ret - a) - 0.5 * a * (ret * ret - b)) / var.powf(1.5)
                }
            }
        };
        r * self.cfg.reward_scaling
    }

    /// The observation at the current bar, from the table in `ploutos::env::observation`.
    fn obs(&self) -> Vec<f32> {
        let m = self.m;
        let t = self.bar as usize;
        let closes = m.close_row(t);
        // An account at or below zero equity (a short can take it there) shows zeros.
        let inv_e = if self.equity > 0.0 { 1.0 / self.equity } else { 0.0 };
        let e = self.equity;
        let mut row = vec![(self.cash * inv_e) as f32];
        row.extend(self.pos.iter().zip(closes).map(|(p, c)| (p.shares * c * inv_e) as f32));
        row.extend(
            self.pos
                .iter()
                .zip(closes)
                .map(|(p, c)| if p.shares != 0.0 { ((c / p.avg_cost - 1.0) * p.shares.signum()) as f32 } else { 0.0 }),
        );
        row.extend(self.pos.iter().map(|p| {
            if p.shares != 0.0 { ((t as f64 - f64::from(p.opened_bar)) / 100.0).min(10.0) as f32 } else { 0.0 }
        }));
        row.push(((self.peak - e) / self.peak) as f32);
        // Counters are for the day the next order would fill on.
        let next_fill = if self.next_open() { t + 1 } else { t };
        let day = m.day(next_fill.min(m.n_bars() - 1));
        let pdt = &self.cfg.pdt;
        let left = if !self.pdt_on() || self.pdt_equity(day) >= pdt.equity_threshold {
            pdt.max_day_trades
        } else {
            pdt.max_day_trades.saturating_sub(self.day_trades_in_window(day))
        };
        row.push(left as f32 / pdt.max_day_trades as f32);
        row.push(match self.cfg.max_trades_per_day {
            Some(cap) => cap.saturating_sub(self.executed_on(day)) as f32 / cap as f32,
            None => 1.0,
        });
        match self.cfg.observation_layout {
            ObservationLayout::Materialized => row.extend_from_slice(m.feature_row(t)),
            ObservationLayout::Index => row.push(t as f32),
        }
        row
    }
}

// ---------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------

#[track_caller]
fn close_money(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: env {got} vs reference {want}");
}

#[track_caller]
fn close_f32(got: f32, want: f32, what: &str) {
    let tol = 1e-6 * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: env {got} vs reference {want}");
}

fn assert_obs(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: obs width");
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        close_f32(*g, *w, &format!("{what}[{j}]"));
    }
}

struct Run {
    steps: usize,
    n_envs: usize,
    seed: u64,
    /// Probabilities of hold, buy, sell; the rest are invalid codes.
    p: [f64; 3],
    /// With target positions, the number of levels: each code is then a uniform level
    /// with probability 0.9, `KEEP` (255) with 0.05, another code beyond the levels
    /// otherwise; `p` is unused.
    levels: Option<u8>,
}

/// Drives the ECS env and one reference per env with the same random actions and compares
/// everything each step. Returns (trades, refusals by name, done episodes) for sanity checks.
fn compare(
    cfg: &EnvironmentConfig,
    market: MarketData,
    bounds: EpisodeBounds,
    run: Run,
) -> (usize, Vec<(String, u64)>, usize) {
    cfg.validate().expect("valid config");
    let opts = EnvOptions {
        n_envs: run.n_envs,
        threads: 2,
        min_shard_envs: 1,
        bounds,
        trade_log: true,
        auto_reset: true,
        action_masks: false,
    };
    let mut env = TradingEnv::new(cfg, market.clone(), opts).expect("env");
    let names = env.refusal_names();
    let n = market.n_tickers();
    let mut refs: Vec<RefEnv> =
        (0..run.n_envs).map(|i| RefEnv::new(cfg, &market, bounds, run.seed, i, names.clone())).collect();
    let buf = env.reset(run.seed).clone();
    let dim = env.obs_dim();
    for (i, r) in refs.iter().enumerate() {
        assert_obs(&buf.obs[i * dim..(i + 1) * dim], &r.obs(), &format!("reset obs env {i}"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(run.seed ^ 0xA5A5);
    let (mut n_trades, mut n_done) = (0usize, 0usize);
    let mut refused_total = vec![0u64; names.len()];
    for step in 0..run.steps {
        let actions: Vec<u8> = (0..run.n_envs * n)
            .map(|_| {
                let u: f64 = rng.random();
                if let Some(l) = run.levels {
                    return match u {
                        u if u < 0.9 => rng.random_range(0..l),
                        u if u < 0.95 => 255,
                        _ => rng.random_range(l..255),
                    };
                }
                if u < run.p[0] {
                    0
                } else if u < run.p[0] + run.p[1] {
                    1
                } else if u < run.p[0] + run.p[1] + run.p[2] {
                    2
                } else {
                    rng.random_range(3..=255)
                }
            })
            .collect();
        let buf = env.step(&actions).expect("step").clone();
        let orders: Vec<(usize, Orders)> = {
            let mut v: Vec<_> = env
                .worlds_mut()
                .flat_map(|world| {
                    let mut q = world.query::<(&EnvId, &Orders)>();
                    q.iter(world).map(|(id, o)| (id.index(), o.clone())).collect::<Vec<_>>()
                })
                .collect();
            v.sort_by_key(|(i, _)| *i);
            v
        };
        for (i, r) in refs.iter_mut().enumerate() {
            let at = format!("step {step} env {i}");
            let want = r.step(&actions[i * n..(i + 1) * n]);
            // Trades, one by one.
            let got = env.take_trades(i);
            assert_eq!(got.len(), want.trades.len(), "{at}: trade count {got:?} vs {:?}", want.trades);
            for (g, w) in got.iter().zip(&want.trades) {
                assert_eq!((g.bar, g.ticker, g.side), (w.bar, w.ticker, w.side), "{at}: trade");
                close_money(g.shares, w.shares, &format!("{at}: shares"));
                close_money(g.reference_price, w.reference_price, &format!("{at}: reference price"));
                close_money(g.fill_price, w.fill_price, &format!("{at}: fill price"));
                close_money(g.fees, w.fees, &format!("{at}: fees"));
                close_money(g.cash_after, w.cash_after, &format!("{at}: cash after"));
                close_money(g.spread, w.spread, &format!("{at}: spread"));
                close_money(g.slippage, w.slippage, &format!("{at}: slippage"));
                close_money(g.impact, w.impact, &format!("{at}: impact"));
                close_money(g.unfilled, w.unfilled, &format!("{at}: unfilled shares"));
                assert_eq!(g.forced, w.forced, "{at}: forced");
            }
            n_trades += got.len();
            // Refusals by reason.
            let o = &orders[i].1;
            assert_eq!(&o.refused.0[..names.len()], &want.refused[..], "{at}: refusals by reason {names:?}");
            for (t, w) in refused_total.iter_mut().zip(&want.refused) {
                *t += u64::from(*w);
            }
            // Outputs.
            let info = buf.infos[i];
            assert_eq!((buf.terminated[i], buf.truncated[i]), (want.terminated, want.truncated), "{at}: done flags");
            assert_eq!((info.terminated, info.truncated), (want.terminated, want.truncated), "{at}: info done flags");
            close_f32(buf.rewards[i], want.reward as f32, &format!("{at}: reward"));
            close_money(info.episode_reward, want.episode_reward, &format!("{at}: episode reward"));
            close_money(info.equity, want.equity, &format!("{at}: equity"));
            close_money(info.cash, want.cash, &format!("{at}: cash"));
            close_money(info.step_return, want.step_return, &format!("{at}: step return"));
            assert_eq!(info.executed, want.executed, "{at}: executed");
            assert_eq!(info.refused, want.refused.iter().sum::<u32>(), "{at}: refused");
            assert_eq!((info.bar, info.episode_steps), (want.bar, want.episode_steps), "{at}: clock");
            close_money(info.episode_return, want.equity / cfg.initial_cash - 1.0, &format!("{at}: episode return"));
            // State (after an auto-reset: the new episode's).
            let (p, pos, clock) = env.env_state(i).expect("env exists");
            close_money(p.cash, r.cash, &format!("{at}: state cash"));
            close_money(p.equity, r.equity, &format!("{at}: state equity"));
            assert_eq!((clock.bar, clock.steps), (r.bar, r.steps), "{at}: state clock");
            for (k, (g, w)) in pos.iter().zip(&r.pos).enumerate() {
                close_money(g.shares, w.shares, &format!("{at}: shares of {k}"));
                close_money(g.avg_cost, w.avg_cost, &format!("{at}: average cost of {k}"));
                assert_eq!(
                    (g.opened_bar, g.last_buy_bar, g.last_buy_day),
                    (w.opened_bar, w.last_buy_bar, w.last_buy_day),
                    "{at}: position clocks of {k}"
                );
            }
            // Observations.
            if let Some(fin) = &want.final_obs {
                n_done += 1;
                assert_obs(&buf.final_obs[i * dim..(i + 1) * dim], fin, &format!("{at}: final obs"));
            }
            assert_obs(&buf.obs[i * dim..(i + 1) * dim], &r.obs(), &format!("{at}: obs"));
        }
    }
    // The lifetime totals agree with the per-step refusals.
    let totals = env.totals();
    for (j, t) in refused_total.iter().enumerate() {
        assert_eq!(u64::from(totals.refused.0[j]), *t, "lifetime refusals of {}", names[j]);
    }
    (n_trades, names.into_iter().zip(refused_total).collect(), n_done)
}

fn count(refused: &[(String, u64)], name: &str) -> u64 {
    refused.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
}

/// Splits and dividends for `cells` (bar, ticker) cells (answer 19): a split, of one of
/// `ratios`, with probability `p_split`; else a dividend of $0.01–$1 up to `p_event` in all.
fn random_events(cells: usize, ratios: &[f64], p_split: f64, p_event: f64, rng: &mut ChaCha8Rng) -> Vec<(f64, f64)> {
    (0..cells)
        .map(|_| match rng.random::<f64>() {
            u if u < p_split => (ratios[rng.random_range(0..ratios.len())], 0.0),
            u if u < p_event => (1.0, rng.random_range(0.01..1.0)),
            _ => (1.0, 0.0),
        })
        .collect()
}

/// Invented (forward-filled) bars: one bar in twenty has some of its `n_tickers` tickers
/// invented (answer 15).
fn invented_bars(n_bars: usize, n_tickers: u32, rng: &mut ChaCha8Rng) -> Vec<u64> {
    (0..n_bars).map(|_| if rng.random::<f64>() < 0.05 { rng.random_range(1..1u64 << n_tickers) } else { 0 }).collect()
}

fn hourly_bounds(market: &MarketData) -> EpisodeBounds {
    EpisodeBounds { first: 25, last: market.n_bars() as u32 - 1, random_start: true }
}

/// Small account (PDT binds), default rules, seed reward, fractional shares, next open,
/// short episodes (many auto-resets), every refusal reason reachable.
#[test]
fn matches_reference_small_account_seed_reward() {
    let cfg = EnvironmentConfig { initial_cash: 5_000.0, episode_length: 250, ..EnvironmentConfig::default() };
    let market = MarketData::random_walk(1_500, 3, 4, 11);
    let bounds = hourly_bounds(&market);
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_500, n_envs: 8, seed: 7, p: [0.45, 0.3, 0.22], levels: None });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done >= 8 * 9, "{done} episodes");
    for r in ["invalid_action", "no_position", "holding_period", "pdt", "trades_per_day", "position_cap"] {
        assert!(count(&refused, r) > 0, "no {r} refusal in {refused:?}");
    }
}

/// Whole shares, fills at the decision bar's close, per-share TAF, a commission, log-return
/// reward, the index layout, and a bankruptcy level that ends episodes.
#[test]
fn matches_reference_whole_shares_at_close() {
    let mut cfg = EnvironmentConfig {
        initial_cash: 3_000.0,
        fractional_shares: false,
        fill_timing: FillTiming::Close,
        buy_pct: 0.5,
        max_position_pct: 0.6,
        min_holding_bars: 3,
        observation_layout: ObservationLayout::Index,
        bankruptcy_pct: 0.97,
        episode_length: 400,
        ..EnvironmentConfig::default()
    };
    cfg.fees.taf_model = TafModel::PerShare;
    cfg.fees.commission_per_order = 0.25;
    cfg.reward.mode = RewardMode::LogReturn;
    cfg.reward_scaling = 0.5;
    let market = MarketData::random_walk(1_200, 4, 2, 12);
    let bounds = hourly_bounds(&market);
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 8, p: [0.5, 0.3, 0.18], levels: None });
    assert!(trades > 2_000, "{trades} trades");
    assert!(done > 8, "{done} episodes");
    for r in ["holding_period", "pdt", "trades_per_day", "too_small"] {
        assert!(count(&refused, r) > 0, "no {r} refusal in {refused:?}");
    }
}

/// Differential Sharpe, no daily cap, an account that crosses the PDT threshold, wider
/// costs, episodes that run to the end of the bounds.
#[test]
fn matches_reference_near_pdt_threshold_dsr() {
    let mut cfg = EnvironmentConfig {
        initial_cash: 25_300.0,
        max_trades_per_day: None,
        min_holding_bars: 0,
        spread_bps: 8.0,
        slippage_atr_mult: 0.4,
        impact_coef: 2.0,
        buy_pct: 0.35,
        max_position_pct: 0.45,
        episode_length: 100_000,
        bankruptcy_pct: 0.0,
        ..EnvironmentConfig::default()
    };
    cfg.reward.mode = RewardMode::DifferentialSharpe;
    cfg.pdt = PdtConfig { max_day_trades: 2, window_days: 3, ..PdtConfig::default() };
    let market = MarketData::random_walk(900, 2, 3, 13);
    let bounds = EpisodeBounds { first: 30, last: 700, random_start: true };
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 9, p: [0.4, 0.35, 0.25], levels: None });
    assert!(trades > 2_000, "{trades} trades");
    assert!(done > 8, "{done} episodes");
    assert!(count(&refused, "pdt") > 0, "no pdt refusal in {refused:?}");
}

/// The seed reward's penalty terms all bind when trading is heavy; at the close, buys split
/// the cash equally (`buy_sizing: equal_split`).
#[rstest]
#[case::next_open(FillTiming::NextOpen)]
#[case::close(FillTiming::Close)]
fn matches_reference_heavy_trading(#[case] timing: FillTiming) {
    let mut cfg = EnvironmentConfig {
        fill_timing: timing,
        max_trades_per_day: Some(12),
        min_holding_bars: 1,
        buy_pct: 0.9,
        max_position_pct: 1.0,
        episode_length: 150,
        ..EnvironmentConfig::default()
    };
    cfg.pdt.enabled = false;
    cfg.reward.overtrade_threshold = 0;
    cfg.reward.drawdown_threshold = 0.01;
    cfg.reward.bonus_threshold = 0.002;
    if timing == FillTiming::Close {
        cfg.buy_sizing = BuySizing::EqualSplit;
    }
    let market = MarketData::random_walk(800, 5, 1, 14);
    let bounds = hourly_bounds(&market);
    let (trades, _, done) =
        compare(&cfg, market, bounds, Run { steps: 1_200, n_envs: 8, seed: 10, p: [0.3, 0.4, 0.3], levels: None });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done > 8 * 5, "{done} episodes");
}

/// Splits (forward and reverse; whole shares, so that a reverse split pays cash in lieu and
/// can pay a position out whole under a pending sell) and dividends on random bars
/// (`data.adjust: none` or `splits`, answer 19), under both fill timings.
#[rstest]
#[case::next_open(FillTiming::NextOpen)]
#[case::close(FillTiming::Close)]
fn matches_reference_through_splits_and_dividends(#[case] timing: FillTiming) {
    let cfg = EnvironmentConfig {
        fill_timing: timing,
        fractional_shares: false,
        initial_cash: 20_000.0,
        min_holding_bars: 0,
        episode_length: 300,
        ..EnvironmentConfig::default()
    };
    let market = MarketData::random_walk(1_000, 4, 2, 15);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let events =
        random_events(market.n_bars() * market.n_tickers(), &[2.0, 3.0, 0.5, 1.0 / 3.0, 0.01], 0.01, 0.04, &mut rng);
    let market = market.with_corporate_actions(events).expect("shapes");
    let bounds = hourly_bounds(&market);
    let (trades, _, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 12, p: [0.4, 0.35, 0.25], levels: None });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done > 8 * 5, "{done} episodes");
}

/// The participation cap (answer 17): random volumes, some bars with none, a cap that
/// makes fills partial and refuses others, whole shares, under both fill timings.
#[rstest]
#[case::next_open(FillTiming::NextOpen)]
#[case::close(FillTiming::Close)]
fn matches_reference_with_a_participation_cap(#[case] timing: FillTiming) {
    let cfg = EnvironmentConfig {
        fill_timing: timing,
        fractional_shares: false,
        initial_cash: 30_000.0,
        buy_pct: 0.5,
        max_position_pct: 0.8,
        min_holding_bars: 0,
        max_participation: Some(0.05),
        episode_length: 300,
        ..EnvironmentConfig::default()
    };
    let market = MarketData::random_walk(1_200, 4, 2, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let volume = (0..market.n_bars() * market.n_tickers())
        .map(|_| if rng.random::<f64>() < 0.05 { 0.0 } else { rng.random_range(0.0..4_000.0) })
        .collect();
    let market = market.with_volume(volume).expect("shapes");
    let bounds = hourly_bounds(&market);
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 13, p: [0.4, 0.35, 0.25], levels: None });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done > 8 * 5, "{done} episodes");
    for r in ["zero_volume", "participation"] {
        assert!(count(&refused, r) > 0, "no {r} refusal in {refused:?}");
    }
}

/// A cash account (answer 18: no PDT, T+1 settlement, good-faith refusals), with heavy
/// trading so that buys meet unsettled proceeds.
#[test]
fn matches_reference_cash_account() {
    let mut cfg = EnvironmentConfig {
        account: Account::Cash,
        initial_cash: 8_000.0,
        buy_pct: 0.9,
        max_position_pct: 1.0,
        min_holding_bars: 0,
        max_trades_per_day: None,
        episode_length: 300,
        ..EnvironmentConfig::default()
    };
    cfg.pdt.equity_threshold = 1e9;
    let market = MarketData::random_walk(1_000, 3, 2, 17);
    let bounds = hourly_bounds(&market);
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 14, p: [0.3, 0.4, 0.3], levels: None });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done > 8 * 5, "{done} episodes");
    assert!(count(&refused, "good_faith") > 0, "no good_faith refusal in {refused:?}");
    assert_eq!(count(&refused, "pdt"), 0, "a cash account has no PDT rule");
}

/// FINRA's PDT equity (answer 8, `pdt.equity: previous_close`) on an account that crosses
/// the threshold, under both fill timings.
#[rstest]
#[case::next_open(FillTiming::NextOpen)]
#[case::close(FillTiming::Close)]
fn matches_reference_pdt_on_the_previous_close(#[case] timing: FillTiming) {
    let mut cfg = EnvironmentConfig {
        fill_timing: timing,
        initial_cash: 25_300.0,
        max_trades_per_day: None,
        min_holding_bars: 0,
        buy_pct: 0.35,
        max_position_pct: 0.45,
        spread_bps: 8.0,
        episode_length: 100_000,
        bankruptcy_pct: 0.0,
        ..EnvironmentConfig::default()
    };
    cfg.pdt = PdtConfig { max_day_trades: 2, window_days: 3, equity: PdtEquity::PreviousClose, ..PdtConfig::default() };
    let market = MarketData::random_walk(900, 2, 3, 18);
    let bounds = EpisodeBounds { first: 30, last: 700, random_start: true };
    let (trades, refused, _) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 15, p: [0.4, 0.35, 0.25], levels: None });
    assert!(trades > 2_000, "{trades} trades");
    assert!(count(&refused, "pdt") > 0, "no pdt refusal in {refused:?}");
}

/// Short selling and margin (answer 20): shorts sized like buys from the free cash, covers,
/// the `no_short` list, a daily borrow fee, and a maintenance margin at the initial one with
/// heavy leverage so that margin calls close positions by forced orders (skipping tickers
/// on an invented bar); with splits and dividends on shorts, invented bars, a daily cap and
/// the PDT rule on exits, under both fill timings.
#[rstest]
#[case::next_open(FillTiming::NextOpen)]
#[case::close(FillTiming::Close)]
fn matches_reference_with_short_selling(#[case] timing: FillTiming) {
    let mut cfg = EnvironmentConfig {
        fill_timing: timing,
        initial_cash: 20_000.0,
        buy_pct: 0.8,
        max_position_pct: 1.0,
        min_holding_bars: 2,
        max_trades_per_day: Some(6),
        episode_length: 300,
        bankruptcy_pct: 0.2,
        ..EnvironmentConfig::default()
    };
    cfg.short_selling.enabled = true;
    cfg.short_selling.borrow_rate = 0.3;
    cfg.short_selling.maintenance_margin = 0.5;
    cfg.short_selling.no_short = vec!["D".into()];
    if timing == FillTiming::Close {
        cfg.buy_sizing = BuySizing::EqualSplit;
        cfg.fractional_shares = false;
    }
    let market = MarketData::random_walk(1_000, 4, 2, 17);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let events =
        random_events(market.n_bars() * market.n_tickers(), &[2.0, 0.5, 1.0 / 3.0, 0.01], 0.005, 0.02, &mut rng);
    let names: Vec<String> = ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect();
    let invented = invented_bars(market.n_bars(), 4, &mut rng);
    let market = market
        .with_corporate_actions(events)
        .and_then(|m| m.with_invented_bars(invented))
        .and_then(|m| m.with_tickers(&names))
        .expect("shapes");
    let bounds = hourly_bounds(&market);
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 14, p: [0.4, 0.25, 0.35], levels: None });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done > 8 * 5, "{done} episodes");
    for r in ["margin_call", "not_shortable", "holding_period", "pdt", "trades_per_day", "invented_bar"] {
        assert!(count(&refused, r) > 0, "no {r} refusal in {refused:?}");
    }
}

/// Target positions (answer 21): five levels with shorts, a band, sized exits and flips,
/// a participation cap that cuts exits short (no flip then), the `no_short` list refusing
/// flips into a short, margin calls (initial and maintenance margin at 90%, so that a small
/// loss calls), splits (forward and reverse) and dividends on longs and shorts, invented
/// bars (no fill, forced or not), the daily cap and the rules on exits, under both fill
/// timings; whole shares and a commission at the close (the exact-size buy and its
/// fallback).
#[rstest]
#[case::next_open(FillTiming::NextOpen)]
#[case::close(FillTiming::Close)]
fn matches_reference_with_target_positions(#[case] timing: FillTiming) {
    let mut cfg = EnvironmentConfig {
        fill_timing: timing,
        initial_cash: 20_000.0,
        max_position_pct: 1.0,
        min_holding_bars: 2,
        max_trades_per_day: Some(12),
        episode_length: 300,
        bankruptcy_pct: 0.2,
        max_participation: Some(0.05),
        ..EnvironmentConfig::default()
    };
    cfg.short_selling.enabled = true;
    cfg.short_selling.borrow_rate = 0.3;
    cfg.short_selling.initial_margin = 0.9;
    cfg.short_selling.maintenance_margin = 0.9;
    cfg.short_selling.no_short = vec!["D".into()];
    cfg.target_positions.enabled = true;
    cfg.target_positions.levels = vec![-1.0, -0.5, 0.0, 0.5, 1.0];
    cfg.target_positions.no_trade_band = 0.15;
    if timing == FillTiming::Close {
        cfg.fractional_shares = false;
        cfg.fees.commission_per_order = 1.0;
    }
    let market = MarketData::random_walk(1_000, 4, 2, 19);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let volume: Vec<f64> = (0..market.n_bars() * market.n_tickers())
        .map(|_| if rng.random::<f64>() < 0.03 { 0.0 } else { rng.random_range(0.0..4_000.0) })
        .collect();
    let events =
        random_events(market.n_bars() * market.n_tickers(), &[2.0, 0.5, 1.0 / 3.0, 0.01], 0.005, 0.02, &mut rng);
    let names: Vec<String> = ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect();
    let invented = invented_bars(market.n_bars(), 4, &mut rng);
    let market = market
        .with_volume(volume)
        .and_then(|m| m.with_corporate_actions(events))
        .and_then(|m| m.with_invented_bars(invented))
        .and_then(|m| m.with_tickers(&names))
        .expect("shapes");
    let bounds = hourly_bounds(&market);
    let (trades, refused, done) =
        compare(&cfg, market, bounds, Run { steps: 2_000, n_envs: 8, seed: 16, p: [0.0; 3], levels: Some(5) });
    assert!(trades > 5_000, "{trades} trades");
    assert!(done > 8 * 5, "{done} episodes");
    for r in [
        "margin_call",
        "not_shortable",
        "holding_period",
        "trades_per_day",
        "invalid_action",
        "zero_volume",
        "invented_bar",
    ] {
        assert!(count(&refused, r) > 0, "no {r} refusal in {refused:?}");
    }
}
