//! What one `bench-scheduler` run measured: one JSON line, then a summary and a per-second
//! timeline of creates and binds for reading where the time went.

use std::time::Duration;

use serde::Serialize;

use super::batch::Done;
use super::binds::BindTimes;
use super::leases::Renewals;
use super::throughput::{drain_rate, per_second, Throughput};
use super::BenchSchedulerArgs;
use crate::bench_api::ops::OpReport;
use crate::bench_api::stats::{ms, round2};

/// Average cores used during the pod phase (from opening the watch to the last bind).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSplit {
    /// The Raft leader: API server, scheduler, controllers, log append.
    pub leader_cores: f64,
    /// Every other replica together.
    pub follower_cores: f64,
    pub bench_cores: f64,
    /// Everything else on the machine (other builds and tests share its cores).
    pub other_cores: f64,
}

impl CpuSplit {
    /// From CPU seconds before and after `wall`: per replica, then this process, then the
    /// whole machine's busy time.
    pub fn of(before: &[f64], after: &[f64], leader: usize, wall: Duration) -> Self {
        let wall = wall.as_secs_f64().max(1e-9);
        let used: Vec<f64> = after.iter().zip(before).map(|(a, b)| (a - b) / wall).collect();
        let [replicas @ .., bench, machine] = used.as_slice() else {
            panic!("cpu_now lists the replicas, the bench and the machine")
        };
        let all_replicas: f64 = replicas.iter().sum();
        CpuSplit {
            leader_cores: round2(replicas[leader]),
            follower_cores: round2(all_replicas - replicas[leader]),
            bench_cores: round2(*bench),
            other_cores: round2((machine - all_replicas - bench).max(0.0)),
        }
    }
}

/// Busy (not idle, not waiting for I/O) CPU seconds of the whole machine since boot.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks = parse_busy_ticks(&stat).ok_or_else(|| anyhow::anyhow!("malformed /proc/stat"))?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / per_second.max(1) as f64)
}

/// Sum of the aggregate `cpu` line's first eight fields except idle (4th) and iowait (5th);
/// the guest fields after them are already counted in user time.
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if fields.len() < 5 {
        return None;
    }
    Some(fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum())
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub measure: &'static str,
    pub leader: String,
    pub nodes: usize,
    pub pods: usize,
    pub clients: usize,
    /// Node and Lease creation, before time zero.
    pub setup: [OpReport; 2],
    pub create_pods: OpReport,
    /// From time zero to the last create's acknowledgement.
    pub creates_done_ms: f64,
    /// Pods seen bound by the time the last create was acknowledged.
    pub bound_when_creates_done: usize,
    /// Binds per second after the last create (the backlog draining), if enough were left.
    pub drain_pods_per_s: Option<f64>,
    #[serde(flatten)]
    pub throughput: Option<Throughput>,
    pub unbound: usize,
    pub watch_events: u64,
    pub watch_reopens: usize,
    pub lease_renewal_sweeps: u64,
    pub lease_renewals: u64,
    pub lease_renewal_errors: u64,
    #[serde(flatten)]
    pub cpu: CpuSplit,
    /// Per whole second since time zero: creates acknowledged, pods seen bound.
    pub created_per_s: Vec<u64>,
    pub bound_per_s: Vec<u64>,
}

impl Report {
    pub fn new(
        leader: &str,
        args: &BenchSchedulerArgs,
        setup: [OpReport; 2],
        created: Done,
        binds: BindTimes,
        renewals: Renewals,
        cpu: CpuSplit,
    ) -> Self {
        let since = |t: &std::time::Instant| t.saturating_duration_since(created.started);
        let create_acks: Vec<Duration> = created.acks.iter().map(since).collect();
        let mut bind_times: Vec<Duration> = binds.bound.iter().flatten().map(since).collect();
        let creates_done = create_acks.iter().max().copied().unwrap_or_default();
        let unbound = binds.bound.len() - bind_times.len();
        Report {
            measure: "scheduler",
            leader: leader.to_string(),
            nodes: args.nodes,
            pods: args.pods,
            clients: args.clients,
            setup,
            create_pods: created.report,
            creates_done_ms: round2(ms(creates_done)),
            bound_when_creates_done: bind_times.iter().filter(|t| **t <= creates_done).count(),
            drain_pods_per_s: drain_rate(&bind_times, creates_done),
            created_per_s: per_second(&create_acks),
            bound_per_s: per_second(&bind_times),
            throughput: Throughput::of(&mut bind_times),
            unbound,
            watch_events: binds.events,
            watch_reopens: binds.reopens,
            lease_renewal_sweeps: renewals.sweeps,
            lease_renewals: renewals.renewed,
            lease_renewal_errors: renewals.errors,
            cpu,
        }
    }

    pub fn print(&self) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string(self)?);
        println!();
        for s in self.setup.iter().chain([&self.create_pods]) {
            println!(
                "{:<14} {:>6} ok {:>4} errors in {:>7.2} s = {:>7.1}/s (p50 {:.2} ms, p99 {:.2} ms){}",
                s.measure,
                s.ok,
                s.errors,
                s.elapsed_s,
                s.throughput,
                s.latency.p50_ms,
                s.latency.p99_ms,
                s.first_error.as_deref().map(|e| format!("; first error: {e}")).unwrap_or_default()
            );
        }
        println!(
            "creates done at {:.0} ms with {} of {} pods bound{}",
            self.creates_done_ms,
            self.bound_when_creates_done,
            self.pods,
            self.drain_pods_per_s.map(|r| format!("; the rest bound at {r:.1} pods/s")).unwrap_or_default()
        );
        match &self.throughput {
            Some(t) => println!(
                "scheduled {} pods on {} nodes: first bind {:.0} ms, last bind {:.0} ms; {:.1} pods/s over the run, \
                 {:.1} pods/s over the middle 80%",
                t.bound, self.nodes, t.first_bind_ms, t.last_bind_ms, t.overall_pods_per_s, t.middle80_pods_per_s
            ),
            None => println!("no pod was bound"),
        }
        if self.unbound > 0 {
            println!("NOT BOUND within the timeout: {} pods", self.unbound);
        }
        println!(
            "cores used (pod phase): leader {} {:.2}, followers {:.2}, bench {:.2}, other processes {:.2}; \
             watch {} events, {} reopens; lease renewals {} in {} sweeps ({} errors)",
            self.leader,
            self.cpu.leader_cores,
            self.cpu.follower_cores,
            self.cpu.bench_cores,
            self.cpu.other_cores,
            self.watch_events,
            self.watch_reopens,
            self.lease_renewals,
            self.lease_renewal_sweeps,
            self.lease_renewal_errors
        );
        println!("{:>4} {:>8} {:>8} {:>9}", "s", "created", "bound", "unbound");
        let (mut created, mut bound) = (0u64, 0u64);
        for s in 0..self.created_per_s.len().max(self.bound_per_s.len()) {
            let c = self.created_per_s.get(s).copied().unwrap_or(0);
            let b = self.bound_per_s.get(s).copied().unwrap_or(0);
            (created, bound) = (created + c, bound + b);
            println!("{s:>4} {c:>8} {b:>8} {:>9}", created.saturating_sub(bound));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_split_between_leader_followers_and_bench() {
        // Three replicas, the bench, the machine; 2 s of wall time; replica 1 leads.
        let before = [10.0, 20.0, 30.0, 1.0, 100.0];
        let after = [11.0, 23.0, 31.0, 1.5, 106.4];
        let c = CpuSplit::of(&before, &after, 1, Duration::from_secs(2));
        assert_eq!((c.leader_cores, c.follower_cores, c.bench_cores, c.other_cores), (1.5, 1.0, 0.25, 0.45));
    }

    #[test]
    fn busy_ticks_leave_out_idle_iowait_and_guest() {
        let stat = "cpu  100 5 50 9000 300 7 3 2 40 0\ncpu0 50 2 25 4500 150 3 1 1 20 0\nintr 1\n";
        assert_eq!(parse_busy_ticks(stat), Some(100 + 5 + 50 + 7 + 3 + 2));
        assert_eq!(parse_busy_ticks("cpu  1 2\n"), None);
        assert_eq!(parse_busy_ticks("intr 1\n"), None);
    }
}
