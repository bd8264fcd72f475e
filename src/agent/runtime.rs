//! `flotilla agent --runtime`: which container runtime runs the pods, and its flags.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flotilla_agent::runtime::containerd::{ContainerdOptions, ContainerdRuntime};
use flotilla_agent::runtime::docker::{DockerOptions, DockerRuntime};
use flotilla_agent::runtime::fake::FakeRuntime;
use flotilla_agent::runtime::process::ProcessRuntime;
use flotilla_agent::runtime::Runtime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// In-memory: containers "run" without running anything (for simulations and tests).
    Fake,
    /// Host processes, one process group per container: NO isolation (like Nomad's raw_exec).
    Process,
    /// Docker Engine: a sandbox container per pod on a user-defined bridge network.
    Docker,
    /// containerd's API: runc containers in a network namespace per pod, set up with CNI.
    Containerd,
}

/// Flags of the runtimes.
#[derive(Args, Debug)]
pub struct RuntimeArgs {
    /// Which container runtime runs the pods.
    #[arg(long, env = "FLOTILLA_AGENT_RUNTIME", value_enum, default_value = "fake")]
    pub runtime: RuntimeKind,
    /// Docker: the user-defined bridge network pods join (created if missing).
    #[arg(long, default_value = "flotilla")]
    docker_network: String,
    /// Docker: the network's subnet when it is created.
    #[arg(long, default_value = "10.244.0.0/16")]
    docker_subnet: String,
    /// Docker: the image of every pod's sandbox container (present locally; see
    /// scripts/make-test-image).
    #[arg(long, default_value = flotilla_agent::runtime::docker::TEST_IMAGE)]
    pause_image: String,
    /// containerd: the daemon's socket (`scripts/start-containerd` starts a private one at
    /// the default path).
    #[arg(long, default_value = DEFAULT_CONTAINERD_SOCKET)]
    containerd_address: std::path::PathBuf,
    /// containerd: the namespace pods and images live in.
    #[arg(long, default_value = "flotilla")]
    containerd_namespace: String,
    /// containerd: the pod subnet of the CNI bridge `flotilla-cni0`.
    #[arg(long, default_value = "10.245.0.0/16")]
    cni_subnet: String,
    /// containerd: where CNI's host-local plugin records address allocations; agents
    /// sharing the bridge must share it.
    #[arg(long, default_value = "/var/lib/flotilla/cni-ipam")]
    cni_ipam_dir: std::path::PathBuf,
}

/// The socket of the private daemon `scripts/start-containerd` and `flotilla up` start.
pub const DEFAULT_CONTAINERD_SOCKET: &str = "/var/tmp/flotilla-containerd/containerd.sock";

impl RuntimeArgs {
    /// The runtime of node `node` whose files live in `data_dir`, with `address` its IP.
    pub async fn build(&self, node: &str, data_dir: &Path, address: &str) -> anyhow::Result<Arc<dyn Runtime>> {
        Ok(match self.runtime {
            RuntimeKind::Fake => Arc::new(FakeRuntime::new(std::net::Ipv4Addr::new(10, 88, 0, 0))),
            RuntimeKind::Process => Arc::new(
                ProcessRuntime::new(&data_dir.join("process"), address.to_string())
                    .context("starting the process runtime")?,
            ),
            RuntimeKind::Docker => {
                let options = DockerOptions {
                    network: self.docker_network.clone(),
                    subnet: self.docker_subnet.clone(),
                    pause_image: self.pause_image.clone(),
                    scope: Some(scope(node, data_dir)?),
                    ..DockerOptions::default()
                };
                Arc::new(DockerRuntime::connect(options).await.context("connecting to the Docker daemon")?)
            }
            RuntimeKind::Containerd => {
                let options = ContainerdOptions {
                    socket: self.containerd_address.clone(),
                    namespace: self.containerd_namespace.clone(),
                    subnet: self.cni_subnet.clone(),
                    state_dir: data_dir.join("containerd"),
                    ipam_dir: Some(self.cni_ipam_dir.clone()),
                    scope: Some(scope(node, data_dir)?),
                    ..ContainerdOptions::default()
                };
                let socket = options.socket.display().to_string();
                let runtime = ContainerdRuntime::new(options).await;
                Arc::new(runtime.with_context(|| format!("connecting to containerd at {socket}"))?)
            }
        })
    }
}

/// This agent's runtime scope ([`flotilla_agent::runtime::scope`]).
pub fn scope(node: &str, data_dir: &Path) -> anyhow::Result<String> {
    flotilla_agent::runtime::scope(node, data_dir).with_context(|| format!("resolving {}", data_dir.display()))
}
