//! What a trial leaves behind: `result.json` (written by `ploutos train --out DIR`) and the
//! evaluation curve read from its `metrics.csv` as training goes.

use crate::config::BestMetric;
use serde::{Deserialize, Serialize};

/// JSON has no NaN: a Sharpe ratio of a flat equity curve is written as `null` and read back
/// as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() { s.serialize_f64(*x) } else { s.serialize_none() }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// One trained model replayed on one split, beside the baselines on the same bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitOutcome {
    pub seed: u64,
    /// `validation` or `test`.
    pub split: String,
    /// The model replayed (`<run>/best`, or the last checkpoint when no evaluation ran).
    pub model: String,
    #[serde(with = "nan_as_null")]
    pub sharpe: f64,
    #[serde(with = "nan_as_null")]
    pub total_return: f64,
    #[serde(with = "nan_as_null")]
    pub max_drawdown: f64,
    /// Notional traded per year / mean equity.
    #[serde(with = "nan_as_null")]
    pub turnover_per_year: f64,
    pub trades: usize,
    /// Equal-weight buy-and-hold on the same bars.
    #[serde(with = "nan_as_null")]
    pub buy_and_hold_sharpe: f64,
    #[serde(with = "nan_as_null")]
    pub buy_and_hold_return: f64,
    /// The random policy (seeded with `seed`) on the same bars.
    #[serde(with = "nan_as_null")]
    pub random_sharpe: f64,
    #[serde(with = "nan_as_null")]
    pub random_return: f64,
}

/// `result.json`: a finished (or stopped) training and its model on the held-out splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub timesteps: u64,
    pub seconds: f64,
    /// Stopped before `training.total_timesteps` (Ctrl-C, or a sweep's early stopping).
    pub interrupted: bool,
    pub splits: Vec<SplitOutcome>,
}

impl TrialResult {
    /// The file name inside a trial's folder.
    pub const FILE: &'static str = "result.json";

    /// The outcome on `split`.
    pub fn split(&self, split: &str) -> Option<&SplitOutcome> {
        self.splits.iter().find(|s| s.split == split)
    }
}

/// The `metrics.csv` column of the training's periodic evaluation that `metric` is judged
/// by during training.
pub fn eval_column(metric: BestMetric) -> &'static str {
    match metric {
        BestMetric::Sharpe => "eval/sharpe",
        BestMetric::TotalReturn => "eval/total_return",
        BestMetric::EpisodeReward => "eval/mean_reward",
    }
}

/// Reads one column of a growing `metrics.csv` as it is written, chunk by chunk: complete
/// lines only, the header first.
#[derive(Debug, Clone)]
pub struct MetricTail {
    column: String,
    pending: String,
    /// Positions of `step` and of the column, once the header is read.
    at: Option<(usize, Option<usize>)>,
}

impl MetricTail {
    pub fn new(column: &str) -> Self {
        Self { column: column.to_string(), pending: String::new(), at: None }
    }

    /// Feeds the next bytes of the file; returns the (step, value) rows completed by them
    /// that have a value in the column.
    pub fn push(&mut self, text: &str) -> Vec<(u64, f64)> {
        self.pending.push_str(text);
        let Some(end) = self.pending.rfind('\n') else { return Vec::new() };
        let complete: String = self.pending.drain(..=end).collect();
        let mut out = Vec::new();
        for line in complete.lines() {
            let cells: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
            match self.at {
                None => {
                    let find = |name: &str| cells.iter().position(|c| *c == name);
                    self.at = Some((find("step").unwrap_or(0), find(&self.column)));
                }
                Some((_, None)) => {}
                Some((step, Some(col))) => {
                    let step = cells.get(step).and_then(|s| s.parse::<u64>().ok());
                    let value = cells.get(col).filter(|s| !s.is_empty()).and_then(|s| s.parse::<f64>().ok());
                    if let (Some(s), Some(v)) = (step, value) {
                        out.push((s, v));
                    }
                }
            }
        }
        out
    }
}

/// Every (step, value) of `column` in a whole `metrics.csv` text.
pub fn read_curve(text: &str, column: &str) -> Vec<(u64, f64)> {
    let mut tail = MetricTail::new(column);
    let mut v = tail.push(text);
    if !text.ends_with('\n') {
        v.extend(tail.push("\n"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_reads_rows_split_anywhere_across_chunks() {
        let text = "step,train/entropy,eval/sharpe\n100,0.5,\n200,,1.25\n300,0.4,\n400,,-0.5\n";
        for cut in 0..text.len() {
            let mut t = MetricTail::new("eval/sharpe");
            let mut rows = t.push(&text[..cut]);
            rows.extend(t.push(&text[cut..]));
            assert_eq!(rows, [(200, 1.25), (400, -0.5)], "cut at {cut}");
        }
        assert_eq!(read_curve("step,eval/sharpe\n5,NaN\n6,2", "eval/sharpe").len(), 2);
        assert!(read_curve("step,x\n1,2\n", "eval/sharpe").is_empty());
    }

    #[test]
    fn nan_metrics_round_trip_through_json_as_null() {
        let o = SplitOutcome {
            seed: 1,
            split: "test".into(),
            model: "m".into(),
            sharpe: f64::NAN,
            total_return: 0.1,
            max_drawdown: 0.0,
            turnover_per_year: 0.0,
            trades: 0,
            buy_and_hold_sharpe: 1.0,
            buy_and_hold_return: 0.2,
            random_sharpe: 0.0,
            random_return: 0.0,
        };
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains("\"sharpe\":null"), "{json}");
        let back: SplitOutcome = serde_json::from_str(&json).unwrap();
        assert!(back.sharpe.is_nan() && back.total_return == 0.1);
    }
}
