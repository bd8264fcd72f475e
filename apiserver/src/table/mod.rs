//! `meta.k8s.io/v1 Table` rendering: what `kubectl get` prints.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells as the
//! server formatted them, so this module owns the human output of every served resource. Each
//! resource has a `Printer`: upstream's column definitions (from
//! `pkg/printers/internalversion/printers.go`) and a function from one object to its cells.
//! Resources without one get `Name` and `Age`.
//!
//! Invariants:
//! - every row has exactly one cell per column, wide (`priority: 1`) columns included: upstream's
//!   server always prints wide, and kubectl hides priority-1 columns unless `-o wide`;
//! - cells follow upstream's Go types: integers where upstream puts an `int64`, booleans where it
//!   puts a `bool`, strings otherwise (even where the column's declared type says otherwise);
//! - each row carries the object's full metadata as a `PartialObjectMetadata`, which kubectl
//!   reads for the NAMESPACE column of `-A`, `--show-labels` and `-L`;
//! - ages are computed against the caller's `now`, so a table is a pure function of its input.
//!
//! Data flow: handler (list, get or one watch event) → [`table`] → printer by plural → cells.

mod cluster;
mod descriptions;
mod field;
mod format;
mod network;
mod pods;
mod storage;
mod workloads;

use jiff::Timestamp;
use serde_json::{json, Value};

pub use format::human_duration;

use descriptions::{META_CREATION, META_NAME};

/// One column of a table, serialized as a `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    name: &'static str,
    /// The declared type: `string`, `integer` (or `boolean`, `date` upstream).
    kind: &'static str,
    /// `name` for the column that identifies the object (kubectl prefixes it with `kind/`).
    format: &'static str,
    /// 0 for the default view, 1 for `-o wide` only.
    priority: u8,
    description: &'static str,
}

impl Column {
    const fn string(name: &'static str, description: &'static str) -> Column {
        Column { name, kind: "string", format: "", priority: 0, description }
    }

    const fn integer(name: &'static str, description: &'static str) -> Column {
        Column { name, kind: "integer", format: "", priority: 0, description }
    }

    /// Shown only with `-o wide`.
    const fn wide(self) -> Column {
        Column { priority: 1, ..self }
    }

    /// The object's name column.
    const fn named(self) -> Column {
        Column { format: "name", ..self }
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The `Name` column every printer but events' starts with.
const NAME: Column = Column::string("Name", META_NAME).named();
/// The `Age` column: time since `metadata.creationTimestamp`.
const AGE: Column = Column::string("Age", META_CREATION);

/// How one resource is printed.
struct Printer {
    columns: &'static [Column],
    /// The cells of one object, one per column.
    cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// `TableRow.conditions` of one object (upstream sets them for finished pods only).
    conditions: fn(&Value) -> Option<Value>,
}

/// For printers whose rows carry no conditions.
fn no_conditions(_: &Value) -> Option<Value> {
    None
}

/// The printer of a resource plural, `None` for the `Name`/`Age` fallback.
fn printer(plural: &str) -> Option<&'static Printer> {
    Some(match plural {
        "pods" => &pods::PODS,
        "nodes" => &cluster::NODES,
        "namespaces" => &cluster::NAMESPACES,
        "events" => &cluster::EVENTS,
        "configmaps" => &cluster::CONFIGMAPS,
        "secrets" => &cluster::SECRETS,
        "serviceaccounts" => &cluster::SERVICEACCOUNTS,
        "leases" => &cluster::LEASES,
        "services" => &network::SERVICES,
        "endpoints" => &network::ENDPOINTS,
        "deployments" => &workloads::DEPLOYMENTS,
        "replicasets" => &workloads::REPLICASETS,
        "statefulsets" => &workloads::STATEFULSETS,
        "daemonsets" => &workloads::DAEMONSETS,
        "controllerrevisions" => &workloads::CONTROLLERREVISIONS,
        "jobs" => &workloads::JOBS,
        "poddisruptionbudgets" => &workloads::PODDISRUPTIONBUDGETS,
        "persistentvolumes" => &storage::PERSISTENTVOLUMES,
        "persistentvolumeclaims" => &storage::PERSISTENTVOLUMECLAIMS,
        "storageclasses" => &storage::STORAGECLASSES,
        _ => return None,
    })
}

/// The fallback for resources without a printer: the name and the age.
static GENERIC: Printer = Printer { columns: &[NAME, AGE], cells: generic_cells, conditions: no_conditions };

fn generic_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![field::name(obj).into(), age(obj, now).into()]
}

/// The age cell of an object (`translateTimestampSince(creationTimestamp)`).
fn age(obj: &Value, now: Timestamp) -> String {
    format::since(field::time(obj, &["metadata", "creationTimestamp"]), now)
}

/// A `meta.k8s.io/v1 Table` of `objects` of the resource `plural`.
///
/// `list_meta` becomes the table's `metadata` unchanged (`resourceVersion`, `continue`); a null
/// is sent as `{}`. For a watch event, pass the one object. `now` is the time ages count to.
pub fn table(plural: &str, objects: &[Value], list_meta: Value, now: Timestamp) -> Value {
    let printer = printer(plural).unwrap_or(&GENERIC);
    let rows: Vec<Value> = objects.iter().map(|obj| row(printer, obj, now)).collect();
    let metadata = if list_meta.is_null() { json!({}) } else { list_meta };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": printer.columns.iter().map(Column::definition).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn row(printer: &Printer, obj: &Value, now: Timestamp) -> Value {
    let cells = (printer.cells)(obj, now);
    debug_assert_eq!(cells.len(), printer.columns.len(), "one cell per column");
    let metadata = obj.get("metadata").filter(|m| !m.is_null()).cloned().unwrap_or_else(|| json!({}));
    let mut row = json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
    });
    if let Some(conditions) = (printer.conditions)(obj) {
        row["conditions"] = conditions;
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed "now" of the printer tests.
    pub(super) fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().expect("a valid RFC 3339 literal")
    }

    /// The cells of the single row of a one-object table.
    pub(super) fn cells(plural: &str, obj: Value) -> Vec<Value> {
        let t = table(plural, &[obj], json!({}), now());
        t["rows"][0]["cells"].as_array().expect("cells").clone()
    }

    /// `(name, priority)` of each column of a plural's table.
    pub(super) fn columns(plural: &str) -> Vec<(String, u64)> {
        let t = table(plural, &[], Value::Null, now());
        let defs = t["columnDefinitions"].as_array().expect("columns");
        defs.iter()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["priority"].as_u64().unwrap_or(9)))
            .collect()
    }

    #[test]
    fn table_shape_carries_list_meta_and_partial_object_metadata() {
        let pod = json!({
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web"},
                         "creationTimestamp": "2024-05-01T11:50:00Z", "resourceVersion": "42"},
        });
        let t = table("pods", &[pod], json!({"resourceVersion": "110", "continue": "abc"}), now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "110", "continue": "abc"}));
        let object = &t["rows"][0]["object"];
        assert_eq!(object["kind"], "PartialObjectMetadata");
        assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(object["metadata"]["namespace"], "prod");
        assert_eq!(object["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(object["metadata"]["resourceVersion"], "42");
        assert!(t["rows"][0].get("conditions").is_none());
        let name = &t["columnDefinitions"][0];
        assert_eq!(name["name"], "Name");
        assert_eq!(name["type"], "string");
        assert_eq!(name["format"], "name");
        assert_eq!(name["priority"], 0);
        assert!(name["description"].as_str().unwrap().starts_with("Name must be unique"));
    }

    #[test]
    fn empty_list_has_columns_and_no_rows() {
        let t = table("deployments", &[], Value::Null, now());
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"], json!([]));
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn unknown_plurals_fall_back_to_name_and_age() {
        let obj = json!({"metadata": {"name": "thing", "creationTimestamp": "2024-04-29T07:00:00Z"}});
        assert_eq!(columns("widgets"), [("Name".to_string(), 0), ("Age".to_string(), 0)]);
        assert_eq!(cells("widgets", obj), [json!("thing"), json!("2d5h")]);
        assert_eq!(cells("widgets", json!({})), [json!(""), json!("<unknown>")]);
    }

    #[test]
    fn every_printer_gives_one_cell_per_column_even_for_empty_objects() {
        let plurals = [
            "pods",
            "nodes",
            "namespaces",
            "events",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "leases",
            "services",
            "endpoints",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "controllerrevisions",
            "jobs",
            "poddisruptionbudgets",
            "persistentvolumes",
            "persistentvolumeclaims",
            "storageclasses",
        ];
        for plural in plurals {
            assert!(printer(plural).is_some(), "{plural}");
            for obj in [json!({}), json!(null), json!({"metadata": null, "spec": 3, "status": "x"})] {
                assert_eq!(cells(plural, obj).len(), columns(plural).len(), "{plural}");
            }
        }
    }
}
