//! CUDA graphs (PyTorch's `torch.cuda.CUDAGraph`) through `csrc/torch_shim.cpp`: kernels
//! captured once and replayed with one launch.
//!
//! A rollout step runs the networks on a few rows: a dozen small kernels whose launches
//! (host time in libtorch's dispatcher and CUDA's driver) cost several times their
//! arithmetic, and the step waits for all of them before it can sample. Captured once
//! per rollout (the weights change only between rollouts), a step is one replay. The
//! update's minibatch, some two hundred kernels, is captured once per run and replayed for
//! every full minibatch (`minibatch.rs`).
//!
//! A capture reads and writes fixed addresses: the tensors it reads must keep their
//! storage (write new inputs into them with `copy_`), and the tensors it returns are
//! overwritten by every replay.

use super::PpoError;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

unsafe extern "C" {
    fn ploutos_last_error() -> *const c_char;
    fn ploutos_cuda_graphs_supported() -> c_int;
    fn ploutos_graph_new(device: c_int) -> *mut c_void;
    fn ploutos_graph_capture_begin(graph: *mut c_void) -> c_int;
    fn ploutos_graph_capture_end(graph: *mut c_void) -> c_int;
    fn ploutos_graph_leave(graph: *mut c_void) -> c_int;
    fn ploutos_graph_replay(graph: *mut c_void) -> c_int;
    fn ploutos_graph_free(graph: *mut c_void);
}

/// Warm-up passes before a capture, on the capture's stream: libtorch and cuBLAS set up
/// their per-stream state (handles, workspaces) on first use, which a capture cannot.
const WARM_UP_PASSES: usize = 2;

fn shim_error(what: &str) -> PpoError {
    // SAFETY: the shim returns a pointer to its thread-local, NUL-terminated message.
    let message = unsafe { CStr::from_ptr(ploutos_last_error()) }.to_string_lossy().into_owned();
    PpoError::Setup(format!("CUDA graph {what}: {message}"))
}

/// Whether this build can capture CUDA graphs (it found CUDA's headers).
pub fn supported() -> bool {
    // SAFETY: a plain C function of the shim.
    unsafe { ploutos_cuda_graphs_supported() != 0 }
}

/// The variable that turns graphs off (`0`, `off` or `false`), to measure without them.
pub const GRAPHS_VAR: &str = "PLOUTOS_CUDA_GRAPHS";

/// Set by the first failed capture or check: a failed capture can leave libtorch's
/// allocator state behind, so none is tried again in this process.
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Whether this process captures graphs: the build has them, [`GRAPHS_VAR`] does not turn
/// them off, and no capture has failed.
pub fn enabled() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var(GRAPHS_VAR).is_ok_and(|v| matches!(v.trim(), "0" | "off" | "false")));
    supported() && !off && !DISABLED.load(Ordering::Relaxed)
}

/// Turns graphs off for the rest of the process after a failed capture or check, saying
/// why (once: later failures are the same story).
pub fn disable(why: &dyn std::fmt::Display) {
    if !DISABLED.swap(true, Ordering::Relaxed) {
        tracing::warn!("CUDA graphs are off for this run, kernels are launched one by one: {why}");
    }
}

/// Captured kernels, replayed with [`CudaGraph::replay`].
#[derive(Debug)]
pub struct CudaGraph {
    raw: *mut c_void,
}

impl CudaGraph {
    /// Runs `pass` `WARM_UP_PASSES` times, then captures one more run of it, all on a
    /// side stream of CUDA device `device`; returns the graph and what the captured run
    /// returned (tensors that every replay overwrites).
    ///
    /// # Errors
    /// [`PpoError::Setup`] when libtorch cannot capture (an operation that waits for the
    /// device, or allocates host memory, inside `pass`), or `pass`'s own error.
    pub fn capture<T>(device: usize, mut pass: impl FnMut() -> Result<T, PpoError>) -> Result<(Self, T), PpoError> {
        let device = c_int::try_from(device).map_err(|_| PpoError::Setup(format!("CUDA device {device}")))?;
        // SAFETY: the shim's functions take the handle `ploutos_graph_new` returned, which
        // `Drop` frees once; every C++ exception is caught in the shim.
        let raw = unsafe { ploutos_graph_new(device) };
        if raw.is_null() {
            return Err(shim_error("set-up"));
        }
        let graph = Self { raw };
        let captured = (|| {
            for _ in 0..WARM_UP_PASSES {
                pass()?;
            }
            if unsafe { ploutos_graph_capture_begin(graph.raw) } != 0 {
                return Err(shim_error("capture"));
            }
            let out = pass();
            let ended = unsafe { ploutos_graph_capture_end(graph.raw) };
            let out = out?;
            if ended != 0 {
                return Err(shim_error("capture"));
            }
            Ok(out)
        })();
        // The caller's stream is current again whatever happened.
        let left = unsafe { ploutos_graph_leave(graph.raw) };
        let out = captured?;
        if left != 0 {
            return Err(shim_error("capture"));
        }
        Ok((graph, out))
    }

    /// Launches the captured kernels on the current stream.
    ///
    /// # Errors
    /// [`PpoError::Setup`] when CUDA refuses the launch.
    pub fn replay(&self) -> Result<(), PpoError> {
        // SAFETY: as in `capture`.
        if unsafe { ploutos_graph_replay(self.raw) } != 0 {
            return Err(shim_error("replay"));
        }
        Ok(())
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `ploutos_graph_new` and is freed once, here.
        unsafe { ploutos_graph_free(self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_without_a_gpu_fails_with_a_message() {
        if tch::Cuda::is_available() {
            return;
        }
        let err = CudaGraph::capture(0, || Ok(())).unwrap_err().to_string();
        assert!(err.contains("CUDA graph"), "{err}");
    }
}
