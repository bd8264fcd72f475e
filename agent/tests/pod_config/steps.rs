//! [`effects::apply`] step by step over a recording runtime, against a real API server:
//! what a runtime is given, what keeps a container from being created, volume refresh,
//! claims, and the pod directory's removal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flotilla_agent::api::ApiPool;
use flotilla_agent::error::AgentError;
use flotilla_agent::pods::sync::{Observed, Step};
use flotilla_agent::pods::volumes::VolumeManager;
use flotilla_agent::pods::{effects, Context};
use flotilla_agent::runtime::fake::FakeRuntime;
use flotilla_agent::runtime::{ContainerInfo, ContainerSpec, Runtime, RuntimeError, SandboxInfo, SandboxSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, HostPathVolumeSource, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource,
    PersistentVolumeSpec, Pod, PodSpec, ResourceRequirements, SecurityContext, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

/// The in-memory runtime, remembering every spec it was given.
struct Recorder {
    inner: FakeRuntime,
    containers: Mutex<Vec<ContainerSpec>>,
    sandboxes: Mutex<Vec<SandboxSpec>>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        let inner = FakeRuntime::new(std::net::Ipv4Addr::new(10, 201, 0, 0));
        Arc::new(Self { inner, containers: Mutex::default(), sandboxes: Mutex::default() })
    }

    fn last_container(&self) -> ContainerSpec {
        self.containers.lock().unwrap().last().cloned().expect("a container was created")
    }
}

#[async_trait]
impl Runtime for Recorder {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn version(&self) -> Result<String, RuntimeError> {
        self.inner.version().await
    }
    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        self.inner.image_id(image).await
    }
    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxInfo, RuntimeError> {
        self.sandboxes.lock().unwrap().push(spec.clone());
        self.inner.create_sandbox(spec).await
    }
    async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.remove_sandbox(id).await
    }
    async fn list_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<SandboxInfo>, RuntimeError> {
        self.inner.list_sandboxes(pod_uid).await
    }
    async fn create_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.containers.lock().unwrap().push(spec.clone());
        self.inner.create_container(sandbox, spec).await
    }
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.inner.stop_container(id, grace).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.remove_container(id).await
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.inner.inspect_container(id).await
    }
    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.inner.list_containers(pod_uid).await
    }
}

fn context(cluster: &Cluster, rt: Arc<Recorder>, pods_dir: PathBuf, allow_privileged: bool) -> Context {
    let pool = ApiPool::new(&cluster.urls(), Duration::from_secs(2), None).expect("pool");
    Context {
        runtime: rt,
        pool: Arc::new(pool),
        node_name: NODE.into(),
        host_ip: "192.0.2.10".into(),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(4),
        resync: Duration::from_secs(1),
        volumes: VolumeManager::new(Some(pods_dir)).with_refresh_interval(Duration::ZERO),
        allow_privileged,
        dns: Default::default(),
        tokens: Default::default(),
    }
}

/// A local Pod object (the steps need no Pod in the API), uid `uid`.
fn local_pod(uid: &str, container: Container, volumes: Vec<Volume>) -> Pod {
    let mut metadata = meta(&format!("pod-{uid}"));
    metadata.uid = Some(uid.into());
    let spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        node_name: Some(NODE.into()),
        ..PodSpec::default()
    };
    Pod { metadata, spec: Some(spec), status: None }
}

fn app(env: Vec<EnvVar>, mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: "app".into(),
        image: Some("busybox:1.36".into()),
        env: Some(env),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

async fn run(ctx: &Context, pod: &Pod) -> Result<(), AgentError> {
    let observed = effects::observe(ctx.runtime.as_ref(), pod.metadata.uid.as_deref().unwrap(), Some(pod)).await?;
    let step = if observed.sandbox.is_none() {
        Step::CreateSandbox
    } else {
        Step::RunContainer { name: "app".into(), attempt: 0 }
    };
    effects::apply(ctx, Some(pod), &observed, &step).await?;
    if step == Step::CreateSandbox {
        return Box::pin(run(ctx, pod)).await;
    }
    Ok(())
}

fn config_error(result: Result<(), AgentError>) -> (String, &'static str, String) {
    let error = result.expect_err("the container must not be created");
    let (container, waiting) = effects::config_waiting(&error).unwrap_or_else(|| panic!("not a config error: {error}"));
    (container, waiting.reason, waiting.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_created_only_once_its_configuration_resolves_and_gets_all_of_it() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = Recorder::new();
    let ctx = context(&cluster, rt.clone(), dir.path().join("pods"), false);
    let shared = dir.path().join("node/shared");
    let mut container = app(
        vec![
            from_config("COLOR", "settings", "color"),
            from_secret("PASSWORD", "creds", "password"),
            from_field("IP", "status.podIP"),
        ],
        vec![mount("cfg", "/etc/app"), mount("shared", "/shared")],
    );
    container.ports =
        Some(vec![ContainerPort { container_port: 80, host_port: Some(8080), ..ContainerPort::default() }]);
    container.resources = Some(ResourceRequirements {
        limits: Some(
            [("cpu".to_string(), Quantity("500m".into())), ("memory".to_string(), Quantity("64Mi".into()))].into(),
        ),
        ..ResourceRequirements::default()
    });
    container.security_context = Some(SecurityContext { run_as_user: Some(1000), ..SecurityContext::default() });
    container.tty = Some(true);
    let host = HostPathVolumeSource { path: shared.display().to_string(), type_: Some("DirectoryOrCreate".into()) };
    let volumes = vec![
        config_volume("cfg", "settings"),
        Volume { name: "shared".into(), host_path: Some(host), ..Volume::default() },
    ];
    let pod = local_pod("uid-config", container, volumes);

    let blocked = config_error(run(&ctx, &pod).await);
    assert_eq!(blocked, ("app".into(), effects::CONFIG_ERROR, "configmap \"settings\" not found".into()));
    assert_eq!(rt.sandboxes.lock().unwrap()[0].ports[0].host_port, 8080, "hostPort published by the sandbox");
    create_config(&cluster, "settings", &[("other", "x")]).await;
    assert_eq!(config_error(run(&ctx, &pod).await).2, "couldn't find key color in ConfigMap default/settings");
    let api = cluster.client.api::<ConfigMap>(Some("default"));
    let mut cm = api.get("settings").await.unwrap();
    cm.data = Some([("color".to_string(), "blue".to_string())].into());
    api.update("settings", &cm).await.unwrap();
    assert_eq!(config_error(run(&ctx, &pod).await).2, "secret \"creds\" not found");
    assert!(rt.containers.lock().unwrap().is_empty(), "nothing created while the configuration is incomplete");

    create_secret(&cluster, "creds", "password", "hunter2").await;
    run(&ctx, &pod).await.expect("configured and started");
    let spec = rt.last_container();
    let ip = rt.inner.list_sandboxes(Some("uid-config")).await.unwrap()[0].ip.clone().unwrap();
    let env: Vec<(&str, &str)> = spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env, [("COLOR", "blue"), ("PASSWORD", "hunter2"), ("IP", ip.as_str())]);
    let cfg_dir = dir.path().join("pods/uid-config/volumes/configmap/cfg");
    let mounts: Vec<(PathBuf, &str, bool)> =
        spec.mounts.iter().map(|m| (m.host_path.clone(), m.container_path.as_str(), m.read_only)).collect();
    assert_eq!(mounts, [(cfg_dir.clone(), "/etc/app", true), (shared.clone(), "/shared", false)]);
    assert_eq!(std::fs::read_to_string(cfg_dir.join("color")).unwrap(), "blue");
    assert_eq!((spec.resources.cpu_millis, spec.resources.memory_bytes), (Some(500), Some(64 << 20)));
    assert_eq!(spec.security.run_as_user, Some(1000));
    assert!(spec.tty && shared.is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_needs_the_flag_and_a_bad_host_path_keeps_the_container_creating() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = Recorder::new();
    let mut privileged = app(vec![], vec![]);
    privileged.security_context = Some(SecurityContext { privileged: Some(true), ..SecurityContext::default() });
    let pod = local_pod("uid-priv", privileged, vec![]);
    let refused = config_error(run(&context(&cluster, rt.clone(), dir.path().join("pods"), false), &pod).await);
    let message = "privileged containers are not allowed on this node (start the agent with --allow-privileged)";
    assert_eq!(refused, ("app".into(), effects::CONFIG_ERROR, message.into()));
    run(&context(&cluster, rt.clone(), dir.path().join("pods"), true), &pod).await.expect("allowed");
    assert!(rt.last_container().security.privileged);

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let host = HostPathVolumeSource { path: file.display().to_string(), type_: Some("Directory".into()) };
    let volumes = vec![Volume { name: "h".into(), host_path: Some(host), ..Volume::default() }];
    let pod = local_pod("uid-host", app(vec![], vec![mount("h", "/h")]), volumes);
    let (_, reason, message) = config_error(run(&context(&cluster, rt, dir.path().join("pods"), false), &pod).await);
    assert_eq!(reason, effects::MOUNT_ERROR);
    assert_eq!(
        message,
        format!(
            "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a directory",
            file.display()
        )
    );
}

async fn create_claim(cluster: &Cluster, name: &str, volume: Option<(&str, &Path)>) {
    let requests = [("storage".to_string(), Quantity("1Gi".into()))].into();
    let claim = PersistentVolumeClaim {
        metadata: meta(name),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements { requests: Some(requests), ..Default::default() }),
            volume_name: volume.map(|(v, _)| v.to_string()),
            ..Default::default()
        }),
        status: None,
    };
    let claims = cluster.client.api::<PersistentVolumeClaim>(Some("default"));
    let mut created = claims.create(&claim).await.expect("claim created");
    let Some((volume_name, path)) = volume else { return };
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name.into()),
            annotations: Some(
                [("pv.kubernetes.io/provisioned-by".to_string(), "flotilla.io/local-path".to_string())].into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            capacity: Some([("storage".to_string(), Quantity("1Gi".into()))].into()),
            host_path: Some(HostPathVolumeSource {
                path: path.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            claim_ref: Some(ObjectReference {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: created.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    cluster.client.api::<PersistentVolume>(None).create(&pv).await.expect("volume created");
    created.status = Some(PersistentVolumeClaimStatus { phase: Some("Bound".into()), ..Default::default() });
    claims.update_status(name, &created).await.expect("claim bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_resolve_to_their_volume_config_maps_refresh_and_the_pod_directory_goes_with_the_sandbox() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = Recorder::new();
    let ctx = context(&cluster, rt.clone(), dir.path().join("pods"), false);
    create_config(&cluster, "settings", &[("color", "blue")]).await;
    let pv_dir = dir.path().join("local-path/pvc-x_default_data");
    create_claim(&cluster, "data", Some(("pvc-x", &pv_dir))).await;
    create_claim(&cluster, "unbound", None).await;
    let claim = |claim: &str| Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim.into(), read_only: None }),
        ..Volume::default()
    };
    let mounts = vec![mount("cfg", "/etc/app"), mount("data", "/data")];
    let waiting =
        local_pod("uid-unbound", app(vec![], mounts.clone()), vec![config_volume("cfg", "settings"), claim("unbound")]);
    let (_, reason, message) = config_error(run(&ctx, &waiting).await);
    assert_eq!(reason, effects::MOUNT_ERROR);
    assert!(message.ends_with("error processing PVC default/unbound: PVC is not bound"), "{message}");

    let pod = local_pod("uid-claim", app(vec![], mounts), vec![config_volume("cfg", "settings"), claim("data")]);
    run(&ctx, &pod).await.expect("started");
    assert_eq!(rt.last_container().mounts[1].host_path, pv_dir);
    assert!(pv_dir.is_dir(), "the local-path directory is made on this node");

    let color = dir.path().join("pods/uid-claim/volumes/configmap/cfg/color");
    assert!(effects::refresh_volumes(&ctx, &pod).await.unwrap().is_empty(), "unchanged");
    let api = cluster.client.api::<ConfigMap>(Some("default"));
    let mut cm = api.get("settings").await.unwrap();
    cm.data = Some([("color".to_string(), "green".to_string())].into());
    api.update("settings", &cm).await.unwrap();
    assert_eq!(effects::refresh_volumes(&ctx, &pod).await.unwrap(), ["cfg"]);
    assert_eq!(std::fs::read_to_string(&color).unwrap(), "green");

    let observed: Observed = effects::observe(ctx.runtime.as_ref(), "uid-claim", Some(&pod)).await.unwrap();
    let id = observed.containers[0].id.clone();
    effects::apply(&ctx, Some(&pod), &observed, &Step::StopContainer { id: id.clone(), grace: Duration::ZERO })
        .await
        .unwrap();
    effects::apply(&ctx, Some(&pod), &observed, &Step::RemoveContainer { id }).await.unwrap();
    let sandbox = observed.sandbox.clone().unwrap().id;
    effects::apply(&ctx, None, &observed, &Step::RemoveSandbox { id: sandbox }).await.unwrap();
    assert!(!dir.path().join("pods/uid-claim").exists(), "the pod's directory is removed with its sandbox");
    assert!(pv_dir.is_dir(), "the claim's directory stays");
}
