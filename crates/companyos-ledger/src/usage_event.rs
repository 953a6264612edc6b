//! The canonical form, digest and source signature of a usage event (CONTRACT §5): the RFC 8785
//! serialisation of the event object without `source_signature` and `digest`; the digest is
//! `sha256:` and the hex SHA-256 of that form; a source signs `companyos/usage-event/v1\n`
//! followed by it with Ed25519.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value};

use crate::encoding::{base64_decode, base64_encode, hex_decode};
use crate::hash::{Hash, sha256};
use crate::jcs::{self, JcsError};

/// Domain separation prefix of source signatures.
pub const SIGNATURE_CONTEXT: &[u8] = b"companyos/usage-event/v1\n";
/// The fields left out of the canonical form.
pub const UNSIGNED_FIELDS: [&str; 2] = ["source_signature", "digest"];

/// The canonical form of a usage event object.
pub fn canonical_form(event: &Map<String, Value>) -> Result<String, JcsError> {
    let mut out = String::with_capacity(320);
    jcs::write_object_except(&mut out, event, &UNSIGNED_FIELDS)?;
    Ok(out)
}

/// `sha256:<hex>` digest of an event's canonical form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventDigest(Hash);

/// A digest string was not `sha256:` followed by 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest must be \"sha256:\" followed by 64 lower-case hex digits")]
pub struct DigestParseError;

impl EventDigest {
    pub fn of_canonical(canonical: &[u8]) -> Self {
        Self(sha256(canonical))
    }

    pub fn hash(&self) -> &Hash {
        &self.0
    }

    pub fn from_hash(hash: Hash) -> Self {
        Self(hash)
    }
}

impl FromStr for EventDigest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Self, DigestParseError> {
        let hex = text.strip_prefix("sha256:").ok_or(DigestParseError)?;
        if hex.len() != 64 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(DigestParseError);
        }
        hex_decode(hex)
            .and_then(|bytes| Hash::from_slice(&bytes))
            .map(Self)
            .ok_or(DigestParseError)
    }
}

impl fmt::Display for EventDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0.to_hex())
    }
}

impl fmt::Debug for EventDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventDigest({self})")
    }
}

/// The bytes a source signs: the context prefix, then the canonical form.
pub fn signing_message(canonical: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + canonical.len());
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(canonical);
    message
}

/// The base64 `source_signature` of a canonical form.
pub fn sign(signing_key: &SigningKey, canonical: &[u8]) -> String {
    base64_encode(&signing_key.sign(&signing_message(canonical)).to_bytes())
}

/// Why a source signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("source_signature is not base64 of a 64-byte Ed25519 signature")]
    Malformed,
    #[error("source_signature does not verify with the source's public key")]
    Invalid,
}

/// Verifies a base64 `source_signature` over a canonical form with `verify_strict`.
pub fn verify(
    verifying_key: &VerifyingKey,
    canonical: &[u8],
    signature_base64: &str,
) -> Result<(), SignatureError> {
    let bytes = base64_decode(signature_base64).ok_or(SignatureError::Malformed)?;
    let signature = Signature::from_slice(&bytes).map_err(|_| SignatureError::Malformed)?;
    verifying_key
        .verify_strict(&signing_message(canonical), &signature)
        .map_err(|_| SignatureError::Invalid)
}

/// Parses a base64 Ed25519 public key (32 bytes), as sources register it.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = base64_decode(text)?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}
