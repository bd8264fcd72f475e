//! Conformance checks of logs (tail, since, timestamps, limit, follow) and exec (output,
//! exit code, stdin, terminal and resize).

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use tokio::io::AsyncWriteExt;

use super::{exited, log_contains, run, shell, wait_for, Subject, DEADLINE};
use flotilla_agent::runtime::{ByteStream, ExecOutput, ExecRequest, ExecSession, LogOptions, Runtime};

async fn read_all(stream: ByteStream) -> String {
    let chunks: Vec<Bytes> = stream.map(|c| c.expect("log chunk")).collect().await;
    String::from_utf8(chunks.concat()).expect("utf-8 log")
}

async fn log_with(rt: &dyn Runtime, id: &str, options: LogOptions) -> String {
    read_all(rt.log_stream(id, &options).await.unwrap()).await
}

/// Tail, since (sub-second), timestamps and limit_bytes on a finished log.
pub async fn logs_with_options(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let id = run(rt, &shell(s, uid, "app", "echo one; sleep 0.3; echo two; echo three; sleep 0.3; echo four")).await;
    assert_eq!(exited(rt, &id).await.0, 0);
    assert_eq!(log_with(rt, &id, LogOptions::default()).await, "one\ntwo\nthree\nfour\n");
    let tail = LogOptions { tail_lines: Some(2), ..LogOptions::default() };
    assert_eq!(log_with(rt, &id, tail).await, "three\nfour\n");
    let limited = LogOptions { limit_bytes: Some(6), ..LogOptions::default() };
    assert_eq!(log_with(rt, &id, limited).await, "one\ntw");

    let stamped = log_with(rt, &id, LogOptions { timestamps: true, ..LogOptions::default() }).await;
    let lines: Vec<(Timestamp, &str)> = stamped
        .lines()
        .map(|line| {
            let (time, text) = line.split_once(' ').expect("`<time> <text>`");
            (time.parse().unwrap_or_else(|e| panic!("RFC 3339 time in {line:?}: {e}")), text)
        })
        .collect();
    assert_eq!(lines.iter().map(|l| l.1).collect::<Vec<_>>(), ["one", "two", "three", "four"]);
    let since = lines[1].0;
    assert!(lines[0].0 < since, "a 0.3 s pause lies between one and two: {stamped}");
    let expected: String = lines.iter().filter(|l| l.0 >= since).map(|l| format!("{}\n", l.1)).collect();
    let from_two = LogOptions { since: Some(since), ..LogOptions::default() };
    assert_eq!(log_with(rt, &id, from_two).await, expected, "since is exact to the nanosecond");
}

/// A followed log delivers output written after it was opened, and ends with the container.
pub async fn logs_follow(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second";
    let id = run(rt, &shell(s, uid, "app", script)).await;
    log_contains(rt, &id, "first").await;
    let mut stream = rt.log_stream(&id, &LogOptions { follow: true, ..LogOptions::default() }).await.unwrap();
    let touched = rt.exec(&id, &["touch".to_string(), "/tmp/go".to_string()]).await.unwrap();
    assert_eq!(touched.0, 0);
    let whole = tokio::time::timeout(DEADLINE, async {
        let mut seen = String::new();
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        seen
    });
    let whole = whole.await.expect("the followed log ends when the container exits");
    assert_eq!(whole, "first\nsecond\n");
}

/// Stdout and stderr of an exec arrive apart; its exit code is the command's.
pub async fn exec_output_and_exit_code(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let id = run(rt, &shell(s, uid, "app", "exec sleep 1000")).await;
    let command = ["sh", "-c", "echo out; echo err >&2; exit 7"].map(String::from).to_vec();
    let session = rt.exec_stream(&id, &ExecRequest { command, ..ExecRequest::default() }).await.unwrap();
    assert!(session.stdin.is_none(), "no stdin unless asked for");
    let (stdout, stderr, exec_id) = drain(session).await;
    assert_eq!((stdout.as_str(), stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(rt.exec_exit_code(&exec_id).await.unwrap(), 7);
    let (code, output) = rt.exec(&id, &["sh".to_string(), "-c".to_string(), "echo hi".to_string()]).await.unwrap();
    assert_eq!((code, output.as_slice()), (0, b"hi\n".as_slice()));
}

/// An exec's stdin reaches the command; closing it ends the input.
pub async fn exec_stdin(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let id = run(rt, &shell(s, uid, "app", "exec sleep 1000")).await;
    let request =
        ExecRequest { command: vec!["sh".into(), "-c".into(), "cat; echo done".into()], stdin: true, tty: false };
    let mut session = rt.exec_stream(&id, &request).await.unwrap();
    let mut stdin = session.stdin.take().expect("stdin asked for");
    stdin.write_all(b"hello from stdin\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let (stdout, _, exec_id) = tokio::time::timeout(DEADLINE, drain(session)).await.expect("cat ends at EOF");
    assert_eq!(stdout, "hello from stdin\ndone\n");
    assert_eq!(rt.exec_exit_code(&exec_id).await.unwrap(), 0);
}

/// With a terminal, the command sees a tty whose size follows `exec_resize`.
pub async fn exec_tty_and_resize(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let id = run(rt, &shell(s, uid, "app", "exec sleep 1000")).await;
    let request = ExecRequest { command: vec!["sh".into()], stdin: true, tty: true };
    let mut session = rt.exec_stream(&id, &request).await.unwrap();
    let exec_id = session.id.clone();
    // The size can be set only once the exec runs; Docker reports it running shortly.
    wait_for("the exec to accept a resize", || async { rt.exec_resize(&exec_id, 100, 40).await.ok() }).await;
    let mut stdin = session.stdin.take().expect("stdin asked for");
    stdin.write_all(b"tty; stty size; exit 3\n").await.unwrap();
    let (output, stderr, _) = tokio::time::timeout(DEADLINE, drain(session)).await.expect("the shell exits");
    assert!(stderr.is_empty(), "a terminal has one stream: {stderr:?}");
    assert!(output.contains("/dev/pts/"), "a terminal: {output:?}");
    assert!(output.contains("40 100"), "rows and columns as resized: {output:?}");
    assert_eq!(rt.exec_exit_code(&exec_id).await.unwrap(), 3);
}

/// Stdout, stderr and the exec's id, once its output has ended.
async fn drain(session: ExecSession) -> (String, String, String) {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut output = session.output;
    while let Some(chunk) = output.next().await {
        match chunk.expect("exec output") {
            ExecOutput::Stdout(b) => stdout.extend_from_slice(&b),
            ExecOutput::Stderr(b) => stderr.extend_from_slice(&b),
        }
    }
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).replace("\r\n", "\n");
    (text(stdout), text(stderr), session.id)
}
