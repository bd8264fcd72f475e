//! The node agents `flotilla up` starts: which runtime they use, their command lines, and
//! waiting for their Nodes.
//!
//! Every agent listens for the API servers' log/exec/port-forward requests on its own
//! loopback port and reports 127.0.0.1 as its InternalIP, so several agents share this
//! machine without clashing.

use std::path::Path;

use anyhow::{bail, Context};
use clap::ValueEnum;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ReplicaInfo, TlsInfo, PROBE_INTERVAL, READY_TIMEOUT};
use crate::bench_api::client::Conn;
use crate::dial::ClientTls;

/// One node agent `up` started: `name` is its Node's name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub pid: u32,
    pub argv: Vec<String>,
}

/// `--agent-runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    /// Docker when a Docker daemon answers, else process.
    Auto,
    Docker,
    Containerd,
    Process,
    Fake,
}

impl RuntimeChoice {
    fn flag(self) -> &'static str {
        match self {
            RuntimeChoice::Auto => "auto",
            RuntimeChoice::Docker => "docker",
            RuntimeChoice::Containerd => "containerd",
            RuntimeChoice::Process => "process",
            RuntimeChoice::Fake => "fake",
        }
    }
}

/// The runtime the agents use; `auto` is decided here and said out loud. For containerd, a
/// daemon must answer at `containerd_socket` (a private one is started if none does).
pub async fn resolve(choice: RuntimeChoice, agents: usize, containerd_socket: &Path) -> anyhow::Result<RuntimeChoice> {
    if agents == 0 {
        return Ok(choice);
    }
    if choice == RuntimeChoice::Containerd {
        super::containerd::ensure(containerd_socket).await?;
    }
    let docker = docker_answers().await;
    let chosen = match (choice, docker) {
        (RuntimeChoice::Auto, true) => RuntimeChoice::Docker,
        (RuntimeChoice::Auto, false) => RuntimeChoice::Process,
        (RuntimeChoice::Docker, false) => {
            bail!("--agent-runtime docker: no Docker daemon answers at {}", docker_socket())
        }
        (other, _) => other,
    };
    let why = match (choice, chosen) {
        (RuntimeChoice::Auto, RuntimeChoice::Docker) => " (a Docker daemon answered)",
        (RuntimeChoice::Auto, _) => " (no Docker daemon answered; containers run as host processes, without isolation)",
        _ => "",
    };
    println!("flotilla: the agents use the {} runtime{why}", chosen.flag());
    Ok(chosen)
}

/// The Docker daemon's socket path (`DOCKER_HOST=unix://…` or the default).
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

/// True when `GET /_ping` on the Docker socket answers 200 within a second.
async fn docker_answers() -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ping = async {
        let mut conn = tokio::net::UnixStream::connect(docker_socket()).await?;
        conn.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").await?;
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await?;
        std::io::Result::Ok(head.get(9..12) == Some(b"200".as_slice()))
    };
    matches!(tokio::time::timeout(std::time::Duration::from_secs(1), ping).await, Ok(Ok(true)))
}

/// The Node name of the `i`th agent (from 1).
pub fn node_name(i: usize) -> String {
    format!("agent-{i}")
}

/// One agent per name in `nodes` (see [`node_name`]) talking to every replica's API, each
/// with its own data dir and endpoint port, and with `tls` its node certificate.
pub fn plan(
    dir: &Path,
    replicas: &[ReplicaInfo],
    nodes: &[String],
    runtime: RuntimeChoice,
    containerd_socket: &Path,
    tls: Option<&TlsInfo>,
) -> anyhow::Result<Vec<AgentInfo>> {
    let n = nodes.len();
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let servers: Vec<&str> = replicas.iter().map(|r| r.api_url.as_str()).collect();
    // Hold every listener until all ports are chosen so no two agents get the same one.
    // Each agent takes two: its endpoint and its DNS server.
    let listeners: Vec<std::net::TcpListener> =
        (0..2 * n).map(|_| std::net::TcpListener::bind("0.0.0.0:0")).collect::<Result<_, _>>()?;
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    drop(listeners);
    Ok(nodes
        .iter()
        .zip(ports.chunks(2))
        .map(|(name, ports)| {
            let (port, dns_port) = (ports[0], ports[1]);
            let name = name.clone();
            let argv = vec![
                exe.clone(),
                "agent".into(),
                "--server".into(),
                servers.join(","),
                "--node-name".into(),
                name.clone(),
                "--runtime".into(),
                runtime.flag().to_string(),
                "--data-dir".into(),
                dir.join(&name).to_string_lossy().into_owned(),
                "--node-ip".into(),
                "127.0.0.1".into(),
                "--address".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--dns-port".into(),
                dns_port.to_string(),
            ];
            let mut argv = argv;
            argv.extend(tls.map(TlsInfo::agent_flags).unwrap_or_else(|| vec!["--insecure-plaintext".into()]));
            if runtime == RuntimeChoice::Containerd {
                argv.extend(["--containerd-address".into(), containerd_socket.to_string_lossy().into_owned()]);
            }
            AgentInfo { name, pid: 0, argv }
        })
        .collect())
}

/// How long the agents' join token is good for: they need it only to get their first
/// certificates, which they then renew themselves.
const JOIN_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Create the bootstrap token's Secret of a new cluster, through `api` as the admin.
pub async fn create_join_token(api: &str, tls: &ClientTls, token: &str) -> anyhow::Result<()> {
    let mut conn = Conn::connect_with(api, Some(tls)).await?;
    let secret = crate::token::secret_object(token, "flotilla up's agents", JOIN_TOKEN_TTL);
    let body = serde_json::to_value(&secret)?;
    let path = "/api/v1/namespaces/kube-system/secrets";
    conn.call(Method::POST, path, Some(&body), StatusCode::CREATED).await.context("creating the agents' join token")?;
    Ok(())
}

/// Wait until every agent's Node reports Ready (it registers once it reached an API
/// replica, Ready from its first status).
pub async fn wait_nodes_ready(api: &str, tls: Option<&ClientTls>, agents: &[AgentInfo]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut conn = Conn::connect_with(api, tls).await?;
    for a in agents {
        let path = format!("/api/v1/nodes/{}", a.name);
        loop {
            let node = conn.call_json(Method::GET, &path, None, StatusCode::OK).await;
            if node.as_ref().is_ok_and(is_ready) {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {} was not Ready within {READY_TIMEOUT:?}; see {}.log", a.name, a.name);
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
    Ok(())
}

fn is_ready(node: &serde_json::Value) -> bool {
    let conditions = node["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The runtime an agent's argv names.
pub fn runtime_of(agent: &AgentInfo) -> &str {
    let at = agent.argv.iter().position(|a| a == "--runtime");
    at.and_then(|i| agent.argv.get(i + 1)).map_or("fake", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_get_distinct_ports_and_name_their_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<String> = (1..=3).map(node_name).collect();
        let agents = plan(dir.path(), &[], &nodes, RuntimeChoice::Process, Path::new("/x.sock"), None).unwrap();
        let port = |a: &AgentInfo| a.argv[a.argv.iter().position(|x| x == "--port").unwrap() + 1].clone();
        let mut ports: Vec<String> = agents.iter().map(port).collect();
        ports.dedup();
        assert_eq!(ports.len(), 3);
        assert!(agents.iter().all(|a| runtime_of(a) == "process"));
        assert_eq!(agents[2].name, "agent-3");
    }
}
