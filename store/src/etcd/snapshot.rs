//! The `Maintenance.Snapshot` stream: a consistent copy of the state, framed the way etcd
//! frames its own so that `etcdctl snapshot save` accepts it.
//!
//! Stream format (etcd 3.4 `maintenanceServer.Snapshot`): the data in chunks of
//! [`CHUNK_BYTES`] with `remaining_bytes` counting down to 0, then one last message whose
//! blob is the SHA-256 of all the data. `etcdctl snapshot save` refuses a file whose length
//! is not a multiple of 512 plus 32 (bbolt files are whole pages), so the data is the state
//! archive (see [`crate::raft::snapshot`]) padded with zero bytes to a multiple of
//! [`SECTOR_BYTES`]; the archive format never starts an entry with a zero length, so a
//! reader can tell the padding apart. The file is a Flotilla archive, not a bbolt database:
//! `etcdctl snapshot status/restore` cannot read it.
//!
//! The copy is a fresh checkpoint of the state machine ([`crate::StoreNode::snapshot_archive`]).

use sha2::{Digest, Sha256};
use tonic::Status;

use crate::error::StoreError;
use crate::pb::{PbResponseHeader, PbSnapshotResponse};

/// Data bytes per message, as etcd (`snapshotSendBufferSize`): several pages per message
/// while keeping each far below gRPC message limits.
pub const CHUNK_BYTES: usize = 32 * 1024;

/// The streamed data is padded to a multiple of this (see the module doc).
pub const SECTOR_BYTES: usize = 512;

/// A snapshot file as `etcdctl snapshot save` writes one from the stream: the archive padded
/// to whole sectors, then the SHA-256 of that.
pub fn to_file(mut archive: Vec<u8>) -> Vec<u8> {
    pad(&mut archive);
    let digest = Sha256::digest(&archive);
    archive.extend_from_slice(&digest);
    archive
}

/// The (padded) archive inside a snapshot file, after checking its length and digest.
pub fn archive_of(file: &[u8]) -> Result<&[u8], StoreError> {
    let bad = |why: &str| Err(StoreError::InvalidArgument(format!("not a flotilla snapshot file: {why}")));
    if file.len() < SECTOR_BYTES + DIGEST_BYTES || file.len() % SECTOR_BYTES != DIGEST_BYTES {
        return bad("its length is not whole sectors plus a SHA-256 digest (truncated?)");
    }
    let (data, digest) = file.split_at(file.len() - DIGEST_BYTES);
    if Sha256::digest(data).as_slice() != digest {
        return bad("the SHA-256 digest does not match (corrupt?)");
    }
    Ok(data)
}

const DIGEST_BYTES: usize = 32;

fn pad(archive: &mut Vec<u8>) {
    archive.resize(archive.len().div_ceil(SECTOR_BYTES) * SECTOR_BYTES, 0);
}

/// The messages of one snapshot stream, produced lazily so the data is held once.
pub(super) struct Frames {
    data: Vec<u8>,
    sent: usize,
    hasher: Option<Sha256>,
    header: PbResponseHeader,
}

impl Frames {
    pub(super) fn new(mut archive: Vec<u8>, header: PbResponseHeader) -> Self {
        pad(&mut archive);
        Self { data: archive, sent: 0, hasher: Some(Sha256::new()), header }
    }
}

impl Iterator for Frames {
    type Item = Result<PbSnapshotResponse, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let header = Some(self.header);
        if self.sent < self.data.len() {
            let end = (self.sent + CHUNK_BYTES).min(self.data.len());
            let blob = self.data[self.sent..end].to_vec();
            self.hasher.as_mut().expect("hasher is taken only after the data").update(&blob);
            self.sent = end;
            let remaining_bytes = (self.data.len() - end) as u64;
            return Some(Ok(PbSnapshotResponse { header, remaining_bytes, blob, version: String::new() }));
        }
        let digest = self.hasher.take()?.finalize();
        Some(Ok(PbSnapshotResponse { header, remaining_bytes: 0, blob: digest.to_vec(), version: String::new() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_damage_is_refused() {
        let file = to_file(vec![9u8; 1000]);
        assert_eq!(file.len(), 1024 + 32);
        assert_eq!(&archive_of(&file).unwrap()[..1000], &[9u8; 1000][..]);
        assert!(archive_of(&file[..file.len() - 1]).is_err());
        let mut flipped = file.clone();
        flipped[10] ^= 1;
        assert!(archive_of(&flipped).is_err());
        assert!(archive_of(b"").is_err());
    }

    #[test]
    fn frames_pad_count_down_and_end_with_the_digest() {
        let archive = vec![7u8; CHUNK_BYTES + 100];
        let frames: Vec<PbSnapshotResponse> =
            Frames::new(archive.clone(), PbResponseHeader::default()).map(|f| f.unwrap()).collect();
        assert_eq!(frames.len(), 3);
        let data: Vec<u8> = frames[..2].iter().flat_map(|f| f.blob.clone()).collect();
        assert_eq!(data.len() % SECTOR_BYTES, 0);
        assert_eq!(&data[..archive.len()], &archive[..]);
        assert!(data[archive.len()..].iter().all(|b| *b == 0));
        assert_eq!(frames[0].remaining_bytes as usize, data.len() - CHUNK_BYTES);
        assert_eq!(frames[1].remaining_bytes, 0);
        assert_eq!(frames[2].blob, Sha256::digest(&data).to_vec());
        // What `etcdctl snapshot save` checks: length mod 512 == sha256 size.
        assert_eq!((data.len() + frames[2].blob.len()) % SECTOR_BYTES, 32);
    }
}
