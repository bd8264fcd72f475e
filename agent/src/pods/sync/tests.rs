//! The pod sync core against the in-memory runtime: a rig plays the worker (observe, plan,
//! apply with hooks, report, run due probes), with a hand-moved clock.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, PodSpec, PodStatus, Probe,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::api::ApiPool;
use crate::pods::effects;
use crate::pods::probe::{action, hooks, run};
use crate::pods::status::{self, Input};
use crate::pods::Context;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::Runtime;
use std::sync::Arc;

const INITIAL: Duration = Duration::from_secs(10);
const MAX: Duration = Duration::from_secs(300);
const IMAGE: &str = "busybox:1.36";
const UID: &str = "uid-1";

fn pod(policy: &str, init: &[&str], apps: &[&str]) -> Pod {
    let container = |n: &&str| Container { name: n.to_string(), image: Some(IMAGE.into()), ..Container::default() };
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: (!init.is_empty()).then(|| init.iter().map(container).collect()),
            containers: apps.iter().map(container).collect(),
            node_name: Some("n1".into()),
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn context(rt: Arc<FakeRuntime>) -> Context {
    let pool = ApiPool::new(&["http://127.0.0.1:9".to_string()], Duration::from_secs(1), None).unwrap();
    Context {
        runtime: rt,
        pool: Arc::new(pool),
        node_name: "n1".into(),
        host_ip: "192.0.2.1".into(),
        backoff_initial: INITIAL,
        backoff_max: MAX,
        resync: Duration::from_secs(10),
        volumes: crate::pods::volumes::VolumeManager::new(None),
        allow_privileged: false,
        dns: Default::default(),
        tokens: Default::default(),
    }
}

/// Plays the worker: observe → plan → apply, reporting status as the worker does.
struct Rig {
    sync: PodSync,
    rt: Arc<FakeRuntime>,
    /// The worker context the steps run in (its API pool points nowhere: these pods
    /// reference no API objects).
    ctx: Context,
    pod: Option<Pod>,
    now: Instant,
    wall: Timestamp,
    /// Every status the worker would have written, in order.
    reports: Vec<PodStatus>,
    deleted: bool,
    last_plan: Plan,
    /// Makes `RunContainer` of this container fail as a config error would.
    config_error: Option<(String, String)>,
    /// `RunContainer` steps tried.
    runs: usize,
}

impl Rig {
    fn new(pod: Pod) -> Self {
        Self::with_runtime(pod, Arc::new(FakeRuntime::new(Ipv4Addr::new(10, 1, 2, 0))))
    }

    fn with_runtime(pod: Pod, rt: Arc<FakeRuntime>) -> Self {
        let ctx = context(rt.clone());
        Self {
            ctx,
            sync: PodSync::new(INITIAL, MAX),
            rt,
            pod: Some(pod),
            now: Instant::now(),
            wall: Timestamp::now(),
            reports: Vec::new(),
            deleted: false,
            last_plan: Plan::default(),
            config_error: None,
            runs: 0,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.wall = self.wall.checked_add(d).unwrap();
    }

    async fn observe(&self) -> Observed {
        effects::observe(self.rt.as_ref(), UID, self.pod.as_ref()).await.unwrap()
    }

    fn report(&mut self, observed: &Observed, plan: &Plan) {
        let Some(pod) = &self.pod else { return };
        let base = self.reports.last().or(pod.status.as_ref());
        let input = Input { pod, observed, plan, base, host_ip: "192.0.2.1", runtime: "fake", now: self.wall };
        if let Some(s) = status::compute(&input) {
            if Some(&s) != base {
                self.reports.push(s);
            }
        }
    }

    /// Sync until the plan is empty (or the pod is deleted).
    async fn settle(&mut self) -> Observed {
        for _ in 0..20 {
            let observed = self.observe().await;
            let plan = self.sync.plan(self.pod.as_ref(), &observed, self.now);
            if plan.steps.is_empty() || plan.steps.iter().any(Step::removes_state) {
                self.report(&observed, &plan);
            }
            self.last_plan = plan.clone();
            if plan.steps.is_empty() {
                return observed;
            }
            for step in &plan.steps {
                if *step == Step::DeletePod {
                    self.deleted = true;
                    return self.observe().await;
                }
                let result = self.apply(&observed, step).await;
                self.sync.applied(step, result.as_ref().map(|_| ()), self.now);
                match result {
                    Err(AgentError::ContainerConfig { .. }) => break,
                    other => other.unwrap(),
                }
            }
        }
        panic!("sync did not settle");
    }

    async fn apply(&mut self, observed: &Observed, step: &Step) -> Result<(), AgentError> {
        if let Step::RunContainer { name, .. } = step {
            self.runs += 1;
            if let Some((container, message)) = self.config_error.clone().filter(|(c, _)| c == name) {
                let reason = "CreateContainerConfigError";
                return Err(AgentError::ContainerConfig { container, reason, message });
            }
        }
        hooks::apply(&self.ctx, self.pod.as_ref(), observed, step).await
    }

    /// Run the probes due now, as the worker does; how many ran and whether any result
    /// asks for a sync.
    async fn probe(&mut self) -> (usize, bool) {
        let observed = self.observe().await;
        let pod = self.pod.clone().unwrap();
        let ip = hooks::pod_ip(&self.ctx, observed.sandbox.as_ref().and_then(|s| s.ip.as_deref()));
        let due = self.sync.due_probes(self.now);
        let mut changed = false;
        for d in &due {
            let c = spec::containers(&pod).iter().find(|c| c.name == d.container).unwrap();
            let action = action::of_probe(d.kind.of(c).unwrap(), c, &ip);
            let outcome = run::run(self.rt.as_ref(), &d.id, &action, d.timeout).await;
            changed |= self.sync.probe_result(&d.id, d.kind, &outcome);
        }
        (due.len(), changed)
    }

    fn status(&self) -> &PodStatus {
        self.reports.last().expect("a status was reported")
    }

    fn container(&self, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
        let s = self.status();
        let all = s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten());
        all.into_iter().find(|c| c.name == name).cloned().unwrap()
    }

    fn condition(&self, t: &str) -> String {
        let cs = self.status().conditions.as_ref().unwrap();
        cs.iter().find(|c| c.type_ == t).unwrap().status.clone()
    }

    fn phase(&self) -> String {
        self.status().phase.clone().unwrap()
    }

    fn waiting_reason(&self, name: &str) -> Option<String> {
        self.container(name).state.and_then(|s| s.waiting).and_then(|w| w.reason)
    }
}

fn running(o: &Observed, name: &str) -> bool {
    o.latest(name).is_some_and(ContainerInfo::is_running)
}

#[tokio::test]
async fn init_containers_run_one_at_a_time_in_order_before_the_app_containers() {
    let mut rig = Rig::new(pod("Always", &["a", "b"], &["app"]));
    let o = rig.settle().await;
    assert!(running(&o, "a") && o.latest("b").is_none() && o.latest("app").is_none());
    assert_eq!(rig.phase(), "Pending");
    assert_eq!(rig.condition("Initialized"), "False");
    assert_eq!(rig.waiting_reason("app").as_deref(), Some("PodInitializing"));
    assert!(rig.status().pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.1.2.")));

    assert!(rig.rt.exit(UID, "a", 0));
    let o = rig.settle().await;
    assert!(running(&o, "b") && o.latest("app").is_none(), "b starts only after a succeeded");

    assert!(rig.rt.exit(UID, "b", 0));
    let o = rig.settle().await;
    assert!(running(&o, "app"));
    assert_eq!(rig.phase(), "Running");
    assert_eq!((rig.condition("Initialized"), rig.condition("Ready")), ("True".into(), "True".into()));
    assert_eq!(rig.container("a").state.unwrap().terminated.unwrap().reason.as_deref(), Some("Completed"));
}

#[tokio::test]
async fn a_failed_init_container_is_retried_with_backoff_unless_the_policy_is_never() {
    let mut rig = Rig::new(pod("Always", &["init"], &["app"]));
    rig.settle().await;
    rig.rt.exit(UID, "init", 1);
    let o = rig.settle().await;
    assert_eq!(o.latest("init").unwrap().attempt, 1, "first retry is immediate");
    rig.rt.exit(UID, "init", 1);
    let o = rig.settle().await;
    assert_eq!(o.latest("init").unwrap().attempt, 1, "second retry waits");
    assert_eq!(rig.waiting_reason("init").as_deref(), Some("CrashLoopBackOff"));
    assert!(o.latest("app").is_none());
    rig.advance(INITIAL);
    assert_eq!(rig.settle().await.latest("init").unwrap().attempt, 2);

    let mut never = Rig::new(pod("Never", &["init"], &["app"]));
    never.settle().await;
    never.rt.exit(UID, "init", 1);
    let o = never.settle().await;
    assert_eq!(o.attempts("init").len(), 1, "not retried");
    assert!(o.latest("app").is_none(), "app never starts");
    assert_eq!(never.phase(), "Failed");
}

#[tokio::test]
async fn restart_policies_decide_which_exits_restart_and_the_final_phase() {
    // (policy, exit code, restarted?, phase when not restarted)
    let cases = [
        ("Always", 0, true, ""),
        ("Always", 1, true, ""),
        ("OnFailure", 1, true, ""),
        ("OnFailure", 0, false, "Succeeded"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 2, false, "Failed"),
    ];
    for (policy, code, restarts, phase) in cases {
        let mut rig = Rig::new(pod(policy, &[], &["app"]));
        rig.settle().await;
        rig.rt.exit(UID, "app", code);
        let o = rig.settle().await;
        assert_eq!(running(&o, "app"), restarts, "{policy} exit {code}");
        if restarts {
            assert_eq!(rig.container("app").restart_count, 1);
            assert_eq!(rig.phase(), "Running");
            let last = rig.container("app").last_state.unwrap().terminated.unwrap();
            assert_eq!(last.exit_code, code);
        } else {
            assert_eq!(rig.phase(), phase, "{policy} exit {code}");
            assert_eq!(rig.condition("Ready"), "False");
            let t = rig.container("app").state.unwrap().terminated.unwrap();
            assert_eq!(t.exit_code, code);
        }
    }
}

#[tokio::test]
async fn a_crash_loop_backs_off_doubling_to_the_cap() {
    let mut rig = Rig::new(pod("Always", &[], &["app"]));
    rig.settle().await;
    rig.rt.exit(UID, "app", 1);
    rig.settle().await; // the first restart is immediate
    let mut waits = Vec::new();
    for restart in 2..=8 {
        rig.advance(Duration::from_secs(1));
        rig.rt.exit(UID, "app", 1);
        let o = rig.settle().await;
        assert!(!running(&o, "app"));
        assert_eq!(rig.phase(), "Running", "a crash-looping Always pod stays Running");
        let waiting = rig.container("app").state.unwrap().waiting.unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let wait = rig.last_plan.wake_at.expect("wakes at the end of the back-off") - rig.now;
        assert!(waiting.message.unwrap().contains(&format!("back-off {}s", wait.as_secs())));
        waits.push(wait.as_secs());
        rig.advance(wait - Duration::from_millis(1));
        assert!(!running(&rig.settle().await, "app"), "not before the back-off ends");
        rig.advance(Duration::from_millis(1));
        let o = rig.settle().await;
        assert!(running(&o, "app"));
        assert_eq!(rig.container("app").restart_count, restart);
        assert!(o.containers.len() <= 2, "old attempts are removed");
    }
    assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300]);
}

#[tokio::test]
async fn termination_stops_reports_removes_and_then_deletes_the_pod() {
    let mut rig = Rig::new(pod("Always", &[], &["a", "b"]));
    rig.settle().await;
    let pod = rig.pod.as_mut().unwrap();
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    pod.metadata.deletion_grace_period_seconds = Some(5);
    let observed = rig.observe().await;
    let plan = rig.sync.plan(rig.pod.as_ref(), &observed, rig.now);
    assert!(plan
        .steps
        .iter()
        .all(|s| matches!(s, Step::StopContainer { grace, .. } if *grace == Duration::from_secs(5))));
    assert_eq!(plan.steps.len(), 2);
    let o = rig.settle().await;
    assert!(rig.deleted, "the Pod object is deleted last");
    assert!(o.is_empty(), "containers and sandbox removed before the delete");
    assert_eq!(rig.phase(), "Failed", "stopped containers end the pod Failed");
    for name in ["a", "b"] {
        let t = rig.container(name).state.unwrap().terminated.expect("final state reported before removal");
        assert_eq!(t.exit_code, crate::runtime::fake::STOPPED_EXIT_CODE);
    }
}

#[tokio::test]
async fn a_pod_gone_from_the_api_is_torn_down_without_a_delete() {
    let mut rig = Rig::new(pod("Always", &[], &["app"]));
    rig.settle().await;
    rig.pod = None;
    let o = rig.settle().await;
    assert!(o.is_empty() && !rig.deleted);
    assert!(rig.rt.list_sandboxes(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn status_is_reported_only_when_it_changes() {
    let mut rig = Rig::new(pod("Always", &["init"], &["app"]));
    rig.settle().await;
    rig.rt.exit(UID, "init", 0);
    rig.settle().await;
    let reports = rig.reports.len();
    for _ in 0..3 {
        rig.advance(Duration::from_secs(30)); // time alone changes nothing
        rig.settle().await;
    }
    assert_eq!(rig.reports.len(), reports, "no change, no write");
    let ready_since = rig.status().conditions.as_ref().unwrap()[3].last_transition_time.clone();
    rig.rt.exit(UID, "app", 1);
    rig.settle().await;
    assert_eq!(rig.reports.len(), reports + 1, "a restart is one change");
    let ready = &rig.status().conditions.as_ref().unwrap()[3];
    assert_eq!((ready.type_.as_str(), &ready.last_transition_time), ("Ready", &ready_since), "Ready stayed True");
    assert_eq!(rig.status().start_time, rig.reports[0].start_time, "startTime is set once");
}

#[tokio::test]
async fn after_an_agent_restart_running_containers_are_adopted_not_restarted() {
    let mut rig = Rig::new(pod("Always", &["init"], &["app"]));
    rig.settle().await;
    rig.rt.exit(UID, "init", 0);
    rig.settle().await;
    rig.rt.exit(UID, "app", 3);
    let before = rig.settle().await;
    let (starts, written) = (rig.rt.starts(), rig.status().clone());

    // A new agent: fresh sync state, same runtime, the Pod as the API shows it.
    let mut pod = rig.pod.clone().unwrap();
    pod.status = Some(written.clone());
    let mut fresh = Rig::with_runtime(pod, rig.rt);
    let after = fresh.settle().await;
    assert_eq!(fresh.rt.starts(), starts, "nothing started again");
    assert_eq!(after.latest("app").unwrap().id, before.latest("app").unwrap().id);
    assert!(fresh.reports.is_empty(), "the API's status is still right: nothing to write");
    assert_eq!(written.container_statuses.unwrap()[0].restart_count, 1, "restart count comes from the labels");
}

#[tokio::test]
async fn missing_images_wait_with_pull_errors_and_never_means_never() {
    let rt = Arc::new(FakeRuntime::new(Ipv4Addr::new(10, 1, 2, 0)));
    rt.set_image_missing(IMAGE, true);
    let mut rig = Rig::with_runtime(pod("Always", &[], &["app"]), rt);
    rig.settle().await;
    assert_eq!(rig.waiting_reason("app").as_deref(), Some("ErrImagePull"));
    rig.advance(Duration::from_secs(1));
    rig.settle().await;
    assert_eq!(rig.waiting_reason("app").as_deref(), Some("ImagePullBackOff"));
    assert_eq!(rig.phase(), "Pending");
    rig.rt.set_image_missing(IMAGE, false);
    rig.advance(INITIAL);
    assert!(running(&rig.settle().await, "app"), "runs once the image is there");

    let mut p = pod("Always", &[], &["app"]);
    p.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("Never".into());
    let rt = Arc::new(FakeRuntime::new(Ipv4Addr::new(10, 1, 2, 0)));
    rt.set_image_missing(IMAGE, true);
    let mut rig = Rig::with_runtime(p, rt);
    rig.settle().await;
    assert_eq!(rig.waiting_reason("app").as_deref(), Some("ErrImageNeverPull"));
}

#[tokio::test]
async fn nothing_is_started_for_a_pod_whose_phase_is_terminal() {
    let mut p = pod("Always", &[], &["app"]);
    p.status = Some(PodStatus { phase: Some("Succeeded".into()), ..PodStatus::default() });
    let mut rig = Rig::new(p);
    let o = rig.settle().await;
    assert!(o.is_empty());
    assert_eq!(rig.rt.starts(), 0);
}

// ---- probes, hooks and config errors ----

fn exec_probe(period: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(ExecAction { command: Some(vec!["check".into()]) }),
        period_seconds: Some(period),
        failure_threshold: Some(failure),
        ..Probe::default()
    }
}

/// A pod whose one container `app` is shaped by `f`.
fn pod_with(policy: &str, f: impl FnOnce(&mut Container)) -> Pod {
    let mut p = pod(policy, &[], &["app"]);
    f(&mut p.spec.as_mut().unwrap().containers[0]);
    p
}

fn transition(rig: &Rig, t: &str) -> Time {
    let cs = rig.status().conditions.as_ref().unwrap();
    cs.iter().find(|c| c.type_ == t).unwrap().last_transition_time.clone().unwrap()
}

#[tokio::test]
async fn a_failing_liveness_probe_kills_the_container_which_restarts_with_backoff() {
    let mut rig = Rig::new(pod_with("Always", |c| {
        let mut probe = exec_probe(10, 3);
        probe.termination_grace_period_seconds = Some(3);
        c.liveness_probe = Some(probe);
    }));
    let first = rig.settle().await.latest("app").unwrap().id.clone();
    assert_eq!(rig.probe().await, (1, false), "passing: nothing changes");
    rig.rt.set_exec_result(UID, "app", 1);
    for _ in 0..2 {
        rig.advance(Duration::from_secs(10));
        assert_eq!(rig.probe().await, (1, false), "below the failure threshold");
        assert!(running(&rig.settle().await, "app"));
    }
    rig.advance(Duration::from_secs(10));
    assert_eq!(rig.probe().await, (1, true), "the third failure asks for a kill");
    let plan = rig.sync.plan(rig.pod.as_ref(), &rig.observe().await, rig.now);
    assert_eq!(plan.steps, vec![Step::StopContainer { id: first.clone(), grace: Duration::from_secs(3) }]);
    let o = rig.settle().await;
    assert!(running(&o, "app") && o.latest("app").unwrap().id != first, "restarted at once the first time");
    assert_eq!(rig.container("app").restart_count, 1);
    let last = rig.container("app").last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, crate::runtime::fake::STOPPED_EXIT_CODE);
    assert!(rig.rt.execs().iter().all(|e| e.command == ["check"]));

    // The new attempt is probed afresh and killed again: now the back-off holds it.
    for _ in 0..3 {
        rig.advance(Duration::from_secs(10));
        rig.probe().await;
    }
    assert_eq!(rig.rt.execs().last().unwrap().id, rig.observe().await.latest("app").unwrap().id);
    let o = rig.settle().await;
    assert!(!running(&o, "app"));
    assert_eq!(rig.waiting_reason("app").as_deref(), Some("CrashLoopBackOff"));
    rig.advance(INITIAL);
    rig.settle().await;
    assert_eq!(rig.container("app").restart_count, 2);
}

#[tokio::test]
async fn readiness_gates_the_ready_conditions_both_ways() {
    let mut rig = Rig::new(pod_with("Always", |c| c.readiness_probe = Some(exec_probe(5, 1))));
    rig.settle().await;
    assert_eq!((rig.phase(), rig.condition("Ready")), ("Running".into(), "False".into()), "unready until probed");
    let app = rig.container("app");
    assert_eq!((app.ready, app.started), (false, Some(true)));
    assert_eq!(rig.status().conditions.as_ref().unwrap()[3].reason.as_deref(), Some("ContainersNotReady"));

    rig.advance(Duration::from_secs(2));
    assert_eq!(rig.probe().await, (1, true));
    rig.settle().await;
    assert_eq!((rig.condition("ContainersReady"), rig.condition("Ready")), ("True".into(), "True".into()));
    assert_eq!(transition(&rig, "Ready"), status::time(rig.wall));
    assert!(rig.container("app").ready);

    rig.advance(Duration::from_secs(5));
    rig.rt.set_exec_result(UID, "app", 1);
    assert_eq!(rig.probe().await, (1, true));
    let o = rig.settle().await;
    assert!(running(&o, "app"), "readiness never restarts");
    assert_eq!((rig.condition("ContainersReady"), rig.condition("Ready")), ("False".into(), "False".into()));
    assert_eq!(transition(&rig, "Ready"), status::time(rig.wall), "a new transition time");
    assert!(!rig.container("app").ready);
}

#[tokio::test]
async fn the_startup_probe_gates_liveness_until_it_passes() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut rig = Rig::new(pod_with("Always", |c| {
        c.startup_probe = Some(Probe {
            tcp_socket: Some(TCPSocketAction { host: Some("127.0.0.1".into()), port: IntOrString::Int(port.into()) }),
            period_seconds: Some(1),
            failure_threshold: Some(30),
            ..Probe::default()
        });
        c.liveness_probe = Some(exec_probe(1, 1));
    }));
    rig.rt.set_exec_result(UID, "app", 1);
    rig.settle().await;
    for _ in 0..5 {
        assert_eq!(rig.probe().await, (1, false), "only the startup probe, failing");
        rig.advance(Duration::from_secs(1));
    }
    assert!(rig.rt.execs().is_empty(), "liveness did not run");
    assert!(running(&rig.settle().await, "app"));
    let app = rig.container("app");
    assert_eq!((app.started, app.ready), (Some(false), false));

    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert_eq!(rig.probe().await, (1, true), "started");
    rig.settle().await;
    assert_eq!(rig.container("app").started, Some(true));
    rig.advance(Duration::from_secs(1));
    assert_eq!(rig.probe().await, (1, true), "now liveness runs, and fails");
    assert_eq!(rig.rt.execs().len(), 1);
    rig.settle().await;
    assert_eq!(rig.container("app").restart_count, 1);
}

#[tokio::test]
async fn initial_delay_holds_an_http_readiness_probe_back() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await.unwrap();
        let reply = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut conn, reply).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let mut rig = Rig::new(pod_with("Always", |c| {
        c.ports =
            Some(vec![ContainerPort { name: Some("web".into()), container_port: port.into(), ..Default::default() }]);
        c.readiness_probe = Some(Probe {
            http_get: Some(HTTPGetAction {
                host: Some("127.0.0.1".into()),
                port: IntOrString::String("web".into()),
                path: Some("/ready".into()),
                ..HTTPGetAction::default()
            }),
            initial_delay_seconds: Some(30),
            ..Probe::default()
        });
    }));
    rig.settle().await;
    rig.advance(Duration::from_secs(29));
    assert_eq!(rig.probe().await, (0, false), "not before the initial delay");
    rig.advance(Duration::from_secs(1));
    assert_eq!(rig.probe().await, (1, true));
    assert!(server.await.unwrap().starts_with("GET /ready HTTP/1.1"));
    rig.settle().await;
    assert_eq!(rig.condition("Ready"), "True");
}

fn exec_hook(command: &str) -> Option<LifecycleHandler> {
    Some(LifecycleHandler { exec: Some(ExecAction { command: Some(vec![command.into()]) }), ..Default::default() })
}

#[tokio::test]
async fn pre_stop_runs_in_the_running_container_before_it_is_stopped() {
    let mut rig = Rig::new(pod_with("Always", |c| {
        c.lifecycle = Some(Lifecycle { pre_stop: exec_hook("drain"), ..Lifecycle::default() });
    }));
    let id = rig.settle().await.latest("app").unwrap().id.clone();
    let pod = rig.pod.as_mut().unwrap();
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    pod.metadata.deletion_grace_period_seconds = Some(30);
    rig.settle().await;
    assert!(rig.deleted);
    // The fake refuses exec in a stopped container: recorded means it ran before the stop.
    let execs = rig.rt.execs();
    assert_eq!(execs.len(), 1);
    assert_eq!((execs[0].id.as_str(), execs[0].command.as_slice()), (id.as_str(), ["drain".to_string()].as_slice()));
}

#[tokio::test]
async fn a_hanging_pre_stop_hook_is_cut_at_the_grace_period() {
    let mut rig = Rig::new(pod_with("Always", |c| {
        c.lifecycle = Some(Lifecycle { pre_stop: exec_hook("hang"), ..Lifecycle::default() });
    }));
    rig.settle().await;
    rig.rt.set_exec_hang(UID, "app", true);
    let pod = rig.pod.as_mut().unwrap();
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    pod.metadata.deletion_grace_period_seconds = Some(1);
    let started = std::time::Instant::now();
    rig.settle().await;
    assert!(rig.deleted, "the stop went on after the hook timed out");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the grace period");
}

#[tokio::test]
async fn a_failing_post_start_hook_kills_the_new_container() {
    let mut rig = Rig::new(pod_with("Always", |c| {
        c.lifecycle = Some(Lifecycle { post_start: exec_hook("setup"), ..Lifecycle::default() });
    }));
    rig.rt.set_exec_result(UID, "app", 1);
    let o = rig.settle().await;
    assert!(rig.rt.execs().len() >= 2, "ran after each start");
    assert!(!running(&o, "app"));
    assert_eq!(rig.waiting_reason("app").as_deref(), Some("CrashLoopBackOff"));
    rig.rt.set_exec_result(UID, "app", 0);
    rig.advance(INITIAL);
    assert!(running(&rig.settle().await, "app"), "runs once the hook passes");
}

#[tokio::test]
async fn a_container_config_error_waits_with_its_reason_retries_with_backoff_and_clears() {
    let mut rig = Rig::new(pod("Always", &[], &["app"]));
    rig.config_error = Some(("app".into(), "configmap \"cfg\" not found".into()));
    let o = rig.settle().await;
    assert!(o.latest("app").is_none());
    assert_eq!(rig.phase(), "Pending");
    let waiting = rig.container("app").state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(waiting.message.as_deref(), Some("configmap \"cfg\" not found"));
    assert_eq!(rig.last_plan.wake_at, Some(rig.now + INITIAL), "retried after the back-off");
    let runs = rig.runs;
    rig.advance(INITIAL - Duration::from_secs(1));
    rig.settle().await;
    assert_eq!(rig.runs, runs, "not retried before the back-off ends");
    rig.advance(Duration::from_secs(1));
    rig.settle().await;
    assert_eq!(rig.runs, runs + 1, "retried");
    assert_eq!(rig.last_plan.wake_at, Some(rig.now + INITIAL * 2), "the back-off doubles");

    rig.config_error = None;
    rig.advance(INITIAL * 2);
    let o = rig.settle().await;
    assert!(running(&o, "app"));
    assert_eq!(rig.container("app").state.unwrap().waiting, None, "the error is cleared");
    rig.rt.exit(UID, "app", 1);
    rig.settle().await;
    assert_eq!(rig.container("app").restart_count, 1, "an ordinary restart, no config wait");
}
