//! URL flags (`http://host:port`, comma-separated lists, `name=url` cluster lists).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

/// The address of an `http://` or `https://` listen URL, and whether it is `https`.
pub fn socket_addr_tls(url: &str) -> anyhow::Result<(SocketAddr, bool)> {
    match url.split_once("://") {
        Some(("http", _)) => Ok((listen_addr(url)?, false)),
        Some(("https", _)) => Ok((listen_addr(url)?, true)),
        _ => bail!("{url}: expected a URL like https://127.0.0.1:6443"),
    }
}

/// The host of a `scheme://host:port` URL (an IPv6 address without its brackets).
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => hostport.rsplit_once(':').map_or(hostport, |(host, _)| host),
    }
}

/// `host:port` of a listen URL whose scheme was checked.
fn listen_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        bail!("{url}: a listen URL has no path");
    }
    hostport
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve host and port"))?
        .next()
        .with_context(|| format!("{url}: host resolves to no address"))
}

/// Split a comma-separated list, dropping empty items.
pub fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

/// Parse `n1=http://a:2380,n2=http://b:2380`.
pub fn cluster(s: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in list(s) {
        let (name, url) =
            item.split_once('=').with_context(|| format!("--initial-cluster: {item:?} is not name=url"))?;
        socket_addr_tls(url).with_context(|| format!("--initial-cluster member {name}"))?;
        if out.insert(name.to_string(), url.to_string()).is_some() {
            bail!("--initial-cluster lists {name} twice");
        }
    }
    if out.is_empty() {
        bail!("--initial-cluster is empty");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_the_part_before_the_port() {
        assert_eq!(host("https://127.0.0.1:6443"), "127.0.0.1");
        assert_eq!(host("https://api.example:6443/"), "api.example");
        assert_eq!(host("https://[::1]:6443"), "::1");
        assert_eq!(host("http://localhost"), "localhost");
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(socket_addr_tls("http://127.0.0.1:2379").unwrap(), (([127, 0, 0, 1], 2379).into(), false));
        assert!(socket_addr_tls("https://127.0.0.1:2379").unwrap().1);
        assert!(socket_addr_tls("127.0.0.1:2379").is_err());
        assert!(socket_addr_tls("http://127.0.0.1").is_err());
        let c = cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2").unwrap();
        assert_eq!(c["b"], "http://127.0.0.1:2");
        assert!(cluster("a=http://127.0.0.1:1,a=http://127.0.0.1:2").is_err());
        assert!(cluster("a").is_err());
        assert!(cluster("").is_err());
    }
}
