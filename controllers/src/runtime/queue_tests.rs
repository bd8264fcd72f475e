//! The work queue's contract, one property per test: deduplication while waiting, no key
//! handed out while it is processing (and not lost if re-added meanwhile), delays that keep
//! the earliest time, per-key exponential backoff reset by `forget`, and shutdown.
//!
//! The crate's tokio has no `test-util`, so time is real: a delay that must *not* pass is
//! an hour long, one that must pass is a few milliseconds and is awaited with a deadline.

use std::time::Duration;

use super::*;

/// How long a `get` that must succeed may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);
/// A delay no test outlives.
const NEVER: Duration = Duration::from_secs(3600);

fn key(name: &str) -> Key {
    Key::namespaced("default", name)
}

async fn next(queue: &WorkQueue) -> Key {
    tokio::time::timeout(DEADLINE, queue.get()).await.expect("a key became ready in time").expect("queue is running")
}

#[tokio::test]
async fn a_key_waits_at_most_once() {
    let q = WorkQueue::default();
    q.add(key("a"));
    q.add(key("a"));
    q.add(key("b"));
    q.add(key("a"));
    assert_eq!(q.len(), 2);
    assert_eq!(next(&q).await, key("a"));
    assert_eq!(next(&q).await, key("b"));
    assert!(q.is_empty());
    assert_eq!(q.processing_len(), 2);
}

#[tokio::test]
async fn a_processing_key_is_not_handed_out_again_until_done_and_then_is() {
    let q = WorkQueue::default();
    q.add(key("a"));
    assert_eq!(next(&q).await, key("a"));
    // Re-added while processing: remembered, but not ready.
    q.add(key("a"));
    q.add(key("a"));
    assert_eq!(q.len(), 0);
    q.add(key("b"));
    assert_eq!(next(&q).await, key("b"), "only the other key is available");
    q.done(&key("a"));
    assert_eq!(next(&q).await, key("a"), "the re-add is processed after done");
    q.done(&key("a"));
    q.done(&key("b"));
    assert!(q.is_empty());
    assert_eq!(q.processing_len(), 0);
}

#[tokio::test]
async fn done_without_a_re_add_does_not_requeue() {
    let q = WorkQueue::default();
    q.add(key("a"));
    let a = next(&q).await;
    q.done(&a);
    assert!(q.is_empty());
    assert_eq!(q.processing_len(), 0);
}

#[tokio::test]
async fn add_after_waits_for_the_delay_and_keeps_the_earliest_time() {
    let q = WorkQueue::default();
    q.add_after(key("late"), NEVER);
    q.add_after(key("soon"), Duration::from_millis(20));
    assert_eq!((q.len(), q.delayed_len()), (0, 2));
    assert_eq!(next(&q).await, key("soon"));
    assert_eq!(q.delayed_len(), 1, "the hour-long delay is still pending");

    // An earlier time replaces a later one...
    q.add_after(key("late"), Duration::from_millis(10));
    assert_eq!(next(&q).await, key("late"));
    // ...and a later one does not replace an earlier one.
    q.add_after(key("c"), Duration::from_millis(10));
    q.add_after(key("c"), NEVER);
    assert_eq!(next(&q).await, key("c"));
    assert_eq!(q.delayed_len(), 0);
}

#[tokio::test]
async fn a_delayed_key_that_falls_due_while_processing_waits_for_done() {
    let q = WorkQueue::default();
    q.add(key("a"));
    assert_eq!(next(&q).await, key("a"));
    q.add_after(key("a"), Duration::from_millis(5));
    q.add(key("b"));
    assert_eq!(next(&q).await, key("b"));
    // Wait for the delay to be promoted (it becomes dirty, not ready, as `a` is processing).
    let deadline = Instant::now() + DEADLINE;
    while q.delayed_len() > 0 {
        assert!(Instant::now() < deadline, "delay not promoted in time");
        let got = tokio::time::timeout(Duration::from_millis(20), q.get()).await;
        assert!(got.is_err(), "nothing may be handed out while `a` is processing: {got:?}");
    }
    q.done(&key("a"));
    assert_eq!(next(&q).await, key("a"));
}

#[tokio::test]
async fn failures_back_off_exponentially_until_forgotten() {
    let backoff = Backoff { base: Duration::from_millis(10), max: Duration::from_millis(40) };
    let q = WorkQueue::new(backoff);
    let delays: Vec<Duration> = (0..4).map(|_| q.add_rate_limited(key("a"))).collect();
    let ms = |m| Duration::from_millis(m);
    assert_eq!(delays, vec![ms(10), ms(20), ms(40), ms(40)]);
    assert_eq!(q.failures(&key("a")), 4);
    assert_eq!(q.failures(&key("b")), 0, "failures are per key");
    assert_eq!(q.add_rate_limited(key("b")), ms(10));

    // The retries collapse into one pending entry per key, handed out once.
    assert_eq!(q.delayed_len(), 2);
    let mut got = vec![next(&q).await, next(&q).await];
    got.sort();
    assert_eq!(got, vec![key("a"), key("b")]);

    q.forget(&key("a"));
    assert_eq!(q.failures(&key("a")), 0);
    assert_eq!(q.add_rate_limited(key("a")), ms(10), "backoff restarts from the base after forget");
}

#[tokio::test]
async fn shutdown_wakes_waiting_workers_and_ignores_later_adds() {
    let q = WorkQueue::default();
    let waiter = tokio::spawn({
        let q = q.clone();
        async move { q.get().await }
    });
    // Let the waiter block on the empty queue.
    tokio::task::yield_now().await;
    q.shutdown();
    let got = tokio::time::timeout(DEADLINE, waiter).await.expect("waiter woke in time").expect("waiter task");
    assert_eq!(got, None);
    q.add(key("a"));
    q.add_after(key("b"), Duration::from_millis(1));
    assert_eq!((q.len(), q.delayed_len()), (0, 0));
    assert_eq!(q.get().await, None);
    assert!(q.is_shutdown());
}
