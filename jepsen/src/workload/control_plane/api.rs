//! The Kubernetes calls of the control-plane workload, each tried on every API replica.
//!
//! Invariants: a write is `Ok` when any replica acknowledged it, `Fail` only when every
//! attempt definitely did not apply it (not sent, or a 4xx answer), `Info` otherwise; the
//! writes are idempotent (create tolerates AlreadyExists, scale sets an absolute value), so
//! retrying one after an indeterminate attempt is safe.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::http::{request, HttpError, Response};
use crate::checker::control_plane::{NodeSeen, PodSeen, ReplicaSetSeen, DOWN_TAINTS};

/// Bound on one HTTP exchange: a write through a follower waits for the leader's commit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The outcome of a write tried on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    Ok,
    Fail,
    Info,
}

/// The deployment under test and where to reach the API.
#[derive(Debug, Clone)]
pub struct Api {
    pub urls: Vec<String>,
    pub namespace: String,
    pub name: String,
    /// The prefix of the agent's node names.
    pub node_prefix: String,
}

impl Api {
    /// Sends one request to replicas in turn, starting at `start`; the first answer that
    /// is not a server error wins. Also returns whether an attempt may have been applied.
    async fn send(&self, start: usize, method: &str, path: &str, ctype: &str, body: Option<&Json>) -> Sent {
        let mut maybe_applied = false;
        for i in 0..self.urls.len() {
            let url = &self.urls[(start + i) % self.urls.len()];
            match request(url, method, path, ctype, body, REQUEST_TIMEOUT).await {
                Ok(r) if r.status < 500 => return Sent { response: Some(r), maybe_applied },
                Ok(_) => maybe_applied = true,
                Err(e) => maybe_applied |= !HttpError::not_sent(&e),
            }
        }
        Sent { response: None, maybe_applied }
    }

    async fn write(&self, start: usize, method: &str, path: &str, ctype: &str, body: &Json) -> WriteResult {
        let sent = self.send(start, method, path, ctype, Some(body)).await;
        match sent.response {
            Some(r) if r.status < 300 || (r.status == 409 && method == "POST") => WriteResult::Ok,
            _ if sent.maybe_applied => WriteResult::Info,
            _ => WriteResult::Fail,
        }
    }

    /// Creates the namespace and the deployment (AlreadyExists counts as done).
    pub async fn create(&self, start: usize, replicas: u32) -> WriteResult {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}});
        let created = self.write(start, "POST", "/api/v1/namespaces", "application/json", &ns).await;
        if created != WriteResult::Ok {
            return created;
        }
        let path = format!("/apis/apps/v1/namespaces/{}/deployments", self.namespace);
        self.write(start, "POST", &path, "application/json", &self.deployment(replicas)).await
    }

    fn deployment(&self, replicas: u32) -> Json {
        let labels = json!({"app": self.name});
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "flotilla/busybox:latest", "command": ["sleep", "3600"]}]}
                }
            }
        })
    }

    /// Sets the deployment's replicas through its `scale` subresource.
    pub async fn scale(&self, start: usize, replicas: u32) -> WriteResult {
        let path = format!("/apis/apps/v1/namespaces/{}/deployments/{}/scale", self.namespace, self.name);
        let body = json!({"spec": {"replicas": replicas}});
        self.write(start, "PATCH", &path, "application/merge-patch+json", &body).await
    }

    /// Lists the deployment's pods; `None` when no replica answered.
    pub async fn pods(&self, start: usize) -> Option<Vec<PodSeen>> {
        let path = format!("/api/v1/namespaces/{}/pods?labelSelector=app%3D{}", self.namespace, self.name);
        let items = self.list(start, &path).await?;
        Some(items.iter().map(pod_seen).collect())
    }

    /// Lists the namespace's ReplicaSets; `None` when no replica answered.
    pub async fn replica_sets(&self, start: usize) -> Option<Vec<ReplicaSetSeen>> {
        let path = format!("/apis/apps/v1/namespaces/{}/replicasets", self.namespace);
        let items = self.list(start, &path).await?;
        let count = |v: &Json| u32::try_from(v.as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
        Some(
            items
                .iter()
                .map(|rs| ReplicaSetSeen {
                    name: text(&rs["metadata"]["name"]),
                    spec_replicas: count(&rs["spec"]["replicas"]),
                    status_replicas: count(&rs["status"]["replicas"]),
                })
                .collect(),
        )
    }

    /// Lists the agent's nodes (names with [`Api::node_prefix`]); `None` when no replica
    /// answered.
    pub async fn nodes(&self, start: usize) -> Option<Vec<NodeSeen>> {
        let items = self.list(start, "/api/v1/nodes").await?;
        let ours =
            items.iter().filter(|n| n["metadata"]["name"].as_str().is_some_and(|s| s.starts_with(&self.node_prefix)));
        Some(ours.map(node_seen).collect())
    }

    async fn list(&self, start: usize, path: &str) -> Option<Vec<Json>> {
        let sent = self.send(start, "GET", path, "application/json", None).await;
        match sent.response {
            Some(Response { status: 200, body }) => body["items"].as_array().cloned(),
            _ => None,
        }
    }

    /// Deletes the namespace (and with it everything in it); best effort.
    pub async fn delete_namespace(&self) -> WriteResult {
        let path = format!("/api/v1/namespaces/{}", self.namespace);
        self.write(0, "DELETE", &path, "application/json", &json!({})).await
    }
}

struct Sent {
    response: Option<Response>,
    maybe_applied: bool,
}

fn text(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn pod_seen(pod: &Json) -> PodSeen {
    let meta = &pod["metadata"];
    let owner = meta["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["kind"] == "ReplicaSet"))
        .map(|r| text(&r["name"]))
        .unwrap_or_default();
    PodSeen {
        name: text(&meta["name"]),
        uid: text(&meta["uid"]),
        node: text(&pod["spec"]["nodeName"]),
        phase: text(&pod["status"]["phase"]),
        owner,
        terminating: !meta["deletionTimestamp"].is_null(),
    }
}

fn node_seen(node: &Json) -> NodeSeen {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| text(&c["status"]))
        .unwrap_or_default();
    let down_taints = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| text(&t["key"]))
        .filter(|k| DOWN_TAINTS.contains(&k.as_str()))
        .collect();
    NodeSeen { name: text(&node["metadata"]["name"]), ready, down_taints }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::node_seen;

    #[test]
    fn a_node_reads_its_ready_status_and_only_the_down_taints() {
        let node = json!({
            "metadata": {"name": "cp-1-0"},
            "spec": {"taints": [
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                {"key": "dedicated", "effect": "NoSchedule"}
            ]},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "Unknown"}
            ]}
        });
        let seen = node_seen(&node);
        assert_eq!((seen.name.as_str(), seen.ready.as_str()), ("cp-1-0", "Unknown"));
        assert_eq!(seen.down_taints, vec!["node.kubernetes.io/unreachable".to_string()]);
        assert!(seen.down());
        let fresh = node_seen(&json!({"metadata": {"name": "cp-1-1"}}));
        assert_eq!((fresh.ready.as_str(), fresh.down_taints.len(), fresh.down()), ("", 0, false));
    }
}
