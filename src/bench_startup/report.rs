//! What `bench-pod-startup` reports: latency summaries and the agents' resource use.

use std::time::Duration;

use serde::Serialize;

use crate::bench_api::procfs::{cpu_seconds, vm_rss_kib};
use crate::bench_api::stats::{ms, round2, Summary};

/// The agents' cost with every pod running.
#[derive(Debug, Clone, Serialize)]
pub struct AgentUse {
    /// Resident memory of each agent at the end of the sample, MiB.
    pub rss_mib: Vec<f64>,
    /// Average cores each agent kept busy over the sample.
    pub idle_cores: Vec<f64>,
    pub sample_seconds: u64,
}

impl AgentUse {
    /// User + system CPU seconds of `pids` so far.
    pub fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
        pids.iter().map(|p| cpu_seconds(*p)).sum()
    }

    /// CPU use of each of `pids` over `window`, and their memory at its end.
    pub async fn sample(pids: &[u32], window: Duration) -> anyhow::Result<Self> {
        let before: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect::<Result<_, _>>()?;
        tokio::time::sleep(window).await;
        let mut idle_cores = Vec::new();
        for (pid, b) in pids.iter().zip(before) {
            idle_cores.push(round2((cpu_seconds(*pid)? - b) / window.as_secs_f64().max(1e-9)));
        }
        let rss_mib =
            pids.iter().map(|p| vm_rss_kib(*p).map(|k| round2(k as f64 / 1024.0))).collect::<Result<_, _>>()?;
        Ok(AgentUse { rss_mib, idle_cores, sample_seconds: window.as_secs() })
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub pods: usize,
    pub rate_per_second: f64,
    pub image: String,
    pub agents: usize,
    /// Create sent → seen bound.
    pub bound: Summary,
    /// Create sent → seen Running (the headline).
    pub running: Summary,
    /// First create → last pod running.
    pub total_ms: f64,
    /// CPU seconds all agents used from the first create to the last pod running.
    pub agent_cpu_seconds_during_start: f64,
    pub agent_use: AgentUse,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pods: usize,
        rate: f64,
        image: &str,
        agents: usize,
        samples: &[(Duration, Duration)],
        total: Duration,
        cpu_start: f64,
        agent_use: AgentUse,
    ) -> Self {
        let mut bound: Vec<Duration> = samples.iter().map(|s| s.0).collect();
        let mut running: Vec<Duration> = samples.iter().map(|s| s.1).collect();
        Report {
            pods,
            rate_per_second: rate,
            image: image.to_string(),
            agents,
            bound: Summary::of(&mut bound),
            running: Summary::of(&mut running),
            total_ms: round2(ms(total)),
            agent_cpu_seconds_during_start: round2(cpu_start),
            agent_use,
        }
    }

    pub fn print(&self) {
        let r = &self.running;
        println!(
            "{} pods at {}/s on {} agents: running p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (bound p99 {:.0} ms); all in {:.1} s",
            self.pods,
            self.rate_per_second,
            self.agents,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            self.bound.p99_ms,
            self.total_ms / 1000.0
        );
        let u = &self.agent_use;
        println!(
            "agents with every pod running: RSS {:?} MiB, CPU {:?} cores over {} s; {:.1} CPU s during the start",
            u.rss_mib, u.idle_cores, u.sample_seconds, self.agent_cpu_seconds_during_start
        );
    }
}
