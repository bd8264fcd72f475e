//! containerd's task events: exits become [`RuntimeEvent`]s, OOM kills become reasons.
//!
//! Invariants:
//! - One subscription per runtime, filtered to our namespace and the `/tasks/exit` and
//!   `/tasks/oom` topics. An exit of a container's main process is reaped
//!   ([`container::reap`]) *before* the event is sent, so whoever looks at the pod then
//!   sees the exit. Exits of exec processes are not container exits and are ignored.
//! - When the subscription breaks it is made again after [`RESUBSCRIBE_DELAY`], and the
//!   exits missed meanwhile are found by reaping every stopped task and announcing its pod.
//! - The event payloads are decoded by hand ([`string_field`]): only the string fields 1
//!   (container id) and 2 (process id) of `TaskExit`/`TaskOOM` are needed.

use std::sync::Arc;
use std::time::Duration;

use containerd_client::services::v1::SubscribeRequest;
use containerd_client::tonic::Streaming;
use containerd_client::types::Envelope;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{client, container, Inner};
use crate::runtime::{labels, RuntimeError, RuntimeEvent};

/// Wait before subscribing again after the subscription broke (daemon restarting).
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
const EXIT_TOPIC: &str = "/tasks/exit";
const OOM_TOPIC: &str = "/tasks/oom";

async fn subscribe(inner: &Inner) -> Result<Streaming<Envelope>, RuntimeError> {
    let ns = &inner.options.namespace;
    let filters = [EXIT_TOPIC, OOM_TOPIC].map(|t| format!("topic==\"{t}\",namespace==\"{ns}\"")).to_vec();
    let api = &inner.api;
    let stream = api.events().subscribe(api.req(SubscribeRequest { filters })).await;
    Ok(stream.map_err(|s| client::failed("events", "", s))?.into_inner())
}

/// Subscribe and handle events until `cancel`. See the module doc.
///
/// containerd answers a subscription only with its first event, so subscribing happens
/// here, in the background, never in the caller's way.
pub async fn run(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut first = true;
    loop {
        let subscribed = tokio::select! {
            _ = cancel.cancelled() => return,
            s = subscribe(&inner) => s,
        };
        match subscribed {
            Ok(stream) => {
                if !first {
                    catch_up(&inner).await;
                }
                consume(&inner, stream, &cancel).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to containerd events"),
        }
        first = false;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
        }
    }
}

/// Handle the events of `stream` until it breaks or `cancel`.
async fn consume(inner: &Inner, mut stream: Streaming<Envelope>, cancel: &CancellationToken) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(envelope)) => handle(inner, envelope).await,
            Some(Err(s)) => return tracing::warn!(error = %s.message(), "containerd event subscription broke"),
            None => return tracing::warn!("containerd event subscription ended"),
        }
    }
}

async fn handle(inner: &Inner, envelope: Envelope) {
    let Some(event) = envelope.event else { return };
    let Some(container_id) = string_field(&event.value, 1) else { return };
    match envelope.topic.as_str() {
        OOM_TOPIC => {
            inner.oom.lock().expect("oom lock").insert(container_id);
        }
        EXIT_TOPIC if string_field(&event.value, 2).is_none_or(|p| p == container_id) => {
            exited(inner, &container_id).await;
        }
        _ => {}
    }
}

/// Reap container `id` and announce its pod.
async fn exited(inner: &Inner, id: &str) {
    let pod_uid = match container::get(inner, id).await {
        Ok(Some(c)) => c.labels.get(labels::POD_UID).cloned(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(container = id, error = %e, "cannot look up an exited container");
            None
        }
    };
    let Some(pod_uid) = pod_uid else { return };
    if let Err(e) = container::reap(inner, id).await {
        tracing::warn!(container = id, error = %e, "cannot reap an exited container");
    }
    let _ = inner.events.send(RuntimeEvent { pod_uid });
}

/// Announce every container whose exit was missed while not subscribed.
async fn catch_up(inner: &Inner) {
    let all = match container::list(inner, None).await {
        Ok(all) => all,
        Err(e) => return tracing::warn!(error = %e, "cannot list containers after resubscribing"),
    };
    for c in all {
        if let Ok(true) = container::reap(inner, &c.id).await {
            if let Some(pod_uid) = c.labels.get(labels::POD_UID) {
                let _ = inner.events.send(RuntimeEvent { pod_uid: pod_uid.clone() });
            }
        }
    }
}

/// String field `number` of a protobuf message, if present and UTF-8.
pub fn string_field(message: &[u8], number: u64) -> Option<String> {
    let mut rest = message;
    while !rest.is_empty() {
        let key = varint(&mut rest)?;
        let len = match key & 7 {
            0 => {
                varint(&mut rest)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut rest)?).ok()?,
            5 => 4,
            _ => return None,
        };
        let value = rest.get(..len)?;
        if key >> 3 == number && key & 7 == 2 {
            return String::from_utf8(value.to_vec()).ok();
        }
        rest = &rest[len..];
    }
    None
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_fields_are_found_among_others() {
        // field 1 "c1", field 2 "x9", field 3 varint 300, field 4 varint 0.
        let message = [0x0a, 2, b'c', b'1', 0x12, 2, b'x', b'9', 0x18, 0xac, 0x02, 0x20, 0];
        assert_eq!(string_field(&message, 1).as_deref(), Some("c1"));
        assert_eq!(string_field(&message, 2).as_deref(), Some("x9"));
        assert_eq!(string_field(&message, 5), None);
        assert_eq!(string_field(&[0x0a, 5, b'a'], 1), None, "a truncated field is no field");
    }
}
