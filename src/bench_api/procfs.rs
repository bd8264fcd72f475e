//! Process figures from `/proc`: resident memory and CPU time of the replicas (pids from
//! `cluster.json`) and of the bench itself, so every measurement can say how busy the
//! machine's cores were and who kept them busy. Linux only, same machine as the cluster.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// `VmRSS` of `pid` in KiB.
pub fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is the cluster on this machine?)"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in /proc/{pid}/status"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:").trim().strip_suffix("kB")?.trim().parse().ok()
}

/// User + system CPU time of `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    cpu(pid, false)
}

/// Like [`cpu_seconds`], plus the CPU time of the children `pid` has waited for (a
/// process's `nft` or `conntrack` runs).
pub fn cpu_seconds_with_children(pid: u32) -> anyhow::Result<f64> {
    cpu(pid, true)
}

fn cpu(pid: u32, children: bool) -> anyhow::Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat, children).with_context(|| format!("malformed /proc/{pid}/stat"))?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / per_second.max(1) as f64)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, with `children` also
/// cutime + cstime (16 and 17). The command name (field 2) is in parentheses and may
/// contain spaces, so fields are counted after its closing `)`.
fn parse_cpu_ticks(stat: &str, children: bool) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is fields[n - 3].
    let last = if children { 14 } else { 12 };
    (11..=last).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

/// Average cores kept busy during one measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// All replica processes together.
    pub server_cores: f64,
    /// This bench process.
    pub bench_cores: f64,
}

/// Measures [`CpuUse`] from `start` to [`CpuMeter::stop`].
pub struct CpuMeter {
    pids: Vec<u32>,
    started: Instant,
    server: f64,
    bench: f64,
}

impl CpuMeter {
    pub fn start(pids: Vec<u32>) -> anyhow::Result<Self> {
        let server = total(&pids)?;
        Ok(CpuMeter { bench: cpu_seconds(std::process::id())?, server, pids, started: Instant::now() })
    }

    pub fn stop(self) -> anyhow::Result<CpuUse> {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let server = (total(&self.pids)? - self.server) / wall;
        let bench = (cpu_seconds(std::process::id())? - self.bench) / wall;
        Ok(CpuUse { server_cores: super::stats::round2(server), bench_cores: super::stats::round2(bench) })
    }
}

fn total(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tflotilla\nVmPeak:\t  900 kB\nVmRSS:\t   123456 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(123_456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_command_with_spaces() {
        let stat = "4242 (tokio worker) S 1 4242 4242 0 -1 4194560 500 0 0 0 130 27 5 3 20 0 9 0 100 1 2";
        assert_eq!(parse_cpu_ticks(stat, false), Some(157));
        assert_eq!(parse_cpu_ticks(stat, true), Some(165), "with the waited-for children's 5 + 3");
        assert_eq!(parse_cpu_ticks("4242 (x) S 1", false), None);
    }

    #[test]
    fn reads_our_own_process() {
        assert!(vm_rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
