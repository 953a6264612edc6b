//! Tenants (CONTRACT §4): the tenant object with what each answer adds to it. The tenant object
//! and a workload are core's `TenantRecord` and `Workload`, because core also writes them into
//! the signed dossier and the `workloads.scale` message; the answers here wrap them.

use companyos_core::approvals::{ApprovalView, TenantActions};
use companyos_core::lifecycle::boundary::StepLog;
use companyos_core::lifecycle::{
    CreatedTenant, ProvisioningOutcome, ProvisioningRun, TenantRow, TenantView,
};
use serde::Serialize;
use serde_json::Value;

use super::approvals::{ActionsBody, ApprovalBody};
use super::instant_micros;

pub use companyos_core::lifecycle::{TenantRecord, Workload};

/// A created (or re-provisioned) tenant: the tenant, then what is shown only in this answer.
#[derive(Debug, Serialize)]
pub struct CreatedTenantBody<'a> {
    #[serde(flatten)]
    pub tenant: TenantRecord<'a>,
    pub api_key: &'a str,
    pub provisioning: ProvisioningBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary_credentials: Option<&'a Value>,
    /// Only at creation, and only when the tenant has an audit webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_webhook_secret: Option<String>,
}

impl<'a> CreatedTenantBody<'a> {
    /// `audit_webhook_secret` is left out; creation adds it.
    pub fn of(created: &'a CreatedTenant, view: TenantView) -> Self {
        Self {
            tenant: TenantRecord::of(&created.tenant, view),
            api_key: &created.api_key,
            provisioning: ProvisioningBody::of(&created.provisioning),
            boundary_credentials: created.boundary_credentials.as_ref(),
            audit_webhook_secret: None,
        }
    }
}

/// The provisioning run of a creation (its id first) or of a retry (no id, the steps before
/// the total): two member orders, each as its answer has always had it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ProvisioningBody<'a> {
    Created {
        id: &'a str,
        status: &'static str,
        total_ms: f64,
        steps: &'a StepLog,
    },
    Retried {
        status: &'static str,
        steps: &'a StepLog,
        total_ms: f64,
    },
}

impl<'a> ProvisioningBody<'a> {
    pub fn of(outcome: &'a ProvisioningOutcome) -> Self {
        // Only successful runs are answered.
        let status = "succeeded";
        let (steps, total_ms) = (&outcome.steps, outcome.steps.total_ms());
        match &outcome.run_id {
            Some(id) => Self::Created {
                id,
                status,
                total_ms,
                steps,
            },
            None => Self::Retried {
                status,
                steps,
                total_ms,
            },
        }
    }
}

/// A tenant with the lifecycle actions the caller may take now (listings and `GET`).
#[derive(Debug, Serialize)]
pub struct TenantWithActionsBody<'a> {
    #[serde(flatten)]
    pub tenant: TenantRecord<'a>,
    #[serde(flatten)]
    pub actions: ActionsBody<'a>,
}

impl<'a> TenantWithActionsBody<'a> {
    pub fn of(tenant: &'a TenantRow, actions: &'a TenantActions, view: TenantView) -> Self {
        Self {
            tenant: TenantRecord::of(tenant, view),
            actions: ActionsBody::of(actions),
        }
    }
}

/// A lifecycle action that ran: the tenant after it, whether it changed anything, the warnings
/// and the evidence it produced (a deletion certificate).
#[derive(Debug, Serialize)]
pub struct LifecycleDoneBody<'a> {
    #[serde(flatten)]
    pub tenant: TenantRecord<'a>,
    pub changed: bool,
    pub warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<&'a str>,
}

/// A lifecycle action that waits for a second person.
#[derive(Debug, Serialize)]
pub struct PendingApprovalBody<'a> {
    pub approval: ApprovalBody<'a>,
    pub warnings: &'a [String],
}

impl<'a> PendingApprovalBody<'a> {
    pub fn of(approval: &'a ApprovalView) -> Self {
        Self {
            approval: ApprovalBody::of(approval),
            warnings: &approval.warnings,
        }
    }
}

/// An approval decided; when approving ran the action, the tenant after it and what it said.
#[derive(Debug, Serialize)]
pub struct DecidedBody<'a> {
    pub approval: ApprovalBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantRecord<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<&'a str>,
}

impl<'a> DecidedBody<'a> {
    pub fn of(approval: &'a ApprovalView) -> Self {
        Self {
            approval: ApprovalBody::of(approval),
            tenant: None,
            warnings: None,
            evidence_id: None,
        }
    }
}

/// One provisioning run of `GET /v1/tenants/{id}/provisioning`.
#[derive(Debug, Serialize)]
pub struct ProvisioningRunBody<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub steps: &'a Value,
}

impl<'a> ProvisioningRunBody<'a> {
    pub fn of(run: &'a ProvisioningRun) -> Self {
        Self {
            id: &run.id,
            status: &run.status,
            started_at: instant_micros(run.started_at),
            finished_at: run.finished_at.map(instant_micros),
            steps: &run.steps,
        }
    }
}
