//! A minimal TensorBoard event-file writer, written by hand: scalars only, no protobuf
//! codegen, no TensorFlow.
//!
//! An event file is a sequence of TFRecords. Each record is
//!
//! ```text
//! u64 length (LE) | u32 masked_crc32c(length bytes) (LE) | data | u32 masked_crc32c(data) (LE)
//! ```
//!
//! with `masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping). Each record's
//! data is one `tensorflow.Event` protobuf:
//!
//! ```text
//! Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//!           SessionLog session_log = 7; }
//! Summary { repeated Value value = 1; }
//! Value   { string tag = 1; float simple_value = 2; }
//! SessionLog { SessionStatus status = 1; }   // START = 1
//! ```
//!
//! A resumed run opens its file with a `SessionLog` START at the first step it logs
//! ([`TensorBoardWriter::restart_at`]): TensorBoard's Python reader (`EventAccumulator`,
//! `tensorboard --load_fast=false`) then drops the points a crashed run logged after its
//! checkpoint (`purge_orphaned_data`), so each curve has one point a step; the default fast
//! loader ignores the mark and replaces a tag's point only where a step repeats.
//!
//! The first record carries only `wall_time` and `file_version = "brain.Event:2"`; every
//! later one carries `wall_time`, `step` and a `summary`. Fields follow proto3 encoding: a
//! zero `step` is left out, while `simple_value` (a member of a `oneof` in `summary.proto`)
//! is always written, zero included.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `file_version` of the first record; TensorBoard reads version 2 event files.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Added to the rotated CRC by the TFRecord checksum mask.
const MASK_DELTA: u32 = 0xa282_ead8;

/// Numbers the event files one process creates (the last part of the file name), so two
/// writers opened in the same second never collide.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns the TFRecord checksum of `data`: CRC32C (Castagnoli), rotated right by 15 bits,
/// plus `0xa282ead8`.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    // ((crc >> 15) | (crc << 17)) on a u32 is a rotation.
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Appends one TFRecord (length, its checksum, `data`, its checksum) to `out`.
pub fn encode_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// Protobuf wire types used by `Event`.
#[derive(Clone, Copy)]
enum WireType {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    Fixed32 = 5,
}

/// Appends `value` as a base-128 varint (least significant group first).
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends the key of field `field` with wire type `wire`.
fn put_key(out: &mut Vec<u8>, field: u32, wire: WireType) {
    put_varint(out, (u64::from(field) << 3) | wire as u64);
}

/// Appends a length-delimited field (string, bytes or embedded message).
fn put_len_delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WireType::Len);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends the `wall_time` and, unless zero, `step` fields shared by every event.
fn put_event_header(out: &mut Vec<u8>, wall_time: f64, step: u64) {
    put_key(out, 1, WireType::Fixed64);
    out.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        // int64 travels as the varint of its two's-complement bits; steps stay far below
        // i64::MAX, where both readings agree.
        put_key(out, 2, WireType::Varint);
        put_varint(out, step);
    }
}

/// Encodes the first event of a file: `wall_time` and `file_version` only.
pub fn encode_file_version_event(wall_time: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    put_event_header(&mut out, wall_time, 0);
    put_len_delimited(&mut out, 3, FILE_VERSION.as_bytes());
    out
}

/// Encodes a `SessionLog` START event at `step`: TensorBoard's mark of a restart, from which
/// on it forgets the points of earlier files at this step or later.
pub fn encode_session_start_event(wall_time: f64, step: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    put_event_header(&mut out, wall_time, step);
    // SessionLog { status: START (1) }.
    put_len_delimited(&mut out, 7, &[0x08, 0x01]);
    out
}

/// Encodes one event holding a `Summary` with one `simple_value` per `(tag, value)`.
///
/// Values are stored as `f32`, as TensorBoard's `simple_value` is a `float`.
pub fn encode_scalar_event(wall_time: f64, step: u64, scalars: &[(&str, f64)]) -> Vec<u8> {
    let mut summary = Vec::with_capacity(scalars.len() * 32);
    let mut value = Vec::with_capacity(64);
    for &(tag, v) in scalars {
        value.clear();
        put_len_delimited(&mut value, 1, tag.as_bytes());
        put_key(&mut value, 2, WireType::Fixed32);
        value.extend_from_slice(&(v as f32).to_le_bytes());
        put_len_delimited(&mut summary, 1, &value);
    }
    let mut out = Vec::with_capacity(summary.len() + 24);
    put_event_header(&mut out, wall_time, step);
    put_len_delimited(&mut out, 5, &summary);
    out
}

/// Seconds since the Unix epoch as a float, as TensorBoard's `wall_time` expects.
fn wall_time_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name for the event file name, restricted to `[A-Za-z0-9._-]`;
/// `localhost` when the system does not say.
fn hostname() -> String {
    let raw = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}

/// Writes scalar summaries to a TensorBoard event file.
///
/// Records go through a buffer: call [`flush`](Self::flush) after each batch of scalars
/// so a running TensorBoard sees live progress. Dropping the writer flushes what is left,
/// ignoring errors.
#[derive(Debug)]
pub struct TensorBoardWriter {
    out: BufWriter<File>,
    path: PathBuf,
    /// Scratch space for one record, reused across events.
    record: Vec<u8>,
}

impl TensorBoardWriter {
    /// Creates `dir` if needed and a new event file in it named
    /// `events.out.tfevents.<unix_secs>.<hostname>.<pid>.<n>` (`n` counts the files this
    /// process has opened, from 0), then writes and flushes the `file_version` record.
    ///
    /// # Errors
    ///
    /// Any I/O error creating the directory or the file, or writing the first record; an
    /// [`io::ErrorKind::AlreadyExists`] error if the file name is already taken.
    pub fn create(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let wall_time = wall_time_now();
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}",
            wall_time as u64,
            hostname(),
            std::process::id(),
            FILE_COUNTER.fetch_add(1, Ordering::Relaxed),
        );
        let path = dir.join(name);
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let mut writer = Self { out: BufWriter::new(file), path, record: Vec::with_capacity(256) };
        writer.write_event(&encode_file_version_event(wall_time))?;
        writer.flush()?;
        Ok(writer)
    }

    /// Marks a restart whose first logged step is `step` (a run resumed from a checkpoint
    /// taken before it): TensorBoard drops the points of earlier files at `step` or later.
    ///
    /// # Errors
    ///
    /// Any I/O error from the write or the flush.
    pub fn restart_at(&mut self, step: u64) -> io::Result<()> {
        self.write_event(&encode_session_start_event(wall_time_now(), step))?;
        self.flush()
    }

    /// The event file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one scalar (stored as `f32`) under `tag` at `step`, timestamped now.
    ///
    /// # Errors
    ///
    /// Any I/O error from the buffered write.
    pub fn scalar(&mut self, tag: &str, value: f64, step: u64) -> io::Result<()> {
        self.scalars(step, &[(tag, value)])
    }

    /// Writes several scalars at `step` as one event, timestamped now. Does nothing for an
    /// empty slice.
    ///
    /// # Errors
    ///
    /// Any I/O error from the buffered write.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> io::Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        self.write_event(&encode_scalar_event(wall_time_now(), step, scalars))
    }

    /// Pushes buffered records to the file, where TensorBoard can read them.
    ///
    /// # Errors
    ///
    /// Any I/O error from the write.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Frames `event` as one TFRecord and writes it to the buffer.
    fn write_event(&mut self, event: &[u8]) -> io::Result<()> {
        self.record.clear();
        encode_record(&mut self.record, event);
        self.out.write_all(&self.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits TFRecord framing back into payloads, checking both checksums of every record.
    fn parse_records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        while !bytes.is_empty() {
            assert!(bytes.len() >= 12, "truncated header");
            let len_bytes = &bytes[..8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc32c(len_bytes), "length checksum");
            let data = &bytes[12..12 + len];
            let data_crc = u32::from_le_bytes(bytes[12 + len..16 + len].try_into().unwrap());
            assert_eq!(data_crc, masked_crc32c(data), "data checksum");
            records.push(data.to_vec());
            bytes = &bytes[16 + len..];
        }
        records
    }

    #[test]
    fn crc32c_matches_the_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn masked_crc32c_rotates_and_adds_the_delta() {
        let crc: u32 = 0xE306_9283;
        #[allow(clippy::manual_rotate, reason = "the formula as the TFRecord spec states it")]
        let expected = ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), expected);
        // Reference values from TensorBoard's own `masked_crc32c`
        // (tensorboard.compat.tensorflow_stub.pywrap_tensorflow).
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(&[0u8; 8]), 0x0798_0329);
    }

    #[test]
    fn varints_use_seven_bit_groups() {
        let enc = |v: u64| {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(enc(u64::MAX), max);
    }

    #[test]
    fn file_version_event_matches_hand_encoding() {
        let mut expected = vec![0x09]; // field 1 (wall_time), fixed64
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xf8, 0x3f]); // 1.5
        expected.extend_from_slice(&[0x1a, 13]); // field 3 (file_version), 13 bytes
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(encode_file_version_event(1.5), expected);
    }

    #[test]
    fn scalar_event_matches_hand_encoding() {
        // Value { tag: "a/b", simple_value: 0.25 } = 0a 03 'a' '/' 'b' 15 <0.25f32 LE>
        let value = [0x0a, 0x03, b'a', b'/', b'b', 0x15, 0x00, 0x00, 0x80, 0x3e];
        let mut expected = vec![0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]; // wall_time 1.5
        expected.extend_from_slice(&[0x10, 0xac, 0x02]); // field 2 (step), varint 300
        expected.extend_from_slice(&[0x2a, 12]); // field 5 (summary), 12 bytes
        expected.extend_from_slice(&[0x0a, 10]); // Summary.value, 10 bytes
        expected.extend_from_slice(&value);
        assert_eq!(encode_scalar_event(1.5, 300, &[("a/b", 0.25)]), expected);
    }

    #[test]
    fn session_start_event_matches_hand_encoding() {
        let got = encode_session_start_event(0.5, 300);
        let mut want = vec![0x09];
        want.extend_from_slice(&0.5f64.to_le_bytes());
        // step 300 = varint 0xac 0x02; field 7 (key 0x3a), length 2, status START.
        want.extend_from_slice(&[0x10, 0xac, 0x02, 0x3a, 0x02, 0x08, 0x01]);
        assert_eq!(got, want);
    }

    #[test]
    fn zero_step_is_omitted_but_zero_value_is_kept() {
        let enc = encode_scalar_event(0.0, 0, &[("x", 0.0)]);
        let mut expected = vec![0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[0x2a, 10, 0x0a, 8, 0x0a, 1, b'x', 0x15, 0, 0, 0, 0]);
        assert_eq!(enc, expected);
    }

    #[test]
    fn several_scalars_share_one_summary() {
        let one = encode_scalar_event(2.0, 7, &[("a", 1.0)]);
        let two = encode_scalar_event(2.0, 7, &[("a", 1.0), ("b", -1.0)]);
        // The second Value (10 bytes: key, len, 0a 01 'b' 15 <f32>) extends the summary.
        assert_eq!(two.len(), one.len() + 10);
        assert_eq!(&two[two.len() - 10..], [0x0a, 8, 0x0a, 1, b'b', 0x15, 0, 0, 0x80, 0xbf]);
    }

    #[test]
    fn records_round_trip_with_valid_checksums() {
        let payloads: [&[u8]; 3] = [b"", b"hello", &[0xff; 300]];
        let mut bytes = Vec::new();
        for p in payloads {
            encode_record(&mut bytes, p);
        }
        assert_eq!(bytes.len(), 16 * 3 + 5 + 300);
        let parsed = parse_records(&bytes);
        assert_eq!(parsed, payloads.map(<[u8]>::to_vec));
    }

    #[test]
    fn corrupted_record_fails_its_checksum() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, b"hello");
        bytes[13] ^= 1;
        let data = &bytes[12..17];
        let stored = u32::from_le_bytes(bytes[17..21].try_into().unwrap());
        assert_ne!(masked_crc32c(data), stored);
    }

    #[test]
    fn writer_writes_version_then_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("test");
        let mut tb = TensorBoardWriter::create(&run).unwrap();
        tb.scalar("train/policy_loss", 0.5, 1).unwrap();
        tb.scalars(2, &[("a", 1.0), ("b", 2.0)]).unwrap();
        tb.scalars(3, &[]).unwrap();
        tb.flush().unwrap();

        let name = tb.path().file_name().unwrap().to_str().unwrap().to_owned();
        let parts: Vec<&str> = name.strip_prefix("events.out.tfevents.").unwrap().split('.').collect();
        assert!(parts[0].parse::<u64>().unwrap() > 1_600_000_000, "{name}");
        assert_eq!(parts[parts.len() - 2], std::process::id().to_string(), "{name}");
        assert!(parts[parts.len() - 1].parse::<u64>().is_ok(), "{name}");
        assert_eq!(tb.path().parent(), Some(run.as_path()));

        let records = parse_records(&fs::read(tb.path()).unwrap());
        assert_eq!(records.len(), 3);
        let wall_time = |r: &[u8]| f64::from_le_bytes(r[1..9].try_into().unwrap());
        assert_eq!(records[0], encode_file_version_event(wall_time(&records[0])));
        assert_eq!(records[1], encode_scalar_event(wall_time(&records[1]), 1, &[("train/policy_loss", 0.5)]));
        assert_eq!(records[2], encode_scalar_event(wall_time(&records[2]), 2, &[("a", 1.0), ("b", 2.0)]));
    }

    #[test]
    fn two_writers_in_one_directory_get_distinct_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = TensorBoardWriter::create(dir.path()).unwrap();
        let b = TensorBoardWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
    }
}
