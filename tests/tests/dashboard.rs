//! The web dashboard at `/ui` in headless Chromium, against a 3-replica `flotilla up` with two
//! agents on the fake runtime (pods are reported Running; nothing executes).
//!
//! One page, loaded once from a follower: it shows the members and the leader, the agents'
//! Nodes, a Deployment's ready count and its pods by node, and follows a scale-up through its
//! watch. The leader replica is killed: the same page names the new leader and reports the
//! dead member. The page's own replica is killed: the page moves to a survivor. With
//! `FLOTILLA_SCREENSHOT=<path>` the healthy page is saved there as a PNG (the README's).

use std::time::Duration;

use flotilla_tests::chromium::{require_chromium, Chromium};
use flotilla_tests::kube::Kubectl;
use flotilla_tests::{require_etcdctl, UpCluster};
use serde_json::json;

/// Generous: a step waits on the controllers, an agent or an election, on two busy cores.
const STEP: Duration = Duration::from_secs(60);

/// The text of the first element `selector` matches (null when none does).
fn text(selector: &str) -> String {
    format!("document.querySelector({})?.textContent ?? null", json!(selector))
}

/// How many elements `selector` matches.
fn count(selector: &str) -> String {
    format!("document.querySelectorAll({}).length", json!(selector))
}

#[test]
fn dashboard_shows_the_cluster_live_and_follows_failovers() {
    require_chromium();
    require_etcdctl();
    let mut c = UpCluster::start_with(3, &["--agents", "2", "--agent-runtime", "fake"]).expect("cluster starts");
    let leader = c.leader();
    let page_replica = (leader + 1) % 3;
    let names: Vec<String> = c.replicas.iter().map(|r| r.name.clone()).collect();
    let k = Kubectl::new(&c.replicas[page_replica].api_url);
    k.ok(&["create", "namespace", "dash"]);
    k.ok(&["-n", "dash", "create", "deployment", "web", "--image=flotilla/busybox:latest", "--replicas=2"]);

    let mut b = Chromium::start().expect("chromium starts");
    b.navigate(&format!("{}/ui", c.replicas[page_replica].api_url)).expect("the page loads");

    // The control plane: every member answers, the leader is named.
    b.wait_until("the leader's name", &text("#leader"), names[leader].as_str(), STEP);
    b.wait_until("three members answering", &text("#answering"), "3 of 3", STEP);
    b.wait_until("a row per member", &count("#members tbody tr[data-id]"), 3, STEP);
    b.wait_until("the page's replica", &text("#served-by"), names[page_replica].as_str(), STEP);
    b.wait_until("a healthy cluster", &text("#health"), "healthy", STEP);
    let lag = text(&format!("#members tr[data-name={:?}] td.lag", names[page_replica]));
    b.wait_until("the leader's report of a follower's lag", &format!("/^[0-9]+$/.test({lag})"), true, STEP);

    // Nodes, the workload and its pods on the nodes.
    for node in ["agent-1", "agent-2"] {
        b.wait_until(node, &text(&format!("#nodes tr[data-name={node:?}] td.status")), "Ready", STEP);
    }
    let ready = text("#workloads tr[data-key=\"Deployment/dash/web\"] td.ready");
    b.wait_until("web ready 2/2", &ready, "2/2", STEP);
    let placed = "[...document.querySelectorAll('#pods .pod-group')].filter(g => g.dataset.node.startsWith('agent-'))\
                  .reduce((n, g) => n + g.querySelectorAll('tr[data-key^=\"dash/web-\"]').length, 0)";
    b.wait_until("web's pods on the agents' nodes", placed, 2, STEP);
    b.wait_until(
        "the Deployment's scaling event",
        "[...document.querySelectorAll('#events td.reason')].some(td => td.textContent === 'ScalingReplicaSet')",
        true,
        STEP,
    );
    if let Some(path) = std::env::var_os("FLOTILLA_SCREENSHOT") {
        b.screenshot(std::path::Path::new(&path)).expect("screenshot");
    }

    // A change arrives through the watch: the document is never reloaded (the mark stays).
    b.eval("window.testMark = 'same page'").expect("eval");
    k.ok(&["-n", "dash", "scale", "deployment", "web", "--replicas=3"]);
    b.wait_until("web ready 3/3", &ready, "3/3", STEP);

    // The leader dies: the same page names the new one and shows the dead member.
    c.kill9(leader);
    let dead = format!("#members tr[data-name={:?}]", names[leader]);
    b.wait_until(
        "the dead leader reported",
        &format!("document.querySelector({dead:?})?.dataset.role"),
        "no answer",
        STEP,
    );
    b.wait_until(
        "a new leader on the page",
        &format!("[{:?}, {:?}].includes({})", names[(leader + 1) % 3], names[(leader + 2) % 3], text("#leader")),
        true,
        STEP,
    );
    let shown = b.eval(&text("#leader")).expect("eval");
    assert_eq!(shown, names[c.leader()].as_str(), "the page and etcdctl agree on the new leader");
    assert_eq!(b.eval("window.testMark").expect("eval"), "same page");

    // It comes back; then the page's own replica dies and the page moves to a survivor.
    c.restart(leader).expect("restart the old leader");
    b.wait_until("three members answering again", &text("#answering"), "3 of 3", STEP);
    c.kill9(page_replica);
    let survivors = json!([names[leader], names[(page_replica + 1) % 3]]);
    b.wait_until("the page on a survivor", &format!("{survivors}.includes({})", text("#served-by")), true, STEP);
    b.wait_until("a leader on the moved page", &format!("{survivors}.includes({})", text("#leader")), true, STEP);
    b.wait_until("web on the moved page", &ready, "3/3", STEP);
    c.restart(page_replica).expect("restart the page's replica");
}
