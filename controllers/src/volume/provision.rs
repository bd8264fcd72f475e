//! The local-path provisioner's volume (after rancher's local-path-provisioner): a
//! `hostPath` directory on the node the claim's first consumer was scheduled to.
//!
//! For claim `ns/name` with uid `U` on node `N`, the PV is named `pvc-U` (so a repeated
//! create of the same volume fails with AlreadyExists instead of making a second one) and
//! holds:
//! - `hostPath {path: <base>/pvc-U_ns_name, type: DirectoryOrCreate}`, `<base>` being the
//!   class parameter `nodePath` or [`DEFAULT_BASE`];
//! - `nodeAffinity.required`: `kubernetes.io/hostname In [<N's hostname label, or N>]`, so the
//!   scheduler keeps the claim's pods on that node;
//! - the claim's request as capacity, its access modes and volume mode, the class's name,
//!   reclaim policy and mount options, and `claimRef` naming the claim with its uid (the
//!   volume is born pre-bound: no other claim can take it);
//! - annotation `pv.kubernetes.io/provisioned-by` and the `kubernetes.io/pv-protection`
//!   finalizer.
//!
//! Nothing here touches a disk: the node agent creates the directory when it mounts the
//! volume (`DirectoryOrCreate`); a deleted PV's directory is left on its node (the agent
//! does not watch PVs).

use std::collections::BTreeMap;

use flotilla_apiserver::bootstrap::LOCAL_PATH_PROVISIONER;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::matching::FILESYSTEM;
use super::{ANN_PROVISIONED_BY, PV_PROTECTION};
use crate::runtime::events::reference;

/// Where volumes go when the class has no `nodePath` parameter.
pub const DEFAULT_BASE: &str = "/var/lib/flotilla/local-path";
/// The node label the volume's node affinity selects on.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The access modes a directory on one node can honour.
const SUPPORTED_MODES: &[&str] = &["ReadWriteOnce", "ReadWriteOncePod"];

/// The name of the volume provisioned for a claim.
pub fn volume_name(claim: &PersistentVolumeClaim) -> Option<String> {
    claim.metadata.uid.as_deref().filter(|u| !u.is_empty()).map(|uid| format!("pvc-{uid}"))
}

/// The local-path volume for `claim` of `class` on node `node_name` (`node` is its cached
/// object, if any). `Err` says why this claim cannot have one (a `ProvisioningFailed` event).
pub fn local_path_volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node_name: &str,
    node: Option<&Node>,
) -> Result<PersistentVolume, String> {
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err("claim.Spec.Selector is not supported".into());
    }
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.iter().any(|m| !SUPPORTED_MODES.contains(&m.as_str())) {
        return Err("NodePath only supports ReadWriteOnce and ReadWriteOncePod access modes".into());
    }
    let volume_mode = spec.volume_mode.clone().unwrap_or_else(|| FILESYSTEM.into());
    if volume_mode != FILESYSTEM {
        return Err(format!("volumeMode {volume_mode:?} is not supported, only {FILESYSTEM:?}"));
    }
    let request = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage"));
    let (Some(name), Some(request)) = (volume_name(claim), request) else {
        return Err("claim has no uid or no storage request".into());
    };
    let base = class.parameters.as_ref().and_then(|p| p.get("nodePath")).map_or(DEFAULT_BASE, String::as_str);
    let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let claim_name = claim.metadata.name.as_deref().unwrap_or_default();
    let path = format!("{}/{name}_{ns}_{claim_name}", base.trim_end_matches('/'));
    let hostname = node
        .and_then(|n| n.metadata.labels.as_ref()?.get(HOSTNAME_LABEL))
        .map_or(node_name, String::as_str)
        .to_string();
    let affinity = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: HOSTNAME_LABEL.into(),
                operator: "In".into(),
                values: Some(vec![hostname]),
            }]),
            match_fields: None,
        }],
    };
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(BTreeMap::from([(ANN_PROVISIONED_BY.to_string(), LOCAL_PATH_PROVISIONER.to_string())])),
            finalizers: Some(vec![PV_PROTECTION.into()]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(modes),
            capacity: Some(BTreeMap::from([("storage".to_string(), request.clone())])),
            claim_ref: Some(reference(claim)),
            host_path: Some(HostPathVolumeSource { path, type_: Some("DirectoryOrCreate".into()) }),
            node_affinity: Some(VolumeNodeAffinity { required: Some(affinity) }),
            persistent_volume_reclaim_policy: Some(class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into())),
            storage_class_name: class.metadata.name.clone(),
            mount_options: class.mount_options.clone(),
            volume_mode: Some(volume_mode),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::fixtures::{class, pvc};
    use crate::volume::matching::is_bound_to;

    fn local() -> StorageClass {
        class("local-path", LOCAL_PATH_PROVISIONER, "WaitForFirstConsumer")
    }

    fn hostnames(pv: &PersistentVolume) -> Vec<String> {
        let required = pv.spec.as_ref().unwrap().node_affinity.as_ref().unwrap().required.as_ref().unwrap();
        let expr = &required.node_selector_terms[0].match_expressions.as_ref().unwrap()[0];
        assert_eq!((expr.key.as_str(), expr.operator.as_str()), (HOSTNAME_LABEL, "In"));
        expr.values.clone().unwrap()
    }

    #[test]
    fn the_volume_lives_on_the_node_under_the_base_and_is_pre_bound() {
        let claim = pvc("data", "3Gi", Some("local-path"), &["ReadWriteOnce"]);
        let pv = local_path_volume(&claim, &local(), "n1", None).expect("provisionable");
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-uid-data"));
        let spec = pv.spec.as_ref().unwrap();
        let host = spec.host_path.as_ref().unwrap();
        assert_eq!(host.path, "/var/lib/flotilla/local-path/pvc-uid-data_ns_data");
        assert_eq!(host.type_.as_deref(), Some("DirectoryOrCreate"));
        assert_eq!(hostnames(&pv), ["n1"], "no Node object: its name");
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "3Gi");
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
        assert!(is_bound_to(&pv, &claim));
        assert_eq!(spec.claim_ref.as_ref().unwrap().uid.as_deref(), Some("uid-data"));
        assert_eq!(pv.metadata.annotations.as_ref().unwrap()[ANN_PROVISIONED_BY], LOCAL_PATH_PROVISIONER);
    }

    #[test]
    fn the_class_sets_base_and_policy_and_the_node_label_wins_over_its_name() {
        let mut keep = local();
        keep.parameters = Some([("nodePath".to_string(), "/data/vols/".to_string())].into());
        keep.reclaim_policy = Some("Retain".into());
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some([(HOSTNAME_LABEL.to_string(), "host-1".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let pv = local_path_volume(&pvc("d", "1Gi", None, &["ReadWriteOnce"]), &keep, "n1", Some(&node)).unwrap();
        assert_eq!(pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path, "/data/vols/pvc-uid-d_ns_d");
        assert_eq!(pv.spec.as_ref().unwrap().persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
        assert_eq!(hostnames(&pv), ["host-1"]);
    }

    #[test]
    fn shared_modes_block_volumes_and_selectors_are_refused() {
        let rwx = pvc("d", "1Gi", None, &["ReadWriteMany"]);
        assert!(local_path_volume(&rwx, &local(), "n1", None).is_err());
        let mut block = pvc("d", "1Gi", None, &["ReadWriteOnce"]);
        block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
        assert!(local_path_volume(&block, &local(), "n1", None).is_err());
        let mut selecting = pvc("d", "1Gi", None, &["ReadWriteOnce"]);
        selecting.spec.as_mut().unwrap().selector = Some(Default::default());
        assert!(local_path_volume(&selecting, &local(), "n1", None).is_err());
    }
}
