//! Volumes that are paths of the node: `hostPath` (with its `type` checked the kubelet's
//! way) and `persistentVolumeClaim` resolved through the bound PersistentVolume to its
//! `hostPath` or `local` path.
//!
//! Invariants:
//! - Only `DirectoryOrCreate`, `FileOrCreate` and local-path provisioner volumes create
//!   anything (a directory 0755 or an empty file 0644); nothing here ever removes a path.
//! - A claim is used only once bound: the PVC names a volume and that volume's `claimRef`
//!   names the claim (by uid when set); otherwise the pod waits with upstream's message.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolume, PersistentVolumeClaim};

use crate::pods::env::objects::Objects;

/// The provisioner name of the local-path volumes the controllers make.
pub const LOCAL_PATH_PROVISIONER: &str = "flotilla.io/local-path";
const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// The checked path of a `hostPath` volume.
pub fn host_path(source: &HostPathVolumeSource) -> Result<PathBuf, String> {
    let path = PathBuf::from(&source.path);
    check_type(&path, source.type_.as_deref().unwrap_or(""))?;
    Ok(path)
}

/// Check (or create) `path` as `type_` says, with upstream's messages.
pub fn check_type(path: &Path, type_: &str) -> Result<(), String> {
    let meta = fs::metadata(path).ok();
    let shown = path.display();
    let failed = |what: &str| format!("hostPath type check failed: {shown} is not a {what}");
    let ft = meta.as_ref().map(|m| m.file_type());
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| format!("cannot create {shown}: {e}")),
        "DirectoryOrCreate" | "Directory" => ft.filter(|t| t.is_dir()).map(|_| ()).ok_or_else(|| failed("directory")),
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let create = OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(path);
            create.map(drop).map_err(|e| format!("cannot create {shown}: {e}"))
        }
        "FileOrCreate" | "File" => ft.filter(|t| t.is_file()).map(|_| ()).ok_or_else(|| failed("file")),
        "Socket" => ft.filter(|t| t.is_socket()).map(|_| ()).ok_or_else(|| failed("socket file")),
        "CharDevice" => ft.filter(|t| t.is_char_device()).map(|_| ()).ok_or_else(|| failed("character device")),
        "BlockDevice" => ft.filter(|t| t.is_block_device()).map(|_| ()).ok_or_else(|| failed("block device")),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// The node path of claim `name` of namespace `namespace`, from the fetched objects.
pub fn claim_path(namespace: &str, name: &str, objects: &Objects) -> Result<PathBuf, String> {
    let processing = |why: &str| format!("error processing PVC {namespace}/{name}: {why}");
    let claim = objects
        .claims
        .get(name)
        .and_then(Option::as_ref)
        .ok_or_else(|| processing(&format!("persistentvolumeclaim {name:?} not found")))?;
    let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty());
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let (Some(volume_name), Some("Bound")) = (volume_name, phase) else {
        return Err(processing("PVC is not bound"));
    };
    let volume = objects
        .volumes
        .get(&volume_name)
        .and_then(Option::as_ref)
        .ok_or_else(|| processing(&format!("persistentvolume {volume_name:?} not found")))?;
    if !claimed_by(volume, claim) {
        return Err(processing(&format!("volume {volume_name} is bound to another claim")));
    }
    volume_path(volume).map_err(|e| processing(&e))
}

fn claimed_by(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { return false };
    let same_name = r.name.as_deref() == claim.metadata.name.as_deref()
        && r.namespace.as_deref() == claim.metadata.namespace.as_deref();
    let same_uid = r.uid.is_none() || r.uid.as_deref() == claim.metadata.uid.as_deref();
    same_name && same_uid
}

/// A bound volume's path on this node; a local-path volume's directory is created if missing.
fn volume_path(volume: &PersistentVolume) -> Result<PathBuf, String> {
    let spec = volume.spec.as_ref();
    let annotations = volume.metadata.annotations.as_ref();
    let local_path =
        annotations.and_then(|a| a.get(ANN_PROVISIONED_BY)).map(String::as_str) == Some(LOCAL_PATH_PROVISIONER);
    if let Some(h) = spec.and_then(|s| s.host_path.as_ref()) {
        let type_ = if local_path { "DirectoryOrCreate" } else { h.type_.as_deref().unwrap_or("") };
        let path = PathBuf::from(&h.path);
        check_type(&path, type_)?;
        return Ok(path);
    }
    if let Some(l) = spec.and_then(|s| s.local.as_ref()) {
        let path = PathBuf::from(&l.path);
        if !path.exists() {
            return Err(format!("path {:?} does not exist", l.path));
        }
        return Ok(path);
    }
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    Err(format!("volume {name} has no hostPath or local source this node can mount"))
}

#[cfg(test)]
mod tests;
