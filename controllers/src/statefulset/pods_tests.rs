//! Unit tests of StatefulSet pod identity and claims.

use k8s_openapi::api::apps::v1::{StatefulSetOrdinals, StatefulSetSpec};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;

fn set(replicas: i32, start: Option<i32>) -> StatefulSet {
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("www".into()),
            labels: Some([("tier".to_string(), "data".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            ..Default::default()
        }),
        status: None,
    };
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            uid: Some("sts-uid".into()),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            ordinals: start.map(|s| StatefulSetOrdinals { start: Some(s) }),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        status: None,
    }
}

fn template() -> PodTemplateSpec {
    let volume = Volume { name: "www".into(), ..Default::default() };
    let scratch = Volume { name: "scratch".into(), ..Default::default() };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            annotations: Some([("a".to_string(), "b".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec { volumes: Some(vec![volume, scratch]), ..Default::default() }),
    }
}

#[test]
fn ordinals_parse_only_from_canonical_names_of_the_set() {
    assert_eq!(ordinal_of("web", "web-0"), Some(0));
    assert_eq!(ordinal_of("web", "web-12"), Some(12));
    assert_eq!(ordinal_of("web-a", "web-a-3"), Some(3));
    for other in ["web-01", "web-", "web", "web--1", "web-+1", "web-x", "webs-1", "api-1", "web-99999999999"] {
        assert_eq!(ordinal_of("web", other), None, "{other}");
    }
    assert_eq!(pod_name("web", 7), "web-7");
    assert_eq!(claim_name("www", "web", 7), "www-web-7");
}

#[test]
fn the_range_starts_at_spec_ordinals_start() {
    let s = set(3, None);
    assert!((0..3).all(|o| in_range(&s, o)) && !in_range(&s, 3));
    let shifted = set(2, Some(5));
    assert!(!in_range(&shifted, 4) && in_range(&shifted, 5) && in_range(&shifted, 6) && !in_range(&shifted, 7));
}

#[test]
fn a_new_pod_has_its_identity_its_claims_and_a_controller_reference() {
    let p = new_pod(&set(3, None), &template(), 2, "web-abc");
    assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("prod"));
    let labels = p.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(labels.get(POD_NAME_LABEL).map(String::as_str), Some("web-2"));
    assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
    assert_eq!(revision_of(&p), Some("web-abc"));
    assert_eq!(p.metadata.annotations.as_ref().and_then(|a| a.get("a")).map(String::as_str), Some("b"));
    let spec = p.spec.as_ref().expect("spec");
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-2"), Some("nginx")));
    let volumes = spec.volumes.as_ref().expect("volumes");
    assert_eq!(volumes.len(), 2, "the template's www volume is replaced by the claim");
    let claim = volumes.iter().find(|v| v.name == "www").and_then(|v| v.persistent_volume_claim.as_ref());
    assert_eq!(claim.map(|c| c.claim_name.as_str()), Some("www-web-2"));
    assert!(volumes.iter().any(|v| v.name == "scratch"));
    let r = &p.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((r.kind.as_str(), r.uid.as_str(), r.controller), ("StatefulSet", "sts-uid", Some(true)));
}

#[test]
fn claims_are_named_per_ordinal_and_carry_the_selector_labels() {
    let c = claims(&set(3, None), 1);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].metadata.name.as_deref(), Some("www-web-1"));
    assert_eq!(c[0].metadata.namespace.as_deref(), Some("prod"));
    let labels = c[0].metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.len(), 2);
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert!(c[0].spec.is_some());
}
