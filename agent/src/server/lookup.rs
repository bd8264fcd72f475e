//! Finding what a request names — a pod's container, or a pod's sandbox — through the
//! runtime's labels ([`crate::runtime::labels`]), the agent's only record of containers.
//!
//! Invariants:
//! - Only containers and sandboxes carrying this pod's namespace and name labels count;
//!   the agent never serves a container it did not create.
//! - "The container" is its latest attempt; `previous` is the attempt before it. When a pod
//!   was deleted and re-created under the same name while the old one's containers linger,
//!   containers are ordered by attempt, then by runtime id (the process and fake runtimes
//!   hand ids out in creation order); the last one wins.

use crate::runtime::{labels, ContainerInfo, Runtime, SandboxInfo};

use super::error::ServerError;

fn is_pod(l: &std::collections::BTreeMap<String, String>, namespace: &str, pod: &str) -> bool {
    l.get(labels::POD_NAMESPACE).is_some_and(|n| n == namespace) && l.get(labels::POD_NAME).is_some_and(|n| n == pod)
}

fn pod_not_found(namespace: &str, pod: &str) -> ServerError {
    ServerError::NotFound(format!("pod {namespace}/{pod} is not running on this node"))
}

/// Container `container` of pod `namespace/pod`: the latest attempt, or the one before it.
pub async fn container(
    runtime: &dyn Runtime,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<ContainerInfo, ServerError> {
    let all = runtime.list_containers(None).await?;
    let mut of_pod: Vec<ContainerInfo> = all.into_iter().filter(|c| is_pod(&c.labels, namespace, pod)).collect();
    if of_pod.is_empty() {
        return Err(pod_not_found(namespace, pod));
    }
    of_pod.retain(|c| c.name == container);
    of_pod.sort_by(|a, b| (a.attempt, &a.id).cmp(&(b.attempt, &b.id)));
    let wanted = if previous { of_pod.len().checked_sub(2) } else { of_pod.len().checked_sub(1) };
    match wanted {
        Some(i) => Ok(of_pod.swap_remove(i)),
        None if previous && !of_pod.is_empty() => Err(ServerError::BadRequest(format!(
            "previous terminated container \"{container}\" in pod \"{pod}\" not found"
        ))),
        None => {
            Err(ServerError::NotFound(format!("container {container} of pod {namespace}/{pod} not found on this node")))
        }
    }
}

/// The sandbox of pod `namespace/pod` (the newest, if a re-created pod left an old one).
pub async fn sandbox(runtime: &dyn Runtime, namespace: &str, pod: &str) -> Result<SandboxInfo, ServerError> {
    let mut all = runtime.list_sandboxes(None).await?;
    all.retain(|s| is_pod(&s.labels, namespace, pod));
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all.pop().ok_or_else(|| pod_not_found(namespace, pod))
}
