//! The pod sync core against the in-memory runtime: a rig plays the worker (observe, plan,
//! apply, report), with a hand-moved clock.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::pods::effects;
use crate::pods::status::{self, Input};
use crate::runtime::fake::FakeRuntime;
use crate::runtime::Runtime;
use crate::api::ApiPool;
use crate::pods::Context;
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
    let pool = ApiPool::new(&["http://127.0.0.1:9".to_string()], Duration::from_secs(1)).unwrap();
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
                effects::apply(&self.ctx, self.pod.as_ref(), &observed, step).await.unwrap();
            }
        }
        panic!("sync did not settle");
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
