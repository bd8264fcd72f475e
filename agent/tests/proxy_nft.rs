//! The service proxy's nftables rules on a real kernel (issue 8).
//!
//! Each test builds a lab of network namespaces: a "node" with `lo` up and two "pods",
//! each joined to the node by a veth pair (node 10.244.1.1 ↔ pod a 10.244.1.2, node
//! 10.244.2.1 ↔ pod b 10.244.2.2). Every pod serves TCP and UDP, answering with its name
//! and the client address it saw, so a test knows where a connection landed and whether
//! it was masqueraded. The rules are rendered from a snapshot and applied in the node
//! namespace (from a thread that entered it with `setns`, so `nft` runs there); clients
//! connect from the node and from pod a. The node also has an "uplink" (a veth pair with
//! both ends in the node, 192.168.77.1 on one) carrying its default route, so clusterIPs
//! are routable as on a real node, and the node dials them from 192.168.77.1.
//!
//! Needs root, `ip` and `nft`; fails and says so otherwise, unless `FLOTILLA_SKIP_NFT=1`. Every namespace a
//! test creates is deleted when the test ends, also on failure ([`Lab`]'s `Drop`); the
//! root namespace is never touched.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use flotilla_agent::services::model::{Protocol, ServiceEntry, ServicePort, Snapshot};
use flotilla_agent::services::proxy::{self, DnsRedirect, ProxyOptions};
use flotilla_agent::AgentError;

const NODE_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
const POD_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
const NODE_B: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 1);
/// The node's address on its uplink, its source for clusterIPs.
const UPLINK: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 2);
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const IDLE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// What the pods listen on (TCP and UDP).
const POD_PORT: u16 = 8080;
/// What the node's stand-in DNS server listens on (TCP and UDP).
const DNS_LOCAL_PORT: u16 = 5353;
const TABLE: &str = "flotilla-svc-test";
/// How long a connection or an answer may take. Veth pairs answer in microseconds; the
/// margin covers a lost first SYN (retransmitted after 1s) on a loaded machine. A
/// black-holed connection would take this long; a rejected one fails at once.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per spreading check: both endpoints are hit unless the random pick chose
/// one 40 times in a row (2^-39).
const SPREAD: usize = 40;

/// Network namespaces `<prefix>-node`, `<prefix>-a`, `<prefix>-b`, deleted on drop.
struct Lab {
    node: String,
    pod_a: String,
    pod_b: String,
    created: Vec<String>,
}

impl Lab {
    /// A lab with both pods serving. Without root or nft the test fails and says so, unless
    /// `FLOTILLA_SKIP_NFT=1` (then `None`, with a note).
    fn new(tag: &str) -> Option<Lab> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let nft = Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success());
        if !root || !nft {
            let why = if root { "nft is not installed" } else { "needs root (network namespaces and nftables)" };
            assert!(std::env::var("FLOTILLA_SKIP_NFT").as_deref() == Ok("1"), "{why}; set FLOTILLA_SKIP_NFT=1 to skip");
            eprintln!("skipped: {why} and FLOTILLA_SKIP_NFT=1");
            return None;
        }
        let prefix = format!("fxp{}{tag}", std::process::id());
        let pod_b = format!("{prefix}-b");
        let mut lab =
            Lab { node: format!("{prefix}-node"), pod_a: format!("{prefix}-a"), pod_b: pod_b.clone(), created: vec![] };
        for ns in [lab.node.clone(), lab.pod_a.clone(), pod_b.clone()] {
            ip(&["netns", "add", &ns]);
            lab.created.push(ns);
        }
        let node = lab.node.clone();
        ip(&["-n", &node, "link", "set", "lo", "up"]);
        for (pod, link, host, addr) in [(&lab.pod_a, "va", NODE_A, POD_A), (&pod_b, "vb", NODE_B, POD_B)] {
            ip(&["-n", &node, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", pod]);
            ip(&["-n", &node, "addr", "add", &format!("{host}/24"), "dev", link]);
            ip(&["-n", &node, "link", "set", link, "up"]);
            ip(&["-n", pod, "link", "set", "lo", "up"]);
            ip(&["-n", pod, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&["-n", pod, "link", "set", "eth0", "up"]);
            ip(&["-n", pod, "route", "add", "default", "via", &host.to_string()]);
        }
        ip(&["-n", &node, "link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
        ip(&["-n", &node, "addr", "add", &format!("{UPLINK}/24"), "dev", "up0"]);
        ip(&["-n", &node, "link", "set", "up0", "up"]);
        ip(&["-n", &node, "link", "set", "up1", "up"]);
        ip(&["-n", &node, "route", "add", "default", "via", "192.168.77.2"]);
        sysctl(&node, "net.ipv4.ip_forward=1");
        serve(&lab.pod_a, "a", POD_PORT);
        serve(&pod_b, "b", POD_PORT);
        Some(lab)
    }

    /// Run `f` on a thread inside the node namespace.
    fn on_node<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.node, f)
    }

    fn on_pod_a<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.pod_a, f)
    }

    fn on_pod_b<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.pod_b, f)
    }

    /// Render `snapshot` and apply it in the node namespace.
    fn apply(&self, snapshot: &Snapshot, opts: &ProxyOptions) -> Result<(), AgentError> {
        let script = proxy::render(snapshot, opts);
        self.on_node(move || block_on(proxy::apply(&script)))
    }

    fn remove(&self) -> Result<(), AgentError> {
        self.on_node(|| block_on(proxy::remove(TABLE)))
    }

    /// `nft list table`, or `None` when there is no such table.
    fn listing(&self) -> Option<String> {
        let out = Command::new("ip").args(["netns", "exec", &self.node, "nft", "list", "table", "ip", TABLE]).output();
        let out = out.expect("run nft");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn sysctl(ns: &str, setting: &str) {
    let out = Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", setting]).output().expect("run sysctl");
    assert!(out.status.success(), "sysctl {setting}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Run `f` on a new thread that first joins network namespace `ns`; sockets it creates
/// (and processes it spawns) live there.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let thread = std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
        f()
    });
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
}

/// Serve TCP and UDP on `port` in `ns`, answering `"<name> <client ip>"`, until the test
/// process exits.
fn serve(ns: &str, name: &'static str, port: u16) {
    let (tcp, udp) = in_netns(ns, move || {
        (TcpListener::bind(("0.0.0.0", port)).expect("bind tcp"), UdpSocket::bind(("0.0.0.0", port)).expect("bind udp"))
    });
    std::thread::spawn(move || {
        for mut conn in tcp.incoming().flatten() {
            let peer = conn.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            let _ = conn.write_all(format!("{name} {peer}").as_bytes());
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(format!("{name} {}", peer.ip()).as_bytes(), peer);
        }
    });
}

/// One TCP connection's answer: (server name, client ip it saw).
fn tcp_hello(addr: SocketAddrV4) -> io::Result<(String, Ipv4Addr)> {
    let mut conn = TcpStream::connect_timeout(&SocketAddr::V4(addr), IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(parse(&answer))
}

/// One UDP exchange from a fresh socket (a new source port, so a new conntrack entry).
fn udp_hello(addr: SocketAddrV4) -> io::Result<(String, Ipv4Addr)> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.send(b"hello")?;
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf)?;
    Ok(parse(&String::from_utf8_lossy(&buf[..n])))
}

fn parse(answer: &str) -> (String, Ipv4Addr) {
    let (name, ip) = answer.split_once(' ').unwrap_or_else(|| panic!("odd answer {answer:?}"));
    (name.to_string(), ip.parse().unwrap_or_else(|_| panic!("odd answer {answer:?}")))
}

/// `n` TCP answers from `addr`, panicking on any failure.
fn tcp_hellos(addr: SocketAddrV4, n: usize) -> Vec<(String, Ipv4Addr)> {
    (0..n).map(|i| tcp_hello(addr).unwrap_or_else(|e| panic!("connection {i} to {addr}: {e}"))).collect()
}

fn names(answers: &[(String, Ipv4Addr)]) -> BTreeSet<String> {
    answers.iter().map(|(name, _)| name.clone()).collect()
}

fn both() -> BTreeSet<String> {
    ["a".to_string(), "b".to_string()].into()
}

fn only(name: &str) -> BTreeSet<String> {
    [name.to_string()].into()
}

fn options(dns: Option<DnsRedirect>) -> ProxyOptions {
    ProxyOptions { table: TABLE.into(), dns }
}

fn port(protocol: Protocol, number: u16, node_port: Option<u16>, pods: &[Ipv4Addr]) -> ServicePort {
    let endpoints = pods.iter().map(|ip| SocketAddrV4::new(*ip, POD_PORT)).collect();
    ServicePort { name: String::new(), protocol, port: number, node_port, endpoints }
}

fn service(name: &str, ip: Ipv4Addr, affinity_timeout: Option<u32>, ports: Vec<ServicePort>) -> ServiceEntry {
    let (namespace, name) = ("default".to_string(), name.to_string());
    ServiceEntry { namespace, name, cluster_ip: Some(ip), headless: false, affinity_timeout, ports, addresses: vec![] }
}

fn snapshot(services: Vec<ServiceEntry>) -> Snapshot {
    Snapshot {
        services: services.into_iter().map(|s| ((s.namespace.clone(), s.name.clone()), s)).collect(),
        local_pods: Default::default(),
    }
}

#[test]
fn cluster_ip_spreads_follows_endpoints_rejects_without_and_is_removed() {
    let Some(lab) = Lab::new("c") else { return };
    let opts = options(None);
    let web =
        |pods: &[Ipv4Addr]| snapshot(vec![service("web", WEB_IP, None, vec![port(Protocol::Tcp, 80, None, pods)])]);
    let vip = SocketAddrV4::new(WEB_IP, 80);

    lab.apply(&web(&[POD_A, POD_B]), &opts).expect("apply");
    let answers = lab.on_node(move || tcp_hellos(vip, SPREAD));
    assert_eq!(names(&answers), both(), "{answers:?}");
    // The node dials the clusterIP from its uplink address; each pod sees the node's
    // address on the pod's own link, so the connection was masqueraded.
    let masqueraded = |(name, client): &(String, Ipv4Addr)| *client == if name == "a" { NODE_A } else { NODE_B };
    assert!(answers.iter().all(masqueraded), "{answers:?}");

    let before = lab.listing().expect("the table exists");
    lab.apply(&web(&[POD_A, POD_B]), &opts).expect("re-apply");
    assert_eq!(lab.listing().as_deref(), Some(before.as_str()), "re-applying the same snapshot changes nothing");

    lab.apply(&web(&[POD_B]), &opts).expect("apply with one endpoint");
    let answers = lab.on_node(move || tcp_hellos(vip, SPREAD / 2));
    assert_eq!(names(&answers), only("b"), "{answers:?}");
    let listing = lab.listing().expect("the table exists");
    assert!(!listing.contains("10.244.1.2"), "the gone endpoint's chain was swept:\n{listing}");

    lab.apply(&web(&[]), &opts).expect("apply without endpoints");
    let refused = lab.on_node(move || tcp_hello(vip)).expect_err("no endpoints");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused, "rejected, not black-holed: {refused}");

    lab.remove().expect("remove");
    assert!(lab.listing().is_none(), "the table is gone");
    lab.remove().expect("removing a missing table is fine");
}

#[test]
fn node_ports_work_on_loopback_and_node_addresses_and_pods_reach_themselves() {
    let Some(lab) = Lab::new("n") else { return };
    lab.on_node(proxy::enable_route_localnet).expect("route_localnet");
    let web = service("web", WEB_IP, None, vec![port(Protocol::Tcp, 80, Some(30080), &[POD_A, POD_B])]);
    let idle = service("idle", IDLE_IP, None, vec![port(Protocol::Tcp, 80, Some(30081), &[])]);
    lab.apply(&snapshot(vec![web, idle]), &options(None)).expect("apply");

    let answers = lab.on_node(|| tcp_hellos(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30080), SPREAD));
    assert_eq!(names(&answers), both(), "NodePort on 127.0.0.1 from the host: {answers:?}");
    let answers = lab.on_pod_a(|| tcp_hellos(SocketAddrV4::new(NODE_B, 30080), SPREAD));
    assert_eq!(names(&answers), both(), "NodePort on a node address from a pod: {answers:?}");

    let answers = lab.on_pod_a(|| tcp_hellos(SocketAddrV4::new(WEB_IP, 80), SPREAD));
    assert_eq!(names(&answers), both(), "clusterIP from a pod: {answers:?}");
    // Pod a reaching itself sees the node as the client: without masquerade its reply
    // would skip the node's conntrack and never match the connection.
    assert!(answers.iter().filter(|(name, _)| name == "a").all(|(_, client)| *client == NODE_A), "{answers:?}");

    let refusals = [
        lab.on_node(|| tcp_hello(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30081))),
        lab.on_pod_a(|| tcp_hello(SocketAddrV4::new(NODE_A, 30081))),
        lab.on_pod_a(|| tcp_hello(SocketAddrV4::new(IDLE_IP, 80))),
    ];
    for (i, outcome) in refusals.into_iter().enumerate() {
        let err = outcome.expect_err("no endpoints");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "case {i}: {err}");
    }
}

#[test]
fn udp_ports_and_the_dns_redirect() {
    let Some(lab) = Lab::new("u") else { return };
    serve(&lab.node, "dns", DNS_LOCAL_PORT);
    let dns = DnsRedirect { cluster_ip: DNS_IP, local_port: DNS_LOCAL_PORT };
    // A kube-dns Service on the same clusterIP and port, without endpoints: the redirect
    // comes first, so its port is neither DNATed nor rejected.
    let kube_dns =
        service("kube-dns", DNS_IP, None, vec![port(Protocol::Udp, 53, None, &[]), port(Protocol::Tcp, 53, None, &[])]);
    let echo = service("echo", WEB_IP, None, vec![port(Protocol::Udp, 5300, None, &[POD_A, POD_B])]);
    let idle = service("idle", IDLE_IP, None, vec![port(Protocol::Udp, 5300, None, &[])]);
    let mut with_dns = snapshot(vec![kube_dns, echo, idle]);
    with_dns.local_pods.insert(POD_A);
    lab.apply(&with_dns, &options(Some(dns))).expect("apply");

    let answers = lab.on_node(|| {
        (0..SPREAD).map(|_| udp_hello(SocketAddrV4::new(WEB_IP, 5300)).expect("udp answer")).collect::<Vec<_>>()
    });
    assert_eq!(names(&answers), both(), "UDP spreads over new flows: {answers:?}");
    // Without endpoints: a pod gets ICMP port unreachable; on the host itself the reject
    // happens in the sender's own output path, which the kernel reports as EPERM on send.
    let idle = SocketAddrV4::new(IDLE_IP, 5300);
    let refused = lab.on_pod_a(move || udp_hello(idle)).expect_err("no endpoints");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused, "from a pod: {refused}");
    let refused = lab.on_node(move || udp_hello(idle)).expect_err("no endpoints");
    assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied, "from the host: {refused}");

    let cluster_dns = SocketAddrV4::new(DNS_IP, 53);
    let (name, _) = lab.on_node(move || udp_hello(cluster_dns)).expect("DNS over UDP from the host");
    assert_eq!(name, "dns");
    let (name, _) = lab.on_node(move || tcp_hello(cluster_dns)).expect("DNS over TCP from the host");
    assert_eq!(name, "dns");
    // From a pod, the query lands on the node's address on the pod's link, and the
    // server sees the pod itself (a redirect is not masqueraded).
    let answer = lab.on_pod_a(move || udp_hello(cluster_dns)).expect("DNS over UDP from a pod");
    assert_eq!(answer, ("dns".to_string(), POD_A));
    let answer = lab.on_pod_a(move || tcp_hello(cluster_dns)).expect("DNS over TCP from a pod");
    assert_eq!(answer, ("dns".to_string(), POD_A));
    // A pod that is not this node's (another cluster's, on the same host) is not redirected.
    let stranger = lab.on_pod_b(move || udp_hello(cluster_dns));
    assert!(stranger.is_err(), "pod B is not a local pod: {stranger:?}");
}

#[test]
fn client_ip_affinity_sticks_across_reapplies_until_its_endpoint_goes() {
    let Some(lab) = Lab::new("s") else { return };
    let opts = options(None);
    let cluster = |pods: &[Ipv4Addr], others: usize| {
        let mut services = vec![service("sticky", WEB_IP, Some(600), vec![port(Protocol::Tcp, 80, None, pods)])];
        for i in 0..others {
            let ip = Ipv4Addr::new(10, 96, 1, i as u8);
            services.push(service(&format!("other-{i}"), ip, None, vec![port(Protocol::Tcp, 80, None, &[POD_A])]));
        }
        snapshot(services)
    };
    let vip = SocketAddrV4::new(WEB_IP, 80);

    lab.apply(&cluster(&[POD_A, POD_B], 0), &opts).expect("apply");
    let answers = lab.on_node(move || tcp_hellos(vip, SPREAD / 2));
    let chosen = names(&answers);
    assert_eq!(chosen.len(), 1, "one client, one endpoint: {answers:?}");
    // Any change in the cluster re-applies the whole table; were the affinity sets lost
    // each time, five re-applies would keep the endpoint only one time in 32.
    for others in 1..=5 {
        lab.apply(&cluster(&[POD_A, POD_B], others), &opts).expect("re-apply");
        let answers = lab.on_node(move || tcp_hellos(vip, SPREAD / 4));
        assert_eq!(names(&answers), chosen, "after re-apply {others}: {answers:?}");
    }

    let kept = if chosen == only("a") { POD_B } else { POD_A };
    lab.apply(&cluster(&[kept], 5), &opts).expect("apply without the chosen endpoint");
    let answers = lab.on_node(move || tcp_hellos(vip, SPREAD / 4));
    let expected = if kept == POD_A { only("a") } else { only("b") };
    assert_eq!(names(&answers), expected, "the client moves on when its endpoint goes: {answers:?}");
    let gone = if kept == POD_A { POD_B } else { POD_A };
    let listing = lab.listing().expect("the table exists");
    let sticky_objects = listing.lines().filter(|l| l.contains("default/sticky/") && l.contains(&format!("/{gone}/")));
    assert_eq!(sticky_objects.count(), 0, "the gone endpoint's chain and affinity set were swept:\n{listing}");
}

#[test]
fn a_rejected_script_changes_nothing_and_says_why() {
    let Some(lab) = Lab::new("r") else { return };
    let opts = options(None);
    let web = snapshot(vec![service("web", WEB_IP, None, vec![port(Protocol::Tcp, 80, None, &[POD_A])])]);
    lab.apply(&web, &opts).expect("apply");
    let before = lab.listing().expect("the table exists");

    let moved = snapshot(vec![service("web", WEB_IP, None, vec![port(Protocol::Tcp, 80, None, &[POD_B])])]);
    let broken =
        proxy::render(&moved, &opts).replace("\t\tjump services\n", "\t\tjump services\n\t\tjump nowhere-at-all\n");
    let err = lab.on_node(move || block_on(proxy::apply(&broken))).expect_err("nft refuses a jump to a missing chain");
    assert!(err.to_string().contains("nowhere-at-all"), "the error carries nft's message: {err}");
    assert_eq!(lab.listing().as_deref(), Some(before.as_str()), "nothing changed");
    let (name, _) = lab.on_node(|| tcp_hello(SocketAddrV4::new(WEB_IP, 80))).expect("still served");
    assert_eq!(name, "a");
}

#[test]
fn a_restarted_agent_takes_its_old_table_over_exactly() {
    let Some(lab) = Lab::new("t") else { return };
    let opts = options(None);
    // What the agent had programmed when it was killed...
    let before = snapshot(vec![
        service("web", WEB_IP, Some(600), vec![port(Protocol::Tcp, 80, Some(30080), &[POD_A, POD_B])]),
        service("echo", IDLE_IP, None, vec![port(Protocol::Udp, 5300, None, &[POD_A])]),
    ]);
    // ...and the cluster when it comes back: web lost an endpoint and its nodePort, echo
    // is gone, a new Service appeared.
    let after = snapshot(vec![
        service("web", WEB_IP, Some(600), vec![port(Protocol::Tcp, 80, None, &[POD_B])]),
        service("new", DNS_IP, None, vec![port(Protocol::Tcp, 8443, None, &[POD_A])]),
    ]);
    lab.apply(&before, &opts).expect("apply before");
    lab.apply(&after, &opts).expect("a restarted agent's first apply");
    let taken_over = lab.listing().expect("the table exists");
    lab.remove().expect("remove");
    lab.apply(&after, &opts).expect("apply on a clean node");
    let fresh = lab.listing().expect("the table exists");
    // Objects that survived keep their place in the listing; their set must be the same.
    assert_eq!(proxy::objects(&taken_over), proxy::objects(&fresh), "no stale object left, none missing");
    let (name, _) = lab.on_node(|| tcp_hello(SocketAddrV4::new(DNS_IP, 8443))).expect("the new Service answers");
    assert_eq!(name, "a");
}

#[test]
fn udp_flows_leave_a_removed_endpoint() {
    let Some(lab) = Lab::new("f") else { return };
    let conntrack = Command::new("conntrack").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(conntrack, "the conntrack tool (Debian package conntrack) is not installed");
    let opts = options(None);
    let echo =
        |pods: &[Ipv4Addr]| snapshot(vec![service("echo", WEB_IP, None, vec![port(Protocol::Udp, 5300, None, pods)])]);
    // One client socket (one source port: one conntrack entry), first with both endpoints.
    let client = lab.on_node(|| {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(SocketAddrV4::new(WEB_IP, 5300)).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket
    });
    let ask = |socket: &UdpSocket| -> String {
        socket.send(b"hello").expect("send");
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).expect("an answer");
        parse(&String::from_utf8_lossy(&buf[..n])).0
    };
    let (old, new) = (echo(&[POD_A, POD_B]), echo(&[POD_B]));
    let sync = |from: &Snapshot, to: &Snapshot| {
        lab.apply(to, &opts).expect("apply");
        let flushes = proxy::conntrack::stale(from, to);
        lab.on_node(move || block_on(proxy::conntrack::delete(&flushes))).expect("conntrack -D");
    };
    sync(&Snapshot::default(), &old);
    // Until the flow lands on a: the first packet picks at random.
    let mut first = ask(&client);
    for _ in 0..SPREAD {
        if first == "a" {
            break;
        }
        sync(&old, &echo(&[])); // no endpoints: the flow's entry goes...
        sync(&echo(&[]), &old); // ...and the next packet picks again
        first = ask(&client);
    }
    assert_eq!(first, "a", "the flow never landed on a");
    assert_eq!(ask(&client), "a", "conntrack keeps a flow on its endpoint");
    // a leaves the Service but still answers: only the conntrack cleanup moves the flow.
    sync(&old, &new);
    assert_eq!(ask(&client), "b", "the flow moved to the remaining endpoint");
}

#[test]
fn the_tables_of_dead_agents_are_swept_and_live_ones_kept() {
    use flotilla_agent::services::proxy::owners::{Owners, Process};
    let Some(lab) = Lab::new("o") else { return };
    let records = tempfile::tempdir().unwrap();
    let owners = Owners::new(records.path());
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let dead = Process::find(child.id()).expect("the child sleeps");
    child.kill().unwrap();
    child.wait().unwrap();
    let me = Process::me().unwrap();
    let web = snapshot(vec![service("web", WEB_IP, None, vec![port(Protocol::Tcp, 80, None, &[POD_A])])]);
    for (table, owner) in
        [("flotilla-svc-dead", Some(dead)), ("flotilla-svc-live", Some(me)), ("flotilla-svc-unknown", None)]
    {
        lab.apply(&web, &ProxyOptions { table: table.into(), dns: None }).expect("apply");
        if let Some(owner) = owner {
            owners.claim(table, owner).unwrap();
        }
    }
    let sweeper = owners.clone();
    let removed = lab.on_node(move || block_on(sweeper.sweep("flotilla-svc-mine"))).expect("sweep");
    assert_eq!(removed, vec!["flotilla-svc-dead".to_string()]);
    let tables = Command::new("ip").args(["netns", "exec", &lab.node, "nft", "list", "tables"]).output().unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("flotilla-svc-dead"), "{tables}");
    assert!(tables.contains("flotilla-svc-live") && tables.contains("flotilla-svc-unknown"), "{tables}");
    assert_eq!(owners.owner("flotilla-svc-dead"), None, "the record went with the table");
}

#[test]
fn incremental_applies_leave_exactly_what_a_full_apply_would() {
    let Some(lab) = Lab::new("i") else { return };
    let opts = options(Some(DnsRedirect { cluster_ip: DNS_IP, local_port: DNS_LOCAL_PORT }));
    let svc = |name: &str, last: u8, affinity, ports| service(name, Ipv4Addr::new(10, 96, 3, last), affinity, ports);
    let tcp = |node_port, pods: &[Ipv4Addr]| port(Protocol::Tcp, 80, node_port, pods);
    let with_pods = |services, pods: &[Ipv4Addr]| {
        let mut s = snapshot(services);
        s.local_pods = pods.iter().copied().collect();
        s
    };
    let steps = [
        with_pods(
            vec![
                svc("web", 1, None, vec![tcp(Some(30080), &[POD_A, POD_B])]),
                svc("sticky", 2, Some(600), vec![tcp(None, &[POD_A, POD_B])]),
                svc("echo", 3, None, vec![port(Protocol::Udp, 5300, None, &[POD_A])]),
                svc("idle", 4, None, vec![tcp(Some(30081), &[])]),
            ],
            &[POD_A],
        ),
        // An endpoint leaves, an affinity set goes, a Service goes, one gets its first
        // endpoint, one appears, the local pods change.
        with_pods(
            vec![
                svc("web", 1, None, vec![tcp(Some(30080), &[POD_B])]),
                svc("sticky", 2, Some(600), vec![tcp(None, &[POD_A])]),
                svc("idle", 4, None, vec![tcp(Some(30081), &[POD_A])]),
                svc("new", 5, None, vec![tcp(None, &[POD_B])]),
            ],
            &[POD_A, POD_B],
        ),
        // A nodePort and affinity go, a Service loses its last endpoint.
        with_pods(
            vec![
                svc("web", 1, None, vec![tcp(None, &[POD_A, POD_B])]),
                svc("sticky", 2, None, vec![tcp(None, &[POD_A])]),
                svc("idle", 4, None, vec![tcp(Some(30081), &[])]),
            ],
            &[],
        ),
        snapshot(vec![]),
        with_pods(vec![svc("web", 1, Some(60), vec![tcp(Some(30080), &[POD_A, POD_B])])], &[POD_B]),
    ];
    lab.apply(&steps[0], &opts).expect("the first, full apply");
    for (i, pair) in steps.windows(2).enumerate() {
        let (old, new) = (proxy::render(&pair[0], &opts), proxy::render(&pair[1], &opts));
        let incremental = lab.on_node(move || block_on(proxy::apply_change(&old, &new)));
        assert!(incremental.unwrap_or_else(|e| panic!("step {i}: {e}")), "step {i} was a full apply");
        let incremental = lab.listing().expect("the table exists");
        lab.remove().expect("remove");
        lab.apply(&pair[1], &opts).expect("full apply");
        let full = lab.listing().expect("the table exists");
        assert_eq!(
            proxy::objects(&incremental),
            proxy::objects(&full),
            "step {i}: the incremental apply differs from a full one"
        );
    }
    let answers = lab.on_node(|| tcp_hellos(SocketAddrV4::new(Ipv4Addr::new(10, 96, 3, 1), 80), SPREAD));
    assert_eq!(names(&answers).len(), 1, "affinity keeps one client on one endpoint: {answers:?}");
}
