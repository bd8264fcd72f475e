//! Volume placement (the node-affinity part of upstream's VolumeBinding filter).
//!
//! A pod's claims (`persistentVolumeClaim` volumes, and generic `ephemeral` volumes whose
//! claim is `<pod>-<volume>`) are resolved before filtering:
//! - a claim that does not exist, or is being deleted, fails the pod everywhere (upstream's
//!   PreFilter messages);
//! - a claim bound to a PV that does not exist fails every node;
//! - a claim bound to a PV with `spec.nodeAffinity.required` (local volumes) admits only the
//!   nodes that selector matches.
//!
//! An unbound claim constrains nothing here: Flotilla's default StorageClass binds on first
//! consumer, so the PV binder provisions the volume on whichever node the pod is given.

use flotilla_apiserver::selector::node::{Labels, NodeSelectorMatcher};
use k8s_openapi::api::core::v1::Pod;

use crate::error::Reason;
use crate::snapshot::Snapshot;

/// The volume constraints of one pod.
#[derive(Debug, Default)]
pub struct VolumeState {
    selectors: Vec<NodeSelectorMatcher>,
    bound_to_missing_pv: bool,
}

impl VolumeState {
    /// Resolves the pod's claims; `Err` is a message that applies to every node.
    pub fn new(pod: &Pod, snap: &Snapshot) -> Result<Self, String> {
        let mut state = VolumeState::default();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let pod_name = pod.metadata.name.as_deref().unwrap_or("");
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or(&[]);
        for volume in volumes {
            let (claim_name, ephemeral) = match (&volume.persistent_volume_claim, &volume.ephemeral) {
                (Some(source), _) => (source.claim_name.clone(), false),
                (None, Some(_)) => (format!("{pod_name}-{}", volume.name), true),
                (None, None) => continue,
            };
            let Some(pvc) = snap.pvc(namespace, &claim_name) else {
                return Err(if ephemeral {
                    format!(
                        "waiting for ephemeral volume controller to create the persistentvolumeclaim {claim_name:?}"
                    )
                } else {
                    format!("persistentvolumeclaim {claim_name:?} not found")
                });
            };
            if pvc.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim {claim_name:?} is being deleted"));
            }
            let Some(pv_name) = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()).filter(|n| !n.is_empty())
            else {
                continue;
            };
            match snap.pv(pv_name) {
                None => state.bound_to_missing_pv = true,
                Some(pv) => {
                    let required =
                        pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref()).and_then(|a| a.required.as_ref());
                    state.selectors.extend(required.map(NodeSelectorMatcher::new));
                }
            }
        }
        Ok(state)
    }

    pub fn is_trivial(&self) -> bool {
        self.selectors.is_empty() && !self.bound_to_missing_pv
    }

    pub fn check(&self, labels: &impl Labels, node_name: &str) -> Option<Reason<'static>> {
        if self.bound_to_missing_pv {
            return Some(Reason::BoundToMissingPv);
        }
        let conflict = self.selectors.iter().any(|s| !s.matches(labels, node_name));
        conflict.then_some(Reason::VolumeNodeAffinityConflict)
    }
}
