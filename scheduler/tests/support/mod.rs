//! Harness for scheduling-loop tests over a real store: a one-member `StoreNode` in a
//! temporary directory with the system namespaces, an unfenced client for the test's own
//! writes, the scheduler started as its leader component would be (fenced client, its own
//! cancellation token), condition waits with deadlines, and Node/Pod builders.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::storage::Storage;
use flotilla_apiserver::Registry;
use flotilla_controllers::leadership::LeaderContext;
use flotilla_store::StoreNode;
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a condition a test waits for may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A one-member store and an unfenced client over it.
pub struct Solo {
    pub node: Arc<StoreNode>,
    pub client: Client,
    /// Declared last so the directory outlives everything that reads from it.
    _dir: tempfile::TempDir,
}

impl Solo {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, registry) = flotilla_apiserver::testing::solo_registry(dir.path()).await;
        Self { node, client: Client::new(registry), _dir: dir }
    }

    /// Run `component` as the leader would: fenced client, a fresh token. Returns the token
    /// and the task.
    pub fn lead(&self, component: flotilla_controllers::leadership::Component) -> (CancellationToken, JoinHandle<()>) {
        let cancel = CancellationToken::new();
        let ctx = LeaderContext::new(
            Client::new(Registry::new(Storage::fenced(self.node.clone()))),
            1,
            "test-replica",
            cancel.clone(),
        );
        (cancel, tokio::spawn(component(ctx)))
    }

    /// Create a node with `cpu` cores and room for `pods` pods, Ready or not.
    pub async fn add_node(&self, name: &str, cpu: &str, pods: &str, ready: bool, cordoned: bool) -> Node {
        let api = self.client.api::<Node>(None);
        let node = Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { unschedulable: cordoned.then_some(true), ..Default::default() }),
            status: None,
        };
        let mut created = api.create(&node).await.expect("node created");
        let allocatable: std::collections::BTreeMap<String, Quantity> =
            [("cpu", cpu), ("memory", "8Gi"), ("pods", pods)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect();
        let condition = NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        };
        created.status = Some(NodeStatus {
            capacity: Some(allocatable.clone()),
            allocatable: Some(allocatable),
            conditions: Some(vec![condition]),
            ..Default::default()
        });
        api.update_status(name, &created).await.expect("node status set")
    }

    /// Create an unbound pod `default/name` requesting `cpu`.
    pub async fn add_pod(&self, name: &str, cpu: &str) -> Pod {
        let requests = [("cpu".to_string(), Quantity(cpu.to_string()))].into_iter().collect();
        let pod = Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("busybox".into()),
                    resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        };
        self.client.api::<Pod>(Some("default")).create(&pod).await.expect("pod created")
    }

    /// The node `default/name` is bound to, if any.
    pub async fn node_of(&self, name: &str) -> Option<String> {
        let pod = self.client.api::<Pod>(Some("default")).get(name).await.expect("pod readable");
        pod.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty())
    }

    /// Wait until `default/name` is bound; its node.
    pub async fn bound(&self, name: &str) -> String {
        wait_for(&format!("pod {name} bound"), || self.node_of(name)).await
    }
}

/// Poll `probe` until it yields a value; panic naming `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    flotilla_store::testing::wait_for(DEADLINE, what, probe).await
}
