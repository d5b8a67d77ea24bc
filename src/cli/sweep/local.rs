//! The local backend: each trial a child `ploutos train` process of this binary, with its
//! share of the cores (`training.threads`), its stdout and stderr in its folder.

use super::{Backend, Event, Launch};
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Running {
    child: Child,
    metrics: PathBuf,
    /// Bytes of `metrics.csv` already reported.
    read: u64,
    /// SIGINT sent: a second one would end the trial at once, without its model.
    interrupted: bool,
}

pub struct LocalBackend {
    parallel: usize,
    running: BTreeMap<String, Running>,
}

impl LocalBackend {
    pub fn new(parallel: usize) -> Self {
        Self { parallel: parallel.max(1), running: BTreeMap::new() }
    }
}

/// The bytes of `path` after `from`, or nothing (not written yet).
fn read_from(path: &PathBuf, from: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(from)).is_ok()
    {
        let _ = f.read_to_end(&mut buf);
    }
    buf
}

/// Sends SIGINT once, which `ploutos train` answers by saving its model and stopping.
fn interrupt(r: &mut Running) {
    if r.interrupted {
        return;
    }
    r.interrupted = true;
    if let Ok(pid) = libc::pid_t::try_from(r.child.id()) {
        // SAFETY: `kill` with a pid of our own live child; no memory is touched.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
}

impl Backend for LocalBackend {
    fn capacity(&self) -> usize {
        self.parallel
    }

    fn start(&mut self, l: Launch) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating the ploutos binary")?;
        let file = |name: &str| {
            std::fs::File::create(l.dir.join(name)).with_context(|| format!("creating {}", l.dir.join(name).display()))
        };
        let child = super::die_with_sweep(&mut Command::new(exe))
            .arg("train")
            .arg("--config")
            .arg(l.dir.join("config.ron"))
            .arg("--out")
            .arg(&l.dir)
            .arg("--force")
            .stdin(Stdio::null())
            .stdout(file("stdout.log")?)
            .stderr(file("stderr.log")?)
            // Its own process group: a Ctrl-C in the terminal reaches the sweep only, which
            // passes one SIGINT on (two would end the trial without saving it).
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting trial {}", l.id))?;
        self.running
            .insert(l.id, Running { child, metrics: l.dir.join("runs/metrics.csv"), read: 0, interrupted: false });
        Ok(())
    }

    fn poll(&mut self) -> anyhow::Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut ended = Vec::new();
        for (id, r) in &mut self.running {
            // Whether it ended is asked first, so that the file read after it is complete.
            let status = r.child.try_wait().with_context(|| format!("waiting for trial {id}"))?;
            let bytes = read_from(&r.metrics, r.read);
            if !bytes.is_empty() {
                r.read += bytes.len() as u64;
                events.push(Event::Metrics { id: id.clone(), text: String::from_utf8_lossy(&bytes).into_owned() });
            }
            if let Some(s) = status {
                // A signal (no code) counts as a failure.
                events.push(Event::Exited { id: id.clone(), code: s.code().unwrap_or(-1), error: None });
                ended.push(id.clone());
            }
        }
        for id in ended {
            self.running.remove(&id);
        }
        Ok(events)
    }

    fn stop(&mut self, id: &str) {
        if let Some(r) = self.running.get_mut(id) {
            interrupt(r);
        }
    }

    fn stop_all(&mut self) {
        for r in self.running.values_mut() {
            interrupt(r);
        }
    }
}
