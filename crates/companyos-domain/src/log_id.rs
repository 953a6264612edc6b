//! Which verifiable log an entry belongs to: the audit log, or one tenant's usage ledger. The
//! store keys heads, leaves and checkpoints by these ids (`audit`, `tenant/<id>`); this is the
//! one place that spells them, so storage never asks the service layer what a log id means.

/// The text form of the audit log's id.
pub const AUDIT_LOG_ID: &str = "audit";

/// Log ids of tenant usage ledgers: this prefix, then the tenant id.
const USAGE_LOG_PREFIX: &str = "tenant/";

/// The stored log id of a tenant's usage ledger.
pub fn usage_log_id(tenant_id: &str) -> String {
    format!("{USAGE_LOG_PREFIX}{tenant_id}")
}

/// The tenant of a usage ledger's stored log id; `None` for other logs (the audit log).
pub fn usage_log_tenant(log_id: &str) -> Option<&str> {
    log_id.strip_prefix(USAGE_LOG_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        assert_eq!(usage_log_id("acme"), "tenant/acme");
        assert_eq!(usage_log_tenant(&usage_log_id("acme")), Some("acme"));
        assert_eq!(usage_log_tenant(AUDIT_LOG_ID), None);
    }
}
