use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;
use crate::volume::fixtures::{annotate, claimed, pv, pvc, with_phase};

const RWO: &[&str] = &["ReadWriteOnce"];

fn names(found: Option<Arc<PersistentVolume>>) -> Option<String> {
    found.and_then(|p| p.metadata.name.clone())
}

fn all(pvs: Vec<PersistentVolume>) -> Vec<Arc<PersistentVolume>> {
    pvs.into_iter().map(Arc::new).collect()
}

#[test]
fn capacity_compares_quantities_exactly_across_suffixes() {
    let claim = pvc("c", "1Gi", Some("fast"), RWO);
    // 1G (10^9) < 1Gi (2^30) <= 1074Mi; 1073741824 is exactly 1Gi.
    assert!(unsatisfied(&pv("a", "1G", "fast", RWO), &claim).is_some());
    assert!(unsatisfied(&pv("b", "1073741824", "fast", RWO), &claim).is_none());
    assert!(unsatisfied(&pv("c", "1074Mi", "fast", RWO), &claim).is_none());
    assert!(unsatisfied(&pv("d", "not-a-size", "fast", RWO), &claim).is_some(), "unparsable never fits");
    let volumes =
        all(vec![pv("big", "2Ti", "fast", RWO), pv("exact", "1024Mi", "fast", RWO), pv("small", "1G", "fast", RWO)]);
    assert_eq!(names(best_match(&claim, &volumes, false)).as_deref(), Some("exact"), "the smallest that fits");
}

#[test]
fn access_modes_must_be_a_superset_and_volume_modes_equal() {
    let claim = pvc("c", "1Gi", Some("fast"), &["ReadWriteOnce", "ReadOnlyMany"]);
    assert!(unsatisfied(&pv("a", "1Gi", "fast", RWO), &claim).is_some());
    assert!(unsatisfied(&pv("b", "1Gi", "fast", &["ReadOnlyMany", "ReadWriteOnce", "ReadWriteMany"]), &claim).is_none());
    let mut block = pv("c", "1Gi", "fast", &["ReadWriteOnce", "ReadOnlyMany"]);
    block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
    assert_eq!(unsatisfied(&block, &claim).as_deref(), Some("incompatible volumeMode"));
    let mut explicit = pv("d", "1Gi", "fast", &["ReadWriteOnce", "ReadOnlyMany"]);
    explicit.spec.as_mut().unwrap().volume_mode = Some("Filesystem".into());
    assert!(unsatisfied(&explicit, &claim).is_none(), "unset means Filesystem");
}

#[test]
fn class_must_match_and_empty_matches_only_empty() {
    let volumes = all(vec![pv("classless", "1Gi", "", RWO), pv("fast", "1Gi", "fast", RWO)]);
    assert_eq!(names(best_match(&pvc("c", "1Gi", Some("fast"), RWO), &volumes, false)).as_deref(), Some("fast"));
    assert_eq!(names(best_match(&pvc("c", "1Gi", Some(""), RWO), &volumes, false)).as_deref(), Some("classless"));
    assert_eq!(names(best_match(&pvc("c", "1Gi", None, RWO), &volumes, false)).as_deref(), Some("classless"));
    assert_eq!(best_match(&pvc("c", "1Gi", Some("slow"), RWO), &volumes, false), None);
    let beta = annotate(pvc("c", "1Gi", Some("slow"), RWO), BETA_STORAGE_CLASS, "fast");
    assert_eq!(claim_class(&beta), Some("fast"), "the beta annotation wins");
}

#[test]
fn selector_phase_claim_ref_and_deletion_exclude_volumes() {
    let mut claim = pvc("c", "1Gi", Some("fast"), RWO);
    claim.spec.as_mut().unwrap().selector = Some(LabelSelector {
        match_labels: Some([("tier".to_string(), "gold".to_string())].into()),
        ..Default::default()
    });
    let gold = |name: &str, size: &str| {
        let mut v = pv(name, size, "fast", RWO);
        v.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
        v
    };
    let other = pvc("other", "1Gi", Some("fast"), RWO);
    let mut deleting = gold("deleting", "1Gi");
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    let volumes = all(vec![
        pv("unlabelled", "1Gi", "fast", RWO),
        with_phase(gold("pending", "1Gi"), "Pending"),
        claimed(gold("taken", "1Gi"), &other, true),
        deleting,
        gold("match", "3Gi"),
    ]);
    assert_eq!(names(best_match(&claim, &volumes, false)).as_deref(), Some("match"));
}

#[test]
fn a_volume_pre_bound_to_the_claim_wins_even_when_waiting_for_a_consumer() {
    let claim = pvc("c", "1Gi", Some("fast"), RWO);
    let pre_bound = with_phase(claimed(pv("mine", "5Gi", "other-class", RWO), &claim, true), "Bound");
    let by_name = claimed(pv("by-name", "5Gi", "fast", RWO), &claim, false);
    let volumes = all(vec![pv("free", "1Gi", "fast", RWO), pre_bound.clone()]);
    assert_eq!(names(best_match(&claim, &volumes, false)).as_deref(), Some("mine"));
    assert_eq!(names(best_match(&claim, &volumes, true)).as_deref(), Some("mine"));
    assert_eq!(names(best_match(&claim, &all(vec![by_name]), true)).as_deref(), Some("by-name"));
    assert_eq!(best_match(&claim, &all(vec![pv("free", "1Gi", "fast", RWO)]), true), None, "delayed: no free volume");

    // Same name, another uid: a claim recreated since; not this claim's volume.
    let mut recreated = claim.clone();
    recreated.metadata.uid = Some("uid-new".into());
    assert!(!is_bound_to(&pre_bound, &recreated));
    assert_eq!(best_match(&recreated, &all(vec![pre_bound]), false), None);
}

#[test]
fn a_requested_volume_must_also_match_the_class() {
    let claim = pvc("c", "1Gi", Some("fast"), RWO);
    assert!(cannot_bind_requested(&pv("v", "1Gi", "fast", RWO), &claim).is_none());
    assert!(cannot_bind_requested(&pv("v", "1Gi", "slow", RWO), &claim).is_some());
    assert!(cannot_bind_requested(&pv("v", "1Mi", "fast", RWO), &claim).is_some());
}
