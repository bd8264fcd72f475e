//! What `flotilla up` prints once the cluster is ready: what to type next. Every command is
//! printed with this cluster's own paths, URLs and pids, so it can be pasted as is.

use std::path::Path;

use super::access::{replica_context, LbInfo};
use super::agents::{runtime_of, AgentInfo};
use super::demo::{self, Kind, Outcome};
use super::{ReplicaInfo, TlsInfo};

/// Everything the printout needs.
pub struct Ready<'a> {
    pub replicas: &'a [ReplicaInfo],
    pub agents: &'a [AgentInfo],
    pub lb: &'a LbInfo,
    pub leader: &'a str,
    pub cluster_file: &'a Path,
    pub kubeconfig: &'a Path,
    /// The CA and the admin's certificate (absent with `--insecure-plaintext`).
    pub tls: Option<&'a TlsInfo>,
    pub demo: Option<&'a Outcome>,
    /// How long `up` took.
    pub took: String,
}

/// Column where the comments of command lines start.
const COMMENT_COLUMN: usize = 44;

/// `  <command>   # <comment>`, the comments aligned.
fn line(command: &str, comment: &str) {
    if comment.is_empty() {
        println!("  {command}");
    } else {
        println!("  {command:<width$} # {comment}", width = COMMENT_COLUMN - 2);
    }
}

pub fn print(r: &Ready) {
    let flotilla = std::env::current_exe().map_or("flotilla".into(), |p| p.display().to_string());
    let endpoints: Vec<&str> = r.replicas.iter().map(|x| x.client_url.as_str()).collect();
    let endpoints = endpoints.join(",");
    let leader = r.replicas.iter().find(|x| x.name == r.leader);
    println!(
        "flotilla: {} replicas ready, leader {}, in {}; cluster described in {}",
        r.replicas.len(),
        r.leader,
        r.took,
        r.cluster_file.display()
    );
    println!();
    let contexts: Vec<String> = r.replicas.iter().map(replica_context).collect();
    println!("kubectl: the default context goes through the load balancer {} (flotilla lb), which", r.lb.url);
    println!("moves to another replica when one dies; contexts {} use one replica each.", contexts.join(", "));
    let who = if r.tls.is_some() { "as the admin (a client certificate)" } else { "" };
    line(&format!("export KUBECONFIG={}", r.kubeconfig.display()), who);
    workloads(r);
    if let Some(first) = r.replicas.first() {
        line(&format!("kubectl --context {} get nodes", replica_context(first)), "one replica, no balancer");
    }
    println!();
    // A follower's page stays up while you kill the leader (it would move anyway).
    let dashboard = r.replicas.iter().find(|x| x.name != r.leader).or(r.replicas.first());
    if let Some(d) = dashboard {
        println!("Dashboard: {}/ui   (every replica serves it at its API address + /ui)", d.api_url);
        if r.tls.is_some() {
            println!("           (over TLS it asks the browser for a client certificate: see docs/SECURITY.md)");
        }
    }
    if let Some(tls) = r.tls {
        println!("TLS:       every port wants a certificate from this cluster's CA; these variables give");
        println!("           flotilla and etcdctl the admin's:");
        let (ca, cert, key) = (tls.ca_file.display(), tls.cert_file.display(), tls.key_file.display());
        line(&format!("export FLOTILLA_CACERT={ca} FLOTILLA_CERT={cert} FLOTILLA_KEY={key}"), "");
        line("export ETCDCTL_CACERT=$FLOTILLA_CACERT ETCDCTL_CERT=$FLOTILLA_CERT ETCDCTL_KEY=$FLOTILLA_KEY", "");
    }
    println!("Status:    {flotilla} status --endpoints {endpoints}");
    println!();
    if let (Some(leader), true) = (leader, r.replicas.len() > 1) {
        println!("Fail over: kill the leader and watch the cluster carry on");
        line(&format!("kill -9 {}", leader.pid), &format!("{}, the leader now (pids: cluster.json)", leader.name));
        line("kubectl get pods -o wide", "still answers, through the load balancer");
        println!("  {flotilla} status --endpoints {endpoints}");
        println!("  {:<width$} # {} down, another replica leads", "", leader.name, width = COMMENT_COLUMN - 2);
        println!("  The dashboard names the new leader within a few seconds.");
        println!();
    }
    println!("etcdctl (Debian package etcd-client) talks to the same store:");
    line(&format!("export ETCDCTL_API=3 ENDPOINTS={endpoints}"), "");
    line("etcdctl --endpoints=$ENDPOINTS put greeting hello", "");
    line("etcdctl --endpoints=$ENDPOINTS get greeting", "");
    line("etcdctl --endpoints=$ENDPOINTS endpoint status --cluster -w table", "");
    println!();
    println!("Press Ctrl-C to stop the cluster; run the same command again to resume it.");
}

/// The nodes, the demo or how to start something.
fn workloads(r: &Ready) {
    let Some(first) = r.agents.first() else {
        line("kubectl get namespaces", "");
        line("kubectl create deployment web --image=nginx:1.27 --replicas=2", "no agents (--agents N): stays Pending");
        return;
    };
    let runtime = runtime_of(first);
    let names: Vec<&str> = r.agents.iter().map(|a| a.name.as_str()).collect();
    line("kubectl get nodes -o wide", &format!("{} ({runtime} runtime)", names.join(", ")));
    let Some(demo) = r.demo else {
        create_hints(runtime);
        return;
    };
    match demo.kind {
        Kind::Web => line("kubectl get pods -o wide", &format!("the demo: {} httpd pods", demo::PODS)),
        Kind::Sleepers => line("kubectl get pods -o wide", "the demo: pods running as host processes"),
        Kind::Hollow => line("kubectl get pods -o wide", "the demo: reported Running, nothing runs"),
    }
    if let Some(reason) = &demo.stuck {
        let flag = if runtime == "containerd" { " --containerd" } else { "" };
        println!("  The demo's pods wait with {reason}: the image {} is missing. Import it with", demo::IMAGE);
        println!("  scripts/make-test-image{flag} (from the source tree); they start at their next sync.");
    }
    match (demo.kind, demo.node_port, demo.node_port_answers) {
        (Kind::Web, Some(port), true) => {
            line(&format!("curl -s http://127.0.0.1:{port}/"), "the demo Service (NodePort): a pod's name");
        }
        (Kind::Web, _, _) => {
            line("kubectl port-forward svc/demo 8080:80", "Services need root and nft on the agents");
            line("curl -s http://127.0.0.1:8080/", "in another terminal: a pod's name");
        }
        (Kind::Sleepers, _, _) => line("kubectl logs deploy/demo", ""),
        (Kind::Hollow, _, _) => {}
    }
    line("kubectl scale deployment demo --replicas=5", "");
}

/// How to run something when there is no demo.
fn create_hints(runtime: &str) {
    match runtime {
        "fake" => line("kubectl create deployment web --image=busybox --replicas=3", "reported Running; nothing runs"),
        "process" => line("kubectl create deployment web --image=busybox --replicas=3 -- sleep 3600", ""),
        _ => {
            let flag = if runtime == "containerd" { " --containerd" } else { "" };
            line(&format!("scripts/make-test-image{flag}"), "once: builds flotilla/busybox:latest (no registry)");
            line("kubectl create deployment web --image=flotilla/busybox:latest --replicas=3 -- httpd -f -p 80", "");
        }
    }
    line("kubectl get pods -o wide", "");
    line("kubectl logs deploy/web; kubectl exec deploy/web -- hostname", "");
}
