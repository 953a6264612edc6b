//! Which verifiable log an entry belongs to: the audit log, or one tenant's usage ledger. The
//! store keys heads, leaves and checkpoints by the text of a [`LogId`] (`audit`,
//! `tenant/<id>`); this is the one place that spells it, so storage never asks the service layer
//! what a log id means, and nothing below the edge splits the text again.

use std::fmt;

use crate::error::FieldError;
use crate::ids::TenantId;

/// The text form of the audit log's id.
const AUDIT_LOG_ID: &str = "audit";

/// Log ids of tenant usage ledgers: this prefix, then the tenant id.
const USAGE_LOG_PREFIX: &str = "tenant/";

/// A verifiable log. The derived order is the order of the text forms (`audit` sorts before
/// `tenant/`, and usage ledgers sort by tenant id), which is the order heads are locked in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum LogId {
    /// The audit log.
    Audit,
    /// A tenant's usage ledger.
    Usage(TenantId),
}

impl LogId {
    /// Parses a stored log id (`audit` or `tenant/<id>`).
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text == AUDIT_LOG_ID {
            return Ok(Self::Audit);
        }
        match text.strip_prefix(USAGE_LOG_PREFIX) {
            Some(tenant) => Ok(Self::Usage(TenantId::parse_field(tenant, "log_id")?)),
            None => Err(FieldError::new(
                "log_id",
                "must be audit or tenant/<tenant id>",
            )),
        }
    }

    /// The tenant of a usage ledger; `None` for the audit log.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Audit => None,
            Self::Usage(tenant) => Some(tenant),
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Audit => f.write_str(AUDIT_LOG_ID),
            Self::Usage(tenant) => write!(f, "{USAGE_LOG_PREFIX}{tenant}"),
        }
    }
}

impl TryFrom<&str> for LogId {
    type Error = FieldError;
    fn try_from(text: &str) -> Result<Self, FieldError> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() -> Result<(), FieldError> {
        let acme = LogId::Usage(TenantId::parse("acme")?);
        assert_eq!(acme.to_string(), "tenant/acme");
        assert_eq!(LogId::parse("tenant/acme")?, acme);
        assert_eq!(LogId::Audit.to_string(), "audit");
        assert_eq!(LogId::parse("audit")?, LogId::Audit);
        assert_eq!(acme.tenant().map(TenantId::as_str), Some("acme"));
        assert_eq!(LogId::Audit.tenant(), None);
        for bad in ["", "usage/acme", "tenant/", "tenant/Acme", "audit/x"] {
            assert!(LogId::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn order_is_the_order_of_the_text() -> Result<(), FieldError> {
        let ids = [
            "audit",
            "tenant/abc",
            "tenant/abc-d",
            "tenant/abd",
            "tenant/b12",
        ];
        let mut parsed = ids
            .iter()
            .rev()
            .map(|t| LogId::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort();
        let texts: Vec<String> = parsed.iter().map(LogId::to_string).collect();
        assert_eq!(texts, ids);
        Ok(())
    }
}
