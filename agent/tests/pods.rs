//! Pods bound to an agent's node, run by the fake runtime, against a real API server over
//! HTTP: status, restarts, Job-style pods, deletion, adoption after an agent restart.

mod support;

use std::time::Duration;

use flotilla_agent::runtime::Runtime;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::core::v1::Pod;
use support::*;

const NODE: &str = "worker-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_pod_reaches_running_and_ready_with_its_status() {
    let cluster = Cluster::start(1).await;
    cluster.start_agent(cluster.agent_config(Duration::from_secs(10)), node_config(NODE), runtime());
    create_bound(&cluster, &pod("web", "nginx:1.27", "Always"), NODE).await;
    let p = wait_pod(&cluster, "web", "Running and Ready", |p| phase(p) == "Running" && is_ready(p)).await;
    let status = p.status.as_ref().unwrap();
    assert_eq!(status.host_ip.as_deref(), Some("192.0.2.10"));
    assert!(status.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.200.0.")), "{:?}", status.pod_ip);
    assert!(status.start_time.is_some());
    let conditions = status.conditions.as_ref().unwrap();
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(conditions.iter().any(|c| c.type_ == t && c.status == "True"), "{t} True");
    }
    let c = app_status(&p).unwrap();
    assert_eq!((c.name.as_str(), c.image.as_str(), c.restart_count, c.ready), ("app", "nginx:1.27", 0, true));
    assert!(c.image_id.starts_with("sha256:"));
    assert!(c.container_id.as_deref().is_some_and(|id| id.starts_with("fake://")));
    assert!(c.state.as_ref().unwrap().running.as_ref().unwrap().started_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_exiting_under_always_restarts_then_backs_off() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    // A long back-off keeps the second crash visibly in CrashLoopBackOff.
    cluster.start_agent(cluster.agent_config(Duration::from_secs(600)), node_config(NODE), rt.clone());
    let uid = create_bound(&cluster, &pod("crashy", "app:1", "Always"), NODE).await;
    wait_pod(&cluster, "crashy", "Running", |p| phase(p) == "Running" && is_ready(p)).await;

    assert!(rt.exit(&uid, "app", 3));
    let p = wait_pod(&cluster, "crashy", "restarted once", |p| {
        app_status(p).is_some_and(|c| c.restart_count == 1 && c.ready)
    })
    .await;
    let last = app_status(&p).unwrap().last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));

    assert!(rt.exit(&uid, "app", 4));
    let p = wait_pod(&cluster, "crashy", "in CrashLoopBackOff", |p| {
        let waiting = app_status(p).and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
        waiting.as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let c = app_status(&p).unwrap();
    assert_eq!(c.restart_count, 1, "held back, not restarted");
    assert_eq!(c.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 4);
    assert!(!is_ready(&p));
    assert_eq!(phase(&p), "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_style_pods_end_succeeded_or_failed() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    rt.set_exit_on_start("job:ok", Some(0));
    rt.set_exit_on_start("job:fail", Some(2));
    cluster.start_agent(cluster.agent_config(Duration::from_secs(10)), node_config(NODE), rt);
    create_bound(&cluster, &pod("ok", "job:ok", "Never"), NODE).await;
    create_bound(&cluster, &pod("fail", "job:fail", "Never"), NODE).await;
    let ok = wait_pod(&cluster, "ok", "Succeeded", |p| phase(p) == "Succeeded").await;
    let fail = wait_pod(&cluster, "fail", "Failed", |p| phase(p) == "Failed").await;
    let terminated = |p: &Pod| app_status(p).unwrap().state.as_ref().unwrap().terminated.clone().unwrap();
    assert_eq!((terminated(&ok).exit_code, terminated(&ok).reason.as_deref()), (0, Some("Completed")));
    assert_eq!(terminated(&fail).exit_code, 2);
    assert_eq!(app_status(&fail).unwrap().restart_count, 0, "Never: not restarted");
    assert!(!is_ready(&ok) && !is_ready(&fail));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_stops_its_containers_and_the_pod_disappears() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    cluster.start_agent(cluster.agent_config(Duration::from_secs(10)), node_config(NODE), rt.clone());
    let uid = create_bound(&cluster, &pod("doomed", "app:1", "Always"), NODE).await;
    wait_pod(&cluster, "doomed", "Running", |p| phase(p) == "Running").await;
    assert_eq!(rt.list_containers(Some(&uid)).await.unwrap().len(), 1);

    let api = cluster.client.api::<Pod>(Some("default"));
    let deleted = api.delete("doomed", &DeleteOptions::default()).await.unwrap();
    assert!(!deleted.gone, "a bound pod is deleted gracefully: the agent finishes it");
    wait_for("pod gone", || async { matches!(api.get("doomed").await, Err(ApiError::NotFound(_))).then_some(()) })
        .await;
    // The agent removes containers before it deletes the Pod; the wait covers the API server
    // removing a terminating pod on the agent's final status write (see the report).
    wait_for("containers and sandbox removed", || async {
        let gone = rt.list_containers(Some(&uid)).await.unwrap().is_empty()
            && rt.list_sandboxes(Some(&uid)).await.unwrap().is_empty();
        gone.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_running_containers_and_removes_those_of_deleted_pods() {
    let cluster = Cluster::start(1).await;
    let rt = runtime();
    let config = cluster.agent_config(Duration::from_secs(10));
    let first = cluster.start_agent(config.clone(), node_config(NODE), rt.clone());
    let kept = create_bound(&cluster, &pod("kept", "app:1", "Always"), NODE).await;
    let gone = create_bound(&cluster, &pod("gone", "app:1", "Always"), NODE).await;
    let before = wait_pod(&cluster, "kept", "Running", |p| phase(p) == "Running").await;
    wait_pod(&cluster, "gone", "Running", |p| phase(p) == "Running").await;
    first.cancel();

    // While the agent is away, "gone" is force-deleted.
    let api = cluster.client.api::<Pod>(Some("default"));
    let force = DeleteOptions { grace_period_seconds: Some(0), ..DeleteOptions::default() };
    api.delete("gone", &force).await.unwrap();
    let starts = rt.starts();

    cluster.start_agent(config, node_config(NODE), rt.clone());
    wait_for("containers of the deleted pod removed", || async {
        rt.list_containers(Some(&gone)).await.unwrap().is_empty().then_some(())
    })
    .await;
    let containers = rt.list_containers(Some(&kept)).await.unwrap();
    assert_eq!(containers.len(), 1);
    assert!(containers[0].is_running());
    assert_eq!(rt.starts(), starts, "nothing was started again");
    let after = api.get("kept").await.unwrap();
    assert_eq!(app_status(&after).unwrap().container_id, app_status(&before).unwrap().container_id);
}
