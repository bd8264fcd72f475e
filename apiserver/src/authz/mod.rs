//! Authorization: may this user do this request? Upstream's `--authorization-mode=Node,RBAC`:
//! the node authorizer, then the RBAC authorizer over the `rbac.authorization.k8s.io/v1`
//! objects in the store, and the NodeRestriction admission checks on writes by nodes.
//!
//! - [`attributes`] turns a request into upstream's request attributes (verb, API group,
//!   resource, subresource, namespace, name; or a non-resource path and verb).
//! - [`node`] decides for agents (`system:node:<name>` in `system:nodes`) from what is bound
//!   to their node, and refuses their writes to other nodes' objects.
//! - [`rbac`] decides from the bindings that name the user, one of its groups or its
//!   ServiceAccount, and the rules of the roles they reference.
//! - [`bootstrap_roles`] are the roles and bindings every cluster starts with.
//! - [`Authorizer`] chains them for one request.
//!
//! Invariants:
//! - Deny unless an authorizer allows: neither has deny rules, and an unreadable role or a
//!   binding to a missing role grants nothing. Only the node restriction refuses what an
//!   authorizer allowed, and only writes by nodes.
//! - Members of `system:masters` are allowed everything without consulting the store (as
//!   upstream: the break-glass group cannot be locked out by a bad binding).
//! - Decisions are read from the store on every request (linearizable reads of the bindings
//!   of the user's namespace and the cluster, and of the pods a node decision depends on):
//!   a binding applies to the very next request.

pub mod attributes;
pub mod bootstrap_roles;
pub mod node;
pub mod rbac;

pub use attributes::Attributes;

use crate::error::{ApiError, ApiResult};
use crate::http::authn::UserInfo;
use crate::registry::Registry;
use node::{Decision, NamedCreate};

/// The group whose members may do everything.
pub const MASTERS: &str = "system:masters";

/// Who allowed a request, or why nobody did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The node authorizer allowed it; a create perhaps only for one name.
    Node(Option<NamedCreate>),
    Rbac,
    /// Nobody allowed it; the node authorizer's reason, or empty.
    Denied(String),
}

/// The authorizers in upstream's order, for one user and the RBAC rules that apply to it
/// in one namespace (read once, for the several checks one request may need).
pub struct Authorizer<'a> {
    registry: &'a Registry,
    user: &'a UserInfo,
    node: Option<&'a str>,
    rules: Vec<rbac::Rule>,
}

impl<'a> Authorizer<'a> {
    /// Read `user`'s RBAC rules, cluster-wide and in `namespace`.
    pub async fn read(registry: &'a Registry, user: &'a UserInfo, namespace: Option<&str>) -> ApiResult<Self> {
        let rules = rbac::rules_for(registry, user, namespace).await?;
        Ok(Self { registry, user, node: node::node_name(user), rules })
    }

    /// The node authorizer, then RBAC.
    pub async fn check(&self, attrs: &Attributes) -> ApiResult<Verdict> {
        let rbac_allows = || rbac::is_master(self.user) || self.rules.iter().any(|r| r.allows(attrs));
        let mut reason = String::new();
        if let Some(node) = self.node {
            match node::authorize(self.registry, node, attrs).await? {
                Decision::Allow => return Ok(Verdict::Node(None)),
                // RBAC may allow the create whatever the name.
                Decision::AllowNamed(named) if !rbac_allows() => return Ok(Verdict::Node(Some(named))),
                Decision::AllowNamed(_) => {}
                Decision::NoOpinion(why) => reason = why,
            }
        }
        Ok(if rbac_allows() { Verdict::Rbac } else { Verdict::Denied(reason) })
    }

    /// The node restriction of an allowed request, for a user who is a node (see
    /// [`node::restrict`]).
    pub async fn restrict(&self, attrs: &Attributes) -> ApiResult<Option<NamedCreate>> {
        match self.node {
            Some(node) => node::restrict(self.registry, node, attrs).await,
            None => Ok(None),
        }
    }
}

/// Upstream's 403 for `user` asking `attrs`, ending with an authorizer's `reason` if any.
pub fn forbidden(attrs: &Attributes, user: &UserInfo, reason: &str) -> ApiError {
    let message = attrs.forbidden_message(&user.name);
    ApiError::Forbidden(if reason.is_empty() { message } else { format!("{message}: {reason}") })
}
