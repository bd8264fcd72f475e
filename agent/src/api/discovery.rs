//! The replicas an agent was not told about. Every API server replica holds a master lease
//! and the `kubernetes` Service's Endpoints in `default` list each one's address and port
//! (as upstream's lease endpoint reconciler), so an agent started with one replica's URL
//! can learn the others from it, and survive that replica's death.
//!
//! Invariants:
//! - Configured URLs are never removed and stay first ([`super::ApiPool`]).
//! - Only an agent given fewer servers than the Endpoints list adds any ([`additions`]):
//!   one given as many or more was told every replica, perhaps under names the Endpoints'
//!   addresses do not match (a load balancer, NAT), and is left as configured.
//! - Discovered URLs follow the Endpoints: a replica that leaves them (stopped, or dead
//!   past its lease) is dropped at the next refresh, one that joins is added. A failed
//!   read or an Endpoints object with no address changes nothing.
//! - The first refresh ends before [`start`] returns (bounded by the request timeout), so
//!   an agent's node registers already knowing every replica; then one every [`REFRESH`].

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ApiPool;

/// How often the Endpoints are read again. A replica that joins is used within this; a
/// dead one needs no refresh (the pool fails over past it at once). One small GET per
/// agent per 30 s costs the control plane nothing.
pub const REFRESH: Duration = Duration::from_secs(30);
/// The Service every replica's API address is listed under.
const SERVICE: (&str, &str) = ("default", "kubernetes");
/// The Service port naming the API (upstream's and flotilla's).
const PORT_NAME: &str = "https";

/// Refresh `pool`'s discovered servers once, then every [`REFRESH`] in a task until
/// `cancel` fires.
pub async fn start(pool: Arc<ApiPool>, cancel: CancellationToken) -> JoinHandle<()> {
    refresh(&pool).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => refresh(&pool).await,
            }
        }
    })
}

/// Read the Endpoints and set the pool's discovered servers from them.
async fn refresh(pool: &ApiPool) {
    let (namespace, name) = SERVICE;
    let read = pool.call(|c| async move { kube::Api::<Endpoints>::namespaced(c, namespace).get_opt(name).await }).await;
    let endpoints = match read {
        Ok(Some(e)) => e,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %e, "the kubernetes Service's endpoints not read; servers unchanged");
            return;
        }
    };
    let configured = pool.configured();
    let scheme = configured.first().and_then(|u| u.split_once("://")).map_or("http", |(scheme, _)| scheme);
    let listed = endpoint_urls(&endpoints, scheme);
    if listed.is_empty() {
        return;
    }
    let known = resolve(&configured).await;
    match pool.set_discovered(&additions(&listed, &configured, &known)) {
        Ok((added, removed)) if !added.is_empty() || !removed.is_empty() => {
            let servers = pool.urls();
            tracing::info!(?added, ?removed, ?servers, "API servers discovered from the kubernetes Service");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "discovered API server URLs refused"),
    }
}

/// `host:port` of a URL (`http://a:6443/` → `a:6443`).
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().filter(|a| !a.is_empty())
}

/// The authorities of `urls`, plus every address their hosts resolve to (`ip:port`), so a
/// configured host name matches the address the Endpoints list for the same replica.
async fn resolve(urls: &[String]) -> HashSet<String> {
    let mut known = HashSet::new();
    for a in urls.iter().filter_map(|u| authority(u)) {
        known.insert(a.to_string());
        if let Ok(addrs) = tokio::net::lookup_host(a).await {
            known.extend(addrs.map(|s| s.to_string()));
        }
    }
    known
}

/// `<scheme>://<ip>:<port>` for every ready address and every API port (named `https`, or
/// a subset's only port) of each subset, in order, without repeats.
pub fn endpoint_urls(endpoints: &Endpoints, scheme: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let api_ports = ports.iter().filter(|p| ports.len() == 1 || p.name.as_deref() == Some(PORT_NAME));
        for port in api_ports {
            let Ok(port) = u16::try_from(port.port) else { continue };
            for address in subset.addresses.iter().flatten() {
                let Ok(ip) = address.ip.parse::<IpAddr>() else { continue };
                if ip.is_unspecified() || port == 0 {
                    continue;
                }
                let url = format!("{scheme}://{}", SocketAddr::new(ip, port));
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
    }
    urls
}

/// The servers to add to `configured` given the `listed` ones: none when `configured` has
/// as many or more; otherwise every listed URL whose `ip:port` is not `known` (the
/// configured URLs' authorities and resolved addresses).
pub fn additions(listed: &[String], configured: &[String], known: &HashSet<String>) -> Vec<String> {
    if configured.len() >= listed.len() {
        return Vec::new();
    }
    listed.iter().filter(|u| authority(u).is_none_or(|a| !known.contains(a))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};

    fn subset(ips: &[&str], ports: &[(Option<&str>, i32)]) -> EndpointSubset {
        EndpointSubset {
            addresses: Some(
                ips.iter().map(|ip| EndpointAddress { ip: ip.to_string(), ..Default::default() }).collect(),
            ),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: name.map(String::from),
                        port: *port,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn urls_come_from_every_ready_address_and_api_port() {
        // As the replicas of `flotilla up` publish themselves: one host, a port each.
        let endpoints = Endpoints {
            subsets: Some(vec![
                subset(&["127.0.0.1"], &[(Some("https"), 40001)]),
                subset(&["127.0.0.1"], &[(Some("https"), 40002)]),
                subset(&["10.0.0.1", "10.0.0.2", "fd00::3"], &[(Some("metrics"), 9090), (Some("https"), 6443)]),
                subset(&["not-an-ip", "0.0.0.0"], &[(None, 6443)]),
            ]),
            ..Default::default()
        };
        assert_eq!(
            endpoint_urls(&endpoints, "http"),
            [
                "http://127.0.0.1:40001",
                "http://127.0.0.1:40002",
                "http://10.0.0.1:6443",
                "http://10.0.0.2:6443",
                "http://[fd00::3]:6443",
            ]
        );
        assert!(endpoint_urls(&Endpoints::default(), "http").is_empty());
    }

    #[test]
    fn only_an_agent_given_fewer_servers_adds_the_others() {
        let listed: Vec<String> =
            ["http://10.0.0.1:6443", "http://10.0.0.2:6443", "http://10.0.0.3:6443"].map(String::from).into();
        let one = vec!["http://cp1.example:6443".to_string()];
        // cp1.example resolved to 10.0.0.1: that replica is not added a second time.
        let known: HashSet<String> = ["cp1.example:6443", "10.0.0.1:6443"].map(String::from).into();
        assert_eq!(additions(&listed, &one, &known), ["http://10.0.0.2:6443", "http://10.0.0.3:6443"]);
        // Three names for three replicas (a balancer, NAT...): as configured.
        let three: Vec<String> = ["http://a:1", "http://b:1", "http://c:1"].map(String::from).into();
        assert!(additions(&listed, &three, &HashSet::new()).is_empty());
        assert_eq!(authority("http://a:1/x"), Some("a:1"));
    }
}
