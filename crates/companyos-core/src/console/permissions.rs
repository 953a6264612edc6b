//! What the console offers an operator: asked of the same Cedar policies that decide the
//! request, so a form is shown only where the request would be allowed. These answers only
//! hide forms; the service call still decides (and audits a denial) when a request arrives.

use companyos_domain::Action;

use crate::app::{Actor, Console};
use crate::approvals::ApprovalView;
use crate::authz::Resource;
use crate::error::ServiceError;

/// Whether the operator may approve and reject one approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApprovalDecisions {
    pub approve: bool,
    pub reject: bool,
}

impl Console<'_> {
    /// Whether policy allows `actor` a deployment-wide `action` (such as `audit.read`).
    pub fn may(&self, actor: &Actor, action: Action) -> bool {
        self.authorizer()
            .authorize(&actor.principal, action, Resource::Deployment, &[])
            .allowed
    }

    /// Whether policy allows `actor` `action` on `tenant` (such as `tenant.plan_change`).
    pub fn may_on_tenant(
        &self,
        actor: &Actor,
        action: Action,
        tenant: &crate::lifecycle::TenantRow,
    ) -> bool {
        let attributes = self.attributes_of(tenant);
        self.authorizer()
            .authorize(&actor.principal, action, Resource::Tenant(&attributes), &[])
            .allowed
    }

    /// For each approval, whether `actor` may approve or reject it (pending ones only; the
    /// two-person rule's list of operators the requester created is checked at decision time).
    pub async fn approval_decisions(
        &self,
        actor: &Actor,
        approvals: &[ApprovalView],
    ) -> Result<Vec<ApprovalDecisions>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let mut decisions = Vec::with_capacity(approvals.len());
        for approval in approvals {
            if approval.status != "pending" {
                decisions.push(ApprovalDecisions::default());
                continue;
            }
            let Some(tenant) =
                crate::lifecycle::tenant_named(&mut conn, &approval.tenant_id).await?
            else {
                decisions.push(ApprovalDecisions::default());
                continue;
            };
            let attributes = self.attributes_of(&tenant);
            let allowed = |action: Action| {
                self.authorizer()
                    .authorize(
                        &actor.principal,
                        action,
                        Resource::Approval {
                            id: &approval.id,
                            requester_operator_id: &approval.requested_by,
                            created_by_requester: &[],
                            action: &approval.action,
                            tenant: &attributes,
                        },
                        &[],
                    )
                    .allowed
            };
            decisions.push(ApprovalDecisions {
                approve: allowed(Action::ApprovalApprove),
                reject: allowed(Action::ApprovalReject),
            });
        }
        Ok(decisions)
    }
}
