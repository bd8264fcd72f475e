use std::sync::Arc;

use super::*;
use crate::volume::fixtures::{annotate, claimed, class, pv, pvc, with_phase};

const RWO: &[&str] = &["ReadWriteOnce"];

fn facts<'a>(claim: &'a PersistentVolumeClaim, volumes: &'a [Arc<PersistentVolume>]) -> ClaimFacts<'a> {
    ClaimFacts { claim, volumes, class: None, default_class: None, consumer_node: None }
}

fn reason(step: &ClaimStep) -> Option<&'static str> {
    match step {
        ClaimStep::Pending(Some(n)) | ClaimStep::Lost(n) => Some(n.reason),
        _ => None,
    }
}

fn bound(claim: PersistentVolumeClaim, volume: &str) -> PersistentVolumeClaim {
    let mut c = annotate(claim, ANN_BIND_COMPLETED, "yes");
    c.spec.as_mut().unwrap().volume_name = Some(volume.into());
    c
}

#[test]
fn an_immediate_claim_binds_or_says_why_it_waits() {
    let vols = vec![Arc::new(pv("v1", "1Gi", "manual", RWO))];
    let claim = pvc("c", "1Gi", Some("manual"), RWO);
    assert_eq!(claim_step(&facts(&claim, &vols)), ClaimStep::Bind(vols[0].clone()));

    let big = pvc("c", "2Gi", Some("manual"), RWO);
    assert_eq!(reason(&claim_step(&facts(&big, &vols))), Some("ProvisioningFailed"), "class manual does not exist");
    let manual = class("manual", NO_PROVISIONER, "Immediate");
    let f = ClaimFacts { class: Some(&manual), ..facts(&big, &vols) };
    assert_eq!(reason(&claim_step(&f)), Some("ProvisioningFailed"));
    let external = class("manual", "example.com/nfs", "Immediate");
    let f = ClaimFacts { class: Some(&external), ..facts(&big, &vols) };
    assert_eq!(reason(&claim_step(&f)), Some("ExternalProvisioning"));
    let classless = pvc("c", "2Gi", Some(""), RWO);
    assert_eq!(reason(&claim_step(&facts(&classless, &vols))), Some("FailedBinding"));
}

#[test]
fn a_claim_without_class_gets_the_default_one_first() {
    let claim = pvc("c", "1Gi", None, RWO);
    let f = ClaimFacts { default_class: Some("local-path"), ..facts(&claim, &[]) };
    assert_eq!(claim_step(&f), ClaimStep::AssignClass("local-path".into()));
    let empty = pvc("c", "1Gi", Some(""), RWO);
    let f = ClaimFacts { default_class: Some("local-path"), ..facts(&empty, &[]) };
    assert_ne!(claim_step(&f), ClaimStep::AssignClass("local-path".into()), "\"\" is a choice, not a gap");
    let mut named = pvc("c", "1Gi", None, RWO);
    named.spec.as_mut().unwrap().volume_name = Some("v1".into());
    let f = ClaimFacts { default_class: Some("local-path"), ..facts(&named, &[]) };
    assert_eq!(claim_step(&f), ClaimStep::Pending(None), "a claim naming its volume keeps no class");
}

#[test]
fn wait_for_first_consumer_then_select_its_node_then_provision() {
    let local = class("local-path", LOCAL_PATH_PROVISIONER, "WaitForFirstConsumer");
    // A free volume of the class does not bind before a consumer exists.
    let vols = vec![Arc::new(pv("v1", "1Gi", "local-path", RWO))];
    let claim = pvc("c", "1Gi", Some("local-path"), RWO);
    let f = ClaimFacts { class: Some(&local), ..facts(&claim, &vols) };
    assert!(matches!(claim_step(&f), ClaimStep::Pending(Some(Note { reason: "WaitForFirstConsumer", .. }))));
    let f = ClaimFacts { consumer_node: Some("n1"), ..f };
    assert_eq!(claim_step(&f), ClaimStep::SelectNode("n1".into()));
    let selected = annotate(claim.clone(), ANN_SELECTED_NODE, "n1");
    let f = ClaimFacts { class: Some(&local), ..facts(&selected, &vols) };
    assert_eq!(claim_step(&f), ClaimStep::Provision("n1".into()));
    // Once provisioned (pre-bound to the claim), the volume is bound rather than made again.
    let made = vec![Arc::new(claimed(pv("pvc-uid-c", "1Gi", "local-path", RWO), &selected, true))];
    let f = ClaimFacts { class: Some(&local), ..facts(&selected, &made) };
    assert_eq!(claim_step(&f), ClaimStep::Bind(made[0].clone()));
}

#[test]
fn a_user_chosen_volume_is_checked_before_binding() {
    let mut claim = pvc("c", "1Gi", Some("manual"), RWO);
    claim.spec.as_mut().unwrap().volume_name = Some("v1".into());
    assert_eq!(claim_step(&facts(&claim, &[])), ClaimStep::Pending(None), "not created yet");
    let small = vec![Arc::new(pv("v1", "1Mi", "manual", RWO))];
    assert_eq!(reason(&claim_step(&facts(&claim, &small))), Some("VolumeMismatch"));
    let other = pvc("other", "1Gi", Some("manual"), RWO);
    let taken = vec![Arc::new(claimed(pv("v1", "1Gi", "manual", RWO), &other, true))];
    assert_eq!(reason(&claim_step(&facts(&claim, &taken))), Some("FailedBinding"));
    let fits = vec![Arc::new(pv("v1", "1Gi", "manual", RWO))];
    assert_eq!(claim_step(&facts(&claim, &fits)), ClaimStep::Bind(fits[0].clone()));
}

#[test]
fn a_bound_claim_stays_bound_or_is_lost() {
    let claim = bound(pvc("c", "1Gi", Some("manual"), RWO), "v1");
    let mine = vec![Arc::new(with_phase(claimed(pv("v1", "1Gi", "manual", RWO), &claim, true), BOUND))];
    assert_eq!(claim_step(&facts(&claim, &mine)), ClaimStep::Bind(mine[0].clone()), "re-checked, idempotent");
    assert_eq!(claim_step(&facts(&claim, &[])), ClaimStep::VolumeMissing("v1".into()));
    let other = pvc("other", "1Gi", Some("manual"), RWO);
    let theirs = vec![Arc::new(claimed(pv("v1", "1Gi", "manual", RWO), &other, true))];
    assert_eq!(reason(&claim_step(&facts(&claim, &theirs))), Some("ClaimMisbound"));
    let mut dangling = claim.clone();
    dangling.spec.as_mut().unwrap().volume_name = None;
    assert_eq!(reason(&claim_step(&facts(&dangling, &mine))), Some("ClaimLost"));
}

#[test]
fn volume_phases_follow_the_claim() {
    let claim = pvc("c", "1Gi", Some("manual"), RWO);
    let free = pv("v1", "1Gi", "manual", RWO);
    assert_eq!(volume_step(&free, None), VolumeStep::Phase(AVAILABLE));
    assert_eq!(volume_step(&claimed(free.clone(), &claim, false), None), VolumeStep::Phase(AVAILABLE), "pre-bound");
    let half = claimed(free.clone(), &claim, true);
    assert_eq!(volume_step(&half, Some(&claim)), VolumeStep::Wait, "half bound: the claim finishes it");
    assert_eq!(volume_step(&half, Some(&bound(claim.clone(), "v1"))), VolumeStep::Phase(BOUND));
    assert_eq!(volume_step(&half, None), VolumeStep::ClaimGone);
    let mut recreated = claim.clone();
    recreated.metadata.uid = Some("uid-new".into());
    assert_eq!(volume_step(&half, Some(&recreated)), VolumeStep::ClaimGone, "another claim of the same name");
    let elsewhere = bound(claim.clone(), "v2");
    assert_eq!(volume_step(&half, Some(&elsewhere)), VolumeStep::Unbind);
    let mut provisioned = annotate(half.clone(), ANN_PROVISIONED_BY, LOCAL_PATH_PROVISIONER);
    provisioned.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some("Delete".into());
    assert_eq!(volume_step(&provisioned, Some(&elsewhere)), VolumeStep::Release);
}

#[test]
fn unbinding_undoes_only_what_the_controller_did() {
    let claim = pvc("c", "1Gi", Some("manual"), RWO);
    let ours = annotate(claimed(pv("v1", "1Gi", "manual", RWO), &claim, true), ANN_BOUND_BY_CONTROLLER, "yes");
    let undone = unbound(&ours);
    assert_eq!(undone.spec.as_ref().unwrap().claim_ref, None);
    assert!(!undone.metadata.annotations.unwrap().contains_key(ANN_BOUND_BY_CONTROLLER));
    let users = claimed(pv("v1", "1Gi", "manual", RWO), &claim, true);
    let r = unbound(&users).spec.unwrap().claim_ref.expect("kept");
    assert_eq!((r.name.as_deref(), r.uid), (Some("c"), None), "pre-bound by name again");
}

#[test]
fn reclaim_by_policy_and_provisioner() {
    let policy = |p: &str, by: Option<&str>| {
        let mut v = pv("v1", "1Gi", "x", RWO);
        v.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some(p.into());
        reclaim(&match by {
            Some(by) => annotate(v, ANN_PROVISIONED_BY, by),
            None => v,
        })
    };
    assert_eq!(policy("Retain", Some(LOCAL_PATH_PROVISIONER)), Reclaim::Keep);
    assert_eq!(policy("Delete", Some(LOCAL_PATH_PROVISIONER)), Reclaim::Delete);
    assert_eq!(policy("Delete", Some("example.com/nfs")), Reclaim::Keep, "that provisioner deletes it");
    assert!(matches!(policy("Delete", None), Reclaim::Fail("VolumeFailedDelete", _)));
    assert!(matches!(policy("Recycle", None), Reclaim::Fail("VolumeFailedRecycle", _)));
}

#[test]
fn claim_statuses_carry_the_volume_or_nothing() {
    let claim = pvc("c", "1Gi", Some("manual"), RWO);
    let volume = pv("v1", "2Gi", "manual", &["ReadWriteOnce", "ReadOnlyMany"]);
    let s = bound_claim_status(&claim, &volume);
    assert_eq!(s.phase.as_deref(), Some(BOUND));
    assert_eq!(s.capacity.as_ref().unwrap()["storage"].0, "2Gi");
    assert_eq!(s.access_modes.as_deref().unwrap().len(), 2);
    let mut was_bound = claim.clone();
    was_bound.status = Some(s);
    let lost = unbound_claim_status(&was_bound, LOST);
    assert_eq!((lost.phase.as_deref(), lost.capacity, lost.access_modes), (Some(LOST), None, None));
}
