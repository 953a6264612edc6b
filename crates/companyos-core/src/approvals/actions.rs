//! Which lifecycle actions a caller may take on each tenant now, for a console that offers only
//! what can apply.

use companyos_domain::{Action, LifecycleAction};

use companyos_store::approvals as approval_rows;

use super::ApprovalView;
use crate::app::{Actor, Approvals};
use crate::authz::Resource;
use crate::error::ServiceError;
use crate::lifecycle::TenantRow;

/// What a caller may do with a tenant right now, for a console that offers only what can apply.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantActions {
    /// Lifecycle actions the policies permit this caller on this tenant and that the state
    /// machine would carry out from its current state (a no-op, such as suspending a suspended
    /// tenant, is not offered).
    pub allowed: Vec<AllowedAction>,
    /// The newest pending (not yet expired) approval of the tenant; `None` also when the caller
    /// may not read approvals.
    pub pending_approval: Option<ApprovalView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedAction {
    pub action: LifecycleAction,
    /// Running it creates a pending approval (the `approval_required` setting).
    pub needs_approval: bool,
}

impl Approvals<'_> {
    /// The actions `actor` may take on each of `tenants` now, decided by the Cedar policies
    /// (the same request `lifecycle` makes, so forbids such as a legal hold count) and the
    /// lifecycle state machine, with each tenant's pending approval.
    pub async fn tenant_actions(
        &self,
        actor: &Actor,
        tenants: &[TenantRow],
    ) -> Result<Vec<TenantActions>, ServiceError> {
        let may_read_approvals = self
            .authorizer()
            .authorize(
                &actor.principal,
                Action::ApprovalRead,
                Resource::Deployment,
                &[],
            )
            .allowed;
        let mut pending: std::collections::HashMap<String, ApprovalView> =
            std::collections::HashMap::new();
        if may_read_approvals && !tenants.is_empty() {
            let now = self.now_micros();
            let mut conn = self.db().readers().acquire().await?;
            // Newest first, so the first seen per tenant is kept; bounded like the listing.
            for row in approval_rows::pending_newest(&mut conn, now).await? {
                let approval = ApprovalView::from(row);
                pending
                    .entry(approval.tenant_id.clone())
                    .or_insert(approval);
            }
        }
        Ok(tenants
            .iter()
            .map(|tenant| {
                let attributes = self.attributes_of(tenant);
                let allowed = LifecycleAction::ALL
                    .into_iter()
                    .filter(|action| {
                        companyos_domain::tenant::transition(
                            tenant.status,
                            *action,
                            tenant.status_before_delete,
                        )
                        .is_ok_and(|t| t.changes())
                    })
                    .filter(|action| {
                        self.authorizer()
                            .authorize(
                                &actor.principal,
                                action.cedar_action(),
                                Resource::Tenant(&attributes),
                                &[],
                            )
                            .allowed
                    })
                    .map(|action| AllowedAction {
                        action,
                        needs_approval: self.settings().needs_approval(action),
                    })
                    .collect();
                TenantActions {
                    allowed,
                    pending_approval: pending.get(tenant.id.as_str()).cloned(),
                }
            })
            .collect())
    }
}
