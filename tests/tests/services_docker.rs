//! Services end to end with the docker runtime: `flotilla up --agents 2 --agent-runtime
//! docker`, busybox `httpd` pods that serve their own name, the real kubectl, nftables and
//! the agents' cluster DNS.
//!
//! - A ClusterIP Service reached by name (resolved by the cluster DNS, see
//!   [`fetch_from_client`]) from a client pod balances over every ready pod,
//!   follows a scale-down, and drops a pod that turns not-ready.
//! - A NodePort Service answers on `127.0.0.1:<nodePort>` of the host, balanced over pods
//!   on both agents.
//! - A headless Service with a StatefulSet: `web-0.<svc>` resolves to pod web-0's address
//!   and follows it when the pod is recreated.
//! - An agent killed with SIGKILL and restarted after Services changed has exactly the
//!   rules of its peer: nothing stale, nothing missing.

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_tests::docker::{agent_table, cluster, service_rules};
use flotilla_tests::kube::{jsonpath, running_pods, Kubectl};
use flotilla_tests::{eventually, http_get, wait_for};

/// Pods that serve their name on port 80, and are ready while /www/ready.html exists.
fn web(name: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: httpd
        image: flotilla/busybox:latest
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www; hostname > /www/index.html; touch /www/ready.html; exec httpd -f -p 80 -h /www']
        ports: [{{containerPort: 80, name: http}}]
        readinessProbe:
          httpGet: {{path: /ready.html, port: 80}}
          periodSeconds: 1
          failureThreshold: 1
"#
    )
}

const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  containers:
  - name: client
    image: flotilla/busybox:latest
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#;

/// `n` GETs of `http://<name>:80/` from the client pod, each resolving `name` through the
/// cluster DNS first; the bodies (pod names) seen. (The static busybox's own resolver,
/// `nslookup`, does the lookup: its glibc `getaddrinfo`, and so `wget`, crashes without NSS
/// modules; `nslookup` does not apply the search path, so `name` is a full name.)
fn fetch_from_client(k: &Kubectl, ns: &str, name: &str, n: u32) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do \
           ip=$(nslookup {name} 2>/dev/null | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | head -1); \
           if [ -z \"$ip\" ]; then echo NO-ADDRESS; continue; fi; \
           printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 80 | tail -n 1; \
         done"
    );
    let out = k.ok(&["-n", ns, "exec", "client", "--", "sh", "-c", &script]);
    out.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// `GET /version` from the client pod to `kubernetes.default.svc.cluster.local:443` (the
/// API speaks plain HTTP there until TLS lands).
fn api_from_client(k: &Kubectl, ns: &str) -> String {
    let script = "ip=$(nslookup kubernetes.default.svc.cluster.local 2>/dev/null \
                    | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | head -1); \
                  echo \"address $ip\"; printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 443";
    k.ok(&["-n", ns, "exec", "client", "--", "sh", "-c", script])
}

/// Ready endpoint addresses of Service `svc`.
fn ready_endpoints(k: &Kubectl, ns: &str, svc: &str) -> usize {
    jsonpath(k, ns, &["endpoints", svc], "{.subsets[*].addresses[*].ip}").split_whitespace().count()
}

#[test]
fn a_cluster_ip_service_balances_over_ready_pods_by_name() {
    let ns = "svc-clusterip";
    let (_cleanup, _c, k) = cluster(ns);
    k.ok_with(&["-n", ns, "apply", "-f", "-"], Some(&(web("web", 3) + "---\n" + CLIENT)));
    k.ok(&["-n", ns, "expose", "deployment", "web", "--port", "80", "--target-port", "http"]);
    let pods: BTreeSet<String> = running_pods(&k, ns, "web", 3).into_iter().collect();
    running_pods(&k, ns, "client", 1);
    wait_for(Duration::from_secs(60), "3 ready endpoints", || (ready_endpoints(&k, ns, "web") == 3).then_some(()));

    let resolv = k.ok(&["-n", ns, "exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains(&format!("search {ns}.svc.cluster.local svc.cluster.local cluster.local")), "{resolv}");
    let name = format!("web.{ns}.svc.cluster.local");
    let seen: BTreeSet<String> = fetch_from_client(&k, ns, &name, 60).into_iter().collect();
    assert_eq!(seen, pods, "60 requests to the service name reach every pod and nothing else");
    // The `kubernetes` Service reaches the API servers: one endpoint per replica.
    let replicas = jsonpath(&k, "default", &["endpoints", "kubernetes"], "{.subsets[*].addresses[*].ip}");
    assert_eq!(replicas.split_whitespace().count(), 3, "{replicas}");
    // The agent programs the `kubernetes` Service from its own watch, which may trail
    // what kubectl just read; and a loaded machine may miss nc's 2 s window once.
    let mut last = String::new();
    let answered = eventually(Duration::from_secs(30), || {
        last = api_from_client(&k, ns);
        last.contains("\"gitVersion\"")
    });
    assert!(answered, "GET /version through kubernetes.default: {last}");
    let wide = k.ok(&["-n", ns, "get", "svc,ep", "-o", "wide"]);
    assert!(wide.contains("app=web") && wide.contains(":80"), "{wide}");
    let described = k.ok(&["-n", ns, "describe", "svc", "web"]);
    assert!(described.contains("Endpoints:") && described.contains("IP:"), "{described}");

    // A pod that fails readiness leaves the rotation.
    let sick = pods.iter().next().unwrap().clone();
    k.ok(&["-n", ns, "exec", &sick, "--", "rm", "/www/ready.html"]);
    wait_for(Duration::from_secs(30), "2 ready endpoints", || (ready_endpoints(&k, ns, "web") == 2).then_some(()));
    let seen: BTreeSet<String> = wait_for(Duration::from_secs(20), "the rules to follow the endpoints", || {
        let seen: BTreeSet<String> = fetch_from_client(&k, ns, &name, 30).into_iter().collect();
        (!seen.contains(&sick)).then_some(seen)
    });
    assert_eq!(seen.len(), 2, "the two ready pods still answer: {seen:?}");

    // Scaled to one: only that pod answers.
    k.ok(&["-n", ns, "scale", "deployment", "web", "--replicas=1"]);
    let left = running_pods(&k, ns, "web", 1).remove(0);
    wait_for(Duration::from_secs(60), "1 ready endpoint", || (ready_endpoints(&k, ns, "web") == 1).then_some(()));
    let seen: BTreeSet<String> = wait_for(Duration::from_secs(20), "only the last pod answering", || {
        let seen: BTreeSet<String> = fetch_from_client(&k, ns, &name, 20).into_iter().collect();
        (seen.len() == 1).then_some(seen)
    });
    assert_eq!(seen, BTreeSet::from([left]));
}

#[test]
fn a_node_port_answers_on_the_host_balanced_over_both_agents() {
    let ns = "svc-nodeport";
    let (_cleanup, _c, k) = cluster(ns);
    k.ok_with(&["-n", ns, "apply", "-f", "-"], Some(&web("echo", 4)));
    k.ok(&["-n", ns, "expose", "deployment", "echo", "--type", "NodePort", "--port", "80"]);
    running_pods(&k, ns, "echo", 4);
    wait_for(Duration::from_secs(60), "4 ready endpoints", || (ready_endpoints(&k, ns, "echo") == 4).then_some(()));
    let port: u16 = jsonpath(&k, ns, &["svc", "echo"], "{.spec.ports[0].nodePort}").parse().expect("a node port");
    let nodes =
        jsonpath(&k, ns, &["pods", "-l", "app=echo"], "{range .items[*]}{.metadata.name}={.spec.nodeName} {end}");
    let node_of =
        |pod: &str| nodes.split_whitespace().find_map(|p| p.strip_prefix(&format!("{pod}="))).map(str::to_string);

    let seen: BTreeSet<String> = wait_for(Duration::from_secs(20), "the node port answering", || {
        let bodies: Vec<String> = (0..40).filter_map(|_| get(port)).collect();
        (bodies.len() == 40).then(|| bodies.into_iter().collect())
    });
    let on: BTreeSet<String> = seen.iter().filter_map(|pod| node_of(pod)).collect();
    assert_eq!(on, BTreeSet::from(["agent-1".to_string(), "agent-2".to_string()]), "pods {seen:?} on {nodes}");
}

/// The body of a `GET /` on 127.0.0.1:`port`, trimmed.
fn get(port: u16) -> Option<String> {
    let response = http_get(port, "/", Duration::from_secs(2))?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.trim().to_string())
}

const STATEFUL: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: sts}
  ports: [{port: 80, name: http}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec:
      containers:
      - name: httpd
        image: flotilla/busybox:latest
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www']
"#;

/// The addresses `name` resolves to from the client pod (busybox nslookup), sorted.
fn resolve(k: &Kubectl, ns: &str, name: &str) -> Vec<String> {
    let out = k.run(&["-n", ns, "exec", "client", "--", "nslookup", name], None);
    let text = String::from_utf8_lossy(&out.stdout);
    let answers = text.split_once("Name:").map_or("", |(_, rest)| rest);
    let mut ips: Vec<String> = answers
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:").map(|a| a.trim().to_string()))
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    ips.sort();
    ips
}

#[test]
fn a_headless_service_names_each_stateful_pod_and_follows_it() {
    let ns = "svc-headless";
    let (_cleanup, _c, k) = cluster(ns);
    k.ok_with(&["-n", ns, "apply", "-f", "-"], Some(&format!("{STATEFUL}---\n{CLIENT}")));
    running_pods(&k, ns, "sts", 2);
    running_pods(&k, ns, "client", 1);
    let ip_of = |pod: &str| jsonpath(&k, ns, &["pod", pod], "{.status.podIP}");
    let first = ip_of("web-0");
    let (pod_name, svc_name) = (format!("web-0.web.{ns}.svc.cluster.local"), format!("web.{ns}.svc.cluster.local"));
    wait_for(Duration::from_secs(30), "web-0.web to resolve", || {
        (resolve(&k, ns, &pod_name) == [first.clone()]).then_some(())
    });
    let mut both = vec![first.clone(), ip_of("web-1")];
    both.sort();
    assert_eq!(resolve(&k, ns, &svc_name), both, "the headless name lists every pod");

    k.ok(&["-n", ns, "delete", "pod", "web-0", "--wait=true"]);
    let again = wait_for(Duration::from_secs(90), "web-0 recreated and running", || {
        let out = jsonpath(&k, ns, &["pod", "web-0"], "{.status.phase} {.status.podIP}");
        let (phase, ip) = out.split_once(' ')?;
        (phase == "Running" && !ip.is_empty()).then(|| ip.to_string())
    });
    wait_for(Duration::from_secs(30), "web-0.web to follow the new pod", || {
        (resolve(&k, ns, &pod_name) == [again.clone()]).then_some(())
    });
}

#[test]
fn an_agent_restarted_after_changes_has_exactly_its_peers_rules() {
    let ns = "svc-restart";
    let (_cleanup, mut c, k) = cluster(ns);
    k.ok_with(&["-n", ns, "apply", "-f", "-"], Some(&web("web", 2)));
    k.ok(&["-n", ns, "expose", "deployment", "web", "--port", "80"]);
    k.ok(&["-n", ns, "expose", "deployment", "web", "--name", "gone", "--port", "81", "--target-port", "80"]);
    running_pods(&k, ns, "web", 2);
    let tables: Vec<String> = c.agents.iter().map(agent_table).collect();
    let ip = |svc: &str| jsonpath(&k, ns, &["svc", svc], "{.spec.clusterIP}");
    let gone_ip = ip("gone");
    let maps = |table: &str, ip: &str| {
        service_rules(table).is_some_and(|r| r.iter().any(|o| o.contains(&format!("{ip} . tcp"))))
    };
    wait_for(Duration::from_secs(60), "both agents mapping gone", || {
        tables.iter().all(|t| maps(t, &gone_ip)).then_some(())
    });

    // agent-1 dies; while it is down a Service goes, one comes, the endpoints change.
    let i = c.kill9_agent("agent-1");
    k.ok(&["-n", ns, "delete", "svc", "gone"]);
    k.ok(&["-n", ns, "expose", "deployment", "web", "--name", "fresh", "--port", "82", "--target-port", "80"]);
    k.ok(&["-n", ns, "scale", "deployment", "web", "--replicas=3"]);
    let fresh_ip = ip("fresh");
    // The dead agent's table still holds the old rules, unless the peer's sweep (every 10 s)
    // has removed it already; either way the restarted agent must end with its peer's rules.
    // (Taking over a stale table exactly is tested in agent/tests/proxy_nft.rs.)
    c.restart_agent(i).expect("agent-1 restarts");
    let peer = &tables[1 - i];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (mine, theirs) = (service_rules(&tables[i]), service_rules(peer));
        let settled = maps(peer, &fresh_ip) && !maps(peer, &gone_ip) && ready_endpoints(&k, ns, "web") == 3;
        if settled && mine.is_some() && mine == theirs {
            break;
        }
        if std::time::Instant::now() > deadline {
            let (mine, theirs) = (mine.unwrap_or_default(), theirs.unwrap_or_default());
            let only_mine: Vec<_> = mine.difference(&theirs).collect();
            let only_theirs: Vec<_> = theirs.difference(&mine).collect();
            panic!("after 90 s (settled: {settled}): only the restarted agent has {only_mine:#?}; only its peer {only_theirs:#?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(maps(&tables[i], &fresh_ip) && !maps(&tables[i], &gone_ip));
}
