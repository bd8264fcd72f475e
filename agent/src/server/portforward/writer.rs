//! The session's writer task: the only owner of the connection's write half.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;

/// Writes queued frames until the queue closes (then shuts the write half down) or a
/// write fails. Frames already queued are coalesced, up to `batch_limit` bytes, into one
/// write, which over a websocket makes one message.
pub(super) async fn write_frames<W: AsyncWrite>(
    mut writer: WriteHalf<W>,
    mut frames: mpsc::Receiver<Bytes>,
    batch_limit: usize,
) {
    while let Some(first) = frames.recv().await {
        let mut batch = BytesMut::from(&first[..]);
        while batch.len() < batch_limit {
            match frames.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
