//! The process runtime with real host processes (`/bin/sh -c ...`): exit codes, logs,
//! env and working dir, graceful and forced stops, adoption by a new runtime over the same
//! data dir, and pod-uid filtering.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use flotilla_agent::runtime::process::{ProcessRuntime, UNKNOWN_EXIT_CODE, UNKNOWN_REASON};
use flotilla_agent::runtime::{labels, ContainerInfo, ContainerSpec, ContainerState, Runtime, SandboxSpec};

/// How long a condition a test waits for may take.
const DEADLINE: Duration = Duration::from_secs(20);
const HOST_IP: &str = "192.0.2.7";

async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    flotilla_store::testing::wait_for(DEADLINE, what, probe).await
}

fn runtime(dir: &Path) -> ProcessRuntime {
    ProcessRuntime::new(dir, HOST_IP).expect("process runtime")
}

fn pod_labels(uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::POD_UID.to_string(), uid.to_string()),
        (labels::POD_NAME.to_string(), format!("pod-{uid}")),
        (labels::POD_NAMESPACE.to_string(), "default".to_string()),
    ])
}

fn shell(uid: &str, name: &str, script: &str) -> ContainerSpec {
    let mut labels = pod_labels(uid);
    labels.insert(labels::CONTAINER_NAME.to_string(), name.to_string());
    labels.insert(labels::ATTEMPT.to_string(), "0".to_string());
    ContainerSpec {
        pod_uid: uid.to_string(),
        name: name.to_string(),
        attempt: 0,
        image: "busybox:1.36".to_string(),
        command: vec!["/bin/sh".to_string(), "-c".to_string()],
        args: vec![script.to_string()],
        env: vec![],
        working_dir: None,
        labels,
        ..ContainerSpec::default()
    }
}

/// Create pod `uid`'s sandbox (once) and start `spec` in it; the container's id.
async fn run(rt: &ProcessRuntime, spec: &ContainerSpec) -> String {
    let uid = &spec.pod_uid;
    let sandbox = match rt.list_sandboxes(Some(uid)).await.unwrap().into_iter().next() {
        Some(s) => s,
        None => {
            let s = SandboxSpec {
                pod_uid: uid.clone(),
                pod_namespace: "default".into(),
                pod_name: format!("pod-{uid}"),
                hostname: format!("pod-{uid}"),
                labels: pod_labels(uid),
                ..SandboxSpec::default()
            };
            rt.create_sandbox(&s).await.unwrap()
        }
    };
    let id = rt.create_container(&sandbox.id, spec).await.unwrap();
    rt.start_container(&id).await.unwrap();
    id
}

async fn exited(rt: &ProcessRuntime, id: &str) -> (i32, Option<String>) {
    wait_for("the container to exit", || async {
        match rt.inspect_container(id).await.unwrap().state {
            ContainerState::Exited { exit_code, reason, .. } => Some((exit_code, reason)),
            _ => None,
        }
    })
    .await
}

async fn log_contains(rt: &ProcessRuntime, id: &str, text: &str) {
    let what = format!("{text:?} in the log of {id}");
    wait_for(&what, || async { String::from_utf8_lossy(&rt.logs(id).await.unwrap()).contains(text).then_some(()) })
        .await;
}

#[tokio::test]
async fn a_container_that_prints_its_env_and_exits_3_is_exited_3_with_its_output_logged() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut events = rt.events().expect("the process runtime announces exits");
    let mut spec = shell("u1", "app", "echo \"greeting=$GREETING cwd=$(pwd)\"; echo oops >&2; exit 3");
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.working_dir = Some("/tmp".into());
    let id = run(&rt, &spec).await;

    assert_eq!(exited(&rt, &id).await, (3, None));
    let log = String::from_utf8(rt.logs(&id).await.unwrap()).unwrap();
    assert!(log.contains("greeting=hello cwd=/tmp"), "{log}");
    assert!(log.contains("oops"), "stderr goes to the log too: {log}");
    assert_eq!(events.recv().await.unwrap().pod_uid, "u1");
    let info = rt.inspect_container(&id).await.unwrap();
    assert_eq!(ContainerInfo::identity(&info.labels), Some(("u1".into(), "app".into(), 0)));
    let sandbox = rt.list_sandboxes(Some("u1")).await.unwrap().remove(0);
    assert_eq!(sandbox.ip.as_deref(), Some(HOST_IP), "pod IP = host IP");

    rt.remove_container(&id).await.unwrap();
    rt.remove_sandbox(&sandbox.id).await.unwrap();
    assert!(rt.list_containers(None).await.unwrap().is_empty());
    assert!(runtime(dir.path()).list_sandboxes(None).await.unwrap().is_empty(), "removals reach the disk");
}

#[tokio::test]
async fn a_container_without_a_command_fails_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut spec = shell("u1", "app", "");
    (spec.command, spec.args) = (vec![], vec![]);
    let sandbox = rt
        .create_sandbox(&SandboxSpec {
            pod_uid: "u1".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            hostname: "p".into(),
            labels: pod_labels("u1"),
            ..SandboxSpec::default()
        })
        .await
        .unwrap();
    let id = rt.create_container(&sandbox.id, &spec).await.unwrap();
    let err = rt.start_container(&id).await.unwrap_err().to_string();
    assert!(err.contains("no command"), "{err}");
    assert_eq!(exited(&rt, &id).await, (128, Some("StartError".into())));
    assert!(String::from_utf8_lossy(&rt.logs(&id).await.unwrap()).contains("no command"));
}

#[tokio::test]
async fn a_stopped_sleep_ends_by_sigterm_with_143() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let id = run(&rt, &shell("u1", "app", "exec sleep 1000")).await;
    assert!(rt.inspect_container(&id).await.unwrap().is_running());

    rt.stop_container(&id, Duration::from_secs(1)).await.unwrap();
    assert_eq!(exited(&rt, &id).await, (143, None));
    rt.stop_container(&id, Duration::from_secs(1)).await.expect("stopping a stopped container is a no-op");
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_with_137() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let id = run(&rt, &shell("u1", "app", "trap '' TERM; echo ready; while :; do sleep 1; done")).await;
    log_contains(&rt, &id, "ready").await;

    let grace = Duration::from_secs(1);
    let began = Instant::now();
    rt.stop_container(&id, grace).await.unwrap();
    assert!(began.elapsed() >= grace, "SIGKILL only after the grace period");
    assert_eq!(exited(&rt, &id).await, (137, None));
}

#[tokio::test]
async fn a_new_runtime_over_the_same_dir_adopts_a_running_container() {
    let dir = tempfile::tempdir().unwrap();
    let first = runtime(dir.path());
    let id = run(&first, &shell("u1", "app", "echo started; exec sleep 1000")).await;
    log_contains(&first, &id, "started").await;

    let second = runtime(dir.path());
    let listed = second.list_containers(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(listed[0].is_running(), "adopted, not exited: {:?}", listed[0].state);
    assert_eq!(ContainerInfo::identity(&listed[0].labels), Some(("u1".into(), "app".into(), 0)));
    assert_eq!(second.list_sandboxes(Some("u1")).await.unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&second.logs(&id).await.unwrap()).contains("started"));

    // The adopter stops it; it cannot wait for a process it did not start, so the exit
    // code is unknown to it.
    second.stop_container(&id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(exited(&second, &id).await, (UNKNOWN_EXIT_CODE, Some(UNKNOWN_REASON.into())));
    assert_eq!(exited(&first, &id).await, (143, None), "its parent saw the SIGTERM");
}

#[tokio::test]
async fn a_record_whose_pid_now_names_another_process_is_reported_exited() {
    use k8s_openapi::serde_json::{self, Value};
    let dir = tempfile::tempdir().unwrap();
    let first = runtime(dir.path());
    let id = run(&first, &shell("u1", "app", "exec sleep 1000")).await;

    // Same pid, other start time: what a reused pid looks like.
    let path = dir.path().join("containers").join(format!("{id}.json"));
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let ticks = record["start_ticks"].as_u64().expect("a running record names its start time");
    record["start_ticks"] = Value::from(ticks + 1);
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();

    let second = runtime(dir.path());
    let state = second.inspect_container(&id).await.unwrap().state;
    assert!(
        matches!(state, ContainerState::Exited { exit_code: UNKNOWN_EXIT_CODE, ref reason, .. } if reason.as_deref() == Some(UNKNOWN_REASON)),
        "{state:?}"
    );
    assert!(first.inspect_container(&id).await.unwrap().is_running(), "the other process was not signalled");
    first.stop_container(&id, Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn list_filters_by_pod_uid() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let a = run(&rt, &shell("u1", "a", "exit 0")).await;
    let b = run(&rt, &shell("u2", "b", "exit 0")).await;
    let c = run(&rt, &shell("u1", "c", "exit 0")).await;

    let ids = |list: Vec<ContainerInfo>| {
        let mut ids: Vec<String> = list.into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    let mut u1 = vec![a.clone(), c.clone()];
    u1.sort();
    assert_eq!(ids(rt.list_containers(Some("u1")).await.unwrap()), u1);
    assert_eq!(ids(rt.list_containers(Some("u2")).await.unwrap()), vec![b.clone()]);
    assert_eq!(rt.list_containers(None).await.unwrap().len(), 3);
    assert!(rt.list_containers(Some("u3")).await.unwrap().is_empty());
    assert_eq!(rt.list_sandboxes(Some("u2")).await.unwrap().len(), 1);
}
