//! Writing certificate and key files: the exact mode, never half a file.
//!
//! Every file is first written in full to a temporary file in the same directory (created
//! with its final mode, then chmod-ed so that the umask cannot widen or narrow it), synced,
//! and then either renamed over the target ([`replace`]) or hard-linked to it ([`create_new`],
//! which fails if the target exists). Either way a reader sees the old file, no file, or the
//! whole new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{PkiError, Result};

/// Certificates are public.
pub(crate) const CERT_MODE: u32 = 0o644;
/// Private keys are readable by their owner only.
pub(crate) const KEY_MODE: u32 = 0o600;

/// Distinguishes temporary files of concurrent writers in one process (the pid separates
/// processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Create `dir` and its parents if needed.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| PkiError::io("creating directory", dir, e))
}

/// Write `path`, replacing any existing file.
pub(crate) fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let temp = write_temp(path, contents, mode)?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(PkiError::io("renaming into place", path, e));
    }
    sync_parent(path)
}

/// Write `path`, which must not exist yet.
pub(crate) fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let temp = write_temp(path, contents, mode)?;
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(PkiError::AlreadyExists { path: path.into() }),
        Err(e) => Err(PkiError::io("linking into place", path, e)),
    }
}

fn write_temp(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf> {
    let file_name = path.file_name().expect("callers pass a path ending in a file name").to_string_lossy();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = path.with_file_name(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    let written = write_file(&temp, contents, mode);
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(|e| PkiError::io("writing", &temp, e))?;
    Ok(temp)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents)?;
    file.sync_all()
}

/// Make the new directory entry durable.
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| PkiError::io("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_overwrites_with_the_exact_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.key");
        replace(&path, b"old", 0o644).expect("first write");
        replace(&path, b"new", KEY_MODE).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(dir.path()), ["x.key"]);
    }

    #[test]
    fn create_new_refuses_an_existing_file_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.crt");
        create_new(&path, b"first", CERT_MODE).expect("first write");
        assert_eq!(mode(&path), 0o644);
        let err = create_new(&path, b"second", CERT_MODE).expect_err("exists");
        assert!(matches!(err, PkiError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).expect("read"), b"first");
        assert_eq!(entries(dir.path()), ["ca.crt"]);
    }
}
