//! Pure mappings from what Docker reports (container inspect) to the agent's
//! [`ContainerInfo`] and [`SandboxInfo`].
//!
//! Rules:
//! - Identity (pod uid, container name, attempt) comes from the labels only, so a new
//!   runtime over the same daemon reports the same identity (adoption).
//! - State: `created` → Created; `running`, `paused`, `restarting` → Running; `exited`,
//!   `dead`, `removing` → Exited with reason `OOMKilled` if the kernel's OOM killer ended
//!   it, else `Completed` for exit 0 and `Error` otherwise (the kubelet's reasons).
//!   Docker writes `0001-01-01T00:00:00Z` for a time that never happened: that is `None`.
//! - Finish never precedes start. Docker stamps `StartedAt` when its start call returns
//!   and `FinishedAt` with containerd's exit time, so a process exiting at once can look
//!   finished before it started; the finish is then reported as the start.
//! - `image` is the name the container was created from; `image_id` Docker's resolved id.

use std::collections::BTreeMap;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use k8s_openapi::jiff::Timestamp;

use crate::runtime::{labels, ContainerInfo, ContainerState, RuntimeError, SandboxInfo};

/// A container from its inspect response.
pub(super) fn container_info(inspect: &ContainerInspectResponse) -> Result<ContainerInfo, RuntimeError> {
    let id = inspect.id.clone().unwrap_or_default();
    let labels = labels_of(inspect);
    let Some((pod_uid, name, attempt)) = ContainerInfo::identity(&labels) else {
        return Err(RuntimeError::Failed(format!("container {id} lacks flotilla's identity labels")));
    };
    let image = inspect.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
    Ok(ContainerInfo {
        id,
        pod_uid,
        name,
        attempt,
        image,
        image_id: inspect.image.clone().unwrap_or_default(),
        state: state_of(inspect),
        labels,
    })
}

/// A sandbox from its inspect response; its IP is its address on `network`.
pub(super) fn sandbox_info(inspect: &ContainerInspectResponse, network: &str) -> SandboxInfo {
    let labels = labels_of(inspect);
    let ip = inspect.network_settings.as_ref().and_then(|n| n.networks.as_ref()).and_then(|n| n.get(network));
    SandboxInfo {
        id: inspect.id.clone().unwrap_or_default(),
        pod_uid: labels.get(labels::POD_UID).cloned().unwrap_or_default(),
        ip: ip.and_then(|e| e.ip_address.clone()).filter(|ip| !ip.is_empty()),
        labels,
    }
}

fn labels_of(inspect: &ContainerInspectResponse) -> BTreeMap<String, String> {
    let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
    labels.map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn state_of(inspect: &ContainerInspectResponse) -> ContainerState {
    let Some(s) = inspect.state.as_ref() else { return ContainerState::Created };
    let started_at = time(s.started_at.as_deref());
    match s.status {
        None | Some(ContainerStateStatusEnum::EMPTY) | Some(ContainerStateStatusEnum::CREATED) => {
            ContainerState::Created
        }
        Some(ContainerStateStatusEnum::RUNNING)
        | Some(ContainerStateStatusEnum::PAUSED)
        | Some(ContainerStateStatusEnum::RESTARTING) => {
            ContainerState::Running { started_at: started_at.unwrap_or_else(Timestamp::now) }
        }
        Some(ContainerStateStatusEnum::EXITED)
        | Some(ContainerStateStatusEnum::DEAD)
        | Some(ContainerStateStatusEnum::REMOVING) => {
            let exit_code = i32::try_from(s.exit_code.unwrap_or(0)).unwrap_or(i32::MAX);
            let reason = match (s.oom_killed, exit_code) {
                (Some(true), _) => "OOMKilled",
                (_, 0) => "Completed",
                _ => "Error",
            };
            let finished_at = time(s.finished_at.as_deref()).or(started_at).unwrap_or_else(Timestamp::now);
            let finished_at = started_at.map_or(finished_at, |started| finished_at.max(started));
            ContainerState::Exited { exit_code, started_at, finished_at, reason: Some(reason.to_string()) }
        }
    }
}

/// A Docker time, `None` for Docker's zero time (year 1) or anything unparsable.
fn time(text: Option<&str>) -> Option<Timestamp> {
    let t: Timestamp = text?.parse().ok()?;
    (t > Timestamp::UNIX_EPOCH).then_some(t)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerConfig, ContainerState as DockerState, EndpointSettings, NetworkSettings};

    use super::*;

    fn inspect(status: ContainerStateStatusEnum, exit_code: i64, oom: bool) -> ContainerInspectResponse {
        let labels = HashMap::from([
            (labels::POD_UID.to_string(), "u1".to_string()),
            (labels::CONTAINER_NAME.to_string(), "app".to_string()),
            (labels::ATTEMPT.to_string(), "3".to_string()),
        ]);
        ContainerInspectResponse {
            id: Some("abc".into()),
            image: Some("sha256:feed".into()),
            config: Some(ContainerConfig { image: Some("busybox".into()), labels: Some(labels), ..Default::default() }),
            state: Some(DockerState {
                status: Some(status),
                exit_code: Some(exit_code),
                oom_killed: Some(oom),
                started_at: Some("2024-05-01T10:00:00.123456789Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn identity_and_image_come_from_labels_and_config() {
        let info = container_info(&inspect(ContainerStateStatusEnum::CREATED, 0, false)).unwrap();
        assert_eq!((info.pod_uid.as_str(), info.name.as_str(), info.attempt), ("u1", "app", 3));
        assert_eq!((info.image.as_str(), info.image_id.as_str()), ("busybox", "sha256:feed"));
        assert_eq!(info.state, ContainerState::Created);
    }

    #[test]
    fn a_container_without_our_labels_is_refused() {
        let mut i = inspect(ContainerStateStatusEnum::RUNNING, 0, false);
        i.config.as_mut().unwrap().labels = None;
        assert!(container_info(&i).is_err());
    }

    #[test]
    fn running_keeps_its_start_time() {
        let info = container_info(&inspect(ContainerStateStatusEnum::RUNNING, 0, false)).unwrap();
        let started_at: Timestamp = "2024-05-01T10:00:00.123456789Z".parse().unwrap();
        assert_eq!(info.state, ContainerState::Running { started_at });
    }

    #[test]
    fn exits_get_the_kubelets_reasons() {
        let reason =
            |code, oom| match container_info(&inspect(ContainerStateStatusEnum::EXITED, code, oom)).unwrap().state {
                ContainerState::Exited { exit_code, reason, finished_at, started_at } => {
                    assert_eq!(exit_code, code as i32);
                    assert_eq!(Some(finished_at), started_at, "zero finish time falls back to the start");
                    reason.unwrap()
                }
                other => panic!("{other:?}"),
            };
        assert_eq!(reason(0, false), "Completed");
        assert_eq!(reason(2, false), "Error");
        assert_eq!(reason(137, true), "OOMKilled");
    }

    #[test]
    fn an_instant_exit_does_not_finish_before_it_started() {
        let mut i = inspect(ContainerStateStatusEnum::EXITED, 0, false);
        i.state.as_mut().unwrap().finished_at = Some("2024-05-01T10:00:00.1Z".into());
        let ContainerState::Exited { started_at, finished_at, .. } = container_info(&i).unwrap().state else {
            panic!("exited")
        };
        assert_eq!(Some(finished_at), started_at);
    }

    #[test]
    fn the_sandbox_ip_is_its_address_on_our_network() {
        let mut i = inspect(ContainerStateStatusEnum::RUNNING, 0, false);
        let endpoint = EndpointSettings { ip_address: Some("10.244.0.5".into()), ..Default::default() };
        let networks = HashMap::from([("flotilla".to_string(), endpoint)]);
        i.network_settings = Some(NetworkSettings { networks: Some(networks), ..Default::default() });
        assert_eq!(sandbox_info(&i, "flotilla").ip.as_deref(), Some("10.244.0.5"));
        assert_eq!(sandbox_info(&i, "other").ip, None);
        assert_eq!(sandbox_info(&i, "flotilla").pod_uid, "u1");
    }
}
