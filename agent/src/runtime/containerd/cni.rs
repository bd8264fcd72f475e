//! Pod networking with the standard CNI plugins: `loopback` for `lo`, then a chain of
//! `bridge` (with `host-local` addresses) and, when the pod publishes host ports,
//! `portmap`, for `eth0`.
//!
//! Invariants:
//! - The plugins are run as the CNI spec says: `CNI_COMMAND`, `CNI_CONTAINERID`,
//!   `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` in the environment, the network config on
//!   stdin, the result (or a `{code,msg}` error) on stdout. In a chain each plugin gets
//!   the previous one's result as `prevResult`; DEL runs the chain in reverse.
//! - The config is generated here ([`Network::chain`]), never read from `/etc/cni`: the
//!   bridge (`flotilla-cni0` by default) and subnet are flotilla's own, and the address
//!   allocations live under the runtime's state dir.
//! - A plugin gets at most [`PLUGIN_TIMEOUT`]; DEL is best effort (a pod being removed
//!   must not get stuck on a network that is already gone) but its errors are returned.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::serde_json::{self, json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::runtime::{PortMapping, RuntimeError};

/// The CNI version of the configs we generate (Debian 12's plugins speak it).
const CNI_VERSION: &str = "1.0.0";
/// How long one plugin invocation may take (iptables under a lock can be slow).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The pod network: where the plugins are and what they set up.
#[derive(Debug, Clone)]
pub struct Network {
    pub bin_dir: PathBuf,
    pub bridge: String,
    pub subnet: String,
    /// host-local's allocation records.
    pub ipam_dir: PathBuf,
}

/// The network config of every plugin of the eth0 chain, in order.
impl Network {
    pub fn chain(&self, ports: &[PortMapping]) -> Vec<Value> {
        let mut chain = vec![json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": self.ipam_dir,
            },
        })];
        if !ports.is_empty() {
            chain.push(json!({
                "type": "portmap",
                "capabilities": { "portMappings": true },
                "runtimeConfig": { "portMappings": port_mappings(ports) },
            }));
        }
        chain
    }

    /// Set up `lo` and `eth0` in `netns` for sandbox `id`; eth0's result.
    pub async fn add(&self, id: &str, netns: &Path, ports: &[PortMapping]) -> Result<Value, RuntimeError> {
        let call = Call { network: self, id, netns: Some(netns) };
        call.run("ADD", "lo", json!({ "type": "loopback" }), None).await?;
        let mut result = None;
        for plugin in self.chain(ports) {
            result = Some(call.run("ADD", "eth0", plugin, result).await?);
        }
        Ok(result.expect("the chain has a bridge"))
    }

    /// Undo [`Network::add`]; `prev` is ADD's result if it is known. With `netns` gone,
    /// the plugins still release the address and the host-side rules.
    pub async fn del(
        &self,
        id: &str,
        netns: Option<&Path>,
        ports: &[PortMapping],
        prev: Option<Value>,
    ) -> Result<(), RuntimeError> {
        let call = Call { network: self, id, netns };
        let mut first_error = None;
        for plugin in self.chain(ports).into_iter().rev() {
            if let Err(e) = call.run("DEL", "eth0", plugin, prev.clone()).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn port_mappings(ports: &[PortMapping]) -> Vec<Value> {
    let one = |p: &PortMapping| {
        let mut m = json!({
            "hostPort": p.host_port,
            "containerPort": p.container_port,
            "protocol": p.protocol.to_ascii_lowercase(),
        });
        if let Some(ip) = &p.host_ip {
            m["hostIP"] = json!(ip);
        }
        m
    };
    ports.iter().map(one).collect()
}

/// The first IPv4 address of a CNI result, without its prefix length.
pub fn pod_ip(result: &Value) -> Option<String> {
    let ips = result["ips"].as_array()?;
    let addresses = ips.iter().filter_map(|ip| ip["address"].as_str());
    let v4 = addresses.map(|a| a.split('/').next().unwrap_or(a)).find(|a| a.contains('.'))?;
    Some(v4.to_string())
}

/// One sandbox's plugin invocations.
struct Call<'a> {
    network: &'a Network,
    id: &'a str,
    netns: Option<&'a Path>,
}

impl Call<'_> {
    async fn run(
        &self,
        command: &str,
        ifname: &str,
        mut conf: Value,
        prev: Option<Value>,
    ) -> Result<Value, RuntimeError> {
        let plugin = conf["type"].as_str().unwrap_or_default().to_string();
        conf["cniVersion"] = json!(CNI_VERSION);
        conf["name"] = json!("flotilla");
        if let Some(prev) = prev {
            conf["prevResult"] = prev;
        }
        let failed = |what: String| RuntimeError::Failed(format!("CNI {plugin} {command} for {}: {what}", self.id));
        let netns = self.netns.map(|p| p.display().to_string()).unwrap_or_default();
        let mut child = Command::new(self.network.bin_dir.join(&plugin))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", self.id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.network.bin_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(&serde_json::to_vec(&conf).expect("JSON encodes")).await.map_err(|e| failed(e.to_string()))?;
        drop(stdin);
        let out = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| failed(format!("no answer in {PLUGIN_TIMEOUT:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            let msg = answer["msg"].as_str().map(str::to_string);
            return Err(failed(msg.unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network() -> Network {
        Network {
            bin_dir: "/usr/lib/cni".into(),
            bridge: "flotilla-cni0".into(),
            subnet: "10.245.0.0/16".into(),
            ipam_dir: "/state/ipam".into(),
        }
    }

    #[test]
    fn the_chain_is_a_bridge_and_portmap_only_with_ports() {
        let chain = network().chain(&[]);
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0]["bridge"], "flotilla-cni0");
        assert_eq!(chain[0]["ipam"]["ranges"][0][0]["subnet"], "10.245.0.0/16");
        assert_eq!(chain[0]["ipam"]["dataDir"], "/state/ipam");
        let port = PortMapping { container_port: 80, host_port: 8080, protocol: "TCP".into(), host_ip: None };
        let chain = network().chain(&[port]);
        assert_eq!(chain[1]["type"], "portmap");
        assert_eq!(
            chain[1]["runtimeConfig"]["portMappings"],
            json!([{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }])
        );
    }

    #[test]
    fn the_pod_ip_is_the_first_ipv4_address_of_the_result() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{ "name": "eth0" }],
            "ips": [
                { "address": "fd00::5/64", "gateway": "fd00::1" },
                { "address": "10.245.0.5/16", "gateway": "10.245.0.1", "interface": 0 },
            ],
        });
        assert_eq!(pod_ip(&result).as_deref(), Some("10.245.0.5"));
        assert_eq!(pod_ip(&json!({ "ips": [] })), None);
        assert_eq!(pod_ip(&json!({})), None);
    }
}
