//! Eviction decisions: the tolerance a pod has, when its eviction is due (and that a
//! restarted clock delays it), cancellation, and the rate bound. Toleration matching itself
//! is tested with it, in `flotilla_apiserver::selector::toleration`.

use super::*;

fn taint(key: &str, effect: &str, value: Option<&str>) -> Taint {
    Taint { key: key.into(), effect: effect.into(), value: value.map(String::from), time_added: None }
}

fn toleration(key: &str, op: &str, value: &str, effect: &str, seconds: Option<i64>) -> Toleration {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Toleration { key: opt(key), operator: opt(op), value: opt(value), effect: opt(effect), toleration_seconds: seconds }
}

const UNREACHABLE: &str = flotilla_apiserver::selector::toleration::TAINT_NODE_UNREACHABLE;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn tolerance_is_the_shortest_used_toleration_or_none_when_a_taint_is_not_tolerated() {
    let unreachable = taint(UNREACHABLE, "NoExecute", None);
    let dedicated = taint("dedicated", "NoExecute", None);
    let both = [&unreachable, &dedicated];
    let tols = [
        toleration(UNREACHABLE, "Exists", "", "NoExecute", Some(300)),
        toleration("dedicated", "Exists", "", "NoExecute", Some(60)),
    ];
    assert_eq!(tolerance(&tols, &both), Tolerance::For(secs(60)));
    assert_eq!(tolerance(&tols[..1], &both), Tolerance::None, "dedicated is not tolerated");
    assert_eq!(tolerance(&[], &[&unreachable]), Tolerance::None);
    let forever = [toleration(UNREACHABLE, "Exists", "", "NoExecute", None)];
    assert_eq!(tolerance(&forever, &[&unreachable]), Tolerance::Forever);
    // The first matching toleration is the one used, even if a later one sets seconds.
    let first_wins = [forever[0].clone(), tols[0].clone()];
    assert_eq!(tolerance(&first_wins, &[&unreachable]), Tolerance::Forever);
    // Negative seconds count as zero: evicted at once.
    let negative = [toleration(UNREACHABLE, "Exists", "", "NoExecute", Some(-5))];
    assert_eq!(tolerance(&negative, &[&unreachable]), Tolerance::For(Duration::ZERO));
}

#[test]
fn an_eviction_is_due_its_toleration_after_the_clock_started_and_only_then() {
    let start = Instant::now();
    let key = Key::namespaced("default", "web");
    let mut clock = EvictionClock::default();
    let t = Tolerance::For(secs(300));
    assert_eq!(clock.due("u1", &key, t, Duration::ZERO, start), Due::At(start + secs(300)));
    // Seen again later (another tick, another taint swapped in): the clock keeps running.
    assert_eq!(clock.due("u1", &key, t, Duration::ZERO, start + secs(100)), Due::At(start + secs(300)));
    assert_eq!(
        clock.due("u1", &key, Tolerance::For(secs(30)), Duration::ZERO, start + secs(100)),
        Due::At(start + secs(30))
    );
    assert_eq!(clock.due("u2", &key, Tolerance::None, Duration::ZERO, start + secs(5)), Due::At(start + secs(5)));
    assert_eq!(clock.due("u3", &key, Tolerance::Forever, Duration::ZERO, start), Due::Never);
    // A taint whose timeAdded is ahead of our wall clock starts the clock then, not earlier.
    assert_eq!(clock.due("u4", &key, t, secs(20), start), Due::At(start + secs(320)));
}

#[test]
fn a_restarted_clock_delays_an_eviction_and_never_brings_it_forward() {
    let start = Instant::now();
    let key = Key::namespaced("default", "web");
    let t = Tolerance::For(secs(60));
    let mut old_leader = EvictionClock::default();
    assert_eq!(old_leader.due("u1", &key, t, Duration::ZERO, start), Due::At(start + secs(60)));
    // The new leader's controller first sees the pod 50 s later: it waits the full 60 s.
    let mut new_leader = EvictionClock::default();
    let seen = start + secs(50);
    assert_eq!(new_leader.due("u1", &key, t, Duration::ZERO, seen), Due::At(seen + secs(60)));
    // Evictions suspended (every node unhealthy) restart the clocks as well.
    assert_eq!(new_leader.reset(), 1);
    let resumed = seen + secs(200);
    assert_eq!(new_leader.due("u1", &key, t, Duration::ZERO, resumed), Due::At(resumed + secs(60)));
}

#[test]
fn leaving_the_tainted_nodes_cancels_scheduled_evictions_only() {
    let now = Instant::now();
    let mut clock = EvictionClock::default();
    let (timed, forever, evicted, stays) = (
        Key::namespaced("a", "timed"),
        Key::namespaced("a", "forever"),
        Key::namespaced("a", "gone"),
        Key::namespaced("a", "stays"),
    );
    clock.due("timed", &timed, Tolerance::For(secs(10)), Duration::ZERO, now);
    clock.due("forever", &forever, Tolerance::Forever, Duration::ZERO, now);
    clock.due("evicted", &evicted, Tolerance::None, Duration::ZERO, now);
    clock.mark_evicted("evicted");
    clock.due("stays", &stays, Tolerance::For(secs(10)), Duration::ZERO, now);
    assert!(clock.evicted("evicted") && !clock.evicted("timed"));
    let still: HashSet<String> = ["stays".to_string()].into();
    assert_eq!(clock.stop_except(&still), vec![timed.clone()]);
    // The cancelled pod's clock starts over if its node is tainted again.
    let later = now + secs(8);
    assert_eq!(clock.due("timed", &timed, Tolerance::For(secs(10)), Duration::ZERO, later), Due::At(later + secs(10)));
    assert_eq!(clock.due("stays", &stays, Tolerance::For(secs(10)), Duration::ZERO, later), Due::At(now + secs(10)));
}

#[test]
fn the_bucket_allows_a_second_worth_then_the_rate() {
    let start = Instant::now();
    let mut bucket = TokenBucket::new(2.0, start);
    assert!(bucket.try_take(start) && bucket.try_take(start));
    assert!(!bucket.try_take(start), "burst of one second's worth");
    assert!(!bucket.try_take(start + Duration::from_millis(400)));
    assert!(bucket.try_take(start + Duration::from_millis(500)));
    // A rate below one per second still allows one eviction, then one per 1/rate seconds.
    let mut slow = TokenBucket::new(0.1, start);
    assert!(slow.try_take(start));
    assert!(!slow.try_take(start + secs(9)));
    assert!(slow.try_take(start + secs(11)));
    // Idle time never saves up more than the capacity.
    let mut idle = TokenBucket::new(1.0, start);
    let later = start + secs(3600);
    assert!(idle.try_take(later));
    assert!(!idle.try_take(later));
}
