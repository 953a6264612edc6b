//! RFC 8785 JSON Canonicalization Scheme (JCS), and a strict JSON reader that refuses duplicate
//! object keys (I-JSON, RFC 7493), so that one document has one canonical form and one digest.

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a document has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("number {0} is not a finite IEEE 754 double")]
    NumberOutOfRange(String),
}

/// The canonical (RFC 8785) serialisation of `value`.
pub fn canonicalize(value: &Value) -> Result<String, JcsError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), JcsError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&canonical_number(number)?),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

/// Writes an object with its members sorted by the UTF-16 code units of their names.
pub(crate) fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), JcsError> {
    write_object_except(out, map, &[])
}

/// Writes an object without the members named in `skip`, the rest sorted as JCS requires.
pub(crate) fn write_object_except(
    out: &mut String,
    map: &Map<String, Value>,
    skip: &[&str],
) -> Result<(), JcsError> {
    let mut members: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(name, _)| !skip.contains(&name.as_str()))
        .collect();
    members.sort_by(|a, b| utf16_order(a.0, b.0));
    out.push('{');
    for (i, (name, member)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_value(out, member)?;
    }
    out.push('}');
    Ok(())
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    // Copy runs that need no escaping whole: every byte of a multi-byte UTF-8 sequence is
    // 0x80 or above, so scanning bytes for '"', '\\' and controls never splits a character.
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[run_start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", byte);
        } else {
            out.push_str(escaped);
        }
        run_start = i + 1;
    }
    out.push_str(&text[run_start..]);
    out.push('"');
}

/// Orders member names as RFC 8785 does (by UTF-16 code units). For ASCII names that is byte
/// order, which needs no transcoding.
pub fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.as_bytes().cmp(b.as_bytes())
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// A JSON number in JCS form: its IEEE 754 double value printed as ECMAScript's
/// `Number.prototype.toString` does.
pub fn canonical_number(number: &Number) -> Result<String, JcsError> {
    let text = number.to_string();
    let value: f64 = text
        .parse()
        .map_err(|_| JcsError::NumberOutOfRange(text.clone()))?;
    format_ecmascript_number(value).ok_or(JcsError::NumberOutOfRange(text))
}

/// ECMAScript `Number::toString(x)` for a finite double; `None` for NaN and infinities.
pub fn format_ecmascript_number(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    if value == 0.0 {
        return Some("0".to_owned());
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let (digits, exponent) = shortest_digits(value.abs())?;
    let k = i32::try_from(digits.len()).ok()?;
    let n = exponent + 1;
    let body = if k <= n && n <= 21 {
        let zeros = usize::try_from(n - k).ok()?;
        format!("{digits}{}", "0".repeat(zeros))
    } else if 0 < n && n <= 21 {
        let point = usize::try_from(n).ok()?;
        format!("{}.{}", &digits[..point], &digits[point..])
    } else if -6 < n && n <= 0 {
        let zeros = usize::try_from(-n).ok()?;
        format!("0.{}{digits}", "0".repeat(zeros))
    } else {
        let e = n - 1;
        let exponent_sign = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{exponent_sign}{}", e.abs())
        } else {
            format!(
                "{}.{}e{exponent_sign}{}",
                &digits[..1],
                &digits[1..],
                e.abs()
            )
        }
    };
    Some(format!("{sign}{body}"))
}

/// Splits Rust's `{:e}` output `d.ddde±x` into its digits and exponent.
fn split_scientific(text: &str) -> Option<(String, i32)> {
    let (mantissa, exponent) = text.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    Some((mantissa.chars().filter(|c| *c != '.').collect(), exponent))
}

/// Adds one in the last place of a string of decimal digits; `None` if that adds a digit.
fn increment_digits(digits: &str) -> Option<String> {
    let mut bytes = digits.as_bytes().to_vec();
    for byte in bytes.iter_mut().rev() {
        if *byte == b'9' {
            *byte = b'0';
        } else {
            *byte += 1;
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

/// The digits and decimal exponent ECMAScript's `Number::toString` uses for a finite `value > 0`:
/// the fewest digits that round-trip, the closest such digits to `value`, and of two equally
/// close the even one. Rust's shortest `{:e}` output agrees except in that last case, which it
/// breaks upwards (`1424953923781206.25` would print as `...206.3`; ECMAScript has `...206.2`).
fn shortest_digits(value: f64) -> Option<(String, i32)> {
    let (digits, exponent) = split_scientific(&format!("{value:e}"))?;
    // Two candidates 10^-k apart both round-trip only when k >= 16 (a double has ~15.95 digits).
    if digits.len() < 16 {
        return Some((digits, exponent));
    }
    // The exact decimal value of the double: it has at most 767 significant digits.
    let (exact, exact_exponent) = split_scientific(&format!("{value:.800e}"))?;
    let exact = exact.trim_end_matches('0');
    let halfway =
        exact_exponent == exponent && exact.len() == digits.len() + 1 && exact.ends_with('5');
    if !halfway {
        return Some((digits, exponent));
    }
    // `value` is exactly halfway between `lower` and `lower + 1` in the last digit.
    let lower = &exact[..digits.len()];
    let even = if lower.ends_with(['0', '2', '4', '6', '8']) {
        Some(lower.to_owned())
    } else {
        increment_digits(lower)
    };
    let round_trips = |candidate: &str| {
        format!("{}.{}e{exponent}", &candidate[..1], &candidate[1..])
            .parse::<f64>()
            .is_ok_and(|parsed| parsed == value)
    };
    match even {
        Some(even) if even.len() == digits.len() && round_trips(&even) => Some((even, exponent)),
        _ => Some((digits, exponent)),
    }
}

/// Parses JSON, refusing duplicate object member names anywhere in the document.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JcsError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(value) = StrictValue::deserialize(&mut deserializer)
        .map_err(|e| JcsError::InvalidJson(e.to_string()))?;
    deserializer
        .end()
        .map_err(|e| JcsError::InvalidJson(e.to_string()))?;
    Ok(value)
}

/// A `Value` whose deserialisation refuses duplicate keys.
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

// serde_json hands arbitrary-precision numbers to visitors as a one-entry map with this key.
const SERDE_JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        Number::from_f64(v)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_none<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictValue, A::Error> {
        let mut map = Map::new();
        let mut first = true;
        while let Some(key) = access.next_key::<String>()? {
            if first && key == SERDE_JSON_NUMBER_TOKEN {
                // serde_json hands an arbitrary-precision number over as a one-entry map whose
                // value is an owned string. A JSON object that merely has a member of that name
                // delivers its value through the ordinary visitors, and stays an object.
                match access.next_value_seed(TokenValueSeed)? {
                    TokenValue::Number(text) => {
                        let number: Number = text.parse().map_err(de::Error::custom)?;
                        return Ok(StrictValue(Value::Number(number)));
                    }
                    TokenValue::Member(value) => {
                        first = false;
                        map.insert(key, value);
                        continue;
                    }
                }
            }
            first = false;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(StrictValue(Value::Object(map)))
    }
}

/// The value after a member named [`SERDE_JSON_NUMBER_TOKEN`]: the text of a number that
/// serde_json passes as an owned string, or the value of a real JSON member of that name.
enum TokenValue {
    Number(String),
    Member(Value),
}

struct TokenValueSeed;

impl<'de> de::DeserializeSeed<'de> for TokenValueSeed {
    type Value = TokenValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TokenValue, D::Error> {
        deserializer.deserialize_any(TokenValueVisitor)
    }
}

struct TokenValueVisitor;

impl<'de> Visitor<'de> for TokenValueVisitor {
    type Value = TokenValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number or any JSON value")
    }

    fn visit_string<E>(self, v: String) -> Result<TokenValue, E> {
        // Only serde_json's number deserializer produces owned strings; JSON text strings
        // arrive through `visit_str` / `visit_borrowed_str`.
        Ok(TokenValue::Number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<TokenValue, E> {
        Ok(TokenValue::Member(Value::String(v.to_owned())))
    }

    fn visit_bool<E>(self, v: bool) -> Result<TokenValue, E> {
        Ok(TokenValue::Member(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<TokenValue, E> {
        Ok(TokenValue::Member(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<TokenValue, E> {
        Ok(TokenValue::Member(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TokenValue, E> {
        StrictVisitor
            .visit_f64(v)
            .map(|StrictValue(v)| TokenValue::Member(v))
    }

    fn visit_unit<E>(self) -> Result<TokenValue, E> {
        Ok(TokenValue::Member(Value::Null))
    }

    fn visit_none<E>(self) -> Result<TokenValue, E> {
        Ok(TokenValue::Member(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TokenValue, A::Error> {
        StrictVisitor
            .visit_seq(seq)
            .map(|StrictValue(v)| TokenValue::Member(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<TokenValue, A::Error> {
        StrictVisitor
            .visit_map(access)
            .map(|StrictValue(v)| TokenValue::Member(v))
    }
}
