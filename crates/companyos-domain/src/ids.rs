//! Validated identifiers and names. Each is a newtype with a private field and a `parse`
//! constructor, so a value of the type is proof that the text follows its rule.

use std::fmt;

use crate::error::FieldError;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The field name used in error messages.
            pub const FIELD: &'static str = $field;

            /// Parses `text`, naming the field `field` in the error.
            pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(text).map_err(|message| FieldError::new(field, message))?;
                Ok(Self(text.to_owned()))
            }

            pub fn parse(text: &str) -> Result<Self, FieldError> {
                Self::parse_field(text, $field)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;
            fn try_from(text: &str) -> Result<Self, FieldError> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}

/// `^[a-z][a-z0-9-]{min,max}$` where the counts are of the characters after the first.
fn slug(text: &str, rest_min: usize, rest_max: usize, extra: &[u8]) -> Result<(), String> {
    let bytes = text.as_bytes();
    let first_ok = bytes.first().is_some_and(u8::is_ascii_lowercase);
    let rest = bytes.get(1..).unwrap_or_default();
    let rest_ok = rest
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(b));
    let allowed: String = extra.iter().map(|b| char::from(*b)).collect();
    if !first_ok || !rest_ok || rest.len() < rest_min || rest.len() > rest_max {
        return Err(format!(
            "must match ^[a-z][a-z0-9{allowed}]{{{rest_min},{rest_max}}}$"
        ));
    }
    Ok(())
}

fn token_chars(text: &str, max: usize) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !ok {
        return Err(format!(
            "must be 1 to {max} characters of A-Z a-z 0-9 . _ : -"
        ));
    }
    Ok(())
}

string_newtype!(
    /// A tenant id: `^[a-z][a-z0-9-]{2,62}$`, never reused.
    TenantId, "id", |t| slug(t, 2, 62, b"-")
);
string_newtype!(
    /// A usage event id, unique per tenant: 1 to 128 of `A-Z a-z 0-9 . _ : -`.
    EventId, "event_id", |t| token_chars(t, 128)
);
string_newtype!(
    /// The service that emits usage: `^[a-z][a-z0-9-]{0,62}$`.
    ServiceName, "service", |t| slug(t, 0, 62, b"-")
);
string_newtype!(
    /// A metric name: `^[a-z][a-z0-9_.]{0,63}$`.
    MetricName, "metric", |t| slug(t, 0, 63, b"_.")
);
string_newtype!(
    /// A registered usage source: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
    SourceId, "source", |t| token_chars(t, 64)
);
string_newtype!(
    /// A region from the region catalog: `^[a-z][a-z0-9-]{1,31}$`.
    RegionName, "region", |t| slug(t, 1, 31, b"-")
);
string_newtype!(
    /// A plan of the product catalog: `^[a-z][a-z0-9-]{1,31}$`.
    PlanName, "plan", |t| slug(t, 1, 31, b"-")
);
string_newtype!(
    /// An operator's name: `^[a-z][a-z0-9._-]{1,62}$`.
    OperatorName, "name", |t| slug(t, 1, 62, b"._-")
);
string_newtype!(
    /// A workload of a tenant: `^[a-z][a-z0-9-]{0,62}$`.
    WorkloadName, "name", |t| slug(t, 0, 62, b"-")
);
string_newtype!(
    /// A W3C trace id: 32 lower-case hex digits, not all zero.
    TraceId, "trace_id", |t| {
        let ok = t.len() == 32
            && t.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && t.bytes().any(|b| b != b'0');
        if ok { Ok(()) } else { Err("must be 32 lower-case hex digits, not all zero (W3C trace-context)".to_owned()) }
    }
);
string_newtype!(
    /// A caller's request id: 1 to 128 printable ASCII characters.
    RequestId, "request_id", |t| {
        let ok = !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if ok { Ok(()) } else { Err("must be 1 to 128 printable ASCII characters without spaces".to_owned()) }
    }
);
string_newtype!(
    /// A measurement unit: 1 to 32 characters, no control characters.
    Unit, "unit", |t| {
        let count = t.chars().count();
        let ok = (1..=32).contains(&count) && !t.chars().any(char::is_control)
            && t.trim() == t;
        if ok { Ok(()) } else { Err("must be 1 to 32 characters without control characters or surrounding spaces".to_owned()) }
    }
);
string_newtype!(
    /// A free-text reason given for an action: 1 to 1000 characters.
    Reason, "reason", |t| {
        let count = t.chars().count();
        let ok = (1..=1000).contains(&count) && !t.trim().is_empty()
            && !t.chars().any(|c| c.is_control() && c != '\n');
        if ok { Ok(()) } else { Err("must be 1 to 1000 characters of text".to_owned()) }
    }
);

/// The rule of a generated id: `<prefix>_` and 26 characters of `0-9 a-z` (`check_generated_id`).
fn generated(text: &str, prefix: &str) -> Result<(), String> {
    if check_generated_id(text, prefix) {
        Ok(())
    } else {
        Err(format!(
            "must be {prefix}_ followed by 26 characters of 0-9 a-z"
        ))
    }
}

string_newtype!(
    /// An approval request's id, as the service generates it: `apr_` and 26 of `0-9 a-z`.
    ApprovalId, "id", |t| generated(t, "apr")
);
string_newtype!(
    /// An evidence artifact's id, as the service generates it: `evd_` and 26 of `0-9 a-z`.
    EvidenceId, "id", |t| generated(t, "evd")
);
string_newtype!(
    /// An operator's id (not its name), as the service generates it: `op_` and 26 of `0-9 a-z`.
    OperatorId, "id", |t| generated(t, "op")
);

/// Generated ids of records we create (`<prefix>_<26 base32 characters>`), checked on input.
pub fn check_generated_id(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            rest.len() == 26
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_contract() {
        for good in ["abc", "acme-1", "a23", &format!("a{}", "b".repeat(62))] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "1abc",
            "Abc",
            "ab_c",
            "",
            &format!("a{}", "b".repeat(63)),
            "abc ",
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_ids_and_names() {
        assert!(EventId::parse("A.b_c:d-9").is_ok());
        assert!(EventId::parse(&"x".repeat(128)).is_ok());
        assert!(EventId::parse(&"x".repeat(129)).is_err());
        assert!(EventId::parse("a b").is_err());
        assert!(ServiceName::parse("a").is_ok());
        assert!(ServiceName::parse("api-gw").is_ok());
        assert!(ServiceName::parse("api_gw").is_err());
        assert!(MetricName::parse("requests.count_total").is_ok());
        assert!(MetricName::parse("requests-count").is_err());
        assert!(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").is_ok());
        assert!(TraceId::parse("4BF92F3577B34DA6A3CE929D0E0E4736").is_err());
        assert!(TraceId::parse(&"0".repeat(32)).is_err());
        assert!(Unit::parse("GiB-hours").is_ok());
        assert!(Unit::parse("").is_err());
        assert!(Unit::parse(&"é".repeat(32)).is_ok());
        assert!(Unit::parse(&"é".repeat(33)).is_err());
    }

    #[test]
    fn generated_ids_have_their_prefix_and_26_characters() {
        let tail = "0123456789abcdefghjkmnpqrs";
        assert!(ApprovalId::parse(&format!("apr_{tail}")).is_ok());
        assert!(EvidenceId::parse(&format!("evd_{tail}")).is_ok());
        assert!(OperatorId::parse(&format!("op_{tail}")).is_ok());
        for bad in [
            format!("evd_{tail}"),
            format!("apr_{}", &tail[1..]),
            format!("apr_{tail}0"),
            format!("apr_{}", tail.to_uppercase()),
            format!("apr-{tail}"),
            "Bad_Id".to_owned(),
            String::new(),
        ] {
            assert!(ApprovalId::parse(&bad).is_err(), "{bad}");
        }
        let error = OperatorId::parse("Bad_Id").expect_err("not an operator id");
        assert_eq!(error.field, "id");
    }
}
