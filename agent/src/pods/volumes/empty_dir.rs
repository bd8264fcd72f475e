//! `emptyDir` volumes: a directory under the pod's directory, or, for `medium: Memory`, a
//! tmpfs mounted there (sized by `sizeLimit`) when the agent may mount (runs as root).
//!
//! Invariants:
//! - Setting up is idempotent: an existing directory (and its content) is kept, and a tmpfs
//!   that is already mounted is not mounted again — also after an agent restart, because
//!   "mounted" is read from the file system (a different device than the parent).
//! - Only paths given by the [`super::VolumeManager`] (inside `<pods_dir>/<uid>`) are
//!   mounted or unmounted.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

use crate::pods::spec::quantity::Quantity;

/// Make `dir` the emptyDir `source` asks for. `Err` is the reason shown to the user.
pub fn set_up(dir: &Path, source: &EmptyDirVolumeSource) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if source.medium.as_deref() != Some("Memory") || is_mount_point(dir) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        tracing::warn!(dir = %dir.display(), "emptyDir medium Memory needs root to mount a tmpfs; using a plain directory");
        return Ok(());
    }
    let size = match &source.size_limit {
        Some(q) => Some(Quantity::parse(&q.0)?.value().max(0)),
        None => None,
    };
    mount_tmpfs(dir, size).map_err(|e| format!("cannot mount a tmpfs on {}: {e}", dir.display()))
}

/// True when `dir` is on another device than its parent (something is mounted on it).
pub fn is_mount_point(dir: &Path) -> bool {
    let (Ok(own), Some(Ok(parent))) = (fs::symlink_metadata(dir), dir.parent().map(fs::symlink_metadata)) else {
        return false;
    };
    own.is_dir() && own.dev() != parent.dev()
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn mount_tmpfs(dir: &Path, size_bytes: Option<i128>) -> io::Result<()> {
    let target = c_path(dir)?;
    let options = match size_bytes {
        Some(bytes) => format!("mode=0777,size={bytes}"),
        None => "mode=0777".to_string(),
    };
    let options = CString::new(options).expect("mount options have no NUL");
    let fstype = CString::new("tmpfs").expect("literal has no NUL");
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, options.as_ptr().cast()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmount whatever is mounted on `dir` (lazily: a process still using it keeps its view).
pub fn unmount(dir: &Path) -> io::Result<()> {
    let target = c_path(dir)?;
    // SAFETY: `target` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

    use super::*;

    #[test]
    fn a_disk_empty_dir_is_a_directory_kept_across_set_ups() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("empty-dir/cache");
        set_up(&dir, &EmptyDirVolumeSource::default()).unwrap();
        fs::write(dir.join("f"), "kept").unwrap();
        set_up(&dir, &EmptyDirVolumeSource::default()).unwrap();
        assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "kept");
        assert!(!is_mount_point(&dir));
    }

    /// Needs root and permission to mount (CAP_SYS_ADMIN); skipped otherwise.
    #[test]
    fn a_memory_empty_dir_is_a_sized_tmpfs_when_root() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mem");
        let source =
            EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: Some(K8sQuantity("1Mi".into())) };
        // SAFETY: no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if let Err(e) = set_up(&dir, &source) {
            assert!(root && e.contains("tmpfs"), "{e}");
            eprintln!("skipped: {e}");
            return;
        }
        if !root {
            assert!(!is_mount_point(&dir), "not root: a plain directory");
            return;
        }
        assert!(is_mount_point(&dir));
        set_up(&dir, &source).unwrap();
        let big = vec![0u8; 2 << 20];
        assert!(fs::write(dir.join("big"), big).is_err(), "sizeLimit 1Mi is enforced by the tmpfs");
        unmount(&dir).unwrap();
        assert!(!is_mount_point(&dir));
    }
}
