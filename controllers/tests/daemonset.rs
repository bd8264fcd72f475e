//! The DaemonSet controller over a real one-member store, started as the leader component
//! it is in production. No scheduler or node agent runs: the test plays both — it binds
//! each daemon pod to the node its `matchFields metadata.name` affinity names, marks bound
//! pods Running and Ready, and confirms graceful deletions (a delete with no grace period),
//! as a kubelet does.
//!
//! - A pod per eligible node: a node outside the nodeSelector, or with an untolerated
//!   NoSchedule taint, gets none; a joining node gets one; a deleted node's pod goes, and
//!   so does the pod of a node relabelled out of the selector. Pods carry the pin, the
//!   daemon tolerations, the revision hash and a controller reference; status and events
//!   follow.
//! - A Failed daemon pod is deleted and replaced.
//! - A template change rolls out with at most `maxUnavailable` eligible nodes lacking an
//!   available daemon pod — checked on every pod state the test's informer sees, in order —
//!   and leaves two ControllerRevisions; OnDelete replaces only pods deleted by hand.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::registry::{DeleteOptions, ListOptions};
use flotilla_controllers::daemonset;
use flotilla_controllers::daemonset::eligibility::target_node;
use flotilla_controllers::history::REVISION_HASH_LABEL;
use flotilla_controllers::runtime::Store;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use support::{is_ready, until, wait_for, Solo};

const NS: &str = "default";

/// The rollout bound check: armed once every watched node has an available pod, it then
/// records the most watched nodes ever seen without one.
#[derive(Default)]
struct Watch {
    nodes: Mutex<BTreeSet<String>>,
    armed: AtomicBool,
    worst: AtomicUsize,
    /// Nodes that ever had a daemon pod meant for them.
    targeted: Mutex<BTreeSet<String>>,
}

struct Env {
    solo: Solo,
    pods: Store<Pod>,
    watch: Arc<Watch>,
}

impl Env {
    async fn start() -> Self {
        let solo = Solo::start().await;
        solo.lead(daemonset::component());
        let (watch, client) = (Arc::new(Watch::default()), solo.client.clone());
        let w = watch.clone();
        let mut seen: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
        let pods = support::observe::<Pod>(&solo, move |c, _| {
            match c.new {
                Some(p) => {
                    play_node(&client, &p);
                    w.targeted.lock().unwrap().extend(target_node(&p).map(String::from));
                    seen.insert(c.key.name.clone(), p);
                }
                None => drop(seen.remove(&c.key.name)),
            }
            check(&w, &seen);
        })
        .await;
        Self { solo, pods, watch }
    }

    fn client(&self) -> &Client {
        &self.solo.client
    }

    fn sets(&self) -> Api<DaemonSet> {
        self.client().api(Some(NS))
    }

    /// The live daemon pods by node.
    fn by_node(&self) -> BTreeMap<String, Vec<Arc<Pod>>> {
        let mut map: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in self.pods.list_in(NS).into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
            map.entry(target_node(&p).unwrap_or_default().to_string()).or_default().push(p);
        }
        map
    }

    /// Wait until exactly `nodes` have one ready daemon pod each, and no other pod exists.
    async fn ready_on(&self, nodes: &[&str]) -> BTreeMap<String, Vec<Arc<Pod>>> {
        wait_for(&format!("one ready pod on each of {nodes:?}"), || async {
            let map = self.by_node();
            let ok = map.len() == nodes.len()
                && nodes.iter().all(|n| map.get(*n).is_some_and(|p| p.len() == 1 && is_ready(&p[0])))
                && self.pods.list_in(NS).len() == nodes.len();
            ok.then_some(map)
        })
        .await
    }

    /// Wait until the DaemonSet's status for its current generation satisfies `pred`.
    async fn status(&self, what: &str, pred: impl Fn(&DaemonSet) -> bool) -> DaemonSet {
        wait_for(what, || async {
            let ds = self.sets().get("agent").await.ok()?;
            let observed = ds.status.as_ref()?.observed_generation == ds.metadata.generation;
            (observed && pred(&ds)).then_some(ds)
        })
        .await
    }

    async fn edit(&self, f: impl Fn(&mut DaemonSet)) {
        support::edit(&self.sets(), "agent", f).await;
    }

    async fn add_node(&self, name: &str, labels: serde_json::Value, taints: serde_json::Value) {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .expect("node");
        self.client().api::<Node>(None).create(&node).await.expect("create node");
    }
}

fn hash_of(p: &Pod) -> Option<String> {
    p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL).cloned()
}

/// Count the watched nodes without an available (ready, not terminating) daemon pod.
fn check(w: &Watch, seen: &BTreeMap<String, Arc<Pod>>) {
    let nodes = w.nodes.lock().unwrap().clone();
    if nodes.is_empty() {
        return;
    }
    let covered: BTreeSet<&str> = seen
        .values()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .filter_map(|p| target_node(p))
        .collect();
    let missing = nodes.iter().filter(|n| !covered.contains(n.as_str())).count();
    if missing == 0 {
        w.armed.store(true, Ordering::SeqCst);
    }
    if w.armed.load(Ordering::SeqCst) {
        w.worst.fetch_max(missing, Ordering::SeqCst);
    }
}

/// Play the scheduler and the kubelet for one observed pod state.
fn play_node(client: &Client, p: &Pod) {
    let (client, name) = (client.clone(), p.metadata.name.clone().unwrap_or_default());
    let bound = p.spec.as_ref().and_then(|s| s.node_name.clone());
    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
    let target = target_node(p).map(String::from);
    let terminating = p.metadata.deletion_timestamp.is_some();
    tokio::spawn(async move {
        let api = client.api::<Pod>(Some(NS));
        if terminating {
            let _ = api.delete(&name, &DeleteOptions { grace_period_seconds: Some(0), ..Default::default() }).await;
        } else if bound.is_none() {
            let _ = client.bind(NS, &name, &target.expect("a daemon pod names its node")).await;
        } else if phase.as_deref() == Some("Pending") {
            support::mark_ready(&api, &name).await;
        }
    });
}

fn daemonset(strategy: serde_json::Value, selector: serde_json::Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": selector, "containers": [{"name": "c", "image": "agent:1"}]}
            }
        }
    }))
    .expect("daemonset")
}

fn rolling(max_unavailable: i32) -> serde_json::Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}})
}

fn set_image(ds: &mut DaemonSet, image: &str) {
    ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
}

#[tokio::test]
async fn a_pod_runs_on_every_eligible_node_and_follows_nodes_joining_and_leaving() {
    let env = Env::start().await;
    let worker = json!({"role": "worker"});
    env.add_node("n1", worker.clone(), json!([])).await;
    env.add_node("n2", worker.clone(), json!([])).await;
    env.add_node("n3", worker.clone(), json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])).await;
    env.add_node("n4", json!({"role": "edge"}), json!([])).await;
    let ds = env.sets().create(&daemonset(rolling(1), worker.clone())).await.expect("create");
    let pods = env.ready_on(&["n1", "n2"]).await;
    let status =
        env.status("status counts n1 and n2", |d| d.status.as_ref().unwrap().number_available == Some(2)).await;
    let s = status.status.unwrap();
    assert_eq!((s.desired_number_scheduled, s.current_number_scheduled, s.number_ready), (2, 2, 2));
    assert_eq!((s.updated_number_scheduled, s.number_misscheduled, s.number_unavailable), (Some(2), 0, Some(0)));
    let targeted = env.watch.targeted.lock().unwrap().clone();
    assert_eq!(targeted, ["n1".to_string(), "n2".to_string()].into(), "no pod for the tainted or unselected node");

    let p = &pods["n1"][0];
    assert!(p.metadata.name.as_deref().unwrap().starts_with("agent-"));
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid), owner.controller),
        ("DaemonSet", ds.metadata.uid.as_ref(), Some(true))
    );
    let tolerations = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
    assert!(tolerations.iter().any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")));
    let (revs, _) = env.client().api::<ControllerRevision>(Some(NS)).list(&ListOptions::default()).await.unwrap();
    assert_eq!(revs.len(), 1);
    assert_eq!(hash_of(p), revs[0].metadata.labels.as_ref().unwrap().get(REVISION_HASH_LABEL).cloned());

    env.add_node("n5", worker.clone(), json!([])).await;
    env.ready_on(&["n1", "n2", "n5"]).await;
    env.client().api::<Node>(None).delete("n2", &DeleteOptions::default()).await.expect("delete node");
    env.ready_on(&["n1", "n5"]).await;
    let mut n1: Node = env.client().api::<Node>(None).get("n1").await.unwrap();
    n1.metadata.labels = Some([("role".to_string(), "edge".to_string())].into());
    env.client().api::<Node>(None).update("n1", &n1).await.expect("relabel n1");
    env.ready_on(&["n5"]).await;
    env.status("status after the node changes", |d| {
        let s = d.status.as_ref().unwrap();
        s.desired_number_scheduled == 1 && s.current_number_scheduled == 1 && s.number_available == Some(1)
    })
    .await;
    wait_for("creation and deletion events", || async {
        let events = support::events(env.client(), NS).await;
        let reasons: BTreeSet<String> = events.iter().filter_map(|e| e.reason.clone()).collect();
        let created = events.iter().any(|e| e.message.as_deref().is_some_and(|m| m.starts_with("Created pod: agent-")));
        (created && reasons.contains("SuccessfulDelete")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failed_daemon_pod_is_replaced() {
    let env = Env::start().await;
    env.add_node("n1", json!({}), json!([])).await;
    env.sets().create(&daemonset(rolling(1), json!({}))).await.expect("create");
    let first = env.ready_on(&["n1"]).await["n1"][0].clone();
    let api = env.client().api::<Pod>(Some(NS));
    let name = first.metadata.name.clone().unwrap();
    let mut failed = api.get(&name).await.unwrap();
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    api.update_status(&name, &failed).await.expect("mark failed");
    until("the failed pod replaced", || {
        env.by_node()
            .get("n1")
            .is_some_and(|p| p.len() == 1 && p[0].metadata.name != first.metadata.name && is_ready(&p[0]))
    })
    .await;
    assert!(env.pods.get(Some(NS), &name).is_none(), "the failed pod is gone");
}

#[tokio::test]
async fn a_rolling_update_never_exceeds_max_unavailable() {
    let env = Env::start().await;
    let nodes = ["n1", "n2", "n3", "n4", "n5"];
    for n in nodes {
        env.add_node(n, json!({}), json!([])).await;
    }
    *env.watch.nodes.lock().unwrap() = nodes.iter().map(|n| n.to_string()).collect();
    env.sets().create(&daemonset(rolling(2), json!({}))).await.expect("create");
    let before = env.ready_on(&nodes).await;
    let old_hash = hash_of(&before["n1"][0]);
    until("the bound check armed", || env.watch.armed.load(Ordering::SeqCst)).await;
    env.edit(|ds| set_image(ds, "agent:2")).await;
    let done = env
        .status("rolled out", |d| {
            let s = d.status.as_ref().unwrap();
            s.updated_number_scheduled == Some(5) && s.number_available == Some(5)
        })
        .await;
    let after = env.ready_on(&nodes).await;
    let new_hash = hash_of(&after["n1"][0]);
    assert_ne!(new_hash, old_hash);
    assert!(after.values().all(|p| hash_of(&p[0]) == new_hash));
    let worst = env.watch.worst.load(Ordering::SeqCst);
    assert!(worst <= 2, "{worst} nodes were without an available daemon pod at once; maxUnavailable is 2");
    assert!(worst >= 1, "the rollout did take pods down");
    assert_eq!(done.status.unwrap().number_unavailable, Some(0));
    let (revs, _) = env.client().api::<ControllerRevision>(Some(NS)).list(&ListOptions::default()).await.unwrap();
    let mut numbers: Vec<i64> = revs.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
}

#[tokio::test]
async fn on_delete_replaces_only_pods_deleted_by_hand() {
    let env = Env::start().await;
    env.add_node("n1", json!({}), json!([])).await;
    env.add_node("n2", json!({}), json!([])).await;
    env.sets().create(&daemonset(json!({"type": "OnDelete"}), json!({}))).await.expect("create");
    let before = env.ready_on(&["n1", "n2"]).await;
    env.edit(|ds| set_image(ds, "agent:2")).await;
    let s = env.status("new generation observed", |_| true).await.status.unwrap();
    assert_eq!(s.updated_number_scheduled, Some(0), "OnDelete: nothing replaced by the controller");
    let victim = before["n1"][0].metadata.name.clone().unwrap();
    env.client().api::<Pod>(Some(NS)).delete(&victim, &DeleteOptions::default()).await.expect("delete");
    let after = env.ready_on(&["n1", "n2"]).await;
    assert_ne!(after["n1"][0].metadata.name.as_deref(), Some(victim.as_str()));
    assert_ne!(hash_of(&after["n1"][0]), hash_of(&after["n2"][0]), "the replacement runs the new template");
    assert_eq!(after["n2"][0].metadata.uid, before["n2"][0].metadata.uid);
    env.status("one updated", |d| d.status.as_ref().unwrap().updated_number_scheduled == Some(1)).await;
}
