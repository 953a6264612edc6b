//! Compact stored forms of a usage event's id and canonical form: what the store keeps per event
//! instead of the text, and the exact inverse that gives the text back (ADR 0009).
//!
//! Why: every stored byte of an event is written twice (WAL, then the database file) and, on a
//! growing store, lands on a page the kernel has never handed out before. The canonical form
//! repeats what the store already knows (the event id, the tenant id) and the field names of
//! CONTRACT §5; a random UUID event id is 36 characters for 16 bytes of information.
//!
//! Both forms are lossless for every input, by construction rather than by a check:
//!
//! - An event id that is a lower-case hyphenated UUID is stored as its 16 bytes after a 0
//!   length byte (no valid id is empty); any other id as its length and its bytes.
//! - A canonical form is stored as its bytes, with some substrings replaced by one *token* byte
//!   below 0x20. A JCS (RFC 8785) text never holds such a byte (control characters are escaped
//!   inside strings, and there is no whitespace between tokens), so a token can never be
//!   confused with text; should one appear anyway it is stored behind [`ESCAPE`]. A token
//!   stands for a fixed string, the event's own id or tenant id (given to both directions), or a
//!   `"timestamp"` member whose value is in the shape `YYYY-MM-DDTHH:MM:SSZ` or
//!   `YYYY-MM-DDTHH:MM:SS.fffZ` (1 to 9 fraction digits) and is stored as five bytes of Unix
//!   seconds (and the fraction's digit count and value); any other timestamp text stays text.

use companyos_ledger::encoding::hex_digits;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// What the two directions share: the event's tenant and id, which the store keeps beside the
/// packed form (the bundle's owner and the entry's id).
#[derive(Debug, Clone, Copy)]
pub struct PackContext<'a> {
    pub tenant_id: &'a str,
    pub event_id: &'a str,
}

/// Stored bytes that no packer writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    #[error("packed event id is truncated")]
    IdTruncated,
    #[error("packed canonical form is truncated")]
    Truncated,
    #[error("packed canonical form holds an unknown token {0:#04x}")]
    UnknownToken(u8),
    #[error("packed timestamp is out of range")]
    TimestampRange,
    #[error("unpacked text is not UTF-8")]
    NotUtf8,
}

/// The bytes of a UUID event id once packed, after the marker byte.
const UUID_BYTES: usize = 16;
/// The length byte that marks a packed UUID (an event id is 1 to 128 characters).
const UUID_MARKER: u8 = 0;

/// Appends the stored form of an event id (1 to 128 bytes, as `EventId::parse` bounds it).
pub fn pack_event_id(event_id: &str, out: &mut Vec<u8>) {
    assert!(
        !event_id.is_empty() && event_id.len() <= 128,
        "EventId::parse bounds ids to 1..=128 bytes"
    );
    if let Some(bytes) = uuid_bytes(event_id) {
        out.push(UUID_MARKER);
        out.extend_from_slice(&bytes);
    } else {
        out.push(u8::try_from(event_id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(event_id.as_bytes());
    }
}

/// Reads a stored event id from the front of `bytes`, appending its text to `out`; returns
/// the bytes after it.
pub fn unpack_event_id<'a>(bytes: &'a [u8], out: &mut String) -> Result<&'a [u8], UnpackError> {
    let (&len, rest) = bytes.split_first().ok_or(UnpackError::IdTruncated)?;
    if len == UUID_MARKER {
        if rest.len() < UUID_BYTES {
            return Err(UnpackError::IdTruncated);
        }
        let (uuid, rest) = rest.split_at(UUID_BYTES);
        for (i, byte) in uuid.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            for digit in hex_digits(*byte) {
                out.push(char::from(digit));
            }
        }
        return Ok(rest);
    }
    let len = usize::from(len);
    if rest.len() < len {
        return Err(UnpackError::IdTruncated);
    }
    let (text, rest) = rest.split_at(len);
    out.push_str(std::str::from_utf8(text).map_err(|_| UnpackError::NotUtf8)?);
    Ok(rest)
}

/// The length of the packed event id at the front of `bytes` (its marker or length byte
/// included), for readers that skip an id without unpacking it; at least 1.
pub fn packed_event_id_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(&UUID_MARKER) => 1 + UUID_BYTES,
        Some(len) => 1 + usize::from(*len),
        None => 1,
    }
}

/// The 16 bytes of `8-4-4-4-12` lower-case hex, or `None` for any other text.
fn uuid_bytes(text: &str) -> Option<[u8; UUID_BYTES]> {
    let text = text.as_bytes();
    if text.len() != 36 {
        return None;
    }
    let mut bytes = [0u8; UUID_BYTES];
    let mut digits = 0usize;
    for (i, &c) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let value = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        bytes[digits / 2] |= if digits % 2 == 0 { value << 4 } else { value };
        digits += 1;
    }
    Some(bytes)
}

// ------------------------------------------------------------------------------------------
// Canonical forms
// ------------------------------------------------------------------------------------------

/// `"event_id":"<the context's event id>"`.
const TOKEN_OWN_EVENT_ID: u8 = 0x01;
/// `"tenant_id":"<the context's tenant id>"`.
const TOKEN_OWN_TENANT_ID: u8 = 0x02;
/// `"timestamp":"YYYY-MM-DDTHH:MM:SSZ"`, the value as five big-endian bytes of Unix seconds.
const TOKEN_TIMESTAMP_SECONDS: u8 = 0x03;
/// `"timestamp":"YYYY-MM-DDTHH:MM:SS.<fraction>Z"`: five bytes of Unix seconds, one byte of
/// fraction digits (1 to 9, leading zeros included) and four big-endian bytes of their value.
const TOKEN_TIMESTAMP_FRACTION: u8 = 0x10;
/// The next byte is text, whatever its value.
pub const ESCAPE: u8 = 0x1f;

/// The token of `"quantity":"`; tests that change one stored byte of a quantity find it by it.
pub const TOKEN_QUANTITY_STRING: u8 = 0x09;

/// Fixed strings by token: the member names of CONTRACT §5 with the opening of their value.
const FIXED: [(u8, &str); 12] = [
    (0x04, "\"event_id\":\""),
    (0x05, "\"tenant_id\":\""),
    (0x06, "\"timestamp\":\""),
    (0x07, "\"service\":\""),
    (0x08, "\"metric\":\""),
    (TOKEN_QUANTITY_STRING, "\"quantity\":\""),
    (0x0a, "\"quantity\":"),
    (0x0b, "\"unit\":\""),
    (0x0c, "\"request_id\":\""),
    (0x0d, "\"trace_id\":\""),
    (0x0e, "\"source\":\""),
    (0x0f, "\"source_seq\":"),
];

const TIMESTAMP_PREFIX: &str = "\"timestamp\":\"";
/// `YYYY-MM-DDTHH:MM:SS`.
const TIMESTAMP_SECONDS_TEXT_BYTES: usize = 19;
/// Fraction digits of a timestamp that packs (nanoseconds at most).
const TIMESTAMP_FRACTION_DIGITS_MAX: usize = 9;
/// 10000-01-01T00:00:00Z: four-digit years only.
const TIMESTAMP_SECONDS_END: i64 = 253_402_300_800;

/// Appends the packed form of `canonical` to `out`.
pub fn pack_canonical(canonical: &str, context: PackContext<'_>, out: &mut Vec<u8>) {
    let text = canonical.as_bytes();
    let mut at = 0;
    while at < text.len() {
        let byte = text[at];
        if byte == b'"' {
            if let Some(used) = pack_member(&text[at..], context, out) {
                at += used;
                continue;
            }
        }
        if byte < 0x20 {
            out.push(ESCAPE);
        }
        out.push(byte);
        at += 1;
    }
}

/// Packs the member opening at the start of `text` (which starts with a quote) when a token
/// stands for it; returns the bytes it covers.
fn pack_member(text: &[u8], context: PackContext<'_>, out: &mut Vec<u8>) -> Option<usize> {
    let own = |name: &str, value: &str| -> Option<usize> {
        let rest = text.strip_prefix(b"\"")?.strip_prefix(name.as_bytes())?;
        let rest = rest
            .strip_prefix(b"\":\"")?
            .strip_prefix(value.as_bytes())?;
        rest.starts_with(b"\"")
            .then_some(1 + name.len() + 3 + value.len() + 1)
    };
    match text.get(1) {
        Some(b'e') => {
            if let Some(used) = own("event_id", context.event_id) {
                out.push(TOKEN_OWN_EVENT_ID);
                return Some(used);
            }
        }
        Some(b't') => {
            if let Some(used) = own("tenant_id", context.tenant_id) {
                out.push(TOKEN_OWN_TENANT_ID);
                return Some(used);
            }
            if let Some(value) = text
                .strip_prefix(TIMESTAMP_PREFIX.as_bytes())
                .and_then(timestamp_value)
            {
                let seconds = value.seconds.to_be_bytes();
                match value.fraction {
                    None => {
                        out.push(TOKEN_TIMESTAMP_SECONDS);
                        out.extend_from_slice(&seconds[3..]);
                    }
                    Some((digits, fraction)) => {
                        out.push(TOKEN_TIMESTAMP_FRACTION);
                        out.extend_from_slice(&seconds[3..]);
                        out.push(digits);
                        out.extend_from_slice(&fraction.to_be_bytes());
                    }
                }
                return Some(TIMESTAMP_PREFIX.len() + value.text_bytes);
            }
        }
        _ => {}
    }
    FIXED
        .iter()
        .find(|(_, fixed)| text.starts_with(fixed.as_bytes()))
        .map(|(token, fixed)| {
            out.push(*token);
            fixed.len()
        })
}

/// A timestamp value that packs.
struct TimestampValue {
    seconds: u64,
    /// Digit count and value of the fraction of a second, when the text has one.
    fraction: Option<(u8, u32)>,
    /// The bytes of the value's text, closing quote included.
    text_bytes: usize,
}

/// The packed parts of a value `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z"` at the start of `text`, when it
/// is exactly that shape and a real instant of a year from 1970 to 9999, so that formatting the
/// parts gives the same text.
fn timestamp_value(text: &[u8]) -> Option<TimestampValue> {
    let value = text.get(..TIMESTAMP_SECONDS_TEXT_BYTES)?;
    let digits = |from: usize, to: usize| -> Option<u32> {
        value[from..to].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if shape.iter().any(|(at, c)| value[*at] != *c) {
        return None;
    }
    let rest = &text[TIMESTAMP_SECONDS_TEXT_BYTES..];
    let (fraction, after) = match rest.strip_prefix(b".") {
        Some(fraction) => {
            let count = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if count == 0 || count > TIMESTAMP_FRACTION_DIGITS_MAX {
                return None;
            }
            let number = fraction[..count]
                .iter()
                .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
            (
                Some((u8::try_from(count).ok()?, number)),
                &fraction[count..],
            )
        }
        None => (None, rest),
    };
    if !after.starts_with(b"Z\"") {
        return None;
    }
    let year = i32::try_from(digits(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5, 7)?).ok()?).ok()?;
    let day = Date::from_calendar_date(year, month, u8::try_from(digits(8, 10)?).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(digits(11, 13)?).ok()?,
        u8::try_from(digits(14, 16)?).ok()?,
        u8::try_from(digits(17, 19)?).ok()?,
    )
    .ok()?;
    let seconds = PrimitiveDateTime::new(day, time)
        .assume_utc()
        .unix_timestamp();
    Some(TimestampValue {
        // Years before 1970 would need a sign; they stay text.
        seconds: u64::try_from(seconds).ok()?,
        fraction,
        text_bytes: text.len() - after.len() + 2,
    })
}

/// The text of packed canonical bytes.
pub fn unpack_canonical(packed: &[u8], context: PackContext<'_>) -> Result<String, UnpackError> {
    let mut text = Vec::with_capacity(packed.len() * 3);
    let mut at = 0;
    while at < packed.len() {
        let byte = packed[at];
        at += 1;
        if byte >= 0x20 {
            text.push(byte);
            continue;
        }
        match byte {
            ESCAPE => {
                text.push(*packed.get(at).ok_or(UnpackError::Truncated)?);
                at += 1;
            }
            TOKEN_OWN_EVENT_ID => push_member(&mut text, "event_id", context.event_id),
            TOKEN_OWN_TENANT_ID => push_member(&mut text, "tenant_id", context.tenant_id),
            TOKEN_TIMESTAMP_SECONDS | TOKEN_TIMESTAMP_FRACTION => {
                let bytes = packed.get(at..at + 5).ok_or(UnpackError::Truncated)?;
                at += 5;
                let mut be = [0u8; 8];
                be[3..].copy_from_slice(bytes);
                let seconds = i64::from_be_bytes(be);
                if seconds >= TIMESTAMP_SECONDS_END {
                    return Err(UnpackError::TimestampRange);
                }
                let instant = OffsetDateTime::from_unix_timestamp(seconds)
                    .map_err(|_| UnpackError::TimestampRange)?;
                text.extend_from_slice(TIMESTAMP_PREFIX.as_bytes());
                push_timestamp_seconds(&mut text, instant);
                if byte == TOKEN_TIMESTAMP_FRACTION {
                    let digits = usize::from(*packed.get(at).ok_or(UnpackError::Truncated)?);
                    let value = packed.get(at + 1..at + 5).ok_or(UnpackError::Truncated)?;
                    at += 5;
                    let value = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                    if digits == 0
                        || digits > TIMESTAMP_FRACTION_DIGITS_MAX
                        || u64::from(value) >= 10u64.pow(digits as u32)
                    {
                        return Err(UnpackError::TimestampRange);
                    }
                    text.push(b'.');
                    let mut divisor = 10u32.pow(digits as u32 - 1);
                    while divisor > 0 {
                        text.push(b'0' + u8::try_from(value / divisor % 10).unwrap_or(0));
                        divisor /= 10;
                    }
                }
                text.extend_from_slice(b"Z\"");
            }
            token => {
                let (_, fixed) = FIXED
                    .iter()
                    .find(|(t, _)| *t == token)
                    .ok_or(UnpackError::UnknownToken(token))?;
                text.extend_from_slice(fixed.as_bytes());
            }
        }
    }
    String::from_utf8(text).map_err(|_| UnpackError::NotUtf8)
}

fn push_member(text: &mut Vec<u8>, name: &str, value: &str) {
    text.push(b'"');
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(b"\":\"");
    text.extend_from_slice(value.as_bytes());
    text.push(b'"');
}

/// `YYYY-MM-DDTHH:MM:SS` of a UTC instant of a four-digit year.
fn push_timestamp_seconds(text: &mut Vec<u8>, at: OffsetDateTime) {
    let two = |text: &mut Vec<u8>, n: u8| {
        text.push(b'0' + n / 10);
        text.push(b'0' + n % 10);
    };
    let year = u32::try_from(at.year()).unwrap_or(0);
    for divisor in [1000, 100, 10, 1] {
        text.push(b'0' + u8::try_from(year / divisor % 10).unwrap_or(0));
    }
    text.push(b'-');
    two(text, u8::from(at.month()));
    text.push(b'-');
    two(text, at.day());
    text.push(b'T');
    two(text, at.hour());
    text.push(b':');
    two(text, at.minute());
    text.push(b':');
    two(text, at.second());
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: PackContext<'static> = PackContext {
        tenant_id: "tenant-0001",
        event_id: "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b",
    };

    fn roundtrip(canonical: &str) -> Vec<u8> {
        let mut packed = Vec::new();
        pack_canonical(canonical, CONTEXT, &mut packed);
        let text = unpack_canonical(&packed, CONTEXT).expect("unpacks");
        assert_eq!(text, canonical);
        packed
    }

    #[test]
    fn a_contract_event_packs_to_a_third_and_back() {
        let canonical = "{\"event_id\":\"8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b\",\"metric\":\"requests\",\
                         \"quantity\":\"3\",\"request_id\":\"r1234567\",\"service\":\"api\",\
                         \"tenant_id\":\"tenant-0001\",\"timestamp\":\"2026-12-03T10:20:05Z\",\
                         \"unit\":\"request\"}";
        let packed = roundtrip(canonical);
        assert!(packed.len() * 3 < canonical.len(), "{} bytes", packed.len());
    }

    #[test]
    fn other_ids_timestamps_and_control_bytes_stay_exact() {
        roundtrip("{\"event_id\":\"other\",\"tenant_id\":\"globex\"}");
        roundtrip("{\"timestamp\":\"2026-12-03T10:20:05.5Z\",\"x\":\"2026-02-30T00:00:00Z\"}");
        roundtrip("{\"timestamp\":\"2026-02-30T00:00:00Z\"}");
        roundtrip("{\"timestamp\":\"1969-12-31T23:59:59Z\"}");
        roundtrip("{\"timestamp\":\"9999-12-31T23:59:59Z\"}");
        roundtrip("{\"timestamp\":\"2026-12-03T10:20:60Z\"}");
        for fraction in ["5", "000001", "591770", "123456789", "1234567890", ""] {
            roundtrip(&format!(
                "{{\"timestamp\":\"2026-12-03T10:20:05.{fraction}Z\"}}"
            ));
        }
        roundtrip("{\"timestamp\":\"2026-12-03T10:20:05.5+01:00\"}");
        assert_eq!(
            roundtrip("\"timestamp\":\"2026-12-03T10:20:05.000591Z\"").len(),
            11
        );
        roundtrip("\u{1}\u{1f}\u{3}\"timestamp\":\"");
        roundtrip("\"event_id\":\"8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b");
        roundtrip("{\"ünïcode\":\"😀\",\"quantity\":12.5,\"source_seq\":7}");
        roundtrip("");
    }

    #[test]
    fn uuid_ids_pack_to_sixteen_bytes_and_others_stay_text() {
        for id in [
            "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b",
            "8E0C1B2A-3F4D-4E5F-8A9B-0C1D2E3F4A5B",
            "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5",
            "e17",
        ] {
            let mut packed = Vec::new();
            pack_event_id(id, &mut packed);
            packed.push(0xaa);
            let mut text = String::new();
            let rest = unpack_event_id(&packed, &mut text).expect("unpacks");
            assert_eq!((text.as_str(), rest), (id, &[0xaa][..]));
        }
        let mut packed = Vec::new();
        pack_event_id("8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b", &mut packed);
        assert_eq!(packed.len(), 17);
    }

    #[test]
    fn damaged_packed_bytes_are_errors_not_panics() {
        let mut text = String::new();
        assert_eq!(
            unpack_canonical(&[0x1e], CONTEXT),
            Err(UnpackError::UnknownToken(0x1e))
        );
        assert_eq!(
            unpack_canonical(&[ESCAPE], CONTEXT),
            Err(UnpackError::Truncated)
        );
        assert_eq!(
            unpack_canonical(
                &[TOKEN_TIMESTAMP_SECONDS, 0xff, 0xff, 0xff, 0xff, 0xff],
                CONTEXT
            ),
            Err(UnpackError::TimestampRange)
        );
        for (digits, value) in [(0u8, 0u32), (10, 0), (3, 1000)] {
            let mut bytes = vec![TOKEN_TIMESTAMP_FRACTION, 0, 0, 0, 0, 1, digits];
            bytes.extend_from_slice(&value.to_be_bytes());
            assert_eq!(
                unpack_canonical(&bytes, CONTEXT),
                Err(UnpackError::TimestampRange)
            );
        }
        assert_eq!(
            unpack_canonical(&[TOKEN_TIMESTAMP_FRACTION, 0, 0, 0, 0, 1, 3], CONTEXT),
            Err(UnpackError::Truncated)
        );
        assert_eq!(
            unpack_canonical(&[0xff], CONTEXT),
            Err(UnpackError::NotUtf8)
        );
        assert_eq!(
            unpack_event_id(&[0, 1, 2], &mut text),
            Err(UnpackError::IdTruncated)
        );
        assert_eq!(
            unpack_event_id(&[5, b'a'], &mut text),
            Err(UnpackError::IdTruncated)
        );
    }
}
