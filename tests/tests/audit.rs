//! The audit log (`flotilla server --audit-log-path`): the real kubectl's writes — a create,
//! a patch, a refused create and a delete — each leave one `audit.k8s.io/v1` Event line with
//! the verb, the object, the user, the source address and the response code; reads do not.

use flotilla_tests::kube::Kubectl;
use flotilla_tests::solo::Solo;
use serde_json::Value;

#[test]
fn every_mutating_request_is_one_json_line_and_reads_are_not_logged() {
    let work = tempfile::tempdir().expect("tempdir");
    let path = work.path().join("audit.log");
    let mut solo = Solo::new(work.path());
    solo.start(&["--audit-log-path", path.to_str().unwrap()]);
    let k = Kubectl::new(&solo.api);
    k.ok(&["create", "configmap", "audited", "--from-literal=a=1"]);
    k.ok(&["get", "configmap", "audited"]);
    k.ok(&["patch", "configmap", "audited", "-p", r#"{"data":{"a":"2"}}"#]);
    k.fails(&["create", "configmap", "audited"]);
    k.ok(&["delete", "configmap", "audited"]);

    let text = std::fs::read_to_string(&path).expect("the audit log exists");
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let ours: Vec<&Value> = events.iter().filter(|e| e["objectRef"]["resource"] == "configmaps").collect();
    let summary: Vec<(String, u64)> = ours
        .iter()
        .map(|e| (e["verb"].as_str().unwrap().to_string(), e["responseStatus"]["code"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [("create".to_string(), 201), ("patch".into(), 200), ("create".into(), 409), ("delete".into(), 200)],
        "{text}"
    );
    for e in &ours {
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["stage"], "ResponseComplete");
        assert_eq!(e["user"]["username"], "system:anonymous");
        assert_eq!(e["sourceIPs"][0], "127.0.0.1");
        assert_eq!(e["objectRef"]["namespace"], "default");
        assert!(e["userAgent"].as_str().is_some_and(|a| a.starts_with("kubectl")), "{e}");
        assert!(e["auditID"].as_str().is_some_and(|id| id.len() == 36));
        assert!(e["requestReceivedTimestamp"].as_str().is_some() && e["stageTimestamp"].as_str().is_some());
    }
    assert_eq!(ours[1]["objectRef"]["name"], "audited");
    assert!(events.iter().all(|e| e["verb"] != "get" && e["verb"] != "list"), "reads are not audited");
}
