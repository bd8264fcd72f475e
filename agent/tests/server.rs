//! The agent endpoint (logs, exec, auth) against the process runtime, with an in-process
//! control plane: real processes, real HTTP and websockets on 127.0.0.1.

mod support;
#[path = "server/ws.rs"]
mod ws;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_agent::config::ServerConfig;
use flotilla_agent::runtime::process::ProcessRuntime;
use flotilla_agent::server::token;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use support::{create_bound, phase, wait_for, wait_pod, Cluster};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use ws::Ws;

/// A cluster, one process-runtime agent serving its endpoint, and what a client needs.
struct Fixture {
    cluster: Cluster,
    addr: SocketAddr,
    token: String,
    _agent: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn fixture(node: &str) -> Fixture {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(ProcessRuntime::new(dir.path(), "127.0.0.1").unwrap());
    let mut config = cluster.agent_config(Duration::from_secs(1));
    config.server = Some(ServerConfig { address: Ipv4Addr::LOCALHOST.into(), port: 0 });
    let agent = support::start_agent_over(&cluster, config, support::node_config(node), runtime);
    let nodes = cluster.client.api::<Node>(None);
    let port = wait_for("the node advertises its endpoint", || async {
        let n = nodes.get(node).await.ok()?;
        let port = n.status?.daemon_endpoints?.kubelet_endpoint?.port;
        (port != 0).then_some(port)
    })
    .await;
    let secrets = cluster.client.api::<Secret>(Some(token::SECRET_NAMESPACE));
    let secret = wait_for("the node proxy token exists", || async { secrets.get(token::SECRET_NAME).await.ok() }).await;
    let token = token::from_secret(&secret).expect("a token in the secret");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, u16::try_from(port).unwrap()));
    wait_for("the endpoint answers", || async { TcpStream::connect(addr).await.ok() }).await;
    Fixture { cluster, addr, token, _agent: agent, _dir: dir }
}

fn shell_pod(name: &str, script: &str, restart_policy: &str) -> Pod {
    let container = Container {
        name: "app".into(),
        image: Some("busybox".into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Container::default()
    };
    Pod {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..ObjectMeta::default() },
        spec: Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            termination_grace_period_seconds: Some(1),
            containers: vec![container],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// GET `path`; the status and the whole body.
async fn get(f: &Fixture, path: &str, token: Option<&str>) -> (u16, String) {
    let stream = TcpStream::connect(f.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::get(path).header("host", "agent");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn logs(f: &Fixture, pod: &str, query: &str) -> (u16, String) {
    get(f, &format!("/containerLogs/default/{pod}/app?{query}"), Some(&f.token)).await
}

async fn exec(f: &Fixture, pod: &str, query: &str) -> Ws {
    let auth = format!("Authorization: Bearer {}", f.token);
    Ws::connect(f.addr, &format!("/exec/default/{pod}/app?{query}"), "v5.channel.k8s.io", &[auth]).await.unwrap()
}

async fn start_pod(f: &Fixture, node: &str, pod: Pod) {
    let name = pod.metadata.name.clone().unwrap();
    create_bound(&f.cluster, &pod, node).await;
    wait_pod(&f.cluster, &name, "Running", |p| phase(p) == "Running").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_the_token_and_errors_are_statuses() {
    let f = fixture("auth-node").await;
    start_pod(&f, "auth-node", shell_pod("quiet", "sleep 30", "Never")).await;
    assert_eq!(get(&f, "/healthz", None).await, (200, "ok".into()));
    let (code, body) = get(&f, "/containerLogs/default/quiet/app", None).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(get(&f, "/containerLogs/default/quiet/app", Some("wrong")).await.0, 401);
    let (code, body) = logs(&f, "nosuch", "").await;
    assert_eq!(code, 404, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status["kind"].as_str(), status["code"].as_i64()), (Some("Status"), Some(404)));
    assert_eq!(get(&f, "/containerLogs/default/quiet/other", Some(&f.token)).await.0, 404);
    assert_eq!(logs(&f, "quiet", "tailLines=abc").await.0, 400);
    let (code, body) = logs(&f, "quiet", "previous=true").await;
    assert_eq!(code, 400, "no previous attempt: {body}");
    let auth = format!("Authorization: Bearer {}", f.token);
    let refused = Ws::connect(f.addr, "/exec/default/quiet/app?command=true&stdout=true", "v5.channel.k8s.io", &[])
        .await
        .err()
        .expect("no token, no exec");
    assert_eq!(refused.status, 401, "{}", refused.head);
    let refused = Ws::connect(f.addr, "/exec/default/quiet/app?stdout=true", "v5.channel.k8s.io", &[auth]).await;
    assert_eq!(refused.err().expect("exec without a command").status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_honour_tail_timestamps_since_limit_and_follow() {
    let f = fixture("logs-node").await;
    let script = "echo one; echo two >&2; sleep 1.2; echo three; sleep 30";
    start_pod(&f, "logs-node", shell_pod("talker", script, "Never")).await;
    let all = wait_for("three lines logged", || async {
        let (_, body) = logs(&f, "talker", "").await;
        (body.lines().count() == 3).then_some(body)
    })
    .await;
    assert_eq!(all, "one\ntwo\nthree\n");
    assert_eq!(logs(&f, "talker", "tailLines=1").await, (200, "three\n".into()));
    assert_eq!(logs(&f, "talker", "limitBytes=6").await.1, "one\ntw");
    let (_, stamped) = logs(&f, "talker", "timestamps=true").await;
    let times: Vec<Timestamp> = stamped.lines().map(|l| l.split_once(' ').unwrap().0.parse().unwrap()).collect();
    assert_eq!(stamped.lines().map(|l| l.split_once(' ').unwrap().1).collect::<Vec<_>>(), ["one", "two", "three"]);
    assert!(times[2].duration_since(times[0]).as_secs_f64() >= 1.0, "three came over a second later: {stamped}");
    let since = times[2].checked_sub(Duration::from_millis(500)).unwrap();
    assert_eq!(logs(&f, "talker", &format!("sinceTime={since}")).await.1, "three\n");

    // Following: the stream ends once the container has exited and its log is drained.
    start_pod(&f, "logs-node", shell_pod("counter", "for i in 1 2 3; do echo n$i; sleep 0.4; done", "Never")).await;
    let (code, body) = tokio::time::timeout(Duration::from_secs(20), logs(&f, "counter", "follow=true")).await.unwrap();
    assert_eq!((code, body.as_str()), (200, "n1\nn2\nn3\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_serves_the_attempt_before_a_restart() {
    let f = fixture("prev-node").await;
    let script = "echo attempt at $(date +%s%N); sleep 1; exit 1";
    create_bound(&f.cluster, &shell_pod("crasher", script, "Always"), "prev-node").await;
    wait_pod(&f.cluster, "crasher", "restarted", |p| support::app_status(p).is_some_and(|s| s.restart_count >= 1))
        .await;
    let (code, previous) = logs(&f, "crasher", "previous=true").await;
    assert_eq!(code, 200, "{previous}");
    assert!(previous.starts_with("attempt at "), "{previous}");
    let current = wait_for("the new attempt logged", || async {
        let (_, body) = logs(&f, "crasher", "").await;
        body.starts_with("attempt at ").then_some(body)
    })
    .await;
    assert_ne!(previous, current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_output_stdin_and_the_exit_status() {
    let f = fixture("exec-node").await;
    start_pod(&f, "exec-node", shell_pod("box", "sleep 30", "Never")).await;

    let q = "command=sh&command=-c&command=echo+hi%3B+echo+oops+%3E%262%3B+exit+3&stdout=true&stderr=true";
    let (out, err, status) = exec(&f, "box", q).await.drain().await;
    assert_eq!((out.as_str(), err.as_str()), ("hi\n", "oops\n"));
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    let mut ws = exec(&f, "box", "command=cat&stdin=true&stdout=true&stderr=true").await;
    ws.send(b"\x00piped input\n").await;
    ws.send(&[255, 0]).await;
    let (out, _, status) = ws.drain().await;
    assert_eq!(out, "piped input\n");
    assert_eq!(status, serde_json::json!({"metadata": {}, "status": "Success"}));

    let (_, _, status) = exec(&f, "box", "command=sh&stdin=true&stdout=true&tty=true").await.drain().await;
    assert_eq!(status["status"], "Failure");
    assert!(status["message"].as_str().unwrap().contains("not supported"), "{status}");
}
