//! `ploutos._ploutos`: Ploutos' batched env ([`TradingEnv`]) for Python.
//!
//! [`Core`] owns one env and hands Python zero-copy NumPy views of its
//! [`ploutos::env::StepBuffers`] (observations, final observations, rewards, flags, info
//! records, action masks) and of the step's costs and refusals, which a system of this
//! crate writes on the env's own threads ([`record_step_costs`]). Every view is rewritten
//! in place by the next `reset` or `step`: copy what must outlive a step. `reset` and
//! `step` release the GIL while the env runs.
//!
//! Bad arguments (a config key, a split, actions of the wrong shape) raise `ValueError`
//! with the one line `ploutos` prints after `ploutos: error: `; anything else raises
//! `RuntimeError`. Nothing panics across the boundary.
//!
//! The Python side (`python/ploutos/`) wraps a `Core` in Gymnasium's vector and single-env
//! interfaces.

use numpy::ndarray::{ArrayView1, ArrayView2, ArrayView3};
use numpy::{PyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use ploutos::dataset::{Dataset, SplitPart};
use ploutos::env::{ActionMasking, EnvInfo};
use ploutos::prelude::*;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

/// Where `config` points when it is not given (as for the `ploutos` command).
const DEFAULT_CONFIG: &str = "config/default.ron";

/// Cost kinds of the `costs` info, in column order.
const COST_KINDS: [&str; 4] = ["fees", "spread", "slippage", "impact"];

/// The error and its causes on one line, each cause once: what `ploutos` prints after
/// `ploutos: error: ` (the binary's `one_line`, over a std error chain).
fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string().replace('\n', " ");
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// A bad argument: `ValueError` with the CLI's one-line message.
fn bad(err: impl std::error::Error + 'static) -> PyErr {
    PyValueError::new_err(one_line(&err))
}

/// `ValueError` with a message of ours.
fn bad_msg(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// `config` naming the built-in defaults rather than a file (what `ploutos bench` uses
/// without `--config`).
const BUILTIN: &str = "builtin";

/// The config as `ploutos` loads it: `path` (or [`BUILTIN`]), else `config/default.ron`
/// when present, else the built-in defaults, with `overrides` (`section.key=value`)
/// applied and validated.
fn load_config(path: Option<&str>, overrides: &[String]) -> PyResult<Config> {
    let default = Path::new(DEFAULT_CONFIG);
    match path {
        Some(BUILTIN) => {
            let cfg = Config::default().with_overrides(overrides).map_err(bad)?;
            cfg.validate().map_err(|e| bad(e.located(None, overrides)))?;
            Ok(cfg)
        }
        Some(p) => Config::load(Path::new(p), overrides).map_err(bad),
        None if default.exists() => Config::load(default, overrides).map_err(bad),
        None => load_config(Some(BUILTIN), overrides),
    }
}

/// A market given as arrays: `open`, `close` `[n_bars, n_tickers]` (f64), `features`
/// `[n_bars, n_tickers, n_features]` (f32), `day` `[n_bars]` (u32, trading day of each bar)
/// and optionally `atr_frac`, `ret_std` (default 0.0, 0.01) and `mean_volume` (1e6).
fn market_from_dict(d: &Bound<'_, PyDict>) -> PyResult<MarketData> {
    const KEYS: [&str; 7] = ["open", "close", "features", "day", "atr_frac", "ret_std", "mean_volume"];
    for key in d.keys() {
        let key: String = key.extract().map_err(|_| bad_msg("market: keys must be strings"))?;
        if !KEYS.contains(&key.as_str()) {
            return Err(bad_msg(format!("market: unknown array {key:?} (known: {})", KEYS.join(", "))));
        }
    }
    let get = |key: &str| d.get_item(key);
    let need = |key: &str| get(key)?.ok_or_else(|| bad_msg(format!("market: missing array {key:?}")));
    let open: PyReadonlyArray2<f64> = need("open")?.extract().map_err(|e| bad_msg(format!("market: open: {e}")))?;
    let (n_bars, n_tickers) = (open.shape()[0], open.shape()[1]);
    if n_tickers == 0 || n_bars < 2 {
        return Err(bad_msg(format!("market: open has shape ({n_bars}, {n_tickers}): at least 2 bars of 1 ticker")));
    }
    // A `[n_bars, n_tickers]` float64 column, or `default` everywhere when absent.
    let column = |key: &str, default: Option<f64>| -> PyResult<Vec<f64>> {
        let a = match (get(key)?, default) {
            (Some(a), _) => a,
            (None, Some(v)) => return Ok(vec![v; n_bars * n_tickers]),
            (None, None) => return Err(bad_msg(format!("market: missing array {key:?}"))),
        };
        let a: PyReadonlyArray2<f64> = a.extract().map_err(|e| bad_msg(format!("market: {key}: {e}")))?;
        if a.shape() != [n_bars, n_tickers] {
            return Err(bad_msg(format!("market: {key} has shape {:?}, open has ({n_bars}, {n_tickers})", a.shape())));
        }
        Ok(a.as_array().iter().copied().collect())
    };
    let features: PyReadonlyArray3<f32> =
        need("features")?.extract().map_err(|e| bad_msg(format!("market: features: {e}")))?;
    let day: PyReadonlyArray1<u32> = need("day")?.extract().map_err(|e| bad_msg(format!("market: day: {e}")))?;
    let n_features = features.shape()[2];
    if features.shape()[..2] != [n_bars, n_tickers] {
        return Err(bad_msg(format!(
            "market: features has shape {:?}, expected ({n_bars}, {n_tickers}, n_features)",
            features.shape()
        )));
    }
    let c = MarketColumns {
        open: open.as_array().iter().copied().collect(),
        close: column("close", None)?,
        atr_frac: column("atr_frac", Some(0.0))?,
        ret_std: column("ret_std", Some(0.01))?,
        mean_volume: column("mean_volume", Some(1e6))?,
        day: day.as_array().iter().copied().collect(),
        features: features.as_array().iter().copied().collect(),
    };
    // What the env would turn into NaN rewards or a market that goes back in time.
    for (key, values) in [("open", &c.open), ("close", &c.close)] {
        if let Some(i) = values.iter().position(|p| !(p.is_finite() && *p > 0.0)) {
            let (t, k) = (i / n_tickers, i % n_tickers);
            return Err(bad_msg(format!("market: {key}[{t}, {k}] = {} is not a positive price", values[i])));
        }
    }
    // (Non-finite cost inputs are a feature warm-up's: `MarketData::new` counts them as 0.)
    for (key, values) in [("atr_frac", &c.atr_frac), ("ret_std", &c.ret_std), ("mean_volume", &c.mean_volume)] {
        if let Some(i) = values.iter().position(|v| *v < 0.0) {
            let (t, k) = (i / n_tickers, i % n_tickers);
            return Err(bad_msg(format!("market: {key}[{t}, {k}] = {} is negative", values[i])));
        }
    }
    if let Some(i) = c.features.iter().position(|f| !f.is_finite()) {
        return Err(bad_msg(format!("market: features has a non-finite value ({}) at flat index {i}", c.features[i])));
    }
    if day.len() != n_bars {
        return Err(bad_msg(format!("market: day has {} values, open has {n_bars} bars", day.len())));
    }
    if let Some(t) = c.day.windows(2).position(|w| w[1] < w[0]) {
        return Err(bad_msg(format!("market: day[{}] = {} is before day[{t}] = {}", t + 1, c.day[t + 1], c.day[t])));
    }
    MarketData::new(n_bars, n_tickers, n_features, c).map_err(bad)
}

/// One shard's rows of [`Core`]'s buffers of the step's costs `[n_envs, 4]` and
/// refusals `[n_envs, n_reasons]`, and of the lifetime costs at the last step the step's
/// are measured from (as the env's own `StepRows` for its buffers).
#[derive(Resource)]
struct StepCostRows {
    costs: *mut f64,
    refusals: *mut u32,
    last_costs: *mut f64,
    n_reasons: usize,
    envs: Range<usize>,
}

// SAFETY: a shard's `StepCostRows` is the only access to its rows of the buffers while the
// shard runs (shards hold disjoint env ranges); `Core` reads the buffers only between runs.
unsafe impl Send for StepCostRows {}
unsafe impl Sync for StepCostRows {}

impl StepCostRows {
    /// Row `i` of `buf` (`len` values per env).
    ///
    /// # Safety
    /// `buf` is one of `self`'s buffers, with `len` values per env, and no other borrow
    /// of that row is alive (only [`record_step_costs`] calls this, one row at a time).
    unsafe fn row<'a, T>(&self, buf: *mut T, i: usize, len: usize) -> &'a mut [T] {
        assert!(self.envs.contains(&i), "env {i} is not in this shard");
        // SAFETY: row i belongs to this shard (checked above), which only this system
        // writes, on one thread; the buffers outlive the shard (`Core` owns both).
        unsafe { std::slice::from_raw_parts_mut(buf.add(i * len), len) }
    }
}

/// Writes each env's costs of this step (lifetime costs of its [`Ledger`] minus those at
/// the last step) and refusals of this step ([`Orders::refused`]) into [`StepCostRows`].
///
/// Reads [`Ledger`], [`Orders`]; writes the env's rows of [`StepCostRows`]. Runs in
/// [`StepSystems::Reward`], after execution, on the shard's thread.
fn record_step_costs(mut rows: ResMut<StepCostRows>, envs: Query<(&EnvId, &Ledger, &Orders)>) {
    let (nr, k) = (rows.n_reasons, COST_KINDS.len());
    let rows = &mut *rows;
    for (id, ledger, orders) in &envs {
        let i = id.index();
        // SAFETY: each buffer with its row length; one row of each at a time.
        let (costs, last_costs, refused) =
            unsafe { (rows.row(rows.costs, i, k), rows.row(rows.last_costs, i, k), rows.row(rows.refusals, i, nr)) };
        let c = &ledger.costs;
        for ((out, last), now) in costs.iter_mut().zip(last_costs).zip([c.fees, c.spread, c.slippage, c.impact]) {
            *out = now - *last;
            *last = now;
        }
        if orders.n_refused == 0 {
            refused.fill(0);
        } else {
            refused.copy_from_slice(&orders.refused.0[..nr]);
        }
    }
}

/// A zero-copy NumPy view of `data` shaped `shape`, read-only, kept alive by `owner`.
///
/// # Safety
/// `data` must be owned by `owner` and never reallocated while `owner` lives.
unsafe fn view<'py, T: numpy::Element>(
    owner: &Bound<'py, Core>,
    data: &[T],
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let any = owner.clone().into_any();
    // SAFETY: the caller's contract: `data` lives and stays in place as long as `owner`.
    let array = unsafe {
        match *shape {
            [n] => {
                PyArray::borrow_from_array(&ArrayView1::from_shape(n, data).map_err(|e| bad_msg(e.to_string()))?, any)
                    .into_any()
            }
            [n, m] => PyArray::borrow_from_array(
                &ArrayView2::from_shape((n, m), data).map_err(|e| bad_msg(e.to_string()))?,
                any,
            )
            .into_any(),
            [n, m, k] => PyArray::borrow_from_array(
                &ArrayView3::from_shape((n, m, k), data).map_err(|e| bad_msg(e.to_string()))?,
                any,
            )
            .into_any(),
            _ => return Err(PyRuntimeError::new_err("views have 1 to 3 dimensions")),
        }
    };
    array.call_method1("setflags", (false,))?;
    Ok(array)
}

/// The batched env: `num_envs` trading accounts over one market.
#[pyclass(module = "ploutos._ploutos")]
struct Core {
    env: TradingEnv,
    /// `[n_envs, 4]`: this step's costs by kind ([`COST_KINDS`]), written by the shards.
    costs: Vec<f64>,
    /// `[n_envs, n_reasons]`: this step's refused orders by reason, written by the shards.
    refusals: Vec<u32>,
    /// `[n_envs, 4]`: lifetime costs at the last step (the shards' `StepCostRows`).
    _last_costs: Vec<f64>,
    /// Whether the shards write `costs` and `refusals` (not in a plain env).
    step_costs: bool,
    refusal_names: Vec<String>,
    masking: bool,
    config_ron: String,
    seed: u64,
    tickers: Vec<String>,
}

#[pymethods]
impl Core {
    /// Builds the env as `ploutos train` builds its training env: the config (file and
    /// overrides, validated), the data and its features standardized on the training
    /// split, `num_envs` envs (default `training.n_envs`) with random starts over
    /// `split`, auto-reset. With `market` (a dict of arrays) and `bounds` (first, last
    /// bar), runs on that market instead of the config's data. `action_masks` turns the
    /// built-in action masks on or off (default: `training.action_masking`, as `ploutos
    /// train`). `plain` leaves out the per-step costs and refusals (the env exactly as
    /// `ploutos bench` times it).
    #[new]
    #[pyo3(signature = (config=None, overrides=Vec::new(), num_envs=None, split="train", threads=None, auto_reset=true, market=None, bounds=None, plain=false, action_masks=None))]
    #[expect(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn new(
        py: Python<'_>,
        config: Option<&str>,
        overrides: Vec<String>,
        num_envs: Option<usize>,
        split: &str,
        threads: Option<usize>,
        auto_reset: bool,
        market: Option<&Bound<'_, PyDict>>,
        bounds: Option<(u32, u32)>,
        plain: bool,
        action_masks: Option<bool>,
    ) -> PyResult<Self> {
        let cfg = load_config(config, &overrides)?;
        let n_envs = num_envs.unwrap_or(cfg.training.n_envs);
        if n_envs == 0 {
            return Err(bad(ploutos::EnvError::NoEnvs));
        }
        let threads = threads.unwrap_or(cfg.training.threads);
        let (market, mut opts, tickers) = match market {
            Some(d) => {
                let market = market_from_dict(d)?;
                let (first, last) = bounds.unwrap_or((0, market.n_bars().saturating_sub(1) as u32));
                let b = EpisodeBounds { first, last, random_start: true };
                let tickers = (0..market.n_tickers()).map(|k| format!("T{k}")).collect();
                let opts = EnvOptions {
                    threads,
                    action_masks: cfg.training.action_masking,
                    ..EnvOptions::training(n_envs, b)
                };
                (market, opts, tickers)
            }
            None => {
                if bounds.is_some() {
                    return Err(bad_msg("bounds: only with market (the config's data has splits)"));
                }
                let part: SplitPart = split.parse().map_err(bad_msg)?;
                let ds = py.detach(|| Dataset::load(&cfg.data)).map_err(bad)?;
                let opts = ds.env_options(&cfg.training, part, n_envs).map_err(bad)?;
                (ds.market, EnvOptions { threads, ..opts }, ds.panel.tickers().to_vec())
            }
        };
        opts.auto_reset = auto_reset;
        opts.action_masks = action_masks.unwrap_or(opts.action_masks);
        let mut env = py
            .detach(|| {
                TradingEnv::with_plugins(&cfg.environment, market, opts, |app| {
                    if !plain {
                        app.add_systems(EnvStep, record_step_costs.in_set(StepSystems::Reward));
                    }
                })
            })
            .map_err(bad)?;
        let refusal_names = env.refusal_names();
        let nr = refusal_names.len();
        let mut costs = vec![0.0; n_envs * COST_KINDS.len()];
        let mut refusals = vec![0; n_envs * nr];
        let mut last_costs = costs.clone();
        for world in env.worlds_mut() {
            let envs = world.resource::<StepRows>().envs();
            // `Vec::as_mut_ptr` takes no reference to the elements: the pointers of every
            // shard stay valid beside each other. The vectors move into `Core` with the env
            // (their heap buffers do not move) and are never resized.
            world.insert_resource(StepCostRows {
                costs: costs.as_mut_ptr(),
                refusals: refusals.as_mut_ptr(),
                last_costs: last_costs.as_mut_ptr(),
                n_reasons: nr,
                envs,
            });
        }
        let masking = env.worlds_mut().next().is_some_and(|w| w.resource::<ActionMasking>().enabled);
        Ok(Self {
            env,
            costs,
            refusals,
            _last_costs: last_costs,
            step_costs: !plain,
            refusal_names,
            masking,
            config_ron: cfg.to_ron(),
            seed: cfg.training.seed,
            tickers,
        })
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.env.n_envs()
    }

    #[getter]
    fn n_tickers(&self) -> usize {
        self.env.n_tickers()
    }

    /// Actions per ticker: 3 ({hold, buy, sell}), or the number of target levels
    /// (`environment.target_positions`).
    #[getter]
    fn n_actions(&self) -> usize {
        self.env.n_actions()
    }

    #[getter]
    fn obs_dim(&self) -> usize {
        self.env.obs_dim()
    }

    /// `training.seed` of the config: the seed `ploutos train` resets its envs with.
    #[getter]
    fn config_seed(&self) -> u64 {
        self.seed
    }

    /// The config, validated, as RON.
    #[getter]
    fn config(&self) -> String {
        self.config_ron.clone()
    }

    /// Threads stepping the envs.
    #[getter]
    fn threads(&self) -> usize {
        self.env.threads()
    }

    #[getter]
    fn auto_reset(&self) -> bool {
        self.env.auto_reset()
    }

    /// Whether the `costs` and `refusals` views are written at every step.
    #[getter]
    fn step_costs(&self) -> bool {
        self.step_costs
    }

    /// Whether some plugin masks actions (else every mask is all true).
    #[getter]
    fn masking(&self) -> bool {
        self.masking
    }

    /// Refusal reason names, the columns of the `refusals` info.
    #[getter]
    fn refusal_names(&self) -> Vec<String> {
        self.refusal_names.clone()
    }

    /// Cost kinds, the columns of the `costs` info.
    #[getter]
    fn cost_kinds(&self) -> Vec<&'static str> {
        COST_KINDS.to_vec()
    }

    /// Tickers of the market.
    #[getter]
    fn tickers(&self) -> Vec<String> {
        self.tickers.clone()
    }

    /// Blocks of the observation row: (name, first column, end column), left to right.
    fn observation_columns(&self) -> Vec<(String, usize, usize)> {
        self.env.observation_columns().blocks().iter().map(|(name, r)| (name.to_string(), r.start, r.end)).collect()
    }

    /// The shared feature table `[n_bars, n_tickers, n_features]` (a copy), from which the
    /// `index` layout's bar index gathers each env's market features.
    fn feature_table<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let m = self.env.market();
        let table = numpy::ndarray::Array3::from_shape_vec(
            (m.n_bars(), m.n_tickers(), m.n_features()),
            m.feature_table().to_vec(),
        )
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(PyArray::from_owned_array(py, table).into_any())
    }

    /// The fields of the env's per-env info record (Rust's `EnvInfo`) as
    /// (name, NumPy type, byte offset), and the record's size: the `infos` view's dtype.
    fn info_layout(&self) -> (Vec<(&'static str, &'static str, usize)>, usize) {
        use std::mem::offset_of;
        let fields = vec![
            ("equity", "<f8", offset_of!(EnvInfo, equity)),
            ("cash", "<f8", offset_of!(EnvInfo, cash)),
            ("step_return", "<f8", offset_of!(EnvInfo, step_return)),
            ("executed", "<u4", offset_of!(EnvInfo, executed)),
            ("refused", "<u4", offset_of!(EnvInfo, refused)),
            ("bar", "<u4", offset_of!(EnvInfo, bar)),
            ("episode_reward", "<f8", offset_of!(EnvInfo, episode_reward)),
            ("episode_steps", "<u4", offset_of!(EnvInfo, episode_steps)),
            ("episode_return", "<f8", offset_of!(EnvInfo, episode_return)),
            ("terminated", "?", offset_of!(EnvInfo, terminated)),
            ("truncated", "?", offset_of!(EnvInfo, truncated)),
        ];
        (fields, std::mem::size_of::<EnvInfo>())
    }

    /// Starts a new episode in every env; env i draws from stream (seed, i).
    fn reset(mut slf: PyRefMut<'_, Self>, py: Python<'_>, seed: u64) {
        let this = &mut *slf;
        py.detach(|| {
            this.env.reset(seed);
            // A reset starts every env afresh: nothing was paid or refused in it yet.
            this.costs.fill(0.0);
            this.refusals.fill(0);
        });
    }

    /// Advances every env by one bar. `actions`: `[num_envs, n_tickers]` uint8 codes
    /// (0 hold, 1 buy, 2 sell), C-contiguous.
    fn step(mut slf: PyRefMut<'_, Self>, py: Python<'_>, actions: PyReadonlyArray2<'_, u8>) -> PyResult<()> {
        let this = &mut *slf;
        let codes = checked_actions(&this.env, &actions)?;
        py.detach(|| this.env.step(codes).map(|_| ())).map_err(bad)
    }

    /// Steps `n_steps` times with the same `actions` from Rust, without Python in the
    /// loop (with `plain`, what `ploutos bench` times: the reference figure of
    /// `python -m ploutos.bench`); returns the seconds.
    fn bench_steps(
        mut slf: PyRefMut<'_, Self>,
        py: Python<'_>,
        actions: PyReadonlyArray2<'_, u8>,
        n_steps: usize,
    ) -> PyResult<f64> {
        let this = &mut *slf;
        let codes = checked_actions(&this.env, &actions)?;
        py.detach(|| -> Result<f64, ploutos::EnvError> {
            let t0 = Instant::now();
            for _ in 0..n_steps {
                this.env.step(codes)?;
            }
            Ok(t0.elapsed().as_secs_f64())
        })
        .map_err(bad)
    }

    /// Zero-copy, read-only views of the env's buffers, by name: `obs`, `final_obs`
    /// `[num_envs, obs_dim]` float32; `rewards` float32, `terminated`, `truncated` bool
    /// `[num_envs]`; `action_masks` `[num_envs, n_tickers, n_actions]` bool; `infos`
    /// `[num_envs, record size]` uint8, the env's info records (view them with
    /// [`Core::info_layout`]'s dtype); `costs` `[num_envs, 4]` float64 and `refusals`
    /// `[num_envs, n_reasons]` uint32 of the step. Each is rewritten in place by every
    /// `reset` and `step`.
    fn views<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let d = PyDict::new(py);
        let this = slf.borrow();
        let (n, dim, k) = (this.env.n_envs(), this.env.obs_dim(), this.env.n_tickers());
        let b = this.env.buffers();
        let size = std::mem::size_of::<EnvInfo>();
        // SAFETY: `EnvInfo` is plain data (floats, integers, bools) and its records are
        // written whole, so its bytes are initialized but for padding, which the record
        // dtype never reads.
        let info_bytes = unsafe { std::slice::from_raw_parts(b.infos.as_ptr().cast::<u8>(), n * size) };
        // SAFETY: every slice below is a buffer of `slf`'s env or of `slf`, allocated once
        // and never resized (only overwritten in place), alive as long as `slf`.
        unsafe {
            d.set_item("obs", view(slf, &b.obs, &[n, dim])?)?;
            d.set_item("final_obs", view(slf, &b.final_obs, &[n, dim])?)?;
            d.set_item("rewards", view(slf, &b.rewards, &[n])?)?;
            d.set_item("terminated", view(slf, &b.terminated, &[n])?)?;
            d.set_item("truncated", view(slf, &b.truncated, &[n])?)?;
            d.set_item("action_masks", view(slf, &b.action_masks, &[n, k, this.env.n_actions()])?)?;
            d.set_item("infos", view(slf, info_bytes, &[n, size])?)?;
            d.set_item("costs", view(slf, &this.costs, &[n, COST_KINDS.len()])?)?;
            d.set_item("refusals", view(slf, &this.refusals, &[n, this.refusal_names.len()])?)?;
        }
        Ok(d)
    }
}

/// `actions` as the env's codes, checked: shape `[n_envs, n_tickers]`, C-contiguous,
/// codes 0 to 2 (hold, buy, sell), or with target positions a level's index or
/// `ploutos.env.KEEP` (255, no order).
fn checked_actions<'a>(env: &TradingEnv, actions: &'a PyReadonlyArray2<'_, u8>) -> PyResult<&'a [u8]> {
    let shape = actions.shape();
    if shape != [env.n_envs(), env.n_tickers()] {
        return Err(bad_msg(format!(
            "actions: expected shape ({}, {}) (num_envs, n_tickers), got {shape:?}",
            env.n_envs(),
            env.n_tickers()
        )));
    }
    let codes = actions.as_slice().map_err(|_| bad_msg("actions: must be C-contiguous"))?;
    let (n, keep) = (env.n_actions(), env.hold_code());
    if let Some(&c) = codes.iter().find(|&&c| usize::from(c) >= n && c != keep) {
        return Err(bad_msg(if n == 3 && keep == 0 {
            format!("actions: code {c} is not 0 (hold), 1 (buy) or 2 (sell)")
        } else {
            format!("actions: code {c} is not a target level's index (0 to {}) or {keep} (no order)", n - 1)
        }));
    }
    Ok(codes)
}

/// The native half of the `ploutos` Python package.
#[pymodule]
fn _ploutos(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add("DEFAULT_CONFIG", DEFAULT_CONFIG)?;
    m.add("BUILTIN", BUILTIN)?;
    Ok(())
}
