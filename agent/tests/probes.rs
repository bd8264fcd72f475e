//! Probes and lifecycle hooks through the whole agent (worker, probe scheduling, status
//! writes) against a real API server, with the fake runtime's scriptable exec.

mod support;

use std::time::Duration;

use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, LifecycleHandler, Pod, Probe};
use support::*;

const NODE: &str = "worker-1";

/// Agent settings whose pod resync (60 s) is far beyond every wait here: probe results
/// must wake the pod's worker by themselves.
fn config(cluster: &Cluster) -> flotilla_agent::AgentConfig {
    flotilla_agent::AgentConfig { pod_resync: Duration::from_secs(60), ..cluster.agent_config(Duration::from_secs(10)) }
}

fn exec_probe(command: &str, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction { command: Some(vec![command.into()]) }),
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn with_app(mut pod: Pod, f: impl FnOnce(&mut k8s_openapi::api::core::v1::Container)) -> Pod {
    f(&mut pod.spec.as_mut().unwrap().containers[0]);
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    cluster.start_agent(config(&cluster), node_config(NODE), rt.clone());
    let pod = with_app(pod("live", "app:1", "Always"), |c| c.liveness_probe = Some(exec_probe("alive", 2)));
    let uid = create_bound(&cluster, &pod, NODE).await;
    wait_pod(&cluster, "live", "Running and Ready", |p| phase(p) == "Running" && is_ready(p)).await;
    wait_for("a liveness exec", || async { rt.execs().iter().any(|e| e.command == ["alive"]).then_some(()) }).await;

    rt.set_exec_result(&uid, "app", 1);
    let p = wait_pod(&cluster, "live", "restarted", |p| app_status(p).is_some_and(|c| c.restart_count >= 1)).await;
    let last = app_status(&p).unwrap().last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, flotilla_agent::runtime::fake::STOPPED_EXIT_CODE, "killed by the agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_gates_the_ready_condition() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    cluster.start_agent(config(&cluster), node_config(NODE), rt.clone());
    let pod = with_app(pod("ready", "app:1", "Always"), |c| c.readiness_probe = Some(exec_probe("ready", 1)));
    let uid = create_bound(&cluster, &pod, NODE).await;
    wait_pod(&cluster, "ready", "Ready", is_ready).await;

    rt.set_exec_result(&uid, "app", 1);
    let p = wait_pod(&cluster, "ready", "not Ready", |p| phase(p) == "Running" && !is_ready(p)).await;
    let c = app_status(&p).unwrap();
    assert!(!c.ready && c.state.as_ref().unwrap().running.is_some(), "running, not ready");

    rt.set_exec_result(&uid, "app", 0);
    let p = wait_pod(&cluster, "ready", "Ready again", is_ready).await;
    assert_eq!(app_status(&p).unwrap().restart_count, 0, "readiness never restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_runs_its_pre_stop_hook_first() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    cluster.start_agent(config(&cluster), node_config(NODE), rt.clone());
    let pod = with_app(pod("hooked", "app:1", "Always"), |c| {
        let drain =
            LifecycleHandler { exec: Some(ExecAction { command: Some(vec!["drain".into()]) }), ..Default::default() };
        c.lifecycle = Some(Lifecycle { pre_stop: Some(drain), ..Lifecycle::default() });
    });
    create_bound(&cluster, &pod, NODE).await;
    wait_pod(&cluster, "hooked", "Running", |p| phase(p) == "Running").await;

    let api = cluster.client.api::<Pod>(Some("default"));
    api.delete("hooked", &DeleteOptions::default()).await.unwrap();
    wait_for("pod gone", || async { matches!(api.get("hooked").await, Err(ApiError::NotFound(_))).then_some(()) })
        .await;
    let hooks: Vec<_> = rt.execs().into_iter().filter(|e| e.command == ["drain"]).collect();
    assert_eq!(hooks.len(), 1, "the preStop hook ran once, in the running container");
}
