//! Schema tables for the workload kinds: apps/v1 Deployment, batch/v1 Job and policy/v1
//! PodDisruptionBudget.
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/api v0.32.4);
//! `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`). That is what keeps
//! `spec.replicas: 0` and a PDB `maxUnavailable: 0`. `status` is read and dropped.

use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::pod::POD_TEMPLATE_SPEC;
use super::schema::Kind::*;
use super::schema::{msg, one, ptr, rep, skip, Message};

/// `Deployment` (apps/v1).
pub(super) static DEPLOYMENT: Message = msg(
    "Deployment",
    &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&DEPLOYMENT_SPEC)), skip(3, "status")],
);

/// `DeploymentSpec` (apps/v1).
pub(super) static DEPLOYMENT_SPEC: Message = msg(
    "DeploymentSpec",
    &[
        ptr(1, "replicas", Int),
        ptr(2, "selector", Msg(&LABEL_SELECTOR)),
        one(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        one(4, "strategy", Msg(&DEPLOYMENT_STRATEGY)),
        one(5, "minReadySeconds", Int),
        ptr(6, "revisionHistoryLimit", Int),
        one(7, "paused", Bool),
        ptr(9, "progressDeadlineSeconds", Int),
    ],
);

/// `DeploymentStrategy` (apps/v1).
pub(super) static DEPLOYMENT_STRATEGY: Message =
    msg("DeploymentStrategy", &[one(1, "type", Str), ptr(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT))]);

/// `RollingUpdateDeployment` (apps/v1).
pub(super) static ROLLING_UPDATE_DEPLOYMENT: Message =
    msg("RollingUpdateDeployment", &[ptr(1, "maxUnavailable", IntOrString), ptr(2, "maxSurge", IntOrString)]);

/// `Job` (batch/v1).
pub(super) static JOB: Message =
    msg("Job", &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&JOB_SPEC)), skip(3, "status")]);

/// `JobSpec` (batch/v1).
pub(super) static JOB_SPEC: Message = msg(
    "JobSpec",
    &[
        ptr(1, "parallelism", Int),
        ptr(2, "completions", Int),
        ptr(3, "activeDeadlineSeconds", Int),
        ptr(11, "podFailurePolicy", Msg(&POD_FAILURE_POLICY)),
        ptr(16, "successPolicy", Msg(&SUCCESS_POLICY)),
        ptr(7, "backoffLimit", Int),
        ptr(12, "backoffLimitPerIndex", Int),
        ptr(13, "maxFailedIndexes", Int),
        ptr(4, "selector", Msg(&LABEL_SELECTOR)),
        ptr(5, "manualSelector", Bool),
        one(6, "template", Msg(&POD_TEMPLATE_SPEC)),
        ptr(8, "ttlSecondsAfterFinished", Int),
        ptr(9, "completionMode", Str),
        ptr(10, "suspend", Bool),
        ptr(14, "podReplacementPolicy", Str),
        ptr(15, "managedBy", Str),
    ],
);

/// `PodFailurePolicy` (batch/v1).
pub(super) static POD_FAILURE_POLICY: Message =
    msg("PodFailurePolicy", &[rep(1, "rules", Msg(&POD_FAILURE_POLICY_RULE))]);

/// `PodFailurePolicyRule` (batch/v1).
pub(super) static POD_FAILURE_POLICY_RULE: Message = msg(
    "PodFailurePolicyRule",
    &[
        one(1, "action", Str),
        ptr(2, "onExitCodes", Msg(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT)),
        rep(3, "onPodConditions", Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN)),
    ],
);

/// `PodFailurePolicyOnExitCodesRequirement` (batch/v1).
pub(super) static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = msg(
    "PodFailurePolicyOnExitCodesRequirement",
    &[ptr(1, "containerName", Str), one(2, "operator", Str), rep(3, "values", Int)],
);

/// `PodFailurePolicyOnPodConditionsPattern` (batch/v1).
pub(super) static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message =
    msg("PodFailurePolicyOnPodConditionsPattern", &[one(1, "type", Str), one(2, "status", Str)]);

/// `SuccessPolicy` (batch/v1).
pub(super) static SUCCESS_POLICY: Message = msg("SuccessPolicy", &[rep(1, "rules", Msg(&SUCCESS_POLICY_RULE))]);

/// `SuccessPolicyRule` (batch/v1).
pub(super) static SUCCESS_POLICY_RULE: Message =
    msg("SuccessPolicyRule", &[ptr(1, "succeededIndexes", Str), ptr(2, "succeededCount", Int)]);

/// `PodDisruptionBudget` (policy/v1).
pub(super) static POD_DISRUPTION_BUDGET: Message = msg(
    "PodDisruptionBudget",
    &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&POD_DISRUPTION_BUDGET_SPEC)), skip(3, "status")],
);

/// `PodDisruptionBudgetSpec` (policy/v1).
pub(super) static POD_DISRUPTION_BUDGET_SPEC: Message = msg(
    "PodDisruptionBudgetSpec",
    &[
        ptr(1, "minAvailable", IntOrString),
        ptr(2, "selector", Msg(&LABEL_SELECTOR)),
        ptr(3, "maxUnavailable", IntOrString),
        ptr(4, "unhealthyPodEvictionPolicy", Str),
    ],
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::decode;
    use super::super::encode::{body, meta, object, Pb};

    fn template(command: &[&str]) -> Pb {
        let container = command.iter().fold(Pb::default().str(1, "j").str(2, "busybox"), |c, arg| c.str(3, arg));
        Pb::default().msg(1, meta("")).msg(2, Pb::default().msg(2, container).str(3, "Never"))
    }

    #[test]
    fn job_with_command_and_pointer_spec_fields() {
        // kubectl create job j --image=busybox -- echo hi, plus limits a CronJob template may carry.
        let spec = Pb::default().int(1, 2).int(2, 4).int(7, 0).int(8, 3600).msg(6, template(&["echo", "hi"]));
        let got = decode(&body("batch/v1", "Job", object("j").msg(2, spec))).unwrap();
        let want = json!({
            "parallelism": 2, "completions": 4, "backoffLimit": 0, "ttlSecondsAfterFinished": 3600,
            "template": {"spec": {"containers": [{"name": "j", "image": "busybox", "command": ["echo", "hi"]}], "restartPolicy": "Never"}},
        });
        assert_eq!(got["spec"], want);
    }

    #[test]
    fn job_from_cronjob_keeps_owner_and_annotation() {
        // kubectl create job manual --from=cronjob/nightly
        let owner =
            Pb::default().str(1, "CronJob").str(3, "nightly").str(4, "0b6e-uid").str(5, "batch/v1").int(6, 1).int(7, 0);
        let m = meta("manual")
            .str(3, "default")
            .entry(11, "team", "data")
            .entry(12, "cronjob.kubernetes.io/instantiate", "manual")
            .msg(13, owner)
            .str(14, "example.com/cleanup");
        let raw = Pb::default().msg(1, m).msg(2, Pb::default().msg(6, template(&[])));
        let got = decode(&body("batch/v1", "Job", raw)).unwrap();
        let want = json!({
            "name": "manual",
            "namespace": "default",
            "labels": {"team": "data"},
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "0b6e-uid", "controller": true, "blockOwnerDeletion": false}],
            "finalizers": ["example.com/cleanup"],
        });
        assert_eq!(got["metadata"], want);
    }
}
