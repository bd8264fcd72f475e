//! A container's log as `kubectl logs` asks for it, read from the raw log file the process
//! appends to and the [`stamps`](super::stamps) saying when each part was written.
//!
//! Invariants:
//! - A line's time is the time of its first byte; `since` keeps lines whose time is at or
//!   after it, then `tail_lines` keeps the last of those, then `timestamps` prefixes each
//!   kept line with its RFC 3339 time and a space, then `limit_bytes` cuts the output
//!   (upstream's order).
//! - Following: after what is there, new bytes are sent as they are found (checked every
//!   [`FOLLOW_POLL`]); the stream ends once the container has stopped *and* the file is
//!   read to its end, so nothing written before the exit is lost. The stream is pulled, so
//!   a client going away stops the polling.
//! - A line cut by the end of what was read continues without a second prefix.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;

use super::stamps::Stamps;
use super::Shared;
use crate::runtime::{ByteStream, LogOptions, RuntimeError};

/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Most bytes read from the log per chunk sent while following.
const MAX_CHUNK: u64 = 64 * 1024;

/// Where a reader is in the log and in the current line.
struct Reader {
    shared: Arc<Shared>,
    id: String,
    log: PathBuf,
    stamps: Stamps,
    options: LogOptions,
    /// The next log byte to read.
    offset: u64,
    at_line_start: bool,
    /// Whether the line being read is sent (it passed `since`).
    keeping: bool,
    /// Bytes left under `limit_bytes`.
    budget: Option<u64>,
    done: bool,
}

/// The log stream of container `id`, whose raw log is `log`.
pub(super) fn stream(
    shared: Arc<Shared>,
    id: String,
    log: PathBuf,
    options: LogOptions,
) -> Result<ByteStream, RuntimeError> {
    let stamps = Stamps::open(&log);
    let budget = options.limit_bytes;
    let mut r =
        Reader { shared, id, log, stamps, options, offset: 0, at_line_start: true, keeping: true, budget, done: false };
    let first = r.initial()?;
    let first = (!first.is_empty()).then(|| Ok(Bytes::from(first)));
    let rest = futures::stream::unfold(r, |mut r| async move { r.next_chunk().await.map(|c| (c, r)) });
    Ok(Box::pin(futures::StreamExt::chain(futures::stream::iter(first), rest)))
}

fn read_from(log: &PathBuf, offset: u64, max: u64) -> Result<Vec<u8>, RuntimeError> {
    let mut file = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::Failed(format!("reading {}: {e}", log.display()))),
    };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.take(max).read_to_end(&mut bytes))
        .map_err(|e| RuntimeError::Failed(format!("reading {}: {e}", log.display())))?;
    Ok(bytes)
}

impl Reader {
    fn kept(&self, time: Timestamp) -> bool {
        self.options.since.is_none_or(|since| time >= since)
    }

    fn prefix(&self, out: &mut Vec<u8>, time: Timestamp) {
        if self.options.timestamps {
            out.extend_from_slice(format!("{time} ").as_bytes());
        }
    }

    /// What the log holds now, with since, tail, timestamps and the limit applied.
    fn initial(&mut self) -> Result<Vec<u8>, RuntimeError> {
        let content = read_from(&self.log, 0, u64::MAX)?;
        let mut lines = Vec::new();
        let mut start = 0;
        for piece in content.split_inclusive(|&b| b == b'\n') {
            let time = self.stamps.time_of(start as u64);
            lines.push((piece, time, self.kept(time)));
            start += piece.len();
        }
        self.offset = content.len() as u64;
        self.at_line_start = content.last().is_none_or(|&b| b == b'\n');
        self.keeping = lines.last().is_none_or(|&(_, _, kept)| kept);
        let mut kept: Vec<_> = lines.into_iter().filter(|&(_, _, kept)| kept).collect();
        if let Some(n) = self.options.tail_lines {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            kept.drain(..kept.len().saturating_sub(n));
            if n == 0 {
                // Nothing of the cut line may leak out while following.
                self.keeping = self.at_line_start;
            }
        }
        let mut out = Vec::new();
        for (piece, time, _) in kept {
            self.prefix(&mut out, time);
            out.extend_from_slice(piece);
        }
        Ok(self.limit(out))
    }

    /// New bytes read at `self.offset`, formatted.
    fn format(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = self.offset;
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start {
                let time = self.stamps.time_of(start);
                self.keeping = self.kept(time);
                if self.keeping {
                    self.prefix(&mut out, time);
                }
            }
            if self.keeping {
                out.extend_from_slice(piece);
            }
            self.at_line_start = piece.last() == Some(&b'\n');
            start += piece.len() as u64;
        }
        self.offset = start;
        out
    }

    /// Cut `out` to the bytes left under the limit; reaching it ends the stream.
    fn limit(&mut self, mut out: Vec<u8>) -> Vec<u8> {
        if let Some(budget) = &mut self.budget {
            out.truncate(usize::try_from(*budget).unwrap_or(usize::MAX));
            *budget -= out.len() as u64;
            self.done |= *budget == 0;
        }
        out
    }

    /// The next chunk while following; None at the end.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, RuntimeError>> {
        loop {
            if self.done || !self.options.follow {
                return None;
            }
            // Checked before reading: bytes written before the exit are read below.
            let stopped = match self.shared.has_stopped(&self.id) {
                Ok(stopped) => stopped,
                Err(e) => return Some(Err(e)),
            };
            let bytes = match read_from(&self.log, self.offset, MAX_CHUNK) {
                Ok(bytes) => bytes,
                Err(e) => return Some(Err(e)),
            };
            if !bytes.is_empty() {
                self.stamps.refresh();
                let out = self.format(&bytes);
                let out = self.limit(out);
                if !out.is_empty() {
                    return Some(Ok(Bytes::from(out)));
                }
                continue;
            }
            if stopped {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}
