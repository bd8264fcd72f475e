//! From a dependent to its controller: the mapping that makes a Pod change enqueue its
//! ReplicaSet.
//!
//! A dependent names its managing owner by the one `ownerReference` with
//! `controller: true`. Owners of namespaced dependents live in the dependent's namespace
//! (cross-namespace owner references are invalid), so the owner's key is the dependent's
//! namespace plus the reference's name. The reference's apiVersion is compared by group
//! only: `apps/v1` and `apps/v1beta2` name the same ReplicaSets.
//!
//! The other way, an owner marks what it creates or adopts with [`controller_reference`],
//! and tells its own dependents by uid ([`is_controlled_by`]): a recreated owner of the same
//! name is another incarnation and does not control its predecessor's dependents.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{Metadata, Resource};

use super::key::Key;
use super::store::{Change, Object};

/// The group part of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The `controller: true` owner reference of `meta`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// Whether the object with `owner` as metadata (that incarnation: same uid) is the
/// controller of `meta`'s object (upstream's `metav1.IsControlledBy`).
pub fn is_controlled_by(meta: &ObjectMeta, owner: &ObjectMeta) -> bool {
    controller_ref(meta).is_some_and(|r| Some(&r.uid) == owner.uid.as_ref())
}

/// The controller reference `owner` puts on what it creates or adopts (upstream's
/// `metav1.NewControllerRef`); `blockOwnerDeletion` lets a foreground deletion of the owner
/// wait for them.
pub fn controller_reference<K: Resource + Metadata<Ty = ObjectMeta>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: owner.metadata().name.clone().unwrap_or_default(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The key of the object of kind `O` that controls `meta`'s object, if one does.
pub fn controller_key<O: k8s_openapi::Resource>(meta: &ObjectMeta) -> Option<Key> {
    controller_key_for(meta, O::GROUP, O::KIND)
}

/// [`controller_key`] for a kind given by its API group and kind name.
pub fn controller_key_for(meta: &ObjectMeta, group: &str, kind: &str) -> Option<Key> {
    let r = controller_ref(meta)?;
    (r.kind == kind && group_of(&r.api_version) == group)
        .then(|| Key { namespace: meta.namespace.clone().filter(|ns| !ns.is_empty()), name: r.name.clone() })
}

/// The owners of kind `O` to reconcile after `change`: the controller of the old object and
/// that of the new one (both, when a dependent is adopted or released).
pub fn controller_keys<O: k8s_openapi::Resource, C: Object>(change: &Change<C>) -> Vec<Key> {
    let mut keys: Vec<Key> = change.objects().filter_map(|o| controller_key::<O>(o.metadata())).collect();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(owners: Vec<OwnerReference>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-abcde".into()),
                namespace: Some("prod".into()),
                owner_references: Some(owners),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn owner(api_version: &str, kind: &str, name: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u1".into(),
            controller,
            ..Default::default()
        }
    }

    #[test]
    fn only_the_controller_reference_of_the_right_kind_counts() {
        let p =
            pod(vec![owner("apps/v1", "ReplicaSet", "other", None), owner("apps/v1", "ReplicaSet", "web", Some(true))]);
        assert_eq!(controller_key::<ReplicaSet>(&p.metadata), Some(Key::namespaced("prod", "web")));
        assert_eq!(controller_key::<Deployment>(&p.metadata), None);
        let wrong_group = pod(vec![owner("example.com/v1", "ReplicaSet", "web", Some(true))]);
        assert_eq!(controller_key::<ReplicaSet>(&wrong_group.metadata), None);
        let older_version = pod(vec![owner("apps/v1beta2", "ReplicaSet", "web", Some(true))]);
        assert_eq!(controller_key::<ReplicaSet>(&older_version.metadata), Some(Key::namespaced("prod", "web")));
    }

    #[test]
    fn an_owner_controls_what_carries_its_controller_reference_by_uid() {
        let rs = ReplicaSet {
            metadata: ObjectMeta { name: Some("web".into()), uid: Some("u1".into()), ..Default::default() },
            ..Default::default()
        };
        let r = controller_reference(&rs);
        assert_eq!((r.api_version.as_str(), r.kind.as_str(), r.name.as_str()), ("apps/v1", "ReplicaSet", "web"));
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
        let owned = pod(vec![r]);
        assert!(is_controlled_by(&owned.metadata, &rs.metadata));
        let recreated = ObjectMeta { uid: Some("u2".into()), ..rs.metadata.clone() };
        assert!(!is_controlled_by(&owned.metadata, &recreated), "another incarnation of the same name");
        let merely_owned = pod(vec![owner("apps/v1", "ReplicaSet", "web", None)]);
        assert!(!is_controlled_by(&merely_owned.metadata, &rs.metadata), "an owner that is not the controller");
    }

    #[test]
    fn a_change_of_controller_enqueues_both_owners() {
        let before = Arc::new(pod(vec![owner("apps/v1", "ReplicaSet", "old", Some(true))]));
        let after = Arc::new(pod(vec![owner("apps/v1", "ReplicaSet", "new", Some(true))]));
        let key = Key::namespaced("prod", "web-abcde");
        let change = Change { key: key.clone(), old: Some(before.clone()), new: Some(after) };
        assert_eq!(
            controller_keys::<ReplicaSet, Pod>(&change),
            vec![Key::namespaced("prod", "old"), Key::namespaced("prod", "new")]
        );
        let same = Change { key: key.clone(), old: Some(before.clone()), new: Some(before.clone()) };
        assert_eq!(controller_keys::<ReplicaSet, Pod>(&same), vec![Key::namespaced("prod", "old")]);
        let deleted = Change { key, old: Some(before), new: None };
        assert_eq!(controller_keys::<ReplicaSet, Pod>(&deleted), vec![Key::namespaced("prod", "old")]);
    }
}
