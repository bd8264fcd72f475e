//! ClusterIP and NodePort allocation for Services.
//!
//! Each allocated address or port is a key in the store (`/registry/ranges/serviceips/<ip>`,
//! `/registry/ranges/servicenodeports/<port>`) whose value names the owning Service. The
//! registry creates those keys in the same Txn as the Service write (each must be absent),
//! and deletes them in the same Txn as the Service's deletion, so:
//! - no two Services ever hold the same IP or node port, even under concurrent creates on
//!   different replicas (the losing Txn fails as a whole and is retried with new picks);
//! - an address is free again exactly when its Service is gone.
//!
//! The first address of the range is reserved for the `kubernetes` Service, as upstream,
//! and the tenth for the `kube-dns` Service (the address kubeadm gives it): random picks
//! skip both.

use rand::Rng;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::resources::Resource;

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
/// Offset of the `kube-dns` Service's address in the range.
const DNS_OFFSET: u32 = 10;

/// Where Services get their addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRanges {
    /// Network address of the service CIDR (IPv4) and its prefix length.
    base: u32,
    prefix: u8,
    node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    /// Upstream's defaults: `10.96.0.0/16` and ports 30000–32767.
    fn default() -> Self {
        Self { base: u32::from_be_bytes([10, 96, 0, 0]), prefix: 16, node_ports: (30000, 32767) }
    }
}

impl ServiceRanges {
    /// `cidr` like `10.96.0.0/16` (prefix 8–30); `ports` like `30000-32767`.
    pub fn parse(cidr: &str, ports: &str) -> Result<Self, String> {
        let (addr, len) = cidr.split_once('/').ok_or_else(|| format!("service CIDR {cidr:?} has no /prefix"))?;
        let ip: std::net::Ipv4Addr = addr.parse().map_err(|_| format!("service CIDR {cidr:?}: not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("service CIDR {cidr:?}: the prefix length must be between 8 and 30"))?;
        let mask = u32::MAX << (32 - prefix);
        let (lo, hi) = ports.split_once('-').ok_or_else(|| format!("node port range {ports:?} is not FROM-TO"))?;
        let (lo, hi): (u16, u16) = match (lo.trim().parse(), hi.trim().parse()) {
            (Ok(l), Ok(h)) if l > 0 && l <= h => (l, h),
            _ => return Err(format!("node port range {ports:?} is not FROM-TO with 0 < FROM <= TO")),
        };
        Ok(Self { base: u32::from(ip) & mask, prefix, node_ports: (lo, hi) })
    }

    /// The `kubernetes` Service's address: the first of the range (`10.96.0.1` by default).
    pub fn api_ip(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(self.base + 1)
    }

    /// The cluster DNS address: the tenth of the range (`10.96.0.10` by default).
    pub fn dns_ip(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(self.base + DNS_OFFSET)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    fn contains(&self, ip: u32) -> bool {
        ip.wrapping_sub(self.base) < self.size()
    }

    fn cidr(&self) -> String {
        format!("{}/{}", std::net::Ipv4Addr::from(self.base), self.prefix)
    }

    /// Give `svc` the addresses it lacks (random picks), and check the ones the client
    /// chose are in range. Returns the claim keys the Service holds afterwards and which of
    /// them the client chose (a collision on those is the client's error, not a retry).
    pub fn assign(&self, res: &Resource, svc: &mut Value) -> ApiResult<Claims> {
        let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let invalid = |field: &str, msg: String| ApiError::invalid(res, &name, "FieldValueInvalid", field, msg);
        let kind = svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
        let mut claims = Claims::default();
        if kind == "ExternalName" {
            return Ok(claims);
        }
        let mut rng = rand::thread_rng();
        match svc.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("") {
            "None" => {}
            "" => {
                // Skip the network address, the reserved first and tenth addresses and the
                // broadcast one.
                let offset = loop {
                    let offset = rng.gen_range(2..self.size() - 1);
                    if offset != DNS_OFFSET {
                        break offset;
                    }
                };
                let ip = std::net::Ipv4Addr::from(self.base + offset).to_string();
                svc["spec"]["clusterIP"] = json!(ip);
                svc["spec"]["clusterIPs"] = json!([ip]);
                svc["spec"]["ipFamilies"] = json!(["IPv4"]);
                svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
                claims.keys.push(ip_key(&ip));
            }
            chosen => {
                let ip: std::net::Ipv4Addr = chosen.parse().map_err(|_| {
                    invalid("spec.clusterIPs[0]", format!("Invalid value: \"{chosen}\": must be a valid IP address"))
                })?;
                if !self.contains(u32::from(ip)) {
                    return Err(invalid(
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: []string{{\"{chosen}\"}}: failed to allocate IP {chosen}: the provided IP \
                             ({chosen}) is not in the valid range. The range of valid IPs is {}",
                            self.cidr()
                        ),
                    ));
                }
                claims.chosen.push(ip_key(chosen));
                claims.keys.push(ip_key(chosen));
            }
        }
        if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
            self.assign_node_ports(svc, &mut claims, &invalid, &mut rng)?;
        }
        Ok(claims)
    }

    fn assign_node_ports(
        &self,
        svc: &mut Value,
        claims: &mut Claims,
        invalid: &dyn Fn(&str, String) -> ApiError,
        rng: &mut impl Rng,
    ) -> ApiResult<()> {
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else { return Ok(()) };
        let (lo, hi) = self.node_ports;
        let mut taken: Vec<i64> = ports.iter().filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).collect();
        for (i, port) in ports.iter_mut().enumerate() {
            match port.get("nodePort").and_then(Value::as_i64).filter(|p| *p != 0) {
                Some(p) if p < i64::from(lo) || p > i64::from(hi) => {
                    return Err(invalid(
                        &format!("spec.ports[{i}].nodePort"),
                        format!(
                            "Invalid value: {p}: provided port is not in the valid range. The range of valid ports \
                             is {lo}-{hi}"
                        ),
                    ))
                }
                Some(p) => {
                    let key = port_key(p);
                    if !claims.keys.contains(&key) {
                        claims.chosen.push(key.clone());
                        claims.keys.push(key);
                    }
                }
                None => {
                    let p = loop {
                        let p = i64::from(rng.gen_range(lo..=hi));
                        if !taken.contains(&p) {
                            break p;
                        }
                    };
                    taken.push(p);
                    port["nodePort"] = json!(p);
                    claims.keys.push(port_key(p));
                }
            }
        }
        Ok(())
    }
}

/// The allocation keys a Service holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub keys: Vec<Vec<u8>>,
    /// The subset the client asked for by value.
    pub chosen: Vec<Vec<u8>>,
}

/// The allocation keys a stored Service holds (what its deletion releases).
pub fn held(svc: &Value) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    if svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return keys;
    }
    if let Some(ip) =
        svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty() && *ip != "None")
    {
        keys.push(ip_key(ip));
    }
    for p in svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        if let Some(n) = p.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
            let key = port_key(n);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

fn ip_key(ip: &str) -> Vec<u8> {
    format!("{IP_PREFIX}{ip}").into_bytes()
}

fn port_key(port: i64) -> Vec<u8> {
    format!("{PORT_PREFIX}{port}").into_bytes()
}

/// A message for a claim key someone else holds.
pub fn taken_message(key: &[u8]) -> (String, String) {
    let key = String::from_utf8_lossy(key);
    if let Some(ip) = key.strip_prefix(IP_PREFIX) {
        (
            "spec.clusterIPs".into(),
            format!(
                "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
            ),
        )
    } else {
        let port = key.strip_prefix(PORT_PREFIX).unwrap_or(&key).to_string();
        ("spec.ports[*].nodePort".into(), format!("Invalid value: {port}: provided port is already allocated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s", "namespace": "d"}, "spec": spec})
    }

    #[test]
    fn allocates_in_range_and_never_the_reserved_first_address() {
        let ranges = ServiceRanges::parse("10.0.0.0/30", "30000-30001").unwrap();
        let res = lookup("", "v1", "services").unwrap();
        for _ in 0..50 {
            let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}));
            let claims = ranges.assign(res, &mut s).unwrap();
            // A /30 has exactly one assignable address: .2 (.0 network, .1 reserved, .3 broadcast).
            assert_eq!(s["spec"]["clusterIP"], "10.0.0.2");
            let ports: Vec<i64> =
                s["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_i64().unwrap()).collect();
            assert_eq!(
                {
                    let mut p = ports.clone();
                    p.sort();
                    p
                },
                vec![30000, 30001]
            );
            assert_eq!(claims.keys, held(&s));
            assert!(claims.chosen.is_empty());
        }
    }

    #[test]
    fn chosen_values_are_checked_and_remembered() {
        let ranges = ServiceRanges::default();
        let res = lookup("", "v1", "services").unwrap();
        let mut ok =
            svc(json!({"clusterIP": "10.96.3.4", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        let claims = ranges.assign(res, &mut ok).unwrap();
        assert_eq!(claims.chosen.len(), 2);
        let mut outside = svc(json!({"clusterIP": "192.168.0.1"}));
        assert!(matches!(ranges.assign(res, &mut outside), Err(ApiError::Invalid { .. })));
        let mut bad_port = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}));
        assert!(matches!(ranges.assign(res, &mut bad_port), Err(ApiError::Invalid { .. })));
    }

    #[test]
    fn headless_and_external_name_services_hold_nothing() {
        let ranges = ServiceRanges::default();
        let res = lookup("", "v1", "services").unwrap();
        let mut headless = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(ranges.assign(res, &mut headless).unwrap().keys.is_empty());
        let mut ext = svc(json!({"type": "ExternalName", "externalName": "example.org"}));
        assert!(ranges.assign(res, &mut ext).unwrap().keys.is_empty());
        assert!(held(&ext).is_empty());
    }

    #[test]
    fn range_flags_are_validated() {
        assert!(ServiceRanges::parse("10.96.0.0/16", "30000-32767").is_ok());
        assert!(ServiceRanges::parse("10.96.0.0", "30000-32767").is_err());
        assert!(ServiceRanges::parse("10.96.0.0/31", "30000-32767").is_err());
        assert!(ServiceRanges::parse("10.96.0.0/16", "32767-30000").is_err());
    }
}
