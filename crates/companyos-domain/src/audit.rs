//! Audit records (CONTRACT §8): who did what to which target, with which outcome, under which
//! policy. The canonical JSON of a record is what the audit log's leaf digests commit to.

use std::fmt;

use serde_json::{Value, json};

/// How an attempted action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    Success,
    Denied,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit record, as stored and exported.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    /// Position in the audit log (its leaf index).
    pub seq: u64,
    pub occurred_at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub tenant_id: Option<String>,
    pub outcome: AuditOutcome,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub policy_sha256: String,
    pub details: Value,
}

impl AuditRecord {
    /// The record as a JSON object (the export and API form).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "seq": self.seq,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "tenant_id": self.tenant_id,
            "outcome": self.outcome.as_str(),
            "reason": self.reason,
            "request_id": self.request_id,
            "policy_sha256": self.policy_sha256,
            "details": self.details,
        })
    }

    /// The RFC 8785 form of [`AuditRecord::to_json`], which the audit leaf's digest covers.
    pub fn canonical(&self) -> Result<String, companyos_ledger::jcs::JcsError> {
        companyos_ledger::jcs::canonicalize(&self.to_json())
    }
}
