//! The workload controllers on a real `flotilla up` cluster, driven by the real kubectl:
//! DaemonSet, StatefulSet with volume claims (local-path provisioning), Job, Deployment
//! events. No agent runs here: Node objects are made by hand and the test plays the kubelet
//! where a controller waits for one (a Job's pod reported Succeeded).

use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{wait_for, UpCluster};

/// Two Nodes as multi-document YAML (a `kind: List` needs `/openapi/v2`, see docs/API.md).
const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: worker-1, labels: {kubernetes.io/hostname: worker-1}}
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Node
metadata: {name: worker-2, labels: {kubernetes.io/hostname: worker-2}}
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions: [{type: Ready, status: "True"}]
"#;

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agentd}
spec:
  selector: {matchLabels: {app: agentd}}
  template:
    metadata: {labels: {app: agentd}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox, volumeMounts: [{name: data, mountPath: /data}]}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

fn jsonpath(k: &Kubectl, args: &[&str], path: &str) -> String {
    let mut all = args.to_vec();
    let out = format!("jsonpath={path}");
    all.extend(["-o", out.as_str()]);
    k.ok(&all)
}

#[test]
fn daemonset_statefulset_job_and_events_through_kubectl() {
    flotilla_tests::require_etcdctl();
    let c = UpCluster::start(3).expect("cluster starts");
    let k = Kubectl::new(&c.replicas[0].api_url);
    k.ok_with(&["apply", "-f", "-"], Some(NODES));

    // DaemonSet: one pod per node, placed by the scheduler; its history is a ControllerRevision.
    k.ok_with(&["apply", "-f", "-"], Some(DAEMONSET));
    wait_for(Duration::from_secs(30), "a daemon pod bound on each node", || {
        let nodes = jsonpath(&k, &["get", "pods", "-l", "app=agentd"], "{.items[*].spec.nodeName}");
        let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
        nodes.sort();
        (nodes == ["worker-1", "worker-2"]).then_some(())
    });
    wait_for(Duration::from_secs(30), "the DaemonSet status", || {
        let desired = jsonpath(&k, &["get", "ds", "agentd"], "{.status.desiredNumberScheduled}");
        (desired == "2").then_some(())
    });
    let history = k.ok(&["rollout", "history", "daemonset/agentd"]);
    assert!(history.lines().any(|l| l.trim_start().starts_with('1')), "revision 1 listed: {history}");
    let revisions = k.ok(&["get", "controllerrevisions"]);
    assert!(revisions.contains("daemonset.apps/agentd"), "{revisions}");

    // StatefulSet: stable names, and each claim provisioned on its pod's node.
    k.ok_with(&["apply", "-f", "-"], Some(STATEFULSET));
    for ordinal in 0..2 {
        let pod = format!("web-{ordinal}");
        let claim = format!("data-web-{ordinal}");
        // The controller creates each pod a moment after the apply (web-1 once web-0 runs):
        // until then it is NotFound.
        let node = wait_for(Duration::from_secs(30), &format!("{pod} bound"), || {
            let out = k.run(&["get", "pod", &pod, "-o", "jsonpath={.spec.nodeName}"], None);
            let node = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && !node.is_empty()).then_some(node)
        });
        let volume = wait_for(Duration::from_secs(30), &format!("{claim} bound"), || {
            let phase = jsonpath(&k, &["get", "pvc", &claim], "{.status.phase}");
            (phase == "Bound").then(|| jsonpath(&k, &["get", "pvc", &claim], "{.spec.volumeName}"))
        });
        let class = jsonpath(&k, &["get", "pvc", &claim], "{.spec.storageClassName}");
        assert_eq!(class, "local-path", "the default class was given to the claim");
        let pinned = jsonpath(
            &k,
            &["get", "pv", &volume],
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
        );
        assert_eq!(pinned, node, "{volume} lives on the node of {pod}");
    }

    // Job: a pod is created; reported Succeeded, the Job completes.
    k.ok(&["create", "job", "hello", "--image=busybox"]);
    let pod = wait_for(Duration::from_secs(30), "the job's pod", || {
        let name = jsonpath(&k, &["get", "pods", "-l", "job-name=hello"], "{.items[0].metadata.name}");
        (!name.is_empty()).then_some(name)
    });
    k.ok(&["patch", "pod", &pod, "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Succeeded"}}"#]);
    k.ok(&["wait", "--for=condition=complete", "job/hello", "--timeout=30s"]);
    let completions = k.ok(&["get", "job", "hello"]);
    assert!(completions.contains("1/1"), "{completions}");

    // Events the controllers wrote.
    k.ok(&["create", "deployment", "shop", "--image=busybox", "--replicas=2"]);
    wait_for(Duration::from_secs(30), "ScalingReplicaSet and pod creation events", || {
        let described = k.ok(&["describe", "deployment", "shop"]);
        let events = k.ok(&["get", "events"]);
        (described.contains("Scaled up replica set shop-") && events.contains("Created pod: shop-")).then_some(())
    });
    let job_events = k.ok(&["get", "events", "--field-selector", "involvedObject.kind=Job"]);
    assert!(job_events.contains("Completed") && job_events.contains("Created pod"), "{job_events}");
}
