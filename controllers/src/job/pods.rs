//! The Job controller's pure view of one pod: whether it is active, terminating, failed or
//! succeeded as the Job counts it, when it finished, and what a new pod looks like. No I/O,
//! so every rule is unit-tested on hand-built pods.
//!
//! Invariants (upstream's, batch/v1 in 1.32):
//! - *active* ([`crate::pod::is_active`]): not finished (`Succeeded`/`Failed`) and not
//!   terminating (`deletionTimestamp`); only active pods count toward parallelism.
//! - *counted as terminating*: `deletionTimestamp` set and not finished (`status.terminating`).
//! - *failed*: phase `Failed`, or — unless `podReplacementPolicy: Failed` — terminating, so
//!   a pod deleted while it runs (by hand, by node loss) counts as a failure.
//! - Every pod the controller creates carries [`TRACKING_FINALIZER`]: it cannot vanish from
//!   the store before the controller has counted it.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodStatus};

use crate::pod::{self, is_finished, is_terminating, phase};

/// Upstream's pod finalizer: held until the pod's outcome is in the Job's status.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The completion index of an Indexed Job's pod (annotation and label).
pub const COMPLETION_INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable through which an Indexed Job's container learns its index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == Some("Succeeded")
}

/// Being deleted but not finished: what `status.terminating` counts.
pub fn counts_as_terminating(pod: &Pod) -> bool {
    is_terminating(pod) && !is_finished(pod)
}

/// Whether the Job counts `pod` as failed. `only_failed`: `podReplacementPolicy: Failed`,
/// under which a terminating pod is not a failure until its phase says so.
pub fn is_failed(pod: &Pod, only_failed: bool) -> bool {
    match phase(pod) {
        Some("Failed") => true,
        Some("Succeeded") => false,
        _ => !only_failed && is_terminating(pod),
    }
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// Container restarts of a pending or running pod (init containers included): what
/// `restartPolicy: OnFailure` turns failures into.
pub fn restarts(pod: &Pod) -> i64 {
    if !matches!(phase(pod), Some("Pending" | "Running")) {
        return 0;
    }
    let status = pod.status.as_ref();
    let statuses = status.into_iter().flat_map(|s: &PodStatus| {
        s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten())
    });
    statuses.map(|c| i64::from(c.restart_count.max(0))).sum()
}

/// When the pod finished, as upstream's `getFinishedTime`: the latest container
/// termination, else when Ready turned False, else the deletion time, else its creation.
pub fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let containers = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()));
    let terminated =
        containers.filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0)).max();
    let not_ready = || {
        let conditions = status?.conditions.as_ref()?;
        let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "False")?;
        ready.last_transition_time.as_ref().map(|t| t.0)
    };
    terminated
        .or_else(not_ready)
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The completion index an Indexed Job's pod carries, if it is a valid one.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let value = pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX_KEY)?;
    value.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// A new pod for `job`: the template's metadata and spec, the tracking finalizer, the
/// controller reference and a server-generated name `<job>-<5 chars>`. With an `index`
/// (Indexed mode): the index annotation and label, `JOB_COMPLETION_INDEX` in every
/// container, hostname `<job>-<index>` and name `<job>-<index>-<5 chars>`.
pub fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let job_name = job.metadata.name.as_deref().unwrap_or_default();
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = pod::from_template(&template, job);
    let finalizers = pod.metadata.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    if let Some(ix) = index {
        pod.metadata.generate_name = Some(format!("{job_name}-{ix}-"));
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX_KEY.into(), ix.to_string());
        pod.metadata.labels.get_or_insert_with(Default::default).insert(COMPLETION_INDEX_KEY.into(), ix.to_string());
        if let Some(spec) = pod.spec.as_mut() {
            spec.hostname = Some(format!("{job_name}-{ix}"));
            spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()).for_each(add_index_env);
        }
    }
    pod
}

/// `JOB_COMPLETION_INDEX` from the pod's own annotation, unless the container sets it.
fn add_index_env(container: &mut Container) {
    let env = container.env.get_or_insert_with(Vec::new);
    if env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
        return;
    }
    env.push(EnvVar {
        name: COMPLETION_INDEX_ENV.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{COMPLETION_INDEX_KEY}']"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid timestamp")
    }

    fn job() -> Job {
        let labels = [("job-name".to_string(), "pi".to_string())].into();
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("ns".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: Some(PodSpec {
                        containers: vec![Container { name: "c".into(), ..Default::default() }],
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn with_phase(phase: &str, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta { deletion_timestamp: deleting.then(|| Time(at(0))), ..Default::default() },
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_deleted_while_running_counts_as_failed_unless_only_failed_pods_are_replaced() {
        assert!(is_failed(&with_phase("Failed", false), true));
        assert!(!is_failed(&with_phase("Running", false), false));
        assert!(is_failed(&with_phase("Running", true), false));
        assert!(!is_failed(&with_phase("Running", true), true), "podReplacementPolicy Failed");
        assert!(!is_failed(&with_phase("Succeeded", true), false), "a success stays a success");
        assert!(counts_as_terminating(&with_phase("Running", true)));
        assert!(!counts_as_terminating(&with_phase("Failed", true)), "finished pods are not terminating");
        assert!(!counts_as_terminating(&with_phase("Running", false)));
    }

    #[test]
    fn a_new_pod_is_tracked_and_controlled_by_its_job() {
        let pod = new_pod(&job(), None);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert!(has_tracking_finalizer(&pod));
        assert_eq!(pod.metadata.labels.as_ref().and_then(|l| l.get("job-name")).map(String::as_str), Some("pi"));
        assert!(crate::runtime::owner::is_controlled_by(&pod.metadata, &job().metadata));
        let r = &pod.metadata.owner_references.as_ref().expect("owner references")[0];
        assert_eq!((r.api_version.as_str(), r.kind.as_str()), ("batch/v1", "Job"));
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()), Some("Never"));
        assert_eq!(completion_index(&pod), None);
    }

    #[test]
    fn an_indexed_pod_knows_its_index_by_annotation_label_env_and_hostname() {
        let pod = new_pod(&job(), Some(3));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(completion_index(&pod), Some(3));
        assert_eq!(
            pod.metadata.labels.as_ref().and_then(|l| l.get(COMPLETION_INDEX_KEY)).map(String::as_str),
            Some("3")
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        let env = spec.containers[0].env.as_ref().expect("env");
        let path = env[0].value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
        assert_eq!(
            (env[0].name.as_str(), path),
            (COMPLETION_INDEX_ENV, Some("metadata.annotations['batch.kubernetes.io/job-completion-index']"))
        );
    }

    #[test]
    fn the_finish_time_falls_back_from_containers_to_readiness_to_deletion_to_creation() {
        let mut pod = with_phase("Failed", false);
        pod.metadata.creation_timestamp = Some(Time(at(1)));
        assert_eq!(finish_time(&pod), Some(at(1)));
        pod.metadata.deletion_timestamp = Some(Time(at(2)));
        assert_eq!(finish_time(&pod), Some(at(2)));
        let status = pod.status.as_mut().expect("status");
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(at(3))),
            ..Default::default()
        }]);
        assert_eq!(finish_time(&pod), Some(at(3)));
    }
}
