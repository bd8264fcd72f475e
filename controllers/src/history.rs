//! ControllerRevisions: the template history StatefulSets and DaemonSets keep, after
//! upstream's `controller/history`.
//!
//! Invariants:
//! - An owner has at most one revision per distinct pod template (templates compare by
//!   [`template::same`], so what `kubectl rollout undo` sends back equals the original).
//! - A revision is named `<owner>-<hash>`, the hash being [`template::hash`] of its template
//!   and the owner's `collisionCount` (left out while it is 0); a name already taken by a
//!   revision of another template bumps the count, which changes the hash.
//! - `revision` numbers only grow: the update revision is the newest. Returning to an older
//!   template (a rollback) moves that revision to the front by giving it the next number,
//!   as upstream, instead of creating a second revision of the same template.
//! - Pruning never deletes a *live* revision (the current one, the update one, or one a pod
//!   still carries in its `controller-revision-hash` label); it deletes the oldest others
//!   beyond `revisionHistoryLimit` (default [`DEFAULT_HISTORY_LIMIT`]).
//!
//! `data` holds upstream's patch form, `{"spec":{"template":{…,"$patch":"replace"}}}`, so
//! `kubectl rollout history sts/x --revision=N` can apply it and print the template.
//!
//! Data flow: the owner's reconcile reads its revisions from a cache ([`owned`]), calls
//! [`ensure`] to get the update revision (creating or renumbering one through the API), and
//! [`truncate`] once it knows which revisions its pods use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::{ApiError, ApiResult};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::{Metadata, Resource};
use serde_json::{json, Value};

use crate::deployment::template;
use crate::runtime::{owner, Store};

/// The pod label naming the revision a pod was made from (upstream
/// `apps.ControllerRevisionHashLabelKey`); revisions carry it too, with their hash.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label holding a revision's hash (upstream `history.ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// Revisions kept beyond the live ones when `revisionHistoryLimit` is unset (upstream's default).
pub const DEFAULT_HISTORY_LIMIT: usize = 10;
/// Name collisions tolerated in one [`ensure`]: each bumps `collisionCount`, and FNV over
/// different inputs colliding twice in a row already means something else is wrong.
pub const MAX_COLLISIONS: i32 = 5;

/// What the update revision needs, given an owner's revisions (oldest first) and template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The newest revision already holds the template.
    Latest,
    /// The revision at this index holds it but is older: renumber it to the next revision.
    Bump(usize),
    /// No revision holds it: create one.
    Create,
}

/// The patch form stored in a revision's `data`.
pub fn patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(map) = t.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    } else {
        t = json!({"$patch": "replace"});
    }
    json!({ "spec": { "template": t } })
}

/// The template a revision holds (None when its data is not in the patch form).
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// Order revisions as upstream: by number, then creation time, then name.
pub fn sort(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| {
        let key = |r: &ControllerRevision| (r.revision, r.metadata.creation_timestamp.as_ref().map(|t| t.0));
        key(a).cmp(&key(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The revisions of namespace `ns` controlled by the owner with `uid`, oldest first.
pub fn owned(revisions: &Store<ControllerRevision>, ns: &str, uid: &str) -> Vec<Arc<ControllerRevision>> {
    let mut mine: Vec<_> = revisions
        .list_in(ns)
        .into_iter()
        .filter(|r| owner::controller_ref(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    sort(&mut mine);
    mine
}

/// The number the next new (or renumbered) revision gets.
pub fn next_revision(sorted: &[Arc<ControllerRevision>]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// Whether `rev` holds `template`.
pub fn holds(rev: &ControllerRevision, t: &PodTemplateSpec) -> bool {
    template_of(rev).is_some_and(|mine| template::same(&mine, t))
}

/// What the update revision for `t` needs, given `sorted` (oldest first).
pub fn plan(sorted: &[Arc<ControllerRevision>], t: &PodTemplateSpec) -> Plan {
    match sorted.iter().rposition(|r| holds(r, t)) {
        Some(i) if i + 1 == sorted.len() => Plan::Latest,
        Some(i) => Plan::Bump(i),
        None => Plan::Create,
    }
}

/// The revision hash of `t` under `collision_count` (the name suffix and the hash labels).
pub fn hash(t: &PodTemplateSpec, collision_count: i32) -> String {
    template::hash(t, (collision_count > 0).then_some(collision_count))
}

/// A new revision of `owner` holding `t`: template labels plus the hash labels, the owner's
/// annotations, a blocking controller reference.
pub fn build<K>(owner: &K, t: &PodTemplateSpec, revision: i64, collision_count: i32) -> ControllerRevision
where
    K: Resource + Metadata<Ty = ObjectMeta>,
{
    let meta = owner.metadata();
    let hash = hash(t, collision_count);
    let mut labels: BTreeMap<String, String> = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", meta.name.as_deref().unwrap_or_default())),
            namespace: meta.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations.clone(),
            owner_references: Some(vec![owner::controller_reference(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(patch(t))),
        revision,
    }
}

/// The update revision of `owner` for `t` and the collisionCount it was found under:
/// reuses, renumbers or creates a revision as [`plan`] says. A create whose name is taken
/// by this owner's revision of the same template (a cache that has not shown it yet)
/// reuses it; taken by anything else, it bumps the count and retries.
pub async fn ensure<K>(
    api: &Api<ControllerRevision>,
    owner: &K,
    sorted: &[Arc<ControllerRevision>],
    t: &PodTemplateSpec,
    collision_count: i32,
) -> ApiResult<(Arc<ControllerRevision>, i32)>
where
    K: Resource + Metadata<Ty = ObjectMeta>,
{
    let next = next_revision(sorted);
    match plan(sorted, t) {
        Plan::Latest => return Ok((sorted[sorted.len() - 1].clone(), collision_count)),
        Plan::Bump(i) => {
            let mut rev = (*sorted[i]).clone();
            rev.revision = next;
            let name = rev.metadata.name.clone().unwrap_or_default();
            let updated = api.update(&name, &rev).await?;
            tracing::info!(revision = %name, number = next, "revision renumbered (rollback)");
            return Ok((Arc::new(updated), collision_count));
        }
        Plan::Create => {}
    }
    let uid = owner.metadata().uid.clone().unwrap_or_default();
    let mut count = collision_count;
    for _ in 0..=MAX_COLLISIONS {
        let rev = build(owner, t, next, count);
        let name = rev.metadata.name.clone().unwrap_or_default();
        match api.create(&rev).await {
            Ok(created) => {
                tracing::info!(revision = %name, number = next, "revision created");
                return Ok((Arc::new(created), count));
            }
            Err(ApiError::AlreadyExists(_)) => {
                let existing = api.get(&name).await?;
                let ours = owner::controller_ref(&existing.metadata).is_some_and(|o| o.uid == uid);
                if ours && holds(&existing, t) {
                    return Ok((Arc::new(existing), count));
                }
                tracing::warn!(revision = %name, collision_count = count + 1, "revision name collision");
                count += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Internal(format!("revision names collided {MAX_COLLISIONS} times in a row")))
}

/// The revisions to delete: the oldest of those not in `live`, beyond `limit`.
pub fn prunable<'a>(
    sorted: &'a [Arc<ControllerRevision>],
    live: &BTreeSet<String>,
    limit: usize,
) -> Vec<&'a Arc<ControllerRevision>> {
    let history: Vec<_> =
        sorted.iter().filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default())).collect();
    let excess = history.len().saturating_sub(limit);
    history.into_iter().take(excess).collect()
}

/// Delete [`prunable`] revisions (each a delete preconditioned on its uid).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    sorted: &[Arc<ControllerRevision>],
    live: &BTreeSet<String>,
    limit: usize,
) -> ApiResult<()> {
    for rev in prunable(sorted, live, limit) {
        let name = rev.metadata.name.clone().unwrap_or_default();
        let opts = DeleteOptions { precondition_uid: rev.metadata.uid.clone(), ..Default::default() };
        match api.delete(&name, &opts).await {
            // Gone already, or replaced by another object of that name: nothing of ours to prune.
            Ok(_) | Err(ApiError::NotFound(_) | ApiError::PreconditionFailed(..)) => {
                tracing::info!(revision = %name, "old revision deleted")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `revisionHistoryLimit` as a count (negative values, which validation rejects, count as 0).
pub fn history_limit(limit: Option<i32>) -> usize {
    limit.map_or(DEFAULT_HISTORY_LIMIT, |l| usize::try_from(l).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use serde_json::json;

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .expect("template")
    }

    fn owner() -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("sts-uid".into()),
                annotations: Some([("note".to_string(), "x".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn revisions(images: &[&str]) -> Vec<Arc<ControllerRevision>> {
        images.iter().enumerate().map(|(i, img)| Arc::new(build(&owner(), &template(img), i as i64 + 1, 0))).collect()
    }

    #[test]
    fn a_revision_holds_its_template_in_the_patch_form_and_is_named_by_its_hash() {
        let rev = build(&owner(), &template("nginx:1"), 3, 0);
        let data = &rev.data.as_ref().expect("data").0;
        assert_eq!(data.pointer("/spec/template/$patch"), Some(&json!("replace")));
        assert_eq!(data.pointer("/spec/template/spec/containers/0/image"), Some(&json!("nginx:1")));
        let hash = hash(&template("nginx:1"), 0);
        assert_eq!(rev.metadata.name, Some(format!("web-{hash}")));
        let labels = rev.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get(HASH_LABEL), Some(&hash));
        assert_eq!(labels.get(REVISION_HASH_LABEL), Some(&hash));
        assert_eq!(rev.metadata.annotations, owner().metadata.annotations);
        let r = &rev.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((r.kind.as_str(), r.uid.as_str(), r.controller), ("StatefulSet", "sts-uid", Some(true)));
        assert_eq!(rev.revision, 3);
        assert!(holds(&rev, &template("nginx:1")));
        assert!(!holds(&rev, &template("nginx:2")));
        assert_ne!(rev.metadata.name, build(&owner(), &template("nginx:1"), 3, 1).metadata.name);
    }

    #[test]
    fn the_update_revision_is_reused_renumbered_or_created() {
        let revs = revisions(&["a", "b", "c"]);
        assert_eq!(plan(&revs, &template("c")), Plan::Latest);
        assert_eq!(plan(&revs, &template("a")), Plan::Bump(0), "a rollback renumbers the old revision");
        assert_eq!(plan(&revs, &template("d")), Plan::Create);
        assert_eq!(plan(&[], &template("a")), Plan::Create);
        assert_eq!(next_revision(&revs), 4);
        assert_eq!(next_revision(&[]), 1);
    }

    #[test]
    fn sorting_is_by_number_then_age_then_name() {
        let mut revs = revisions(&["a", "b", "c"]);
        let mut bumped = (*revs[0]).clone();
        bumped.revision = 7;
        revs[0] = Arc::new(bumped);
        sort(&mut revs);
        let numbers: Vec<i64> = revs.iter().map(|r| r.revision).collect();
        assert_eq!(numbers, [2, 3, 7]);
        assert!(holds(&revs[2], &template("a")));
    }

    #[test]
    fn pruning_keeps_live_revisions_and_the_newest_up_to_the_limit() {
        let revs = revisions(&["a", "b", "c", "d", "e"]);
        let name = |i: usize| revs[i].metadata.name.clone().expect("name");
        // e is the update revision, a is still used by a pod.
        let live: BTreeSet<String> = [name(4), name(0)].into();
        let doomed: Vec<String> = prunable(&revs, &live, 1).iter().map(|r| r.metadata.name.clone().unwrap()).collect();
        assert_eq!(doomed, [name(1), name(2)], "b and c go; d is kept by the limit");
        assert!(prunable(&revs, &live, 3).is_empty());
        assert_eq!(prunable(&revs, &BTreeSet::new(), 0).len(), 5);
        assert_eq!(history_limit(None), DEFAULT_HISTORY_LIMIT);
        assert_eq!(history_limit(Some(-1)), 0);
    }

    #[test]
    fn a_template_survives_the_round_trip_through_data() {
        let t = template("nginx:1");
        let rev = build(&owner(), &t, 1, 0);
        let back = template_of(&rev).expect("decodes");
        assert!(template::same(&back, &t));
        let broken = ControllerRevision { data: Some(RawExtension(json!({"x": 1}))), ..rev };
        assert!(template_of(&broken).is_none());
    }
}
