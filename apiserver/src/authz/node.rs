//! Node authorization: what an agent may do. Upstream's `Node` authorization mode and its
//! `NodeRestriction` admission plugin, cut to what flotilla's agent asks for (the list is in
//! docs/SECURITY.md, "Node authorization").
//!
//! A user is node `N` when it is in group `system:nodes` and named `system:node:<N>`
//! ([`node_name`]). Agents authenticate that way with a client certificate.
//!
//! Data flow for a request by node `N` (see [`super::Authorizer`]):
//! 1. [`authorize`] runs before RBAC. It answers `Allow`, or `NoOpinion` with a reason; then
//!    RBAC decides, and its 403 ends with that reason. It allows:
//!    - reads of pods, Services, Endpoints and Nodes;
//!    - writes of Nodes, pod status and pod deletion (narrowed by step 2);
//!    - Events;
//!    - Leases in `kube-node-lease` named `N`;
//!    - `get` of a Secret, ConfigMap or PersistentVolumeClaim that a pod bound to `N`
//!      references, and of the PersistentVolume such a claim is bound to;
//!    - the node-proxy token Secret;
//!    - `create` of `serviceaccounts/token` for a ServiceAccount a pod bound to `N` runs
//!      as; the TokenRequest handler then also requires the token to be bound to such a pod
//!      (`serviceaccount::request`).
//! 2. [`restrict`] runs after an authorizer allowed a write (NodeRestriction). It refuses
//!    writes to Nodes, Leases and pods that are not `N`'s own.
//! 3. A create names its object in the body, which neither step reads. Such a create is let
//!    through with a [`NamedCreate`], which the create handler checks before storing.
//!
//! Invariants:
//! - The authorizer never denies, and the restriction never allows. A read the node is not
//!   granted is RBAC's to decide, so an admin may bind more roles to a node. A write to
//!   another node's Node, Lease or pod is 403 whatever RBAC allows.
//! - Only nodes are affected. Anyone else gets no opinion and no restriction, and that
//!   includes a `system:nodes` member with another kind of name.
//! - Relationships are read from the store on every request. A Secret becomes readable when
//!   a pod that references it is bound to the node, and stops being readable once that pod
//!   is gone. The cost: such a read lists the pods of the namespace (every pod, for a
//!   PersistentVolume). Agents make these reads only when they start a container that uses
//!   the object.
//! - A pod's node is checked on the stored pod just before the write. Pods never change
//!   node, so one gap is left: a pod deleted and recreated under the same name on another
//!   node between the check and the write. Upstream checks inside the write.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{json, Value};

use super::rbac::Rule;
use super::Attributes;
use crate::error::{ApiError, ApiResult};
use crate::http::authn::UserInfo;
use crate::http::node_proxy::{TOKEN_NAMESPACE, TOKEN_SECRET};
use crate::registry::{meta, ListOptions, Registry};
use crate::resources::{self, Resource};

/// The group every node is in.
pub const NODES_GROUP: &str = "system:nodes";
/// A node's user name: this prefix, then its Node's name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Why a node may not touch a Lease of another name (upstream's words).
const LEASE_NAME_REASON: &str = "can only access node lease with the same name as the requesting node";

/// The Node `user` is, as upstream's `NodeIdentity` finds it: in [`NODES_GROUP`] and named
/// [`NODE_USER_PREFIX`] followed by a non-empty name.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    if !user.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    user.name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty())
}

/// What the node authorizer says of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed if the created object has the name in the [`NamedCreate`].
    AllowNamed(NamedCreate),
    /// RBAC decides. If this reason is not empty, RBAC's 403 ends with it.
    NoOpinion(String),
}

/// Upstream's node rules, cut to what the agent does: requests allowed whatever the object.
static NODE_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    [
        json!({"apiGroups": [""], "resources": ["pods", "services", "endpoints", "nodes"],
               "verbs": ["get", "list", "watch"]}),
        // [`restrict`] narrows these to the node's own Node and to pods bound to it.
        json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["create", "update", "patch", "delete"]}),
        json!({"apiGroups": [""], "resources": ["nodes/status", "pods/status"], "verbs": ["update", "patch"]}),
        json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}),
        json!({"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "update", "patch"]}),
    ]
    .iter()
    .map(Rule::from_json)
    .collect()
});

/// The node authorizer's decision on a request by node `node` (see the module doc).
pub async fn authorize(registry: &Registry, node: &str, attrs: &Attributes) -> ApiResult<Decision> {
    let Attributes::Resource { verb, group, resource, subresource, namespace, name } = attrs else {
        return Ok(Decision::NoOpinion(String::new()));
    };
    let (verb, name) = (verb.as_str(), name.as_str());
    match (group.as_str(), resource.as_str()) {
        ("", "secrets") if namespace == TOKEN_NAMESPACE && subresource.is_empty() && name_is_token(verb, name) => {
            let user = format!("{NODE_USER_PREFIX}{node}");
            let only = NamedCreate::only(TOKEN_SECRET, attrs.forbidden_message(&user));
            Ok(if name.is_empty() { Decision::AllowNamed(only) } else { Decision::Allow })
        }
        ("", "secrets" | "configmaps" | "persistentvolumeclaims" | "persistentvolumes") => {
            read_related(registry, node, attrs).await
        }
        ("coordination.k8s.io", "leases") => Ok(lease(node, verb, namespace, name)),
        ("", "serviceaccounts") if subresource == "token" && verb == "create" => {
            token_for_own_pod(registry, node, namespace, name).await
        }
        _ if NODE_RULES.iter().any(|r| r.allows(attrs)) => Ok(Decision::Allow),
        _ => Ok(Decision::NoOpinion(String::new())),
    }
}

/// The node-proxy token Secret: every agent reads it, and creates it if no one has yet
/// (an interim scheme until the agent endpoint speaks mTLS, see `http::node_proxy`). A
/// create without a name gets its name checked on the body.
fn name_is_token(verb: &str, name: &str) -> bool {
    matches!((verb, name), ("get", TOKEN_SECRET) | ("create", TOKEN_SECRET) | ("create", ""))
}

/// `get` of a Secret, ConfigMap, claim or PersistentVolume that a pod bound to `node` uses.
async fn read_related(registry: &Registry, node: &str, attrs: &Attributes) -> ApiResult<Decision> {
    let no = |why: &str| Ok(Decision::NoOpinion(why.to_string()));
    let Attributes::Resource { verb, resource, subresource, namespace, name, .. } = attrs else { return no("") };
    if verb != "get" {
        return no("can only get individual resources of this type");
    }
    if !subresource.is_empty() {
        return no("cannot read subresource");
    }
    let related = match resource.as_str() {
        "persistentvolumes" => volume_used(registry, node, name).await?,
        _ if namespace.is_empty() => return no("can only read namespaced object of this type"),
        plural => pods_on(registry, node, Some(namespace)).await?.iter().any(|pod| {
            let refs = PodRefs::of(pod);
            let names = match plural {
                "secrets" => &refs.secrets,
                "configmaps" => &refs.config_maps,
                _ => &refs.claims,
            };
            names.contains(name)
        }),
    };
    if related {
        return Ok(Decision::Allow);
    }
    no(&format!("no relationship found between node '{node}' and this object"))
}

/// A token for ServiceAccount `namespace/account`, which a pod bound to `node` runs as.
async fn token_for_own_pod(registry: &Registry, node: &str, namespace: &str, account: &str) -> ApiResult<Decision> {
    let pods = pods_on(registry, node, Some(namespace)).await?;
    if pods.iter().any(|p| crate::serviceaccount::admission::account_name(p) == account) {
        return Ok(Decision::Allow);
    }
    Ok(Decision::NoOpinion(format!("no relationship found between node '{node}' and this object")))
}

/// Whether PersistentVolume `volume` is bound to a claim that a pod bound to `node` uses.
async fn volume_used(registry: &Registry, node: &str, volume: &str) -> ApiResult<bool> {
    let claims = resources::lookup("", "v1", "persistentvolumeclaims").expect("claims are served");
    for pod in pods_on(registry, node, None).await? {
        let namespace = meta::namespace(&pod).unwrap_or_default();
        for claim in PodRefs::of(&pod).claims {
            match registry.get(claims, Some(namespace), &claim).await {
                Ok(c) if c["spec"]["volumeName"].as_str() == Some(volume) => return Ok(true),
                Ok(_) | Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(false)
}

/// The pods bound to `node`, in `namespace` or everywhere.
async fn pods_on(registry: &Registry, node: &str, namespace: Option<&str>) -> ApiResult<Vec<Value>> {
    let pods = resources::lookup("", "v1", "pods").expect("pods are served");
    let all = registry.list(pods, namespace, &ListOptions::default()).await?;
    Ok(all.items.into_iter().filter(|p| p["spec"]["nodeName"].as_str() == Some(node)).collect())
}

/// Upstream's `authorizeLease`: the node's own Lease in `kube-node-lease`. A create's name
/// is in its body; [`restrict`] has it checked there, as upstream's admission does.
fn lease(node: &str, verb: &str, namespace: &str, name: &str) -> Decision {
    let no = |why: &str| Decision::NoOpinion(why.to_string());
    if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
        return no("can only get, create, update, patch, or delete a node lease");
    }
    if namespace != NODE_LEASE_NAMESPACE {
        return no(&format!("can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"));
    }
    if verb != "create" && name != node {
        return no(LEASE_NAME_REASON);
    }
    Decision::Allow
}

/// NodeRestriction: refuse node `node`'s write to a Node, Lease or pod that is not its own,
/// whatever allowed it (403 with upstream's admission message). A create whose name is only
/// in its body comes back as the [`NamedCreate`] the handler checks.
pub async fn restrict(registry: &Registry, node: &str, attrs: &Attributes) -> ApiResult<Option<NamedCreate>> {
    let Attributes::Resource { verb, group, resource, subresource, namespace, name } = attrs else {
        return Ok(None);
    };
    if !matches!(verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection") {
        return Ok(None);
    }
    let refuse = |reason: String| Err(ApiError::Forbidden(restriction_message(group, resource, name, &reason)));
    match (group.as_str(), resource.as_str(), subresource.as_str()) {
        ("", "nodes", _) => own(node, "nodes", verb, name).map_or_else(refuse, Ok),
        ("coordination.k8s.io", "leases", _) if namespace != NODE_LEASE_NAMESPACE => {
            refuse(format!("can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"))
        }
        ("coordination.k8s.io", "leases", _) => own(node, "leases", verb, name).map_or_else(refuse, Ok),
        ("", "pods", "") if verb == "delete" => {
            let reason = format!("node \"{node}\" can only delete pods with spec.nodeName set to itself");
            if bound_pod(registry, node, namespace, name).await? {
                Ok(None)
            } else {
                refuse(reason)
            }
        }
        ("", "pods", "") => refuse(format!("node \"{node}\" can only delete pods bound to it (no mirror pods here)")),
        ("", "pods", "status" | "eviction") => {
            let action = if subresource == "status" { "update pod status for" } else { "evict" };
            let reason = format!("node \"{node}\" can only {action} pods with spec.nodeName set to itself");
            if bound_pod(registry, node, namespace, name).await? {
                Ok(None)
            } else {
                refuse(reason)
            }
        }
        // Upstream refuses every other pod subresource a node writes (binding, exec, ...).
        ("", "pods", other) => refuse(format!("node \"{node}\" may not write pods/{other}")),
        _ => Ok(None),
    }
}

/// A write of the node's own `resource` object (Node or Lease): `Ok` when it is, with the
/// name check a create without a name needs; `Err` with the reason otherwise.
fn own(node: &str, resource: &str, verb: &str, name: &str) -> Result<Option<NamedCreate>, String> {
    match (verb, name) {
        ("create", "") => Ok(Some(NamedCreate { name: node.to_string(), refusal: Refusal::Own(node.to_string()) })),
        (_, name) if name == node => Ok(None),
        (_, name) => Err(own_reason(resource, node, name)),
    }
}

fn own_reason(resource: &str, node: &str, name: &str) -> String {
    match resource {
        "nodes" => format!("node \"{node}\" is not allowed to modify node \"{name}\""),
        _ => LEASE_NAME_REASON.to_string(),
    }
}

/// Whether the stored pod `namespace/name` is bound to `node`. A missing pod is 404, as
/// upstream's admission answers.
async fn bound_pod(registry: &Registry, node: &str, namespace: &str, name: &str) -> ApiResult<bool> {
    let pods = resources::lookup("", "v1", "pods").expect("pods are served");
    let pod = registry.get(pods, Some(namespace), name).await?;
    Ok(pod["spec"]["nodeName"].as_str() == Some(node))
}

/// Upstream's admission 403: `<resource>[.<group>] ["<name>"] is forbidden: <reason>`.
fn restriction_message(group: &str, resource: &str, name: &str, reason: &str) -> String {
    let qualified = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
    match name {
        "" => format!("{qualified} is forbidden: {reason}"),
        name => format!("{qualified} \"{name}\" is forbidden: {reason}"),
    }
}

/// A create allowed only for an object of one name. A POST carries the name in its body,
/// which authorization does not read, so the create handler calls [`NamedCreate::check`]
/// before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCreate {
    name: String,
    refusal: Refusal,
}

/// What a create of another name is refused with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// NodeRestriction: this node may create only its own Node or Lease.
    Own(String),
    /// The authorizers' 403, whatever the name.
    Message(String),
}

impl NamedCreate {
    /// Allowed for `name` only; `denied` is the 403 for any other.
    fn only(name: &str, denied: String) -> Self {
        Self { name: name.to_string(), refusal: Refusal::Message(denied) }
    }

    /// The one name allowed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Ok` if `obj`, about to be created as a `res`, has the allowed name; 403 otherwise.
    /// An object with only a `generateName` is refused: its name is not known yet.
    pub fn check(&self, res: &Resource, obj: &Value) -> ApiResult<()> {
        let got = meta::name(obj).unwrap_or_default();
        if got == self.name {
            return Ok(());
        }
        Err(ApiError::Forbidden(match &self.refusal {
            Refusal::Own(node) => restriction_message(res.group, res.plural, got, &own_reason(res.plural, node, got)),
            Refusal::Message(m) => m.clone(),
        }))
    }
}

/// The Secrets, ConfigMaps and PersistentVolumeClaims a pod references by name, as
/// upstream's node graph finds them: image pull secrets; secret, configMap, projected and
/// persistentVolumeClaim volumes; and env and envFrom of every container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRefs {
    pub secrets: BTreeSet<String>,
    pub config_maps: BTreeSet<String>,
    pub claims: BTreeSet<String>,
}

impl PodRefs {
    pub fn of(pod: &Value) -> Self {
        let mut refs = Self::default();
        let spec = &pod["spec"];
        let name = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(String::from);
        fn each(v: &Value) -> std::slice::Iter<'_, Value> {
            v.as_array().map(Vec::as_slice).unwrap_or_default().iter()
        }
        refs.secrets.extend(each(&spec["imagePullSecrets"]).filter_map(|s| name(&s["name"])));
        for volume in each(&spec["volumes"]) {
            refs.secrets.extend(name(&volume["secret"]["secretName"]));
            refs.config_maps.extend(name(&volume["configMap"]["name"]));
            refs.claims.extend(name(&volume["persistentVolumeClaim"]["claimName"]));
            for source in each(&volume["projected"]["sources"]) {
                refs.secrets.extend(name(&source["secret"]["name"]));
                refs.config_maps.extend(name(&source["configMap"]["name"]));
            }
        }
        for container in ["initContainers", "containers", "ephemeralContainers"].iter().flat_map(|k| each(&spec[*k])) {
            for from in each(&container["envFrom"]) {
                refs.secrets.extend(name(&from["secretRef"]["name"]));
                refs.config_maps.extend(name(&from["configMapRef"]["name"]));
            }
            for var in each(&container["env"]) {
                refs.secrets.extend(name(&var["valueFrom"]["secretKeyRef"]["name"]));
                refs.config_maps.extend(name(&var["valueFrom"]["configMapKeyRef"]["name"]));
            }
        }
        refs
    }
}

mod labels;
pub use labels::check as check_labels;

#[cfg(test)]
mod tests;
