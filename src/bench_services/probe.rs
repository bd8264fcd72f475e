//! Looking at the agents' nftables tables from outside: what `bench-services` times.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One agent's service table.
#[derive(Debug, Clone)]
pub struct Table {
    pub agent: String,
    pub name: String,
}

impl Table {
    /// Wait until the `service-ips` map has `n` elements of Services in `ns`.
    pub async fn wait_for_services(&self, ns: &str, n: usize, deadline: Instant) -> anyhow::Result<()> {
        let marker = format!("-{ns}/");
        loop {
            let listing = nft(&["list", "map", "ip", &self.name, "service-ips"]).await.unwrap_or_default();
            let mapped = listing.matches(&marker).count();
            if mapped >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{}: only {mapped} of {n} Services in table {} by the deadline", self.agent, self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The chain that `cluster_ip:80/tcp` jumps to.
    async fn service_chain(&self, cluster_ip: &str) -> anyhow::Result<String> {
        let element = format!("{{ {cluster_ip} . tcp . 80 }}");
        let out = nft(&["get", "element", "ip", &self.name, "service-ips", &element]).await?;
        let chain = out.split("goto ").nth(1).context("no goto in the map element")?;
        Ok(chain.split([' ', '\n', ',', '}']).next().unwrap_or_default().to_string())
    }

    /// Does the chain DNAT to `endpoint` (its endpoint chains are named after it)?
    async fn routes_to(&self, chain: &str, endpoint: &str) -> anyhow::Result<bool> {
        let listing = nft(&["list", "chain", "ip", &self.name, chain]).await?;
        Ok(listing.contains(&format!("/{endpoint}/8080")))
    }
}

/// Poll every table until its chain for `cluster_ip` routes to `endpoint`; each table's
/// sighting time after `started`.
pub async fn wait_all(
    tables: &[Table],
    cluster_ip: &str,
    endpoint: &str,
    started: Instant,
    deadline: Instant,
    poll: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut chains = Vec::new();
    for t in tables {
        chains.push(t.service_chain(cluster_ip).await.with_context(|| format!("{}: {cluster_ip}", t.agent))?);
    }
    let mut seen: Vec<Option<Duration>> = vec![None; tables.len()];
    while seen.iter().any(Option::is_none) {
        for (k, t) in tables.iter().enumerate() {
            if seen[k].is_none() && t.routes_to(&chains[k], endpoint).await.unwrap_or(false) {
                seen[k] = Some(started.elapsed());
            }
        }
        if Instant::now() > deadline {
            bail!("{endpoint} of {cluster_ip} not in every table by the deadline: {seen:?}");
        }
        tokio::time::sleep(poll).await;
    }
    Ok(seen.into_iter().map(|s| s.expect("all seen")).collect())
}

/// Run nft (the agent's runner, which reruns a dump an agent's change interrupted).
async fn nft(args: &[&str]) -> anyhow::Result<String> {
    flotilla_agent::services::proxy::nft(args, None).await.map_err(|e| anyhow::anyhow!("{e}"))
}
