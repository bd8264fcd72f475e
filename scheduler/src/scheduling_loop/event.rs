//! `FailedScheduling` Events: what `kubectl describe pod` shows for a pod that fits nowhere.
//!
//! One core/v1 Event per pod and message, like upstream's event recorder: a retry that
//! fails for the same reason rewrites the same Event with `count + 1` and a new
//! `lastTimestamp` (so a pod retried every few seconds does not flood the namespace); a new
//! reason starts a new Event. Events are written with PUT, which creates a missing Event
//! (upstream's create-on-update for events), so a record whose Event expired is recreated.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// Who reports scheduling events (`source.component`), as upstream's scheduler names itself.
pub const COMPONENT: &str = "default-scheduler";
/// The reason of the events written when a pod fits nowhere.
pub const REASON: &str = "FailedScheduling";

/// The Event last written for one pod's scheduling failures.
#[derive(Debug, Clone)]
pub struct EventRecord {
    name: String,
    message: String,
    count: i32,
    first: Timestamp,
}

impl EventRecord {
    /// The Event for one more failure of `pod` with `message`, updating `record` (None: the
    /// pod has no record yet) and returning the Event to write.
    pub fn next(record: &mut Option<EventRecord>, pod: &Pod, message: String, instance: &str) -> Event {
        let now = Timestamp::now();
        let rec = match record {
            Some(rec) if rec.message == message => {
                rec.count = rec.count.saturating_add(1);
                rec
            }
            _ => {
                let pod_name = pod.metadata.name.as_deref().unwrap_or("");
                // Upstream names events `<object>.<unix nanoseconds in hex>`.
                let name = format!("{pod_name}.{:x}", now.as_nanosecond());
                record.insert(EventRecord { name, message, count: 1, first: now })
            }
        };
        let meta = &pod.metadata;
        Event {
            metadata: ObjectMeta {
                name: Some(rec.name.clone()),
                namespace: meta.namespace.clone(),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(REASON.into()),
            message: Some(rec.message.clone()),
            type_: Some("Warning".into()),
            source: Some(EventSource { component: Some(COMPONENT.into()), host: None }),
            count: Some(rec.count),
            first_timestamp: Some(Time(rec.first)),
            last_timestamp: Some(Time(now)),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(instance.to_string()),
            action: Some("Scheduling".into()),
            ..Default::default()
        }
    }

    /// The name of the Event this record writes.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        let metadata = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("u-1".into()),
            ..Default::default()
        };
        Pod { metadata, ..Default::default() }
    }

    #[test]
    fn same_message_counts_up_on_one_event_and_a_new_message_starts_another() {
        let mut record = None;
        let first = EventRecord::next(&mut record, &pod(), "0/1 nodes are available: 1 Insufficient cpu.".into(), "r1");
        assert_eq!(first.count, Some(1));
        assert_eq!(first.reason.as_deref(), Some(REASON));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
        assert_eq!(first.involved_object.uid.as_deref(), Some("u-1"));
        assert_eq!(first.source.as_ref().and_then(|s| s.component.as_deref()), Some(COMPONENT));
        let name = first.metadata.name.clone().expect("named");
        assert!(name.starts_with("web."), "{name}");

        let again = EventRecord::next(&mut record, &pod(), "0/1 nodes are available: 1 Insufficient cpu.".into(), "r1");
        assert_eq!(again.metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(again.count, Some(2));
        assert_eq!(again.first_timestamp, first.first_timestamp);

        let other = EventRecord::next(&mut record, &pod(), "0/2 nodes are available: 2 Too many pods.".into(), "r1");
        assert_eq!(other.count, Some(1));
        assert_eq!(record.as_ref().map(|r| r.name()), other.metadata.name.as_deref());
    }
}
