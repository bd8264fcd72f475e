//! Deletion: graceful pods, finalizers, propagation policy, deletecollection.
//!
//! Rules (upstream's, see kubectl-api.md §7):
//! - Preconditions (`uid`, `resourceVersion`) that do not hold → 409 Conflict.
//! - `Orphan`/`Foreground` add the `orphan`/`foregroundDeletion` finalizer; the garbage
//!   collector (a controller) finishes those deletions.
//! - An object with finalizers gets `deletionTimestamp` and stays; the update that removes
//!   the last finalizer deletes it (see `update.rs`).
//! - A pod bound to a node is deleted gracefully: `deletionTimestamp` = now + grace period,
//!   and the node's agent removes it once its containers are stopped (a delete with grace
//!   period 0). An unbound pod, or grace period 0, goes at once.
//! - A namespace with `spec.finalizers` turns `Terminating` and stays until the namespace
//!   controller has emptied it and cleared them (`namespaces/<name>/finalize`).

use serde_json::{json, Value};

use super::{held_claims, meta, ListOptions, ObjectList, Registry};
use crate::error::{ApiError, ApiResult, Subject};
use crate::resources::Resource;
use crate::storage::{Lost, Storage};

/// Namespaces upstream refuses to delete (the cluster's own objects live there).
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Grace period of a pod that does not set `terminationGracePeriodSeconds`.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;
/// Retries of one delete's CAS when the object changes under it.
const MAX_DELETE_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// `metav1.DeleteOptions`, from the body or the query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
    /// The deprecated `orphanDependents` as sent (only an explicit `false` changes the
    /// HTTP answer of a delete that leaves the object in place: 202 instead of 200).
    pub orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// Parse a `DeleteOptions` JSON body (fields absent from it stay as they are).
    pub fn merge_body(&mut self, body: &Value) -> ApiResult<()> {
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation = Some(Propagation::parse(p)?);
        }
        if let Some(orphan) = body.get("orphanDependents").and_then(Value::as_bool) {
            self.orphan_dependents = Some(orphan);
            if orphan {
                self.propagation = Some(Propagation::Orphan);
            }
        }
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            self.grace_period_seconds = Some(g);
        }
        if let Some(p) = body.get("preconditions") {
            self.precondition_uid = p.get("uid").and_then(Value::as_str).map(String::from);
            self.precondition_resource_version = p.get("resourceVersion").and_then(Value::as_str).map(String::from);
        }
        if body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All")) {
            self.dry_run = true;
        }
        Ok(())
    }
}

impl Propagation {
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(ApiError::BadRequest(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \
                 \"Orphan\""
            ))),
        }
    }
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The object's last state (or its state now, when it lingers).
    pub object: Value,
    /// False when the object still exists (finalizers or graceful deletion).
    pub gone: bool,
}

impl Registry {
    pub async fn delete(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        if res.plural == "namespaces" && IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let key = Storage::key(res, ns, name);
        for _ in 0..MAX_DELETE_ATTEMPTS {
            let current = self.storage.get(&key).await?.ok_or_else(|| ApiError::not_found(res, name))?;
            check_preconditions(res, name, &current.object, opts)?;
            let mut obj = current.object.clone();
            let lingering = mark_for_deletion(res, &mut obj, opts);
            if opts.dry_run {
                return Ok(Deleted { object: obj, gone: !lingering });
            }
            if lingering {
                if obj == current.object {
                    return Ok(Deleted { object: obj, gone: false });
                }
                match self.storage.update(&key, &obj, current.mod_revision, &[], &[]).await? {
                    Ok(stored) => return Ok(Deleted { object: stored.object, gone: false }),
                    Err(Lost::Changed(None)) => return Err(ApiError::not_found(res, name)),
                    Err(_) => continue,
                }
            }
            match self.storage.delete(&key, current.mod_revision, &held_claims(res, &current.object)).await? {
                Ok(revision) => {
                    crate::storage::set_resource_version(&mut obj, revision);
                    return Ok(Deleted { object: obj, gone: true });
                }
                Err(Lost::Changed(None)) => return Err(ApiError::not_found(res, name)),
                Err(_) => continue,
            }
        }
        Err(ApiError::Conflict(Subject::new(res, name)))
    }

    /// Delete every object the list options select; returns what was deleted (or marked).
    pub async fn delete_collection(
        &self,
        res: &Resource,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<ObjectList> {
        let mut listed = self.list(res, ns, list).await?;
        let mut deleted = Vec::new();
        for obj in &listed.items {
            let name = meta::name(obj).unwrap_or_default();
            let item_ns = meta::namespace(obj).or(ns);
            match self.delete(res, item_ns, name, opts).await {
                Ok(d) => deleted.push(d.object),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        listed.items = deleted;
        listed.continue_token = None;
        Ok(listed)
    }
}

fn check_preconditions(res: &Resource, name: &str, obj: &Value, opts: &DeleteOptions) -> ApiResult<()> {
    let conflict = |what: &str, want: &str, have: &str| {
        ApiError::PreconditionFailed(
            Subject::new(res, name),
            format!("Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"),
        )
    };
    if let Some(uid) = &opts.precondition_uid {
        let have = meta::meta_str(obj, "uid").unwrap_or_default();
        if uid != have {
            return Err(conflict("UID", uid, have));
        }
    }
    if let Some(rv) = &opts.precondition_resource_version {
        let have = meta::resource_version(obj).unwrap_or_default();
        if rv != have {
            return Err(conflict("ResourceVersion", rv, have));
        }
    }
    Ok(())
}

/// Apply the deletion rules to `obj`; true when it must stay in the store (marked).
fn mark_for_deletion(res: &Resource, obj: &mut Value, opts: &DeleteOptions) -> bool {
    let extra = match opts.propagation {
        Some(Propagation::Orphan) => Some("orphan"),
        Some(Propagation::Foreground) => Some("foregroundDeletion"),
        _ => None,
    };
    let mut finalizers = meta::finalizers(obj);
    if let Some(f) = extra {
        // As upstream: the policy's finalizer is only worth adding to an object that may
        // have dependents, i.e. always here (the collector ignores it otherwise).
        if !finalizers.iter().any(|x| x == f) && !meta::is_terminating(obj) {
            finalizers.push(f.to_string());
        }
    }
    let grace = pod_grace(res, obj, opts);
    if !finalizers.is_empty() {
        meta::meta_mut(obj).insert("finalizers".into(), json!(finalizers));
    }
    if !meta::held(obj) && grace.is_none() {
        return false;
    }
    if res.plural == "namespaces" {
        obj["status"]["phase"] = json!("Terminating");
    }
    let m = meta::meta_mut(obj);
    if m.get("deletionTimestamp").is_none() {
        let seconds = grace.unwrap_or(0);
        m.insert("deletionTimestamp".into(), json!(meta::rfc3339_in(seconds)));
        m.insert("deletionGracePeriodSeconds".into(), json!(seconds));
    } else if let Some(g) = grace {
        // A second delete may only shorten the grace period.
        let before = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(i64::MAX);
        if g < before {
            m.insert("deletionGracePeriodSeconds".into(), json!(g));
            m.insert("deletionTimestamp".into(), json!(meta::rfc3339_in(g)));
        }
    }
    true
}

/// The grace period of a graceful pod deletion, or None when the pod goes at once.
fn pod_grace(res: &Resource, obj: &Value, opts: &DeleteOptions) -> Option<i64> {
    if res.plural != "pods" {
        return None;
    }
    let bound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let finished = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    let grace = opts
        .grace_period_seconds
        .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(DEFAULT_POD_GRACE_SECONDS);
    (bound && !finished && grace > 0).then_some(grace)
}
