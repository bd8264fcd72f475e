//! Shared set-up for the cluster tests: a temp run dir, etcd calls with short bounds, and
//! waiting for a condition with a deadline.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions};
use flotilla_jepsen::cluster::{self, Cluster, ClusterOptions};
use tokio::time::Instant;

/// Bound on one client call: a refused or partitioned node must fail quickly, a healthy one
/// answers far sooner.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a healed or restarted cluster may take to agree on a leader again.
pub const HEAL_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two checks of a condition.
const POLL: Duration = Duration::from_millis(200);

/// A run dir removed on drop (declared after the cluster in tests, so it outlives it).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<Self> {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let p = std::env::temp_dir().join(format!("fj-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn start(nodes: usize) -> anyhow::Result<(Cluster, TempDir)> {
    cluster::ensure_tools()?;
    let dir = TempDir::new()?;
    let mut opts = ClusterOptions::new(dir.0.clone(), cluster::default_binary()?);
    opts.nodes = nodes;
    Ok((Cluster::start(opts).await?, dir))
}

pub async fn client(url: &str) -> anyhow::Result<Client> {
    let opts = ConnectOptions::new().with_connect_timeout(CALL_TIMEOUT).with_timeout(CALL_TIMEOUT);
    Ok(tokio::time::timeout(CALL_TIMEOUT, Client::connect([url], Some(opts))).await.context("connect timed out")??)
}

pub async fn put(url: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let mut c = client(url).await?;
    tokio::time::timeout(CALL_TIMEOUT, c.put(key, value, None)).await.context("put timed out")??;
    Ok(())
}

/// A linearizable read through `url`.
pub async fn get(url: &str, key: &str) -> anyhow::Result<Option<String>> {
    let mut c = client(url).await?;
    let resp = tokio::time::timeout(CALL_TIMEOUT, c.get(key, None)).await.context("get timed out")??;
    Ok(resp.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

/// Retry `f` until it returns `Ok`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => bail!("{what} not within {timeout:?}: {e:#}"),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Every node reads `value` for `key` (linearizable reads).
pub async fn all_read(cluster: &Cluster, key: &str, value: &str) -> anyhow::Result<()> {
    for url in cluster.endpoints() {
        let got = get(&url, key).await.with_context(|| format!("get through {url}"))?;
        if got.as_deref() != Some(value) {
            bail!("{url} reads {got:?} for {key}, not {value:?}");
        }
    }
    Ok(())
}

pub fn command_output(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// For every ordered pair of nodes `(a, b)`, whether a TCP connection from `a`'s namespace to
/// `b`'s client port succeeds within a second (all probes at once).
pub fn reachability(cluster: &Cluster) -> Vec<Vec<bool>> {
    let n = cluster.len();
    let probes: Vec<Vec<std::process::Child>> = (0..n)
        .map(|a| {
            (0..n)
                .map(|b| {
                    let probe = format!("exec 3<>/dev/tcp/{}/2379", cluster.node(b).ip);
                    std::process::Command::new("ip")
                        .args(["netns", "exec", &cluster.node(a).netns, "timeout", "1", "bash", "-c", &probe])
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("run bash in a namespace")
                })
                .collect()
        })
        .collect();
    probes.into_iter().map(|row| row.into_iter().map(|mut c| c.wait().is_ok_and(|s| s.success())).collect()).collect()
}

/// Whether `pid` is gone (or a zombie nobody will run again).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Seconds since the epoch of the last log line's timestamp (`YYYY-MM-DDTHH:MM:SS`, after
/// stripping colour codes).
pub fn last_log_time(log: &std::path::Path) -> anyhow::Result<i64> {
    let text = std::fs::read_to_string(log)?;
    let line = text.lines().last().context("empty log")?;
    let plain: String = strip_ansi(line);
    let ts = plain.get(..19).with_context(|| format!("no timestamp in {plain:?}"))?;
    let num = |r: std::ops::Range<usize>| ts[r].parse::<i64>().with_context(|| format!("bad timestamp {ts:?}"));
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    Ok(days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?)
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn now_epoch_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}
