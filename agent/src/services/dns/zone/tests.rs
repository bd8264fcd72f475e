use std::net::SocketAddrV4;

use hickory_proto::rr::rdata::SRV;

use super::*;
use crate::services::model::{Address, ServicePort};

fn port(name: &str, protocol: Protocol, port: u16, endpoints: &[&str]) -> ServicePort {
    let endpoints = endpoints.iter().map(|e| e.parse::<SocketAddrV4>().unwrap()).collect();
    ServicePort { name: name.into(), protocol, port, node_port: None, endpoints }
}

fn service(
    ns: &str,
    name: &str,
    cluster_ip: Option<&str>,
    ports: Vec<ServicePort>,
    addrs: &[(&str, Option<&str>)],
) -> ServiceEntry {
    ServiceEntry {
        namespace: ns.into(),
        name: name.into(),
        cluster_ip: cluster_ip.map(|ip| ip.parse().unwrap()),
        headless: cluster_ip.is_none(),
        affinity_timeout: None,
        ports,
        addresses: addrs
            .iter()
            .map(|(ip, host)| Address { ip: ip.parse().unwrap(), hostname: host.map(Into::into) })
            .collect(),
    }
}

fn snapshot() -> Snapshot {
    let web = service(
        "prod",
        "web",
        Some("10.96.0.20"),
        vec![port("http", Protocol::Tcp, 80, &["10.244.0.2:8080"]), port("", Protocol::Tcp, 81, &[])],
        &[("10.244.0.2", None)],
    );
    let db = service(
        "prod",
        "db",
        None,
        vec![port("pg", Protocol::Tcp, 5432, &["10.244.0.5:5432", "10.244.0.6:5433"])],
        &[("10.244.0.5", Some("db-0")), ("10.244.0.6", None)],
    );
    let empty = service("prod", "empty", None, vec![port("pg", Protocol::Tcp, 5432, &[])], &[]);
    let pending = service("prod", "pending", None, vec![], &[]);
    let pending = ServiceEntry { headless: false, ..pending };
    let services = [web, db, empty, pending].into_iter().map(|s| ((s.namespace.clone(), s.name.clone()), s)).collect();
    Snapshot { services, local_pods: Default::default() }
}

fn zone() -> Zone {
    Zone::new("Cluster.Local.", 5).unwrap()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn lookup(text: &str) -> Lookup {
    zone().lookup(&snapshot(), &name(text))
}

fn ask(text: &str, qtype: RecordType) -> Answer {
    zone().answer(&snapshot(), &Query::query(name(text), qtype)).expect("a name of the zone")
}

fn ips(answer: &Answer) -> Vec<String> {
    answer.answers.iter().filter_map(|r| r.data().as_a().map(|a| a.0.to_string())).collect()
}

fn srvs(answer: &Answer) -> Vec<(u16, String)> {
    let srv = |r: &Record| r.data().as_srv().map(|s: &SRV| (s.port(), s.target().to_ascii()));
    answer.answers.iter().filter_map(srv).collect()
}

#[test]
fn a_cluster_ip_service_resolves_to_its_cluster_ip() {
    let answer = ask("web.prod.svc.cluster.local.", RecordType::A);
    assert_eq!(answer.code, ResponseCode::NoError);
    assert_eq!(ips(&answer), ["10.96.0.20"]);
    assert_eq!(answer.answers[0].ttl(), 5);
    assert!(answer.authority.is_empty());
}

#[test]
fn a_headless_service_resolves_to_every_ready_address_and_to_nothing_without_one() {
    assert_eq!(ips(&ask("db.prod.svc.cluster.local.", RecordType::A)), ["10.244.0.5", "10.244.0.6"]);
    assert_eq!(ask("empty.prod.svc.cluster.local.", RecordType::A).code, ResponseCode::NXDomain);
    assert_eq!(lookup("_pg._tcp.empty.prod.svc.cluster.local."), Lookup::NxDomain);
    assert_eq!(lookup("pending.prod.svc.cluster.local."), Lookup::NxDomain, "no cluster IP allocated yet");
}

#[test]
fn headless_endpoints_are_named_by_hostname_or_dashed_ip() {
    assert_eq!(ips(&ask("db-0.db.prod.svc.cluster.local.", RecordType::A)), ["10.244.0.5"]);
    assert_eq!(ips(&ask("10-244-0-6.db.prod.svc.cluster.local.", RecordType::A)), ["10.244.0.6"]);
    assert_eq!(lookup("10-244-0-5.db.prod.svc.cluster.local."), Lookup::NxDomain, "it has a hostname");
    assert_eq!(lookup("10-244-0-2.web.prod.svc.cluster.local."), Lookup::NxDomain, "not headless");
}

#[test]
fn srv_of_a_cluster_ip_service_points_at_the_service_name() {
    let answer = ask("_http._tcp.web.prod.svc.cluster.local.", RecordType::SRV);
    assert_eq!(srvs(&answer), [(80, "web.prod.svc.cluster.local.".to_string())]);
    let additional: Vec<String> = answer.additionals.iter().map(|r| format!("{} {}", r.name(), r.data())).collect();
    assert_eq!(additional, ["web.prod.svc.cluster.local. 10.96.0.20"]);
    assert_eq!(lookup("_http._udp.web.prod.svc.cluster.local."), Lookup::NxDomain, "wrong protocol");
    assert_eq!(lookup("_81._tcp.web.prod.svc.cluster.local."), Lookup::NxDomain, "unnamed ports have no SRV");
}

#[test]
fn srv_of_a_headless_service_has_one_record_per_endpoint() {
    let answer = ask("_pg._tcp.db.prod.svc.cluster.local.", RecordType::SRV);
    let want =
        [(5432, "db-0.db.prod.svc.cluster.local.".to_string()), (5433, "10-244-0-6.db.prod.svc.cluster.local.".into())];
    assert_eq!(srvs(&answer), want);
    let weights: Vec<u16> = answer.answers.iter().filter_map(|r| r.data().as_srv().map(SRV::weight)).collect();
    assert_eq!(weights, [50, 50]);
    let additional: Vec<String> = answer.additionals.iter().map(|r| format!("{} {}", r.name(), r.data())).collect();
    assert_eq!(
        additional,
        ["db-0.db.prod.svc.cluster.local. 10.244.0.5", "10-244-0-6.db.prod.svc.cluster.local. 10.244.0.6"]
    );
}

#[test]
fn other_types_of_existing_names_are_nodata_with_the_soa() {
    let answer = ask("web.prod.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(answer.code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authority.len(), 1);
    assert_eq!(answer.authority[0].record_type(), RecordType::SOA);
    assert_eq!(answer.authority[0].name(), &name("cluster.local."));
    for between in
        ["svc.cluster.local.", "prod.svc.cluster.local.", "_tcp.web.prod.svc.cluster.local.", "cluster.local."]
    {
        let answer = ask(between, RecordType::A);
        assert_eq!((answer.code, answer.answers.len()), (ResponseCode::NoError, 0), "{between}");
    }
}

#[test]
fn unknown_names_of_the_zone_are_nxdomain() {
    for missing in
        ["nope.prod.svc.cluster.local.", "web.other.svc.cluster.local.", "other.svc.cluster.local.", "x.cluster.local."]
    {
        let answer = ask(missing, RecordType::A);
        assert_eq!(answer.code, ResponseCode::NXDomain, "{missing}");
        assert_eq!(answer.authority[0].record_type(), RecordType::SOA);
    }
}

#[test]
fn names_are_case_insensitive_and_answers_keep_the_question_spelling() {
    let answer = ask("WEB.Prod.SVC.cluster.LOCAL.", RecordType::A);
    assert_eq!(ips(&answer), ["10.96.0.20"]);
    assert_eq!(answer.answers[0].name().to_ascii(), "WEB.Prod.SVC.cluster.LOCAL.");
    assert_eq!(srvs(&ask("_HTTP._TCP.web.prod.svc.cluster.local.", RecordType::SRV)).len(), 1);
    assert_eq!(ips(&ask("DB-0.db.prod.svc.cluster.local.", RecordType::A)), ["10.244.0.5"]);
}

#[test]
fn any_returns_every_record_of_the_name() {
    let answer = ask("_pg._tcp.db.prod.svc.cluster.local.", RecordType::ANY);
    assert_eq!(answer.answers.len(), 2);
    let apex = ask("cluster.local.", RecordType::ANY);
    assert_eq!(apex.answers[0].record_type(), RecordType::SOA);
}

#[test]
fn pod_names_resolve_to_the_address_they_spell() {
    assert_eq!(ips(&ask("10-244-3-7.anything.pod.cluster.local.", RecordType::A)), ["10.244.3.7"]);
    assert_eq!(lookup("10-244-3.prod.pod.cluster.local."), Lookup::NxDomain);
    assert_eq!(lookup("10-244-3-700.prod.pod.cluster.local."), Lookup::NxDomain);
}

#[test]
fn the_schema_version_is_published() {
    let answer = ask("dns-version.cluster.local.", RecordType::TXT);
    let txt = answer.answers[0].data().as_txt().expect("a TXT record");
    assert_eq!(txt.txt_data(), [b"1.0.1".to_vec().into_boxed_slice()]);
}

#[test]
fn reverse_names_of_cluster_addresses_are_answered_and_others_forwarded() {
    let ptr = |text: &str| match lookup(text) {
        Lookup::Found(data) => data.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(ptr("20.0.96.10.in-addr.arpa."), ["web.prod.svc.cluster.local."]);
    assert_eq!(ptr("5.0.244.10.IN-ADDR.ARPA."), ["db-0.db.prod.svc.cluster.local."]);
    assert_eq!(ptr("6.0.244.10.in-addr.arpa."), ["10-244-0-6.db.prod.svc.cluster.local."]);
    assert_eq!(lookup("2.0.244.10.in-addr.arpa."), Lookup::Outside, "an endpoint of a cluster IP service");
    assert_eq!(lookup("8.8.8.8.in-addr.arpa."), Lookup::Outside);
}

#[test]
fn names_outside_the_zone_are_not_answered() {
    assert_eq!(lookup("example.com."), Lookup::Outside);
    assert_eq!(lookup("local."), Lookup::Outside);
    assert_eq!(lookup("web.prod.svc.cluster.localx."), Lookup::Outside);
    assert!(zone().answer(&snapshot(), &Query::query(name("example.com."), RecordType::A)).is_none());
}

#[test]
fn other_classes_are_refused() {
    let mut query = Query::query(name("web.prod.svc.cluster.local."), RecordType::A);
    query.set_query_class(DNSClass::CH);
    assert_eq!(zone().answer(&snapshot(), &query).unwrap().code, ResponseCode::Refused);
}

#[test]
fn the_domain_must_be_a_name() {
    assert!(Zone::new("", 5).is_err());
    assert!(Zone::new("bad..domain", 5).is_err());
    assert!(Zone::new(&"x".repeat(64), 5).is_err());
}
