//! Pod volumes as host paths (issue 5, being written): every volume of a pod becomes a
//! directory or file under `<pods dir>/<pod uid>/volumes/`, bind-mounted by the runtime.

use std::path::PathBuf;

/// The volumes of a node's pods. Shared by every pod worker of the node.
#[derive(Debug)]
pub struct VolumeManager {
    /// `<data-dir>/pods`; None on simulated nodes, whose fake runtime mounts nothing.
    pods_dir: Option<PathBuf>,
}

impl VolumeManager {
    pub fn new(pods_dir: Option<PathBuf>) -> Self {
        Self { pods_dir }
    }

    /// Where pod `uid`'s files live, on a real node.
    pub fn pod_dir(&self, uid: &str) -> Option<PathBuf> {
        self.pods_dir.as_ref().map(|d| d.join(uid))
    }
}
