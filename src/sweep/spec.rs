//! `SPEC.ron`: what a sweep varies, how many seeds and folds, what it ranks by, and the
//! expansion of all that into trials.
//!
//! A spec names a base config and overrides in the `--set section.key=value` syntax, so
//! that every key a config file has can be swept and a trial's config is exactly the base
//! config with its overrides applied. The expansion is deterministic (random points come
//! from `random.seed`): the same spec always gives the same trials with the same ids, which
//! is what lets an interrupted sweep resume.

use crate::config::{BestMetric, Config, ConfigError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Most trials one spec may expand to: a typo in a grid should not start a million runs.
pub const MAX_TRIALS: usize = 10_000;

/// The key each trial's seed is written to, last.
const SEED_KEY: &str = "training.seed";

/// A bad spec: the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl crate::UserError for SpecError {}

/// A value to set a config key to, written as in RON: `3e-4`, `64`, `true`, `"cuda"`,
/// `[64, 64]`. It becomes the value of a `--set key=value` override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Value>),
}

impl fmt::Display for Value {
    /// JSON text, which is what `--set` reads (a bare string stays bare).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            // `{:?}` keeps a decimal point (`1.0`, `0.0003`), so the key reads it as a float.
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s}"),
            Value::List(v) => {
                write!(f, "[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    match x {
                        Value::Text(s) => write!(f, "{}", serde_json::Value::String(s.clone()))?,
                        other => write!(f, "{other}")?,
                    }
                }
                write!(f, "]")
            }
        }
    }
}

/// Where random search draws a key's values from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// Uniform on `[lo, hi)`.
    Uniform(f64, f64),
    /// `exp` of uniform on `[ln lo, ln hi)`: learning rates, coefficients.
    LogUniform(f64, f64),
    /// An integer in `lo..=hi`, each equally likely.
    IntUniform(i64, i64),
    /// One of the values, each equally likely.
    Choice(Vec<Value>),
}

impl Distribution {
    fn check(&self, key: &str) -> Result<(), String> {
        let bad = |why: &str| Err(format!("random key `{key}`: {why}"));
        match *self {
            Distribution::Uniform(lo, hi) if !(lo.is_finite() && hi.is_finite() && lo < hi) => {
                bad(&format!("Uniform({lo}, {hi}) is an empty range (needs lo < hi)"))
            }
            // Drawing scales by hi − lo, which must be a number too.
            Distribution::Uniform(lo, hi) if !(hi - lo).is_finite() => {
                bad(&format!("Uniform({lo}, {hi}) is wider than the largest float (hi − lo overflows)"))
            }
            Distribution::LogUniform(lo, hi) if !(lo > 0.0 && hi.is_finite() && lo < hi) => {
                bad(&format!("LogUniform({lo}, {hi}) needs 0 < lo < hi"))
            }
            Distribution::IntUniform(lo, hi) if lo > hi => bad(&format!("IntUniform({lo}, {hi}) is an empty range")),
            Distribution::Choice(ref v) if v.is_empty() => bad("Choice([]) has no value to choose"),
            _ => Ok(()),
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Value {
        match self {
            Distribution::Uniform(lo, hi) => Value::Float(rng.random_range(*lo..*hi)),
            Distribution::LogUniform(lo, hi) => Value::Float(rng.random_range(lo.ln()..hi.ln()).exp()),
            Distribution::IntUniform(lo, hi) => Value::Int(rng.random_range(*lo..=*hi)),
            Distribution::Choice(v) => v[rng.random_range(0..v.len())].clone(),
        }
    }
}

/// A map of config keys, each once: a key written twice would keep its last values only,
/// and the sweep run fewer points than the spec shows.
fn unique_keys<'de, D, V>(de: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of config keys")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("key `{key}` is given twice")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    de.deserialize_map(Unique(std::marker::PhantomData))
}

/// Random search: `trials` points, each key drawn from its distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearch {
    /// How many points to draw (the budget); each is crossed with every grid point.
    pub trials: usize,
    /// Seed of the draws (default 0): the same seed gives the same points.
    #[serde(default)]
    pub seed: u64,
    /// Key → distribution.
    #[serde(deserialize_with = "unique_keys")]
    pub keys: BTreeMap<String, Distribution>,
}

/// Asynchronous successive halving (ASHA, Li et al. 2020, as Ray Tune's
/// `AsyncHyperBandScheduler`): see [`super::asha`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AshaSpec {
    /// Timesteps every trial runs before it can be stopped (the first rung).
    pub grace_timesteps: u64,
    /// Rungs are `grace × η^k`; at each, a trial below the top 1/η so far stops (default 3).
    #[serde(default = "default_reduction_factor")]
    pub reduction_factor: f64,
}

fn default_reduction_factor() -> f64 {
    3.0
}

fn one() -> usize {
    1
}

/// A sweep: see the module docs and the README's "Sweeps" section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Folder name under `sweeps/` (default: the spec file's name without `.ron`).
    #[serde(default)]
    pub name: Option<String>,
    /// Base config file (default: `config/default.ron` when present, else the built-ins).
    #[serde(default)]
    pub base: Option<PathBuf>,
    /// Overrides applied to every trial, e.g. `["training.total_timesteps=200000"]`.
    #[serde(default)]
    pub set: Vec<String>,
    /// Key → values; every combination is a point.
    #[serde(default, deserialize_with = "unique_keys")]
    pub grid: BTreeMap<String, Vec<Value>>,
    /// Random search, crossed with the grid.
    #[serde(default)]
    pub random: Option<RandomSearch>,
    /// Seeds per point: `training.seed`, +1, …, +seeds−1 (default 1).
    #[serde(default = "one")]
    pub seeds: usize,
    /// Walk-forward folds: each a list of overrides (e.g. of `data.split.train_end` and
    /// `data.split.validation_end`); every point runs on every fold (default: the base
    /// config's split only).
    #[serde(default)]
    pub folds: Vec<Vec<String>>,
    /// Validation metric the leaderboard ranks by (its median over seeds and folds), and
    /// that ASHA compares at its rungs (the training's periodic evaluation): `sharpe`,
    /// `total_return` or `episode_reward` (ranked by the evaluation's mean reward).
    #[serde(default = "default_metric")]
    pub metric: BestMetric,
    /// Early stopping of poor trials (default: none, every trial runs to the end).
    #[serde(default)]
    pub asha: Option<AshaSpec>,
    /// CPU threads of each trial (default 0: the cores split evenly between the trials
    /// that run at once).
    #[serde(default)]
    pub trial_threads: usize,
    /// GPUs each trial asks Ray for (default 0; fractions share a GPU).
    #[serde(default)]
    pub trial_gpus: f64,
}

fn default_metric() -> BestMetric {
    BestMetric::Sharpe
}

/// One combination of the varied keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in the expansion: `p000`, `p001`, …
    pub index: usize,
    /// The varied keys as `key=value` overrides, in key order (grid, then random).
    pub overrides: Vec<String>,
}

/// One run: a point on one seed and one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// `p<point>-s<seed>` (and `-f<fold>` when the spec has folds): a folder name.
    pub id: String,
    pub point: usize,
    pub seed: u64,
    pub fold: usize,
    /// Every override, in the order applied: the spec's `set`, the fold's, the point's,
    /// then `training.seed`.
    pub overrides: Vec<String>,
}

impl SweepSpec {
    /// Parses a RON spec (`path` only names it in messages).
    ///
    /// # Errors
    /// [`SpecError`] with the file, line and column of a syntax error or unknown key.
    pub fn from_ron_str(text: &str, path: &str) -> Result<Self, SpecError> {
        // `base: "config/default.ron"` and `asha: (...)` read without `Some(...)`.
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str::<SweepSpec>(text)
            .map_err(|e| SpecError(format!("{path}:{e}")))
    }

    /// The points: the grid's combinations (the last key varying fastest), each crossed
    /// with `random.trials` draws when there is a random search.
    pub fn points(&self) -> Vec<Point> {
        let mut combos: Vec<Vec<String>> = vec![Vec::new()];
        for (key, values) in &self.grid {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push(format!("{key}={v}"));
                        c
                    })
                })
                .collect();
        }
        if let Some(r) = &self.random {
            let mut rng = ChaCha8Rng::seed_from_u64(r.seed);
            let draws: Vec<Vec<String>> = (0..r.trials)
                .map(|_| r.keys.iter().map(|(k, d)| format!("{k}={}", d.draw(&mut rng))).collect())
                .collect();
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    draws.iter().map(move |d| {
                        let mut c = c.clone();
                        c.extend(d.iter().cloned());
                        c
                    })
                })
                .collect();
        }
        combos.into_iter().enumerate().map(|(index, overrides)| Point { index, overrides }).collect()
    }

    /// Every trial, point by point, then seed, then fold; `base_seed` is the base config's
    /// `training.seed`.
    pub fn trials(&self, base_seed: u64) -> Vec<Trial> {
        let folds: Vec<&[String]> =
            if self.folds.is_empty() { vec![&[]] } else { self.folds.iter().map(Vec::as_slice).collect() };
        let mut out = Vec::new();
        for p in self.points() {
            for s in 0..self.seeds as u64 {
                let seed = base_seed.wrapping_add(s);
                for (f, fold) in folds.iter().enumerate() {
                    let mut overrides = self.set.clone();
                    overrides.extend(fold.iter().cloned());
                    overrides.extend(p.overrides.iter().cloned());
                    overrides.push(format!("{SEED_KEY}={seed}"));
                    let id = if self.folds.is_empty() {
                        format!("p{:03}-s{seed}", p.index)
                    } else {
                        format!("p{:03}-s{seed}-f{f}", p.index)
                    };
                    out.push(Trial { id, point: p.index, seed, fold: f, overrides });
                }
            }
        }
        out
    }

    /// Checks the spec against its base config: sizes and ranges, then every key it names
    /// (each override applied to the base, which must still validate). `path` names the
    /// spec in messages.
    ///
    /// # Errors
    /// [`SpecError`], one line naming the spec and the key.
    pub fn check(&self, base: &Config, path: &str) -> Result<(), SpecError> {
        let bad = |msg: String| SpecError(format!("{path}: {msg}"));
        if self.seeds == 0 {
            return Err(bad("seeds must be at least 1".into()));
        }
        if base.training.seed.checked_add(self.seeds as u64 - 1).is_none() {
            return Err(bad(format!(
                "seeds: {} from training.seed {} would wrap past the largest seed",
                self.seeds, base.training.seed
            )));
        }
        for (key, values) in &self.grid {
            if values.is_empty() {
                return Err(bad(format!("grid key `{key}` has no values (an empty range)")));
            }
        }
        if let Some(r) = &self.random {
            if r.trials == 0 {
                return Err(bad("random.trials is 0: a random search needs a budget of at least 1 trial".into()));
            }
            if r.keys.is_empty() {
                return Err(bad("random.keys is empty: name at least one key to draw".into()));
            }
            for (key, d) in &r.keys {
                d.check(key).map_err(bad)?;
                if self.grid.contains_key(key) {
                    return Err(bad(format!("key `{key}` is both in grid and in random.keys")));
                }
            }
        }
        if let Some(a) = &self.asha {
            if a.grace_timesteps == 0 {
                return Err(bad("asha.grace_timesteps must be at least 1".into()));
            }
            if !(a.reduction_factor > 1.0 && a.reduction_factor.is_finite()) {
                return Err(bad(format!("asha.reduction_factor = {} must be above 1", a.reduction_factor)));
            }
        }
        if !(self.trial_gpus >= 0.0 && self.trial_gpus.is_finite()) {
            return Err(bad(format!("trial_gpus = {} must be 0 or more", self.trial_gpus)));
        }
        if self.trial_threads > 1024 {
            return Err(bad(format!("trial_threads = {} must be at most 1024", self.trial_threads)));
        }
        for (i, fold) in self.folds.iter().enumerate() {
            if fold.is_empty() {
                return Err(bad(format!("fold {i} has no overrides (each fold is a list of `key=value`)")));
            }
        }
        // Each trial's seed is the base config's `training.seed` + its seed index, applied
        // last: a seed varied or set elsewhere in the spec would be overridden, silently.
        let sets_seed = |o: &String| o.split_once('=').is_some_and(|(k, _)| k.trim() == SEED_KEY);
        let is_seed = |k: &String| k.trim() == SEED_KEY;
        let seed_in = if self.grid.keys().any(is_seed) {
            Some("grid")
        } else if self.random.as_ref().is_some_and(|r| r.keys.keys().any(is_seed)) {
            Some("random.keys")
        } else if self.set.iter().any(sets_seed) {
            Some("set")
        } else if self.folds.iter().flatten().any(sets_seed) {
            Some("folds")
        } else {
            None
        };
        if let Some(place) = seed_in {
            return Err(bad(format!(
                "{SEED_KEY} in `{place}`: each trial's seed is the base config's {SEED_KEY} + 0 … seeds − 1; set `seeds: N` (and {SEED_KEY} in the base config)"
            )));
        }
        // The count, from the sizes alone: expanding a spec of billions of trials to count
        // them would exhaust the memory first.
        let grid = self.grid.values().fold(1usize, |n, v| n.saturating_mul(v.len()));
        let draws = self.random.as_ref().map_or(1, |r| r.trials);
        let n = grid.saturating_mul(draws).saturating_mul(self.seeds).saturating_mul(self.folds.len().max(1));
        if n > MAX_TRIALS {
            return Err(bad(format!("the spec expands to {n} trials; at most {MAX_TRIALS}")));
        }
        // Each key once, with its first value (and every fold), so a bad key is named
        // before thousands of trials are expanded; then the count; then every trial.
        let mut probes: Vec<Vec<String>> = vec![self.set.clone()];
        probes.extend(self.grid.iter().map(|(k, v)| vec![format!("{k}={}", v[0])]));
        if let Some(r) = &self.random {
            let mut rng = ChaCha8Rng::seed_from_u64(r.seed);
            probes.extend(r.keys.iter().map(|(k, d)| vec![format!("{k}={}", d.draw(&mut rng))]));
        }
        probes.extend(self.folds.iter().cloned());
        for overrides in &probes {
            trial_config(base, overrides).map_err(|e| bad(e.to_string()))?;
        }
        for t in self.trials(base.training.seed) {
            trial_config(base, &t.overrides).map_err(|e| bad(format!("trial {}: {e}", t.id)))?;
        }
        Ok(())
    }
}

/// `base` with `overrides` applied, validated.
///
/// # Errors
/// The first [`ConfigError`]: an unknown key, a value of the wrong type or out of range.
pub fn trial_config(base: &Config, overrides: &[String]) -> Result<Config, ConfigError> {
    let cfg = base.clone().with_overrides(overrides)?;
    cfg.validate().map_err(|e| e.located(None, overrides))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> SweepSpec {
        SweepSpec::from_ron_str(text, "spec.ron").unwrap()
    }

    #[test]
    fn grid_crossed_with_seeds_gives_one_trial_per_combination() {
        let s = spec(
            r#"(grid: {"training.learning_rate": [1e-4, 3e-4], "training.net_arch": [[64, 64], [32]]}, seeds: 2,
                metric: total_return, base: "x.ron", asha: (grace_timesteps: 10))"#,
        );
        assert_eq!(s.metric, BestMetric::TotalReturn);
        assert_eq!(s.base.as_deref(), Some(std::path::Path::new("x.ron")));
        assert_eq!(s.asha.as_ref().map(|a| (a.grace_timesteps, a.reduction_factor)), Some((10, 3.0)));
        let points = s.points();
        assert_eq!(points.len(), 4);
        assert_eq!(points[1].overrides, ["training.learning_rate=0.0001", "training.net_arch=[32]"]);
        let trials = s.trials(42);
        assert_eq!(trials.len(), 8);
        assert_eq!(trials[0].id, "p000-s42");
        assert_eq!(trials[1].id, "p000-s43");
        assert_eq!(trials[7].overrides.last().unwrap(), "training.seed=43");
        s.check(&Config::default(), "spec.ron").unwrap();
        let cfg = trial_config(&Config::default(), &trials[2].overrides).unwrap();
        assert_eq!(cfg.training.net_arch, vec![32]);
        assert!((cfg.training.learning_rate - 1e-4).abs() < 1e-18);
    }

    #[test]
    fn random_points_are_the_same_for_the_same_seed_and_inside_their_ranges() {
        let text = r#"(random: Some((trials: 5, seed: 7, keys: {
            "training.learning_rate": LogUniform(1e-5, 1e-3),
            "training.n_epochs": IntUniform(3, 5),
            "training.ent_coef": Choice([0.0, 0.01]),
        })))"#;
        let (a, b) = (spec(text).points(), spec(text).points());
        assert_eq!(a, b);
        assert_eq!(a.len(), 5);
        let cfgs: Vec<Config> = a.iter().map(|p| trial_config(&Config::default(), &p.overrides).unwrap()).collect();
        for c in &cfgs {
            assert!((1e-5..1e-3).contains(&c.training.learning_rate));
            assert!((3..=5).contains(&c.training.n_epochs));
            assert!(c.training.ent_coef == 0.0 || c.training.ent_coef == 0.01);
        }
        assert!(cfgs.windows(2).any(|w| w[0].training.learning_rate != w[1].training.learning_rate));
    }

    #[test]
    fn folds_multiply_the_trials_and_come_first_in_the_overrides() {
        let s = spec(r#"(folds: [["data.split.train_fraction=0.5"], ["data.split.train_fraction=0.6"]], seeds: 1)"#);
        let t = s.trials(1);
        assert_eq!(t.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["p000-s1-f0", "p000-s1-f1"]);
        assert_eq!(t[1].overrides[0], "data.split.train_fraction=0.6");
    }

    #[test]
    fn bad_specs_get_one_line_naming_the_key() {
        let base = Config::default();
        let err = |text: &str| spec(text).check(&base, "s.ron").unwrap_err().to_string();
        assert!(err(r#"(grid: {"training.learnin_rate": [1e-4]})"#).contains("training.learnin_rate"));
        assert!(err(r#"(grid: {"training.gamma": []})"#).contains("empty range"));
        assert!(err(r#"(random: Some((trials: 0, keys: {"training.gamma": Uniform(0.9, 0.99)})))"#).contains("budget"));
        assert!(
            err(r#"(random: Some((trials: 2, keys: {"training.gamma": Uniform(0.99, 0.9)})))"#).contains("empty range")
        );
        assert!(err(r#"(grid: {"training.gamma": [1.5]})"#).contains("training.gamma"));
        assert!(err("(seeds: 0)").contains("seeds"));
        assert!(err("(asha: Some((grace_timesteps: 0)))").contains("grace_timesteps"));
        // A range whose width overflows (drawing would fail), not only bounds that do.
        let wide = err(r#"(random: Some((trials: 2, keys: {"environment.reward.bonus": Uniform(-1e308, 1e308)})))"#);
        assert!(wide.contains("hi − lo overflows"), "{wide}");
        // A seed anywhere but `seeds` would be overridden by each trial's own.
        for (text, place) in [
            (r#"(grid: {" training.seed": [1, 2]})"#, "grid"),
            (r#"(random: Some((trials: 2, keys: {"training.seed": IntUniform(1, 9)})))"#, "random.keys"),
            (r#"(set: ["training.seed=5"])"#, "set"),
            (r#"(folds: [[" training.seed = 5"]])"#, "folds"),
        ] {
            let e = err(text);
            assert!(e.contains(&format!("training.seed in `{place}`")) && e.contains("seeds: N"), "{e}");
        }
        // Billions of trials are counted, not expanded (which would exhaust the memory).
        let keys = ["gamma", "gae_lambda", "ent_coef", "vf_coef", "clip_range", "max_grad_norm", "learning_rate"];
        let values = (1..=10).map(|i| format!("0.0{i}")).collect::<Vec<_>>().join(", ");
        let grid = keys.map(|k| format!(r#""training.{k}": [{values}]"#)).join(", ");
        assert!(err(&format!("(grid: {{{grid}}})")).contains("expands to 10000000 trials"));
        let budget = err(r#"(random: Some((trials: 100000000, keys: {"training.gamma": Uniform(0.9, 0.99)})))"#);
        assert!(budget.contains("expands to 100000000 trials"), "{budget}");
        // A key given twice (the first one's values would be dropped without a word).
        let twice = r#"(grid: {"training.gamma": [0.9], "training.gamma": [0.8]})"#;
        let e = SweepSpec::from_ron_str(twice, "s.ron").unwrap_err().to_string();
        assert!(e.starts_with("s.ron:1:") && e.contains("key `training.gamma` is given twice"), "{e}");
        let twice = r#"(random: Some((trials: 2, keys: {"training.gamma": Uniform(0.9, 0.99), "training.gamma": Uniform(0.8, 0.9)})))"#;
        let e = SweepSpec::from_ron_str(twice, "s.ron").unwrap_err().to_string();
        assert!(e.contains("key `training.gamma` is given twice"), "{e}");
        let e = SweepSpec::from_ron_str("(gird: {})", "s.ron").unwrap_err().to_string();
        assert!(e.starts_with("s.ron:1:") && e.contains("gird"), "{e}");
        for e in [err(r#"(grid: {"training.learnin_rate": [1e-4]})"#), e] {
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
