//! PersistentVolume, PersistentVolumeClaim and StorageClass rules (upstream
//! `ValidatePersistentVolume*` and `ValidateStorageClass*`), kept to what users trip on:
//! access modes, a storage size, one volume source, and the fields frozen after creation.

use serde_json::Value;

use super::meta::validate_meta;
use super::names::{is_qualified_name, NameRule};
use super::quantity::Quantity;
use super::{
    arr_field, field, field_or_null, obj_field, one_of, optional_one_of, semantic_eq, str_field, Bad, Errors, Path,
};

/// The annotation that predates `storageClassName`; a claim carrying it keeps its class.
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

/// The `PersistentVolumeSource` fields of a PV spec; exactly one must be set.
const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// Validates `persistentvolumes`, `persistentvolumeclaims` or `storageclasses`.
pub(crate) fn validate(plural: &str, obj: &Value, errs: &mut Errors) {
    validate_meta(obj, NameRule::Subdomain, errs);
    let spec = field_or_null(obj, "spec");
    let path = Path::root("spec");
    match plural {
        "persistentvolumes" => validate_pv_spec(spec, &path, errs),
        "persistentvolumeclaims" => validate_pvc_spec(spec, &path, errs),
        _ => validate_storage_class(obj, errs),
    }
}

fn validate_access_modes(spec: &Value, path: &Path, detail: &str, errs: &mut Errors) {
    let modes = arr_field(spec, "accessModes");
    if modes.is_empty() {
        errs.required(&path.child("accessModes"), detail);
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.not_supported(&path.child("accessModes"), Bad::str(m), ACCESS_MODES);
        }
    }
}

fn validate_pv_spec(spec: &Value, path: &Path, errs: &mut Errors) {
    validate_access_modes(spec, path, "", errs);
    match obj_field(spec, "capacity") {
        None => errs.required(&path.child("capacity"), ""),
        Some(cap) if !cap.contains_key("storage") || cap.len() > 1 => {
            errs.not_supported(&path.child("capacity"), Bad::Raw(Value::Object(cap.clone()).to_string()), &["storage"])
        }
        Some(cap) => validate_positive_storage(cap.get("storage"), &path.child("capacity").key("storage"), errs),
    }
    optional_one_of(spec, "persistentVolumeReclaimPolicy", path, &["Delete", "Recycle", "Retain"], errs);
    optional_one_of(spec, "volumeMode", path, &["Block", "Filesystem"], errs);
    let sources: Vec<&str> = PV_SOURCES.iter().copied().filter(|s| field(spec, s).is_some()).collect();
    match sources.as_slice() {
        [] => errs.required(path, "must specify a volume type"),
        [_] => {}
        [_, second, ..] => errs.forbidden(&path.child(second), "may not specify more than 1 volume type"),
    }
}

fn validate_positive_storage(v: Option<&Value>, path: &Path, errs: &mut Errors) {
    let Some(v) = v else { return };
    let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    match Quantity::from_json(v) {
        Err(msg) => errs.invalid(path, Bad::str(&text), &msg),
        Ok(q) if q.is_negative() || q.is_zero() => errs.invalid(path, Bad::str(&text), "must be greater than zero"),
        Ok(_) => {}
    }
}

fn validate_pvc_spec(spec: &Value, path: &Path, errs: &mut Errors) {
    validate_access_modes(spec, path, "at least 1 access mode is required", errs);
    let storage = field(spec, "resources").and_then(|r| obj_field(r, "requests")).and_then(|r| r.get("storage"));
    let storage_path = path.child("resources").key("storage");
    match storage {
        None => errs.required(&storage_path, ""),
        Some(_) => validate_positive_storage(storage, &storage_path, errs),
    }
    optional_one_of(spec, "volumeMode", path, &["Block", "Filesystem"], errs);
}

fn validate_storage_class(obj: &Value, errs: &mut Errors) {
    let provisioner = str_field(obj, "provisioner");
    if provisioner.is_empty() {
        errs.required(&Path::root("provisioner"), "");
    } else {
        errs.invalid_each(&Path::root("provisioner"), provisioner, is_qualified_name(&provisioner.to_lowercase()));
    }
    optional_one_of(obj, "reclaimPolicy", &Path::root(""), &["Delete", "Retain"], errs);
    one_of(obj, "volumeBindingMode", &Path::root(""), &["Immediate", "WaitForFirstConsumer"], errs);
}

/// The update rules of the three kinds.
pub(crate) fn validate_update(plural: &str, new: &Value, old: &Value, errs: &mut Errors) {
    let (n, o) = (field_or_null(new, "spec"), field_or_null(old, "spec"));
    match plural {
        "persistentvolumes" => {
            if PV_SOURCES.iter().any(|s| !semantic_eq(field(n, s), field(o, s))) {
                let p = Path::root("spec").child("persistentvolumesource");
                errs.forbidden(&p, "spec.persistentvolumesource is immutable after creation");
            }
        }
        "persistentvolumeclaims" => validate_pvc_update(old, n, o, errs),
        _ => {
            for key in ["parameters", "provisioner"] {
                if !semantic_eq(field(new, key), field(old, key)) {
                    errs.forbidden(&Path::root(key), &format!("updates to {key} are forbidden."));
                }
            }
            for key in ["reclaimPolicy", "volumeBindingMode"] {
                if !semantic_eq(field(new, key), field(old, key)) {
                    errs.immutable(&Path::root(key), Bad::json(field(new, key)));
                }
            }
        }
    }
}

/// A claim's spec is frozen, except binding it (`volumeName` from empty), expanding a
/// bound claim's storage request and changing its volume attributes class.
fn validate_pvc_update(old: &Value, n: &Value, o: &Value, errs: &mut Errors) {
    let mut munged = n.clone();
    let bound = field(old, "status").map(|s| str_field(s, "phase")) == Some("Bound");
    // Upstream's retroactive default StorageClass (GA 1.28): a claim that had no class at
    // all (nil, not ""), and no beta class annotation, may be given one once.
    let beta_class = field(old, "metadata").and_then(|m| field(m, "annotations")).and_then(|a| field(a, BETA_CLASS));
    let class_from_nil = beta_class.is_none()
        && field(o, "storageClassName").is_none_or(Value::is_null)
        && !str_field(n, "storageClassName").is_empty();
    if let Some(m) = munged.as_object_mut() {
        if class_from_nil {
            m.remove("storageClassName");
        }
        if str_field(o, "volumeName").is_empty() {
            m.remove("volumeName");
        }
        match field(o, "volumeAttributesClassName") {
            Some(v) => m.insert("volumeAttributesClassName".to_string(), v.clone()),
            None => m.remove("volumeAttributesClassName"),
        };
        if bound {
            if let Some(r) = field(o, "resources") {
                m.insert("resources".to_string(), r.clone());
            }
        }
    }
    let mut old_cmp = o.clone();
    if let Some(m) = old_cmp.as_object_mut() {
        if str_field(o, "volumeName").is_empty() {
            m.remove("volumeName");
        }
        if class_from_nil {
            m.remove("storageClassName");
        }
    }
    if !semantic_eq(Some(&munged), Some(&old_cmp)) {
        let msg =
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";
        errs.forbidden(&Path::root("spec"), msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{create, update};
    use serde_json::json;

    fn pvc() -> Value {
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}})
    }

    #[test]
    fn claims_need_access_modes_and_storage() {
        assert_eq!(create("persistentvolumeclaims", &pvc()), Vec::<String>::new());
        let bad = json!({"metadata": {"name": "d"}, "spec": {"accessModes": [], "resources": {"requests": {"storage": "0"}}}});
        assert_eq!(
            create("persistentvolumeclaims", &bad),
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            ]
        );
        let none = json!({"metadata": {"name": "d"}, "spec": {"accessModes": ["ReadWriteMany"]}});
        assert_eq!(create("persistentvolumeclaims", &none), vec!["spec.resources[storage]: Required value"]);
    }

    #[test]
    fn volumes_need_capacity_and_one_source() {
        let pv = json!({"metadata": {"name": "pv1"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "5Gi"},
            "hostPath": {"path": "/data"}, "persistentVolumeReclaimPolicy": "Retain"}});
        assert_eq!(create("persistentvolumes", &pv), Vec::<String>::new());
        let bad = json!({"metadata": {"name": "pv2"}, "spec": {"accessModes": ["ReadWriteSometimes"], "capacity": {"cpu": "1"}}});
        assert_eq!(create("persistentvolumes", &bad), vec![
            "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.capacity: Unsupported value: {\"cpu\":\"1\"}: supported values: \"storage\"",
            "spec: Required value: must specify a volume type",
        ]);
        let mut moved = pv.clone();
        moved["spec"]["hostPath"]["path"] = json!("/elsewhere");
        assert_eq!(
            update("persistentvolumes", &moved, &pv),
            vec!["spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"]
        );
    }

    #[test]
    fn claim_spec_is_frozen_except_for_binding_and_bound_expansion() {
        let old = pvc();
        let mut bind = pvc();
        bind["spec"]["volumeName"] = json!("pv1");
        assert_eq!(update("persistentvolumeclaims", &bind, &old), Vec::<String>::new());
        let mut grow = pvc();
        grow["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(update("persistentvolumeclaims", &grow, &old).len(), 1);
        let mut bound = pvc();
        bound["status"]["phase"] = json!("Bound");
        assert_eq!(update("persistentvolumeclaims", &grow, &bound), Vec::<String>::new());
    }

    #[test]
    fn a_claim_without_class_may_be_given_one_once() {
        let old = pvc();
        let mut classed = pvc();
        classed["spec"]["storageClassName"] = json!("local-path");
        assert_eq!(update("persistentvolumeclaims", &classed, &old), Vec::<String>::new());
        let mut other = pvc();
        other["spec"]["storageClassName"] = json!("fast");
        assert_eq!(update("persistentvolumeclaims", &other, &classed).len(), 1, "a class, once set, is frozen");
        let mut beta = pvc();
        beta["metadata"]["annotations"] = json!({BETA_CLASS: "slow"});
        let mut beta_classed = beta.clone();
        beta_classed["spec"]["storageClassName"] = json!("local-path");
        assert_eq!(update("persistentvolumeclaims", &beta_classed, &beta).len(), 1);
    }

    #[test]
    fn storage_classes() {
        let sc = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/ssd", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"});
        assert_eq!(create("storageclasses", &sc), Vec::<String>::new());
        let bad = json!({"metadata": {"name": "slow"}, "reclaimPolicy": "Recycle", "volumeBindingMode": "Immediate"});
        assert_eq!(
            create("storageclasses", &bad),
            vec![
                "provisioner: Required value",
                "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            ]
        );
        let mut changed = sc.clone();
        changed["provisioner"] = json!("example.com/hdd");
        assert_eq!(
            update("storageclasses", &changed, &sc),
            vec!["provisioner: Forbidden: updates to provisioner are forbidden."]
        );
    }
}
