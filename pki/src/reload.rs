//! Certificates that follow their files, so a replica's certificate can be renewed before it
//! expires without a restart: rewrite the files (`flotilla pki issue` replaces them
//! atomically) and new handshakes present the new pair.
//!
//! Data flow: [`CertFiles`] is a rustls certificate resolver for servers and clients. On a
//! handshake it stats both files, at most once per [`CHECK_INTERVAL`]; when either changed,
//! it loads the pair and from then on presents it.
//!
//! Invariants:
//! - A pair that does not load (a half-written file, a key that does not match the
//!   certificate, garbage) is logged and the previous pair stays in use: a bad renewal never
//!   takes a listener down.
//! - Connections already established keep the certificate they were made with.
//! - A handshake never waits on more than two `stat` calls and, after a change, one load.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use crate::encoding;
use crate::error::Result;

/// How often the files are looked at, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// A certificate and key read from `cert` and `key`, reloaded when they change.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    pair: Arc<CertifiedKey>,
    /// The files' modification times when `pair` was read.
    stamp: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl CertFiles {
    /// Read the pair now; an error if it does not load.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>> {
        let stamp = stamp(cert, key);
        let pair = Arc::new(read_pair(cert, key)?);
        let state = Mutex::new(State { pair, stamp, checked: Instant::now() });
        Ok(Arc::new(Self { cert: cert.to_path_buf(), key: key.to_path_buf(), state }))
    }

    /// The pair to present now, reloaded first if the files changed (see the module doc).
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() < CHECK_INTERVAL {
            return state.pair.clone();
        }
        state.checked = Instant::now();
        let now = stamp(&self.cert, &self.key);
        if now != state.stamp {
            match read_pair(&self.cert, &self.key) {
                Ok(pair) => {
                    tracing::info!(cert = %self.cert.display(), "certificate files changed; presenting the new pair");
                    state.pair = Arc::new(pair);
                    state.stamp = now;
                }
                Err(e) => tracing::warn!(
                    cert = %self.cert.display(), error = %e,
                    "certificate files changed but do not load; keeping the previous pair"
                ),
            }
        }
        state.pair.clone()
    }

    /// `config` presenting this pair (replacing whatever certificate it had).
    pub fn serve(self: &Arc<Self>, mut config: ServerConfig) -> ServerConfig {
        config.cert_resolver = self.clone();
        config
    }

    /// `config` presenting this pair as its client certificate.
    pub fn present(self: &Arc<Self>, mut config: ClientConfig) -> ClientConfig {
        config.client_auth_cert_resolver = self.clone();
        config
    }

    #[cfg(test)]
    fn expire_check(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.checked -= CHECK_INTERVAL;
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertFiles {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn stamp(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

/// The pair in the files, checked to belong together.
fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    crate::tls::certified_key(&encoding::read_pem(cert)?, &encoding::read_pem(key)?)
}

#[cfg(test)]
mod tests;
