//! `flotilla up` as the README runs it (two docker agents, no `--no-demo`): the demo
//! Deployment's three httpd pods run, and its NodePort Service answers on the host with
//! their names, through the agents' service rules.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flotilla_tests::kube::{jsonpath, running_pods, Kubectl};
use flotilla_tests::{ensure_test_image, http_get, wait_for, UpCluster};

/// Removes the containers of the given runtime scopes (this cluster's agents) on drop: the
/// agents leave pods' containers running when they stop, by design.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for scope in &self.0 {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label=io.flotilla.scope={scope}")])
                .output()
                .expect("docker runs");
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
            }
        }
    }
}

#[test]
fn the_demo_runs_and_answers_on_its_node_port() {
    ensure_test_image();
    // Declared first, dropped last: after the cluster and its agents have stopped.
    let mut cleanup = Cleanup(Vec::new());
    let c = UpCluster::start_exactly(3, &["--agents", "2", "--agent-runtime", "docker"]).expect("cluster starts");
    for a in &c.agents {
        let at = a.argv.iter().position(|x| x == "--data-dir").expect("the agent's argv names its data dir");
        cleanup.0.push(flotilla_agent::runtime::scope(&a.name, Path::new(&a.argv[at + 1])).expect("data dir"));
    }
    let k = Kubectl::with_kubeconfig(&c.dir.path().join("kubeconfig"));
    let pods: BTreeSet<String> = running_pods(&k, "default", "demo", 3).into_iter().collect();
    let image = jsonpath(&k, "default", &["deployment", "demo"], "{.spec.template.spec.containers[0].image}");
    assert_eq!(image, flotilla_tests::TEST_IMAGE);

    let port: u16 =
        jsonpath(&k, "default", &["svc", "demo"], "{.spec.ports[0].nodePort}").parse().expect("a node port");
    let seen: BTreeSet<String> = wait_for(Duration::from_secs(30), "the demo's node port naming its pods", || {
        let names: BTreeSet<String> = (0..20)
            .filter_map(|_| http_get(port, "/", Duration::from_secs(2)))
            .filter_map(|r| r.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_string()))
            .collect();
        (names.len() >= 2).then_some(names)
    });
    assert!(seen.is_subset(&pods), "answers {seen:?} from the demo's pods {pods:?}");
}
