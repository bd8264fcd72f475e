//! Unit tests of the Job controller's decisions on hand-built Jobs and pods.

use k8s_openapi::api::batch::v1::{JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid timestamp")
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta { name: Some("pi".into()), uid: Some("job-uid".into()), ..Default::default() },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(2),
            template: PodTemplateSpec {
                spec: Some(PodSpec { restart_policy: Some("Never".into()), ..Default::default() }),
                ..Default::default()
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// A pod of the Job: `phase`, finished at `finished` (seconds), with or without the
/// tracking finalizer.
fn pod(uid: &str, phase: &str, finished: Option<i64>, tracked: bool) -> Arc<Pod> {
    let terminated = finished.map(|t| ContainerState {
        terminated: Some(ContainerStateTerminated { finished_at: Some(Time(at(t))), ..Default::default() }),
        ..Default::default()
    });
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(format!("pi-{uid}")),
            uid: Some(uid.into()),
            finalizers: tracked.then(|| vec![pods::TRACKING_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "c".into(),
                state: terminated,
                ..Default::default()
            }]),
            ..Default::default()
        }),
    })
}

fn terminating(p: Arc<Pod>) -> Arc<Pod> {
    let mut p = (*p).clone();
    p.metadata.deletion_timestamp = Some(Time(at(0)));
    Arc::new(p)
}

fn with_status(mut job: Job, status: JobStatus) -> Job {
    job.status = Some(status);
    job
}

#[test]
fn a_finished_pod_counts_once_wherever_it_is_recorded() {
    let status = JobStatus {
        succeeded: Some(1),
        uncounted_terminated_pods: Some(UncountedTerminatedPods { succeeded: Some(vec!["u2".into()]), failed: None }),
        ..Default::default()
    };
    let j = with_status(job(Some(5), 2), status);
    let pods = vec![
        pod("u2", "Succeeded", Some(1), true),         // in the uncounted list: not new
        pod("u3", "Succeeded", Some(2), true),         // new
        pod("u4", "Succeeded", Some(3), false),        // already in status.succeeded
        terminating(pod("u5", "Running", None, true)), // deleted while running: failed
        pod("u6", "Running", None, true),              // active
    ];
    let t = tally(&j, &pods);
    assert_eq!((t.succeeded, t.failed), (3, 1));
    assert_eq!((t.active.len(), t.terminating), (1, 1));

    let mut only_failed = j.clone();
    only_failed.spec.as_mut().expect("spec").pod_replacement_policy = Some("Failed".into());
    assert_eq!(tally(&only_failed, &pods).failed, 0, "podReplacementPolicy Failed: terminating is not failed yet");
}

#[test]
fn plan_keeps_active_within_parallelism_and_remaining_completions() {
    let running = |n: usize| (0..n).map(|i| pod(&format!("r{i}"), "Running", None, true)).collect::<Vec<_>>();
    let with = |j: &Job, active: Vec<Arc<Pod>>, succeeded: i32| {
        let t = Tally { active, succeeded, ..Default::default() };
        plan(j, &t)
    };
    let j = job(Some(3), 2);
    assert_eq!(with(&j, vec![], 0).create.len(), 2, "parallelism bounds the first wave");
    assert_eq!(with(&j, running(2), 1), Plan::default(), "two active, two missing: nothing to do");
    assert_eq!(with(&j, running(1), 2), Plan::default(), "one missing, one running");
    assert_eq!(with(&j, running(2), 2).delete.len(), 1, "more active than completions missing");
    assert_eq!(with(&j, running(0), 3), Plan::default(), "all completions reached");

    let queue = job(None, 3);
    assert_eq!(with(&queue, vec![], 0).create.len(), 3, "a work queue starts parallelism pods");
    assert_eq!(with(&queue, running(1), 1), Plan::default(), "after a success, no new pods");

    let mut replace = job(Some(2), 2);
    let t = Tally { active: running(1), terminating: 1, ..Default::default() };
    assert_eq!(plan(&replace, &t).create.len(), 1, "TerminatingOrFailed replaces a terminating pod at once");
    replace.spec.as_mut().expect("spec").pod_replacement_policy = Some("Failed".into());
    assert_eq!(plan(&replace, &t).create.len(), 0, "Failed waits for it to finish");
}

#[test]
fn an_indexed_job_creates_the_lowest_free_indexes() {
    let mut j = job(Some(4), 2);
    j.spec.as_mut().expect("spec").completion_mode = Some("Indexed".into());
    let mut p = (*pod("a", "Running", None, true)).clone();
    p.metadata.annotations = Some([(pods::COMPLETION_INDEX_KEY.to_string(), "1".to_string())].into());
    let t = Tally { active: vec![Arc::new(p)], completed: [0].into(), succeeded: 1, ..Default::default() };
    assert_eq!(plan(&j, &t).create, vec![Some(2)]);
}

#[test]
fn failures_beyond_the_backoff_limit_or_past_the_deadline_fail_the_job() {
    let j = job(Some(3), 1);
    let t = |failed| Tally { failed, ..Default::default() };
    assert_eq!(verdict(&j, &t(2), &[], at(0)), (None, None), "backoffLimit 2: two failures are allowed");
    let (finish, _) = verdict(&j, &t(3), &[], at(0));
    assert!(matches!(finish, Some(Finish::Failure { ref reason, .. }) if reason == "BackoffLimitExceeded"));

    let mut on_failure = j.clone();
    let spec = on_failure.spec.as_mut().expect("spec");
    spec.template.spec.as_mut().expect("pod spec").restart_policy = Some("OnFailure".into());
    let mut restarted = (*pod("u1", "Running", None, true)).clone();
    let statuses = restarted.status.as_mut().and_then(|s| s.container_statuses.as_mut()).expect("statuses");
    statuses[0].restart_count = 2;
    let (finish, _) = verdict(&on_failure, &t(0), &[Arc::new(restarted)], at(0));
    assert!(matches!(finish, Some(Finish::Failure { ref reason, .. }) if reason == "BackoffLimitExceeded"));

    let mut deadline = j.clone();
    deadline.spec.as_mut().expect("spec").active_deadline_seconds = Some(30);
    let started = with_status(deadline, JobStatus { start_time: Some(Time(at(0))), ..Default::default() });
    assert_eq!(verdict(&started, &t(0), &[], at(20)), (None, Some(Duration::from_secs(10))));
    let (finish, _) = verdict(&started, &t(0), &[], at(30));
    assert!(matches!(finish, Some(Finish::Failure { ref reason, .. }) if reason == "DeadlineExceeded"));
    let mut paused = started.clone();
    paused.spec.as_mut().expect("spec").suspend = Some(true);
    assert_eq!(verdict(&paused, &t(0), &[], at(90)), (None, None), "a suspended job has no running deadline");
}

#[test]
fn a_recorded_interim_condition_stands() {
    let target = new_condition(FAILURE_TARGET, "True", "DeadlineExceeded", "too slow", at(0));
    let j = with_status(job(Some(1), 1), JobStatus { conditions: Some(vec![target]), ..Default::default() });
    let failure = Finish::Failure { reason: "DeadlineExceeded".into(), message: "too slow".into() };
    assert_eq!(verdict(&j, &Tally::default(), &[], at(0)).0, Some(failure));
    let met = new_condition(SUCCESS_CRITERIA_MET, "True", "CompletionsReached", "", at(0));
    let j = with_status(job(Some(1), 1), JobStatus { conditions: Some(vec![met]), ..Default::default() });
    assert_eq!(verdict(&j, &Tally { failed: 9, ..Default::default() }, &[], at(0)).0, Some(Finish::Success));
}

#[test]
fn new_pods_wait_an_exponential_backoff_after_failures() {
    let backoff = Backoff { base: Duration::from_secs(10), max: Duration::from_secs(360) };
    let j = job(Some(1), 1);
    assert_eq!(backoff_remaining(&j, &[], backoff, at(0)), Duration::ZERO, "no failure, no wait");
    let one = vec![pod("f1", "Failed", Some(100), false)];
    assert_eq!(backoff_remaining(&j, &one, backoff, at(104)), Duration::from_secs(6));
    let two = vec![pod("f1", "Failed", Some(90), false), pod("f2", "Failed", Some(100), true)];
    assert_eq!(backoff_remaining(&j, &two, backoff, at(105)), Duration::from_secs(15), "20 s after the second");
    assert_eq!(backoff_remaining(&j, &two, backoff, at(130)), Duration::ZERO, "waited out");
    let mut after_success = two.clone();
    after_success.push(pod("s1", "Succeeded", Some(101), false));
    assert_eq!(backoff_remaining(&j, &after_success, backoff, at(105)), Duration::ZERO, "a success resets it");
    let many: Vec<_> = (0..12).map(|i| pod(&format!("f{i}"), "Failed", Some(100), false)).collect();
    assert_eq!(backoff_remaining(&j, &many, backoff, at(100)), Duration::from_secs(360), "capped");
}

#[test]
fn completion_needs_the_successes_and_no_active_pod() {
    assert!(complete(&job(Some(3), 2), 3, 0));
    assert!(!complete(&job(Some(3), 2), 3, 1));
    assert!(!complete(&job(Some(3), 2), 2, 0));
    assert!(complete(&job(None, 2), 1, 0), "a work queue is done once any pod succeeded and none runs");
    assert!(!complete(&job(None, 2), 0, 0));
}

#[test]
fn conditions_change_only_when_their_content_does() {
    let mut conditions = Vec::new();
    assert!(!ensure_condition(&mut conditions, SUSPENDED, "False", "JobResumed", "Job resumed", at(0)));
    assert!(conditions.is_empty(), "an absent condition is not added as False");
    assert!(ensure_condition(&mut conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", at(1)));
    assert!(!ensure_condition(&mut conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", at(2)));
    assert_eq!(conditions[0].last_transition_time, Some(Time(at(1))), "unchanged: the time stays");
    assert!(ensure_condition(&mut conditions, SUSPENDED, "False", "JobResumed", "Job resumed", at(3)));
    assert_eq!((conditions.len(), conditions[0].status.as_str()), (1, "False"));
    assert_eq!(conditions[0].last_transition_time, Some(Time(at(3))));

    let done = with_status(job(Some(1), 1), JobStatus { conditions: Some(conditions.clone()), ..Default::default() });
    assert_eq!(finished_at(&done), None, "Suspended is not an end");
    conditions.push(new_condition(COMPLETE, "True", "CompletionsReached", "", at(7)));
    let done = with_status(job(Some(1), 1), JobStatus { conditions: Some(conditions), ..Default::default() });
    assert_eq!(finished_at(&done), Some(Some(at(7))));
}
