//! Approvals (CONTRACT §4, ADM-2) and the lifecycle actions a caller may take on a tenant.

use companyos_core::approvals::{ApprovalView, TenantActions};
use serde::Serialize;
use serde_json::Value;

use super::instant_micros;

/// An approval; `requested_by` and `decided_by` are names, `requested_by_id` the operator id.
#[derive(Debug, Serialize)]
pub struct ApprovalBody<'a> {
    pub id: &'a str,
    pub action: &'a str,
    pub tenant_id: &'a str,
    pub status: &'a str,
    pub requested_by: &'a str,
    pub requested_by_id: &'a str,
    pub reason: Option<&'a str>,
    pub requested_at: String,
    pub expires_at: String,
    pub decided_by: Option<&'a str>,
    pub decided_at: Option<String>,
    pub comment: Option<&'a str>,
    pub warnings: &'a [String],
    pub result: Option<&'a Value>,
    pub facts: Option<&'a Value>,
}

impl<'a> ApprovalBody<'a> {
    pub fn of(approval: &'a ApprovalView) -> Self {
        Self {
            id: &approval.id,
            action: &approval.action,
            tenant_id: &approval.tenant_id,
            status: &approval.status,
            requested_by: &approval.requested_by_name,
            requested_by_id: &approval.requested_by,
            reason: approval.reason.as_deref(),
            requested_at: instant_micros(approval.requested_at),
            expires_at: instant_micros(approval.expires_at),
            decided_by: approval.decided_by_name.as_deref(),
            decided_at: approval.decided_at.map(instant_micros),
            comment: approval.comment.as_deref(),
            warnings: &approval.warnings,
            result: approval.result.as_ref(),
            facts: approval.facts.as_ref(),
        }
    }
}

/// A lifecycle action the caller may take now.
#[derive(Debug, Serialize)]
pub struct AllowedActionBody {
    pub action: String,
    pub needs_approval: bool,
}

/// What a console shows beside a tenant: the actions the caller may take now and the tenant's
/// pending approval (`null` when there is none or the caller may not read approvals).
#[derive(Debug, Serialize)]
pub struct ActionsBody<'a> {
    pub allowed_actions: Vec<AllowedActionBody>,
    pub pending_approval: Option<ApprovalBody<'a>>,
}

impl<'a> ActionsBody<'a> {
    pub fn of(actions: &'a TenantActions) -> Self {
        Self {
            allowed_actions: actions
                .allowed
                .iter()
                .map(|a| AllowedActionBody {
                    action: a.action.to_string(),
                    needs_approval: a.needs_approval,
                })
                .collect(),
            pending_approval: actions.pending_approval.as_ref().map(ApprovalBody::of),
        }
    }
}
