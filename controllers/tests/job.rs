//! The Job controller over a real one-member store, started as the leader component it is
//! in production. No node agent runs: the tests play the kubelet, writing pod status
//! (`Succeeded`/`Failed`, with the container's finish time) through `pods/status`.
//!
//! - completions=3, parallelism=2: never more than 2 active pods in any observed state;
//!   exactly 3 pods, `succeeded` 3, `SuccessCriteriaMet` and `Complete`, Events written.
//! - Every pod failing with backoffLimit 2: exactly 3 pods, each created no sooner than the
//!   exponential backoff after the previous failure, then `FailureTarget`/`Failed` with
//!   `BackoffLimitExceeded`.
//! - activeDeadlineSeconds: `DeadlineExceeded`, the active pods deleted and counted failed.
//! - Finalizer accounting: a finished pod deleted by hand while no controller ran is
//!   counted once, a running one deleted by hand counts as failed; a controller restarted
//!   twice mid-job neither loses nor double-counts; a pass interrupted between recording a
//!   pod and removing its finalizer, and a pod cache that still shows a counted pod's
//!   finalizer, are both counted exactly once (driven by hand over test-filled caches).
//! - ttlSecondsAfterFinished=0 deletes the Job once it completed; suspend deletes the
//!   active pods (not failures) and resume restarts `startTime`; Indexed pods get their
//!   index and `completedIndexes` fills up.
//!
//! Every test ends with no pod holding the tracking finalizer, and checks on every state
//! its own informers observe that active pods never exceed parallelism and that
//! `succeeded` never decreases nor exceeds completions.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_apiserver::client::{Api, Client};
use flotilla_apiserver::patch::PatchType;
use flotilla_apiserver::registry::{DeleteOptions, ListOptions, Part};
use flotilla_apiserver::ApiError;
use flotilla_controllers::job::{self, decide, pods as job_pods, JobConfig, JobController};
use flotilla_controllers::pod;
use flotilla_controllers::runtime::{owner, Backoff, Change, Key, Reconciler, Store, Writer};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;
use support::{until, wait_for, Solo};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";

/// A short failure backoff so retries take a second, not ten.
const BACKOFF: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };

fn config() -> JobConfig {
    JobConfig { pod_backoff: BACKOFF, ..Default::default() }
}

struct Env {
    solo: Solo,
    jobs: Api<Job>,
    pod_api: Api<Pod>,
    /// The test's own pod cache.
    pods: Store<Pod>,
    /// What the test's informers saw.
    seen: Arc<Mutex<Seen>>,
    controller: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Env {
    async fn start() -> Self {
        let solo = Solo::start().await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        let job_cache = support::observe::<Job>(&solo, move |c, _| {
            if let Some(job) = c.new {
                record.lock().expect("seen").job_changed(&job);
            }
        })
        .await;
        let record = seen.clone();
        let pods = support::observe::<Pod>(&solo, move |c, pods| {
            record.lock().expect("seen").pod_changed(&c, pods, &job_cache);
        })
        .await;
        let (jobs, pod_api) = (solo.client.api::<Job>(Some(NS)), solo.client.api::<Pod>(Some(NS)));
        let mut env = Self { solo, jobs, pod_api, pods, seen, controller: None };
        env.start_controller();
        env
    }

    fn start_controller(&mut self) {
        self.controller = Some(self.solo.lead(job::component_with(config())));
    }

    /// Stop the controller and wait until it has (a leader change, seen from the store).
    async fn stop_controller(&mut self) {
        if let Some((token, handle)) = self.controller.take() {
            token.cancel();
            handle.await.expect("controller task");
        }
    }

    fn owned(&self, job: &Job) -> Vec<Arc<Pod>> {
        self.pods.list_in(NS).into_iter().filter(|p| owner::is_controlled_by(&p.metadata, &job.metadata)).collect()
    }

    /// Wait for an active pod of `job` not in `skip`, or None once the Job finished.
    async fn next_active(&self, name: &str, skip: &BTreeSet<String>) -> Option<String> {
        wait_for(&format!("an active pod of {name}, or its end"), || async {
            let job = self.jobs.get(name).await.ok()?;
            if decide::finished_at(&job).is_some() {
                return Some(None);
            }
            let active = self.owned(&job).into_iter().filter(|p| pod::is_active(p));
            active.map(|p| job_pods::name(&p).to_string()).find(|n| !skip.contains(n)).map(Some)
        })
        .await
    }

    /// Play the kubelet until the Job finishes: each active pod ends in `phase`.
    async fn run_to_end(&self, name: &str, phase: &str) -> Job {
        let mut done = BTreeSet::new();
        while let Some(pod) = self.next_active(name, &done).await {
            finish(&self.pod_api, &pod, phase).await;
            done.insert(pod);
        }
        self.finished(name).await
    }

    async fn finished(&self, name: &str) -> Job {
        wait_for(&format!("{name} finished"), || async {
            self.jobs.get(name).await.ok().filter(|j| decide::finished_at(j).is_some())
        })
        .await
    }

    /// How many pods named `<prefix>-…` were ever created, once the test's pod informer
    /// has caught up with the store: it has seen a sentinel pod created now.
    async fn ever_added(&self, prefix: &str) -> usize {
        let sentinel = format!("sentinel-{}", self.seen.lock().expect("seen").added.len());
        let pod = Pod {
            metadata: ObjectMeta { name: Some(sentinel.clone()), ..Default::default() },
            spec: job_spec(None, 1).spec.and_then(|s| s.template.spec),
            status: None,
        };
        self.pod_api.create(&pod).await.expect("create the sentinel pod");
        until("the sentinel pod seen", || self.seen.lock().expect("seen").added.contains_key(&sentinel)).await;
        self.seen.lock().expect("seen").added.keys().filter(|n| n.starts_with(&format!("{prefix}-"))).count()
    }

    /// The end-of-test checks: no breach observed, no pod left holding the finalizer.
    async fn check_invariants(&self) {
        assert_eq!(self.seen.lock().expect("seen").breaches, Vec::<String>::new());
        let (pods, _) = self.pod_api.list(&ListOptions::default()).await.expect("list pods");
        let held: Vec<_> = pods.iter().filter(|p| job_pods::has_tracking_finalizer(p)).collect();
        assert!(held.is_empty(), "pods still hold the tracking finalizer: {held:?}");
    }

    async fn events(&self, reason: &str) -> Vec<String> {
        let events = support::events(&self.solo.client, NS).await;
        events.into_iter().filter(|e| e.reason.as_deref() == Some(reason)).filter_map(|e| e.message).collect()
    }
}

/// What the test's informers saw.
#[derive(Default)]
struct Seen {
    /// Every pod ever added, with when the test saw it.
    added: BTreeMap<String, Timestamp>,
    /// Invariant breaches in any observed state.
    breaches: Vec<String>,
    /// Every Job state, in order.
    jobs: Vec<Job>,
    /// The last `succeeded` of each Job.
    succeeded: BTreeMap<String, i32>,
}

impl Seen {
    /// After a pod change: no Job has more active pods than its parallelism.
    fn pod_changed(&mut self, change: &Change<Pod>, pods: &Store<Pod>, jobs: &Store<Job>) {
        if change.old.is_none() {
            self.added.insert(change.key.name.clone(), Timestamp::now());
        }
        for job in jobs.list_in(NS) {
            let parallelism = job.spec.as_ref().and_then(|s| s.parallelism).unwrap_or(1);
            let active = pods
                .list_in(NS)
                .iter()
                .filter(|p| owner::is_controlled_by(&p.metadata, &job.metadata) && pod::is_active(p))
                .count();
            if active as i32 > parallelism {
                self.breaches.push(format!("{active} active pods, parallelism {parallelism}"));
            }
        }
    }

    /// After a Job change: `succeeded` never decreases nor exceeds completions.
    fn job_changed(&mut self, job: &Job) {
        let now = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        let before = self.succeeded.insert(job.metadata.name.clone().unwrap_or_default(), now).unwrap_or(0);
        let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(i32::MAX);
        if now < before || now > completions {
            self.breaches.push(format!("succeeded went {before} → {now} of {completions}"));
        }
        self.jobs.push(job.clone());
    }
}

fn job_spec(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta { name: Some("pi".into()), namespace: Some(NS.into()), ..Default::default() },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container { name: "pi".into(), image: Some("perl".into()), ..Default::default() }],
                    restart_policy: Some("Never".into()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The kubelet's report that `pod` ended in `phase` (its container finished now, to the
/// second as `metav1.Time` has it). Returns that finish time.
async fn finish(api: &Api<Pod>, pod: &str, phase: &str) -> Timestamp {
    let at = Timestamp::from_second(Timestamp::now().as_second()).expect("the current second");
    let terminated = ContainerStateTerminated {
        exit_code: if phase == "Succeeded" { 0 } else { 1 },
        finished_at: Some(Time(at)),
        ..Default::default()
    };
    let status = PodStatus {
        phase: Some(phase.into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "pi".into(),
            state: Some(ContainerState { terminated: Some(terminated), ..Default::default() }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    support::report(api, pod, status).await.unwrap_or_else(|| panic!("{pod} reported {phase}"));
    at
}

fn status(job: &Job) -> JobStatus {
    job.status.clone().unwrap_or_default()
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    let c = decide::condition(job, type_)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn uncounted_is_empty(job: &Job) -> bool {
    let u = status(job).uncounted_terminated_pods.unwrap_or_default();
    u.succeeded.unwrap_or_default().is_empty() && u.failed.unwrap_or_default().is_empty()
}

#[tokio::test]
async fn completions_run_within_parallelism_and_complete_exactly() {
    let env = Env::start().await;
    env.jobs.create(&job_spec(Some(3), 2)).await.expect("create job");
    let job = env.run_to_end("pi", "Succeeded").await;
    let s = status(&job);
    assert_eq!((s.succeeded, s.failed.unwrap_or(0), s.active.unwrap_or(0)), (Some(3), 0, 0));
    assert_eq!(condition(&job, "SuccessCriteriaMet"), Some(("True".into(), "CompletionsReached".into())));
    assert_eq!(condition(&job, "Complete"), Some(("True".into(), "CompletionsReached".into())));
    assert!(s.start_time.is_some() && s.completion_time >= s.start_time);
    assert!(uncounted_is_empty(&job));
    assert_eq!(env.ever_added("pi").await, 3, "one pod per completion");
    env.check_invariants().await;
    wait_for("the Completed event", || async { (!env.events("Completed").await.is_empty()).then_some(()) }).await;
    let created = env.events("SuccessfulCreate").await;
    assert!(created.iter().all(|m| m.starts_with("Created pod: pi-")), "{created:?}");
}

#[tokio::test]
async fn failing_pods_are_retried_with_exponential_backoff_then_the_job_fails() {
    let env = Env::start().await;
    let mut spec = job_spec(Some(1), 1);
    spec.spec.as_mut().expect("spec").backoff_limit = Some(2);
    env.jobs.create(&spec).await.expect("create job");
    let mut failed = BTreeSet::new();
    let mut last_failure: Option<Timestamp> = None;
    for attempt in 1..=3u32 {
        let pod = env.next_active("pi", &failed).await.expect("a pod for each attempt");
        let seen_at =
            wait_for("the pod logged", || std::future::ready(env.seen.lock().expect("seen").added.get(&pod).copied()))
                .await;
        if let Some(failure) = last_failure {
            let wait = BACKOFF.delay(attempt - 1);
            let gap = Duration::try_from(seen_at - failure).unwrap_or(Duration::ZERO);
            assert!(gap >= wait, "attempt {attempt} came {gap:?} after the last failure, before the {wait:?} backoff");
        }
        last_failure = Some(finish(&env.pod_api, &pod, "Failed").await);
        failed.insert(pod);
    }
    let job = env.finished("pi").await;
    assert_eq!(condition(&job, "FailureTarget"), Some(("True".into(), "BackoffLimitExceeded".into())));
    assert_eq!(condition(&job, "Failed"), Some(("True".into(), "BackoffLimitExceeded".into())));
    assert_eq!(condition(&job, "Complete"), None);
    let s = status(&job);
    assert_eq!((s.failed, s.succeeded.unwrap_or(0), s.active.unwrap_or(0)), (Some(3), 0, 0));
    assert_eq!(env.ever_added("pi").await, 3, "backoffLimit 2: the first pod and two retries");
    env.check_invariants().await;
}

#[tokio::test]
async fn the_active_deadline_fails_the_job_and_deletes_its_pods() {
    let env = Env::start().await;
    let mut spec = job_spec(Some(4), 2);
    spec.spec.as_mut().expect("spec").active_deadline_seconds = Some(1);
    env.jobs.create(&spec).await.expect("create job");
    let job = env.finished("pi").await;
    assert_eq!(condition(&job, "FailureTarget"), Some(("True".into(), "DeadlineExceeded".into())));
    assert_eq!(condition(&job, "Failed"), Some(("True".into(), "DeadlineExceeded".into())));
    let s = status(&job);
    assert_eq!((s.active.unwrap_or(0), s.terminating.unwrap_or(0)), (0, 0));
    assert_eq!(env.ever_added("pi").await, 2, "parallelism 2, and nothing created after the deadline");
    assert_eq!(s.failed, Some(2), "both pods, killed at the deadline, count as failed");
    let (left, _) = env.pod_api.list(&ListOptions::default()).await.expect("list pods");
    let left: Vec<_> = left.iter().filter(|p| job_pods::name(p).starts_with("pi-")).collect();
    assert!(left.is_empty(), "the unbound pods are gone once released: {left:?}");
    env.check_invariants().await;
    wait_for("the DeadlineExceeded event", || async {
        env.events("DeadlineExceeded")
            .await
            .contains(&"Job was active longer than specified deadline".into())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pods_deleted_by_hand_while_no_controller_ran_are_counted_once() {
    let mut env = Env::start().await;
    let job = env.jobs.create(&job_spec(Some(2), 2)).await.expect("create job");
    until("two active pods", || env.owned(&job).iter().filter(|p| pod::is_active(p)).count() == 2).await;
    env.stop_controller().await;
    let names: Vec<String> = env.owned(&job).iter().map(|p| job_pods::name(p).to_string()).collect();
    finish(&env.pod_api, &names[0], "Succeeded").await;
    for name in &names {
        env.pod_api.delete(name, &DeleteOptions::default()).await.expect("delete pod");
        let held = env.pod_api.get(name).await.expect("the finalizer holds the pod");
        assert!(held.metadata.deletion_timestamp.is_some());
    }
    env.start_controller();
    let counted = wait_for("both deleted pods counted", || async {
        let j = env.jobs.get("pi").await.ok()?;
        let s = status(&j);
        (s.succeeded == Some(1) && s.failed == Some(1) && uncounted_is_empty(&j)).then_some(j)
    })
    .await;
    assert_eq!(decide::finished_at(&counted), None);
    for name in &names {
        until("the counted pod is gone", || env.pods.get(Some(NS), name).is_none()).await;
    }
    let job = env.run_to_end("pi", "Succeeded").await;
    let s = status(&job);
    assert_eq!((s.succeeded, s.failed), (Some(2), Some(1)), "the running pod deleted by hand failed once");
    assert_eq!(env.ever_added("pi").await, 3, "one replacement");
    env.check_invariants().await;
}

#[tokio::test]
async fn a_controller_restarted_mid_job_neither_loses_nor_double_counts() {
    let mut env = Env::start().await;
    env.jobs.create(&job_spec(Some(6), 3)).await.expect("create job");
    let mut done = BTreeSet::new();
    while let Some(pod) = env.next_active("pi", &done).await {
        finish(&env.pod_api, &pod, "Succeeded").await;
        done.insert(pod);
        if done.len() == 3 || done.len() == 5 {
            env.stop_controller().await;
            env.start_controller();
        }
    }
    let job = env.finished("pi").await;
    let s = status(&job);
    assert_eq!((s.succeeded, s.failed.unwrap_or(0)), (Some(6), 0));
    assert_eq!(condition(&job, "Complete"), Some(("True".into(), "CompletionsReached".into())));
    assert_eq!(env.ever_added("pi").await, 6);
    env.check_invariants().await;
}

#[tokio::test]
async fn ttl_zero_deletes_the_job_once_it_completed() {
    let env = Env::start().await;
    let mut spec = job_spec(Some(1), 1);
    spec.spec.as_mut().expect("spec").ttl_seconds_after_finished = Some(0);
    env.jobs.create(&spec).await.expect("create job");
    let pod = env.next_active("pi", &BTreeSet::new()).await.expect("a pod");
    finish(&env.pod_api, &pod, "Succeeded").await;
    wait_for("the job deleted", || async {
        matches!(env.jobs.get("pi").await, Err(ApiError::NotFound(_))).then_some(())
    })
    .await;
    let seen = env.seen.lock().expect("seen").jobs.clone();
    assert!(seen.iter().any(|j| condition(j, "Complete").is_some_and(|(s, _)| s == "True")), "it completed first");
    env.check_invariants().await;
}

#[tokio::test]
async fn suspending_deletes_the_active_pods_and_resuming_restarts_the_clock() {
    let env = Env::start().await;
    let job = env.jobs.create(&job_spec(Some(2), 2)).await.expect("create job");
    until("two active pods", || env.owned(&job).iter().filter(|p| pod::is_active(p)).count() == 2).await;
    let started = wait_for("startTime", || async { status(&env.jobs.get("pi").await.ok()?).start_time }).await;
    let jobs = &env.jobs;
    let suspend = |on: bool| async move {
        jobs.patch("pi", PatchType::Merge, &json!({"spec": {"suspend": on}}), Part::Main).await.expect("suspend")
    };
    suspend(true).await;
    let suspended = wait_for("suspended with no pods", || async {
        let j = env.jobs.get("pi").await.ok()?;
        let gone = env.owned(&j).is_empty() && status(&j).active == Some(0);
        (gone && condition(&j, "Suspended") == Some(("True".into(), "JobSuspended".into()))).then_some(j)
    })
    .await;
    assert_eq!(status(&suspended).failed.unwrap_or(0), 0, "pods deleted by suspension are not failures");
    until("a later second", || Timestamp::now().as_second() > started.0.as_second()).await;
    let resumed_at = Timestamp::from_second(Timestamp::now().as_second()).expect("the current second");
    suspend(false).await;
    let resumed = wait_for("resumed", || async {
        let j = env.jobs.get("pi").await.ok()?;
        (condition(&j, "Suspended") == Some(("False".into(), "JobResumed".into()))).then_some(j)
    })
    .await;
    let restarted = status(&resumed).start_time.expect("startTime");
    assert!(restarted.0 >= resumed_at && restarted > started, "startTime restarts on resume: {restarted:?}");
    let job = env.run_to_end("pi", "Succeeded").await;
    assert_eq!((status(&job).succeeded, status(&job).failed.unwrap_or(0)), (Some(2), 0));
    assert_eq!(env.ever_added("pi").await, 4, "two pods before the suspension, two after");
    env.check_invariants().await;
}

#[tokio::test]
async fn an_indexed_job_runs_each_index_once() {
    let env = Env::start().await;
    let mut spec = job_spec(Some(3), 2);
    spec.spec.as_mut().expect("spec").completion_mode = Some("Indexed".into());
    env.jobs.create(&spec).await.expect("create job");
    let job = env.run_to_end("pi", "Succeeded").await;
    assert_eq!((status(&job).succeeded, status(&job).completed_indexes.as_deref()), (Some(3), Some("0-2")));
    let (pods, _) = env.pod_api.list(&ListOptions::default()).await.expect("list pods");
    let indexes: BTreeSet<i32> = pods.iter().filter_map(job_pods::completion_index).collect();
    assert_eq!(indexes, [0, 1, 2].into());
    for p in &pods {
        let ix = job_pods::completion_index(p).expect("index");
        assert_eq!(p.spec.as_ref().and_then(|s| s.hostname.clone()), Some(format!("pi-{ix}")));
    }
    env.check_invariants().await;
}

/// A reconciler over caches the test fills by hand, and the Job it manages.
async fn by_hand(solo: &Solo) -> (JobController, Writer<Job>, Writer<Pod>, Key) {
    let job = solo.client.api::<Job>(Some(NS)).create(&job_spec(Some(2), 1)).await.expect("create job");
    let (mut jobs, mut pods) = (Writer::<Job>::new(), Writer::<Pod>::new());
    jobs.replace(vec![job]).await;
    pods.replace(vec![]).await;
    let controller = JobController::new(solo.client.clone(), jobs.store(), pods.store(), config());
    let key = Key::namespaced(NS, "pi");
    controller.reconcile(&key).await.expect("first reconcile creates a pod");
    (controller, jobs, pods, key)
}

/// The one pod in the store, reported Succeeded.
async fn one_succeeded_pod(client: &Client) -> Pod {
    let api = client.api::<Pod>(Some(NS));
    let (pods, _) = api.list(&ListOptions::default()).await.expect("list pods");
    let name = pods[0].metadata.name.clone().expect("name");
    finish(&api, &name, "Succeeded").await;
    api.get(&name).await.expect("get pod")
}

#[tokio::test]
async fn a_pod_cache_that_still_shows_a_counted_pod_does_not_count_it_again() {
    let solo = Solo::start().await;
    let (controller, mut jobs, mut pods, key) = by_hand(&solo).await;
    let api = solo.client.api::<Job>(Some(NS));
    let stale = one_succeeded_pod(&solo.client).await;
    jobs.apply(api.get("pi").await.expect("job")).await;
    pods.apply(stale.clone()).await;
    controller.reconcile(&key).await.expect("the reconcile that counts the pod");
    let counted = api.get("pi").await.expect("job");
    assert_eq!(status(&counted).succeeded, Some(1));
    assert!(uncounted_is_empty(&counted));
    // The Job cache is current, the pod cache still shows the finalizer removed meanwhile.
    jobs.apply(counted).await;
    controller.reconcile(&key).await.expect("reconcile over the lagging pod cache");
    let again = api.get("pi").await.expect("job");
    assert_eq!(status(&again).succeeded, Some(1), "counted once");
    assert!(uncounted_is_empty(&again), "not recorded again");
}

#[tokio::test]
async fn a_pass_interrupted_after_recording_a_pod_is_finished_by_the_next_controller() {
    let solo = Solo::start().await;
    let (_, _, _, key) = by_hand(&solo).await;
    let api = solo.client.api::<Job>(Some(NS));
    let pod = one_succeeded_pod(&solo.client).await;
    // What a controller stopped between writing the uncounted uid and removing the finalizer leaves.
    let mut job = api.get("pi").await.expect("job");
    let uid = pod.metadata.uid.clone().expect("uid");
    job.status.get_or_insert_with(Default::default).uncounted_terminated_pods =
        Some(UncountedTerminatedPods { succeeded: Some(vec![uid]), failed: None });
    let job = api.update_status("pi", &job).await.expect("record the pod as uncounted");
    let (mut jobs, mut pods) = (Writer::<Job>::new(), Writer::<Pod>::new());
    jobs.replace(vec![job]).await;
    pods.replace(vec![pod.clone()]).await;
    let next = JobController::new(solo.client.clone(), jobs.store(), pods.store(), config());
    next.reconcile(&key).await.expect("the next controller's reconcile");
    let counted = api.get("pi").await.expect("job");
    assert_eq!(status(&counted).succeeded, Some(1));
    assert!(uncounted_is_empty(&counted));
    let released = solo.client.api::<Pod>(Some(NS)).get(pod.metadata.name.as_deref().expect("name")).await;
    assert!(!job_pods::has_tracking_finalizer(&released.expect("pod")), "its finalizer is gone");
}
