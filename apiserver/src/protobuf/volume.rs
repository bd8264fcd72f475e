//! Schema tables for pod volumes: `Volume` (which embeds `VolumeSource` inline), the
//! in-use volume sources, projections and the ephemeral volume claim template.
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/api v0.32.4);
//! `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`). The deprecated and
//! cloud-specific in-tree sources (gcePersistentDisk, awsElasticBlockStore, gitRepo, iscsi,
//! glusterfs, rbd, flexVolume, cinder, cephfs, flocker, fc, azureFile, vsphereVolume, quobyte,
//! azureDisk, photonPersistentDisk, portworxVolume, scaleIO, storageos) are not listed: a body
//! that sets one fails with `UnknownField` rather than losing the volume.

use super::container::{OBJECT_FIELD_SELECTOR, RESOURCE_FIELD_SELECTOR};
use super::core_v1::LOCAL_OBJECT_REFERENCE;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::schema::Kind::*;
use super::schema::{inline, map, msg, one, ptr, rep, Message};

/// `Volume` (core/v1).
pub(super) static VOLUME: Message = msg("Volume", &[one(1, "name", Str), inline(2, &VOLUME_SOURCE)]);

/// `VolumeSource` (core/v1).
pub(super) static VOLUME_SOURCE: Message = msg(
    "VolumeSource",
    &[
        ptr(1, "hostPath", Msg(&HOST_PATH_VOLUME_SOURCE)),
        ptr(2, "emptyDir", Msg(&EMPTY_DIR_VOLUME_SOURCE)),
        ptr(6, "secret", Msg(&SECRET_VOLUME_SOURCE)),
        ptr(7, "nfs", Msg(&NFS_VOLUME_SOURCE)),
        ptr(10, "persistentVolumeClaim", Msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        ptr(16, "downwardAPI", Msg(&DOWNWARD_API_VOLUME_SOURCE)),
        ptr(19, "configMap", Msg(&CONFIG_MAP_VOLUME_SOURCE)),
        ptr(26, "projected", Msg(&PROJECTED_VOLUME_SOURCE)),
        ptr(28, "csi", Msg(&CSI_VOLUME_SOURCE)),
        ptr(29, "ephemeral", Msg(&EPHEMERAL_VOLUME_SOURCE)),
        ptr(30, "image", Msg(&IMAGE_VOLUME_SOURCE)),
    ],
);

/// `HostPathVolumeSource` (core/v1).
pub(super) static HOST_PATH_VOLUME_SOURCE: Message =
    msg("HostPathVolumeSource", &[one(1, "path", Str), ptr(2, "type", Str)]);

/// `EmptyDirVolumeSource` (core/v1).
pub(super) static EMPTY_DIR_VOLUME_SOURCE: Message =
    msg("EmptyDirVolumeSource", &[one(1, "medium", Str), ptr(2, "sizeLimit", Quantity)]);

/// `SecretVolumeSource` (core/v1).
pub(super) static SECRET_VOLUME_SOURCE: Message = msg(
    "SecretVolumeSource",
    &[
        one(1, "secretName", Str),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        ptr(3, "defaultMode", Int),
        ptr(4, "optional", Bool),
    ],
);

/// `KeyToPath` (core/v1).
pub(super) static KEY_TO_PATH: Message =
    msg("KeyToPath", &[one(1, "key", Str), one(2, "path", Str), ptr(3, "mode", Int)]);

/// `NFSVolumeSource` (core/v1).
pub(super) static NFS_VOLUME_SOURCE: Message =
    msg("NFSVolumeSource", &[one(1, "server", Str), one(2, "path", Str), one(3, "readOnly", Bool)]);

/// `PersistentVolumeClaimVolumeSource` (core/v1).
pub(super) static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message =
    msg("PersistentVolumeClaimVolumeSource", &[one(1, "claimName", Str), one(2, "readOnly", Bool)]);

/// `DownwardAPIVolumeSource` (core/v1).
pub(super) static DOWNWARD_API_VOLUME_SOURCE: Message =
    msg("DownwardAPIVolumeSource", &[rep(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE)), ptr(2, "defaultMode", Int)]);

/// `DownwardAPIVolumeFile` (core/v1).
pub(super) static DOWNWARD_API_VOLUME_FILE: Message = msg(
    "DownwardAPIVolumeFile",
    &[
        one(1, "path", Str),
        ptr(2, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        ptr(3, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        ptr(4, "mode", Int),
    ],
);

/// `ConfigMapVolumeSource` (core/v1).
pub(super) static CONFIG_MAP_VOLUME_SOURCE: Message = msg(
    "ConfigMapVolumeSource",
    &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        rep(2, "items", Msg(&KEY_TO_PATH)),
        ptr(3, "defaultMode", Int),
        ptr(4, "optional", Bool),
    ],
);

/// `ProjectedVolumeSource` (core/v1).
pub(super) static PROJECTED_VOLUME_SOURCE: Message =
    msg("ProjectedVolumeSource", &[rep(1, "sources", Msg(&VOLUME_PROJECTION)), ptr(2, "defaultMode", Int)]);

/// `VolumeProjection` (core/v1).
pub(super) static VOLUME_PROJECTION: Message = msg(
    "VolumeProjection",
    &[
        ptr(1, "secret", Msg(&SECRET_PROJECTION)),
        ptr(2, "downwardAPI", Msg(&DOWNWARD_API_PROJECTION)),
        ptr(3, "configMap", Msg(&CONFIG_MAP_PROJECTION)),
        ptr(4, "serviceAccountToken", Msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        ptr(5, "clusterTrustBundle", Msg(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
    ],
);

/// `SecretProjection` (core/v1).
pub(super) static SECRET_PROJECTION: Message = msg(
    "SecretProjection",
    &[inline(1, &LOCAL_OBJECT_REFERENCE), rep(2, "items", Msg(&KEY_TO_PATH)), ptr(4, "optional", Bool)],
);

/// `DownwardAPIProjection` (core/v1).
pub(super) static DOWNWARD_API_PROJECTION: Message =
    msg("DownwardAPIProjection", &[rep(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE))]);

/// `ConfigMapProjection` (core/v1).
pub(super) static CONFIG_MAP_PROJECTION: Message = msg(
    "ConfigMapProjection",
    &[inline(1, &LOCAL_OBJECT_REFERENCE), rep(2, "items", Msg(&KEY_TO_PATH)), ptr(4, "optional", Bool)],
);

/// `ServiceAccountTokenProjection` (core/v1).
pub(super) static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = msg(
    "ServiceAccountTokenProjection",
    &[one(1, "audience", Str), ptr(2, "expirationSeconds", Int), one(3, "path", Str)],
);

/// `ClusterTrustBundleProjection` (core/v1).
pub(super) static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = msg(
    "ClusterTrustBundleProjection",
    &[
        ptr(1, "name", Str),
        ptr(2, "signerName", Str),
        ptr(3, "labelSelector", Msg(&LABEL_SELECTOR)),
        ptr(5, "optional", Bool),
        one(4, "path", Str),
    ],
);

/// `CSIVolumeSource` (core/v1).
pub(super) static CSI_VOLUME_SOURCE: Message = msg(
    "CSIVolumeSource",
    &[
        one(1, "driver", Str),
        ptr(2, "readOnly", Bool),
        ptr(3, "fsType", Str),
        map(4, "volumeAttributes", Str),
        ptr(5, "nodePublishSecretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

/// `EphemeralVolumeSource` (core/v1).
pub(super) static EPHEMERAL_VOLUME_SOURCE: Message =
    msg("EphemeralVolumeSource", &[ptr(1, "volumeClaimTemplate", Msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE))]);

/// `PersistentVolumeClaimTemplate` (core/v1).
pub(super) static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = msg(
    "PersistentVolumeClaimTemplate",
    &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC))],
);

/// `PersistentVolumeClaimSpec` (core/v1).
pub(super) static PERSISTENT_VOLUME_CLAIM_SPEC: Message = msg(
    "PersistentVolumeClaimSpec",
    &[
        rep(1, "accessModes", Str),
        ptr(4, "selector", Msg(&LABEL_SELECTOR)),
        one(2, "resources", Msg(&VOLUME_RESOURCE_REQUIREMENTS)),
        one(3, "volumeName", Str),
        ptr(5, "storageClassName", Str),
        ptr(6, "volumeMode", Str),
        ptr(7, "dataSource", Msg(&TYPED_LOCAL_OBJECT_REFERENCE)),
        ptr(8, "dataSourceRef", Msg(&TYPED_OBJECT_REFERENCE)),
        ptr(9, "volumeAttributesClassName", Str),
    ],
);

/// `VolumeResourceRequirements` (core/v1).
pub(super) static VOLUME_RESOURCE_REQUIREMENTS: Message =
    msg("VolumeResourceRequirements", &[map(1, "limits", Quantity), map(2, "requests", Quantity)]);

/// `TypedLocalObjectReference` (core/v1).
pub(super) static TYPED_LOCAL_OBJECT_REFERENCE: Message =
    msg("TypedLocalObjectReference", &[ptr(1, "apiGroup", Str), one(2, "kind", Str), one(3, "name", Str)]);

/// `TypedObjectReference` (core/v1).
pub(super) static TYPED_OBJECT_REFERENCE: Message = msg(
    "TypedObjectReference",
    &[ptr(1, "apiGroup", Str), one(2, "kind", Str), one(3, "name", Str), ptr(4, "namespace", Str)],
);

/// `ImageVolumeSource` (core/v1).
pub(super) static IMAGE_VOLUME_SOURCE: Message =
    msg("ImageVolumeSource", &[one(1, "reference", Str), one(2, "pullPolicy", Str)]);
