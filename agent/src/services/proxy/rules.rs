//! [`render`]: a [`Snapshot`] as one nft script that reprograms the whole table (the
//! layout is described in the parent module).
//!
//! The script is a single transaction: `add table` (so the rest works on a fresh host),
//! `flush table` (every rule goes, chains and sets stay), `add`+`flush` of each fixed map
//! and set (their elements go), then the table block declaring every chain, set and map
//! with its rules and elements. nft applies all of it or nothing, so traffic never sees a
//! half-programmed table.
//!
//! Why `flush table` and not `delete table`: deleting would also drop the affinity sets'
//! members, so any change anywhere in the cluster (which re-applies the script) would
//! silently reset every ClientIP affinity. Flushing keeps a set that the block declares
//! again, members and all. What the block no longer declares (a removed Service port's
//! chains, a gone endpoint's affinity set) is left empty and unreferenced; [`declared`]
//! lets [`super::apply`] delete those afterwards.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::names::PortNames;
use super::{ProxyOptions, MASQUERADE_MARK};
use crate::services::model::{ServicePort, Snapshot};

/// A map or set with a fixed name: its keyword, name and type.
struct Fixed {
    kind: &'static str,
    name: &'static str,
    type_: &'static str,
}

const SERVICE_IPS: Fixed =
    Fixed { kind: "map", name: "service-ips", type_: "ipv4_addr . inet_proto . inet_service : verdict" };
const SERVICE_NODEPORTS: Fixed =
    Fixed { kind: "map", name: "service-nodeports", type_: "inet_proto . inet_service : verdict" };
const NO_ENDPOINT_SERVICES: Fixed =
    Fixed { kind: "set", name: "no-endpoint-services", type_: "ipv4_addr . inet_proto . inet_service" };
const NO_ENDPOINT_NODEPORTS: Fixed =
    Fixed { kind: "set", name: "no-endpoint-nodeports", type_: "inet_proto . inet_service" };
/// This node's pods: only their DNS queries go to this agent's DNS server (another
/// cluster's agents on the same host redirect their own pods').
const LOCAL_PODS: Fixed = Fixed { kind: "set", name: "local-pods", type_: "ipv4_addr" };
const FIXED: [Fixed; 5] = [SERVICE_IPS, SERVICE_NODEPORTS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS, LOCAL_PODS];

/// The filter chains run before DNAT (-100), so `filter-output` still sees the clusterIP
/// a local client dialled (kube-proxy's choice too).
const FILTER_PRIORITY: &str = "-110";
/// `dstnat` by number: nft accepts the name only for prerouting.
const NAT_OUTPUT_PRIORITY: &str = "-100";
const DNS_PORT: u16 = 53;

/// The whole table as one nft script that replaces the previous one atomically (see the
/// module doc). Pure and deterministic.
pub fn render(snapshot: &Snapshot, opts: &ProxyOptions) -> String {
    let ports = proxied(snapshot, opts);
    let table = &opts.table;
    let mut text = Text::default();
    text.line(0, format!("add table ip {table}"));
    text.line(0, format!("flush table ip {table}"));
    for f in &FIXED {
        text.line(0, format!("add {} ip {table} {} {{ type {}; }}", f.kind, f.name, f.type_));
        text.line(0, format!("flush {} ip {table} {}", f.kind, f.name));
    }
    text.line(0, format!("table ip {table} {{"));
    fixed_sets(&mut text, &ports, snapshot);
    nat_chains(&mut text, opts);
    filter_chains(&mut text);
    for p in &ports {
        port_objects(&mut text, p);
    }
    text.line(0, "}");
    text.0
}

/// The chains, sets and maps a script (or an `nft list table` listing, which has the same
/// shape) declares in its table block, as (`chain`|`set`|`map`, name).
pub(super) fn declared(script: &str) -> BTreeSet<(String, String)> {
    script
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix('\t')?.strip_suffix(" {")?;
            let (kind, name) = rest.split_once(' ')?;
            matches!(kind, "chain" | "set" | "map").then(|| (kind.to_string(), name.to_string()))
        })
        .collect()
}

/// The objects of an `nft list table` listing (each `\t<kind> <name> {` ... `\t}` block
/// with its contents), as a set: two tables hold the same objects when these are equal,
/// whatever order nft lists them in.
pub fn objects(listing: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut current = String::new();
    for line in listing.lines().filter(|l| l.starts_with('\t')) {
        current.push_str(line);
        current.push('\n');
        if line == "\t}" {
            out.insert(std::mem::take(&mut current));
        }
    }
    out
}

/// One Service port that gets rules.
struct Proxied<'a> {
    names: PortNames<'a>,
    port: &'a ServicePort,
    cluster_ip: Ipv4Addr,
    /// Unless an earlier Service port claimed the same nodePort.
    node_port: Option<u16>,
    affinity_secs: Option<u32>,
}

impl Proxied<'_> {
    fn protocol(&self) -> &'static str {
        self.port.protocol.as_str()
    }

    fn service_key(&self) -> String {
        format!("{} . {} . {}", self.cluster_ip, self.protocol(), self.port.port)
    }
}

/// The Service ports that get rules, in snapshot order: not headless, with a clusterIP,
/// not shadowed by the DNS redirect. Two ports with the same clusterIP:port/proto (or
/// nodePort/proto) would make nft refuse the whole script, so the first one keeps it.
fn proxied<'a>(snapshot: &'a Snapshot, opts: &ProxyOptions) -> Vec<Proxied<'a>> {
    let mut vips = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    let mut out = Vec::new();
    for entry in snapshot.services.values() {
        let Some(cluster_ip) = entry.cluster_ip.filter(|_| !entry.headless) else { continue };
        for port in &entry.ports {
            let dns = opts.dns.is_some_and(|d| d.cluster_ip == cluster_ip && port.port == DNS_PORT);
            if dns || !vips.insert((cluster_ip, port.protocol, port.port)) {
                continue;
            }
            let node_port = port.node_port.filter(|n| node_ports.insert((port.protocol, *n)));
            let names = PortNames::new(entry, port);
            // Kubernetes allows 1..=86400 seconds; 0 would mean "no timeout" to nft.
            let affinity_secs = entry.affinity_timeout.map(|t| t.max(1));
            out.push(Proxied { names, port, cluster_ip, node_port, affinity_secs });
        }
    }
    out
}

/// The fixed maps and sets with their elements.
fn fixed_sets(text: &mut Text, ports: &[Proxied], snapshot: &Snapshot) {
    let (served, idle): (Vec<&Proxied>, Vec<&Proxied>) = ports.iter().partition(|p| !p.port.endpoints.is_empty());
    let node_port = |p: &&Proxied| p.node_port.map(|n| format!("{} . {n}", p.protocol()));
    let goto = |key: String, p: &Proxied| format!("{key} : goto {}", p.names.service_chain());

    let fixed = |text: &mut Text, f: &Fixed, elements: Vec<String>| {
        text.set(f.kind, f.name, vec![format!("type {}", f.type_)], elements);
    };
    fixed(text, &SERVICE_IPS, served.iter().map(|p| goto(p.service_key(), p)).collect());
    fixed(text, &SERVICE_NODEPORTS, served.iter().filter_map(|p| Some(goto(node_port(p)?, p))).collect());
    fixed(text, &NO_ENDPOINT_SERVICES, idle.iter().map(|p| p.service_key()).collect());
    fixed(text, &NO_ENDPOINT_NODEPORTS, idle.iter().filter_map(node_port).collect());
    fixed(text, &LOCAL_PODS, snapshot.local_pods.iter().map(ToString::to_string).collect());
}

/// The first line of a base chain.
fn hook(type_: &str, hook: &str, priority: &str) -> String {
    format!("type {type_} hook {hook} priority {priority}; policy accept;")
}

/// The nat base chains and the fixed chains they jump to.
fn nat_chains(text: &mut Text, opts: &ProxyOptions) {
    let nat_entry = |base: String, dns: &str| vec![base, format!("{dns}jump dns-redirect"), "jump services".into()];
    let from_local_pods = format!("ip saddr @{} ", LOCAL_PODS.name);
    text.chain("nat-prerouting", nat_entry(hook("nat", "prerouting", "dstnat"), &from_local_pods));
    text.chain("nat-output", nat_entry(hook("nat", "output", NAT_OUTPUT_PRIORITY), ""));
    let post = vec![hook("nat", "postrouting", "srcnat"), "jump dns-from-host".into(), "jump masquerading".into()];
    text.chain("nat-postrouting", post);

    let dns = opts.dns.iter().flat_map(|d| {
        ["udp", "tcp"]
            .map(|proto| format!("ip daddr {} {proto} dport {DNS_PORT} redirect to :{}", d.cluster_ip, d.local_port))
    });
    text.chain("dns-redirect", dns.collect());
    // The host's own queries are redirected to 127.0.0.1 but keep the source the host
    // dialled from; a server on the wildcard address would answer from that address
    // instead of 127.0.0.1, and conntrack would not match (and un-NAT) the UDP answer.
    // From 127.0.0.1 the answer comes from 127.0.0.1. (Pods' queries never leave through
    // postrouting: they are delivered locally.)
    let from_host = opts.dns.iter().flat_map(|d| {
        ["udp", "tcp"].map(|proto| {
            let original = format!("ct original ip daddr {} ct original proto-dst {DNS_PORT}", d.cluster_ip);
            format!("oifname \"lo\" meta l4proto {proto} {original} snat to 127.0.0.1")
        })
    });
    text.chain("dns-from-host", from_host.collect());
    text.chain(
        "services",
        vec![
            format!("ip daddr . meta l4proto . th dport vmap @{}", SERVICE_IPS.name),
            format!("fib daddr type local meta l4proto . th dport vmap @{}", SERVICE_NODEPORTS.name),
        ],
    );
    text.chain(
        "masquerading",
        vec![
            format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
            // Clear the bit again: it is ours, not the packet's (it would survive into a
            // tunnel or a policy route).
            format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}"),
            "masquerade fully-random".into(),
        ],
    );
}

/// The filter base chains: reject new connections to ports without endpoints. Only new
/// ones: the packets of a host's established connection to a clusterIP still carry that
/// address in `filter-output` (its DNAT is applied after, at -100), and losing the last
/// endpoint must not cut a connection conntrack still maps to it.
fn filter_chains(text: &mut Text) {
    let no_endpoints = format!(
        "ct state new ip daddr . meta l4proto . th dport @{} goto reject-no-endpoints",
        NO_ENDPOINT_SERVICES.name
    );
    let input = vec![
        hook("filter", "input", FILTER_PRIORITY),
        // route_localnet lets 127.0.0.0/8 arrive from the network; only our DNAT may use it.
        "iifname != \"lo\" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop".into(),
        format!("ct state new meta l4proto . th dport @{} goto reject-no-endpoints", NO_ENDPOINT_NODEPORTS.name),
    ];
    text.chain("filter-input", input);
    text.chain("filter-forward", vec![hook("filter", "forward", FILTER_PRIORITY), no_endpoints.clone()]);
    text.chain("filter-output", vec![hook("filter", "output", FILTER_PRIORITY), no_endpoints]);
    text.chain("reject-no-endpoints", vec!["meta l4proto tcp reject with tcp reset".into(), "reject".into()]);
}

/// A served port's chain, and per endpoint its chain and (with affinity) its client set.
fn port_objects(text: &mut Text, p: &Proxied) {
    if p.port.endpoints.is_empty() {
        return;
    }
    let endpoint_chains: Vec<String> = p.port.endpoints.iter().map(|ep| p.names.endpoint_chain(*ep)).collect();
    let affinity = |ep: SocketAddrV4| p.affinity_secs.map(|secs| (p.names.affinity_set(ep, secs), secs));

    let mut rules = Vec::new();
    for (ep, chain) in p.port.endpoints.iter().zip(&endpoint_chains) {
        if let Some((set, secs)) = affinity(*ep) {
            let props = vec!["type ipv4_addr".into(), "flags dynamic,timeout".into(), format!("timeout {secs}s")];
            text.set("set", &set, props, vec![]);
            rules.push(format!("ip saddr @{set} goto {chain}"));
        }
    }
    rules.push(pick(&endpoint_chains));
    text.chain(&p.names.service_chain(), rules);

    for (ep, chain) in p.port.endpoints.iter().zip(&endpoint_chains) {
        let mut rules = vec![format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")];
        if let Some((set, _)) = affinity(*ep) {
            rules.push(format!("update @{set} {{ ip saddr }}"));
        }
        rules.push(format!("meta l4proto {} dnat to {ep}", p.protocol()));
        text.chain(chain, rules);
    }
}

/// The rule that jumps to one of `chains` (at least one) at random.
fn pick(chains: &[String]) -> String {
    assert!(!chains.is_empty(), "a served port has endpoints");
    if let [only] = chains {
        return format!("goto {only}");
    }
    let arms: Vec<String> = chains.iter().enumerate().map(|(i, c)| format!("{i} : goto {c}")).collect();
    format!("numgen random mod {} vmap {{ {} }}", chains.len(), arms.join(", "))
}

/// The script being written, one tab per nesting level (as `nft list` prints, which
/// [`declared`] relies on).
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, depth: usize, line: impl AsRef<str>) {
        self.0.extend(std::iter::repeat_n('\t', depth));
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }

    fn chain(&mut self, name: &str, rules: Vec<String>) {
        self.line(1, format!("chain {name} {{"));
        rules.iter().for_each(|r| self.line(2, r));
        self.line(1, "}");
    }

    /// A set or map (`kind`): `props` (type, flags...), then `elements`.
    fn set(&mut self, kind: &str, name: &str, props: Vec<String>, elements: Vec<String>) {
        self.line(1, format!("{kind} {name} {{"));
        props.iter().for_each(|p| self.line(2, p));
        if !elements.is_empty() {
            self.line(2, "elements = {");
            let last = elements.len() - 1;
            for (i, e) in elements.iter().enumerate() {
                self.line(3, if i == last { e.clone() } else { format!("{e},") });
            }
            self.line(2, "}");
        }
        self.line(1, "}");
    }
}
