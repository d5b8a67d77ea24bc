//! Property tests of the file loaders: random bytes, and random mutations of valid bars CSV
//! files, RON configs and action files, never panic, and every error names the file.
//!
//! A user's file can hold anything (a half-downloaded CSV, a config edited by hand, a
//! spreadsheet's export); a loader must answer each with one line that says where to look.
//! Mutations start from valid files so that most cases get past the header and reach the
//! deeper checks (values, timestamps, alignment, ranges), which random bytes rarely do.

use ploutos::backtest::ActionTable;
use ploutos::config::{Config, DataConfig, DataSource, Interval, MissingBarPolicy, SyntheticConfig};
use ploutos::market::calendar::format_timestamp;
use ploutos::market::{Panel, infer_interval, load_csv_file, load_panel, synthetic_panel};
use proptest::prelude::*;
use std::path::Path;
use std::sync::LazyLock;

/// Cases per property: a few seconds in all. Raise it to hunt (20,000 ran clean in about a
/// minute when these tests were written).
const CASES: u32 = 256;

/// One edit of a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// Sets the byte at the index.
    SetByte(usize, u8),
    /// Removes up to this many bytes from the index.
    Delete(usize, usize),
    /// Inserts a token at the index.
    Insert(usize, usize),
    /// Cuts the file at the index.
    Truncate(usize),
    /// Repeats a line (a duplicate bar, a repeated key).
    DuplicateLine(usize),
    /// Swaps two lines (unsorted bars).
    SwapLines(usize, usize),
    /// Replaces the n-th comma-separated field of a line with a token.
    ReplaceField(usize, usize, usize),
    /// Replaces the n-th number of the file with a token.
    ReplaceNumber(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::SwapLines(i, j)),
        (any::<usize>(), any::<usize>(), any::<usize>()).prop_map(|(l, f, t)| Mutation::ReplaceField(l, f, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(n, t)| Mutation::ReplaceNumber(n, t)),
    ]
}

/// `i` mapped into `0..len` (`len > 0`).
fn pick(i: usize, len: usize) -> usize {
    i % len
}

/// Applies `muts` in order to `base`, drawing inserted text from `tokens`.
fn mutate(base: &[u8], muts: &[Mutation], tokens: &[&str]) -> Vec<u8> {
    let mut b = base.to_vec();
    let token = |t: &usize| tokens[pick(*t, tokens.len())].as_bytes().to_vec();
    for m in muts {
        let at = |i: &usize, len: usize| pick(*i, len + 1);
        match m {
            Mutation::SetByte(i, v) if !b.is_empty() => {
                let i = pick(*i, b.len());
                b[i] = *v;
            }
            Mutation::SetByte(..) => {}
            Mutation::Delete(i, n) => {
                let i = at(i, b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Mutation::Insert(i, t) => {
                let i = at(i, b.len());
                b.splice(i..i, token(t));
            }
            Mutation::Truncate(i) => b.truncate(at(i, b.len())),
            Mutation::DuplicateLine(i) => {
                let mut lines = split_lines(&b);
                let i = pick(*i, lines.len());
                let line = lines[i].clone();
                lines.insert(i, line);
                b = lines.concat();
            }
            Mutation::SwapLines(i, j) => {
                let mut lines = split_lines(&b);
                let (i, j) = (pick(*i, lines.len()), pick(*j, lines.len()));
                lines.swap(i, j);
                b = lines.concat();
            }
            Mutation::ReplaceField(l, f, t) => {
                let mut lines = split_lines(&b);
                let l = pick(*l, lines.len());
                let line = std::mem::take(&mut lines[l]);
                let end = line.iter().rposition(|&c| c != b'\n' && c != b'\r').map_or(0, |p| p + 1);
                let (body, eol) = line.split_at(end);
                let mut fields: Vec<Vec<u8>> = body.split(|&c| c == b',').map(<[u8]>::to_vec).collect();
                let f = pick(*f, fields.len());
                fields[f] = token(t);
                let mut out = fields.join(&b','); // a field of the line replaced
                out.extend_from_slice(eol);
                lines[l] = out;
                b = lines.concat();
            }
            Mutation::ReplaceNumber(n, t) => {
                let numbers = number_spans(&b);
                if !numbers.is_empty() {
                    let (s, e) = numbers[pick(*n, numbers.len())];
                    b.splice(s..e, token(t));
                }
            }
        }
    }
    b
}

/// Lines with their line ends (at least one, possibly empty).
fn split_lines(b: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = b.split_inclusive(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
    if lines.is_empty() {
        lines.push(Vec::new());
    }
    lines
}

/// Byte spans of digit runs (with a fraction or exponent).
fn number_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'e') {
                i += 1;
            }
            spans.push((s, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// Text that CSV loaders, timestamp parsers and number parsers find hard.
const CSV_TOKENS: &[&str] = &[
    "",
    ",",
    "\n",
    "\r\n",
    "\"",
    "\"a,b\"",
    "\u{feff}",
    "\u{0}",
    "é",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0",
    "1e308",
    "1e309",
    "4.9e-324",
    "99999999999999999999999",
    "2021-02-30",
    "2021-13-01",
    "0000-01-01",
    "9999-12-31",
    "+262143-12-31",
    "-262144-01-01",
    "2021-03-14 02:30",
    "2021-11-07 01:30",
    "2021-03-15T09:30:00+25:00",
    "2021-03-15T09:30:00-99",
    "2021-03-15 24:00",
    "2021-03-15T09:30:00.99999999999999",
    "2021-03-15 00:00:00Z",
    "2021-03-15 09:30 UTC",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "Price",
    "Ticker",
    "Date",
    "timestamp",
    "open",
    "volume",
];

/// RON syntax, keys, extreme numbers and wrong types.
const RON_TOKENS: &[&str] = &[
    "",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "'",
    "\\",
    "//",
    "/*",
    "r#\"",
    "#![enable(implicit_some)]",
    "Some(",
    "None",
    "true",
    "()",
    "-1",
    "0",
    "-0",
    "0.5",
    "1e400",
    "-1e400",
    "NaN",
    "inf",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "\"1d\"",
    "\"1m\"",
    "\"cuda:7\"",
    "\"\"",
    "[]",
    "[0]",
    "[\"A\",\"A\"]",
    "\"2015-02-30\"",
    "training",
    "environment",
    "data",
    "n_envs:",
    "batch_size:",
    "tickers:",
    "plugins:",
    "\u{feff}",
    "é",
];

/// Numbers only: out of range, of the wrong sign or kind, overflowing.
const NUMBER_TOKENS: &[&str] = &[
    "-1",
    "0",
    "-0",
    "1",
    "2",
    "0.5",
    "1.5",
    "1e-12",
    "1e400",
    "-1e400",
    "1e12",
    "1000000000",
    "NaN",
    "inf",
    "-inf",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "65",
];

/// The panel action files are checked against: 1 year, two tickers, daily or hourly.
fn panel(interval: Interval) -> &'static Panel {
    static DAY: LazyLock<Panel> = LazyLock::new(|| make_panel(Interval::Day));
    static HOUR: LazyLock<Panel> = LazyLock::new(|| make_panel(Interval::Hour));
    match interval {
        Interval::Day => &DAY,
        Interval::Hour => &HOUR,
    }
}

fn make_panel(interval: Interval) -> Panel {
    synthetic_panel(&DataConfig {
        tickers: vec!["AAA".into(), "BBB".into()],
        interval,
        synthetic: SyntheticConfig { years: 1.0, ..SyntheticConfig::default() },
        ..DataConfig::default()
    })
}

/// A valid action file over `panel`: every 7th bar, cells of every accepted form.
fn actions_file(panel: &Panel) -> String {
    let cells = ["buy", "sell", "hold", "0", "1", "2", "", "BUY"];
    let mut text = String::from("timestamp,AAA,BBB\n");
    for (i, t) in (0..panel.n_bars()).step_by(7).enumerate() {
        let stamp = format_timestamp(panel.timestamps()[t], panel.interval());
        text.push_str(&format!("{stamp},{},{}\n", cells[i % cells.len()], cells[(i + 3) % cells.len()]));
    }
    text
}

/// Valid bars files: the fixtures in every supported header, daily and hourly.
const BARS: &[&str] = &[
    "market/yfinance_1d_SPY.csv",
    "market/yfinance_1d_multiindex_SPY.csv",
    "market/yfinance_1h_NVDA.csv",
    "market/alpaca_1h_NVDA.csv",
    "features/daily_bars.csv",
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).expect("fixture")
}

fn config_file(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name)).expect("config")
}

/// Loads `bytes` as a bars file under both intervals (and infers one): no panic, and each
/// error names the file.
fn check_bars(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("FUZZ.csv");
    std::fs::write(&path, bytes).expect("write");
    let shown = path.display().to_string();
    for interval in [Interval::Day, Interval::Hour] {
        if let Err(e) = load_csv_file(&path, interval) {
            prop_assert!(e.to_string().contains(&shown), "{interval:?}: {e}");
        }
    }
    if let Err(e) = infer_interval(&path) {
        prop_assert!(e.to_string().contains(&shown), "infer: {e}");
    }
    Ok(())
}

/// Parses `bytes` as a config (from text, then through a file): no panic, and each error of
/// a file names it.
fn check_config(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    match Config::from_ron_str(&text, "fuzz.ron") {
        Ok(cfg) => {
            let _ = cfg.validate();
        }
        Err(e) => prop_assert!(e.to_string().contains("fuzz.ron"), "{e}"),
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fuzz.ron");
    std::fs::write(&path, bytes).expect("write");
    if let Err(e) = Config::load(&path, &[]) {
        let shown = path.display().to_string();
        // The file, or a source error of it (an io error is the source of "cannot read").
        prop_assert!(e.to_string().contains(&shown), "{e}");
    }
    Ok(())
}

/// Loads `bytes` as an action file over `panel`: no panic, and each error names the file.
fn check_actions(bytes: &[u8], panel: &Panel) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("signals.csv");
    std::fs::write(&path, bytes).expect("write");
    if let Err(e) = ActionTable::load(&path, panel, None) {
        prop_assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    Ok(())
}

proptest! {
    // No regression files: a failure prints its minimal case, which belongs in a named test.
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bars_from_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), header in any::<bool>()) {
        let mut file = if header { b"timestamp,open,high,low,close,volume\n".to_vec() } else { Vec::new() };
        file.extend(bytes);
        check_bars(&file)?;
    }

    #[test]
    fn bars_from_mutated_files(which in 0..BARS.len(), muts in prop::collection::vec(mutation(), 1..6)) {
        check_bars(&mutate(&fixture(BARS[which]), &muts, CSV_TOKENS))?;
    }

    /// Two tickers in a folder, one mutated: the panel (alignment, shared dates, length)
    /// fails only with a message naming the file or the folder.
    #[test]
    fn panels_from_mutated_folders(muts in prop::collection::vec(mutation(), 1..4), fill in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = fixture("market/yfinance_1d_SPY.csv");
        std::fs::write(dir.path().join("A.csv"), &base).expect("write");
        std::fs::write(dir.path().join("B.csv"), mutate(&base, &muts, CSV_TOKENS)).expect("write");
        let cfg = DataConfig {
            tickers: vec!["A".into(), "B".into()],
            source: DataSource::Csv,
            csv_dir: dir.path().display().to_string(),
            interval: Interval::Day,
            missing_bars: if fill { MissingBarPolicy::ForwardFill } else { MissingBarPolicy::Drop },
            ..DataConfig::default()
        };
        if let Err(e) = load_panel(&cfg) {
            prop_assert!(e.to_string().contains(&dir.path().display().to_string()), "{e}");
        }
    }

    #[test]
    fn configs_from_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_config(&bytes)?;
    }

    #[test]
    fn configs_from_mutated_files(default in any::<bool>(), muts in prop::collection::vec(mutation(), 1..4)) {
        let base = config_file(if default { "default.ron" } else { "ultimate.ron" });
        check_config(&mutate(&base, &muts, RON_TOKENS))?;
    }

    /// Values rather than syntax: every number of a config replaced by extreme ones reaches
    /// `validate`, whose errors must say where in the file the value is.
    #[test]
    fn configs_with_extreme_values(default in any::<bool>(), picks in prop::collection::vec((any::<usize>(), any::<usize>()), 1..4)) {
        let base = config_file(if default { "default.ron" } else { "ultimate.ron" });
        let muts: Vec<Mutation> = picks.into_iter().map(|(n, t)| Mutation::ReplaceNumber(n, t)).collect();
        check_config(&mutate(&base, &muts, NUMBER_TOKENS))?;
    }

    #[test]
    fn actions_from_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), header in any::<bool>()) {
        let mut file = if header { b"timestamp,AAA,BBB\n".to_vec() } else { Vec::new() };
        file.extend(bytes);
        check_actions(&file, panel(Interval::Day))?;
    }

    #[test]
    fn actions_from_mutated_files(hourly in any::<bool>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let panel = panel(if hourly { Interval::Hour } else { Interval::Day });
        check_actions(&mutate(actions_file(panel).as_bytes(), &muts, CSV_TOKENS), panel)?;
    }
}

/// The mutator itself: each kind of edit does what it says.
#[test]
fn mutations_edit_as_described() {
    let base = b"a,b\n1,2\n3.5,4\n";
    let out = mutate(base, &[Mutation::Truncate(3)], &["x"]);
    assert_eq!(out, b"a,b");
    let out = mutate(base, &[Mutation::DuplicateLine(0)], &["x"]);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 4);
    let out = mutate(base, &[Mutation::ReplaceNumber(0, 0)], &["X"]);
    assert_eq!(String::from_utf8(out).unwrap().matches('X').count(), 1);
    let out = mutate(base, &[Mutation::ReplaceField(0, 0, 0)], &["X"]);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches('X').count(), 1, "{text}");
    assert_eq!(text.lines().count(), 3);
    assert_eq!(number_spans(b"x 12 3.5e2,"), [(2, 4), (5, 10)]);
}

/// Every hard token as the first and as the last row's timestamp of every fixture: the last
/// row is reached only after every earlier one validated, which random edits rarely get to.
#[test]
fn hard_timestamps_at_either_end() {
    for name in BARS {
        let base = fixture(name);
        let last = split_lines(&base).len() - 1;
        let first = if name.contains("multiindex") { 3 } else { 1 };
        for row in [first, last] {
            for (t, token) in CSV_TOKENS.iter().enumerate() {
                let file = mutate(&base, &[Mutation::ReplaceField(row, 0, t)], CSV_TOKENS);
                check_bars(&file).unwrap_or_else(|e| panic!("{name}, row {row}, {token:?}: {e}"));
            }
        }
    }
}
