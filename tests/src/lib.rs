//! Harness for end-to-end tests: runs `flotilla up` as a child process, reads its
//! `cluster.json`, and drives the cluster with the real `etcdctl`.
//!
//! The binary is found next to the test executable (`target/<profile>/flotilla`), or at
//! `$FLOTILLA_BIN`; the test command builds it first (see the README).

pub mod chromium;
pub mod docker;
pub mod kube;
pub mod secure;
pub mod solo;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;

/// One entry of `cluster.json`, parsed here independently of the binary's own type on
/// purpose: the file is the interface tests and operators rely on, so the tests read it
/// the way an outside tool would.
#[derive(Clone, Debug, Deserialize)]
pub struct Replica {
    pub name: String,
    pub pid: u32,
    pub argv: Vec<String>,
    pub client_url: String,
    pub peer_url: String,
    #[serde(default)]
    pub api_url: String,
    pub data_dir: PathBuf,
}

/// One node agent of `cluster.json` (`name` is its Node's name).
#[derive(Clone, Debug, Deserialize)]
pub struct AgentProc {
    pub name: String,
    pub pid: u32,
    pub argv: Vec<String>,
}

/// The load balancer of `cluster.json` (`url` is what clients use).
#[derive(Clone, Debug, Deserialize)]
pub struct LbProc {
    pub pid: u32,
    pub argv: Vec<String>,
    pub url: String,
}

/// `cluster.json`'s `"tls"`: the cluster's CA and the admin's certificate.
#[derive(Clone, Debug, Deserialize)]
pub struct TlsFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
struct ClusterFile {
    replicas: Vec<Replica>,
    #[serde(default)]
    agents: Vec<AgentProc>,
    #[serde(default)]
    lb: Option<LbProc>,
    #[serde(default)]
    tls: Option<TlsFiles>,
}

/// The `flotilla` binary under test.
/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd` started with its stdout discarded and its stderr written to `log`.
pub fn spawn_logged(mut cmd: Command, log: &Path) -> Proc {
    let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    Proc(cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}")))
}

pub fn flotilla_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOTILLA_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("flotilla");
    assert!(bin.exists(), "{} not built: run `cargo build --bin flotilla` first (or set FLOTILLA_BIN)", bin.display());
    bin
}

/// A loopback port free right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// `flotilla status --endpoints <endpoints> -o json`: its exit code (2: no leader) and the
/// report, or `None` when it printed none.
pub fn flotilla_status(endpoints: &str) -> Option<(i32, serde_json::Value)> {
    let out = Command::new(flotilla_bin())
        .args(["status", "--endpoints", endpoints, "-o", "json"])
        .output()
        .expect("flotilla status runs");
    let report = serde_json::from_slice(&out.stdout).ok()?;
    Some((out.status.code()?, report))
}

/// Fail the test unless `etcdctl` (Debian package etcd-client) is installed; the test
/// command installs it, so a missing one is a broken set-up, not a reason to skip.
pub fn require_etcdctl() {
    let ok = Command::new("etcdctl").arg("version").env("ETCDCTL_API", "3").output().is_ok_and(|o| o.status.success());
    assert!(ok, "etcdctl is not installed: apt-get install etcd-client (scripts/test.sh does this)");
}

/// A cluster started by `flotilla up`; stopped (SIGTERM to `up`) on drop.
pub struct UpCluster {
    pub dir: tempfile::TempDir,
    pub replicas: Vec<Replica>,
    pub agents: Vec<AgentProc>,
    pub lb: Option<LbProc>,
    /// Absent for `--insecure-plaintext` clusters.
    pub tls: Option<TlsFiles>,
    up: Child,
    /// Replicas restarted by the test, which `up` does not own.
    restarted: Vec<Child>,
}

/// How long `flotilla up` may take to report a ready cluster.
const UP_TIMEOUT: Duration = Duration::from_secs(90);

impl UpCluster {
    pub fn start(replicas: usize) -> anyhow::Result<Self> {
        Self::start_with(replicas, &[])
    }

    /// `flotilla up` with extra flags, e.g. `["--agents", "2", "--agent-runtime", "docker"]`,
    /// and `--no-demo`: a test's pods are the only ones. Plain HTTP (`--insecure-plaintext`):
    /// these tests drive the cluster with etcdctl and plain HTTP clients; `up_tls.rs` and
    /// `up_demo.rs` cover up's TLS default.
    pub fn start_with(replicas: usize, flags: &[&str]) -> anyhow::Result<Self> {
        Self::start_exactly(replicas, &[flags, &["--no-demo", "--insecure-plaintext"]].concat())
    }

    /// `flotilla up` with these flags and no others (with agents, up applies its demo; the
    /// cluster is TLS unless `--insecure-plaintext` is among them).
    pub fn start_exactly(replicas: usize, flags: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut up = Command::new(flotilla_bin())
            .args(["up", "--dir"])
            .arg(dir.path())
            .args(["--replicas", &replicas.to_string()])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning flotilla up")?;
        // `up` prints its next steps once cluster.json is written.
        let stdout = up.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + UP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("replicas ready") => break,
                Ok(_) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = up.wait()?;
                    bail!("flotilla up exited ({status}) before reporting a ready cluster (its error is above)");
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = up.kill();
                    bail!("flotilla up did not report a ready cluster within {UP_TIMEOUT:?}");
                }
            }
        }
        let raw = std::fs::read(dir.path().join("cluster.json")).context("cluster.json")?;
        let file: ClusterFile = serde_json::from_slice(&raw)?;
        let (replicas, agents, lb, tls) = (file.replicas, file.agents, file.lb, file.tls);
        Ok(Self { dir, replicas, agents, lb, tls, up, restarted: Vec::new() })
    }

    /// Index in `replicas` of the Raft leader, as `etcdctl endpoint status` reports it once
    /// the replicas agree (waits up to 30 s; replicas that do not answer are skipped).
    pub fn leader(&self) -> usize {
        wait_for(Duration::from_secs(30), "an agreed leader", || {
            let out = etcdctl(&self.endpoints(), &["endpoint", "status", "-w", "json"], None).ok()?;
            let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
            let leader = all.iter().find(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"])?;
            let endpoint = leader["Endpoint"].as_str()?;
            self.replicas.iter().position(|r| r.client_url == endpoint)
        })
    }

    pub fn endpoints(&self) -> String {
        self.replicas.iter().map(|r| r.client_url.as_str()).collect::<Vec<_>>().join(",")
    }

    /// `kill -9` one replica.
    pub fn kill9(&self, i: usize) {
        // SAFETY: kill(2) on a pid from cluster.json; no memory effects.
        unsafe { libc::kill(self.replicas[i].pid as libc::pid_t, libc::SIGKILL) };
    }

    /// Restart a replica with its recorded argv.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let (name, argv) = (self.replicas[i].name.clone(), self.replicas[i].argv.clone());
        self.replicas[i].pid = self.respawn(&name, &argv)?;
        Ok(())
    }

    /// Start `argv` again, logging to `<name>.restart.log`; the new pid. The process is
    /// this cluster's to stop.
    fn respawn(&mut self, name: &str, argv: &[String]) -> anyhow::Result<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.restart.log")))?;
        let child = Command::new(&argv[0]).args(&argv[1..]).stdout(log.try_clone()?).stderr(log).spawn()?;
        let pid = child.id();
        self.restarted.push(child);
        Ok(pid)
    }

    /// `kill -9` agent `name` (its Node's name); returns its index in `agents`.
    pub fn kill9_agent(&self, name: &str) -> usize {
        let i = self.agents.iter().position(|a| a.name == name).unwrap_or_else(|| panic!("no agent {name}"));
        // SAFETY: kill(2) on a pid from cluster.json; no memory effects.
        unsafe { libc::kill(self.agents[i].pid as libc::pid_t, libc::SIGKILL) };
        i
    }

    /// Restart agent `i` with its recorded argv.
    pub fn restart_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let (name, argv) = (self.agents[i].name.clone(), self.agents[i].argv.clone());
        self.agents[i].pid = self.respawn(&name, &argv)?;
        Ok(())
    }
}

/// How long a restarted process gets to stop after SIGTERM (an agent removes its rules).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Lines of each process's log a failing test prints.
const FAILURE_LOG_LINES: usize = 60;

impl UpCluster {
    /// The last [`FAILURE_LOG_LINES`] warnings and errors of every log in the cluster's
    /// directory (replicas, agents, load balancer, restarts), so that a failed test's
    /// output says what the cluster saw. Printed to stderr, which the test runner shows
    /// for failed tests only.
    fn print_log_tails(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else { return };
        let mut logs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let notable: Vec<&str> = text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            let tail = &notable[notable.len().saturating_sub(FAILURE_LOG_LINES)..];
            eprintln!("--- {} ({} warnings and errors, the last {}):", log.display(), notable.len(), tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for UpCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
        }
        // SAFETY: signalling our own children.
        unsafe { libc::kill(self.up.id() as libc::pid_t, libc::SIGTERM) };
        for c in &self.restarted {
            // SAFETY: as above.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        let _ = self.up.wait();
        let deadline = Instant::now() + STOP_GRACE;
        for c in &mut self.restarted {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run `etcdctl` (API v3) against `endpoints`, feeding `stdin` if given.
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("running etcdctl")?;
    if let Some(input) = stdin {
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

/// `etcdctl` that must succeed; returns its stdout.
pub fn etcdctl_ok(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args, None).expect("etcdctl runs");
    assert!(out.status.success(), "etcdctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `probe` holds within `limit`, polled every 100 ms (for callers that explain a
/// timeout themselves).
pub fn eventually(limit: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Poll until `probe` returns `Some`, panicking with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The local busybox image `scripts/make-test-image` builds (no registry is reachable).
pub const TEST_IMAGE: &str = "flotilla/busybox:latest";

/// Build [`TEST_IMAGE`] into the local Docker engine unless it is there already.
pub fn ensure_test_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-test-image");
    let out = Command::new(&script).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One HTTP/1.0 `GET <path>` to 127.0.0.1:`port`: the whole response (status line, headers
/// and body), or `None` if the connection or the read failed (reads give up after
/// `read_timeout`).
pub fn http_get(port: u16, path: &str, read_timeout: Duration) -> Option<String> {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(read_timeout)).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    Some(response)
}
