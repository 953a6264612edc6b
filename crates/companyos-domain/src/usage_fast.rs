//! The fast path of usage event parsing: one pass over the bytes of an event in the shape
//! services and the SDK send (a flat object of known fields, strings without escapes), giving the
//! [`UsageEvent`] and its canonical form without building a `serde_json::Value` tree.
//!
//! The rule that makes it safe: [`parse_event`] returns an event only when the general path
//! ([`UsageEvent::parse_bytes_slow`]) would return exactly the same `Ok` value. Anything it does
//! not fully understand, and every invalid input, it declines (`None`), so that the general path
//! runs and every error message stays the general path's own.

use std::str::FromStr;

use companyos_ledger::jcs::utf16_order;
use companyos_ledger::usage_event::EventDigest;

use crate::ids::{EventId, MetricName, RequestId, ServiceName, SourceId, TenantId, TraceId, Unit};
use crate::time_util::parse_rfc3339;
use crate::usage::{
    ATTRIBUTE_KEY_BYTES_MAX, ATTRIBUTE_VALUE_CHARS_MAX, ATTRIBUTES_MAX, EVENT_BYTES_MAX, FIELDS,
    Quantity, UsageEvent, source_seq_of_digits,
};

// Indices into `FIELDS` (a unit test checks that they agree).
const EVENT_ID: usize = 0;
const TENANT_ID: usize = 1;
const SERVICE: usize = 2;
const METRIC: usize = 3;
const QUANTITY: usize = 4;
const UNIT: usize = 5;
const TIMESTAMP: usize = 6;
const REQUEST_ID: usize = 7;
const TRACE_ID: usize = 8;
const SOURCE: usize = 9;
const SOURCE_SEQ: usize = 10;
const SOURCE_SIGNATURE: usize = 11;
const DIGEST: usize = 12;
const ATTRIBUTES: usize = 13;

/// The members of the canonical form (all fields but `source_signature` and `digest`) in RFC 8785
/// order. The names are ASCII, so UTF-16 order is byte order, fixed once here (a unit test
/// derives it from `FIELDS` and `UNSIGNED_FIELDS`).
const CANONICAL_ORDER: [usize; 12] = [
    ATTRIBUTES, EVENT_ID, METRIC, QUANTITY, REQUEST_ID, SERVICE, SOURCE, SOURCE_SEQ, TENANT_ID,
    TIMESTAMP, TRACE_ID, UNIT,
];

/// The index in `FIELDS` of a member name, `None` for any other name.
fn field_index(name: &str) -> Option<usize> {
    Some(match name {
        "event_id" => EVENT_ID,
        "tenant_id" => TENANT_ID,
        "service" => SERVICE,
        "metric" => METRIC,
        "quantity" => QUANTITY,
        "unit" => UNIT,
        "timestamp" => TIMESTAMP,
        "request_id" => REQUEST_ID,
        "trace_id" => TRACE_ID,
        "source" => SOURCE,
        "source_seq" => SOURCE_SEQ,
        "source_signature" => SOURCE_SIGNATURE,
        "digest" => DIGEST,
        "attributes" => ATTRIBUTES,
        _ => return None,
    })
}

/// What the scan found: for each field, the raw text of its value, which (with no escapes and
/// no control characters in it) is also the decoded string and its RFC 8785 form; for
/// `source_seq` the digits of the integer.
struct Members<'a> {
    /// Bit `i` is set once field `i` was read, so a repeated name is noticed.
    seen: u16,
    values: [&'a str; FIELDS.len()],
    attributes: [(&'a str, &'a str); ATTRIBUTES_MAX],
    attribute_count: usize,
}

impl<'a> Members<'a> {
    fn new() -> Self {
        Self {
            seen: 0,
            values: [""; FIELDS.len()],
            attributes: [("", ""); ATTRIBUTES_MAX],
            attribute_count: 0,
        }
    }

    fn has(&self, field: usize) -> bool {
        self.seen & (1 << field) != 0
    }

    fn get(&self, field: usize) -> Option<&'a str> {
        if self.has(field) {
            self.values.get(field).copied()
        } else {
            None
        }
    }

    fn attributes(&self) -> &[(&'a str, &'a str)] {
        self.attributes
            .get(..self.attribute_count)
            .unwrap_or_default()
    }
}

/// A cursor over the event's text. Every method returns `None` for anything outside the shape
/// the fast path handles, which sends the event to the general path.
struct Scanner<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    /// Skips JSON whitespace (RFC 8259 §2: space, tab, line feed, carriage return) only.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.position += 1;
        }
    }

    /// The next byte that is not whitespace, consumed.
    fn next_token(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = self.peek()?;
        self.position += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_token()? == byte).then_some(())
    }

    /// A string without backslashes or control characters: its raw contents.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.position;
        let length = self
            .text
            .as_bytes()
            .get(start..)?
            .iter()
            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        let end = start + length;
        if self.text.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.position = end + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..end)
    }

    /// A non-negative integer literal in plain form: a non-zero first digit (JSON allows no
    /// leading zeros, and 0 is not a valid `source_seq`), then digits. A fraction or exponent
    /// after it is not a `,` or `}`, so the caller declines it.
    fn positive_integer(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.position;
        if !matches!(self.peek()?, b'1'..=b'9') {
            return None;
        }
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
        self.text.get(start..self.position)
    }

    /// After a member: `true` if another follows (`,`), `false` at the end of the object.
    fn member_separator(&mut self) -> Option<bool> {
        match self.next_token()? {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }
}

/// Reads the whole text as one flat event object.
fn scan_event(text: &str) -> Option<Members<'_>> {
    let mut scanner = Scanner { text, position: 0 };
    let mut members = Members::new();
    scanner.expect(b'{')?;
    loop {
        let field = field_index(scanner.string()?)?;
        if members.has(field) {
            return None;
        }
        members.seen |= 1 << field;
        scanner.expect(b':')?;
        match field {
            SOURCE_SEQ => *members.values.get_mut(field)? = scanner.positive_integer()?,
            ATTRIBUTES => scan_attributes(&mut scanner, &mut members)?,
            // Everything else, `quantity` included, is taken only as a string: a JSON number
            // for `quantity` needs the exact double checks of the general path.
            _ => *members.values.get_mut(field)? = scanner.string()?,
        }
        if !scanner.member_separator()? {
            break;
        }
    }
    scanner.skip_whitespace();
    (scanner.position == text.len()).then_some(members)
}

/// Reads `attributes`: an object of string values within the limits of `check_attributes`,
/// left sorted in RFC 8785 order for the canonical form.
fn scan_attributes<'a>(scanner: &mut Scanner<'a>, members: &mut Members<'a>) -> Option<()> {
    scanner.expect(b'{')?;
    scanner.skip_whitespace();
    if scanner.peek() == Some(b'}') {
        scanner.position += 1;
        return Some(());
    }
    loop {
        let key = scanner.string()?;
        scanner.expect(b':')?;
        let value = scanner.string()?;
        let key_ok = !key.is_empty() && key.len() <= ATTRIBUTE_KEY_BYTES_MAX;
        let value_ok = value.len() <= ATTRIBUTE_VALUE_CHARS_MAX
            || value.chars().count() <= ATTRIBUTE_VALUE_CHARS_MAX;
        if !key_ok || !value_ok {
            return None;
        }
        // A 17th entry has no slot: more than `ATTRIBUTES_MAX` is the general path's error.
        *members.attributes.get_mut(members.attribute_count)? = (key, value);
        members.attribute_count += 1;
        if !scanner.member_separator()? {
            break;
        }
    }
    let count = members.attribute_count;
    let entries = members.attributes.get_mut(..count)?;
    entries.sort_unstable_by(|a, b| utf16_order(a.0, b.0));
    if entries
        .windows(2)
        .any(|pair| matches!(pair, [a, b] if a.0 == b.0))
    {
        return None;
    }
    Some(())
}

/// Writes the RFC 8785 form of the event without `source_signature` and `digest`: members in
/// the fixed order, strings as their raw text (they need no escapes), `source_seq` as its digits
/// (an integer below 2^53 is its own shortest ECMAScript form).
fn canonical_form(members: &Members<'_>) -> String {
    let present = || CANONICAL_ORDER.iter().filter(|&&field| members.has(field));
    let attributes_length: usize = members
        .attributes()
        .iter()
        .map(|(key, value)| key.len() + value.len() + 6)
        .sum();
    let capacity = 2 + present()
        .map(|&field| {
            let name = FIELDS.get(field).map_or(0, |name| name.len());
            let value = match field {
                ATTRIBUTES => attributes_length + 2,
                SOURCE_SEQ => members.get(field).map_or(0, str::len),
                _ => members.get(field).map_or(0, str::len) + 2,
            };
            name + value + 4
        })
        .sum::<usize>();
    let mut out = String::with_capacity(capacity);
    out.push('{');
    for (position, &field) in present().enumerate() {
        if position > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(FIELDS.get(field).copied().unwrap_or_default());
        out.push_str("\":");
        match field {
            ATTRIBUTES => {
                out.push('{');
                for (index, (key, value)) in members.attributes().iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(key);
                    out.push_str("\":\"");
                    out.push_str(value);
                    out.push('"');
                }
                out.push('}');
            }
            SOURCE_SEQ => out.push_str(members.get(field).unwrap_or_default()),
            _ => {
                out.push('"');
                out.push_str(members.get(field).unwrap_or_default());
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// Applies the field rules of `UsageEvent::parse` to what was scanned; any failure declines.
fn build_event(members: &Members<'_>) -> Option<UsageEvent> {
    // Presence and cross-field rules first: they cost nothing and decline before allocating.
    let required = [
        EVENT_ID, TENANT_ID, SERVICE, METRIC, QUANTITY, UNIT, TIMESTAMP,
    ];
    if !required.iter().all(|&field| members.has(field))
        || !(members.has(REQUEST_ID) || members.has(TRACE_ID))
        || ((members.has(SOURCE_SEQ) || members.has(SOURCE_SIGNATURE)) && !members.has(SOURCE))
    {
        return None;
    }
    let source_seq = match members.get(SOURCE_SEQ) {
        Some(digits) => Some(source_seq_of_digits(digits)?),
        None => None,
    };
    let claimed_digest = match members.get(DIGEST) {
        Some(text) => Some(EventDigest::from_str(text).ok()?),
        None => None,
    };
    let quantity = Quantity::parse_text(members.get(QUANTITY)?).ok()?;
    let timestamp = parse_rfc3339(members.get(TIMESTAMP)?, "timestamp").ok()?;
    let event_id = EventId::parse(members.get(EVENT_ID)?).ok()?;
    let tenant_id = TenantId::parse_field(members.get(TENANT_ID)?, "tenant_id").ok()?;
    let service = ServiceName::parse(members.get(SERVICE)?).ok()?;
    let metric = MetricName::parse(members.get(METRIC)?).ok()?;
    let unit = Unit::parse(members.get(UNIT)?).ok()?;
    let request_id = members
        .get(REQUEST_ID)
        .map(RequestId::parse)
        .transpose()
        .ok()?;
    let trace_id = members.get(TRACE_ID).map(TraceId::parse).transpose().ok()?;
    let source = members.get(SOURCE).map(SourceId::parse).transpose().ok()?;
    let canonical = canonical_form(members);
    let digest = EventDigest::of_canonical(canonical.as_bytes());
    if claimed_digest.is_some_and(|claimed| claimed != digest) {
        return None;
    }
    Some(UsageEvent {
        event_id,
        tenant_id,
        service,
        metric,
        quantity,
        unit,
        timestamp,
        request_id,
        trace_id,
        source,
        source_seq,
        source_signature: members.get(SOURCE_SIGNATURE).map(str::to_owned),
        canonical,
        digest,
    })
}

/// The event, when `bytes` is an event of the common shape that the general path would accept;
/// `None` (decline) for everything else.
pub(crate) fn parse_event(bytes: &[u8]) -> Option<UsageEvent> {
    if bytes.len() > EVENT_BYTES_MAX {
        return None;
    }
    // Checked once for the whole text; the general path refuses bad UTF-8 anywhere too.
    let text = std::str::from_utf8(bytes).ok()?;
    build_event(&scan_event(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use companyos_ledger::usage_event::UNSIGNED_FIELDS;
    use std::cmp::Ordering;

    #[test]
    fn field_indices_follow_fields() {
        for (index, name) in FIELDS.iter().enumerate() {
            assert_eq!(field_index(name), Some(index), "{name}");
        }
        assert_eq!(field_index("colour"), None);
    }

    #[test]
    fn canonical_order_is_rfc_8785_order() {
        let mut expected: Vec<&str> = FIELDS
            .iter()
            .copied()
            .filter(|name| !UNSIGNED_FIELDS.contains(name))
            .collect();
        expected.sort_by(|a, b| utf16_order(a, b));
        let actual: Vec<&str> = CANONICAL_ORDER.iter().map(|&i| FIELDS[i]).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn utf16_order_differs_from_code_point_order_above_the_bmp() {
        // U+E000 is above the surrogates in UTF-16, U+10000 starts with one (0xD800).
        assert_eq!(utf16_order("\u{e000}", "\u{10000}"), Ordering::Greater);
        assert_eq!(utf16_order("a", "b"), Ordering::Less);
    }
}
