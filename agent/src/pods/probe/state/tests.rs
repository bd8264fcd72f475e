use k8s_openapi::api::core::v1::ExecAction;

use super::*;

const S: Duration = Duration::from_secs(1);

fn probe(delay: i32, period: i32, success: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(ExecAction { command: Some(vec!["true".into()]) }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        ..Probe::default()
    }
}

fn container(startup: Option<Probe>, liveness: Option<Probe>, readiness: Option<Probe>) -> Container {
    Container {
        name: "app".into(),
        startup_probe: startup,
        liveness_probe: liveness,
        readiness_probe: readiness,
        ..Container::default()
    }
}

fn kinds(due: &[Due]) -> Vec<Kind> {
    due.iter().map(|d| d.kind).collect()
}

fn fail() -> Outcome {
    Outcome::Failure("exit 1".into())
}

#[test]
fn defaults_follow_kubernetes_and_liveness_success_threshold_is_one() {
    let s = Settings::of(&Probe::default(), Kind::Readiness);
    assert_eq!((s.initial_delay, s.period, s.timeout), (Duration::ZERO, 10 * S, S));
    assert_eq!((s.success_threshold, s.failure_threshold, s.termination_grace), (1, 3, None));
    let live = Settings::of(&probe(0, 5, 4, 2), Kind::Liveness);
    assert_eq!((live.success_threshold, live.failure_threshold, live.period), (1, 2, 5 * S));
}

#[test]
fn initial_delay_and_period_are_respected_and_one_run_is_in_flight_at_a_time() {
    let c = container(None, Some(probe(5, 10, 1, 3)), None);
    let mut p = Probes::default();
    let t0 = Instant::now();
    p.track([(&c, "id1")], t0);
    assert!(p.due(t0 + 4 * S).is_empty(), "not before the initial delay");
    assert_eq!(p.next_due(), Some(t0 + 5 * S));
    assert_eq!(kinds(&p.due(t0 + 5 * S)), vec![Kind::Liveness]);
    assert_eq!(p.next_due(), None, "in flight: nothing else is scheduled");
    assert!(p.due(t0 + 30 * S).is_empty(), "never two runs at once");
    assert!(!p.record("id1", Kind::Liveness, &Outcome::Success), "liveness starts passing: no change");
    assert_eq!(p.next_due(), Some(t0 + 15 * S), "a period after the run was handed out");
}

#[test]
fn liveness_failing_failure_threshold_times_in_a_row_asks_for_a_kill_once() {
    let mut live = probe(0, 10, 1, 3);
    live.termination_grace_period_seconds = Some(7);
    let c = container(None, Some(live), None);
    let mut p = Probes::default();
    let mut now = Instant::now();
    p.track([(&c, "id1")], now);
    for outcome in [fail(), fail(), Outcome::Success, fail(), fail()] {
        assert_eq!(p.due(now).len(), 1);
        assert!(!p.record("id1", Kind::Liveness, &outcome), "a streak must reach the threshold");
        now += 10 * S;
    }
    assert!(p.kills().next().is_none());
    p.due(now);
    assert!(p.record("id1", Kind::Liveness, &fail()), "the third failure in a row");
    let (name, kill) = p.kills().next().expect("a kill");
    assert_eq!((name, kill.id.as_str(), kill.grace), ("app", "id1", Some(7 * S)));
    assert!(kill.reason.starts_with("Liveness probe failed: exit 1"));
    assert!(p.due(now + 100 * S).is_empty(), "a killed attempt is not probed again");
    assert_eq!(p.view("app"), Some(View { started: true, ready: true }), "no readiness probe: ready");
}

#[test]
fn the_startup_probe_gates_the_others_and_never_runs_again_once_passed() {
    let c = container(Some(probe(0, 1, 1, 30)), Some(probe(0, 10, 1, 1)), Some(probe(0, 10, 1, 1)));
    let mut p = Probes::default();
    let t0 = Instant::now();
    p.track([(&c, "id1")], t0);
    assert_eq!(p.view("app"), Some(View { started: false, ready: false }));
    for i in 0..3 {
        assert_eq!(kinds(&p.due(t0 + i * S)), vec![Kind::Startup], "only the startup probe runs");
        assert!(!p.record("id1", Kind::Startup, &fail()));
    }
    assert_eq!(kinds(&p.due(t0 + 3 * S)), vec![Kind::Startup]);
    assert!(p.record("id1", Kind::Startup, &Outcome::Success), "started");
    assert_eq!(p.view("app"), Some(View { started: true, ready: false }), "readiness still to pass");
    let due = kinds(&p.due(t0 + 3 * S));
    assert_eq!(due, vec![Kind::Liveness, Kind::Readiness], "both run once started");
    assert!(p.record("id1", Kind::Readiness, &Outcome::Success));
    assert_eq!(p.view("app"), Some(View { started: true, ready: true }));
    assert!(!kinds(&p.due(t0 + 60 * S)).contains(&Kind::Startup), "the startup probe is done");
}

#[test]
fn a_failing_startup_probe_kills_and_liveness_never_ran() {
    let c = container(Some(probe(0, 1, 1, 2)), Some(probe(0, 1, 1, 1)), None);
    let mut p = Probes::default();
    let t0 = Instant::now();
    p.track([(&c, "id1")], t0);
    p.due(t0);
    assert!(!p.record("id1", Kind::Startup, &fail()));
    assert_eq!(kinds(&p.due(t0 + S)), vec![Kind::Startup]);
    assert!(p.record("id1", Kind::Startup, &fail()));
    assert!(p.kills().next().unwrap().1.reason.starts_with("Startup probe failed"));
}

#[test]
fn readiness_needs_its_thresholds_both_ways_and_a_new_attempt_starts_unready() {
    let c = container(None, None, Some(probe(0, 1, 2, 2)));
    let mut p = Probes::default();
    let mut now = Instant::now();
    p.track([(&c, "id1")], now);
    let mut feed = |p: &mut Probes, outcome: Outcome| {
        assert_eq!(p.due(now).len(), 1);
        now += S;
        let changed = p.record("id1", Kind::Readiness, &outcome);
        (changed, p.view("app").unwrap().ready)
    };
    assert_eq!(feed(&mut p, Outcome::Success), (false, false), "one success of two");
    assert_eq!(feed(&mut p, Outcome::Success), (true, true));
    assert_eq!(feed(&mut p, fail()), (false, true), "one failure of two");
    assert_eq!(feed(&mut p, Outcome::Unknown("cannot run".into())), (false, true), "unknown changes nothing");
    assert_eq!(feed(&mut p, fail()), (true, false), "the second failure in a row: unknown did not break it");
    assert!(p.kills().next().is_none(), "readiness never kills");

    p.track([(&c, "id2")], now);
    assert_eq!(p.view("app"), Some(View { started: true, ready: false }), "a new attempt starts unready");
    assert!(!p.record("id1", Kind::Readiness, &Outcome::Success), "results of the old attempt are ignored");
    p.track([], now);
    assert_eq!(p.view("app"), None, "not running: not tracked");
}
