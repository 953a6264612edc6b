//! Hex and base64 helpers shared by the wire formats of the ledger (lower-case hex, standard base64).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The two lower-case hex digits of a byte.
pub fn hex_digits(byte: u8) -> [u8; 2] {
    let mut digits = [0u8; 2];
    // Two output bytes for one input byte: the only error `encode_to_slice` has is a length
    // mismatch, which cannot happen here.
    if hex::encode_to_slice([byte], &mut digits).is_err() {
        unreachable!("two hex digits encode one byte");
    }
    digits
}

/// Lower-case hexadecimal encoding.
pub fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes hexadecimal (either case). Returns `None` on an odd length or a non-hex character.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

/// Standard base64 (RFC 4648 §4) with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding; rejects non-canonical encodings.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let decoded = STANDARD.decode(text).ok()?;
    // Non-canonical trailing bits are rejected by the engine; a round trip guards the rest.
    (STANDARD.encode(&decoded) == text).then_some(decoded)
}
