//! The node agent with the containerd runtime, end to end: a private containerd
//! (`scripts/start-containerd`), the local busybox image imported into it
//! (`scripts/make-test-image --containerd`), `flotilla up --agents 2 --agent-runtime
//! containerd`, and the real kubectl: pods run with IPs from the CNI bridge, and logs,
//! exec and port-forward reach them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flotilla_tests::kube::{jsonpath, running_pods, Kubectl};
use flotilla_tests::{http_get, wait_for, UpCluster, TEST_IMAGE};

fn script(name: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name);
    let out = Command::new(&path).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(out.status.success(), "{name} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn containerd_pods_run_with_logs_exec_and_port_forward() {
    let socket = script("start-containerd", &[]);
    let socket = socket.lines().last().expect("the socket path").to_string();
    script("make-test-image", &["--containerd", &socket]);
    let flags = ["--agents", "2", "--agent-runtime", "containerd", "--containerd-address", &socket];
    let c = UpCluster::start_with(1, &flags).expect("cluster starts");
    let k = Kubectl::new(&c.replicas[0].api_url);
    let ns = "containerd-e2e";
    k.ok(&["create", "namespace", ns]);
    k.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        &format!("--image={TEST_IMAGE}"),
        "--replicas=2",
        "--",
        "sh",
        "-c",
        "echo started; mkdir -p /www; echo hello from $(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www",
    ]);
    let pods = running_pods(&k, ns, "web", 2);
    let ips = jsonpath(&k, ns, &["pods", "-l", "app=web"], "{.items[*].status.podIP}");
    assert!(ips.split_whitespace().all(|ip| ip.starts_with("10.245.")), "CNI bridge addresses: {ips}");
    let pod = &pods[0];
    wait_for(Duration::from_secs(30), "the container's output in kubectl logs", || {
        (k.ok(&["-n", ns, "logs", pod]) == "started\n").then_some(())
    });
    assert_eq!(k.ok(&["-n", ns, "exec", pod, "--", "hostname"]).trim(), pod.as_str());
    let code = k.run(&["-n", ns, "exec", pod, "--", "sh", "-c", "exit 4"], None).status.code();
    assert_eq!(code, Some(4));

    let local = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut forward = k.spawn(&["-n", ns, "port-forward", &format!("pod/{pod}"), &format!("{local}:8080")]);
    let page = wait_for(Duration::from_secs(30), "the pod's page through port-forward", || {
        http_get(local, "/", Duration::from_secs(2)).filter(|body| body.contains("hello from"))
    });
    assert!(page.contains(&format!("hello from {pod}")), "{page}");
    let _ = forward.kill();
    let _ = forward.wait();

    k.ok(&["-n", ns, "delete", "deployment", "web"]);
    wait_for(Duration::from_secs(60), "the pods stopped and removed", || {
        k.ok(&["-n", ns, "get", "pods", "-o", "name"]).trim().is_empty().then_some(())
    });
}
