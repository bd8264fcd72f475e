//! The in-process typed client: what the scheduler and controllers use on the leader.
//!
//! It calls the [`Registry`] directly (no HTTP, no serialisation to text), so every rule an
//! HTTP client meets — defaulting, validation, resourceVersion CAS, finalizers — applies
//! here too. Objects are k8s-openapi types; the resource is found from the type's own
//! group/version/plural, so `client.api::<Pod>(Some("default"))` needs no table lookups.

use std::marker::PhantomData;

use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::patch::PatchType;
use crate::registry::{DeleteOptions, Deleted, ListOptions, Part, Registry, WriteOptions};
use crate::resources::{self, Resource};
use crate::watch::{EventStream, WatchEvent, WatchOptions};

#[derive(Clone)]
pub struct Client {
    registry: Registry,
}

impl Client {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// Objects of type `K`, in namespace `ns` (None: cluster-scoped, or all namespaces).
    pub fn api<K: k8s_openapi::Resource>(&self, ns: Option<&str>) -> Api<K> {
        let res = resources::lookup(K::GROUP, K::VERSION, K::URL_PATH_SEGMENT)
            .unwrap_or_else(|| panic!("{} {} is not a served resource", K::API_VERSION, K::KIND));
        Api { registry: self.registry.clone(), res, ns: ns.map(String::from), _k: PhantomData }
    }

    /// Bind pod `namespace/pod` to `node` (POST `pods/{pod}/binding`): sets `spec.nodeName`
    /// and the PodScheduled condition. Fails with `PreconditionFailed` if the pod is already
    /// assigned or being deleted, `NotFound` if it is gone.
    pub async fn bind(&self, namespace: &str, pod: &str, node: &str) -> ApiResult<()> {
        let binding = serde_json::json!({"target": {"kind": "Node", "name": node}});
        self.registry.bind(namespace, pod, &binding, &WriteOptions::default()).await
    }

    /// Clear namespace `name`'s `spec.finalizers` (PUT `namespaces/{name}/finalize` with an
    /// empty list), as a CAS on `resource_version`: what the namespace controller does once
    /// a terminating namespace is empty, after which the registry removes the namespace.
    pub async fn finalize_namespace(
        &self,
        name: &str,
        resource_version: &str,
    ) -> ApiResult<k8s_openapi::api::core::v1::Namespace> {
        let body = serde_json::json!({"metadata": {"resourceVersion": resource_version}, "spec": {"finalizers": []}});
        from_value(self.registry.finalize_namespace(name, &body, &WriteOptions::default()).await?)
    }
}

/// Typed access to one resource (in one namespace).
pub struct Api<K> {
    registry: Registry,
    res: &'static Resource,
    ns: Option<String>,
    _k: PhantomData<fn() -> K>,
}

/// A typed watch event.
#[derive(Debug, Clone)]
pub enum Event<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    Bookmark(i64),
    /// The watch ended with this Status (e.g. 410 Expired): re-list and watch again.
    Error(Value),
}

impl<K> Api<K>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    pub async fn get(&self, name: &str) -> ApiResult<K> {
        from_value(self.registry.get(self.res, self.ns(), name).await?)
    }

    /// Items and the list's resourceVersion (start a watch from it).
    pub async fn list(&self, opts: &ListOptions) -> ApiResult<(Vec<K>, i64)> {
        let list = self.registry.list(self.res, self.ns(), opts).await?;
        let items = list.items.into_iter().map(from_value).collect::<ApiResult<Vec<K>>>()?;
        Ok((items, list.resource_version))
    }

    pub async fn create(&self, obj: &K) -> ApiResult<K> {
        from_value(self.registry.create(self.res, self.ns(), to_value(obj)?, &WriteOptions::default()).await?)
    }

    /// Replace `obj` (CAS on its `metadata.resourceVersion` when set).
    pub async fn update(&self, name: &str, obj: &K) -> ApiResult<K> {
        let v = to_value(obj)?;
        from_value(self.registry.update(self.res, self.ns(), name, v, Part::Main, &WriteOptions::default()).await?.0)
    }

    pub async fn update_status(&self, name: &str, obj: &K) -> ApiResult<K> {
        let v = to_value(obj)?;
        from_value(self.registry.update(self.res, self.ns(), name, v, Part::Status, &WriteOptions::default()).await?.0)
    }

    pub async fn patch(&self, name: &str, patch_type: PatchType, patch: &Value, part: Part) -> ApiResult<K> {
        let body = serde_json::to_vec(patch).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let (v, _) =
            self.registry.patch(self.res, self.ns(), name, patch_type, &body, part, &WriteOptions::default()).await?;
        from_value(v)
    }

    pub async fn delete(&self, name: &str, opts: &DeleteOptions) -> ApiResult<Deleted> {
        self.registry.delete(self.res, self.ns(), name, opts).await
    }

    pub async fn watch(&self, opts: WatchOptions) -> ApiResult<Watch<K>> {
        let events = self.registry.watch(self.res, self.ns(), opts).await?;
        Ok(Watch { events, _k: PhantomData })
    }
}

/// A typed watch.
pub struct Watch<K> {
    events: EventStream,
    _k: PhantomData<fn() -> K>,
}

impl<K: DeserializeOwned> Watch<K> {
    /// The next event; `None` when the watch ended. Cancel-safe.
    pub async fn next(&mut self) -> Option<ApiResult<Event<K>>> {
        let e = self.events.next().await?;
        Some(match e {
            WatchEvent::Added(v) => from_value(v).map(Event::Added),
            WatchEvent::Modified(v) => from_value(v).map(Event::Modified),
            WatchEvent::Deleted(v) => from_value(v).map(Event::Deleted),
            WatchEvent::Bookmark(rv) => Ok(Event::Bookmark(rv)),
            WatchEvent::Error(s) => Ok(Event::Error(s)),
        })
    }
}

fn to_value<K: Serialize>(obj: &K) -> ApiResult<Value> {
    serde_json::to_value(obj).map_err(|e| ApiError::BadRequest(format!("encoding object: {e}")))
}

fn from_value<K: DeserializeOwned>(v: Value) -> ApiResult<K> {
    serde_json::from_value(v).map_err(|e| ApiError::Internal(format!("stored object does not decode: {e}")))
}
