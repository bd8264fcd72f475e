//! Configuration: [`AgentConfig`] (timings shared by every node an agent runs) and
//! [`NodeConfig`] (one node's identity), with the parsers for the `--labels` and
//! `--taints` flag syntax. Only the binary reads flags; this crate reads no environment.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use crate::error::AgentError;
use crate::node::host::Host;

/// Timings of an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Every API server replica's URL; the agent uses one and fails over.
    pub servers: Vec<String>,
    /// TLS and the node's client certificate, for `https://` servers.
    pub api_tls: Option<crate::api::ApiTls>,
    /// The node certificate in `api_tls` is the agent's own, kept here and renewed before
    /// it expires (it joined with a bootstrap token); none: it is managed by someone else.
    pub node_certificate: Option<crate::api::certificate::NodeCertificate>,
    /// Bound on one API request (a watch's opening included).
    pub request_timeout: Duration,
    /// How often the node Lease is renewed and node status recomputed (upstream's
    /// `nodeLeaseRenewInterval` and `nodeStatusUpdateFrequency`, both 10 s).
    pub renew_interval: Duration,
    /// `leaseDurationSeconds` written into the Lease (upstream: 40 s).
    pub lease_duration: Duration,
    /// How often an unchanged node status is written anyway (upstream's
    /// `nodeStatusReportFrequency`, 5 min there; see [`crate::node`]).
    pub status_report_interval: Duration,
    /// First crash-loop back-off (upstream: 10 s).
    pub backoff_initial: Duration,
    /// Back-off cap (upstream: 5 min).
    pub backoff_max: Duration,
    /// How often each pod is synced when nothing happens (a safety net: runtime events
    /// and pod updates trigger syncs at once).
    pub pod_resync: Duration,
    /// Run containers that ask for `securityContext.privileged` (refused by default).
    pub allow_privileged: bool,
    /// Where the endpoint for logs, exec and port-forward listens ([`crate::server`]);
    /// None: the agent serves nothing and advertises port 0 (simulated nodes, tests).
    pub server: Option<ServerConfig>,
    /// Services on this node: the nftables proxy and cluster DNS ([`crate::services`]);
    /// None: neither (simulated nodes, the process runtime, tests).
    pub services: Option<ServicesConfig>,
}

/// The kube-proxy and cluster-DNS settings of a node (kubelet's `--cluster-dns` and
/// `--cluster-domain`, kube-proxy's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicesConfig {
    /// The ClusterIP pods use as their nameserver (the `kube-dns` Service's; upstream's
    /// usual 10.96.0.10). The proxy redirects it to this agent's DNS server.
    pub cluster_dns: Ipv4Addr,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The host port the agent's DNS server listens on (UDP and TCP, all addresses); agents
    /// sharing a host need different ones.
    pub dns_port: u16,
    /// A name unique to this agent on its host (the runtime scope: node name and a hash of
    /// the data directory); its nft table is named after it, so agents of different
    /// clusters sharing a host and a node name keep their own rules.
    pub scope: String,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            dns_port: 53,
            scope: "default".into(),
        }
    }
}

/// The agent endpoint's listening address (upstream kubelet: `--address`, `--port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    pub address: IpAddr,
    /// 0 picks a free port, which the node then advertises.
    pub port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { address: IpAddr::V4(Ipv4Addr::UNSPECIFIED), port: DEFAULT_SERVER_PORT }
    }
}

/// The kubelet's port, which API servers expect agents on unless a node says otherwise.
pub const DEFAULT_SERVER_PORT: u16 = 10250;

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            servers: vec!["http://127.0.0.1:6443".into()],
            api_tls: None,
            node_certificate: None,
            request_timeout: Duration::from_secs(10),
            renew_interval: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            status_report_interval: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            pod_resync: Duration::from_secs(10),
            allow_privileged: false,
            server: None,
            services: None,
        }
    }
}

impl AgentConfig {
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |m: &str| Err(AgentError::Config(m.to_string()));
        if self.servers.is_empty() {
            return bad("at least one API server URL is needed");
        }
        if self.renew_interval.is_zero() || self.lease_duration <= self.renew_interval {
            return bad("the lease duration must be longer than the (nonzero) renew interval");
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return bad("back-off: 0 < initial <= max");
        }
        if self.request_timeout.is_zero() || self.pod_resync.is_zero() || self.status_report_interval.is_zero() {
            return bad("timeouts and intervals must be nonzero");
        }
        Ok(())
    }
}

/// One node's identity and capacity.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// Labels beyond the well-known `kubernetes.io/{hostname,os,arch}`.
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub max_pods: u32,
    /// The InternalIP address (also every pod's hostIP).
    pub address: String,
    pub host: Host,
}

impl NodeConfig {
    pub fn validate(&self) -> Result<(), AgentError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 253
            && self.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !name_ok {
            return Err(AgentError::Config(format!("node name {:?} is not a DNS subdomain", self.name)));
        }
        if self.max_pods == 0 {
            return Err(AgentError::Config("max pods must be at least 1".into()));
        }
        Ok(())
    }
}

/// `k=v,k2=v2` (empty: none).
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, AgentError> {
    let pairs = s.split(',').map(str::trim).filter(|p| !p.is_empty());
    pairs
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(AgentError::Config(format!("label {p:?}: want key=value"))),
        })
        .collect()
}

/// `key=value:Effect,key:Effect` (empty: none), as `kubectl taint` writes them.
pub fn parse_taints(s: &str) -> Result<Vec<Taint>, AgentError> {
    let items = s.split(',').map(str::trim).filter(|t| !t.is_empty());
    items
        .map(|t| {
            let err =
                || AgentError::Config(format!("taint {t:?}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute"));
            let (kv, effect) = t.rsplit_once(':').ok_or_else(err)?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(err());
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            if key.is_empty() {
                return Err(err());
            }
            Ok(Taint { key: key.to_string(), value, effect: effect.to_string(), time_added: None })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_taints_parse_and_bad_ones_are_refused() {
        let labels = parse_labels("zone=a, tier=web,").unwrap();
        assert_eq!(labels, BTreeMap::from([("zone".into(), "a".into()), ("tier".into(), "web".into())]));
        assert!(parse_labels("novalue").is_err());
        let taints = parse_taints("gpu=true:NoSchedule,dedicated:NoExecute").unwrap();
        assert_eq!(taints[0].key, "gpu");
        assert_eq!(taints[0].value.as_deref(), Some("true"));
        assert_eq!(taints[1].value, None);
        assert_eq!(taints[1].effect, "NoExecute");
        assert!(parse_taints("gpu=true:Sometimes").is_err());
        assert!(parse_taints("gpu=true").is_err());
        assert!(parse_labels("").unwrap().is_empty() && parse_taints("").unwrap().is_empty());
    }

    #[test]
    fn configs_validate() {
        assert!(AgentConfig::default().validate().is_ok());
        let short_lease = AgentConfig { lease_duration: Duration::from_secs(5), ..AgentConfig::default() };
        assert!(short_lease.validate().is_err());
    }
}
