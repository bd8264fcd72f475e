//! A pod's `/etc/resolv.conf`, as the kubelet writes it for the pod's `dnsPolicy` and
//! `dnsConfig`.
//!
//! - `ClusterFirst` (the default): the cluster DNS as the only nameserver, the search path
//!   `<ns>.svc.<domain> svc.<domain> <domain>` then the host's, and `ndots:5`. A
//!   `hostNetwork` pod falls back to `Default`, unless its policy is
//!   `ClusterFirstWithHostNet`. Without cluster DNS on the node, `Default` too.
//! - `Default`: the host's resolver configuration.
//! - `None`: only what `dnsConfig` says.
//! - `dnsConfig` adds nameservers and searches (duplicates dropped) and sets options (a
//!   named option replaces the base one of the same name).
//!
//! [`resolv_conf`] answers `None` when the result is the host's configuration untouched:
//! the runtime's own default then applies, as before cluster DNS existed.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// The node's cluster DNS, as pods see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    pub nameserver: Ipv4Addr,
    pub domain: String,
}

/// What a node knows about name resolution for its pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDns {
    /// None: the node has no cluster DNS (simulated nodes, the process runtime).
    pub cluster: Option<ClusterDns>,
    /// The host's own resolver configuration (`/etc/resolv.conf`).
    pub host: Resolv,
}

impl NodeDns {
    /// The host's `/etc/resolv.conf` with `cluster` DNS, if any.
    pub fn read(cluster: Option<ClusterDns>) -> NodeDns {
        NodeDns { cluster, host: Resolv::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()) }
    }

    /// `pod`'s resolv.conf text, if it differs from the runtime's default (see [`resolv_conf`]).
    pub fn resolv_conf(&self, pod: &Pod) -> Option<String> {
        resolv_conf(pod, self.cluster.as_ref(), &self.host)
    }
}

/// Write `text` as `dir/resolv.conf` (through a temporary file and a rename, so a container
/// starting meanwhile never sees half a file); the file's path.
pub fn write(dir: &Path, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let (path, tmp) = (dir.join("resolv.conf"), dir.join(".resolv.conf.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A resolver configuration: what a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Resolv {
    /// Parse a resolv.conf (`nameserver`, `search`/`domain` and `options` lines).
    pub fn parse(text: &str) -> Resolv {
        let mut resolv = Resolv::default();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.starts_with(';')) {
            let mut words = line.split_whitespace();
            let rest = || line.split_whitespace().skip(1).map(str::to_string);
            match words.next() {
                Some("nameserver") => resolv.nameservers.extend(rest().take(1)),
                Some("search") | Some("domain") => resolv.searches = rest().collect(),
                Some("options") => resolv.options.extend(rest()),
                _ => {}
            }
        }
        resolv
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The resolv.conf `pod` gets on a node with `cluster` DNS (if any) and the `host`'s
/// resolver configuration; `None`: the host's, unchanged (leave the runtime's default).
pub fn resolv_conf(pod: &Pod, cluster: Option<&ClusterDns>, host: &Resolv) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut resolv = match (policy, cluster.filter(|_| cluster_first)) {
        ("None", _) => Resolv::default(),
        (_, Some(cluster)) => Resolv {
            nameservers: vec![cluster.nameserver.to_string()],
            searches: crate::services::dns::cluster_search(namespace, &cluster.domain, &host.searches),
            options: vec!["ndots:5".into()],
        },
        _ => {
            // The host's configuration untouched: the runtime's default.
            spec.dns_config.as_ref()?;
            host.clone()
        }
    };
    if let Some(config) = &spec.dns_config {
        for ns in config.nameservers.iter().flatten() {
            if !resolv.nameservers.contains(ns) {
                resolv.nameservers.push(ns.clone());
            }
        }
        for search in config.searches.iter().flatten() {
            if !resolv.searches.contains(search) {
                resolv.searches.push(search.clone());
            }
        }
        for option in config.options.iter().flatten() {
            let Some(name) = option.name.as_deref() else { continue };
            resolv.options.retain(|o| o.split(':').next() != Some(name));
            resolv.options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name.to_string(),
            });
        }
    }
    Some(resolv.render())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec})).unwrap()
    }

    fn cluster() -> ClusterDns {
        ClusterDns { nameserver: Ipv4Addr::new(10, 96, 0, 10), domain: "cluster.local".into() }
    }

    fn host() -> Resolv {
        Resolv::parse("# host\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch lan corp\noptions edns0\n")
    }

    #[test]
    fn cluster_first_uses_the_cluster_dns_and_the_namespace_search_path() {
        let text = resolv_conf(&pod(json!({"containers": []})), Some(&cluster()), &host()).unwrap();
        assert_eq!(
            text,
            "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local lan corp\n\
             options ndots:5\n"
        );
    }

    #[test]
    fn host_network_and_default_keep_the_host_resolver() {
        let host_net = pod(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(resolv_conf(&host_net, Some(&cluster()), &host()), None);
        let default = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(resolv_conf(&default, Some(&cluster()), &host()), None);
        assert_eq!(resolv_conf(&pod(json!({"containers": []})), None, &host()), None, "no cluster DNS on the node");
        let with_host_net = pod(json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(resolv_conf(&with_host_net, Some(&cluster()), &host()).unwrap().starts_with("nameserver 10.96.0.10\n"));
    }

    #[test]
    fn dns_config_merges_and_none_uses_only_it() {
        let config = json!({"nameservers": ["1.1.1.1"], "searches": ["extra.test", "lan"],
                            "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]});
        let merged = resolv_conf(
            &pod(json!({"containers": [], "dnsPolicy": "Default", "dnsConfig": config})),
            Some(&cluster()),
            &host(),
        )
        .unwrap();
        assert_eq!(
            merged,
            "nameserver 192.168.1.1\nnameserver 192.168.1.2\nnameserver 1.1.1.1\nsearch lan corp extra.test\n\
             options edns0 ndots:2 rotate\n"
        );
        let only = resolv_conf(
            &pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"]}})),
            Some(&cluster()),
            &host(),
        )
        .unwrap();
        assert_eq!(only, "nameserver 9.9.9.9\n");
        let cluster_first = resolv_conf(
            &pod(json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}})),
            Some(&cluster()),
            &host(),
        )
        .unwrap();
        assert!(cluster_first.ends_with("options ndots:1\n"), "{cluster_first}");
    }
}
