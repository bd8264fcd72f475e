//! Unit tests of daemon pod eligibility, tolerations and pinning.

use k8s_openapi::api::core::v1::{NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
    let taints = taints
        .iter()
        .map(|(key, effect)| Taint { key: key.to_string(), effect: effect.to_string(), ..Default::default() })
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
        spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
        status: None,
    }
}

fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn with_affinity(terms: Vec<NodeSelectorTerm>) -> PodSpec {
    PodSpec {
        affinity: Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector { node_selector_terms: terms }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn runs(spec: &PodSpec, n: &Node) -> bool {
    fit(spec, n).should_run
}

#[test]
fn node_selector_and_node_name_restrict_the_nodes() {
    let ssd = node("a", &[("disk", "ssd")], &[]);
    let hdd = node("b", &[("disk", "hdd")], &[]);
    let spec = PodSpec { node_selector: Some([("disk".to_string(), "ssd".to_string())].into()), ..Default::default() };
    assert!(runs(&spec, &ssd) && !runs(&spec, &hdd));
    assert!(runs(&PodSpec::default(), &hdd), "no constraint: every node");
    let named = PodSpec { node_name: Some("b".into()), ..Default::default() };
    assert!(!runs(&named, &ssd) && runs(&named, &hdd));
}

#[test]
fn required_affinity_terms_are_ored_and_requirements_anded() {
    let n = node("n1", &[("zone", "a"), ("cpus", "8")], &[]);
    let term =
        |exprs: Vec<NodeSelectorRequirement>| NodeSelectorTerm { match_expressions: Some(exprs), match_fields: None };
    let cases = [
        (vec![term(vec![req("zone", "In", &["a", "b"])])], true),
        (vec![term(vec![req("zone", "In", &["a"]), req("cpus", "Gt", &["8"])])], false),
        (vec![term(vec![req("zone", "NotIn", &["a"])]), term(vec![req("cpus", "Gt", &["4"])])], true),
        (vec![term(vec![req("gpu", "DoesNotExist", &[]), req("cpus", "Lt", &["16"])])], true),
        (vec![term(vec![req("zone", "Exists", &["a"])])], false),
        (vec![term(vec![])], false),
        (
            vec![NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
            }],
            true,
        ),
        (
            vec![NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![req("metadata.name", "In", &["n2"])]),
            }],
            false,
        ),
    ];
    for (i, (terms, want)) in cases.into_iter().enumerate() {
        assert_eq!(runs(&with_affinity(terms), &n), want, "case {i}");
    }
}

#[test]
fn taints_need_tolerations_and_only_no_execute_evicts() {
    let mut spec = PodSpec::default();
    add_daemon_tolerations(&mut spec);
    let cordoned = node("n", &[], &[("node.kubernetes.io/unschedulable", "NoSchedule")]);
    assert!(runs(&spec, &cordoned), "daemon pods tolerate cordoned nodes");
    let not_ready = node("n", &[], &[("node.kubernetes.io/not-ready", "NoExecute")]);
    assert!(runs(&spec, &not_ready));
    let dedicated = node("n", &[], &[("dedicated", "NoSchedule")]);
    assert_eq!(fit(&spec, &dedicated), Fit { should_run: false, may_continue: true });
    let evicting = node("n", &[], &[("dedicated", "NoExecute")]);
    assert_eq!(fit(&spec, &evicting), Fit { should_run: false, may_continue: false });
    let preferred = node("n", &[], &[("dedicated", "PreferNoSchedule")]);
    assert!(runs(&spec, &preferred));
    spec.tolerations.as_mut().unwrap().push(Toleration {
        key: Some("dedicated".into()),
        operator: Some("Equal".into()),
        value: None,
        ..Default::default()
    });
    assert!(runs(&spec, &dedicated) && runs(&spec, &evicting), "an effect-less toleration covers both effects");
}

#[test]
fn daemon_tolerations_are_added_once() {
    let mut spec = PodSpec { host_network: Some(true), ..Default::default() };
    add_daemon_tolerations(&mut spec);
    add_daemon_tolerations(&mut spec);
    let tolerations = spec.tolerations.expect("tolerations");
    assert_eq!(tolerations.len(), 7);
    let not_ready = tolerations.iter().find(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")).unwrap();
    assert_eq!((not_ready.effect.as_deref(), not_ready.toleration_seconds), (Some("NoExecute"), None));
}

#[test]
fn a_pinned_pod_targets_its_node_until_bound() {
    let mut spec = with_affinity(vec![NodeSelectorTerm {
        match_expressions: Some(vec![req("zone", "In", &["a"])]),
        match_fields: None,
    }]);
    pin_to_node(&mut spec, "n7");
    let required = spec.affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    let terms = &required.required_during_scheduling_ignored_during_execution.as_ref().unwrap().node_selector_terms;
    assert_eq!(terms.len(), 1, "the node affinity is replaced by the pin");
    let mut pod = Pod { spec: Some(spec), ..Default::default() };
    assert_eq!(target_node(&pod), Some("n7"));
    pod.spec.as_mut().unwrap().node_name = Some("n8".into());
    assert_eq!(target_node(&pod), Some("n8"), "binding decides");
    assert_eq!(target_node(&Pod { spec: Some(PodSpec::default()), ..Default::default() }), None);
}
