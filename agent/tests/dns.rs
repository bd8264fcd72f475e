//! The cluster DNS server over real sockets: records from a snapshot built from Service and
//! Endpoints objects, asked over UDP and TCP; forwarding to an upstream run by the test.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use flotilla_agent::services::dns::{DnsConfig, DnsServer};
use flotilla_agent::services::model::Snapshot;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// The longest any exchange with a server under test may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

fn cluster() -> Snapshot {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "web", "namespace": "shop"},
               "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        json!({"metadata": {"name": "db", "namespace": "shop"},
               "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let endpoints: Vec<Endpoints> = [
        json!({"metadata": {"name": "web", "namespace": "shop"},
               "subsets": [{"addresses": [{"ip": "10.244.0.2"}], "ports": [{"name": "http", "port": 8080}]}]}),
        json!({"metadata": {"name": "db", "namespace": "shop"},
               "subsets": [{"addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.1.6", "hostname": "db-1"},
                                          {"ip": "10.244.2.9"}],
                            "notReadyAddresses": [{"ip": "10.244.3.3", "hostname": "db-2"}],
                            "ports": [{"name": "pg", "port": 5432}]}]}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    Snapshot::build(&services, &endpoints)
}

async fn start(upstreams: Vec<SocketAddr>) -> (DnsServer, watch::Sender<Arc<Snapshot>>) {
    let (tx, rx) = watch::channel(Arc::new(cluster()));
    let config = DnsConfig { domain: "cluster.local".into(), upstreams, ttl: 5 };
    let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), config, rx).await.expect("the server starts");
    (server, tx)
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut message = Message::new();
    message.set_id(rand::random()).set_message_type(MessageType::Query).set_recursion_desired(true);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message
}

async fn ask_udp(server: SocketAddr, request: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&request.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0; 65_535];
    let (len, from) = tokio::time::timeout(DEADLINE, socket.recv_from(&mut buf)).await.expect("an answer").unwrap();
    assert_eq!(from, server);
    let response = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!((response.id(), response.message_type()), (request.id(), MessageType::Response));
    assert_eq!(response.queries(), request.queries());
    response
}

async fn ask_tcp(server: SocketAddr, request: &Message) -> Message {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.unwrap();
        write_framed(&mut stream, &request.to_vec().unwrap()).await;
        read_framed(&mut stream).await.expect("an answer")
    };
    let response = Message::from_vec(&tokio::time::timeout(DEADLINE, exchange).await.unwrap()).unwrap();
    assert_eq!(response.id(), request.id());
    response
}

async fn write_framed(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
}

async fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = stream.read_u16().await.ok()?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

fn ips(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records.iter().filter_map(|r| r.data().as_a()).map(|a| a.0.to_string()).collect();
    out.sort();
    out
}

fn srvs(response: &Message) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = response
        .answers()
        .iter()
        .filter_map(|r| r.data().as_srv())
        .map(|s| (s.port(), s.target().to_ascii()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_cluster_ip_service_answers_its_cluster_ip_over_udp_and_tcp() {
    let (server, _tx) = start(vec![]).await;
    let request = query("web.shop.svc.cluster.local.", RecordType::A);
    for response in [ask_udp(server.local_addr(), &request).await, ask_tcp(server.local_addr(), &request).await] {
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert_eq!(ips(response.answers()), ["10.96.0.20"]);
        assert_eq!(response.answers()[0].ttl(), 5);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_headless_service_answers_every_ready_address() {
    let (server, _tx) = start(vec![]).await;
    let response = ask_udp(server.local_addr(), &query("db.shop.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(ips(response.answers()), ["10.244.1.5", "10.244.1.6", "10.244.2.9"], "the not-ready one is left out");
    server.shutdown().await;
}

#[tokio::test]
async fn a_pod_hostname_under_a_headless_service_answers_its_address() {
    let (server, _tx) = start(vec![]).await;
    let addr = server.local_addr();
    let response = ask_udp(addr, &query("db-1.db.shop.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(ips(response.answers()), ["10.244.1.6"]);
    let response = ask_tcp(addr, &query("10-244-2-9.db.shop.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(ips(response.answers()), ["10.244.2.9"]);
    let response = ask_udp(addr, &query("db-2.db.shop.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(response.response_code(), ResponseCode::NXDomain, "not ready");
    server.shutdown().await;
}

#[tokio::test]
async fn srv_records_of_cluster_ip_and_headless_services() {
    let (server, _tx) = start(vec![]).await;
    let addr = server.local_addr();
    let response = ask_udp(addr, &query("_http._tcp.web.shop.svc.cluster.local.", RecordType::SRV)).await;
    assert_eq!(srvs(&response), [(80, "web.shop.svc.cluster.local.".to_string())]);
    assert_eq!(ips(response.additionals()), ["10.96.0.20"]);

    let response = ask_tcp(addr, &query("_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV)).await;
    let want: Vec<(u16, String)> = ["10-244-2-9", "db-0", "db-1"]
        .iter()
        .map(|host| (5432, format!("{host}.db.shop.svc.cluster.local.")))
        .collect();
    assert_eq!(srvs(&response), want);
    assert_eq!(ips(response.additionals()), ["10.244.1.5", "10.244.1.6", "10.244.2.9"]);
    server.shutdown().await;
}

#[tokio::test]
async fn aaaa_of_an_existing_name_is_nodata_and_unknown_names_are_nxdomain() {
    let (server, _tx) = start(vec![]).await;
    let addr = server.local_addr();
    let response = ask_udp(addr, &query("web.shop.svc.cluster.local.", RecordType::AAAA)).await;
    assert_eq!(response.response_code(), ResponseCode::NoError);
    assert!(response.answers().is_empty());
    assert_eq!(response.name_servers()[0].record_type(), RecordType::SOA, "negative answers carry the SOA");
    for missing in
        ["nope.shop.svc.cluster.local.", "web.other.svc.cluster.local.", "_x._tcp.web.shop.svc.cluster.local."]
    {
        let response = ask_udp(addr, &query(missing, RecordType::A)).await;
        assert_eq!(response.response_code(), ResponseCode::NXDomain, "{missing}");
        assert!(response.answers().is_empty());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let (server, _tx) = start(vec![]).await;
    let response = ask_udp(server.local_addr(), &query("Web.SHOP.svc.Cluster.Local.", RecordType::A)).await;
    assert_eq!(ips(response.answers()), ["10.96.0.20"]);
    assert_eq!(response.answers()[0].name().to_ascii(), "Web.SHOP.svc.Cluster.Local.");
    let response =
        ask_tcp(server.local_addr(), &query("_HTTP._Tcp.WEB.shop.SVC.cluster.local.", RecordType::SRV)).await;
    assert_eq!(srvs(&response).len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn the_next_query_sees_a_snapshot_update() {
    let (server, tx) = start(vec![]).await;
    let addr = server.local_addr();
    let request = query("web.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(ips(ask_udp(addr, &request).await.answers()), ["10.96.0.20"]);
    let mut changed = cluster();
    let web = changed.services.get_mut(&("shop".to_string(), "web".to_string())).unwrap();
    web.cluster_ip = Some(Ipv4Addr::new(10, 96, 7, 7));
    tx.send(Arc::new(changed)).unwrap();
    assert_eq!(ips(ask_udp(addr, &request).await.answers()), ["10.96.7.7"]);
    tx.send(Arc::new(Snapshot::default())).unwrap();
    assert_eq!(ask_tcp(addr, &request).await.response_code(), ResponseCode::NXDomain);
    server.shutdown().await;
}

#[tokio::test]
async fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let (server, tx) = start(vec![]).await;
    let endpoints: Vec<serde_json::Value> = (0..100).map(|i| json!({"ip": format!("10.244.9.{i}")})).collect();
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "big", "namespace": "shop"}, "spec": {"clusterIP": "None"}}),
    )
    .unwrap();
    let eps: Endpoints = serde_json::from_value(
        json!({"metadata": {"name": "big", "namespace": "shop"}, "subsets": [{"addresses": endpoints}]}),
    )
    .unwrap();
    tx.send(Arc::new(Snapshot::build([&svc], [&eps]))).unwrap();
    let request = query("big.shop.svc.cluster.local.", RecordType::A);
    let udp = ask_udp(server.local_addr(), &request).await;
    assert!(udp.truncated());
    assert!(udp.answers().is_empty());
    let tcp = ask_tcp(server.local_addr(), &request).await;
    assert!(!tcp.truncated());
    assert_eq!(tcp.answers().len(), 100);
    server.shutdown().await;
}

#[tokio::test]
async fn unsupported_or_malformed_queries_get_errors() {
    let (server, _tx) = start(vec![]).await;
    let addr = server.local_addr();
    let mut notify = query("web.shop.svc.cluster.local.", RecordType::A);
    notify.set_op_code(OpCode::Notify);
    assert_eq!(ask_udp(addr, &notify).await.response_code(), ResponseCode::NotImp);
    let mut two = query("web.shop.svc.cluster.local.", RecordType::A);
    two.add_query(Query::query(Name::from_ascii("db.shop.svc.cluster.local.").unwrap(), RecordType::A));
    assert_eq!(ask_tcp(addr, &two).await.response_code(), ResponseCode::FormErr);

    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff], addr).await.unwrap();
    let mut buf = vec![0; 512];
    let (len, _) = tokio::time::timeout(DEADLINE, socket.recv_from(&mut buf)).await.expect("an answer").unwrap();
    let response = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!((response.id(), response.response_code()), (0x1234, ResponseCode::FormErr));
    server.shutdown().await;
}

/// What the test upstream does with a query.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `example.test` A → 192.0.2.7 (other names NXDOMAIN); `big.example.test` is truncated
    /// over UDP and holds 80 addresses over TCP.
    Answer,
    ServFail,
}

/// A tiny authoritative server, UDP and TCP on one port, run by the test as an upstream.
async fn upstream(behaviour: Behaviour) -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 4096];
        while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
            let reply = upstream_answer(&buf[..len], behaviour, false);
            udp.send_to(&reply, peer).await.unwrap();
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            while let Some(raw) = read_framed(&mut stream).await {
                write_framed(&mut stream, &upstream_answer(&raw, behaviour, true)).await;
            }
        }
    });
    addr
}

fn upstream_answer(raw: &[u8], behaviour: Behaviour, over_tcp: bool) -> Vec<u8> {
    let request = Message::from_vec(raw).unwrap();
    let question = request.queries()[0].clone();
    let mut response = Message::new();
    response.set_id(request.id()).set_message_type(MessageType::Response).add_query(question.clone());
    let name = question.name().to_ascii().to_ascii_lowercase();
    let record = |i: u8| Record::from_rdata(question.name().clone(), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, i))));
    match behaviour {
        Behaviour::ServFail => {
            response.set_response_code(ResponseCode::ServFail);
        }
        Behaviour::Answer if name == "example.test." => {
            response.add_answer(record(7));
        }
        Behaviour::Answer if name == "big.example.test." && over_tcp => {
            response.add_answers((1..=80).map(record));
        }
        Behaviour::Answer if name == "big.example.test." => {
            response.set_truncated(true);
        }
        Behaviour::Answer => {
            response.set_response_code(ResponseCode::NXDomain);
        }
    }
    if let Some(edns) = request.extensions() {
        response.set_edns(Edns::clone(edns));
    }
    response.to_vec().unwrap()
}

/// An address where nothing listens (UDP answers it with ICMP port unreachable).
async fn dead_address() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn names_outside_the_domain_are_forwarded_to_the_first_upstream_that_answers() {
    let ups = vec![dead_address().await, upstream(Behaviour::ServFail).await, upstream(Behaviour::Answer).await];
    let (server, _tx) = start(ups).await;
    let request = query("Example.Test.", RecordType::A);
    for response in [ask_udp(server.local_addr(), &request).await, ask_tcp(server.local_addr(), &request).await] {
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(!response.authoritative());
        assert_eq!(ips(response.answers()), ["192.0.2.7"]);
        assert_eq!(response.answers()[0].ttl(), 300, "relayed as the upstream wrote it");
    }
    let response = ask_udp(server.local_addr(), &query("missing.test.", RecordType::A)).await;
    assert_eq!(response.response_code(), ResponseCode::NXDomain, "the upstream's denial is relayed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_truncated_upstream_answer_is_fetched_over_tcp_for_a_tcp_client() {
    let (server, _tx) = start(vec![upstream(Behaviour::Answer).await]).await;
    let request = query("big.example.test.", RecordType::A);
    let udp = ask_udp(server.local_addr(), &request).await;
    assert!(udp.truncated(), "a UDP client is told to retry over TCP");
    let tcp = ask_tcp(server.local_addr(), &request).await;
    assert!(!tcp.truncated());
    assert_eq!(tcp.answers().len(), 80);
    server.shutdown().await;
}

#[tokio::test]
async fn servfail_without_upstreams_or_when_all_fail() {
    let (server, _tx) = start(vec![]).await;
    let response = ask_udp(server.local_addr(), &query("example.test.", RecordType::A)).await;
    assert_eq!(response.response_code(), ResponseCode::ServFail);
    server.shutdown().await;

    let (server, _tx) = start(vec![dead_address().await, upstream(Behaviour::ServFail).await]).await;
    let response = ask_tcp(server.local_addr(), &query("example.test.", RecordType::A)).await;
    assert_eq!(response.response_code(), ResponseCode::ServFail);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let (server, _tx) = start(vec![]).await;
    let addr = server.local_addr();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(DEADLINE, server.shutdown()).await.expect("shutdown does not wait for idle clients");
    assert!(read_framed(&mut idle).await.is_none(), "open connections are closed");
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn a_bad_domain_or_a_taken_address_fails_to_start() {
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let bad = DnsConfig { domain: "bad..domain".into(), ..DnsConfig::default() };
    assert!(DnsServer::start("127.0.0.1:0".parse().unwrap(), bad, rx.clone()).await.is_err());
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = DnsServer::start(taken.local_addr().unwrap(), DnsConfig::default(), rx).await;
    assert!(result.is_err());
}
