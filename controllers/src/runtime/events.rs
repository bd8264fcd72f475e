//! [`Recorder`]: core/v1 Events for what the controllers and the scheduler do, so that
//! `kubectl get events` and `kubectl describe` show it.
//!
//! Like upstream's event recorder:
//! - one Event per involved object, reason and message; the same event again rewrites it
//!   with `count + 1` and a new `lastTimestamp` (a reconcile retried every few seconds does
//!   not flood the namespace); a new message starts a new Event;
//! - Event names are `<object>.<unix nanoseconds in hex>`;
//! - Events are written with PUT, which creates a missing Event (create-on-update for
//!   events), so a count whose Event expired is written afresh;
//! - writing is asynchronous and best effort: a reconcile never waits for, or fails on, an
//!   Event. Writes go through the leader's fenced client, so a deposed leader writes none.
//!
//! Invariant: the aggregation table holds at most [`MAX_TRACKED`] entries; when it is full
//! it is cleared (the next repeat of an event then starts a new Event, which is harmless).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flotilla_apiserver::client::Client;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::{Metadata, Resource};

/// Most (object, reason, message) combinations remembered for counting repeats.
pub const MAX_TRACKED: usize = 4096;

/// `Normal` or `Warning`, the two event types Kubernetes knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What one repeat series of an event has written so far.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    count: i32,
    first: Timestamp,
}

/// (involved object uid or key, reason, message).
type SeriesKey = (String, String, String);

/// Writes Events on behalf of one component (`source.component`) of one replica
/// (`reportingInstance`). Cheap to clone; clones share the repeat counts.
#[derive(Clone)]
pub struct Recorder {
    client: Option<Client>,
    component: String,
    instance: String,
    series: Arc<Mutex<HashMap<SeriesKey, Series>>>,
}

impl Recorder {
    pub fn new(client: Client, component: impl Into<String>, instance: impl Into<String>) -> Self {
        Self { client: Some(client), ..Self::detached(component, instance) }
    }

    /// A recorder that builds Events but writes none (for reconcilers driven by unit tests).
    pub fn detached(component: impl Into<String>, instance: impl Into<String>) -> Self {
        Self { client: None, component: component.into(), instance: instance.into(), series: Arc::default() }
    }

    /// Record a Normal event about `obj`.
    pub fn normal<K: Resource + Metadata<Ty = ObjectMeta>>(&self, obj: &K, reason: &str, message: impl Into<String>) {
        self.publish(reference(obj), EventType::Normal, reason, message.into());
    }

    /// Record a Warning event about `obj`.
    pub fn warning<K: Resource + Metadata<Ty = ObjectMeta>>(&self, obj: &K, reason: &str, message: impl Into<String>) {
        self.publish(reference(obj), EventType::Warning, reason, message.into());
    }

    /// Record an event about the object `involved` refers to; write it in the background.
    pub fn publish(&self, involved: ObjectReference, type_: EventType, reason: &str, message: String) {
        let event = self.event(involved, type_, reason, message);
        let Some(client) = self.client.clone() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let name = event.metadata.name.clone().unwrap_or_default();
            let ns = event.metadata.namespace.clone();
            if let Err(e) = client.api::<Event>(ns.as_deref()).update(&name, &event).await {
                tracing::debug!(event = %name, error = %e, "event not written");
            }
        });
    }

    /// The Event to write for one more occurrence (counts repeats of the same series).
    pub fn event(&self, involved: ObjectReference, type_: EventType, reason: &str, message: String) -> Event {
        let now = Timestamp::now();
        let subject = involved.uid.clone().unwrap_or_else(|| {
            format!("{}/{}", involved.namespace.as_deref().unwrap_or(""), involved.name.as_deref().unwrap_or(""))
        });
        let key = (subject, reason.to_string(), message.clone());
        let series = {
            let mut table = self.series.lock().expect("event table lock");
            if table.len() >= MAX_TRACKED && !table.contains_key(&key) {
                table.clear();
            }
            let series = table.entry(key).and_modify(|s| s.count = s.count.saturating_add(1)).or_insert_with(|| {
                let object = involved.name.as_deref().unwrap_or("");
                Series { name: format!("{object}.{:x}", now.as_nanosecond()), count: 1, first: now }
            });
            series.clone()
        };
        // Events about cluster-scoped objects (Nodes, PVs) live in `default`, as upstream.
        let namespace = involved.namespace.clone().filter(|ns| !ns.is_empty()).unwrap_or_else(|| "default".into());
        Event {
            metadata: ObjectMeta { name: Some(series.name), namespace: Some(namespace), ..Default::default() },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.as_str().into()),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            count: Some(series.count),
            first_timestamp: Some(Time(series.first)),
            last_timestamp: Some(Time(now)),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

/// An ObjectReference to `obj` (apiVersion, kind, namespace, name, uid, resourceVersion).
pub fn reference<K: Resource + Metadata<Ty = ObjectMeta>>(obj: &K) -> ObjectReference {
    let meta = obj.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.into()),
        kind: Some(K::KIND.into()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};

    fn pod() -> Pod {
        let metadata = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            uid: Some("u-1".into()),
            ..Default::default()
        };
        Pod { metadata, ..Default::default() }
    }

    #[test]
    fn a_repeat_counts_up_on_one_event_and_a_new_message_starts_another() {
        let rec = Recorder::detached("default-scheduler", "r1");
        let first = rec.event(reference(&pod()), EventType::Warning, "FailedScheduling", "0/1 nodes".into());
        assert_eq!(first.count, Some(1));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
        assert_eq!(first.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(first.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(first.involved_object.uid.as_deref(), Some("u-1"));
        assert_eq!(first.source.as_ref().and_then(|s| s.component.as_deref()), Some("default-scheduler"));
        assert_eq!(first.reporting_instance.as_deref(), Some("r1"));
        let name = first.metadata.name.clone().expect("named");
        assert!(name.starts_with("web."), "{name}");

        let again = rec.clone().event(reference(&pod()), EventType::Warning, "FailedScheduling", "0/1 nodes".into());
        assert_eq!(again.metadata.name.as_deref(), Some(name.as_str()), "clones share the series");
        assert_eq!(again.count, Some(2));
        assert_eq!(again.first_timestamp, first.first_timestamp);

        let other = rec.event(reference(&pod()), EventType::Warning, "FailedScheduling", "0/2 nodes".into());
        assert_eq!(other.count, Some(1));
        assert_ne!(other.metadata.name, first.metadata.name);
    }

    #[test]
    fn events_about_cluster_scoped_objects_go_to_default() {
        let node = Node {
            metadata: ObjectMeta { name: Some("n1".into()), uid: Some("u-n".into()), ..Default::default() },
            ..Default::default()
        };
        let ev =
            Recorder::detached("node-controller", "r1").event(reference(&node), EventType::Normal, "X", "y".into());
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(ev.involved_object.namespace, None);
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Node"));
    }

    #[test]
    fn the_table_is_bounded() {
        let rec = Recorder::detached("c", "r1");
        for i in 0..(MAX_TRACKED + 10) {
            rec.event(reference(&pod()), EventType::Normal, "R", format!("m{i}"));
        }
        assert!(rec.series.lock().unwrap().len() <= MAX_TRACKED);
    }
}
