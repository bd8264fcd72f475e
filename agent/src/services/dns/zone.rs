//! The cluster zone: which names exist under `<domain>` and what they hold, a pure function
//! of a [`Snapshot`] (no I/O, so every record rule is tested without a socket).
//!
//! Names (all compared in lower case), after the Kubernetes DNS specification:
//! - `<domain>`: the SOA; `dns-version.<domain>`: TXT with the schema version;
//! - `<svc>.<ns>.svc.<domain>`: A with the cluster IP, or for a headless Service one A per
//!   ready address (none ready: the name does not exist);
//! - `<host>.<svc>.<ns>.svc.<domain>` (headless only): A with the address whose hostname is
//!   `<host>`, or whose IP spelled with dashes is `<host>` when it has no hostname;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` for named ports: SRV to the Service name and
//!   port, or for a headless Service one SRV per ready endpoint, to its host name and port;
//! - `<a>-<b>-<c>-<d>.<ns>.pod.<domain>`: A `a.b.c.d` (the deprecated pod records);
//! - `<d>.<c>.<b>.<a>.in-addr.arpa` of a cluster IP or headless address: PTR to its name.
//!   Other reverse names are not ours and are forwarded.
//!
//! Names between the domain and a record (`svc.<domain>`, `<ns>.svc.<domain>` of a namespace
//! with Services, `_tcp.<svc>...`) exist without records: they answer NOERROR with no data,
//! never NXDOMAIN, which would tell caches that nothing below them exists (RFC 8020).

use std::net::Ipv4Addr;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::error::AgentError;
use crate::services::model::{Address, Protocol, ServiceEntry, Snapshot};

/// The Kubernetes DNS schema version these records follow (served at `dns-version.<domain>`).
const SCHEMA_VERSION: &str = "1.0.1";
/// SOA timers in seconds. Nothing transfers this zone, so they only need to be plausible.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86_400;
/// Every SRV target is equally preferred.
const SRV_PRIORITY: u16 = 0;
/// The weight shared evenly by the SRV records of one name (RFC 2782 leaves the scale free).
const SRV_WEIGHT_TOTAL: u16 = 100;

/// The cluster zone of one domain.
#[derive(Debug, Clone)]
pub(super) struct Zone {
    /// The domain as a fully qualified, lower-case name.
    origin: Name,
    /// Its labels, lower case, outermost first (`["local", "cluster"]`).
    suffix: Vec<String>,
    ttl: u32,
}

/// What the zone says about one name.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lookup {
    /// Not a name of this zone: forward it.
    Outside,
    NxDomain,
    /// The name exists and holds these records (possibly none).
    Found(Vec<RData>),
}

/// An authoritative answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Answer {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA on a negative answer, so caches know how long to remember it (RFC 2308).
    pub authority: Vec<Record>,
    /// The A records of SRV targets.
    pub additionals: Vec<Record>,
}

impl Zone {
    pub(super) fn new(domain: &str, ttl: u32) -> Result<Zone, AgentError> {
        let trimmed = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let invalid = |why: String| AgentError::Config(format!("cluster DNS domain {domain:?}: {why}"));
        if trimmed.is_empty() {
            return Err(invalid("empty".into()));
        }
        let mut origin = Name::from_ascii(&trimmed).map_err(|e| invalid(e.to_string()))?;
        origin.set_fqdn(true);
        let suffix = trimmed.rsplit('.').map(str::to_string).collect();
        Ok(Zone { origin, suffix, ttl })
    }

    /// The answer to `query`, or `None` when its name is not in this zone (forward it).
    pub(super) fn answer(&self, snapshot: &Snapshot, query: &Query) -> Option<Answer> {
        let found = match self.lookup(snapshot, query.name()) {
            Lookup::Outside => return None,
            Lookup::NxDomain => None,
            Lookup::Found(data) => Some(data),
        };
        let mut answer =
            Answer { code: ResponseCode::NoError, answers: Vec::new(), authority: Vec::new(), additionals: Vec::new() };
        if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
            answer.code = ResponseCode::Refused;
            return Some(answer);
        }
        let qtype = query.query_type();
        let wanted = |data: &RData| qtype == RecordType::ANY || data.record_type() == qtype;
        answer.answers = found.iter().flatten().filter(|d| wanted(d)).map(|d| self.record(query.name(), d)).collect();
        answer.additionals = self.additionals(snapshot, &answer.answers);
        if found.is_none() {
            answer.code = ResponseCode::NXDomain;
        }
        if answer.answers.is_empty() {
            answer.authority.push(self.record(&self.origin, &self.soa()));
        }
        Some(answer)
    }

    /// Every record `name` holds, whatever the type.
    pub(super) fn lookup(&self, snapshot: &Snapshot, name: &Name) -> Lookup {
        let labels: Vec<String> = name.iter().rev().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
        let Some(inner) = labels.strip_prefix(self.suffix.as_slice()) else {
            return self.reverse(snapshot, &labels);
        };
        let inner: Vec<&str> = inner.iter().map(String::as_str).collect();
        let found = match inner.as_slice() {
            [] => Some(vec![self.soa()]),
            ["dns-version"] => Some(vec![RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()]))]),
            ["svc"] | ["pod"] | ["pod", _] => Some(Vec::new()),
            ["svc", ns] => snapshot.services.keys().any(|(n, _)| n.eq_ignore_ascii_case(ns)).then(Vec::new),
            ["svc", ns, svc] => service(snapshot, ns, svc).map(|s| addresses(s).map(a).collect()),
            ["svc", ns, svc, proto] if proto.starts_with('_') => {
                let s = service(snapshot, ns, svc);
                s.filter(|s| s.ports.iter().any(|p| !p.name.is_empty() && label_of(p.protocol) == *proto))
                    .map(|_| vec![])
            }
            ["svc", ns, svc, host] => service(snapshot, ns, svc).and_then(|s| self.host(s, host)),
            ["svc", ns, svc, proto, port] => service(snapshot, ns, svc).and_then(|s| self.srv(s, proto, port)),
            ["pod", _, dashed] => parse_dashed(dashed).map(|ip| vec![a(ip)]),
            _ => None,
        };
        found.map_or(Lookup::NxDomain, Lookup::Found)
    }

    /// PTR records of `labels` (outermost first) if it is the reverse name of an address
    /// this zone names.
    fn reverse(&self, snapshot: &Snapshot, labels: &[String]) -> Lookup {
        let ip = match labels {
            [arpa, in_addr, o1, o2, o3, o4] if arpa == "arpa" && in_addr == "in-addr" => {
                let octets = [o1, o2, o3, o4].map(|o| o.parse::<u8>().ok());
                match octets {
                    [Some(a), Some(b), Some(c), Some(d)] => Ipv4Addr::new(a, b, c, d),
                    _ => return Lookup::Outside,
                }
            }
            _ => return Lookup::Outside,
        };
        let mut names = Vec::new();
        for s in snapshot.services.values() {
            if s.headless {
                let hosts = s.addresses.iter().filter(|addr| addr.ip == ip);
                let host = |addr: &Address| host_label(addr.ip, addr.hostname.as_deref());
                names.extend(hosts.filter_map(|addr| self.name(&[&host(addr), &s.name, &s.namespace])));
            } else if s.cluster_ip == Some(ip) {
                names.extend(self.name(&[&s.name, &s.namespace]));
            }
        }
        if names.is_empty() {
            return Lookup::Outside;
        }
        Lookup::Found(names.into_iter().map(|n| RData::PTR(PTR(n))).collect())
    }

    /// The A records of `host` under headless Service `s`.
    fn host(&self, s: &ServiceEntry, host: &str) -> Option<Vec<RData>> {
        if !s.headless {
            return None;
        }
        let ips =
            s.addresses.iter().filter(|addr| host_label(addr.ip, addr.hostname.as_deref()).eq_ignore_ascii_case(host));
        let found: Vec<RData> = ips.map(|addr| a(addr.ip)).collect();
        (!found.is_empty()).then_some(found)
    }

    /// The SRV records of `_<port>._<proto>` under `s`.
    fn srv(&self, s: &ServiceEntry, proto: &str, port: &str) -> Option<Vec<RData>> {
        let port_name = port.strip_prefix('_')?;
        let named = s.ports.iter().filter(|p| !p.name.is_empty() && p.name.eq_ignore_ascii_case(port_name));
        let mut targets: Vec<(Name, u16)> = Vec::new();
        for p in named.filter(|p| label_of(p.protocol) == proto) {
            if s.headless {
                for ep in &p.endpoints {
                    let hostname =
                        s.addresses.iter().find(|addr| addr.ip == *ep.ip()).and_then(|a| a.hostname.as_deref());
                    let target = self.name(&[&host_label(*ep.ip(), hostname), &s.name, &s.namespace]);
                    targets.extend(target.map(|n| (n, ep.port())));
                }
            } else {
                targets.extend(self.name(&[&s.name, &s.namespace]).map(|n| (n, p.port)));
            }
        }
        if targets.is_empty() {
            return None;
        }
        let weight = (SRV_WEIGHT_TOTAL / u16::try_from(targets.len()).unwrap_or(u16::MAX)).max(1);
        Some(
            targets
                .into_iter()
                .map(|(target, port)| RData::SRV(SRV::new(SRV_PRIORITY, weight, port, target)))
                .collect(),
        )
    }

    /// The A records of the targets of the SRV records in `answers`.
    fn additionals(&self, snapshot: &Snapshot, answers: &[Record]) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for target in answers.iter().filter_map(|r| match r.data() {
            RData::SRV(srv) => Some(srv.target()),
            _ => None,
        }) {
            if out.iter().any(|r| r.name() == target) {
                continue;
            }
            if let Lookup::Found(data) = self.lookup(snapshot, target) {
                out.extend(data.iter().filter(|d| d.record_type() == RecordType::A).map(|d| self.record(target, d)));
            }
        }
        out
    }

    /// `<first>.<second>...svc.<domain>.` from labels innermost first.
    fn name(&self, labels: &[&String]) -> Option<Name> {
        let relative = Name::from_labels(labels.iter().map(|l| l.as_bytes()).chain([b"svc".as_slice()])).ok()?;
        relative.append_domain(&self.origin).ok()
    }

    fn soa(&self) -> RData {
        let under = |label: &str| Name::from_labels([label.as_bytes()]).and_then(|n| n.append_domain(&self.origin));
        let mname = under("ns").expect("a label under a valid domain is a valid name");
        let rname = under("hostmaster").expect("a label under a valid domain is a valid name");
        RData::SOA(SOA::new(mname, rname, 1, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, self.ttl))
    }

    fn record(&self, owner: &Name, data: &RData) -> Record {
        Record::from_rdata(owner.clone(), self.ttl, data.clone())
    }
}

/// The Service `<svc>` of namespace `<ns>` if it has a DNS name now: an allocated cluster
/// IP, or (headless) at least one ready address.
fn service<'a>(snapshot: &'a Snapshot, ns: &str, svc: &str) -> Option<&'a ServiceEntry> {
    let s = snapshot.get(ns, svc)?;
    let live = if s.headless { !s.addresses.is_empty() } else { s.cluster_ip.is_some() };
    live.then_some(s)
}

/// The addresses `<svc>.<ns>.svc` resolves to, without duplicates.
fn addresses(s: &ServiceEntry) -> impl Iterator<Item = Ipv4Addr> + '_ {
    let headless = s.headless.then(|| s.addresses.iter().map(|addr| addr.ip)).into_iter().flatten();
    let mut seen = Vec::new();
    s.cluster_ip.filter(|_| !s.headless).into_iter().chain(headless).filter(move |ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    })
}

/// An endpoint's name under its Service: its hostname, or its IP with dashes.
fn host_label(ip: Ipv4Addr, hostname: Option<&str>) -> String {
    hostname.map(str::to_ascii_lowercase).unwrap_or_else(|| ip.to_string().replace('.', "-"))
}

/// `a-b-c-d` as an address.
fn parse_dashed(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

/// `_tcp` / `_udp`.
fn label_of(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "_tcp",
        Protocol::Udp => "_udp",
    }
}

fn a(ip: Ipv4Addr) -> RData {
    RData::A(A(ip))
}

#[cfg(test)]
mod tests;
