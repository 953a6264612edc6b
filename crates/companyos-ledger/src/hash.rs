//! SHA-256 hashes and the RFC 6962 / RFC 9162 leaf and interior node hash functions.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::encoding::{base64_decode, base64_encode, hex_decode, hex_encode};

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

/// A hash given as text was not 32 bytes of hex or base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 32-byte SHA-256 hash in {encoding}")]
pub struct HashParseError {
    encoding: &'static str,
}

impl Hash {
    /// Number of bytes in a hash.
    pub const LEN: usize = 32;

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        hex_decode(text)
            .and_then(|bytes| Self::from_slice(&bytes))
            .ok_or(HashParseError { encoding: "hex" })
    }

    pub fn to_base64(&self) -> String {
        base64_encode(&self.0)
    }

    pub fn from_base64(text: &str) -> Result<Self, HashParseError> {
        base64_decode(text)
            .and_then(|bytes| Self::from_slice(&bytes))
            .ok_or(HashParseError { encoding: "base64" })
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Plain SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Hash(Sha256::digest(data).into())
}

/// RFC 6962 leaf hash: SHA-256(0x00 || leaf_data).
pub fn leaf_hash(leaf_data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf_data);
    Hash(hasher.finalize().into())
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 65];
    block[0] = 0x01;
    block[1..33].copy_from_slice(&left.0);
    block[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(block).into())
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_tree_root() -> Hash {
    sha256(&[])
}
