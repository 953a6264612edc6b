//! Random ids, secret tokens and their hashes.

use companyos_ledger::encoding::hex_encode;
use companyos_ledger::hash::sha256;
use time::OffsetDateTime;

/// Fills `bytes` from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is not an operating error we can recover from: every key
    // and token would be predictable.
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    bytes
}

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The last id value handed out by this process (for monotonic ids within a millisecond).
static LAST_ID: std::sync::Mutex<u128> = std::sync::Mutex::new(0);

/// A time-ordered id `<prefix>_<26 base32 characters>`: 48 bits of milliseconds then 80 random
/// bits (the ULID layout, lower case), so ids sort by creation time. Within one process ids are
/// strictly increasing (a second id in the same millisecond is the previous one plus one), so
/// records created in sequence (outbox messages, audit records) keep their order.
pub fn new_id(prefix: &str, now: OffsetDateTime) -> String {
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let random: [u8; 10] = random_bytes();
    let mut value: u128 = u128::from(millis & 0xffff_ffff_ffff) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (72 - 8 * i);
    }
    if let Ok(mut last) = LAST_ID.lock() {
        if value >> 80 <= *last >> 80 {
            value = *last + 1;
        }
        *last = value;
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        let digit = ((value >> (i * 5)) & 0x1f) as usize;
        out.push(char::from(BASE32[digit]));
    }
    out
}

/// A secret bearer token: `<prefix>_` and 256 random bits in hex.
pub fn new_token(prefix: &str) -> String {
    let bytes: [u8; 32] = random_bytes();
    format!("{prefix}_{}", hex_encode(&bytes))
}

/// How tokens are stored: the hex SHA-256 (tokens carry 256 random bits, so a fast hash is
/// enough; there is nothing to brute-force).
pub fn token_hash(token: &str) -> String {
    sha256(token.as_bytes()).to_hex()
}

/// A short public fingerprint of a token, safe to show and to put in evidence.
pub fn token_fingerprint(token: &str) -> String {
    format!("sha256:{}", &token_hash(token)[..16])
}

/// RFC 4180 text: a header row, then one row each, CRLF line ends, a field quoted only when it
/// holds a comma, a quote or a line break (quotes doubled). The one CSV writer of the product:
/// the API's CSV exports guard spreadsheet formulas first and then write through here.
pub fn csv_text<R, F>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator<Item = F>,
    F: AsRef<str>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(Vec::new());
    // Writing into memory cannot fail (records may differ in length: `flexible`), and every
    // field is text, so neither can the conversion back: these are invariants, not errors.
    let written = writer.write_record(header).and_then(|()| {
        rows.into_iter().try_for_each(|row| {
            for field in row {
                writer.write_field(field.as_ref())?;
            }
            // No more fields: ends the record.
            writer.write_record(None::<&[u8]>)
        })
    });
    assert!(written.is_ok(), "writing CSV into memory cannot fail");
    let bytes = writer
        .into_inner()
        .expect("flushing into memory cannot fail");
    String::from_utf8(bytes).expect("CSV of text fields is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_and_well_formed() {
        let early = new_id(
            "apr",
            OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(10),
        );
        let late = new_id(
            "apr",
            OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(11),
        );
        assert!(early < late);
        assert!(companyos_domain::ids::check_generated_id(&early, "apr"));
        assert_ne!(new_token("x"), new_token("x"));
    }

    #[test]
    fn csv_quotes_only_where_needed_with_crlf() {
        let text = csv_text(
            &["a", "b"],
            [
                vec!["x,y", "say \"hi\""],
                vec!["line\nbreak", "-5"],
                vec!["only"],
            ],
        );
        assert_eq!(
            text,
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n\"line\nbreak\",-5\r\nonly\r\n"
        );
    }
}
