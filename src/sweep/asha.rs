//! Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
//! Hyperparameter Tuning", MLSys 2020), with the rule of Ray Tune's
//! `AsyncHyperBandScheduler` (one bracket), so that a sweep stops the same trials on a Ray
//! cluster as on this machine.
//!
//! Rungs sit at `grace × η^k` timesteps for every `k` with `grace × η^k ≤ max`. When a
//! trial first reports a metric at or past a rung (the highest such rung it has not
//! reported at), the metric is compared with the `(1 − 1/η)` quantile (linear
//! interpolation, NaNs left out) of the metrics recorded at that rung so far, then
//! recorded: below it the trial stops. The first trial at a rung always continues; nothing
//! waits for other trials (asynchronous), so with trials running at once the decisions
//! depend on the order their results arrive in, as in Ray.

use std::collections::BTreeMap;

/// Continue or stop a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Stop,
}

/// The rungs and what was recorded at each.
#[derive(Debug, Clone)]
pub struct Asha {
    /// Rung timesteps, highest first (as Ray walks them), each with trial → metric.
    rungs: Vec<(u64, BTreeMap<String, f64>)>,
    eta: f64,
}

impl Asha {
    /// Rungs from `grace` up to `max` timesteps, η = `reduction_factor` (> 1).
    pub fn new(grace: u64, reduction_factor: f64, max: u64) -> Self {
        let mut rungs = Vec::new();
        let mut t = grace.max(1) as f64;
        while t <= max as f64 && rungs.len() < 64 {
            rungs.push((t.round() as u64, BTreeMap::new()));
            t *= reduction_factor;
        }
        rungs.reverse();
        Self { rungs, eta: reduction_factor }
    }

    /// Rung timesteps, lowest first.
    pub fn rungs(&self) -> Vec<u64> {
        self.rungs.iter().rev().map(|r| r.0).collect()
    }

    /// A trial's metric (higher is better) after `timesteps`.
    pub fn on_result(&mut self, trial: &str, timesteps: u64, metric: f64) -> Decision {
        let eta = self.eta;
        for (milestone, recorded) in &mut self.rungs {
            if timesteps < *milestone || recorded.contains_key(trial) {
                continue;
            }
            let cutoff = quantile(recorded.values().copied(), 1.0 - 1.0 / eta);
            recorded.insert(trial.to_string(), metric);
            return match cutoff {
                Some(c) if metric < c => Decision::Stop,
                _ => Decision::Continue,
            };
        }
        Decision::Continue
    }
}

/// `q`-quantile with linear interpolation between order statistics (NumPy's default), over
/// the non-NaN values; `None` when there is none.
fn quantile(values: impl Iterator<Item = f64>, q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + frac * (v[hi] - v[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_are_grace_times_powers_of_eta_up_to_the_max() {
        assert_eq!(Asha::new(100, 3.0, 1000).rungs(), [100, 300, 900]);
        assert_eq!(Asha::new(100, 2.0, 800).rungs(), [100, 200, 400, 800]);
    }

    #[test]
    fn quantile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], 100 * (1 - 1/3)) = 3.0; np.percentile([1, 5], 50) = 3.0
        assert_eq!(quantile([4.0, 1.0, 3.0, 2.0].into_iter(), 2.0 / 3.0), Some(3.0));
        assert_eq!(quantile([1.0, f64::NAN, 5.0].into_iter(), 0.5), Some(3.0));
        assert_eq!(quantile(std::iter::empty(), 0.5), None);
    }

    #[test]
    fn a_trial_below_the_top_third_at_a_rung_stops_and_the_first_never_does() {
        let mut a = Asha::new(10, 3.0, 100);
        assert_eq!(a.on_result("a", 12, 0.1), Decision::Continue); // first at rung 10
        assert_eq!(a.on_result("b", 10, 0.5), Decision::Continue); // cutoff 0.1
        assert_eq!(a.on_result("c", 11, 0.2), Decision::Stop); // cutoff of [0.1, 0.5] at 2/3: 0.3667
        assert_eq!(a.on_result("d", 10, 0.9), Decision::Continue);
        // a later report of a trial already recorded at this rung is not judged again
        assert_eq!(a.on_result("a", 15, -5.0), Decision::Continue);
        // the next rung (30) judges afresh
        assert_eq!(a.on_result("b", 30, 0.4), Decision::Continue);
        assert_eq!(a.on_result("d", 35, 0.3), Decision::Stop);
        // a report past several rungs is judged at the highest
        assert_eq!(a.on_result("e", 95, 0.0), Decision::Continue);
    }
}
