//! JSON Web Tokens signed with ES256 (ECDSA on P-256 with SHA-256, RFC 7515 and 7518): the
//! ServiceAccount tokens the API server issues and checks.
//!
//! Keys are PEM files, as kube-apiserver takes them: a signer reads a PKCS#8 `PRIVATE KEY`
//! (`--service-account-signing-key-file`); a verifier reads private keys or SPKI
//! `PUBLIC KEY`s (`--service-account-key-file`, several of them while a key is rotated).
//! Only P-256 keys are accepted; RSA keys are refused with a message that says so.
//!
//! Invariants:
//! - A token is `base64url(header).base64url(claims).base64url(r || s)`, without padding,
//!   header `{"alg":"ES256","kid":<key id>,"typ":"JWT"}`.
//! - The key id is upstream's: base64url of the SHA-256 of the public key's SPKI DER, so
//!   the same key has the same id everywhere.
//! - [`verify`] accepts a token only with `alg` ES256 and a signature that one of the given
//!   keys checks; when the header names a `kid`, only that key is tried. It says nothing
//!   about the claims (expiry, issuer, audience): those are the caller's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

use crate::error::{PkiError, Result};

/// The SPKI DER of a P-256 public key is this prefix followed by the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The OID of RSA keys (1.2.840.113549.1.1.1), to name them in the refusal.
const RSA_OID: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JSON web token")]
    Malformed,
    #[error("the token is not signed with ES256")]
    Algorithm,
    #[error("no key verifies the token's signature")]
    Signature,
}

/// A P-256 public key and its id.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    point: Vec<u8>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).finish()
    }
}

impl VerifyingKey {
    fn from_point(point: &[u8]) -> Self {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        Self { kid: URL_SAFE_NO_PAD.encode(digest.as_ref()), point: point.to_vec() }
    }

    /// Every key in `pem` (`PRIVATE KEY` or `PUBLIC KEY` blocks); at least one.
    pub fn from_pem(pem: &str) -> Result<Vec<Self>> {
        let blocks = pem::parse_many(pem).map_err(|e| bad(e.to_string()))?;
        let keys = blocks
            .iter()
            .filter_map(|b| match b.tag() {
                "PRIVATE KEY" => Some(key_pair(b.contents()).map(|k| Self::from_point(k.public_key().as_ref()))),
                "PUBLIC KEY" => Some(public_point(b.contents()).map(Self::from_point)),
                _ => None,
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(bad("no PRIVATE KEY or PUBLIC KEY block".into()));
        }
        Ok(keys)
    }

    /// Upstream's key id of this key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// This key as a PEM `PUBLIC KEY` block.
    pub fn to_pem(&self) -> String {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.point);
        pem::encode(&pem::Pem::new("PUBLIC KEY", spki))
    }
}

/// Signs tokens with one P-256 private key.
pub struct JwtSigner {
    key: EcdsaKeyPair,
    public: VerifyingKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner").field("kid", &self.public.kid).finish()
    }
}

impl JwtSigner {
    /// The signer of the one `PRIVATE KEY` (PKCS#8) in `pem`.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let block = pem::parse(pem).map_err(|e| bad(e.to_string()))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(bad(format!("want a PRIVATE KEY (PKCS#8) block, found {}", block.tag())));
        }
        let key = key_pair(block.contents())?;
        let public = VerifyingKey::from_point(key.public_key().as_ref());
        Ok(Self { key, public, rng: SystemRandom::new() })
    }

    /// The key that verifies this signer's tokens.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// A token carrying `claims` (a JSON object's text).
    pub fn sign(&self, claims: &[u8]) -> Result<String> {
        let header = format!(r#"{{"alg":"ES256","kid":"{}","typ":"JWT"}}"#, self.public.kid);
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = self.key.sign(&self.rng, input.as_bytes()).map_err(|_| bad("signing failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// A new P-256 private key, as a PKCS#8 PEM block (for `--service-account-signing-key-file`).
pub fn new_signing_key_pem() -> Result<String> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| bad("key generation failed".into()))?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec())))
}

/// Whether a bearer token is shaped like a JWT (three base64url parts), without checking it.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// The claims (JSON text) of `token` if one of `keys` verifies it (see the module doc).
pub fn verify(keys: &[VerifyingKey], token: &str) -> std::result::Result<Vec<u8>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed);
    let header_json: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if header_json["alg"].as_str() != Some("ES256") {
        return Err(JwtError::Algorithm);
    }
    let kid = header_json["kid"].as_str();
    let signature = decode(signature)?;
    let input = &token[..header.len() + 1 + claims.len()];
    let verified = keys.iter().filter(|k| kid.is_none_or(|kid| kid == k.kid)).any(|k| {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &k.point)
            .verify(input.as_bytes(), &signature)
            .is_ok()
    });
    if !verified {
        return Err(JwtError::Signature);
    }
    decode(claims)
}

fn key_pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair> {
    if pkcs8.windows(RSA_OID.len()).any(|w| w == RSA_OID) {
        return Err(bad("an RSA key: only ECDSA P-256 keys are supported (ES256)".into()));
    }
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
        .map_err(|e| bad(format!("not a PKCS#8 ECDSA P-256 private key: {e}")))
}

fn public_point(spki: &[u8]) -> Result<&[u8]> {
    if spki.windows(RSA_OID.len()).any(|w| w == RSA_OID) {
        return Err(bad("an RSA key: only ECDSA P-256 keys are supported (ES256)".into()));
    }
    match spki.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 4 => Ok(point),
        _ => Err(bad("not an uncompressed ECDSA P-256 public key".into())),
    }
}

fn bad(reason: String) -> PkiError {
    PkiError::Pem { what: "service account key", reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> JwtSigner {
        JwtSigner::from_pem(&new_signing_key_pem().unwrap()).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_and_not_another() {
        let (a, b) = (signer(), signer());
        let token = a.sign(br#"{"sub":"x"}"#).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(verify(&[a.verifying_key().clone()], &token).unwrap(), br#"{"sub":"x"}"#);
        assert_eq!(verify(&[b.verifying_key().clone()], &token), Err(JwtError::Signature));
        // Both keys given (a rotation): the kid picks the right one.
        let both = [b.verifying_key().clone(), a.verifying_key().clone()];
        assert!(verify(&both, &token).is_ok());
    }

    #[test]
    fn tampered_claims_or_algorithms_are_refused() {
        let s = signer();
        let keys = [s.verifying_key().clone()];
        let token = s.sign(br#"{"sub":"x"}"#).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#), parts[2]);
        assert_eq!(verify(&keys, &forged), Err(JwtError::Signature));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(verify(&keys, &none), Err(JwtError::Algorithm));
        let hs = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#), parts[1], parts[2]);
        assert_eq!(verify(&keys, &hs), Err(JwtError::Algorithm));
        assert_eq!(verify(&keys, "a.b"), Err(JwtError::Malformed));
        assert_eq!(verify(&keys, "a.b.c.d"), Err(JwtError::Malformed));
        assert!(!looks_like_jwt("abcdef.0123456789abcdef") && !looks_like_jwt("a.b.c=="));
    }

    #[test]
    fn keys_load_from_private_and_public_pem_with_the_same_id() {
        let pem = new_signing_key_pem().unwrap();
        let s = JwtSigner::from_pem(&pem).unwrap();
        let public = s.verifying_key().to_pem();
        let from_private = VerifyingKey::from_pem(&pem).unwrap();
        let from_public = VerifyingKey::from_pem(&public).unwrap();
        assert_eq!(from_private[0].kid(), s.verifying_key().kid());
        assert_eq!(from_public[0].kid(), s.verifying_key().kid());
        let two = VerifyingKey::from_pem(&format!("{pem}{}", signer().verifying_key().to_pem())).unwrap();
        assert_eq!(two.len(), 2);
        let err = VerifyingKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY or PUBLIC KEY"), "{err}");
        assert!(JwtSigner::from_pem(&public).unwrap_err().to_string().contains("want a PRIVATE KEY"));
    }
}
