//! [`DataError`]: everything that can go wrong between a data folder and a [`Panel`].
//!
//! Each variant renders as one line naming the file and, where a row is at fault, its
//! 1-based line number (the header is line 1), so a user can open the file at that spot.
//!
//! [`Panel`]: super::Panel

use std::path::PathBuf;

/// A market-data error. All of them are user errors (bad or missing data), never bugs.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or folder at fault.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The data folder is missing, or is a file.
    #[error("{}: {why} (data.csv_dir, or --data)", path.display())]
    NoFolder {
        /// Folder that was looked for.
        path: PathBuf,
        /// `no such folder`, `not a folder`.
        why: &'static str,
    },
    /// A configured ticker has no `<TICKER>.csv` file in the data folder.
    #[error("{}: missing data file for ticker {ticker} (expected one CSV per ticker in data.csv_dir)", path.display())]
    MissingFile {
        /// Path that was looked for.
        path: PathBuf,
        /// Ticker whose file is missing.
        ticker: String,
    },
    /// A ticker's data path is a folder (e.g. `SPY.csv/`), not a file.
    #[error("{}: is a folder, not a CSV file", path.display())]
    NotAFile {
        /// Path at fault.
        path: PathBuf,
    },
    /// The CSV itself is malformed (unbalanced quotes, ragged rows, bad UTF-8).
    #[error("{}:{line}: malformed CSV: {message}", path.display())]
    Csv {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What the CSV reader said.
        message: String,
    },
    /// The header lacks a required column.
    #[error("{}:{line}: missing column {column:?} (found: {found})", path.display())]
    MissingColumn {
        /// File at fault.
        path: PathBuf,
        /// Line of the header.
        line: u64,
        /// Column looked for (with the accepted aliases).
        column: String,
        /// The header as found, comma-separated.
        found: String,
    },
    /// The header names one field in two columns: which one holds it is a guess.
    #[error("{}:{line}: two columns for {column:?} ({first} and {second}): keep one", path.display())]
    DuplicateColumn {
        /// File at fault.
        path: PathBuf,
        /// Line of the header.
        line: u64,
        /// The field.
        column: String,
        /// The two headers, as written.
        first: String,
        second: String,
    },
    /// A number or a time does not parse.
    #[error("{}:{line}: column {column}: cannot parse {value:?} as {expected}", path.display())]
    Parse {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: String,
        /// Text found.
        value: String,
        /// What was expected ("a number", "a date or date-time", ...).
        expected: String,
    },
    /// A NaN or infinite number.
    #[error("{}:{line}: column {column}: {value} is not a finite number", path.display())]
    NonFinite {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: String,
        /// Value found.
        value: f64,
    },
    /// A price that is zero or negative.
    #[error("{}:{line}: column {column}: price {value} must be > 0", path.display())]
    NonPositivePrice {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: String,
        /// Value found.
        value: f64,
    },
    /// A negative volume.
    #[error("{}:{line}: volume {value} must be ≥ 0", path.display())]
    NegativeVolume {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Value found.
        value: f64,
    },
    /// High below max(open, close) or low above min(open, close) beyond the tolerance.
    #[error("{}:{line}: inconsistent bar: {detail} (open {open}, high {high}, low {low}, close {close})", path.display())]
    InconsistentBar {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Which inequality fails.
        detail: String,
        /// Open.
        open: f64,
        /// High.
        high: f64,
        /// Low.
        low: f64,
        /// Close.
        close: f64,
    },
    /// A timestamp earlier than the previous row's.
    #[error("{}:{line}: timestamp {value} is earlier than the previous row's ({previous}); bars must be sorted oldest first", path.display())]
    Unsorted {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Timestamp on this line, as written.
        value: String,
        /// Timestamp on the previous row, as written.
        previous: String,
    },
    /// A timestamp equal to the previous row's (for daily bars: the same date).
    #[error("{}:{line}: duplicate timestamp {value} (same bar as line {previous_line}){hint}", path.display())]
    Duplicate {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Timestamp, as written.
        value: String,
        /// Line of the first occurrence.
        previous_line: u64,
        /// What two differently written timestamps of one bar suggest (empty otherwise).
        hint: &'static str,
    },
    /// Fewer bars than the longest feature window needs.
    #[error("{}:{line}: only {bars} bars, need at least {min} (the longest feature window)", path.display())]
    TooFewBars {
        /// File at fault.
        path: PathBuf,
        /// Last line read.
        line: u64,
        /// Bars found.
        bars: usize,
        /// Bars needed ([`crate::features::MIN_BARS`]).
        min: usize,
    },
    /// The aligned panel is shorter than the longest feature window.
    #[error("{}: the aligned panel has only {bars} bars ({detail}), need at least {min}", source_name)]
    PanelTooShort {
        /// Data folder, or `synthetic`.
        source_name: String,
        /// Bars in the panel.
        bars: usize,
        /// Bars needed.
        min: usize,
        /// Why (e.g. how many timestamps the missing-bar policy dropped).
        detail: String,
    },
    /// Two or more tickers have no bar time in common, so no bar of the panel would be real
    /// for all of them (`drop` keeps nothing; `forward_fill` would invent a whole ticker).
    #[error("{source_name}: the tickers share no {what}: {ranges}")]
    NoSharedDates {
        /// Data folder.
        source_name: String,
        /// `dates` for daily bars, `timestamps` for hourly ones.
        what: &'static str,
        /// Each ticker with its first and last bar, `SPY 2020-01-02 to 2020-12-31, ...`.
        ranges: String,
    },
    /// The configured split leaves the training split empty or cannot be cut.
    /// A split or dividend that cannot be right (a negative ratio, a dividend above the
    /// price it is paid from).
    #[error("{}:{line}: {message}", path.display())]
    CorporateAction {
        /// File at fault.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong, naming the column.
        message: String,
    },
    #[error("data.split: {0}")]
    Split(String),
}

impl crate::UserError for DataError {}

impl DataError {
    /// Wraps an io error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
