//! Pod volumes as node paths: every volume of a pod becomes a directory or file that the
//! runtime bind-mounts ([`crate::runtime::Mount`]); runtimes never see volume kinds.
//!
//! ```text
//! <pods_dir>/<uid>/volumes/empty-dir/<name>      emptyDir (a tmpfs for medium Memory)
//! <pods_dir>/<uid>/volumes/configmap/<name>      configMap  ┐ written by the atomic
//! <pods_dir>/<uid>/volumes/secret/<name>         secret     │ writer ([`atomic`]) and
//! <pods_dir>/<uid>/volumes/downward-api/<name>   downwardAPI│ refreshed while the pod
//! <pods_dir>/<uid>/volumes/projected/<name>      projected  ┘ runs
//! hostPath / persistentVolumeClaim               the node path itself ([`host`])
//! ```
//!
//! Invariants:
//! - Nothing outside `<pods_dir>/<uid>` is ever deleted: hostPath and PV paths belong to
//!   the node (the agent may create them, never removes them); [`VolumeManager::remove_pod`]
//!   unmounts the pod's tmpfs mounts first, then removes only `<pods_dir>/<uid>`, and
//!   refuses a uid that is not a plain file name.
//! - Content volume updates are atomic for readers (see [`atomic`]) and happen only when
//!   the content changed; a refresh runs at most once per [`VolumeManager::refresh_interval`]
//!   per pod, and a source that vanished keeps the last content (as upstream).
//! - On a simulated node (`pods_dir` None) nothing is made and nothing is mounted.
//! - Setting up is idempotent, so it runs before every container start: an emptyDir keeps
//!   its content across container restarts.
//!
//! File system work here is synchronous: a few small files per volume, short enough for
//! the pod worker's task.

pub mod atomic;
pub mod empty_dir;
pub mod host;
pub mod mounts;
pub mod payload;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Volume};
use tokio::time::Instant;

use crate::pods::env::field::NodeFacts;
use crate::pods::env::objects::Objects;
use crate::pods::spec;
use mounts::VolumePath;

/// How often a running pod's configMap, secret, downwardAPI and projected volumes are
/// compared with their sources (the kubelet's sync period is about as long).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// A volume that could not be made: upstream's `MountVolume.SetUp failed` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MountVolume.SetUp failed for volume {:?} : {}", self.volume, self.message)
    }
}

/// The volumes of a node's pods. Shared by every pod worker of the node.
#[derive(Debug)]
pub struct VolumeManager {
    /// `<data-dir>/pods`; None on simulated nodes, whose fake runtime mounts nothing.
    pods_dir: Option<PathBuf>,
    refresh_interval: Duration,
    /// Pod uid → when its content volumes were last refreshed (short sections, no await).
    refreshed: Mutex<HashMap<String, Instant>>,
}

impl VolumeManager {
    pub fn new(pods_dir: Option<PathBuf>) -> Self {
        Self { pods_dir, refresh_interval: DEFAULT_REFRESH_INTERVAL, refreshed: Mutex::default() }
    }

    /// Refresh content volumes at most once per `interval` per pod.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// True on a simulated node: no volume is made or mounted.
    pub fn is_simulated(&self) -> bool {
        self.pods_dir.is_none()
    }

    /// Where pod `uid`'s files live, on a real node (None too for a uid that is not a
    /// plain file name, which could point elsewhere).
    pub fn pod_dir(&self, uid: &str) -> Option<PathBuf> {
        let plain = !uid.is_empty() && !uid.starts_with('.') && !uid.contains('/') && !uid.contains('\0');
        self.pods_dir.as_ref().filter(|_| plain).map(|d| d.join(uid))
    }

    fn volume_dir(&self, uid: &str, kind: &str, name: &str) -> Result<PathBuf, String> {
        let pod_dir = self.pod_dir(uid).ok_or_else(|| format!("pod uid {uid:?} cannot name a directory"))?;
        let name = payload::checked(name).ok().filter(|n| n.components().count() == 1);
        let name = name.ok_or_else(|| "the volume name cannot name a directory".to_string())?;
        Ok(pod_dir.join("volumes").join(kind).join(name))
    }

    /// Make every volume of `pod` a node path; the paths by volume name (none on a
    /// simulated node).
    pub fn prepare(
        &self,
        pod: &Pod,
        objects: &Objects,
        facts: &NodeFacts,
    ) -> Result<BTreeMap<String, VolumePath>, VolumeError> {
        let mut paths = BTreeMap::new();
        if self.is_simulated() {
            return Ok(paths);
        }
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let path = self
                .prepare_one(pod, volume, objects, facts)
                .map_err(|message| VolumeError { volume: volume.name.clone(), message })?;
            paths.insert(volume.name.clone(), path);
        }
        Ok(paths)
    }

    fn prepare_one(
        &self,
        pod: &Pod,
        volume: &Volume,
        objects: &Objects,
        facts: &NodeFacts,
    ) -> Result<VolumePath, String> {
        let uid = spec::uid(pod);
        if let Some(source) = &volume.empty_dir {
            let dir = self.volume_dir(uid, "empty-dir", &volume.name)?;
            empty_dir::set_up(&dir, source)?;
            return Ok(VolumePath { path: dir, read_only: false });
        }
        if let Some(source) = &volume.host_path {
            return Ok(VolumePath { path: host::host_path(source)?, read_only: false });
        }
        if let Some(source) = &volume.persistent_volume_claim {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let path = host::claim_path(namespace, &source.claim_name, objects)?;
            return Ok(VolumePath { path, read_only: source.read_only.unwrap_or(false) });
        }
        let (Some(kind), Some(files)) = (payload::kind(volume), payload::of(pod, volume, objects, facts)) else {
            return Err("this volume type is not supported by flotilla's agent".to_string());
        };
        let dir = self.volume_dir(uid, kind, &volume.name)?;
        atomic::write(&dir, &files?).map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
        Ok(VolumePath { path: dir, read_only: true })
    }

    /// True (and the clock restarted) when pod `uid`'s content volumes are due a refresh.
    pub fn refresh_due(&self, uid: &str, now: Instant) -> bool {
        if self.is_simulated() {
            return false;
        }
        let mut refreshed = self.refreshed.lock().expect("volume refresh lock poisoned");
        match refreshed.get(uid) {
            Some(at) if now.saturating_duration_since(*at) < self.refresh_interval => false,
            _ => {
                refreshed.insert(uid.to_string(), now);
                true
            }
        }
    }

    /// Rewrite the content volumes of `pod` that are set up and whose content changed;
    /// the names of the rewritten ones. A volume whose source is gone keeps its content
    /// (the error is logged).
    pub fn refresh(&self, pod: &Pod, objects: &Objects, facts: &NodeFacts) -> Vec<String> {
        let mut changed = Vec::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some(kind) = payload::kind(volume) else { continue };
            let Ok(dir) = self.volume_dir(spec::uid(pod), kind, &volume.name) else { continue };
            if !dir.exists() {
                continue; // not set up yet: the next container start writes it
            }
            let written = payload::of(pod, volume, objects, facts)
                .expect("a content volume has a payload")
                .and_then(|files| atomic::write(&dir, &files).map_err(|e| e.to_string()));
            match written {
                Ok(true) => changed.push(volume.name.clone()),
                Ok(false) => {}
                Err(e) => tracing::warn!(pod = spec::key(pod), volume = volume.name, error = e, "volume not refreshed"),
            }
        }
        changed
    }

    /// Remove pod `uid`'s directory: unmount its tmpfs volumes, then delete
    /// `<pods_dir>/<uid>`. Nothing to do on a simulated node or when it is already gone.
    pub fn remove_pod(&self, uid: &str) -> io::Result<()> {
        self.refreshed.lock().expect("volume refresh lock poisoned").remove(uid);
        let Some(dir) = self.pod_dir(uid) else { return Ok(()) };
        if !dir.exists() {
            return Ok(());
        }
        unmount_all(&dir.join("volumes").join("empty-dir"))?;
        std::fs::remove_dir_all(&dir)
    }
}

/// Unmount whatever is mounted on the entries of `dir`.
fn unmount_all(dir: &Path) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if empty_dir::is_mount_point(&path) {
            empty_dir::unmount(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
