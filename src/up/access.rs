//! How clients reach the cluster `flotilla up` runs: a load balancer (`flotilla lb`) in front
//! of every replica's Kubernetes API, and a kubeconfig whose default context goes through it,
//! with one more context per replica for clients that pick a replica themselves.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{ReplicaInfo, TlsInfo};

/// The load balancer `up` started (`cluster.json`'s `"lb"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LbInfo {
    pub name: String,
    pub pid: u32,
    pub argv: Vec<String>,
    /// The URL clients use: `https://127.0.0.1:<port>` (`http://` with
    /// `--insecure-plaintext`). TLS passes through the balancer to the replicas.
    pub url: String,
}

/// A balancer on a free loopback port over every replica's API, in the replicas' order;
/// with `tls` its health checks verify the replicas with the cluster's CA.
pub fn plan_lb(replicas: &[ReplicaInfo], tls: Option<&TlsInfo>) -> anyhow::Result<LbInfo> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let servers: Vec<&str> = replicas.iter().map(|r| r.api_url.as_str()).filter(|u| !u.is_empty()).collect();
    let listen = format!("127.0.0.1:{port}");
    let mut argv = vec![exe, "lb".into(), "--listen".into(), listen.clone(), "--server".into(), servers.join(",")];
    if let Some(tls) = tls {
        argv.extend(["--cacert".into(), tls.ca_file.to_string_lossy().into_owned()]);
    }
    let scheme = super::tls::scheme(tls);
    Ok(LbInfo { name: "lb".into(), pid: 0, argv, url: format!("{scheme}://{listen}") })
}

/// The context `kubectl` uses by default (through the balancer).
pub const CONTEXT: &str = "flotilla";

/// The context that talks to `replica` only.
pub fn replica_context(replica: &ReplicaInfo) -> String {
    format!("{CONTEXT}-{}", replica.name)
}

/// A kubeconfig with context [`CONTEXT`] through `lb` (the current one) and one context per
/// replica (see [`replica_context`]); with `tls`, as the admin. Readable by its owner only.
pub fn write_kubeconfig(
    path: &Path,
    lb: &LbInfo,
    replicas: &[ReplicaInfo],
    tls: Option<&TlsInfo>,
) -> anyhow::Result<()> {
    let mut entries = vec![(CONTEXT.to_string(), lb.url.clone())];
    entries.extend(replicas.iter().filter(|r| !r.api_url.is_empty()).map(|r| (replica_context(r), r.api_url.clone())));
    crate::pki::write_private(path, &kubeconfig(&entries, tls)).with_context(|| format!("writing {}", path.display()))
}

/// One cluster and one context per `(name, server)`, the first current. With `tls`, every
/// cluster trusts the CA and the user presents the admin's certificate (files, so renewed
/// certificates are picked up); without, there are no credentials (plain HTTP has no
/// authentication).
fn kubeconfig(entries: &[(String, String)], tls: Option<&TlsInfo>) -> String {
    let file = |p: &Path| p.to_string_lossy().into_owned();
    let ca = tls.map_or(String::new(), |t| format!("    certificate-authority: {}\n", file(&t.ca_file)));
    let user = match tls {
        Some(t) => format!("\n    client-certificate: {}\n    client-key: {}\n", file(&t.cert_file), file(&t.key_file)),
        None => " {}\n".to_string(),
    };
    let mut clusters = String::new();
    let mut contexts = String::new();
    for (name, server) in entries {
        clusters.push_str(&format!("- name: {name}\n  cluster:\n    server: {server}\n{ca}"));
        contexts.push_str(&format!("- name: {name}\n  context:\n    cluster: {name}\n    user: {CONTEXT}\n"));
    }
    let current = entries.first().map_or(CONTEXT, |(name, _)| name.as_str());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}current-context: {current}\n\
         users:\n- name: {CONTEXT}\n  user:{user}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_context_is_the_first_and_every_one_has_its_cluster() {
        let text = kubeconfig(
            &[("flotilla".into(), "http://127.0.0.1:1".into()), ("flotilla-r1".into(), "http://127.0.0.1:2".into())],
            None,
        );
        assert!(text.contains("current-context: flotilla\n"));
        assert!(text.contains("- name: flotilla-r1\n  cluster:\n    server: http://127.0.0.1:2\n"));
        assert!(text.contains("- name: flotilla-r1\n  context:\n    cluster: flotilla-r1\n    user: flotilla\n"));
        assert_eq!(text.matches("server: ").count(), 2);
        assert!(text.ends_with("users:\n- name: flotilla\n  user: {}\n"));
    }

    #[test]
    fn with_tls_every_cluster_trusts_the_ca_and_the_user_presents_the_admin_certificate() {
        let tls = TlsInfo {
            ca_file: "/p/ca.crt".into(),
            cert_file: "/p/admin.crt".into(),
            key_file: "/p/admin.key".into(),
            join_token: String::new(),
        };
        let text = kubeconfig(
            &[("flotilla".into(), "https://127.0.0.1:1".into()), ("flotilla-r1".into(), "https://127.0.0.1:2".into())],
            Some(&tls),
        );
        assert_eq!(text.matches("    certificate-authority: /p/ca.crt\n").count(), 2);
        assert!(
            text.ends_with("  user:\n    client-certificate: /p/admin.crt\n    client-key: /p/admin.key\n"),
            "{text}"
        );
    }
}
