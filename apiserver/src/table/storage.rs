//! Printers of persistent volumes, their claims and storage classes.
//!
//! Quantities (capacity) are printed as stored; upstream re-serializes them in canonical form,
//! which differs only for non-canonical input such as `1.5Gi` (upstream: `1536Mi`).

use jiff::Timestamp;
use serde_json::Value;

use super::descriptions::*;
use super::field::{annotation, deleting, flag, get, list, name, text};
use super::{age, no_conditions, Column, Printer, AGE, NAME};

/// The annotation that predates `storageClassName` and still wins over it.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub(super) static PERSISTENTVOLUMES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Capacity", PV_CAPACITY),
        Column::string("Access Modes", PV_ACCESS_MODES),
        Column::string("Reclaim Policy", PV_RECLAIM),
        Column::string("Status", PV_PHASE),
        Column::string("Claim", PV_CLAIM),
        Column::string("StorageClass", "StorageClass of the pv"),
        Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        Column::string("Reason", PV_REASON),
        AGE,
        Column::string("VolumeMode", PV_VOLUME_MODE).wide(),
    ],
    cells: pv_cells,
    conditions: no_conditions,
};

fn pv_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match get(pv, &["spec", "claimRef"]) {
        Some(c) => format!("{}/{}", text(c, &["namespace"]), text(c, &["name"])),
        None => String::new(),
    };
    // Upstream applies the defaults (Retain, Pending, Filesystem) when decoding.
    let class = match annotation(pv, BETA_STORAGE_CLASS) {
        "" => text(pv, &["spec", "storageClassName"]),
        class => class,
    };
    vec![
        name(pv).into(),
        quantity(pv, &["spec", "capacity", "storage"]).into(),
        access_modes(list(pv, &["spec", "accessModes"])).into(),
        or(text(pv, &["spec", "persistentVolumeReclaimPolicy"]), "Retain").into(),
        phase(pv).into(),
        claim.into(),
        class.into(),
        or(text(pv, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        text(pv, &["status", "reason"]).into(),
        age(pv, now).into(),
        or(text(pv, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

pub(super) static PERSISTENTVOLUMECLAIMS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", PVC_PHASE),
        Column::string("Volume", PVC_VOLUME),
        Column::string("Capacity", PVC_CAPACITY),
        Column::string("Access Modes", PVC_ACCESS_MODES),
        Column::string("StorageClass", "StorageClass of the pvc"),
        Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        AGE,
        Column::string("VolumeMode", PVC_VOLUME_MODE).wide(),
    ],
    cells: pvc_cells,
    conditions: no_conditions,
};

fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = text(pvc, &["spec", "volumeName"]);
    // Capacity and modes are the bound volume's, so they stay blank until the claim is bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(pvc, &["status", "capacity", "storage"]), access_modes(list(pvc, &["status", "accessModes"])))
    };
    let class = match annotation(pvc, BETA_STORAGE_CLASS) {
        "" => text(pvc, &["spec", "storageClassName"]),
        class => class,
    };
    vec![
        name(pvc).into(),
        phase(pvc).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        or(text(pvc, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        age(pvc, now).into(),
        or(text(pvc, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

/// `status.phase` (Pending by default), or `Terminating` while being deleted.
fn phase(obj: &Value) -> &str {
    if deleting(obj) {
        "Terminating"
    } else {
        or(text(obj, &["status", "phase"]), "Pending")
    }
}

/// A quantity as stored; an unset quantity prints as Go's zero `Quantity`, `0`.
fn quantity(obj: &Value, path: &[&str]) -> String {
    match get(obj, path) {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `RWO,ROX,RWX,RWOP` in that order, each at most once.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| has(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

pub(super) static STORAGECLASSES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Provisioner", SC_PROVISIONER),
        Column::string("ReclaimPolicy", SC_RECLAIM),
        Column::string("VolumeBindingMode", SC_BINDING_MODE),
        Column::string("AllowVolumeExpansion", SC_EXPANSION),
        AGE,
    ],
    cells: storageclass_cells,
    conditions: no_conditions,
};

fn storageclass_cells(sc: &Value, now: Timestamp) -> Vec<Value> {
    let default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
        .iter()
        .any(|key| annotation(sc, key) == "true");
    let name = if default { format!("{} (default)", name(sc)) } else { name(sc).to_string() };
    vec![
        name.into(),
        text(sc, &["provisioner"]).into(),
        or(text(sc, &["reclaimPolicy"]), "Delete").into(),
        or(text(sc, &["volumeBindingMode"]), "Immediate").into(),
        flag(sc, &["allowVolumeExpansion"]).into(),
        age(sc, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, columns};
    use serde_json::json;

    #[test]
    fn persistent_volumes() {
        let pv = json!({
            "metadata": {"name": "pv-1", "creationTimestamp": "2024-05-01T09:00:00Z"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "fast",
                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Block"},
            "status": {"phase": "Bound"},
        });
        assert_eq!(
            cells("persistentvolumes", pv),
            [
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Delete"),
                json!("Bound"),
                json!("default/data"),
                json!("fast"),
                json!("<unset>"),
                json!(""),
                json!("3h"),
                json!("Block")
            ]
        );
        let mut bare =
            json!({"metadata": {"name": "pv-2", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}}});
        let c = cells("persistentvolumes", bare.clone());
        assert_eq!(
            c[1..8],
            [json!("0"), json!(""), json!("Retain"), json!("Pending"), json!(""), json!("old"), json!("<unset>")]
        );
        assert_eq!(c[10], json!("Filesystem"));
        bare["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:00:00Z");
        assert_eq!(cells("persistentvolumes", bare)[4], json!("Terminating"));
        assert_eq!(columns("persistentvolumes")[10], ("VolumeMode".to_string(), 1));
    }

    #[test]
    fn persistent_volume_claims() {
        let bound = json!({
            "metadata": {"name": "data", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]},
        });
        assert_eq!(
            cells("persistentvolumeclaims", bound),
            [
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO"),
                json!("fast"),
                json!("<unset>"),
                json!("60m"),
                json!("Filesystem")
            ]
        );
        let pending = json!({"metadata": {"name": "new"}, "spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(
            cells("persistentvolumeclaims", pending)[1..6],
            [json!("Pending"), json!(""), json!(""), json!(""), json!("")]
        );
        let want =
            ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass", "Age"];
        let names: Vec<String> = columns("persistentvolumeclaims").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..8], want);
    }

    #[test]
    fn storage_classes() {
        let sc = json!({
            "metadata": {"name": "standard", "creationTimestamp": "2024-05-01T11:58:00Z",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
        });
        assert_eq!(
            cells("storageclasses", sc),
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("2m")
            ]
        );
        let sc = json!({"metadata": {"name": "fast"}, "reclaimPolicy": "Retain", "allowVolumeExpansion": true});
        assert_eq!(
            cells("storageclasses", sc)[..5],
            [json!("fast"), json!(""), json!("Retain"), json!("Immediate"), json!(true)]
        );
    }
}
