//! Printers of services and endpoints.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::descriptions::{EP_SUBSETS, SVC_CLUSTER_IP, SVC_EXTERNAL_IPS, SVC_PORTS, SVC_SELECTOR, SVC_TYPE};
use super::field::{get, int, list, name, text};
use super::format::format_labels;
use super::{age, no_conditions, Column, Printer, AGE, NAME};

pub(super) static SERVICES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Type", SVC_TYPE),
        Column::string("Cluster-IP", SVC_CLUSTER_IP),
        Column::string("External-IP", SVC_EXTERNAL_IPS),
        Column::string("Port(s)", SVC_PORTS),
        AGE,
        Column::string("Selector", SVC_SELECTOR).wide(),
    ],
    cells: service_cells,
    conditions: no_conditions,
};

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream decodes with defaults applied, so it never sees an empty type.
    let kind = match text(svc, &["spec", "type"]) {
        "" => "ClusterIP",
        kind => kind,
    };
    let ports = match port_string(list(svc, &["spec", "ports"])) {
        ports if ports.is_empty() => "<none>".to_string(),
        ports => ports,
    };
    vec![
        name(svc).into(),
        kind.into(),
        cluster_ip(svc).into(),
        external_ip(svc, kind).into(),
        ports.into(),
        age(svc, now).into(),
        format_labels(get(svc, &["spec", "selector"])).into(),
    ]
}

/// `spec.clusterIPs[0]`; objects written before dual-stack may only have `spec.clusterIP`.
fn cluster_ip(svc: &Value) -> &str {
    let ip = match list(svc, &["spec", "clusterIPs"]).first() {
        Some(ip) => ip.as_str().unwrap_or(""),
        None => text(svc, &["spec", "clusterIP"]),
    };
    if ip.is_empty() {
        "<none>"
    } else {
        ip
    }
}

/// The addresses the service is reachable on from outside, per type.
fn external_ip(svc: &Value, kind: &str) -> String {
    let external: Vec<&str> = list(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut all = load_balancer_addresses(svc);
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).into(),
        _ => "<unknown>".into(),
    }
}

/// The load balancer's ingress IPs (or hostnames when there is no IP), sorted and
/// deduplicated. Upstream clips them to 16 characters only outside wide output, and the
/// server always prints wide.
fn load_balancer_addresses(svc: &Value) -> Vec<&str> {
    let ingress = list(svc, &["status", "loadBalancer", "ingress"]);
    let addresses: BTreeSet<&str> = ingress
        .iter()
        .map(|i| match text(i, &["ip"]) {
            "" => text(i, &["hostname"]),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    addresses.into_iter().collect()
}

/// `80/TCP`, or `80:30080/TCP` with a node port, comma-joined.
fn port_string(ports: &[Value]) -> String {
    let port = |p: &Value| {
        // TCP is the protocol's default, which upstream has applied before printing.
        let protocol = match text(p, &["protocol"]) {
            "" => "TCP",
            protocol => protocol,
        };
        match int(p, &["nodePort"]) {
            node_port if node_port > 0 => format!("{}:{node_port}/{protocol}", int(p, &["port"])),
            _ => format!("{}/{protocol}", int(p, &["port"])),
        }
    };
    ports.iter().map(port).collect::<Vec<_>>().join(",")
}

pub(super) static ENDPOINTS: Printer = Printer {
    columns: &[NAME, Column::string("Endpoints", EP_SUBSETS), AGE],
    cells: endpoints_cells,
    conditions: no_conditions,
};

fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(ep).into(), format_endpoints(list(ep, &["subsets"])).into(), age(ep, now).into()]
}

/// How many endpoints are listed before `+ N more...`.
const MAX_LISTED_ENDPOINTS: usize = 3;

/// `ip:port` per ready address and port (just `ip` for a subset without ports), the first three
/// listed; `<none>` without subsets.
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut listed: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        // A headless service may have no ports: its endpoints are the bare addresses.
        let port_numbers: Vec<Option<i64>> =
            if ports.is_empty() { vec![None] } else { ports.iter().map(|p| Some(int(p, &["port"]))).collect() };
        for port in port_numbers {
            count += addresses.len();
            for address in addresses {
                if listed.len() == MAX_LISTED_ENDPOINTS {
                    break;
                }
                listed.push(host_port(text(address, &["ip"]), port));
            }
        }
    }
    let joined = listed.join(",");
    if count > MAX_LISTED_ENDPOINTS {
        format!("{joined} + {} more...", count - MAX_LISTED_ENDPOINTS)
    } else {
        joined
    }
}

/// `ip:port`, with brackets around an IPv6 address (Go's `net.JoinHostPort`).
fn host_port(ip: &str, port: Option<i64>) -> String {
    match port {
        None => ip.to_string(),
        Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
        Some(port) => format!("{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, columns};
    use serde_json::{json, Value};

    fn service(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:55:00Z"}, "spec": spec, "status": status})
    }

    #[test]
    fn cluster_ip_and_node_port_services() {
        let svc = service(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                   "selector": {"app": "web"}}),
            json!({}),
        );
        assert_eq!(
            cells("services", svc),
            [
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("5m"),
                json!("app=web")
            ]
        );
        let svc = service(
            json!({"type": "NodePort", "clusterIP": "10.96.0.11", "externalIPs": ["192.0.2.1"],
                   "ports": [{"port": 80, "nodePort": 30080}]}),
            json!({}),
        );
        let c = cells("services", svc);
        assert_eq!(c[1..5], [json!("NodePort"), json!("10.96.0.11"), json!("192.0.2.1"), json!("80:30080/TCP")]);
        assert_eq!(c[6], json!("<none>"));
        let want = [
            ("Name", 0),
            ("Type", 0),
            ("Cluster-IP", 0),
            ("External-IP", 0),
            ("Port(s)", 0),
            ("Age", 0),
            ("Selector", 1),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(columns("services"), want);
    }

    #[test]
    fn load_balancer_headless_and_external_name_services() {
        let lb = |ingress: Value, external: Value| {
            service(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "externalIPs": external, "ports": [{"port": 443}]}),
                json!({"loadBalancer": {"ingress": ingress}}),
            )
        };
        assert_eq!(cells("services", lb(json!([]), json!([])))[3], json!("<pending>"));
        let ingress = json!([{"ip": "203.0.113.9"}, {"hostname": "a-very-long-load-balancer.example.com"}, {"ip": "203.0.113.9"}]);
        assert_eq!(
            cells("services", lb(ingress, json!(["192.0.2.7"])))[3],
            json!("203.0.113.9,a-very-long-load-balancer.example.com,192.0.2.7")
        );
        let headless = service(json!({"clusterIP": "None", "clusterIPs": ["None"]}), json!({}));
        assert_eq!(
            cells("services", headless)[1..5],
            [json!("ClusterIP"), json!("None"), json!("<none>"), json!("<none>")]
        );
        let external = service(json!({"type": "ExternalName", "externalName": "db.example.com"}), json!({}));
        assert_eq!(
            cells("services", external)[1..4],
            [json!("ExternalName"), json!("<none>"), json!("db.example.com")]
        );
    }

    #[test]
    fn endpoints_list_three_and_count_the_rest() {
        let addresses = |ips: &[&str]| ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>();
        let ep = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:59:30Z"},
            "subsets": [
                {"addresses": addresses(&["10.0.0.1", "10.0.0.2"]), "ports": [{"port": 80}]},
                {"addresses": addresses(&["10.0.0.3", "fd00::4"]), "ports": [{"port": 80}, {"port": 443}]},
            ],
        });
        assert_eq!(
            cells("endpoints", ep),
            [json!("web"), json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 3 more..."), json!("30s")]
        );
        let two = json!({"subsets": [{"addresses": addresses(&["10.0.0.1", "fd00::2"]), "ports": [{"port": 8080}]}]});
        assert_eq!(cells("endpoints", two)[1], json!("10.0.0.1:8080,[fd00::2]:8080"));
        let headless = json!({"subsets": [{"addresses": addresses(&["10.0.0.1"])}]});
        assert_eq!(cells("endpoints", headless)[1], json!("10.0.0.1"));
        assert_eq!(
            cells("endpoints", json!({"subsets": [{"notReadyAddresses": addresses(&["10.0.0.9"])}]}))[1],
            json!("")
        );
        assert_eq!(cells("endpoints", json!({}))[1], json!("<none>"));
    }
}
