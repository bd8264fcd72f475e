//! Secrets encrypted at rest (kube-apiserver's `--encryption-provider-config`, one
//! provider): the value of every key under `/registry/secrets/` is sealed with
//! XChaCha20-Poly1305 before it enters the store, so neither the Raft log, the state
//! machine's RocksDB files nor snapshots hold a Secret in plaintext.
//!
//! - Stored form: `k8s:enc:xchacha20:v1:<key name>:` + 24-byte random nonce + ciphertext,
//!   with the store key as associated data, so a sealed value moved to another key does not
//!   open (as upstream's prefix, so a reader can tell a sealed value and which key sealed it).
//! - Keys: a file of `name=<base64 of 32 bytes>` lines (`#` comments). The first key seals
//!   new writes; every key opens. Rotation: put a new key first and keep the old one, restart
//!   the replicas one by one, then [`reencrypt`] every Secret (the leader does it at start);
//!   once none is sealed with the old key it can be dropped.
//! - A plaintext value under the prefix (written before encryption was turned on) is read
//!   as is and sealed on its next write (or by [`reencrypt`]). A sealed value whose key is
//!   not in the file is an error naming the key, never silently empty.
//! - Every replica must have the same file: a replica without it cannot read Secrets.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Keys whose values are sealed.
pub const SEALED_PREFIX: &[u8] = b"/registry/secrets/";

const MARK: &str = "k8s:enc:xchacha20:v1:";
const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

/// The keys of one replica; the first one seals.
pub struct Encryption {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Encryption").field("keys", &names).finish()
    }
}

impl Encryption {
    /// Parse a key file (see the module doc); errors name the line.
    pub fn parse(text: &str) -> Result<Arc<Self>, String> {
        let mut keys: Vec<(String, XChaCha20Poly1305)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: &str| format!("line {}: {e}", n + 1);
            let (name, b64) = line.split_once('=').ok_or_else(|| at("expected name=<base64 key>"))?;
            let name = name.trim();
            if name.is_empty() || name.contains(':') {
                return Err(at("a key name must be non-empty and without ':'"));
            }
            if keys.iter().any(|(k, _)| k == name) {
                return Err(at(&format!("key {name} is listed twice")));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| at(&format!("key {name} is not base64: {e}")))?;
            if raw.len() != KEY_BYTES {
                return Err(at(&format!("key {name} has {} bytes; it needs {KEY_BYTES}", raw.len())));
            }
            keys.push((name.to_string(), XChaCha20Poly1305::new_from_slice(&raw).expect("32-byte key")));
        }
        if keys.is_empty() {
            return Err("no keys".into());
        }
        Ok(Arc::new(Self { keys }))
    }

    /// A new random key file line, `name=<base64>` (the README's way: `echo "k1=$(head -c
    /// 32 /dev/urandom | base64)"`).
    #[cfg(test)]
    pub fn generate_line(name: &str) -> String {
        let mut raw = [0u8; KEY_BYTES];
        rand::thread_rng().fill_bytes(&mut raw);
        format!("{name}={}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    /// The name of the key that seals new writes.
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }

    /// `value` as it should be stored under `key`.
    pub fn seal(&self, key: &[u8], value: Vec<u8>) -> Vec<u8> {
        if !key.starts_with(SEALED_PREFIX) {
            return value;
        }
        let (name, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &value, aad: key })
            .expect("XChaCha20-Poly1305 sealing cannot fail for in-memory data");
        let mut out = Vec::with_capacity(MARK.len() + name.len() + 1 + NONCE_BYTES + sealed.len());
        out.extend_from_slice(MARK.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a stored value (plaintext values pass through, uncopied).
    pub fn open<'a>(&self, key: &[u8], stored: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
        let Some((name, rest)) = sealed_parts(stored) else { return Ok(Cow::Borrowed(stored)) };
        let cipher = self
            .keys
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, c)| c)
            .ok_or_else(|| format!("sealed with key {name:?}, which the encryption key file does not list"))?;
        if rest.len() < NONCE_BYTES {
            return Err("sealed value is truncated".into());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: key })
            .map(Cow::Owned)
            .map_err(|_| format!("sealed value does not open with key {name:?} (corrupt, or moved from another key)"))
    }

    /// Whether a stored value needs rewriting to be sealed with the current key.
    pub fn is_stale(&self, key: &[u8], stored: &[u8]) -> bool {
        key.starts_with(SEALED_PREFIX) && sealed_parts(stored).is_none_or(|(name, _)| name != self.current())
    }
}

/// The key name and nonce+ciphertext of a sealed value; `None` for plaintext.
fn sealed_parts(stored: &[u8]) -> Option<(&str, &[u8])> {
    let rest = stored.strip_prefix(MARK.as_bytes())?;
    let colon = rest.iter().position(|b| *b == b':')?;
    let name = std::str::from_utf8(&rest[..colon]).ok()?;
    Some((name, &rest[colon + 1..]))
}

/// What a stored value under `key` reads as with `enc` (if configured): sealed values need it.
pub fn open_with<'a>(enc: Option<&Encryption>, key: &[u8], stored: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
    match enc {
        Some(e) => e.open(key, stored),
        None if sealed_parts(stored).is_some() => {
            Err("the value is encrypted but this replica has no --encryption-key-file".into())
        }
        None => Ok(Cow::Borrowed(stored)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &[u8] = b"/registry/secrets/default/s";

    fn two_keys() -> (Arc<Encryption>, Arc<Encryption>) {
        let (a, b) = (Encryption::generate_line("a"), Encryption::generate_line("b"));
        (Encryption::parse(&format!("{a}\n")).unwrap(), Encryption::parse(&format!("# rotated\n{b}\n{a}\n")).unwrap())
    }

    #[test]
    fn seals_only_secrets_and_opens_with_any_listed_key() {
        let (old, rotated) = two_keys();
        let sealed = old.seal(K, b"{\"data\":\"hunter2\"}".to_vec());
        assert!(sealed.starts_with(b"k8s:enc:xchacha20:v1:a:"));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "no plaintext in the sealed value");
        assert_eq!(&*rotated.open(K, &sealed).unwrap(), b"{\"data\":\"hunter2\"}");
        assert!(rotated.is_stale(K, &sealed), "sealed with a key that is no longer current");
        assert!(!rotated.is_stale(K, &rotated.seal(K, b"x".to_vec())));
        assert!(rotated.is_stale(K, b"{\"plain\":1}"), "plaintext under the prefix is stale");
        assert_eq!(old.seal(b"/registry/configmaps/d/c", b"v".to_vec()), b"v", "other resources stay plain");
        assert!(!old.is_stale(b"/registry/configmaps/d/c", b"v"));
    }

    #[test]
    fn refuses_what_it_cannot_open() {
        let (old, rotated) = two_keys();
        let sealed = rotated.seal(K, b"v".to_vec());
        assert!(old.open(K, &sealed).unwrap_err().contains("\"b\""), "unknown key named");
        assert!(rotated.open(b"/registry/secrets/default/other", &sealed).is_err(), "bound to its key");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(rotated.open(K, &flipped).is_err());
        assert_eq!(&*rotated.open(K, b"{\"plain\":1}").unwrap(), b"{\"plain\":1}");
        assert!(open_with(None, K, &sealed).unwrap_err().contains("no --encryption-key-file"));
    }

    #[test]
    fn key_files_are_checked_line_by_line() {
        assert!(Encryption::parse("").unwrap_err().contains("no keys"));
        assert!(Encryption::parse("justaname\n").unwrap_err().starts_with("line 1"));
        assert!(Encryption::parse("a=c2hvcnQ=\n").unwrap_err().contains("needs 32"));
        assert!(Encryption::parse("a=!!\n").unwrap_err().contains("not base64"));
        let a = Encryption::generate_line("a");
        assert!(Encryption::parse(&format!("{a}\n{a}\n")).unwrap_err().contains("line 2: key a is listed twice"));
        assert!(Encryption::parse(&format!("x:{a}")).unwrap_err().contains("without ':'"));
    }
}
