//! `/ui/api/watch`: the watches of every kind the dashboard shows, merged into one stream.
//!
//! A browser opens at most six HTTP/1.1 connections to one origin, and the API is plain
//! HTTP/1.1 (no HTTP/2 without TLS): seven separate `?watch=1` streams would hold them all
//! and starve the page's other requests. So the page lists each kind through the ordinary
//! API and then opens this one stream, `?nodes=<rv>&pods=<rv>&...`, naming each kind with
//! the resourceVersion of its list. Each line is an ordinary watch event with the kind's
//! name added: `{"resource": "pods", "type": "MODIFIED", "object": {...}}`.
//!
//! Invariants: per kind, events come in revision order from the list's revision on,
//! exactly as `?watch=1&resourceVersion=<rv>` gives them (it is the same [`Registry::watch`]);
//! a kind whose watch fails (410 Expired) sends its ERROR line and ends, and the page then
//! lists again. The stream ends after [`WATCH_SPAN`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::http::ApiState;
use crate::registry::Registry;
use crate::resources::{self, Resource};
use crate::watch::{EventStream, WatchOptions};

/// The kinds the dashboard shows: the name the page uses, then group, version, plural.
pub const KINDS: [(&str, &str, &str); 7] = [
    ("", "v1", "nodes"),
    ("", "v1", "pods"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "daemonsets"),
    ("batch", "v1", "jobs"),
    ("", "v1", "events"),
];

/// How long one merged watch lasts before the server ends it and the page lists afresh:
/// long enough that re-listing costs nothing noticeable, short enough that a page left
/// open does not pin one replica's watchers for hours.
pub const WATCH_SPAN: Duration = Duration::from_secs(5 * 60);

/// One requested kind: its plural (as the page names it), resource and starting version.
struct Wanted {
    plural: &'static str,
    res: &'static Resource,
    resource_version: String,
}

pub async fn serve(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    start(&s.registry, s.config.bookmark_interval, q.as_deref().unwrap_or("")).await
}

async fn start(registry: &Registry, bookmark_interval: Duration, query: &str) -> ApiResult<Response> {
    let mut streams = Vec::new();
    for w in parse(query)? {
        let opts = WatchOptions {
            resource_version: Some(w.resource_version),
            bookmarks: true,
            bookmark_interval: Some(bookmark_interval),
            ..Default::default()
        };
        let events = registry.watch(w.res, None, opts).await?;
        streams.push(tagged(w.plural, w.res, events).boxed());
    }
    let lines = futures::stream::select_all(streams)
        .take_until(tokio::time::sleep(WATCH_SPAN))
        .map(Ok::<Bytes, std::convert::Infallible>);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(lines)).into_response())
}

/// `name=<rv>` pairs, each name one of [`KINDS`]' plurals, at least one.
fn parse(query: &str) -> ApiResult<Vec<Wanted>> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for (name, rv) in form_urlencoded::parse(query.as_bytes()) {
        let (group, version, plural) = KINDS
            .iter()
            .find(|(_, _, p)| *p == name)
            .ok_or_else(|| ApiError::BadRequest(format!("the dashboard does not watch {name:?}")))?;
        if wanted.iter().any(|w| w.plural == *plural) {
            return Err(ApiError::BadRequest(format!("{name} named twice")));
        }
        let res = resources::lookup(group, version, plural).expect("the dashboard's kinds are served");
        wanted.push(Wanted { plural, res, resource_version: rv.into_owned() });
    }
    if wanted.is_empty() {
        return Err(ApiError::BadRequest("name at least one kind, e.g. ?pods=<resourceVersion>".into()));
    }
    Ok(wanted)
}

/// The events of one watch as lines tagged with the kind's name.
fn tagged(
    plural: &'static str,
    res: &'static Resource,
    events: EventStream,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    futures::stream::unfold(events, move |mut events| async move {
        let event = events.next().await?;
        let mut value = event.to_json(res, Value::clone);
        value["resource"] = plural.into();
        let mut line = serde_json::to_vec(&value).expect("JSON values serialize");
        line.push(b'\n');
        Some((Bytes::from(line), events))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_served_and_names_are_checked() {
        for (group, version, plural) in KINDS {
            assert!(resources::lookup(group, version, plural).is_some(), "{plural}");
        }
        let got = parse("nodes=5&events=7").expect("two kinds");
        let got: Vec<(&str, &str)> = got.iter().map(|w| (w.plural, w.resource_version.as_str())).collect();
        assert_eq!(got, vec![("nodes", "5"), ("events", "7")]);
        assert!(matches!(parse(""), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse("secrets=1"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse("pods=1&pods=2"), Err(ApiError::BadRequest(_))));
    }
}
