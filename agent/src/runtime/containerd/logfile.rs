//! Container logs in the CRI log format, written by the agent from the task's fifos and
//! read back as `kubectl logs` asks.
//!
//! Invariants:
//! - Each record is one line `<RFC 3339 time> <stdout|stderr> <F|P> <content>\n`; `F`
//!   ends a line of output, `P` is part of a longer one (longer than [`MAX_RECORD`] or cut
//!   by the end of the stream). Reading gives the content back byte for byte, a newline
//!   after each `F` record; `timestamps` puts the record's time and a space before it.
//! - Records are appended whole under one lock by the stream's copier, so stdout and
//!   stderr interleave by record, never inside one.
//! - A copier opens its fifo blocking in a blocking thread (it returns when the shim opens
//!   the write end) and ends on end of file, when the container's output is closed; a
//!   copier waiting for a shim that never comes is released by [`unblock`].
//! - While a container's output is being copied, a follower keeps reading; once no copier
//!   is left and it has read all there is, the follow ends.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use tokio::io::AsyncReadExt;

use crate::runtime::{ByteStream, LogOptions, RuntimeError};

/// Longest content of one record; longer lines are split into `P` records (CRI's 16 KiB).
pub const MAX_RECORD: usize = 16 * 1024;
/// How often a follower looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// One record of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: Timestamp,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a [u8],
}

/// `record` as a line of the file.
pub fn format(time: Timestamp, stream: &str, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut line = format!("{time} {stream} {} ", if partial { 'P' } else { 'F' }).into_bytes();
    line.extend_from_slice(content);
    line.push(b'\n');
    line
}

/// A line of the file (without its newline), if it is a record.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record { time, stream, partial, content: parts.next().unwrap_or_default() })
}

/// The output for the complete lines of `bytes` under `options` (with `tail` applied
/// when `with_tail`), and how many bytes of `bytes` were complete lines.
pub fn render(bytes: &[u8], options: &LogOptions, with_tail: bool) -> (Vec<u8>, usize) {
    let consumed = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut records: Vec<Record> = bytes[..consumed]
        .split(|b| *b == b'\n')
        .filter_map(parse)
        .filter(|r| options.since.is_none_or(|since| r.time >= since))
        .collect();
    if let (true, Some(tail)) = (with_tail, options.tail_lines) {
        let keep = usize::try_from(tail).unwrap_or(usize::MAX);
        records.drain(..records.len().saturating_sub(keep));
    }
    let mut out = Vec::new();
    for r in records {
        if options.timestamps {
            out.extend_from_slice(format!("{} ", r.time).as_bytes());
        }
        out.extend_from_slice(r.content);
        if !r.partial {
            out.push(b'\n');
        }
    }
    (out, consumed)
}

/// The containers whose output is being copied, with their number of live copiers.
#[derive(Default)]
pub struct Copiers(Mutex<HashMap<String, usize>>);

impl Copiers {
    pub fn is_active(&self, id: &str) -> bool {
        self.0.lock().expect("copiers lock").contains_key(id)
    }

    /// Wait until container `id`'s copiers have reached the end of its output (its process
    /// exited and the fifos drained), for at most `limit`.
    pub async fn drained(&self, id: &str, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.is_active(id) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn enter(&self, id: &str) {
        *self.0.lock().expect("copiers lock").entry(id.to_string()).or_default() += 1;
    }

    fn leave(&self, id: &str) {
        let mut map = self.0.lock().expect("copiers lock");
        if let Some(n) = map.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                map.remove(id);
            }
        }
    }
}

/// Copy fifo `fifo` (stream `stream` of container `id`) into the log `log` until its end.
pub fn spawn_copier(copiers: &Arc<Copiers>, id: &str, fifo: PathBuf, stream: &'static str, log: Arc<Mutex<File>>) {
    copiers.enter(id);
    let (copiers, id) = (copiers.clone(), id.to_string());
    tokio::spawn(async move {
        if let Err(e) = copy(&fifo, stream, &log).await {
            tracing::warn!(container = id, stream, error = %e, "copying a container's output failed");
        }
        copiers.leave(&id);
    });
}

async fn copy(fifo: &Path, stream: &str, log: &Mutex<File>) -> std::io::Result<()> {
    let path = fifo.to_path_buf();
    let file = tokio::task::spawn_blocking(move || File::open(path)).await.map_err(std::io::Error::other)??;
    let mut pipe = tokio::net::unix::pipe::Receiver::from_file(file)?;
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|b| *b == b'\n') {
            write_records(log, stream, &pending[start..start + i], false)?;
            start += i + 1;
        }
        pending.drain(..start);
        if pending.len() >= MAX_RECORD {
            write_records(log, stream, &std::mem::take(&mut pending), true)?;
        }
    }
    if !pending.is_empty() {
        write_records(log, stream, &pending, true)?;
    }
    Ok(())
}

/// Append `content` as records (several if it is longer than [`MAX_RECORD`]).
fn write_records(log: &Mutex<File>, stream: &str, content: &[u8], partial: bool) -> std::io::Result<()> {
    let pieces: Vec<&[u8]> = if content.is_empty() { vec![content] } else { content.chunks(MAX_RECORD).collect() };
    let last = pieces.len() - 1;
    let mut file = log.lock().expect("log lock");
    for (i, piece) in pieces.into_iter().enumerate() {
        file.write_all(&format(Timestamp::now(), stream, partial || i < last, piece))?;
    }
    Ok(())
}

/// Open (create) the log file for appending.
pub fn open_log(path: &Path) -> Result<Arc<Mutex<File>>, RuntimeError> {
    let file = OpenOptions::new().create(true).append(true).open(path);
    let file = file.map_err(|e| RuntimeError::Failed(format!("opening {}: {e}", path.display())))?;
    Ok(Arc::new(Mutex::new(file)))
}

/// Release a copier blocked opening `fifo` by opening and closing its write end.
pub fn unblock(fifo: &Path) {
    let _ = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo);
}

/// Make a fifo at `path` (an existing one is kept).
pub fn mkfifo(path: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    let err = std::io::Error::last_os_error();
    if rc != 0 && err.kind() != std::io::ErrorKind::AlreadyExists {
        return Err(RuntimeError::Failed(format!("mkfifo {}: {err}", path.display())));
    }
    Ok(())
}

/// The log at `path` as `options` ask; following while `copiers` copy container `id`.
pub async fn stream(
    path: PathBuf,
    options: LogOptions,
    copiers: Arc<Copiers>,
    id: String,
) -> Result<ByteStream, RuntimeError> {
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(RuntimeError::Failed(format!("reading {}: {e}", path.display()))),
    };
    let (first, consumed) = render(&bytes, &options, true);
    let mut limit = Limit(options.limit_bytes);
    let first = limit.take(first);
    if !options.follow || limit.spent() {
        return Ok(Box::pin(futures::stream::iter([Ok(Bytes::from(first))])));
    }
    let follower = Follower { path, options, copiers, id, offset: consumed as u64, limit };
    let rest = futures::stream::unfold(follower, |mut f| async move { f.next().await.map(|chunk| (chunk, f)) });
    Ok(Box::pin(futures::stream::iter([Ok(Bytes::from(first))]).chain(rest)))
}

/// What is left of `limit_bytes`.
struct Limit(Option<u64>);

impl Limit {
    fn take(&mut self, mut out: Vec<u8>) -> Vec<u8> {
        if let Some(left) = &mut self.0 {
            out.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= out.len() as u64;
        }
        out
    }

    fn spent(&self) -> bool {
        self.0 == Some(0)
    }
}

struct Follower {
    path: PathBuf,
    options: LogOptions,
    copiers: Arc<Copiers>,
    id: String,
    offset: u64,
    limit: Limit,
}

impl Follower {
    /// The next non-empty chunk, or None at the end.
    async fn next(&mut self) -> Option<Result<Bytes, RuntimeError>> {
        while !self.limit.spent() {
            // Checked before reading, so output written before the copier ended is read.
            let writing = self.copiers.is_active(&self.id);
            let new = match self.read_new().await {
                Ok(new) => new,
                Err(e) => return Some(Err(e)),
            };
            let (out, consumed) = render(&new, &self.options, false);
            self.offset += consumed as u64;
            let out = self.limit.take(out);
            if !out.is_empty() {
                return Some(Ok(Bytes::from(out)));
            }
            if !writing {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
        None
    }

    async fn read_new(&self) -> Result<Vec<u8>, RuntimeError> {
        use tokio::io::AsyncSeekExt;
        let failed = |e: std::io::Error| RuntimeError::Failed(format!("reading {}: {e}", self.path.display()));
        let mut file = tokio::fs::File::open(&self.path).await.map_err(failed)?;
        file.seek(std::io::SeekFrom::Start(self.offset)).await.map_err(failed)?;
        let mut new = Vec::new();
        file.read_to_end(&mut new).await.map_err(failed)?;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn log() -> Vec<u8> {
        let mut bytes = format(at(0), "stdout", false, b"one");
        bytes.extend(format(at(1), "stderr", false, b"two"));
        bytes.extend(format(at(2), "stdout", true, b"thr"));
        bytes.extend(format(at(2), "stdout", false, b"ee"));
        bytes.extend(b"2023-11-14T22:13:23Z stdout F unfinished");
        bytes
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let line = format(at(0), "stdout", true, b"a b  c");
        let r = parse(&line[..line.len() - 1]).unwrap();
        assert_eq!((r.time, r.stream, r.partial, r.content), (at(0), "stdout", true, &b"a b  c"[..]));
        assert_eq!(parse(b"garbage"), None);
    }

    #[test]
    fn the_content_comes_back_with_partial_records_joined() {
        let (out, consumed) = render(&log(), &LogOptions::default(), true);
        assert_eq!(out, b"one\ntwo\nthree\n");
        assert_eq!(&log()[consumed..], b"2023-11-14T22:13:23Z stdout F unfinished");
    }

    #[test]
    fn tail_since_and_timestamps_select_and_decorate() {
        let tail = LogOptions { tail_lines: Some(2), ..LogOptions::default() };
        assert_eq!(render(&log(), &tail, true).0, b"three\n");
        assert_eq!(render(&log(), &tail, false).0, b"one\ntwo\nthree\n");
        let since = LogOptions { since: Some(at(1)), ..LogOptions::default() };
        assert_eq!(render(&log(), &since, true).0, b"two\nthree\n");
        let stamped = LogOptions { timestamps: true, tail_lines: Some(3), ..LogOptions::default() };
        let expected = format!("{} two\n{} thr{} ee\n", at(1), at(2), at(2));
        assert_eq!(String::from_utf8(render(&log(), &stamped, true).0).unwrap(), expected);
    }

    #[test]
    fn the_byte_limit_cuts_the_output() {
        let mut limit = Limit(Some(5));
        assert_eq!(limit.take(b"one\ntwo\n".to_vec()), b"one\nt");
        assert!(limit.spent());
        assert_eq!(Limit(None).take(b"abc".to_vec()), b"abc");
    }
}
