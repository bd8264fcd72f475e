//! Snapshots: a RocksDB checkpoint of the state machine, packed into one archive.
//!
//! The state machine's database holds the MVCC records, leases, revisions, `last_applied`
//! and membership, so a checkpoint of it is exactly a snapshot. The archive is a flat list
//! of the checkpoint's files: `MAGIC`, then per file `u32 name length, name, u64 data length,
//! data` (big-endian). Unpacking refuses names with path separators.
//!
//! Which database directory is live is recorded in the `SM_CURRENT` pointer file, replaced by
//! an atomic rename; so installing a snapshot is: unpack into a fresh directory, fsync it,
//! flip the pointer, then delete the old directory. A crash before the flip leaves the old
//! state and a stray directory that the next start removes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

const MAGIC: &[u8] = b"FLOTILLA-SNAPSHOT-1\n";
const POINTER: &str = "SM_CURRENT";
/// Longest file name accepted from an archive; RocksDB's are far shorter.
const MAX_NAME_LEN: usize = 255;

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::storage(e)
}

/// Pack every regular file of `dir` into an archive.
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, StoreError> {
    let mut out = MAGIC.to_vec();
    let mut entries: Vec<_> = fs::read_dir(dir).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if !e.file_type().map_err(io)?.is_file() {
            continue;
        }
        let name = e.file_name().into_string().map_err(|_| io("non-UTF-8 file name in checkpoint"))?;
        let data = fs::read(e.path()).map_err(io)?;
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// Unpack an archive into `dir` (created; must not exist) and fsync every file and the dir.
/// Trailing zero bytes (the padding of a streamed snapshot, see `etcd::snapshot`) end the
/// archive: no entry starts with a zero name length.
pub fn unpack_to(archive: &[u8], dir: &Path) -> Result<(), StoreError> {
    let mut r = Cursor { rest: archive.strip_prefix(MAGIC).ok_or_else(|| io("not a flotilla snapshot"))? };
    fs::create_dir_all(dir).map_err(io)?;
    while !r.rest.is_empty() && !r.rest.iter().all(|b| *b == 0) {
        let name_len = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(io("bad file name length in snapshot"));
        }
        let name = std::str::from_utf8(r.take(name_len)?).map_err(io)?.to_string();
        if name.contains('/') || name == "." || name == ".." {
            return Err(io(format!("unsafe file name {name:?} in snapshot")));
        }
        let data_len = u64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes")) as usize;
        let data = r.take(data_len)?;
        let mut f = fs::File::create(dir.join(&name)).map_err(io)?;
        f.write_all(data).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(io("truncated snapshot"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
}

/// The live state-machine directory named by the pointer file, if any.
pub fn current_sm_dir(data_dir: &Path) -> Result<Option<PathBuf>, StoreError> {
    match fs::read_to_string(data_dir.join(POINTER)) {
        Ok(name) => Ok(Some(data_dir.join(name.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
    }
}

/// Make `sm_dir` (a child of `data_dir`) the live state-machine directory, atomically.
pub fn set_current_sm_dir(data_dir: &Path, sm_dir: &Path) -> Result<(), StoreError> {
    let name = sm_dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| io("bad sm dir"))?;
    write_atomic(&data_dir.join(POINTER), name.as_bytes())
}

/// Write a file via a temporary and a rename, fsyncing both the file and its directory. The
/// file is readable by its owner only.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    // A bare file name's parent is "", which is the current directory.
    let dir = match path.parent().ok_or_else(|| io("no parent dir"))? {
        p if p.as_os_str().is_empty() => Path::new("."),
        p => p,
    };
    // A new file of a random name, mode 0600 (snapshots hold every Secret), never a symlink
    // someone planted at a predictable name.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(data).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Read a whole file, `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let mut buf = Vec::new();
    match fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut buf).map_err(io)?;
            Ok(Some(buf))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_takes_a_bare_file_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Changing the directory is safe here: nextest runs every test in its own process.
        let cwd = std::env::current_dir().expect("cwd");
        std::env::set_current_dir(dir.path()).expect("cd");
        let written = write_atomic(Path::new("bare.snap"), b"data");
        std::env::set_current_dir(cwd).expect("cd back");
        written.expect("a file in the current directory");
        assert_eq!(fs::read(dir.path().join("bare.snap")).expect("read"), b"data");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("bare.snap")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner only: {mode:o}");
    }

    #[test]
    fn pack_unpack_round_trip_and_refuses_bad_archives() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("CURRENT"), b"MANIFEST-1\n").unwrap();
        fs::write(src.join("000001.sst"), vec![7u8; 10_000]).unwrap();
        let archive = pack_dir(&src).unwrap();
        let dst = tmp.path().join("dst");
        unpack_to(&archive, &dst).unwrap();
        assert_eq!(fs::read(dst.join("000001.sst")).unwrap(), vec![7u8; 10_000]);
        assert_eq!(fs::read(dst.join("CURRENT")).unwrap(), b"MANIFEST-1\n");

        let mut padded = archive.clone();
        padded.resize(archive.len().div_ceil(512) * 512, 0);
        unpack_to(&padded, &tmp.path().join("padded")).unwrap();
        assert_eq!(fs::read(tmp.path().join("padded/000001.sst")).unwrap(), vec![7u8; 10_000]);

        assert!(unpack_to(b"garbage", &tmp.path().join("x")).is_err());
        assert!(unpack_to(&archive[..archive.len() - 1], &tmp.path().join("y")).is_err());
        let mut evil = MAGIC.to_vec();
        evil.extend_from_slice(&5u32.to_be_bytes());
        evil.extend_from_slice(b"../aa");
        evil.extend_from_slice(&0u64.to_be_bytes());
        assert!(unpack_to(&evil, &tmp.path().join("z")).is_err());
    }

    #[test]
    fn pointer_flip_is_atomic_replace() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(current_sm_dir(tmp.path()).unwrap(), None);
        set_current_sm_dir(tmp.path(), &tmp.path().join("sm-1")).unwrap();
        set_current_sm_dir(tmp.path(), &tmp.path().join("sm-2")).unwrap();
        assert_eq!(current_sm_dir(tmp.path()).unwrap(), Some(tmp.path().join("sm-2")));
    }
}
