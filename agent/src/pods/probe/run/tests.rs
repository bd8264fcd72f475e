//! Probe runs against real loopback sockets and the in-memory runtime's exec.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::{labels, ContainerSpec, SandboxSpec};

const SECOND: Duration = Duration::from_secs(1);

/// An HTTP server on loopback answering every request with `status`, sending each
/// request's head to the returned channel; `None` accepts and never answers.
async fn server(status: Option<u16>) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (tx, status) = (tx.clone(), status);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned()).await;
                let Some(status) = status else { return std::future::pending().await };
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, rx)
}

fn http(port: u16, headers: &[(&str, &str)]) -> Action {
    let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    Action::Http { host: "127.0.0.1".into(), port, path: "/healthz".into(), headers }
}

#[tokio::test]
async fn http_probes_succeed_on_2xx_and_3xx_and_send_the_path_and_headers() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    for (status, ok) in [(200, true), (302, true), (399, true), (404, false), (500, false)] {
        let (port, mut requests) = server(Some(status)).await;
        let outcome = run(&rt, "none", &http(port, &[("X-Probe", "yes")]), SECOND).await;
        assert_eq!(outcome == Outcome::Success, ok, "{status}: {outcome:?}");
        let head = requests.recv().await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /healthz http/1.1\r\n"), "{head}");
        assert!(head.contains("x-probe: yes") && head.contains("user-agent: kube-probe/"), "{head}");
        assert!(head.contains(&format!("host: 127.0.0.1:{port}")), "{head}");
    }
}

#[tokio::test]
async fn http_probes_fail_when_nothing_listens_or_no_answer_comes_in_time() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let refused = run(&rt, "none", &http(closed, &[]), SECOND).await;
    assert!(matches!(&refused, Outcome::Failure(why) if why.contains("dial tcp")), "{refused:?}");
    let (port, _requests) = server(None).await;
    let silent = run(&rt, "none", &http(port, &[]), Duration::from_millis(200)).await;
    assert!(matches!(&silent, Outcome::Failure(why) if why.contains("timed out")), "{silent:?}");
}

#[tokio::test]
async fn tcp_probes_succeed_when_something_listens() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = |port| Action::Tcp { host: "127.0.0.1".into(), port };
    assert_eq!(run(&rt, "none", &tcp(port), SECOND).await, Outcome::Success);
    drop(listener);
    assert!(matches!(run(&rt, "none", &tcp(port), SECOND).await, Outcome::Failure(_)));
}

#[tokio::test]
async fn exec_probes_go_by_exit_code_time_out_and_are_unknown_where_exec_cannot_run() {
    let rt = FakeRuntime::new(Ipv4Addr::new(10, 9, 9, 0));
    let uid = "u1";
    let sandbox_spec = SandboxSpec {
        pod_uid: uid.into(),
        labels: BTreeMap::from([(labels::POD_UID.to_string(), uid.to_string())]),
        ..SandboxSpec::default()
    };
    let sandbox = rt.create_sandbox(&sandbox_spec).await.unwrap();
    let spec =
        ContainerSpec { pod_uid: uid.into(), name: "app".into(), image: "img".into(), ..ContainerSpec::default() };
    let id = rt.create_container(&sandbox.id, &spec).await.unwrap();
    rt.start_container(&id).await.unwrap();
    let exec = Action::Exec(vec!["check".into()]);

    assert_eq!(run(&rt, &id, &exec, SECOND).await, Outcome::Success);
    rt.set_exec_result(uid, "app", 1);
    let failed = run(&rt, &id, &exec, SECOND).await;
    assert!(matches!(&failed, Outcome::Failure(why) if why.contains("exited with 1")), "{failed:?}");
    rt.set_exec_hang(uid, "app", true);
    let hung = run(&rt, &id, &exec, Duration::from_millis(100)).await;
    assert!(matches!(&hung, Outcome::Failure(why) if why.contains("timed out")), "{hung:?}");
    assert_eq!(rt.execs().len(), 3);
    assert!(matches!(run(&rt, "no-such-id", &exec, SECOND).await, Outcome::Unknown(_)));
    let unsupported = Action::Unsupported("gRPC".into());
    assert_eq!(run(&rt, &id, &unsupported, SECOND).await, Outcome::Unknown("gRPC".into()));
}
