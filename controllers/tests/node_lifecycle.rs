//! The node lifecycle controller over a real one-member store, started as the leader
//! component it is in production. The test plays the kubelets: it registers Nodes (Ready),
//! renews their Leases in `kube-node-lease`, and stops renewing to "kill" a node.
//!
//! - A node that stops renewing turns Unknown (every condition, upstream's reason and
//!   message, a `NodeNotReady` event) and gets the unreachable NoSchedule + NoExecute taints;
//!   a node renewing all along is never touched, and the silent one never before it fell
//!   silent.
//! - Its pods are marked not ready; an intolerant pod is deleted at once, one tolerating
//!   for N seconds only after those N seconds, one tolerating without limit never.
//! - When the kubelet reports again the taints go and pending evictions are cancelled.
//! - A controller restarted (as on a leader change) gives a node whose lease is already
//!   stale a full grace period counted from the restart.
//! - With every node unhealthy, taints are written but nothing is evicted, until a node
//!   is healthy again.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::selector::toleration::{TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE};
use flotilla_apiserver::ApiError;
use flotilla_controllers::node_lifecycle::{self, NodeLifecycleConfig, NODE_LEASE_NAMESPACE};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use support::{until, wait_for, Solo};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
/// Short enough for quick tests, 15 lease renewals long so a busy machine never misses one.
const GRACE: Duration = Duration::from_secs(3);
const RENEW_EVERY: Duration = Duration::from_millis(200);

fn config() -> NodeLifecycleConfig {
    NodeLifecycleConfig {
        grace_period: GRACE,
        startup_grace_period: GRACE,
        check_period: Duration::from_millis(250),
        evictions_per_second: 100.0,
    }
}

/// Node states in the order the test's informer saw them, with when it saw each.
type NodeLog = Arc<Mutex<Vec<(Instant, Arc<Node>)>>>;

struct Env {
    solo: Solo,
    /// Every node state the test's own informer saw, in order, with when it saw it.
    node_log: NodeLog,
    /// Pod names in the order they were first seen terminating (or gone).
    evicted: Arc<Mutex<Vec<String>>>,
}

impl Env {
    async fn start() -> Self {
        let solo = Solo::start().await;
        let (node_log, evicted): (NodeLog, _) = (Arc::default(), Arc::new(Mutex::new(Vec::new())));
        let log = node_log.clone();
        support::observe::<Node>(&solo, move |c, _| {
            log.lock().expect("log").extend(c.new.map(|n| (Instant::now(), n)))
        })
        .await;
        let log = evicted.clone();
        support::observe::<Pod>(&solo, move |c, _| {
            let terminating = |p: &Option<Arc<Pod>>| p.as_ref().is_none_or(|p| p.metadata.deletion_timestamp.is_some());
            if c.old.is_some() && !terminating(&c.old) && terminating(&c.new) {
                log.lock().expect("log").push(c.key.name.clone());
            }
        })
        .await;
        Self { solo, node_log, evicted }
    }

    fn client(&self) -> &Client {
        &self.solo.client
    }

    /// Start the controller as a leader would; cancel the token to stop it.
    fn start_controller(&self) -> CancellationToken {
        self.solo.lead(node_lifecycle::component_with(config())).0
    }

    /// Register a Ready node and its Lease, renewed until the returned token is cancelled.
    async fn kubelet(&self, name: &str) -> CancellationToken {
        let node = Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            status: Some(NodeStatus { conditions: Some(vec![ready_condition()]), ..Default::default() }),
            ..Default::default()
        };
        self.client().api::<Node>(None).create(&node).await.expect("create node");
        self.renew(name)
    }

    /// Renew `name`'s Lease every [`RENEW_EVERY`] until the returned token is cancelled.
    fn renew(&self, name: &str) -> CancellationToken {
        let stop = self.solo.cancel.child_token();
        let (api, name, until) =
            (self.client().api::<Lease>(Some(NODE_LEASE_NAMESPACE)), name.to_string(), stop.clone());
        tokio::spawn(async move {
            loop {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(40),
                        renew_time: Some(MicroTime(Timestamp::now())),
                        ..Default::default()
                    }),
                };
                api.update(&name, &lease).await.expect("renew lease");
                tokio::select! {
                    _ = until.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
            }
        });
        stop
    }

    /// What a kubelet does when it is back: post Ready=True, and renew again.
    async fn recover(&self, name: &str) -> CancellationToken {
        let api = self.client().api::<Node>(None);
        wait_for("kubelet posts Ready", || async {
            let mut node = api.get(name).await.ok()?;
            node.status.get_or_insert_with(Default::default).conditions = Some(vec![ready_condition()]);
            api.update_status(name, &node).await.ok()
        })
        .await;
        self.renew(name)
    }

    /// Create pod `name` on `node` with `tolerations`, and mark it Running and Ready.
    async fn pod(&self, name: &str, node: &str, tolerations: Vec<Toleration>) {
        let api = self.pods();
        let pod = Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), ..Default::default() },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    ..Default::default()
                }],
                node_name: Some(node.into()),
                tolerations: Some(tolerations),
                ..Default::default()
            }),
            status: None,
        };
        api.create(&pod).await.expect("create pod");
        support::mark_ready(&api, name).await.expect("pod marked ready");
    }

    fn pods(&self) -> Api<Pod> {
        self.client().api::<Pod>(Some(NS))
    }

    async fn node(&self, name: &str) -> Node {
        self.client().api::<Node>(None).get(name).await.expect("get node")
    }

    /// Wait until `name` carries both unreachable taints; returns it.
    async fn unreachable(&self, name: &str) -> Node {
        let api = self.client().api::<Node>(None);
        wait_for(&format!("{name} tainted unreachable"), || async {
            let node = api.get(name).await.ok()?;
            let keys = managed_taints(&node);
            let want = [
                (TAINT_NODE_UNREACHABLE.to_string(), "NoSchedule".to_string()),
                (TAINT_NODE_UNREACHABLE.into(), "NoExecute".into()),
            ];
            (keys == want).then_some(node)
        })
        .await
    }

    async fn wait_pod(&self, what: &str, name: &str, cond: impl Fn(&Pod) -> bool) {
        let api = self.pods();
        wait_for(&format!("{name} {what}"), || async { api.get(name).await.ok().filter(|p| cond(p)).map(|_| ()) }).await
    }

    async fn terminating(&self, name: &str) -> bool {
        match self.pods().get(name).await {
            Ok(p) => p.metadata.deletion_timestamp.is_some(),
            Err(ApiError::NotFound(_)) => true,
            Err(e) => panic!("get pod {name}: {e}"),
        }
    }

    /// Wait for an Event about `object` with `reason` and `message`.
    async fn event(&self, object: &str, reason: &str, message: &str) {
        wait_for(&format!("event {reason} on {object}"), || async {
            support::events(self.client(), NS)
                .await
                .iter()
                .any(|e| {
                    e.involved_object.name.as_deref() == Some(object)
                        && e.reason.as_deref() == Some(reason)
                        && e.message.as_deref() == Some(message)
                })
                .then_some(())
        })
        .await
    }

    /// The states the test saw of node `name`.
    fn seen(&self, name: &str) -> Vec<(Instant, Arc<Node>)> {
        let log = self.node_log.lock().expect("log");
        log.iter().filter(|(_, n)| n.metadata.name.as_deref() == Some(name)).cloned().collect()
    }
}

fn ready_condition() -> NodeCondition {
    let now = Some(Time(Timestamp::now()));
    NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: Some("KubeletReady".into()),
        message: Some("kubelet is posting ready status".into()),
        last_heartbeat_time: now.clone(),
        last_transition_time: now,
    }
}

/// The node's `node.kubernetes.io/*` taints as (key, effect).
fn managed_taints(node: &Node) -> Vec<(String, String)> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    taints.into_iter().filter(|t| t.key.starts_with("node.kubernetes.io/")).map(|t| (t.key, t.effect)).collect()
}

fn condition(node: &Node, type_: &str) -> Option<NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).cloned()
}

fn pod_ready(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
}

fn tolerate(key: &str, seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: seconds,
        ..Default::default()
    }
}

/// Tolerates both NoExecute keys only with the value `elsewhere`; the controller's taints
/// have no value, so this pod tolerates neither. Naming both keys with NoExecute keeps the
/// create-time default tolerations (300 s) off it.
fn intolerant() -> Vec<Toleration> {
    [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE]
        .map(|key| Toleration {
            key: Some(key.into()),
            operator: Some("Equal".into()),
            value: Some("elsewhere".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        })
        .to_vec()
}

/// A healthy node must never have been seen tainted or with Ready other than True.
fn assert_untouched(env: &Env, name: &str) {
    for (_, node) in env.seen(name) {
        assert!(managed_taints(&node).is_empty(), "{name} tainted: {:?}", managed_taints(&node));
        assert_eq!(condition(&node, "Ready").map(|c| c.status), Some("True".into()), "{name} not ready");
    }
}

#[tokio::test]
async fn a_silent_node_turns_unknown_and_is_tainted_while_renewing_nodes_are_left_alone() {
    let env = Env::start().await;
    // n0's kubelet never renews: it goes first, a full grace period after the start.
    env.kubelet("n0").await.cancel();
    let (n1, _n2) = (env.kubelet("n1").await, env.kubelet("n2").await);
    let started = Instant::now();
    let _controller = env.start_controller();
    env.unreachable("n0").await;
    assert!(started.elapsed() >= GRACE, "tainted before a grace period had passed");
    // n1 and n2 have renewed under the controller for a whole grace period: untouched.
    assert!(managed_taints(&env.node("n1").await).is_empty());

    n1.cancel();
    let stopped = Instant::now();
    assert!(managed_taints(&env.node("n1").await).is_empty());
    let node = env.unreachable("n1").await;
    for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = condition(&node, type_).unwrap_or_else(|| panic!("{type_} condition"));
        assert_eq!(c.status, "Unknown", "{type_}");
    }
    let ready = condition(&node, "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).expect("taints");
    assert!(taints.iter().all(|t| t.time_added.is_some()), "{taints:?}");
    env.event("n1", "NodeNotReady", "Node n1 status is now: NodeNotReady").await;

    // Never Unknown or tainted while it renewed; n2 renewed throughout and was never touched.
    for (at, state) in env.seen("n1") {
        if at < stopped {
            assert_eq!(condition(&state, "Ready").map(|c| c.status), Some("True".into()));
            assert!(managed_taints(&state).is_empty());
        }
    }
    assert_untouched(&env, "n2");
}

#[tokio::test]
async fn pods_on_an_unreachable_node_turn_not_ready_and_go_as_their_tolerations_say() {
    let env = Env::start().await;
    let (n1, _n2) = (env.kubelet("n1").await, env.kubelet("n2").await);
    let fast = Duration::from_secs(4);
    env.pod("intolerant", "n1", intolerant()).await;
    let timed =
        vec![tolerate(TAINT_NODE_UNREACHABLE, Some(fast.as_secs() as i64)), tolerate(TAINT_NODE_NOT_READY, Some(4))];
    env.pod("timed", "n1", timed).await;
    env.pod("forever", "n1", vec![tolerate(TAINT_NODE_UNREACHABLE, None), tolerate(TAINT_NODE_NOT_READY, None)]).await;
    env.pod("bystander", "n2", intolerant()).await;
    let _controller = env.start_controller();

    n1.cancel();
    let stopped = Instant::now();
    assert!(managed_taints(&env.node("n1").await).is_empty());
    env.unreachable("n1").await;
    for pod in ["intolerant", "timed", "forever"] {
        env.wait_pod("marked not ready", pod, |p| pod_ready(p).as_deref() == Some("False")).await;
        env.event(pod, "NodeNotReady", "Node is not ready").await;
    }
    env.wait_pod("evicted", "intolerant", |p| p.metadata.deletion_timestamp.is_some()).await;
    env.event("intolerant", "TaintManagerEviction", "Marking for deletion Pod default/intolerant").await;
    env.wait_pod("evicted", "timed", |p| p.metadata.deletion_timestamp.is_some()).await;
    // The taint came after `stopped`, the clock after the taint: the toleration was honoured.
    assert!(stopped.elapsed() >= fast, "timed evicted before its tolerationSeconds");
    until("both evictions in the test's log", || env.evicted.lock().expect("log").len() >= 2).await;
    assert_eq!(env.evicted.lock().expect("log").clone(), ["intolerant", "timed"], "in this order");

    assert!(!env.terminating("forever").await, "tolerates without limit: stays");
    let bystander = env.pods().get("bystander").await.expect("bystander");
    assert_eq!((bystander.metadata.deletion_timestamp.clone(), pod_ready(&bystander)), (None, Some("True".into())));
    assert_untouched(&env, "n2");
}

#[tokio::test]
async fn a_node_reporting_again_loses_its_taints_and_pending_evictions_are_cancelled() {
    let env = Env::start().await;
    let (n1, _n2) = (env.kubelet("n1").await, env.kubelet("n2").await);
    env.pod(
        "patient",
        "n1",
        vec![tolerate(TAINT_NODE_UNREACHABLE, Some(3600)), tolerate(TAINT_NODE_NOT_READY, Some(3600))],
    )
    .await;
    let _controller = env.start_controller();
    n1.cancel();
    env.unreachable("n1").await;
    env.wait_pod("marked not ready", "patient", |p| pod_ready(p).as_deref() == Some("False")).await;

    let _n1 = env.recover("n1").await;
    let api = env.client().api::<Node>(None);
    wait_for("n1 untainted and Ready", || async {
        let node = api.get("n1").await.ok()?;
        let ready = condition(&node, "Ready")?.status == "True";
        (ready && managed_taints(&node).is_empty()).then_some(())
    })
    .await;
    env.event("patient", "TaintManagerEviction", "Cancelling deletion of Pod default/patient").await;
    assert!(!env.terminating("patient").await);
    assert!(env.evicted.lock().expect("log").is_empty());
}

#[tokio::test]
async fn a_restarted_controller_gives_a_stale_node_a_full_grace_period() {
    let env = Env::start().await;
    let (n1, _n2) = (env.kubelet("n1").await, env.kubelet("n2").await);
    let first = env.start_controller();
    // The leader changes: the old controller stops as n1 falls silent...
    n1.cancel();
    first.cancel();
    // ...and there is no controller until n1's lease is long stale.
    let leases = env.client().api::<Lease>(Some(NODE_LEASE_NAMESPACE));
    let renewed = leases.get("n1").await.expect("lease").spec.and_then(|s| s.renew_time).expect("renewTime").0;
    let stale = renewed + jiff::SignedDuration::try_from(2 * GRACE).expect("duration");
    until("n1's lease stale for two grace periods", || Timestamp::now() > stale).await;
    assert!(managed_taints(&env.node("n1").await).is_empty(), "nothing ran meanwhile");

    let restarted = Instant::now();
    let _second = env.start_controller();
    env.unreachable("n1").await;
    assert!(restarted.elapsed() >= GRACE, "the new controller judged n1 by its lease's age");
    assert_untouched(&env, "n2");
}

#[tokio::test]
async fn with_every_node_unhealthy_taints_are_written_but_nothing_is_evicted() {
    let env = Env::start().await;
    let (n1, n2) = (env.kubelet("n1").await, env.kubelet("n2").await);
    env.pod("p1", "n1", intolerant()).await;
    env.pod("p2", "n2", intolerant()).await;
    let _controller = env.start_controller();
    n1.cancel();
    n2.cancel();
    env.unreachable("n1").await;
    env.unreachable("n2").await;
    env.wait_pod("marked not ready", "p1", |p| pod_ready(p).as_deref() == Some("False")).await;
    // Witnesses that checks have run with both nodes tainted: a pod created after the
    // previous one was marked can only be marked by a later check, and every check that
    // marks pods goes on to the eviction step.
    for probe in ["q1", "q2"] {
        env.pod(probe, "n1", intolerant()).await;
        env.wait_pod("marked not ready", probe, |p| pod_ready(p).as_deref() == Some("False")).await;
    }
    for pod in ["p1", "p2", "q1"] {
        assert!(!env.terminating(pod).await, "{pod} evicted while every node was unhealthy");
    }

    // n2 is back: the disruption is n1's alone, and its intolerant pods go.
    let _n2 = env.recover("n2").await;
    env.wait_pod("evicted", "p1", |p| p.metadata.deletion_timestamp.is_some()).await;
    env.wait_pod("evicted", "q1", |p| p.metadata.deletion_timestamp.is_some()).await;
    assert!(!env.terminating("p2").await, "p2's node is healthy again");
}
