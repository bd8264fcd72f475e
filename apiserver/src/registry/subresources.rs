//! Subresources that are views or actions on an object: `scale`, `pods/binding`,
//! `pods/eviction`. Each is one CAS write on the object it belongs to (or a delete), so
//! the rules of `update.rs` and `delete.rs` hold for them too.

use serde_json::{json, Value};

use super::update::Change;
use super::{meta, DeleteOptions, ListOptions, Part, Registry, WriteOptions};
use crate::error::{ApiError, ApiResult, Subject};
use crate::patch::{self, PatchType};
use crate::resources::{self, Resource};
use crate::selector::LabelSelector;

impl Registry {
    /// GET `…/scale`: an `autoscaling/v1 Scale` view of the object.
    pub async fn get_scale(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        scale_of(&self.get(res, ns, name).await?)
    }

    /// PUT or PATCH `…/scale`: compute the new Scale from the current one, then write its
    /// `spec.replicas` into the object (CAS, pinned when the Scale carried a resourceVersion).
    pub async fn write_scale(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        change: ScaleChange<'_>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let edit = |current: &Value| -> ApiResult<Value> {
            let scale = scale_of(current)?;
            let new_scale = match &change {
                ScaleChange::Replace(v) => v.clone(),
                ScaleChange::Patch(t, body) => patch::apply(*t, &scale, body).map_err(ApiError::from)?,
            };
            let replicas = new_scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    res,
                    name,
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                ));
            }
            let mut obj = current.clone();
            obj["spec"]["replicas"] = json!(replicas);
            // A Scale's resourceVersion is its object's: carry the client's pin through (a
            // patch pins only if it sets one; the Scale it applies to always has one).
            let pinned = match &change {
                ScaleChange::Replace(_) => true,
                ScaleChange::Patch(t, body) => patch::pins_resource_version(*t, body),
            };
            match meta::resource_version(&new_scale).filter(|_| pinned) {
                Some(rv) => meta::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv)),
                None => meta::meta_mut(&mut obj).remove("resourceVersion"),
            };
            Ok(obj)
        };
        let (obj, _) = self.write(res, ns, name, Change::Edit(&edit), Part::Main, opts).await?;
        scale_of(&obj)
    }

    /// POST `pods/{name}/binding`: assign an unbound pod to a node.
    pub async fn bind(&self, ns: &str, name: &str, binding: &Value, opts: &WriteOptions) -> ApiResult<()> {
        let pods = resources::lookup("", "v1", "pods").expect("pods are served");
        let node = binding.pointer("/target/name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(node) = node else {
            return Err(ApiError::invalid(pods, name, "FieldValueRequired", "target.name", "Required value".into()));
        };
        let edit = |current: &Value| -> ApiResult<Value> {
            if let Some(existing) = current.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty())
            {
                return Err(ApiError::PreconditionFailed(
                    binding_subject(name),
                    format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            if meta::is_terminating(current) {
                return Err(ApiError::PreconditionFailed(
                    binding_subject(name),
                    format!("pod {name} is being deleted"),
                ));
            }
            let mut pod = current.clone();
            pod["spec"]["nodeName"] = json!(node);
            set_condition(&mut pod, "PodScheduled", "True");
            meta::meta_mut(&mut pod).remove("resourceVersion");
            Ok(pod)
        };
        self.write(pods, Some(ns), name, Change::Edit(&edit), Part::Both, opts).await.map(|_| ())
    }

    /// POST `pods/{name}/eviction`: delete the pod unless a PodDisruptionBudget forbids it
    /// (429, as upstream; drain retries).
    pub async fn evict(&self, ns: &str, name: &str, eviction: &Value) -> ApiResult<()> {
        let pods = resources::lookup("", "v1", "pods").expect("pods are served");
        let pod = self.get(pods, Some(ns), name).await?;
        let mut opts = DeleteOptions::default();
        if let Some(d) = eviction.get("deleteOptions") {
            opts.merge_body(d)?;
        }
        // Upstream's canIgnorePDB: a pod that is not running (yet, or any more) or already
        // going away costs the budget nothing.
        let idle =
            matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed" | "Pending"));
        if !idle && !meta::is_terminating(&pod) {
            self.check_budgets(ns, &pod).await?;
        }
        self.delete(pods, Some(ns), name, &opts).await.map(|_| ())
    }

    /// Upstream's check-and-decrement: the pod's one budget must allow a disruption, and the
    /// eviction spends it (a CAS on the budget's status) before the pod is deleted, so two
    /// concurrent evictions cannot both spend the last one.
    async fn check_budgets(&self, ns: &str, pod: &Value) -> ApiResult<()> {
        let pdbs = resources::lookup("policy", "v1", "poddisruptionbudgets").expect("pdbs are served");
        let budgets = self.list(pdbs, Some(ns), &ListOptions::default()).await?;
        let mut matching = Vec::new();
        for pdb in budgets.items {
            let Some(sel) = pdb.pointer("/spec/selector") else { continue };
            let sel = LabelSelector::from_label_selector(sel).map_err(|e| ApiError::Internal(e.to_string()))?;
            if sel.matches_object(pod) {
                matching.push(pdb);
            }
        }
        let pdb =
            match matching.as_slice() {
                [] => return Ok(()),
                [one] => one,
                _ => return Err(ApiError::Internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
                        .into(),
                )),
            };
        let pdb_name = meta::name(pdb).unwrap_or_default().to_string();
        let int = |ptr: &str| pdb.pointer(ptr).and_then(Value::as_i64).unwrap_or(0);
        if int("/status/observedGeneration") < pdb.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1)
        {
            return Err(ApiError::DisruptionBudget(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        if int("/status/disruptionsAllowed") < 1 {
            return Err(ApiError::DisruptionBudget(format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                int("/status/desiredHealthy"),
                int("/status/currentHealthy")
            )));
        }
        let pod_name = meta::name(pod).unwrap_or_default().to_string();
        let rv = meta::resource_version(pdb).unwrap_or_default().to_string();
        let spend = move |current: &Value| -> ApiResult<Value> {
            let mut b = current.clone();
            let allowed = b.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
            b["status"]["disruptionsAllowed"] = json!(allowed - 1);
            b["status"]["disruptedPods"][&pod_name] = json!(meta::now_rfc3339());
            meta::meta_mut(&mut b).insert("resourceVersion".into(), json!(rv));
            Ok(b)
        };
        match self.write(pdbs, Some(ns), &pdb_name, Change::Edit(&spend), Part::Status, &WriteOptions::default()).await
        {
            Ok(_) => Ok(()),
            // Someone else changed the budget meanwhile: as upstream, ask the client to retry.
            Err(ApiError::Conflict(_)) => Err(ApiError::DisruptionBudget(format!(
                "The disruption budget {pdb_name} changed during the eviction; retry."
            ))),
            Err(e) => Err(e),
        }
    }
}

fn binding_subject(name: &str) -> Subject {
    Subject { group: String::new(), resource: "pods/binding".into(), name: name.into() }
}

/// How a Scale write is given.
pub enum ScaleChange<'a> {
    Replace(Value),
    Patch(PatchType, &'a [u8]),
}

/// The `autoscaling/v1 Scale` of a scalable object.
pub fn scale_of(obj: &Value) -> ApiResult<Value> {
    let selector = match obj.pointer("/spec/selector") {
        Some(s) => LabelSelector::from_label_selector(s).map(|s| s.to_string()).unwrap_or_default(),
        None => String::new(),
    };
    let m = &obj["metadata"];
    Ok(json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
                   "selector": selector},
    }))
}

/// Set (or add) a pod condition.
fn set_condition(pod: &mut Value, kind: &str, status: &str) {
    let cond = json!({"type": kind, "status": status, "lastProbeTime": null,
                      "lastTransitionTime": meta::now_rfc3339()});
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let conditions =
        pod["status"].as_object_mut().expect("status is an object").entry("conditions").or_insert(json!([]));
    if let Some(list) = conditions.as_array_mut() {
        match list.iter_mut().find(|c| c["type"] == kind) {
            Some(c) => *c = cond,
            None => list.push(cond),
        }
    }
}
