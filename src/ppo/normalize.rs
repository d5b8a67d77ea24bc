//! Running observation statistics and reward scaling with SB3 `VecNormalize` semantics,
//! both saved with the model so that a backtest sees its inputs exactly as training did.
//!
//! Observation statistics live on the learner's device in f64 (a few hundred floats) and
//! are merged batch by batch with Chan's parallel update, so on a GPU a step costs a
//! handful of small kernels and no host round trip. On the CPU the same arithmetic runs as
//! plain loops over the rows: a step there normalizes a few rows, and a dozen tensor
//! operations cost several times the arithmetic in dispatch. Reward scaling is per env and
//! scalar, so it runs on the host next to the env's reward buffer.

use tch::{Device, Kind, Tensor};

/// SB3's epsilon under the square root of the variance.
pub const VAR_EPS: f64 = 1e-8;
/// SB3's `clip_reward` default: scaled rewards are clipped to ±10.
pub const REWARD_CLIP: f64 = 10.0;

/// Running mean and variance of observation columns, as SB3's `RunningMeanStd`
/// (mean 0, variance 1, count 1e-4 at the start).
#[derive(Debug)]
pub struct RunningMeanStd {
    /// `[dim]`, f64, on the learner's device.
    pub mean: Tensor,
    /// `[dim]`, f64, population variance.
    pub var: Tensor,
    /// Samples seen (plus SB3's 1e-4 start, which keeps the first division finite).
    pub count: f64,
}

impl RunningMeanStd {
    /// Fresh statistics for `dim` columns.
    ///
    /// # Errors
    /// A [`tch::TchError`] when the device cannot allocate.
    pub fn new(dim: usize, device: Device) -> Result<Self, tch::TchError> {
        Ok(Self {
            mean: Tensor::f_zeros([dim as i64], (Kind::Double, device))?,
            var: Tensor::f_ones([dim as i64], (Kind::Double, device))?,
            count: 1e-4,
        })
    }

    /// Merges a batch `[n, dim]` into the statistics (Chan et al.'s parallel update).
    ///
    /// # Errors
    /// A [`tch::TchError`] when the batch width differs from `dim`.
    pub fn update(&mut self, batch: &Tensor) -> Result<(), tch::TchError> {
        if batch.device() == Device::Cpu && self.mean.device() == Device::Cpu {
            return self.update_host(batch);
        }
        tch::no_grad(|| {
            let n = batch.size().first().copied().unwrap_or(0) as f64;
            if n == 0.0 {
                return Ok(());
            }
            let x = batch.f_to_kind(Kind::Double)?;
            let (batch_var, batch_mean) = x.f_var_mean_dim(&[0i64][..], false, false)?;
            let delta = batch_mean.f_sub(&self.mean)?;
            let total = self.count + n;
            let new_mean = self.mean.f_add(&delta.f_mul_scalar(n / total)?)?;
            let m2 = self
                .var
                .f_mul_scalar(self.count)?
                .f_add(&batch_var.f_mul_scalar(n)?)?
                .f_add(&delta.f_square()?.f_mul_scalar(self.count * n / total)?)?;
            self.var = m2.f_div_scalar(total)?;
            self.mean = new_mean;
            self.count = total;
            Ok(())
        })
    }

    /// [`Self::update`] on the CPU: the same merge, with the batch moments in f64 loops.
    fn update_host(&mut self, batch: &Tensor) -> Result<(), tch::TchError> {
        let (rows, _, dim) = host_rows(batch)?;
        self.update_rows(&rows, dim)
    }

    /// [`Self::update`] for host rows `dim` wide (row-major), with statistics on the CPU:
    /// the rollout's per-step path, where a few rows cost less as loops than as tensors.
    ///
    /// # Errors
    /// [`tch::TchError::Shape`] when `dim` differs from the statistics' width or does not
    /// divide the rows.
    pub fn update_rows(&mut self, rows: &[f32], dim: usize) -> Result<(), tch::TchError> {
        let (mut mean, mut var) = (host_f64(&self.mean)?, host_f64(&self.var)?);
        check_width(rows, dim, mean.len())?;
        let n = rows.len() / dim.max(1);
        if n == 0 {
            return Ok(());
        }
        let (batch_mean, batch_var) = column_moments(rows, dim);
        for c in 0..dim {
            (mean[c], var[c]) = merge_moments((mean[c], var[c]), self.count, (batch_mean[c], batch_var[c]), n as f64);
        }
        self.mean = Tensor::f_from_slice(&mean)?;
        self.var = Tensor::f_from_slice(&var)?;
        self.count += n as f64;
        Ok(())
    }

    /// [`Self::normalize`] of host rows `dim` wide, in place, with statistics on the CPU.
    ///
    /// # Errors
    /// [`tch::TchError::Shape`] as [`Self::update_rows`].
    pub fn normalize_rows(&self, rows: &mut [f32], dim: usize, clip: f64) -> Result<(), tch::TchError> {
        let (mean, var) = (host_f64(&self.mean)?, host_f64(&self.var)?);
        check_width(rows, dim, mean.len())?;
        // As the device path: mean and std rounded to f32, then f32 arithmetic.
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let std: Vec<f32> = var.iter().map(|&v| (v + VAR_EPS).sqrt() as f32).collect();
        let clip = clip as f32;
        for row in rows.chunks_exact_mut(dim) {
            for ((x, m), s) in row.iter_mut().zip(&mean).zip(&std) {
                *x = ((*x - m) / s).clamp(-clip, clip);
            }
        }
        Ok(())
    }

    /// (x − mean) / sqrt(var + 1e-8), clipped to ±`clip`, as f32.
    ///
    /// # Errors
    /// A [`tch::TchError`] when the width of `x` differs from `dim`.
    pub fn normalize(&self, x: &Tensor, clip: f64) -> Result<Tensor, tch::TchError> {
        if x.device() == Device::Cpu && self.mean.device() == Device::Cpu && x.dim() == 2 {
            let (mut rows, n, dim) = host_rows(x)?;
            self.normalize_rows(&mut rows, dim, clip)?;
            return Tensor::f_from_slice(&rows)?.f_view([n as i64, dim as i64]);
        }
        tch::no_grad(|| {
            // The statistics may live on the host (a learner that builds its rollout
            // inputs there) while `x` is on the device (an evaluation's inputs).
            let device = x.device();
            let mean = self.mean.f_to_kind(Kind::Float)?.f_to(device)?;
            let std = self.var.f_add_scalar(VAR_EPS)?.f_sqrt()?.f_to_kind(Kind::Float)?.f_to(device)?;
            x.f_sub(&mean)?.f_div(&std)?.f_clamp(-clip, clip)
        })
    }

    /// Named tensors for a checkpoint (`<prefix>.mean`, `.var`, `.count`), on the CPU.
    ///
    /// # Errors
    /// A [`tch::TchError`] when the copy to the CPU fails.
    pub fn named_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>, tch::TchError> {
        Ok(vec![
            (format!("{prefix}.mean"), self.mean.f_to(Device::Cpu)?.f_contiguous()?),
            (format!("{prefix}.var"), self.var.f_to(Device::Cpu)?.f_contiguous()?),
            (format!("{prefix}.count"), Tensor::f_from_slice(&[self.count])?),
        ])
    }

    /// Restores the statistics written by [`Self::named_tensors`].
    ///
    /// # Errors
    /// A message naming the missing or misshapen tensor.
    pub fn from_named(named: &[(String, Tensor)], prefix: &str, dim: usize, device: Device) -> Result<Self, String> {
        let get = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == &format!("{prefix}.{name}"))
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| format!("missing tensor {prefix}.{name}"))
        };
        let (mean, var, count) = (get("mean")?, get("var")?, get("count")?);
        if mean.size() != [dim as i64] || var.size() != [dim as i64] {
            return Err(format!("{prefix} statistics have shape {:?}, the model expects [{dim}]", mean.size()));
        }
        let to_dev = |t: Tensor| t.f_to_kind(Kind::Double).and_then(|t| t.f_to(device)).map_err(|e| e.to_string());
        let count = count.f_double_value(&[0]).map_err(|e| e.to_string())?;
        Ok(Self { mean: to_dev(mean)?, var: to_dev(var)?, count })
    }
}

/// Mean and population variance of the `n` (≥ 1) values `xs`, in two passes.
fn moments(xs: impl Iterator<Item = f64> + Clone, n: f64) -> (f64, f64) {
    let mean = xs.clone().sum::<f64>() / n;
    (mean, xs.map(|x| (x - mean).powi(2)).sum::<f64>() / n)
}

/// Per-column mean and population variance of rows `dim` wide (at least one row), each
/// column summed in row order as [`moments`] sums: the same numbers, read row by row.
fn column_moments(rows: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (rows.len() / dim) as f64;
    // `Iterator::sum` of f64 starts at −0.0: so do these sums.
    let mut mean = vec![-0.0f64; dim];
    for row in rows.chunks_exact(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![-0.0f64; dim];
    for row in rows.chunks_exact(dim) {
        for ((v, &x), m) in var.iter_mut().zip(row).zip(&mean) {
            *v += (f64::from(x) - m).powi(2);
        }
    }
    var.iter_mut().for_each(|v| *v /= n);
    (mean, var)
}

/// Rows `dim` wide against statistics `width` wide.
fn check_width(rows: &[f32], dim: usize, width: usize) -> Result<(), tch::TchError> {
    if dim != width || (dim == 0 && !rows.is_empty()) || !rows.len().is_multiple_of(dim.max(1)) {
        return Err(tch::TchError::Shape(format!(
            "{} floats in rows {dim} wide, the statistics {width} wide",
            rows.len()
        )));
    }
    Ok(())
}

/// Chan et al.'s parallel merge: the running (mean, variance) over `count` samples with a
/// batch's (mean, variance) over `n` samples; returns the merged (mean, variance).
fn merge_moments((mean, var): (f64, f64), count: f64, (batch_mean, batch_var): (f64, f64), n: f64) -> (f64, f64) {
    let delta = batch_mean - mean;
    let total = count + n;
    (mean + delta * n / total, (var * count + batch_var * n + delta * delta * count * n / total) / total)
}

/// The rows of a 2-D CPU tensor as f32 on the host, with their count and width.
fn host_rows(x: &Tensor) -> Result<(Vec<f32>, usize, usize), tch::TchError> {
    let size = x.size();
    let (n, dim) = match size.as_slice() {
        [n, d] => (*n as usize, *d as usize),
        other => return Err(tch::TchError::Shape(format!("expected rows [n, dim], got {other:?}"))),
    };
    let flat = x.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?;
    Ok((Vec::<f32>::try_from(&flat)?, n, dim))
}

/// A 1-D CPU tensor as f64 on the host.
fn host_f64(x: &Tensor) -> Result<Vec<f64>, tch::TchError> {
    Vec::<f64>::try_from(&x.f_to_kind(Kind::Double)?.f_contiguous()?)
}

/// Reward scaling by the running standard deviation of each env's discounted return
/// (SB3 `VecNormalize(norm_reward=True)`): rewards keep their sign and mean, and the value
/// targets stay near unit scale whatever the reward weights are.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardScaler {
    gamma: f64,
    /// Discounted return of each env's running episode. `[n_envs]`
    pub returns: Vec<f64>,
    pub mean: f64,
    pub var: f64,
    pub count: f64,
}

impl RewardScaler {
    pub fn new(n_envs: usize, gamma: f64) -> Self {
        Self { gamma, returns: vec![0.0; n_envs], mean: 0.0, var: 1.0, count: 1e-4 }
    }

    /// Scales one step's rewards in place; `dones` restart the discounted returns.
    ///
    /// Order as SB3: returns ← γ·returns + r; update the statistics with the returns;
    /// r ← clip(r / sqrt(var + 1e-8), ±10); returns of finished envs ← 0.
    pub fn scale(&mut self, rewards: &mut [f32], dones: impl Iterator<Item = bool>) {
        for (g, &r) in self.returns.iter_mut().zip(rewards.iter()) {
            *g = *g * self.gamma + f64::from(r);
        }
        let n = self.returns.len() as f64;
        if n > 0.0 {
            (self.mean, self.var) =
                merge_moments((self.mean, self.var), self.count, moments(self.returns.iter().copied(), n), n);
            self.count += n;
        }
        let inv = 1.0 / (self.var + VAR_EPS).sqrt();
        for r in rewards.iter_mut() {
            *r = (f64::from(*r) * inv).clamp(-REWARD_CLIP, REWARD_CLIP) as f32;
        }
        for (g, done) in self.returns.iter_mut().zip(dones) {
            if done {
                *g = 0.0;
            }
        }
    }

    /// The factor the last [`Self::scale`] applied (before clipping).
    pub fn factor(&self) -> f64 {
        1.0 / (self.var + VAR_EPS).sqrt()
    }

    /// Restarts every env's discounted return (the envs were reset).
    pub fn restart(&mut self) {
        self.returns.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_updates_match_the_pooled_moments() {
        let data: Vec<f32> = (0..40).map(|i| ((i * 37) % 11) as f32 - 3.0).collect();
        let mut rms = RunningMeanStd::new(2, Device::Cpu).unwrap();
        for chunk in data.chunks(8) {
            rms.update(&Tensor::from_slice(chunk).view([4, 2])).unwrap();
        }
        for col in 0..2 {
            let xs: Vec<f64> = data.iter().skip(col).step_by(2).map(|&x| f64::from(x)).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
            assert!((rms.mean.double_value(&[col as i64]) - m).abs() < 1e-4);
            assert!((rms.var.double_value(&[col as i64]) - v).abs() < 1e-3);
        }
        let z = rms.normalize(&Tensor::from_slice(&[1e6f32, -1e6]).view([1, 2]), 10.0).unwrap();
        assert_eq!(Vec::<f32>::try_from(z.view([-1])).unwrap(), vec![10.0, -10.0]);
    }

    /// The host rows' moments are [`moments`] per column, bit for bit (row order, −0.0
    /// start), so the rollout's host path keeps the statistics it had.
    #[test]
    fn column_moments_are_the_per_column_moments() {
        let dim = 7;
        let mut rows: Vec<f32> = (0..5 * dim).map(|i| ((i * 7919) % 97) as f32 / 7.3 - 6.0).collect();
        for r in 0..5 {
            rows[r * dim] = -0.0;
        }
        let (mean, var) = column_moments(&rows, dim);
        for c in 0..dim {
            let (m, v) = moments(rows.iter().skip(c).step_by(dim).map(|&x| f64::from(x)), 5.0);
            assert_eq!((mean[c].to_bits(), var[c].to_bits()), (m.to_bits(), v.to_bits()), "column {c}");
        }
        assert!(mean[0].is_sign_negative(), "a column of −0.0 keeps its sign, as `sum` does");
        let mut rms = RunningMeanStd::new(dim, Device::Cpu).unwrap();
        assert!(rms.update_rows(&rows[..dim + 1], dim).is_err(), "rows must be whole");
        assert!(rms.update_rows(&rows, dim + 1).is_err(), "the width must be the statistics'");
    }

    #[test]
    fn reward_scaling_restarts_returns_on_done() {
        let mut s = RewardScaler::new(2, 0.9);
        let mut r = [1.0f32, -2.0];
        s.scale(&mut r, [true, false].into_iter());
        assert_eq!(s.returns, vec![0.0, -2.0]);
        assert!(r[0] > 0.0 && r[1] < 0.0);
    }
}
