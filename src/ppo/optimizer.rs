//! Adam, written here rather than taken from `tch::nn::Optimizer`: tch keeps its moments
//! and step count out of reach, and a resumed run must continue with them (they go into
//! `optimizer.safetensors`), so that resuming reproduces the uninterrupted run.
//!
//! Also the global gradient-norm clip ([`Adam::clip_grad_norm`]): the gradients are one
//! flat vector here, so the clip is one norm and one scale.

use super::PpoError;
use tch::{Device, Kind, Tensor};

/// Adam over the `VarStore`'s variables, as `torch.optim.Adam` (β = 0.9, 0.999), written
/// here so that its moments and step count are ours to checkpoint.
///
/// The variables are views into one flat vector (and so are the moments), so a step is a
/// dozen tensor operations whatever the number of layers: on a CPU each operation costs
/// microseconds of dispatch, which for small networks was a tenth of the update.
#[derive(Debug)]
pub struct Adam {
    /// Variables sorted by name (the order the moments are saved in), views into `flat`.
    params: Vec<(String, Tensor)>,
    /// Offset and element count of each variable in the flat vectors.
    slots: Vec<(i64, i64)>,
    flat: Tensor,
    /// The gradients gathered from the variables (clipped by [`Adam::clip_grad_norm`]).
    grad: Option<Tensor>,
    m: Tensor,
    v: Tensor,
    step: u64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// Zero moments for every variable of `vs`, whose variables become views into one flat
    /// vector (their values are kept).
    ///
    /// # Errors
    /// A torch error when the device cannot allocate.
    pub fn new(vs: &tch::nn::VarStore, lr: f64, eps: f64) -> Result<Self, PpoError> {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let flat = tch::no_grad(|| {
            let parts = params.iter().map(|(_, p)| p.f_detach()?.f_reshape([-1])).collect::<Result<Vec<_>, _>>()?;
            Tensor::f_cat(&parts, 0)
        })?;
        let mut slots = Vec::with_capacity(params.len());
        let mut offset = 0;
        for (_, p) in params.iter_mut() {
            let n = p.numel() as i64;
            let view = flat.f_narrow(0, offset, n)?.f_view(p.size().as_slice())?;
            p.f_set_data(&view)?;
            slots.push((offset, n));
            offset += n;
        }
        let (m, v) = (flat.f_zeros_like()?, flat.f_zeros_like()?);
        Ok(Self { params, slots, flat, grad: None, m, v, step: 0, lr, beta1: 0.9, beta2: 0.999, eps })
    }

    /// Sets the learning rate of the next steps (linear annealing).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Clears the gradients before a backward pass.
    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
        self.grad = None;
    }

    /// The variables' gradients as one flat vector (zeros for a variable without one).
    fn gather(&mut self) -> Result<&mut Tensor, PpoError> {
        if self.grad.is_none() {
            let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
            self.grad = Some(self.flatten(&grads)?);
        }
        Ok(self.grad.as_mut().expect("gathered above"))
    }

    /// `grads` (one per variable, in variable order; undefined where a variable got none)
    /// as one flat vector, zeros standing in for the undefined ones.
    fn flatten(&self, grads: &[Tensor]) -> Result<Tensor, PpoError> {
        let parts = tch::no_grad(|| {
            grads
                .iter()
                .zip(&self.params)
                .map(
                    |(g, (_, p))| {
                        if g.defined() { g.f_reshape([-1]) } else { p.f_detach()?.f_zeros_like()?.f_reshape([-1]) }
                    },
                )
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// Computes the gradients of `loss` for the next step, without touching the
    /// variables' `.grad` fields (`torch.autograd.grad`): no zeroing before and no
    /// gathering after, two tensor operations per variable fewer than
    /// [`Adam::zero_grad`], `backward` and the gather, which on a GPU are kernel
    /// launches a minibatch waits for. A variable `loss` does not reach gets zeros.
    ///
    /// # Errors
    /// A torch error on a failed kernel.
    pub fn backward(&mut self, loss: &Tensor) -> Result<(), PpoError> {
        let inputs: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &inputs, false, false)?;
        self.grad = Some(self.flatten(&grads)?);
        Ok(())
    }

    /// The gradients the next step uses, flat in variable-name order (after
    /// [`Adam::clip_grad_norm`], clipped).
    ///
    /// # Errors
    /// A torch error on a failed kernel.
    pub fn gradients(&mut self) -> Result<Tensor, PpoError> {
        Ok(self.gather()?.shallow_clone())
    }

    /// Scales all gradients by min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ the global L2 norm
    /// over every variable (`torch.nn.utils.clip_grad_norm_`), and returns ‖g‖ before the
    /// clip as a device scalar (no host sync).
    ///
    /// # Errors
    /// A torch error on a failed kernel.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<Tensor, PpoError> {
        let g = self.gather()?;
        tch::no_grad(|| {
            let norm = g.f_square()?.f_sum(Kind::Float)?.f_sqrt()?;
            let coef = norm.f_add_scalar(1e-6)?.f_reciprocal()?.f_mul_scalar(max_norm)?.f_clamp_max(1.0)?;
            let _ = g.f_mul_(&coef)?;
            Ok(norm)
        })
    }

    /// One Adam step: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    /// p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε).
    ///
    /// # Errors
    /// A torch error on a failed kernel.
    pub fn step(&mut self) -> Result<(), PpoError> {
        self.step += 1;
        let [coef, bc2_sqrt] = self.step_factors(self.step);
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        let g = self.gather()?.shallow_clone();
        tch::no_grad(|| {
            let _ = self.m.f_mul_scalar_(beta1)?.f_add_(&g.f_mul_scalar(1.0 - beta1)?)?;
            let _ = self.v.f_mul_scalar_(beta2)?.f_addcmul_(&g.f_mul_scalar(1.0 - beta2)?, &g)?;
            let denom = self.v.f_sqrt()?.f_div_scalar(bc2_sqrt)?.f_add_scalar(eps)?;
            let _ = self.flat.f_addcdiv_(&self.m.f_mul_scalar(coef)?, &denom)?;
            Ok::<(), PpoError>(())
        })?;
        self.grad = None;
        Ok(())
    }

    /// The two factors of step `t` at the current learning rate that change from step to
    /// step: −lr/(1−β₁ᵗ), the moment's coefficient, and √(1−β₂ᵗ), the variance's bias
    /// correction.
    pub fn step_factors(&self, t: u64) -> [f64; 2] {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        [-self.lr / (1.0 - self.beta1.powi(t)), (1.0 - self.beta2.powi(t)).sqrt()]
    }

    /// [`Adam::step`] in a form a CUDA graph can capture: the step's factors
    /// ([`Adam::step_factors`]) are read from `factors` `[2]`, a device tensor the caller
    /// fills before each replay, and the new moments and weights are written only where
    /// `commit` (a bool device scalar) holds, so that a step that must not be taken (the
    /// `target_kl` stop, decided on the device) leaves everything as it was, bit for bit.
    /// With `commit` true the result equals [`Adam::step`]'s: bit for bit on the CPU, within
    /// a rounding step on CUDA (whose kernel divides by a host scalar as a product with its
    /// reciprocal, and by a tensor truly). The step count is not
    /// touched: the caller counts a step that was taken with [`Adam::count_step`].
    ///
    /// # Errors
    /// A torch error on a failed kernel.
    pub fn masked_step(&mut self, factors: &Tensor, commit: &Tensor) -> Result<(), PpoError> {
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        let g = self.gather()?.shallow_clone();
        tch::no_grad(|| {
            let m = self.m.f_mul_scalar(beta1)?.f_add(&g.f_mul_scalar(1.0 - beta1)?)?;
            let v = self.v.f_mul_scalar(beta2)?.f_addcmul(&g.f_mul_scalar(1.0 - beta2)?, &g)?;
            let denom = v.f_sqrt()?.f_div(&factors.f_select(0, 1)?)?.f_add_scalar(eps)?;
            let flat = self.flat.f_addcdiv(&m.f_mul(&factors.f_select(0, 0)?)?, &denom)?;
            for (old, new) in [(&mut self.m, m), (&mut self.v, v), (&mut self.flat, flat)] {
                let kept = new.f_where_self(commit, old)?;
                old.f_copy_(&kept)?;
            }
            Ok::<(), PpoError>(())
        })?;
        self.grad = None;
        Ok(())
    }

    /// Counts a step [`Adam::masked_step`] took.
    pub fn count_step(&mut self) {
        self.step += 1;
    }

    /// Copies of the weights and both moments, for [`Adam::restore`].
    ///
    /// # Errors
    /// A torch error when the device cannot allocate.
    pub fn snapshot(&self) -> Result<[Tensor; 3], PpoError> {
        let copy = |t: &Tensor| {
            let mut c = t.f_empty_like()?;
            tch::no_grad(|| c.f_copy_(t))?;
            Ok::<_, PpoError>(c)
        };
        Ok([copy(&self.flat)?, copy(&self.m)?, copy(&self.v)?])
    }

    /// Writes a [`Adam::snapshot`] back in place (the variables keep their storage).
    ///
    /// # Errors
    /// A torch error on a failed copy.
    pub fn restore(&mut self, snapshot: &[Tensor; 3]) -> Result<(), PpoError> {
        tch::no_grad(|| {
            for (to, from) in [&mut self.flat, &mut self.m, &mut self.v].into_iter().zip(snapshot) {
                to.f_copy_(from)?;
            }
            Ok(())
        })
    }

    /// `m.<var>`, `v.<var>` and `step` (i64), on the CPU, for `optimizer.safetensors`.
    ///
    /// # Errors
    /// A torch error when a copy fails.
    pub fn named_tensors(&self) -> Result<Vec<(String, Tensor)>, PpoError> {
        let mut out = Vec::with_capacity(2 * self.params.len() + 1);
        for ((name, p), &(offset, n)) in self.params.iter().zip(&self.slots) {
            for (prefix, flat) in [("m", &self.m), ("v", &self.v)] {
                let t = flat.f_narrow(0, offset, n)?.f_view(p.size().as_slice())?;
                out.push((format!("{prefix}.{name}"), t.f_to(Device::Cpu)?.f_contiguous()?));
            }
        }
        out.push(("step".to_string(), Tensor::f_from_slice(&[self.step as i64])?));
        Ok(out)
    }

    /// Restores the moments and step count written by [`Adam::named_tensors`].
    ///
    /// # Errors
    /// A message naming the missing or misshapen tensor.
    pub fn load_named(&mut self, named: &[(String, Tensor)]) -> Result<(), String> {
        let find = |key: &str| named.iter().find(|(n, _)| n == key).map(|(_, t)| t);
        for ((name, p), &(offset, n)) in self.params.iter().zip(&self.slots) {
            for (flat, key) in [(&self.m, format!("m.{name}")), (&self.v, format!("v.{name}"))] {
                let src = find(&key).ok_or_else(|| format!("missing tensor {key}"))?;
                if src.size() != p.size() {
                    return Err(format!("{key} has shape {:?}, the variable {:?}", src.size(), p.size()));
                }
                let mut slot = flat.f_narrow(0, offset, n).map_err(|e| e.to_string())?;
                tch::no_grad(|| slot.f_copy_(&src.f_reshape([-1])?)).map_err(|e| e.to_string())?;
            }
        }
        let step = find("step").ok_or("missing tensor step")?;
        self.step = u64::try_from(step.f_int64_value(&[0]).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_matches_a_hand_step() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], tch::nn::Init::Const(1.0));
        let mut adam = Adam::new(&vs, 0.1, 1e-8).unwrap();
        let loss = (&w * Tensor::from_slice(&[2.0f32, -4.0])).sum(Kind::Float);
        adam.zero_grad();
        loss.backward();
        let norm = adam.clip_grad_norm(1e6).unwrap();
        assert!((norm.double_value(&[]) - 20f64.sqrt()).abs() < 1e-5);
        adam.step().unwrap();
        // First step moves each weight by lr × sign(g).
        let got = Vec::<f32>::try_from(&w).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-5 && (got[1] - 1.1).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn backward_gives_the_gradients_of_zero_grad_and_backward() {
        tch::manual_seed(3);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let a = vs.root().var("a", &[3, 2], tch::nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let b = vs.root().var("b", &[2], tch::nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let _unused = vs.root().var("c", &[4], tch::nn::Init::Const(1.0));
        let mut adam = Adam::new(&vs, 0.1, 1e-8).unwrap();
        let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        let loss = || (x.matmul(&a) + &b).tanh().square().sum(Kind::Float);
        adam.zero_grad();
        loss().backward();
        let want = Vec::<f32>::try_from(adam.gradients().unwrap()).unwrap();
        // Twice: `.grad` is neither read nor accumulated into.
        for _ in 0..2 {
            adam.backward(&loss()).unwrap();
            let got = Vec::<f32>::try_from(adam.gradients().unwrap()).unwrap();
            assert_eq!(got, want);
        }
        assert_eq!(want.len(), 3 * 2 + 2 + 4);
        assert!(want[8..].iter().all(|&g| g == 0.0), "the unused variable gets zeros");
    }

    #[test]
    fn grad_clip_scales_to_max_norm() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], tch::nn::Init::Const(0.0));
        let mut adam = Adam::new(&vs, 0.1, 1e-5).unwrap();
        (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float).backward();
        let _ = adam.clip_grad_norm(0.5).unwrap();
        let g = Vec::<f32>::try_from(adam.gradients().unwrap()).unwrap();
        assert!((g[0] - 0.3).abs() < 1e-5 && (g[1] - 0.4).abs() < 1e-5, "{g:?}");
    }
}
