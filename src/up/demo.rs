//! The demo `flotilla up` applies once its agents' nodes are Ready (unless `--no-demo`, and
//! never without agents): a Deployment `demo` of [`PODS`] pods, and where the pods serve
//! something, a NodePort Service `demo`, so the first `kubectl get pods` shows work running.
//!
//! What runs depends on the agents' runtime:
//! - docker, containerd: busybox `httpd` serving the pod's hostname, from the local test
//!   image ([`IMAGE`], `imagePullPolicy: Never`: no registry is reachable), ready once it
//!   answers. The Service's NodePort answers on the host only where the agents program
//!   Services (as root, with `nft`), so `up` tries it from the host before suggesting curl.
//! - process: containers are host processes sharing the host's network, so three httpd on
//!   one port would clash; the pods print their name and sleep, and there is no Service
//!   (the process runtime runs none).
//! - fake: the same Deployment without a probe; its pods are reported Running, nothing runs.
//!
//! Applying is create-if-absent: on a resumed cluster an existing demo, perhaps changed by
//! the user, is left as it is. The demo failing (a missing image) does not fail `up`: the
//! cluster works, and the outcome says what is wrong.

use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::bench_api::client::Conn;

/// The local test image `scripts/make-test-image` builds.
pub const IMAGE: &str = "flotilla/busybox:latest";
/// The Deployment's replicas.
pub const PODS: usize = 3;
/// How long `up` waits for the demo's pods to be Running and Ready: a first docker start
/// of three pods takes a few seconds; anything much slower is worth reporting instead.
const PODS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the NodePort may take to answer from the host once the pods are ready (the
/// agents' rules follow the Endpoints within a sync).
const NODE_PORT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on creating one object (`Conn::send` has no bound of its own).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between looks at the pods and the NodePort.
const POLL: Duration = Duration::from_millis(250);
/// Waiting reasons that will not clear by themselves (the user must act).
const STUCK: [&str; 4] = ["ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"];

/// What the demo is on a runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// httpd pods and a NodePort Service (docker, containerd).
    Web,
    /// Host processes that sleep (process).
    Sleepers,
    /// Pods that run nowhere (fake).
    Hollow,
}

impl Kind {
    pub fn for_runtime(runtime: &str) -> Self {
        match runtime {
            "docker" | "containerd" => Kind::Web,
            "process" => Kind::Sleepers,
            _ => Kind::Hollow,
        }
    }

    /// A few words for the progress line.
    pub fn describe(self) -> String {
        match self {
            Kind::Web => format!("Deployment demo ({PODS} httpd pods) and NodePort Service demo"),
            Kind::Sleepers => format!("Deployment demo ({PODS} pods running as host processes)"),
            Kind::Hollow => format!("Deployment demo ({PODS} pods; the fake runtime runs nothing)"),
        }
    }
}

/// How the demo ended up.
#[derive(Debug)]
pub struct Outcome {
    pub kind: Kind,
    /// Pods Running and Ready when `up` stopped waiting.
    pub ready: usize,
    /// Why pods are not running, when a waiting reason says so (`ErrImageNeverPull`).
    pub stuck: Option<String>,
    /// The Service's node port (web demo only).
    pub node_port: Option<u16>,
    /// The node port answered on 127.0.0.1.
    pub node_port_answers: bool,
}

impl Outcome {
    /// The end of the progress line.
    pub fn summary(&self) -> String {
        let mut s = format!("{}/{PODS} pods ready", self.ready);
        if let Some(reason) = &self.stuck {
            s.push_str(&format!(" ({reason})"));
        }
        if let (Some(port), true) = (self.node_port, self.node_port_answers) {
            s.push_str(&format!(", http://127.0.0.1:{port}/ answers"));
        }
        s
    }
}

/// Apply the demo through the API at `api` (any replica, or the balancer) and wait for it.
pub async fn apply(
    api: &str,
    tls: Option<&crate::dial::ClientTls>,
    kind: Kind,
    services: bool,
) -> anyhow::Result<Outcome> {
    let mut conn = Conn::connect_with(api, tls).await?;
    create(&mut conn, "/apis/apps/v1/namespaces/default/deployments", &deployment(kind)).await?;
    let node_port = match kind {
        Kind::Web => {
            let svc = create(&mut conn, "/api/v1/namespaces/default/services", &service()).await?;
            svc["spec"]["ports"][0]["nodePort"].as_u64().and_then(|p| u16::try_from(p).ok())
        }
        Kind::Sleepers | Kind::Hollow => None,
    };
    let (ready, stuck) = wait_pods(&mut conn).await?;
    let node_port_answers = match node_port {
        Some(port) if services && ready > 0 => answers(port).await,
        _ => false,
    };
    Ok(Outcome { kind, ready, stuck, node_port, node_port_answers })
}

/// Create `body` in the collection at `path` unless an object of its name exists; the
/// object as stored.
async fn create(conn: &mut Conn, path: &str, body: &Value) -> anyhow::Result<Value> {
    let name = body["metadata"]["name"].as_str().context("the demo object has a name")?;
    let exchange = async {
        let resp = conn.send(Method::POST, path, Some(body)).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    };
    let (status, bytes) =
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.with_context(|| format!("POST {path}: no answer"))??;
    match status {
        StatusCode::CREATED | StatusCode::OK => serde_json::from_slice(&bytes).context("the created object"),
        StatusCode::CONFLICT => conn.call_json(Method::GET, &format!("{path}/{name}"), None, StatusCode::OK).await,
        other => bail!("POST {path}: HTTP {other}: {}", String::from_utf8_lossy(&bytes)),
    }
}

/// Wait until every demo pod is Running and Ready, a pod is stuck, or [`PODS_TIMEOUT`];
/// the ready count and the stuck reason.
async fn wait_pods(conn: &mut Conn) -> anyhow::Result<(usize, Option<String>)> {
    let deadline = Instant::now() + PODS_TIMEOUT;
    loop {
        let list = conn
            .call_json(Method::GET, "/api/v1/namespaces/default/pods?labelSelector=app%3Ddemo", None, StatusCode::OK)
            .await;
        let (ready, stuck) = match &list {
            Ok(list) => pods_state(list),
            Err(_) => (0, None), // a replica changing leader: look again
        };
        if ready >= PODS || stuck.is_some() || Instant::now() > deadline {
            return Ok((ready, stuck));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Ready pods in a pod list, and the first stuck waiting reason.
fn pods_state(list: &Value) -> (usize, Option<String>) {
    let pods = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let ready = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .filter(|p| {
            let conditions = p["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
            conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count();
    let stuck = pods
        .iter()
        .flat_map(|p| p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["state"]["waiting"]["reason"].as_str().map(str::to_string))
        .find(|reason| STUCK.contains(&reason.as_str()));
    (ready, stuck)
}

/// Whether `GET /` on 127.0.0.1:`port` answers 200 within [`NODE_PORT_TIMEOUT`].
async fn answers(port: u16) -> bool {
    let Ok(target) = crate::dial::Target::new(&format!("http://127.0.0.1:{port}"), None) else { return false };
    let deadline = Instant::now() + NODE_PORT_TIMEOUT;
    while Instant::now() < deadline {
        if crate::lb::http_status(&target, "/").await.is_ok_and(|code| code == 200) {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

fn deployment(kind: Kind) -> Value {
    let container = match kind {
        Kind::Web => json!({
            "name": "httpd",
            "image": IMAGE,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"],
            "ports": [{"containerPort": 80, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 2},
        }),
        Kind::Sleepers => json!({
            "name": "app",
            "image": IMAGE,
            // An hour, then a restart: pods of a stopped agent keep running (adopted when it
            // comes back), so a forgotten demo does not linger for long.
            "command": ["sh", "-c", "echo \"$POD_NAME runs as a host process, without isolation\"; exec sleep 3600"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        }),
        Kind::Hollow => json!({"name": "app", "image": IMAGE, "imagePullPolicy": "Never"}),
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": "default", "labels": {"app": "demo"}},
        "spec": {
            "replicas": PODS,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {"metadata": {"labels": {"app": "demo"}}, "spec": {"containers": [container]}},
        },
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo", "namespace": "default", "labels": {"app": "demo"}},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "demo"},
            "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_pods_are_counted_and_a_missing_image_is_stuck() {
        let list = json!({"items": [
            {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
            {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}},
            {"status": {"phase": "Pending", "containerStatuses": [
                {"state": {"waiting": {"reason": "ContainerCreating"}}}]}},
        ]});
        assert_eq!(pods_state(&list), (1, None), "ContainerCreating clears by itself");
        let list = json!({"items": [{"status": {"phase": "Pending", "containerStatuses": [
            {"state": {"waiting": {"reason": "ErrImageNeverPull"}}}]}}]});
        assert_eq!(pods_state(&list), (0, Some("ErrImageNeverPull".into())));
    }

    #[test]
    fn only_runtimes_that_run_containers_get_the_web_demo() {
        assert_eq!(Kind::for_runtime("docker"), Kind::Web);
        assert_eq!(Kind::for_runtime("containerd"), Kind::Web);
        assert_eq!(Kind::for_runtime("process"), Kind::Sleepers);
        assert_eq!(Kind::for_runtime("fake"), Kind::Hollow);
        let web = deployment(Kind::Web);
        assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert!(deployment(Kind::Hollow)["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_null());
    }
}
