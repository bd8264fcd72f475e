//! The informer cache: [`Store`] (cheap read handles) and [`Writer`] (its single writer).
//!
//! A store holds every object of one kind an informer selects, as `Arc<K>` keyed by
//! [`Key`], so readers take snapshots by cloning pointers, never objects. The informer
//! owns the one [`Writer`]; tests build caches by hand with their own `Writer`.
//!
//! Invariants:
//! - After [`Writer::replace`] (a complete list) the store is *synced* for good: it then
//!   equals the selected objects at some revision, and each applied watch event moves it
//!   to a later one.
//! - Every change to the map is sent, after the map is updated, to every subscriber as a
//!   [`Change`], in the order applied. A reader woken by a change therefore finds the new
//!   state (or a newer one) in the store.
//! - Sends wait when a subscriber's buffer ([`CHANGE_BUFFER`]) is full: backpressure, never
//!   loss. A subscriber must keep receiving or drop its receiver (it is then pruned).
//! - The map lock is a `std` lock held only for map operations, never across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::{mpsc, watch};

use super::key::Key;

/// Changes a subscriber may have pending before the informer waits for it. A burst such as
/// a re-list of a thousand objects passes without stalling; each change is a key and two
/// `Arc`s, so a full buffer costs well under a megabyte.
pub const CHANGE_BUFFER: usize = 1024;

/// What every cached kind must be: a k8s-openapi type with standard metadata.
pub trait Object:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<K> Object for K where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// One object changed: `old` is what the store held before (None: added), `new` what it
/// holds now (None: deleted).
#[derive(Debug)]
pub struct Change<K> {
    pub key: Key,
    pub old: Option<Arc<K>>,
    pub new: Option<Arc<K>>,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        Self { key: self.key.clone(), old: self.old.clone(), new: self.new.clone() }
    }
}

impl<K> Change<K> {
    /// The object before and after, whichever exist.
    pub fn objects(&self) -> impl Iterator<Item = &K> {
        self.old.iter().chain(self.new.iter()).map(|o| o.as_ref())
    }
}

struct Shared<K> {
    objects: RwLock<BTreeMap<Key, Arc<K>>>,
    synced: watch::Sender<bool>,
    subscribers: Mutex<Vec<mpsc::Sender<Change<K>>>>,
}

/// A read handle on a cache; clones share it.
pub struct Store<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<K: Object> Store<K> {
    fn objects(&self) -> RwLockReadGuard<'_, BTreeMap<Key, Arc<K>>> {
        self.shared.objects.read().expect("store lock poisoned")
    }

    /// The object `name` in namespace `ns` (None for cluster-scoped kinds).
    pub fn get(&self, ns: Option<&str>, name: &str) -> Option<Arc<K>> {
        self.get_key(&Key { namespace: ns.map(String::from), name: name.to_string() })
    }

    pub fn get_key(&self, key: &Key) -> Option<Arc<K>> {
        self.objects().get(key).cloned()
    }

    /// Every cached object, ordered by key.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects().values().cloned().collect()
    }

    /// The cached objects of namespace `ns`, ordered by name.
    pub fn list_in(&self, ns: &str) -> Vec<Arc<K>> {
        let from = Key::namespaced(ns, "");
        self.objects()
            .range(from..)
            .take_while(|(k, _)| k.namespace.as_deref() == Some(ns))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Every cached key, ordered.
    pub fn keys(&self) -> Vec<Key> {
        self.objects().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.objects().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first complete list has been loaded.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Wait until [`Store::has_synced`]; returns at once if it already is.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives in `shared`, which `self` keeps alive: the wait cannot fail.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// Receive every change applied from now on. To learn the current state, read the
    /// store after subscribing. The receiver must be drained (see [`CHANGE_BUFFER`]).
    pub fn subscribe(&self) -> mpsc::Receiver<Change<K>> {
        let (tx, rx) = mpsc::channel(CHANGE_BUFFER);
        self.shared.subscribers.lock().expect("subscribers lock poisoned").push(tx);
        rx
    }
}

/// The single writer of a cache.
pub struct Writer<K> {
    store: Store<K>,
}

impl<K: Object> Default for Writer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Object> Writer<K> {
    /// An empty, not yet synced cache.
    pub fn new() -> Self {
        let shared = Shared {
            objects: RwLock::new(BTreeMap::new()),
            synced: watch::Sender::new(false),
            subscribers: Mutex::new(Vec::new()),
        };
        Self { store: Store { shared: Arc::new(shared) } }
    }

    /// A read handle on this cache.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Insert or replace an object (an ADDED or MODIFIED event).
    pub async fn apply(&mut self, obj: K) {
        let key = Key::of(&obj);
        let new = Arc::new(obj);
        let old = self.store.shared.objects.write().expect("store lock poisoned").insert(key.clone(), new.clone());
        self.notify(vec![Change { key, old, new: Some(new) }]).await;
    }

    /// Remove an object (a DELETED event carrying its last state). Returns whether the
    /// cache held it; nothing is notified when it did not.
    pub async fn delete(&mut self, obj: &K) -> bool {
        let key = Key::of(obj);
        let old = self.store.shared.objects.write().expect("store lock poisoned").remove(&key);
        let held = old.is_some();
        if held {
            self.notify(vec![Change { key, old, new: None }]).await;
        }
        held
    }

    /// Replace the whole content with a complete list and mark the cache synced. Sends a
    /// change for each object added, deleted, or at another resourceVersion than before.
    pub async fn replace(&mut self, items: Vec<K>) {
        let mut fresh: BTreeMap<Key, Arc<K>> = items.into_iter().map(|o| (Key::of(&o), Arc::new(o))).collect();
        let changes = {
            let mut objects = self.store.shared.objects.write().expect("store lock poisoned");
            std::mem::swap(&mut *objects, &mut fresh);
            let (old, new) = (&fresh, &*objects);
            let mut changes: Vec<Change<K>> = Vec::new();
            for (key, o) in old {
                match new.get(key) {
                    None => changes.push(Change { key: key.clone(), old: Some(o.clone()), new: None }),
                    Some(n) if resource_version(n.as_ref()) != resource_version(o.as_ref()) => {
                        changes.push(Change { key: key.clone(), old: Some(o.clone()), new: Some(n.clone()) })
                    }
                    Some(_) => {}
                }
            }
            for (key, n) in new {
                if !old.contains_key(key) {
                    changes.push(Change { key: key.clone(), old: None, new: Some(n.clone()) });
                }
            }
            changes
        };
        self.store.shared.synced.send_replace(true);
        self.notify(changes).await;
    }

    /// Send `changes` to every live subscriber, waiting for room (backpressure).
    async fn notify(&self, changes: Vec<Change<K>>) {
        if changes.is_empty() {
            return;
        }
        let subscribers = self.store.shared.subscribers.lock().expect("subscribers lock poisoned").clone();
        let mut gone = false;
        for tx in &subscribers {
            for c in &changes {
                if tx.send(c.clone()).await.is_err() {
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            self.store.shared.subscribers.lock().expect("subscribers lock poisoned").retain(|tx| !tx.is_closed());
        }
    }
}

fn resource_version<K: Object>(obj: &K) -> Option<&str> {
    obj.metadata().resource_version.as_deref()
}
