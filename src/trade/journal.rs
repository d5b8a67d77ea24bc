//! The trading journal: every decision, order, broker answer and error of `ploutos trade`,
//! one JSON object per line, appended and synced to disk at the end of each bar. It
//! survives a crash (at most the bar in progress is lost, and a cut last line is skipped
//! on reading), and a restart reads it back to know which orders it already sent.

use super::broker::{OrderRequest, OrderState};
use super::broker_account::{AccountSnapshot, Holding};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A session started: the run, the model and the broker; its first decision bar (open
    /// time) and starting cash, from which a restart re-derives every decision.
    Start {
        time: i64,
        run: String,
        model: String,
        broker: String,
        dry_run: bool,
        first_bar_time: i64,
        initial_cash: f64,
        /// Start of the history the features were computed from (a resume reads the same
        /// bars, so that it re-derives the same decisions).
        #[serde(default)]
        history_since: Option<i64>,
        /// The session's tag in its client order ids ([`super::TradeOptions::session`]);
        /// absent in journals from before tags and for the replay broker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// SHA-256 (hex) of the files the model decides with (`ploutos trade`'s
        /// `model_digest`): a resume with other weights under the same path (a `best/` that
        /// training rewrote since) is refused. Absent in journals from before it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_digest: Option<String>,
    },
    /// The broker's account at a bar close, which the decision at that close reads (not in a
    /// dry run, which decides on the simulated account); a restart decides again from it.
    Account {
        bar_time: i64,
        account: AccountSnapshot,
        /// The broker's positions in the model's tickers, where an order of the session
        /// filled in part and they are not the env's ([`super::Session::set_holdings`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holdings: Option<Vec<Holding>>,
    },
    /// The agent's action for one ticker at a bar close, and the order it means (signed
    /// shares, 0 for none).
    Decision { bar_time: i64, ticker: String, action: u8, shares: f64 },
    /// An order about to be sent (written before sending: a crash after this line and
    /// before the answer is resolved at restart by asking the broker for the id).
    Order { bar_time: i64, request: OrderRequest },
    /// What the broker answered.
    Answer { state: OrderState },
    /// An order not sent, and why (a safety limit, `--dry-run`, a market rule).
    Withheld { bar_time: i64, request: OrderRequest, reason: String },
    /// Something failed; the session goes on or stops as `stopped` says.
    Error { time: i64, message: String, stopped: bool },
    /// A bar is done: everything above is on disk.
    BarDone { bar_time: i64, equity: f64 },
}

/// Appends to a journal file.
pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Journal {
    /// Opens `path` for appending (creating it and its folder). A last line cut by a crash
    /// is removed first, so that what follows starts on a line of its own.
    ///
    /// # Errors
    /// The I/O error of creating, reading or opening it.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        if let Ok(bytes) = std::fs::read(path)
            && bytes.last().is_some_and(|&b| b != b'\n')
        {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            OpenOptions::new().write(true).open(path)?.set_len(keep as u64)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one entry (buffered; [`Self::sync`] puts it on disk).
    ///
    /// # Errors
    /// The I/O error of writing.
    pub fn write(&mut self, entry: &Entry) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")
    }

    /// Writes an entry and puts everything on disk: before an order is sent, and at the end
    /// of each bar.
    ///
    /// # Errors
    /// The I/O error of writing or syncing.
    pub fn write_synced(&mut self, entry: &Entry) -> io::Result<()> {
        self.write(entry)?;
        self.sync()
    }

    /// Flushes the buffer and syncs the file's data to disk.
    ///
    /// # Errors
    /// The I/O error of flushing or syncing.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// A journal read back.
#[derive(Debug, Default)]
pub struct Replayed {
    pub entries: Vec<Entry>,
    /// The last line was cut (a crash while writing it) and was skipped.
    pub cut_last_line: bool,
}

impl Replayed {
    /// Reads a journal; a missing file reads as empty.
    ///
    /// # Errors
    /// The I/O error of reading, or a line other than the last that is not an entry
    /// (`path:line: message`): the journal was edited or belongs to something else.
    pub fn read(path: &Path) -> io::Result<Self> {
        // The path in every error: the caller prints it as one line.
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(named(e)),
        };
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(named)?;
        let mut out = Self::default();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => out.entries.push(entry),
                Err(_) if i + 1 == lines.len() => out.cut_last_line = true,
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}:{}: not a journal entry: {e}", path.display(), i + 1),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Client ids of the orders written as about to be sent: a restart must not send them
    /// again, and asks the broker where those without an answer stand.
    pub fn sent_ids(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Order { request, .. } => Some(request.client_order_id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Client ids of the orders sent without an answer in the journal.
    pub fn unanswered_ids(&self) -> BTreeSet<&str> {
        let answered: BTreeSet<&str> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Answer { state } => Some(state.client_order_id.as_str()),
                _ => None,
            })
            .collect();
        self.sent_ids().difference(&answered).copied().collect()
    }

    /// The broker's account at each bar close the journal recorded, oldest first, with its
    /// positions where they were not the env's: a restart gives them to the session
    /// ([`super::Session::set_account`], [`super::Session::set_holdings`]).
    pub fn accounts(&self) -> impl Iterator<Item = (i64, AccountSnapshot, Option<&[Holding]>)> + '_ {
        self.entries.iter().filter_map(|e| match e {
            Entry::Account { bar_time, account, holdings } => Some((*bar_time, *account, holdings.as_deref())),
            _ => None,
        })
    }

    /// The last bar the journal finished, if any.
    pub fn last_bar_done(&self) -> Option<i64> {
        self.entries.iter().rev().find_map(|e| match e {
            Entry::BarDone { bar_time, .. } => Some(*bar_time),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trade::broker::{OrderSide, OrderStatus, Quantity};

    fn request(id: &str) -> OrderRequest {
        OrderRequest {
            client_order_id: id.into(),
            ticker: "SPY".into(),
            side: OrderSide::Buy,
            quantity: Quantity::Shares(3.0),
        }
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_sent_orders_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/today/journal.jsonl");
        let mut j = Journal::open(&path).unwrap();
        j.write(&Entry::Decision { bar_time: 100, ticker: "SPY".into(), action: 1, shares: 3.0 }).unwrap();
        j.write_synced(&Entry::Order { bar_time: 100, request: request("a") }).unwrap();
        let state = OrderState {
            client_order_id: "a".into(),
            ticker: "SPY".into(),
            side: OrderSide::Buy,
            quantity: Quantity::Shares(3.0),
            status: OrderStatus::Accepted,
            filled_shares: 0.0,
            fill_price: None,
            reason: None,
        };
        j.write(&Entry::Answer { state }).unwrap();
        j.write(&Entry::BarDone { bar_time: 100, equity: 1e4 }).unwrap();
        j.write_synced(&Entry::Order { bar_time: 200, request: request("b") }).unwrap();
        drop(j);
        // A crash in the middle of the next line.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"kind\":\"answer\",\"state\":{\"client_or");
        std::fs::write(&path, text).unwrap();
        let r = Replayed::read(&path).unwrap();
        assert!(r.cut_last_line);
        assert_eq!(r.entries.len(), 5);
        assert_eq!(r.sent_ids().into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(r.unanswered_ids().into_iter().collect::<Vec<_>>(), ["b"]);
        assert_eq!(r.last_bar_done(), Some(100));
        // Reopened after the restart: the cut line goes, what was whole stays.
        Journal::open(&path).unwrap().write_synced(&Entry::BarDone { bar_time: 200, equity: 1e4 }).unwrap();
        let r = Replayed::read(&path).unwrap();
        assert!(!r.cut_last_line);
        assert_eq!((r.entries.len(), r.last_bar_done()), (6, Some(200)));
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, "{\"kind\":\"bar_done\",\"bar_time\":1,\"equity\":2}\nnot json\n{\"kind\":\"bar_done\",\"bar_time\":2,\"equity\":2}\n").unwrap();
        let err = Replayed::read(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2: not a journal entry", path.display())), "{err}");
        assert!(Replayed::read(&dir.path().join("none.jsonl")).unwrap().entries.is_empty());
        // Not a text file, a folder: named.
        let binary = dir.path().join("binary.jsonl");
        std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
        let err = Replayed::read(&binary).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", binary.display())), "{err}");
        let err = Replayed::read(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", dir.path().display())), "{err}");
    }
}
