//! What `bench-services` reports.

use std::time::Duration;

use serde::Serialize;

use super::probe::Table;
use super::BenchServicesArgs;
use crate::bench_api::procfs::{cpu_seconds_with_children, vm_rss_kib};
use crate::bench_api::stats::{ms, round2, Summary};

/// CPU seconds `pids` used so far, with the children they waited for.
pub fn agent_cpu(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|p| cpu_seconds_with_children(*p)).sum()
}

/// Resident memory of each of `pids`, MiB.
pub fn agent_rss(pids: &[u32]) -> anyhow::Result<Vec<f64>> {
    pids.iter().map(|p| vm_rss_kib(*p).map(|k| round2(k as f64 / 1024.0))).collect()
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub changes: usize,
    pub agents: Vec<String>,
    /// Creating every Service and its Endpoints.
    pub create_ms: f64,
    /// Last create → every agent's table maps every Service.
    pub initial_sync_ms: f64,
    /// Endpoints PUT → the new address in the Service's chain, per agent.
    pub per_agent: Vec<Summary>,
    /// The same, the slowest agent of each change: the rule in place on every node.
    pub every_node: Summary,
    /// Changes per second, one after another.
    pub changes_per_second: f64,
    /// CPU seconds per change of all agents together, with their nft and conntrack runs.
    pub agent_cpu_seconds_per_change: f64,
    pub agent_rss_mib: Vec<f64>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        args: &BenchServicesArgs,
        tables: &[Table],
        create: Duration,
        initial_sync: Duration,
        per_agent: &mut [Vec<Duration>],
        every_node: &mut [Duration],
        wall: Duration,
        cpu: f64,
        rss: Vec<f64>,
    ) -> Self {
        let changes = every_node.len();
        Report {
            services: args.services,
            endpoints_per_service: args.endpoints,
            changes,
            agents: tables.iter().map(|t| t.agent.clone()).collect(),
            create_ms: round2(ms(create)),
            initial_sync_ms: round2(ms(initial_sync)),
            per_agent: per_agent.iter_mut().map(|s| Summary::of(s)).collect(),
            every_node: Summary::of(every_node),
            changes_per_second: round2(changes as f64 / wall.as_secs_f64().max(1e-9)),
            agent_cpu_seconds_per_change: round2(cpu / changes.max(1) as f64),
            agent_rss_mib: rss,
        }
    }

    pub fn print(&self) {
        println!(
            "{} Services x {} endpoints, {} agents: created in {:.0} ms, initial sync {:.0} ms",
            self.services,
            self.endpoints_per_service,
            self.agents.len(),
            self.create_ms,
            self.initial_sync_ms
        );
        for (agent, s) in self.agents.iter().zip(&self.per_agent) {
            println!(
                "  {agent}: endpoint change -> rule p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                s.p50_ms, s.p99_ms, s.max_ms
            );
        }
        let e = &self.every_node;
        println!(
            "  every node ({} changes): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {:.2} agent CPU-s per change; agents' RSS {:?} MiB",
            self.changes, e.p50_ms, e.p99_ms, e.max_ms, self.agent_cpu_seconds_per_change, self.agent_rss_mib
        );
    }
}
