//! When each part of a container's log was written: `logs/<id>.stamps`, next to the raw
//! log the process appends to directly (it must survive the agent, so no pipe through the
//! agent). `timestamps` and `since*` of `kubectl logs` read it.
//!
//! Invariants:
//! - One text line per observation, `<start> <end> <unix nanos>`: log bytes `[start, end)`
//!   were first seen at that time. Entries are appended in order, never rewritten, and
//!   cover the log without gaps from offset 0 to the last `end`.
//! - The times are when the agent's waiter noticed the bytes, at most [`STAMP_INTERVAL`]
//!   late. Bytes no entry covers (written since the last observation, or by an adopted
//!   process after an agent restart, which nothing stamps) count as written "now".

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// How often a running container's log is checked for new bytes to stamp: the precision
/// of `kubectl logs --timestamps` here, and one `stat` per running container per tick.
pub const STAMP_INTERVAL: Duration = Duration::from_millis(100);

/// The stamps file of the log at `log`.
pub fn path(log: &Path) -> PathBuf {
    log.with_extension("stamps")
}

/// Appends stamps for one container's log as it grows.
pub struct Stamper {
    log: PathBuf,
    stamped: u64,
}

impl Stamper {
    pub fn new(log: PathBuf) -> Self {
        Self { log, stamped: 0 }
    }

    /// Stamp whatever the log gained since the last call.
    pub fn observe(&mut self) {
        let Ok(len) = std::fs::metadata(&self.log).map(|m| m.len()) else { return };
        if len <= self.stamped {
            return;
        }
        let line = format!("{} {len} {}\n", self.stamped, Timestamp::now().as_nanosecond());
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path(&self.log))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => self.stamped = len,
            Err(e) => tracing::debug!(log = %self.log.display(), error = %e, "cannot stamp a container's log"),
        }
    }
}

/// A log's stamps as read so far; [`Stamps::refresh`] reads entries appended since.
#[derive(Debug, Default)]
pub struct Stamps {
    path: PathBuf,
    read: u64,
    /// `(start, end, time)`, in log order.
    entries: Vec<(u64, u64, Timestamp)>,
}

impl Stamps {
    pub fn open(log: &Path) -> Self {
        let mut s = Self { path: path(log), ..Self::default() };
        s.refresh();
        s
    }

    /// Read entries appended since the last call (a torn last line waits for the next).
    pub fn refresh(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.read)).and_then(|_| file.read_to_string(&mut text)).is_err() {
            return;
        }
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        self.entries.extend(text[..complete].lines().filter_map(parse));
        self.read += complete as u64;
    }

    /// When the byte at `offset` was written.
    pub fn time_of(&self, offset: u64) -> Timestamp {
        let i = self.entries.partition_point(|&(start, _, _)| start <= offset);
        match i.checked_sub(1).map(|i| self.entries[i]) {
            Some((_, end, time)) if offset < end => time,
            _ => Timestamp::now(),
        }
    }
}

fn parse(line: &str) -> Option<(u64, u64, Timestamp)> {
    let mut fields = line.split(' ');
    let (start, end, nanos) =
        (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some((start, end, Timestamp::from_nanosecond(nanos).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_get_the_time_they_were_first_seen() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        let mut stamper = Stamper::new(log.clone());
        stamper.observe(); // no log yet: nothing to stamp
        std::fs::write(&log, "one\n").unwrap();
        let before = Timestamp::now();
        stamper.observe();
        let mut stamps = Stamps::open(&log);
        let first = stamps.time_of(0);
        assert!(first >= before && first <= Timestamp::now());
        assert_eq!(stamps.time_of(3), first);
        std::thread::sleep(Duration::from_millis(5));
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"two\n").unwrap();
        stamper.observe();
        stamps.refresh();
        assert!(stamps.time_of(4) > first, "the second line has its own, later time");
        let unstamped = stamps.time_of(100);
        assert!(unstamped >= stamps.time_of(4), "bytes beyond the stamps are 'now'");
    }
}
