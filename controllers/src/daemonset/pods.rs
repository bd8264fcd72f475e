//! A DaemonSet's pods as values: the pod spec every daemon pod shares and the pod for one
//! node. Pure.
//!
//! A daemon pod is the template plus the default daemon tolerations, pinned to its node by
//! required node affinity (`matchFields metadata.name In [node]`) and placed there by the
//! scheduler, as upstream since 1.12; it is named `<ds>-<5 random chars>` by the server,
//! labelled `controller-revision-hash: <hash>` and controlled by the DaemonSet.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::eligibility::{add_daemon_tolerations, pin_to_node};
use crate::deployment::rollout::scaled;
use crate::history::REVISION_HASH_LABEL;
use crate::pod;

/// The template's pod spec with the daemon tolerations: what eligibility is decided on.
pub fn daemon_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds.spec.as_ref().and_then(|s| s.template.spec.clone()).unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// The daemon pod of `ds` for `node` at the revision with `hash`.
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = pod::from_template(&template, ds);
    pod.metadata.labels.get_or_insert_with(Default::default).insert(REVISION_HASH_LABEL.into(), hash.into());
    let mut spec = daemon_spec(ds);
    pin_to_node(&mut spec, node);
    pod.spec = Some(spec);
    pod
}

/// Whether the update strategy is RollingUpdate (the default).
pub fn rolling(ds: &DaemonSet) -> bool {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    strategy.and_then(|s| s.type_.as_deref()).is_none_or(|t| t == "RollingUpdate")
}

/// `(maxSurge, maxUnavailable)` for `desired` scheduled pods: percentages round up (as
/// upstream for DaemonSets), maxUnavailable defaults to 1 and maxSurge to 0, and when both
/// come out 0 one pod may be unavailable, or no update could proceed.
pub fn bounds(ds: &DaemonSet, desired: usize) -> (usize, usize) {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let total = i32::try_from(desired).unwrap_or(i32::MAX);
    let surge = ru.and_then(|r| r.max_surge.as_ref()).map_or(0, |v| scaled(Some(v), 0, total, true));
    let unavailable = ru.and_then(|r| r.max_unavailable.as_ref()).map_or(1, |v| scaled(Some(v), 0, total, true));
    let (surge, unavailable) = (usize::try_from(surge).unwrap_or(0), usize::try_from(unavailable).unwrap_or(0));
    if desired > 0 && surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

pub fn min_ready(ds: &DaemonSet) -> Duration {
    pod::min_ready(ds.spec.as_ref().and_then(|s| s.min_ready_seconds))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;
    use crate::daemonset::eligibility::target_node;

    fn ds(surge: Option<IntOrString>, unavailable: Option<IntOrString>) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("kube-system".into()),
                uid: Some("ds-uid".into()),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "agent".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                },
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDaemonSet { max_surge: surge, max_unavailable: unavailable }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_daemon_pod_is_pinned_labelled_tolerant_and_owned() {
        let p = new_pod(&ds(None, None), "n1", "abc");
        assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
        assert_eq!(target_node(&p), Some("n1"));
        assert_eq!(p.spec.as_ref().and_then(|s| s.node_name.as_deref()), None, "the scheduler binds it");
        let labels = p.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get(REVISION_HASH_LABEL).map(String::as_str), Some("abc"));
        assert_eq!(labels.get("app").map(String::as_str), Some("agent"));
        assert_eq!(p.spec.as_ref().and_then(|s| s.tolerations.as_ref()).map(Vec::len), Some(6));
        let r = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((r.kind.as_str(), r.uid.as_str(), r.controller), ("DaemonSet", "ds-uid", Some(true)));
    }

    #[test]
    fn bounds_default_round_up_and_never_both_zero() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        assert_eq!(bounds(&ds(None, None), 10), (0, 1));
        assert_eq!(bounds(&ds(None, pct("25%")), 10), (0, 3), "25% of 10 rounds up");
        assert_eq!(bounds(&ds(pct("10%"), Some(IntOrString::Int(0))), 10), (1, 0));
        assert_eq!(bounds(&ds(Some(IntOrString::Int(0)), Some(IntOrString::Int(0))), 4), (0, 1));
        assert_eq!(bounds(&ds(None, Some(IntOrString::Int(0))), 0), (0, 0));
    }
}
