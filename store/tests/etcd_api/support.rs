//! A single-member store served in-process: the peer service and the etcd API on
//! 127.0.0.1:0, driven with `etcd_client` (and, where installed, the real `etcdctl`).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, WatchResponse, WatchStream};
use flotilla_store::etcd::{routes_with_watch, WatchService};
use flotilla_store::node::{Bootstrap, StoreNode};
use flotilla_store::raft::network::LinkControl;
use flotilla_store::{ids, Config, Node};
use openraft::ServerState;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

/// Upper bound for any single wait in these tests; generous for a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Progress-notify period of the served watch service: short, so a test sees one.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

pub struct Solo {
    pub node: Arc<StoreNode>,
    pub endpoint: String,
    pub client: Client,
    cancel: CancellationToken,
    _dir: TempDir,
}

impl Solo {
    pub async fn start() -> Solo {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = TcpListener::bind("127.0.0.1:0").await.expect("bind peer");
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let api_addr: SocketAddr = api.local_addr().expect("api addr");
        let me = Node {
            name: "solo".into(),
            peer_url: format!("http://{}", peer.local_addr().expect("peer addr")),
            client_urls: vec![format!("http://{api_addr}")],
        };
        let cfg = Config { name: "solo".into(), data_dir: dir.path().join("data"), ..Config::default() };
        let id = ids::member_id(&me.peer_url, &cfg.cluster_token);
        let members = BTreeMap::from([(id, me.clone())]);
        let node = StoreNode::open(cfg, me, Bootstrap::New(members), LinkControl::new()).await.expect("open node");
        let cancel = CancellationToken::new();

        let peer_service = node.peer_server();
        let c = cancel.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(peer_service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(peer), c.cancelled_owned())
                .await
        });
        let watch = WatchService::new(node.clone()).with_progress_notify_interval(PROGRESS_INTERVAL);
        let routes = routes_with_watch(node.clone(), watch);
        let c = cancel.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(api), c.cancelled_owned())
                .await
        });

        node.raft().wait(Some(DEADLINE)).state(ServerState::Leader, "single member leads").await.expect("leader");
        let endpoint = format!("http://{api_addr}");
        let client = Client::connect([endpoint.as_str()], None).await.expect("connect");
        Solo { node, endpoint, client, cancel, _dir: dir }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.node.shutdown().await;
    }
}

/// Await `f` or fail the test after [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The next watch response, failing the test on error, end of stream or deadline.
pub async fn next(stream: &mut WatchStream) -> WatchResponse {
    within("watch response", stream.message()).await.expect("watch stream error").expect("watch stream ended")
}

/// (watch id, [(type, key, value, prev value)]) of an events response, as strings.
pub fn events(resp: &WatchResponse) -> Vec<(i32, String, String, Option<String>)> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("event has a kv");
            let prev = e.prev_kv().map(|p| p.value_str().expect("utf-8").to_string());
            (
                e.event_type() as i32,
                kv.key_str().expect("utf-8").to_string(),
                kv.value_str().expect("utf-8").to_string(),
                prev,
            )
        })
        .collect()
}

pub const PUT: i32 = 0;
pub const DELETE: i32 = 1;

/// The gRPC status of an etcd-client error.
pub fn grpc(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}
