//! Typed run configuration: RON files, `--set section.key=value` overrides and validation.
//!
//! A config file overrides only the fields it names; every other field takes the value of
//! the struct's `Default` impl, which is the only source of defaults. Unknown keys are
//! rejected (with the file, line and key path), and [`Config::validate`] rejects values
//! outside their documented range, naming the key and the allowed range.

mod data;
mod environment;
mod training;

pub use data::{Adjust, DataConfig, DataSource, Interval, MissingBarPolicy, SplitConfig, SyntheticConfig};
pub use environment::{
    Account, BuySizing, EnvironmentConfig, FeeConfig, FillTiming, MAX_TARGET_LEVELS, ObservationLayout, PdtConfig,
    PdtEquity, RewardConfig, RewardMode, ShortSellingConfig, TafModel, TargetPositionsConfig,
};
pub use training::{Activation, BestMetric, LrSchedule, Precision, RUN_NAME_RULE, TrainingConfig, is_run_name};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Most tickers one env can trade: the env keeps an env's orders and action masks as bit
/// masks over tickers (`u64`).
pub const MAX_TICKERS: usize = 64;

/// Errors from loading, overriding or validating a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid RON, or names a key that does not exist.
    #[error("{path}:{message}")]
    Parse { path: String, message: String },
    /// A `--set` override is malformed or names an unknown key.
    #[error("--set {spec}: {message}")]
    Override { spec: String, message: String },
    /// A plugin's entry in `environment.plugins` does not fit the plugin's settings.
    #[error("config key `{key}`: {message}")]
    Plugin { key: String, message: String },
    /// A value is outside its allowed range. `origin` says where the value was written:
    /// `FILE:LINE:COL: ` in a config file, `--set SPEC: ` on the command line, or nothing
    /// (a default, or a config built in code).
    #[error("{origin}config key `{key}` = {value} is out of range: {allowed}")]
    OutOfRange { key: String, value: String, allowed: String, origin: String },
}

/// The whole configuration of a run: what to learn with, what to simulate, on which data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PPO hyper-parameters, run name, device.
    pub training: TrainingConfig,
    /// The simulated broker: cash, sizing, costs, market rules, reward, episodes.
    pub environment: EnvironmentConfig,
    /// Tickers, data source, bar interval and train/validation/test split.
    pub data: DataConfig,
}

impl Config {
    /// Parses a RON document (`path` is only used in messages) without validating it.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with line and column for syntax errors and unknown keys.
    pub fn from_ron_str(text: &str, path: &str) -> Result<Self, ConfigError> {
        ron::from_str::<Config>(text).map_err(|spanned| {
            // ron gives the position; serde_path_to_error gives the dotted key path.
            let key = ron::Deserializer::from_str(text)
                .ok()
                .and_then(|mut de| serde_path_to_error::deserialize::<_, Config>(&mut de).err())
                .map(|e| e.path().to_string())
                .filter(|k| !k.is_empty() && k != ".");
            // What the usual slip is, where ron's words do not say it.
            let hint = match spanned.code {
                ron::Error::ExpectedOption => "; an optional key is written Some(value) or None",
                _ => "",
            };
            ConfigError::Parse {
                path: path.to_string(),
                message: match key {
                    Some(key) => format!("{spanned} (at `{key}`){hint}"),
                    None => format!("{spanned}{hint}"),
                },
            }
        })
    }

    /// Reads and parses a RON file, applies `overrides` (`section.key=value`) and validates.
    ///
    /// # Errors
    /// Any [`ConfigError`]: unreadable file, bad RON, unknown key, bad override, bad value.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: shown.clone(), source })?;
        let located = |e: ConfigError| e.located(Some((&shown, &text)), overrides);
        let cfg = Self::from_ron_str(&text, &shown)?.with_overrides(overrides).map_err(located)?;
        cfg.validate().map_err(located)?;
        Ok(cfg)
    }

    /// Applies `section.key=value` overrides. The value is read as JSON when it parses
    /// (numbers, `true`, `[64,64]`, `null`) and as a plain string otherwise (`cuda`).
    ///
    /// # Errors
    /// [`ConfigError::Override`] naming the spec for a missing `=`, an unknown key or a
    /// value of the wrong type.
    pub fn with_overrides(self, overrides: &[String]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self);
        }
        // A NaN or an infinity of the config itself, which the JSON round trip below would
        // turn into null (an `Option` key: silently `None`): its own error, unless an
        // override replaces that key (or a section around it).
        if let Some((key, value)) =
            self.non_finite().into_iter().find(|(key, _)| !overrides.iter().any(|spec| sets(spec, key)))
        {
            return Err(check::out(&key, value, "must be a finite number".into()));
        }
        let mut tree = serde_json::to_value(&self)
            .map_err(|e| ConfigError::Override { spec: String::new(), message: e.to_string() })?;
        for spec in overrides {
            let err = |message: String| ConfigError::Override { spec: spec.clone(), message };
            let (key, raw) = spec.split_once('=').ok_or_else(|| err("expected section.key=value".to_string()))?;
            let key = key.trim();
            let mut slot = &mut tree;
            let mut walked = String::new();
            for part in key.split('.') {
                let map = match slot {
                    serde_json::Value::Object(map) => map,
                    _ => return Err(err(format!("`{walked}` has no sub-keys"))),
                };
                if !map.contains_key(part) {
                    let mut known: Vec<&str> = map.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let at = if walked.is_empty() { "top level".to_string() } else { format!("`{walked}`") };
                    return Err(err(format!("unknown config key `{key}` (keys at {at}: {})", known.join(", "))));
                }
                if !walked.is_empty() {
                    walked.push('.');
                }
                walked.push_str(part);
                slot = map.get_mut(part).expect("key checked above");
            }
            // Values are JSON, or a bare string; RON's `None` and `Some(x)` are accepted too,
            // as written in config files.
            let raw = raw.trim();
            let raw = match raw {
                "None" => "null",
                _ => raw.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')).unwrap_or(raw),
            };
            let value = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
            // A section takes its keys one by one (a whole object would reset the keys it
            // leaves out to their defaults); only the plugins' settings, a map, take objects.
            let map = key == "environment.plugins" || key.starts_with("environment.plugins.");
            if slot.is_object() && !(map && value.is_object()) {
                let first = slot.as_object().and_then(|m| m.keys().next().cloned()).unwrap_or_else(|| "key".into());
                return Err(err(format!("`{key}` is a section: set its keys, e.g. {key}.{first}=...")));
            }
            *slot = value;
        }
        serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            // The override that wrote that key (or a list or map around it); none: a value of
            // the config itself that the round trip cannot carry (NaN), which its own check
            // names.
            match overrides.iter().rev().find(|spec| sets(spec, &key)) {
                Some(spec) => {
                    ConfigError::Override { spec: spec.clone(), message: format!("`{key}`: {}", e.into_inner()) }
                }
                None => {
                    ConfigError::Override { spec: overrides.join(" "), message: format!("`{key}`: {}", e.into_inner()) }
                }
            }
        })
    }

    /// Every number of the config that is NaN or infinite, as (dotted key, value), in key
    /// order; plugin settings included.
    fn non_finite(&self) -> Vec<(String, String)> {
        fn walk(v: &ron::Value, path: &str, out: &mut Vec<(String, String)>) {
            match v {
                ron::Value::Number(n) => {
                    let x = n.into_f64();
                    if !x.is_finite() {
                        out.push((path.to_string(), x.to_string()));
                    }
                }
                ron::Value::Option(Some(inner)) => walk(inner, path, out),
                ron::Value::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, &format!("{path}[{i}]"), out);
                    }
                }
                ron::Value::Map(map) => {
                    for (k, item) in map.iter() {
                        let name = match k {
                            ron::Value::String(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        walk(item, &if path.is_empty() { name } else { format!("{path}.{name}") }, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Ok(value) = ron::to_string(self).and_then(|text| ron::from_str::<ron::Value>(&text).map_err(Into::into))
        {
            walk(&value, "", &mut out);
        }
        out
    }

    /// Checks every value against its documented range.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] for the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.training.validate()?;
        self.environment.validate()?;
        self.data.validate()?;
        if let Some(t) = self.environment.short_selling.no_short.iter().find(|t| !self.data.tickers.contains(t)) {
            return Err(check::out(
                "environment.short_selling.no_short",
                t,
                format!("must name tickers of data.tickers ({})", self.data.tickers.join(", ")),
            ));
        }
        if self.training.batch_size > self.training.n_steps * self.training.n_envs {
            return Err(ConfigError::OutOfRange {
                origin: String::new(),
                key: "training.batch_size".into(),
                value: self.training.batch_size.to_string(),
                allowed: format!(
                    "must be ≤ training.n_steps × training.n_envs = {}",
                    self.training.n_steps * self.training.n_envs
                ),
            });
        }
        Ok(())
    }

    /// The config as pretty RON, as saved beside every model.
    pub fn to_ron(&self) -> String {
        let pretty = ron::ser::PrettyConfig::new().depth_limit(4).struct_names(false);
        ron::ser::to_string_pretty(self, pretty).expect("a Config always serializes")
    }
}

impl ConfigError {
    /// Says where an out-of-range value was written: the last `--set` of its key, else its
    /// line and column in `file` (name, text) when the file names it.
    pub fn located(self, file: Option<(&str, &str)>, overrides: &[String]) -> Self {
        let ConfigError::OutOfRange { key, value, allowed, origin } = self else { return self };
        let set = overrides.iter().rev().find(|spec| sets(spec, &key));
        let origin = match (set, file) {
            (Some(spec), _) => format!("--set {spec}: "),
            (None, Some((path, text))) => match locate_key(text, &key) {
                Some((line, col)) => format!("{path}:{line}:{col}: "),
                None => origin,
            },
            (None, None) => origin,
        };
        ConfigError::OutOfRange { key, value, allowed, origin }
    }
}

/// Whether the override `spec` (`section.key=value`) writes the dotted `key`: that key, or a
/// section, list or map around it (`environment.plugins.x` sets `environment.plugins.x.y`,
/// `training.net_arch` sets `training.net_arch[0]`).
fn sets(spec: &str, key: &str) -> bool {
    spec.split_once('=').is_some_and(|(k, _)| {
        let k = k.trim();
        key.strip_prefix(k).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// Line and column (1-based) of the last segment of dotted `key` in a RON text: each
/// segment is looked for as `name:` after the previous one. `None` when a segment is not
/// written (the value is a default).
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    let mut at = None;
    for seg in key.split('.') {
        let mut found = None;
        let mut search = from;
        while let Some(i) = text[search..].find(seg).map(|i| i + search) {
            let end = i + seg.len();
            let boundary = (i == 0 || !is_ident(bytes[i - 1])) && (end == bytes.len() || !is_ident(bytes[end]));
            if boundary && text[end..].trim_start().starts_with(':') {
                found = Some(i);
                break;
            }
            search = end;
        }
        let i = found?;
        from = i + seg.len();
        at = Some(i);
    }
    let i = at?;
    let line = text[..i].matches('\n').count() + 1;
    let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
    Some((line, col))
}

/// Range checks shared by the config sections.
pub(crate) mod check {
    use super::ConfigError;

    /// `lo <= v <= hi`.
    pub fn within(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
        if v.is_finite() && v >= lo && v <= hi { Ok(()) } else { Err(out(key, v, format!("must be in [{lo}, {hi}]"))) }
    }

    /// `lo < v <= hi`.
    pub fn above(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
        if v.is_finite() && v > lo && v <= hi { Ok(()) } else { Err(out(key, v, format!("must be in ({lo}, {hi}]"))) }
    }

    /// `lo <= n <= hi` for counts.
    pub fn count(key: &str, n: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
        if n >= lo && n <= hi { Ok(()) } else { Err(out(key, n, format!("must be an integer in [{lo}, {hi}]"))) }
    }

    pub fn out(key: &str, v: impl std::fmt::Display, allowed: String) -> ConfigError {
        ConfigError::OutOfRange { key: key.to_string(), value: v.to_string(), allowed, origin: String::new() }
    }
}
