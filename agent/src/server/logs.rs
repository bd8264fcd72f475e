//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log as `kubectl logs`
//! asks for it (`follow`, `tailLines`, `timestamps`, `sinceSeconds`, `sinceTime`,
//! `limitBytes`, `previous`), streamed chunk by chunk as the runtime produces it.
//!
//! Invariants:
//! - Parameters are checked before anything is streamed: a bad one is a 400 Status, a
//!   missing pod or container a 404, a runtime without logs a 501.
//! - A followed log ends when the runtime's stream ends (the container exited and its log
//!   is drained) or when the client goes away: the body is pulled, so dropping the
//!   connection drops the runtime's stream.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::error::ServerError;
use super::query::Params;
use super::{lookup, Shared};
use crate::runtime::LogOptions;

/// The log options a query asks for, and whether it wants the previous attempt.
pub fn options(params: &Params) -> Result<(LogOptions, bool), ServerError> {
    let positive = |key: &str| -> Result<Option<u64>, ServerError> {
        match params.int(key)? {
            Some(n) if n <= 0 => Err(ServerError::BadRequest(format!("{key} must be a positive integer"))),
            n => Ok(n.map(|n| n as u64)),
        }
    };
    // Upstream: a negative tailLines means the whole log.
    let tail_lines = params.int("tailLines")?.and_then(|n| u64::try_from(n).ok());
    let since_seconds = positive("sinceSeconds")?;
    let since_time = params.time("sinceTime")?;
    if since_seconds.is_some() && since_time.is_some() {
        return Err(ServerError::BadRequest("at most one of sinceTime or sinceSeconds may be specified".into()));
    }
    let since = match since_seconds {
        Some(s) => {
            let s = i64::try_from(s).unwrap_or(i64::MAX);
            Some(Timestamp::now().checked_sub(SignedDuration::from_secs(s)).unwrap_or(Timestamp::MIN))
        }
        None => since_time,
    };
    let options = LogOptions {
        follow: params.flag("follow")?,
        tail_lines,
        since,
        timestamps: params.flag("timestamps")?,
        limit_bytes: positive("limitBytes")?,
    };
    Ok((options, params.flag("previous")?))
}

pub async fn handle(
    _: super::Authorized,
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ServerError> {
    let (options, previous) = options(&Params::parse(raw.as_deref()))?;
    let runtime = shared.runtime.as_ref();
    let found = lookup::container(runtime, &namespace, &pod, &container, previous).await?;
    let stream = runtime.log_stream(&found.id, &options).await?;
    tracing::debug!(pod = format!("{namespace}/{pod}"), container, follow = options.follow, "serving logs");
    let body = Body::from_stream(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok(([(header::CONTENT_TYPE, "text/plain")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let p = Params::parse(Some("follow=true&tailLines=3&timestamps=true&limitBytes=10&previous=true"));
        let (o, previous) = options(&p).unwrap();
        assert!(o.follow && o.timestamps && previous);
        assert_eq!((o.tail_lines, o.limit_bytes, o.since), (Some(3), Some(10), None));
        let (o, _) = options(&Params::parse(Some("sinceSeconds=60&tailLines=-1"))).unwrap();
        let age = Timestamp::now().duration_since(o.since.unwrap());
        assert!(age >= SignedDuration::from_secs(60) && age < SignedDuration::from_secs(70));
        assert_eq!(o.tail_lines, None);
        assert!(options(&Params::parse(Some("sinceSeconds=0"))).is_err());
        assert!(options(&Params::parse(Some("limitBytes=-5"))).is_err());
        assert!(options(&Params::parse(Some("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"))).is_err());
        assert!(options(&Params::parse(Some("sinceTime=yesterday"))).is_err());
    }
}
