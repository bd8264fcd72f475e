//! Prometheus metrics end to end: every replica and the agent of a `flotilla up` cluster
//! serve `/metrics` that a Prometheus text parser reads; the key series exist, and they
//! move: API requests are counted, a pod start is counted by its agent, and after the
//! leader is killed the survivors report a later term, one leader and a leader change.

use std::time::Duration;

use flotilla_tests::kube::{jsonpath, Kubectl};
use flotilla_tests::{http_get, wait_for, UpCluster};
use prometheus_parse::{Scrape, Value};

/// `/metrics` on `port`, parsed.
fn scrape(port: u16) -> Option<Scrape> {
    let response = http_get(port, "/metrics", Duration::from_secs(5))?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Some(Scrape::parse(lines).unwrap_or_else(|e| panic!("not the Prometheus text format ({e}):\n{body}")))
}

/// The value of the sample `name` whose labels include `labels`; counters are summed
/// over the rest.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for s in scrape.samples.iter().filter(|s| s.metric == name) {
        if labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)) {
            let v = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => continue,
            };
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a port in the URL")
}

#[test]
fn every_replica_and_agent_serves_metrics_that_move() {
    let mut c = UpCluster::start_with(3, &["--agents", "1", "--agent-runtime", "fake"]).expect("cluster starts");
    let ports: Vec<u16> = c.replicas.iter().map(|r| port_of(&r.api_url)).collect();
    let k = Kubectl::new(&c.replicas[0].api_url);
    for (i, port) in ports.iter().enumerate() {
        let s = scrape(*port).unwrap_or_else(|| panic!("replica {i} serves /metrics"));
        assert!(value(&s, "flotilla_raft_term", &[]) >= Some(1.0), "replica {i}");
        assert!(value(&s, "flotilla_raft_applied_index", &[]) > Some(0.0), "replica {i}");
        assert!(value(&s, "flotilla_store_db_size_bytes", &[]) > Some(0.0), "replica {i}");
        for family in ["flotilla_raft_is_leader", "flotilla_raft_leader_changes_total", "flotilla_store_watchers"] {
            assert!(value(&s, family, &[]).is_some(), "replica {i} lacks {family}");
        }
        let histogram = s.samples.iter().any(|x| x.metric == "flotilla_raft_proposal_seconds");
        assert!(histogram, "replica {i} lacks the proposal latency histogram");
    }
    let leaders = |ports: &[u16]| -> f64 {
        ports.iter().filter_map(|p| scrape(*p)).filter_map(|s| value(&s, "flotilla_raft_is_leader", &[])).sum()
    };
    wait_for(Duration::from_secs(20), "exactly one replica reporting is_leader", || {
        (leaders(&ports) == 1.0).then_some(())
    });

    // API requests are counted by verb, resource and code on the replica that served them.
    let lists = || {
        value(
            &scrape(ports[0]).unwrap(),
            "flotilla_apiserver_requests_total",
            &[("verb", "list"), ("resource", "pods"), ("code", "200")],
        )
        .unwrap_or(0.0)
    };
    let before = lists();
    k.ok(&["get", "pods", "-A"]);
    assert!(lists() > before, "kubectl get pods is counted as a list of pods");

    // A pod on the agent's node: the agent counts its start.
    let node_port: u16 =
        jsonpath(&k, "default", &["node", "agent-1"], "{.status.daemonEndpoints.kubeletEndpoint.Port}")
            .parse()
            .expect("the agent's endpoint port");
    let starts =
        || value(&scrape(node_port).expect("the agent serves /metrics"), "flotilla_agent_pod_starts_total", &[]);
    let before = starts().expect("the agent's pod start counter");
    k.ok(&["run", "m1", "--image=flotilla/busybox:latest", "--restart=Never", "--", "sleep", "3600"]);
    wait_for(Duration::from_secs(30), "the agent counting the pod's start", || (starts()? > before).then_some(()));

    // The leader dies: the survivors move to a later term, one of them leads, and they
    // count a leader change.
    let leader = c.leader();
    let term = value(&scrape(ports[leader]).unwrap(), "flotilla_raft_term", &[]).unwrap();
    c.kill9(leader);
    let survivors: Vec<u16> = ports.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, p)| *p).collect();
    wait_for(Duration::from_secs(30), "a new leader in a later term", || {
        let moved = survivors.iter().all(|p| {
            scrape(*p).is_some_and(|s| {
                value(&s, "flotilla_raft_term", &[]) > Some(term)
                    && value(&s, "flotilla_raft_leader_changes_total", &[]) >= Some(1.0)
            })
        });
        (moved && leaders(&survivors) == 1.0).then_some(())
    });
    c.restart(leader).expect("the old leader restarts");
}
