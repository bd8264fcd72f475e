//! [`Key`]: the name of one object, `namespace/name` (or just `name` when cluster-scoped).
//!
//! Keys are what the work queue holds and what a reconciler receives: never the object
//! itself, so a reconcile always reads the freshest cached state, and two changes to one
//! object collapse into one pending key.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Identifies one object of a known kind. Orders by namespace, then name (cluster-scoped
/// objects first), which lets a store scan one namespace as a contiguous range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// `None` for cluster-scoped objects (Nodes, Namespaces, PersistentVolumes).
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: Some(namespace.into()), name: name.into() }
    }

    pub fn cluster(name: impl Into<String>) -> Self {
        Self { namespace: None, name: name.into() }
    }

    /// The key of an object from its metadata (an empty namespace counts as none).
    pub fn from_meta(meta: &ObjectMeta) -> Self {
        Self {
            namespace: meta.namespace.clone().filter(|ns| !ns.is_empty()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// The key of an object.
    pub fn of<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(obj: &K) -> Self {
        Self::from_meta(obj.metadata())
    }

    /// Parse `ns/name` or `name`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('/') {
            Some((ns, name)) => Self::namespaced(ns, name),
            None => Self::cluster(s),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}
