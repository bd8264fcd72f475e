//! What containers are started with, against a real API server over HTTP: env from
//! ConfigMaps, Secrets and the downward API reaching a real process's output; volumes made
//! on the node, refreshed from the API and removed with the pod; configuration errors that
//! keep a container from being created.
//!
//! The end-to-end tests run an agent with the process runtime on a temporary data dir. The
//! step tests drive [`effects::apply`] directly over a recording in-memory runtime, so they
//! can read back the exact [`ContainerSpec`] a runtime was given.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla_agent::config::NodeConfig;
use flotilla_agent::node::host::Host;
use flotilla_agent::runtime::process::ProcessRuntime;
use flotilla_agent::runtime::Runtime;
use flotilla_agent::Agent;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapVolumeSource, Container, EnvFromSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, Pod, PodSpec, Secret, SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use support::*;

const NODE: &str = "worker-1";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..ObjectMeta::default() }
}

async fn create_config(cluster: &Cluster, name: &str, data: &[(&str, &str)]) {
    let data = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let cm = ConfigMap { metadata: meta(name), data: Some(data), ..ConfigMap::default() };
    cluster.client.api::<ConfigMap>(Some("default")).create(&cm).await.expect("configmap created");
}

async fn create_secret(cluster: &Cluster, name: &str, key: &str, value: &str) {
    let data = [(key.to_string(), ByteString(value.as_bytes().to_vec()))].into();
    let secret = Secret { metadata: meta(name), data: Some(data), ..Secret::default() };
    cluster.client.api::<Secret>(Some("default")).create(&secret).await.expect("secret created");
}

fn from_config(name: &str, cm: &str, key: &str) -> EnvVar {
    let r = ConfigMapKeySelector { name: cm.into(), key: key.into(), optional: None };
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource { config_map_key_ref: Some(r), ..Default::default() }),
        ..Default::default()
    }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    let r = SecretKeySelector { name: secret.into(), key: key.into(), optional: None };
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource { secret_key_ref: Some(r), ..Default::default() }),
        ..Default::default()
    }
}

fn from_field(name: &str, path: &str) -> EnvVar {
    let r = ObjectFieldSelector { field_path: path.into(), api_version: None };
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource { field_ref: Some(r), ..Default::default() }),
        ..Default::default()
    }
}

fn config_volume(name: &str, cm: &str) -> Volume {
    let source = ConfigMapVolumeSource { name: cm.into(), ..ConfigMapVolumeSource::default() };
    Volume { name: name.into(), config_map: Some(source), ..Volume::default() }
}

fn mount(name: &str, at: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: at.into(), ..VolumeMount::default() }
}

/// A shell pod that prints its configuration, with a configMap volume.
fn printing_pod(name: &str, restart: &str, script: &str) -> Pod {
    let container = Container {
        name: "app".into(),
        image: Some("busybox:1.36".into()),
        command: Some(vec!["/bin/sh".into(), "-c".into()]),
        args: Some(vec![script.into()]),
        env_from: Some(vec![EnvFromSource {
            prefix: Some("CFG_".into()),
            config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
            ..EnvFromSource::default()
        }]),
        env: Some(vec![
            from_config("COLOR", "settings", "color"),
            from_secret("PASSWORD", "creds", "password"),
            from_field("MY_NAME", "metadata.name"),
            EnvVar { name: "GREETING".into(), value: Some("hello $(MY_NAME)".into()), ..EnvVar::default() },
        ]),
        volume_mounts: Some(vec![mount("cfg", "/etc/app")]),
        ..Container::default()
    };
    Pod {
        metadata: meta(name),
        spec: Some(PodSpec {
            restart_policy: Some(restart.into()),
            termination_grace_period_seconds: Some(2),
            containers: vec![container],
            volumes: Some(vec![config_volume("cfg", "settings")]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// An agent over the process runtime on `dir` (its data dir, so volumes are real).
fn start_process_agent(cluster: &Cluster, dir: &Path) -> (Arc<ProcessRuntime>, tokio_util::sync::CancellationToken) {
    let rt = Arc::new(ProcessRuntime::new(&dir.join("process"), "192.0.2.10").expect("process runtime"));
    let node = NodeConfig { host: Host::Real { data_dir: dir.to_path_buf() }, ..node_config(NODE) };
    let cancel = cluster.cancel.child_token();
    let agent = Agent::new(cluster.agent_config(Duration::from_secs(1)), node, rt.clone()).expect("valid agent config");
    tokio::spawn(agent.run(cancel.clone()));
    (rt, cancel)
}

fn container_id(pod: &Pod) -> String {
    let id = app_status(pod).and_then(|c| c.container_id.clone()).expect("a container id");
    id.split_once("://").map(|(_, id)| id.to_string()).expect("scheme://id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_from_a_config_map_a_secret_and_the_pod_reaches_the_process_and_volumes_go_with_the_pod() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    create_config(&cluster, "settings", &[("color", "blue"), ("size", "L")]).await;
    create_secret(&cluster, "creds", "password", "hunter2").await;
    let (rt, _agent) = start_process_agent(&cluster, dir.path());
    // `$(MY_NAME)` is the agent's expansion; `$$(...)` escapes it (single quotes keep the
    // shell away from the literal that remains).
    let script =
        "echo \"color=$COLOR pw=$PASSWORD size=$CFG_size greeting=$GREETING arg=$(MY_NAME)\"; echo 'esc=$$(MY_NAME)'";
    let uid = create_bound(&cluster, &printing_pod("printer", "Never", script), NODE).await;
    let done = wait_pod(&cluster, "printer", "Succeeded", |p| phase(p) == "Succeeded").await;
    let logs = String::from_utf8(rt.logs(&container_id(&done)).await.unwrap()).unwrap();
    assert_eq!(logs, "color=blue pw=hunter2 size=L greeting=hello printer arg=printer\nesc=$(MY_NAME)\n");

    let pod_dir = dir.path().join("pods").join(&uid);
    let color = pod_dir.join("volumes/configmap/cfg/color");
    assert_eq!(std::fs::read_to_string(&color).unwrap(), "blue");

    let api = cluster.client.api::<Pod>(Some("default"));
    api.delete("printer", &DeleteOptions::default()).await.unwrap();
    wait_for("pod gone", || async { matches!(api.get("printer").await, Err(ApiError::NotFound(_))).then_some(()) })
        .await;
    wait_for("the pod's directory removed", || async { (!pod_dir.exists()).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_shows_create_container_config_error_until_it_exists() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    create_secret(&cluster, "creds", "password", "pw").await;
    let (_rt, _agent) = start_process_agent(&cluster, dir.path());
    create_bound(&cluster, &printing_pod("waiter", "Never", "echo $COLOR"), NODE).await;
    let p = wait_pod(&cluster, "waiter", "CreateContainerConfigError", |p| {
        let waiting = app_status(p).and_then(|c| c.state.as_ref()?.waiting.clone());
        waiting.is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    let waiting = app_status(&p).unwrap().state.as_ref().unwrap().waiting.clone().unwrap();
    assert_eq!(waiting.message.as_deref(), Some("configmap \"settings\" not found"));
    assert_eq!(phase(&p), "Pending");
    create_config(&cluster, "settings", &[("color", "red")]).await;
    wait_pod(&cluster, "waiter", "Succeeded once the ConfigMap exists", |p| phase(p) == "Succeeded").await;
}

/// Needs the worker to call `effects::refresh_volumes` on every sync (see the h3 report).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_volume_files_follow_updates_while_the_pod_runs() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    create_config(&cluster, "settings", &[("color", "blue")]).await;
    create_secret(&cluster, "creds", "password", "pw").await;
    let (_rt, agent) = start_process_agent(&cluster, dir.path());
    let uid = create_bound(&cluster, &printing_pod("watcher", "Always", "sleep 60"), NODE).await;
    wait_pod(&cluster, "watcher", "Running", |p| phase(p) == "Running").await;
    let color = dir.path().join("pods").join(&uid).join("volumes/configmap/cfg/color");
    let api = cluster.client.api::<ConfigMap>(Some("default"));
    let mut cm = api.get("settings").await.unwrap();
    cm.data = Some([("color".to_string(), "green".to_string())].into());
    api.update("settings", &cm).await.unwrap();
    wait_for("the file updated", || async {
        (std::fs::read_to_string(&color).ok().as_deref() == Some("green")).then_some(())
    })
    .await;
    cluster.client.api::<Pod>(Some("default")).delete("watcher", &DeleteOptions::default()).await.unwrap();
    wait_for("the pod's directory removed", || async { (!color.exists()).then_some(()) }).await;
    agent.cancel();
}

#[path = "pod_config/steps.rs"]
mod steps;
