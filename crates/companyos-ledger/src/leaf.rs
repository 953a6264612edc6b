//! The `leaf_data` layouts of CompanyOS logs: what each leaf of a usage ledger or of the audit
//! log commits to. Both are short UTF-8 texts, one `name:value` line each, so that a verifier in
//! any language can rebuild and read them (`docs/spec/ledger.md`).

use std::fmt;

use crate::usage_event::EventDigest;

/// First line of a usage ledger leaf.
pub const USAGE_LEAF_TAG: &str = "companyos/usage-leaf/v1";
/// First line of an audit log leaf.
pub const AUDIT_LEAF_TAG: &str = "companyos/audit-leaf/v1";

/// How ingestion classified an event; bound into the leaf so it cannot be changed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Arrived within the late window: counts in its day's rollup.
    OnTime,
    /// Arrived after the late window or after its day closed: a late adjustment.
    Late,
}

impl EventClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnTime => "on_time",
            Self::Late => "late",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "on_time" => Some(Self::OnTime),
            "late" => Some(Self::Late),
            _ => None,
        }
    }
}

/// Bytes of a usage leaf besides its tenant id, event id and index digits: the tag, the field
/// names, the digest text and the class, with their newlines.
pub const USAGE_LEAF_BYTES_BASE: usize = USAGE_LEAF_TAG.len() + 128;

/// Appends the leaf_data bytes of a usage leaf to `out`, from borrowed parts: the ingestion
/// writer builds one per event, and formatting through `Display` (or allocating a
/// [`UsageLeaf`]) would cost more than hashing it. The same text as [`UsageLeaf`]'s `Display`.
pub fn write_usage_leaf(
    out: &mut Vec<u8>,
    tenant_id: &str,
    leaf_index: u64,
    event_id: &str,
    digest: &EventDigest,
    class: EventClass,
) {
    out.extend_from_slice(USAGE_LEAF_TAG.as_bytes());
    out.extend_from_slice(b"\ntenant_id:");
    out.extend_from_slice(tenant_id.as_bytes());
    out.extend_from_slice(b"\nleaf_index:");
    push_decimal(out, leaf_index);
    out.extend_from_slice(b"\nevent_id:");
    out.extend_from_slice(event_id.as_bytes());
    out.extend_from_slice(b"\ndigest:sha256:");
    for byte in digest.hash().as_bytes() {
        out.extend_from_slice(&crate::encoding::hex_digits(*byte));
    }
    out.extend_from_slice(b"\nclass:");
    out.extend_from_slice(class.as_str().as_bytes());
    out.push(b'\n');
}

/// Appends the decimal digits of `value` (no leading zeros).
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The contents of a usage ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLeaf {
    pub tenant_id: String,
    pub leaf_index: u64,
    pub event_id: String,
    pub digest: EventDigest,
    pub class: EventClass,
}

/// A leaf did not have the expected layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed leaf data: {0}")]
pub struct LeafParseError(&'static str);

fn field<'a>(lines: &mut std::str::Split<'a, char>, name: &str) -> Result<&'a str, LeafParseError> {
    let line = lines.next().ok_or(LeafParseError("missing line"))?;
    line.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or(LeafParseError("unexpected field"))
}

/// The lines of a leaf after its tag line: the leaf is UTF-8, ends in a newline and starts with
/// `tag`, else `wrong_tag` (or the encoding's error) says why not.
fn tagged_lines<'a>(
    bytes: &'a [u8],
    tag: &str,
    wrong_tag: &'static str,
) -> Result<std::str::Split<'a, char>, LeafParseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LeafParseError("not UTF-8"))?;
    let body = text
        .strip_suffix('\n')
        .ok_or(LeafParseError("no final newline"))?;
    let mut lines = body.split('\n');
    if lines.next() != Some(tag) {
        return Err(LeafParseError(wrong_tag));
    }
    Ok(lines)
}

fn parse_index(text: &str) -> Result<u64, LeafParseError> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return Err(LeafParseError("leaf_index"));
    }
    text.parse().map_err(|_| LeafParseError("leaf_index"))
}

impl UsageLeaf {
    /// The leaf_data bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(USAGE_LEAF_BYTES_BASE + self.tenant_id.len() + 64);
        write_usage_leaf(
            &mut out,
            &self.tenant_id,
            self.leaf_index,
            &self.event_id,
            &self.digest,
            self.class,
        );
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, LeafParseError> {
        let mut lines = tagged_lines(bytes, USAGE_LEAF_TAG, "not a usage leaf")?;
        let tenant_id = field(&mut lines, "tenant_id")?.to_owned();
        let leaf_index = parse_index(field(&mut lines, "leaf_index")?)?;
        let event_id = field(&mut lines, "event_id")?.to_owned();
        let digest = field(&mut lines, "digest")?
            .parse()
            .map_err(|_| LeafParseError("digest"))?;
        let class =
            EventClass::parse(field(&mut lines, "class")?).ok_or(LeafParseError("class"))?;
        if lines.next().is_some() {
            return Err(LeafParseError("trailing lines"));
        }
        let leaf = Self {
            tenant_id,
            leaf_index,
            event_id,
            digest,
            class,
        };
        // Only the canonical layout is accepted, so one leaf has exactly one encoding.
        if leaf.to_string().as_bytes() != bytes {
            return Err(LeafParseError("not canonical"));
        }
        Ok(leaf)
    }
}

impl fmt::Display for UsageLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{USAGE_LEAF_TAG}\ntenant_id:{}\nleaf_index:{}\nevent_id:{}\ndigest:{}\nclass:{}\n",
            self.tenant_id,
            self.leaf_index,
            self.event_id,
            self.digest,
            self.class.as_str()
        )
    }
}

/// The contents of an audit log leaf: the record's id and the digest of its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLeaf {
    pub leaf_index: u64,
    pub audit_id: String,
    pub digest: EventDigest,
}

impl AuditLeaf {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, LeafParseError> {
        let mut lines = tagged_lines(bytes, AUDIT_LEAF_TAG, "not an audit leaf")?;
        let leaf_index = parse_index(field(&mut lines, "leaf_index")?)?;
        let audit_id = field(&mut lines, "audit_id")?.to_owned();
        let digest = field(&mut lines, "digest")?
            .parse()
            .map_err(|_| LeafParseError("digest"))?;
        if lines.next().is_some() {
            return Err(LeafParseError("trailing lines"));
        }
        Ok(Self {
            leaf_index,
            audit_id,
            digest,
        })
    }
}

impl fmt::Display for AuditLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{AUDIT_LEAF_TAG}\nleaf_index:{}\naudit_id:{}\ndigest:{}\n",
            self.leaf_index, self.audit_id, self.digest
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_leaf_bytes_are_its_text_and_parse_back() {
        let leaf = UsageLeaf {
            tenant_id: "acme".to_owned(),
            leaf_index: 1_234_567,
            event_id: "evt-42".to_owned(),
            digest: EventDigest::of_canonical(b"{}"),
            class: EventClass::Late,
        };
        assert_eq!(leaf.to_bytes(), leaf.to_string().into_bytes());
        assert_eq!(UsageLeaf::parse(&leaf.to_bytes()), Ok(leaf.clone()));
        for leaf_index in [0, 9, 10, u64::MAX] {
            let leaf = UsageLeaf {
                leaf_index,
                ..leaf.clone()
            };
            assert_eq!(leaf.to_bytes(), leaf.to_string().into_bytes());
        }
    }
}
