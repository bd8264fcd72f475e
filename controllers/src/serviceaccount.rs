//! What every namespace needs for its pods' ServiceAccount tokens, as upstream's
//! serviceaccount-controller and root-ca-cert-publisher make it: ServiceAccount `default`,
//! and ConfigMap `kube-root-ca.crt` whose `ca.crt` is the CA pods verify the API with.
//!
//! Runs only where the API issues tokens (`--service-account-signing-key-file`).
//!
//! Invariants:
//! - Every active namespace has both objects; one deleted comes back (changes to them queue
//!   their namespace), and a ConfigMap whose `ca.crt` differs is put back to the CA, which
//!   is how a new CA reaches every namespace.
//! - A terminating namespace is left alone: the namespace controller is emptying it.

use std::collections::BTreeMap;
use std::sync::Arc;

use flotilla_apiserver::serviceaccount::admission::ROOT_CA_CONFIG_MAP;
use flotilla_apiserver::serviceaccount::DEFAULT_NAME;
use flotilla_apiserver::ApiError;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::leadership::{Component, LeaderContext};
use crate::runtime::{Action, Change, Controller, ControllerConfig, Key, Reconciler, Store};
use flotilla_apiserver::client::Client;

/// The key under which the ConfigMap holds the CA.
pub const CA_KEY: &str = "ca.crt";

/// The leader-only component; `root_ca` is the CA's PEM text.
pub fn component(root_ca: String) -> Component {
    let root_ca = Arc::new(root_ca);
    Arc::new(move |ctx: LeaderContext| run(ctx, root_ca.clone()).boxed())
}

async fn run(ctx: LeaderContext, root_ca: Arc<String>) {
    let namespaces = ctx.informers.store::<Namespace>();
    let (accounts, config_maps) = (ctx.informers.store::<ServiceAccount>(), ctx.informers.store::<ConfigMap>());
    let reconciler = NamespaceObjects {
        namespaces: namespaces.clone(),
        accounts: accounts.clone(),
        config_maps: config_maps.clone(),
        client: ctx.client.clone(),
        root_ca,
    };
    Controller::new("serviceaccount", reconciler, &namespaces, ControllerConfig::default())
        .watches(&accounts, |c: &Change<ServiceAccount>| namespace_of(&c.key, DEFAULT_NAME))
        .watches(&config_maps, |c: &Change<ConfigMap>| namespace_of(&c.key, ROOT_CA_CONFIG_MAP))
        .run(ctx.cancel.clone())
        .await;
}

/// The namespace's key, if `key` is the object of `name` this controller keeps.
fn namespace_of(key: &Key, name: &str) -> Vec<Key> {
    match (&key.namespace, key.name == name) {
        (Some(ns), true) => vec![Key::cluster(ns.clone())],
        _ => Vec::new(),
    }
}

pub struct NamespaceObjects {
    pub namespaces: Store<Namespace>,
    pub accounts: Store<ServiceAccount>,
    pub config_maps: Store<ConfigMap>,
    pub client: Client,
    pub root_ca: Arc<String>,
}

impl Reconciler for NamespaceObjects {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(ns) = self.namespaces.get_key(key) else { return Ok(Action::Done) };
        if ns.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let namespace = key.name.as_str();
        let meta = |name: &str| ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        };
        if self.accounts.get(Some(namespace), DEFAULT_NAME).is_none() {
            let account = ServiceAccount { metadata: meta(DEFAULT_NAME), ..Default::default() };
            ignore_exists(self.client.api::<ServiceAccount>(Some(namespace)).create(&account).await)?;
        }
        let want = BTreeMap::from([(CA_KEY.to_string(), self.root_ca.to_string())]);
        let api = self.client.api::<ConfigMap>(Some(namespace));
        match self.config_maps.get(Some(namespace), ROOT_CA_CONFIG_MAP) {
            None => {
                let cm = ConfigMap { metadata: meta(ROOT_CA_CONFIG_MAP), data: Some(want), ..Default::default() };
                ignore_exists(api.create(&cm).await)?;
            }
            Some(cm) if cm.data.as_ref() != Some(&want) => {
                let mut cm = (*cm).clone();
                cm.data = Some(want);
                api.update(ROOT_CA_CONFIG_MAP, &cm).await?;
            }
            Some(_) => {}
        }
        Ok(Action::Done)
    }
}

/// A create that lost to another writer is done all the same.
fn ignore_exists<T>(result: Result<T, ApiError>) -> Result<(), ApiError> {
    match result {
        Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kept_objects_queue_their_namespace() {
        assert_eq!(namespace_of(&Key::namespaced("a", "default"), DEFAULT_NAME), vec![Key::cluster("a")]);
        assert!(namespace_of(&Key::namespaced("a", "builder"), DEFAULT_NAME).is_empty());
        assert_eq!(
            namespace_of(&Key::namespaced("b", ROOT_CA_CONFIG_MAP), ROOT_CA_CONFIG_MAP),
            vec![Key::cluster("b")]
        );
        assert!(namespace_of(&Key::cluster("default"), DEFAULT_NAME).is_empty());
    }
}
