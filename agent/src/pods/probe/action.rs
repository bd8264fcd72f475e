//! [`Action`]: what a probe or lifecycle hook of the pod spec asks to do, resolved
//! against its container (named ports) and the pod's address, so that running it needs
//! nothing else from the spec.
//!
//! Invariant: every handler resolves to exactly one action; anything this agent cannot
//! run (gRPC probes, HTTPS, a port name the container does not declare, an empty
//! handler) resolves to [`Action::Unsupported`] with a message saying why, never to a
//! guess.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A resolved probe or hook handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run `command` in the container.
    Exec(Vec<String>),
    /// `GET http://host:port/path` with `headers`; 200–399 is success.
    Http {
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// Open a TCP connection to `host:port`.
    Tcp {
        host: String,
        port: u16,
    },
    /// Wait (a `sleep` lifecycle hook).
    Sleep(Duration),
    Unsupported(String),
}

/// The action of `probe`, a probe of `container` in a pod at `pod_ip`.
pub fn of_probe(probe: &Probe, container: &Container, pod_ip: &str) -> Action {
    if let Some(exec) = &probe.exec {
        return exec_action(exec.command.as_deref());
    }
    if let Some(http) = &probe.http_get {
        return http_action(http, container, pod_ip);
    }
    if let Some(tcp) = &probe.tcp_socket {
        return tcp_action(tcp, container, pod_ip);
    }
    if probe.grpc.is_some() {
        return Action::Unsupported("gRPC probes are not supported by this agent".into());
    }
    Action::Unsupported("the probe has no handler".into())
}

/// The action of lifecycle hook `handler` of `container` in a pod at `pod_ip`.
pub fn of_hook(handler: &LifecycleHandler, container: &Container, pod_ip: &str) -> Action {
    if let Some(exec) = &handler.exec {
        return exec_action(exec.command.as_deref());
    }
    if let Some(http) = &handler.http_get {
        return http_action(http, container, pod_ip);
    }
    if let Some(tcp) = &handler.tcp_socket {
        return tcp_action(tcp, container, pod_ip);
    }
    if let Some(sleep) = &handler.sleep {
        return Action::Sleep(Duration::from_secs(sleep.seconds.max(0) as u64));
    }
    Action::Unsupported("the hook has no handler".into())
}

fn exec_action(command: Option<&[String]>) -> Action {
    match command {
        Some(command) if !command.is_empty() => Action::Exec(command.to_vec()),
        _ => Action::Unsupported("exec with an empty command".into()),
    }
}

fn http_action(http: &HTTPGetAction, container: &Container, pod_ip: &str) -> Action {
    if http.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case("HTTP")) {
        return Action::Unsupported(format!(
            "scheme {} is not supported (HTTP only)",
            http.scheme.as_deref().unwrap_or("")
        ));
    }
    let port = match resolve_port(&http.port, container) {
        Ok(port) => port,
        Err(why) => return Action::Unsupported(why),
    };
    let path = http.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    let headers = http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
    Action::Http { host: host(http.host.as_deref(), pod_ip), port, path, headers }
}

fn tcp_action(tcp: &TCPSocketAction, container: &Container, pod_ip: &str) -> Action {
    match resolve_port(&tcp.port, container) {
        Ok(port) => Action::Tcp { host: host(tcp.host.as_deref(), pod_ip), port },
        Err(why) => Action::Unsupported(why),
    }
}

fn host(host: Option<&str>, pod_ip: &str) -> String {
    host.filter(|h| !h.is_empty()).unwrap_or(pod_ip).to_string()
}

/// A port number, or the number of the container port so named.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            let named = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match (named, name.parse::<i32>()) {
                (Some(p), _) => p.container_port,
                (None, Ok(n)) => n,
                (None, Err(_)) => return Err(format!("container {} has no port named {name}", container.name)),
            }
        }
    };
    u16::try_from(number).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port {number}"))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, GRPCAction, HTTPHeader};

    use super::*;

    fn container() -> Container {
        let port = ContainerPort { name: Some("web".into()), container_port: 8080, ..ContainerPort::default() };
        Container { name: "app".into(), ports: Some(vec![port]), ..Container::default() }
    }

    #[test]
    fn http_probes_resolve_named_ports_default_host_and_path_and_keep_headers() {
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("web".into()),
                path: Some("healthz".into()),
                http_headers: Some(vec![HTTPHeader { name: "X-A".into(), value: "1".into() }]),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        };
        let expected = Action::Http {
            host: "10.0.0.5".into(),
            port: 8080,
            path: "/healthz".into(),
            headers: vec![("X-A".into(), "1".into())],
        };
        assert_eq!(of_probe(&probe, &container(), "10.0.0.5"), expected);
    }

    #[test]
    fn what_cannot_run_says_why() {
        let unsupported = |p: Probe| matches!(of_probe(&p, &container(), "10.0.0.5"), Action::Unsupported(_));
        let grpc = Probe { grpc: Some(GRPCAction { port: 9000, service: None }), ..Probe::default() };
        let https = Probe {
            http_get: Some(HTTPGetAction {
                scheme: Some("HTTPS".into()),
                port: IntOrString::Int(443),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        };
        let bad_name = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::String("nope".into()), host: None }),
            ..Probe::default()
        };
        let empty_exec = Probe { exec: Some(ExecAction { command: Some(vec![]) }), ..Probe::default() };
        for (what, p) in [("grpc", grpc), ("https", https), ("bad name", bad_name), ("empty", empty_exec)] {
            assert!(unsupported(p), "{what}");
        }
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(53), host: Some("127.0.0.1".into()) }),
            ..Probe::default()
        };
        assert_eq!(of_probe(&tcp, &container(), "10.0.0.5"), Action::Tcp { host: "127.0.0.1".into(), port: 53 });
    }
}
