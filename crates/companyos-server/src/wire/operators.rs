//! Operators and policies (CONTRACT §3).

use companyos_core::operators::OperatorView;
use serde::Serialize;

use super::instant;

/// An operator; `token` only in the answer that created it (shown once).
#[derive(Debug, Serialize)]
pub struct OperatorBody<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: &'static str,
    pub created_at: String,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
}

impl<'a> OperatorBody<'a> {
    pub fn of(operator: &'a OperatorView) -> Self {
        Self {
            id: &operator.id,
            name: &operator.name,
            role: operator.role.as_str(),
            created_at: instant(operator.created_at),
            revoked: operator.revoked,
            token: None,
        }
    }
}

/// The answer of `POST /v1/operators/{id}/revoke`.
#[derive(Debug, Serialize)]
pub struct RevokedBody<'a> {
    pub id: &'a str,
    pub revoked: bool,
}

/// `GET /v1/policies`: the global policies, their schema, and the Cedar actions of the
/// lifecycle that need approval.
#[derive(Debug, Serialize)]
pub struct PoliciesBody<'a> {
    pub sha256: &'a str,
    pub policies: &'a str,
    pub schema: &'static str,
    pub approval_required: Vec<&'static str>,
}
