//! TLS on the store's ports, in one process with real sockets: replicas speak mutual TLS to
//! each other (Raft and forwarding), a replica without a cluster-signed replica certificate
//! can neither join nor disrupt them, and the etcd API with client-certificate
//! authentication serves admins and replicas only (etcd_client and the real etcdctl).

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_pki::{Ca, Issued, MASTERS_GROUP, REPLICAS_GROUP};
use flotilla_store::node::Bootstrap;
use flotilla_store::pb::{PbPutRequest, PbRangeRequest};
use flotilla_store::raft::network::{CallError, GrpcTransport, LinkControl, Rpc, Transport};
use flotilla_store::raft::service::proto::Blob;
use flotilla_store::replica::Replica;
use flotilla_store::testing::{config, TOKEN};
use flotilla_store::tls::{ClientTls, PeerTls, StoreTls};
use flotilla_store::{ids, Node, NodeId};
use tokio::net::TcpListener;
use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A replica certificate for 127.0.0.1 in `groups`, signed by `ca`.
fn server_cert(ca: &Ca, name: &str, groups: &[&str]) -> Issued {
    ca.issue_server(name, &strings(groups), &strings(&["127.0.0.1"]), DAY).expect("issue server certificate")
}

fn peer_tls(ca: &Ca, cert: &Issued) -> PeerTls {
    PeerTls::from_pem(&cert.cert_pem, &cert.key_pem, ca.cert_pem()).expect("peer TLS")
}

struct Planned {
    name: String,
    id: NodeId,
    peer: TcpListener,
    node: Node,
}

async fn plan(name: &str) -> Planned {
    let peer = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", peer.local_addr().expect("addr"));
    Planned {
        name: name.into(),
        id: ids::member_id(&url, TOKEN),
        peer,
        node: Node { name: name.into(), peer_url: url, client_urls: vec![] },
    }
}

/// Start `p` as a founding member of `map` with `tls`; its client port is returned as a URL.
async fn start(dir: &tempfile::TempDir, p: Planned, map: &BTreeMap<NodeId, Node>, tls: StoreTls) -> (Replica, String) {
    let client = TcpListener::bind("127.0.0.1:0").await.expect("bind client");
    let scheme = if tls.client.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://{}", client.local_addr().expect("addr"));
    let mut cfg = config(&p.name, dir.path().join(&p.name));
    cfg.election_timeout = Duration::from_millis(1500);
    let mut me = p.node;
    me.client_urls = vec![client_url.clone()];
    let replica = Replica::start(cfg, me, Bootstrap::New(map.clone()), p.peer, vec![client], LinkControl::new(), tls)
        .await
        .expect("replica starts");
    (replica, client_url)
}

/// (term, leader) once every replica agrees on a leader.
async fn settled(replicas: &[&Replica]) -> (u64, NodeId) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Vec<_> = replicas
            .iter()
            .map(|r| {
                let m = r.node.raft().metrics().borrow().clone();
                (m.current_term, m.current_leader)
            })
            .collect();
        if let Some((term, Some(leader))) = seen.first().copied() {
            if seen.iter().all(|s| *s == (term, Some(leader))) {
                return (term, leader);
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader within 20 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn put(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_speak_mutual_tls_and_outsiders_can_neither_join_nor_disrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("flotilla-ca", 30 * DAY).expect("CA");
    let mut planned = Vec::new();
    for i in 0..3 {
        planned.push(plan(&format!("n{i}")).await);
    }
    let mut map: BTreeMap<NodeId, Node> = planned.iter().map(|p| (p.id, p.node.clone())).collect();
    let mut replicas = Vec::new();
    for p in planned {
        let tls = StoreTls { peer: Some(peer_tls(&ca, &server_cert(&ca, &p.name, &[REPLICAS_GROUP]))), client: None };
        replicas.push(start(&dir, p, &map, tls).await.0);
    }
    let all: Vec<&Replica> = replicas.iter().collect();
    let (_, leader) = settled(&all).await;

    // A write on a follower is forwarded to the leader and replicated, all over TLS.
    let follower = replicas.iter().find(|r| r.node.id() != leader).expect("a follower");
    follower.node.put(put("k", "over-tls")).await.expect("write through a follower");
    for r in &replicas {
        r.node.read_barrier().await.expect("read barrier");
        let got = r.node.range(PbRangeRequest { key: "k".into(), ..Default::default() }).await.expect("read");
        assert_eq!(got.kvs.first().map(|kv| kv.value.as_slice()), Some(&b"over-tls"[..]));
    }

    // A Raft message is served only to a replica's certificate from the cluster's CA.
    let target = map[&leader].peer_url.clone();
    let vote = |tls: &PeerTls| {
        let transport = GrpcTransport::new(Some(tls.client_config()));
        let request = openraft::raft::VoteRequest::<NodeId>::new(openraft::Vote::new(1000, 999), None);
        let blob = Blob { data: flotilla_store::raft::service::encode(&request).expect("encode"), from: 999 };
        let rpc = Rpc::Raft(openraft::RPCTypes::Vote);
        let target = target.clone();
        async move { transport.call(&target, rpc, blob, Duration::from_secs(3)).await }
    };
    let code = |r: Result<Vec<u8>, CallError>| match r {
        Ok(_) => None,
        Err(CallError::Status(s)) => Some(s.code()),
        Err(CallError::Timeout) => Some(tonic::Code::DeadlineExceeded),
    };
    let replica_tls = peer_tls(&ca, &server_cert(&ca, "n9", &[REPLICAS_GROUP]));
    assert_eq!(code(vote(&replica_tls).await), None, "a replica's certificate is answered");
    // A certificate of the right CA that is not a replica's: the connection is closed at once.
    let agent_tls = peer_tls(&ca, &server_cert(&ca, "agent", &["system:nodes"]));
    let refused = code(vote(&agent_tls).await);
    assert!(refused.is_some(), "not a replica's certificate: {refused:?}");
    let stranger_ca = Ca::generate("stranger-ca", DAY).expect("CA");
    let stranger_tls = peer_tls(&stranger_ca, &server_cert(&stranger_ca, "stranger", &[REPLICAS_GROUP]));
    let refused = code(vote(&stranger_tls).await);
    assert!(refused.is_some(), "the handshake fails: {refused:?}");
    // The dialing side checks too: a server whose certificate is not a replica's is refused,
    // even on an address it is valid for.
    let impostor = plan("impostor").await;
    let impostor_url = impostor.node.peer_url.clone();
    let impostor_map = BTreeMap::from([(impostor.id, impostor.node.clone())]);
    let impostor_tls = peer_tls(&ca, &server_cert(&ca, "impostor", &["system:nodes"]));
    let (impostor, _) = start(&dir, impostor, &impostor_map, StoreTls { peer: Some(impostor_tls), client: None }).await;
    let transport = GrpcTransport::new(Some(replica_tls.client_config()));
    let request = openraft::raft::VoteRequest::<NodeId>::new(openraft::Vote::new(1000, 999), None);
    let blob = Blob { data: flotilla_store::raft::service::encode(&request).expect("encode"), from: 999 };
    let dialed = transport.call(&impostor_url, Rpc::Raft(openraft::RPCTypes::Vote), blob, Duration::from_secs(3)).await;
    let refused = code(dialed);
    assert!(refused.is_some(), "a server outside system:flotilla-replicas is not a peer: {refused:?}");
    impostor.stop().await;

    let (term, still) = settled(&all).await;
    assert_eq!(still, leader, "the answered vote did not unseat the leader (leader lease)");

    // Two outsiders claim to found a cluster with the real members and campaign at once: one
    // with a certificate of another CA, one with a certificate of the right CA but not a
    // replica's (an agent's, say).
    let outsiders = [("stranger", stranger_tls), ("agent", agent_tls)];
    let mut rogues = Vec::new();
    for (name, tls) in outsiders {
        let p = plan(name).await;
        map.insert(p.id, p.node.clone());
        let (replica, _) = start(&dir, p, &map, StoreTls { peer: Some(tls), client: None }).await;
        rogues.push(replica);
    }
    // Until each has campaigned at least twice (every campaign raises its term).
    let deadline = Instant::now() + Duration::from_secs(30);
    while rogues.iter().any(|r| r.node.raft().metrics().borrow().current_term < 3) {
        assert!(Instant::now() < deadline, "the outsiders did not campaign within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for rogue in &rogues {
        let m = rogue.node.raft().metrics().borrow().clone();
        assert!(m.current_term > 1, "the outsider campaigned (term {})", m.current_term);
        assert_eq!(m.current_leader, None, "no one voted for the outsider");
    }
    let (now_term, now_leader) = settled(&all).await;
    assert_eq!(now_leader, leader, "the outsiders did not unseat the leader");
    assert!(now_term <= term + 1, "the outsiders' campaigns did not reach the cluster ({term} -> {now_term})");
    let leader_node = &replicas.iter().find(|r| r.node.id() == leader).expect("leader").node;
    let members = leader_node.raft().metrics().borrow().membership_config.clone();
    let voters: Vec<NodeId> = members.membership().voter_ids().collect();
    assert_eq!(voters.len(), 3, "membership unchanged: {voters:?}");
    leader_node.put(put("k", "still-writable")).await.expect("the cluster still commits");
    for r in rogues.into_iter().chain(replicas) {
        r.stop().await;
    }
}

/// One replica whose etcd API requires client certificates, and the files a client needs.
struct SecureSolo {
    _dir: tempfile::TempDir,
    replica: Replica,
    url: String,
    ca: Ca,
    files: std::path::PathBuf,
}

impl SecureSolo {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::generate("flotilla-ca", 30 * DAY).expect("CA");
        let server = server_cert(&ca, "n0", &[REPLICAS_GROUP]);
        let client = ClientTls::from_pem(&server.cert_pem, &server.key_pem, Some(ca.cert_pem())).expect("client TLS");
        let p = plan("n0").await;
        let map = BTreeMap::from([(p.id, p.node.clone())]);
        let tls = StoreTls { peer: Some(peer_tls(&ca, &server)), client: Some(client) };
        let (replica, url) = start(&dir, p, &map, tls).await;
        settled(&[&replica]).await;
        let files = dir.path().join("pki");
        std::fs::create_dir_all(&files).expect("mkdir");
        std::fs::write(files.join("ca.crt"), ca.cert_pem()).expect("write CA");
        for (name, user, groups) in [("admin", "admin", MASTERS_GROUP), ("alice", "alice", "dev")] {
            ca.issue_client(user, &strings(&[groups]), DAY).expect("issue").save(&files, name).expect("save");
        }
        Self { _dir: dir, replica, url, ca, files }
    }

    async fn client(&self, user: Option<&str>) -> Result<etcd_client::Client, etcd_client::Error> {
        let mut tls =
            etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(self.ca.cert_pem()));
        if let Some(name) = user {
            let read = |ext: &str| std::fs::read_to_string(self.files.join(format!("{name}.{ext}"))).expect("read");
            tls = tls.identity(etcd_client::Identity::from_pem(read("crt"), read("key")));
        }
        let options = etcd_client::ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5));
        etcd_client::Client::connect([self.url.as_str()], Some(options)).await
    }
}

fn grpc_code(e: &etcd_client::Error) -> Option<tonic::Code> {
    match e {
        etcd_client::Error::GRpcStatus(s) => Some(s.code()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_api_with_client_certificates_serves_admins_only() {
    let solo = SecureSolo::start().await;
    let mut admin = solo.client(Some("admin")).await.expect("admin connects");
    admin.put("secret-key", "v1", None).await.expect("admin writes");
    let got = admin.get("secret-key", None).await.expect("admin reads");
    assert_eq!(got.kvs()[0].value(), b"v1");

    let mut alice = solo.client(Some("alice")).await.expect("alice's TLS handshake succeeds");
    let err = alice.get("secret-key", None).await.expect_err("alice is not an admin");
    assert_eq!(grpc_code(&err), Some(tonic::Code::PermissionDenied), "{err}");
    assert!(err.to_string().contains("system:masters"), "the error names the rule: {err}");
    let err = alice.put("secret-key", "stolen", None).await.expect_err("alice may not write");
    assert_eq!(grpc_code(&err), Some(tonic::Code::PermissionDenied), "{err}");

    // Without a certificate the handshake itself fails (the connection may be made lazily).
    let refused = match solo.client(None).await {
        Err(_) => true,
        Ok(mut anonymous) => anonymous.get("secret-key", None).await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    let got = admin.get("secret-key", None).await.expect("admin reads");
    assert_eq!(got.kvs()[0].value(), b"v1", "nothing changed the key");
    solo.replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_etcdctl_over_tls_with_the_admin_certificate() {
    let solo = SecureSolo::start().await;
    let file = |name: &str| solo.files.join(name).display().to_string();
    let etcdctl = |cert: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", solo.url))
            .arg(format!("--cacert={}", file("ca.crt")))
            .arg(format!("--cert={}", file(&format!("{cert}.crt"))))
            .arg(format!("--key={}", file(&format!("{cert}.key"))))
            .arg("--command-timeout=10s")
            .args(args);
        cmd
    };
    let run = |cert: &'static str, args: &'static [&'static str]| {
        let mut cmd = etcdctl(cert, args);
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("etcdctl runs");
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        }
    };
    let (ok, out) = run("admin", &["put", "greeting", "hello"]).await;
    assert!(ok && out.contains("OK"), "admin put: {out}");
    let (ok, out) = run("admin", &["get", "greeting", "--print-value-only"]).await;
    assert!(ok && out.trim() == "hello", "admin get: {out}");
    let (ok, out) = run("alice", &["get", "greeting"]).await;
    assert!(!ok && (out.contains("PermissionDenied") || out.contains("permission denied")), "alice: {out}");
    solo.replica.stop().await;
}
