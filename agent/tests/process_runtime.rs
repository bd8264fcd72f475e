//! The process runtime with real host processes (`/bin/sh -c ...`): the conformance checks
//! that apply to a runtime without images, isolation, log options or exec (see
//! `conformance/mod.rs`), plus what is the process runtime's own: a container without a
//! command, adoption's unknown exit codes, and pids reused by other processes.

mod conformance;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use conformance::Subject;
use flotilla_agent::runtime::process::{ProcessRuntime, UNKNOWN_EXIT_CODE, UNKNOWN_REASON};
use flotilla_agent::runtime::{ContainerState, Runtime};

const HOST_IP: &str = "192.0.2.7";

fn runtime(dir: &Path) -> ProcessRuntime {
    ProcessRuntime::new(dir, HOST_IP).expect("process runtime")
}

fn subject(dir: &Path) -> Subject {
    Subject { runtime: Arc::new(runtime(dir)), image: "busybox:1.36".to_string(), exit_reasons: false }
}

/// A test running conformance check `$check` in a fresh pod over a fresh data dir.
macro_rules! conformance_test {
    ($($name:ident => $check:path;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let s = subject(dir.path());
            let uid = conformance::unique_uid(stringify!($name));
            $check(&s, &uid).await;
            conformance::cleanup(&*s.runtime, &uid).await;
        }
    )*};
}

conformance_test! {
    sandbox_lifecycle => conformance::sandbox_lifecycle;
    container_identity_and_listing => conformance::container_identity_and_listing;
    exit_codes_and_reasons => conformance::exit_codes_and_reasons;
    env_working_dir_and_output => conformance::env_working_dir_and_output;
    events_announce_exits => conformance::events_announce_exits;
    stop_honours_sigterm => conformance::stop_honours_sigterm;
    stop_kills_after_grace => conformance::stop_kills_after_grace;
    remove_container => conformance::remove_container;
}

#[tokio::test]
async fn the_pod_ip_is_the_host_ip_and_removals_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = subject(dir.path());
    let sandbox = conformance::sandbox(&*s.runtime, "u1").await;
    assert_eq!(sandbox.ip.as_deref(), Some(HOST_IP));
    s.runtime.remove_sandbox(&sandbox.id).await.unwrap();
    assert!(runtime(dir.path()).list_sandboxes(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_container_without_a_command_fails_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = subject(dir.path());
    let rt = &*s.runtime;
    let mut spec = conformance::shell(&s, "u1", "app", "");
    (spec.command, spec.args) = (vec![], vec![]);
    let sandbox = conformance::sandbox(rt, "u1").await;
    let id = rt.create_container(&sandbox.id, &spec).await.unwrap();
    let err = rt.start_container(&id).await.unwrap_err().to_string();
    assert!(err.contains("no command"), "{err}");
    assert_eq!(conformance::exited(rt, &id).await, (128, Some("StartError".into())));
    assert!(String::from_utf8_lossy(&rt.logs(&id).await.unwrap()).contains("no command"));
}

#[tokio::test]
async fn an_adopter_stopping_a_container_cannot_know_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = subject(dir.path());
    let reopen = || async { Arc::new(runtime(dir.path())) as Arc<dyn Runtime> };
    let (second, id) = conformance::adoption(&s, "u1", reopen).await;

    // It cannot wait for a process it did not start, so the exit code is unknown to it.
    second.stop_container(&id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(conformance::exited(&*second, &id).await, (UNKNOWN_EXIT_CODE, Some(UNKNOWN_REASON.into())));
    assert_eq!(conformance::exited(&*s.runtime, &id).await, (143, None), "its parent saw the SIGTERM");
}

#[tokio::test]
async fn a_record_whose_pid_now_names_another_process_is_reported_exited() {
    use k8s_openapi::serde_json::{self, Value};
    let dir = tempfile::tempdir().unwrap();
    let s = subject(dir.path());
    let first = &*s.runtime;
    let id = conformance::run(first, &conformance::shell(&s, "u1", "app", "exec sleep 1000")).await;

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
