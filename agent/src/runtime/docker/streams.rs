//! Logs and exec through the Docker Engine API.
//!
//! Logs: Docker is always asked for timestamps, because its `since` has whole-second
//! precision. Each log entry arrives as `<RFC 3339 nano time> <text>`; entries before
//! `since` are dropped here, and the time prefix is removed unless the caller asked for
//! it. `limit_bytes` is applied last, on what the caller receives (the stream ends
//! exactly at the limit, as the kubelet's does). `tail` is Docker's: the last N entries,
//! before `since` filters them, which is also the kubelet's order.
//!
//! Exec: an exec is created attached (never detached) and started over an upgraded
//! connection; its output ends when the command exits. Without a TTY, Docker keeps stdout
//! and stderr apart; with one, the terminal's single stream is reported as stdout. Closing
//! (shutting down) the stdin writer half-closes the connection, which the command sees as
//! end of input.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::LogsOptionsBuilder;
use bollard::Docker;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;

use super::error;
use crate::runtime::{ByteStream, ExecOutput, ExecRequest, ExecSession, LogOptions, RuntimeError};

/// How long an exec whose output has ended may still be reported running by Docker
/// before its exit code is given up on (Docker records the exit a moment after the
/// stream closes; far shorter than this in practice).
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);
/// How often the exit code of such an exec is asked for again.
const EXEC_EXIT_POLL: Duration = Duration::from_millis(20);

/// Container `id`'s log as `options` ask for it.
pub(super) fn log_stream(docker: &Docker, id: &str, options: &LogOptions) -> ByteStream {
    let since_secs = options.since.map(|t| i32::try_from(t.as_second()).unwrap_or(i32::MAX)).unwrap_or(0);
    let tail = options.tail_lines.map_or_else(|| "all".to_string(), |n| n.to_string());
    let query = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(options.follow)
        .timestamps(true)
        .since(since_secs)
        .tail(&tail)
        .build();
    let (since, timestamps) = (options.since, options.timestamps);
    let id = id.to_string();
    let entries = docker.logs(&id, Some(query)).filter_map(move |item| {
        let shaped = match item {
            Ok(out) => shape_entry(&log_bytes(out), since, timestamps).map(Ok),
            Err(e) => Some(Err(error::classify(e, "container", &id))),
        };
        futures::future::ready(shaped)
    });
    match options.limit_bytes {
        None => Box::pin(entries),
        Some(limit) => Box::pin(limit_bytes(entries, limit)),
    }
}

fn log_bytes(out: LogOutput) -> Bytes {
    match out {
        LogOutput::StdOut { message }
        | LogOutput::StdErr { message }
        | LogOutput::StdIn { message }
        | LogOutput::Console { message } => message,
    }
}

/// One log entry (or several lines, each with its own time prefix) shaped for the
/// caller: lines before `since` dropped, prefixes kept only if `timestamps`.
fn shape_entry(entry: &[u8], since: Option<Timestamp>, timestamps: bool) -> Option<Bytes> {
    let mut out = BytesMut::new();
    for line in entry.split_inclusive(|b| *b == b'\n') {
        let Some(space) = line.iter().position(|b| *b == b' ') else {
            out.extend_from_slice(line);
            continue;
        };
        let time = std::str::from_utf8(&line[..space]).ok().and_then(|t| t.parse::<Timestamp>().ok());
        let Some(time) = time else {
            out.extend_from_slice(line);
            continue;
        };
        if since.is_some_and(|since| time < since) {
            continue;
        }
        out.extend_from_slice(if timestamps { line } else { &line[space + 1..] });
    }
    (!out.is_empty()).then(|| out.freeze())
}

/// `stream` cut off after `limit` bytes (mid-chunk if need be). It ends as soon as the
/// limit is reached, without waiting for more output (a followed log may be idle).
fn limit_bytes(
    stream: impl futures::Stream<Item = Result<Bytes, RuntimeError>> + Unpin,
    limit: u64,
) -> impl futures::Stream<Item = Result<Bytes, RuntimeError>> {
    futures::stream::unfold((stream, limit), |(mut stream, left)| async move {
        if left == 0 {
            return None;
        }
        match stream.next().await? {
            Ok(mut bytes) => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                Some((Ok(bytes.split_to(take)), (stream, left - take as u64)))
            }
            Err(e) => Some((Err(e), (stream, left))),
        }
    })
}

/// Start `request` in container `id`, attached.
pub(super) async fn exec_stream(docker: &Docker, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
    let create = CreateExecOptions {
        cmd: Some(request.command.clone()),
        attach_stdin: Some(request.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(request.tty),
        ..CreateExecOptions::default()
    };
    let exec = docker.create_exec(id, create).await.map_err(|e| error::classify(e, "container", id))?;
    let start = StartExecOptions { detach: false, tty: request.tty, output_capacity: None };
    let started = docker.start_exec(&exec.id, Some(start)).await.map_err(|e| error::classify(e, "exec", &exec.id))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(RuntimeError::Failed(format!("exec {} started detached", exec.id)));
    };
    let exec_id = exec.id.clone();
    let output = output.map(move |item| match item {
        Ok(LogOutput::StdErr { message }) => Ok(ExecOutput::Stderr(message)),
        Ok(out) => Ok(ExecOutput::Stdout(log_bytes(out))),
        Err(e) => Err(error::classify(e, "exec", &exec_id)),
    });
    Ok(ExecSession { id: exec.id, stdin: request.stdin.then_some(input), output: Box::pin(output) })
}

/// The exit code of exec `exec_id`, waiting briefly for Docker to record it.
pub(super) async fn exec_exit_code(docker: &Docker, exec_id: &str) -> Result<i32, RuntimeError> {
    let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
    loop {
        let inspect = docker.inspect_exec(exec_id).await.map_err(|e| error::classify(e, "exec", exec_id))?;
        if let (Some(false), Some(code)) = (inspect.running, inspect.exit_code) {
            return Ok(i32::try_from(code).unwrap_or(i32::MAX));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RuntimeError::Failed(format!("exec {exec_id} is still running after its output ended")));
        }
        tokio::time::sleep(EXEC_EXIT_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2024-05-01T10:00:00.5Z";
    const T2: &str = "2024-05-01T10:00:01.25Z";

    #[test]
    fn time_prefixes_are_kept_only_when_asked_for() {
        let entry = format!("{T1} hello\n");
        assert_eq!(shape_entry(entry.as_bytes(), None, false).unwrap(), "hello\n");
        assert_eq!(shape_entry(entry.as_bytes(), None, true).unwrap(), entry.as_str());
    }

    #[test]
    fn since_drops_earlier_lines_with_sub_second_precision() {
        let entry = format!("{T1} old\n{T2} new\n");
        let since: Timestamp = "2024-05-01T10:00:01Z".parse().unwrap();
        assert_eq!(shape_entry(entry.as_bytes(), Some(since), false).unwrap(), "new\n");
        let later: Timestamp = "2024-05-01T10:00:02Z".parse().unwrap();
        assert_eq!(shape_entry(entry.as_bytes(), Some(later), false), None);
    }

    #[test]
    fn text_without_a_time_prefix_passes_unchanged() {
        assert_eq!(shape_entry(b"no-prefix here", None, false).unwrap(), "no-prefix here");
        assert_eq!(shape_entry(format!("{T1} partial").as_bytes(), None, false).unwrap(), "partial");
    }

    #[tokio::test]
    async fn limit_bytes_cuts_mid_chunk_and_ends_the_stream() {
        let chunks = futures::stream::iter(["abc", "defg", "h"].map(|s| Ok(Bytes::from(s))));
        let got: Vec<Bytes> = limit_bytes(chunks, 5).map(Result::unwrap).collect().await;
        assert_eq!(got, vec![Bytes::from("abc"), Bytes::from("de")]);
    }
}
