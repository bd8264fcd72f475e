//! Watch response fragmentation, for watches created with `fragment: true` (etcd 3.4).
//!
//! A response larger than the limit is cut into several with the same header and watch ID,
//! each holding whole events and at most `limit` bytes unless a single event is larger; all
//! but the last are marked `fragment`, and the client concatenates their events.

use prost::Message;

use crate::pb::PbWatchResponse;

/// `resp` as one or more responses of at most `limit` encoded bytes each (see module doc).
pub(super) fn split(resp: PbWatchResponse, limit: usize) -> Vec<PbWatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() <= limit {
        return vec![resp];
    }
    let mut shell = resp;
    let events = std::mem::take(&mut shell.events);
    shell.fragment = true;
    let empty = shell.encoded_len();
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut bytes = empty;
    for event in events {
        // A repeated message field costs its tag (one byte), a length prefix and the body.
        let len = event.encoded_len();
        let cost = 1 + prost::length_delimiter_len(len) + len;
        if !part.is_empty() && bytes + cost > limit {
            parts.push(PbWatchResponse { events: std::mem::take(&mut part), ..shell.clone() });
            bytes = empty;
        }
        bytes += cost;
        part.push(event);
    }
    shell.fragment = false;
    parts.push(PbWatchResponse { events: part, ..shell });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{PbEvent, PbKeyValue, PbResponseHeader};

    fn event(i: u8) -> PbEvent {
        PbEvent {
            kv: Some(PbKeyValue { key: vec![i], value: vec![i; 100], ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn splits_into_whole_events_under_the_limit() {
        let events: Vec<PbEvent> = (0..10).map(event).collect();
        let resp = PbWatchResponse {
            header: Some(PbResponseHeader { revision: 9, ..Default::default() }),
            watch_id: 3,
            events: events.clone(),
            ..Default::default()
        };
        let parts = split(resp.clone(), 350);
        assert!(parts.len() > 2);
        assert!(parts.iter().all(|p| p.encoded_len() <= 350 && p.watch_id == 3 && p.header == resp.header));
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts.last().unwrap().fragment);
        let joined: Vec<PbEvent> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);

        assert_eq!(split(resp.clone(), 1 << 20), vec![resp]);
        let single = PbWatchResponse { events: vec![event(1)], ..Default::default() };
        assert_eq!(split(single.clone(), 10), vec![single]);
    }
}
