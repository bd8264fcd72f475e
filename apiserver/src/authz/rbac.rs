//! RBAC decisions: the rules of the roles bound to a user, and whether one allows a request.

use serde_json::Value;

use super::{Attributes, MASTERS};
use crate::http::authn::UserInfo;
use crate::registry::{ListOptions, Registry};
use crate::resources;
use crate::ApiResult;

/// One `PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    pub fn from_json(rule: &Value) -> Self {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map_or_else(Vec::new, |a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        };
        Self {
            verbs: list("verbs"),
            api_groups: list("apiGroups"),
            resources: list("resources"),
            resource_names: list("resourceNames"),
            non_resource_urls: list("nonResourceURLs"),
        }
    }

    /// Upstream's `RuleAllows`.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        let has = |list: &[String], want: &str| list.iter().any(|v| v == "*" || v == want);
        if !has(&self.verbs, attrs.verb()) {
            return false;
        }
        match attrs {
            Attributes::NonResource { path, .. } => self
                .non_resource_urls
                .iter()
                .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))),
            Attributes::Resource { group, resource, subresource, name, .. } => {
                let combined =
                    if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
                let resource_ok = self.resources.iter().any(|r| {
                    r == "*" || *r == combined || (!subresource.is_empty() && *r == format!("*/{subresource}"))
                });
                // Names compare literally: `*` in resourceNames is a name, as upstream.
                let name_ok = self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name);
                has(&self.api_groups, group) && resource_ok && name_ok
            }
        }
    }
}

/// Whether `subject` (an entry of a binding's `subjects`) names `user`.
pub fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str() {
        Some("User") => name == user.name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// Whether `user` may do `attrs`, from the bindings in the store (see the module doc of
/// [`super`]).
pub async fn authorize(registry: &Registry, user: &UserInfo, attrs: &Attributes) -> ApiResult<bool> {
    if is_master(user) {
        return Ok(true);
    }
    Ok(rules_for(registry, user, attrs.namespace()).await?.iter().any(|r| r.allows(attrs)))
}

/// Whether `user` is in the group that may do everything.
pub fn is_master(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == MASTERS)
}

/// Every rule granted to `user` cluster-wide and, with `namespace`, in that namespace.
pub async fn rules_for(registry: &Registry, user: &UserInfo, namespace: Option<&str>) -> ApiResult<Vec<Rule>> {
    let lookup = |plural| resources::lookup("rbac.authorization.k8s.io", "v1", plural).expect("RBAC is served");
    let (roles, cluster_roles) = (lookup("roles"), lookup("clusterroles"));
    let all = ListOptions::default();
    let mut bound: Vec<(Option<String>, Value)> = Vec::new();
    for b in registry.list(lookup("clusterrolebindings"), None, &all).await?.items {
        if binds(&b, user, "") {
            bound.push((None, b["roleRef"].clone()));
        }
    }
    if let Some(ns) = namespace {
        for b in registry.list(lookup("rolebindings"), Some(ns), &all).await?.items {
            if binds(&b, user, ns) {
                bound.push((Some(ns.to_string()), b["roleRef"].clone()));
            }
        }
    }
    let mut granted = Vec::new();
    for (ns, role_ref) in bound {
        let name = role_ref["name"].as_str().unwrap_or("");
        let role = match (role_ref["kind"].as_str(), &ns) {
            (Some("ClusterRole"), _) => registry.get(cluster_roles, None, name).await,
            (Some("Role"), Some(ns)) => registry.get(roles, Some(ns), name).await,
            _ => continue,
        };
        // A binding to a role that does not exist (yet) grants nothing.
        let Ok(role) = role else { continue };
        granted.extend(role["rules"].as_array().into_iter().flatten().map(Rule::from_json));
    }
    Ok(granted)
}

fn binds(binding: &Value, user: &UserInfo, namespace: &str) -> bool {
    binding["subjects"].as_array().is_some_and(|s| s.iter().any(|s| subject_matches(s, user, namespace)))
}

#[cfg(test)]
mod tests;
