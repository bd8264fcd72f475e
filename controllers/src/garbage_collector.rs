//! The garbage collector: finishes what `ownerReferences` and deletion propagation promise.
//!
//! It follows the kinds that own or are owned here (Deployments, ReplicaSets, StatefulSets,
//! DaemonSets, Jobs, Pods, ConfigMaps, Secrets, Services, ControllerRevisions,
//! PersistentVolumeClaims) through the term's shared informers, and applies
//! upstream's three rules:
//! - (a) a dependent none of whose owners exists any more (no object of the referenced kind
//!   and name with the referenced uid) is deleted, Background;
//! - (b) an owner being deleted with the `orphan` finalizer: its reference is removed from
//!   every dependent, then the finalizer from the owner (which the registry then removes);
//! - (c) an owner being deleted with the `foregroundDeletion` finalizer: every dependent is
//!   deleted (Foreground, so the deletion cascades down), and the finalizer is removed once
//!   no dependent with `blockOwnerDeletion: true` remains.
//!
//! Owners are found by uid: a namespaced dependent's owner is the object of the referenced
//! kind and name in the dependent's namespace, or cluster-wide for a cluster-scoped kind.
//! An owner of a kind the collector does not follow is assumed to exist (it never deletes
//! what it cannot check). An absence seen in the caches is confirmed by a live read before
//! rule (a) deletes anything: the owner's informer may simply lag the dependent's.
//!
//! Structure: one [`Controller`] per kind (keys are that kind's objects), all sharing the
//! [`Graph`] of type-erased caches. A change of any object queues the owners it references
//! (so an owner waiting on its dependents is looked at again) and, when it is deleted, the
//! dependents that reference it (rule a). Lookups scan the caches: O(objects) per deletion
//! and per owner reconcile, which is fine at this project's scale; upstream keeps an
//! incremental uid graph instead.
//!
//! Every write is a CAS: deletes carry the object's uid as a precondition, updates the
//! cached resourceVersion; a conflict fails the reconcile, which is retried with backoff.

use std::sync::Arc;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::{DeleteOptions, Propagation};
use flotilla_apiserver::resources::{self, Resource};
use flotilla_apiserver::{ApiError, ApiResult};
use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tokio_util::sync::CancellationToken;

use crate::leadership::{Component, LeaderContext};
use crate::runtime::{Action, Controller, ControllerConfig, Key, Object, Reconciler, Store, WorkQueue};

/// The finalizer `propagationPolicy=Orphan` adds.
pub const ORPHAN: &str = "orphan";
/// The finalizer `propagationPolicy=Foreground` adds.
pub const FOREGROUND: &str = "foregroundDeletion";

/// The garbage collector as a leader component.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| run(ctx).boxed())
}

async fn run(ctx: LeaderContext) {
    let mut nodes: Vec<Arc<dyn Node>> = Vec::new();
    follow::<Deployment>(&ctx, &mut nodes);
    follow::<ReplicaSet>(&ctx, &mut nodes);
    follow::<StatefulSet>(&ctx, &mut nodes);
    follow::<DaemonSet>(&ctx, &mut nodes);
    follow::<Job>(&ctx, &mut nodes);
    follow::<Pod>(&ctx, &mut nodes);
    follow::<ConfigMap>(&ctx, &mut nodes);
    follow::<Secret>(&ctx, &mut nodes);
    follow::<Service>(&ctx, &mut nodes);
    follow::<ControllerRevision>(&ctx, &mut nodes);
    follow::<PersistentVolumeClaim>(&ctx, &mut nodes);
    let graph = Arc::new(Graph { nodes });
    let cancel = ctx.cancel.clone();
    let controllers = async move {
        // Every cache must be complete before any rule runs: a partial graph would make
        // owners look dependent-free.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = join_all(graph.nodes.iter().map(|n| n.synced())) => {}
        }
        let runs: Vec<_> = graph.nodes.iter().map(|n| n.clone().start(graph.clone(), cancel.clone())).collect();
        join_all(runs).await;
    };
    controllers.await;
}

/// Add the term's shared cache of `K` to the graph.
fn follow<K: Object>(ctx: &LeaderContext, nodes: &mut Vec<Arc<dyn Node>>) {
    let res = resources::lookup(K::GROUP, K::VERSION, K::URL_PATH_SEGMENT).expect("followed kinds are served");
    nodes.push(Arc::new(Kind { res, store: ctx.informers.store::<K>(), client: ctx.client.clone() }));
}

/// Every followed kind's cache.
pub struct Graph {
    nodes: Vec<Arc<dyn Node>>,
}

impl Graph {
    /// The followed kind an owner reference names (apiVersion compared by group only).
    fn node_for(&self, r: &OwnerReference) -> Option<&Arc<dyn Node>> {
        self.nodes.iter().find(|n| n.resource().kind == r.kind && n.resource().group == group_of(&r.api_version))
    }

    /// Every cached object, of any kind, that references `uid` (in `ns`, or anywhere).
    fn dependents(&self, ns: Option<&str>, uid: &str) -> Vec<(Arc<dyn Node>, Dependent)> {
        self.nodes.iter().flat_map(|n| n.dependents(ns, uid).into_iter().map(move |d| (n.clone(), d))).collect()
    }

    /// Where `r`, referenced from an object in `ns`, lives.
    fn owner_key(node: &dyn Node, ns: Option<&str>, r: &OwnerReference) -> Key {
        let ns = if node.resource().namespaced { ns.map(String::from) } else { None };
        Key { namespace: ns, name: r.name.clone() }
    }
}

/// The group part of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// A cached object that references an owner.
pub struct Dependent {
    pub key: Key,
    pub uid: String,
    pub terminating: bool,
    /// Its reference sets `blockOwnerDeletion: true`.
    pub blocks: bool,
}

/// Keys to queue for a changed object's metadata (`true`: it was deleted).
type KeyMap = Arc<dyn Fn(&ObjectMeta, bool) -> Vec<Key> + Send + Sync>;

/// One followed kind, type-erased so rules can span kinds.
trait Node: Send + Sync + 'static {
    fn resource(&self) -> &'static Resource;
    fn synced(&self) -> BoxFuture<'static, ()>;
    /// The uid of the cached object `key`.
    fn cached_uid(&self, key: &Key) -> Option<String>;
    /// The uid of object `key` read from the API (None: it does not exist).
    fn live_uid(&self, key: &Key) -> BoxFuture<'static, ApiResult<Option<String>>>;
    /// Cached objects (in `ns`, or anywhere) that reference `owner_uid`.
    fn dependents(&self, ns: Option<&str>, owner_uid: &str) -> Vec<Dependent>;
    /// Delete object `key` if it still has `uid`.
    fn delete(&self, key: &Key, uid: &str, propagation: Propagation) -> BoxFuture<'static, ApiResult<()>>;
    /// Remove the reference to `owner_uid` from object `key`.
    fn drop_owner(&self, key: &Key, owner_uid: &str) -> BoxFuture<'static, ApiResult<()>>;
    /// Queue `map`'s keys for every change of this cache (subscribes now).
    fn feed(&self, queue: WorkQueue, map: KeyMap) -> BoxFuture<'static, ()>;
    /// Run this kind's controller until `cancel` fires.
    fn start(self: Arc<Self>, graph: Arc<Graph>, cancel: CancellationToken) -> BoxFuture<'static, ()>;
}

struct Kind<K> {
    res: &'static Resource,
    store: Store<K>,
    client: Client,
}

impl<K: Object> Kind<K> {
    /// Keys of this kind to reconcile after a change of `meta`'s object: the owners it
    /// references, and when it was deleted, the dependents that reference it.
    fn keys_for(&self, meta: &ObjectMeta, gone: bool) -> Vec<Key> {
        let ns = meta.namespace.as_deref().filter(|n| !n.is_empty());
        let mut keys: Vec<Key> = meta
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.kind == self.res.kind && group_of(&r.api_version) == self.res.group)
            .map(|r| Graph::owner_key(self, ns, r))
            .collect();
        if let (true, Some(uid)) = (gone, meta.uid.as_deref()) {
            keys.extend(self.dependents(ns, uid).into_iter().map(|d| d.key));
        }
        keys
    }
}

impl<K: Object> Node for Kind<K> {
    fn resource(&self) -> &'static Resource {
        self.res
    }

    fn synced(&self) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        async move { store.wait_synced().await }.boxed()
    }

    fn cached_uid(&self, key: &Key) -> Option<String> {
        self.store.get_key(key)?.metadata().uid.clone()
    }

    fn live_uid(&self, key: &Key) -> BoxFuture<'static, ApiResult<Option<String>>> {
        let api = self.client.api::<K>(key.namespace());
        let name = key.name.clone();
        async move {
            match api.get(&name).await {
                Ok(obj) => Ok(obj.metadata().uid.clone()),
                Err(ApiError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn dependents(&self, ns: Option<&str>, owner_uid: &str) -> Vec<Dependent> {
        let objects = match ns {
            Some(ns) => self.store.list_in(ns),
            None => self.store.list(),
        };
        objects
            .iter()
            .filter_map(|o| {
                let meta = o.metadata();
                let r = meta.owner_references.iter().flatten().find(|r| r.uid == owner_uid)?;
                Some(Dependent {
                    key: Key::from_meta(meta),
                    uid: meta.uid.clone().unwrap_or_default(),
                    terminating: meta.deletion_timestamp.is_some(),
                    blocks: r.block_owner_deletion == Some(true),
                })
            })
            .collect()
    }

    fn delete(&self, key: &Key, uid: &str, propagation: Propagation) -> BoxFuture<'static, ApiResult<()>> {
        let api = self.client.api::<K>(key.namespace());
        let name = key.name.clone();
        let opts =
            DeleteOptions { propagation: Some(propagation), precondition_uid: Some(uid.into()), ..Default::default() };
        async move {
            match api.delete(&name, &opts).await {
                // Gone already, or replaced by another object of that name: nothing to do.
                Ok(_) | Err(ApiError::NotFound(_)) | Err(ApiError::PreconditionFailed(..)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn drop_owner(&self, key: &Key, owner_uid: &str) -> BoxFuture<'static, ApiResult<()>> {
        let api = self.client.api::<K>(key.namespace());
        let name = key.name.clone();
        let edited = self.store.get_key(key).and_then(|cached| {
            let mut obj = (*cached).clone();
            let refs = obj.metadata_mut().owner_references.take().unwrap_or_default();
            let before = refs.len();
            let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != owner_uid).collect();
            (kept.len() != before).then(|| {
                obj.metadata_mut().owner_references = (!kept.is_empty()).then_some(kept);
                obj
            })
        });
        async move {
            let Some(obj) = edited else { return Ok(()) };
            match api.update(&name, &obj).await {
                Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn feed(&self, queue: WorkQueue, map: KeyMap) -> BoxFuture<'static, ()> {
        let mut changes = self.store.subscribe();
        async move {
            while let Some(change) = changes.recv().await {
                let gone = change.new.is_none();
                for key in change.objects().flat_map(|o| map(o.metadata(), gone)) {
                    queue.add(key);
                }
            }
        }
        .boxed()
    }

    fn start(self: Arc<Self>, graph: Arc<Graph>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        let collector = Collector { me: self.clone(), graph: graph.clone() };
        let controller = Controller::new("garbage-collector", collector, &self.store, ControllerConfig::default());
        let me = self.clone();
        let map: KeyMap = Arc::new(move |meta, gone| me.keys_for(meta, gone));
        let feeds = join_all(graph.nodes.iter().map(|n| n.feed(controller.queue(), map.clone())).collect::<Vec<_>>());
        async move {
            tokio::select! {
                _ = controller.run(cancel) => {}
                _ = feeds => {}
            }
        }
        .boxed()
    }
}

/// The rules, for the objects of kind `K`.
struct Collector<K> {
    me: Arc<Kind<K>>,
    graph: Arc<Graph>,
}

impl<K: Object> Reconciler for Collector<K> {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(obj) = self.me.store.get_key(key) else { return Ok(Action::Done) };
        let meta = obj.metadata();
        let uid = meta.uid.clone().unwrap_or_default();
        if meta.deletion_timestamp.is_some() {
            let finalizers = meta.finalizers.clone().unwrap_or_default();
            if finalizers.iter().any(|f| f == ORPHAN) {
                self.orphan(key, &obj, &uid).await?;
            } else if finalizers.iter().any(|f| f == FOREGROUND) {
                self.foreground(key, &obj, &uid).await?;
            }
            return Ok(Action::Done);
        }
        if self.owners_gone(key, meta).await? {
            tracing::info!(kind = K::KIND, object = %key, "every owner is gone; deleting");
            self.me.delete(key, &uid, Propagation::Background).await?;
        }
        Ok(Action::Done)
    }
}

impl<K: Object> Collector<K> {
    /// Namespace in which the dependents of this kind's object `key` live (None: anywhere).
    fn scope<'k>(&self, key: &'k Key) -> Option<&'k str> {
        if self.me.res.namespaced {
            key.namespace()
        } else {
            None
        }
    }

    /// Rule (a): true when `meta` has owners and none of them exists (checked live).
    async fn owners_gone(&self, key: &Key, meta: &ObjectMeta) -> ApiResult<bool> {
        let refs = meta.owner_references.as_deref().unwrap_or_default();
        if refs.is_empty() {
            return Ok(false);
        }
        let mut owners = Vec::new();
        for r in refs {
            let Some(node) = self.graph.node_for(r) else { return Ok(false) };
            let owner = Graph::owner_key(node.as_ref(), key.namespace(), r);
            if node.cached_uid(&owner).as_deref() == Some(r.uid.as_str()) {
                return Ok(false);
            }
            owners.push((node, owner, r));
        }
        for (node, owner, r) in owners {
            if node.live_uid(&owner).await?.as_deref() == Some(r.uid.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Rule (b): release every dependent, then the owner.
    async fn orphan(&self, key: &Key, obj: &K, uid: &str) -> ApiResult<()> {
        for (node, d) in self.graph.dependents(self.scope(key), uid) {
            node.drop_owner(&d.key, uid).await?;
        }
        self.remove_finalizer(key, obj, ORPHAN).await
    }

    /// Rule (c): delete every dependent; let the owner go once none blocks it.
    async fn foreground(&self, key: &Key, obj: &K, uid: &str) -> ApiResult<()> {
        let mut blocking = 0;
        for (node, d) in self.graph.dependents(self.scope(key), uid) {
            if d.blocks {
                blocking += 1;
            }
            if !d.terminating {
                node.delete(&d.key, &d.uid, Propagation::Foreground).await?;
            }
        }
        if blocking > 0 {
            // Each dependent's deletion queues this owner again.
            tracing::debug!(kind = K::KIND, object = %key, blocking, "waiting for dependents");
            return Ok(());
        }
        self.remove_finalizer(key, obj, FOREGROUND).await
    }

    async fn remove_finalizer(&self, key: &Key, obj: &K, finalizer: &str) -> ApiResult<()> {
        let mut obj = obj.clone();
        let finalizers = obj.metadata_mut().finalizers.take().unwrap_or_default();
        let kept: Vec<String> = finalizers.into_iter().filter(|f| f != finalizer).collect();
        obj.metadata_mut().finalizers = (!kept.is_empty()).then_some(kept);
        match self.me.client.api::<K>(key.namespace()).update(&key.name, &obj).await {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
