//! The runtime conformance suite: the [`Runtime`] trait's contract as plain async
//! functions over a [`Subject`] (a runtime plus the image to run), like openraft's storage
//! suite. Each runtime's test file runs, as one `#[tokio::test]` each, the checks that
//! apply to it: the process runtime has no image, isolation, logs options or exec, so
//! it runs only the lifecycle checks here; Docker runs all of them.
//!
//! Contract of every check: it works in the pod `uid` it is given (unique per test, so
//! checks run in parallel, even against one daemon), uses sandboxes and containers of
//! that pod only, and leaves them behind for the caller's [`cleanup`] (which callers
//! back with a runtime-specific guard, so a failed check leaves nothing either).
//! Checks wait for conditions with a deadline; none sleeps and hopes.
//!
//! Layout: lifecycle checks here; logs and exec in [`streams`]; network, mounts, limits
//! and security in [`isolation`].

// Each runtime's test file runs only the checks that apply to it.
#![allow(dead_code)]

pub mod isolation;
pub mod streams;

/// Every check, for runtimes that isolate containers (docker, containerd): `$test` is the
/// calling file's macro that turns `name => check;` pairs into `#[tokio::test]`s. (The
/// process runtime runs only some checks, so its test file leaves this unused.)
#[allow(unused_macros)]
macro_rules! every_check {
    ($test:ident) => {
        $test! {
            sandbox_lifecycle => conformance::sandbox_lifecycle;
            container_identity_and_listing => conformance::container_identity_and_listing;
            exit_codes_and_reasons => conformance::exit_codes_and_reasons;
            env_working_dir_and_output => conformance::env_working_dir_and_output;
            events_announce_exits => conformance::events_announce_exits;
            stop_honours_sigterm => conformance::stop_honours_sigterm;
            stop_kills_after_grace => conformance::stop_kills_after_grace;
            remove_container => conformance::remove_container;
            missing_image => conformance::missing_image;
            logs_with_options => conformance::streams::logs_with_options;
            logs_follow => conformance::streams::logs_follow;
            exec_output_and_exit_code => conformance::streams::exec_output_and_exit_code;
            exec_stdin => conformance::streams::exec_stdin;
            exec_tty_and_resize => conformance::streams::exec_tty_and_resize;
            containers_of_a_pod_share_localhost => conformance::isolation::containers_of_a_pod_share_localhost;
            host_port_is_published => conformance::isolation::host_port_is_published;
            bind_mounts => conformance::isolation::bind_mounts;
            memory_limit_is_applied => conformance::isolation::memory_limit_is_applied;
            run_as_user => conformance::isolation::run_as_user;
            read_only_root_filesystem => conformance::isolation::read_only_root_filesystem;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use every_check;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_agent::runtime::{labels, ContainerInfo, ContainerSpec, ContainerState, Runtime, RuntimeError};
use flotilla_agent::runtime::{SandboxInfo, SandboxSpec};

/// How long a condition a check waits for may take (container starts on a loaded CI
/// machine with two cores and parallel tests).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// What a check runs against.
pub struct Subject {
    pub runtime: Arc<dyn Runtime>,
    /// The image containers run (ignored by the process runtime).
    pub image: String,
    /// Whether exits carry the kubelet's reasons (`Completed`, `Error`); the process
    /// runtime reports none for an ordinary exit.
    pub exit_reasons: bool,
}

pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    flotilla_store::testing::wait_for(DEADLINE, what, probe).await
}

/// A unique pod uid for one test (tests of one file run in parallel processes).
pub fn unique_uid(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("conf-{test}-{}-{nanos:08x}", std::process::id())
}

pub fn pod_labels(uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::POD_UID.to_string(), uid.to_string()),
        (labels::POD_NAME.to_string(), "pod".to_string()),
        (labels::POD_NAMESPACE.to_string(), "conformance".to_string()),
    ])
}

pub fn sandbox_spec(uid: &str) -> SandboxSpec {
    SandboxSpec {
        pod_uid: uid.to_string(),
        pod_namespace: "conformance".to_string(),
        pod_name: "pod".to_string(),
        hostname: "pod".to_string(),
        labels: pod_labels(uid),
        ports: vec![],
    }
}

/// Container `name` (attempt 0) of pod `uid` running `script` with `/bin/sh -c`.
pub fn shell(s: &Subject, uid: &str, name: &str, script: &str) -> ContainerSpec {
    let mut labels = pod_labels(uid);
    labels.insert(labels::CONTAINER_NAME.to_string(), name.to_string());
    labels.insert(labels::ATTEMPT.to_string(), "0".to_string());
    ContainerSpec {
        pod_uid: uid.to_string(),
        name: name.to_string(),
        attempt: 0,
        image: s.image.clone(),
        command: vec!["/bin/sh".to_string(), "-c".to_string()],
        args: vec![script.to_string()],
        labels,
        ..ContainerSpec::default()
    }
}

/// Pod `uid`'s sandbox, created on first use.
pub async fn sandbox(rt: &dyn Runtime, uid: &str) -> SandboxInfo {
    match rt.list_sandboxes(Some(uid)).await.unwrap().into_iter().next() {
        Some(s) => s,
        None => rt.create_sandbox(&sandbox_spec(uid)).await.unwrap(),
    }
}

/// Create `spec` in its pod's sandbox and start it; the container's id.
pub async fn run(rt: &dyn Runtime, spec: &ContainerSpec) -> String {
    let sandbox = sandbox(rt, &spec.pod_uid).await;
    let id = rt.create_container(&sandbox.id, spec).await.unwrap();
    rt.start_container(&id).await.unwrap();
    id
}

/// Exit code and reason, once container `id` has exited.
pub async fn exited(rt: &dyn Runtime, id: &str) -> (i32, Option<String>) {
    wait_for("the container to exit", || async {
        match rt.inspect_container(id).await.unwrap().state {
            ContainerState::Exited { exit_code, reason, .. } => Some((exit_code, reason)),
            _ => None,
        }
    })
    .await
}

pub async fn log_contains(rt: &dyn Runtime, id: &str, text: &str) -> String {
    let what = format!("{text:?} in the log of {id}");
    wait_for(&what, || async {
        let log = String::from_utf8_lossy(&rt.logs(id).await.unwrap()).into_owned();
        log.contains(text).then_some(log)
    })
    .await
}

/// The whole log of container `id`, which has exited (so the log is complete).
pub async fn final_log(rt: &dyn Runtime, id: &str) -> String {
    String::from_utf8_lossy(&rt.logs(id).await.unwrap()).into_owned()
}

/// Stop and remove every container and sandbox of pod `uid`.
pub async fn cleanup(rt: &dyn Runtime, uid: &str) {
    for c in rt.list_containers(Some(uid)).await.unwrap() {
        rt.stop_container(&c.id, Duration::ZERO).await.unwrap();
        rt.remove_container(&c.id).await.unwrap();
    }
    for s in rt.list_sandboxes(Some(uid)).await.unwrap() {
        rt.remove_sandbox(&s.id).await.unwrap();
    }
    assert!(rt.list_containers(Some(uid)).await.unwrap().is_empty());
}

/// A sandbox is created with the pod's labels and an IP, listed by pod, and removed
/// (twice: removing a missing one is no error).
pub async fn sandbox_lifecycle(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let created = rt.create_sandbox(&sandbox_spec(uid)).await.unwrap();
    assert_eq!(created.pod_uid, uid);
    assert!(created.ip.is_some(), "a sandbox has the pod's IP: {created:?}");
    for (k, v) in pod_labels(uid) {
        assert_eq!(created.labels.get(&k), Some(&v), "label {k}");
    }
    assert_eq!(rt.list_sandboxes(Some(uid)).await.unwrap(), vec![created.clone()]);
    assert!(rt.list_sandboxes(None).await.unwrap().iter().any(|b| b.id == created.id));
    assert!(rt.list_sandboxes(Some(&format!("{uid}-other"))).await.unwrap().is_empty());
    rt.remove_sandbox(&created.id).await.unwrap();
    assert!(rt.list_sandboxes(Some(uid)).await.unwrap().is_empty());
    rt.remove_sandbox(&created.id).await.expect("removing a missing sandbox is no error");
}

/// Containers report their identity from labels, their image, Created before start and
/// Running after, and are listed by pod.
pub async fn container_identity_and_listing(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let sandbox = sandbox(rt, uid).await;
    let mut second = shell(s, uid, "second", "exec sleep 1000");
    second.attempt = 4;
    second.labels.insert(labels::ATTEMPT.to_string(), "4".to_string());
    let a = rt.create_container(&sandbox.id, &shell(s, uid, "first", "exec sleep 1000")).await.unwrap();
    let b = rt.create_container(&sandbox.id, &second).await.unwrap();

    let info = rt.inspect_container(&a).await.unwrap();
    assert_eq!(info.state, ContainerState::Created);
    assert_eq!((info.pod_uid.as_str(), info.name.as_str(), info.attempt), (uid, "first", 0));
    assert_eq!(ContainerInfo::identity(&info.labels), Some((uid.to_string(), "first".to_string(), 0)));
    assert_eq!(info.image, s.image);
    assert_eq!(Some(info.image_id), rt.image_id(&s.image).await.unwrap(), "image_id is the image's id");
    assert_eq!(ContainerInfo::identity(&rt.inspect_container(&b).await.unwrap().labels).unwrap().2, 4);

    let mut listed: Vec<String> = rt.list_containers(Some(uid)).await.unwrap().into_iter().map(|c| c.id).collect();
    listed.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(listed, both);
    let all = rt.list_containers(None).await.unwrap();
    assert!(both.iter().all(|id| all.iter().any(|c| &c.id == id)), "listing all includes this pod's");
    assert!(rt.list_containers(Some(&format!("{uid}-other"))).await.unwrap().is_empty());

    let before = k8s_openapi::jiff::Timestamp::now() - Duration::from_secs(5);
    rt.start_container(&a).await.unwrap();
    match rt.inspect_container(&a).await.unwrap().state {
        ContainerState::Running { started_at } => assert!(started_at > before, "{started_at}"),
        other => panic!("started, so running: {other:?}"),
    }
}

/// Exit codes are the process's own; exits carry the kubelet's reasons where the runtime
/// reports them; finish follows start.
pub async fn exit_codes_and_reasons(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let ok = run(rt, &shell(s, uid, "ok", "exit 0")).await;
    let bad = run(rt, &shell(s, uid, "bad", "exit 3")).await;
    let (ok_code, ok_reason) = exited(rt, &ok).await;
    let (bad_code, bad_reason) = exited(rt, &bad).await;
    assert_eq!((ok_code, bad_code), (0, 3));
    if s.exit_reasons {
        assert_eq!((ok_reason.as_deref(), bad_reason.as_deref()), (Some("Completed"), Some("Error")));
    }
    let ContainerState::Exited { started_at, finished_at, .. } = rt.inspect_container(&bad).await.unwrap().state else {
        unreachable!("exited above")
    };
    assert!(started_at.is_some_and(|s| s <= finished_at), "{started_at:?} .. {finished_at}");
}

/// Env and working dir reach the process; stdout and stderr both reach the log.
pub async fn env_working_dir_and_output(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let mut spec = shell(s, uid, "app", "echo \"greeting=$GREETING cwd=$(pwd)\"; echo oops >&2");
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.working_dir = Some("/tmp".into());
    let id = run(rt, &spec).await;
    assert_eq!(exited(rt, &id).await.0, 0);
    let log = log_contains(rt, &id, "greeting=hello cwd=/tmp").await;
    assert!(log.contains("oops"), "stderr goes to the log too: {log}");
}

/// An exit is announced on the runtime's events with the pod's uid.
pub async fn events_announce_exits(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let mut events = rt.events().expect("this runtime announces exits");
    let id = run(rt, &shell(s, uid, "app", "exit 0")).await;
    let announced = tokio::time::timeout(DEADLINE, async {
        // Other tests' pods exit too (one daemon): wait for this one's.
        while events.recv().await.expect("event stream open").pod_uid != uid {}
    });
    announced.await.expect("the exit is announced");
    assert_eq!(exited(rt, &id).await.0, 0);
}

/// A stop sends SIGTERM, which a container may honour (here: exit 143 after a word).
pub async fn stop_honours_sigterm(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let script = "trap 'echo got TERM; exit 143' TERM; echo ready; while :; do sleep 1 & wait $!; done";
    let id = run(rt, &shell(s, uid, "app", script)).await;
    log_contains(rt, &id, "ready").await;
    rt.stop_container(&id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(exited(rt, &id).await.0, 143, "ended by its own trap, not killed");
    log_contains(rt, &id, "got TERM").await;
    rt.stop_container(&id, Duration::from_secs(1)).await.expect("stopping a stopped container is a no-op");
}

/// A container ignoring SIGTERM is killed after the grace period: exit 137.
pub async fn stop_kills_after_grace(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let id = run(rt, &shell(s, uid, "app", "trap '' TERM; echo ready; while :; do sleep 1; done")).await;
    log_contains(rt, &id, "ready").await;
    let grace = Duration::from_secs(1);
    let began = Instant::now();
    rt.stop_container(&id, grace).await.unwrap();
    assert!(began.elapsed() >= grace, "SIGKILL only after the grace period");
    assert_eq!(exited(rt, &id).await.0, 137);
}

/// Removing a container makes it unknown; removing it again is no error.
pub async fn remove_container(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let id = run(rt, &shell(s, uid, "app", "exit 0")).await;
    exited(rt, &id).await;
    rt.remove_container(&id).await.unwrap();
    assert!(matches!(rt.inspect_container(&id).await, Err(RuntimeError::NotFound { .. })));
    assert!(rt.list_containers(Some(uid)).await.unwrap().is_empty());
    rt.remove_container(&id).await.expect("removing a missing container is no error");
}

/// An image that is not present has no id, and creating from it says ImageMissing.
pub async fn missing_image(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let image = "flotilla/no-such-image:0";
    assert_eq!(rt.image_id(image).await.unwrap(), None);
    let sandbox = sandbox(rt, uid).await;
    let mut spec = shell(s, uid, "app", "exit 0");
    spec.image = image.to_string();
    assert_eq!(rt.create_container(&sandbox.id, &spec).await, Err(RuntimeError::ImageMissing(image.to_string())));
}

/// A second runtime instance (a restarted agent) lists the same running container with
/// the same identity, and its sandbox and log. Returns it and the container's id for
/// runtime-specific checks.
pub async fn adoption<F, Fut>(s: &Subject, uid: &str, reopen: F) -> (Arc<dyn Runtime>, String)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Arc<dyn Runtime>>,
{
    let first = &*s.runtime;
    let id = run(first, &shell(s, uid, "app", "echo started; exec sleep 1000")).await;
    log_contains(first, &id, "started").await;
    let sandbox = first.list_sandboxes(Some(uid)).await.unwrap();

    let second = reopen().await;
    let listed = second.list_containers(Some(uid)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(listed[0].is_running(), "adopted, not exited: {:?}", listed[0].state);
    assert_eq!(ContainerInfo::identity(&listed[0].labels), Some((uid.to_string(), "app".to_string(), 0)));
    assert_eq!(second.list_sandboxes(Some(uid)).await.unwrap(), sandbox);
    log_contains(&*second, &id, "started").await;
    (second, id)
}
