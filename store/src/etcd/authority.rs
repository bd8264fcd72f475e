//! Lets etcdctl 3.4 send `:authority: http://host:port` to the etcd client port.
//!
//! etcdctl 3.4 runs `endpoint status`, `defrag`, `alarm disarm`, `endpoint hashkv` and
//! `move-leader` over a fresh connection per endpoint, and grpc-go sends the endpoint string
//! verbatim as the HTTP/2 `:authority`. h2's server refuses a URL there and resets the
//! stream (PROTOCOL_ERROR); etcd's grpc-go server never looks. [`AuthorityFix`] wraps each
//! accepted client connection and repairs those requests on the way in.
//!
//! Data flow: server-to-client bytes pass untouched. Client-to-server bytes go through a
//! [`Rewriter`]: after the connection preface, every frame passes unchanged except header
//! blocks (HEADERS + CONTINUATIONs), which are HPACK-decoded with a decoder that mirrors
//! the client's encoder, get the scheme (and a trailing `/`) stripped from `:authority`,
//! are re-encoded without the dynamic table (so the server's table stays empty and each
//! block stands alone), and are re-framed within the default frame size.
//!
//! Invariant: only header blocks change, and only while the stream is understood. On
//! anything else (no preface, a malformed frame or HPACK block, a block over
//! [`MAX_HEADER_BLOCK_BYTES`]) the rest of the connection is forwarded byte for byte and
//! rewriting stops; hyper then rejects it (if earlier blocks were re-encoded, with an HPACK
//! error, since its table no longer matches the client's).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

mod rewriter;

pub use rewriter::{Rewriter, MAX_HEADER_BLOCK_BYTES};
use rewriter::{FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD};

/// How much is read from the socket at once: one full frame.
const READ_CHUNK_BYTES: usize = FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD;

/// An accepted etcd client connection whose incoming header blocks go through a
/// [`Rewriter`]; writes pass straight to the socket.
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: Rewriter,
    /// Rewritten bytes not yet read: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    chunk: Box<[u8]>,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
            out: Vec::new(),
            out_pos: 0,
            chunk: vec![0; READ_CHUNK_BYTES].into(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.is_passthrough() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = ReadBuf::new(&mut this.chunk[..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                this.rewriter.finish(&mut this.out);
                this.eof = true;
            } else {
                this.rewriter.feed(chunk.filled(), &mut this.out);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
