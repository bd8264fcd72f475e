//! Watch service through `etcd_client`: history then live events, filters and prev_kv,
//! compaction, cancel, progress, refused creates.

use etcd_client::{WatchFilterType, WatchOptions};

use crate::support::{events, next, within, Solo, DELETE, PUT};

fn s(v: &str) -> String {
    v.to_string()
}

#[tokio::test]
async fn watch_from_the_past_sees_history_in_order_then_live_events() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let start = c.put("w/a", "1", None).await.unwrap().header().unwrap().revision();
    c.put("w/b", "2", None).await.unwrap();
    c.put("other", "x", None).await.unwrap();
    c.delete("w/a", None).await.unwrap();

    let opts = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut w = c.watch("w/", Some(opts)).await.unwrap();
    let created = next(&mut w).await;
    assert!(created.created() && !created.canceled());
    assert_eq!(created.watch_id(), 0);

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let resp = next(&mut w).await;
        assert_eq!(resp.watch_id(), 0);
        seen.extend(events(&resp));
    }
    assert_eq!(seen, [(PUT, s("w/a"), s("1"), None), (PUT, s("w/b"), s("2"), None), (DELETE, s("w/a"), s(""), None)]);

    let live_rev = c.put("w/c", "3", None).await.unwrap().header().unwrap().revision();
    let live = next(&mut w).await;
    assert_eq!(events(&live), [(PUT, s("w/c"), s("3"), None)]);
    assert_eq!(live.events()[0].kv().unwrap().mod_revision(), live_rev);
    assert_eq!(live.header().unwrap().revision(), live_rev);
    solo.stop().await;
}

#[tokio::test]
async fn prev_kv_and_nodelete_filter_on_one_stream() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let mut w = c.watch("f", Some(WatchOptions::new().with_prev_key())).await.unwrap();
    assert_eq!(next(&mut w).await.watch_id(), 0);
    w.watch("f", Some(WatchOptions::new().with_filters([WatchFilterType::NoDelete]))).await.unwrap();
    let second = next(&mut w).await;
    assert!(second.created());
    assert_eq!(second.watch_id(), 1);

    c.put("f", "1", None).await.unwrap();
    c.put("f", "2", None).await.unwrap();
    c.delete("f", None).await.unwrap();
    c.put("end", "x", None).await.unwrap();
    // Wait for both watches to see the whole sequence; responses of the two interleave.
    let (mut with_prev, mut no_delete) = (Vec::new(), Vec::new());
    while with_prev.len() < 3 || no_delete.len() < 2 {
        let resp = next(&mut w).await;
        match resp.watch_id() {
            0 => with_prev.extend(events(&resp)),
            1 => no_delete.extend(events(&resp)),
            other => panic!("unexpected watch id {other}"),
        }
    }
    assert_eq!(
        with_prev,
        [(PUT, s("f"), s("1"), None), (PUT, s("f"), s("2"), Some(s("1"))), (DELETE, s("f"), s(""), Some(s("2")))]
    );
    assert_eq!(no_delete, [(PUT, s("f"), s("1"), None), (PUT, s("f"), s("2"), None)]);
    solo.stop().await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_created_then_canceled() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let first = c.put("c", "1", None).await.unwrap().header().unwrap().revision();
    c.put("c", "2", None).await.unwrap();
    let compact_at = c.put("c", "3", None).await.unwrap().header().unwrap().revision();
    c.compact(compact_at, None).await.unwrap();

    let mut w = c.watch("c", Some(WatchOptions::new().with_start_revision(first))).await.unwrap();
    let created = next(&mut w).await;
    assert!(created.created() && !created.canceled());
    let canceled = next(&mut w).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), created.watch_id());
    assert_eq!(canceled.compact_revision(), compact_at);
    assert!(canceled.events().is_empty());
    solo.stop().await;
}

#[tokio::test]
async fn cancel_stops_only_that_watch() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let mut w = c.watch("gone", None).await.unwrap();
    assert_eq!(next(&mut w).await.watch_id(), 0);
    w.watch("kept", None).await.unwrap();
    assert_eq!(next(&mut w).await.watch_id(), 1);

    w.cancel(0).await.unwrap();
    let canceled = next(&mut w).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), 0);
    c.put("gone", "x", None).await.unwrap();
    c.put("kept", "y", None).await.unwrap();
    let resp = next(&mut w).await;
    assert_eq!(resp.watch_id(), 1);
    assert_eq!(events(&resp), [(PUT, s("kept"), s("y"), None)]);
    solo.stop().await;
}

#[tokio::test]
async fn progress_request_reports_the_current_revision() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let mut w = c.watch("p", None).await.unwrap();
    next(&mut w).await;
    let rev = c.put("unrelated", "1", None).await.unwrap().header().unwrap().revision();
    w.request_progress().await.unwrap();
    let progress = next(&mut w).await;
    assert_eq!(progress.watch_id(), -1);
    assert!(progress.events().is_empty() && !progress.created() && !progress.canceled());
    assert!(progress.header().unwrap().revision() >= rev);
    solo.stop().await;
}

#[tokio::test]
async fn progress_notify_reports_a_quiet_watch() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let rev = c.put("q-other", "1", None).await.unwrap().header().unwrap().revision();
    let mut w = c.watch("q", Some(WatchOptions::new().with_progress_notify())).await.unwrap();
    let created = next(&mut w).await;
    let notify = next(&mut w).await;
    assert_eq!(notify.watch_id(), created.watch_id());
    assert!(notify.events().is_empty() && !notify.canceled());
    assert!(notify.header().unwrap().revision() >= rev);
    solo.stop().await;
}

#[tokio::test]
async fn refused_creates_answer_created_and_canceled_with_id_minus_one() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let mut w = c.watch("a", Some(WatchOptions::new().with_watch_id(7))).await.unwrap();
    assert_eq!(next(&mut w).await.watch_id(), 7);

    w.watch("b", Some(WatchOptions::new().with_watch_id(7))).await.unwrap();
    let dup = next(&mut w).await;
    assert!(dup.created() && dup.canceled());
    assert_eq!(dup.watch_id(), -1);
    assert_eq!(dup.cancel_reason(), "mvcc: duplicate watch ID provided on the WatchStream");

    w.watch("z", Some(WatchOptions::new().with_range("a"))).await.unwrap();
    let empty = next(&mut w).await;
    assert!(empty.created() && empty.canceled());
    assert_eq!(empty.cancel_reason(), "mvcc: watcher range is empty");

    // Auto-assigned IDs skip the ones in use.
    w.watch("c", None).await.unwrap();
    assert_eq!(next(&mut w).await.watch_id(), 0);
    solo.stop().await;
}

#[tokio::test]
async fn progress_after_catch_up_follows_every_older_event() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let start = c.put("h/0", "0", None).await.unwrap().header().unwrap().revision();
    for i in 1..150 {
        c.put(format!("h/{}", i % 7), i.to_string(), None).await.unwrap();
    }
    let current = solo.node.current_revision();
    let mut w = c.watch("h/", Some(WatchOptions::new().with_prefix().with_start_revision(start))).await.unwrap();
    w.request_progress().await.unwrap();
    next(&mut w).await; // created
    let mut last_rev = start - 1;
    loop {
        let resp = next(&mut w).await;
        if resp.watch_id() == -1 {
            assert_eq!(resp.header().unwrap().revision(), current);
            break;
        }
        for e in resp.events() {
            let rev = e.kv().unwrap().mod_revision();
            assert_eq!(rev, last_rev + 1, "events in order, no gaps");
            last_rev = rev;
        }
    }
    assert_eq!(last_rev, current, "every event up to the progress revision came first");
    solo.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_blocks_no_write() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let mut w = c.watch("slow/", Some(WatchOptions::new().with_prefix().with_prev_key())).await.unwrap();
    next(&mut w).await;
    // Far more than the stream buffer and the HTTP/2 window hold, written while nobody reads.
    const WRITES: usize = 250;
    let value = "v".repeat(4096);
    for i in 0..WRITES {
        c.put(format!("slow/{}", i % 10), format!("{i}{value}"), None).await.unwrap();
    }
    let mut count = 0;
    let mut last_rev = 0;
    while count < WRITES {
        let resp = next(&mut w).await;
        for e in resp.events() {
            let kv = e.kv().unwrap();
            assert!(kv.mod_revision() > last_rev);
            last_rev = kv.mod_revision();
            assert!(kv.value_str().unwrap().starts_with(&count.to_string()));
            assert_eq!(e.prev_kv().is_some(), count >= 10);
            count += 1;
        }
    }
    solo.stop().await;
}

#[tokio::test]
async fn ending_a_stream_ends_all_its_watch_tasks() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    c.put("e", "1", None).await.unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();

    let mut w = c.watch("e", Some(WatchOptions::new().with_progress_notify())).await.unwrap();
    next(&mut w).await;
    w.watch("e", Some(WatchOptions::new().with_start_revision(1))).await.unwrap();
    next(&mut w).await;
    w.watch("f", None).await.unwrap();
    next(&mut w).await;
    assert!(metrics.num_alive_tasks() > baseline, "the stream and its watch tasks run");

    drop(w);
    within("watch tasks to end", async {
        while metrics.num_alive_tasks() > baseline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    solo.stop().await;
}

#[tokio::test]
async fn a_large_revision_comes_in_fragments_when_asked() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let big = "x".repeat(100 * 1024);
    for i in 0..12 {
        c.put(format!("big/{i:02}"), big.as_str(), None).await.unwrap();
    }
    let opts = WatchOptions::new().with_prefix().with_prev_key().with_fragment();
    let mut w = c.watch("big/", Some(opts)).await.unwrap();
    next(&mut w).await;
    // One revision of 12 events carrying about 2.4 MB with prev_kv: over the 1.5 MiB limit.
    let puts: Vec<etcd_client::TxnOp> =
        (0..12).map(|i| etcd_client::TxnOp::put(format!("big/{i:02}"), big.as_str(), None)).collect();
    let rev = c.txn(etcd_client::Txn::new().and_then(puts)).await.unwrap().header().unwrap().revision();

    let mut parts = Vec::new();
    loop {
        let resp = next(&mut w).await;
        let last = !resp.0.fragment;
        parts.push(resp);
        if last {
            break;
        }
    }
    assert!(parts.len() >= 2, "split into fragments");
    let keys: Vec<String> = parts.iter().flat_map(events).map(|(_, k, _, _)| k).collect();
    assert_eq!(keys, (0..12).map(|i| format!("big/{i:02}")).collect::<Vec<_>>());
    assert!(parts.iter().all(|p| p.header().unwrap().revision() == rev));
    solo.stop().await;
}

#[tokio::test]
async fn watch_streams_end_when_the_node_stops() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let mut w = c.watch("s", None).await.unwrap();
    next(&mut w).await;
    solo.node.shutdown().await;
    let ended = within("stream end", w.message()).await.unwrap_err();
    let s = crate::support::grpc(ended);
    assert_eq!((s.code(), s.message()), (tonic::Code::Unavailable, "etcdserver: server stopped"));
    solo.stop().await;
}
