//! Writing a content volume so readers never see a half-updated set of files (the
//! kubelet's atomic writer):
//!
//! ```text
//! <volume>/..2025_01_31_12_00_00.123456789/   the files of one version (with their modes)
//! <volume>/..data -> ..2025_01_31_12_00_00.123456789
//! <volume>/<key>  -> ..data/<key>              one symlink per top-level name
//! ```
//!
//! Invariants:
//! - An update writes a complete new version directory, then swaps `..data` to it with one
//!   `rename` (atomic on POSIX), so a reader following `key -> ..data/key` sees either the
//!   whole old version or the whole new one.
//! - Nothing is written when the content (bytes and modes) is unchanged.
//! - Only names inside the volume directory are created or removed; user-visible entries
//!   that are removed are always symlinks this writer made (other entries are left alone).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;

use super::payload::{File, Payload};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Make `dir` hold exactly `payload`; true if anything changed. See the module doc.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    if current(dir)?.as_ref() == Some(payload) {
        return Ok(false);
    }
    let version = new_version_dir(dir)?;
    for (path, file) in payload {
        let target = version.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.data)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))?;
    }
    let version_name = version.file_name().expect("a version directory has a name").to_owned();
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&version_name, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    let top: BTreeSet<String> = payload.keys().filter_map(|p| first_component(p)).collect();
    for name in &top {
        let link = dir.join(name);
        let want = Path::new(DATA).join(name);
        if fs::read_link(&link).ok().as_deref() != Some(want.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&want, &link)?;
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_link = entry.file_type()?.is_symlink();
        if name.starts_with("..") {
            if name != DATA && entry.file_name() != version_name && entry.file_type()?.is_dir() {
                fs::remove_dir_all(entry.path())?; // an old version
            }
        } else if is_link && !top.contains(&name) {
            fs::remove_file(entry.path())?; // a key that is gone
        }
    }
    Ok(true)
}

fn first_component(path: &Path) -> Option<String> {
    path.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned())
}

/// A fresh, empty version directory named after the current time.
fn new_version_dir(dir: &Path) -> io::Result<PathBuf> {
    let stamp = Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f").to_string();
    for n in 0u32.. {
        let name = if n == 0 { format!("..{stamp}") } else { format!("..{stamp}_{n}") };
        let path = dir.join(name);
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out only after 4 billion collisions")
}

/// The content `..data` points to now, if any.
fn current(dir: &Path) -> io::Result<Option<Payload>> {
    let data = dir.join(DATA);
    if fs::symlink_metadata(&data).is_err() {
        return Ok(None);
    }
    let mut payload = Payload::new();
    read_tree(&data, Path::new(""), &mut payload)?;
    Ok(Some(payload))
}

fn read_tree(root: &Path, relative: &Path, into: &mut Payload) -> io::Result<()> {
    for entry in fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        let meta = entry.metadata()?;
        if meta.is_dir() {
            read_tree(root, &path, into)?;
        } else {
            into.insert(path, File { data: fs::read(entry.path())?, mode: meta.permissions().mode() & 0o7777 });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files.iter().map(|(p, d, m)| (PathBuf::from(p), File { data: d.as_bytes().to_vec(), mode: *m })).collect()
    }

    fn versions(dir: &Path) -> Vec<String> {
        let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        let mut v: Vec<String> = names.filter(|n| n.starts_with("..") && n != DATA).collect();
        v.sort();
        v
    }

    #[test]
    fn files_appear_behind_data_and_updates_swap_whole_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]);
        assert!(write(&dir, &first).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(fs::metadata(dir.join("sub/b")).unwrap().permissions().mode() & 0o777, 0o600);
        let v1 = versions(&dir);
        assert_eq!(v1.len(), 1);

        assert!(!write(&dir, &first).unwrap(), "unchanged content is not rewritten");
        assert_eq!(versions(&dir), v1);

        let second = payload(&[("a", "one", 0o644), ("c", "3", 0o400)]);
        assert!(write(&dir, &second).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(fs::symlink_metadata(dir.join("sub")).is_err(), "a key that is gone loses its link");
        let v2 = versions(&dir);
        assert_eq!(v2.len(), 1, "the old version is removed: {v2:?}");
        assert_ne!(v1, v2);

        assert!(write(&dir, &payload(&[("a", "one", 0o600), ("c", "3", 0o400)])).unwrap(), "a mode change is a change");
        assert!(write(&dir, &Payload::new()).unwrap());
        assert!(fs::symlink_metadata(dir.join("a")).is_err());
    }

    #[test]
    fn entries_the_writer_did_not_make_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("user-file"), "mine").unwrap();
        write(&dir, &payload(&[("a", "1", 0o644)])).unwrap();
        write(&dir, &Payload::new()).unwrap();
        assert_eq!(fs::read_to_string(dir.join("user-file")).unwrap(), "mine");
    }
}
