//! `metrics.csv`: one row per learner iteration, for spreadsheets and pandas.
//!
//! The header is `step` followed by the columns fixed at creation. Values are written with
//! `{}`, the shortest text that reads back as the same `f64` (`NaN` and `inf` included); a
//! column without a value in a row is left empty. Every row is flushed as it is written,
//! so the file is complete up to the last iteration even after a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Appends metric rows to `<dir>/metrics.csv`.
#[derive(Debug)]
pub struct MetricsCsv {
    out: ::csv::Writer<File>,
    /// Column names after `step`, in header order.
    columns: Vec<String>,
    path: PathBuf,
    /// Scratch row, reused across calls: `step` then one cell per column.
    row: Vec<String>,
}

impl MetricsCsv {
    /// The file name inside the run directory.
    pub const FILE_NAME: &'static str = "metrics.csv";

    /// Opens `<dir>/metrics.csv` for appending, creating `dir` and the file if needed.
    ///
    /// A new or empty file gets the header `step,<columns..>`. An existing file must
    /// already have exactly that header (a resumed run); rows are then appended after the
    /// existing ones.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `columns` repeats a name or contains `step`;
    /// [`io::ErrorKind::InvalidData`] if an existing file has another header; any I/O error
    /// reading, creating or writing the file.
    pub fn create(dir: &Path, columns: &[&str]) -> io::Result<Self> {
        for (i, c) in columns.iter().enumerate() {
            if *c == "step" || columns[..i].contains(c) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("metrics.csv column {c:?} is reserved or repeated"),
                ));
            }
        }
        fs::create_dir_all(dir)?;
        let path = dir.join(Self::FILE_NAME);
        let mut header = Vec::with_capacity(columns.len() + 1);
        header.push("step".to_owned());
        header.extend(columns.iter().map(|c| (*c).to_owned()));

        let existing = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let new_file = existing.is_empty();
        if !new_file {
            let found = ::csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(existing.as_slice())
                .records()
                .next()
                .transpose()?
                .map(|r| r.iter().map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default();
            if found != header {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} has columns {found:?}, expected {header:?}; use a new run directory", path.display()),
                ));
            }
            // A row cut short by a crash must not swallow the next one.
            if existing.last() != Some(&b'\n') {
                file.write_all(b"\n")?;
            }
        }
        let mut out = ::csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if new_file {
            out.write_record(&header)?;
            out.flush()?;
        }
        let row = Vec::with_capacity(header.len());
        Ok(Self { out, columns: header.split_off(1), path, row })
    }

    /// Removes the rows past `step` from `dir/metrics.csv` (atomically; nothing when the file
    /// does not exist): a run resumed from the checkpoint at `step` logs them again, and a
    /// crash after that checkpoint had logged some.
    ///
    /// # Errors
    ///
    /// Any I/O error reading or writing the file; a row whose step does not parse is kept.
    pub fn truncate_after(dir: &Path, step: u64) -> io::Result<()> {
        let path = dir.join(Self::FILE_NAME);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let past = |line: &str| line.split(',').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > step);
        // A last line cut short by the crash (no newline) could read as an earlier step.
        let whole = if text.ends_with('\n') { text.as_str() } else { text.rfind('\n').map_or("", |i| &text[..=i]) };
        let mut lines = whole.lines();
        let mut kept: String = lines.next().map(|h| format!("{h}\n")).unwrap_or_default();
        for line in lines.filter(|l| !l.is_empty() && !past(l)) {
            kept.push_str(line);
            kept.push('\n');
        }
        if kept == text {
            return Ok(());
        }
        crate::fsutil::write_atomic(&path, kept.as_bytes())
    }

    /// The column names after `step`, in header order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and flushes one row: `step`, then for each column the first value in
    /// `values` with that name, or an empty cell. Names that are not columns are ignored.
    ///
    /// # Errors
    ///
    /// Any I/O error from the write or the flush.
    pub fn append(&mut self, step: u64, values: &[(&str, f64)]) -> io::Result<()> {
        self.row.clear();
        self.row.push(step.to_string());
        for col in &self.columns {
            let cell = values.iter().find(|(name, _)| name == col).map_or_else(String::new, |(_, v)| format!("{v}"));
            self.row.push(cell);
        }
        self.out.write_record(&self.row)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn a_resume_drops_the_rows_past_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = MetricsCsv::create(dir.path(), &["a"]).unwrap();
        for step in [100, 200, 300] {
            csv.append(step, &[("a", step as f64)]).unwrap();
        }
        drop(csv);
        MetricsCsv::truncate_after(dir.path(), 200).unwrap();
        let mut csv = MetricsCsv::create(dir.path(), &["a"]).unwrap();
        csv.append(300, &[("a", 3.5)]).unwrap();
        assert_eq!(read(csv.path()), "step,a\n100,100\n200,200\n300,3.5\n");
        // Nothing to drop, or no file yet: untouched.
        MetricsCsv::truncate_after(dir.path(), 1_000).unwrap();
        assert_eq!(read(csv.path()), "step,a\n100,100\n200,200\n300,3.5\n");
        MetricsCsv::truncate_after(&dir.path().join("none"), 0).unwrap();
        // A row cut short by a crash ("400,..." cut to "40") goes too.
        let path = dir.path().join(MetricsCsv::FILE_NAME);
        fs::write(&path, "step,a\n100,100\n200,200\n40").unwrap();
        MetricsCsv::truncate_after(dir.path(), 200).unwrap();
        assert_eq!(read(&path), "step,a\n100,100\n200,200\n");
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn writes_header_and_full_precision_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = MetricsCsv::create(dir.path(), &["train/policy_loss", "time/fps"]).unwrap();
        assert_eq!(read(csv.path()), "step,train/policy_loss,time/fps\n");
        csv.append(0, &[("time/fps", 1234.5), ("train/policy_loss", 0.1 + 0.2)]).unwrap();
        csv.append(1, &[("train/policy_loss", f64::NAN), ("other", 3.0)]).unwrap();
        assert_eq!(read(csv.path()), "step,train/policy_loss,time/fps\n0,0.30000000000000004,1234.5\n1,NaN,\n");
    }

    #[test]
    fn values_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let values = [1.0 / 3.0, -2.5e-300, 1e300, f64::MIN_POSITIVE, -0.0];
        let mut csv = MetricsCsv::create(dir.path(), &["x"]).unwrap();
        for (i, v) in values.iter().enumerate() {
            csv.append(i as u64, &[("x", *v)]).unwrap();
        }
        let text = read(csv.path());
        let back: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn reopening_appends_under_the_same_header() {
        let dir = tempfile::tempdir().unwrap();
        MetricsCsv::create(dir.path(), &["a"]).unwrap().append(0, &[("a", 1.0)]).unwrap();
        MetricsCsv::create(dir.path(), &["a"]).unwrap().append(1, &[("a", 2.0)]).unwrap();
        assert_eq!(read(&dir.path().join("metrics.csv")), "step,a\n0,1\n1,2\n");
    }

    #[test]
    fn reopening_ends_a_cut_row_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("metrics.csv"), "step,a\n0,1\n1,").unwrap();
        MetricsCsv::create(dir.path(), &["a"]).unwrap().append(2, &[("a", 3.0)]).unwrap();
        assert_eq!(read(&dir.path().join("metrics.csv")), "step,a\n0,1\n1,\n2,3\n");
    }

    #[test]
    fn reopening_with_other_columns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        MetricsCsv::create(dir.path(), &["a"]).unwrap();
        let err = MetricsCsv::create(dir.path(), &["b"]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read(&dir.path().join("metrics.csv")), "step,a\n");
    }

    #[test]
    fn repeated_or_reserved_columns_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for cols in [&["a", "a"][..], &["step"][..]] {
            let err = MetricsCsv::create(dir.path(), cols).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(!dir.path().join("metrics.csv").exists());
    }

    #[test]
    fn names_needing_quotes_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = MetricsCsv::create(dir.path(), &["a,b"]).unwrap();
        csv.append(5, &[("a,b", 1.5)]).unwrap();
        assert_eq!(read(csv.path()), "step,\"a,b\"\n5,1.5\n");
    }
}
