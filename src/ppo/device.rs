//! `training.device` and `training.threads` to tch settings: one code path for CPU and
//! CUDA, chosen once per run.

use super::PpoError;
use tch::{Cuda, Device};

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`.
///
/// `auto` is CUDA 0 when a GPU is visible (the build keeps `libtorch_cuda.so` linked, see
/// `build.rs`), else the CPU. Asking for CUDA explicitly on a machine without one is an
/// error rather than a silent CPU run, since a GPU config on a CPU would take days.
///
/// # Errors
/// [`PpoError::Setup`] for an unknown name, no CUDA, or a GPU index out of range.
pub fn parse_device(name: &str) -> Result<Device, PpoError> {
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => Err(PpoError::Setup(format!(
                "training.device = {other:?}: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\""
            ))),
        },
    }
}

fn cuda(n: usize) -> Result<Device, PpoError> {
    if !Cuda::is_available() {
        return Err(PpoError::Setup(format!("training.device = cuda:{n}, but no CUDA device is visible")));
    }
    let count = Cuda::device_count() as usize;
    if n >= count {
        return Err(PpoError::Setup(format!(
            "training.device = cuda:{n}, but only {count} CUDA device(s) are visible"
        )));
    }
    Ok(Device::Cuda(n))
}

/// Sets torch's intra-op threads on the CPU (0 = all cores); GPUs need no setting.
///
/// The env's threads are sized separately ([`crate::vec_env::EnvOptions::threads`]); on a
/// CPU run both take turns, never run at once, so both may use every core.
pub fn set_threads(device: Device, threads: usize) {
    if device == Device::Cpu {
        let n = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        tch::set_num_threads(n.min(i32::MAX as usize) as i32);
    }
}

/// The device as a short name: `cpu`, `cuda:0`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The precision `auto` stands for on `device` (see [`crate::config::Precision::Auto`]);
/// the others stand for themselves.
pub fn resolve_precision(precision: crate::config::Precision, device: Device) -> crate::config::Precision {
    use crate::config::Precision;
    match precision {
        Precision::Auto if device == Device::Cpu && cpu_has_bf16() => Precision::Bf16,
        Precision::Auto => Precision::Fp32,
        p => p,
    }
}

/// Whether this CPU multiplies bf16 matrices natively (AVX512-BF16).
fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `fp32`, `tf32` or `bf16`, as printed by benchmarks.
pub fn precision_name(precision: crate::config::Precision) -> &'static str {
    match precision {
        crate::config::Precision::Auto => "auto",
        crate::config::Precision::Fp32 => "fp32",
        crate::config::Precision::Bf16 => "bf16",
        crate::config::Precision::Tf32 => "tf32",
    }
}

unsafe extern "C" {
    // csrc/torch_shim.cpp, compiled by build.rs.
    fn ploutos_set_matmul_precision(precision: std::ffi::c_int) -> std::ffi::c_int;
    fn ploutos_matmul_precision() -> std::ffi::c_int;
}

/// libtorch's float32 matmul precisions, as the shim numbers them (below `HIGHEST`: the
/// shim failed).
const HIGHEST: std::ffi::c_int = 0;
const HIGH: std::ffi::c_int = 1;

/// Lets f32 matrix products on CUDA use TF32 tensor cores while it lives, and restores
/// the previous setting when dropped. libtorch's setting is global to the process (and
/// may reach oneDNN's CPU products too): the update turns it on around its products on
/// CUDA only, so that rollouts, evaluations and backtests act in f32. Does nothing when
/// `on` is false or when the precision already allows TF32 ("high", or "medium", which
/// allows bf16 too and is left as it is); when libtorch refuses the setting, says so and
/// leaves f32 products.
#[derive(Debug)]
#[must_use = "TF32 is turned off again when the guard drops"]
pub struct Tf32Guard {
    /// The precision to restore ("highest"), when the guard changed it.
    previous: Option<std::ffi::c_int>,
}

impl Tf32Guard {
    pub fn new(on: bool) -> Self {
        if !on {
            return Self { previous: None };
        }
        // SAFETY: two plain C functions of the shim; they take and return ints and catch
        // every C++ exception.
        let previous = unsafe { ploutos_matmul_precision() };
        if previous >= HIGH {
            return Self { previous: None };
        }
        if previous < HIGHEST || unsafe { ploutos_set_matmul_precision(HIGH) } != 0 {
            tracing::warn!("libtorch refused TF32 products; the update runs in f32");
            return Self { previous: None };
        }
        Self { previous: Some(previous) }
    }
}

impl Drop for Tf32Guard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            // SAFETY: as in `new`.
            unsafe { ploutos_set_matmul_precision(previous) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_guard_turns_tf32_on_and_restores_it() {
        let precision = || unsafe { ploutos_matmul_precision() };
        assert_eq!(precision(), HIGHEST, "PyTorch's default is IEEE f32 products");
        {
            let _off = Tf32Guard::new(false);
            assert_eq!(precision(), HIGHEST);
            let _on = Tf32Guard::new(true);
            assert_eq!(precision(), HIGH);
        }
        assert_eq!(precision(), HIGHEST);
        // A precision that allows TF32 already is left as it is. ("medium" is not tried:
        // the setting reaches oneDNN's CPU products too, and bf16 there could change the
        // results of other tests of this process running meanwhile.)
        assert_eq!(unsafe { ploutos_set_matmul_precision(HIGH) }, 0);
        {
            let _on = Tf32Guard::new(true);
            assert_eq!(precision(), HIGH);
        }
        assert_eq!(precision(), HIGH);
        assert_eq!(unsafe { ploutos_set_matmul_precision(HIGHEST) }, 0);
        assert_ne!(unsafe { ploutos_set_matmul_precision(3) }, 0, "not a precision");
    }

    #[test]
    fn auto_is_fp32_on_cuda_and_tf32_stands_for_itself() {
        use crate::config::Precision;
        assert_eq!(resolve_precision(Precision::Auto, Device::Cuda(0)), Precision::Fp32);
        assert_eq!(resolve_precision(Precision::Tf32, Device::Cuda(0)), Precision::Tf32);
        assert_ne!(resolve_precision(Precision::Auto, Device::Cpu), Precision::Tf32);
    }

    #[test]
    fn parses_cpu_and_rejects_junk() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !Cuda::is_available());
    }
}
