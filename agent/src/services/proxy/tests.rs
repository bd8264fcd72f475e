//! Unit tests of [`render`] (the script's text), and `nft -c` (check mode) on a rendered
//! script in a throwaway network namespace. The rules' effect on real traffic is tested in
//! `agent/tests/proxy_nft.rs`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};

use super::names::PortNames;
use super::rules::declared;
use super::*;
use crate::services::model::{Protocol, ServiceEntry, ServicePort, Snapshot};

const TABLE: &str = "flotilla-svc-node1";
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn ep(text: &str) -> SocketAddrV4 {
    text.parse().expect("a test endpoint")
}

fn port(name: &str, protocol: Protocol, number: u16, node_port: Option<u16>, endpoints: &[&str]) -> ServicePort {
    let endpoints = endpoints.iter().map(|e| ep(e)).collect();
    ServicePort { name: name.into(), protocol, port: number, node_port, endpoints }
}

fn service(ns: &str, name: &str, ip: Option<Ipv4Addr>, ports: Vec<ServicePort>) -> ServiceEntry {
    ServiceEntry {
        namespace: ns.into(),
        name: name.into(),
        cluster_ip: ip,
        headless: false,
        affinity_timeout: None,
        ports,
        addresses: vec![],
    }
}

fn snapshot(services: Vec<ServiceEntry>) -> Snapshot {
    Snapshot {
        services: services.into_iter().map(|s| ((s.namespace.clone(), s.name.clone()), s)).collect(),
        local_pods: Default::default(),
    }
}

fn options(dns: bool) -> ProxyOptions {
    ProxyOptions { table: TABLE.into(), dns: dns.then_some(DnsRedirect { cluster_ip: DNS_IP, local_port: 5353 }) }
}

/// A web Service (tcp 80 with nodePort 30080, two endpoints); a sticky one (affinity);
/// an idle one (no endpoints, nodePort 30081); a UDP one; kube-dns on the DNS clusterIP;
/// a headless one and one without a clusterIP.
fn rich() -> Snapshot {
    let web_eps = ["10.244.1.2:8080", "10.244.2.2:8080"];
    let mut sticky = service("prod", "sticky", Some(Ipv4Addr::new(10, 96, 0, 21)), vec![]);
    sticky.ports = vec![port("", Protocol::Tcp, 443, None, &["10.244.1.3:8443", "10.244.2.3:8443"])];
    sticky.affinity_timeout = Some(600);
    let mut headless = service("prod", "db", None, vec![port("", Protocol::Tcp, 5432, None, &["10.244.1.9:5432"])]);
    headless.headless = true;
    snapshot(vec![
        service("default", "web", Some(WEB_IP), vec![port("http", Protocol::Tcp, 80, Some(30080), &web_eps)]),
        sticky,
        service(
            "default",
            "idle",
            Some(Ipv4Addr::new(10, 96, 0, 30)),
            vec![port("", Protocol::Tcp, 80, Some(30081), &[])],
        ),
        service(
            "default",
            "echo",
            Some(Ipv4Addr::new(10, 96, 0, 40)),
            vec![port("", Protocol::Udp, 7, Some(30082), &["10.244.1.4:7"])],
        ),
        service(
            "kube-system",
            "kube-dns",
            Some(DNS_IP),
            vec![
                port("dns", Protocol::Udp, 53, None, &[]),
                port("dns-tcp", Protocol::Tcp, 53, None, &[]),
                port("metrics", Protocol::Tcp, 9153, None, &["10.244.1.5:9153"]),
            ],
        ),
        headless,
        service("prod", "pending", None, vec![port("", Protocol::Tcp, 80, None, &["10.244.1.8:80"])]),
    ])
}

/// The lines of chain (or set/map) `name`'s body, trimmed (of a trailing comma too).
fn body<'a>(script: &'a str, kind: &str, name: &str) -> Vec<&'a str> {
    let head = format!("\t{kind} {name} {{");
    let mut lines = script.lines().skip_while(|l| *l != head);
    assert!(lines.next().is_some(), "no {kind} {name} in:\n{script}");
    lines.take_while(|l| *l != "\t}").map(|l| l.trim().trim_end_matches(',')).collect()
}

fn names_of(snap: &Snapshot, ns: &str, svc: &str) -> (ServiceEntry, ServicePort) {
    let entry = snap.get(ns, svc).expect("in the snapshot").clone();
    let port = entry.ports[0].clone();
    (entry, port)
}

#[test]
fn rendering_is_deterministic_and_replaces_the_whole_table_in_one_script() {
    let script = render(&rich(), &options(true));
    assert_eq!(script, render(&rich(), &options(true)), "same snapshot, same text");
    let head: Vec<&str> = script.lines().take(3).collect();
    assert_eq!(head[..2], [format!("add table ip {TABLE}"), format!("flush table ip {TABLE}")]);
    assert!(script.contains(&format!("flush map ip {TABLE} service-ips\n")));
    assert!(script.contains(&format!("flush set ip {TABLE} no-endpoint-services\n")));
    assert!(script.contains(&format!("\ntable ip {TABLE} {{\n")) && script.ends_with("\n}\n"));
    for (chain, hook) in [
        ("nat-prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
        ("nat-output", "type nat hook output priority -100; policy accept;"),
        ("nat-postrouting", "type nat hook postrouting priority srcnat; policy accept;"),
        ("filter-input", "type filter hook input priority -110; policy accept;"),
        ("filter-forward", "type filter hook forward priority -110; policy accept;"),
        ("filter-output", "type filter hook output priority -110; policy accept;"),
    ] {
        assert_eq!(body(&script, "chain", chain)[0], hook);
    }
    assert_eq!(body(&script, "chain", "nat-postrouting")[1..], ["jump dns-from-host", "jump masquerading"]);
    assert_eq!(
        body(&script, "chain", "masquerading"),
        ["meta mark & 0x4000 == 0 return", "meta mark set meta mark ^ 0x4000", "masquerade fully-random"]
    );
}

#[test]
fn a_cluster_ip_port_goes_to_a_random_endpoint_that_marks_and_dnats() {
    let snap = rich();
    let script = render(&snap, &options(false));
    let (web, http) = names_of(&snap, "default", "web");
    let names = PortNames::new(&web, &http);
    let (svc, a, b) = (
        names.service_chain(),
        names.endpoint_chain(ep("10.244.1.2:8080")),
        names.endpoint_chain(ep("10.244.2.2:8080")),
    );
    let map = body(&script, "map", "service-ips");
    assert!(map.contains(&format!("10.96.0.20 . tcp . 80 : goto {svc}").as_str()), "{map:?}");
    assert_eq!(body(&script, "chain", &svc), [format!("numgen random mod 2 vmap {{ 0 : goto {a}, 1 : goto {b} }}")]);
    assert_eq!(
        body(&script, "chain", &a),
        ["meta mark set meta mark | 0x4000", "meta l4proto tcp dnat to 10.244.1.2:8080"]
    );
    assert_eq!(
        body(&script, "chain", "services"),
        [
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "fib daddr type local meta l4proto . th dport vmap @service-nodeports",
        ]
    );

    let (echo, port) = names_of(&snap, "default", "echo");
    let names = PortNames::new(&echo, &port);
    let only = names.endpoint_chain(ep("10.244.1.4:7"));
    assert_eq!(body(&script, "chain", &names.service_chain()), [format!("goto {only}")], "one endpoint: no numgen");
    assert_eq!(body(&script, "chain", &only)[1], "meta l4proto udp dnat to 10.244.1.4:7");
}

#[test]
fn node_ports_map_protocol_and_port_on_local_addresses() {
    let snap = rich();
    let script = render(&snap, &options(false));
    let chain = |ns, svc| {
        let (entry, port) = names_of(&snap, ns, svc);
        PortNames::new(&entry, &port).service_chain()
    };
    let map = body(&script, "map", "service-nodeports");
    let expected = [
        format!("udp . 30082 : goto {}", chain("default", "echo")),
        format!("tcp . 30080 : goto {}", chain("default", "web")),
    ];
    assert_eq!(map[2..4], expected, "{map:?}");

    // A nodePort claimed twice (a conflict the API server should prevent) keeps the first
    // owner; nft would refuse the whole script otherwise. Likewise a clusterIP:port.
    let mut snap = rich();
    let twin = port("", Protocol::Tcp, 80, Some(30080), &["10.244.1.7:80"]);
    snap.services.insert(("zz".into(), "twin".into()), service("zz", "twin", Some(WEB_IP), vec![twin]));
    let script = render(&snap, &options(false));
    assert_eq!(body(&script, "map", "service-nodeports")[2..4], expected);
    assert!(!script.contains("10.244.1.7"), "the twin gets no rules");
}

#[test]
fn client_ip_affinity_remembers_clients_per_endpoint() {
    let snap = rich();
    let script = render(&snap, &options(false));
    let (sticky, port) = names_of(&snap, "prod", "sticky");
    let names = PortNames::new(&sticky, &port);
    let (a, b) = (ep("10.244.1.3:8443"), ep("10.244.2.3:8443"));
    let (aff_a, aff_b) = (names.affinity_set(a, 600), names.affinity_set(b, 600));
    let (sep_a, sep_b) = (names.endpoint_chain(a), names.endpoint_chain(b));
    assert_eq!(body(&script, "set", &aff_a), ["type ipv4_addr", "flags dynamic,timeout", "timeout 600s"]);
    assert_eq!(
        body(&script, "chain", &names.service_chain()),
        [
            format!("ip saddr @{aff_a} goto {sep_a}"),
            format!("ip saddr @{aff_b} goto {sep_b}"),
            format!("numgen random mod 2 vmap {{ 0 : goto {sep_a}, 1 : goto {sep_b} }}"),
        ],
        "a remembered client goes to its endpoint before any pick"
    );
    assert_eq!(
        body(&script, "chain", &sep_b),
        [
            "meta mark set meta mark | 0x4000".to_string(),
            format!("update @{aff_b} {{ ip saddr }}"),
            "meta l4proto tcp dnat to 10.244.2.3:8443".to_string(),
        ]
    );
    let sets = declared(&script).into_iter().filter(|(kind, name)| kind == "set" && name.starts_with("aff-")).count();
    assert_eq!(sets, 2, "only the sticky Service has affinity sets");
}

#[test]
fn ports_without_endpoints_are_rejected_not_mapped() {
    let script = render(&rich(), &options(false));
    assert_eq!(
        body(&script, "set", "no-endpoint-services")[2..],
        ["10.96.0.30 . tcp . 80", "10.96.0.10 . udp . 53", "10.96.0.10 . tcp . 53", "}"]
    );
    assert_eq!(body(&script, "set", "no-endpoint-nodeports")[2..], ["tcp . 30081", "}"]);
    assert!(!body(&script, "map", "service-ips").iter().any(|l| l.starts_with("10.96.0.30 ")));
    assert!(!script.contains("default/idle/"), "no chains for the idle port");
    let reject = "goto reject-no-endpoints";
    let forward = body(&script, "chain", "filter-forward");
    assert_eq!(forward[1], format!("ct state new ip daddr . meta l4proto . th dport @no-endpoint-services {reject}"));
    assert_eq!(body(&script, "chain", "filter-output")[1], forward[1]);
    let input = body(&script, "chain", "filter-input");
    assert_eq!(input[2], format!("ct state new meta l4proto . th dport @no-endpoint-nodeports {reject}"));
    assert_eq!(body(&script, "chain", "reject-no-endpoints"), ["meta l4proto tcp reject with tcp reset", "reject"]);
}

#[test]
fn the_dns_redirect_comes_first_and_shadows_its_port() {
    let with = render(&rich(), &options(true));
    assert_eq!(
        body(&with, "chain", "dns-redirect"),
        ["ip daddr 10.96.0.10 udp dport 53 redirect to :5353", "ip daddr 10.96.0.10 tcp dport 53 redirect to :5353"]
    );
    // Only this node's pods are redirected (other clusters' agents may share the host);
    // the host itself always is.
    assert_eq!(
        body(&with, "chain", "nat-prerouting")[1..],
        ["ip saddr @local-pods jump dns-redirect", "jump services"]
    );
    assert_eq!(body(&with, "chain", "nat-output")[1..], ["jump dns-redirect", "jump services"]);
    let mut pods = rich();
    pods.local_pods.extend([Ipv4Addr::new(10, 244, 0, 9), Ipv4Addr::new(10, 244, 0, 3)]);
    let listed = render(&pods, &options(true));
    let set = body(&listed, "set", "local-pods");
    assert!(set.contains(&"10.244.0.3") && set.contains(&"10.244.0.9"), "{set:?}");
    let from_host = body(&with, "chain", "dns-from-host");
    assert_eq!(
        from_host[0],
        "oifname \"lo\" meta l4proto udp ct original ip daddr 10.96.0.10 ct original proto-dst 53 snat to 127.0.0.1"
    );
    // kube-dns's port 53 (no endpoints here) is neither rejected nor mapped; its metrics
    // port is an ordinary Service port.
    assert!(!with.contains("10.96.0.10 . udp . 53") && !with.contains("10.96.0.10 . tcp . 53"));
    assert!(with.contains("10.96.0.10 . tcp . 9153 : goto svc-"));

    let without = render(&rich(), &options(false));
    assert!(body(&without, "chain", "dns-redirect").is_empty() && body(&without, "chain", "dns-from-host").is_empty());
    let idle = body(&without, "set", "no-endpoint-services");
    assert!(idle.contains(&"10.96.0.10 . udp . 53"), "without the redirect, kube-dns's port is rejected: {idle:?}");
}

#[test]
fn headless_services_and_services_without_a_cluster_ip_get_no_rules() {
    let mut dns_only = Snapshot::default();
    for (key, entry) in rich().services {
        if entry.headless || entry.cluster_ip.is_none() {
            dns_only.services.insert(key, entry);
        }
    }
    assert_eq!(dns_only.services.len(), 2);
    assert_eq!(render(&dns_only, &options(false)), render(&Snapshot::default(), &options(false)));
    let script = render(&rich(), &options(false));
    assert!(!script.contains("10.244.1.9") && !script.contains("10.244.1.8") && !script.contains("prod/db/"));
}

#[test]
fn declared_reads_the_objects_of_a_script_or_a_listing() {
    let script = render(&rich(), &options(true));
    let objects = declared(&script);
    for fixed in [("map", "service-ips"), ("set", "no-endpoint-nodeports"), ("chain", "reject-no-endpoints")] {
        assert!(objects.contains(&(fixed.0.to_string(), fixed.1.to_string())), "{fixed:?}");
    }
    let chains = objects.iter().filter(|(kind, _)| kind == "chain").count();
    // 11 fixed chains; web 1+2, sticky 1+2, echo 1+1, kube-dns metrics 1+1.
    assert_eq!(chains, 11 + 3 + 3 + 2 + 2, "{objects:?}");
    let listing = "table ip t {\n\tset aff-1-x {\n\t\ttype ipv4_addr\n\t}\n\n\tchain svc-2-y {\n\t}\n}\n";
    let listed: Vec<(String, String)> = declared(listing).into_iter().collect();
    assert_eq!(listed, [("chain".to_string(), "svc-2-y".to_string()), ("set".to_string(), "aff-1-x".to_string())]);
}

/// `nft -c` on the rich snapshot's script, in a fresh network namespace (`unshare -n`),
/// so check mode starts from an empty ruleset and nothing on the host is looked at.
#[test]
fn nft_accepts_the_rendered_script() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tools =
        ["nft", "unshare"].iter().all(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()));
    if !root || !tools {
        let skip = std::env::var("FLOTILLA_SKIP_NFT").as_deref() == Ok("1");
        assert!(skip, "needs root, nft and unshare; set FLOTILLA_SKIP_NFT=1 to skip");
        eprintln!("skipped: needs root, nft and unshare, and FLOTILLA_SKIP_NFT=1");
        return;
    }
    for dns in [true, false] {
        let script = render(&rich(), &options(dns));
        let mut child = Command::new("unshare")
            .args(["-n", "nft", "-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run unshare");
        child.stdin.take().expect("piped").write_all(script.as_bytes()).expect("feed nft");
        let out = child.wait_with_output().expect("nft ran");
        assert!(out.status.success(), "nft -c refused:\n{}\n{script}", String::from_utf8_lossy(&out.stderr));
    }
}
