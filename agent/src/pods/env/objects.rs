//! The API objects a pod's configuration reads — ConfigMaps, Secrets, claims and their
//! volumes, the node's allocatable — fetched once per use into plain maps, so env and
//! volume contents are then computed without I/O (and tested without a server).
//!
//! Invariants:
//! - Only objects the pod references are fetched, from the pod's own namespace. Tokens are
//!   not fetched here but through [`crate::pods::tokens::TokenCache`], which reuses them.
//! - "Not found" is an answer (`None` in the map): whether it is an error depends on
//!   `optional`, which the pure code decides. Any other failure (no server answering) is
//!   returned as is, so the caller retries instead of starting a half-configured container.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::NamespaceResourceScope;
use serde::de::DeserializeOwned;

use crate::api::ApiPool;
use crate::error::AgentError;
use crate::pods::spec::quantity::Quantity;
use crate::pods::tokens::TokenRef;

/// What to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub claims: BTreeSet<String>,
    /// The node's allocatable is needed (a `resourceFieldRef` to a limit).
    pub node: bool,
    /// The pod's ServiceAccount tokens (projected `serviceAccountToken` sources).
    pub tokens: BTreeSet<TokenRef>,
}

impl Refs {
    /// What `container`'s env and envFrom read.
    pub fn of_container(container: &Container) -> Self {
        let mut refs = Refs::default();
        for from in container.env_from.iter().flatten() {
            refs.config_maps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            refs.secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for source in container.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            refs.config_maps.extend(source.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            refs.secrets.extend(source.secret_key_ref.as_ref().map(|r| r.name.clone()));
            refs.node |= source.resource_field_ref.is_some();
        }
        refs
    }

    /// What `pod`'s volumes read.
    pub fn of_volumes(pod: &Pod) -> Self {
        let mut refs = Refs::default();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            refs.config_maps.extend(v.config_map.as_ref().map(|c| c.name.clone()));
            refs.secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
            refs.claims.extend(v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()));
            let downward = v.downward_api.iter().flat_map(|d| d.items.iter().flatten());
            refs.node |= downward.clone().any(|i| i.resource_field_ref.is_some());
            for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                refs.config_maps.extend(source.config_map.as_ref().map(|c| c.name.clone()));
                refs.secrets.extend(source.secret.as_ref().map(|s| s.name.clone()));
                refs.tokens.extend(source.service_account_token.as_ref().map(TokenRef::of));
                let items = source.downward_api.iter().flat_map(|d| d.items.iter().flatten());
                refs.node |= items.clone().any(|i| i.resource_field_ref.is_some());
            }
        }
        refs
    }

    pub fn is_empty(&self) -> bool {
        *self == Refs::default()
    }

    /// Add what `other` names.
    pub fn merge(&mut self, other: Refs) {
        self.config_maps.extend(other.config_maps);
        self.secrets.extend(other.secrets);
        self.claims.extend(other.claims);
        self.node |= other.node;
        self.tokens.extend(other.tokens);
    }
}

/// Fetched objects by name; `None` = not found. See the module doc.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
    pub claims: BTreeMap<String, Option<PersistentVolumeClaim>>,
    /// The volumes the found claims are bound to, by volume name.
    pub volumes: BTreeMap<String, Option<PersistentVolume>>,
    /// The node's allocatable, if it was needed.
    pub allocatable: BTreeMap<String, Quantity>,
    /// The pod's ServiceAccount tokens ([`crate::pods::tokens`]).
    pub tokens: BTreeMap<TokenRef, String>,
}

impl Objects {
    /// Fetch what `refs` names, from namespace `namespace`; `node` is this node's name.
    pub async fn fetch(pool: &ApiPool, namespace: &str, node: &str, refs: &Refs) -> Result<Self, AgentError> {
        let mut objects = Objects::default();
        for name in &refs.config_maps {
            objects.config_maps.insert(name.clone(), namespaced(pool, namespace, name).await?);
        }
        for name in &refs.secrets {
            objects.secrets.insert(name.clone(), namespaced(pool, namespace, name).await?);
        }
        for name in &refs.claims {
            let claim: Option<PersistentVolumeClaim> = namespaced(pool, namespace, name).await?;
            let bound = claim.as_ref().and_then(|c| c.spec.as_ref()?.volume_name.clone()).filter(|v| !v.is_empty());
            if let Some(volume) = bound {
                objects.volumes.insert(volume.clone(), cluster(pool, &volume).await?);
            }
            objects.claims.insert(name.clone(), claim);
        }
        if refs.node {
            let found: Option<Node> = cluster(pool, node).await?;
            let allocatable = found.and_then(|n| n.status?.allocatable).unwrap_or_default();
            objects.allocatable =
                allocatable.into_iter().filter_map(|(k, q)| Some((k, Quantity::parse(&q.0).ok()?))).collect();
        }
        Ok(objects)
    }

    /// Fold `other` in (for a container's refs on top of the volumes').
    pub fn merge(&mut self, other: Objects) {
        self.config_maps.extend(other.config_maps);
        self.secrets.extend(other.secrets);
        self.claims.extend(other.claims);
        self.volumes.extend(other.volumes);
        self.allocatable.extend(other.allocatable);
        self.tokens.extend(other.tokens);
    }
}

fn found<K>(result: Result<K, AgentError>) -> Result<Option<K>, AgentError> {
    match result {
        Ok(object) => Ok(Some(object)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn namespaced<K>(pool: &ApiPool, namespace: &str, name: &str) -> Result<Option<K>, AgentError>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    found(pool.call(move |c| async move { kube::Api::<K>::namespaced(c, namespace).get(name).await }).await)
}

async fn cluster<K>(pool: &ApiPool, name: &str) -> Result<Option<K>, AgentError>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    found(pool.call(move |c| async move { kube::Api::<K>::all(c).get(name).await }).await)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection, ConfigMapVolumeSource, EnvFromSource, EnvVar,
        EnvVarSource, PersistentVolumeClaimVolumeSource, PodSpec, ProjectedVolumeSource, SecretKeySelector,
        SecretProjection, Volume, VolumeProjection,
    };

    use super::*;

    #[test]
    fn references_are_collected_from_env_and_every_volume_kind() {
        let c = Container {
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "cm-all".into(), optional: None }),
                ..Default::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "A".into(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cm-a".into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "S".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector { name: "sec".into(), key: "k".into(), optional: None }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar { name: "PLAIN".into(), value: Some("v".into()), ..Default::default() },
            ]),
            ..Container::default()
        };
        let refs = Refs::of_container(&c);
        assert_eq!(refs.config_maps, BTreeSet::from(["cm-a".to_string(), "cm-all".to_string()]));
        assert_eq!(refs.secrets, BTreeSet::from(["sec".to_string()]));
        assert!(!refs.node && Refs::of_container(&Container::default()).is_empty());

        let projected = ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection { name: "cm-p".into(), ..Default::default() }),
                    ..Default::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection { name: "sec-p".into(), ..Default::default() }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let volumes = vec![
            Volume {
                name: "a".into(),
                config_map: Some(ConfigMapVolumeSource { name: "cm-v".into(), ..Default::default() }),
                ..Default::default()
            },
            Volume {
                name: "b".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: "data".into(),
                    read_only: None,
                }),
                ..Default::default()
            },
            Volume { name: "c".into(), projected: Some(projected), ..Default::default() },
        ];
        let pod = Pod { spec: Some(PodSpec { volumes: Some(volumes), ..PodSpec::default() }), ..Pod::default() };
        let refs = Refs::of_volumes(&pod);
        assert_eq!(refs.config_maps, BTreeSet::from(["cm-p".to_string(), "cm-v".to_string()]));
        assert_eq!(refs.secrets, BTreeSet::from(["sec-p".to_string()]));
        assert_eq!(refs.claims, BTreeSet::from(["data".to_string()]));
    }
}
