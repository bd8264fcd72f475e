//! Updates (PUT) and patches: one read-modify-CAS loop for both.
//!
//! Data flow: read the current object → compute the new one from it (the PUT body, or the
//! patch applied to it) → keep server-owned metadata and the part this write may not touch
//! (status for the main resource, everything but status for `/status`) → default →
//! validate against the old object → CAS on the mod revision that was read. A lost CAS
//! recomputes from a fresh read unless the client pinned a resourceVersion.

use serde_json::{json, Value};

use super::{check_valid, claim_taken, fill_type_meta, held_claims, meta, Registry, WriteOptions, MAX_UPDATE_ATTEMPTS};
use crate::error::{ApiError, ApiResult, Subject};
use crate::patch::{self, PatchType};
use crate::resources::Resource;
use crate::storage::{Lost, Storage, Stored};

/// Resources whose PUT creates a missing object (upstream's `AllowCreateOnUpdate`).
const CREATE_ON_UPDATE: &[&str] = &["leases", "endpoints", "events"];

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself (status is kept as stored).
    Main,
    /// The `/status` subresource (only status changes).
    Status,
    /// Server-side actions that change spec and status together (binding).
    Both,
}

/// What the caller computes from the current object.
pub(crate) enum Change<'a> {
    Replace(Value),
    Patch(PatchType, &'a [u8]),
    /// A server-side edit (scale, binding...): a function of the current object.
    Edit(&'a (dyn Fn(&Value) -> ApiResult<Value> + Sync)),
}

impl Registry {
    /// PUT: replace the object (or its status). Leases, Endpoints and Events are created
    /// when missing, as upstream allows (the bool is true then).
    pub async fn update(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, bool)> {
        // A body naming another object is wrong whether or not this one exists.
        check_identity(res, ns, name, &obj)?;
        match self.write(res, ns, name, Change::Replace(obj.clone()), part, opts).await {
            Err(ApiError::NotFound(_)) if part == Part::Main && CREATE_ON_UPDATE.contains(&res.plural) => {
                if let Some(why) = &opts.create_denied {
                    return Err(ApiError::Forbidden(why.clone()));
                }
                let mut obj = obj;
                meta::meta_mut(&mut obj).insert("name".into(), json!(name));
                self.create(res, ns, obj, opts).await.map(|v| (v, true))
            }
            other => other,
        }
    }

    /// PATCH. An apply patch on a missing object creates it (the bool is true then).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, bool)> {
        match self.write(res, ns, name, Change::Patch(patch_type, body), part, opts).await {
            Err(ApiError::NotFound(_)) if patch_type == PatchType::Apply && part == Part::Main => {
                if let Some(why) = &opts.create_denied {
                    return Err(ApiError::Forbidden(why.clone()));
                }
                let mut obj = patch::apply(PatchType::Apply, &json!({}), body).map_err(ApiError::from)?;
                meta::meta_mut(&mut obj).insert("name".into(), json!(name));
                self.create(res, ns, obj, opts).await.map(|v| (v, true))
            }
            other => other.map(|(v, _)| (v, false)),
        }
    }

    /// The read-modify-CAS loop.
    pub(crate) async fn write(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        change: Change<'_>,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, bool)> {
        let key = Storage::key(res, ns, name);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let current = self.storage.get(&key).await?.ok_or_else(|| ApiError::not_found(res, name))?;
            let (mut new, pinned) = self.next_version(res, ns, name, &current, &change, part)?;
            if let (Some(node), "nodes") = (&opts.node, res.plural) {
                crate::authz::node::check_labels(node, Some(&current.object), &new)?;
            }
            let had = held_claims(res, &current.object);
            let claims = self.claims(res, &mut new)?;
            if opts.dry_run {
                return Ok((new, false));
            }
            // An object being deleted goes for good once its last finalizer is removed, unless
            // a grace period still runs (a terminating pod whose node is stopping it: its
            // agent's status writes must not delete it early), as upstream's
            // ShouldDeleteDuringUpdate.
            let grace_over = new
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(serde_json::Value::as_i64)
                .is_none_or(|g| g == 0);
            if meta::is_terminating(&new) && !meta::held(&new) && grace_over {
                match self.storage.delete(&key, current.mod_revision, &had).await? {
                    Ok(_) => return Ok((new, false)),
                    Err(_) if pinned => return Err(ApiError::Conflict(Subject::new(res, name))),
                    Err(_) => continue,
                }
            }
            let take: Vec<Vec<u8>> = claims.keys.iter().filter(|k| !had.contains(k)).cloned().collect();
            let release: Vec<Vec<u8>> = had.iter().filter(|k| !claims.keys.contains(k)).cloned().collect();
            match self.storage.update(&key, &new, current.mod_revision, &take, &release).await? {
                Ok(stored) => return Ok((stored.object, false)),
                Err(Lost::Changed(None)) => return Err(ApiError::not_found(res, name)),
                Err(Lost::Claimed(k)) if claims.chosen.contains(&k) => return Err(claim_taken(res, name, &k)),
                Err(Lost::Claimed(_)) => continue,
                Err(_) if pinned => return Err(ApiError::Conflict(Subject::new(res, name))),
                Err(_) => continue,
            }
        }
        Err(ApiError::Conflict(Subject::new(res, name)))
    }

    /// The object to write over `current`; the bool says the client pinned a resourceVersion.
    fn next_version(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        current: &Stored,
        change: &Change<'_>,
        part: Part,
    ) -> ApiResult<(Value, bool)> {
        let mut new = match change {
            Change::Replace(v) => v.clone(),
            Change::Patch(t, body) => patch::apply(*t, &current.object, body).map_err(ApiError::from)?,
            Change::Edit(f) => f(&current.object)?,
        };
        fill_type_meta(res, &mut new)?;
        check_identity(res, ns, name, &new)?;
        let pinned = match meta::resource_version(&new) {
            Some(rv) if rv != current.mod_revision.to_string() => {
                return Err(ApiError::Conflict(Subject::new(res, name)));
            }
            // A patch starts from the current object, so it carries the current version
            // unless the patch itself set one: only then does the client pin it.
            Some(_) => match change {
                Change::Patch(t, body) => patch::pins_resource_version(*t, body),
                _ => true,
            },
            None => false,
        };
        let old = &current.object;
        let mut new = match part {
            Part::Main => keep_status(res, old, new),
            Part::Status => only_status(old, &new),
            Part::Both => new,
        };
        // A uid in the body is a precondition: it names the object the client means.
        if let Some(uid) = meta::meta_str(&new, "uid").filter(|u| Some(*u) != meta::meta_str(old, "uid")) {
            return Err(ApiError::PreconditionFailed(
                Subject::new(res, name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::meta_str(old, "uid").unwrap_or_default()
                ),
            ));
        }
        meta::carry_over(old, &mut new);
        if res.plural == "namespaces" && part != Part::Both {
            // Only `namespaces/<name>/finalize` changes what holds a namespace.
            match old.pointer("/spec/finalizers") {
                Some(f) => new["spec"]["finalizers"] = f.clone(),
                None => {
                    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("finalizers");
                    }
                }
            }
        }
        if let Some(ns) = ns.filter(|_| res.namespaced) {
            meta::meta_mut(&mut new).insert("namespace".into(), json!(ns));
        }
        crate::defaults::apply_defaults(res.plural, &mut new);
        if part == Part::Main {
            crate::defaults::apply_admission_defaults(res.plural, &mut new);
        }
        crate::defaults::carry_over_on_update(res.plural, &mut new, old);
        if meta::is_terminating(old) {
            check_no_new_finalizers(res, name, old, &new)?;
        }
        let errors = match part {
            // Server actions (binding) change what clients may not, and are checked whole.
            Part::Both => crate::validation::validate_create(res.plural, &new),
            _ => crate::validation::validate_update(res.plural, &new, old),
        };
        check_valid(res, name, errors)?;
        Ok((new, pinned))
    }
}

/// The body must name the object of the URL (an empty name is taken from the URL).
fn check_identity(res: &Resource, ns: Option<&str>, name: &str, new: &Value) -> ApiResult<()> {
    match meta::name(new) {
        Some(n) if n != name => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => {}
    }
    match (res.namespaced, ns, meta::namespace(new)) {
        (true, Some(url), Some(body)) if url != body => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => Ok(()),
    }
}

/// A write to the main resource keeps the stored status (when status is a subresource).
fn keep_status(res: &Resource, old: &Value, mut new: Value) -> Value {
    if res.subresource("status").is_some() {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if meta::name(&new).is_none() {
        if let Some(n) = meta::name(old) {
            meta::meta_mut(&mut new).insert("name".into(), json!(n));
        }
    }
    new
}

/// A write to `/status` takes only the status from the body.
fn only_status(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    match new.get("status") {
        Some(s) => out["status"] = s.clone(),
        None => {
            if let Some(m) = out.as_object_mut() {
                m.remove("status");
            }
        }
    }
    out
}

/// Upstream forbids adding finalizers to an object that is already being deleted.
fn check_no_new_finalizers(res: &Resource, name: &str, old: &Value, new: &Value) -> ApiResult<()> {
    let before = meta::finalizers(old);
    if meta::finalizers(new).iter().any(|f| !before.contains(f)) {
        return Err(ApiError::invalid(
            res,
            name,
            "FieldValueForbidden",
            "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object is being deleted".into(),
        ));
    }
    Ok(())
}
