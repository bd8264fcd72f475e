//! Content volume files from hand-built objects: keys, items, modes, optional sources,
//! projections, and upstream's messages.

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeSource,
    ObjectFieldSelector, PodSpec, ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource,
    ServiceAccountTokenProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::*;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec::default()),
        status: None,
    }
}

fn objects() -> Objects {
    let cm = ConfigMap {
        data: Some([("a.conf".to_string(), "A".to_string()), ("b.conf".to_string(), "B".to_string())].into()),
        binary_data: Some([("blob".to_string(), ByteString(vec![0, 1, 2]))].into()),
        ..ConfigMap::default()
    };
    let secret =
        Secret { data: Some([("token".to_string(), ByteString(b"t0k".to_vec()))].into()), ..Secret::default() };
    let mut o = Objects::default();
    o.config_maps.insert("cfg".into(), Some(cm));
    o.secrets.insert("sec".into(), Some(secret));
    let token = crate::pods::tokens::TokenRef { audience: String::new(), expiration_seconds: 3600 };
    o.tokens.insert(token, "header.claims.signature".into());
    o
}

fn files(volume: &Volume) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let payload = of(&pod(), volume, &objects(), &NodeFacts::default()).expect("a content volume")?;
    Ok(payload.into_iter().map(|(p, f)| (p.display().to_string(), f.data, f.mode)).collect())
}

fn key(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath { key: key.into(), path: path.into(), mode }
}

fn cm_volume(name: &str, items: Option<Vec<KeyToPath>>, default_mode: Option<i32>, optional: Option<bool>) -> Volume {
    let source = ConfigMapVolumeSource { name: name.into(), items, default_mode, optional };
    Volume { name: "v".into(), config_map: Some(source), ..Volume::default() }
}

#[test]
fn a_config_map_gives_every_key_or_its_items_with_modes() {
    let all = files(&cm_volume("cfg", None, None, None)).unwrap();
    assert_eq!(
        all,
        [
            ("a.conf".to_string(), b"A".to_vec(), 0o644),
            ("b.conf".to_string(), b"B".to_vec(), 0o644),
            ("blob".to_string(), vec![0, 1, 2], 0o644),
        ]
    );
    let items = Some(vec![key("a.conf", "conf/app.conf", Some(0o600)), key("b.conf", "b", None)]);
    let some = files(&cm_volume("cfg", items, Some(0o440), None)).unwrap();
    assert_eq!(some, [("b".to_string(), b"B".to_vec(), 0o440), ("conf/app.conf".to_string(), b"A".to_vec(), 0o600)]);
}

#[test]
fn missing_sources_and_keys_fail_unless_optional() {
    assert_eq!(files(&cm_volume("nope", None, None, None)).unwrap_err(), "configmap \"nope\" not found");
    assert!(files(&cm_volume("nope", None, None, Some(true))).unwrap().is_empty());
    let missing_key = Some(vec![key("zzz", "z", None)]);
    assert_eq!(
        files(&cm_volume("cfg", missing_key.clone(), None, None)).unwrap_err(),
        "configmap references non-existent config key: zzz"
    );
    assert!(files(&cm_volume("cfg", missing_key, None, Some(true))).unwrap().is_empty());
    let secret = |name: &str, items| Volume {
        name: "s".into(),
        secret: Some(SecretVolumeSource { secret_name: Some(name.into()), items, ..SecretVolumeSource::default() }),
        ..Volume::default()
    };
    assert_eq!(files(&secret("sec", None)).unwrap(), [("token".to_string(), b"t0k".to_vec(), 0o644)]);
    assert_eq!(files(&secret("gone", None)).unwrap_err(), "secret \"gone\" not found");
    assert_eq!(
        files(&secret("sec", Some(vec![key("user", "u", None)]))).unwrap_err(),
        "references non-existent secret key: user"
    );
    let escape = Some(vec![key("a.conf", "../../etc/passwd", None)]);
    assert!(files(&cm_volume("cfg", escape, None, None)).unwrap_err().contains("invalid path"));
}

#[test]
fn downward_and_projected_volumes_combine_their_sources() {
    let label_file = DownwardAPIVolumeFile {
        path: "labels".into(),
        field_ref: Some(ObjectFieldSelector { field_path: "metadata.labels".into(), api_version: None }),
        ..DownwardAPIVolumeFile::default()
    };
    let downward = Volume {
        name: "d".into(),
        downward_api: Some(DownwardAPIVolumeSource { items: Some(vec![label_file.clone()]), default_mode: None }),
        ..Volume::default()
    };
    assert_eq!(files(&downward).unwrap(), [("labels".to_string(), b"app=\"web\"".to_vec(), 0o644)]);
    let sources = vec![
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: "cfg".into(),
                items: Some(vec![key("a.conf", "a", None)]),
                optional: None,
            }),
            ..VolumeProjection::default()
        },
        VolumeProjection {
            secret: Some(SecretProjection { name: "sec".into(), ..SecretProjection::default() }),
            ..VolumeProjection::default()
        },
        VolumeProjection {
            downward_api: Some(DownwardAPIProjection { items: Some(vec![label_file]) }),
            ..VolumeProjection::default()
        },
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                path: "token-sa".into(),
                ..Default::default()
            }),
            ..VolumeProjection::default()
        },
    ];
    let projected = Volume {
        name: "p".into(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: Some(0o400) }),
        ..Volume::default()
    };
    let got = files(&projected).unwrap();
    let names: Vec<(String, u32)> = got.iter().map(|(p, _, m)| (p.clone(), *m)).collect();
    let want = ["a", "labels", "token", "token-sa"].map(|n| (n.to_string(), 0o400));
    assert_eq!(names, want);
    assert_eq!(got[3].1, b"header.claims.signature", "the pod's token for the default audience and an hour");
    // A token the agent could not get fails the volume instead of leaving the file out.
    let mut other = projected.clone();
    let sources = other.projected.as_mut().unwrap().sources.as_mut().unwrap();
    sources[3].service_account_token.as_mut().unwrap().audience = Some("vault".into());
    let err = files(&other).unwrap_err();
    assert!(err.contains("no service account token for \"token-sa\""), "{err}");
    assert!(of(&pod(), &Volume { name: "e".into(), ..Volume::default() }, &objects(), &NodeFacts::default()).is_none());
}
