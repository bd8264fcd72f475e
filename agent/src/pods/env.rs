//! A container's environment, command and args as they are started: literal values with
//! `$(VAR)` references expanded ([`expand`]), `valueFrom` ConfigMap and Secret keys, the
//! downward API ([`field`]), and `envFrom` with its prefix — the kubelet's rules.
//!
//! Invariants:
//! - A container whose env cannot be fully resolved is not started: a missing ConfigMap,
//!   Secret or key that is not `optional` gives [`ConfigError`] with upstream's message
//!   (`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`), which the pod
//!   status shows as `CreateContainerConfigError`.
//! - Precedence is upstream's: `envFrom` sources in order, then `env` in order; a later
//!   definition of a name replaces an earlier one (keeping its place in the list).
//! - `$(VAR)` in an `env` value sees only what was defined before it; command and args see
//!   the complete environment.
//! - `envFrom` keys that are not valid variable names are skipped (with a warning), not fatal.
//!
//! Data flow: [`objects::Refs`] names what to fetch → [`objects::Objects::fetch`] (I/O) →
//! [`resolve`] (pure).

pub mod expand;
pub mod field;
pub mod objects;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVarSource, Pod};

use field::NodeFacts;
use objects::Objects;

/// Why a container's configuration cannot be resolved: the message its waiting status shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a container is started with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub env: Vec<(String, String)>,
    pub command: Vec<String>,
    pub args: Vec<String>,
}

/// An environment being built: ordered, later definitions replace earlier ones in place.
#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

/// The env, command and args of `container` in `pod`. See the module doc.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    objects: &Objects,
    facts: &NodeFacts,
) -> Result<Resolved, ConfigError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut env = Env::default();
    for from in container.env_from.iter().flatten() {
        env_from(from, objects, &container.name, &mut env)?;
    }
    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref().filter(|v| !v.is_empty()), &var.value_from) {
            (Some(literal), _) => Some(expand::expand(literal, |n| env.get(n))),
            (None, Some(source)) => value_from(source, pod, container, namespace, objects, facts)?,
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            env.set(var.name.clone(), value);
        }
    }
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand::expand(s, |n| env.get(n))).collect()
    };
    Ok(Resolved { command: expand_all(&container.command), args: expand_all(&container.args), env: env.vars })
}

fn env_from(from: &EnvFromSource, objects: &Objects, container: &str, env: &mut Env) -> Result<(), ConfigError> {
    let prefix = from.prefix.as_deref().unwrap_or_default();
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(r) = &from.config_map_ref {
        match objects.config_maps.get(&r.name).and_then(Option::as_ref) {
            Some(cm) => pairs.extend(cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone()))),
            None if r.optional == Some(true) => {}
            None => return Err(ConfigError(format!("configmap {:?} not found", r.name))),
        }
    }
    if let Some(r) = &from.secret_ref {
        match objects.secrets.get(&r.name).and_then(Option::as_ref) {
            Some(s) => {
                let data = s.data.iter().flatten();
                pairs.extend(data.map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())));
            }
            None if r.optional == Some(true) => {}
            None => return Err(ConfigError(format!("secret {:?} not found", r.name))),
        }
    }
    let mut invalid = Vec::new();
    for (key, value) in pairs {
        let name = format!("{prefix}{key}");
        if is_env_var_name(&name) {
            env.set(name, value);
        } else {
            invalid.push(name);
        }
    }
    if !invalid.is_empty() {
        tracing::warn!(container, keys = ?invalid, "envFrom keys skipped: not valid environment variable names");
    }
    Ok(())
}

/// The value of one `valueFrom`; `None` when an optional source is missing (the variable
/// is then not set at all).
fn value_from(
    source: &EnvVarSource,
    pod: &Pod,
    container: &Container,
    namespace: &str,
    objects: &Objects,
    facts: &NodeFacts,
) -> Result<Option<String>, ConfigError> {
    if let Some(r) = &source.field_ref {
        return field::pod_field(pod, r, facts).map(Some).map_err(ConfigError);
    }
    if let Some(r) = &source.resource_field_ref {
        return field::resource(pod, Some(container), r, facts).map(Some).map_err(ConfigError);
    }
    if let Some(r) = &source.config_map_key_ref {
        let optional = r.optional == Some(true);
        let Some(cm) = objects.config_maps.get(&r.name).and_then(Option::as_ref) else {
            return missing(optional, format!("configmap {:?} not found", r.name));
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None => missing(optional, format!("couldn't find key {} in ConfigMap {namespace}/{}", r.key, r.name)),
        };
    }
    if let Some(r) = &source.secret_key_ref {
        let optional = r.optional == Some(true);
        let Some(secret) = objects.secrets.get(&r.name).and_then(Option::as_ref) else {
            return missing(optional, format!("secret {:?} not found", r.name));
        };
        return match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
            None => missing(optional, format!("couldn't find key {} in Secret {namespace}/{}", r.key, r.name)),
        };
    }
    Ok(Some(String::new()))
}

fn missing(optional: bool, message: String) -> Result<Option<String>, ConfigError> {
    if optional {
        Ok(None)
    } else {
        Err(ConfigError(message))
    }
}

/// Upstream's `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(name: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    name.bytes().next().is_some_and(|b| ok(b) && !b.is_ascii_digit()) && name.bytes().all(ok)
}

#[cfg(test)]
mod tests;
