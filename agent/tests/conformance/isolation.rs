//! Conformance checks of what a pod's containers share and what isolates them: one
//! network namespace per pod, hostPorts, bind mounts, memory limits, runAsUser and a
//! read-only root file system. They need a runtime with images (busybox applets `httpd`,
//! `wget`, `id`, `touch`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{exited, final_log, run, sandbox_spec, shell, wait_for, Subject};
use flotilla_agent::runtime::{Mount, PortMapping, Runtime};

/// A script serving `text` over HTTP on `port` with busybox httpd.
fn http_server(port: u16, text: &str) -> String {
    format!("mkdir -p /tmp/www && echo {text} > /tmp/www/index.html && exec httpd -f -p {port} -h /tmp/www")
}

/// What `wget` run inside container `id` gets from `url`, once it gets anything.
async fn fetch_inside(rt: &dyn Runtime, id: &str, url: &str) -> String {
    let command = ["wget", "-q", "-O", "-", url].map(String::from).to_vec();
    wait_for(&format!("{url} to answer inside {id}"), || async {
        let (code, out) = rt.exec(id, &command).await.unwrap();
        (code == 0).then(|| String::from_utf8_lossy(&out).into_owned())
    })
    .await
}

/// Two containers of one pod reach each other on 127.0.0.1.
pub async fn containers_of_a_pod_share_localhost(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    run(rt, &shell(s, uid, "server", &http_server(8080, "hello-from-server"))).await;
    let client = run(rt, &shell(s, uid, "client", "exec sleep 1000")).await;
    assert_eq!(fetch_inside(rt, &client, "http://127.0.0.1:8080/").await, "hello-from-server\n");
}

/// A pod's hostPort is reachable on the node's 127.0.0.1.
pub async fn host_port_is_published(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let host_port = free_port();
    let mut spec = sandbox_spec(uid);
    spec.ports = vec![PortMapping { container_port: 8080, host_port, protocol: "TCP".into(), host_ip: None }];
    rt.create_sandbox(&spec).await.unwrap();
    run(rt, &shell(s, uid, "server", &http_server(8080, "hello-via-host-port"))).await;
    let body = wait_for("the hostPort to answer", || async { http_get(host_port).await }).await;
    assert!(body.ends_with("hello-via-host-port\n"), "{body}");
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

async fn http_get(port: u16) -> Option<String> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    (read.is_ok() && text.starts_with("HTTP/1.")).then_some(text)
}

/// Bind mounts show host directories; a read-only one refuses writes.
pub async fn bind_mounts(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let (rw, ro) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(rw.path().join("in.txt"), "from-host\n").unwrap();
    let script = "cat /data/in.txt; echo from-container > /data/out.txt; \
                  if touch /ro/x 2>/dev/null; then echo ro-writable; else echo ro-refused; fi";
    let mut spec = shell(s, uid, "app", script);
    spec.mounts = vec![
        Mount { host_path: rw.path().to_path_buf(), container_path: "/data".into(), read_only: false },
        Mount { host_path: ro.path().to_path_buf(), container_path: "/ro".into(), read_only: true },
    ];
    let id = run(rt, &spec).await;
    assert_eq!(exited(rt, &id).await.0, 0);
    let log = final_log(rt, &id).await;
    assert!(log.contains("from-host") && log.contains("ro-refused"), "{log}");
    assert_eq!(std::fs::read_to_string(rw.path().join("out.txt")).unwrap(), "from-container\n");
    assert!(!ro.path().join("x").exists());
}

/// A memory limit is the container's cgroup limit (v2 `memory.max`, v1 `limit_in_bytes`).
pub async fn memory_limit_is_applied(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let script = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";
    let mut spec = shell(s, uid, "app", script);
    spec.resources.memory_bytes = Some(64 << 20);
    let id = run(rt, &spec).await;
    assert_eq!(exited(rt, &id).await.0, 0);
    let log = final_log(rt, &id).await;
    assert_eq!(log.trim(), (64u64 << 20).to_string());
}

/// runAsUser and runAsGroup set the process's uid and gid.
pub async fn run_as_user(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let mut spec = shell(s, uid, "app", "echo \"uid=$(id -u) gid=$(id -g)\"");
    (spec.security.run_as_user, spec.security.run_as_group) = (Some(65534), Some(65534));
    let id = run(rt, &spec).await;
    assert_eq!(exited(rt, &id).await.0, 0);
    assert_eq!(final_log(rt, &id).await, "uid=65534 gid=65534\n");
}

/// readOnlyRootFilesystem makes `/` refuse writes.
pub async fn read_only_root_filesystem(s: &Subject, uid: &str) {
    let rt = &*s.runtime;
    let mut spec = shell(s, uid, "app", "if touch /x 2>/dev/null; then echo root-writable; else echo root-refused; fi");
    spec.security.read_only_root_filesystem = true;
    let id = run(rt, &spec).await;
    assert_eq!(exited(rt, &id).await.0, 0);
    assert_eq!(final_log(rt, &id).await, "root-refused\n");
}
