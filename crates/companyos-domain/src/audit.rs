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

/// Which adapter a request came through: the HTTP API, the CLI (an API client that says so) or
/// the operator console. Records written before channels existed, and records of background
/// jobs, have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditChannel {
    Api,
    Cli,
    Console,
}

impl AuditChannel {
    pub const ALL: [AuditChannel; 3] =
        [AuditChannel::Api, AuditChannel::Cli, AuditChannel::Console];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditChannel::Api => "api",
            AuditChannel::Cli => "cli",
            AuditChannel::Console => "console",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|channel| channel.as_str() == text)
    }
}

impl fmt::Display for AuditChannel {
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
    /// The adapter the request came through; `None` for jobs and for records older than
    /// channels.
    pub channel: Option<AuditChannel>,
}

impl AuditRecord {
    /// The record as a JSON object (the export and API form). `channel` is a member only when
    /// the record has one, so the canonical form (and leaf digest) of every record written
    /// before channels existed is unchanged.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
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
        });
        if let (Some(channel), Value::Object(members)) = (self.channel, &mut value) {
            members.insert("channel".to_owned(), json!(channel.as_str()));
        }
        value
    }

    /// The RFC 8785 form of [`AuditRecord::to_json`], which the audit leaf's digest covers.
    pub fn canonical(&self) -> Result<String, companyos_ledger::jcs::JcsError> {
        companyos_ledger::jcs::canonicalize(&self.to_json())
    }
}
