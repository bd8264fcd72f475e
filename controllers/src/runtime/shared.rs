//! [`SharedInformers`]: one informer per kind for every component of a leadership term.
//!
//! Without sharing, each controller lists and watches the kinds it reads itself: on a
//! leader change every Pod would be listed once per controller that reads Pods, and each
//! of them would hold its own copy of the cache. With it, the first component that asks
//! for a kind starts that kind's informer; later ones get the same [`Store`] and subscribe
//! to its changes.
//!
//! Invariants:
//! - At most one informer per kind runs per `SharedInformers` (one per leadership term);
//!   all of them stop when the term's cancellation token fires.
//! - A component that asks for a store after the informer synced has missed the changes
//!   before it subscribed; the controller runtime queues every primary key once the caches
//!   have synced, and the scheduler rebuilds its snapshot from the caches, so nothing is
//!   lost. Components read the store after subscribing, never the other way round.
//! - A component that stops reading its change receiver must drop it: a full subscriber
//!   buffer holds up the informer for every component (backpressure, not loss).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flotilla_apiserver::client::Client;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::informer::{Informer, InformerConfig};
use super::store::{Object, Store};

/// The informers of one leadership term, started on first use.
#[derive(Clone)]
pub struct SharedInformers {
    client: Client,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// `TypeId` of `K` → `Store<K>`.
    stores: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl SharedInformers {
    /// Informers reading through `client` that stop when `cancel` fires.
    pub fn new(client: Client, cancel: CancellationToken) -> Self {
        Self { client, cancel, tasks: TaskTracker::new(), stores: Arc::default() }
    }

    /// The cache of every `K` in every namespace; starts its informer on first use.
    pub fn store<K: Object>(&self) -> Store<K> {
        let mut stores = self.stores.lock().expect("shared informers lock");
        if let Some(store) = stores.get(&TypeId::of::<K>()) {
            return store.downcast_ref::<Store<K>>().expect("stored under its own TypeId").clone();
        }
        let informer = Informer::<K>::new(&self.client, InformerConfig::default());
        let store = informer.store();
        self.tasks.spawn(informer.run(self.cancel.clone()));
        stores.insert(TypeId::of::<K>(), Box::new(store.clone()));
        store
    }

    /// Wait until every informer started so far has stopped (after the token fired).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
