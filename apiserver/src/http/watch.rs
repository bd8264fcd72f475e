//! Watch responses: a chunked stream of newline-delimited JSON events.
//!
//! The stream stays open until `timeoutSeconds` (if given) or until the client goes away
//! (kubectl's `get -w` exits when the server closes it). With `allowWatchBookmarks` a
//! BOOKMARK is sent when the watch ends by timeout, so the client can resume from there.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use tokio::time::Instant;

use super::negotiate::{self, Output};
use super::query::Query;
use super::ApiState;
use crate::error::ApiResult;
use crate::resources::Resource;
use crate::watch::{EventStream, WatchEvent, WatchOptions};

/// Upstream keeps a watch without `timeoutSeconds` open for 30–60 minutes; we keep it for
/// the longest of those and let the client re-watch.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(60 * 60);

pub async fn serve(
    s: &ApiState,
    res: &'static Resource,
    ns: Option<&str>,
    mut opts: WatchOptions,
    query: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let output = negotiate::output(headers, query.get("includeObject"))?;
    let timeout = query.timeout()?.unwrap_or(DEFAULT_WATCH_TIMEOUT);
    opts.bookmark_interval = Some(s.config.bookmark_interval);
    let events = s.registry.watch(res, ns, opts).await?;
    let open = super::metrics::OpenWatch::open();
    let state = Streaming { events, res, output, deadline: Instant::now() + timeout, ended: false, _open: open };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let line = st.next_line().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(line), st))
    });
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response())
}

struct Streaming {
    events: EventStream,
    res: &'static Resource,
    output: Output,
    deadline: Instant,
    ended: bool,
    /// Counts this watch among the open ones while the stream lives.
    _open: super::metrics::OpenWatch,
}

impl Streaming {
    async fn next_line(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let event = match tokio::time::timeout_at(self.deadline, self.events.next()).await {
            Ok(Some(e)) => e,
            Ok(None) => return None,
            Err(_) => {
                self.ended = true;
                let rv = self.events.progress().filter(|_| self.events.wants_bookmarks())?;
                WatchEvent::Bookmark(rv)
            }
        };
        let res = self.res;
        let output = self.output;
        let value = event.to_json(res, |obj| match output {
            Output::Object => obj.clone(),
            Output::Table(_) => negotiate::render_one(output, res.plural, obj),
        });
        let mut line = serde_json::to_vec(&value).ok()?;
        line.push(b'\n');
        Some(Bytes::from(line))
    }
}
