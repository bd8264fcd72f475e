//! hostPath type checks and claim resolution against temporary directories.

use std::os::unix::net::UnixListener;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

#[test]
fn host_path_types_are_checked_and_the_create_kinds_create() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d/e");
    check_type(&dir, "DirectoryOrCreate").unwrap();
    assert!(dir.is_dir());
    check_type(&dir, "Directory").unwrap();
    let file = tmp.path().join("f/g.txt");
    check_type(&file, "FileOrCreate").unwrap();
    assert!(file.is_file());
    fs::write(&file, "kept").unwrap();
    check_type(&file, "FileOrCreate").unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "kept", "an existing file is not truncated");
    check_type(&file, "File").unwrap();
    let sock = tmp.path().join("s.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    check_type(&sock, "Socket").unwrap();
    check_type(Path::new("/dev/null"), "CharDevice").unwrap();
    check_type(&tmp.path().join("missing"), "").unwrap();

    let msg = |p: &Path, t: &str| check_type(p, t).unwrap_err();
    assert_eq!(msg(&file, "Directory"), format!("hostPath type check failed: {} is not a directory", file.display()));
    assert_eq!(
        msg(&file, "DirectoryOrCreate"),
        format!("hostPath type check failed: {} is not a directory", file.display())
    );
    assert_eq!(msg(&dir, "File"), format!("hostPath type check failed: {} is not a file", dir.display()));
    assert_eq!(msg(&dir, "FileOrCreate"), format!("hostPath type check failed: {} is not a file", dir.display()));
    assert!(msg(&tmp.path().join("missing"), "Directory").contains("is not a directory"));
    assert!(!tmp.path().join("missing").exists(), "Directory never creates");
    assert!(msg(&file, "Socket").ends_with("is not a socket file"));
    assert!(msg(&file, "CharDevice").ends_with("is not a character device"));
    assert!(msg(&file, "BlockDevice").ends_with("is not a block device"));
    assert_eq!(msg(&file, "Weird"), "Weird is an invalid volume type");
    let source = HostPathVolumeSource { path: dir.display().to_string(), type_: None };
    assert_eq!(host_path(&source).unwrap(), dir);
}

fn claim(phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            namespace: Some("default".into()),
            uid: Some("claim-uid".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec { volume_name: volume.map(str::to_string), ..Default::default() }),
        status: Some(PersistentVolumeClaimStatus { phase: Some(phase.into()), ..Default::default() }),
    }
}

fn volume(path: &Path, local_path: bool, claim_uid: &str) -> PersistentVolume {
    let annotations = local_path.then(|| [(ANN_PROVISIONED_BY.to_string(), LOCAL_PATH_PROVISIONER.to_string())].into());
    PersistentVolume {
        metadata: ObjectMeta { name: Some("pvc-claim-uid".into()), annotations, ..ObjectMeta::default() },
        spec: Some(PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource { path: path.display().to_string(), type_: None }),
            claim_ref: Some(ObjectReference {
                name: Some("data".into()),
                namespace: Some("default".into()),
                uid: Some(claim_uid.into()),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

fn objects(claim: Option<PersistentVolumeClaim>, pv: Option<PersistentVolume>) -> Objects {
    let mut o = Objects::default();
    o.claims.insert("data".into(), claim);
    o.volumes.insert("pvc-claim-uid".into(), pv);
    o
}

#[test]
fn a_bound_claim_resolves_to_its_volume_path_and_local_path_dirs_are_created() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("local-path/pvc-claim-uid_default_data");
    let found = claim_path(
        "default",
        "data",
        &objects(Some(claim("Bound", Some("pvc-claim-uid"))), Some(volume(&path, true, "claim-uid"))),
    );
    assert_eq!(found.unwrap(), path);
    assert!(path.is_dir(), "the local-path directory is created on first use");

    let other = tmp.path().join("plain");
    let plain = objects(Some(claim("Bound", Some("pvc-claim-uid"))), Some(volume(&other, false, "claim-uid")));
    assert_eq!(claim_path("default", "data", &plain).unwrap(), other, "type \"\": no check, nothing created");
    assert!(!other.exists());
}

#[test]
fn unbound_missing_or_foreign_claims_wait_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v");
    let err = |o: Objects| claim_path("default", "data", &o).unwrap_err();
    assert_eq!(err(objects(Some(claim("Pending", None)), None)), "error processing PVC default/data: PVC is not bound");
    assert_eq!(err(objects(None, None)), "error processing PVC default/data: persistentvolumeclaim \"data\" not found");
    assert!(err(objects(Some(claim("Bound", Some("pvc-claim-uid"))), None))
        .contains("persistentvolume \"pvc-claim-uid\" not found"));
    let foreign = objects(Some(claim("Bound", Some("pvc-claim-uid"))), Some(volume(&path, true, "someone-else")));
    assert!(err(foreign).contains("bound to another claim"));
    assert!(!path.exists());
}
