//! `environment`: the simulated broker account — cash, order sizing, execution costs,
//! market rules, reward and episodes.
//!
//! Defaults are the seed's figures where it gives them, and otherwise values sensible for
//! hourly US large-cap equities at a zero-commission retail broker (Alpaca-like).

use super::{ConfigError, check};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which price a decision at bar t's close fills at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillTiming {
    /// At bar t+1's open: the default, and the only honest choice.
    NextOpen,
    /// At bar t's close, the price the agent just saw: optimistic, for comparison only.
    Close,
}

/// The kind of brokerage account the env simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// A margin account without leverage (the seed's: its PDT rule only binds margin
    /// accounts): sell proceeds can be spent at once, the PDT rule applies (`pdt`).
    Margin,
    /// A cash account: no PDT rule; sell proceeds settle on the next trading day (T+1), and a
    /// buy that would spend unsettled proceeds is refused as a good-faith violation
    /// (`good_faith`).
    Cash,
}

/// How a buy's notional is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuySizing {
    /// `buy_pct` × the cash left (the seed's rule).
    CashFraction,
    /// The cash left split equally over the bar's remaining buys (equal-weight
    /// buy-and-hold uses it to invest everything at its first bar).
    EqualSplit,
}

/// How the env hands observations to the learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationLayout {
    /// Every env's observation row holds all tickers' features plus its portfolio state.
    Materialized,
    /// Every env's row holds its bar index plus its portfolio state; the learner gathers
    /// the shared feature table itself (on its device).
    Index,
}

/// Which reward the env pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardMode {
    /// The seed's shaped reward: return, drawdown and Sharpe penalties, overtrading
    /// penalty, performance bonus (weights below).
    Seed,
    /// 100 × ln(E_t / E_{t−1}).
    LogReturn,
    /// Moody & Saffell's differential Sharpe ratio with adaptation rate `dsr_eta`.
    DifferentialSharpe,
}

/// How FINRA's Trading Activity Fee is charged on sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TafModel {
    /// `taf_rate` × notional (the seed's 0.0145%).
    Notional,
    /// `taf_per_share` × shares, capped at `taf_max_per_trade` (FINRA's actual schedule).
    PerShare,
}

/// Broker fees; all are charged on sells only, except the commission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeeConfig {
    /// SEC Section 31 fee as a fraction of sell notional (default: 0.0000221 = 0.00221%).
    pub sec_fee_rate: f64,
    /// TAF model (default: `notional`).
    pub taf_model: TafModel,
    /// TAF as a fraction of sell notional when `taf_model` is `notional`
    /// (default: 0.000145 = 0.0145%).
    pub taf_rate: f64,
    /// TAF in dollars per share sold when `taf_model` is `per_share` (default: 0.000166).
    pub taf_per_share: f64,
    /// Cap of the per-share TAF per trade, in dollars (default: 8.30).
    pub taf_max_per_trade: f64,
    /// Commission in dollars per executed order, buys and sells (default: 0).
    pub commission_per_order: f64,
}

impl Default for FeeConfig {
    fn default() -> Self {
        Self {
            sec_fee_rate: 0.0000221,
            taf_model: TafModel::Notional,
            taf_rate: 0.000145,
            taf_per_share: 0.000166,
            taf_max_per_trade: 8.30,
            commission_per_order: 0.0,
        }
    }
}

/// The Pattern-Day-Trader rule (FINRA 4210).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PdtConfig {
    /// Apply the rule (default: true).
    pub enabled: bool,
    /// Accounts with equity below this, in dollars, are limited (default: 25,000).
    pub equity_threshold: f64,
    /// Day trades allowed within `window_days` trading days (default: 3).
    pub max_day_trades: u32,
    /// Rolling window in trading days (default: 5).
    pub window_days: u32,
    /// Which equity is compared with the threshold: `decision_bar` (default, the seed's: the
    /// equity marked at the decision bar's close) or `previous_close` (FINRA's: the equity
    /// at the close of the trading day before the order's fill day).
    pub equity: PdtEquity,
}

/// Which equity the Pattern-Day-Trader rule compares with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PdtEquity {
    /// The equity marked at the decision bar's close.
    DecisionBar,
    /// The equity at the close of the last bar before the fill's trading day.
    PreviousClose,
}

impl Default for PdtConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            equity_threshold: 25_000.0,
            max_day_trades: 3,
            window_days: 5,
            equity: PdtEquity::DecisionBar,
        }
    }
}

/// The most target levels (actions per ticker) `environment.target_positions` may have.
pub const MAX_TARGET_LEVELS: usize = 16;

/// Short selling and Reg T margin (`environment.short_selling`; execution contract answer 20
/// in `env`). Needs a margin account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShortSellingConfig {
    /// Allow shorts: a sell when flat opens a short sized like a buy, a buy when short
    /// covers it (default: false, long only as the seed).
    pub enabled: bool,
    /// Annual borrow fee on the shorts' market value, charged per trading day as
    /// `borrow_rate / 252` (default: 0.005, a general-collateral rate).
    pub borrow_rate: f64,
    /// Reg T initial margin: equity beyond the long positions (which are paid in full) must
    /// cover this fraction of the short value, new short included (default: 0.5).
    pub initial_margin: f64,
    /// Maintenance margin: below this fraction of the long value plus the short value,
    /// positions are closed by a forced buy-in (default: 0.25, FINRA 4210's floor).
    pub maintenance_margin: f64,
    /// Tickers that cannot be sold short (hard to borrow); a sell of one when flat is
    /// refused as `not_shortable` (default: none).
    pub no_short: Vec<String>,
}

impl Default for ShortSellingConfig {
    fn default() -> Self {
        Self { enabled: false, borrow_rate: 0.005, initial_margin: 0.5, maintenance_margin: 0.25, no_short: Vec::new() }
    }
}

/// Target-position actions (`environment.target_positions`; execution contract answer 21
/// in `env`): each ticker's action picks a target position among `levels`, and the order is
/// the difference from the position held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetPositionsConfig {
    /// Replace the seed's {hold, buy, sell} with target positions (default: false).
    pub enabled: bool,
    /// The targets action `i` picks, as fractions of `max_position_pct` × equity, each in
    /// [−1, 1]; negative ones (shorts) need `short_selling.enabled` (default: `[0.0, 0.5,
    /// 1.0]`; with shorting e.g. `[-1.0, -0.5, 0.0, 0.5, 1.0]`).
    pub levels: Vec<f64>,
    /// No order when the target differs from the position by less than this fraction of
    /// `max_position_pct` × equity, so that drift does not send tiny rebalances (default:
    /// 0.1).
    pub no_trade_band: f64,
}

impl Default for TargetPositionsConfig {
    fn default() -> Self {
        Self { enabled: false, levels: vec![0.0, 0.5, 1.0], no_trade_band: 0.1 }
    }
}

/// Reward mode and the weight of each of the seed's terms.
///
/// Seed mode, all × `reward_scaling`:
///
/// ```text
/// r = return_weight·ΔE/E − [DD > drawdown_threshold]·drawdown_weight·DD
///   + [S < 0]·sharpe_weight·S − [n > overtrade_threshold]·overtrade_weight·n
///   + [ΔE/E > bonus_threshold]·bonus
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Reward mode (default: `seed`).
    pub mode: RewardMode,
    /// Weight of the step return in percent-points (default: 100).
    pub return_weight: f64,
    /// Drawdown (fraction of peak equity) above which the penalty applies (default: 0.10).
    pub drawdown_threshold: f64,
    /// Weight of the drawdown penalty (default: 10).
    pub drawdown_weight: f64,
    /// Weight of the negative-Sharpe penalty (default: 0.1).
    pub sharpe_weight: f64,
    /// Step returns in the rolling, non-annualized Sharpe ratio (default: 20).
    pub sharpe_window: usize,
    /// Orders per step above which the overtrading penalty applies (default: 1).
    pub overtrade_threshold: u32,
    /// Penalty per executed order when above the threshold (default: 0.01).
    pub overtrade_weight: f64,
    /// Step return above which the bonus is paid (default: 0.02).
    pub bonus_threshold: f64,
    /// Bonus paid (default: 0.5).
    pub bonus: f64,
    /// Adaptation rate of the differential Sharpe ratio's moving moments (default: 0.01).
    pub dsr_eta: f64,
    /// A cost charged in the reward only, as a fraction of the notional traded in the step
    /// (0.001 = 10 bp), in every mode: the reward sees the step's return net of it, as if
    /// trading cost that much more. Discourages turnover beyond what the real costs do,
    /// without changing the account (default: 0, off).
    pub turnover_penalty: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            mode: RewardMode::Seed,
            return_weight: 100.0,
            drawdown_threshold: 0.10,
            drawdown_weight: 10.0,
            sharpe_weight: 0.1,
            sharpe_window: 20,
            overtrade_threshold: 1,
            overtrade_weight: 0.01,
            bonus_threshold: 0.02,
            bonus: 0.5,
            dsr_eta: 0.01,
            turnover_penalty: 0.0,
        }
    }
}

/// The simulated account and market microstructure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Starting cash in dollars (default: 10,000, a retail account the PDT rule binds).
    pub initial_cash: f64,
    /// Fraction of current cash a buy spends (default: 0.2).
    pub buy_pct: f64,
    /// How buys are sized (default: `cash_fraction`).
    pub buy_sizing: BuySizing,
    /// Cap of one position's value as a fraction of equity (default: 0.3).
    pub max_position_pct: f64,
    /// Allow fractional shares (default: true, as Alpaca); false rounds buys down to whole
    /// shares.
    pub fractional_shares: bool,
    /// Smallest buy in dollars; smaller buys are refused (default: 1, Alpaca's minimum for
    /// fractional orders).
    pub min_order_notional: f64,
    /// Account type: `margin` (default) or `cash` (see [`Account`]).
    pub account: Account,
    /// Liquidity: the most shares an order fills, as a fraction of its fill bar's volume
    /// (e.g. `Some(0.1)`); the rest is cancelled and the trade written as a partial fill,
    /// and an order whose fill bar has no volume is refused (`zero_volume`) (default: None,
    /// orders fill in full whatever the volume).
    pub max_participation: Option<f64>,
    /// Short selling and margin (default: off).
    pub short_selling: ShortSellingConfig,
    /// Target-position actions with partial exits (default: off, the seed's {hold, buy,
    /// sell}).
    pub target_positions: TargetPositionsConfig,
    /// Fill price timing (default: `next_open`).
    pub fill_timing: FillTiming,
    /// Quoted bid/ask spread in basis points; half is paid per fill (default: 2).
    pub spread_bps: f64,
    /// Slippage per fill = this × atr_14 / close (default: 0.1).
    pub slippage_atr_mult: f64,
    /// Square-root market impact = this × ret_std_20 × sqrt(shares / mean volume of the
    /// last 20 bars) (default: 0.5).
    pub impact_coef: f64,
    /// Broker fees.
    pub fees: FeeConfig,
    /// Pattern-Day-Trader rule.
    pub pdt: PdtConfig,
    /// Cap on executed orders per trading day; none = no cap (default: 4, the seed's).
    pub max_trades_per_day: Option<u32>,
    /// A position cannot be sold until this many bars after its latest buy filled; 0 or 1
    /// disable the rule, since one decision is taken per bar (default: 2).
    pub min_holding_bars: u32,
    /// Reward mode and weights.
    pub reward: RewardConfig,
    /// Multiplier applied to every reward (default: 1).
    pub reward_scaling: f64,
    /// Bars per episode before truncation (default: 2000).
    pub episode_length: usize,
    /// An episode terminates when equity falls below this fraction of initial cash; 0 never
    /// ends one, even at a negative equity (a short can take it there) (default: 0.5).
    pub bankruptcy_pct: f64,
    /// Observation layout (default: `materialized`).
    pub observation_layout: ObservationLayout,
    /// Domain randomization of execution costs: at every episode start each env scales its
    /// half-spread, slippage multiplier and impact coefficient by its own factor drawn
    /// uniformly in [1 − x, 1 + x] from the env's random stream (default: 0, off; at most
    /// 0.9).
    pub cost_randomization: f64,
    /// Observation columns the agent can act on costs with: `allowed` (per ticker, whether
    /// a buy, then a sell, is allowed now: the action masks, which this switches on) and
    /// `costs` (per ticker, what a buy, then a sell, would cost now in percent: spread,
    /// slippage, impact and fees at the decision bar's close), between the portfolio
    /// state and the market part (default: false).
    pub observe_costs: bool,
    /// Settings of plugins that are not part of Ploutos, by plugin name: each plugin reads
    /// and validates its own entry with [`EnvironmentConfig::plugin`] (default: none).
    pub plugins: BTreeMap<String, ron::Value>,
}

impl Default for EnvironmentConfig {
    fn default() -> Self {
        Self {
            initial_cash: 10_000.0,
            buy_pct: 0.2,
            buy_sizing: BuySizing::CashFraction,
            max_position_pct: 0.3,
            fractional_shares: true,
            min_order_notional: 1.0,
            account: Account::Margin,
            max_participation: None,
            short_selling: ShortSellingConfig::default(),
            target_positions: TargetPositionsConfig::default(),
            fill_timing: FillTiming::NextOpen,
            spread_bps: 2.0,
            slippage_atr_mult: 0.1,
            impact_coef: 0.5,
            fees: FeeConfig::default(),
            pdt: PdtConfig::default(),
            max_trades_per_day: Some(4),
            min_holding_bars: 2,
            reward: RewardConfig::default(),
            reward_scaling: 1.0,
            episode_length: 2000,
            bankruptcy_pct: 0.5,
            observation_layout: ObservationLayout::Materialized,
            cost_randomization: 0.0,
            observe_costs: false,
            plugins: BTreeMap::new(),
        }
    }
}

impl EnvironmentConfig {
    /// Actions per ticker: 3 ({hold, buy, sell}), or the number of target levels.
    pub fn n_actions(&self) -> usize {
        if self.target_positions.enabled { self.target_positions.levels.len() } else { 3 }
    }

    /// The first key, with this config's value, in which `other` observes or acts otherwise:
    /// what a trained model depends on (the cost columns it observes, what its action codes
    /// mean), `None` when both agree. The costs, rules and data may differ: a model can be
    /// evaluated under other ones.
    pub fn model_contract_difference(&self, other: &Self) -> Option<String> {
        let (t, u) = (&self.target_positions, &other.target_positions);
        if self.observe_costs != other.observe_costs {
            Some(format!("environment.observe_costs = {} (what it observes)", self.observe_costs))
        } else if t.enabled != u.enabled {
            let meaning = if t.enabled { "target positions" } else { "hold, buy and sell" };
            Some(format!("environment.target_positions.enabled = {} (its actions mean {meaning})", t.enabled))
        } else if t.enabled && t.levels != u.levels {
            Some(format!("environment.target_positions.levels = {:?} (the target of each action)", t.levels))
        } else {
            None
        }
    }

    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::above("environment.initial_cash", self.initial_cash, 0.0, 1e15)?;
        check::above("environment.buy_pct", self.buy_pct, 0.0, 1.0)?;
        check::above("environment.max_position_pct", self.max_position_pct, 0.0, 1.0)?;
        check::within("environment.min_order_notional", self.min_order_notional, 0.0, 1e12)?;
        if let Some(p) = self.max_participation {
            check::above("environment.max_participation", p, 0.0, 1.0)?;
        }
        let short = &self.short_selling;
        check::within("environment.short_selling.borrow_rate", short.borrow_rate, 0.0, 10.0)?;
        check::above("environment.short_selling.initial_margin", short.initial_margin, 0.0, 1.0)?;
        check::above(
            "environment.short_selling.maintenance_margin",
            short.maintenance_margin,
            0.0,
            short.initial_margin,
        )?;
        if short.enabled && self.account == Account::Cash {
            return Err(check::out(
                "environment.short_selling.enabled",
                true,
                "must be false with environment.account: cash (shorts need a margin account)".into(),
            ));
        }
        let targets = &self.target_positions;
        check::within("environment.target_positions.no_trade_band", targets.no_trade_band, 0.0, 1.0)?;
        if targets.enabled {
            let key = "environment.target_positions.levels";
            let shown = format!("{:?}", targets.levels);
            let bad = |why: &str| check::out(key, &shown, why.into());
            if !(2..=MAX_TARGET_LEVELS).contains(&targets.levels.len()) {
                return Err(bad(&format!("needs 2 to {MAX_TARGET_LEVELS} levels")));
            }
            if targets.levels.iter().any(|l| !(-1.0..=1.0).contains(l)) {
                return Err(bad("levels are fractions of max_position_pct, each in [-1, 1]"));
            }
            if targets.levels.iter().enumerate().any(|(i, a)| targets.levels[..i].contains(a)) {
                return Err(bad("levels must differ from each other"));
            }
            if !short.enabled && targets.levels.iter().any(|&l| l < 0.0) {
                return Err(bad("negative levels (shorts) need environment.short_selling.enabled: true"));
            }
        }
        check::within("environment.spread_bps", self.spread_bps, 0.0, 10_000.0)?;
        check::within("environment.slippage_atr_mult", self.slippage_atr_mult, 0.0, 100.0)?;
        check::within("environment.impact_coef", self.impact_coef, 0.0, 100.0)?;
        let f = &self.fees;
        check::within("environment.fees.sec_fee_rate", f.sec_fee_rate, 0.0, 0.1)?;
        check::within("environment.fees.taf_rate", f.taf_rate, 0.0, 0.1)?;
        check::within("environment.fees.taf_per_share", f.taf_per_share, 0.0, 1.0)?;
        check::within("environment.fees.taf_max_per_trade", f.taf_max_per_trade, 0.0, 1e6)?;
        check::within("environment.fees.commission_per_order", f.commission_per_order, 0.0, 1e6)?;
        check::within("environment.pdt.equity_threshold", self.pdt.equity_threshold, 0.0, 1e15)?;
        check::count("environment.pdt.max_day_trades", self.pdt.max_day_trades as usize, 0, 1000)?;
        check::count("environment.pdt.window_days", self.pdt.window_days as usize, 1, 64)?;
        if let Some(n) = self.max_trades_per_day {
            check::count("environment.max_trades_per_day", n as usize, 1, 100_000)?;
        }
        check::count("environment.min_holding_bars", self.min_holding_bars as usize, 0, 1_000_000)?;
        let r = &self.reward;
        check::within("environment.reward.return_weight", r.return_weight, -1e6, 1e6)?;
        check::within("environment.reward.drawdown_threshold", r.drawdown_threshold, 0.0, 1.0)?;
        check::within("environment.reward.drawdown_weight", r.drawdown_weight, 0.0, 1e6)?;
        check::within("environment.reward.sharpe_weight", r.sharpe_weight, 0.0, 1e6)?;
        check::count("environment.reward.sharpe_window", r.sharpe_window, 2, 10_000)?;
        check::count("environment.reward.overtrade_threshold", r.overtrade_threshold as usize, 0, 100_000)?;
        check::within("environment.reward.overtrade_weight", r.overtrade_weight, 0.0, 1e6)?;
        check::within("environment.reward.bonus_threshold", r.bonus_threshold, -1.0, 100.0)?;
        check::within("environment.reward.bonus", r.bonus, -1e6, 1e6)?;
        check::above("environment.reward.dsr_eta", r.dsr_eta, 0.0, 1.0)?;
        check::within("environment.reward.turnover_penalty", r.turnover_penalty, 0.0, 1.0)?;
        check::above("environment.reward_scaling", self.reward_scaling, 0.0, 1e6)?;
        check::count("environment.episode_length", self.episode_length, 1, 100_000_000)?;
        check::within("environment.bankruptcy_pct", self.bankruptcy_pct, 0.0, 1.0)?;
        check::within("environment.cost_randomization", self.cost_randomization, 0.0, 0.9)?;
        Ok(())
    }

    /// The settings of plugin `name` from `environment.plugins`, deserialized into the
    /// plugin's own type; `None` when the config has no entry for it.
    ///
    /// # Errors
    /// [`ConfigError::Plugin`] naming the key when the entry does not fit `T`.
    pub fn plugin<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.plugins.get(name) else { return Ok(None) };
        value
            .clone()
            .into_rust::<T>()
            .map(Some)
            .map_err(|e| ConfigError::Plugin { key: format!("environment.plugins.{name}"), message: e.to_string() })
    }
}
