//! Node authorization end to end: one `flotilla server` with an https:// API, a node's
//! client certificate from `flotilla pki issue` (`system:node:agent-1` in `system:nodes`),
//! and the real kubectl as that node. It reads what its pods use and writes its own Node,
//! nothing of another node's.

use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::secure::SecureSolo;

/// Two Nodes, and a pod bound to each that mounts its own Secret (a stream of JSON objects).
const OBJECTS: &str = r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "agent-1"}}
{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "agent-2"}}
{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1", "namespace": "default"}, "stringData": {"k": "one"}}
{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2", "namespace": "default"}, "stringData": {"k": "two"}}
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "default"},
 "spec": {"nodeName": "agent-1", "containers": [{"name": "c", "image": "busybox"}],
          "volumes": [{"name": "s", "secret": {"secretName": "s1"}}]}}
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2", "namespace": "default"},
 "spec": {"nodeName": "agent-2", "containers": [{"name": "c", "image": "busybox"}],
          "volumes": [{"name": "s", "secret": {"secretName": "s2"}}]}}
"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kubectl auth can-i <args>` as `k`: its answer and exit code.
fn can_i(k: &Kubectl, args: &[&str]) -> (String, Option<i32>) {
    let out = k.run(&[&["auth", "can-i"], args].concat(), None);
    (String::from_utf8_lossy(&out.stdout).trim().to_string(), out.status.code())
}

#[test]
fn a_node_reads_what_its_pods_use_and_writes_only_its_own_node() {
    let s = SecureSolo::start(&[]);
    s.admin.ok_with(&["create", "-f", "-"], Some(OBJECTS));
    let node = s.client("agent-1", "system:node:agent-1", &["system:nodes"]);
    // Discovery and `auth whoami` come with the default roles, moments after the first start.
    let mut out = node.run(&["auth", "whoami"], None);
    let ready = flotilla_tests::eventually(Duration::from_secs(20), || {
        out = node.run(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], None);
        out.status.success()
    });
    assert!(ready, "{}", stderr(&out));

    // Its pod's Secret, and not the other node's pod's.
    assert_eq!(node.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.k}"]), "b25l");
    let refused = node.fails(&["get", "secret", "s2"]);
    assert!(
        refused.contains(
            "secrets \"s2\" is forbidden: User \"system:node:agent-1\" cannot get resource \"secrets\" in API group \
             \"\" in the namespace \"default\": no relationship found between node 'agent-1' and this object"
        ),
        "{refused}"
    );
    assert!(node.fails(&["get", "secrets"]).contains("forbidden"), "no listing Secrets");
    assert_eq!(can_i(&node, &["get", "secret/s1"]), ("yes".to_string(), Some(0)));
    // kubectl prints the reason the server gave.
    let no_relationship = "no - no relationship found between node 'agent-1' and this object";
    assert_eq!(can_i(&node, &["get", "secret/s2"]), (no_relationship.to_string(), Some(1)));

    // Reads an agent needs everywhere.
    let pods = node.ok(&["get", "pods", "-A", "--field-selector=spec.nodeName=agent-1", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/p1");
    node.ok(&["get", "nodes"]);

    // Its own Node, not another's.
    node.ok(&["label", "node", "agent-1", "x=y"]);
    assert_eq!(s.admin.ok(&["get", "node", "agent-1", "-o", "jsonpath={.metadata.labels.x}"]), "y");
    let refused = node.fails(&["label", "node", "agent-2", "x=y"]);
    assert!(
        refused.contains(r#"nodes "agent-2" is forbidden: node "agent-1" is not allowed to modify node "agent-2""#),
        "{refused}"
    );
    assert_eq!(s.admin.ok(&["get", "node", "agent-2", "-o", "jsonpath={.metadata.labels.x}"]), "");
    // Not a role of its own choosing (NodeRestriction's labels); an admin may set one.
    let refused = node.fails(&["label", "node", "agent-1", "node-role.kubernetes.io/master="]);
    let want = r#"nodes "agent-1" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/master"#;
    assert!(refused.contains(want), "{refused}");
    s.admin.ok(&["label", "node", "agent-1", "node-restriction.kubernetes.io/pci=true"]);
    let refused = node.fails(&["label", "node", "agent-1", "node-restriction.kubernetes.io/pci-"]);
    assert!(refused.contains("not allowed to modify labels: node-restriction.kubernetes.io/pci"), "{refused}");
    node.ok(&["label", "node", "agent-1", "x=z", "--overwrite"]);
    // Nor its taints, once its Node exists.
    let refused = node.fails(&["taint", "node", "agent-1", "mine=yes:NoSchedule"]);
    assert!(refused.contains(r#"node "agent-1" is not allowed to modify taints"#), "{refused}");
    let (answer, code) = can_i(&node, &["patch", "node/agent-2"]);
    assert!(answer.starts_with("no - ") && answer.contains("not allowed to modify node"), "{answer}");
    assert_eq!(code, Some(1));
    assert_eq!(can_i(&node, &["patch", "node/agent-1"]), ("yes".to_string(), Some(0)));
}
