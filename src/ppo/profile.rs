//! Where a PPO iteration's time goes: wall time per phase of the rollout and the update,
//! for `ploutos bench --train --profile` (issue: the GPU learner at the hardware's pace).
//!
//! A mark waits for the device (`cudaDeviceSynchronize`) before it reads the clock, so the
//! kernels a phase queued are charged to that phase and not to the next one that happens
//! to wait. Waiting costs time of its own and stops the host from running ahead of the
//! device, so a profiled iteration is slower than a plain one: the bench times plain
//! iterations for its throughput and profiles separate ones.

use serde::Serialize;
use std::time::Instant;
use tch::Device;

/// Seconds spent in one phase, summed over the profiled iterations.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub phase: &'static str,
    pub secs: f64,
    /// Times the phase was entered (steps, minibatches).
    pub count: u64,
}

/// Accumulates wall time per phase between [`Profiler::mark`]s.
#[derive(Debug)]
pub(crate) struct Profiler {
    device: Device,
    last: Instant,
    phases: Vec<PhaseTime>,
}

impl Profiler {
    pub(crate) fn new(device: Device) -> Self {
        Self { device, last: Instant::now(), phases: Vec::new() }
    }

    fn sync(&self) {
        if let Device::Cuda(n) = self.device {
            tch::Cuda::synchronize(n as i64);
        }
    }

    /// Starts timing from now, charging nothing (the start of a rollout or an update).
    pub(crate) fn start(&mut self) {
        self.sync();
        self.last = Instant::now();
    }

    /// Charges the time since the previous mark to `phase`, the device's queued work
    /// included.
    pub(crate) fn mark(&mut self, phase: &'static str) {
        self.sync();
        let now = Instant::now();
        let secs = (now - self.last).as_secs_f64();
        self.last = now;
        match self.phases.iter_mut().find(|p| p.phase == phase) {
            Some(p) => {
                p.secs += secs;
                p.count += 1;
            }
            None => self.phases.push(PhaseTime { phase, secs, count: 1 }),
        }
    }

    /// The phases in the order they were first entered.
    pub(crate) fn phases(&self) -> &[PhaseTime] {
        &self.phases
    }
}
