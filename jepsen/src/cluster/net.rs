//! The private network of one run: a hub namespace holding a Linux bridge, one namespace per
//! node, and one veth into the root namespace for the clients.
//!
//! ```text
//!  root ns: fj<N>host 10.77.<N>.1/24 ──veth── fj-<N>-hub: br0 ──veth── fj-<N>-n1: eth0 10.77.<N>.11
//!                                                         └──veth── fj-<N>-n2: eth0 10.77.<N>.12 ...
//! ```
//!
//! The bridge lives in its own namespace, not the root one, because a host with Docker has
//! `br_netfilter` loaded and `FORWARD` policy DROP: bridged node-to-node traffic in the root
//! namespace would pass through Docker's iptables and be dropped. A fresh namespace has no
//! rules, and the root namespace only ever sends to or receives from the nodes.
//!
//! Invariants:
//! - nothing outside the harness's own names is touched: namespaces `fj-<N>-*`, the root link
//!   `fj<N>host`, the claim file `/run/flotilla-jepsen/<N>`; the subnet 10.77.<N>.0/24;
//! - a run number is claimed atomically (hard link of a file naming the owner pid) before any
//!   name is created, so parallel runs never share one; a claim whose owner pid is dead is
//!   stale and [`cleanup_stale`] removes everything carrying its number;
//! - cleanups run one at a time across processes (an `flock` on
//!   `/run/flotilla-jepsen/.cleanup.lock`): two harnesses starting together both find the
//!   same stale run, and the slower one would otherwise delete the names of whoever claimed
//!   the number after the faster one freed it;
//! - [`Net::teardown`] kills every process left in the namespaces, then deletes them (which
//!   deletes their veths) and the claim; it is idempotent and also runs on drop.
//!   A reused pid can make a stale claim look alive; it is then left alone (never a live one
//!   removed).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use super::tools::ip;

/// Claims (`<N>` containing the owner pid) live here; tmpfs, so a reboot clears them along
/// with the namespaces.
const CLAIM_DIR: &str = "/run/flotilla-jepsen";
/// Run numbers are the third octet of 10.77.<N>.0/24.
const RUNS: std::ops::RangeInclusive<u8> = 1..=250;
/// Nodes get .11, .12, ...; the root namespace's end is .1.
const FIRST_NODE_OCTET: u8 = 11;

/// The namespaces and links of one run.
#[derive(Debug)]
pub struct Net {
    pub run: u8,
    pub hub: String,
    pub host_link: String,
    /// Namespace of each node, in node order.
    pub namespaces: Vec<String>,
    torn_down: bool,
}

impl Net {
    /// Claim a free run number and build the topology for `nodes` nodes.
    pub fn create(nodes: usize) -> anyhow::Result<Net> {
        assert!(nodes < 200, "at most 200 nodes fit in the /24");
        let run = claim()?;
        let mut net = Net {
            run,
            hub: format!("fj-{run}-hub"),
            host_link: format!("fj{run}host"),
            namespaces: (1..=nodes).map(|i| format!("fj-{run}-n{i}")).collect(),
            torn_down: false,
        };
        if let Err(e) = net.build() {
            let _ = net.teardown();
            return Err(e.context(format!("building the network of run {run}")));
        }
        Ok(net)
    }

    fn build(&self) -> anyhow::Result<()> {
        let hub = self.hub.as_str();
        ip(&["netns", "add", hub])?;
        ip(&["-n", hub, "link", "set", "dev", "lo", "up"])?;
        ip(&["-n", hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", hub, "link", "set", "dev", "br0", "up"])?;
        ip(&["link", "add", &self.host_link, "type", "veth", "peer", "name", "host", "netns", hub])?;
        ip(&["addr", "add", &format!("{}/24", self.host_ip()), "dev", &self.host_link])?;
        ip(&["link", "set", "dev", &self.host_link, "up"])?;
        ip(&["-n", hub, "link", "set", "dev", "host", "master", "br0", "up"])?;
        for (i, ns) in self.namespaces.iter().enumerate() {
            let port = format!("n{}", i + 1);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
            ip(&["-n", hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
            ip(&["-n", hub, "link", "set", "dev", &port, "master", "br0", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/24", self.node_ip(i)), "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "dev", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The root namespace's address on the run's subnet.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.run, 1)
    }

    /// Node `i`'s (0-based) address.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.run, FIRST_NODE_OCTET + u8::try_from(i).expect("asserted < 200"))
    }

    /// Remove everything of this run. Idempotent; the first error is returned after trying
    /// every step.
    pub fn teardown(&mut self) -> anyhow::Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        remove_run(self.run)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(run = self.run, error = %e, "tearing down the jepsen network");
        }
    }
}

/// Remove the namespaces, links and claims of runs whose owner process is gone (a run killed
/// before its teardown). Returns the run numbers removed.
pub fn cleanup_stale() -> anyhow::Result<Vec<u8>> {
    let _lock = cleanup_lock()?;
    let mut stale: Vec<u8> = Vec::new();
    for run in RUNS {
        let has_names = !run_namespaces(run)?.is_empty() || link_exists(&format!("fj{run}host"));
        match owner(run) {
            Some(pid) if pid_alive(pid) => {}
            Some(_) => stale.push(run),
            None if has_names => stale.push(run),
            None => {}
        }
    }
    for &run in &stale {
        tracing::info!(run, "removing a stale jepsen run");
        remove_run(run)?;
    }
    remove_stale_tmp_claims();
    Ok(stale)
}

/// The cross-process cleanup lock, held until the returned file is dropped.
fn cleanup_lock() -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(CLAIM_DIR).with_context(|| format!("creating {CLAIM_DIR}"))?;
    let path = PathBuf::from(CLAIM_DIR).join(".cleanup.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("locking {}", path.display()));
    }
    Ok(file)
}

/// Private claim files (`.claim-<pid>-...`) of processes killed mid-claim.
fn remove_stale_tmp_claims() {
    let Ok(entries) = std::fs::read_dir(CLAIM_DIR) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file.strip_prefix(".claim-").and_then(|r| r.split('-').next()).and_then(|p| p.parse().ok());
        if pid.is_some_and(|pid| !pid_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Kill the run's processes, delete its namespaces, root link and claim.
fn remove_run(run: u8) -> anyhow::Result<()> {
    let mut first_err: Option<anyhow::Error> = None;
    let namespaces = run_namespaces(run)?;
    for ns in &namespaces {
        for pid in ip(&["netns", "pids", ns]).unwrap_or_default().split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) on a pid that lives in our own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    for ns in &namespaces {
        if let Err(e) = ip(&["netns", "del", ns]) {
            first_err.get_or_insert(e);
        }
    }
    // Deleting the hub namespace destroys the root end of its veth pair too, but the kernel
    // does that in the background: the link may vanish between the check and the delete,
    // which is success.
    let host = format!("fj{run}host");
    if link_exists(&host) {
        if let Err(e) = ip(&["link", "del", &host]) {
            if link_exists(&host) {
                first_err.get_or_insert(e);
            }
        }
    }
    let claim = claim_path(run);
    if claim.exists() {
        if let Err(e) = std::fs::remove_file(&claim) {
            first_err.get_or_insert(anyhow::Error::from(e).context("removing the claim"));
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Namespaces named `fj-<run>-*`.
fn run_namespaces(run: u8) -> anyhow::Result<Vec<String>> {
    let prefix = format!("fj-{run}-");
    let list = ip(&["netns", "list"])?;
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect())
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

fn claim_path(run: u8) -> PathBuf {
    PathBuf::from(CLAIM_DIR).join(run.to_string())
}

fn owner(run: u8) -> Option<i32> {
    std::fs::read_to_string(claim_path(run)).ok()?.trim().parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

/// Claim the first free run number: write our pid to a private file, then hard-link it to
/// the claim path, which fails if another run got there first.
fn claim() -> anyhow::Result<u8> {
    std::fs::create_dir_all(CLAIM_DIR).with_context(|| format!("creating {CLAIM_DIR}"))?;
    let pid = std::process::id();
    let tmp = PathBuf::from(CLAIM_DIR).join(format!(".claim-{pid}-{:?}", std::thread::current().id()));
    std::fs::write(&tmp, pid.to_string()).context("writing a claim")?;
    let result = RUNS.clone().find(|&run| !has_leftovers(run) && std::fs::hard_link(&tmp, claim_path(run)).is_ok());
    let _ = std::fs::remove_file(&tmp);
    match result {
        Some(run) => Ok(run),
        None => bail!("no free run number in {RUNS:?}: run cleanup_stale() or remove {CLAIM_DIR}"),
    }
}

/// A number whose names still exist (without a claim) is not reused until cleaned up.
fn has_leftovers(run: u8) -> bool {
    !claim_path(run).exists()
        && (link_exists(&format!("fj{run}host")) || run_namespaces(run).map(|v| !v.is_empty()).unwrap_or(true))
}
