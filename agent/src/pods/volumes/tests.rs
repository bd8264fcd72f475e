//! [`VolumeManager`] on temporary directories: the layout, idempotent set-up, refresh
//! with its rate limit, and removal that never leaves the pod's directory.

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, PodSpec, Secret, SecretVolumeSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::*;

const UID: &str = "pod-uid-1";

fn pod(host: &Path) -> Pod {
    let volumes = vec![
        Volume { name: "scratch".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
        Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource { name: "app-config".into(), ..Default::default() }),
            ..Volume::default()
        },
        Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource { secret_name: Some("creds".into()), ..Default::default() }),
            ..Volume::default()
        },
        Volume {
            name: "host".into(),
            host_path: Some(HostPathVolumeSource {
                path: host.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Volume::default()
        },
    ];
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec { volumes: Some(volumes), ..PodSpec::default() }),
        status: None,
    }
}

fn objects(color: &str) -> Objects {
    let mut o = Objects::default();
    let cm = ConfigMap { data: Some([("color".to_string(), color.to_string())].into()), ..ConfigMap::default() };
    o.config_maps.insert("app-config".into(), Some(cm));
    let secret =
        Secret { data: Some([("pw".to_string(), ByteString(b"s3cret".to_vec()))].into()), ..Secret::default() };
    o.secrets.insert("creds".into(), Some(secret));
    o
}

#[test]
fn volumes_are_laid_out_under_the_pod_and_removal_stays_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("node/shared");
    let manager = VolumeManager::new(Some(tmp.path().join("pods")));
    let pod = pod(&host);
    let paths = manager.prepare(&pod, &objects("blue"), &NodeFacts::default()).unwrap();
    let pod_dir = tmp.path().join("pods").join(UID);
    assert_eq!(paths["scratch"], VolumePath { path: pod_dir.join("volumes/empty-dir/scratch"), read_only: false });
    assert_eq!(paths["cfg"], VolumePath { path: pod_dir.join("volumes/configmap/cfg"), read_only: true });
    assert_eq!(paths["creds"].path, pod_dir.join("volumes/secret/creds"));
    assert_eq!(paths["host"], VolumePath { path: host.clone(), read_only: false });
    assert_eq!(std::fs::read_to_string(paths["cfg"].path.join("color")).unwrap(), "blue");
    assert_eq!(std::fs::read_to_string(paths["creds"].path.join("pw")).unwrap(), "s3cret");
    assert!(host.is_dir());

    std::fs::write(paths["scratch"].path.join("work"), "in progress").unwrap();
    std::fs::write(host.join("keep"), "node data").unwrap();
    manager.prepare(&pod, &objects("blue"), &NodeFacts::default()).unwrap();
    assert!(paths["scratch"].path.join("work").exists(), "a second set-up keeps emptyDir content");

    manager.remove_pod(UID).unwrap();
    assert!(!pod_dir.exists());
    assert_eq!(std::fs::read_to_string(host.join("keep")).unwrap(), "node data", "hostPath is never removed");
    manager.remove_pod(UID).unwrap();
}

#[test]
fn a_failed_volume_names_itself_and_a_simulated_node_makes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let manager = VolumeManager::new(Some(tmp.path().join("pods")));
    let mut missing = objects("blue");
    missing.config_maps.insert("app-config".into(), None);
    let err = manager.prepare(&pod(&tmp.path().join("h")), &missing, &NodeFacts::default()).unwrap_err();
    assert_eq!(err.to_string(), "MountVolume.SetUp failed for volume \"cfg\" : configmap \"app-config\" not found");

    let simulated = VolumeManager::new(None);
    let host = tmp.path().join("sim-host");
    assert!(simulated.prepare(&pod(&host), &objects("blue"), &NodeFacts::default()).unwrap().is_empty());
    assert!(!host.exists());
    assert!(!simulated.refresh_due(UID, Instant::now()));
}

#[test]
fn refresh_rewrites_changed_content_at_most_once_per_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let manager = VolumeManager::new(Some(tmp.path().join("pods"))).with_refresh_interval(Duration::from_secs(10));
    let pod = pod(&tmp.path().join("h"));
    let paths = manager.prepare(&pod, &objects("blue"), &NodeFacts::default()).unwrap();
    let start = Instant::now();
    assert!(manager.refresh_due(UID, start));
    assert!(!manager.refresh_due(UID, start + Duration::from_secs(9)));
    assert!(manager.refresh_due(UID, start + Duration::from_secs(10)));

    assert!(manager.refresh(&pod, &objects("blue"), &NodeFacts::default()).is_empty(), "unchanged");
    assert_eq!(manager.refresh(&pod, &objects("green"), &NodeFacts::default()), ["cfg"]);
    assert_eq!(std::fs::read_to_string(paths["cfg"].path.join("color")).unwrap(), "green");
    let mut gone = objects("green");
    gone.config_maps.insert("app-config".into(), None);
    assert!(manager.refresh(&pod, &gone, &NodeFacts::default()).is_empty());
    assert_eq!(
        std::fs::read_to_string(paths["cfg"].path.join("color")).unwrap(),
        "green",
        "a vanished source keeps content"
    );
}

#[test]
fn only_plain_uids_and_volume_names_name_directories() {
    let manager = VolumeManager::new(Some(PathBuf::from("/var/lib/flotilla/pods")));
    assert_eq!(manager.pod_dir("abc"), Some(PathBuf::from("/var/lib/flotilla/pods/abc")));
    for bad in ["", "..", "../etc", "a/b", ".hidden"] {
        assert_eq!(manager.pod_dir(bad), None, "{bad:?}");
        assert!(manager.remove_pod(bad).is_ok(), "nothing to remove for {bad:?}");
    }
    assert!(manager.volume_dir("abc", "configmap", "../x").is_err());
    assert!(manager.volume_dir("abc", "configmap", "a/b").is_err());
}
