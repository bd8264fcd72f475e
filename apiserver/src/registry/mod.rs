//! The registry: Kubernetes object semantics over [`Storage`].
//!
//! Every path that changes an object (HTTP handlers and the in-process client alike) goes
//! through here, so defaulting, validation, server-owned metadata, optimistic concurrency
//! and deletion rules are applied once, the same way for everyone.
//!
//! Invariants:
//! - A write either applies on top of exactly the version it was computed from (a CAS on
//!   the mod revision) or is retried from a fresh read; a client-supplied resourceVersion
//!   that is not current is a 409 Conflict, never a silent overwrite.
//! - `uid`, `creationTimestamp`, `generation` and `deletionTimestamp` are owned by the
//!   server (see [`meta`]); `generation` grows exactly when the spec changes.
//! - Writes to the main resource never change `status`; writes to `/status` change only
//!   `status` (for resources that have the subresource).
//! - An object with finalizers is never removed from the store: deletion sets
//!   `deletionTimestamp`, and the update that empties `finalizers` removes it.

pub mod allocator;
mod delete;
pub mod meta;
mod subresources;
mod update;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause, Subject};
use crate::resources::{self, Resource};
use crate::selector::{FieldSelector, LabelSelector};
use crate::storage::{Lost, Storage, Stored};

pub use delete::{DeleteOptions, Deleted, Propagation};
pub use subresources::{scale_of, ScaleChange};
pub use update::Part;

/// Attempts of a read-modify-write before giving up with a Conflict: each lost race means
/// another writer made progress, so a few tries are plenty.
const MAX_UPDATE_ATTEMPTS: usize = 8;
/// Attempts at a fresh random name for `generateName` before reporting the collision.
const MAX_GENERATE_ATTEMPTS: usize = 8;
/// Objects read from the store per step while filling one filtered list page.
const LIST_CHUNK: i64 = 500;

/// Options common to create, update, patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every check, write nothing.
    pub dry_run: bool,
    pub field_manager: Option<String>,
    /// Why this caller may not create: a PUT or apply PATCH that would create the object is
    /// then refused with this 403 message (upstream authorizes that create separately).
    pub create_denied: Option<String>,
    /// The writer is this node: a write to a Node keeps to NodeRestriction's label rule.
    pub node: Option<String>,
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label: Option<LabelSelector>,
    pub field: Option<FieldSelector>,
    /// 0: no limit.
    pub limit: i64,
    pub continue_token: Option<String>,
    /// `resourceVersion`: "" or "0" any freshness (served linearizably here anyway); `N`
    /// at least as fresh as N, or exactly N with `resourceVersionMatch=Exact`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`: `NotOlderThan` or `Exact`.
    pub resource_version_match: Option<String>,
}

/// A list result.
#[derive(Debug, Clone)]
pub struct ObjectList {
    pub items: Vec<Value>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
}

impl ObjectList {
    /// The list's `metadata` (resourceVersion, continue).
    pub fn list_meta(&self) -> Value {
        let mut meta = json!({"resourceVersion": self.resource_version.to_string()});
        if let Some(c) = &self.continue_token {
            meta["continue"] = json!(c);
        }
        meta
    }

    /// The list as upstream serialises it (`PodList`).
    pub fn to_json(&self, res: &Resource) -> Value {
        json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": self.list_meta(), "items": self.items})
    }
}

#[derive(Clone)]
pub struct Registry {
    storage: Storage,
    ranges: allocator::ServiceRanges,
    /// New pods go through the ServiceAccount admission step
    /// ([`crate::serviceaccount::admission`]): this server issues tokens.
    service_account_tokens: bool,
}

impl Registry {
    /// A registry with upstream's default service ranges (10.96.0.0/16, 30000–32767).
    pub fn new(storage: Storage) -> Self {
        Self::with_ranges(storage, allocator::ServiceRanges::default())
    }

    pub fn with_ranges(storage: Storage, ranges: allocator::ServiceRanges) -> Self {
        Self { storage, ranges, service_account_tokens: false }
    }

    /// Mount ServiceAccount tokens in new pods (see [`crate::serviceaccount::admission`]).
    pub fn with_service_account_tokens(mut self, on: bool) -> Self {
        self.service_account_tokens = on;
        self
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Where Services get their addresses.
    pub fn ranges(&self) -> &allocator::ServiceRanges {
        &self.ranges
    }

    pub async fn get(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        Ok(self.read(res, ns, name).await?.object)
    }

    async fn read(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Stored> {
        self.storage.get(&Storage::key(res, ns, name)).await?.ok_or_else(|| ApiError::not_found(res, name))
    }

    /// A (filtered, paged) list. Pages after the first are read at the first page's
    /// revision, so a paged list is one consistent snapshot; a token whose revision was
    /// compacted meanwhile is 410 Expired.
    pub async fn list(&self, res: &Resource, ns: Option<&str>, opts: &ListOptions) -> ApiResult<ObjectList> {
        if let Some(f) = &opts.field {
            f.check_supported(res.plural).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        }
        let prefix = Storage::prefix(res, ns);
        let (mut after, mut revision) = match &opts.continue_token {
            Some(t) => {
                let (key, rev) = decode_continue(t, &prefix)?;
                (Some(key), rev)
            }
            None => (None, self.list_revision(opts).await?),
        };
        let mut items = Vec::new();
        loop {
            let page = self.storage.list(&prefix, after.as_deref(), LIST_CHUNK, revision).await?;
            // The first read fixes the snapshot; every later chunk and page reads at it.
            if revision == 0 {
                revision = page.revision;
            }
            let last_key = page.items.last().map(|s| s.key.clone());
            for s in page.items {
                if matches(res, opts, &s.object) {
                    items.push(s);
                }
                if opts.limit > 0 && items.len() as i64 >= opts.limit {
                    break;
                }
            }
            let full = opts.limit > 0 && items.len() as i64 >= opts.limit;
            if full {
                // More may follow the last returned item (checked lazily, as upstream: a
                // continue token can lead to an empty last page).
                let last = items.last().map(|s| s.key.clone()).expect("a full page is not empty");
                let more = page.more || last_key.as_ref() != Some(&last);
                let continue_token = more.then(|| encode_continue(&last, revision));
                return Ok(ObjectList { items: into_objects(items), resource_version: revision, continue_token });
            }
            if !page.more {
                return Ok(ObjectList { items: into_objects(items), resource_version: revision, continue_token: None });
            }
            after = last_key;
        }
    }

    /// The revision a first list page must be read at (0: now), from `resourceVersion` and
    /// `resourceVersionMatch`. A version newer than the store's is refused as upstream does.
    async fn list_revision(&self, opts: &ListOptions) -> ApiResult<i64> {
        let rv = opts.resource_version.as_deref().filter(|v| !v.is_empty());
        let exact = match opts.resource_version_match.as_deref().filter(|m| !m.is_empty()) {
            None | Some("NotOlderThan") => false,
            Some("Exact") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
            )))
            }
        };
        let Some(rv) = rv else {
            if opts.resource_version_match.as_deref().is_some_and(|m| !m.is_empty()) {
                return Err(ApiError::BadRequest(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                        .into(),
                ));
            }
            return Ok(0);
        };
        let n: i64 = rv.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::BadRequest(format!("resourceVersion: Invalid value: \"{rv}\": must be a non-negative integer"))
        })?;
        let mut current = self.storage.current_revision();
        if n > current {
            // This replica may just lag: catch up with the leader before refusing.
            self.storage.node().read_barrier().await?;
            current = self.storage.current_revision();
        }
        if n > current {
            return Err(ApiError::Timeout(format!("Too large resource version: {n}, current: {current}")));
        }
        Ok(if exact && n > 0 { n } else { 0 })
    }

    /// Create `obj` (namespace taken from the URL when the body has none).
    pub async fn create(
        &self,
        res: &Resource,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        self.prepare_create(res, ns, &mut obj)?;
        let guard = match (res.namespaced, ns) {
            (true, Some(ns)) => Some(self.namespace_guard(ns).await?),
            _ => None,
        };
        if res.plural == "pods" && self.service_account_tokens {
            self.admit_service_account(ns, &mut obj).await?;
        }
        let explicit_name = meta::name(&obj).map(String::from);
        let generate = meta::meta_str(&obj, "generateName").map(String::from);
        // Each attempt makes fresh random choices (name suffix, service IP and ports); a
        // collision on one of them is retried, a collision on what the client chose is not.
        for _ in 0..MAX_GENERATE_ATTEMPTS {
            let mut attempt = obj.clone();
            if explicit_name.is_none() {
                let prefix = generate.as_deref().expect("prepare_create requires name or generateName");
                meta::meta_mut(&mut attempt).insert("name".into(), json!(meta::generated_name(prefix)));
            }
            let name = meta::name(&attempt).unwrap_or_default().to_string();
            let claims = self.claims(res, &mut attempt)?;
            check_valid(res, &name, crate::validation::validate_create(res.plural, &attempt))?;
            if opts.dry_run {
                return Ok(attempt);
            }
            let key = Storage::key(res, ns, &name);
            match self.storage.create(&key, &attempt, guard.as_deref(), &claims.keys).await? {
                Ok(stored) => return Ok(stored.object),
                Err(Lost::GuardMissing) => {
                    return Err(ApiError::NotFound(Subject {
                        group: String::new(),
                        resource: "namespaces".into(),
                        name: ns.unwrap_or_default().into(),
                    }))
                }
                Err(Lost::Claimed(k)) if claims.chosen.contains(&k) => return Err(claim_taken(res, &name, &k)),
                Err(Lost::Claimed(_)) => continue,
                Err(_) if explicit_name.is_none() => continue,
                Err(_) => return Err(ApiError::AlreadyExists(Subject::new(res, &name))),
            }
        }
        Err(ApiError::Unavailable(format!(
            "could not create {} after {MAX_GENERATE_ATTEMPTS} attempts: every random choice collided",
            res.plural
        )))
    }

    /// The ServiceAccount admission step on new pod `pod` (403 when it names a missing
    /// ServiceAccount).
    async fn admit_service_account(&self, ns: Option<&str>, pod: &mut Value) -> ApiResult<()> {
        use crate::serviceaccount::admission;
        let accounts = crate::resources::lookup("", "v1", "serviceaccounts").expect("serviceaccounts are served");
        let account = match self.get(accounts, ns, admission::account_name(pod)).await {
            Ok(account) => Some(account),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        admission::admit(pod, account.as_ref()).map_err(|why| {
            let name = meta::name(pod).or_else(|| meta::meta_str(pod, "generateName")).unwrap_or_default();
            ApiError::Forbidden(format!("pods \"{name}\" is forbidden: {why}"))
        })
    }

    /// The allocation keys `obj` must hold (Services: cluster IP, node ports), assigning
    /// what it lacks.
    fn claims(&self, res: &Resource, obj: &mut Value) -> ApiResult<allocator::Claims> {
        if res.plural == "services" {
            self.ranges.assign(res, obj)
        } else {
            Ok(allocator::Claims::default())
        }
    }

    /// Identity, defaults and the URL's namespace for a new object.
    fn prepare_create(&self, res: &Resource, ns: Option<&str>, obj: &mut Value) -> ApiResult<()> {
        fill_type_meta(res, obj)?;
        match (res.namespaced, ns, meta::namespace(obj).map(String::from)) {
            (true, Some(url), Some(body)) if body != url => {
                tracing::debug!(body, url, "namespace of the body differs from the URL's");
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            (true, Some(url), _) => {
                meta::meta_mut(obj).insert("namespace".into(), json!(url));
            }
            (true, None, _) => {
                return Err(ApiError::BadRequest("a namespace is required to create this object".into()))
            }
            (false, _, _) => {
                meta::meta_mut(obj).remove("namespace");
            }
        }
        if meta::name(obj).is_none() && meta::meta_str(obj, "generateName").is_none() {
            return Err(ApiError::invalid(
                res,
                "",
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required".into(),
            ));
        }
        meta::stamp_new(obj);
        reset_status_on_create(res, obj);
        crate::defaults::apply_defaults(res.plural, obj);
        crate::defaults::apply_admission_defaults(res.plural, obj);
        if res.plural == "jobs" {
            let uid = meta::meta_str(obj, "uid").unwrap_or_default().to_string();
            crate::defaults::generate_job_selector(obj, &uid);
        }
        Ok(())
    }

    /// PUT `namespaces/<name>/finalize`: replace the namespace's `spec.finalizers` (what the
    /// namespace controller does once the namespace is empty); the last one gone deletes a
    /// terminating namespace.
    pub async fn finalize_namespace(&self, name: &str, body: &Value, opts: &WriteOptions) -> ApiResult<Value> {
        let res = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
        let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
        let pin = meta::resource_version(body).map(String::from);
        let edit = move |current: &Value| -> ApiResult<Value> {
            let mut ns = current.clone();
            ns["spec"]["finalizers"] = finalizers.clone();
            match &pin {
                Some(rv) => meta::meta_mut(&mut ns).insert("resourceVersion".into(), json!(rv)),
                None => meta::meta_mut(&mut ns).remove("resourceVersion"),
            };
            Ok(ns)
        };
        let change = update::Change::Edit(&edit);
        self.write(res, None, name, change, Part::Both, opts).await.map(|(v, _)| v)
    }

    /// The namespace key a namespaced create requires; a terminating namespace refuses.
    async fn namespace_guard(&self, ns: &str) -> ApiResult<Vec<u8>> {
        let res = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
        let key = Storage::key(res, None, ns);
        if let Some(s) = self.storage.get(&key).await? {
            if meta::is_terminating(&s.object) {
                return Err(ApiError::Forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                )));
            }
        }
        Ok(key)
    }
}

/// Check a list's selectors against one object.
fn matches(res: &Resource, opts: &ListOptions, obj: &Value) -> bool {
    opts.label.as_ref().is_none_or(|l| l.matches_object(obj))
        && opts.field.as_ref().is_none_or(|f| f.matches(res.plural, obj))
}

/// A 422 for an IP or port the client chose that another Service holds.
fn claim_taken(res: &Resource, name: &str, key: &[u8]) -> ApiError {
    let (field, message) = allocator::taken_message(key);
    ApiError::invalid(res, name, "FieldValueInvalid", &field, message)
}

/// The allocation keys a stored object holds (released with it).
fn held_claims(res: &Resource, obj: &Value) -> Vec<Vec<u8>> {
    if res.plural == "services" {
        allocator::held(obj)
    } else {
        Vec::new()
    }
}

fn into_objects(items: Vec<Stored>) -> Vec<Value> {
    items.into_iter().map(|s| s.object).collect()
}

/// `apiVersion`/`kind` from the URL when the body has none; a body naming another kind is refused.
pub(crate) fn fill_type_meta(res: &Resource, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::BadRequest("the request body must be a JSON object".into()));
    };
    let api_version = res.api_version();
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != res.kind => {
            return Err(ApiError::BadRequest(format!(
                "the body of the request was in an unknown format: kind {k} does not match {} (expected by the URL)",
                res.kind
            )))
        }
        _ => {}
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != api_version => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
        _ => {}
    }
    map.insert("kind".into(), json!(res.kind));
    map.insert("apiVersion".into(), json!(api_version));
    Ok(())
}

/// Upstream's create strategies start status from scratch; a pod starts Pending.
fn reset_status_on_create(res: &Resource, obj: &mut Value) {
    if res.subresource("status").is_none() {
        return;
    }
    let status = match res.plural {
        "pods" => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "namespaces" => json!({"phase": "Active"}),
        "nodes" => obj.get("status").cloned().unwrap_or_else(|| json!({})),
        "persistentvolumeclaims" | "persistentvolumes" => json!({"phase": "Pending"}),
        _ => json!({}),
    };
    obj["status"] = status;
}

/// Turn field errors into one 422.
pub(crate) fn check_valid(res: &Resource, name: &str, errors: Vec<crate::validation::FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: res.kind.to_string(),
        name: name.to_string(),
        group: res.group.to_string(),
        causes: errors
            .into_iter()
            .map(|e| Cause { reason: e.reason.to_string(), message: e.body().to_string(), field: e.field })
            .collect(),
    })
}

/// Continue tokens: base64 of `{"rv":<revision>,"start":"<last key>"}`, like upstream's.
fn encode_continue(last_key: &[u8], revision: i64) -> String {
    use base64::Engine;
    let body = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": String::from_utf8_lossy(last_key)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
}

fn decode_continue(token: &str, prefix: &[u8]) -> ApiResult<(Vec<u8>, i64)> {
    use base64::Engine;
    let bad = || ApiError::BadRequest(format!("invalid continue token: {token}"));
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v.get("rv").and_then(Value::as_i64).filter(|r| *r > 0).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?.as_bytes().to_vec();
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((start, rev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_prefix() {
        let t = encode_continue(b"/registry/pods/default/web-1", 42);
        assert_eq!(decode_continue(&t, b"/registry/pods/").unwrap(), (b"/registry/pods/default/web-1".to_vec(), 42));
        assert!(decode_continue(&t, b"/registry/secrets/").is_err());
        assert!(decode_continue("not-a-token", b"/registry/").is_err());
    }

    #[test]
    fn type_meta_comes_from_the_url_and_must_agree() {
        let res = resources::lookup("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "a"}});
        fill_type_meta(res, &mut obj).unwrap();
        assert_eq!(obj["kind"], "Deployment");
        assert_eq!(obj["apiVersion"], "apps/v1");
        let mut wrong = json!({"kind": "Pod", "metadata": {"name": "a"}});
        assert!(matches!(fill_type_meta(res, &mut wrong), Err(ApiError::BadRequest(_))));
    }
}
