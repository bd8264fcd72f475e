//! Container exits announced by Docker's event stream, as [`RuntimeEvent`]s.
//!
//! One task per runtime subscribes to `die` and `oom` events of containers carrying the
//! pod-uid label (so only flotilla's objects are seen) and sends the pod's uid. When the
//! stream ends or fails (daemon restart), it subscribes again after [`RECONNECT_DELAY`],
//! asking for events since the last one seen, so exits during the gap are still
//! announced. The task ends when the runtime's cancellation token is cancelled.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::runtime::{labels, RuntimeEvent};

/// Pause between a lost event stream and the next subscription: long enough not to spin
/// against a restarting daemon, short next to the agent's periodic resync.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Docker label filters (all must match): ours, and this agent's scope if it has one.
fn scope_filter(scope: Option<&str>) -> Vec<String> {
    let mut filter = vec![labels::POD_UID.to_string()];
    filter.extend(scope.map(|s| format!("{}={s}", labels::SCOPE)));
    filter
}

/// Forward exits of flotilla's containers to `events` until `cancel`.
pub(super) async fn run(
    docker: Docker,
    scope: Option<String>,
    events: broadcast::Sender<RuntimeEvent>,
    cancel: CancellationToken,
) {
    // From the subscriber's creation on, even if the first request is sent a moment later.
    let mut since = Some(k8s_openapi::jiff::Timestamp::now().as_second());
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["die".to_string(), "oom".to_string()]),
            ("label".to_string(), scope_filter(scope.as_deref())),
        ]);
        let options = EventsOptions { since: since.map(|s| s.to_string()), until: None, filters: Some(filters) };
        let mut stream = docker.events(Some(options));
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    since = message.time.or(since);
                    let attributes = message.actor.and_then(|a| a.attributes).unwrap_or_default();
                    if let Some(pod_uid) = attributes.get(labels::POD_UID) {
                        tracing::debug!(pod_uid, action = message.action.as_deref(), "docker container event");
                        let _ = events.send(RuntimeEvent { pod_uid: pod_uid.clone() });
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "docker event stream failed; subscribing again");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}
