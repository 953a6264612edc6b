//! Helpers shared by the integration tests: loading vector files, hex/base64, deterministic keys.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use companyos_ledger::Hash;
use companyos_ledger::note::{KeyName, NoteSigner};
use ed25519_dalek::SigningKey;
use serde_json::Value;

/// Path of a file under `tests/vectors/`.
pub fn vector_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(relative)
}

/// The text of a file under `tests/vectors/`.
pub fn vector_text(relative: &str) -> String {
    let path = vector_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The bytes of a file under `tests/vectors/`.
pub fn vector_bytes(relative: &str) -> Vec<u8> {
    let path = vector_path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A JSON vector file.
pub fn vector_json(relative: &str) -> Value {
    serde_json::from_str(&vector_text(relative))
        .unwrap_or_else(|e| panic!("parse tests/vectors/{relative}: {e}"))
}

pub fn hex(text: &str) -> Vec<u8> {
    companyos_ledger::encoding::hex_decode(text).unwrap_or_else(|| panic!("bad hex {text:?}"))
}

pub fn hash_hex(text: &str) -> Hash {
    Hash::from_hex(text).unwrap_or_else(|_| panic!("bad hash {text:?}"))
}

pub fn b64(text: &str) -> Vec<u8> {
    STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("bad base64 {text:?}: {e}"))
}

pub fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} is not a string in {value}"))
}

pub fn u64_field(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("field {field} is not a u64 in {value}"))
}

pub fn str_array<'a>(value: &'a Value, field: &str) -> Vec<&'a str> {
    value[field]
        .as_array()
        .unwrap_or_else(|| panic!("field {field} is not an array in {value}"))
        .iter()
        .map(|v| v.as_str().expect("array of strings"))
        .collect()
}

/// A note signer with a fixed seed, so that signatures in tests are reproducible.
pub fn signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(
        KeyName::parse(name).expect("valid key name"),
        SigningKey::from_bytes(&[seed; 32]),
    )
}

/// Flips one bit of a hash.
pub fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut bytes = *hash.as_bytes();
    bytes[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash::from_bytes(bytes)
}
