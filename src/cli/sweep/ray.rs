//! The Ray backend: trials as Ray tasks on a cluster, through a small Python driver
//! (`ray_driver.py`, embedded in the binary and written into the sweep's folder) that
//! speaks JSON lines with this process. See the driver's docstring for the protocol.

use super::super::BadArgument;
use super::{Backend, Event, Launch};
use anyhow::Context;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::time::Duration;

const DRIVER: &str = include_str!("ray_driver.py");

/// How long the driver may take to connect (a cold cluster imports Ray, starts workers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

enum Msg {
    Ready(f64),
    Event(Event),
    Fatal(String),
    /// The driver's stdout closed.
    Gone,
}

pub struct RayBackend {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Msg>,
    cpus: f64,
    log: std::path::PathBuf,
}

fn parse(line: &str) -> Option<Msg> {
    let v: Value = serde_json::from_str(line).ok()?;
    let id = || v["id"].as_str().unwrap_or_default().to_string();
    Some(match v["event"].as_str()? {
        "ready" => Msg::Ready(v["cpus"].as_f64().unwrap_or(0.0)),
        "metrics" => Msg::Event(Event::Metrics { id: id(), text: v["text"].as_str().unwrap_or_default().to_string() }),
        "exited" => Msg::Event(Event::Exited {
            id: id(),
            code: v["code"].as_i64().map_or(-1, |c| c as i32),
            error: v["error"].as_str().map(String::from),
        }),
        "fatal" => Msg::Fatal(v["message"].as_str().unwrap_or("the Ray driver failed").to_string()),
        _ => return None,
    })
}

/// The last non-empty line of the driver's log (empty when none).
fn last_line(log: &Path) -> String {
    super::last_line(log).unwrap_or_default()
}

impl RayBackend {
    /// Starts the driver with `python` and waits until it has joined the cluster at
    /// `address`; trials will run `binary` on the cluster's nodes.
    pub fn connect(python: &Path, address: &str, binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let script = dir.join("ray_driver.py");
        ploutos::fsutil::write_atomic(&script, DRIVER.as_bytes())?;
        let log = dir.join("ray-driver.log");
        let err = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = super::die_with_sweep(&mut Command::new(python))
            .arg("-u")
            .arg(&script)
            .arg("--address")
            .arg(address)
            .arg("--binary")
            .arg(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            // A Ctrl-C in the terminal reaches the sweep only, which stops the trials itself.
            .process_group(0)
            .spawn()
            .map_err(|e| BadArgument(format!("--python {}: cannot start it: {e}", python.display())))?;
        let stdout = child.stdout.take().context("the Ray driver's stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(m) = parse(&line)
                    && tx.send(m).is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Msg::Gone);
        });
        let stdin = child.stdin.take();
        let mut backend = Self { child, stdin, rx, cpus: 0.0, log };
        match backend.rx.recv_timeout(CONNECT_TIMEOUT) {
            Ok(Msg::Ready(cpus)) => backend.cpus = cpus,
            Ok(Msg::Fatal(m)) => return Err(BadArgument(format!("--backend ray: {m}")).into()),
            Ok(Msg::Gone) | Err(RecvTimeoutError::Disconnected) => anyhow::bail!(
                "the Ray driver ended before connecting: {} (log: {})",
                last_line(&backend.log),
                backend.log.display()
            ),
            Ok(Msg::Event(_)) => anyhow::bail!("the Ray driver spoke before connecting"),
            Err(RecvTimeoutError::Timeout) => anyhow::bail!(
                "the Ray driver did not connect to {address} within {} s (log: {})",
                CONNECT_TIMEOUT.as_secs(),
                backend.log.display()
            ),
        }
        Ok(backend)
    }

    /// CPUs of the whole cluster.
    pub fn cluster_cpus(&self) -> f64 {
        self.cpus
    }

    fn send(&mut self, v: Value) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("the Ray driver is closed")?;
        writeln!(stdin, "{v}").and_then(|()| stdin.flush()).with_context(|| {
            format!("writing to the Ray driver: {} (log: {})", last_line(&self.log), self.log.display())
        })
    }
}

impl Backend for RayBackend {
    /// Every trial is handed to Ray at once; Ray runs as many as the cluster's CPUs and
    /// GPUs hold and queues the rest.
    fn capacity(&self) -> usize {
        usize::MAX
    }

    fn start(&mut self, l: Launch) -> anyhow::Result<()> {
        let dir = std::path::absolute(&l.dir).unwrap_or(l.dir);
        self.send(json!({
            "op": "start",
            "id": l.id,
            "config": l.config,
            "dir": dir,
            "cpus": l.cpus,
            "gpus": l.gpus,
        }))
    }

    fn poll(&mut self) -> anyhow::Result<Vec<Event>> {
        let mut events = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Event(e)) => events.push(e),
                Ok(Msg::Ready(_)) => {}
                Ok(Msg::Fatal(m)) => anyhow::bail!("Ray: {m}"),
                Ok(Msg::Gone) | Err(TryRecvError::Disconnected) => {
                    anyhow::bail!("the Ray driver ended: {} (log: {})", last_line(&self.log), self.log.display())
                }
                Err(TryRecvError::Empty) => return Ok(events),
            }
        }
    }

    fn stop(&mut self, id: &str) {
        let _ = self.send(json!({"op": "stop", "id": id}));
    }

    fn stop_all(&mut self) {
        let _ = self.send(json!({"op": "stop_all"}));
    }
}

impl Drop for RayBackend {
    /// End of stdin: the driver cancels what is left and disconnects.
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}
