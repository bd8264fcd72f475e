//! Reading a watch response incrementally: frames are pulled with `BodyExt::frame` under a
//! deadline and split into newline-delimited JSON events, so a test sees each event as the
//! server sends it (and notices a stream that stalls or ends).

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;

/// How long a test waits for the next event (or the end) before failing.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// What the stream produced next.
#[derive(Debug)]
pub enum Next {
    Event(Value),
    /// The server closed the stream.
    End,
    /// Nothing within the deadline.
    Silent,
}

pub struct WatchStream {
    body: Body,
    buf: Vec<u8>,
    ended: bool,
}

impl WatchStream {
    pub fn new(body: Body) -> Self {
        Self { body, buf: Vec::new(), ended: false }
    }

    /// The next event, the end of the stream, or silence after `deadline`.
    pub async fn next_within(&mut self, deadline: Duration) -> Next {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let event = serde_json::from_slice(&line[..line.len() - 1])
                    .unwrap_or_else(|e| panic!("event is not JSON ({e}): {}", String::from_utf8_lossy(&line)));
                return Next::Event(event);
            }
            if self.ended {
                assert!(self.buf.is_empty(), "stream ended mid-line: {}", String::from_utf8_lossy(&self.buf));
                return Next::End;
            }
            match tokio::time::timeout_at(until, self.body.frame()).await {
                Err(_) => return Next::Silent,
                Ok(None) => self.ended = true,
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.expect("watch body reads").into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next event; fails the test on the end of the stream or silence.
    pub async fn event(&mut self) -> Value {
        match self.next_within(EVENT_DEADLINE).await {
            Next::Event(e) => e,
            other => panic!("expected a watch event, got {other:?}"),
        }
    }

    /// The next event's type and object name.
    pub async fn typed(&mut self) -> (String, String) {
        let e = self.event().await;
        (
            e["type"].as_str().unwrap_or_default().to_string(),
            e["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Assert the server ends the stream within the deadline (events before the end are
    /// returned).
    pub async fn until_end(&mut self, deadline: Duration) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            match self.next_within(deadline).await {
                Next::Event(e) => events.push(e),
                Next::End => return events,
                Next::Silent => panic!("the watch did not end in {deadline:?}; events so far: {events:?}"),
            }
        }
    }
}
