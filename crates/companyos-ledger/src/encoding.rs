//! Hex and base64 helpers shared by the wire formats of the ledger (lower-case hex, standard base64).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The two lower-case hex digits of a byte.
pub fn hex_digits(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0f)],
    ]
}

/// Lower-case hexadecimal encoding.
pub fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        for digit in hex_digits(*byte) {
            out.push(char::from(digit));
        }
    }
    out
}

/// Decodes hexadecimal (either case). Returns `None` on an odd length or a non-hex character.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
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
