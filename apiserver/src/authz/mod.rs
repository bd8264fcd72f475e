//! Authorization: may this user do this request? Upstream's RBAC authorizer over the
//! `rbac.authorization.k8s.io/v1` objects in the store.
//!
//! - [`attributes`] turns a request into upstream's request attributes (verb, API group,
//!   resource, subresource, namespace, name; or a non-resource path and verb).
//! - [`rbac`] decides from the bindings that name the user, one of its groups or its
//!   ServiceAccount, and the rules of the roles they reference.
//! - [`bootstrap_roles`] are the roles and bindings every cluster starts with.
//!
//! Invariants:
//! - Deny unless a rule allows: there are no deny rules, and an unreadable role or a binding
//!   to a missing role grants nothing.
//! - Members of `system:masters` are allowed everything without consulting the store (as
//!   upstream: the break-glass group cannot be locked out by a bad binding).
//! - Decisions are read from the store on every request (linearizable reads of the bindings
//!   of the user's namespace and the cluster): a binding applies to the very next request.

pub mod attributes;
pub mod bootstrap_roles;
pub mod rbac;

pub use attributes::Attributes;

/// The group whose members may do everything.
pub const MASTERS: &str = "system:masters";
